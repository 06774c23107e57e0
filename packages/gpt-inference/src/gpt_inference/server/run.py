"""Serve an application with uvicorn until SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal

import uvicorn
from fastapi import FastAPI


def serve(app: FastAPI, host: str, port: int, graceful_timeout_s: int = 60) -> None:
    """Serve `app` on host:port. On SIGTERM uvicorn stops accepting connections, finishes the
    requests in flight (up to `graceful_timeout_s`), restores the handler it found and
    re-raises the signal; the handler it finds is a no-op installed here, so a requested stop
    returns normally (the program then exits with 0)."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", timeout_graceful_shutdown=graceful_timeout_s
    )
    previous = signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
    try:
        uvicorn.Server(config).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
