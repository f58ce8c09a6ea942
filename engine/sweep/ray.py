"""Trials as Ray tasks: `RayExecutor`, the `Executor` that runs a sweep on a Ray cluster (or on a
Ray instance of this machine's own), the same trials with the same results as the local processes.

Ray (the `cluster` extra) is imported only here, and only when an executor is made: without it,
one line names the extra. Where things live:

- The sweep's `TrialContext` is put in Ray's object store once (`ray.put`) and every task gets the
  same reference: the base config's table travels to each node once, not once per trial.
- A trial is a Ray task (one CPU). A worker process lost mid-task (killed, out of memory, its node
  gone) is retried by Ray, up to `max_attempts` runs in all (`max_retries=max_attempts-1`); an
  exception raised by the trial function is not retried: the task catches it and returns the
  trial failed with its error in one line (`Type: message`), as the local executor does (its
  `failed` and `one_line`: the same failure reads the same on either).
- Attempts are counted where they happen: each run of a task first asks a small counter actor
  of this executor (`_Attempts`, no CPU reserved) for its attempt number, so a trial retried after
  its worker died says `attempts == 2` without relying on Ray's private task state. A trial that
  still lost its worker on the last attempt comes back failed, "worker lost", with the attempts
  the counter saw.
- At most `capacity` tasks are given to Ray at a time; trials submitted beyond it wait here, and
  go to Ray as results come back. Ray gives up a task's CPU while the task waits in `ray.get`,
  as each does asking the counter for its attempt number (an actor started with the executor:
  seconds on a loaded machine), and starts queued tasks on it: with them all in Ray, more trials
  ran at once than the cluster has CPUs (the third of three on two CPUs).
- `close(cancel=True)` (Ctrl-C) drops the trials not yet given to Ray, cancels the tasks it has
  (`ray.cancel(force=True)`: their worker processes are killed, cancelled tasks are never
  retried) and waits until Ray has them all back, so nothing is left running. Ray can lose the
  cancel of a task not yet running, which then runs (close waited ten minutes for such a trial):
  the counter is killed before the wait, so a task started after its cancel fails asking it,
  before its trial; a task not back after a while is cancelled again. `close` then disconnects,
  if it connected: a Ray instance it started stops; a cluster it joined goes on running
  (`ray.shutdown` of a driver that joined one only disconnects it).

Where a trial's code and data come from on a real cluster: the nodes run the same version of
tradingd (installed on each, as the driver's), and the data files are paths on a filesystem every
node mounts (or URLs the workers read); the trial function checks that a worker can read them and
fails the trial with the file and the worker's host otherwise (`tradingd.cli.trial.run_trial`)."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from ..model.errors import DataError
from .local import WORKER_LOST, failed, one_line
from .model import TrialContext, TrialFn, TrialResult, TrialSpec

__all__ = ["RayExecutor", "import_ray"]

_EXTRA = "running trials on a Ray cluster needs the 'cluster' extra: pip install 'tradingd[cluster]'"

# Ray's errors that mean the trial's worker (or its node) went away rather than the trial raising:
# Ray retries those itself; what is left after the last attempt is "worker lost".
_LOST = ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "LocalRayletDiedError", "ObjectLostError")


def import_ray() -> Any:
    """The `ray` module, or one line naming the extra (DataError)."""
    try:
        import ray
    except ImportError:
        raise DataError(_EXTRA) from None
    return ray


class _Attempts:
    """Runs of each task so far, by the executor's token for it (a Ray actor of the executor's:
    made by `RayExecutor`, killed by its `close`)."""

    def __init__(self) -> None:
        self._runs: dict[int, int] = {}

    def begin(self, token: int) -> int:
        self._runs[token] = self._runs.get(token, 0) + 1
        return self._runs[token]

    def runs(self, token: int) -> int:
        return self._runs.get(token, 0)

    def forget(self, token: int) -> None:
        self._runs.pop(token, None)


def _attempt(fn: TrialFn, ctx: TrialContext, trial: TrialSpec, counter: Any, token: int) -> TrialResult:
    """One run of a trial in a Ray worker (the task's body). What `fn` raises is the trial's
    failure, returned rather than raised: Ray would wrap it, and it must not be retried."""
    ray = import_ray()
    attempts: int = ray.get(counter.begin.remote(token))
    try:
        result = fn(ctx, trial)
    except Exception as exc:  # the trial's own failure: recorded, the sweep goes on
        return failed(trial, one_line(exc), attempts)
    if result.attempts == attempts:
        return result
    import attrs

    return attrs.evolve(result, attempts=attempts)


# Ray's own logging on the driver: errors only. Its INFO lines ("Started a local Ray instance",
# the dashboard's URL) and the workers' output copied to the driver's terminal ("(_attempt
# pid=...)" lines, log_to_driver) would interleave with the progress bar; a worker's output stays
# in Ray's session logs (/tmp/ray/session_latest/logs), and a trial's failure comes back as its
# result's error.
_QUIET: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}

_RECANCEL_S = 5.0  # a cancelled task not back from Ray by then is cancelled again


class RayExecutor:
    """Runs trials as Ray tasks (see the module's docstring). `address` None starts a Ray instance
    on this machine (`num_cpus`: its CPUs by default; stopped by `close`); "auto" joins the
    cluster `ray start` made on this machine (or `RAY_ADDRESS`'s); "host:port" a cluster's head;
    "ray://host:port" a cluster through Ray Client. A Ray this process is already connected to is
    used as it is (and left running). `capacity` is the cluster's CPUs."""

    def __init__(
        self, fn: TrialFn, address: str | None, *, max_attempts: int = 3, num_cpus: int | None = None
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        ray = import_ray()
        self._ray = ray
        self._fn = fn
        self.max_attempts = max_attempts
        # Connected here: `close` disconnects (ray.shutdown: a local instance started here stops;
        # a cluster joined here goes on running). A Ray the process was already connected to (its
        # caller's) is left as it was.
        self._connected = not ray.is_initialized()
        if self._connected:
            _connect(ray, address, num_cpus)
        self.capacity = max(1, int(ray.cluster_resources().get("CPU", 1)))
        # Ray retries a task whose worker died, never one that raised (the task returns those).
        self._task = ray.remote(num_cpus=1, max_retries=max_attempts - 1, retry_exceptions=False)(_attempt)
        # The counter lives on this driver's node (the sweep ends with that node anyway), so a
        # worker node lost does not take the count with it.
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        self._counter = ray.remote(num_cpus=0)(_Attempts).options(scheduling_strategy=here).remote()
        self._ctx: TrialContext | None = None
        self._ctx_ref: Any = None
        self._pending: dict[Any, tuple[TrialSpec, int]] = {}  # task's ObjectRef -> (trial, token)
        self._queued: list[tuple[Any, TrialSpec, int]] = []  # (context's ref, trial, token), not in Ray
        self._tokens = 0
        self._closed = False

    @property
    def address(self) -> str:
        """The cluster's address as another driver would join it (`host:port` of its GCS)."""
        return str(self._ray.get_runtime_context().gcs_address)

    def submit(self, ctx: TrialContext, trial: TrialSpec) -> None:
        if self._closed:
            raise RuntimeError("the executor is closed")
        if ctx is not self._ctx:  # one sweep, one context: put in the object store once
            self._ctx, self._ctx_ref = ctx, self._ray.put(ctx)
        self._tokens += 1
        self._queued.append((self._ctx_ref, trial, self._tokens))
        self._dispatch()

    def _dispatch(self) -> None:
        """Give Ray the trials waiting here while it has fewer than `capacity` (module docstring)."""
        while self._queued and len(self._pending) < self.capacity:
            # Taken off the queue only once Ray has it and it is recorded: a submit that raises
            # (or a Ctrl-C between) leaves the trial queued, never in neither list.
            ctx_ref, trial, token = self._queued[0]
            ref = self._task.remote(self._fn, ctx_ref, trial, self._counter, token)
            self._pending[ref] = (trial, token)
            del self._queued[0]

    def next_result(self) -> TrialResult:
        if not self._pending:
            raise RuntimeError("no trial in flight")
        ray = self._ray
        ready, _ = ray.wait(list(self._pending), num_returns=1)
        ref = ready[0]
        trial, token = self._pending.pop(ref)
        try:
            result: TrialResult = ray.get(ref)
        except ray.exceptions.RayError as exc:
            result = self._lost(trial, token, exc)
        self._counter.forget.remote(token)
        # After the result is in hand: a failing submit of the next trial loses no finished one.
        self._dispatch()
        return result

    def _lost(self, trial: TrialSpec, token: int, exc: BaseException) -> TrialResult:
        """The result of a task Ray gave up on: its worker lost on every attempt, or the task's
        own code failed outside the trial function (its arguments could not be read on the
        worker: a tradingd the node does not have)."""
        ray = self._ray
        try:
            attempts = int(ray.get(self._counter.runs.remote(token)))
        except ray.exceptions.RayError:  # the counter is gone (its node with it): Ray's limit
            attempts = self.max_attempts
        name = type(exc).__name__
        if any(name.startswith(lost) for lost in _LOST):
            return failed(trial, f"{WORKER_LOST} ({attempts} attempts)", attempts)
        cause = getattr(exc, "cause", None)
        return failed(trial, one_line(cause if isinstance(cause, BaseException) else exc), max(attempts, 1))

    def in_flight(self) -> int:
        return len(self._pending) + len(self._queued)

    def close(self, *, cancel: bool) -> None:
        if self._closed:
            return
        self._closed = True
        ray = self._ray
        try:
            if cancel:
                self._queued.clear()  # never given to Ray: none started
                self._cancel(list(self._pending))
            else:
                while self._pending:  # each finished, and those waiting here run
                    ready, _ = ray.wait(list(self._pending), num_returns=1)
                    del self._pending[ready[0]]
                    self._dispatch()
                ray.kill(self._counter)
        finally:
            self._pending.clear()
            self._queued.clear()
            if self._connected:
                ray.shutdown()

    def _cancel(self, refs: list[Any]) -> None:
        """Cancel the tasks and wait until Ray has them all back (module docstring)."""
        ray = self._ray
        for ref in refs:
            ray.cancel(ref, force=True)
        ray.kill(self._counter)  # a task started despite its cancel fails asking it
        while refs:  # back from Ray, finished or cancelled: none left running
            _, refs = ray.wait(refs, num_returns=len(refs), timeout=_RECANCEL_S)
            for ref in refs:
                ray.cancel(ref, force=True)


def _connect(ray: Any, address: str | None, num_cpus: int | None) -> None:
    """Starts this machine's Ray instance (`address` None) or joins a cluster, quietly."""
    # Ray's usage statistics are reported home unless switched off: off, unless the user set it.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is not None:
        # Ray's own wait where no head answers is minutes, and no setting of Ray 2.60 bounds it
        # (RAY_gcs_server_port_wait_time_s=3 with RAY_gcs_rpc_server_connect_timeout_s=2: still
        # 105 s): a port that takes no connection is said at once.
        _reachable(address)
    try:
        if address is None:
            # "local": a new instance, never one `ray start` or RAY_ADDRESS points at (Ray's own
            # default for no address would join those: someone's cluster).
            # num_cpus None: Ray counts this machine's CPUs (a container's CPU limit included).
            ray.init("local", num_cpus=num_cpus, include_dashboard=False, **_QUIET)
        else:
            ray.init(address, **_QUIET)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "start a local Ray instance" if address is None else f"join the Ray cluster at {address}"
        raise DataError(f"cannot {where}: {one_line(exc)}") from None


_CONNECT_S = 5.0  # the head's port answers a TCP connection at once when it is there


def _reachable(address: str) -> None:
    """An explicit `host:port` (or `ray://host:port`) must take a TCP connection before Ray is
    asked to join it: Ray would try for minutes, printing its C++ log lines and deaf to SIGTERM
    meanwhile, where no head listens. One line instead (DataError). "auto" and names Ray
    resolves itself are left to Ray."""
    bare = address.removeprefix("ray://")
    host, sep, port_text = bare.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        return
    host = host.removeprefix("[").removesuffix("]")  # an IPv6 literal: [::1]:6379
    try:
        socket.create_connection((host, int(port_text)), timeout=_CONNECT_S).close()
    except ConnectionRefusedError:
        why = "connection refused"
    except TimeoutError:
        why = f"no answer in {_CONNECT_S:g} s"
    except socket.gaierror:
        why = f"unknown host {host}"
    except (OSError, OverflowError) as exc:  # unreachable network, a port past 65535, ...
        why = getattr(exc, "strerror", None) or str(exc)
    else:
        return
    raise DataError(f"cannot join the Ray cluster at {address}: {why}")
