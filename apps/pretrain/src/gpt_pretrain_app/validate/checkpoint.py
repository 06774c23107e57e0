"""Checkpoint saving and loading options."""

from __future__ import annotations

from .context import Resolution, require


def check_checkpointing(r: Resolution) -> None:
    a = r.args
    a.use_dist_ckpt = a.ckpt_format != "torch"
    if a.save is not None:
        require(
            a.save_interval is not None and a.save_interval > 0,
            "--save needs --save-interval (a positive number of iterations)",
        )
    if a.save_retain_interval is not None:
        require(
            a.save_interval is not None and a.save_retain_interval % a.save_interval == 0,
            f"--save-retain-interval ({a.save_retain_interval}) must be a multiple of --save-interval "
            f"({a.save_interval})",
        )
    if a.load_main_params_from_ckpt:
        require(a.no_load_optim, "--load-main-params-from-ckpt needs --no-load-optim")
    if a.non_persistent_save_interval is not None:
        require(
            a.non_persistent_ckpt_type is not None,
            "--non-persistent-save-interval needs --non-persistent-ckpt-type",
        )
    if a.non_persistent_ckpt_type == "global":
        require(
            a.non_persistent_global_ckpt_dir is not None or a.save is not None,
            "--non-persistent-ckpt-type global needs --non-persistent-global-ckpt-dir or --save",
        )
    # The original allows torch_dcp only with FSDP2 ("only tested with FSDP"); ours keeps each
    # parameter's global block whatever the layout, and is tested on one rank and under FSDP2.
    if a.ckpt_format == "fsdp_dtensor":
        require(a.use_megatron_fsdp, "--ckpt-format fsdp_dtensor needs --use-megatron-fsdp")
    if a.use_checkpoint_args:
        require(
            a.load is not None or a.pretrained_checkpoint is not None,
            "--use-checkpoint-args needs --load or --pretrained-checkpoint",
        )
    if a.async_save:
        require(a.save is not None, "--async-save needs --save")
        require(
            a.ckpt_format != "torch", "--async-save needs a distributed --ckpt-format (not torch)"
        )
