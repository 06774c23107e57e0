"""Each fused kernel: the compiled variant equals its plain reference (values and gradients),
and the references compute what the original computes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from gpt_models import TransformerConfig
from gpt_models.kernels import activations
from gpt_models.kernels.bias_dropout_add import bias_dropout_add_reference
from gpt_models.kernels.compiled import (
    COMPILE_ENV,
    NO_COMPILE_ENV,
    Compiled,
    check_compile_choice,
    compile_choice_from_environment,
)
from gpt_models.kernels.cross_entropy import (
    cross_entropy_formula,
    cross_entropy_inplace,
    cross_entropy_reference,
)
from gpt_models.kernels.rope import apply_rope_reference, rotate_half
from gpt_models.kernels.softmax import (
    MASK_FILL_VALUE,
    causal_mask,
    scale_mask_softmax_reference,
)
from gpt_models.provider import LocalProvider

ATOL = 1e-6


def _all_kernels(x, bias, residual, scores, mask, t, cos, sin, logits, target):
    """Every fused kernel's reference on one set of inputs (one graph for inductor)."""
    return (
        activations.bias_gelu_reference(x, bias),
        activations.bias_swiglu_reference(x, bias),
        bias_dropout_add_reference(x, bias, residual, 0.0, True),
        scale_mask_softmax_reference(scores, mask, 2.0, True),
        apply_rope_reference(t, cos, sin, False),
        apply_rope_reference(t, cos, sin, True),
        cross_entropy_formula(logits, target),
    )


def test_inductor_compiled_kernels_equal_their_references_with_gradients() -> None:
    torch.manual_seed(0)
    s, b, h = 8, 2, 32
    angles = torch.rand(s, 1, 1, 12) * 6  # rotary_percent 0.75: 4 pass-through channels
    floats = [
        torch.randn(s, b, h),
        torch.randn(h),
        torch.randn(s, b, h),
        torch.randn(b, 4, s, s),
        torch.randn(s, b, 4, 16),
        torch.randn(s, b, 100) * 3,
    ]
    fixed = {
        "mask": causal_mask(s, s, "cpu"),
        "cos": angles.cos(),
        "sin": angles.sin(),
        "target": torch.randint(0, 100, (s, b)),
    }

    def run(fn):
        leaves = [t.clone().requires_grad_() for t in floats]
        x, bias, residual, scores, t, logits = leaves
        outs = fn(x, bias, residual, scores, fixed["mask"], t, fixed["cos"], fixed["sin"],
                  logits, fixed["target"])  # fmt: skip
        torch.manual_seed(1)
        sum(((o * torch.randn_like(o)).sum() for o in outs), torch.zeros(())).backward()
        return outs, [leaf.grad for leaf in leaves]

    eager_out, eager_grads = run(_all_kernels)
    compiled_out, compiled_grads = run(torch.compile(_all_kernels, dynamic=False))
    for got, want in zip(compiled_out + tuple(compiled_grads), eager_out + tuple(eager_grads)):
        torch.testing.assert_close(got, want, atol=ATOL, rtol=1e-6)


def test_the_provider_wraps_each_reference_in_its_own_compiled_kernel() -> None:
    tiny = dict(
        num_layers=1,
        hidden_size=32,
        num_attention_heads=4,
        padded_vocab_size=64,
        max_position_embeddings=16,
    )
    gelu = LocalProvider(
        TransformerConfig.from_flat(**tiny, cross_entropy_loss_fusion=True), compile="auto"
    )
    swiglu = LocalProvider(TransformerConfig.from_flat(**tiny, swiglu=True, ffn_hidden_size=48))
    pairs = [
        (gelu.bias_activation(), activations.bias_gelu_reference),
        (swiglu.bias_activation(), activations.bias_swiglu_reference),
        (gelu.bias_dropout_add(), bias_dropout_add_reference),
        (gelu.masked_softmax(), scale_mask_softmax_reference),
        (gelu.apply_rope(), apply_rope_reference),
        (gelu.cross_entropy(), cross_entropy_formula),
    ]
    for fused, reference in pairs:
        assert isinstance(fused, Compiled) and fused.fn is reference
    assert gelu.bias_dropout_add() is gelu.bias_dropout_add()  # one per provider
    assert gelu.bias_dropout_add().mode == "auto" and swiglu.bias_activation().mode == "off"


def _fake_compile(compiles: list, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_compile(fn, dynamic=None, options=None):
        compiles.append(options)
        return lambda *a, **k: fn(*a, **k) * 10  # recognisable "compiled" result

    monkeypatch.setattr(torch, "compile", fake_compile)


def test_compiled_wrapper_compiles_once_in_training_unless_switched_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiles: list = []
    _fake_compile(compiles, monkeypatch)
    x = torch.zeros(2)
    off = Compiled(lambda x: x + 1)  # the library default: eager
    assert torch.equal(off(x), torch.ones(2)) and not compiles
    wrapped = Compiled(lambda x: x + 1, mode="auto")  # CPU tensors compile too
    assert torch.equal(wrapped(x), torch.full((2,), 10.0))
    assert torch.equal(wrapped(x), torch.full((2,), 10.0))
    assert compiles == [{"cpp_wrapper": True, "fallback_random": True}]  # once
    with torch.no_grad():  # evaluation and inference run eagerly
        assert torch.equal(wrapped(x), torch.ones(2))
    assert len(compiles) == 1


def test_the_environment_gives_the_compile_choice_only_when_asked() -> None:
    assert compile_choice_from_environment({}) == "auto"
    assert compile_choice_from_environment({NO_COMPILE_ENV: "1"}) == "off"
    assert compile_choice_from_environment({NO_COMPILE_ENV: "0"}) == "auto"
    assert compile_choice_from_environment({COMPILE_ENV: "off"}) == "off"
    assert compile_choice_from_environment({COMPILE_ENV: "auto", NO_COMPILE_ENV: "1"}) == "auto"


def test_compile_mode_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match="'fast' is not one of auto, off"):
        check_compile_choice("fast")
    with pytest.raises(ValueError, match="'fast' is not one of auto, off"):
        Compiled(lambda x: x, mode="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="GPT_STACK_COMPILE='on' is not one of auto, off"):
        compile_choice_from_environment({COMPILE_ENV: "on"})


def test_compiler_failure_falls_back_to_eager_once_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise torch._dynamo.exc.BackendCompilerFailed(lambda: None, RuntimeError("no g++"), None)

    monkeypatch.setattr(torch, "compile", lambda fn, dynamic=None, options=None: broken)
    wrapped = Compiled(lambda x: x + 1, "add_one", mode="auto")
    with pytest.warns(UserWarning, match="torch.compile of add_one failed"):
        assert torch.equal(wrapped(torch.zeros(2)), torch.ones(2))
    assert torch.equal(wrapped(torch.zeros(2)), torch.ones(2))
    assert calls == [1, 1, 1]  # each option set once (C++ wrapper, ..., defaults), then never


def test_fused_bias_gelu_is_the_tanh_approximation_like_the_original() -> None:
    x = torch.linspace(-4, 4, 101)
    zero = torch.zeros(())
    tanh_gelu = F.gelu(x, approximate="tanh")
    fused = activations.bias_gelu_reference(x, zero)
    torch.testing.assert_close(fused, tanh_gelu, atol=1e-6, rtol=0)
    assert (fused - F.gelu(x)).abs().max() > 1e-4  # not the exact erf GeLU


def test_openai_gelu_equals_gpt2_gelu_new() -> None:
    from transformers.activations import NewGELUActivation

    x = torch.randn(1000) * 3
    torch.testing.assert_close(activations.openai_gelu(x), NewGELUActivation()(x))


def test_swiglu_is_silu_of_first_half_times_second_half() -> None:
    x = torch.randn(3, 10)
    expected = F.silu(x[:, :5]) * x[:, 5:]
    torch.testing.assert_close(activations.bias_swiglu_reference(x, None), expected)
    torch.testing.assert_close(activations.squared_relu(x), F.relu(x) ** 2)


def test_bias_dropout_add_drops_then_adds_the_residual() -> None:
    torch.manual_seed(0)
    x, bias, residual = torch.randn(1000), torch.randn(1000), torch.randn(1000)
    out = bias_dropout_add_reference(x, bias, residual, 0.5, True)
    kept = out != residual
    torch.testing.assert_close(out[kept], residual[kept] + 2 * (x + bias)[kept])
    assert 0.4 < kept.float().mean() < 0.6
    eval_out = bias_dropout_add_reference(x, bias, residual, 0.5, False)
    torch.testing.assert_close(eval_out, residual + x + bias)


def test_masked_softmax_fills_minus_10000_and_keeps_input_dtype() -> None:
    scores = torch.randn(1, 1, 3, 3, dtype=torch.bfloat16)
    mask = torch.ones(1, 1, 3, 3, dtype=torch.bool)
    probs = scale_mask_softmax_reference(scores, mask, None, True)
    assert probs.dtype == torch.bfloat16
    # All masked: every score becomes -10000, so the row is uniform instead of NaN.
    torch.testing.assert_close(probs.float(), torch.full((1, 1, 3, 3), 1 / 3), atol=1e-3, rtol=0)
    assert MASK_FILL_VALUE == -10000.0
    causal = scale_mask_softmax_reference(
        torch.randn(1, 2, 4, 4), causal_mask(4, 4, "cpu"), 1.0, False
    )
    assert torch.all(causal.triu(1) == 0)


def test_rotate_half_and_interleaved_agree_after_permuting_channels() -> None:
    torch.manual_seed(0)
    t = torch.randn(5, 1, 2, 8)
    freqs = torch.rand(5, 4) * 3
    half_cos = torch.cat((freqs, freqs), -1).cos()[:, None, None]
    half_sin = torch.cat((freqs, freqs), -1).sin()[:, None, None]
    inter = torch.stack((freqs, freqs), -1).flatten(-2)
    perm = torch.tensor([0, 4, 1, 5, 2, 6, 3, 7])  # half layout -> interleaved layout
    out_half = apply_rope_reference(t, half_cos, half_sin, False)
    out_inter = apply_rope_reference(
        t[..., perm], inter.cos()[:, None, None], inter.sin()[:, None, None], True
    )
    torch.testing.assert_close(out_inter, out_half[..., perm])
    assert torch.equal(
        rotate_half(torch.tensor([1.0, 2, 3, 4]), False), torch.tensor([-3.0, -4, 1, 2])
    )
    assert torch.equal(
        rotate_half(torch.tensor([1.0, 2, 3, 4]), True), torch.tensor([-2.0, 1, -4, 3])
    )


def test_cross_entropy_reference_equals_torch_cross_entropy_with_gradients() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(2, 6, 50) * 4, torch.randint(0, 50, (2, 6))
    weights = torch.rand(2, 6)

    def loss_and_grad(fn, *, clone: bool = False):
        leaf = logits.clone().requires_grad_()
        x = leaf * 1.0 if clone else leaf  # an in-place loss must not write into a leaf
        loss = fn(x, target)
        (loss * weights).sum().backward()
        return loss, leaf.grad

    def torch_ce(x, t):
        return F.cross_entropy(x.transpose(1, 2), t, reduction="none")

    expected, expected_grad = loss_and_grad(torch_ce)
    for fn in (cross_entropy_reference, cross_entropy_formula):
        loss, grad = loss_and_grad(fn)
        torch.testing.assert_close(loss, expected)
        torch.testing.assert_close(grad, expected_grad)
    loss, grad = loss_and_grad(cross_entropy_inplace, clone=True)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, expected_grad)


def test_inplace_cross_entropy_reuses_the_logits_memory_for_its_exponentials() -> None:
    logits, target = torch.randn(4, 10), torch.randint(0, 10, (4,))
    kept = logits.clone()
    cross_entropy_inplace(logits, target)
    shifted = kept - kept.amax(dim=-1, keepdim=True)
    torch.testing.assert_close(logits, shifted.exp())  # overwritten, as the original does
    untouched = kept.clone()
    cross_entropy_reference(untouched, target)
    assert torch.equal(untouched, kept)
