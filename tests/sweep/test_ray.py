"""`RayExecutor` on a Ray instance of this machine (2 CPUs), started once for the module (`ray.init`
costs seconds): trials run as Ray tasks give what a direct call gives; a trial that raises fails
with its error and the others go on; a worker killed mid-trial has its trial run again; one killed
on every attempt gives "worker lost"; cancelling leaves nothing running; the context goes to the
object store once; an instance the executor started is quiet and stopped, a cluster it joined is
left running; without Ray, one line names the extra.

The trial functions live in `tests.support.ray_trials`: Ray's workers import them by name (the
repository's root on their PYTHONPATH, set when the module's instance starts)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from tests.support import ray_trials
from tradingd.cli.backtest import build_kernel, ensure_data
from tradingd.cli.main import main
from tradingd.cli.trial import context_for, key_of, read_base, run_trial
from tradingd.engine.model.errors import DataError
from tradingd.engine.store.evcache import EventCache
from tradingd.engine.sweep.cache import TrialStore
from tradingd.engine.sweep.local import ProcessExecutor
from tradingd.engine.sweep.model import Executor, TrialContext, TrialFn, TrialResult, TrialSpec, Window
from tradingd.engine.sweep.ray import RayExecutor, import_ray
from tradingd.engine.sweep.runner import run_sweep
from tradingd.engine.sweep.spec import Constraint, ObjectiveSpec, ParamSpace, SweepSpec

pytest.importorskip("ray")

# One Ray instance per process: the module's tests belong in one xdist worker (`--dist loadgroup`
# honours this; under `--dist load` each worker that gets one of them starts its own instance).
pytestmark = pytest.mark.xdist_group("ray")

ROOT = Path(__file__).resolve().parent.parent.parent
CTX = TrialContext(
    base_path="/data/base.toml",
    base_table={"mode": "backtest"},
    cache_dir=None,
    data_files=(),
    code_version="v1",
)


def _trial(number: int, **params: Any) -> TrialSpec:
    return TrialSpec(
        key=f"key-{number}",
        number=number,
        params={"t": {"x": number, **params}},
        window=Window(10, 20 + number),
    )


def _run_all(executor: RayExecutor, trials: list[TrialSpec]) -> list[TrialResult]:
    for trial in trials:
        executor.submit(CTX, trial)
    assert executor.in_flight() == len(trials)
    results = [executor.next_result() for _ in trials]
    assert executor.in_flight() == 0
    return sorted(results, key=lambda r: r.number)


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    # A bound only so that a broken executor fails the test instead of hanging it.
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting for {what} after {seconds:.0f} s")
        time.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has finished, its parent not yet told


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayExecutor]:
    """The module's Ray instance, started (and at the end stopped) by an executor of its own;
    the tests' executors find Ray connected and use it as it is."""
    # The workers import `tests.support.ray_trials` from the repository's root whatever folder
    # pytest was started in (Ray's workers get the driver's environment as it is at ray.init).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        owner = RayExecutor(ray_trials.computed, None, num_cpus=2)
    yield owner
    owner.close(cancel=True)


@pytest.fixture
def executor_of(cluster: RayExecutor) -> Iterator[Callable[..., RayExecutor]]:
    made: list[RayExecutor] = []

    def make(fn: TrialFn, **kwargs: Any) -> RayExecutor:
        made.append(RayExecutor(fn, None, **kwargs))
        return made[-1]

    yield make
    for executor in made:
        executor.close(cancel=True)


def test_trials_give_what_a_direct_call_gives(executor_of: Callable[..., RayExecutor]) -> None:
    executor = executor_of(ray_trials.computed)
    assert executor.capacity == 2  # the instance's CPUs
    trials = [_trial(n) for n in range(5)]
    results = _run_all(executor, trials)
    assert results == [ray_trials.computed(CTX, t) for t in trials]
    assert all(r.attempts == 1 for r in results)


def test_a_trial_that_raises_fails_with_its_error_and_the_others_run(
    executor_of: Callable[..., RayExecutor],
) -> None:
    executor = executor_of(ray_trials.raises_on_odd)
    trials = [_trial(n) for n in range(4)]
    results = _run_all(executor, trials)
    assert [r.status for r in results] == ["ok", "failed", "ok", "failed"]
    assert results[0] == ray_trials.computed(CTX, trials[0])
    assert results[2] == ray_trials.computed(CTX, trials[2])
    # One line, the exception's type first; not retried (its worker did not die).
    assert results[1].error == "ValueError: odd x: 1"
    assert results[3].error == "ValueError: odd x: 3"
    assert [r.attempts for r in results] == [1, 1, 1, 1]
    failed = results[1]
    assert (failed.key, failed.number, failed.params, failed.window) == (
        trials[1].key,
        1,
        trials[1].params,
        trials[1].window,
    )
    assert failed.stats == {} and failed.objective is None


def test_a_worker_killed_mid_trial_has_its_trial_run_again(
    executor_of: Callable[..., RayExecutor], tmp_path: Path
) -> None:
    executor = executor_of(ray_trials.dies_first)
    marker = tmp_path / "first-run"
    trials = [_trial(0, marker=str(marker)), _trial(1, marker=str(tmp_path / "other"))]
    (tmp_path / "other").write_text("already ran")  # this one does not die
    results = _run_all(executor, trials)
    assert marker.exists()  # the first run happened, and its worker died
    assert results[0] == attrs.evolve(ray_trials.computed(CTX, trials[0]), attempts=2)
    assert results[1] == ray_trials.computed(CTX, trials[1])


def test_a_worker_lost_on_every_attempt_fails_the_trial(
    executor_of: Callable[..., RayExecutor], tmp_path: Path
) -> None:
    executor = executor_of(ray_trials.always_dies, max_attempts=2)
    runs = tmp_path / "runs"
    [result] = _run_all(executor, [_trial(0, runs=str(runs))])
    assert result.status == "failed"
    assert result.error is not None and result.error.startswith("worker lost"), result.error
    assert result.attempts == 2
    assert runs.read_text().splitlines() == ["run", "run"]  # Ray ran it twice, no more


def test_cancel_leaves_no_trial_running(executor_of: Callable[..., RayExecutor], tmp_path: Path) -> None:
    executor = executor_of(ray_trials.blocks)
    for n in range(3):  # two run (2 CPUs), one waits
        executor.submit(CTX, _trial(n, pids=str(tmp_path)))
    assert executor.in_flight() == 3
    # At least two: were the third to start too (it must not), the count would pass two.
    _wait_for(lambda: len(list(tmp_path.glob("*.pid"))) >= 2, "two trials to start")
    pids = [int(p.stem) for p in tmp_path.glob("*.pid")]
    assert len(pids) == 2, "the third trial started on 2 CPUs"
    assert all(_running(pid) for pid in pids)
    t0 = time.monotonic()
    executor.close(cancel=True)
    assert time.monotonic() - t0 < 60  # not the trials' ten minutes
    assert executor.in_flight() == 0
    _wait_for(lambda: not any(_running(pid) for pid in pids), "the cancelled trials' workers to end")
    assert len(list(tmp_path.glob("*.pid"))) == 2  # the waiting one never started
    # The caller's Ray (the module's instance) is still there for the next executor.
    again = executor_of(ray_trials.computed)
    assert _run_all(again, [_trial(7)]) == [ray_trials.computed(CTX, _trial(7))]


def test_no_more_trials_run_at_once_than_the_cluster_has_cpus(
    executor_of: Callable[..., RayExecutor], tmp_path: Path
) -> None:
    """Ray gives up the CPU of a task waiting in `ray.get` (as each does asking the executor's
    attempt counter, slow to start on a loaded machine; here the trials wait at a gate): the
    executor gives Ray no more tasks than it has CPUs, so Ray has none of the third trial's to
    start on them; the third runs once one of the first two is back."""
    ray = import_ray()
    gate_name = f"gate-{tmp_path.name}"
    gate = ray.remote(ray_trials.Gate).options(name=gate_name).remote()
    try:
        executor = executor_of(ray_trials.gated)
        for n in range(3):
            executor.submit(CTX, _trial(n, pids=str(tmp_path), gate=gate_name))
        _wait_for(lambda: len(list(tmp_path.glob("*.pid"))) >= 2, "two trials to start")
        # Both wait at the gate, their CPUs given up: a third task in Ray would start now.
        time.sleep(5)
        assert len(list(tmp_path.glob("*.pid"))) == 2, "the third trial started on 2 CPUs"
        assert executor.in_flight() == 3
        ray.get(gate.open.remote())
        results = sorted((executor.next_result() for _ in range(3)), key=lambda r: r.number)
        assert [r.status for r in results] == ["ok"] * 3
        assert sorted(p.name for p in tmp_path.glob("*.pid")) == ["0.pid", "1.pid", "2.pid"]
    finally:
        ray.kill(gate)


def test_a_trial_ray_starts_despite_its_cancel_does_not_run(
    executor_of: Callable[..., RayExecutor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray can lose the cancel of a task not yet running (its worker gets the cancel before the
    task; seen here: close waited the ten minutes of a trial that started after its cancel). Made
    certain: the executor's task waits for a CPU (another executor's trials hold both) and its
    cancel is lost; when the CPUs come free the task starts, and must not run its trial."""
    ray = import_ray()
    held, mine = tmp_path / "held", tmp_path / "mine"
    held.mkdir()
    mine.mkdir()
    hog = executor_of(ray_trials.blocks)
    for n in range(2):
        hog.submit(CTX, _trial(n, pids=str(held)))
    _wait_for(lambda: len(list(held.glob("*.pid"))) == 2, "the other executor's trials to start")
    executor = executor_of(ray_trials.blocks)
    executor.submit(CTX, _trial(5, pids=str(mine)))  # given to Ray, waiting for a CPU
    real_cancel = ray.cancel
    lost: list[Any] = []

    def cancel(ref: Any, **kwargs: Any) -> None:
        if not lost:  # the first: the executor's, lost
            lost.append(ref)
        else:
            real_cancel(ref, **kwargs)

    monkeypatch.setattr(ray, "cancel", cancel)
    closing = threading.Thread(target=executor.close, kwargs={"cancel": True}, daemon=True)
    closing.start()
    try:
        _wait_for(lambda: bool(lost), "the executor's cancel")
        hog.close(cancel=True)  # the CPUs come free: Ray starts the task it was not told to drop
        closing.join(timeout=60)
        assert not closing.is_alive(), "close still waiting for its trial"
        assert list(mine.glob("*.pid")) == [], "the trial ran after its cancel"
    finally:  # the trial, had it started, is not left running for ten minutes
        for pid_file in mine.glob("*.pid"):
            with contextlib.suppress(OSError):
                os.kill(int(pid_file.stem), signal.SIGKILL)


def test_the_context_goes_to_the_object_store_once(
    executor_of: Callable[..., RayExecutor], monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = import_ray()
    puts: list[object] = []
    put = ray.put

    def counted(value: object, **kwargs: Any) -> Any:
        puts.append(value)
        return put(value, **kwargs)

    monkeypatch.setattr(ray, "put", counted)
    executor = executor_of(ray_trials.computed)
    results = _run_all(executor, [_trial(n) for n in range(4)])
    assert puts == [CTX]
    assert {r.stats["total"]["base"] for r in results} == {CTX.base_path}  # each task read it


def test_next_result_with_nothing_in_flight_says_so(executor_of: Callable[..., RayExecutor]) -> None:
    with pytest.raises(RuntimeError, match="no trial in flight"):
        executor_of(ray_trials.computed).next_result()


# A driver of its own: an executor that starts Ray (address None) or joins the module's instance
# (its address), runs one trial, closes, and says what is left of Ray in its process.
_DRIVER = """
import os, sys
from pathlib import Path
import ray
from tests.support import ray_trials
from tradingd.engine.sweep.model import TrialContext, TrialSpec, Window
from tradingd.engine.sweep.ray import RayExecutor

address = sys.argv[1] or None
ctx = TrialContext("/data/base.toml", {}, None, (), "v1")
executor = RayExecutor(ray_trials.computed, address, num_cpus=1)
executor.submit(ctx, TrialSpec("k", 3, {"t": {"x": 3}}, Window()))
print("status", executor.next_result().status, "capacity", executor.capacity)
children = set(Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split())
executor.close(cancel=False)
left = [c for c in children if Path(f"/proc/{c}").exists()
        and Path(f"/proc/{c}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")]
print("initialized", ray.is_initialized(), "children", len(children), "left", len(left))
"""


def _driver(address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _DRIVER, address],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_local_instance_is_quiet_and_stopped_by_close() -> None:
    done = _driver("")
    assert done.returncode == 0, done.stderr
    # Ray's INFO lines and its workers' output stay off the terminal.
    assert done.stderr == "", done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "status ok capacity 1"
    # The instance's processes (GCS, raylet, ...) were this driver's children; none is left.
    _, initialized, _, children, _, left = lines[1].split()
    assert initialized == "False" and int(children) > 0 and left == "0", lines


def test_a_cluster_joined_by_address_is_left_running(cluster: RayExecutor) -> None:
    done = _driver(cluster.address)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "status ok capacity 2"  # the module's instance: its 2 CPUs
    assert lines[1].startswith("initialized False children 0 "), lines  # disconnected, started nothing
    # ... and the module's instance runs trials as before.
    cluster.submit(CTX, _trial(4))
    assert cluster.next_result() == ray_trials.computed(CTX, _trial(4))


def test_without_ray_one_line_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(
        DataError,
        match=r"^running trials on a Ray cluster needs the 'cluster' extra: "
        r"pip install 'tradingd\[cluster\]'$",
    ):
        RayExecutor(ray_trials.computed, None)


def test_the_sweep_room_imports_without_ray() -> None:
    # Ray is imported when an executor is made, not when the module is: the local sweep never
    # pays for it (nor needs the extra).
    code = (
        "import sys\n"
        "class _Blocked:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'ray':\n"
        "            raise ImportError('blocked by the test')\n"
        "sys.meta_path.insert(0, _Blocked())\n"
        "import tradingd.engine.sweep.ray, tradingd.engine.sweep.model\n"
        "assert 'ray' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


def _tiny_base(folder: Path) -> Path:
    """The bundled example on 15 minutes of its sample (both strategies trade in them)."""
    config = (ROOT / "config" / "backtest-deribit.toml").read_text()
    config = config.replace('path = "../data/deribit-sample.rec.zst"', 'path = "tiny.rec.zst"')
    config = config.replace("generate = { seed = 7, hours = 2.0 }", "generate = { seed = 7, hours = 0.25 }")
    assert 'path = "tiny.rec.zst"' in config and "hours = 0.25" in config, "the bundled config changed"
    (folder / "bt.toml").write_text(config)
    return folder / "bt.toml"


@pytest.mark.slow
def test_a_sweep_on_ray_gives_the_local_processes_results(cluster: RayExecutor, tmp_path: Path) -> None:
    spec = SweepSpec(
        path=str(tmp_path / "sweep.toml"),
        base=str(_tiny_base(tmp_path)),
        out=str(tmp_path / "out"),
        params={
            "momentum_eth": {"threshold": ParamSpace("values", (0.01, 0.04))},
            "gamma_btc": {"delta_band": ParamSpace("values", (0.05, 0.2))},
        },
        objective=ObjectiveSpec(constraints=(Constraint("fills", ">=", 1.0, "momentum_eth"),)),
    )
    table, loaded = read_base(spec)
    ensure_data(loaded, lambda line: None)
    cache = EventCache(tmp_path / "events")
    trio.run(build_kernel(loaded, event_cache=cache).run)  # decoded once, as `tradingd sweep` does
    ctx = context_for(spec, table, loaded, cache_dir=cache.directory)
    key = key_of(ctx, cache=cache)

    def span() -> tuple[int, int]:
        raise AssertionError("no walk-forward here")

    def sweep(executor: Executor, out: str) -> tuple[TrialResult, ...]:
        try:
            outcome = run_sweep(
                attrs.evolve(spec, out=str(tmp_path / out)),
                ctx,
                executor,
                TrialStore(tmp_path / out),
                key_of=key,
                span=span,
            )
        finally:
            executor.close(cancel=True)
        assert not outcome.interrupted
        # The time a trial took is the one thing that may differ.
        return tuple(attrs.evolve(r, duration_s=0.0) for r in outcome.trials)

    local = sweep(ProcessExecutor(run_trial, 2), "local")
    on_ray = sweep(RayExecutor(run_trial, None), "ray")
    assert [r.status for r in local] == ["ok"] * 4, [r.error for r in local]
    assert on_ray == local
    # Not a comparison of empty results: the trials traded, and their parameters told.
    assert all(r.stats["momentum_eth"]["fills"] > 0 for r in local)
    assert len({r.stats["total"]["net_pnl"] for r in local}) > 1


_SWEEP = """
base = "bt.toml"
out = "out"
[objective]
statistic = "net_pnl"
[params.momentum_eth]
threshold = { values = [0.01, 0.04] }
[walk_forward]
mode = "rolling"
windows = 2
train = "4m"
test = "4m"
"""


def _timeless(value: Any) -> Any:
    """results.json without the time each trial took (the one thing two runs may differ in)."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if "duration" not in k}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


@pytest.mark.slow
def test_tradingd_sweep_on_ray_writes_the_local_processes_results(
    cluster: RayExecutor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _tiny_base(tmp_path)
    (tmp_path / "sweep.toml").write_text(_SWEEP)
    for how, out in ((["--workers", "2"], "local"), (["--cluster", "local"], "ray")):
        argv = [
            "sweep",
            "--config",
            str(tmp_path / "sweep.toml"),
            "--out",
            str(tmp_path / out),
            "--no-progress",
        ]
        assert main([*argv, *how]) == 0, capsys.readouterr().err
    assert "on the Ray cluster local" in capsys.readouterr().err
    local = json.loads((tmp_path / "local" / "results.json").read_text())
    on_ray = json.loads((tmp_path / "ray" / "results.json").read_text())
    assert _timeless(on_ray) == _timeless(local)
    # A walk-forward of 2 folds, each 2 train trials and a test trial, all run.
    assert len(local["trials"]) == 6, local["counts"]
    assert local["walk_forward"]["out_of_sample"]["complete"] is True


# `tradingd sweep` in a fresh interpreter where `import ray` fails, as without the cluster extra.
_WITHOUT_RAY = """
import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "ray":
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, _Blocked())
from tradingd.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_tradingd_sweep_on_a_cluster_without_ray_is_one_line(tmp_path: Path) -> None:
    base = _tiny_base(tmp_path)
    base.write_text(base.read_text().replace("hours = 0.25", "hours = 0.01"))
    (tmp_path / "sweep.toml").write_text(_SWEEP.split("[walk_forward]")[0])
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _WITHOUT_RAY,
            "sweep",
            "--config",
            str(tmp_path / "sweep.toml"),
            "--cluster",
            "auto",
            "--no-progress",
        ],
        cwd=ROOT,
        env={**os.environ, "TRADINGD_CACHE_DIR": str(tmp_path / "events")},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 2, done.stderr  # a setup error: 1 is "every trial failed"
    assert done.stderr.strip().splitlines()[-1] == (
        "tradingd: error: running trials on a Ray cluster needs the 'cluster' extra:"
        " pip install 'tradingd[cluster]'"
    ), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_tradingd_sweep_on_a_cluster_address_nobody_listens_on_is_one_line(
    tmp_path: Path, scheme: str
) -> None:
    """Ray would try for minutes (its C++ lines printed, SIGTERM unheard): a port that takes no
    connection is said at once. The port is bound and not listening: refused, and no one else's."""
    base = _tiny_base(tmp_path)
    base.write_text(base.read_text().replace("hours = 0.25", "hours = 0.01"))
    (tmp_path / "sweep.toml").write_text(_SWEEP.split("[walk_forward]")[0])
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        address = f"{scheme}127.0.0.1:{held.getsockname()[1]}"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tradingd.cli.main",
                "sweep",
                "--config",
                str(tmp_path / "sweep.toml"),
                "--cluster",
                address,
                "--no-progress",
            ],
            cwd=ROOT,
            env={**os.environ, "TRADINGD_CACHE_DIR": str(tmp_path / "events")},
            capture_output=True,
            text=True,
            timeout=120,  # Ray's own wait is minutes: this ends the old behaviour's run
            check=False,
        )
    assert done.returncode == 2, done.stderr  # a setup error: 1 is "every trial failed"
    assert done.stderr.strip().splitlines() == [
        f"tradingd: error: cannot join the Ray cluster at {address}: connection refused"
    ], done.stderr


def test_a_trial_whose_data_a_worker_cannot_read_fails_naming_the_file_and_host(
    executor_of: Callable[..., RayExecutor], tmp_path: Path
) -> None:
    missing = tmp_path / "not-mounted" / "deribit.rec.zst"
    ctx = attrs.evolve(CTX, data_files=(str(missing),))
    executor = executor_of(run_trial)
    executor.submit(ctx, _trial(0))
    result = executor.next_result()
    assert result.status == "failed"
    assert result.attempts == 1  # not retried: the worker did not die
    assert result.error is not None
    want = f"DataUnreadable: data file {missing} is not readable on worker "
    assert result.error.startswith(want), result.error
    assert socket.gethostname() in result.error  # this machine's Ray: its worker's host is ours


def test_a_submit_ray_refuses_leaves_its_trial_queued_not_lost() -> None:
    # No Ray needed: the executor's queue alone. A `.remote()` that raises (or a Ctrl-C at that
    # moment) must leave the trial waiting here, where `close(cancel=True)` and `in_flight` see
    # it; taken off first, it was in neither list.
    class Refusing:
        calls = 0

        def remote(self, *args: object) -> object:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("the raylet is gone")
            return object()

    ex = RayExecutor.__new__(RayExecutor)
    ex.capacity = 2
    ex._queued = [(None, _trial(0), 1), (None, _trial(1), 2)]
    ex._pending = {}
    ex._task = Refusing()
    ex._fn = run_trial
    ex._counter = None
    with pytest.raises(RuntimeError, match="raylet"):
        ex._dispatch()
    assert ex.in_flight() == 2 and [t.number for _, t, _ in ex._queued] == [0, 1]
    ex._dispatch()  # Ray is back: both given, none twice
    assert ex.in_flight() == 2 and not ex._queued
    assert sorted(t.number for t, _ in ex._pending.values()) == [0, 1]
