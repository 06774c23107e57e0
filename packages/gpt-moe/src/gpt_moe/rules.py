"""The MoE flag rules (the original's TransformerConfig checks): each failure is one line
naming the flags at fault, raised as ValueError for the app to report."""

from __future__ import annotations

from gpt_moe.config import MoEConfig
from gpt_moe.router import load_balancing_types

CAPACITY_BALANCING = ("aux_loss", "seq_aux_loss", "none")


def check_moe(config: MoEConfig, *, add_bias_linear: bool) -> None:
    """Every rule on the MoE flags alone (and the linear biases the experts cannot have)."""
    if config.num_experts is None:
        if config.moe_ffn_hidden_size is not None:
            raise ValueError("--moe-ffn-hidden-size needs --num-experts")
        return
    experts, topk = config.num_experts, config.moe_router_topk
    if experts <= 0:
        raise ValueError(f"--num-experts must be positive, got {experts}")
    if not 1 <= topk <= experts:
        raise ValueError(
            f"--moe-router-topk ({topk}) must be between 1 and --num-experts ({experts})"
        )
    if add_bias_linear:
        raise ValueError("--num-experts needs --disable-bias-linear (experts have no biases)")
    _check_router(config)
    _check_dispatch(config)


def _check_router(config: MoEConfig) -> None:
    types = load_balancing_types(config)
    score = config.moe_router_score_function
    if config.moe_router_enable_expert_bias and score != "sigmoid":
        raise ValueError(
            "--moe-router-enable-expert-bias needs --moe-router-score-function sigmoid"
        )
    if (
        config.moe_router_topk == 1
        and score == "softmax"
        and not config.moe_router_pre_softmax
        and "sinkhorn" not in types
    ):
        raise ValueError("--moe-router-topk 1 with softmax scores needs --moe-router-pre-softmax")
    coeffs = config.moe_aux_loss_coeff
    if len(types) > 1 and (not isinstance(coeffs, list | tuple) or len(coeffs) != len(types)):
        raise ValueError(
            "--moe-aux-loss-coeff needs one value per --moe-router-load-balancing-type "
            f"({len(types)})"
        )
    if "sinkhorn" in types and any(c != 0 for c in _as_list(coeffs)):
        raise ValueError("--moe-router-load-balancing-type sinkhorn takes no --moe-aux-loss-coeff")
    if config.moe_router_group_topk:
        groups = config.moe_router_num_groups
        if not groups:
            raise ValueError("--moe-router-group-topk needs --moe-router-num-groups")
        if config.num_experts % groups:
            raise ValueError(
                f"--num-experts ({config.num_experts}) must be divisible by "
                f"--moe-router-num-groups ({groups})"
            )
        if config.moe_router_group_topk > groups:
            raise ValueError(
                f"--moe-router-group-topk ({config.moe_router_group_topk}) must not exceed "
                f"--moe-router-num-groups ({groups})"
            )
        if config.moe_router_topk % config.moe_router_group_topk:
            raise ValueError(
                f"--moe-router-topk ({config.moe_router_topk}) must be divisible by "
                f"--moe-router-group-topk ({config.moe_router_group_topk})"
            )
    if config.moe_input_jitter_eps is not None and not 0 <= config.moe_input_jitter_eps < 1:
        raise ValueError("--moe-input-jitter-eps must be in [0, 1)")


def _check_dispatch(config: MoEConfig) -> None:
    types = load_balancing_types(config)
    if config.moe_token_dispatcher_type == "flex" and not config.moe_enable_deepep:
        raise ValueError(
            "--moe-token-dispatcher-type flex needs --moe-enable-deepep (DeepEP, CUDA only)"
        )
    if config.moe_enable_deepep and config.moe_token_dispatcher_type != "flex":
        raise ValueError("--moe-enable-deepep needs --moe-token-dispatcher-type flex")
    factor = config.moe_expert_capacity_factor
    if factor is not None:
        if factor <= 0:
            raise ValueError(f"--moe-expert-capacity-factor must be positive, got {factor}")
        if any(t not in CAPACITY_BALANCING for t in types):
            raise ValueError(
                "--moe-expert-capacity-factor works with --moe-router-load-balancing-type "
                "aux_loss, seq_aux_loss or none"
            )
    elif config.moe_pad_expert_input_to_capacity:
        raise ValueError("--moe-pad-expert-input-to-capacity needs --moe-expert-capacity-factor")
    if config.moe_apply_probs_on_input and config.moe_router_topk != 1:
        raise ValueError("--moe-apply-probs-on-input needs --moe-router-topk 1")
    shared = config.moe_shared_expert_intermediate_size
    if shared is not None and shared <= 0:
        raise ValueError(f"--moe-shared-expert-intermediate-size must be positive, got {shared}")


def _as_list(value: float | list[float]) -> list[float]:
    return list(value) if isinstance(value, list | tuple) else [value]
