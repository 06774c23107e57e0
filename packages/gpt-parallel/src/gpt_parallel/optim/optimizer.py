"""The optimizer wrappers the training loop steps: fp32, and fp16/bf16 with fp32 main params.

``step()`` does what the original's does, in order: move gradients to where the inner optimizer
reads them (fp32 main grads for fp16/bf16 models), unscale them and look for inf/NaN when there
is a loss scaler (an fp16 overflow skips the step and returns ``(False, None, None)``), clip by
the global L2 norm, count zero gradients when asked, run the inner torch optimizer, and copy the
fp32 main params back into the bf16/fp16 model. It returns
``(update_successful, grad_norm, num_zeros_in_grad)``; the norm is the one before clipping.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from gpt_parallel.collectives import ProcessGroup, all_reduce_
from gpt_parallel.optim.clip_grads import (
    ParamPredicate,
    clip_grads_by_total_norm,
    count_zeros,
    counts_for_grad_norm,
    counts_for_params_norm,
    l2_norm,
)
from gpt_parallel.optim.grad_scaler import GradScaler
from gpt_parallel.optim.param_groups import PARAM_GROUP_KEYS

_TP_ATTRIBUTES = ("tensor_model_parallel", "partition_dim", "partition_stride", "shared")


def _zero_grads(params: list[torch.nn.Parameter], set_to_none: bool) -> None:
    for param in params:
        if param.grad is None:
            continue
        if set_to_none:
            param.grad = None
        else:
            if param.grad.grad_fn is not None:
                param.grad.detach_()
            else:
                param.grad.requires_grad_(False)
            param.grad.zero_()


def _restore_common_step(state_dict: dict[str, Any]) -> None:
    """Undo the sharded format's single ``common_step`` into per-parameter ``step`` entries."""
    if "common_step" in state_dict["state"]:
        step = state_dict["state"].pop("common_step")
        for param_state in state_dict["state"].values():
            param_state["step"] = copy.deepcopy(step)


def _reorder_loaded_groups(
    current: list[dict[str, Any]], loaded: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Match saved groups to ours by their identifying keys (the original's rule)."""
    by_key = {tuple(g[k] for k in PARAM_GROUP_KEYS): g for g in loaded if "wd_mult" in g}
    if not by_key:  # groups saved without identifying keys: trust the order
        return loaded
    out = []
    for group, saved in zip(current, loaded):
        key = tuple(group[k] for k in PARAM_GROUP_KEYS)
        if key not in by_key:
            raise ValueError(
                f"the checkpoint has no optimizer param group with key {key} "
                f"({', '.join(PARAM_GROUP_KEYS)}); it has {sorted(by_key)}"
            )
        matched = dict(by_key[key])
        matched["params"] = saved["params"]
        out.append(matched)
    return out


class MegatronOptimizer:
    """What both wrappers share: groups, statistics and the step sequence."""

    # Reported when clipping / zero counting is off: None for fp32, 0 for fp16/bf16 (original).
    _empty_norm: float | None = None
    _empty_zeros: int | None = None

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        clip_grad: float = 1.0,
        log_num_zeros_in_grad: bool = False,
        grad_stats_group: ProcessGroup | None = None,
        tp_rank: int = 0,
        counts_for_norm: ParamPredicate | None = None,
        expert_grad_stats_group: ProcessGroup | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.clip_grad = clip_grad
        self.log_num_zeros_in_grad = log_num_zeros_in_grad
        self.grad_stats_group = grad_stats_group
        # Expert parameters (``allreduce=False``) differ across expert-parallel ranks: their
        # statistics are summed over the expert model-parallel group instead (None: no experts).
        self.expert_grad_stats_group = expert_grad_stats_group
        self.tp_rank = tp_rank
        self.counts_for_norm = counts_for_norm or counts_for_grad_norm(tp_rank)

    # torch optimizers expose param_groups and state; so do we, for the scheduler and ckpts.
    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    @property
    def state(self) -> dict:
        return self.optimizer.state

    def get_parameters(self) -> list[torch.nn.Parameter]:
        """The parameters the inner optimizer updates (fp32 main params for fp16/bf16)."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def model_param_of(self, param: torch.nn.Parameter) -> torch.nn.Parameter:
        """The model parameter an optimizer parameter stands for (itself in fp32)."""
        return param

    def grads_for_norm(self, experts: bool | None = None) -> list[torch.Tensor]:
        """The gradients the statistics count; ``experts`` True/False keeps only the expert /
        the other parameters' ones (None: all)."""
        return [
            p.grad
            for p in self.get_parameters()
            if p.grad is not None
            and self.counts_for_norm(self.model_param_of(p))
            and (experts is None or _is_expert(self.model_param_of(p)) == experts)
        ]

    def _split_stats(self) -> bool:
        return self.expert_grad_stats_group is not None

    def get_grad_norm(self) -> float:
        """Global L2 norm of the gradients (over ``grad_stats_group``), without clipping."""
        if self._split_stats():
            dense = l2_norm(self.grads_for_norm(False), self.grad_stats_group)
            experts = l2_norm(self.grads_for_norm(True), self.expert_grad_stats_group)
            return (dense**2 + experts**2) ** 0.5
        return l2_norm(self.grads_for_norm(), self.grad_stats_group)

    def clip_grad_norm(self, clip_grad: float) -> float:
        """Global L2 grad norm; scale every gradient by ``clip/(norm+1e-6)`` when below 1."""
        grad_norm = self.get_grad_norm()
        grads = [p.grad for p in self.get_parameters() if p.grad is not None]
        clip_grads_by_total_norm(grads, clip_grad, grad_norm)
        return grad_norm

    def count_zeros(self) -> int:
        """Zero gradient entries (``--log-num-zeros-in-grad``), over ``grad_stats_group``."""
        if self._split_stats():
            return count_zeros(self.grads_for_norm(False), self.grad_stats_group) + count_zeros(
                self.grads_for_norm(True), self.expert_grad_stats_group
            )
        return count_zeros(self.grads_for_norm(), self.grad_stats_group)

    def params_norm(self) -> float:
        """L2 norm of the parameters (``--log-params-norm``), over ``grad_stats_group``."""
        counts = counts_for_params_norm(self.tp_rank)
        data = [p for p in self.get_parameters() if counts(self.model_param_of(p))]
        return l2_norm(data, self.grad_stats_group)

    def get_loss_scale(self) -> torch.Tensor:
        raise NotImplementedError

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to call backward on: multiplied by the current loss scale."""
        return self.get_loss_scale() * loss

    def prepare_grads(self) -> bool:
        """Put gradients where the inner optimizer reads them; return whether any is inf/NaN."""
        raise NotImplementedError

    def step_with_ready_grads(self) -> bool:
        raise NotImplementedError

    @torch.no_grad()
    def step(self) -> tuple[bool, float | None, int | None]:
        """One update; see the module docstring for the order and the return value."""
        if self.prepare_grads():
            return False, None, None
        grad_norm = self._empty_norm
        if self.clip_grad > 0.0:
            grad_norm = self.clip_grad_norm(self.clip_grad)
        num_zeros = self.count_zeros() if self.log_num_zeros_in_grad else self._empty_zeros
        return self.step_with_ready_grads(), grad_norm, num_zeros


class FP32Optimizer(MegatronOptimizer):
    """fp32 model: the inner optimizer updates the model parameters directly; no loss scale."""

    def __init__(self, optimizer: torch.optim.Optimizer, **kwargs: Any) -> None:
        super().__init__(optimizer, **kwargs)
        params = self.get_parameters()
        self._scale = torch.ones(1, dtype=torch.float, device=params[0].device if params else None)

    def get_loss_scale(self) -> torch.Tensor:
        return self._scale

    def zero_grad(self, set_to_none: bool = True) -> None:
        _zero_grads(self.get_parameters(), set_to_none)

    @torch.no_grad()
    def prepare_grads(self) -> bool:
        for param in self.get_parameters():
            if hasattr(param, "main_grad"):
                param.grad = param.main_grad
        return False

    @torch.no_grad()
    def step_with_ready_grads(self) -> bool:
        self.optimizer.step()
        return True

    def reload_model_params(self) -> None:
        """Nothing to refresh: the optimizer holds the model parameters themselves."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """The inner torch optimizer's state dict, as the original saves it."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        state_dict["state"] = dict(state_dict["state"])
        _restore_common_step(state_dict)
        state_dict["param_groups"] = _reorder_loaded_groups(
            self.optimizer.param_groups, state_dict["param_groups"]
        )
        self.optimizer.load_state_dict(state_dict)


class Float16OptimizerWithFloat16Params(MegatronOptimizer):
    """bf16/fp16 model: the inner optimizer updates fp32 copies ("main params").

    ``grad_scaler`` is required for fp16 and optional for bf16 (``None`` means scale 1 and no
    inf/NaN check, as the original).
    """

    _empty_norm = 0.0
    _empty_zeros = 0

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        grad_scaler: GradScaler | None,
        *,
        fp16: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(optimizer, **kwargs)
        if grad_scaler is None and fp16:
            raise ValueError("fp16 training needs a loss scaler (dynamic, or --loss-scale)")
        self.grad_scaler = grad_scaler
        self.fp16 = fp16
        self.float16_groups: list[list[torch.nn.Parameter]] = []
        self.fp32_from_float16_groups: list[list[torch.nn.Parameter]] = []
        self.fp32_from_fp32_groups: list[list[torch.nn.Parameter]] = []
        self._model_param: dict[int, torch.nn.Parameter] = {}
        for group in self.optimizer.param_groups:
            float16_params, main_params, fp32_params = [], [], []
            for i, param in enumerate(group["params"]):
                if not param.requires_grad:
                    continue
                if param.dtype in (torch.float16, torch.bfloat16):
                    main = torch.nn.Parameter(param.detach().clone().float())
                    for attr in _TP_ATTRIBUTES:
                        if hasattr(param, attr):
                            setattr(main, attr, getattr(param, attr))
                    group["params"][i] = main
                    param.main_param = main
                    if param in self.optimizer.state:
                        self.optimizer.state[main] = self.optimizer.state.pop(param)
                    float16_params.append(param)
                    main_params.append(main)
                    self._model_param[id(main)] = param
                elif param.dtype == torch.float32:
                    fp32_params.append(param)
                else:
                    raise TypeError(
                        f"optimizer parameters must be fp32, fp16 or bf16, got {param.dtype}"
                    )
            self.float16_groups.append(float16_params)
            self.fp32_from_float16_groups.append(main_params)
            self.fp32_from_fp32_groups.append(fp32_params)
        device = next(iter(self.get_parameters()), torch.empty(0)).device
        self._scale_one = torch.ones(1, dtype=torch.float, device=device)
        self._found_inf = torch.zeros(1, dtype=torch.float, device=device)

    def model_param_of(self, param: torch.nn.Parameter) -> torch.nn.Parameter:
        return self._model_param.get(id(param), param)

    def get_loss_scale(self) -> torch.Tensor:
        return self._scale_one if self.grad_scaler is None else self.grad_scaler.scale

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the model grads, and the main grads too (to free their memory early)."""
        for groups in (
            self.float16_groups,
            self.fp32_from_float16_groups,
            self.fp32_from_fp32_groups,
        ):
            for group in groups:
                _zero_grads(group, set_to_none)

    def _copy_model_grads_to_main_grads(self) -> None:
        for model_group, main_group in zip(self.float16_groups, self.fp32_from_float16_groups):
            for model_param, main_param in zip(model_group, main_group):
                source = getattr(model_param, "main_grad", None)
                if source is None:
                    source = model_param.grad
                if source is not None:
                    main_param.grad = source.float()
                model_param.grad = None
        for group in self.fp32_from_fp32_groups:
            for param in group:
                if getattr(param, "main_grad", None) is not None:
                    param.grad = param.main_grad

    def _unscale_and_check_for_nan(self) -> bool:
        grads = [p.grad for p in self.get_parameters() if p.grad is not None]
        self._found_inf.fill_(0.0)
        if grads:
            torch._amp_foreach_non_finite_check_and_unscale_(
                grads, self._found_inf, self.grad_scaler.inv_scale.to(self._found_inf.device)
            )
        all_reduce_(self._found_inf, self.grad_stats_group, "max")
        return self._found_inf.item() > 0

    @torch.no_grad()
    def prepare_grads(self) -> bool:
        self._copy_model_grads_to_main_grads()
        if self.grad_scaler is None:
            return False
        found_inf = self._unscale_and_check_for_nan()
        self.grad_scaler.update(found_inf)
        return found_inf

    @torch.no_grad()
    def step_with_ready_grads(self) -> bool:
        self.optimizer.step()
        self._copy_main_params_to_model_params()
        return True

    def _copy_main_params_to_model_params(self) -> None:
        for model_group, main_group in zip(self.float16_groups, self.fp32_from_float16_groups):
            for model_param, main_param in zip(model_group, main_group):
                model_param.data.copy_(main_param.data)

    @torch.no_grad()
    def reload_model_params(self) -> None:
        """Refresh the main params from the model (after loading weights without optimizer)."""
        for model_group, main_group in zip(self.float16_groups, self.fp32_from_float16_groups):
            for model_param, main_param in zip(model_group, main_group):
                main_param.data.copy_(model_param.data)

    def state_dict(self) -> dict[str, Any]:
        """The original's keys: ``optimizer``, ``grad_scaler`` (if any), ``fp32_from_fp16_params``."""
        out: dict[str, Any] = {"optimizer": self.optimizer.state_dict()}
        if self.grad_scaler is not None:
            out["grad_scaler"] = self.grad_scaler.state_dict()
        out["fp32_from_fp16_params"] = self.fp32_from_float16_groups
        return out

    @torch.no_grad()
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        key = "optimizer" if "optimizer" in state_dict else "optimizer_state_dict"
        inner = dict(state_dict[key])
        inner["state"] = dict(inner["state"])
        _restore_common_step(inner)
        inner["param_groups"] = _reorder_loaded_groups(
            self.optimizer.param_groups, inner["param_groups"]
        )
        self.optimizer.load_state_dict(inner)
        if "grad_scaler" in state_dict and self.grad_scaler is not None:
            self.grad_scaler.load_state_dict(state_dict["grad_scaler"])
        saved_main = state_dict.get("fp32_from_fp16_params", state_dict.get("fp32_from_fp16"))
        if saved_main is None:
            raise KeyError("optimizer state dict has no fp32_from_fp16_params")
        for current_group, saved_group in zip(self.fp32_from_float16_groups, saved_main):
            for current, saved in zip(current_group, saved_group):
                current.data.copy_(saved.data)


def _is_expert(param: torch.nn.Parameter) -> bool:
    """A routed expert's parameter (the original marks them ``allreduce=False``)."""
    return not getattr(param, "allreduce", True)
