"""Which transformer layers each pipeline stage builds: the original's placement rules.

A run with ``--pipeline-model-parallel-size`` P and V virtual stages per rank has P * V model
chunks ("stages"), numbered in the order the layers run through them: stage ``i`` lives on
pipeline rank ``i % P`` as its chunk ``i // P``. Every rule below comes down to writing the
model as a row of symbols (``E`` embedding, ``t`` transformer layer, ``m`` MTP layer, ``L``
output layer and loss) and cutting that row into the P * V stages:

- default: the ``t`` layers cut evenly (``--num-layers`` divisible by P * V);
- ``--account-for-embedding-in-pipeline-split`` / ``--account-for-loss-in-pipeline-split``:
  ``E`` / ``L`` count as one layer each in the even cut, so the first / last stage builds
  one transformer layer fewer;
- ``--decoder-first-pipeline-num-layers`` / ``--decoder-last-pipeline-num-layers``: the first
  / last pipeline rank holds that many layers (split evenly over its V chunks), the other
  ranks share the rest evenly;
- ``--pipeline-model-parallel-layout``: the row written out by hand, e.g.
  ``"E|(t|)*3,m|m||L"``: stages split by ``|``, ``(...)*n`` and ``x*n`` repeat, commas are
  cosmetic. It sets V (stages / P).

MTP layers sit on the last stage, next to the loss, as the original (v0.14) builds them.
Every inconsistent input is a ``ValueError`` of one line naming the flag(s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpt_parallel.layout_config import DistributedConfig

LAYOUT_FLAG = "--pipeline-model-parallel-layout"
PP_FLAG = "--pipeline-model-parallel-size"
VPP_FLAG = "--num-virtual-stages-per-pipeline-rank"
FIRST_FLAG = "--decoder-first-pipeline-num-layers"
LAST_FLAG = "--decoder-last-pipeline-num-layers"
EMBEDDING_FLAG = "--account-for-embedding-in-pipeline-split"
LOSS_FLAG = "--account-for-loss-in-pipeline-split"
MTP_FLAG = "--mtp-num-layers"

EMBEDDING, LOSS, DECODER, MTP = "E", "L", "t", "m"
SYMBOLS = (EMBEDDING, LOSS, DECODER, MTP)

Stage = tuple[str, ...]


@dataclass(frozen=True)
class StagePlan:
    """What one model chunk builds: its global 1-based transformer-layer numbers (in order),
    whether it holds the embedding and the output layer + loss, and its MTP layers."""

    pp_rank: int
    vp_stage: int
    layer_numbers: tuple[int, ...]
    pre_process: bool
    post_process: bool
    mtp_layer_numbers: tuple[int, ...] = ()


@dataclass(frozen=True)
class PipelinePlan:
    """The stages of one run, in stage order (stage i = rank i % P, chunk i // P)."""

    pipeline_model_parallel_size: int
    virtual_pipeline_model_parallel_size: int | None
    """Chunks per rank; None without interleaving (one chunk), as the original."""
    stages: tuple[StagePlan, ...]

    @property
    def chunks_per_rank(self) -> int:
        return self.virtual_pipeline_model_parallel_size or 1

    def stage(self, pp_rank: int, vp_stage: int = 0) -> StagePlan:
        """The plan of rank ``pp_rank``'s chunk ``vp_stage``."""
        if not 0 <= pp_rank < self.pipeline_model_parallel_size:
            raise ValueError(f"pipeline rank {pp_rank} is outside {PP_FLAG}")
        if not 0 <= vp_stage < self.chunks_per_rank:
            raise ValueError(f"virtual stage {vp_stage} is outside {VPP_FLAG}")
        return self.stages[vp_stage * self.pipeline_model_parallel_size + pp_rank]

    def rank_stages(self, pp_rank: int) -> tuple[StagePlan, ...]:
        """The chunks pipeline rank ``pp_rank`` builds, in chunk order."""
        return tuple(self.stage(pp_rank, v) for v in range(self.chunks_per_rank))


# ------------------------------------------------------------------------ layout string ---
def _repeat_count(text: str, start: int) -> tuple[int, int]:
    """The ``n`` of a ``*n`` at ``start`` (1 when there is none) and where it ends."""
    if start >= len(text) or text[start] != "*":
        return 1, start
    end = start + 1
    while end < len(text) and text[end].isdigit():
        end += 1
    if end == start + 1:
        raise ValueError(f"{LAYOUT_FLAG}: '*' at position {start} is not followed by a count")
    return int(text[start + 1 : end]), end


def _expand(text: str) -> str:
    """Unroll ``(...)*n`` and ``x*n`` (no nested parentheses, as the original)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "(":
            close = text.find(")", i)
            body = text[i + 1 : close] if close >= 0 else ""
            if close < 0 or not body or "(" in body:
                raise ValueError(f"{LAYOUT_FLAG}: '(' at position {i} opens no '(...)*n' group")
            count, end = _repeat_count(text, close + 1)
            if end == close + 1:
                raise ValueError(f"{LAYOUT_FLAG}: the group '({body})' has no '*n' after it")
            out.append(_expand(body) * count)
            i = end
        elif char in ")*" or char.isdigit():
            raise ValueError(f"{LAYOUT_FLAG}: unexpected {char!r} at position {i}")
        else:
            count, i = _repeat_count(text, i + 1)
            out.append(char * count)
    return "".join(out)


def parse_pipeline_layout(layout: str) -> tuple[Stage, ...]:
    """The stages a layout string describes, in stage order, each a tuple of symbols."""
    stages = tuple(tuple(stage) for stage in _expand(layout.replace(",", "")).split("|"))
    for stage in stages:
        for symbol in stage:
            if symbol not in SYMBOLS:
                raise ValueError(
                    f"{LAYOUT_FLAG}: unknown symbol {symbol!r} (known: {', '.join(SYMBOLS)})"
                )
    return stages


def _check_layout(
    stages: Sequence[Stage], pp: int, num_layers: int, mtp_num_layers: int | None
) -> None:
    """The original's checks of a parsed layout (stage count, E/L placement, layer counts)."""
    flat = [symbol for stage in stages for symbol in stage]
    if len(stages) % pp:
        raise ValueError(
            f"{LAYOUT_FLAG} has {len(stages)} stages, not a multiple of {PP_FLAG} {pp}"
        )
    if flat.count(EMBEDDING) != 1 or stages[0][:1] != (EMBEDDING,):
        raise ValueError(f"{LAYOUT_FLAG} must open its first stage with the embedding 'E', once")
    if flat.count(LOSS) != 1 or stages[-1][-1:] != (LOSS,):
        raise ValueError(f"{LAYOUT_FLAG} must close its last stage with the loss 'L', once")
    if flat.count(DECODER) != num_layers:
        raise ValueError(
            f"{LAYOUT_FLAG} has {flat.count(DECODER)} transformer layers 't', "
            f"not --num-layers {num_layers}"
        )
    mtp = flat.count(MTP)
    if mtp != (mtp_num_layers or 0):
        raise ValueError(f"{LAYOUT_FLAG} has {mtp} MTP layers 'm', not {MTP_FLAG} {mtp_num_layers}")
    if stages[-1].count(MTP) != mtp:
        raise ValueError(f"{LAYOUT_FLAG}: all MTP layers 'm' must sit in the last stage, with 'L'")
    if mtp and DECODER in flat[flat.index(MTP) :]:
        raise ValueError(f"{LAYOUT_FLAG}: transformer layers 't' must come before MTP layers 'm'")


# ------------------------------------------------------------------- rule-based splits ---
def _check_virtual(pp: int, vpp: int | None) -> int:
    """Chunks per rank (1 without interleaving)."""
    if pp < 1:
        raise ValueError(f"{PP_FLAG} must be at least 1, not {pp}")
    if vpp is None:
        return 1
    if vpp < 1:
        raise ValueError(f"{VPP_FLAG} must be at least 1, not {vpp}")
    if vpp > 1 and pp == 1:
        raise ValueError(f"{VPP_FLAG} {vpp} needs {PP_FLAG} > 1")
    return vpp


def _even_stages(
    num_layers: int, pp: int, vpp: int, with_embedding: bool, with_loss: bool
) -> list[Stage]:
    """The even cut, with E / L counted as layers when accounted for."""
    row = [EMBEDDING] * with_embedding + [DECODER] * num_layers + [LOSS] * with_loss
    if len(row) % pp:
        accounted = "".join(
            f" + 1 ({flag})"
            for flag, on in ((EMBEDDING_FLAG, with_embedding), (LOSS_FLAG, with_loss))
            if on
        )
        raise ValueError(f"--num-layers {num_layers}{accounted} is not divisible by {PP_FLAG} {pp}")
    per_rank = len(row) // pp
    if per_rank % vpp:
        raise ValueError(
            f"{per_rank} layers per pipeline rank (--num-layers {num_layers}) "
            f"are not divisible by {VPP_FLAG} {vpp}"
        )
    size = per_rank // vpp
    return [tuple(row[i : i + size]) for i in range(0, len(row), size)]


def _uneven_stages(
    num_layers: int, pp: int, vpp: int, first: int | None, last: int | None
) -> list[Stage]:
    """First / last rank with their own counts, the middle ranks sharing the rest evenly."""
    if pp == 1:
        raise ValueError(f"{FIRST_FLAG} / {LAST_FLAG} need {PP_FLAG} > 1")
    for flag, count in ((FIRST_FLAG, first), (LAST_FLAG, last)):
        if count is None:
            continue
        if count <= 0:
            raise ValueError(f"{flag} must be larger than 0, not {count}")
        if count % vpp:
            raise ValueError(f"{flag} {count} is not divisible by {VPP_FLAG} {vpp}")
    middle_ranks = pp - (first is not None) - (last is not None)
    middle_layers = num_layers - (first or 0) - (last or 0)
    if middle_layers < 0 or (middle_ranks == 0 and middle_layers):
        raise ValueError(
            f"{FIRST_FLAG} {first} and {LAST_FLAG} {last} leave {middle_layers} of "
            f"--num-layers {num_layers} for {middle_ranks} middle pipeline ranks"
        )
    per_middle = middle_layers // middle_ranks if middle_ranks else 0
    if middle_ranks and (middle_layers % middle_ranks or per_middle % vpp):
        raise ValueError(
            f"{middle_layers} layers left by {FIRST_FLAG} / {LAST_FLAG} do not split evenly "
            f"over {middle_ranks} middle pipeline ranks x {VPP_FLAG} {vpp}"
        )
    counts = [per_middle] * pp
    if first is not None:
        counts[0] = first
    if last is not None:
        counts[-1] = last
    return [(DECODER,) * (counts[i % pp] // vpp) for i in range(pp * vpp)]


def _with_ends(stages: list[Stage], mtp_num_layers: int | None) -> list[Stage]:
    """Add E to the first stage and (MTP then) L to the last, where not already placed."""
    stages = list(stages)
    if EMBEDDING not in stages[0]:
        stages[0] = (EMBEDDING, *stages[0])
    tail = tuple(s for s in stages[-1] if s != LOSS)
    stages[-1] = tail + (MTP,) * (mtp_num_layers or 0) + (LOSS,)
    return stages


def _plans(stages: Sequence[Stage], pp: int) -> tuple[StagePlan, ...]:
    """Number the t and m symbols in stage order (1-based) and mark the E / L stages."""
    plans, layers, mtps = [], 0, 0
    for index, stage in enumerate(stages):
        own = [layers + 1 + k for k in range(stage.count(DECODER))]
        own_mtp = [mtps + 1 + k for k in range(stage.count(MTP))]
        layers, mtps = layers + len(own), mtps + len(own_mtp)
        plans.append(
            StagePlan(
                pp_rank=index % pp,
                vp_stage=index // pp,
                layer_numbers=tuple(own),
                pre_process=EMBEDDING in stage,
                post_process=LOSS in stage,
                mtp_layer_numbers=tuple(own_mtp),
            )
        )
    return tuple(plans)


def plan_pipeline_stages(
    *,
    num_layers: int,
    pipeline_model_parallel_size: int,
    virtual_pipeline_model_parallel_size: int | None = None,
    decoder_first_pipeline_num_layers: int | None = None,
    decoder_last_pipeline_num_layers: int | None = None,
    account_for_embedding_in_pipeline_split: bool = False,
    account_for_loss_in_pipeline_split: bool = False,
    pipeline_model_parallel_layout: str | None = None,
    mtp_num_layers: int | None = None,
) -> PipelinePlan:
    """Every stage's layers under the original's rules (see the module docstring).

    ``virtual_pipeline_model_parallel_size`` None or 1 means no interleaving; with a layout it
    may be left None (the layout sets it) or must agree with it."""
    pp = pipeline_model_parallel_size
    if num_layers < 1:
        raise ValueError(f"--num-layers must be at least 1, not {num_layers}")
    vpp = _check_virtual(pp, virtual_pipeline_model_parallel_size)
    uneven = decoder_first_pipeline_num_layers is not None or (
        decoder_last_pipeline_num_layers is not None
    )
    accounted = account_for_embedding_in_pipeline_split or account_for_loss_in_pipeline_split
    if pipeline_model_parallel_layout is not None:
        if uneven or accounted:
            raise ValueError(
                f"{LAYOUT_FLAG} cannot be combined with {FIRST_FLAG}, {LAST_FLAG}, "
                f"{EMBEDDING_FLAG} or {LOSS_FLAG}"
            )
        stages = list(parse_pipeline_layout(pipeline_model_parallel_layout))
        _check_layout(stages, pp, num_layers, mtp_num_layers)
        found = len(stages) // pp
        if virtual_pipeline_model_parallel_size is not None and vpp != found:
            raise ValueError(f"{VPP_FLAG} {vpp} disagrees with the {found} chunks of {LAYOUT_FLAG}")
        if found > 1 and pp == 1:
            raise ValueError(f"{LAYOUT_FLAG} with {len(stages)} stages needs {PP_FLAG} > 1")
        vpp = found
    elif uneven:
        if accounted:
            raise ValueError(
                f"{FIRST_FLAG} / {LAST_FLAG} cannot be combined with {EMBEDDING_FLAG} / {LOSS_FLAG}"
            )
        stages = _uneven_stages(
            num_layers,
            pp,
            vpp,
            decoder_first_pipeline_num_layers,
            decoder_last_pipeline_num_layers,
        )
        stages = _with_ends(stages, mtp_num_layers)
    else:
        stages = _even_stages(
            num_layers,
            pp,
            vpp,
            account_for_embedding_in_pipeline_split,
            account_for_loss_in_pipeline_split,
        )
        stages = _with_ends(stages, mtp_num_layers)
    return PipelinePlan(
        pipeline_model_parallel_size=pp,
        virtual_pipeline_model_parallel_size=vpp if vpp > 1 else None,
        stages=_plans(stages, pp),
    )


def plan_from_config(
    config: DistributedConfig, *, num_layers: int, mtp_num_layers: int | None = None
) -> PipelinePlan:
    """``plan_pipeline_stages`` with the flags of a validated ``DistributedConfig``."""
    return plan_pipeline_stages(
        num_layers=num_layers,
        pipeline_model_parallel_size=config.pipeline_model_parallel_size,
        virtual_pipeline_model_parallel_size=config.virtual_pipeline_model_parallel_size,
        decoder_first_pipeline_num_layers=config.decoder_first_pipeline_num_layers,
        decoder_last_pipeline_num_layers=config.decoder_last_pipeline_num_layers,
        account_for_embedding_in_pipeline_split=config.account_for_embedding_in_pipeline_split,
        account_for_loss_in_pipeline_split=config.account_for_loss_in_pipeline_split,
        pipeline_model_parallel_layout=config.pipeline_model_parallel_layout,
        mtp_num_layers=mtp_num_layers,
    )
