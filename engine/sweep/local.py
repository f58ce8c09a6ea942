"""Trials in processes on this machine: the default executor (no setup), on
`concurrent.futures.ProcessPoolExecutor`.

Start method: "forkserver" where the platform has it (Linux, macOS), else "spawn". Not "fork":
the parent has threads by the time trials start (rich's progress bar refreshes from one, the
pool's own manager thread runs, and a new pool is made after a worker is lost, mid-sweep), and
forking a process with threads can leave a child holding a lock no thread will release; a
forked child would also inherit whatever a previous `trio.run` (the cache warm-up) left in the
parent. A forkserver is a clean process started once (importing this module and, through the
pickled trial function, the trial's code) from which each worker is forked: a worker lost is
replaced in milliseconds, not a fresh interpreter's second of imports.

Workers ignore SIGINT: Ctrl-C in a terminal reaches the whole process group, and the parent
alone decides what stops (`close(cancel=True)` terminates them; none is left behind)."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import multiprocessing
import os
import shutil
import signal
import tempfile
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import attrs

from .model import TrialContext, TrialFn, TrialResult, TrialSpec, result_for

__all__ = ["ProcessExecutor", "failed", "one_line"]

WORKER_LOST = "worker lost"


def one_line(exc: BaseException) -> str:
    """An exception as the trial's error: `Type: message`, the message's first line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def failed(trial: TrialSpec, error: str, attempts: int) -> TrialResult:
    """The failed result of `trial` (no statistics)."""
    return result_for(trial, "failed", error=error, attempts=attempts)


def _worker_init() -> None:
    # The parent handles Ctrl-C for everyone (module docstring).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(fn: TrialFn, started: str, ctx: TrialContext, trial: TrialSpec) -> TrialResult:
    """In the worker: mark the trial started (a file), then run it. A worker lost charges an
    attempt only to the trials it had started, not to those still queued in the pool."""
    with open(started, "wb"):
        pass
    return fn(ctx, trial)


def _start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


@attrs.define
class _Task:
    ctx: TrialContext
    trial: TrialSpec
    attempts: int  # runs started, this one included
    started: str  # the file the worker makes when it starts the trial


class ProcessExecutor:
    """The `Executor` of local processes (`model.Executor`): `workers` processes, a trial each
    at a time. A trial that raises comes back failed with `Type: message`; a worker that dies
    (killed, out of memory, `os._exit`) breaks the pool: a new pool is made and every trial
    a worker had started is submitted again with `attempts + 1` (which of them took its worker
    down cannot be told apart: the pool ends them all), failed as "worker lost" beyond
    `max_attempts`; a trial still queued is submitted again as it was."""

    def __init__(self, fn: TrialFn, workers: int, *, max_attempts: int = 3) -> None:
        if workers < 1:
            raise ValueError(f"workers={workers}: at least 1")
        if max_attempts < 1:
            raise ValueError(f"max_attempts={max_attempts}: at least 1")
        self.fn = fn
        self.capacity = workers
        self.max_attempts = max_attempts
        self._mp = multiprocessing.get_context(_start_method())
        self._pool: cf.ProcessPoolExecutor | None = None
        self._futures: dict[cf.Future[TrialResult], _Task] = {}
        self._ready: list[TrialResult] = []  # finished, not yet handed out (after a lost worker)
        self._closed = False
        self._marks = tempfile.mkdtemp(prefix="tradingd-sweep-")
        self._ids = itertools.count()
        self.pools_made = 0  # 1 + the workers lost (for tests and the log)

    # -- the pool --
    def _new_pool(self) -> cf.ProcessPoolExecutor:
        if self._mp.get_start_method() == "forkserver":
            # The server imports what every worker needs once; each worker forks from it.
            self._mp.set_forkserver_preload([self.fn.__module__, __name__])
        self.pools_made += 1
        return cf.ProcessPoolExecutor(
            max_workers=self.capacity, mp_context=self._mp, initializer=_worker_init
        )

    def _pool_now(self) -> cf.ProcessPoolExecutor:
        if self._closed:
            raise RuntimeError("the executor is closed")
        if self._pool is None:
            self._pool = self._new_pool()
        return self._pool

    def _start(self, ctx: TrialContext, trial: TrialSpec, attempts: int) -> None:
        task = _Task(ctx, trial, attempts, os.path.join(self._marks, str(next(self._ids))))
        future = self._pool_now().submit(_run, self.fn, task.started, ctx, trial)
        self._futures[future] = task

    @staticmethod
    def _forget(task: _Task) -> None:
        with contextlib.suppress(OSError):
            os.unlink(task.started)

    # -- the protocol --
    def submit(self, ctx: TrialContext, trial: TrialSpec) -> None:
        self._start(ctx, trial, 1)

    def in_flight(self) -> int:
        return len(self._futures) + len(self._ready)

    def next_result(self) -> TrialResult:
        while not self._ready:
            if not self._futures:
                raise RuntimeError("next_result with no trial in flight")
            done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
            lost = False
            for future in sorted(done, key=lambda f: self._futures[f].trial.number):
                task = self._futures[future]
                exc = future.exception()
                if isinstance(exc, BrokenProcessPool):
                    lost = True
                    continue
                del self._futures[future]
                self._forget(task)
                if exc is None:
                    self._ready.append(attrs.evolve(future.result(), attempts=task.attempts))
                else:
                    self._ready.append(failed(task.trial, one_line(exc), task.attempts))
            if lost:
                self._replace_pool()
        return self._ready.pop(0)

    def _replace_pool(self) -> None:
        """A worker died: the pool is broken, and every future not finished fails with
        `BrokenProcessPool` (soon: the pool's manager thread marks them). Keep what finished,
        run the rest again in a new pool."""
        cf.wait(list(self._futures))
        again: list[_Task] = []
        for future, task in sorted(self._futures.items(), key=lambda item: item[1].trial.number):
            exc = future.exception()
            ran = os.path.exists(task.started)
            self._forget(task)
            if exc is None:
                self._ready.append(attrs.evolve(future.result(), attempts=task.attempts))
            elif not isinstance(exc, BrokenProcessPool):
                self._ready.append(failed(task.trial, one_line(exc), task.attempts))
            elif not ran:  # queued behind the lost one: not its fault, no attempt used
                again.append(task)
            elif task.attempts >= self.max_attempts:
                self._ready.append(
                    failed(task.trial, f"{WORKER_LOST} ({task.attempts} attempts)", task.attempts)
                )
            else:
                again.append(attrs.evolve(task, attempts=task.attempts + 1))
        self._futures.clear()
        old, self._pool = self._pool, None
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
        for task in again:
            self._start(task.ctx, task.trial, task.attempts)

    def close(self, *, cancel: bool) -> None:
        """Stop: `cancel` drops every trial not finished and terminates the workers at once (no
        process is left behind); else waits for the trials in flight."""
        if self._closed:
            return
        self._closed = True
        pool, self._pool = self._pool, None
        try:
            if pool is not None:
                self._stop(pool, cancel)
        finally:
            shutil.rmtree(self._marks, ignore_errors=True)

    def _stop(self, pool: cf.ProcessPoolExecutor, cancel: bool) -> None:
        if not cancel:
            pool.shutdown(wait=True)
            return
        for future in self._futures:
            future.cancel()
        processes = _processes(pool)
        for p in processes:
            with contextlib.suppress(Exception):
                p.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        self._futures.clear()
        self._ready.clear()

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(cancel=exc[0] is not None)


def _processes(pool: cf.ProcessPoolExecutor) -> list[Any]:
    """The pool's worker processes. `ProcessPoolExecutor` has no public way to stop its workers
    before Python 3.14 (`terminate_workers`): its `_processes` (pid -> Process) is read, as the
    standard library's own shutdown does."""
    procs: dict[int, Any] | None = getattr(pool, "_processes", None)
    return list((procs or {}).values())
