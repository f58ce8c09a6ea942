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

The fork server is one per process (the standard library's), shared by every pool of every
executor in it, and it ends on a fork request that connects and then sends nothing (CPython 3.11:
an uncaught EOFError in its loop). A pool's workers are therefore all started with the pool,
before it has a trial: a worker started later, for a submit, could be started while a worker's
death breaks the pool, whose manager thread then closes the pipes the request is sending (EBADF):
the request sent nothing, the server ended, and the next pool's first worker was refused
(ConnectionRefusedError while the server was exiting). A fork server found gone all the same
(killed, or ended by some other pool of the process) is replaced: the pool is made again once.

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
import time
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import attrs

from .model import TrialContext, TrialFn, TrialResult, TrialSpec, result_for

__all__ = ["ProcessExecutor", "failed", "one_line"]

WORKER_LOST = "worker lost"
_STOP_S = 10.0  # a broken pool's manager thread ends and joins its workers in milliseconds


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
    """In the worker: mark the trial started (a file holding this worker's pid), then run it. A
    worker lost charges an attempt only to the trial whose own process died (the pid tells which),
    not to those still queued in the pool nor to those the pool ended with it. The mark appears
    whole (written beside it, then renamed): a worker the pool ended as it wrote the mark left an
    empty one, whose trial, its pid unknown, was charged (3 in 100 when a trial started in one
    worker as the other died)."""
    part = f"{started}.part"
    with open(part, "w") as mark:
        mark.write(str(os.getpid()))
    os.replace(part, started)
    return fn(ctx, trial)


def _start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


@attrs.define
class _Task:
    ctx: TrialContext
    trial: TrialSpec
    attempts: int  # runs started, this one included
    started: str  # the file the worker makes when it starts the trial (holding its pid)

    def pid(self) -> int | None:
        """The pid of the worker that started the trial (None: not started, or died writing it)."""
        try:
            with open(self.started) as mark:
                return int(mark.read())
        except (OSError, ValueError):
            return None


class ProcessExecutor:
    """The `Executor` of local processes (`model.Executor`): `workers` processes, a trial each
    at a time. A trial that raises comes back failed with `Type: message`; a worker that dies
    (killed, out of memory, `os._exit`) breaks the pool, which ends every other worker with
    SIGTERM: a new pool is made, the trial whose own worker died (its pid in the trial's marker,
    the worker's exit status not the pool's SIGTERM) is submitted again with `attempts + 1`,
    failed as "worker lost" beyond `max_attempts`, and every other trial not finished is
    submitted again as it was (when no death can be told from the pool's ending, every trial
    started is charged). A pool that refuses a submit is taken as breaking the same way."""

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
        self._workers: dict[int, Any] = {}  # the pool's processes (pid -> Process), as submits made them
        self._accepted = 0  # submits the pool took
        self._broken = False  # the pool refused a submit: replaced before waiting for a result
        self._futures: dict[cf.Future[TrialResult], _Task] = {}
        self._unsent: list[_Task] = []  # refused by a breaking pool: sent to the next one
        self._ready: list[TrialResult] = []  # finished, not yet handed out (after a lost worker)
        self._closed = False
        self._marks = tempfile.mkdtemp(prefix="tradingd-sweep-")
        self._ids = itertools.count()
        self.pools_made = 0  # 1 + the workers lost (for tests and the log)

    # -- the pool --
    def _new_pool(self) -> cf.ProcessPoolExecutor:
        forkserver = self._mp.get_start_method() == "forkserver"
        if forkserver:
            # The server imports what every worker needs once; each worker forks from it.
            self._mp.set_forkserver_preload([self.fn.__module__, __name__])
        self.pools_made += 1
        try:
            return self._started_pool()
        except (ConnectionError, EOFError):
            # Refused, or closed without an answer: the fork server is gone or going. Once it has
            # ended, the next request starts a new one (`forkserver.ensure_running`).
            if not forkserver or not _fork_server_ended():
                raise
        return self._started_pool()

    def _started_pool(self) -> cf.ProcessPoolExecutor:
        """A pool with all its workers started (module docstring: no worker is started for a
        submit, while the pool may be breaking)."""
        pool = cf.ProcessPoolExecutor(
            max_workers=self.capacity, mp_context=self._mp, initializer=_worker_init
        )
        # `ProcessPoolExecutor` starts workers as submits need them, except with "fork", where it
        # starts them all before its manager thread, as this does before the first submit.
        launch = getattr(pool, "_launch_processes", None)
        if launch is not None:
            try:
                launch()
            except BaseException:
                _end(pool)
                raise
        return pool

    def _pool_now(self) -> cf.ProcessPoolExecutor:
        if self._closed:
            raise RuntimeError("the executor is closed")
        if self._pool is None:
            self._pool = self._new_pool()
        return self._pool

    def _start(self, ctx: TrialContext, trial: TrialSpec, attempts: int) -> None:
        self._send(_Task(ctx, trial, attempts, os.path.join(self._marks, str(next(self._ids)))))

    def _send(self, task: _Task) -> None:
        pool = self._pool_now()
        try:
            future = pool.submit(_run, self.fn, task.started, task.ctx, task.trial)
        except Exception:
            # A pool breaking (a worker just died) refuses work in whatever state its manager
            # thread has reached tearing it down: BrokenProcessPool, RuntimeError (shut down),
            # or (a worker started for the submit, where the pool could not start them first)
            # OSError while the pool's pipes are being closed. The task goes to the next pool,
            # uncharged. A pool that refuses its first task has no worker to have lost: that
            # failure is the caller's (the pool is ended: its workers wait for no trial).
            if not self._accepted:
                self._pool = None
                _end(pool)
                raise
            self._broken = True
            self._unsent.append(task)
            return
        self._accepted += 1
        self._futures[future] = task
        # The pool's workers (started with it; else as submits need them: each seen here).
        self._workers.update(_worker_map(pool))
        # Where a submit starts a worker, CPython 3.11's submit wakes the pool's manager thread
        # before it starts the worker, so the manager may wait without that worker's sentinel and
        # miss its death until another result comes: woken again, it watches every worker.
        wakeup = getattr(pool, "_executor_manager_thread_wakeup", None)
        if wakeup is not None:
            with contextlib.suppress(OSError, ValueError):
                wakeup.wakeup()

    @staticmethod
    def _forget(task: _Task) -> None:
        with contextlib.suppress(OSError):
            os.unlink(task.started)

    # -- the protocol --
    def submit(self, ctx: TrialContext, trial: TrialSpec) -> None:
        self._start(ctx, trial, 1)

    def in_flight(self) -> int:
        return len(self._futures) + len(self._unsent) + len(self._ready)

    def next_result(self) -> TrialResult:
        while True:
            if self._broken:
                self._replace_pool()
            if self._ready:
                return self._ready.pop(0)
            if not self._futures:
                raise RuntimeError("next_result with no trial in flight")
            done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: self._futures[f].trial.number):
                task = self._futures[future]
                exc = future.exception()
                if isinstance(exc, BrokenProcessPool):
                    self._broken = True
                    continue
                del self._futures[future]
                self._forget(task)
                if exc is None:
                    self._ready.append(attrs.evolve(future.result(), attempts=task.attempts))
                else:
                    self._ready.append(failed(task.trial, one_line(exc), task.attempts))

    def _replace_pool(self) -> None:
        """A worker died (or the pool refused a submit): every future not finished fails with
        `BrokenProcessPool` (soon: the pool's manager thread marks them, then ends the other
        workers and joins them). Keep what finished, charge the trial whose worker died, run
        the rest again in a new pool."""
        cf.wait(list(self._futures))
        old, self._pool = self._pool, None
        workers, self._workers = self._workers, {}
        died = self._deaths(old, workers) if old is not None else None
        again: list[_Task] = []
        started: list[_Task] = []
        for future, task in sorted(self._futures.items(), key=lambda item: item[1].trial.number):
            exc = future.exception()
            if exc is None:
                self._forget(task)
                self._ready.append(attrs.evolve(future.result(), attempts=task.attempts))
            elif not isinstance(exc, BrokenProcessPool):
                self._forget(task)
                self._ready.append(failed(task.trial, one_line(exc), task.attempts))
            elif os.path.exists(task.started):
                started.append(task)
            else:  # queued behind the lost one: not its fault, no attempt used
                again.append(task)
        self._futures.clear()
        charged = {id(t) for t in started}
        if died:  # a pid not known (died writing its mark) cannot be cleared
            charged = {id(t) for t in started if t.pid() in died or t.pid() is None}
        # else no worker's own death is told apart from the pool's ending: none is cleared.
        for task in started:
            self._forget(task)
            if id(task) not in charged:  # ended by the pool with the lost one: run again as it was
                again.append(task)
            elif task.attempts >= self.max_attempts:
                self._ready.append(
                    failed(task.trial, f"{WORKER_LOST} ({task.attempts} attempts)", task.attempts)
                )
            else:
                again.append(attrs.evolve(task, attempts=task.attempts + 1))
        again += self._unsent
        self._unsent = []
        self._broken = False
        self._accepted = 0
        for task in sorted(again, key=lambda t: t.trial.number):
            self._start(task.ctx, task.trial, task.attempts)

    @staticmethod
    def _deaths(pool: cf.ProcessPoolExecutor, workers: dict[int, Any]) -> set[int] | None:
        """Shut the broken pool down and return the pids of the workers that died of
        themselves: an exit status not the SIGTERM the pool ends the others with (None: the
        statuses could not be read). The pool's manager thread ends and joins the workers
        (reading their statuses: they are read once, so only after it is done); it is waited
        for a while, and workers still running then (a trial that ignores SIGTERM) are killed."""
        manager = getattr(pool, "_executor_manager_thread", None)
        pool.shutdown(wait=False, cancel_futures=True)
        if manager is None:
            return None
        manager.join(timeout=_STOP_S)
        if manager.is_alive():
            for pid in workers:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            manager.join(timeout=_STOP_S)
            if manager.is_alive():
                return None
        return {pid for pid, p in workers.items() if p.exitcode not in (None, -signal.SIGTERM)}

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
        _end(pool)
        self._futures.clear()
        self._ready.clear()

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(cancel=exc[0] is not None)


def _worker_map(pool: cf.ProcessPoolExecutor) -> dict[int, Any]:
    """The pool's worker processes, by pid. `ProcessPoolExecutor` has no public way to reach its
    workers (to stop them before Python 3.14's `terminate_workers`, or to read how one ended):
    its `_processes` (pid -> Process) is read, as the standard library's own shutdown does."""
    procs: dict[int, Any] | None = getattr(pool, "_processes", None)
    return dict(procs or {})


def _processes(pool: cf.ProcessPoolExecutor) -> list[Any]:
    """The pool's worker processes (`_worker_map`)."""
    return list(_worker_map(pool).values())


def _end(pool: cf.ProcessPoolExecutor) -> None:
    """Terminate the pool's workers at once (killed if they ignore SIGTERM) and shut it down:
    no process is left behind, whatever the pool was doing."""
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


def _fork_server_ended(within_s: float = _STOP_S) -> bool:
    """Whether this process's fork server has ended, waiting up to `within_s` (after a refused
    request it may still be exiting: it stops listening before its process ends). The ended
    server is left unreaped: `multiprocessing.forkserver.ensure_running` reaps it and starts a new
    one. False when there is none, or it is still running (the failure was not its end)."""
    from multiprocessing import forkserver

    pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    # `os.waitid` is missing on macOS before Python 3.13: the failure is then re-raised as it is.
    if not isinstance(pid, int) or not hasattr(os, "waitid"):
        return False
    deadline = time.monotonic() + within_s
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:  # reaped by someone else: not one `ensure_running` can replace
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
