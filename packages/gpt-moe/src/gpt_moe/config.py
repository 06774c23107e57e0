"""Flags owned by gpt-moe: experts, routers and token dispatch.

Each field is one flag of the original `pretrain_gpt.py` (same name, aliases, nargs, choices
and default); the field name is the argparse dest. Generated once from tools/flags/original_flags.tsv,
now maintained here; tests/pretrain/test_flags.py checks it against the original's flag table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gpt_flags.flagspec import (
    EFFECTIVE,
    NEEDS_GPU,
    NOT_IMPLEMENTED,
    flag,
    parse_layer_pattern,
)


@dataclass(frozen=True, kw_only=True)
class MoEConfig:
    """The original's "moe" flags owned here."""

    GROUP: ClassVar[str] = "moe"

    num_experts: int | None = flag(
        None,
        "--num-experts",
        type=int,
        help="Number of Experts in MoE (None means no MoE)",
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_golden.py",
    )
    moe_layer_freq: int | list[int] = flag(
        1,
        "--moe-layer-freq",
        type=parse_layer_pattern,
        help='Frequency between MoE layers and Dense layers. Accepts either: - An integer N: Represents a 1:N ratio, meaning one expert layer for every N-1 dense layers - A string containing a Python list expression that defines a custom pattern, e.g.: "([1]*3+[0]*1)*3" evaluates to [1,1,1,0,1,1,1,0,1,1,1,0] where 1 indicates an expert layer and 0 indicates a dense layer. Examples: "([0]+[1]*23)": 1 dense layer followed by 23 experts layers, "([1]*3+[0]*2)*2": Three expert layers followed by two dense layers, repeated twice.',
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_golden.py",
    )
    moe_ffn_hidden_size: int | None = flag(
        None,
        "--moe-ffn-hidden-size",
        type=int,
        help="The hidden size of each expert's feed-forward network (ffn). If not specified, defaults to the ffn_hidden_size.",
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_golden.py",
    )
    moe_shared_expert_intermediate_size: int | None = flag(
        None,
        "--moe-shared-expert-intermediate-size",
        type=int,
        help='Shared expert total ffn hidden size. It should be equal to "num_shared_experts * ffn_size_of_each_shared_expert" if there are multiple shared experts. None means no shared expert.',
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_golden.py",
    )
    moe_shared_expert_overlap: bool = flag(
        False,
        "--moe-shared-expert-overlap",
        action="store_true",
        help="Enable overlapping between shared expert computations and dispatcher communications. Without this, the shared epxerts execute after the routed experts. Only effective when moe-shared-expert-intermediate-size is set.",
        status=NOT_IMPLEMENTED,
    )
    moe_grouped_gemm: bool = flag(
        False,
        "--moe-grouped-gemm",
        action="store_true",
        help="When there are multiple experts per rank, launch multiple local GEMM kernels in multiple streams to improve the utilization and performance with GroupedLinear in TransformerEngine.",
        status=EFFECTIVE,
        reason="tests/gpt_moe/test_layer.py",
    )
    moe_use_legacy_grouped_gemm: bool = flag(
        False,
        "--moe-use-legacy-grouped-gemm",
        action="store_true",
        help="Use legacy GroupedMLP rather than TEGroupedMLP. Note: The legacy one will be deprecated soon.",
        status=NOT_IMPLEMENTED,
    )
    moe_layer_recompute: bool = flag(
        False,
        "--moe-layer-recompute",
        action="store_true",
        help='Enable checkpointing for moe_layer, should be used when memory is not sufficient. Deprecated. Use "-- recompute-granularity selective --recompute-modules moe" instead.',
        status=NOT_IMPLEMENTED,
    )
    moe_extended_tp: bool = flag(
        False,
        "--moe-extended-tp",
        action="store_true",
        help="Deprecated. Use --expert-tensor-parallel-size instead.",
        status=NOT_IMPLEMENTED,
    )
    moe_use_upcycling: bool = flag(
        False,
        "--moe-use-upcycling",
        action="store_true",
        help="Load a checkpoint of a dense model, convert it into an MoE model, and save the converted model to the path specified by --save. Upcycling is implemented on the top of distributed checkpointing, so it supports parallel modes different from the dense model.",
        status=NOT_IMPLEMENTED,
    )
    moe_router_load_balancing_type: list[str] | str = flag(
        "aux_loss",
        "--moe-router-load-balancing-type",
        nargs="+",
        choices=("aux_loss", "seq_aux_loss", "sinkhorn", "none"),
        help='Determines the load balancing strategy for the router. "aux_loss" corresponds to the load balancing loss used in GShard and SwitchTransformer; "seq_aux_loss" corresponds to the load balancing loss used in DeepSeekV2, which computes the loss for each individual sample; "sinkhorn" corresponds to the balancing algorithm used in S-BASE, and "none" implies no load balancing. The default is "aux_loss".',
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_golden.py",
    )
    moe_router_dtype: str | None = flag(
        None,
        "--moe-router-dtype",
        choices=("fp32", "fp64"),
        help="Data type for routing computation and expert output weighted averaging. Fp32/fp64 enhances numerical stability, especially with numerous experts. The perf impact should be negligible when used with permute fusion. None means no changes for dtype.",
        status=EFFECTIVE,
        reason="tests/gpt_moe/test_layer.py",
    )
    moe_router_fusion: bool = flag(
        False,
        "--moe-router-fusion",
        action="store_true",
        help="Enable fusion for MoE TopK routing and aux-loss computation. This is only supported in TransformerEngine 2.7.0 and above.",
        status=NEEDS_GPU,
        reason="Transformer Engine >= 2.7 fused router kernels (CUDA)",
    )
    moe_router_score_function: str = flag(
        "softmax",
        "--moe-router-score-function",
        choices=("softmax", "sigmoid"),
        help='Score function for MoE TopK routing. Can be "softmax" or "sigmoid".',
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_golden.py",
    )
    moe_router_topk: int = flag(
        2,
        "--moe-router-topk",
        type=int,
        help="Number of experts to route to for each token. The default is 2.",
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_golden.py",
    )
    moe_router_pre_softmax: bool = flag(
        False,
        "--moe-router-pre-softmax",
        action="store_true",
        help="Enable pre-softmax routing for MoE, which means softmax is before the top-k selection. By default, softmax is done after top-k.",
        status=EFFECTIVE,
        reason="tests/gpt_moe/test_routing.py",
    )
    moe_router_num_groups: int | None = flag(
        None,
        "--moe-router-num-groups",
        type=int,
        help="Number of groups to divide experts into for group- limited routing. When using group-limited routing: 1) Experts are divided into equal-sized groups, 2) For each token, a subset of groups are selected based on routing scores (sum of top-2 expert scores within each group), 3) From these selected groups, moe_router_topk experts are chosen.Two common use cases: 1) Device- limited routing: Set equal to expert parallel size (EP) to limit each token to experts on a subset of devices (See DeepSeek-V2: https://arxiv.org/pdf/2405.04434) 2) Node-limited routing: Set equal to number of nodes in EP group to limit each token to experts on a subset of nodes (See DeepSeek-V3: https://arxiv.org/pdf/2412.19437)",
        status=EFFECTIVE,
        reason="tests/gpt_moe/test_routing.py",
    )
    moe_router_group_topk: int | None = flag(
        None,
        "--moe-router-group-topk",
        type=int,
        help="Number of selected groups for group-limited routing.",
        status=EFFECTIVE,
        reason="tests/gpt_moe/test_routing.py",
    )
    moe_router_topk_scaling_factor: float | None = flag(
        None,
        "--moe-router-topk-scaling-factor",
        type=float,
        help="Scaling factor for routing score in top-k selection, only works when --moe-router-pre-softmax enabled. Defaults to None, which means no scaling.",
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_golden.py",
    )
    moe_router_enable_expert_bias: bool = flag(
        False,
        "--moe-router-enable-expert-bias",
        action="store_true",
        help="TopK routing with dynamic expert bias in the aux-loss- free load balancing strategy. The routing decision is based on the sum of the routing scores and the expert bias. See https://arxiv.org/abs/2408.15664 for details.",
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_golden.py",
    )
    moe_router_bias_update_rate: float = flag(
        0.001,
        "--moe-router-bias-update-rate",
        type=float,
        help="Expert bias update rate in the aux-loss-free load balancing strategy. The expert bias is updated based on the number of assigned tokens to each expert in a global batch, where the bias is increased for the experts with less assigned tokens and decreased for the experts with more assigned tokens. The default value 1e-3 is same as that used in DeepSeekV3.",
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_golden.py",
    )
    moe_router_force_load_balancing: bool = flag(
        False,
        "--moe-router-force-load-balancing",
        action="store_true",
        help="[Experimental] Force override routing to balance token distribution using random logits for MoE routers, supporting naive top-k and group-limited top-k. This experimental feature is for benchmarking purposes only!",
        status=EFFECTIVE,
        reason="tests/gpt_moe/test_layer.py",
    )
    moe_router_padding_for_fp8: bool = flag(
        False,
        "--moe-router-padding-for-fp8",
        action="store_true",
        help="Pad the routing_map to make sure the number of tokens each expert received is a multiple of 16/32 for FP8 precision. It is suggested to enable this for dropless training with FP8 precision when num_local_experts > 1. This is a more efficient way to pad for FP8 which eliminates the explicit padding in the GroupedMLP layer.",
        status=NOT_IMPLEMENTED,
    )
    moe_aux_loss_coeff: list[float] | float = flag(
        0.0,
        "--moe-aux-loss-coeff",
        type=float,
        nargs="+",
        help="Scaling coefficient for the aux loss: a starting value of 1e-2 is recommended.",
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_golden.py",
    )
    moe_z_loss_coeff: float | None = flag(
        None,
        "--moe-z-loss-coeff",
        type=float,
        help="Scaling coefficient for the z-loss: a starting value of 1e-3 is recommended.",
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_golden.py",
    )
    moe_input_jitter_eps: float | None = flag(
        None,
        "--moe-input-jitter-eps",
        type=float,
        help="Add noise to the input tensor by applying jitter with a specified epsilon value.",
        status=EFFECTIVE,
        reason="tests/gpt_moe/test_layer.py",
    )
    moe_per_layer_logging: bool = flag(
        False,
        "--moe-per-layer-logging",
        action="store_true",
        help="Enable per-layer logging for MoE, currently supports auxiliary loss and z loss.",
        status=NOT_IMPLEMENTED,
    )
    moe_token_dispatcher_type: str = flag(
        "allgather",
        "--moe-token-dispatcher-type",
        choices=("allgather", "alltoall", "flex"),
        help="The type of token dispatcher to use. The default is 'allgather'. Options are 'allgather', 'alltoall'. We recommend using 'alltoall' when applying expert parallelism. For more information, please refer to the documentation in core/moe/README.",
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_golden.py",
    )
    moe_enable_deepep: bool = flag(
        False,
        "--moe-enable-deepep",
        action="store_true",
        help="[Experimental] Enable DeepSeek/DeepEP for efficient token dispatching and combine in MoE models. Only works with flex token dispatcher by setting --moe- token-dispatcher-type=flex.",
        status=NEEDS_GPU,
        reason="DeepEP (CUDA)",
    )
    moe_deepep_num_sms: int = flag(
        20,
        "--moe-deepep-num-sms",
        type=int,
        help="Number of SMs to use for DeepEP.",
        status=NEEDS_GPU,
        reason="DeepEP (CUDA)",
    )
    moe_permute_fusion: bool = flag(
        False,
        "--moe-permute-fusion",
        action="store_true",
        help="Fuse token rearrangement ops during token dispatching.",
        status=NEEDS_GPU,
        reason="Transformer Engine fused permute kernels (CUDA)",
    )
    moe_expert_capacity_factor: float | None = flag(
        None,
        "--moe-expert-capacity-factor",
        type=float,
        help="The capacity factor for each expert, None means no token will be dropped.",
        status=EFFECTIVE,
        reason="tests/gpt_moe/test_layer.py",
    )
    moe_pad_expert_input_to_capacity: bool = flag(
        False,
        "--moe-pad-expert-input-to-capacity",
        action="store_true",
        help="Pads the input for each expert to match the expert capacity length, effective only after the --moe- expert-capacity-factor is set.",
        status=EFFECTIVE,
        reason="tests/gpt_moe/test_routing.py",
    )
    moe_token_drop_policy: str = flag(
        "probs",
        "--moe-token-drop-policy",
        choices=("probs", "position"),
        help='The policy to drop tokens. Can be either "probs" or "position". If "probs", the tokens with the lowest probabilities will be dropped. If "position", tokens at the end of each batch will be dropped.',
        status=EFFECTIVE,
        reason="tests/gpt_moe/test_routing.py",
    )
    moe_apply_probs_on_input: bool = flag(
        False,
        "--moe-apply-probs-on-input",
        action="store_true",
        help="Apply probs before mlp activation for moe routing.",
        status=EFFECTIVE,
        reason="tests/gpt_moe/test_layer.py",
    )
    overlap_moe_expert_parallel_comm: bool = flag(
        False,
        "--overlap-moe-expert-parallel-comm",
        action="store_true",
        help="Overlap the EP A2A communication by batch-level overlapping in 1f1b stage.",
        status=NOT_IMPLEMENTED,
    )
    delay_wgrad_compute: bool = flag(
        False,
        "--delay-wgrad-compute",
        action="store_true",
        help="Delay the wgrad compute for batch-level overlapping",
        status=NOT_IMPLEMENTED,
    )
    moe_upcycling_granularity: int = flag(
        1,
        "--moe-upcycling-granularity",
        type=int,
        help="This param sepecifics how many times smaller is the expert hidden size compared with the original dense FFN hidden size. For using granular upcycling strategy, please set this param as a positive integer. If this param is set to 1, it means using the default upcycling strategy.",
        status=NOT_IMPLEMENTED,
    )
