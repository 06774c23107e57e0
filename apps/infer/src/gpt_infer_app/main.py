"""`infer`: generate for `--prompts` and exit, or serve the text-generation API."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from gpt_pretrain_app.errors import ArgsError

SHOW_TRACEBACKS = "GPT_STACK_TRACEBACK"


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import parse_args

    try:
        args = parse_args(argv)
        if args.flag_status:
            from gpt_pretrain_app.flag_status import status_table

            sys.stdout.write(status_table())
            return 0
        return _run(args)
    except ArgsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _run(args) -> int:
    from gpt_tokenizers import TokenizerError

    try:
        from .setup import set_up

        generation = set_up(args)
        if generation.launcher.prompts:
            from .prompts import generate_for_prompts

            engine = generation.dynamic or generation.engine
            batch = (
                generation.dynamic.limits.max_requests
                if generation.dynamic is not None
                else generation.engine.max_batch_size
            )
            return generate_for_prompts(
                engine, generation.launcher, batch, write=generation.process.rank == 0
            )
        from .serve import serve

        return serve(generation)
    except (TokenizerError, ValueError, OSError) as err:
        if os.environ.get(SHOW_TRACEBACKS) or isinstance(err, ArgsError):
            raise
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArgsError(text) from None
