"""A plain PyTorch GPT-2-style model, compiled whole: the third contestant of train_cpu.py.

It is the kind of model the speed aim of the training issue was set against ("a plain PyTorch
model of that shape with SDPA attention ... once compiled with torch.compile"): pre-LayerNorm
blocks, fused QKV, ``scaled_dot_product_attention`` (causal), tanh-GeLU MLP, learned positions,
tied embeddings, the same dropout as ours, ``F.cross_entropy``; the whole forward and loss are
one ``torch.compile`` graph, and torch's AdamW with the same settings as ours steps it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, ffn: int, dropout: float, attn_dropout: float):
        super().__init__()
        self.heads, self.dropout, self.attn_dropout = heads, dropout, attn_dropout
        self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv, self.proj = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, hidden)
        self.fc1, self.fc2 = nn.Linear(hidden, ffn), nn.Linear(ffn, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        qkv = self.qkv(self.ln1(x)).view(b, s, 3, self.heads, h // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        p = self.attn_dropout if self.training else 0.0
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        attn = self.proj(attn.transpose(1, 2).reshape(b, s, h))
        x = x + F.dropout(attn, self.dropout, self.training)
        mlp = self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))
        return x + F.dropout(mlp, self.dropout, self.training)


class PlainGPT(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        h, self.dropout = config.hidden_size, config.hidden_dropout
        self.wte = nn.Embedding(config.padded_vocab_size, h)
        self.wpe = nn.Embedding(config.max_position_embeddings, h)
        self.blocks = nn.ModuleList(
            Block(
                h,
                config.num_attention_heads,
                config.ffn_hidden_size,
                config.hidden_dropout,
                config.attention_dropout,
            )
            for _ in range(config.num_layers)
        )
        self.ln_f = nn.LayerNorm(h)

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = self.wte(tokens) + self.wpe.weight[: tokens.shape[1]]
        x = F.dropout(x, self.dropout, self.training)
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), labels.reshape(-1))


def plain_step(
    config,
    tokens: torch.Tensor,
    labels: torch.Tensor,
    make_optimizer: Callable[..., torch.optim.Optimizer],
    seed: int,
) -> Callable[[], None]:
    """Forward (compiled whole), backward, clipping at 1.0, and the optimizer
    ``make_optimizer(parameters)`` builds (the bench passes AdamW set up as ours)."""
    torch.manual_seed(seed)
    model = PlainGPT(config).to(config.params_dtype)
    model.train()
    compiled = torch.compile(model)
    optimizer = make_optimizer(model.parameters())

    def step() -> None:
        compiled(tokens, labels).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()

    return step
