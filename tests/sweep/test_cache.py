"""The trial cache: a result kept is read back equal, written whole or not at all; a damaged
file is ignored (the trial runs again); a worker's failures are not kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradingd.engine.sweep.cache import TrialStore
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
