"""One object per sharding strategy that the training loop drives the same way.

Per iteration: ``zero_grad_buffer()``; forward (call the object, or its ``module``) and
backward for each micro-batch, all but the last under ``no_sync()``; ``finish_grad_sync()``;
``optimizer.step()``. ``no_shard``, ``optim`` and ``optim_grads`` are our DDP wrapper with the
plain, distributed (ZeRO-1) and ZeRO-2 optimizers; ``optim_grads_params`` is torch's FSDP2.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from gpt_parallel.ddp.data_parallel import DistributedDataParallel
from gpt_parallel.fsdp.dtensor_optimizer import is_dtensor
from gpt_parallel.fsdp.state_bytes import optimizer_state_bytes


class DataParallel:
    """What every strategy offers; ``model`` is the user's module (its parameter names)."""

    strategy: str
    model: torch.nn.Module
    module: torch.nn.Module
    optimizer: Any

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def zero_grad_buffer(self) -> None:
        """Start of an iteration: zero the gradients and drop every ``.grad``."""
        raise NotImplementedError

    def no_sync(self) -> contextlib.AbstractContextManager[None]:
        """Accumulate this micro-batch's gradients locally (every micro-batch but the last)."""
        raise NotImplementedError

    def finish_grad_sync(self) -> None:
        """After the last micro-batch's backward: the reduced gradients are ready to step on."""
        raise NotImplementedError

    @torch.no_grad()
    def full_parameters(self) -> dict[str, torch.Tensor]:
        """Every parameter whole (gathered from the shards under FSDP2), by name: a copy."""
        return {
            name: (p.full_tensor() if is_dtensor(p) else p.detach()).clone()
            for name, p in self.model.named_parameters()
        }

    def optimizer_state_bytes(self) -> int:
        """Optimizer state on this rank (see ``state_bytes.optimizer_state_bytes``)."""
        return optimizer_state_bytes(self.optimizer)


class DDPDataParallel(DataParallel):
    """``no_shard`` / ``optim`` / ``optim_grads``: flat gradient buffers (``ddp``)."""

    def __init__(
        self, strategy: str, model: torch.nn.Module, ddp: DistributedDataParallel, optimizer: Any
    ) -> None:
        self.strategy = strategy
        self.model = model
        self.module = ddp
        self.ddp = ddp
        self.optimizer = optimizer

    def zero_grad_buffer(self) -> None:
        shards = getattr(self.optimizer, "grad_shards", None)
        if shards is not None:
            shards.reallocate()
        self.ddp.zero_grad_buffer()
        self.optimizer.zero_grad()

    def no_sync(self) -> contextlib.AbstractContextManager[None]:
        return self.ddp.no_sync()

    def finish_grad_sync(self) -> None:
        self.ddp.finish_grad_sync()


class FSDP2DataParallel(DataParallel):
    """``optim_grads_params`` (and ``--use-torch-fsdp2``): a model sharded by ``fully_shard``.

    FSDP2 reduce-scatters each unit's gradients during backward and its root waits for them at
    the end of backward, so ``finish_grad_sync`` has nothing left to do.
    """

    def __init__(self, model: torch.nn.Module, optimizer: Any) -> None:
        self.strategy = "optim_grads_params"
        self.model = model
        self.module = model
        self.optimizer = optimizer

    def zero_grad_buffer(self) -> None:
        for param in self.model.parameters():
            param.grad = None
        self.optimizer.zero_grad()

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        self.model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            self.model.set_requires_gradient_sync(True)

    def finish_grad_sync(self) -> None:
        return None
