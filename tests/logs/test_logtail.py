"""`tradingd logs`: filters checked on a real log (the real CLI's backtest, in a subprocess),
against an oracle written here with the standard library; follow mode across a rotation; stdin
as a stream; `--json` passing bytes through; text lines; a closed pipe."""

from __future__ import annotations

import datetime as dt
import fnmatch
import gzip
import io
import json
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.examples import examples
from tests.support.log_streams import _Stream
from tradingd.cli.main import main
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.logs.tail import LogFilter, LogView, follow_file, parse_line, parse_time, read_file
from tradingd.simulators.deribit import SIMULATOR as DERIBIT_SIM

ROOT = Path(__file__).resolve().parent.parent.parent
_SCRIPT = shutil.which("tradingd", path=str(Path(sys.executable).parent))
TRADINGD = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "tradingd.cli.main"]
RANK = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


# -- a real log --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The JSON log of a real `tradingd backtest` (debug level) over a short Deribit recording
    with two bad frames in it, so the log has debug, info and warning lines."""
    folder = tmp_path_factory.mktemp("real-log")
    rec = folder / "short.rec"
    DERIBIT_SIM.generate_sample(rec, {"hours": 0.15, "seed": 7})
    lines = rec.read_bytes().splitlines(keepends=True)
    for at, frame in (
        (len(lines) // 3, b'{"jsonrpc":"2.0","method":"subscription"}'),
        (len(lines) // 2, b"{nope"),
    ):
        ts = lines[at].split(b" ", 1)[0]
        lines.insert(at + 1, ts + b" " + frame + b"\n")
    rec.write_bytes(b"".join(lines))
    config = (ROOT / "config" / "backtest-deribit.toml").read_text()
    config = config.replace('path = "../data/deribit-sample.rec.zst"', 'path = "short.rec"')
    config = "\n".join(line for line in config.splitlines() if not line.startswith("generate = "))
    (folder / "bt.toml").write_text(config)
    r = subprocess.run(
        [*TRADINGD, "--log-format", "json", "--log-level", "debug", "backtest", "--config", "bt.toml"],
        cwd=folder,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    log = folder / "tradingd.log"
    log.write_bytes(r.stderr)
    return log


def entries(path: Path) -> list[tuple[bytes, dict[str, Any]]]:
    return [(raw, json.loads(raw)) for raw in path.read_bytes().splitlines(keepends=True)]


def oracle(path: Path, keep: Callable[[dict[str, Any]], bool]) -> bytes:
    return b"".join(raw for raw, e in entries(path) if keep(e))


def logs(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*TRADINGD, "logs", *args], input=stdin, capture_output=True, timeout=60, check=False
    )


def test_the_real_log_has_what_the_filters_need(real_log: Path) -> None:
    found = entries(real_log)
    assert {e["level"] for _, e in found} == {"debug", "info", "warning"}
    assert {e["strategy"] for _, e in found if "strategy" in e} == {"gamma_btc", "momentum_eth"}
    assert any(e["event"] == "frame.malformed" and e["venue"] == "deribit" for _, e in found)
    assert all(list(e)[:3] == ["ts", "level", "event"] for _, e in found)  # the stable schema


def test_level_filter_keeps_that_level_and_above(real_log: Path) -> None:
    r = logs(str(real_log), "--level", "warning", "--json")
    assert r.returncode == 0 and r.stderr == b""
    want = oracle(real_log, lambda e: RANK[e["level"]] >= RANK["warning"])
    assert r.stdout == want and want.count(b"\n") == 2
    r = logs(str(real_log), "--level", "info", "--json")
    assert r.stdout == oracle(real_log, lambda e: e["level"] != "debug")


def test_venue_strategy_and_event_glob_all_hold(real_log: Path) -> None:
    r = logs(str(real_log), "--venue", "deribit", "--strategy", "gamma_btc", "--event", "order.*", "--json")
    want = oracle(
        real_log,
        lambda e: (
            e.get("venue") == "deribit"
            and e.get("strategy") == "gamma_btc"
            and e["event"].startswith("order.")
        ),
    )
    assert r.returncode == 0 and r.stdout == want and want.count(b"\n") >= 10
    # Repeated: any of the values.
    r = logs(str(real_log), "--event", "order.fill", "--event", "frame.malformed", "--json")
    assert r.stdout == oracle(real_log, lambda e: e["event"] in ("order.fill", "frame.malformed"))


def test_since_and_until_cut_the_log_by_its_timestamps(real_log: Path) -> None:
    found = entries(real_log)
    since, until = found[len(found) // 3][1]["ts"], found[2 * len(found) // 3][1]["ts"]
    r = logs(str(real_log), "--since", since, "--until", until, "--json")

    def inside(e: dict[str, Any]) -> bool:
        when = dt.datetime.fromisoformat(e["ts"])
        return dt.datetime.fromisoformat(since) <= when <= dt.datetime.fromisoformat(until)

    want = oracle(real_log, inside)
    assert r.returncode == 0 and r.stdout == want
    assert 0 < want.count(b"\n") < len(found)
    # A backtest's lines carry the recording's (market) time, said by `clock` (they carried the
    # wall time once: --since with a market time found nothing). Relative times count back
    # from now, on the wall clock: the replayed day is in the past, none of it in the future.
    assert all(e.get("clock") == "sim" for _, e in found)
    assert logs(str(real_log), "--until", "now", "--json").stdout == real_log.read_bytes()
    assert logs(str(real_log), "--since", "now", "--json").stdout == b""


def test_pretty_output_looks_like_the_daemons_console(real_log: Path) -> None:
    r = logs(str(real_log), "--event", "order.fill", "--strategy", "momentum_eth")
    want = [
        e for _, e in entries(real_log) if e["event"] == "order.fill" and e.get("strategy") == "momentum_eth"
    ]
    lines = r.stdout.decode().splitlines()
    assert r.returncode == 0 and len(lines) == len(want) > 0
    for line, e in zip(lines, want, strict=True):
        # ts first (to the millisecond: still a time --since takes), then the level
        assert line.startswith(e["ts"][:23] + "Z [info")
        assert "order.fill" in line and f"client_order_id={e['client_order_id']}" in line
    assert "\x1b[" not in r.stdout.decode()  # not a terminal: no colours


def test_stdin_is_read_as_a_stream_line_by_line(real_log: Path) -> None:
    found = entries(real_log)
    warning = next(raw for raw, e in found if e["level"] == "warning")
    proc = subprocess.Popen(
        [*TRADINGD, "logs", "--level", "warning", "--json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    out = _line_reader(proc.stdout)
    try:
        proc.stdin.write(found[0][0] + warning)
        proc.stdin.flush()
        # Printed while stdin is still open: no waiting for EOF or a full buffer.
        assert out.get(timeout=10) == warning
        proc.stdin.write(b"".join(raw for raw, _ in found))
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
    rest = b"".join(iter(out.get, None))
    assert rest == oracle(real_log, lambda e: e["level"] == "warning")


def _line_reader(stream: Any) -> queue.Queue[bytes | None]:
    lines: queue.Queue[bytes | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_follow_sees_appended_lines_and_survives_a_rotation(real_log: Path, tmp_path: Path) -> None:
    found = [raw for raw, e in entries(real_log) if e["event"].startswith("order.")]
    assert len(found) >= 8
    path = tmp_path / "tradingd.log"
    path.write_bytes(b"".join(found[:2]) + b"not json\n")
    proc = subprocess.Popen(
        [*TRADINGD, "logs", str(path), "--follow", "--json", "--event", "order.*"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out = _line_reader(proc.stdout)
    try:
        assert [out.get(timeout=10) for _ in range(2)] == found[:2]
        with path.open("ab") as f:  # the daemon appends
            f.write(found[2])
        assert out.get(timeout=5) == found[2]
        # logrotate: rename, create; the daemon writes the old file until SIGHUP, then the new one.
        path.rename(tmp_path / "tradingd.log.1")
        path.touch()
        with (tmp_path / "tradingd.log.1").open("ab") as f:
            f.write(found[3])
        assert out.get(timeout=5) == found[3]
        path.write_bytes(found[4] + found[5])
        assert [out.get(timeout=5) for _ in range(2)] == found[4:6]
        with path.open("ab") as f:
            f.write(found[6])
        assert out.get(timeout=5) == found[6]
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the way out of --follow
        assert proc.wait(timeout=10) == 130
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert b"was replaced (rotated); following the new file" in err and b"Traceback" not in err


def test_a_closed_pipe_ends_quietly(real_log: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.log"
    big.write_bytes(real_log.read_bytes() * 30)  # far more than a pipe holds
    proc = subprocess.Popen([*TRADINGD, "logs", str(big)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    assert proc.wait(timeout=30) == 0
    assert proc.stderr.read() == b""


# -- the same command in-process: text lines, prefixes, errors --------------------------------


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


TRACEBACK = b'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nKeyError: 1\n'


def run(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> tuple[int, bytes, bytes]:
    code = main(["logs", *args])
    out, err = capsysbinary.readouterr()
    return code, out, err


def test_text_lines_pretty_shown_json_dropped_and_counted(
    real_log: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    lines = real_log.read_bytes().splitlines(keepends=True)
    mixed = tmp_path / "mixed.log"
    mixed.write_bytes(b"".join(lines[:3]) + TRACEBACK + b"\n" + b"".join(lines[3:6]))
    code, out, err = run(capsysbinary, str(mixed), "--no-color")
    assert code == 0 and TRACEBACK in out and out.count(b"\n") == 6 + 3
    code, out, err = run(capsysbinary, str(mixed), "--no-text")
    assert code == 0 and b"Traceback" not in out and out.count(b"\n") == 6
    code, out, err = run(capsysbinary, str(mixed), "--json")
    assert code == 0 and out == b"".join(lines[:6])
    assert err == b"tradingd logs: 3 line(s) were not JSON log objects (left out of the --json output)\n"


def test_text_lines_go_with_the_json_line_before_them_in_a_time_window(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    early = b'{"ts":"2026-11-24T06:00:00Z","level":"error","event":"old.crash"}\n'
    late = b'{"ts":"2026-11-24T07:00:00Z","level":"error","event":"new.crash"}\n'
    path = tmp_path / "t.log"
    path.write_bytes(early + TRACEBACK + late + TRACEBACK.replace(b"KeyError", b"ValueError"))
    code, out, _ = run(capsysbinary, str(path), "--since", "2026-11-24T06:30:00Z")
    assert code == 0 and b"old.crash" not in out and b"KeyError" not in out
    assert b"new.crash" in out and b"ValueError: 1" in out


def test_where_grep_and_colours(real_log: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code, out, _ = run(capsysbinary, str(real_log), "--where", "client_order_id=gamma_btc-bt-1", "--json")
    assert code == 0 and out == oracle(real_log, lambda e: e.get("client_order_id") == "gamma_btc-bt-1")
    assert out.count(b"\n") >= 3  # sent, fill, updates
    code, out, _ = run(
        capsysbinary, str(real_log), "--where", "trade_id", "--where", "liquidity=t*", "--json"
    )
    assert out == oracle(real_log, lambda e: "trade_id" in e and e.get("liquidity", "").startswith("t"))
    code, out, _ = run(capsysbinary, str(real_log), "--grep", "SIMT-1", "--grep", "frame.malformed", "--json")
    assert out == b"".join(
        raw for raw, _ in entries(real_log) if b"SIMT-1" in raw or b"frame.malformed" in raw
    )
    line = real_log.read_bytes().splitlines(keepends=True)[0]
    for colors in (True, False):
        out_io = io.BytesIO()
        LogView(out_io, colors=colors).feed([line])
        assert (b"\x1b[" in out_io.getvalue()) is colors


def test_journald_prefixed_lines_are_recognised_and_passed_whole(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    line = (
        b'Nov 24 06:09:40 host tradingd[812]: {"ts":"2026-11-24T06:09:40Z","level":"warning","event":"x"}\n'
    )
    other = b"Nov 24 06:09:41 host systemd[1]: Started tradingd.service {maybe}.\n"
    path = tmp_path / "j.log"
    path.write_bytes(line + other)
    code, out, err = run(capsysbinary, str(path), "--level", "warning", "--json")
    assert (code, out) == (0, line) and b"1 line(s) were not JSON" in err
    assert parse_line(line) == {"ts": "2026-11-24T06:09:40Z", "level": "warning", "event": "x"}
    assert parse_line(b'x{"a":1}') is None and parse_line(b"[1]") is None and parse_line(b"{") is None


def test_compressed_logs_and_the_last_n_lines(
    real_log: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    data = real_log.read_bytes()
    gz = tmp_path / "tradingd.log.2.gz"
    gz.write_bytes(gzip.compress(data))
    assert run(capsysbinary, str(gz), "--json")[1] == data
    last = b"".join(data.splitlines(keepends=True)[-5:])
    assert run(capsysbinary, str(gz), "--json", "-n", "5")[1] == last
    assert run(capsysbinary, str(real_log), "--json", "-n", "5")[1] == last
    assert run(capsysbinary, str(real_log), "--json", "-n", "0")[1] == b""


def test_exceptions_logged_as_json_render_as_a_traceback() -> None:
    stream = _Stream()
    configure_logging("info", "json", stream)
    try:
        try:
            _ = {"present": 1}["missing"]
        except KeyError as exc:
            raise RuntimeError("report failed") from exc
    except RuntimeError:
        structlog.get_logger().exception("order.report_failed", venue="deribit")
    line = stream.buffer.getvalue()
    out = io.BytesIO()
    LogView(out).feed([line])
    text = out.getvalue().decode()
    assert "order.report_failed" in text and "venue=deribit" in text
    assert (
        text.index("KeyError: 'missing'")
        < text.index("direct cause")
        < text.index("RuntimeError: report failed")
    )
    assert "Traceback (most recent call last):" in text and "test_exceptions_logged_as_json" in text


def test_usage_errors_and_unreadable_files(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    for bad in (["--since", "5x"], ["--level", "loud"], ["-n", "-1"], ["--where", "=x"]):
        with pytest.raises(SystemExit) as info:
            main(["logs", "x.log", *bad])
        assert info.value.code == 2
    capsysbinary.readouterr()
    code, _, err = run(capsysbinary, "x.log", "--since", "2026-11-24T07:00Z", "--until", "2026-11-24T06:00Z")
    assert code == 2 and b"is after until" in err
    code, _, err = run(capsysbinary, str(tmp_path / "missing.log"))
    assert code == 1 and err.count(b"\n") == 1 and b"cannot read" in err
    code, _, err = run(capsysbinary, str(tmp_path))
    assert code == 1 and b"cannot read" in err
    code, _, err = run(capsysbinary, str(tmp_path / "x.log.gz"), "--follow")
    assert code == 2 and b"cannot follow a compressed file" in err

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    code, _, err = run(capsysbinary)
    assert code == 2 and b"give a log file, or pipe logs in" in err


# -- the pieces, where inputs vary -------------------------------------------------------------

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def test_parse_time_forms() -> None:
    assert parse_time("2026-11-24T06:00:00Z") == dt.datetime(2026, 11, 24, 6, tzinfo=dt.UTC)
    assert parse_time("2026-11-24 06:00") == dt.datetime(2026, 11, 24, 6, tzinfo=dt.UTC)  # no zone: UTC
    assert parse_time("2026-11-24T08:00:00+02:00") == dt.datetime(2026, 11, 24, 6, tzinfo=dt.UTC)
    assert parse_time("2026-11-24") == dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    assert parse_time("now", now=NOW) == NOW
    assert parse_time("1.5h", now=NOW) == NOW - dt.timedelta(minutes=90)
    assert parse_time("2 days", now=NOW) == NOW - dt.timedelta(days=2)
    for bad in ("", "yesterday", "10x", "-5m", "2026-13-01"):
        with pytest.raises(ValueError, match="ISO-8601 time"):
            parse_time(bad, now=NOW)


@given(n=st.integers(0, 10**9), unit=st.sampled_from(["s", "m", "h", "d", "w"]))
def test_relative_times_are_that_long_before_now(n: int, unit: str) -> None:
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    try:
        want = NOW - dt.timedelta(seconds=n * seconds)
    except OverflowError:
        with pytest.raises(ValueError, match="further back than a date can go"):
            parse_time(f"{n}{unit}", now=NOW)
    else:
        assert parse_time(f"{n}{unit}", now=NOW) == want


def test_filter_semantics() -> None:
    e = {"ts": "2026-11-24T06:00:00Z", "level": "warning", "event": "order.fill", "venue": "deribit"}
    assert LogFilter(min_level=30).matches(e) and not LogFilter(min_level=40).matches(e)
    assert LogFilter(min_level=40).matches({**e, "level": "CRITICAL"})
    assert LogFilter(min_level=40).matches({**e, "level": "custom"})  # cannot be ranked: kept
    assert LogFilter(fields={"event": ["order.*"]}).matches(e)
    assert not LogFilter(fields={"event": ["order"]}).matches(e)  # exact means exact
    assert LogFilter(fields={"venue": ["derive", "deribit"]}).matches(e)  # any of
    assert not LogFilter(fields={"venue": ["deribit"], "event": ["order.sent"]}).matches(e)  # all of
    assert not LogFilter(fields={"strategy": ["*"]}).matches(e) and LogFilter(
        fields={"venue": ["*"]}
    ).matches(e)
    assert LogFilter(fields={"n": ["5"]}).matches({"n": 5}) and LogFilter(fields={"ok": ["true"]}).matches(
        {"ok": True}
    )
    assert LogFilter(fields={"venues": ["derive"]}).matches({"venues": ["deribit", "derive"]})
    at = parse_time("2026-11-24T06:00:00Z")
    assert LogFilter(since=at, until=at).matches(e)  # both ends included
    assert not LogFilter(since=at + dt.timedelta(microseconds=1)).matches(e)
    assert not LogFilter(since=at).matches({"event": "no ts"})
    assert LogFilter(until=at).matches({"ts": at.timestamp() * 1e9})  # epoch ns
    with pytest.raises(ValueError, match="aware"):
        LogFilter(since=dt.datetime(2026, 1, 1))


def _reference(f: dict[str, Any], e: dict[str, Any]) -> bool:
    """What the filter must do, written plainly (the documented semantics)."""
    level = e.get("level")
    rank = RANK.get(level.lower()) if isinstance(level, str) else None
    if f["level"] is not None and rank is not None and rank < f["level"]:
        return False
    for key, patterns in f["fields"].items():
        if key not in e:
            return False
        value = e[key]
        texts = [
            v if isinstance(v, str) else json.dumps(v)
            for v in (value if isinstance(value, list) else [value])
        ]
        if not any(fnmatch.fnmatchcase(t, p) for t in texts for p in patterns):
            return False
    return True


_TEXTS = ["deribit", "derive", 'de"ribit', "dé", "deribit\\x", "x/y", "5"]
_values = st.one_of(
    st.sampled_from(_TEXTS),
    st.integers(4, 6),
    st.booleans(),
    st.none(),
    st.lists(st.sampled_from(_TEXTS), max_size=2),
)
_entry = st.fixed_dictionaries(
    {"ts": st.just("2026-11-24T06:00:00.000001Z")},
    optional={
        "level": st.sampled_from(["debug", "info", "warning", "error", "INFO", "odd"]),
        "event": st.sampled_from(["order.sent", "order.fill", "frame.malformed", "x"]),
        "venue": _values,
        "strategy": _values,
        "note": st.sampled_from(['"level":"info"', '"deribit"', "plain", "dé"]),
        "nested": st.fixed_dictionaries({"level": st.sampled_from(["debug", "error"])}),
    },
)
_spec = st.fixed_dictionaries(
    {
        "level": st.sampled_from([None, 20, 30, 40]),
        "fields": st.dictionaries(
            st.sampled_from(["venue", "strategy", "event"]),
            st.lists(st.sampled_from([*_TEXTS, "order.*", "true", "de*"]), min_size=1, max_size=2),
            max_size=2,
        ),
    }
)


def _encode(e: dict[str, Any], style: int) -> bytes:
    if style == 0:
        return json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    if style == 1:
        return json.dumps(e, ensure_ascii=True).encode() + b"\n"  # spaces, \\u escapes
    return json.dumps(dict(reversed(list(e.items()))), separators=(",", ":")).encode() + b"\n"


_TS = "2026-11-24T06:00:00.000001Z"


@given(spec=_spec, rows=st.lists(st.tuples(_entry, st.integers(0, 2)), max_size=25), text=st.booleans())
# The edges, always tried: a number or true matched by its JSON text (no quotes in the line),
# and a value escaped by another writer (`"d\u00e9"` for "dé").
@example(spec={"level": None, "fields": {"venue": ["5"]}}, rows=[({"ts": _TS, "venue": 5}, 0)], text=False)
@example(
    spec={"level": None, "fields": {"venue": ["true"]}}, rows=[({"ts": _TS, "venue": True}, 0)], text=False
)
@example(spec={"level": 30, "fields": {"venue": ["dé"]}}, rows=[({"ts": _TS, "venue": "dé"}, 1)], text=False)
@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_raw_byte_shortcuts_never_change_the_result(
    spec: dict[str, Any], rows: list[tuple[dict[str, Any], int]], text: bool
) -> None:
    """Level and field filters are decided on the raw bytes when they can be (no parse); the
    output must be exactly what the plain reading of the filter keeps."""
    lines = [_encode(e, style) for e, style in rows]
    flt = LogFilter(min_level=spec["level"], fields=spec["fields"])
    out = io.BytesIO()
    LogView(out, flt, json=True).feed(lines)
    assert out.getvalue() == b"".join(
        line for line, (e, _) in zip(lines, rows, strict=True) if _reference(spec, e)
    )
    if text:  # the same through the pretty path, which parses every line
        pretty = io.BytesIO()
        view = LogView(pretty, flt)
        view.feed(lines)
        assert view.lines_shown == sum(_reference(spec, e) for e, _ in rows)


def test_the_raw_byte_shortcuts_on_lines_no_dict_can_make() -> None:
    lines = [
        # A duplicate key: the last one counts (orjson, like json), so this is an error line.
        b'{"ts":"2026-11-24T06:00:00Z","level":"debug","event":"x","venue":"deribit","level":"error"}\n',
        # An escaped quote in the first value: the "level" after it is not where it seems.
        b'{"ts":"a\\",\\"level\\":\\"debug","level":"error","event":"x","venue":"deribit"}\n',
        # The venue escaped where it need not be (another writer): \u0064 is "d".
        b'{"ts":"2026-11-24T06:00:00Z","level":"error","event":"x","venue":"\\u0064eribit"}\n',
        b'{"ts":"2026-11-24T06:00:00Z","level":"error","event":"x","venue":"derive"}\n',
        b'{"ts":"2026-11-24T06:00:00Z","level":"info","event":"x","venue":"deribit"}\n',
    ]
    out = io.BytesIO()
    LogView(out, LogFilter(min_level=40, fields={"venue": ["deribit"]}), json=True).feed(lines)
    assert out.getvalue() == b"".join(lines[:3])


@given(
    body=st.lists(st.binary(min_size=0, max_size=5).filter(lambda b: b"\n" not in b), max_size=30),
    final_newline=st.booleans(),
    n=st.integers(0, 40),
)
@settings(max_examples=150, deadline=None)
def test_the_last_n_lines_of_a_file(body: list[bytes], final_newline: bool, n: int) -> None:
    data = b"\n".join(body) + (b"\n" if final_newline and body else b"")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.log"
        path.write_bytes(data)
        got = [line for batch in read_file(path, lines=n) for line in batch]
    want = re.findall(rb"[^\n]*\n|[^\n]+$", data)  # lines end at b"\n" only (a \r is data)
    assert got == (want[-n:] if n else [])


class _Done(Exception):
    pass


def _collect(batches: Iterator[list[bytes]]) -> list[bytes]:
    """Every line `follow_file` yields until the scripted `sleep` says the script is over."""
    got: list[bytes] = []
    try:
        for batch in batches:
            got.extend(batch)
    except _Done:
        return got
    raise AssertionError("follow_file ended by itself")


def test_follow_file_across_rotation_truncation_and_removal(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    old = tmp_path / "t.log.1"

    def append(p: Path, data: bytes) -> Callable[[], None]:
        def step() -> None:
            with p.open("ab") as f:
                f.write(data)

        return step

    def rotate() -> None:
        path.rename(old)
        append(old, b"old-tail\n")()  # the daemon has not reopened yet
        path.touch()  # logrotate's `create`

    def truncate() -> None:
        path.write_bytes(b"t\n")  # copytruncate: the same file, shorter

    steps: Iterator[Callable[[], object]] = iter(
        [
            append(path, b"a\n"),  # the file appears
            append(path, b"b\npart"),
            append(path, b"ial\n"),
            rotate,
            lambda: (append(old, b"old-last")(), path.write_bytes(b"new-1\n")),
            truncate,
            path.unlink,
            lambda: path.write_bytes(b"re\n"),  # a new file after a removal
        ]
    )

    def sleep(_: float) -> None:
        step = next(steps, None)
        if step is None:
            raise _Done
        step()

    notices: list[str] = []
    got = _collect(follow_file(path, sleep=sleep, notice=notices.append))
    assert got == [b"a\n", b"b\n", b"partial\n", b"old-tail\n", b"old-last", b"new-1\n", b"t\n", b"re\n"]
    assert notices[0] == f"waiting for {path} to appear"
    assert sum("was replaced (rotated)" in n for n in notices) == 2
    assert sum("was truncated" in n for n in notices) == 1


def test_follow_file_can_start_near_the_end(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    path.write_bytes(b"1\n2\n3\n4\n")

    def sleep(_: float) -> None:
        raise _Done

    assert _collect(follow_file(path, lines=2, sleep=sleep)) == [b"3\n", b"4\n"]
