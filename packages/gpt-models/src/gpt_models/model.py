"""The dense GPT model: embedding -> transformer layers -> final norm -> logits / loss.

Inputs are batch-first ``[b, s]`` token ids; inside, activations are sequence-first
``[s, b, h]`` as in the original. With ``labels`` the model returns the per-token
cross-entropy ``[b, s]`` (fp32, over the padded vocabulary; the caller applies the loss mask),
otherwise the logits ``[b, s, V]``.

Parameter names are the original's local-spec names (``embedding.word_embeddings.weight``,
``decoder.layers.{i}.self_attention.linear_qkv.weight``, ``decoder.layers.{i}.input_layernorm
.weight``, ``output_layer.weight``, the ``_extra_state`` entries, ...), so a state dict from the
original's ``--transformer-impl local`` checkpoints loads directly; ``original_names`` maps the
Transformer Engine names. For pipeline parallelism a stage is built with ``pre_process`` /
``post_process`` and the global ``layer_numbers`` it owns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from gpt_moe.experts import mark_expert
from gpt_moe.layer import MoEGroups
from gpt_moe.router import TopKRouter
from torch import nn

from gpt_models.block import TransformerBlock
from gpt_models.embedding import OutputLayer
from gpt_models.init import initialize_gpt_parameters
from gpt_models.moe import moe_aux_losses
from gpt_models.mtp import MTPBlock
from gpt_models.provider import Provider, provider_for
from gpt_models.rotary import RotaryEmbedding, RotaryTables
from gpt_models.spec import LayerSpec, gpt_block_spec
from gpt_models.tp_shards import (
    has_tensor_parallel_partial_grad,
    mark_tensor_parallel_partial_grad,
    split_of,
    tag,
)
from gpt_models.transformer_config import TransformerConfig


class GPTModel(nn.Module):
    """Decoder-only transformer language model."""

    def __init__(
        self,
        config: TransformerConfig,
        *,
        provider: Provider | None = None,
        specs: Sequence[LayerSpec] | None = None,
        pre_process: bool = True,
        post_process: bool = True,
        layer_numbers: Sequence[int] | None = None,
        device: torch.device | str | None = None,
        init_generator: torch.Generator | None = None,
        layout_independent_init: bool = False,
        moe_groups: MoEGroups | None = None,
    ) -> None:
        """Build (and, unless on the meta device, initialise) the model.

        ``specs`` defaults to ``gpt_block_spec(config)``; ``layer_numbers`` (global, 1-based)
        to all layers; both are indexed by global layer number so a pipeline stage passes the
        full spec list and its own numbers. ``init_generator`` None draws from torch's default
        generator, as the original does after seeding it. ``provider`` (default: the local
        one, one rank, no compilation) decides kernels, compilation and this rank's slice.
        ``layout_independent_init`` makes a pipeline stage draw exactly the one-process
        model's weights for the layers it holds (``init.initialize_gpt_parameters``).
        ``moe_groups`` are the process groups of the MoE layers (expert parallelism).
        """
        super().__init__()
        self.config = config
        self.provider = provider or provider_for(config)
        self.pre_process = pre_process
        self.post_process = post_process
        all_specs = tuple(specs) if specs is not None else gpt_block_spec(config)
        if len(all_specs) != config.num_layers:
            raise ValueError(f"{len(all_specs)} layer specs for --num-layers {config.num_layers}")
        numbers = list(range(1, config.num_layers + 1) if layer_numbers is None else layer_numbers)
        self.layout_independent_init = layout_independent_init
        self.share_embeddings_and_output_weights = config.share_embeddings_and_output_weights

        self.embedding = self.provider.embedding(device) if pre_process else None
        self.rotary_pos_emb = RotaryEmbedding(config) if config.uses_rope else None
        self.aux_losses = moe_aux_losses(config)
        self.moe_groups = moe_groups or MoEGroups()
        self.decoder = TransformerBlock(
            config,
            [all_specs[n - 1] for n in numbers],
            self.provider,
            numbers,
            post_process=post_process,
            device=device,
            aux_losses=self.aux_losses,
            moe_groups=self.moe_groups,
        )
        self.mtp: MTPBlock | None = None
        if config.mtp_num_layers and post_process:
            if not pre_process:
                raise ValueError(
                    "--mtp-num-layers needs the embedding on the last pipeline stage "
                    "(pipeline parallelism with MTP is not implemented)"
                )
            self.mtp = MTPBlock(
                config,
                all_specs[-1],
                self.provider,
                device=device,
                aux_losses=self.aux_losses,
                moe_groups=self.moe_groups,
            )
        self.output_layer: OutputLayer | None = None
        if post_process:
            own_weight = not (pre_process and self.share_embeddings_and_output_weights)
            self.output_layer = self.provider.output_layer(own_weight=own_weight, device=device)
        self._cross_entropy = self.provider.cross_entropy()
        # Read here, not in the loss: the compiled loss region traces no config lookups.
        self._fp16_cross_entropy = config.fp16_lm_cross_entropy
        self._loss_region = self.provider.loss_region()
        self._mark_embedding_and_output_weights()

        on_meta = any(p.is_meta for p in self.parameters())
        if config.perform_initialization and not on_meta:
            self.initialize_parameters(init_generator)

    def _mark_embedding_and_output_weights(self) -> None:
        """Tag the word embeddings and the output weight as the original does, for
        `--decoupled-lr` (their own learning rate)."""
        if self.embedding is not None:
            self.embedding.word_embeddings.weight.is_embedding_or_output_parameter = True
        if self.output_layer is not None and self.output_layer.weight is not None:
            self.output_layer.weight.is_embedding_or_output_parameter = True

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> GPTModel:
        """Keep the parameters' tags through conversions that replace them (``to_empty``
        from the meta device makes new parameters, which would come out untagged)."""
        splits = {
            name: split_of(p)
            for name, p in self.named_parameters()
            if hasattr(p, "tensor_model_parallel")
        }
        partial = {n for n, p in self.named_parameters() if has_tensor_parallel_partial_grad(p)}
        experts = {n for n, p in self.named_parameters() if not getattr(p, "allreduce", True)}
        result = super()._apply(fn, recurse)
        for name, param in self.named_parameters():
            if name in splits:
                tag(param, splits[name])
            if name in partial:
                mark_tensor_parallel_partial_grad(param)
            if name in experts:
                mark_expert(param)
        self._mark_embedding_and_output_weights()
        return result

    def initialize_parameters(self, generator: torch.Generator | None = None) -> None:
        """(Re)draw all weights like the original's CPU initialisation (this rank's slices)."""
        initialize_gpt_parameters(
            self,
            self.config,
            generator,
            self.provider.partition,
            layout_independent=self.layout_independent_init,
        )

    def routers(self) -> list[nn.Module]:
        """The MoE routers of this model chunk (their expert bias is updated per batch)."""
        return [m for m in self.modules() if isinstance(m, TopKRouter)]

    def output_weight(self) -> torch.Tensor | None:
        """The matrix the output layer multiplies by (the word embeddings when tied)."""
        if self.pre_process and self.share_embeddings_and_output_weights:
            assert self.embedding is not None
            return self.embedding.word_embeddings.weight
        return None

    def _rotary_tables(self, hidden: torch.Tensor) -> RotaryTables:
        """cos/sin for the positions this rank attends with: the whole sequence inside the
        tensor-parallel region, or this rank's two chunks of it under context parallelism."""
        assert self.rotary_pos_emb is not None
        local = self.provider.partition.full_sequence_length(hidden.shape[0])
        context = self.provider.context
        tables = self.rotary_pos_emb(local * context.size, hidden.device, self.config.params_dtype)
        if context.size == 1:
            return tables
        positions = context.positions(local, hidden.device)
        return RotaryTables(cos=tables.cos[positions], sin=tables.sin[positions])

    def compute_language_model_loss(
        self, labels: torch.Tensor, logits: torch.Tensor
    ) -> torch.Tensor:
        """labels [b, s], logits [s, b, V] -> per-token loss [b, s] (fp32 unless fp16 CE).

        As in the original, fp32 ``logits`` are overwritten (unfused loss): pass a copy to
        keep them."""
        if not (self._fp16_cross_entropy and logits.dtype == torch.float16):
            logits = logits.float()
        loss = self._cross_entropy(logits, labels.transpose(0, 1))
        return loss.transpose(0, 1).contiguous()

    def logits_and_loss(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Output layer and per-token loss: hidden [s, b, h], labels [b, s] -> loss [b, s]
        (the region --cross-entropy-loss-fusion compiles)."""
        assert self.output_layer is not None
        logits = self.output_layer(hidden, self.output_weight())
        return self.compute_language_model_loss(labels, logits)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        position_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        decoder_input: torch.Tensor | None = None,
        loss_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss [b, s] with labels, logits [b, s, V] without; hidden [s, b, h] on a
        stage without ``post_process``. ``attention_mask`` is a bool [b, 1, s, s] with
        True = masked, or None for causal attention; ``decoder_input`` feeds a stage
        without ``pre_process``. ``loss_mask`` [b, s] (all ones when None) masks the MTP
        losses, which are attached to the backward pass, not returned."""
        if self.pre_process:
            if input_ids is None:
                raise ValueError("the first stage needs input_ids")
            hidden = self.embedding(input_ids, position_ids)
        elif decoder_input is not None:
            hidden = decoder_input
        else:
            raise ValueError("a stage without pre_process needs decoder_input")
        rotary = None
        if self.rotary_pos_emb is not None:
            rotary = self._rotary_tables(hidden)
        hidden = self.decoder(hidden, attention_mask, rotary)
        if not self.post_process:
            return hidden
        if labels is None:
            assert self.output_layer is not None
            logits = self.output_layer(hidden, self.output_weight())
            return self.output_layer.gather_vocab(logits).transpose(0, 1).contiguous()
        if self.mtp is not None:
            hidden = self.mtp(
                hidden,
                input_ids,
                position_ids,
                labels,
                loss_mask,
                embed=lambda ids, positions: self.embedding(ids, positions),
                token_losses=self.logits_and_loss,
                attention_mask=attention_mask,
                rotary=rotary,
            )
        if self._loss_region is not None:
            return self._loss_region(self, hidden, labels)
        return self.logits_and_loss(hidden, labels)
