"""The recording reader's hand-made fast paths against their references: `_seconds` (a
timestamp's second parsed by hand) against `time.strptime` over the whole valid range and odd
strings, and `RecordingReader` against a line-by-line model of the format (DESIGN.md,
"recordings") built on the strptime parse, on hypothesis-made files: the same (time, frame)
pairs, the same bad lines with the same reasons and line numbers."""

from __future__ import annotations

import calendar
import datetime
import time
from pathlib import Path
from typing import Any, Final
from unittest import mock

import pytest
import zstandard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tradingd.engine.model.errors import DataError
from tradingd.engine.store import recording
from tradingd.engine.store.recording import RecordingReader, format_ts

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def reference_seconds(prefix: bytes) -> int | str:
    """What strptime says of a prefix: its seconds since the epoch, or "refused"."""
    try:
        return calendar.timegm(time.strptime(prefix.decode("ascii"), "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, UnicodeDecodeError):
        return "refused"


def seconds(prefix: bytes) -> int | str:
    try:
        return recording._seconds(prefix)
    except (ValueError, UnicodeDecodeError):
        return "refused"


LAST: Final = datetime.datetime(9999, 12, 31, 23, 59, 59)


@SETTINGS
@given(st.datetimes(min_value=datetime.datetime(1, 1, 1), max_value=LAST))
def test_every_valid_second_parses_as_strptime_parses_it(when: datetime.datetime) -> None:
    prefix = when.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0").encode()  # strftime drops a year's zeros
    with mock.patch.object(recording, "_strptime_seconds", side_effect=AssertionError("not by hand")):
        by_hand = recording._seconds(prefix)  # the recorder's spelling never goes to strptime
    assert by_hand == reference_seconds(prefix) == calendar.timegm(when.timetuple())


# Every field at every value strptime might take or refuse: out of range, leap days and seconds,
# short fields, signs, spaces, other separators, a lower-case t, non-ASCII digits.
FIELD = st.sampled_from(["00", "01", "09", "12", "13", "23", "24", "28", "29", "30", "31", "32", "59"])
ODD = st.sampled_from(["60", "61", "62", "99", "0", "+1", " 1", "-1", "1_", "\u0661\u0662", "a1", "", "1 "])
YEARS = st.sampled_from(
    ["0000", "0001", "1969", "1970", "2000", "2024", "2026", "2100", "9999", "+202", " 202"]
)
SEPARATORS = st.sampled_from(["-", "-", "-", "/", " "]), st.sampled_from(["T", "T", "t", " ", "_"])


@SETTINGS
@given(
    year=YEARS,
    month=FIELD | ODD,
    day=FIELD | ODD,
    hour=FIELD | ODD,
    minute=FIELD | ODD,
    second=FIELD | ODD,
    dash=SEPARATORS[0],
    tee=SEPARATORS[1],
)
@example("2024", "02", "29", "23", "59", "60", "-", "T")  # a leap day's leap second
@example("2026", "02", "29", "00", "00", "00", "-", "T")  # no such day
@example("2026", "01", " 5", "00", "00", "00", "-", "T")  # strptime takes a space-padded day
@example("2026", "01", "05", "00", "00", "00", "-", "t")  # and a lower-case t
def test_odd_prefixes_are_taken_or_refused_as_strptime_does(
    year: str, month: str, day: str, hour: str, minute: str, second: str, dash: str, tee: str
) -> None:
    prefix = f"{year}{dash}{month}{dash}{day}{tee}{hour}:{minute}:{second}".encode()[:19]
    assert seconds(prefix) == reference_seconds(prefix)


@SETTINGS
@given(st.binary(max_size=24))
def test_arbitrary_bytes_are_taken_or_refused_as_strptime_does(raw: bytes) -> None:
    assert seconds(raw[:19]) == reference_seconds(raw[:19])


# -- the reader against a model of the format --------------------------------------------------


def reference_ts(ts: bytes) -> int:
    """DESIGN.md's timestamp: `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1-9 digits, `Z` or
    `+00:00`; by strptime."""
    sec = reference_seconds(ts[:19])
    rest = ts[19:]
    if isinstance(sec, str) or not rest.endswith((b"Z", b"+00:00")):
        raise ValueError("bad")
    rest = rest[:-1] if rest.endswith(b"Z") else rest[:-6]
    if rest and (rest[:1] != b"." or not rest[1:].isdigit() or len(rest) > 10):
        raise ValueError("bad")
    return sec * 1_000_000_000 + (int(rest[1:].ljust(9, b"0")) if rest else 0)


def reference_read(content: bytes) -> tuple[list[tuple[int | None, bytes]], list[int]]:
    """(the pairs, the numbers of the bad lines) of a plain recording, line by line."""
    pairs: list[tuple[int | None, bytes]] = []
    bad: list[int] = []
    lines = content.split(b"\n")
    if not lines[-1]:
        lines.pop()
    for n, line in enumerate(lines, 1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            continue
        if line[:1] in (b"{", b"["):
            pairs.append((None, line))
            continue
        sp = line.find(b" ")
        try:
            if sp < 0:
                raise ValueError("no space")
            pairs.append((reference_ts(line[:sp]), line[sp + 1 :]))
        except ValueError:
            bad.append(n)
    return pairs, bad


def read(path: Path) -> tuple[list[tuple[int | None, bytes]], list[int]]:
    bad: list[int] = []
    reader = RecordingReader(path, skip_bad=True, on_bad=lambda _p, n, _r: bad.append(n))
    pairs = list(reader)
    assert reader.bad_lines == len(bad)
    return pairs, bad


BASE_NS = 1_795_478_400_000_000_000
FRAMES = st.sampled_from([b'{"a":1}', b"[1]", b"{}", b"x", b"", b"{ }\r", b"\r", b" {"])


@st.composite
def stamps(draw: st.DrawFn) -> bytes:
    """A line's time: mostly what the recorder writes (several lines a second), else odd ones."""
    second = draw(st.integers(min_value=0, max_value=3))
    ns = BASE_NS + second * 1_000_000_000 + draw(st.integers(0, 10**9 - 1))
    good = format_ts(ns).encode()
    return draw(
        st.sampled_from(
            [
                good,
                good,
                good,
                good[:19] + b".+123456Z",  # int() takes a sign: the format does not
                good[:19] + b". 123456Z",
                good[:19] + b".1_23456Z",
                good[:19] + b".-123456Z",
                good[:19] + b"Z",
                good[:19] + b".123Z",
                good[:19] + b".123456789+00:00",
                good[:19] + b".1234567890Z",
                good[:10] + b"t" + good[11:],
                good[:27],
                b"2026-02-30T00:00:00.0000000Z",
                b"2024-02-29T23:59:60.0000000Z",
            ]
        )
        | st.binary(max_size=30)
    )


ENDS = st.sampled_from([b"\n", b"\n", b"\r\n"])
LINES = st.lists(
    st.tuples(stamps(), st.sampled_from([b" ", b"  ", b""]), FRAMES, ENDS),
    max_size=25,
)


@SETTINGS
@given(lines=LINES, last_newline=st.booleans())
def test_the_reader_reads_what_the_line_by_line_model_reads(
    lines: list[tuple[bytes, bytes, bytes, bytes]], last_newline: bool, tmp_path: Path
) -> None:
    content = b"".join(ts + sp + frame + nl for ts, sp, frame, nl in lines if b"\n" not in ts + frame)
    if not last_newline and content.endswith(b"\n"):
        content = content[:-1]
    path = tmp_path / "r.rec"
    path.write_bytes(content)
    assert read(path) == reference_read(content)
    zst = tmp_path / "r.rec.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(content))
    assert read(zst) == reference_read(content)


def test_a_bad_line_raises_with_its_number_without_skip_bad(tmp_path: Path) -> None:
    path = tmp_path / "r.rec"
    good = format_ts(BASE_NS).encode()
    path.write_bytes(good + b" {}\n" + good[:19] + b".-123456Z {}\n")
    with pytest.raises(DataError, match=r"r\.rec:2: not a recording line"):
        list(RecordingReader(path))


def test_a_written_recording_reads_back_exactly(tmp_path: Path) -> None:
    """What RecordingWriter writes (the fast path), times to 100 ns, across many seconds."""
    pairs: list[tuple[Any, bytes]] = [(BASE_NS + k * 7_654_321_300, b'{"k":%d}' % k) for k in range(2000)]
    path = tmp_path / "w.rec.zst"
    with recording.RecordingWriter(path) as w:
        for ts, frame in pairs:
            w.write(ts, frame)
    assert list(RecordingReader(path)) == pairs
