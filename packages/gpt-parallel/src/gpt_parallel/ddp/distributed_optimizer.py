"""The distributed optimizer: each data-parallel rank updates only its shard of each bucket.

The original's ``DistributedOptimizer`` (ZeRO-1). Why: the fp32 main params and the Adam moments
are 1/dp per rank instead of replicated. The sequence of ``step()``:

1. ``DistributedDataParallel.finish_grad_sync`` has reduce-scattered each bucket, so this rank's
   shard of ``main_grad`` holds the DP-averaged gradient;
2. each owned piece's gradient becomes the ``.grad`` of its fp32 main param (a view of the model
   param for fp32 models, an fp32 copy for bf16/fp16), unscaled and checked for inf/NaN when a
   loss scaler is given (an overflow skips the step: ``(False, None, None)``);
3. the grad norm is summed over the pieces of every rank (``grad_stats_group``, at least the DP
   group: with TP/PP it is the whole world, as the original) and the pieces are clipped;
4. the inner torch optimizer steps on the pieces (flat fp32 1-D tensors, in the caller's param
   groups, so weight decay and LR multipliers stay per group);
5. the updated pieces are written into the model's param buffer and all-gathered: now
   (``start_param_sync``); with ``overlap_param_gather``, per bucket in the next forward; with
   ``overlap_param_gather_with_optimizer_step`` too, launched here for every bucket (async)
   and waited for by the next forward's pre-hooks.

Options: with several distributed-optimizer instances the pieces are this rank's share of its
instance (``ddp.shard_group``) and ``grad_stats_group`` must be the instance's ranks
(``ParallelState.group("intra-dist-opt")``), since the other instances hold the same pieces;
with ``cpu_offload`` (``ddp.cpu_offload.CpuOffloadConfig``) a fraction of the pieces keep their
main params and state on the CPU.

State layout (``state_dict``), per rank, so a checkpoint can store one file per DP rank:
``{"optimizer": <the inner optimizer's state_dict over the pieces, in group order>,
"main_params": [<each piece's fp32 main param>, same order], "grad_scaler": ... or None,
"shard_layout": {"dp_rank", "dp_size", "pieces": [(buffer, buffer_start, param_start,
param_end, param_shape), ...]}}`` (with several instances also ``"instances"``, and
``dp_rank``/``dp_size`` count within the instance).
Concatenating the dp ranks' pieces of a parameter in rank order gives the whole parameter's
state, which is how a later resharding load can rebuild any other layout.
"""

from __future__ import annotations

from typing import Any

import torch

from gpt_parallel.collectives import ProcessGroup, all_reduce_, group_rank, group_size
from gpt_parallel.ddp.cpu_offload import CpuOffloadConfig, HostCopies, select_offloaded
from gpt_parallel.ddp.data_parallel import DistributedDataParallel
from gpt_parallel.ddp.shards import ShardPiece, shard_pieces
from gpt_parallel.optim.clip_grads import (
    ParamPredicate,
    clip_grads_by_total_norm,
    count_zeros,
    counts_for_grad_norm,
    counts_for_params_norm,
    l2_norm,
)
from gpt_parallel.optim.grad_scaler import GradScaler


class DistributedOptimizer:
    """Wrap an inner torch optimizer built over ``ddp``'s model params (see the module doc).

    The inner optimizer's groups are rewritten in place to hold this rank's pieces, so build it
    as for the plain optimizer (same groups and hyper-parameters) and hand it over before any
    step. Call ``ddp.broadcast_params()`` before this, so the main params start replicated.
    ``gather_params_after_step`` (default: the DDP's ``overlap_param_gather_with_optimizer_step``)
    launches the param all-gathers at the end of ``step``; with several model chunks the
    original does that for the first chunk's optimizer only.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        ddp: DistributedDataParallel,
        *,
        clip_grad: float = 1.0,
        log_num_zeros_in_grad: bool = False,
        grad_stats_group: ProcessGroup | None = None,
        tp_rank: int = 0,
        counts_for_norm: ParamPredicate | None = None,
        grad_scaler: GradScaler | None = None,
        cpu_offload: CpuOffloadConfig | None = None,
        gather_params_after_step: bool | None = None,
    ) -> None:
        if not ddp.config.use_distributed_optimizer:
            raise ValueError(
                "DistributedOptimizer needs a DDP built with use_distributed_optimizer"
            )
        if optimizer.state:
            raise ValueError("DistributedOptimizer must wrap an optimizer that has not stepped yet")
        self.optimizer = optimizer
        self.ddp = ddp
        self.clip_grad = clip_grad
        self.log_num_zeros_in_grad = log_num_zeros_in_grad
        # Default: the ranks sharing one copy of the state (the DP group, or one instance's part).
        self.grad_stats_group = (
            grad_stats_group if grad_stats_group is not None else ddp.shard_group
        )
        self.tp_rank = tp_rank
        self.counts_for_norm = counts_for_norm or counts_for_grad_norm(tp_rank)
        self.grad_scaler = grad_scaler
        if gather_params_after_step is None:
            gather_params_after_step = ddp.config.overlap_param_gather_with_optimizer_step
        if gather_params_after_step and not ddp.config.overlap_param_gather:
            raise ValueError(
                "--overlap-param-gather-with-optimizer-step requires --overlap-param-gather"
            )
        self.gather_params_after_step = gather_params_after_step
        ddp.param_gather_dispatched_by_optimizer = gather_params_after_step
        owned = shard_pieces(ddp)
        self.model_params: list[torch.nn.Parameter] = []
        per_group = [self._pieces_of_group(g["params"], owned) for g in optimizer.param_groups]
        self.host = HostCopies(cpu_offload) if cpu_offload is not None else None
        to_host = _offload_choice(per_group, cpu_offload)
        self.pieces: list[ShardPiece] = []
        self.main_params: list[torch.Tensor] = []
        self.offloaded: list[bool] = []
        for group, pieces in zip(optimizer.param_groups, per_group, strict=True):
            group["params"] = [self._add_main(piece, piece in to_host) for piece in pieces]
        # The reduced gradients of the offloaded pieces while they are still on the device.
        self._device_grads: list[torch.Tensor | None] = [None] * len(self.pieces)
        self._found_inf = torch.zeros(
            1, dtype=torch.float, device=ddp.grad_buffers[0].grad_data.device
        )

    def _pieces_of_group(
        self, params: list[torch.nn.Parameter], owned: dict[torch.nn.Parameter, ShardPiece]
    ) -> list[ShardPiece]:
        pieces = []
        for param in params:
            if param not in self.ddp.param_to_sync:
                raise ValueError("the optimizer holds a parameter that the DDP wrapper does not")
            self.model_params.append(param)
            if param in owned:
                pieces.append(owned[param])
        return pieces

    def _add_main(self, piece: ShardPiece, offloaded: bool) -> torch.Tensor:
        """The fp32 main param of a piece: a view of an fp32 model param, else a copy (on the
        CPU when offloaded)."""
        view = piece.of(piece.param.detach())
        if offloaded:
            assert self.host is not None
            main = self.host.main_param(view)
        else:
            main = view if piece.param.dtype == torch.float32 else view.clone().float()
        self.pieces.append(piece)
        self.main_params.append(main)
        self.offloaded.append(offloaded)
        return main

    def _is_copy(self, index: int) -> bool:
        """Whether main param ``index`` is a separate tensor (not a view of the model's)."""
        return self.offloaded[index] or self.pieces[index].param.dtype != torch.float32

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    def get_loss_scale(self) -> torch.Tensor:
        if self.grad_scaler is None:
            return torch.ones(1, dtype=torch.float, device=self._found_inf.device)
        return self.grad_scaler.scale

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to call backward on: multiplied by the current loss scale."""
        return self.get_loss_scale() * loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the pieces' and the model's ``.grad`` (``main_grad`` is zeroed by the DDP)."""
        for tensor in [*self.main_params, *self.model_params]:
            tensor.grad = None
        self._device_grads = [None] * len(self.pieces)

    def _piece_grads(self) -> list[torch.Tensor | None]:
        """Each piece's gradient on the device (an offloaded piece's before its copy to the
        CPU, which is what unscaling, the norm and clipping act on, as in the original)."""
        return [
            device if offloaded else main.grad
            for main, offloaded, device in zip(
                self.main_params, self.offloaded, self._device_grads, strict=True
            )
        ]

    def _grads(self) -> list[torch.Tensor]:
        return [grad for grad in self._piece_grads() if grad is not None]

    def _grads_for_norm(self) -> list[torch.Tensor]:
        return [
            grad
            for grad, piece in zip(self._piece_grads(), self.pieces, strict=True)
            if grad is not None and self.counts_for_norm(piece.param)
        ]

    @torch.no_grad()
    def prepare_grads(self) -> bool:
        """Point each piece's ``.grad`` at its reduced gradient; return whether one is inf/NaN."""
        for index, (main, piece) in enumerate(zip(self.main_params, self.pieces, strict=True)):
            grad = piece.of(piece.param.main_grad).float()
            if self.offloaded[index]:
                self._device_grads[index] = grad
            else:
                main.grad = grad
        if self.grad_scaler is None:
            return False
        self._found_inf.fill_(0.0)
        grads = self._grads()
        if grads:
            torch._amp_foreach_non_finite_check_and_unscale_(
                grads, self._found_inf, self.grad_scaler.inv_scale.to(self._found_inf.device)
            )
        all_reduce_(self._found_inf, self.grad_stats_group, "max")
        found_inf = self._found_inf.item() > 0
        self.grad_scaler.update(found_inf)
        return found_inf

    def get_grad_norm(self) -> float:
        """L2 norm of the whole (unsharded) gradient: the pieces' squares summed over ranks."""
        return l2_norm(self._grads_for_norm(), self.grad_stats_group)

    def clip_grad_norm(self, clip_grad: float) -> float:
        grad_norm = self.get_grad_norm()
        clip_grads_by_total_norm(self._grads(), clip_grad, grad_norm)
        return grad_norm

    def count_zeros(self) -> int:
        return count_zeros(self._grads_for_norm(), self.grad_stats_group)

    def params_norm(self) -> float:
        """L2 norm of the whole model's parameters (``--log-params-norm``): the fp32 pieces'
        squares summed over ``grad_stats_group``, tensor-parallel duplicates counted once."""
        counts = counts_for_params_norm(self.tp_rank)
        data = [
            main
            for main, piece in zip(self.main_params, self.pieces, strict=True)
            if counts(piece.param)
        ]
        return l2_norm(data, self.grad_stats_group)

    @torch.no_grad()
    def step(self) -> tuple[bool, float | None, int | None]:
        """One update: ``(update_successful, grad_norm, num_zeros_in_grad)``; see the module doc."""
        if self.prepare_grads():
            return False, None, None
        grad_norm = self.clip_grad_norm(self.clip_grad) if self.clip_grad > 0.0 else 0.0
        num_zeros = self.count_zeros() if self.log_num_zeros_in_grad else 0
        self._load_offloaded_grads()
        self.optimizer.step()
        self._copy_main_params_to_model_params()
        if self.gather_params_after_step:
            self.ddp.start_param_sync(force_dispatch=True)
        elif not self.ddp.config.overlap_param_gather:
            self.ddp.start_param_sync()
        return True, grad_norm, num_zeros

    def _load_offloaded_grads(self) -> None:
        """Copy the offloaded pieces' (unscaled, clipped) gradients to their CPU main params."""
        if self.host is None:
            return
        indices = [i for i, grad in enumerate(self._device_grads) if grad is not None]
        self.host.load_grads(
            [self.main_params[i] for i in indices], [self._device_grads[i] for i in indices]
        )

    def _copy_main_params_to_model_params(self) -> None:
        host_mains, host_targets = [], []
        for index, (main, piece) in enumerate(zip(self.main_params, self.pieces, strict=True)):
            if self.offloaded[index]:
                host_mains.append(main)
                host_targets.append(piece.of(piece.param.detach()))
            elif self._is_copy(index):
                piece.of(piece.param.detach()).copy_(main)
        if self.host is not None and host_mains:
            self.host.store_params(host_mains, host_targets)

    @torch.no_grad()
    def reload_model_params(self) -> None:
        """Refresh the main params from the model (after loading weights without optimizer)."""
        for index, (main, piece) in enumerate(zip(self.main_params, self.pieces, strict=True)):
            if self._is_copy(index):
                main.copy_(piece.of(piece.param.detach()))

    def shard_layout(self) -> dict[str, Any]:
        """Where this rank's pieces come from; equal layouts are required to load a state."""
        layout: dict[str, Any] = {
            "dp_rank": group_rank(self.ddp.shard_group),
            "dp_size": group_size(self.ddp.shard_group),
            "pieces": [
                (p.buffer, p.buffer_start, p.param_start, p.param_end, tuple(p.param.shape))
                for p in self.pieces
            ],
        }
        instances = self.ddp.config.num_distributed_optimizer_instances
        if instances > 1:  # absent with one instance, so earlier checkpoints still load
            layout["instances"] = instances
        return layout

    def state_numel(self) -> int:
        """Elements of optimizer state held on this rank (moments, plus fp32 copies if any)."""
        moments = sum(
            value.numel()
            for state in self.optimizer.state.values()
            for key, value in state.items()
            if torch.is_tensor(value) and key != "step"
        )
        copies = sum(m.numel() for i, m in enumerate(self.main_params) if self._is_copy(i))
        return moments + copies

    def offloaded_numel(self) -> int:
        """Elements of the pieces whose main params and state live on the CPU."""
        return sum(
            m.numel() for m, off in zip(self.main_params, self.offloaded, strict=True) if off
        )

    def state_dict(self) -> dict[str, Any]:
        """This rank's sharded state (layout in the module doc)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "main_params": [main.detach().clone() for main in self.main_params],
            "grad_scaler": None if self.grad_scaler is None else self.grad_scaler.state_dict(),
            "shard_layout": self.shard_layout(),
        }

    @torch.no_grad()
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state saved by a rank with the same layout, then re-gather the params."""
        if state_dict["shard_layout"] != self.shard_layout():
            raise ValueError(
                "distributed optimizer checkpoint was saved with a different DP size or bucket"
                " layout (--ddp-bucket-size, --data-parallel-size); resharding is not supported"
            )
        self.optimizer.load_state_dict(state_dict["optimizer"])
        for main, saved in zip(self.main_params, state_dict["main_params"], strict=True):
            main.copy_(saved)
        if self.grad_scaler is not None and state_dict["grad_scaler"] is not None:
            self.grad_scaler.load_state_dict(state_dict["grad_scaler"])
        self._copy_main_params_to_model_params()
        self.ddp.start_param_sync(force_sync=True)


def _offload_choice(
    per_group: list[list[ShardPiece]], cpu_offload: CpuOffloadConfig | None
) -> set[ShardPiece]:
    """The pieces to keep on the CPU, in the original's order (see ``cpu_offload``)."""
    if cpu_offload is None:
        return set()
    ordered = [
        piece
        for pieces in per_group
        for piece in sorted(
            pieces, key=lambda p: (p.param.dtype != torch.float32, p.buffer, p.buffer_start)
        )
    ]
    chosen = select_offloaded([p.numel for p in ordered], cpu_offload.fraction)
    return {piece for piece, take in zip(ordered, chosen, strict=True) if take}
