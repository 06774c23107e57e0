"""Flags owned by the pretrain app: the training loop, logging, evaluation, and the
groups that GPT pretraining does not use (accepted so existing scripts run, and warned about).

Each field is one flag of the original `pretrain_gpt.py` (same name, aliases, nargs, choices
and default); the field name is the argparse dest. Generated once from tools/flags/original_flags.tsv,
now maintained here; tests/pretrain/test_flags.py checks it against the original's flag table.
"""

from __future__ import annotations

import os
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
class LegacyModelConfig:
    """The original's "network size" flags owned here."""

    GROUP: ClassVar[str] = "network size"

    onnx_safe: bool | None = flag(
        None,
        "--onnx-safe",
        type=bool,
        help="Use workarounds for known problems with Torch ONNX exporter",
        status=NO_EFFECT,
        reason="ONNX export of the legacy BERT/GPT models only",
    )
    bert_binary_head: bool = flag(
        True,
        "--bert-no-binary-head",
        action="store_false",
        help="Disable BERT binary head.",
        status=NO_EFFECT,
        reason="BERT only",
    )


@dataclass(frozen=True, kw_only=True)
class TrainingLoopConfig:
    """The original's "training" flags owned here."""

    GROUP: ClassVar[str] = "training"

    check_for_nan_in_loss_and_grad: bool = flag(
        True,
        "--no-check-for-nan-in-loss-and-grad",
        action="store_false",
        help="Check for NaNs in loss and grad",
        status=EFFECTIVE,
    )
    check_for_spiky_loss: bool = flag(
        False,
        "--check-for-spiky-loss",
        action="store_true",
        help="Check for spiky loss",
        status=EFFECTIVE,
    )
    check_for_large_grads: bool = flag(
        False,
        "--check-for-large-grads",
        action="store_true",
        help="Check for unexpectedly large grads",
        status=EFFECTIVE,
    )
    profile: bool = flag(
        False,
        "--profile",
        action="store_true",
        help="Enable nsys profiling. When using this option, nsys options should be specified in commandline. An example nsys commandline is `nsys profile -s none -t nvtx,cuda -o <path/to/output_file> --force-overwrite true --capture-range=cudaProfilerApi --capture-range- end=stop`.",
        status=NOT_IMPLEMENTED,
    )
    profile_step_start: int = flag(
        10,
        "--profile-step-start",
        type=int,
        help="Global step to start profiling.",
        status=NOT_IMPLEMENTED,
    )
    profile_step_end: int = flag(
        12,
        "--profile-step-end",
        type=int,
        help="Global step to stop profiling.",
        status=NOT_IMPLEMENTED,
    )
    iterations_to_skip: list[int] = flag(
        [],
        "--iterations-to-skip",
        type=int,
        nargs="+",
        help="List of iterations to skip, empty by default.",
        status=NOT_IMPLEMENTED,
    )
    result_rejected_tracker_filename: str | None = flag(
        None,
        "--result-rejected-tracker-filename",
        help="Optional name of file tracking `result_rejected` events.",
        status=NOT_IMPLEMENTED,
    )
    use_pytorch_profiler: bool = flag(
        False,
        "--use-pytorch-profiler",
        action="store_true",
        help="Use the built-in pytorch profiler. Useful if you wish to view profiles in tensorboard.",
        status=NOT_IMPLEMENTED,
    )
    profile_ranks: list[int] = flag(
        [0],
        "--profile-ranks",
        type=int,
        nargs="+",
        help="Global ranks to profile.",
        status=NOT_IMPLEMENTED,
    )
    record_memory_history: bool = flag(
        False,
        "--record-memory-history",
        action="store_true",
        help="Record memory history in last rank.",
        status=NEEDS_GPU,
        reason="the CUDA caching allocator's memory history",
    )
    memory_snapshot_path: str = flag(
        "snapshot.pickle",
        "--memory-snapshot-path",
        help="Specifies where to dump the memory history pickle.",
        status=NEEDS_GPU,
        reason="the CUDA caching allocator's memory history",
    )
    empty_unused_memory_level: int = flag(
        0,
        "--empty-unused-memory-level",
        type=int,
        choices=(0, 1, 2),
        help="Call torch.cuda.empty_cache() each iteration (training and eval), to reduce fragmentation.0=off, 1=moderate, 2=aggressive.",
        status=EFFECTIVE,
    )
    deterministic_mode: bool = flag(
        False,
        "--deterministic-mode",
        action="store_true",
        help="Choose code that has deterministic execution. This usually means slower execution, but is good for debugging and testing.",
        status=EFFECTIVE,
    )
    calculate_per_token_loss: bool = flag(
        False,
        "--calculate-per-token-loss",
        action="store_true",
        help="Scale cross entropy loss by the number of non-padded tokens in the global batch, versus the default behavior of assuming all tokens are non-padded.",
        status=EFFECTIVE,
    )
    train_sync_interval: int | None = flag(
        None,
        "--train-sync-interval",
        type=int,
        help="Training CPU-GPU synchronization interval, to ensure that CPU is not running too far ahead of GPU.",
        status=NOT_IMPLEMENTED,
    )
    train_iters: int | None = flag(
        None,
        "--train-iters",
        type=int,
        help="Total number of iterations to train over all training runs. Note that either train-iters or train-samples should be provided.",
        status=EFFECTIVE,
    )
    train_samples: int | None = flag(
        None,
        "--train-samples",
        type=int,
        help="Total number of samples to train over all training runs. Note that either train-iters or train-samples should be provided.",
        status=EFFECTIVE,
    )
    log_interval: int = flag(
        100,
        "--log-interval",
        type=int,
        help="Report loss and timing interval.",
        status=EFFECTIVE,
    )
    exit_interval: int | None = flag(
        None,
        "--exit-interval",
        type=int,
        help="Exit the program after the iteration is divisible by this value.",
        status=EFFECTIVE,
    )
    exit_duration_in_mins: int | None = flag(
        None,
        "--exit-duration-in-mins",
        type=int,
        help="Exit the program after this many minutes.",
        status=EFFECTIVE,
    )
    exit_signal_handler: bool = flag(
        False,
        "--exit-signal-handler",
        action="store_true",
        help="Dynamically save the checkpoint and shutdown the training if SIGTERM is received",
        status=NOT_IMPLEMENTED,
    )
    tensorboard_dir: str | None = flag(
        None,
        "--tensorboard-dir",
        help="Write TensorBoard logs to this directory.",
        status=EFFECTIVE,
    )
    manual_gc: bool = flag(
        False,
        "--manual-gc",
        action="store_true",
        help="Disable the threshold-based default garbage collector and trigger the garbage collection manually. Manual garbage collection helps to align the timing of the collection across ranks which mitigates the impact of CPU-associated jitters. When the manual gc is enabled, garbage collection is performed only at the start and the end of the validation routine by default.",
        status=EFFECTIVE,
    )
    manual_gc_interval: int = flag(
        0,
        "--manual-gc-interval",
        type=int,
        help="Training step interval to trigger manual garbage collection. When the value is set to 0, garbage collection is not triggered between training steps.",
        status=EFFECTIVE,
    )
    manual_gc_eval: bool = flag(
        True,
        "--no-manual-gc-eval",
        action="store_false",
        help="When using manual garbage collection, disable garbage collection at the start and the end of each evaluation run.",
        status=EFFECTIVE,
    )


@dataclass(frozen=True, kw_only=True)
class EvaluationConfig:
    """The original's "validation" flags owned here."""

    GROUP: ClassVar[str] = "validation"

    eval_iters: int = flag(
        100,
        "--eval-iters",
        type=int,
        help="Number of iterations to run for evaluationvalidation/test for.",
        status=EFFECTIVE,
    )
    eval_interval: int = flag(
        1000,
        "--eval-interval",
        type=int,
        help="Interval between running evaluation on validation set.",
        status=EFFECTIVE,
    )
    test_mode: bool = flag(
        False,
        "--test-mode",
        action="store_true",
        help="Run all real-time test alongside the experiment.",
        status=NOT_IMPLEMENTED,
    )
    skip_train: bool = flag(
        False,
        "--skip-train",
        action="store_true",
        help="If set, bypass the training loop, optionally do evaluation for validation/test, and exit.",
        status=EFFECTIVE,
    )


@dataclass(frozen=True, kw_only=True)
class OtherModelDataConfig:
    """The original's "data and dataloader" flags owned here."""

    GROUP: ClassVar[str] = "data and dataloader"

    decoder_seq_length: int | None = flag(
        None,
        "--decoder-seq-length",
        type=int,
        help="Maximum decoder sequence length to process.",
        status=NO_EFFECT,
        reason="T5 encoder-decoder models only",
    )
    retriever_seq_length: int = flag(
        256,
        "--retriever-seq-length",
        type=int,
        help="Maximum sequence length for the biencoder model for retriever",
        status=NO_EFFECT,
        reason="biencoder retrieval models only",
    )
    sample_rate: float = flag(
        1.0,
        "--sample-rate",
        type=float,
        help="sample rate for training data. Supposed to be 0 < sample_rate < 1",
        status=NO_EFFECT,
        reason="BERT/T5 span-corruption data only",
    )
    mask_prob: float = flag(
        0.15,
        "--mask-prob",
        type=float,
        help="Probability of replacing a token with mask.",
        status=NO_EFFECT,
        reason="BERT/T5 masked-language-model data only",
    )
    short_seq_prob: float = flag(
        0.1,
        "--short-seq-prob",
        type=float,
        help="Probability of producing a short sequence.",
        status=NO_EFFECT,
        reason="BERT data only",
    )


@dataclass(frozen=True, kw_only=True)
class AutoresumeConfig:
    """The original's "autoresume" flags owned here."""

    GROUP: ClassVar[str] = "autoresume"

    adlr_autoresume: bool = flag(
        False,
        "--adlr-autoresume",
        action="store_true",
        help="Enable autoresume on adlr cluster.",
        status=NEEDS_GPU,
        reason="the ADLR autoresume cluster service",
    )
    adlr_autoresume_interval: int = flag(
        1000,
        "--adlr-autoresume-interval",
        type=int,
        help="Intervals over which check for autoresumetermination signal",
        status=NEEDS_GPU,
        reason="the ADLR autoresume cluster service",
    )


@dataclass(frozen=True, kw_only=True)
class BiencoderConfig:
    """The original's "biencoder" flags owned here."""

    GROUP: ClassVar[str] = "biencoder"

    ict_head_size: int | None = flag(
        None,
        "--ict-head-size",
        type=int,
        help="Size of block embeddings to be used in ICT and REALM (paper default: 128)",
        status=NO_EFFECT,
        reason="biencoder (ICT/REALM) retrieval models only",
    )
    biencoder_projection_dim: int = flag(
        0,
        "--biencoder-projection-dim",
        type=int,
        help="Size of projection head used in biencoder (paper default: 128)",
        status=NO_EFFECT,
        reason="biencoder (ICT/REALM) retrieval models only",
    )
    biencoder_shared_query_context_model: bool = flag(
        False,
        "--biencoder-shared-query-context-model",
        action="store_true",
        help="Whether to share the parameters of the query and context models or not",
        status=NO_EFFECT,
        reason="biencoder (ICT/REALM) retrieval models only",
    )
    ict_load: str | None = flag(
        None,
        "--ict-load",
        help="Directory containing an ICTBertModel checkpoint",
        status=NO_EFFECT,
        reason="biencoder (ICT/REALM) retrieval models only",
    )
    bert_load: str | None = flag(
        None,
        "--bert-load",
        help="Directory containing an BertModel checkpoint (needed to start ICT and REALM)",
        status=NO_EFFECT,
        reason="biencoder (ICT/REALM) retrieval models only",
    )
    titles_data_path: str | None = flag(
        None,
        "--titles-data-path",
        help="Path to titles dataset used for ICT",
        status=NO_EFFECT,
        reason="biencoder (ICT/REALM) retrieval models only",
    )
    query_in_block_prob: float = flag(
        0.1,
        "--query-in-block-prob",
        type=float,
        help="Probability of keeping query in block for ICT dataset",
        status=NO_EFFECT,
        reason="biencoder (ICT/REALM) retrieval models only",
    )
    use_one_sent_docs: bool = flag(
        False,
        "--use-one-sent-docs",
        action="store_true",
        help="Whether to use one sentence documents in ICT",
        status=NO_EFFECT,
        reason="biencoder (ICT/REALM) retrieval models only",
    )
    evidence_data_path: str | None = flag(
        None,
        "--evidence-data-path",
        help="Path to Wikipedia Evidence frm DPR paper",
        status=NO_EFFECT,
        reason="biencoder (ICT/REALM) retrieval models only",
    )
    retriever_report_topk_accuracies: list[int] = flag(
        [],
        "--retriever-report-topk-accuracies",
        type=int,
        nargs="+",
        help="Which top-k accuracies to report (e.g. '1 5 20')",
        status=NO_EFFECT,
        reason="biencoder (ICT/REALM) retrieval models only",
    )
    retriever_score_scaling: bool = flag(
        False,
        "--retriever-score-scaling",
        action="store_true",
        help="Whether to scale retriever scores by inverse square root of hidden size",
        status=NO_EFFECT,
        reason="biencoder (ICT/REALM) retrieval models only",
    )
    block_data_path: str | None = flag(
        None,
        "--block-data-path",
        help="Where to save/load BlockData to/from",
        status=NO_EFFECT,
        reason="biencoder (ICT/REALM) retrieval models only",
    )
    embedding_path: str | None = flag(
        None,
        "--embedding-path",
        help="Where to save/load Open-Retrieval Embedding data to/from",
        status=NO_EFFECT,
        reason="biencoder (ICT/REALM) retrieval models only",
    )
    indexer_batch_size: int = flag(
        128,
        "--indexer-batch-size",
        type=int,
        help="How large of batches to use when doing indexing jobs",
        status=NO_EFFECT,
        reason="biencoder (ICT/REALM) retrieval models only",
    )
    indexer_log_interval: int = flag(
        1000,
        "--indexer-log-interval",
        type=int,
        help="After how many batches should the indexer report progress",
        status=NO_EFFECT,
        reason="biencoder (ICT/REALM) retrieval models only",
    )


@dataclass(frozen=True, kw_only=True)
class VisionConfig:
    """The original's "vision" flags owned here."""

    GROUP: ClassVar[str] = "vision"

    num_classes: int = flag(
        1000,
        "--num-classes",
        type=int,
        help="num of classes in vision classificaiton task",
        status=NO_EFFECT,
        reason="vision models only",
    )
    img_h: int = flag(
        224,
        "--img-h",
        type=int,
        help="Image height for vision classification task",
        status=NO_EFFECT,
        reason="vision models only",
    )
    img_w: int = flag(
        224,
        "--img-w",
        type=int,
        help="Image height for vision classification task",
        status=NO_EFFECT,
        reason="vision models only",
    )
    num_channels: int = flag(
        3,
        "--num-channels",
        type=int,
        help="Number of channels in input image data",
        status=NO_EFFECT,
        reason="vision models only",
    )
    patch_dim: int = flag(
        16,
        "--patch-dim",
        type=int,
        help="patch dimension",
        status=NO_EFFECT,
        reason="vision models only",
    )
    classes_fraction: float = flag(
        1.0,
        "--classes-fraction",
        type=float,
        help="training with fraction of classes.",
        status=NO_EFFECT,
        reason="vision models only",
    )
    data_per_class_fraction: float = flag(
        1.0,
        "--data-per-class-fraction",
        type=float,
        help="training with fraction of data per class.",
        status=NO_EFFECT,
        reason="vision models only",
    )
    data_sharding: bool = flag(
        True,
        "--no-data-sharding",
        action="store_false",
        help="Disable data sharding.",
        status=NO_EFFECT,
        reason="vision models only",
    )
    head_lr_mult: float = flag(
        1.0,
        "--head-lr-mult",
        type=float,
        help="learning rate multiplier for head during finetuning",
        status=NO_EFFECT,
        reason="vision models only",
    )
    vision_pretraining: bool = flag(
        False,
        "--vision-pretraining",
        action="store_true",
        help="flag to indicate vision pretraining",
        status=NO_EFFECT,
        reason="vision models only",
    )
    vision_pretraining_type: str = flag(
        "classify",
        "--vision-pretraining-type",
        choices=("classify", "inpaint", "dino"),
        help="pretraining objectives",
        status=NO_EFFECT,
        reason="vision models only",
    )
    vision_backbone_type: str = flag(
        "vit",
        "--vision-backbone-type",
        choices=("vit", "mit", "swin"),
        help="backbone types types",
        status=NO_EFFECT,
        reason="vision models only",
    )
    swin_backbone_type: str = flag(
        "tiny",
        "--swin-backbone-type",
        choices=("tiny", "base", "h3"),
        help="pretraining objectives",
        status=NO_EFFECT,
        reason="vision models only",
    )
    mask_type: str = flag(
        "random",
        "--mask-type",
        choices=("random", "row"),
        help="mask types",
        status=NO_EFFECT,
        reason="vision models only",
    )
    mask_factor: float = flag(
        1.0,
        "--mask-factor",
        type=float,
        help="mask size scaling parameter",
        status=NO_EFFECT,
        reason="vision models only",
    )
    iter_per_epoch: int = flag(
        1250,
        "--iter-per-epoch",
        type=int,
        help="iterations per epoch",
        status=NO_EFFECT,
        reason="vision models only",
    )
    dino_local_img_size: int = flag(
        96,
        "--dino-local-img-size",
        type=int,
        help="Image size for vision classification task",
        status=NO_EFFECT,
        reason="vision models only",
    )
    dino_local_crops_number: int = flag(
        10,
        "--dino-local-crops-number",
        type=int,
        help="Number of local crops",
        status=NO_EFFECT,
        reason="vision models only",
    )
    dino_head_hidden_size: int = flag(
        2048,
        "--dino-head-hidden-size",
        type=int,
        help="Hidden dimension size in dino head",
        status=NO_EFFECT,
        reason="vision models only",
    )
    dino_bottleneck_size: int = flag(
        256,
        "--dino-bottleneck-size",
        type=int,
        help="Bottle neck dimension in dino head",
        status=NO_EFFECT,
        reason="vision models only",
    )
    dino_freeze_last_layer: float = flag(
        1,
        "--dino-freeze-last-layer",
        type=float,
        help="Freezing last layer weights",
        status=NO_EFFECT,
        reason="vision models only",
    )
    dino_norm_last_layer: bool = flag(
        False,
        "--dino-norm-last-layer",
        action="store_true",
        help="Disable Norm in last layer.",
        status=NO_EFFECT,
        reason="vision models only",
    )
    dino_warmup_teacher_temp: float = flag(
        0.04,
        "--dino-warmup-teacher-temp",
        type=float,
        help="warump teacher temperature",
        status=NO_EFFECT,
        reason="vision models only",
    )
    dino_teacher_temp: float = flag(
        0.07,
        "--dino-teacher-temp",
        type=float,
        help="teacher temperature",
        status=NO_EFFECT,
        reason="vision models only",
    )
    dino_warmup_teacher_temp_epochs: int = flag(
        30,
        "--dino-warmup-teacher-temp-epochs",
        type=int,
        help="warmup teacher temperaure epochs",
        status=NO_EFFECT,
        reason="vision models only",
    )


@dataclass(frozen=True, kw_only=True)
class LoggingConfig:
    """The original's "logging" flags owned here."""

    GROUP: ClassVar[str] = "logging"

    log_params_norm: bool = flag(
        False,
        "--log-params-norm",
        action="store_true",
        help="If set, calculate and log parameters norm.",
        status=EFFECTIVE,
    )
    log_num_zeros_in_grad: bool = flag(
        False,
        "--log-num-zeros-in-grad",
        action="store_true",
        help="If set, calculate and log the number of zeros in gradient.",
        status=EFFECTIVE,
    )
    log_throughput: bool = flag(
        False,
        "--log-throughput",
        action="store_true",
        help="If set, calculate and log throughput per GPU.",
        status=EFFECTIVE,
    )
    log_progress: bool = flag(
        False,
        "--log-progress",
        action="store_true",
        help="If set, log progress (in terms of number of processed tokens and number of floating-point operations) to progress.txt file in checkpoint directory.",
        status=NOT_IMPLEMENTED,
    )
    timing_log_level: int = flag(
        0,
        "--timing-log-level",
        type=int,
        choices=(0, 1, 2),
        help="Granularity level to measure and report timing. 0: report only iteration time and make sure timing does not introduce extra overhead. 1: report timing for operations that are executed very limited times (basically once) during each iteration (such as gradient all-reduce) 2: report timing for operations that migh be executed numerous times during each iteration. Note that setting the level to 1 or 2 might cause increase in iteration time.",
        status=EFFECTIVE,
    )
    log_energy: bool = flag(
        False,
        "--log-energy",
        action="store_true",
        help="If set, log energy consumption (in Joules)",
        status=NEEDS_GPU,
        reason="NVML energy counters on NVIDIA GPUs",
    )
    barrier_with_L1_time: bool = flag(
        True,
        "--no-barrier-with-level-1-timing",
        action="store_false",
        help="If not set, use barrier with level 1 time measurements. Note that this is up to the user to make sure calling barrier with their timers will not result in hangs. This can happen if for example the user adds a level 1 timer that is not called by all ranks.",
        status=EFFECTIVE,
    )
    timing_log_option: str = flag(
        "minmax",
        "--timing-log-option",
        choices=("max", "minmax", "all"),
        help="Options for logging timing: max: report the max timing across all ranks minmax: report min and max timings across all ranks all: report timings of all ranks.",
        status=EFFECTIVE,
    )
    tensorboard_log_interval: int = flag(
        1,
        "--tensorboard-log-interval",
        type=int,
        help="Report to tensorboard interval.",
        status=EFFECTIVE,
    )
    tensorboard_queue_size: int = flag(
        1000,
        "--tensorboard-queue-size",
        type=int,
        help='Size of the tensorboard queue for pending events and summaries before one of the "add" calls forces a flush to disk.',
        status=EFFECTIVE,
    )
    log_timers_to_tensorboard: bool = flag(
        False,
        "--log-timers-to-tensorboard",
        action="store_true",
        help="If set, write timers to tensorboard.",
        status=EFFECTIVE,
    )
    log_loss_scale_to_tensorboard: bool = flag(
        True,
        "--no-log-loss-scale-to-tensorboard",
        action="store_false",
        help="Disable loss-scale logging to tensorboard.",
        status=EFFECTIVE,
    )
    log_validation_ppl_to_tensorboard: bool = flag(
        False,
        "--log-validation-ppl-to-tensorboard",
        action="store_true",
        help="If set, write validation perplexity to tensorboard.",
        status=EFFECTIVE,
    )
    log_memory_to_tensorboard: bool = flag(
        False,
        "--log-memory-to-tensorboard",
        action="store_true",
        help="Enable memory logging to tensorboard.",
        status=EFFECTIVE,
    )
    log_world_size_to_tensorboard: bool = flag(
        False,
        "--log-world-size-to-tensorboard",
        action="store_true",
        help="Enable world size logging to tensorboard.",
        status=EFFECTIVE,
    )
    wandb_project: str = flag(
        "",
        "--wandb-project",
        help="The wandb project name. Ignore wandb by default.",
        status=EFFECTIVE,
    )
    wandb_exp_name: str = flag(
        "", "--wandb-exp-name", help="The wandb experiment name.", status=EFFECTIVE
    )
    wandb_save_dir: str = flag(
        "",
        "--wandb-save-dir",
        help="Path to save the wandb results locally.",
        status=EFFECTIVE,
    )
    logging_level: int | None = flag(
        None, "--logging-level", type=int, help="Set default logging level", status=EFFECTIVE
    )


@dataclass(frozen=True, kw_only=True)
class StragglerConfig:
    """The original's "straggler" flags owned here."""

    GROUP: ClassVar[str] = "straggler"

    log_straggler: bool = flag(
        False,
        "--log-straggler",
        action="store_true",
        help="If set, tracks and logs straggler per GPU.",
        status=NOT_IMPLEMENTED,
    )
    disable_straggler_on_startup: bool = flag(
        False,
        "--disable-straggler-on-startup",
        action="store_true",
        help="If set, StragglerDetector is disabled on startup.",
        status=NOT_IMPLEMENTED,
    )
    straggler_ctrlr_port: int = flag(
        65535,
        "--straggler-ctrlr-port",
        type=int,
        help="Port number to toggle StragglerDetector on/off at runtime",
        status=NOT_IMPLEMENTED,
    )
    straggler_minmax_count: int = flag(
        1,
        "--straggler-minmax-count",
        type=int,
        help="Number of ranks to report with high/low estimated throughput",
        status=NOT_IMPLEMENTED,
    )


@dataclass(frozen=True, kw_only=True)
class WorkloadInspectorConfig:
    """The original's "workload inspector" flags owned here."""

    GROUP: ClassVar[str] = "workload inspector"

    run_workload_inspector_server: bool = flag(
        False,
        "--run-workload-inspector-server",
        action="store_true",
        help="If set, enables workload inspector server for on- demand profiling.",
        status=NEEDS_GPU,
        reason="the NVIDIA workload-inspector service",
    )


@dataclass(frozen=True, kw_only=True)
class RetroConfig:
    """The original's "retro" flags owned here."""

    GROUP: ClassVar[str] = "retro"

    retro_project_dir: str | None = flag(
        None,
        "--retro-project-dir",
        help="Retro project directory, which contains the preprocessed data for pretraining. This directory is built during preprocessing (see tools/retro/README.md), and contains subdirectories for the chunk database and pretraining neighbors.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_add_retriever: bool = flag(
        False,
        "--retro-add-retriever",
        action="store_true",
        help="Add a retriever to the transformer, for use in pretraining a Retro model.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_cyclic_train_iters: int | None = flag(
        None,
        "--retro-cyclic-train-iters",
        type=int,
        help="Set number of training iterations for cyclic Retro training.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_encoder_layers: int = flag(
        2,
        "--retro-encoder-layers",
        type=int,
        help="Number of layers to use for the retrieval encoder.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_encoder_hidden_dropout: float = flag(
        0.1,
        "--retro-encoder-hidden-dropout",
        type=float,
        help="Hidden dropout for retrieval encoder.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_encoder_attention_dropout: float = flag(
        0.1,
        "--retro-encoder-attention-dropout",
        type=float,
        help="Attention dropout for retrieval encoder.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_num_neighbors: int = flag(
        2,
        "--retro-num-neighbors",
        type=int,
        help="Number of neighbors to retrieve during pretraining.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_num_retrieved_chunks: int = flag(
        2,
        "--retro-num-retrieved-chunks",
        type=int,
        help="Number of chunks to retrieve from the retrieval database.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_attention_gate: float = flag(
        1,
        "--retro-attention-gate",
        type=float,
        help="Gated cross attention.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_verify_neighbor_count: bool = flag(
        True,
        "--retro-no-verify-neighbor-count",
        action="store_false",
        help="Skip verifying that len(GPT dataset) == len(saved neighbors).",
        status=NO_EFFECT,
        reason="RETRO models only",
    )


@dataclass(frozen=True, kw_only=True)
class ExperimentalConfig:
    """The original's "experimental" flags owned here."""

    GROUP: ClassVar[str] = "experimental"

    enable_experimental: bool = flag(
        False,
        "--enable-experimental",
        action="store_true",
        help="Enable experimental features.",
        status=NOT_IMPLEMENTED,
    )
    yaml_cfg: str | None = flag(
        None,
        "--yaml-cfg",
        help="Config file to add additional arguments",
        status=EFFECTIVE,
        reason="tests/pretrain/test_cli.py",
    )


@dataclass(frozen=True, kw_only=True)
class OneLoggerConfig:
    """The original's "one logger" flags owned here."""

    GROUP: ClassVar[str] = "one logger"

    enable_one_logger: bool = flag(
        True,
        "--no-one-logger",
        action="store_false",
        help="If set, disable using one_logger to track E2E metricsNote that one_logger is an internal tool and not available externally. For installation, please go to https://confluence.nvidia.com/display/MLWFO/Package +Repositoriesfor more details",
        status=NO_EFFECT,
        reason="NVIDIA one-logger telemetry is not part of gpt-stack",
    )
    one_logger_project: str = flag(
        "megatron-lm",
        "--one-logger-project",
        help="The one-logger project name. Will ignore if --no-one- logger is set",
        status=NO_EFFECT,
        reason="NVIDIA one-logger telemetry is not part of gpt-stack",
    )
    one_logger_run_name: str | None = flag(
        None,
        "--one-logger-run-name",
        help="The one-logger run name displayed. Will ignore if --no-one-logger is set",
        status=NO_EFFECT,
        reason="NVIDIA one-logger telemetry is not part of gpt-stack",
    )
    one_logger_async: bool = flag(
        False,
        "--one-logger-async",
        action="store_true",
        help="If set, forces one_logger to use async mode.",
        status=NO_EFFECT,
        reason="NVIDIA one-logger telemetry is not part of gpt-stack",
    )
    app_tag_run_name: str | None = flag(
        None,
        "--app-tag-run-name",
        help="Jobs belonging to same training run, suppose to have the same name. It will be used to track progress of a training done over multiple different jobs",
        status=NO_EFFECT,
        reason="NVIDIA one-logger telemetry is not part of gpt-stack",
    )
    app_tag_run_version: str = flag(
        "0.0.0",
        "--app-tag-run-version",
        help="The version of the training of which current job is part of. It will be used to track the changes in the application side which might change the performance baseline",
        status=NO_EFFECT,
        reason="NVIDIA one-logger telemetry is not part of gpt-stack",
    )


@dataclass(frozen=True, kw_only=True)
class InProcessRestartConfig:
    """The original's "In-process restart" flags owned here."""

    GROUP: ClassVar[str] = "In-process restart"

    inprocess_restart: bool = flag(
        False,
        "--inprocess-restart",
        action="store_true",
        help="Enables in-process restart.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_max_iterations: int | None = flag(
        None,
        "--inprocess-max-iterations",
        type=int,
        help="Maximum number of in-process restart iterations.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_monitor_thread_interval: float = flag(
        1.0,
        "--inprocess-monitor-thread-interval",
        type=float,
        help="Monitoring interval (in seconds) for the monitoring thread.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_monitor_process_interval: float = flag(
        1.0,
        "--inprocess-monitor-process-interval",
        type=float,
        help="Monitoring interval (in seconds) for the monitoring process.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_progress_watchdog_interval: float = flag(
        1.0,
        "--inprocess-progress-watchdog-interval",
        type=float,
        help="Interval (in seconds) for automatic progress watchdog timestamp updates.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_heartbeat_interval: float = flag(
        30,
        "--inprocess-heartbeat-interval",
        type=float,
        help="Monitoring interval (in seconds) for detecting unresponsive ranks.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_soft_timeout: float = flag(
        60,
        "--inprocess-soft-timeout",
        type=float,
        help="Soft progress timeout (in seconds).",
        status=NOT_IMPLEMENTED,
    )
    inprocess_hard_timeout: float = flag(
        90,
        "--inprocess-hard-timeout",
        type=float,
        help="Hard progress timeout (in seconds).",
        status=NOT_IMPLEMENTED,
    )
    inprocess_heartbeat_timeout: float = flag(
        60,
        "--inprocess-heartbeat-timeout",
        type=float,
        help="Timeout (in seconds) for a missing rank detection heartbeat.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_barrier_timeout: float = flag(
        120,
        "--inprocess-barrier-timeout",
        type=float,
        help="Timeout (in seconds) for internal distributed barrier",
        status=NOT_IMPLEMENTED,
    )
    inprocess_completion_timeout: float = flag(
        120,
        "--inprocess-completion-timeout",
        type=float,
        help="Timeout (in seconds) for barrier on completion on all ranks",
        status=NOT_IMPLEMENTED,
    )
    inprocess_last_call_wait: float = flag(
        1,
        "--inprocess-last-call-wait",
        type=float,
        help="Time interval (in seconds) for other ranks to report concurrent terminal failures.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_termination_grace_time: float = flag(
        1,
        "--inprocess-termination-grace-time",
        type=float,
        help="Interval (in seconds) between SIGTERM and SIGKILL issued on hard timeout",
        status=NOT_IMPLEMENTED,
    )
    inprocess_granularity: str = flag(
        "node",
        "--inprocess-granularity",
        choices=("node", "rank"),
        help="Granularity for in-process restart.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_active_world_size: int = flag(
        int(os.getenv("WORLD_SIZE", "1")),
        "--inprocess-active-world-size",
        type=int,
        help="The number of ranks initially executing the workload. The remaining ranks from the allocation are set aside as warm reserve.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_empty_cuda_cache: bool = flag(
        False,
        "--inprocess-empty-cuda-cache",
        action="store_true",
        help="Release all unoccupied cached GPU memory on every in- process restart.",
        status=NOT_IMPLEMENTED,
    )


@dataclass(frozen=True, kw_only=True)
class FtPackageConfig:
    """The original's "ft_package" flags owned here."""

    GROUP: ClassVar[str] = "ft_package"

    enable_ft_package: bool = flag(
        False,
        "--enable-ft-package",
        action="store_true",
        help="If set, Fault Tolerance package is enabled. Note: This feature is for Nvidia internal use only.",
        status=NEEDS_GPU,
        reason="the nvidia-resiliency-ext fault-tolerance launcher",
    )
    calc_ft_timeouts: bool = flag(
        False,
        "--calc-ft-timeouts",
        action="store_true",
        help="If set, FT package will try to automatically compute the timeouts. Note: This feature is for Nvidia internal use only.",
        status=NEEDS_GPU,
        reason="the nvidia-resiliency-ext fault-tolerance launcher",
    )


@dataclass(frozen=True, kw_only=True)
class ConfigLoggerConfig:
    """The original's "config logger" flags owned here."""

    GROUP: ClassVar[str] = "config logger"

    config_logger_dir: str = flag(
        "",
        "--config-logger-dir",
        help="If set, will dump all configs to --config-logger-dir",
        status=NOT_IMPLEMENTED,
    )


@dataclass(frozen=True, kw_only=True)
class RerunEngineConfig:
    """The original's "rerun engine" flags owned here."""

    GROUP: ClassVar[str] = "rerun engine"

    error_injection_rate: int = flag(
        0,
        "--error-injection-rate",
        type=int,
        help="Rate at which to inject unexpected results, e.g. 1000 means once every 1000 result validations",
        status=NOT_IMPLEMENTED,
    )
    error_injection_type: str = flag(
        "transient_error",
        "--error-injection-type",
        choices=("correct_result", "transient_error", "persistent_error"),
        help="Type of error to inject.",
        status=NOT_IMPLEMENTED,
    )
    rerun_mode: str = flag(
        "validate_results",
        "--rerun-mode",
        choices=("disabled", "validate_results", "report_stats"),
        help="Use re-run engine to validate results (default) or to emit stats on variability of computations due to non- deterministic algorithms.",
        status=NOT_IMPLEMENTED,
    )


@dataclass(frozen=True, kw_only=True)
class MSCConfig:
    """The original's "msc" flags owned here."""

    GROUP: ClassVar[str] = "msc"

    enable_msc: bool = flag(
        True,
        "--disable-msc",
        action="store_false",
        help="Disable the usage of Multi-Storage Client (MSC) in Megatron Core.",
        status=NO_EFFECT,
        reason="gpt-stack reads local paths; the multi-storage client is never used",
    )


@dataclass(frozen=True, kw_only=True)
class KitchenConfig:
    """The original's "kitchen" flags owned here."""

    GROUP: ClassVar[str] = "kitchen"

    kitchen_config_file: str | None = flag(
        None,
        "--kitchen-config-file",
        help="Use the config .yaml file at the specified location to configure kitchen quantization.",
        status=NEEDS_GPU,
        reason="the NVIDIA Kitchen quantization library (CUDA)",
    )
    kitchen_recipe_number: int | None = flag(
        None,
        "--kitchen-recipe-number",
        type=int,
        help="Use a default kitchen recipe for all layers as defined by QAT_PARAMS index",
        status=NEEDS_GPU,
        reason="the NVIDIA Kitchen quantization library (CUDA)",
    )
