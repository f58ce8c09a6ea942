"""Secrets never reach a log line; lines are JSON objects with the stable fields."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.log_streams import _Stream
from tradingd.engine.logs.setup import (
    REDACTED,
    configure_logging,
    log_write_failures,
    register_secret,
    reopen_logs,
)
from tradingd.engine.model.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent.parent


def test_json_lines_with_redaction() -> None:
    stream = _Stream()
    configure_logging("info", "json", stream)
    try:
        register_secret("s3cr3t-VALUE-xyz")
        log = structlog.get_logger("t").bind(venue="deribit", strategy="g")
        log.info(
            "auth.ok",
            client_secret="hunter2hunter2",
            params={"grant_type": "client_credentials", "client_secret": "abc", "client_id": "me"},
            note="token is s3cr3t-VALUE-xyz here",
            access_token="t0k",
            instrument="BTC-PERPETUAL",
        )
        log.debug("not shown")
        lines = stream.buffer.getvalue().splitlines()
        assert len(lines) == 1
        entry = orjson.loads(lines[0])
        assert entry["event"] == "auth.ok" and entry["level"] == "info" and entry["ts"].endswith("Z")
        assert (
            entry["venue"] == "deribit"
            and entry["strategy"] == "g"
            and entry["instrument"] == "BTC-PERPETUAL"
        )
        assert entry["client_secret"] == REDACTED and entry["access_token"] == REDACTED
        assert entry["params"] == {
            "grant_type": "client_credentials",
            "client_secret": REDACTED,
            "client_id": "me",
        }
        assert entry["note"] == REDACTED
        raw = lines[0].decode()
        for secret in ("hunter2hunter2", "s3cr3t-VALUE-xyz", "t0k"):
            assert secret not in raw
    finally:
        structlog.reset_defaults()


# -- the stable schema, the log file and its reopen, and the redaction holes closed ----------


def _json_lines(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in raw.splitlines()]


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    configure_logging("info", "json", _Stream())  # closes any log file
    structlog.reset_defaults()


def test_ts_level_event_come_first_then_the_context() -> None:
    stream = _Stream()
    configure_logging("debug", "json", stream)
    structlog.get_logger().bind(venue="deribit", strategy="g").debug(
        "order.sent", instrument="BTC-PERPETUAL", client_order_id="g-1"
    )
    line = stream.buffer.getvalue()
    assert line.startswith(b'{"ts":"') and line.endswith(b"}\n")
    assert list(orjson.loads(line)) == [
        "ts",
        "level",
        "event",
        "venue",
        "strategy",
        "instrument",
        "client_order_id",
    ]


def test_file_logging_appends_json_lines_unbuffered(tmp_path: Path) -> None:
    path = tmp_path / "tradingd.log"
    path.write_bytes(b'{"ts":"2026-01-01T00:00:00Z","level":"info","event":"before"}\n')
    stream = _Stream()
    configure_logging("info", "pretty", stream, path=path)
    log = structlog.get_logger().bind(venue="deribit")
    log.info("first", n=1)
    # Read without closing or flushing anything: the line is already in the file.
    lines = _json_lines(path.read_bytes())
    assert [e["event"] for e in lines] == ["before", "first"]
    assert list(lines[1])[:4] == ["ts", "level", "event", "venue"] and lines[1]["n"] == 1
    log.warning("second")
    assert [e["event"] for e in _json_lines(path.read_bytes())] == ["before", "first", "second"]
    # The stream keeps its own format (pretty here), with the same lines.
    pretty = stream.getvalue().splitlines()
    assert len(pretty) == 2 and "first" in pretty[0] and "venue=deribit" in pretty[0]
    assert oct(path.stat().st_mode & 0o777) in ("0o600", "0o640", "0o644")  # pre-existing file


def test_a_crash_loses_no_line_already_logged(tmp_path: Path) -> None:
    path = tmp_path / "crash.log"
    script = (
        "import os, sys, structlog\n"
        "from tradingd.engine.logs.setup import configure_logging\n"
        f"configure_logging('info', 'json', sys.stdout, path={str(path)!r})\n"
        "log = structlog.get_logger()\n"
        "for i in range(200):\n"
        "    log.info('tick', i=i)\n"
        "os._exit(3)  # no atexit, no flush: what is not in the file now is lost\n"
    )
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=60, check=False)
    assert r.returncode == 3, r.stderr
    assert [e["i"] for e in _json_lines(path.read_bytes())] == list(range(200))


def test_reopen_after_rename_splits_lines_between_old_and_new_file(tmp_path: Path) -> None:
    path = tmp_path / "tradingd.log"
    stream = _Stream()
    configure_logging("info", "json", stream, path=path)
    log = structlog.get_logger()
    log.info("a")
    log.info("b")
    path.rename(tmp_path / "tradingd.log.1")
    log.info("c")  # logrotate renamed it; until the reopen the daemon still writes the old file
    assert reopen_logs() is True
    log.info("d")
    log.info("e")
    old = [e["event"] for e in _json_lines((tmp_path / "tradingd.log.1").read_bytes())]
    new = [e["event"] for e in _json_lines(path.read_bytes())]
    assert old == ["a", "b", "c"] and new == ["d", "e"]
    assert [e["event"] for e in _json_lines(stream.buffer.getvalue())] == ["a", "b", "c", "d", "e"]


def test_reopen_without_a_log_file_or_when_the_folder_is_gone(tmp_path: Path) -> None:
    configure_logging("info", "json", _Stream())
    assert reopen_logs() is False
    folder = tmp_path / "logs"
    folder.mkdir()
    stream = _Stream()
    configure_logging("info", "json", stream, path=folder / "t.log")
    log = structlog.get_logger()
    log.info("a")
    folder.rename(tmp_path / "moved")
    assert reopen_logs() is False  # cannot open logs/t.log: keep the old file, say so
    log.info("b")
    assert [e["event"] for e in _json_lines((tmp_path / "moved" / "t.log").read_bytes())] == ["a", "b"]
    events = _json_lines(stream.buffer.getvalue())
    failed = [e for e in events if e["event"] == "logging.reopen_failed"]
    assert len(failed) == 1 and failed[0]["level"] == "error" and failed[0]["file"].endswith("t.log")


def test_a_log_file_that_cannot_be_opened_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("in the way")
    with pytest.raises(ConfigError, match=r"logging\.file: cannot open the log file .*a-file"):
        configure_logging("info", "json", _Stream(), path=tmp_path / "a-file" / "t.log")


def test_a_log_files_missing_folder_is_made(tmp_path: Path) -> None:
    """As `runs/` for the tour's configs (`file = "../runs/sim-deribit.log"`) on a fresh clone."""
    configure_logging("info", "json", _Stream(), path=tmp_path / "runs" / "deeper" / "t.log")
    structlog.get_logger("t").info("a")
    assert [e["event"] for e in _json_lines((tmp_path / "runs" / "deeper" / "t.log").read_bytes())] == ["a"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a disk that is full)")
def test_a_failing_log_file_is_reported_on_the_stream_once_then_recovery_counts_the_loss(
    tmp_path: Path,
) -> None:
    link = tmp_path / "t.log"
    link.symlink_to("/dev/full")
    stream = _Stream()
    configure_logging("info", "json", stream, path=link)
    log = structlog.get_logger()
    log.info("a")
    log.info("b")
    link.unlink()  # the disk has room again (a real file now), and logrotate's HUP comes
    reopen_logs()
    log.info("c")
    events = [(e["event"], e.get("lines_lost")) for e in _json_lines(stream.buffer.getvalue())]
    assert events == [
        ("a", None),
        ("logging.file_write_failed", None),
        ("b", None),
        ("c", None),
        ("logging.file_write_recovered", 2),
    ]
    assert [e["event"] for e in _json_lines(link.read_bytes())] == ["c"]


RELOG = """
import os, signal, sys, threading, time, structlog
from tradingd.engine.logs.setup import configure_logging, reopen_logs
configure_logging("info", "json", open(os.devnull, "w"), path=sys.argv[1])
# A real signal handler (not a trio task): it may interrupt a write holding the file's lock.
signal.signal(signal.SIGHUP, lambda *_: reopen_logs())
log = structlog.get_logger()
def work(name):
    for i in range(int(sys.argv[2])):
        log.info("line", writer=name, i=i, pad="x" * (i % 300))
threads = [threading.Thread(target=work, args=(n,)) for n in ("t1", "t2")]
for t in threads:
    t.start()
work("main")
for t in threads:
    t.join()
"""


def test_sighup_reopen_under_load_loses_and_splits_no_line(tmp_path: Path) -> None:
    path = tmp_path / "tradingd.log"
    n = 5_000
    proc = subprocess.Popen(
        [sys.executable, "-c", RELOG, str(path), str(n)], cwd=ROOT, stderr=subprocess.PIPE
    )
    rotated: list[Path] = []
    try:
        deadline = time.monotonic() + 30
        while len(rotated) < 3 and proc.poll() is None and time.monotonic() < deadline:
            if path.exists() and path.stat().st_size > 100_000:
                target = tmp_path / f"tradingd.log.{len(rotated) + 1}"
                path.rename(target)  # what logrotate does, then its postrotate HUP
                rotated.append(target)
                proc.send_signal(signal.SIGHUP)
            time.sleep(0.005)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert len(rotated) >= 2, "the writer finished before two rotations: raise n"
    seen: dict[str, list[int]] = {"t1": [], "t2": [], "main": []}
    for file in [*rotated, path]:
        for raw in file.read_bytes().splitlines():  # `path` missing: no reopen happened
            entry = orjson.loads(raw)  # a split or interleaved line would not parse
            seen[entry["writer"]].append(entry["i"])
    # Every line exactly once, and in order across the files (old file first, new after).
    assert all(seen[w] == list(range(n)) for w in seen)


# -- redaction holes (each was a leak before) --------------------------------------------------


def _render_both(**fields: Any) -> tuple[str, str]:
    """One log call rendered as JSON and as pretty text."""
    out = []
    for fmt in ("json", "pretty"):
        stream = _Stream()
        configure_logging("info", fmt, stream)
        structlog.get_logger().info("x", **fields)
        out.append(stream.buffer.getvalue().decode() + stream.getvalue())
    return out[0], out[1]


def _raise_with_local_headers() -> None:
    headers = {"Authorization": "Bearer abc123xyzTOKEN"}
    raise ValueError(f"request failed with {len(headers)} header(s); key=LEAKYsecret-42 rejected")


def test_tracebacks_keep_their_text_but_lose_locals_and_secrets() -> None:
    register_secret("LEAKYsecret-42")
    for fmt in ("json", "pretty"):
        stream = _Stream()
        configure_logging("info", fmt, stream)
        try:
            _raise_with_local_headers()
        except ValueError:
            structlog.get_logger().exception("order.report_failed", venue="deribit")
        text = stream.buffer.getvalue().decode() + stream.getvalue()
        assert "abc123xyzTOKEN" not in text and "LEAKYsecret-42" not in text, fmt
        # The fault is still readable: where it happened and what it was.
        assert "_raise_with_local_headers" in text and "ValueError" in text, fmt
        assert "request failed with 1 header(s); key=[redacted] rejected" in text, fmt


def test_structured_traceback_frames_carry_no_locals() -> None:
    stream = _Stream()
    configure_logging("info", "json", stream)
    try:
        _raise_with_local_headers()
    except ValueError:
        structlog.get_logger().exception("boom")
    (entry,) = _json_lines(stream.buffer.getvalue())
    frames = entry["exception"][0]["frames"]
    assert frames and all("locals" not in f for f in frames)
    assert entry["exception"][0]["exc_type"] == "ValueError"


@attrs.define
class _Creds:
    client_id: str
    api_key: str


@dataclasses.dataclass
class _DataCreds:
    client_id: str
    private_key: str


def test_bytes_nested_pairs_objects_and_text_pairs_are_scrubbed() -> None:
    register_secret("registered-SECRET-77")
    register_secret("zq-9a8b7c6d")  # a token: nothing in it names a secret
    json_text, pretty = _render_both(
        payload=b'{"op":"auth","sig":"registered-SECRET-77"}',
        raw_form=b"client_id=me&client_secret=plainvalue99",
        headers=[("Authorization", "Bearer hdrvalue99"), ("Accept", "json")],
        nested={"a": [{"b": ({"passphrase": "pp-value-99"},)}], "s": {"registered-SECRET-77x"}},
        creds=_Creds("me", "attrs-key-99"),
        data_creds=_DataCreds("me", "0xdatakey99"),
        error=RuntimeError("venue said: registered-SECRET-77 invalid"),
        url="https://api.example/v1?limit=5&api_key=urlkey99&x=1",
        keyed={"zq-9a8b7c6d": 1},
    )
    for text in (json_text, pretty):
        for leaked in (
            "registered-SECRET-77",
            "plainvalue99",
            "hdrvalue99",
            "pp-value-99",
            "attrs-key-99",
            "0xdatakey99",
            "urlkey99",
        ):
            assert leaked not in text, (leaked, text)
    entry = orjson.loads(json_text)
    assert entry["headers"] == [["Authorization", REDACTED], ["Accept", "json"]]
    assert entry["url"] == f"https://api.example/v1?limit=5&api_key={REDACTED}&x=1"
    assert entry["raw_form"] == f"client_id=me&client_secret={REDACTED}"
    assert entry["data_creds"] == {"client_id": "me", "private_key": REDACTED}
    assert entry["creds"] == f"_Creds(client_id='me', api_key='{REDACTED}')"
    assert entry["error"] == REDACTED and entry["payload"] == REDACTED
    assert entry["keyed"] == {REDACTED: 1}


def test_ordinary_values_are_left_alone() -> None:
    json_text, _ = _render_both(
        reason="bad signature: expected 65 bytes",  # prose, not a name=value pair
        token_id="7132093",
        size=Decimal("1.5"),
        when=dt.datetime(2026, 11, 24, tzinfo=dt.UTC),
        items=["a", 1, None],
        blob=b"plain bytes",
    )
    entry = orjson.loads(json_text)
    assert entry["reason"] == "bad signature: expected 65 bytes"
    assert entry["token_id"] == "7132093" and entry["size"] == "1.5"
    assert entry["when"] == "2026-11-24T00:00:00+00:00" and entry["items"] == ["a", 1, None]
    assert entry["blob"] == "b'plain bytes'"


_SECRET = "HypoSecret-0451"
_leaf = st.one_of(
    st.text(max_size=12),
    st.integers(),
    st.none(),
    st.builds(lambda a, b: a + _SECRET + b, st.text(max_size=6), st.text(max_size=6)),
    st.builds(lambda a, b: (a + _SECRET + b).encode(), st.text(max_size=6), st.text(max_size=6)),
)
_tree = st.recursive(
    _leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)


@given(value=_tree)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_registered_secret_never_reaches_a_line_wherever_it_is_nested(value: Any) -> None:
    register_secret(_SECRET)
    json_text, pretty = _render_both(value=value, ctx={"deep": [value]})
    assert _SECRET not in json_text and _SECRET not in pretty
    assert orjson.loads(json_text)["event"] == "x"


@pytest.mark.parametrize("fmt", ["json", "pretty"])
def test_a_failing_stream_never_raises_into_the_caller_and_is_counted(fmt: str, tmp_path: Path) -> None:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # with a binary buffer, as stdout
    configure_logging("info", fmt, stream, path=tmp_path / "t.log")
    try:
        log = structlog.get_logger("t")
        log.info("before")
        stream.close()  # journald gone, a closed pipe: trading code logs on regardless
        log.error("after", venue="deribit")
        log.warning("again")
        assert log_write_failures() == 2
        lines = [orjson.loads(x)["event"] for x in (tmp_path / "t.log").read_bytes().splitlines()]
        assert lines == ["before", "after", "again"]  # the file still has every line
    finally:
        configure_logging("info", "json", io.StringIO())
