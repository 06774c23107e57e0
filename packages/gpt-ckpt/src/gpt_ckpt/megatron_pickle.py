"""Unpickling the original's checkpoints without the original installed.

The original pickles its whole argparse Namespace into every checkpoint, and the Namespace holds
a few of its own classes (``AttnBackend`` and ``ModelType`` enums, and on newer versions
``OptimizerConfig``, ``RerunMode`` ...). Here each of them gets a small stand-in registered
under the original's module path, so ``torch.load(weights_only=True)`` accepts the file; the
few numpy types the RNG state needs are allowed as well. For files that hold any other
``megatron.*`` class, ``MegatronUnpickler`` (a full, trusting unpickler) maps every such class
to a generic stand-in instead.
"""

from __future__ import annotations

import argparse
import io
import pathlib
import pickle
import signal
import types
from typing import Any

import numpy as np


class MegatronEnumValue:
    """A member of one of the original's enums: keeps ``value`` and, when known, ``name``."""

    _names: dict[Any, str] = {}
    _qualified_name = "megatron.Enum"

    def __init__(self, value: Any) -> None:
        self.value = value
        self.name = self._names.get(value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MegatronEnumValue):
            return type(other) is type(self) and other.value == self.value
        if isinstance(other, str):
            return other in (self.name, self.value)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.value))

    def __repr__(self) -> str:
        short = self._qualified_name.rsplit(".", 1)[-1]
        return f"{short}.{self.name}" if self.name else f"{short}({self.value!r})"


class MegatronObject:
    """Any other class of the original: keeps constructor args and pickled state as attributes."""

    _qualified_name = "megatron.Object"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.__dict__.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.state = state

    def __repr__(self) -> str:
        return f"<{self._qualified_name} {vars(self)}>"


def _enum_stand_in(qualified: str, members: dict[Any, str] | None = None) -> type:
    module, name = qualified.rsplit(".", 1)
    return type(
        name,
        (MegatronEnumValue,),
        {"_names": dict(members or {}), "_qualified_name": qualified, "__module__": module},
    )


def _object_stand_in(qualified: str) -> type:
    module, name = qualified.rsplit(".", 1)
    return type(name, (MegatronObject,), {"_qualified_name": qualified, "__module__": module})


# The original's enums that its pickled args may hold, with their member names where fixed.
ENUM_STAND_INS: dict[str, type] = {
    qualified: _enum_stand_in(qualified, members)
    for qualified, members in {
        "megatron.core.transformer.enums.AttnBackend": {
            1: "flash",
            2: "fused",
            3: "unfused",
            4: "local",
            5: "auto",
        },
        "megatron.core.enums.ModelType": {
            1: "encoder_or_decoder",
            2: "encoder_and_decoder",
            3: "retro_encoder",
            4: "retro_decoder",
        },
        "megatron.core.enums.Fp8Recipe": {
            v: v for v in ("delayed", "tensorwise", "mxfp8", "blockwise")
        },
        "megatron.core.transformer.enums.CudaGraphScope": None,
        "megatron.core.rerun_state_machine.RerunMode": None,
        "megatron.core.rerun_state_machine.RerunState": None,
        "megatron.core.rerun_state_machine.RerunDiagnostic": None,
    }.items()
}
OBJECT_STAND_INS: dict[str, type] = {
    qualified: _object_stand_in(qualified)
    for qualified in (
        "megatron.core.optimizer.optimizer_config.OptimizerConfig",
        "megatron.core.optimizer.OptimizerConfig",
    )
}


def safe_globals() -> list[Any]:
    """Everything weights_only loading must allow for the original's checkpoints."""
    allowed: list[Any] = [
        argparse.Namespace,
        types.SimpleNamespace,
        pathlib.PosixPath,
        io.BytesIO,
        signal.Signals,
        np.ndarray,
        np.dtype,
        type(np.dtype(np.uint32)),
    ]
    reconstruct = np._core.multiarray._reconstruct if hasattr(np, "_core") else None
    if reconstruct is None:  # numpy 1.x
        reconstruct = np.core.multiarray._reconstruct
    # Files written with numpy 1.x name it numpy.core..., with numpy 2.x numpy._core...
    allowed += [
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        (reconstruct, "numpy._core.multiarray._reconstruct"),
    ]
    for qualified, cls in {**ENUM_STAND_INS, **OBJECT_STAND_INS}.items():
        allowed.append((cls, qualified))
    return allowed


class MegatronUnpickler(pickle.Unpickler):
    """A full unpickler that maps every ``megatron.*`` class to a stand-in (trusted files only)."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "megatron" or module.startswith("megatron."):
            qualified = f"{module}.{name}"
            if qualified in ENUM_STAND_INS:
                return ENUM_STAND_INS[qualified]
            if qualified not in OBJECT_STAND_INS:
                OBJECT_STAND_INS[qualified] = _object_stand_in(qualified)
            return OBJECT_STAND_INS[qualified]
        return super().find_class(module, name)


class megatron_pickle_module:  # noqa: N801 - used like the pickle module by torch.load
    """A ``pickle_module`` for torch.load whose Unpickler is ``MegatronUnpickler``."""

    Unpickler = MegatronUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return MegatronUnpickler(file, **kwargs).load()


def is_stand_in(value: Any) -> bool:
    """Whether ``value`` is one of the stand-ins created here."""
    return isinstance(value, MegatronEnumValue | MegatronObject)


__all__ = [
    "ENUM_STAND_INS",
    "MegatronEnumValue",
    "MegatronObject",
    "MegatronUnpickler",
    "is_stand_in",
    "megatron_pickle_module",
    "safe_globals",
]
