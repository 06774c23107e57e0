"""Generation over pipeline stages: each forward step passes the hidden states from stage to
stage, and the last stage's logits are broadcast to every stage so that all ranks sample the
same tokens (the original's `broadcast_from_last_pipeline_stage`)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from gpt_parallel.parallel_state import ParallelState


class PipelineLink:
    """This rank's neighbours in the pipeline group (`ranks`: global ranks by stage)."""

    def __init__(
        self,
        group: dist.ProcessGroup | None,
        ranks: list[int],
        stage: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.group = group
        self.ranks = ranks
        self.stage = stage
        self.device = torch.device(device)

    @classmethod
    def from_state(
        cls, state: ParallelState, device: torch.device | str = "cpu"
    ) -> PipelineLink | None:
        """This rank's link in the pipeline group, or None with one stage."""
        if state.pp_size == 1:
            return None
        return cls(state.group("pp"), state.group_ranks("pp"), state.pp_rank, device)

    def receive(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        hidden = torch.empty(shape, dtype=dtype, device=self.device)
        dist.recv(hidden, src=self.ranks[self.stage - 1], group=self.group)
        return hidden

    def send(self, hidden: torch.Tensor) -> None:
        dist.send(hidden.contiguous(), dst=self.ranks[self.stage + 1], group=self.group)

    def share_logits(self, logits: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
        if logits is None:
            logits = torch.empty(shape, dtype=torch.float32, device=self.device)
        else:
            logits = logits.float().contiguous()
        dist.broadcast(logits, src=self.ranks[-1], group=self.group)
        return logits
