"""TensorBoard and wandb (offline) writers with the original's tags."""

from __future__ import annotations

import os
from typing import Any

from .errors import ArgsError
from .run_config import RunConfig


class MetricWriter:
    """Writes each scalar under the original's tag, and its `... vs samples` twin where it has one."""

    def __init__(self, tensorboard: Any | None, wandb_run: Any | None) -> None:
        self.tensorboard = tensorboard
        self.wandb = wandb_run

    @property
    def active(self) -> bool:
        return self.tensorboard is not None or self.wandb is not None

    def scalar(self, tag: str, value: float, iteration: int, samples: int | None = None) -> None:
        if self.tensorboard is not None:
            self.tensorboard.add_scalar(tag, value, iteration)
            if samples is not None:
                self.tensorboard.add_scalar(f"{tag} vs samples", value, samples)
        if self.wandb is not None:
            self.wandb.log({tag: value}, step=iteration)

    def text(self, tag: str, text: str) -> None:
        if self.tensorboard is not None:
            self.tensorboard.add_text(tag, text, global_step=0)

    def flush(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb is not None:
            self.wandb.finish()


def open_writers(run: RunConfig, is_last_rank: bool) -> MetricWriter:
    """The original writes TensorBoard and wandb from the last rank only."""
    tensorboard = None
    wandb_run = None
    if is_last_rank and run.loop.tensorboard_dir:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ArgsError(
                "--tensorboard-dir needs the tensorboard package (pip install tensorboard)"
            ) from exc
        tensorboard = SummaryWriter(
            log_dir=run.loop.tensorboard_dir, max_queue=run.logging.tensorboard_queue_size
        )
    if is_last_rank and run.logging.wandb_project:
        try:
            import wandb
        except ImportError as exc:
            raise ArgsError("--wandb-project needs the wandb package (pip install wandb)") from exc
        save_dir = run.logging.wandb_save_dir or os.path.join(run.checkpoint.save or ".", "wandb")
        os.makedirs(save_dir, exist_ok=True)
        # Offline unless the user configured a mode: nothing leaves the machine by default.
        mode = os.environ.get("WANDB_MODE", "offline")
        wandb_run = wandb.init(
            project=run.logging.wandb_project,
            name=run.logging.wandb_exp_name or None,
            dir=save_dir,
            mode=mode,
            config={
                k: v
                for k, v in vars(run.to_original_args()).items()
                if isinstance(v, int | float | str | bool)
            },
        )
    return MetricWriter(tensorboard, wandb_run)
