"""Checkpoint I/O: save and load speed of each --ckpt-format against the disk's own speed.

One run, on one disk folder (``--out``):
- the disk's sequential write (one file of the checkpoint's size, fsync'd) and read (the same
  file, dropped from the page cache first with ``posix_fadvise(DONTNEED)``) speed;
- for each ``--ckpt-format``: the pretrain app's Checkpointer saving a GPT model of about
  ``--size-mb`` MB of fp32 parameters (with its Adam state, as a run saves it), then the app's
  own load path (``load_pretrained_weights`` + ``Checkpointer.resume``) reading it back after
  the files were dropped from the page cache; GB/s are bytes on disk / seconds. "save" is
  the time ``save`` takes to return, "save+sync" adds fsync of the files it wrote (what the
  disk figure measures);
- the step-time cost of saving: mean step time of a short ``pretrain`` run (torch_dist) with
  no save, with ``--save-interval`` and with ``--save-interval --async-save``.

    uv run --locked python tools/bench/ckpt.py                        # ~500 MB of parameters
    uv run --locked python tools/bench/ckpt.py --quick                # ~50 MB
    uv run --locked python tools/bench/ckpt.py --formats torch zarr --out /mnt/nvme/bench
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

FORMATS = ("torch", "torch_dist", "torch_dcp", "zarr")
COLUMNS = ("format", "ckpt MB", "save s", "save GB/s", "save+sync GB/s", "load s", "load GB/s")
STEP_COLUMNS = ("pretrain run", "mean step ms", "vs no save")
CHUNK = 64 << 20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=float, default=None,
                   help="fp32 parameter MB of the model (default 500, 50 with --quick)")  # fmt: skip
    p.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    p.add_argument("--out", help="folder on the disk to measure (default: a new temp folder)")
    p.add_argument("--quick", action="store_true", help="~50 MB model, a shorter step-time run")
    p.add_argument("--iters", type=int, default=None,
                   help="pretrain iterations of each step-time run (default 10, 6 with --quick)")  # fmt: skip
    p.add_argument("--save-interval", type=int, default=None,
                   help="save every N iterations in the step-time runs (default 3, 2 --quick)")  # fmt: skip
    p.add_argument("--no-step-time", action="store_true", help="skip the step-time runs")
    p.add_argument("--keep", action="store_true", help="keep the checkpoints written")
    args = p.parse_args(argv)
    args.size_mb = args.size_mb or (50.0 if args.quick else 500.0)
    args.iters = args.iters or (6 if args.quick else 10)
    args.save_interval = args.save_interval or (2 if args.quick else 3)
    return args


# ---------------------------------------------------------------------------- model ---
@dataclass(frozen=True)
class Shape:
    """A GPT shape of about the asked size: 12*L*h^2 (layers) + V*h (embedding, tied)."""

    layers: int
    hidden: int
    vocab: int

    @classmethod
    def for_megabytes(cls, mb: float) -> Shape:
        params = mb * 1e6 / 4
        layers = 4 if params >= 4e6 else 2
        vocab_per_hidden = 8
        hidden = math.sqrt(params / (12 * layers + vocab_per_hidden))
        hidden = max(64, int(round(hidden / 64)) * 64)
        return cls(layers, hidden, vocab_per_hidden * hidden)

    def argv(self) -> list[str]:
        return [
            "--mock-data", "--tokenizer-type", "NullTokenizer", "--vocab-size", str(self.vocab),
            "--transformer-impl", "local", "--num-layers", str(self.layers),
            "--hidden-size", str(self.hidden), "--num-attention-heads", str(self.hidden // 64),
            "--seq-length", "32", "--max-position-embeddings", "32", "--num-workers", "0",
            "--micro-batch-size", "1", "--global-batch-size", "1", "--lr", "1e-4",
            "--log-interval", "1", "--eval-interval", "100000", "--eval-iters", "1",
            "--seed", "1234", "--train-iters", "1",
        ]  # fmt: skip


def with_flag(argv: list[str], flag: str, value: str | None = None) -> list[str]:
    """`argv` with `flag` set to `value` (or present, when `value` is None)."""
    argv = list(argv)
    if flag in argv:
        i = argv.index(flag)
        del argv[i : i + (2 if value is not None else 1)]
    return argv + ([flag] if value is None else [flag, value])


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """The app's log lines go to a buffer (the step-time runs parse them)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
        yield buffer


def set_up(argv: list[str]):
    from gpt_pretrain_app.cli import parse_args as pretrain_args
    from gpt_pretrain_app.flag_status import guard_flags
    from gpt_pretrain_app.run import set_up as app_set_up

    with quiet():
        return app_set_up(pretrain_args(argv), guard_flags)


def tear_down(setup) -> None:
    from gpt_pretrain_app.distributed import stop_distributed

    setup.trainer.checkpointer.close()
    setup.writer.close()
    stop_distributed(setup.process)


# ----------------------------------------------------------------------------- disk ---
def files_under(path: Path) -> list[Path]:
    return [p for p in sorted(path.rglob("*")) if p.is_file()]


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in files_under(path))


def sync_and_drop(paths: list[Path], *, drop: bool) -> bool:
    """fsync each file; with `drop`, then ask the kernel to forget its cached pages.
    Returns whether the page cache could be asked (Linux)."""
    can_drop = hasattr(os, "posix_fadvise")
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            if drop and can_drop:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return can_drop


def disk_speed(folder: Path, nbytes: int) -> tuple[float, float]:
    """Sequential write (with fsync) and cold read of one `nbytes` file: bytes/s each."""
    path = folder / "disk-speed.bin"
    block = os.urandom(CHUNK)
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        left = nbytes
        while left > 0:
            left -= os.write(fd, memoryview(block)[: min(left, CHUNK)])
        os.fsync(fd)
    finally:
        os.close(fd)
    write_s = time.perf_counter() - start
    sync_and_drop([path], drop=True)
    buffer = bytearray(CHUNK)
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buffer):
            pass
    read_s = time.perf_counter() - start
    path.unlink()
    return nbytes / write_s, nbytes / read_s


# ------------------------------------------------------------------------ save/load ---
@dataclass(frozen=True)
class FormatResult:
    fmt: str
    nbytes: int
    save_s: float
    sync_s: float
    load_s: float


def weights(model) -> dict:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def save_and_load(argv: list[str], fmt: str, folder: Path) -> tuple[FormatResult, int]:
    """Save with the app's Checkpointer, load with the app's load path; check the weights."""
    from gpt_pretrain_app.checkpoint_load import load_pretrained_weights
    from gpt_pretrain_app.run import _single_chunk

    argv = with_flag(argv, "--ckpt-format", fmt)
    setup = set_up(with_flag(with_flag(argv, "--save", str(folder)), "--save-interval", "1000"))
    trainer = setup.trainer
    checkpointer, trainer.checkpointer = trainer.checkpointer, None
    with quiet():  # one real step, so that the Adam state exists and is saved
        trainer.train(setup.data.train, [])
    trainer.checkpointer = checkpointer
    params = sum(p.numel() for p in setup.model.parameters())
    saved = weights(setup.model)
    with quiet():
        start = time.perf_counter()
        trainer.checkpointer.save(trainer)
        trainer.checkpointer.close()
        save_s = time.perf_counter() - start
    start = time.perf_counter()
    sync_and_drop(files_under(folder), drop=False)
    sync_s = time.perf_counter() - start
    tear_down(setup)
    del setup, trainer
    gc.collect()

    setup = set_up(with_flag(argv, "--load", str(folder)))  # builds (and loads once)
    for p in setup.model.parameters():
        p.data.zero_()
    sync_and_drop(files_under(folder), drop=True)
    s = setup.state
    with quiet():
        start = time.perf_counter()
        checkpoint = load_pretrained_weights(
            _single_chunk(setup.model),
            setup.config,
            tp_rank=s.tp_rank,
            pp_rank=s.pp_rank,
            ep_rank=s.ep_rank,
            log=print,
            warn=print,
        )
        setup.trainer.checkpointer.resume(checkpoint, setup.trainer)
        load_s = time.perf_counter() - start
    loaded = weights(setup.model)
    tear_down(setup)
    wrong = [name for name, value in saved.items() if not value.equal(loaded[name])]
    if wrong:
        raise SystemExit(f"error: --ckpt-format {fmt}: {wrong[0]} differs after loading")
    return FormatResult(fmt, size_of(folder), save_s, save_s + sync_s, load_s), params


# ------------------------------------------------------------------------ step time ---
STEP_LINE = re.compile(r"iteration\s+(\d+)/.*elapsed time per iteration \(ms\): ([\d.]+)")


def mean_step_ms(argv: list[str]) -> float:
    """Mean of the app's per-iteration times after the first two (warm-up)."""
    from gpt_pretrain_app.cli import parse_args as pretrain_args
    from gpt_pretrain_app.flag_status import guard_flags
    from gpt_pretrain_app.run import run

    with quiet() as log:
        code = run(pretrain_args(argv), guard_flags)
    if code != 0:
        raise SystemExit(f"error: pretrain {' '.join(argv)} exited with {code}")
    times = [float(ms) for it, ms in STEP_LINE.findall(log.getvalue()) if int(it) > 2]
    if not times:
        raise SystemExit("error: no 'elapsed time per iteration' lines in the pretrain log")
    return statistics.mean(times)


def step_times(argv: list[str], args: argparse.Namespace, folder: Path) -> list[tuple[str, float]]:
    argv = with_flag(
        with_flag(argv, "--train-iters", str(args.iters)), "--ckpt-format", "torch_dist"
    )
    saving = with_flag(
        with_flag(argv, "--save", str(folder)), "--save-interval", str(args.save_interval)
    )
    every = f"save every {args.save_interval}"
    rows = [("no save", mean_step_ms(argv))]
    shutil.rmtree(folder, ignore_errors=True)
    rows.append((f"{every}, torch_dist", mean_step_ms(saving)))
    shutil.rmtree(folder, ignore_errors=True)
    rows.append(
        (f"{every}, torch_dist --async-save", mean_step_ms(with_flag(saving, "--async-save")))
    )
    shutil.rmtree(folder, ignore_errors=True)
    return rows


# --------------------------------------------------------------------------- report ---
def cpu_name() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown CPU"
    for line in text.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return [line(columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]


def gbps(nbytes: float, seconds: float) -> str:
    return f"{nbytes / seconds / 1e9:.3g}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("GPT_STACK_NO_COMPILE", "1")  # compilation is not what is measured
    import torch

    created = args.out is None
    out = Path(args.out or tempfile.mkdtemp(prefix="ckpt-bench-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    shape = Shape.for_megabytes(args.size_mb)
    argv_base = shape.argv()
    results: list[FormatResult] = []
    params = 0
    try:
        for fmt in args.formats:
            folder = out / f"ckpt-{fmt}"
            shutil.rmtree(folder, ignore_errors=True)
            result, params = save_and_load(argv_base, fmt, folder)
            results.append(result)
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
        nbytes = max(r.nbytes for r in results)
        write_bps, read_bps = disk_speed(out, nbytes)
        steps = [] if args.no_step_time else step_times(argv_base, args, out / "ckpt-steps")
    finally:
        if created and not args.keep:
            shutil.rmtree(out, ignore_errors=True)

    lines = [
        f"CPU: {cpu_name()} ({os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads)",
        f"disk path: {out}",
        f"model: {shape.layers} layers, hidden {shape.hidden}, vocab {shape.vocab}: "
        f"{params:,} parameters = {params * 4 / 1e6:.1f} MB fp32 (checkpoints add the Adam "
        "state, rng and args)",
        "",
    ]
    rows = [
        ("disk (dd-like)", f"{nbytes / 1e6:.1f}", f"{nbytes / write_bps:.3f}",
         gbps(write_bps, 1), gbps(write_bps, 1), f"{nbytes / read_bps:.3f}", gbps(read_bps, 1))
    ]  # fmt: skip
    for r in results:
        rows.append(
            (r.fmt, f"{r.nbytes / 1e6:.1f}", f"{r.save_s:.3f}", gbps(r.nbytes, r.save_s),
             gbps(r.nbytes, r.sync_s), f"{r.load_s:.3f}", gbps(r.nbytes, r.load_s))
        )  # fmt: skip
    lines += table(COLUMNS, rows)
    if steps:
        base = steps[0][1]
        lines += ["", f"step time ({args.iters} iterations, first two left out, seq 32, batch 1):"]
        step_rows = [(name, f"{ms:.1f}", f"{ms / base - 1:+.1%}") for name, ms in steps]
        lines += table(STEP_COLUMNS, step_rows)
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
