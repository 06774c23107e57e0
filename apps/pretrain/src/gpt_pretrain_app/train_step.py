"""One training iteration on one model chunk: micro-batches forward and backward, then the
optimizer step (pretrain_gpt's forward_step and loss_func, the no-pipelining schedule, and
training.train_step of the original).

Each micro-batch reports `[sum(loss * mask), num_tokens]`; the loss it backpropagates is
`sum / num_tokens / num_microbatches`, or the raw sum with `--calculate-per-token-loss`, where
the gradients are divided by the iteration's token count afterwards.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from gpt_parallel.collectives import all_reduce_
from gpt_parallel.context_parallel import split_batch_for_context_parallel
from gpt_parallel.losses import loss_for_backward, reduce_loss_reports
from gpt_parallel.optim.clip_grads import l2_norm

from .result_checks import ResultChecks
from .timers import Timers

LOSS_KEY = "lm loss"


@dataclass
class StepSettings:
    """What a step needs besides the model, optimizer and data (from the flags)."""

    micro_batch_size: int
    data_parallel_size: int
    calculate_per_token_loss: bool
    empty_unused_memory_level: int
    use_causal_shortcut: bool
    """No dataset-made mask is needed when it is the plain causal mask (no --reset-attention-mask):
    the model's causal attention is the same and faster."""
    grad_accumulator: Any = None
    """An FP32GradAccumulator when fp16/bf16 gradients are summed in fp32 (`main_grad`)."""
    vocab_size: int | None = None
    """Token ids must be below this (the padded vocabulary): a wrong corpus stops with one line
    instead of an index error deep in the embedding."""
    context_parallel: tuple[int, int] = (0, 1)
    """(rank, size) in the context-parallel group: each micro-batch keeps this rank's two
    sequence chunks (the original's get_batch_on_this_cp_rank)."""
    ddp: Any = None
    """The DistributedDataParallel wrapper: gradients are reduced after the last micro-batch."""
    finalizer: Any = None
    """A GradFinalizer run after the last backward (DP reduction, tensor-parallel sums)."""
    pipeline: Any = None
    """A PipelineStep when --pipeline-model-parallel-size > 1: the model is this rank's chunks
    and the micro-batches run through the pipeline schedule."""
    moe: Any = None
    """A MoEStep for models with experts: router-loss scale, expert-bias update, log values."""


@dataclass
class StepResult:
    losses: dict[str, float]
    skipped: bool
    grad_norm: float | None
    num_zeros: int | None


def next_batch(data_iterator: Any, device: torch.device, use_causal_shortcut: bool) -> dict:
    """The next micro-batch on `device` (the original's get_batch; every tensor-parallel rank
    reads the same samples itself instead of receiving them from TP rank 0)."""
    try:
        batch = next(data_iterator)
    except StopIteration:
        raise StopIteration("the data iterator ran out of samples") from None
    moved = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    if use_causal_shortcut:
        moved.pop("attention_mask", None)
    return moved


def prepared_batch(data_iterator: Any, device: torch.device, settings: StepSettings) -> dict:
    """The next micro-batch on `device`, its ids checked, cut to this context-parallel rank."""
    batch = next_batch(data_iterator, device, settings.use_causal_shortcut)
    if settings.vocab_size is not None:
        check_batch_ids(batch, settings.vocab_size)
    return context_parallel_part(batch, *settings.context_parallel)


def context_parallel_part(batch: dict, rank: int, size: int) -> dict:
    """This context-parallel rank's chunks of every tensor of the micro-batch."""
    if size == 1:
        return batch
    if "position_ids" not in batch:
        tokens = batch["tokens"]
        batch = {**batch, "position_ids": torch.arange(tokens.shape[1], device=tokens.device)}
        batch["position_ids"] = batch["position_ids"].expand_as(tokens)
    return split_batch_for_context_parallel(batch, rank, size)


def check_batch_ids(batch: dict, vocab_size: int) -> None:
    """A token id outside the embedding table means the data and the tokenizer disagree."""
    tokens = batch["tokens"]
    largest = int(tokens.max())
    if largest >= vocab_size or int(tokens.min()) < 0:
        raise ValueError(
            f"the data holds token id {largest}, outside the model's vocabulary of {vocab_size}: "
            "was it preprocessed with another tokenizer (--tokenizer-type, --vocab-size)?"
        )


def forward_microbatch(
    model: torch.nn.Module, batch: dict, checks: ResultChecks | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked loss sum, token count) of one micro-batch; the loss checks run on the sum."""
    per_token = model(
        batch["tokens"],
        position_ids=batch.get("position_ids"),
        attention_mask=batch.get("attention_mask"),
        labels=batch["labels"],
        loss_mask=batch["loss_mask"],
    )
    return masked_loss(per_token, batch["loss_mask"], checks)


def masked_loss(
    per_token: torch.Tensor, loss_mask: torch.Tensor, checks: ResultChecks | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of the per-token losses the mask keeps, their count): the original's loss_func."""
    mask = loss_mask.reshape(-1).float()
    loss_sum = torch.sum(per_token.reshape(-1).float() * mask)
    num_tokens = mask.sum().to(torch.int)
    if checks is not None:
        checks.loss(loss_sum.item())
    return loss_sum, num_tokens


def forward_backward(
    model: torch.nn.Module,
    data_iterator: Any,
    num_microbatches: int,
    settings: StepSettings,
    device: torch.device,
    *,
    forward_only: bool,
    optimizer: Any = None,
    checks: ResultChecks | None = None,
    timers: Timers | None = None,
) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
    """Every micro-batch of one iteration; returns their loss reports and the token count."""
    if settings.pipeline is not None:
        return pipelined_forward_backward(
            model,
            data_iterator,
            num_microbatches,
            settings,
            device,
            forward_only=forward_only,
            optimizer=optimizer,
            checks=checks,
        )
    reports: list[dict[str, torch.Tensor]] = []
    total_tokens = torch.zeros((), dtype=torch.int, device=device)
    grad_context = torch.no_grad() if forward_only else contextlib.nullcontext()
    with grad_context:
        for index in range(num_microbatches):
            _start(timers, "forward-compute")
            _start(timers, "batch-generator")
            batch = prepared_batch(data_iterator, device, settings)
            _stop(timers, "batch-generator")
            if settings.moe is not None and not forward_only:
                settings.moe.before_microbatch(optimizer, num_microbatches)
            loss_sum, num_tokens = forward_microbatch(model, batch, checks)
            _stop(timers, "forward-compute")
            total_tokens += num_tokens
            reports.append({LOSS_KEY: torch.stack([loss_sum.detach(), num_tokens.float()])})
            if forward_only:
                continue
            _start(timers, "backward-compute")
            loss = loss_for_backward(
                loss_sum, num_tokens, num_microbatches, settings.calculate_per_token_loss
            )
            last = index == num_microbatches - 1
            with _accumulating(settings.ddp, last):
                optimizer.scale_loss(loss).backward()
            _stop(timers, "backward-compute")
    return reports, total_tokens


def pipelined_forward_backward(
    chunks: torch.nn.Module,
    data_iterator: Any,
    num_microbatches: int,
    settings: StepSettings,
    device: torch.device,
    *,
    forward_only: bool,
    optimizer: Any = None,
    checks: ResultChecks | None = None,
) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
    """One iteration through the pipeline schedule: the first stage reads each micro-batch's
    tokens, the last its labels and loss mask (both from their own data iterator, in
    micro-batch order); the reports and the token count come from the last stage (the count
    is shared with every stage for --calculate-per-token-loss)."""
    batches: list[dict] = []

    def batch(index: int) -> dict:
        while len(batches) <= index:
            batches.append(prepared_batch(data_iterator, device, settings))
        return batches[index]

    tokens_seen: list[torch.Tensor] = []

    def forward_step(chunk_index: int, index: int, input_tensor: torch.Tensor | None):
        chunk = chunks[chunk_index]
        if settings.moe is not None and not forward_only:
            settings.moe.before_microbatch(optimizer, num_microbatches)
        data = batch(index) if (chunk.pre_process or chunk.post_process) else {}
        output = chunk(
            data["tokens"] if chunk.pre_process else None,
            position_ids=data.get("position_ids"),
            attention_mask=data.get("attention_mask"),
            labels=data["labels"] if chunk.post_process else None,
            decoder_input=input_tensor,
        )
        if not chunk.post_process:
            return output, None
        loss_sum, num_tokens = masked_loss(output, data["loss_mask"], checks)
        tokens_seen.append(num_tokens)
        report = {LOSS_KEY: torch.stack([loss_sum.detach(), num_tokens.float()])}
        loss = loss_for_backward(
            loss_sum, num_tokens, num_microbatches, settings.calculate_per_token_loss
        )
        return loss, report

    grad_context = torch.no_grad() if forward_only else contextlib.nullcontext()
    with grad_context:
        reports = settings.pipeline.run(
            chunks,
            forward_step,
            num_microbatches,
            forward_only=forward_only,
            no_sync=None if settings.ddp is None else settings.ddp.no_sync,
            grad_scale=None if forward_only else optimizer.scale_loss,
            device=device,
        )
    total = torch.zeros((), dtype=torch.int, device=device)
    for count in tokens_seen:
        total += count
    return reports, settings.pipeline.share_token_count(total)


def _accumulating(ddp: Any, last: bool) -> contextlib.AbstractContextManager:
    """Every micro-batch but the last only accumulates into the gradient buffers."""
    if ddp is None or last:
        return contextlib.nullcontext()
    return ddp.no_sync()


def _grads(model: torch.nn.Module) -> list[torch.Tensor]:
    """Each parameter's accumulated gradient: its fp32 `main_grad` when it has one."""
    grads = []
    for param in model.parameters():
        grad = getattr(param, "main_grad", None)
        grad = param.grad if grad is None else grad
        if grad is not None:
            grads.append(grad)
    return grads


def scale_grads_by_token_count(
    model: torch.nn.Module, total_tokens: torch.Tensor, dp_cp_group: Any
) -> None:
    """`--calculate-per-token-loss`: gradients of summed losses divided by the global tokens."""
    tokens = total_tokens.clone().float()
    all_reduce_(tokens, dp_cp_group, "sum")
    scale = 1.0 / max(float(tokens.item()), 1.0)
    for grad in _grads(model):
        grad.mul_(scale)


def local_grad_norm(model: torch.nn.Module) -> float:
    return l2_norm(_grads(model))


def train_step(
    model: torch.nn.Module,
    data_iterator: Any,
    optimizer: Any,
    scheduler: Any,
    num_microbatches: int,
    settings: StepSettings,
    device: torch.device,
    *,
    dp_cp_group: Any = None,
    checks: ResultChecks | None = None,
    timers: Timers | None = None,
) -> StepResult:
    """Zero the gradients, run the micro-batches, step the optimizer and (if it stepped) the
    scheduler by the iteration's samples."""
    model.train()
    if settings.ddp is not None:
        settings.ddp.zero_grad_buffer()
    optimizer.zero_grad()
    if settings.grad_accumulator is not None:
        settings.grad_accumulator.zero()
    _start(timers, "forward-backward")
    reports, total_tokens = forward_backward(
        model,
        data_iterator,
        num_microbatches,
        settings,
        device,
        forward_only=False,
        optimizer=optimizer,
        checks=checks,
        timers=timers,
    )
    _stop(timers, "forward-backward")
    if settings.moe is not None:
        settings.moe.after_backward()
    if settings.finalizer is not None:
        _start(timers, "all-grads-sync")
        settings.finalizer.finish()
        _stop(timers, "all-grads-sync")
    if settings.calculate_per_token_loss:
        scale_grads_by_token_count(model, total_tokens, dp_cp_group)
    if checks is not None and checks.checks_grads and not _fp16_scaled(optimizer):
        checks.grads(local_grad_norm(model))
    if settings.empty_unused_memory_level >= 1 and torch.cuda.is_available():
        torch.cuda.empty_cache()

    _start(timers, "optimizer")
    stepped, grad_norm, num_zeros = optimizer.step()
    _stop(timers, "optimizer")
    if stepped:
        scheduler.step(num_microbatches * settings.micro_batch_size * settings.data_parallel_size)
    if settings.empty_unused_memory_level >= 2 and torch.cuda.is_available():
        torch.cuda.empty_cache()
    losses = {k: float(v.item()) for k, v in reduce_loss_reports(reports, dp_cp_group).items()}
    if settings.moe is not None:
        losses.update(settings.moe.losses(num_microbatches, device))
    return StepResult(losses, not stepped, grad_norm, num_zeros)


def _fp16_scaled(optimizer: Any) -> bool:
    """fp16 gradients are scaled and may overflow by design: the loss scaler handles that."""
    return bool(getattr(optimizer, "fp16", False))


def _start(timers: Timers | None, name: str) -> None:
    if timers is not None:
        timers(name).start()


def _stop(timers: Timers | None, name: str) -> None:
    if timers is not None:
        timers(name).stop()
