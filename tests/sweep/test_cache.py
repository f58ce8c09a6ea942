"""The trial cache: a result kept is read back equal, written whole or not at all; a damaged
file is ignored (the trial runs again); a worker's failures are not kept."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import orjson
import pytest

from tradingd.engine.sweep.cache import RAY_ERRORS, TrialStore, TrialStoreError
from tradingd.engine.sweep.model import TrialResult, Window


def _result(key: str = "ab12", **kw: object) -> TrialResult:
    fields: dict[str, object] = {
        "key": key,
        "number": 3,
        "params": {"momentum_eth": {"threshold": 0.02, "lookback_s": 120}},
        "window": Window(1_000, 2_000),
        "role": "train",
        "fold": 1,
        "status": "ok",
        "stats": {"total": {"net_pnl": 12.5, "sharpe": None, "fills": 3}, "m": {"positions": {"X": "1.5"}}},
        "equity": ((1_000, 0.0), (1_500, 12.5)),
        "duration_s": 1.25,
    }
    fields.update(kw)
    return TrialResult(**fields)  # type: ignore[arg-type]


def test_a_kept_result_reads_back_equal(tmp_path: Path) -> None:
    store = TrialStore(tmp_path)
    assert store.get("ab12") is None
    r = _result()
    store.put(r)
    assert (tmp_path / "trials" / "ab12.json").is_file()
    assert store.get("ab12") == r
    assert len(store) == 1
    # Nothing else is left in the folder: the temporary file was renamed into place.
    assert [p.name for p in (tmp_path / "trials").iterdir()] == ["ab12.json"]


def test_a_kept_result_keeps_its_warnings(tmp_path: Path) -> None:
    # A rerun reads the trial from the cache: what made it do nothing must still be said.
    store = TrialStore(tmp_path)
    r = _result(warnings=("gamma_btc: no call option of SOL: nothing traded", "data file d: 3 unread"))
    store.put(r)
    data = orjson.loads((tmp_path / "trials" / "ab12.json").read_bytes())
    assert data["warnings"] == list(r.warnings)
    assert store.get("ab12") == r


def test_a_trial_that_failed_by_itself_is_kept_but_not_a_workers_failure(tmp_path: Path) -> None:
    store = TrialStore(tmp_path)
    own = _result("aa", status="failed", error="RuntimeError: the trap was sprung", stats={}, equity=())
    lost = _result("bb", status="failed", error="worker lost (3 attempts)", stats={}, equity=())
    unreadable = _result(
        "cc",
        status="failed",
        error="DataUnreadable: data file /d is not readable on worker h",
        stats={},
        equity=(),
    )
    for r in (own, lost, unreadable):
        store.put(r)
    assert store.get("aa") == own
    assert store.get("bb") is None
    assert store.get("cc") is None


@pytest.mark.parametrize(
    "content",
    [b"", b'{"key": "ab12", "numb', b"not json", b'{"key": "ab12"}', b"[1, 2]"],
    ids=["empty", "cut-short", "not-json", "missing-fields", "not-an-object"],
)
def test_a_damaged_file_is_ignored_and_replaced(
    tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    store = TrialStore(tmp_path)
    (tmp_path / "trials").mkdir()
    (tmp_path / "trials" / "ab12.json").write_bytes(content)
    assert store.get("ab12") is None
    store.put(_result())
    assert store.get("ab12") == _result()


def test_a_file_holding_another_trial_is_ignored(tmp_path: Path) -> None:
    store = TrialStore(tmp_path)
    store.put(_result("ab12"))
    (tmp_path / "trials" / "ab12.json").rename(tmp_path / "trials" / "cd34.json")
    assert store.get("cd34") is None


def test_a_key_is_never_a_path(tmp_path: Path) -> None:
    store = TrialStore(tmp_path)
    with pytest.raises(ValueError, match="not a trial key"):
        store.get("../../etc/passwd")


@pytest.mark.parametrize(
    "error",
    [
        "OSError: [Errno 28] No space left on device",
        "FileNotFoundError: [Errno 2] No such file or directory: '/mnt/d/x.rec.zst'",
        "ConnectionResetError: [Errno 104] Connection reset by peer",
        "TimeoutError: timed out",
        "PermissionError: [Errno 13] Permission denied: '/d'",
        "MemoryError",
        "CacheDamaged: the decoded-event cache entry /c/x.evc is damaged",
        "DecoderChanged: the decoder of deribit changed while the sweep ran",
        "DataUnreadable: data file /d is not readable on worker h",
        "ModuleNotFoundError: No module named 'mystrat'",
        "ActorDiedError: The actor died unexpectedly before finishing this task.",
        "RaySystemError: System error: something",
        "TaskCancelledError: Task: TaskID(abc) was cancelled.",
        "RayTaskError(AttributeError): the task failed outside the trial",
        "ObjectStoreFullError: the object store is full",
        "worker lost (3 attempts)",
    ],
)
def test_an_environmental_failure_is_not_kept(tmp_path: Path, error: str) -> None:
    store = TrialStore(tmp_path)
    result = _result("ee", status="failed", error=error, stats={}, equity=())
    assert not store.keeps(result)
    store.put(result)
    assert store.get("ee") is None


@pytest.mark.parametrize(
    "error",
    [
        "RuntimeError: the trap was sprung",
        "ValueError: odd x: 3",
        "ZeroDivisionError: division by zero",
        "KeyError: 'lookback_s'",
        "ConfigError: strategies.params.threshold: expected a number",
        "DataError: a frame could not be decoded",
    ],
)
def test_a_failure_of_the_trials_own_is_kept(tmp_path: Path, error: str) -> None:
    store = TrialStore(tmp_path)
    result = _result("ff", status="failed", error=error, stats={}, equity=())
    store.put(result)
    assert store.get("ff") == result


def test_every_ray_error_is_named_as_rays() -> None:
    """`RAY_ERRORS` (by name: Ray is an extra) holds every exception of the installed Ray."""
    exceptions = pytest.importorskip("ray.exceptions")
    names = {
        name
        for name, c in vars(exceptions).items()
        if isinstance(c, type) and issubclass(c, BaseException) and c.__module__.startswith("ray")
    }
    assert names <= RAY_ERRORS, sorted(names - RAY_ERRORS)


def test_a_result_that_cannot_be_written_is_one_error_naming_the_folder(tmp_path: Path) -> None:
    (tmp_path / "trials").write_text("a file where the folder goes")
    store = TrialStore(tmp_path)
    with pytest.raises(TrialStoreError, match=f"cannot keep the trials in {tmp_path / 'trials'}: "):
        store.put(_result())


def test_a_full_disk_while_writing_is_one_error_naming_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    store = TrialStore(tmp_path)
    with pytest.raises(TrialStoreError, match="cannot keep the trials in .*: No space left on device"):
        store.put(_result())
    # Nothing half-written is left behind.
    assert list((tmp_path / "trials").iterdir()) == []


def test_a_kept_result_holds_no_score_a_later_objective_could_contradict(tmp_path: Path) -> None:
    # The key does not name the objective: a stored score would be stale under another one.
    store = TrialStore(tmp_path)
    store.put(_result(objective=12.5, feasible=True))
    data = orjson.loads((tmp_path / "trials" / "ab12.json").read_bytes())
    assert "objective" not in data and "feasible" not in data
    assert data["stats"]["total"]["net_pnl"] == 12.5  # what any objective scores is kept
    found = store.get("ab12")
    assert found is not None and found.objective is None and not found.feasible
