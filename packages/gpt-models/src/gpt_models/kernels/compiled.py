"""When the model's fused paths run compiled, and the switch that turns compilation off.

The fused paths run as compiled regions (``torch.compile`` with inductor): each transformer
layer is one region (every layer runs the same code on the same shapes, so the region is
compiled once and reused by all layers), and the fused cross-entropy with the output layer is
another. Inside a region inductor fuses the bias, activation, dropout, residual, norm and
softmax arithmetic into a few kernels; the GEMMs stay library calls.

The switch is a ``CompileChoice`` the provider holds and hands to every ``Compiled`` it makes
(nothing here reads a global or the environment):
- ``auto``: compile on CPU and CUDA tensors while gradients are enabled (training).
  Evaluation and inference (no grad) run the same functions eagerly: their shapes vary and
  they are a small part of a training run, so a compile would cost more than it saves;
- ``off`` (the library default): every region and kernel runs its plain function eagerly.
The pretrain app reads ``GPT_STACK_COMPILE=auto|off`` (``GPT_STACK_NO_COMPILE=1`` means ``off``)
once, with ``compile_choice_from_environment``, and passes the choice down (default ``auto``).

On CPU the regions compile with inductor's C++ wrapper, which builds one shared library per
graph instead of one per kernel: a 2-core machine compiles a tiny model's layer in ~15-20 s with
a cold cache, ~4 s warm. They also draw dropout masks from torch's own generator, as the eager
code does (inductor's ``fallback_random``), so a compiled step draws the same masks and matches
the plain path to rounding, dropout included. Where a graph cannot be compiled that way
(inductor does not support every operation there, e.g. the RNG replay of a region recomputed
inside the layer), the next options are tried: without the C++ wrapper, then inductor's
defaults (its own RNG); where everything fails (no C++ compiler, ...), the region runs eagerly
from then on, with one warning. The cache is inductor's own (``TORCHINDUCTOR_CACHE_DIR``, by
default ``/tmp/torchinductor_$USER``): a later run of the same shapes compiles in seconds.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal, cast

import torch

COMPILE_ENV = "GPT_STACK_COMPILE"
NO_COMPILE_ENV = "GPT_STACK_NO_COMPILE"
COMPILE_MODES = ("auto", "off")
COMPILED_DEVICES = ("cpu", "cuda")

# Inductor options to try, in order, per device: on CPU one library per graph (the C++
# wrapper, a short cold compile) and torch's RNG (eager's dropout masks); CUDA: the defaults.
_OPTIONS: dict[str, tuple[dict[str, Any], ...]] = {
    "cpu": (
        {"cpp_wrapper": True, "fallback_random": True},
        {"fallback_random": True},
        {},
    ),
    "cuda": ({},),
}

CompileChoice = Literal["auto", "off"]


def check_compile_choice(mode: str) -> CompileChoice:
    """``mode`` if it is a compile choice, else a one-line error."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode {mode!r} is not one of {', '.join(COMPILE_MODES)}")
    return cast(CompileChoice, mode)


def _env_flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def compile_choice_from_environment(environ: Mapping[str, str]) -> CompileChoice:
    """The choice ``GPT_STACK_COMPILE`` / ``GPT_STACK_NO_COMPILE`` make (default ``auto``);
    the CLI calls it once with ``os.environ``."""
    value = environ.get(COMPILE_ENV, "").strip().lower()
    if value:
        if value not in COMPILE_MODES:
            raise ValueError(f"{COMPILE_ENV}={value!r} is not one of {', '.join(COMPILE_MODES)}")
        return cast(CompileChoice, value)
    return "off" if _env_flag(environ, NO_COMPILE_ENV) else "auto"


def _first_tensor(args: tuple[Any, ...]) -> torch.Tensor | None:
    return next((a for a in args if isinstance(a, torch.Tensor)), None)


def should_compile(args: tuple[Any, ...], mode: CompileChoice) -> bool:
    """Compile for these arguments? Mode on, gradients on, tensors on a compiled device."""
    if mode == "off" or not torch.is_grad_enabled():
        return False
    tensor = _first_tensor(args)
    return tensor is not None and tensor.device.type in COMPILED_DEVICES


class _NoCudaRuntimeNotice(logging.Filter):
    """Drops the notice a CUDA build of torch logs when it compiles for the CPU of a machine
    without CUDA ("No CUDA runtime is found"): expected there, and alarming in a training log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No CUDA runtime is found")


def _quiet_cpp_extension_log() -> None:
    """Install the notice filter (once) when the first region is compiled, not at import."""
    log = logging.getLogger("torch.utils.cpp_extension")
    if not any(isinstance(f, _NoCudaRuntimeNotice) for f in log.filters):
        log.addFilter(_NoCudaRuntimeNotice())


class Compiled:
    """A function (a fused kernel or a whole region) compiled on first use where it pays.

    Inside another compiled region it is traced inline (no nested compile); otherwise it is
    compiled per device type the first time ``should_compile`` allows, and reused.
    """

    def __init__(
        self, fn: Callable[..., Any], name: str | None = None, *, mode: CompileChoice = "off"
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.mode = check_compile_choice(mode)
        self._compiled: dict[str, Callable[..., Any]] = {}
        self._attempt: dict[str, int] = {}
        self._failed = False

    def _compiled_for(self, device_type: str) -> Callable[..., Any]:
        compiled = self._compiled.get(device_type)
        if compiled is None:
            _quiet_cpp_extension_log()
            options = _OPTIONS[device_type][self._attempt.get(device_type, 0)]
            compiled = torch.compile(self.fn, dynamic=None, options=options or None)
            self._compiled[device_type] = compiled
        return compiled

    def _next_attempt(self, device_type: str) -> bool:
        """Move on to the next inductor options for this device; False when none is left."""
        attempt = self._attempt.get(device_type, 0) + 1
        if attempt >= len(_OPTIONS[device_type]):
            return False
        self._attempt[device_type] = attempt
        self._compiled.pop(device_type, None)
        return True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if torch.compiler.is_compiling() or self._failed or not should_compile(args, self.mode):
            return self.fn(*args, **kwargs)
        tensor = _first_tensor(args)
        assert tensor is not None
        device_type = tensor.device.type
        while True:
            try:
                return self._compiled_for(device_type)(*args, **kwargs)
            except torch._dynamo.exc.BackendCompilerFailed as error:  # nothing ran yet
                if self._next_attempt(device_type):
                    continue
                self._failed = True
                warnings.warn(
                    f"torch.compile of {self.name} failed ({type(error).__name__}: "
                    f"{str(error).splitlines()[0][:200]}); running it eagerly",
                    stacklevel=2,
                )
                return self.fn(*args, **kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> Compiled:
        return self  # one per provider, shared by every module it built

    def __repr__(self) -> str:
        return f"Compiled({self.name})"
