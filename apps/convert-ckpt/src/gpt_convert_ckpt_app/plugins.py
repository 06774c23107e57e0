"""The loaders and savers ``--loader`` / ``--saver`` choose from, as the original's plugins.

A plugin is a module with ``add_arguments(group)`` and ``load(args) -> (metadata, parts)`` (a
loader) or ``check(args, metadata)`` and ``save(args, metadata, parts, out_dir)`` (a saver).
The sharded formats (``torch_dist``, ``torch_dcp``, ``zarr``) use gpt-ckpt's global-tensor
reader and writer; another format is one more loader yielding full tensors in our names part
by part, or one more saver writing them.
"""

from __future__ import annotations

from types import ModuleType

from . import loader_core, loader_dist, loader_hf, saver_core, saver_dist, saver_hf
from .errors import ArgsError

SHARDED_FORMATS = ("torch_dist", "torch_dcp", "zarr")
"""The sharded formats, read and written whole-tensor by gpt-ckpt (``loader_dist`` /
``saver_dist``); the plugin reads ``args.loader`` / ``args.saver`` for the format."""

LOADERS: dict[str, ModuleType] = {
    "core": loader_core,
    "hf": loader_hf,
    **dict.fromkeys(SHARDED_FORMATS, loader_dist),
}
SAVERS: dict[str, ModuleType] = {
    "core": saver_core,
    "hf": saver_hf,
    **dict.fromkeys(SHARDED_FORMATS, saver_dist),
}
ALIASES = {"mcore": "core", "megatron": "core", "llama_mistral": "hf"}
"""The original's other names for the same plugins (its ``megatron``/``mcore`` map to
``legacy``/``core``; both read and write the same torch files here)."""


def _find(kind: str, name: str, table: dict[str, ModuleType]) -> ModuleType:
    plugin = table.get(ALIASES.get(name, name))
    if plugin is None:
        raise ArgsError(f"--{kind} {name!r} is not one of {', '.join(sorted(table))}")
    return plugin


def loader(name: str) -> ModuleType:
    return _find("loader", name, LOADERS)


def saver(name: str) -> ModuleType:
    return _find("saver", name, SAVERS)
