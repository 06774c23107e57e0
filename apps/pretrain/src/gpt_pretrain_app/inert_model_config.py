"""Flags of models and data GPT pretraining does not use (legacy models, BERT/T5 data options,
autoresume, biencoder, vision): accepted so existing scripts run, and their status is
reported by `--flag-status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gpt_flags.flagspec import (
    NEEDS_GPU,
    NO_EFFECT,
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
