"""Model FLOPs per training step, by the original's ``num_floating_point_operations`` formula.

This is the number behind ``--log-throughput`` (TFLOP/s per GPU) and the checkpoint's
``num_floating_point_operations_so_far``. Every GEMM counts 2 FLOPs per multiply-add and is
run 3 times (forward, weight gradient, input gradient). Per token and dense layer:
attention ``6 * (h * (q + 2 kv) + q * s / 2 * 2 + q * h)`` (q = nh * d, kv = ng * d; causal
attention counts half of the s x s scores), MLP ``6 * h * ffn * (3 if swiglu else 2)``,
plus the logits ``6 * h * V`` (once per MTP depth as well). Multiplied by batch * seq_length.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpt_models.transformer_config import TransformerConfig


def num_floating_point_operations(
    *,
    batch_size: int,
    seq_length: int,
    num_layers: int,
    hidden_size: int,
    ffn_hidden_size: int,
    num_attention_heads: int,
    padded_vocab_size: int,
    kv_channels: int | None = None,
    num_query_groups: int | None = None,
    swiglu: bool = False,
    num_experts: int | None = None,
    moe_layer_pattern: Sequence[int] | None = None,
    moe_ffn_hidden_size: int | None = None,
    moe_router_topk: int = 2,
    moe_shared_expert_intermediate_size: int | None = None,
    mtp_num_layers: int | None = None,
    attention_output_gate: bool = False,
) -> float:
    """FLOPs of one training step on ``batch_size`` sequences (the original's dense/MoE formula).

    ``num_query_groups`` None means MHA. For MoE, ``moe_layer_pattern`` lists 1 for an MoE layer
    and 0 for a dense one (the original's parsed --moe-layer-freq); None with ``num_experts``
    means every layer is MoE.
    """
    kv_channels = kv_channels or hidden_size // num_attention_heads
    groups = num_query_groups or num_attention_heads
    if num_experts is None:
        dense_layers, moe_layers, routed, last_is_moe = num_layers, 0, 0, 0
    else:
        pattern = list(moe_layer_pattern) if moe_layer_pattern is not None else [1] * num_layers
        if len(pattern) != num_layers:
            raise ValueError(f"MoE layer pattern has {len(pattern)} entries for {num_layers}")
        moe_layers = sum(pattern)
        dense_layers, routed, last_is_moe = num_layers - moe_layers, moe_router_topk, pattern[-1]
    mtp = mtp_num_layers or 0
    moe_layers += last_is_moe * mtp
    dense_layers += (1 - last_is_moe) * mtp
    total_layers = num_layers + mtp
    moe_ffn = moe_ffn_hidden_size or ffn_hidden_size
    shared_ffn = moe_shared_expert_intermediate_size or 0

    gemm = 3 * 2  # forward + two backward GEMMs, 2 FLOPs per multiply-add
    ffn_factor = 3 if swiglu else 2
    query = kv_channels * num_attention_heads
    key_value = kv_channels * groups
    gate = query if attention_output_gate else 0
    attention = gemm * (
        hidden_size * (query + 2 * key_value + gate)
        + query * seq_length / 2 * 2  # causal: half the scores, for QK^T and for PV
        + query * hidden_size
    )
    mlp = (
        gemm
        * hidden_size
        * (
            ffn_hidden_size * ffn_factor * dense_layers
            + moe_ffn * routed * ffn_factor * moe_layers
            + shared_ffn * ffn_factor * moe_layers
        )
    )
    mtp_extra = gemm * mtp * (3 * hidden_size + 2 * hidden_size * hidden_size)
    logits = gemm * hidden_size * padded_vocab_size * (mtp + 1)
    return batch_size * seq_length * (mlp + attention * total_layers + mtp_extra + logits)


def transformer_flops(config: TransformerConfig, *, batch_size: int, seq_length: int) -> float:
    """``num_floating_point_operations`` for a TransformerConfig (dense, MoE layers and MTP)."""
    assert config.ffn_hidden_size is not None
    return num_floating_point_operations(
        batch_size=batch_size,
        seq_length=seq_length,
        num_layers=config.num_layers,
        hidden_size=config.hidden_size,
        ffn_hidden_size=config.ffn_hidden_size,
        num_attention_heads=config.num_attention_heads,
        padded_vocab_size=config.padded_vocab_size,
        kv_channels=config.kv_channels,
        num_query_groups=config.num_query_groups,
        swiglu=config.swiglu,
        num_experts=config.num_experts,
        moe_layer_pattern=[int(x) for x in config.moe_layer_pattern()] if config.is_moe else None,
        moe_ffn_hidden_size=config.moe_ffn_hidden_size,
        moe_router_topk=config.moe_router_topk,
        moe_shared_expert_intermediate_size=config.moe_shared_expert_intermediate_size,
        mtp_num_layers=config.mtp_num_layers,
    )
