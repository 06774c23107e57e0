"""Pick the compute device and the matching torch.distributed backend.

Everything in gpt-stack runs on CUDA when it is present and on the CPU otherwise; the
backend follows the device (NCCL for CUDA tensors, gloo for CPU tensors).
"""

from __future__ import annotations

import torch


def cuda_available() -> bool:
    """Whether a CUDA device can be used by this process."""
    return torch.cuda.is_available() and torch.cuda.device_count() > 0


def pick_device(local_rank: int | None = None) -> torch.device:
    """The device this process computes on: ``cuda:<local_rank mod #gpus>`` or ``cpu``."""
    if not cuda_available():
        return torch.device("cpu")
    index = 0 if local_rank is None else local_rank % torch.cuda.device_count()
    return torch.device("cuda", index)


def pick_backend(device: torch.device | None = None) -> str:
    """``nccl`` for a CUDA device, ``gloo`` for the CPU."""
    device = device if device is not None else pick_device()
    return "nccl" if device.type == "cuda" else "gloo"


def device_type(device: torch.device | None = None) -> str:
    """``"cuda"`` or ``"cpu"``, as DeviceMesh and RNG code want it."""
    device = device if device is not None else pick_device()
    return device.type
