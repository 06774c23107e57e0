"""Flags owned by gpt-ckpt: saving, loading and checkpoint formats.

Each field is one flag of the original `pretrain_gpt.py` (same name, aliases, nargs, choices
and default); the field name is the argparse dest. Generated once from tools/flags/original_flags.tsv,
now maintained here; tests/pretrain/test_flags.py checks it against the original's flag table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gpt_flags.flagspec import (
    EFFECTIVE,
    NOT_IMPLEMENTED,
    flag,
)


@dataclass(frozen=True, kw_only=True)
class CheckpointingConfig:
    """The original's "checkpointing" flags owned here."""

    GROUP: ClassVar[str] = "checkpointing"

    save: str | None = flag(
        None,
        "--save",
        help="Output directory to save checkpoints to.",
        status=EFFECTIVE,
    )
    save_interval: int | None = flag(
        None,
        "--save-interval",
        "--persistent-save-interval",
        type=int,
        help="Number of iterations between persistent checkpoint saves.",
        status=EFFECTIVE,
    )
    save_retain_interval: int | None = flag(
        None,
        "--save-retain-interval",
        type=int,
        help="Number of iterations between retained checkpoints (othercheckpoints _except the last checkpoint_ are automatically deleted).",
        status=EFFECTIVE,
    )
    no_save_optim: bool | None = flag(
        None,
        "--no-save-optim",
        action="store_true",
        help="Do not save current optimizer.",
        status=EFFECTIVE,
    )
    no_save_rng: bool | None = flag(
        None,
        "--no-save-rng",
        action="store_true",
        help="Do not save current rng state.",
        status=EFFECTIVE,
    )
    load: str | None = flag(
        None, "--load", help="Directory containing a model checkpoint.", status=EFFECTIVE
    )
    no_load_optim: bool | None = flag(
        None,
        "--no-load-optim",
        action="store_true",
        help="Do not load optimizer when loading checkpoint.",
        status=EFFECTIVE,
    )
    load_main_params_from_ckpt: bool | None = flag(
        None,
        "--load-main-params-from-ckpt",
        action="store_true",
        help="Load main parameters from checkpoint directly.",
        status=NOT_IMPLEMENTED,
    )
    no_load_rng: bool | None = flag(
        None,
        "--no-load-rng",
        action="store_true",
        help="Do not load rng state when loading checkpoint.",
        status=EFFECTIVE,
    )
    strict_fsdp_dtensor_load: bool = flag(
        True,
        "--no-strict-fsdp-dtensor-load",
        action="store_false",
        help="Do not strict loading for fsdp_dtensor checkpoint format.",
        status=NOT_IMPLEMENTED,
    )
    non_persistent_save_interval: int | None = flag(
        None,
        "--non-persistent-save-interval",
        type=int,
        help="Number of iterations between non-persistent saves.",
        status=EFFECTIVE,
        reason="tests/pretrain/test_sharded_checkpoints.py",
    )
    non_persistent_ckpt_type: str | None = flag(
        None,
        "--non-persistent-ckpt-type",
        choices=("global", "local", "in_memory", None),
        help='Type of non-persistent model checkpoints. "global" - Saved as a standard checkpoint (e.g., on Lustre) with old checkpoints being removed. "local" - Each rank saves a portion of the checkpoint locally (e.g., on SSD/ramdisk). None - No non-persistent checkpointing (default option).',
        status=EFFECTIVE,
        reason="tests/pretrain/test_sharded_checkpoints.py",
    )
    non_persistent_global_ckpt_dir: str | None = flag(
        None,
        "--non-persistent-global-ckpt-dir",
        help="Directory containing global non-persistent model checkpoints.",
        status=EFFECTIVE,
        reason="tests/pretrain/test_sharded_checkpoints.py",
    )
    non_persistent_local_ckpt_dir: str | None = flag(
        None,
        "--non-persistent-local-ckpt-dir",
        help="Directory containing local non-persistent model checkpoints.",
        status=NOT_IMPLEMENTED,
    )
    non_persistent_local_ckpt_algo: str = flag(
        "fully_parallel",
        "--non-persistent-local-ckpt-algo",
        choices=("fully_parallel", "atomic"),
        help="Algorithm for local non-persistent checkpointing.",
        status=NOT_IMPLEMENTED,
    )
    finetune: bool = flag(
        False,
        "--finetune",
        action="store_true",
        help="Load model for finetuning. Do not load optimizer or rng state from checkpoint and set iteration to 0. Assumed when loading a release checkpoint.",
        status=EFFECTIVE,
    )
    pretrained_checkpoint: str | None = flag(
        None,
        "--pretrained-checkpoint",
        help="Directory containing a pretrained model checkpoint for finetuning.",
        status=EFFECTIVE,
    )
    ckpt_step: int | None = flag(
        None,
        "--ckpt-step",
        type=int,
        help="Checkpoint step to load model from.",
        status=EFFECTIVE,
    )
    perform_initialization: bool = flag(
        True,
        "--no-initialization",
        action="store_false",
        help="Do not perform initialization when building model, can reduce startup time when definitely loading from a checkpoint",
        status=EFFECTIVE,
    )
    use_checkpoint_args: bool = flag(
        False,
        "--use-checkpoint-args",
        action="store_true",
        help="Override model-related command-line arguments with arguments from checkpoint",
        status=EFFECTIVE,
    )
    use_mp_args_from_checkpoint_args: bool = flag(
        False,
        "--use-mp-args-from-checkpoint-args",
        action="store_true",
        help="Copy model parallelism command-line arguments from checkpoint",
        status=EFFECTIVE,
    )
    use_tokenizer_model_from_checkpoint_args: bool = flag(
        True,
        "--no-use-tokenizer-model-from-checkpoint-args",
        action="store_false",
        help="If set, do not use tokenizer model path from checkpoint",
        status=EFFECTIVE,
    )
    exit_on_missing_checkpoint: bool = flag(
        False,
        "--exit-on-missing-checkpoint",
        action="store_true",
        help="If '--load' is set, but checkpoint is not found (e.g., path typo), then exit instead of random initialization.",
        status=EFFECTIVE,
    )
    use_dist_ckpt_deprecated: bool = flag(
        False,
        "--use-dist-ckpt",
        action="store_true",
        help="Deprecated: see --ckpt-format.",
        status=EFFECTIVE,
        deprecated="--ckpt-format",
    )
    use_persistent_ckpt_worker: bool = flag(
        False,
        "--use-persistent-ckpt-worker",
        action="store_true",
        help="Enables a persitent checkpoint worker for async save",
        status=EFFECTIVE,
        reason="tests/pretrain/test_sharded_checkpoints.py",
    )
    auto_detect_ckpt_format: bool = flag(
        False,
        "--auto-detect-ckpt-format",
        action="store_true",
        help='Determine if the checkpoint format is in legacy or distributed format. If False, expects distributed checkpoint iff args.ckpt_format != "torch". Might slow down loading a bit (double rank0 ckpt load).',
        status=EFFECTIVE,
    )
    dist_ckpt_format_deprecated: str | None = flag(
        None,
        "--dist-ckpt-format",
        help="Deprecated: see --ckpt-format.",
        status=EFFECTIVE,
        deprecated="--ckpt-format",
    )
    ckpt_format: str = flag(
        "torch_dist",
        "--ckpt-format",
        choices=("torch", "torch_dist", "zarr", "torch_dcp", "fsdp_dtensor"),
        help="Checkpoint format to use. torch is the format used by torch.save/load. torch_dist is a megatron built-in distributed checkpointing format. torch_dcp is the torch.distributed.checkpoint format. fsdp_dtensor is a torch DCP native, Megatron FSDP training-specific checkpoint format.",
        status=EFFECTIVE,
    )
    ckpt_convert_format: str | None = flag(
        None,
        "--ckpt-convert-format",
        choices=("torch", "torch_dist", "zarr"),
        help="Checkpoint format for conversion.",
        status=NOT_IMPLEMENTED,
    )
    ckpt_convert_save: str | None = flag(
        None,
        "--ckpt-convert-save",
        help="Save directory for converted checkpoint.",
        status=NOT_IMPLEMENTED,
    )
    ckpt_convert_update_legacy_dist_opt_format: bool = flag(
        False,
        "--ckpt-convert-update-legacy-dist-opt-format",
        action="store_true",
        help="When loading a checkpoint, update the legacy format for the distributed optimizer, which previously used a merged param/grad buffer and a different bucket mapping. The legacy format was deprecated on Feb 13, 2024.",
        status=NOT_IMPLEMENTED,
    )
    ckpt_fully_parallel_save_deprecated: bool = flag(
        False,
        "--ckpt-fully-parallel-save",
        action="store_true",
        help="Deprecated: see --no-ckpt-fully-parallel-save.",
        status=EFFECTIVE,
        reason="deprecated: maps to nothing (ignored)",
        deprecated="-",
    )
    ckpt_fully_parallel_save: bool = flag(
        True,
        "--no-ckpt-fully-parallel-save",
        action="store_false",
        help="Disable applying full save parallelization across DP for distributed checkpoints. Depending on ckpt format might decrease the number of files in the checkpoint. Makes DistributedOptimizer checkpoint non-reshardable.",
        status=EFFECTIVE,
        reason="tests/pretrain/test_sharded_checkpoints.py",
    )
    async_save: bool | None = flag(
        None,
        "--async-save",
        action="store_true",
        help="Apply async checkpointing save. Currently works only with`torch_dist` distributed checkpoint format.",
        status=EFFECTIVE,
        reason="tests/pretrain/test_sharded_checkpoints.py",
    )
    ckpt_fully_parallel_load: bool = flag(
        False,
        "--ckpt-fully-parallel-load",
        action="store_true",
        help="Apply full load parallelization across DP for distributed checkpoints.",
        status=NOT_IMPLEMENTED,
    )
    ckpt_assume_constant_structure: bool = flag(
        False,
        "--ckpt-assume-constant-structure",
        action="store_true",
        help="If the model and optimizer state dict structure isconstant throughout a *single training job*, it allows fordifferent checkpointing performance optimizations.",
        status=NOT_IMPLEMENTED,
    )
    dist_ckpt_strictness: str = flag(
        "assume_ok_unexpected",
        "--dist-ckpt-strictness",
        choices=(
            "assume_ok_unexpected",
            "log_unexpected",
            "log_all",
            "raise_unexpected",
            "raise_all",
            "return_unexpected",
            "return_all",
            "ignore_all",
        ),
        help="Determine handling of key mismatch during checkpoint load. Check StrictHandling docs for flags meaning. NOTE: This flag controls only distributed checkpoint load from storage, not loading state dict into the model.",
        status=EFFECTIVE,
        reason="tests/pretrain/test_sharded_checkpoints.py",
    )
    load_model_opt_format: bool = flag(
        False,
        "--load-model-opt-format",
        action="store_true",
        help="Load a checkpoint for TensorRT model optimizer (nvidia-modelopt).This function can also be used to load NeMo .nemo sharded checkpoints.",
        status=NOT_IMPLEMENTED,
    )
