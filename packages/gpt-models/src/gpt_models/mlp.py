"""The dense MLP: linear_fc1 -> activation -> linear_fc2.

With swiglu ``linear_fc1`` is ``[gate; up]`` (2 * ffn rows) and the activation is
``silu(gate) * up``; under tensor parallelism each rank holds ``[gate_r; up_r]`` (a column
split with stride 2) and its ``ffn / size`` columns of ``linear_fc2``. Both linears keep their bias unadded (the original's ``skip_bias_add``):
fc1's bias goes into the (possibly fused) activation, fc2's into bias-dropout-add.
"""

from __future__ import annotations

import torch
from torch import nn

from gpt_models.provider import Provider
from gpt_models.transformer_config import TransformerConfig


class MLP(nn.Module):
    """h -> ffn (x2 for swiglu) -> h."""

    def __init__(
        self,
        config: TransformerConfig,
        provider: Provider,
        *,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        assert config.ffn_hidden_size is not None
        provider.partition.ffn_per_rank(config)  # one-line error when it does not split
        halves = 2 if config.gated_linear_unit else 1
        self.linear_fc1 = provider.column_parallel_linear(
            config.hidden_size,
            config.ffn_hidden_size * halves,
            bias=config.add_bias_linear,
            skip_bias_add=True,
            stride=halves,
            device=device,
        )
        self.linear_fc2 = provider.row_parallel_linear(
            config.ffn_hidden_size,
            config.hidden_size,
            bias=config.add_bias_linear,
            skip_bias_add=True,
            device=device,
        )
        self.bias_activation = provider.bias_activation()

    def fc1(self, hidden: torch.Tensor) -> torch.Tensor:
        """fc1 output before its bias (split out so recomputation can stop after it)."""
        return self.linear_fc1(hidden)[0]

    def finish(self, fc1_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Activation (with fc1's bias) and fc2; returns (output, unadded fc2 bias)."""
        return self.linear_fc2(self.bias_activation(fc1_out, self.linear_fc1.bias))

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.finish(self.fc1(hidden))
