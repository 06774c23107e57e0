"""Run one training (or evaluation) step of micro-batches through a pipeline of model chunks.

The engine executes a rank's plan (``plan.py``): passes in the original's order, with the
original's exchanges between them. It knows nothing about the model: ``forward_step(chunk,
microbatch, input_tensor)`` runs one chunk on one micro-batch and returns ``(output, report)``.

- On the first virtual stage (pipeline rank 0, chunk 0) ``input_tensor`` is ``None``: the
  callback reads the micro-batch's tokens itself. Elsewhere it is the previous stage's
  activation, a fresh leaf that requires grad (the callback hands it to the model, as the
  original's ``set_input_tensor`` does).
- On the last virtual stage (last rank, last chunk) ``output`` is the scalar to backpropagate,
  already scaled as the caller wants it summed (e.g. divided by the number of micro-batches);
  ``report`` is collected and returned. Elsewhere ``output`` is the activation sent on and
  ``report`` is ignored.
- Backward starts from the loss on the last stage and from the received output gradient
  elsewhere (``torch.autograd.backward(output, grad)``); the input's ``.grad`` goes back.

Gradient reduction: the whole step runs inside ``no_sync()`` except the backward of each
chunk's last micro-batch, as in the original, so a DDP wrapper reduces each gradient once.
``on_last_microbatch_backward(chunk)`` runs right after that backward (to start an overlapped
reduction); finishing the reduction is the caller's job after the step.

Outputs are kept whole until their backward: the original frees an output's data after sending
it (``deallocate_output_tensor``) and then calls autograd's C++ engine directly to skip a shape
check, which breaks when the last operation of a chunk saved its own output (``tanh`` does).
That is not safe in general, so it is not done here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from gpt_parallel.comm.groups import ProcessGroup, group_rank, group_size
from gpt_parallel.pipeline.order import Op, check_interleaved
from gpt_parallel.pipeline.p2p import PipelineP2P
from gpt_parallel.pipeline.plan import Exchange, Key, Step, plan_1f1b, plan_interleaved

ForwardStep = Callable[[int, int, torch.Tensor | None], tuple[torch.Tensor, Any]]
NoSync = Callable[[], AbstractContextManager]


class _GradSync:
    """Enters ``no_sync()`` for the step and leaves it around each chunk's last backward."""

    def __init__(self, no_sync: NoSync | None) -> None:
        self._factory = no_sync or contextlib.nullcontext
        self._active: AbstractContextManager | None = None

    def disable(self) -> None:
        if self._active is None:
            self._active = self._factory()
            self._active.__enter__()

    def enable(self) -> None:
        if self._active is not None:
            active, self._active = self._active, None
            active.__exit__(None, None, None)


class _Executor:
    """Runs one rank's plan, filing every tensor by the ``(chunk, microbatch)`` it belongs to."""

    def __init__(
        self,
        *,
        forward_step: ForwardStep,
        links: PipelineP2P,
        num_chunks: int,
        num_microbatches: int,
        forward_only: bool,
        grad_sync: _GradSync,
        on_last_microbatch_backward: Callable[[int], None] | None,
        grad_scale: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> None:
        self.forward_step = forward_step
        self.links = links
        self.num_chunks = num_chunks
        self.num_microbatches = num_microbatches
        self.forward_only = forward_only
        self.grad_sync = grad_sync
        self.on_last_microbatch_backward = on_last_microbatch_backward
        self.grad_scale = grad_scale
        self.inputs: dict[Key, torch.Tensor] = {}
        self.output_grads: dict[Key, torch.Tensor] = {}
        self.saved: dict[Key, tuple[torch.Tensor | None, torch.Tensor]] = {}
        self.to_next: dict[Key, torch.Tensor] = {}
        self.to_prev: dict[Key, torch.Tensor] = {}
        self.reports: list[Any] = []
        self.backwards_left = 0 if forward_only else num_chunks * num_microbatches

    def is_first(self, chunk: int) -> bool:
        return self.links.rank == 0 and chunk == 0

    def is_last(self, chunk: int) -> bool:
        return self.links.rank == self.links.size - 1 and chunk == self.num_chunks - 1

    def run(self, plan: list[Step]) -> list[Any]:
        for step in plan:
            if isinstance(step, Exchange):
                self.exchange(step)
            elif step.kind == "F":
                self.forward(step)
            else:
                self.backward(step)
        leftovers = [self.inputs, self.output_grads, self.saved, self.to_next, self.to_prev]
        if any(leftovers):
            raise RuntimeError(f"pipeline step ended with tensors still held: {leftovers}")
        return self.reports

    def forward(self, op: Op) -> None:
        key = (op.chunk, op.microbatch)
        input_tensor = None if self.is_first(op.chunk) else self.inputs.pop(key)
        output, report = self.forward_step(op.chunk, op.microbatch, input_tensor)
        if self.is_last(op.chunk):
            self.reports.append(report)
        else:
            self.to_next[key] = output
        if not self.forward_only:
            self.saved[key] = (input_tensor, output)

    def backward(self, op: Op) -> None:
        key = (op.chunk, op.microbatch)
        input_tensor, output = self.saved.pop(key)
        if self.is_last(op.chunk):
            if output.numel() != 1:
                raise ValueError(
                    f"the last pipeline stage's forward_step must return a scalar loss, got shape "
                    f"{tuple(output.shape)}"
                )
            grad = None
            if self.grad_scale is not None:
                output = self.grad_scale(output)
        else:
            grad = self.output_grads.pop(key)
        last_of_chunk = op.microbatch == self.num_microbatches - 1
        if last_of_chunk:
            self.grad_sync.enable()
        if output.requires_grad:
            torch.autograd.backward(output, grad_tensors=grad)
        self.backwards_left -= 1
        if last_of_chunk:
            if self.on_last_microbatch_backward is not None:
                self.on_last_microbatch_backward(op.chunk)
            if self.backwards_left:
                self.grad_sync.disable()
        if not self.is_first(op.chunk):
            assert input_tensor is not None
            input_grad = input_tensor.grad
            self.to_prev[key] = torch.zeros_like(input_tensor) if input_grad is None else input_grad

    def exchange(self, step: Exchange) -> None:
        received = self.links.exchange(
            send_next=None if step.send_next is None else self.to_next.pop(step.send_next),
            send_prev=None if step.send_prev is None else self.to_prev.pop(step.send_prev),
            recv_prev=step.recv_prev is not None,
            recv_next=step.recv_next is not None,
            requires_grad=not self.forward_only,
        )
        if step.recv_prev is not None:
            self.inputs[step.recv_prev] = received.prev
        if step.recv_next is not None:
            self.output_grads[step.recv_next] = received.next


def _device_of(model_chunks: list[nn.Module]) -> torch.device:
    for parameter in model_chunks[0].parameters():
        return parameter.device
    return torch.device("cpu")


def run_pipeline_schedule(
    *,
    model_chunks: list[nn.Module],
    forward_step: ForwardStep,
    num_microbatches: int,
    tensor_shape: tuple[int, ...],
    dtype: torch.dtype,
    pp_group: ProcessGroup | None,
    forward_only: bool = False,
    microbatch_group_size_per_vp_stage: int | None = None,
    no_sync: NoSync | None = None,
    on_last_microbatch_backward: Callable[[int], None] | None = None,
    grad_scale: Callable[[torch.Tensor], torch.Tensor] | None = None,
    variable_seq_lengths: bool = False,
    device: torch.device | None = None,
) -> list[Any]:
    """Run ``num_microbatches`` through this rank's model chunks; return the last stage's reports.

    Picks the schedule as the original's ``get_forward_backward_func`` does: no pipelining for a
    pipeline of one rank, 1F1B for one chunk per rank, interleaved 1F1B for several chunks
    (``model_chunks[c]`` is virtual stage ``c * pp + pp_rank``). ``tensor_shape`` and ``dtype``
    describe every activation sent between stages. Returns the reports in micro-batch order
    on the last pipeline rank, an empty list elsewhere.
    """
    if not model_chunks:
        raise ValueError("run_pipeline_schedule needs at least one model chunk")
    if num_microbatches < 1:
        raise ValueError(f"number of micro-batches must be positive, got {num_microbatches}")
    pp_size = group_size(pp_group)
    num_chunks = len(model_chunks)
    if pp_size == 1 and num_chunks == 1:
        return run_without_pipelining(
            forward_step=forward_step,
            num_microbatches=num_microbatches,
            forward_only=forward_only,
            no_sync=no_sync,
            on_last_microbatch_backward=on_last_microbatch_backward,
            grad_scale=grad_scale,
        )
    pp_rank = group_rank(pp_group)
    if num_chunks > 1:
        check_interleaved(pp_size, num_chunks, num_microbatches, microbatch_group_size_per_vp_stage)
        plan = plan_interleaved(
            pp_rank,
            pp_size,
            num_chunks,
            num_microbatches,
            microbatch_group_size_per_vp_stage,
            forward_only,
        )
    else:
        plan = plan_1f1b(pp_rank, pp_size, num_microbatches, forward_only)
    links = PipelineP2P(
        group=pp_group,
        tensor_shape=tuple(tensor_shape),
        dtype=dtype,
        device=device or _device_of(model_chunks),
        wrap_around=num_chunks > 1,
        variable_seq_lengths=variable_seq_lengths,
    )
    grad_sync = _GradSync(no_sync)
    if not forward_only:
        grad_sync.disable()
    try:
        return _Executor(
            forward_step=forward_step,
            links=links,
            num_chunks=num_chunks,
            num_microbatches=num_microbatches,
            forward_only=forward_only,
            grad_sync=grad_sync,
            on_last_microbatch_backward=on_last_microbatch_backward,
            grad_scale=grad_scale,
        ).run(plan)
    finally:
        grad_sync.enable()


def run_without_pipelining(
    *,
    forward_step: ForwardStep,
    num_microbatches: int,
    forward_only: bool = False,
    no_sync: NoSync | None = None,
    on_last_microbatch_backward: Callable[[int], None] | None = None,
    grad_scale: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> list[Any]:
    """One stage holds the whole model: forward and backward each micro-batch in turn, all but
    the last under ``no_sync()`` (the original's ``forward_backward_no_pipelining``)."""
    reports = []
    for microbatch in range(num_microbatches):
        last = microbatch == num_microbatches - 1
        context = no_sync() if (no_sync and not last and not forward_only) else None
        with context or contextlib.nullcontext():
            loss, report = forward_step(0, microbatch, None)
            reports.append(report)
            if not forward_only:
                if grad_scale is not None:
                    loss = grad_scale(loss)
                torch.autograd.backward(loss)
        if last and not forward_only and on_last_microbatch_backward is not None:
            on_last_microbatch_backward(0)
    return reports
