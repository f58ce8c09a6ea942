"""`RecordingReader.tagged(i)`, which the backtest kernel reads a single recording through, is
iterating the reader with the tag added: the same lines, times, bad lines and line numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradingd.engine.model.errors import DataError
from tradingd.engine.store.recording import RecordingReader

_LINES = [
    b'2026-11-24T10:00:00.1234567Z {"a":1}',
    b'2026-11-24T10:00:00.1234568Z {"a":2}',  # same second: the reader's fast path
    b'2026-11-24T10:00:01.0000000Z {"b":1}',  # a new second
    b'{"bare":true}',  # a bare frame: no receive time
    b"",  # an empty line
    b"not a recording line",
    b'2026-11-24T10:00:02Z {"c":1}',  # no fraction
    b'2026-11-24T10:00:02.5+00:00 {"d":1}',  # another UTC spelling
    b'2026-11-24T10:00:02.123456789Z {"e":1}',  # ns resolution
    b'2026-11-24T10:00:03.-000001Z {"f":1}',  # a signed fraction: a bad line
    b'2026-11-24T10:00:03.0000001Z {"g":1}\r',  # CRLF
]


def _read(reader: RecordingReader, tag: int | None) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    items = iter(reader) if tag is None else reader.tagged(tag)
    for item in items:
        out.append((*item, reader.where()))
    return out


def _both(path: Path, tag: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[Any], list[Any]]:
    bad_plain: list[Any] = []
    bad_tagged: list[Any] = []
    plain = _read(RecordingReader(path, skip_bad=True, on_bad=lambda *a: bad_plain.append(a)), None)
    tagged = _read(RecordingReader(path, skip_bad=True, on_bad=lambda *a: bad_tagged.append(a)), tag)
    return plain, tagged, bad_plain, bad_tagged


@pytest.mark.parametrize("suffix", [".rec", ".rec.zst"])
def test_tagged_lines_are_the_plain_lines_with_the_tag(tmp_path: Path, suffix: str) -> None:
    data = b"\n".join(_LINES) + b"\n"
    path = tmp_path / f"r{suffix}"
    path.write_bytes(zstandard.ZstdCompressor().compress(data) if suffix.endswith(".zst") else data)
    plain, tagged, bad_plain, bad_tagged = _both(path, 3)
    assert len(plain) == 8 and len(bad_plain) == 2 and bad_plain == bad_tagged
    assert tagged == [(ts, 3, frame, where) for ts, frame, where in plain]
    assert any(ts is None for ts, *_ in plain)  # the bare frame went through both


def test_a_bad_line_raises_the_same_error_without_skip_bad(tmp_path: Path) -> None:
    path = tmp_path / "r.rec"
    path.write_bytes(b"\n".join([*_LINES[:3], b"garbage"]) + b"\n")
    errors = []
    for tag in (None, 0):
        reader = RecordingReader(path)
        with pytest.raises(DataError) as info:
            list(iter(reader) if tag is None else reader.tagged(tag))
        errors.append(str(info.value))
    assert errors[0] == errors[1] and ":4:" in errors[0]


_line = st.one_of(
    st.sampled_from(_LINES),
    st.binary(max_size=40),
    st.builds(
        lambda s, f, frame: b"2026-11-24T10:00:%02d.%sZ " % (s, f) + frame,
        st.integers(0, 61),
        st.text("0123456789+- _", min_size=0, max_size=9).map(str.encode),
        st.binary(max_size=12).filter(lambda b: b"\n" not in b),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_line, max_size=30), tag=st.integers(0, 5))
def test_tagged_reading_matches_plain_reading_on_any_lines(
    tmp_path: Path, lines: list[bytes], tag: int
) -> None:
    path = tmp_path / "h.rec"
    path.write_bytes(b"\n".join(lines))
    plain, tagged, bad_plain, bad_tagged = _both(path, tag)
    assert tagged == [(ts, tag, frame, where) for ts, frame, where in plain]
    assert bad_plain == bad_tagged
