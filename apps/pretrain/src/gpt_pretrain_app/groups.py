"""Which package owns which flags, and the order of the original's argument groups."""

from __future__ import annotations

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


def flag_configs() -> list[type]:
    """Every flag-declaring config class of every owner: the packages in dependency order, then
    the app's own (imported here by name, so each owner is a declared dependency), each owner's
    classes in the original's group order."""
    from gpt_ckpt import args as ckpt_args
    from gpt_data import args as data_args
    from gpt_fp8 import args as fp8_args
    from gpt_inference import args as inference_args
    from gpt_models import args as models_args
    from gpt_moe import args as moe_args
    from gpt_parallel import args as parallel_args
    from gpt_ssm import args as ssm_args
    from gpt_tokenizers import args as tokenizers_args

    from . import args as app_args

    owners = (
        tokenizers_args,
        parallel_args,
        fp8_args,
        data_args,
        ckpt_args,
        moe_args,
        ssm_args,
        models_args,
        inference_args,
        app_args,
    )
    # Each owner's classes in the original's group order (a package may declare its classes in
    # several modules); owners keep the dependency order.
    rank = {title: i for i, title in enumerate(ORIGINAL_GROUP_ORDER)}
    return [
        cls
        for owner in owners
        for cls in sorted(owner.FLAG_CONFIGS, key=lambda c: rank.get(c.GROUP, len(rank)))
    ]
