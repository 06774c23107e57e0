"""Check that every data-parallel replica holds the same weights.

The original's ``check_param_hashes_across_dp_replicas``, run every
``--check-weight-hash-across-dp-replicas-interval`` iterations: each rank hashes each parameter
(sha256 of its fp32 bytes, so the check is exact, not a tolerance), the hashes are all-gathered
over the DP group, and a rank whose hashes differ from DP rank 0's logs the parameter names.
With ``cross_check`` every rank compares every rank's hashes, so all ranks return the same answer.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

import torch
import torch.distributed as dist

from gpt_parallel.collectives import ProcessGroup, group_size

logger = logging.getLogger(__name__)

_DIGEST_BYTES = 32


def param_hashes(modules: Iterable[torch.nn.Module]) -> tuple[list[str], torch.Tensor]:
    """Names (``chunk.name``) and a ``[n, 32]`` uint8 tensor of sha256 digests, in order."""
    names, digests = [], []
    for chunk, module in enumerate(modules):
        for name, param in module.named_parameters():
            data = param.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
            digests.append(
                torch.frombuffer(bytearray(hashlib.sha256(data).digest()), dtype=torch.uint8)
            )
            names.append(f"{chunk}.{name}")
    if not digests:
        return names, torch.zeros(0, _DIGEST_BYTES, dtype=torch.uint8)
    return names, torch.stack(digests)


def check_param_hashes_across_dp_replicas(
    modules: Iterable[torch.nn.Module], dp_group: ProcessGroup | None, cross_check: bool = False
) -> bool:
    """True when this rank's parameters equal DP rank 0's (every rank's, with ``cross_check``).

    The hashes travel as CPU tensors, so ``dp_group`` must be a gloo group (the original uses
    its gloo data-parallel group for this); with NCCL pass a gloo twin of the DP group.
    """
    names, local = param_hashes(modules)
    if group_size(dp_group) == 1:
        return True
    gathered = [torch.zeros_like(local) for _ in range(group_size(dp_group))]
    dist.all_gather(gathered, local, group=dp_group)
    reference = gathered[0]
    matches = torch.equal(local, reference)
    if not matches:
        rank = dist.get_rank()
        for i, name in enumerate(names):
            if not torch.equal(local[i], reference[i]):
                logger.info("[Rank %d] Hash not matching for %s", rank, name)
    if cross_check:
        matches = all(torch.equal(hashes, reference) for hashes in gathered)
    return matches
