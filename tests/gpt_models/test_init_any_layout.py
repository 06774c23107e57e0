"""With ``layout_independent`` initialisation, every pipeline stage (and tensor-parallel slice
of it), built on its own, holds exactly the one-process model's numbers.

Each stage is built on the meta device, materialised with ``to_empty`` (so any weight the
initialisation forgot would hold garbage) and initialised from the same seed as the
one-process model; every parameter must then be ``torch.equal`` to the one-process model's
(its tensor-parallel slice of it). The stages come from gpt-parallel's placement rules.
"""

from __future__ import annotations

import re

import pytest
import torch
from gpt_models import GPTModel, TransformerConfig
from gpt_models import init as init_module
from gpt_models.init import initialize_gpt_parameters
from gpt_models.partition import TensorParallelPartition
from gpt_models.provider import LocalProvider
from gpt_models.tp_shards import shard, split_of
from gpt_parallel.pipeline_layout import StagePlan, plan_pipeline_stages

SEED = 1234
TINY = dict(
    num_layers=4,
    hidden_size=32,
    num_attention_heads=4,
    padded_vocab_size=64,
    max_position_embeddings=16,
    use_cpu_initialization=True,
    hidden_dropout=0.0,
    attention_dropout=0.0,
)
CASES = {
    "gpt": dict(position_embedding_type="learned_absolute", add_bias_linear=True),
    "llama": dict(
        position_embedding_type="rope",
        normalization="RMSNorm",
        swiglu=True,
        add_bias_linear=False,
        untie_embeddings_and_output_weights=True,
        num_query_groups=2,
        ffn_hidden_size=48,
    ),
    # Xavier draws uniforms: skipping them must advance the generator the same way.
    "gpt_xavier": dict(position_embedding_type="learned_absolute", init_method_xavier_uniform=True),
}
LAYOUTS = {
    "pp2": dict(pipeline_model_parallel_size=2),
    "pp4": dict(pipeline_model_parallel_size=4),
    "pp2_first1_last3": dict(
        pipeline_model_parallel_size=2,
        decoder_first_pipeline_num_layers=1,
        decoder_last_pipeline_num_layers=3,
    ),
    "pp2_vpp2": dict(pipeline_model_parallel_size=2, virtual_pipeline_model_parallel_size=2),
    "layout_string": dict(pipeline_model_parallel_size=2, pipeline_model_parallel_layout="Ettt|tL"),
}
LAYER = re.compile(r"decoder\.layers\.(\d+)\.(.*)")


def _config(case: str) -> TransformerConfig:
    return TransformerConfig.from_flat(**TINY, **CASES[case])


def _one_process(config: TransformerConfig) -> dict[str, torch.Tensor]:
    model = GPTModel(config, init_generator=torch.Generator().manual_seed(SEED))
    return dict(model.named_parameters())


def _stage(
    config: TransformerConfig, plan: StagePlan, partition: TensorParallelPartition
) -> GPTModel:
    model = GPTModel(
        config,
        provider=LocalProvider(config, partition),
        pre_process=plan.pre_process,
        post_process=plan.post_process,
        layer_numbers=plan.layer_numbers,
        device="meta",
    )
    model.to_empty(device="cpu")
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(float("nan"))
    generator = torch.Generator().manual_seed(SEED)
    initialize_gpt_parameters(model, config, generator, partition, layout_independent=True)
    return model


def _one_process_name(name: str, plan: StagePlan, config: TransformerConfig) -> str:
    """The one-process name of a stage's parameter (local layer index -> global number)."""
    match = LAYER.fullmatch(name)
    if match:
        number = plan.layer_numbers[int(match.group(1))]
        return f"decoder.layers.{number - 1}.{match.group(2)}"
    if name == "output_layer.weight" and config.share_embeddings_and_output_weights:
        # The last stage's copy of the tied word embeddings.
        return "embedding.word_embeddings.weight"
    return name


def _check_stages(config: TransformerConfig, layout: dict, tp: int = 1) -> set[str]:
    """Compare every stage x tensor-parallel rank with the one-process model; returns the
    one-process names covered."""
    reference = _one_process(config)
    plan = plan_pipeline_stages(num_layers=config.num_layers, **layout)
    covered: set[str] = set()
    for stage in plan.stages:
        for rank in range(tp):
            partition = TensorParallelPartition(tp, rank)
            model = _stage(config, stage, partition)
            for name, param in model.named_parameters():
                full_name = _one_process_name(name, stage, config)
                expected = reference[full_name]
                if tp > 1:
                    expected = shard(expected, split_of(param), tp, rank)
                where = (stage.pp_rank, stage.vp_stage, rank, name)
                assert torch.equal(param.detach(), expected.detach()), where
                covered.add(full_name)
    return covered


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_stage_holds_the_one_process_weights(case: str, layout: str) -> None:
    config = _config(case)
    covered = _check_stages(config, LAYOUTS[layout])
    assert covered == set(_one_process(config))


@pytest.mark.parametrize("case", ["gpt", "llama"])
def test_pp2_by_tp2_slices_are_the_one_process_slices(case: str) -> None:
    config = _config(case)
    covered = _check_stages(config, LAYOUTS["pp2"], tp=2)
    assert covered == set(_one_process(config))


@pytest.mark.parametrize("case", ["gpt", "llama", "gpt_xavier"])
def test_skipping_in_small_chunks_lands_on_the_same_draws(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Skipped tensors drawn 32 numbers at a time (remainders of 1..31 included) still leave
    the generator where one whole draw would."""
    monkeypatch.setattr(init_module, "SKIP_CHUNK", 32)
    config = _config(case)
    _check_stages(config, LAYOUTS["pp4"])


def test_skip_matches_a_whole_draw_for_any_length(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(init_module, "SKIP_CHUNK", 48)
    for init in (init_module.normal_init(0.02), init_module.xavier_uniform_init):
        for numel in (1, 15, 16, 17, 47, 48, 63, 64, 95, 96, 97, 1000):
            whole, skipped = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
            init(torch.empty(numel, 1), whole)
            init.skip((numel, 1), skipped)
            assert torch.equal(torch.rand(4, generator=whole), torch.rand(4, generator=skipped)), (
                init,
                numel,
            )


def test_one_process_model_is_the_same_either_way() -> None:
    config = _config("gpt")
    model = GPTModel(config, init_generator=torch.Generator().manual_seed(SEED))
    before = {k: v.clone() for k, v in model.state_dict().items() if torch.is_tensor(v)}
    initialize_gpt_parameters(
        model, config, torch.Generator().manual_seed(SEED), layout_independent=True
    )
    for key, value in model.state_dict().items():
        if torch.is_tensor(value):
            assert torch.equal(value, before[key]), key


def test_default_stage_draws_only_its_own_weights_like_the_original() -> None:
    """Without ``layout_independent`` stage 1 of PP2 starts drawing at its first layer (the
    original's per-stage draw), so it does not hold the one-process numbers."""
    config = _config("llama")
    reference = _one_process(config)
    stage = GPTModel(
        config,
        pre_process=False,
        layer_numbers=[3, 4],
        init_generator=torch.Generator().manual_seed(SEED),
    )
    ours = dict(stage.named_parameters())
    first = "decoder.layers.0.self_attention.linear_proj.weight"
    assert not torch.equal(
        ours[first], reference["decoder.layers.2.self_attention.linear_proj.weight"]
    )
    expected = torch.empty(ours[first].shape).normal_(
        0.0, config.init_std_output_layers, generator=torch.Generator().manual_seed(SEED)
    )
    assert torch.equal(ours[first].detach(), expected)


def test_a_weight_of_the_wrong_shape_is_one_line() -> None:
    config = _config("gpt")
    model = GPTModel(config, init_generator=torch.Generator().manual_seed(SEED))
    other = TransformerConfig.from_flat(**{**TINY, "hidden_size": 64}, **CASES["gpt"])
    with pytest.raises(ValueError, match="embedding.word_embeddings.weight: full shape") as err:
        initialize_gpt_parameters(model, other, layout_independent=True)
    assert len(str(err.value).splitlines()) == 1


def test_a_stage_without_layers_builds_none() -> None:
    """Standalone embedding / loss stages ("E|...|L", or --account-for-*-in-pipeline-split
    with one layer per rank) hold no transformer layers."""
    config = _config("gpt")
    plan = plan_pipeline_stages(
        num_layers=4, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="E|tt|tt|L"
    )
    empty = plan.stage(0, 0)
    assert empty.layer_numbers == ()
    model = _stage(config, empty, TensorParallelPartition())
    assert len(model.decoder.layers) == 0
