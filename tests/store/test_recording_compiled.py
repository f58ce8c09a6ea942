"""The recording reader's compiled line loop (`RecordingReader._read`, its fast lines made by
`_replay.scan_lines` in C) against its Python loop (`_read_reference`, `compiled=False`), on
hostile files: the same (time, frame) pairs, the same line number at each (`line`, `where`), the
same bad lines with the same numbers and reasons, the same error without `skip_bad`, and the same
`lines`, `unfinished` and `last_ts` after, read to the end or stopped part way; read in chunks
that cut lines anywhere and in batches of any size. `scan_lines` itself is compared with a model
of the reference's fast path on any arguments, in a child process (a fault there is a crash)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any, Final, cast
from unittest import mock

import pytest
import zstandard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tradingd.engine.model.errors import DataError
from tradingd.engine.store import _replay, recording
from tradingd.engine.store.recording import RecordingReader, RecordingWriter, format_ts

ROOT: Final = Path(__file__).resolve().parents[2]
SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

BASE_NS: Final = 1_795_478_400_000_000_000  # 2026-11-24T00:00:00Z


@st.composite
def stamps(draw: st.DrawFn) -> bytes:
    """A line's time: mostly the recorder's (a few seconds, so the cache is met and changed),
    else every odd spelling the reference takes or refuses by another path."""
    ns = BASE_NS + draw(st.integers(0, 3)) * 1_000_000_000 + draw(st.integers(0, 10**9 - 1))
    good = format_ts(ns).encode()
    frac = draw(st.text("0123456789", max_size=11).map(str.encode))
    return draw(
        st.sampled_from(
            [
                good,
                good,
                good,
                good,
                good[:19] + b"." + frac + b"Z",  # fractions of any length
                good[:19] + b"." + frac + b"+00:00",
                good[:19] + b".+123456Z",  # int() takes a sign, spaces, underscores: not the format
                good[:19] + b". 123456Z",
                good[:19] + b".1_23456Z",
                good[:19] + b".-123456Z",
                good[:19] + b".\xd9\xa1234567Z",  # non-ASCII digits
                good[:19] + b"Z",
                good[:10] + b"t" + good[11:],  # strptime takes a lower-case t: the Python path
                good[:8] + b" 4" + good[10:],  # and a space-padded day
                good[:27],
                b"2026-02-29T00:00:00.0000000Z",  # no such day
                b"2024-02-29T23:59:60.0000000Z",  # a leap day's leap second
                b"2026-11-24T23:59:61.0000000Z",
                b"2026-11-24T23:59:62.0000000Z",
                b"2026-11-24T24:00:00.0000000Z",
                b"2026-13-01T00:00:00.0000000Z",
                b"0000-01-01T00:00:00.0000000Z",
                b"0001-01-01T00:00:00.0000000Z",  # past int64 ns: Python's ints
                b"1677-09-21T00:12:43.1452248Z",  # int64's first ns and the one before it
                b"1677-09-21T00:12:43.1452240Z",
                b"2262-04-11T23:47:16.8547758Z",  # int64's last ns and the one after it
                b"2262-04-11T23:47:16.8547759Z",
                b"9999-12-31T23:59:59.9999999Z",
            ]
        )
        | st.binary(max_size=30)
    )


FRAMES = st.sampled_from([b'{"a":1}', b"[1]", b"{}", b"x", b"", b"{ }\r", b"\r", b" {", b"\xff\x00"])
ENDS = st.sampled_from([b"\n", b"\n", b"\r\n", b"\r\r\n"])
OTHER = st.sampled_from([b"", b"{", b"[", b'{"bare":1}', b"\r", b"garbage", b"\x00\xff junk"]) | st.binary(
    max_size=40
)
LINE = st.one_of(
    st.tuples(stamps(), st.sampled_from([b" ", b" ", b"  ", b""]), FRAMES).map(b"".join),
    OTHER,
).filter(lambda b: b"\n" not in b)
CONTENT = st.tuples(st.lists(st.tuples(LINE, ENDS).map(b"".join), max_size=30), st.binary(max_size=3)).map(
    lambda t: b"".join(t[0]) + t[1].replace(b"\n", b"")  # and a torn last line, maybe
)
# Chunks that cut lines anywhere (1 MiB: the reader's own), batches of any size.
CHUNKS = st.sampled_from([1, 2, 3, 7, 29, 30, 64, 1 << 20])
BATCHES = st.sampled_from([1, 2, 3, 1024])


def observe(
    path: Path, *, compiled: bool, tag: int | None, skip_bad: bool = True, stop: int | None = None
) -> dict[str, Any]:
    """Everything a reader says of `path`: each item with its line number, the bad lines, the
    error, and the counters after (closed after `stop` items, when given)."""
    bad: list[tuple[Path, int, str]] = []
    reader = RecordingReader(path, skip_bad=skip_bad, on_bad=lambda *a: bad.append(a), compiled=compiled)
    assert reader.compiled == compiled
    items: list[tuple[Any, ...]] = []
    error = None
    it = cast(Generator[Any, None, None], iter(reader) if tag is None else reader.tagged(tag))
    try:
        for item in it:
            items.append((item, reader.line, reader.where()))
            if stop is not None and len(items) >= stop:
                it.close()
                break
    except DataError as exc:
        error = str(exc)
    return {
        "items": items,
        "bad": bad,
        "error": error,
        "bad_lines": reader.bad_lines,
        "lines": reader.lines,
        "unfinished": reader.unfinished,
        "last_ts": reader.last_ts,
        "line": reader.line,
    }


def both(path: Path, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return observe(path, compiled=True, **kw), observe(path, compiled=False, **kw)


@SETTINGS
@given(
    content=CONTENT,
    chunk=CHUNKS,
    batch=BATCHES,
    tag=st.none() | st.integers(0, 3),
    stop=st.none() | st.integers(1, 20),
    skip_bad=st.booleans(),
)
@example(
    content=b"2026-11-24T00:00:00.0000001Z a\r\n\r\n",
    chunk=1 << 20,
    batch=1024,
    tag=None,
    stop=None,
    skip_bad=True,
)
# A second strptime takes with a space in it (cached by the Python loop): `last_ts` is None
# (`_line_ts` reads the time up to the first space), so the scan does not take its lines.
@example(
    content=b"2026-11- 4T00:00:00.0000000Z {}\n" * 2,
    chunk=1 << 20,
    batch=1024,
    tag=None,
    stop=None,
    skip_bad=True,
)
def test_the_compiled_loop_reads_a_plain_file_as_the_python_loop(
    tmp_path: Path, content: bytes, chunk: int, batch: int, tag: int | None, stop: int | None, skip_bad: bool
) -> None:
    path = tmp_path / "r.rec"
    path.write_bytes(content)
    with mock.patch.object(recording, "_CHUNK", chunk), mock.patch.object(recording, "_BATCH", batch):
        compiled, python = both(path, tag=tag, stop=stop, skip_bad=skip_bad)
    assert compiled == python


@SETTINGS
@given(
    content=CONTENT, chunk=CHUNKS, batch=BATCHES, cut=st.integers(0, 12), stop=st.none() | st.integers(1, 20)
)
def test_the_compiled_loop_reads_a_zst_file_as_the_python_loop(
    tmp_path: Path, content: bytes, chunk: int, batch: int, cut: int, stop: int | None
) -> None:
    """`.zst`, whole or cut inside its frame (`unfinished`: its torn last line is no line)."""
    packed = zstandard.ZstdCompressor(write_checksum=True).compress(content)
    path = tmp_path / "r.rec.zst"
    path.write_bytes(packed[: max(len(packed) - cut, 0)])
    with mock.patch.object(recording, "_CHUNK", chunk), mock.patch.object(recording, "_BATCH", batch):
        compiled, python = both(path, tag=1, stop=stop)
    assert compiled == python


def test_a_recorder_s_file_is_read_by_the_scan_and_as_written(tmp_path: Path) -> None:
    """What RecordingWriter writes (many seconds, lines across 1 MiB chunks) is all the scan's:
    no line goes through the Python loop, and every (time, frame) is what was written."""
    pairs = [
        (BASE_NS + k * 7_654_321_300, b'{"k":%d,"pad":"%s"}' % (k, b"x" * (k % 700))) for k in range(6000)
    ]
    path = tmp_path / "w.rec"
    with RecordingWriter(path) as w:
        for ts, frame in pairs:
            w.write(ts, frame)
    assert path.stat().st_size > 2 << 20
    taken = []
    scan = _replay.scan_lines

    def counting(*args: Any) -> tuple[list[Any], int, bytes, int]:
        out = scan(*args)
        taken.append(len(out[0]))
        return out

    with mock.patch.object(_replay, "scan_lines", counting):
        reader = RecordingReader(path)
        assert list(reader) == pairs
    assert sum(taken) == len(pairs) and reader.lines == len(pairs) and reader.last_ts == pairs[-1][0]


def test_line_numbers_inside_a_batch_are_the_yielded_line_s(tmp_path: Path) -> None:
    lines = [format_ts(BASE_NS + k * 300_000_000).encode() + b" {}" for k in range(10)]
    lines[6] = b"bad"
    path = tmp_path / "r.rec"
    path.write_bytes(b"\n".join(lines) + b"\n")
    bad: list[int] = []
    reader = RecordingReader(path, skip_bad=True, on_bad=lambda _p, n, _r: bad.append(n))
    seen = [reader.line for _ in reader]
    assert seen == [1, 2, 3, 4, 5, 6, 8, 9, 10] and bad == [7] and reader.lines == 9
    # Stopped in the first batch (lines 1-6): the counters are of the lines yielded.
    reader = RecordingReader(path, skip_bad=True)
    it = cast(Generator[Any, None, None], iter(reader))
    next(it)
    next(it)
    it.close()
    assert (reader.lines, reader.last_ts) == (2, BASE_NS + 300_000_000)


def test_a_bad_line_after_a_batch_raises_with_its_number(tmp_path: Path) -> None:
    good = [format_ts(BASE_NS + k).encode() + b" {}" for k in range(0, 5000, 100)]
    path = tmp_path / "r.rec"
    path.write_bytes(b"\n".join([*good, b"2026-11-24T00:00:00.-000001Z {}", *good]) + b"\n")
    with pytest.raises(DataError, match=r"r\.rec:51: not a recording line"):
        list(RecordingReader(path))


# -- scan_lines against a model of the reference's fast path, in a child process ----------------

_I64: Final = (-(2**63), 2**63 - 1)


def canonical(prefix: bytes) -> bool:
    """A cached second as the scan makes it: 20 bytes, a `.` last, `_seconds`'s hand path."""
    if len(prefix) != 20 or prefix[19:] != b".":
        return False
    try:
        with mock.patch.object(recording, "_strptime_seconds", side_effect=ValueError):
            recording._seconds(prefix[:19])
    except ValueError:
        return False
    return True


def model_scan(
    buf: bytes, pos: int, end: int, prefix: bytes, base: int, tag: Any, limit: int
) -> tuple[list[Any], int, bytes, int]:
    """The lines `_read_reference` takes on its fast path, from `pos`, as `scan_lines` says them:
    the cached second (when spelled as the recorder does), or a new one parsed by `_seconds`'s
    hand path (not strptime's), within
    int64, up to `limit` lines, whole lines before `end` only."""
    if not 0 <= pos <= end <= len(buf) or limit < 0:
        raise ValueError("bounds")
    items: list[Any] = []
    while pos < end and len(items) < limit:
        nl = buf.find(b"\n", pos, end)
        if nl < 0:
            break
        line = buf[pos:nl]
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) < 29 or line[27:29] != b"Z " or not line[20:27].isdigit():
            break
        if line[:20] == prefix and _I64[0] <= base <= _I64[1] and canonical(prefix):
            line_base, new = base, False
        else:
            if line[19:20] != b".":
                break
            try:
                with mock.patch.object(recording, "_strptime_seconds", side_effect=ValueError):
                    line_base = recording._seconds(line[:19]) * 1_000_000_000
            except ValueError:
                break
            new = True
            if not _I64[0] <= line_base <= _I64[1]:
                break
        ts = line_base + int(line[20:27]) * 100
        if not _I64[0] <= ts <= _I64[1]:
            break
        if new:
            prefix, base = line[:20], line_base
        items.append((ts, line[29:]) if tag is None else (ts, tag, line[29:]))
        pos = nl + 1
    return items, pos, prefix, base


def _outcome(f: Any, *args: Any) -> Any:
    try:
        return f(*args)
    except ValueError:
        return "ValueError"


PREFIXES = st.sampled_from(
    [b"-", b"", b"2026-11-24T00:00:01.", b"2026-11-24T00:00:02.", b"2026-11-24T00:00:01", b"x" * 20]
) | st.binary(min_size=20, max_size=20)
BASES = st.sampled_from(
    [0, BASE_NS, BASE_NS + 10**9, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**70, -(2**70)]
)


@settings(max_examples=2000, deadline=None)
@given(
    lines=st.lists(st.tuples(LINE, ENDS).map(b"".join), max_size=12),
    junk=st.binary(max_size=4),
    start=st.integers(0, 12) | st.integers(-2, 400).map(lambda n: -n - 100),
    end=st.none() | st.integers(-2, 400),
    prefix=PREFIXES,
    base=BASES,
    tag=st.sampled_from([None, 0, 7, "t"]),
    limit=st.integers(-1, 14),
)
def _scan_matches_the_model(
    lines: list[bytes],
    junk: bytes,
    start: int,
    end: int | None,
    prefix: bytes,
    base: int,
    tag: Any,
    limit: int,
) -> None:
    """`start`: the start of a line (0-12), or (-100 and below) any position, in bounds or not."""
    buf = b"".join(lines) + junk
    pos = sum(map(len, lines[:start])) if start >= 0 else -start - 100
    end = len(buf) if end is None else end
    args = (buf, pos, end, prefix, base, tag, limit)
    assert _outcome(_replay.scan_lines, *args) == _outcome(model_scan, *args)


def _child(case: str) -> None:
    {"scan": _scan_matches_the_model}[case]()


def test_scan_lines_is_the_model_on_any_arguments_in_a_child() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", f"from {__name__} import _child; _child('scan')"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-3000:]}"


def test_scan_lines_refuses_bad_arguments() -> None:
    buf = b"2026-11-24T00:00:00.0000001Z a\n"
    for args in [(buf, 0, len(buf) + 1), (buf, 2, 1), (buf, -1, 3)]:
        with pytest.raises(ValueError):
            _replay.scan_lines(*args, b"-", 0, None, 5)
    with pytest.raises(TypeError):
        _replay.scan_lines(bytearray(buf), 0, len(buf), b"-", 0, None, 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _replay.scan_lines(buf, 0, len(buf), b"-", 0.0, None, 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _replay.scan_lines(buf, 0)  # type: ignore[call-arg]
