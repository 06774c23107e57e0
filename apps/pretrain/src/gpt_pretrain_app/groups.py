"""Which package owns which flags, and the order of the original's argument groups."""

from __future__ import annotations

import importlib

#: The original's argument groups, in the order `pretrain_gpt.py --help` prints them.
ORIGINAL_GROUP_ORDER = (
    "network size",
    "regularization",
    "training",
    "initialization",
    "learning rate",
    "checkpointing",
    "mixed precision",
    "distributed",
    "validation",
    "data and dataloader",
    "tokenizer",
    "autoresume",
    "biencoder",
    "vision",
    "moe",
    "mla",
    "heterogeneous architecture",
    "logging",
    "straggler",
    "workload inspector",
    "inference",
    "Transformer-Engine",
    "retro",
    "experimental",
    "one logger",
    "In-process restart",
    "ft_package",
    "config logger",
    "rerun engine",
    "msc",
    "kitchen",
    "sft",
)

#: Modules whose `FLAG_CONFIGS` declare flags: the packages' own `args` modules, then the app's.
FLAG_OWNERS = (
    "gpt_tokenizers.args",
    "gpt_parallel.args",
    "gpt_fp8.args",
    "gpt_data.args",
    "gpt_ckpt.args",
    "gpt_moe.args",
    "gpt_ssm.args",
    "gpt_models.args",
    "gpt_inference.args",
    "gpt_pretrain_app.args",
)


def flag_configs() -> list[type]:
    """Every flag-declaring config class of every owner, in owner order."""
    classes: list[type] = []
    for name in FLAG_OWNERS:
        classes.extend(importlib.import_module(name).FLAG_CONFIGS)
    return classes
