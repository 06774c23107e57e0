"""Flags owned by gpt-inference: inference engines and CUDA-graph capture.

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
    NO_EFFECT,
    NOT_IMPLEMENTED,
    flag,
)


@dataclass(frozen=True, kw_only=True)
class InferenceConfig:
    """The original's "inference" flags owned here."""

    GROUP: ClassVar[str] = "inference"

    inference_batch_times_seqlen_threshold: int = flag(
        -1,
        "--inference-batch-times-seqlen-threshold",
        type=int,
        help="If (batch-size * sequence-length) is smaller than this thresholdthen batches will not be split up for pipelining.Requires setting --pipeline-model-parallel- size > 1.Setting this to -1 indicates that batch pipelining is not used.",
        status=NOT_IMPLEMENTED,
    )
    max_tokens_to_oom: int = flag(
        12000,
        "--max-tokens-to-oom",
        type=int,
        help="Maximum number of tokens during inferencetokens here is # in prompt + # to generateAllows us to throw an error before OOM crashes server",
        status=EFFECTIVE,
        reason="tests/infer/test_cli.py",
    )
    output_bert_embeddings: bool = flag(
        False,
        "--output-bert-embeddings",
        action="store_true",
        help="Output Bert embeddings (via mean pooling) from model, rather than its binary head output or entire hidden batch.",
        status=NO_EFFECT,
        reason="BERT embedding inference only",
    )
    bert_embedder_type: str = flag(
        "megatron",
        "--bert-embedder-type",
        choices=("megatron", "huggingface"),
        help="Select either Megatron or Huggingface as the Bert embedder.",
        status=NO_EFFECT,
        reason="BERT embedding inference only",
    )
    flash_decode: bool = flag(
        False,
        "--flash-decode",
        action="store_true",
        help="Whether to use the flash decoding kernel.",
        status=NEEDS_GPU,
        reason="flash decoding kernel",
    )
    enable_cuda_graph: bool = flag(
        False,
        "--enable-cuda-graph",
        action="store_true",
        help='Use CUDA graph capture and replay. --cuda-graph- scope="full_iteration" enables whole iteration CUDA graph.',
        status=NEEDS_GPU,
        reason="CUDA graphs",
    )
    cuda_graph_warmup_steps: int = flag(
        3,
        "--cuda-graph-warmup-steps",
        type=int,
        help="Number of CUDA graph warmup steps",
        status=NEEDS_GPU,
        reason="CUDA graphs",
    )
    external_cuda_graph: bool = flag(
        False,
        "--external-cuda-graph",
        action="store_true",
        help="Use CUDA graph capture and replay. The CUDA graphs aremanually captured in the training script.",
        status=NEEDS_GPU,
        reason="CUDA graphs",
    )
    cuda_graph_scope: str = flag(
        "full",
        "--cuda-graph-scope",
        choices=("full", "attn", "full_iteration"),
        help='Determines the CUDA graphs capturing scope. Valid values are "full", "attn" and "full_iteration". "Full" scope captures a whole Transformer layer. "Attn" scope only captures operations in TransformerLayer._forward_attention(). "ful_iteration" scope captures a whole iteration.',
        status=NEEDS_GPU,
        reason="CUDA graphs",
    )
    inference_max_batch_size: int = flag(
        8,
        "--inference-max-requests",
        type=int,
        help="Maximum number of requests for inference.",
        status=EFFECTIVE,
        reason="tests/infer/test_cli.py",
    )
    inference_max_seq_length: int = flag(
        2560,
        "--inference-max-seq-length",
        type=int,
        help="Maximum sequence length expected for inference (prefill + decode).",
        status=EFFECTIVE,
        reason="tests/infer/test_server.py",
    )
    inference_dynamic_batching: bool = flag(
        False,
        "--inference-dynamic-batching",
        action="store_true",
        help="Enable dynamic batching mode.",
        status=EFFECTIVE,
        reason="tests/gpt_inference/test_dynamic_engine.py",
    )
    inference_dynamic_batching_buffer_size_gb: float = flag(
        40.0,
        "--inference-dynamic-batching-buffer-size-gb",
        type=float,
        help="Total buffer size (GB) allocated for the chunked KV memory.",
        status=EFFECTIVE,
        reason="tests/gpt_inference/test_dynamic_engine.py",
    )
    inference_dynamic_batching_chunk_size: int = flag(
        256,
        "--inference-dynamic-batching-chunk-size",
        type=int,
        help="KV cache chunk size. It should be a multiple of 256",
        status=EFFECTIVE,
        reason="tests/gpt_inference/test_dynamic_engine.py",
    )
    inference_dynamic_batching_buffer_guaranteed_fraction: float = flag(
        0.2,
        "--inference-dynamic-batching-buffer-guaranteed-fraction",
        type=float,
        help="Space is reserved within the inference context memory buffer to guarantee that a minimum number of active requests will always be able to run to completion. This is to avoid the context being blocked by paused requests.",
        status=EFFECTIVE,
        reason="tests/gpt_inference/test_dynamic_engine.py",
    )
    inference_dynamic_batching_buffer_overflow_factor: float | None = flag(
        None,
        "--inference-dynamic-batching-buffer-overflow-factor",
        type=float,
        help="Scaling factor over the memory buffer size for auto computing `max_requests` and `max_tokens`. This scaling factor is used for fitting more requests and tokens in the memory buffer than it can safely hold, which in turn increases throughput.",
        status=EFFECTIVE,
        reason="tests/gpt_inference/test_dynamic_engine.py",
    )
    inference_dynamic_batching_max_requests_override: int | None = flag(
        None,
        "--inference-dynamic-batching-max-requests-override",
        type=int,
        help="If set, this overrides the max requests as computed from `--inference-dynamic-batching-buffer-overflow- factor`.",
        status=EFFECTIVE,
        reason="tests/gpt_inference/test_dynamic_engine.py",
    )
    inference_dynamic_batching_max_tokens_override: int | None = flag(
        None,
        "--inference-dynamic-batching-max-tokens-override",
        type=int,
        help="If set, this overrides the max tokens as computed from `--inference-dynamic-batching-buffer-overflow-factor`.",
        status=EFFECTIVE,
        reason="tests/gpt_inference/test_dynamic_engine.py",
    )
    inference_dynamic_batching_num_cuda_graphs: int = flag(
        16,
        "--inference-dynamic-batching-num-cuda-graphs",
        type=int,
        help="Maximum number of cuda graphs to capture, where the cuda graph batch sizes range from 1 to `max_requests`. (See `dynamic_context.py` for details on how `max_requests` is computed). Due to rounding, the actual number of cuda graphs may not equal this argument.",
        status=NEEDS_GPU,
        reason="CUDA graphs",
    )
    symmetric_ar_type: str | None = flag(
        None,
        "--symmetric-ar-type",
        choices=("two_shot", "one_shot", "multimem_all_reduce", None),
        help="What type of symmetric all reduce to use. The default is none which is no use of symetric memory",
        status=NEEDS_GPU,
        reason="NCCL symmetric-memory all-reduce",
    )
    nccl_all_reduce_for_prefill: bool = flag(
        False,
        "--nccl-all-reduce-for-prefill",
        action="store_true",
        help="When using symmeric all reduce kernels this will use regular nccl kernels for prefill. This can be more effecient when prefill is large as the nccl kernels can be more bandwith optimized",
        status=NEEDS_GPU,
        reason="NCCL",
    )
    mlp_chunks_for_prefill: int = flag(
        1,
        "--mlp-chunks-for-prefill",
        type=int,
        help="Number of chunks along sequence dimension for MLP computation during prefill",
        status=NOT_IMPLEMENTED,
    )
