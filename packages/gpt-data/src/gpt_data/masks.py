"""Causal masks, loss mask and position ids of one left-to-right sample."""

from __future__ import annotations

import torch


def get_ltor_masks_and_position_ids(
    tokens: torch.Tensor,
    eod_token: int,
    reset_position_ids: bool,
    reset_attention_mask: bool,
    eod_mask_loss: bool,
    create_attention_mask: bool,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """(attention_mask [1, S, S] bool with True = masked out, loss_mask [S] float, position_ids [S]).

    With resets, an EOD at position i ends a document: later tokens cannot attend to positions
    up to i, and positions restart at 0 at i + 1. With `eod_mask_loss`, positions whose input is
    EOD get no loss (predicting EOD itself is still trained).
    """
    seq_length = tokens.numel()
    device = tokens.device
    positions = torch.arange(seq_length, dtype=torch.long, device=device)
    is_eod = tokens == eod_token

    loss_mask = torch.ones(seq_length, dtype=torch.float, device=device)
    if eod_mask_loss:
        loss_mask[is_eod] = 0.0

    # Document number of every position: how many EODs come strictly before it.
    if reset_position_ids or reset_attention_mask:
        segment = torch.cumsum(is_eod.long(), dim=0) - is_eod.long()
    else:
        segment = None

    position_ids = positions
    if reset_position_ids:
        after_eod = torch.where(is_eod, positions + 1, torch.zeros_like(positions))
        document_start = torch.cummax(after_eod, dim=0).values
        # A document starts one past the last EOD strictly before the position.
        document_start = torch.cat((positions.new_zeros(1), document_start[:-1]))
        position_ids = positions - document_start

    attention_mask = None
    if create_attention_mask:
        allowed = positions[None, :] <= positions[:, None]
        if reset_attention_mask:
            allowed = allowed & (segment[None, :] == segment[:, None])
        attention_mask = (~allowed).unsqueeze(0)
    return attention_mask, loss_mask, position_ids
