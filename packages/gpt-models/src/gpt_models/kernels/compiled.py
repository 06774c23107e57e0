"""Lazy torch.compile for the fused kernels, with switches to turn it off.

Each fused kernel is a plain PyTorch function (its own reference) wrapped in ``Compiled``: the
first call compiles it (``dynamic=False``: one graph per shape family), later calls reuse the
graph. Where it compiles:
- on CUDA tensors, always (unless ``GPT_STACK_NO_COMPILE=1``);
- on CPU tensors only with ``GPT_STACK_COMPILE_CPU=1``. Inductor's C++ code generation costs
  30-60 s on a cold cache on a small CPU machine for a tiny model's first step, much more than
  it saves there; the CPU runs tests and golden checks, where the eager function (identical
  math) is the better choice.
``GPT_STACK_NO_COMPILE=1`` makes every wrapper run the plain function. A compiler failure falls
back to the plain function, once, with a warning.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import torch

NO_COMPILE_ENV = "GPT_STACK_NO_COMPILE"
COMPILE_CPU_ENV = "GPT_STACK_COMPILE_CPU"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def compile_disabled() -> bool:
    """Whether ``GPT_STACK_NO_COMPILE`` asks for eager execution of the fused kernels."""
    return _env_flag(NO_COMPILE_ENV)


def compile_on_cpu() -> bool:
    """Whether ``GPT_STACK_COMPILE_CPU`` asks to compile kernels for CPU tensors too."""
    return _env_flag(COMPILE_CPU_ENV)


def _first_tensor(args: tuple[Any, ...]) -> torch.Tensor | None:
    return next((a for a in args if isinstance(a, torch.Tensor)), None)


def should_compile(args: tuple[Any, ...]) -> bool:
    """Compile for these arguments? (never when disabled; CPU only when asked for)."""
    if compile_disabled():
        return False
    tensor = _first_tensor(args)
    return tensor is None or tensor.device.type != "cpu" or compile_on_cpu()


class Compiled:
    """A function compiled with torch.compile on first use where compiling pays off."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self._compiled: Callable[..., Any] | None = None
        self._failed = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._failed or not should_compile(args):
            return self.fn(*args, **kwargs)
        if self._compiled is None:
            self._compiled = torch.compile(self.fn, dynamic=False)
        try:
            return self._compiled(*args, **kwargs)
        except torch._dynamo.exc.BackendCompilerFailed as error:  # no working compiler here
            self._failed = True
            warnings.warn(
                f"torch.compile of {self.name} failed ({type(error).__name__}); running it eagerly",
                stacklevel=2,
            )
            return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Compiled({self.name})"
