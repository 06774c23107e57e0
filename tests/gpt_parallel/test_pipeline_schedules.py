"""Pipeline schedules: the original's orders, exchanges that cannot deadlock, exact gradients.

The orders are written out by hand from the original's rules (Megatron core v0.14
``schedules.py``): 1F1B warm-up ``min(pp - rank - 1, M)``; interleaved warm-up
``2 * (pp - rank - 1) + (chunks - 1) * G`` over the group table, backward with the chunks
reversed. Tokens read ``F13`` = forward of chunk 1, micro-batch 3.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from gpt_parallel.pipeline.engine import run_pipeline_schedule
from gpt_parallel.pipeline.order import (
    Op,
    check_interleaved,
    order_1f1b,
    order_interleaved,
    peak_in_flight,
    schedule_table,
)
from gpt_parallel.pipeline.p2p import PipelineP2P
from gpt_parallel.pipeline.plan import Exchange, passes, plan_1f1b, plan_interleaved, source_key
from torch import nn


def ops(text: str) -> list[Op]:
    return [Op(token[0], int(token[1]), int(token[2:])) for token in text.split()]


ORDERS_1F1B = {
    (2, 4): [
        "F00 F01 B00 F02 B01 F03 B02 B03",
        "F00 B00 F01 B01 F02 B02 F03 B03",
    ],
    (2, 8): [
        "F00 F01 B00 F02 B01 F03 B02 F04 B03 F05 B04 F06 B05 F07 B06 B07",
        "F00 B00 F01 B01 F02 B02 F03 B03 F04 B04 F05 B05 F06 B06 F07 B07",
    ],
    (4, 4): [
        "F00 F01 F02 F03 B00 B01 B02 B03",
        "F00 F01 F02 B00 F03 B01 B02 B03",
        "F00 F01 B00 F02 B01 F03 B02 B03",
        "F00 B00 F01 B01 F02 B02 F03 B03",
    ],
    (4, 8): [
        "F00 F01 F02 F03 B00 F04 B01 F05 B02 F06 B03 F07 B04 B05 B06 B07",
        "F00 F01 F02 B00 F03 B01 F04 B02 F05 B03 F06 B04 F07 B05 B06 B07",
        "F00 F01 B00 F02 B01 F03 B02 F04 B03 F05 B04 F06 B05 F07 B06 B07",
        "F00 B00 F01 B01 F02 B02 F03 B03 F04 B04 F05 B05 F06 B06 F07 B07",
    ],
}

# (pp, chunks, micro-batches, group size) -> one order per rank
ORDERS_INTERLEAVED = {
    (2, 2, 4, None): [
        "F00 F01 F10 F11 F02 B10 F03 B11 F12 B00 F13 B01 B12 B13 B02 B03",
        "F00 F01 F10 B10 F11 B11 F02 B00 F03 B01 F12 B12 F13 B13 B02 B03",
    ],
    (2, 2, 8, None): [
        "F00 F01 F10 F11 F02 B10 F03 B11 F12 B00 F13 B01 F04 B12 F05 B13 F14 B02 F15 B03 "
        "F06 B14 F07 B15 F16 B04 F17 B05 B16 B17 B06 B07",
        "F00 F01 F10 B10 F11 B11 F02 B00 F03 B01 F12 B12 F13 B13 F04 B02 F05 B03 F14 B14 "
        "F15 B15 F06 B04 F07 B05 F16 B16 F17 B17 B06 B07",
    ],
    (4, 2, 4, None): [  # warm-up covers everything on ranks 0 and 1
        "F00 F01 F02 F03 F10 F11 F12 F13 B10 B11 B12 B13 B00 B01 B02 B03",
        "F00 F01 F02 F03 F10 F11 F12 F13 B10 B11 B12 B13 B00 B01 B02 B03",
        "F00 F01 F02 F03 F10 F11 F12 B10 F13 B11 B12 B13 B00 B01 B02 B03",
        "F00 F01 F02 F03 F10 B10 F11 B11 F12 B12 F13 B13 B00 B01 B02 B03",
    ],
    (4, 2, 8, None): [
        "F00 F01 F02 F03 F10 F11 F12 F13 F04 F05 F06 B10 F07 B11 F14 B12 F15 B13 F16 B00 "
        "F17 B01 B02 B03 B14 B15 B16 B17 B04 B05 B06 B07",
        "F00 F01 F02 F03 F10 F11 F12 F13 F04 B10 F05 B11 F06 B12 F07 B13 F14 B00 F15 B01 "
        "F16 B02 F17 B03 B14 B15 B16 B17 B04 B05 B06 B07",
        "F00 F01 F02 F03 F10 F11 F12 B10 F13 B11 F04 B12 F05 B13 F06 B00 F07 B01 F14 B02 "
        "F15 B03 F16 B14 F17 B15 B16 B17 B04 B05 B06 B07",
        "F00 F01 F02 F03 F10 B10 F11 B11 F12 B12 F13 B13 F04 B00 F05 B01 F06 B02 F07 B03 "
        "F14 B14 F15 B15 F16 B16 F17 B17 B04 B05 B06 B07",
    ],
    # The original's own example (PP2, N3, M5): the last group holds the 2 remaining ones.
    (2, 2, 5, 3): [
        "F00 F01 F02 F10 F11 F12 B10 F03 B11 F04 B12 F13 B00 F14 B01 B02 B13 B14 B03 B04",
        "F00 F01 F02 F10 B10 F11 B11 F12 B12 F03 B00 F04 B01 F13 B02 F14 B13 B14 B03 B04",
    ],
}


@pytest.mark.parametrize(("pp", "num_microbatches"), sorted(ORDERS_1F1B))
def test_1f1b_order_matches_the_originals_table(pp, num_microbatches):
    expected = [ops(text) for text in ORDERS_1F1B[(pp, num_microbatches)]]
    assert [order_1f1b(rank, pp, num_microbatches) for rank in range(pp)] == expected
    for rank in range(pp):
        order = order_1f1b(rank, pp, num_microbatches)
        assert peak_in_flight(order) == min(pp - rank, num_microbatches) <= pp


@pytest.mark.parametrize("key", sorted(ORDERS_INTERLEAVED, key=str))
def test_interleaved_order_matches_the_originals_table(key):
    pp, chunks, num_microbatches, group = key
    expected = [ops(text) for text in ORDERS_INTERLEAVED[key]]
    got = [order_interleaved(r, pp, chunks, num_microbatches, group) for r in range(pp)]
    assert got == expected


def test_the_group_table_is_the_originals_example():
    # microbatch | 0 1 2 0 1 2 3 4 3 4 ; chunk | 0 0 0 1 1 1 0 0 1 1
    assert schedule_table(5, 2, 3) == [
        (0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (3, 0), (4, 0), (3, 1), (4, 1),
    ]  # fmt: skip


def test_forward_only_orders_run_every_forward_in_table_order():
    assert order_1f1b(1, 4, 3, forward_only=True) == ops("F00 F01 F02")
    assert order_interleaved(0, 2, 2, 4, forward_only=True) == ops(
        "F00 F01 F10 F11 F02 F03 F12 F13"
    )


@pytest.mark.parametrize(
    ("pp", "chunks", "num_microbatches", "group", "message"),
    [
        (2, 2, 3, None, "leave a last group of 1 < pipeline size 2"),
        (4, 2, 6, None, "leave a last group of 2 < pipeline size 4"),
        (2, 2, 1, None, r"must lie in \[pipeline size 2, micro-batches 1\], got 2"),
        (4, 2, 8, 2, r"must lie in \[pipeline size 4, micro-batches 8\], got 2"),
        (1, 2, 4, None, "needs --pipeline-model-parallel-size > 1, got 1"),
    ],
)
def test_a_configuration_the_original_refuses_fails_in_one_line(
    pp, chunks, num_microbatches, group, message
):
    with pytest.raises(ValueError, match=message) as info:
        check_interleaved(pp, chunks, num_microbatches, group)
    assert "\n" not in str(info.value)


def test_the_interleaved_engine_refuses_a_pipeline_of_one_rank_in_one_line():
    chunks = [nn.Linear(2, 2), nn.Linear(2, 2)]
    with pytest.raises(ValueError, match="needs --pipeline-model-parallel-size > 1") as info:
        run_pipeline_schedule(
            model_chunks=chunks,
            forward_step=lambda c, m, x: (torch.zeros(()), None),
            num_microbatches=4,
            tensor_shape=(1, 1, 2),
            dtype=torch.float32,
            pp_group=None,
        )
    assert "\n" not in str(info.value)


# --- exchanges: every send meets its receive, and no rank waits forever -------------------


def _messages(plans: list[list]) -> list[list[list[tuple]]]:
    """Each rank's exchanges as lists of (send|recv, link, sequence number, key at receiver)."""
    pp = len(plans)
    counts: dict[tuple, int] = {}

    def number(kind: str, link: tuple) -> int:
        counts[(kind, link)] = counts.get((kind, link), 0) + 1
        return counts[(kind, link)] - 1

    programs = []
    for rank, plan in enumerate(plans):
        program = []
        for step in plan:
            if not isinstance(step, Exchange):
                continue
            batch = []
            if step.send_next is not None:
                chunk, mb = step.send_next
                link = (rank, (rank + 1) % pp, "activation")
                key = (chunk + 1, mb) if rank == pp - 1 else (chunk, mb)
                batch.append(("send", link, number("send", link), key))
            if step.send_prev is not None:
                chunk, mb = step.send_prev
                link = (rank, (rank - 1) % pp, "gradient")
                key = (chunk - 1, mb) if rank == 0 else (chunk, mb)
                batch.append(("send", link, number("send", link), key))
            for direction, key, kind in (
                ("prev", step.recv_prev, "activation"),
                ("next", step.recv_next, "gradient"),
            ):
                if key is not None:
                    peer, _ = source_key(rank, pp, direction, key)
                    link = (peer, rank, kind)
                    batch.append(("recv", link, number("recv", link), key))
            program.append(batch)
        programs.append(program)
    return programs


def _replay(plans: list[list]) -> None:
    """Every message is received as what was sent; a batch finishes only once the peer has
    posted every partner of its operations (NCCL's rule, stricter than gloo's)."""
    programs = _messages(plans)
    sent = {(m[1], m[2]): m[3] for p in programs for b in p for m in b if m[0] == "send"}
    received = {(m[1], m[2]): m[3] for p in programs for b in p for m in b if m[0] == "recv"}
    assert sent == received
    position = [0] * len(programs)
    posted: set[tuple] = set()
    while any(position[r] < len(p) for r, p in enumerate(programs)):
        for rank, program in enumerate(programs):
            if position[rank] < len(program):
                posted.update((m[0], m[1], m[2]) for m in program[position[rank]])
        finished = [
            rank
            for rank, program in enumerate(programs)
            if position[rank] < len(program)
            and all(
                ("recv" if m[0] == "send" else "send", m[1], m[2]) in posted
                for m in program[position[rank]]
            )
        ]
        assert finished, f"deadlock at exchange positions {position}"
        for rank in finished:
            position[rank] += 1


def _untagged_order_agrees(plans: list[list]) -> bool:
    """Without tags (NCCL), each ordered pair of ranks must see the same kinds in post order."""
    pp = len(plans)
    sends: dict[tuple, list[str]] = {}
    recvs: dict[tuple, list[str]] = {}
    for rank, plan in enumerate(plans):
        for step in (s for s in plan if isinstance(s, Exchange)):
            nxt, prv = (rank + 1) % pp, (rank - 1) % pp
            if step.send_next is not None:
                sends.setdefault((rank, nxt), []).append("activation")
            if step.recv_prev is not None:
                recvs.setdefault((prv, rank), []).append("activation")
            if step.send_prev is not None:
                sends.setdefault((rank, prv), []).append("gradient")
            if step.recv_next is not None:
                recvs.setdefault((nxt, rank), []).append("gradient")
    return sends == recvs


def _configurations():
    for pp in range(2, 6):
        for m in range(1, 11):
            for forward_only in (False, True):
                yield "1f1b", pp, 1, m, None, forward_only
                for chunks in (2, 3):
                    for group in range(pp, m + 1):
                        try:
                            check_interleaved(pp, chunks, m, group)
                        except ValueError:
                            continue
                        yield "interleaved", pp, chunks, m, group, forward_only


def test_every_plan_runs_its_order_and_pairs_every_send_without_deadlock():
    count = 0
    for kind, pp, chunks, m, group, forward_only in _configurations():
        if kind == "1f1b":
            plans = [plan_1f1b(r, pp, m, forward_only) for r in range(pp)]
            orders = [order_1f1b(r, pp, m, forward_only) for r in range(pp)]
        else:
            plans = [plan_interleaved(r, pp, chunks, m, group, forward_only) for r in range(pp)]
            orders = [order_interleaved(r, pp, chunks, m, group, forward_only) for r in range(pp)]
        assert [passes(plan) for plan in plans] == orders
        _replay(plans)
        assert _untagged_order_agrees(plans), (kind, pp, chunks, m, group, forward_only)
        count += 1
    assert count > 300


def test_the_replay_catches_a_deadlock_and_a_mismatch():
    # Each rank first waits for the other's message, then sends its own: NCCL would hang.
    waits_first = [
        [Exchange(recv_next=(0, 0)), Exchange(send_next=(0, 0))],
        [Exchange(recv_prev=(0, 0)), Exchange(send_prev=(0, 0))],
    ]
    with pytest.raises(AssertionError, match="deadlock"):
        _replay(waits_first)
    wrong_microbatch = [[Exchange(send_next=(0, 1))], [Exchange(recv_prev=(0, 0))]]
    with pytest.raises(AssertionError):
        _replay(wrong_microbatch)


def _exchange_both_ways() -> list[list[float]]:
    """PP=2 with wrap-around: each rank sends an activation and a gradient to the other rank in
    one batch; the tags keep them apart."""
    group = dist.new_group([0, 1])
    rank = dist.get_rank()
    links = PipelineP2P(group, (2,), torch.float64, torch.device("cpu"), wrap_around=True)
    activation = torch.full((2,), 10.0 + rank, dtype=torch.float64)
    gradient = torch.full((2,), 20.0 + rank, dtype=torch.float64)
    got = links.exchange(send_next=activation, send_prev=gradient, recv_prev=True, recv_next=True)
    return [got.prev.tolist(), got.next.tolist()]


def test_activations_and_gradients_between_the_same_two_ranks_do_not_mix(run_on_ranks):
    results = run_on_ranks(_exchange_both_ways, 2)
    assert results == [[[11.0, 11.0], [21.0, 21.0]], [[10.0, 10.0], [20.0, 20.0]]]


# --- the engine against one process ---------------------------------------------------------

HIDDEN, SEQ, MICRO_BATCH, BLOCKS = 4, 3, 2, 8


def _blocks() -> nn.ModuleList:
    torch.manual_seed(1234)
    return nn.ModuleList(
        nn.Sequential(nn.Linear(HIDDEN, HIDDEN), nn.Tanh()) for _ in range(BLOCKS)
    ).double()


def _batch(num_microbatches: int, variable: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(99)
    batch = []
    for m in range(num_microbatches):
        seq = SEQ + (m % 3 if variable else 0)
        x = torch.randn(seq, MICRO_BATCH, HIDDEN, generator=generator, dtype=torch.float64)
        y = torch.randn(seq, MICRO_BATCH, HIDDEN, generator=generator, dtype=torch.float64)
        batch.append((x, y))
    return batch


def _reference(num_microbatches: int, variable: bool) -> tuple[list[float], dict[str, list]]:
    blocks = _blocks()
    losses = []
    for x, y in _batch(num_microbatches, variable):
        loss = nn.functional.mse_loss(_run_blocks(blocks, x), y)
        (loss / num_microbatches).backward()
        losses.append(loss.item())
    return losses, {name: p.grad.tolist() for name, p in blocks.named_parameters()}


def _run_blocks(blocks, x):
    for block in blocks:
        x = block(x)
    return x


def _pipeline_case(pp: int, chunks: int, num_microbatches: int, variable: bool) -> dict:
    """One rank's part: its chunks of the 8 blocks, the losses it reports, its gradients, and
    when each chunk's backward ran under no_sync."""
    rank = dist.get_rank()
    group = dist.new_group(list(range(pp)))
    blocks = _blocks()
    per_stage = BLOCKS // (pp * chunks)
    stage_blocks = [
        list(range(s * per_stage, (s + 1) * per_stage))
        for s in (c * pp + rank for c in range(chunks))
    ]
    model_chunks = [nn.Sequential(*(blocks[i] for i in ids)) for ids in stage_blocks]
    batch = _batch(num_microbatches, variable)
    state = {"no_sync": False}
    sync_log: list[tuple[int, bool]] = []
    last_calls: list[int] = []
    for c, chunk in enumerate(model_chunks):
        first_param = next(chunk.parameters())
        first_param.register_post_accumulate_grad_hook(
            lambda p, c=c: sync_log.append((c, state["no_sync"]))
        )

    class NoSync:
        def __enter__(self):
            assert not state["no_sync"], "no_sync entered twice"
            state["no_sync"] = True

        def __exit__(self, *exc):
            state["no_sync"] = False

    def forward_step(c: int, m: int, input_tensor):
        x, y = batch[m]
        first, last = rank == 0 and c == 0, rank == pp - 1 and c == chunks - 1
        output = model_chunks[c](x if first else input_tensor)
        if last:
            loss = nn.functional.mse_loss(output, y)
            return loss / num_microbatches, loss.item()
        return output, None

    common = dict(
        model_chunks=model_chunks,
        forward_step=forward_step,
        num_microbatches=num_microbatches,
        tensor_shape=(SEQ, MICRO_BATCH, HIDDEN),
        dtype=torch.float64,
        pp_group=group,
        variable_seq_lengths=variable,
    )
    losses = run_pipeline_schedule(
        **common, no_sync=NoSync, on_last_microbatch_backward=last_calls.append
    )
    grads = {
        f"{i}.{name}": p.grad.tolist()
        for chunk, ids in zip(model_chunks, stage_blocks)
        for i, block in zip(ids, chunk)
        for name, p in block.named_parameters()
    }
    with torch.no_grad():
        eval_losses = run_pipeline_schedule(**common, forward_only=True)
    return {
        "losses": losses,
        "eval_losses": eval_losses,
        "grads": grads,
        "sync_log": sync_log,
        "last_calls": last_calls,
        "state_after": state["no_sync"],
    }


def _pipeline_cases(cases: list[tuple[int, int, int, bool]]) -> list[dict]:
    return [_pipeline_case(*case) for case in cases]


def _check_case(results: list[dict], pp: int, chunks: int, m: int, variable: bool) -> None:
    losses, grads = _reference(m, variable)
    for rank, result in enumerate(results):
        reported = result["losses"] if rank == pp - 1 else []
        assert result["losses"] == reported and result["eval_losses"] == reported
    assert results[-1]["losses"] == pytest.approx(losses, abs=1e-6, rel=0)
    assert results[-1]["eval_losses"] == pytest.approx(losses, abs=1e-6, rel=0)
    pipeline_grads = {}
    for result in results:
        pipeline_grads.update(result["grads"])
    assert sorted(pipeline_grads) == sorted(grads)
    for name, expected in grads.items():
        got = torch.tensor(pipeline_grads[name], dtype=torch.float64)
        torch.testing.assert_close(
            got, torch.tensor(expected, dtype=torch.float64), atol=1e-6, rtol=0
        )
    for result in results:
        for c in range(chunks):
            log = [in_no_sync for chunk, in_no_sync in result["sync_log"] if chunk == c]
            assert log == [True] * (m - 1) + [False]  # only the last micro-batch syncs
        assert sorted(result["last_calls"]) == list(range(chunks))
        assert result["state_after"] is False


CASES = {
    2: [(2, 1, 4, False), (2, 1, 8, False), (2, 2, 4, False), (2, 2, 8, False), (2, 1, 5, True)],
    4: [(4, 1, 4, False), (4, 1, 8, False), (4, 2, 8, False)],
}


@pytest.mark.parametrize("pp", sorted(CASES))
def test_pipeline_losses_and_gradients_equal_one_process(run_on_ranks, pp):
    results = run_on_ranks(_pipeline_cases, pp, CASES[pp], timeout=120.0)
    for i, case in enumerate(CASES[pp]):
        _check_case([rank_results[i] for rank_results in results], *case)


def test_a_pipeline_of_one_rank_runs_every_micro_batch_in_turn():
    losses, grads = _reference(4, variable=False)
    blocks = _blocks()
    model = nn.Sequential(*blocks)
    batch = _batch(4, variable=False)
    entered = []

    class NoSync:
        def __enter__(self):
            entered.append(True)

        def __exit__(self, *exc):
            pass

    def forward_step(c, m, input_tensor):
        assert (c, input_tensor) == (0, None)
        loss = nn.functional.mse_loss(model(batch[m][0]), batch[m][1])
        return loss / 4, loss.item()

    reported = run_pipeline_schedule(
        model_chunks=[model],
        forward_step=forward_step,
        num_microbatches=4,
        tensor_shape=(SEQ, MICRO_BATCH, HIDDEN),
        dtype=torch.float64,
        pp_group=None,
        no_sync=NoSync,
    )
    assert reported == pytest.approx(losses, abs=1e-12)
    assert len(entered) == 3  # every micro-batch but the last
    for name, p in blocks.named_parameters():
        torch.testing.assert_close(p.grad, torch.tensor(grads[name], dtype=torch.float64))
