"""The compiled regions: one graph per layer shape reused by every layer, the same loss and
gradients as the eager model (dropout included), and the --no-*-fusion flags keeping their
kernels out of them."""

from __future__ import annotations

import pytest
import torch
from gpt_models import GPTModel, TransformerConfig
from gpt_models.kernels import matmul
from gpt_models.provider import LocalProvider

TINY = {
    "num_layers": 2,
    "hidden_size": 32,
    "num_attention_heads": 4,
    "padded_vocab_size": 128,
    "max_position_embeddings": 16,
}
NO_FUSION = {
    "masked_softmax_fusion": False,
    "bias_gelu_fusion": False,
    "bias_swiglu_fusion": False,
    "bias_dropout_fusion": False,
    "apply_rope_fusion": False,
}


def _loss_and_grads(model: GPTModel, tokens: torch.Tensor, labels: torch.Tensor):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(7)  # the same dropout masks: CPU regions draw them as eager code does
    loss = model(tokens, labels=labels)
    loss.mean().backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_compiled_regions_match_the_eager_model_with_dropout_and_compile_once() -> None:
    config = TransformerConfig.from_flat(**TINY, cross_entropy_loss_fusion=True)
    eager_model = GPTModel(config, init_generator=torch.Generator().manual_seed(0))
    provider = LocalProvider(config, compile="auto")  # what the pretrain app passes by default
    model = GPTModel(config, provider=provider, init_generator=torch.Generator().manual_seed(0))
    region = provider.layer_region()
    assert region is not None and all(layer.region is region for layer in model.decoder.layers)
    assert model._loss_region is provider.loss_region() is not None
    assert eager_model.decoder.layers[0].region is not region  # each provider owns its own
    tokens = torch.randint(0, 128, (2, 16))
    labels = torch.randint(0, 128, (2, 16))
    eager_loss, eager_grads = _loss_and_grads(eager_model, tokens, labels)

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    loss, grads = _loss_and_grads(model, tokens, labels)
    # Two graphs: the layer region (shared by both layers) and the loss region.
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2
    torch.testing.assert_close(loss, eager_loss, atol=1e-5, rtol=1e-5)
    for name, grad in eager_grads.items():
        torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    model.eval()
    with torch.no_grad():  # evaluation runs eagerly: no new graph
        model(tokens, labels=labels)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2


def test_a_layer_without_fused_kernels_runs_eagerly_and_unfused_kernels_stay_eager() -> None:
    plain = LocalProvider(TransformerConfig.from_flat(**TINY, **NO_FUSION))
    assert plain.layer_fusions() == () and plain.layer_region() is None
    assert plain.loss_region() is None
    assert not hasattr(plain.bias_dropout_add(), "_torchdynamo_disable")  # no region: as is

    partial = LocalProvider(
        TransformerConfig.from_flat(**TINY, **{**NO_FUSION, "bias_gelu_fusion": True})
    )
    assert partial.layer_fusions() == ("bias_activation",)
    assert partial.layer_region() is partial.layer_region() is not None
    # Inside the region, the unfused bias-dropout-add is kept out of the compiled graph.
    assert getattr(partial.bias_dropout_add(), "_torchdynamo_disable", False)

    rope = TransformerConfig.from_flat(
        **TINY, position_embedding_type="rope", attention_backend="unfused"
    )
    assert LocalProvider(rope).layer_fusions() == (
        "bias_activation",
        "bias_dropout_add",
        "rope",
        "masked_softmax",
    )


def test_low_precision_gemm_in_fp32_rounds_once_like_a_native_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(matmul.NATIVE_LOW_PRECISION_GEMM, torch.bfloat16, False)
    torch.manual_seed(0)
    x = torch.randn(8, 32).to(torch.bfloat16).requires_grad_()
    w = torch.randn(16, 32).to(torch.bfloat16).requires_grad_()
    assert matmul.gemm_in_fp32(x)
    out = matmul.linear(x, w)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, (x.float() @ w.float().T).to(torch.bfloat16))
    out.float().sum().backward()
    assert x.grad.dtype == w.grad.dtype == torch.bfloat16
    scores = matmul.scaled_bmm(x[None], w.T[None], 0.5)
    assert torch.equal(scores, (0.5 * (x.float() @ w.float().T)).to(torch.bfloat16)[None])
    assert not matmul.gemm_in_fp32(x.float())
