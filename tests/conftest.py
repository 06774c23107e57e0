"""Shared fixtures, chiefly ``run_on_ranks``: run a function on N gloo ranks and collect results.

How it works, and why:
- Ranks are processes forked from a multiprocessing *forkserver* that has already imported
  torch, so a rank starts in milliseconds instead of paying torch's multi-second import each
  time (and forking from the pytest process itself, whose OpenMP threads may be live, is unsafe).
- Each rank runs this file through ``runpy`` (this conftest is not importable by name in the
  children), meets the others through a ``FileStore`` in the test's temporary directory (no
  ports, so tests can run side by side), initialises gloo, imports the test function from its
  file and calls it with the given arguments.
- Each rank writes ``("ok", result)`` or ``("error", message, traceback)`` to its own file.
  The parent waits for all ranks with one deadline; a hang, a crash or an exception on any
  rank fails the calling test with every failing rank's traceback.

The function runs with torch.distributed initialised; it reads its rank from
``torch.distributed.get_rank()``. It must be a module-level function, and its arguments and
return value must pickle (plain data or tensors).

The shared reference files (the original's golden runs, the seed flag list) live in a
``shared/`` folder outside the checkout. Tests ask for it through the ``shared_dir`` and
``golden_dir`` fixtures (or ``require_shared_dir()``), which look at ``$GPT_STACK_SHARED`` if
it is set, else for a ``shared/`` in the checkout, beside it, or beside its parent folder.
Where it is missing, every test that needs it FAILS with one line naming the paths looked at.
``GPT_STACK_ALLOW_MISSING_SHARED=1`` turns those failures into skips (for a checkout without
the files; CI does not set it).
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import multiprocessing
import multiprocessing.connection
import os
import pickle
import runpy
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

_WORKER_RUN_NAME = "__gpt_stack_rank_worker__"
_PRELOAD = ["__main__", "pytest", "numpy", "torch", "torch.distributed", "torch._dynamo"]
_FAILURE_GRACE_S = 3.0


class RankFailure(AssertionError):
    """One or more ranks raised, crashed or hung; the message holds their tracebacks."""


def _forkserver_context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)  # only takes effect before the server starts
    return ctx


def _write_result(path: Path, payload: tuple) -> None:
    """Write atomically; an error goes to ``<path>.err`` so the parent can spot it cheaply."""
    try:
        data = pickle.dumps(payload)
    except Exception as exc:  # an unpicklable result is the test's error, reported as such
        payload = ("error", f"result does not pickle: {exc!r}", traceback.format_exc())
        data = pickle.dumps(payload)
    target = path if payload[0] == "ok" else _error_path(path)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def _error_path(path: Path) -> Path:
    return path.with_suffix(".err")


def _load_function(module_name: str, file: str, qualname: str) -> Callable:
    module = sys.modules.get(module_name)
    if module is None or getattr(module, "__file__", None) != file:
        module = None
        try:
            candidate = importlib.import_module(module_name)
            if getattr(candidate, "__file__", None) == file:
                module = candidate
        except Exception:
            module = None
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _rank_worker_main(job: dict) -> None:
    """Entry point of one rank (runs in the child)."""
    result_path = Path(job["result_path"])
    try:
        import datetime

        import torch
        import torch.distributed as dist

        torch.set_num_threads(1)
        store = dist.FileStore(job["store_path"], job["world_size"])
        dist.init_process_group(
            "gloo",
            store=store,
            rank=job["rank"],
            world_size=job["world_size"],
            timeout=datetime.timedelta(seconds=job["timeout"]),
        )
        dist.barrier()  # every rank connected before any can finish and leave the mesh
        try:
            fn = _load_function(job["module"], job["file"], job["qualname"])
            payload = ("ok", fn(*job["args"]))
        finally:
            dist.destroy_process_group()
    except BaseException as exc:  # report everything, including SystemExit from the function
        payload = ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())
    _write_result(result_path, payload)


def launch_ranks(
    fn: Callable, world_size: int, *args: Any, workdir: Path, timeout: float = 60.0
) -> list[Any]:
    """Run ``fn(*args)`` on ``world_size`` gloo ranks; return each rank's result, rank order."""
    if "<locals>" in fn.__qualname__ or fn.__name__ == "<lambda>":
        raise ValueError(f"{fn.__qualname__} must be a module-level function to run on ranks")
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = _forkserver_context()
    results = [workdir / f"rank{r}.pkl" for r in range(world_size)]
    procs = []
    for rank in range(world_size):
        job = {
            "rank": rank,
            "world_size": world_size,
            "store_path": str(workdir / "store"),
            "result_path": str(results[rank]),
            "module": fn.__module__,
            "file": sys.modules[fn.__module__].__file__,
            "qualname": fn.__qualname__,
            "args": args,
            "timeout": timeout,
        }
        proc = ctx.Process(
            target=runpy.run_path,
            args=(__file__,),
            kwargs={"init_globals": {"_RANK_JOB": job}, "run_name": _WORKER_RUN_NAME},
            name=f"rank{rank}",
            daemon=True,
        )
        proc.start()
        procs.append(proc)

    deadline = time.monotonic() + timeout
    failed_at: float | None = None
    timed_out = False
    while any(p.is_alive() for p in procs):
        now = time.monotonic()
        if failed_at is None and _any_rank_failed(procs, results):
            failed_at = now
        if failed_at is not None and now - failed_at > _FAILURE_GRACE_S:
            break
        if now > deadline:
            timed_out = True
            break
        alive = [p.sentinel for p in procs if p.is_alive()]
        multiprocessing.connection.wait(alive, timeout=0.05)
    stopped = set()
    for rank, proc in enumerate(procs):
        if proc.is_alive():
            proc.kill()
            stopped.add(rank)
        proc.join()

    values, errors = [], []
    for rank, (proc, path) in enumerate(zip(procs, results)):
        if path.exists():
            values.append(pickle.loads(path.read_bytes())[1])
            continue
        if _error_path(path).exists():
            _, message, trace = pickle.loads(_error_path(path).read_bytes())
            errors.append(f"--- rank {rank}: {message}\n{trace}")
        elif timed_out:
            errors.append(f"--- rank {rank}: did not finish within {timeout:g} s (hang?)")
        elif rank in stopped:
            errors.append(f"--- rank {rank}: stopped after another rank failed")
        else:
            errors.append(f"--- rank {rank}: exited with code {proc.exitcode} and no result")
        values.append(None)
    if errors:
        raise RankFailure(
            f"{len(errors)} of {world_size} ranks failed running {fn.__qualname__}:\n"
            + "\n".join(errors)
        )
    return values


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu``-marked tests when CUDA is absent (torch is imported only if there are any)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in gpu_items:
        item.add_marker(skip)


def _any_rank_failed(procs: list, results: list[Path]) -> bool:
    """An error was reported, or a rank died without writing a result (a crash)."""
    for proc, path in zip(procs, results):
        if _error_path(path).exists():
            return True
        if proc.exitcode is not None and not path.exists():
            return True
    return False


@pytest.fixture
def run_on_ranks(tmp_path: Path) -> Callable[..., list[Any]]:
    """``run_on_ranks(fn, world_size, *args, timeout=60.0)`` -> list of per-rank results."""
    counter = itertools.count()

    def run(fn: Callable, world_size: int, *args: Any, timeout: float = 60.0) -> list[Any]:
        return launch_ranks(
            fn, world_size, *args, workdir=tmp_path / f"ranks{next(counter)}", timeout=timeout
        )

    return run


if __name__ == _WORKER_RUN_NAME:
    _rank_worker_main(globals()["_RANK_JOB"])


SHARED_ENV = "GPT_STACK_SHARED"
ALLOW_MISSING_SHARED_ENV = "GPT_STACK_ALLOW_MISSING_SHARED"
_SHARED_MARKER = Path("reference", "golden", "first_batch.json")
_CHECKOUT = Path(__file__).resolve().parents[1]


class MissingSharedFiles(LookupError):
    """The shared reference files were not found; the message is one line saying where we looked."""


def shared_candidates(environ: Mapping[str, str], checkout: Path) -> list[Path]:
    """``$GPT_STACK_SHARED`` alone when set (a wrong value must fail, not fall back to another
    copy), else a ``shared/`` in the checkout, beside it, or beside its parent folder. The search
    stops there, so a stray ``shared/`` higher up (``/tmp/shared`` above a test's temporary
    checkout, say) is never taken for this checkout's."""
    if environ.get(SHARED_ENV):
        return [Path(environ[SHARED_ENV])]
    return [folder / "shared" for folder in (checkout, *checkout.parents[:2])]


def find_shared_dir(environ: Mapping[str, str] | None = None, checkout: Path = _CHECKOUT) -> Path:
    """The shared folder (it holds ``reference/golden`` and ``seed``); raises
    ``MissingSharedFiles`` naming every place looked at and the variable to set."""
    environ = os.environ if environ is None else environ
    candidates = shared_candidates(environ, checkout)
    for shared in candidates:
        if (shared / _SHARED_MARKER).is_file():
            return shared
    looked = ", ".join(str(shared) for shared in candidates)
    raise MissingSharedFiles(
        f"the shared reference files are missing: no {_SHARED_MARKER.as_posix()} in {looked}; "
        f"set {SHARED_ENV} to the shared/ folder "
        f"(or {ALLOW_MISSING_SHARED_ENV}=1 to skip the tests that need it)"
    )


def missing_shared_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``$GPT_STACK_ALLOW_MISSING_SHARED`` opts out (1/true/yes; CI never sets it)."""
    environ = os.environ if environ is None else environ
    value = environ.get(ALLOW_MISSING_SHARED_ENV, "").strip().lower()
    return value not in ("", "0", "false", "no")


def require_shared_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``find_shared_dir`` for a test: where the files are missing, the test fails with that one
    line, or skips with it where the opt-out variable is set. A test module that needs a path at
    import time (a parametrization) calls it as ``from tests.conftest import require_shared_dir``
    (pytest registers this file under that name); then the module fails or skips as a whole."""
    try:
        return find_shared_dir(environ)
    except MissingSharedFiles as missing:
        message = str(missing)  # raised below, outside the handler: one line, no chained trace
    if missing_shared_allowed(environ):
        pytest.skip(message, allow_module_level=True)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared folder (read-only); a test that needs it fails where it is missing."""
    return require_shared_dir()


@pytest.fixture(scope="session")
def golden_dir(shared_dir: Path) -> Path:
    """The original's golden outputs, ``shared/reference/golden`` (read-only: copy it before
    writing next to it)."""
    return shared_dir / "reference" / "golden"
