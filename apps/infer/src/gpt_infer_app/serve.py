"""Serve the engine over HTTP until SIGTERM / Ctrl-C (uvicorn finishes requests in flight)."""

from __future__ import annotations

from gpt_inference.batcher import DynamicBatcher
from gpt_inference.server.app import create_app
from gpt_inference.server.run import serve as serve_app
from gpt_inference.server.service import GenerationService
from gpt_pretrain_app.errors import ArgsError

from .setup import Generation


def serve(generation: Generation) -> int:
    if generation.process.world_size > 1:
        raise ArgsError(
            "the server runs on one process; with several ranks use --prompts "
            f"(WORLD_SIZE is {generation.process.world_size})"
        )
    launcher = generation.launcher
    batcher = None if generation.dynamic is None else DynamicBatcher(generation.dynamic)
    app = create_app(GenerationService(generation.engine, batcher), log=generation.log)
    serve_app(app, launcher.host, launcher.port)
    return 0
