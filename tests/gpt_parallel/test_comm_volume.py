"""The bytes each rank sends in one training step, counted, against the ring algorithm's volume.

Every collective in ``gpt_parallel.comm`` reports to ``count_bytes``; each test runs one step
inside a ``count_bytes`` block on gloo ranks and checks (1) the exact list of collectives the
step ran, so nothing is missed or counted twice, and (2) the total this rank sent against the
closed forms of ``theoretical_bytes`` (ring convention, ``S`` = bytes of the full tensor):
all-reduce ``2(n-1)/n * S``, reduce-scatter and all-gather ``(n-1)/n * S`` each, within 5%.

The model of the data-parallel tests is ``Linear(6, 16) -> tanh -> Linear(16, 4)``: parameters
w1 96, b1 16, w2 64, b2 4 elements, 180 in all, laid out in the buffer in reverse (b2, w2, b1,
w1). Padding is part of the buffer that travels, so it counts as sent bytes:

- plain DDP pads nothing: the buffer is exactly 180 elements (720 bytes in fp32);
- the distributed optimizer starts each parameter at a multiple of 64 elements and ends the
  bucket at a multiple of lcm(dp, 128) = 128 for dp 2 and 4: b2 [0, 4), w2 [64, 128),
  b1 [128, 144), w1 [192, 288), bucket [0, 384). So S is 384 elements, not 180: 1536 bytes for
  an fp32 buffer, 768 for bf16. The expected volumes below use the padded 384.
"""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.distributed as dist
from gpt_parallel.comm import along_dim, basic, flat, p2p
from gpt_parallel.comm.volume import CommRecord, count_bytes, theoretical_bytes
from gpt_parallel.ddp import DDPConfig, DistributedDataParallel, DistributedOptimizer
from gpt_parallel.tensor_parallel import (
    copy_to_tensor_parallel_region,
    gather_from_sequence_parallel_region,
    reduce_from_tensor_parallel_region,
    reduce_scatter_to_sequence_parallel_region,
)
from torch import nn

MLP_NUMEL = 96 + 16 + 64 + 4  # unpadded parameters of the data-parallel model
PADDED_NUMEL = 384  # the distributed optimizer's bucket, hand-computed in the module doc
TOLERANCE = 0.05


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4))


def _local_batch(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's share of a seeded batch of 8."""
    gen = torch.Generator().manual_seed(7)
    x, y = torch.randn(8, 6, generator=gen), torch.randn(8, 4, generator=gen)
    rank, world = dist.get_rank(), dist.get_world_size()
    return x.chunk(world)[rank].to(dtype), y.chunk(world)[rank].to(dtype)


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((model(x) - y) ** 2).float().mean()


def _total(records: list[CommRecord]) -> int:
    return sum(r.sent_bytes for r in records)


# ---- (a) plain DDP: one all-reduce of the gradient buffer ----------------------------------


def _ddp_step(config_kwargs: dict) -> list[CommRecord]:
    model = _mlp(seed=dist.get_rank())
    ddp = DistributedDataParallel(model, DDPConfig(**config_kwargs), dist.group.WORLD)
    ddp.broadcast_params()  # setup, outside the step
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    assert ddp.grad_buffers[0].layout.numel == MLP_NUMEL  # plain DDP pads nothing
    with count_bytes() as step:
        ddp.zero_grad_buffer()
        _loss(ddp, *_local_batch(torch.float32)).backward()
        ddp.finish_grad_sync()
        for param in model.parameters():
            param.grad = param.main_grad
        opt.step()
    return step.records


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize(
    ("config", "bucket_numels"),
    [
        (dict(), [180]),  # no overlap: one bucket, the whole buffer
        # overlap with buckets of >= 60 elements: [b2, w2] = 68 and [b1, w1] = 112, launched
        # from backward's hooks in that order
        (dict(overlap_grad_reduce=True, bucket_size=60), [68, 112]),
    ],
    ids=["one-bucket", "two-buckets-overlap"],
)
def test_ddp_step_sends_one_all_reduce_of_the_gradient_buffer(
    run_on_ranks, world, config, bucket_numels
):
    """S = 180 fp32 = 720 bytes: 2(n-1)/n * S = 720 bytes at dp 2, 1080 at dp 4, whether the
    buffer goes as one all-reduce or as one per bucket (the buckets add up to the buffer)."""
    buffer_bytes = MLP_NUMEL * 4
    expected = theoretical_bytes("all_reduce", buffer_bytes, world)
    assert expected == {2: 720, 4: 1080}[world]
    for records in run_on_ranks(_ddp_step, world, config):
        assert [(r.op, r.size_bytes, r.group_size) for r in records] == [
            ("all_reduce", n * 4, world) for n in bucket_numels
        ]
        assert _total(records) == pytest.approx(expected, rel=TOLERANCE)


# ---- (b) the distributed optimizer: reduce-scatter the grads, all-gather the params ----------


def _distributed_optimizer_step(bf16: bool) -> tuple[list[CommRecord], int]:
    model = _mlp(seed=dist.get_rank())
    dtype = torch.float32
    if bf16:
        model, dtype = model.bfloat16(), torch.bfloat16
    config = DDPConfig(use_distributed_optimizer=True, grad_reduce_in_fp32=bf16)
    ddp = DistributedDataParallel(model, config, dist.group.WORLD)
    ddp.broadcast_params()
    opt = DistributedOptimizer(torch.optim.AdamW(model.parameters(), lr=1e-2), ddp, clip_grad=1.0)
    with count_bytes() as step:
        ddp.zero_grad_buffer()
        opt.zero_grad()
        _loss(ddp, *_local_batch(dtype)).backward()
        ddp.finish_grad_sync()
        success, _, _ = opt.step()  # clips by the global norm, then all-gathers the params
        assert success
    return step.records, ddp.grad_buffers[0].layout.numel


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize(
    ("bf16", "param_bytes"),
    [(False, 4), (True, 2)],
    ids=["fp32", "bf16-params-fp32-grads"],
)
def test_distributed_optimizer_step_sends_a_reduce_scatter_and_an_all_gather_of_the_buffer(
    run_on_ranks, world, bf16, param_bytes
):
    """Grads: reduce-scatter of the padded fp32 buffer, (n-1)/n * 1536 bytes; params:
    all-gather of the padded param buffer, (n-1)/n * (384 * param bytes). At dp 2 with fp32
    params 768 + 768 = 1536 bytes, at dp 4 1152 + 1152 = 2304. Besides the buffers the step
    all-reduces one fp32 scalar (the squared grad norm, summed over the ranks' shards):
    2(n-1)/n * 4 bytes, which the 5% tolerance absorbs and the op list names."""
    grad_buffer, param_buffer = PADDED_NUMEL * 4, PADDED_NUMEL * param_bytes
    expected = theoretical_bytes("reduce_scatter", grad_buffer, world) + theoretical_bytes(
        "all_gather", param_buffer, world
    )
    unpadded = (MLP_NUMEL * 4 + MLP_NUMEL * param_bytes) * (world - 1) / world
    for records, buffer_numel in run_on_ranks(_distributed_optimizer_step, world, bf16):
        assert buffer_numel == PADDED_NUMEL
        assert [(r.op, r.size_bytes, r.group_size) for r in records] == [
            ("reduce_scatter", grad_buffer, world),
            ("all_reduce", 4, world),  # the grad norm
            ("all_gather", param_buffer, world),
        ]
        assert _total(records) == pytest.approx(expected, rel=TOLERANCE)
        assert _total(records) > 2 * unpadded  # the padding is sent too


# ---- (c) tensor parallel: a column -> row parallel MLP, with and without sequence parallel ----

SEQ, BATCH, HIDDEN, FFN = 8, 2, 6, 12


def _tp_inputs() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(11)
    return {
        "x": torch.randn(SEQ, BATCH, HIDDEN, generator=gen),
        "w1": torch.randn(FFN, HIDDEN, generator=gen),  # column-parallel: output rows split
        "w2": torch.randn(HIDDEN, FFN, generator=gen),  # row-parallel: input columns split
        "grad": torch.randn(SEQ, BATCH, HIDDEN, generator=gen),
    }


def _tp_mlp_step(sequence_parallel: bool) -> list[CommRecord]:
    t, group = _tp_inputs(), dist.group.WORLD
    rank, n = dist.get_rank(), dist.get_world_size()
    w1 = t["w1"].chunk(n, 0)[rank].clone().requires_grad_()
    w2 = t["w2"].chunk(n, 1)[rank].clone().requires_grad_()
    with count_bytes() as step:
        if sequence_parallel:
            x = t["x"].chunk(n, 0)[rank].clone().requires_grad_()  # [s/n, b, h]
            full = gather_from_sequence_parallel_region(x, group)
            out = reduce_scatter_to_sequence_parallel_region(torch.tanh(full @ w1.T) @ w2.T, group)
            grad = t["grad"].chunk(n, 0)[rank]
        else:
            x = t["x"].clone().requires_grad_()  # [s, b, h], the same on every rank
            inner = copy_to_tensor_parallel_region(x, group)
            out = reduce_from_tensor_parallel_region(torch.tanh(inner @ w1.T) @ w2.T, group)
            grad = t["grad"]
        (out * grad).sum().backward()
    return step.records


@pytest.mark.parametrize("sequence_parallel", [False, True], ids=["tp", "tp-sp"])
def test_tp2_mlp_moves_the_same_bytes_with_and_without_sequence_parallelism(
    run_on_ranks, sequence_parallel
):
    """With S = the bytes of one full activation [s, b, h] (8 * 2 * 6 fp32 = 384 bytes):

    - plain TP: forward all-reduces the row-parallel output (reduce_from), backward all-reduces
      the input gradient (copy_to's adjoint): 2 * 2(n-1)/n * S = 768 bytes at TP 2;
    - with sequence parallelism the all-reduce splits into its two halves, moved around the
      MLP: forward all-gathers the input and reduce-scatters the output, backward does the
      adjoints (all-gather of the output grad, reduce-scatter of the input grad):
      4 * (n-1)/n * S = 768 bytes at TP 2, the same.

    The weights are split, so their gradients need no communication; there is no padding.
    """
    world = 2
    s = SEQ * BATCH * HIDDEN * 4
    if sequence_parallel:
        ops = ["all_gather", "reduce_scatter", "all_gather", "reduce_scatter"]
    else:
        ops = ["all_reduce", "all_reduce"]
    expected = sum(theoretical_bytes(op, s, world) for op in ops)
    assert expected == 768
    for records in run_on_ranks(_tp_mlp_step, world, sequence_parallel):
        assert [(r.op, r.size_bytes) for r in records] == [(op, s) for op in ops]
        assert _total(records) == pytest.approx(expected, rel=TOLERANCE)


# ---- every collective of gpt_parallel.comm reports ----------------------------------------


def _one_of_each() -> list[CommRecord]:
    group, n = dist.group.WORLD, dist.get_world_size()
    t = torch.arange(4 * n, dtype=torch.float32)
    with count_bytes() as recorder:
        basic.all_reduce(t, group)
        basic.all_reduce_(t.clone(), group, "max")
        along_dim.all_gather(t, 0, group)
        along_dim.reduce_scatter(t, 0, group)
        along_dim.all_gather_list(t, group)
        along_dim.reduce_scatter_list(list(t.chunk(n)), group)
        along_dim.all_to_all(t, group)
        flat.all_reduce_flat(t.clone(), group, average=False, async_op=False)
        flat.reduce_scatter_flat(t.clone(), group, average=False, async_op=False)
        flat.all_gather_flat(t.clone(), group, async_op=False)
        p2p.start_ring_exchange([t, t[:2]], group).wait()
        basic.all_gather_object({"rank": dist.get_rank()}, group)
    return recorder.records


def test_every_collective_reports_the_bytes_its_ring_sends(run_on_ranks):
    n, s = 2, 4 * 2 * 4  # a flat fp32 tensor of 4n elements
    expected = [
        ("all_reduce", s),
        ("all_reduce", s),
        ("all_gather", n * s),
        ("reduce_scatter", s),
        ("all_gather", n * s),
        ("reduce_scatter", s),
        ("all_to_all", s),
        ("all_reduce", s),
        ("reduce_scatter", s),
        ("all_gather", s),
        ("send", s),
        ("send", 8),
        ("all_gather", n * 8),  # all_gather_object: one int64 size per rank ...
        ("all_gather", n * len(pickle.dumps({"rank": 0}))),  # ... then the padded pickles
    ]
    for records in run_on_ranks(_one_of_each, n):
        assert [(r.op, r.size_bytes) for r in records] == expected
        for r in records:
            assert r.sent_bytes == theoretical_bytes(r.op, r.size_bytes, n)
