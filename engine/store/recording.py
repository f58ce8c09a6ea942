"""The recording format (DESIGN.md, "recordings"): one line per received frame,

    2026-11-24T10:00:00.1234567Z {"jsonrpc":"2.0",...}

the local receive time in ISO-8601 UTC, one space, the frame's exact bytes. `.zst` and `.gz`
files are decompressed on the fly (by name). Readers also take bare frames (a line starting with
`{` or `[`), which have no receive time.
"""

from __future__ import annotations

import calendar
import collections
import datetime
import gzip
import heapq
import inspect
import io
import operator
import os
import tempfile
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, Final

import zstandard

from ..model.errors import DataError

try:  # the compiled line loop (_replay.c); a tree built without it reads in Python, the reference
    from . import _replay
except ImportError:  # pragma: no cover - a build without the extension
    _replay = None  # type: ignore[assignment]

__all__ = [
    "RecordingReader",
    "RecordingWriter",
    "format_time",
    "format_ts",
    "merge_recordings",
    "open_binary",
    "parse_ts",
    "unfinished",
]


def format_ts(ns: int) -> str:
    """`ns` since the epoch as `YYYY-MM-DDTHH:MM:SS.fffffffZ` (100 ns resolution): a recording
    line's receive time. For people, `format_time`."""
    sec, rem = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{rem // 100:07d}Z"


def format_time(ns: int) -> str:
    """`ns` since the epoch as ISO 8601 UTC to the microsecond (`2026-11-24T10:00:00.123456Z`,
    truncated): what the logs' `ts` says and what `--since`, `--start` and most tools read, where
    `format_ts`'s seven decimals are the recording format's own."""
    sec, rem = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{rem // 1000:06d}Z"


_prefix_cache: dict[bytes, int] = {}
_EPOCH_ORDINAL: Final = datetime.date(1970, 1, 1).toordinal()


def _strptime_seconds(prefix: bytes) -> int:
    """`YYYY-MM-DDTHH:MM:SS` as seconds since the epoch, by `time.strptime`: the reference
    (tests/store/test_recording_ts.py) and the path of every prefix `_seconds` does not take."""
    return calendar.timegm(time.strptime(prefix.decode("ascii"), "%Y-%m-%dT%H:%M:%S"))


def _seconds(prefix: bytes) -> int:
    """`_strptime_seconds`, parsed by hand for the one spelling recorders write (every field at
    full width, ASCII digits, `T`): strptime costs about 5x more for each new second of a
    recording. Any other prefix (a lower-case `t`, a space-padded day, a bad date...) goes to
    strptime itself, so both accept and refuse exactly the same strings."""
    if (
        len(prefix) == 19
        and prefix[4] == 45  # -
        and prefix[7] == 45  # -
        and prefix[10] == 84  # T
        and prefix[13] == 58  # :
        and prefix[16] == 58  # :
        and (prefix[:4] + prefix[5:7] + prefix[8:10] + prefix[11:13] + prefix[14:16] + prefix[17:]).isdigit()
    ):
        year = int(prefix[:4])
        hour, minute, second = int(prefix[11:13]), int(prefix[14:16]), int(prefix[17:])
        # strptime's ranges: hours 0-23, minutes 0-59, seconds 0-61 (leap seconds, which
        # `calendar.timegm` carries into the next minute, as here).
        if year and hour < 24 and minute < 60 and second < 62:
            try:
                days = datetime.date(year, int(prefix[5:7]), int(prefix[8:10])).toordinal()
            except ValueError:  # no such month or day: strptime's error, from strptime
                pass
            else:
                return (days - _EPOCH_ORDINAL) * 86_400 + hour * 3600 + minute * 60 + second
    return _strptime_seconds(prefix)


def parse_ts(ts: bytes) -> int:
    """Parse an ISO-8601 UTC timestamp (`...Z` or `...+00:00`, 0-9 fraction digits) to ns."""
    prefix = ts[:19]
    base = _prefix_cache.get(prefix)
    if base is None:
        try:
            base = _seconds(prefix) * 1_000_000_000
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"bad timestamp {ts[:40]!r}") from exc
        if len(_prefix_cache) > 4096:
            _prefix_cache.clear()
        _prefix_cache[prefix] = base
    rest = ts[19:]
    if rest.endswith(b"Z"):
        rest = rest[:-1]
    elif rest.endswith(b"+00:00"):
        rest = rest[:-6]
    else:
        raise ValueError(f"timestamp {ts[:40]!r} is not UTC")
    if not rest:
        return base
    if rest[:1] != b"." or not rest[1:].isdigit() or len(rest) > 10:  # at most ns resolution
        raise ValueError(f"bad timestamp fraction in {ts[:40]!r}")
    frac = rest[1:]
    return base + int(frac.ljust(9, b"0"))


class _Counting(io.RawIOBase):
    """A raw stream that counts the bytes read from it (for progress on compressed files)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self._raw.readinto(b)  # type: ignore[attr-defined]
        self.count += n or 0
        return n  # type: ignore[no-any-return]

    def close(self) -> None:
        self._raw.close()
        super().close()


# Compressed bytes decompressed per call: a corrupt file loses at most one call's output
# (up to a few hundred KB of lines at JSON's compression ratios), at no measurable cost.
_FEED = 1 << 12


class _Zstd(io.RawIOBase):
    """A `.zst` file's decompressed bytes (one or more zstd frames). A file that ends inside a
    frame reads to its last complete block and says so in `unfinished`: the recorder's files
    are like that while recording, or after a crash (everything flushed is readable), and so is
    a truncated copy; the library's own stream reader gave no way to tell."""

    def __init__(self, raw: _Counting) -> None:
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._in_frame = False
        self._out = memoryview(b"")
        self._pending: collections.deque[bytes] = collections.deque()  # decompressed, not yet read
        self._error: zstandard.ZstdError | None = None
        self.unfinished = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        # Fills `b` (large reads keep the line splitting cheap), up to an error: that is raised
        # by the next call, after the lines before it (see `_feed`).
        n, size = 0, len(b)
        while n < size:
            if not self._out:
                if self._pending:
                    self._out = memoryview(self._pending.popleft())
                    continue
                if self._error is not None:
                    if n:
                        break
                    raise self._error
                # 128 KiB of the file at a time: `_feed` keeps all it decompresses to (about 8x
                # as much); 1 MiB held 8 MiB of frames at once (issue 17: peak RSS)
                chunk = self._raw.read(1 << 17)
                if not chunk:
                    self.unfinished = self._in_frame
                    break
                try:
                    self._feed(chunk)
                except zstandard.ZstdError as exc:
                    if not n:
                        raise
                    self._error = exc  # for the next call: `b` holds what came before it
                    break
                continue
            k = min(size - n, len(self._out))
            b[n : n + k] = self._out[:k]
            self._out = self._out[k:]
            n += k
        return n

    def _feed(self, data: bytes) -> None:
        """Decompress `data` in small slices into `_pending`: a corrupt file raises where it
        breaks (the library drops the output of the call that raises), so what decompressed
        before that is kept, and the error for the read after it."""
        out = self._pending
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            piece = view[pos : pos + _FEED]
            pos += len(piece)
            while piece:
                self._in_frame = True
                try:
                    got = self._obj.decompress(piece)
                except zstandard.ZstdError as exc:
                    if not out:
                        raise
                    self._error = exc
                    return
                if got:
                    out.append(got)
                if not self._obj.eof:
                    break
                piece = memoryview(self._obj.unused_data)  # the next frame of a multi-frame file
                self._obj = self._dctx.decompressobj()
                self._in_frame = False

    def close(self) -> None:
        self._raw.close()
        super().close()


def unfinished(stream: IO[bytes]) -> bool:
    """Whether a stream from `open_binary` is a `.zst` that ended inside a frame (read so far)."""
    return bool(getattr(getattr(stream, "raw", None), "unfinished", False))


# How a compressed file starts: zstd's frame magic number (or a skippable frame's, 0x184D2A5?),
# gzip's two bytes (RFC 1952).
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC: Final = b"\x1f\x8b"


def _compression(head: bytes) -> str:
    """What a file that starts with `head` holds, for a person: zstd, gzip or plain text."""
    if head.startswith(_ZSTD_MAGIC) or (head[1:4] == b"\x2a\x4d\x18" and head[0] & 0xF0 == 0x50):
        return "zstd"
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.isascii() and (head.decode().isprintable() or head[:1] in (b"{", b"[")):
        return "plain text"
    return "unknown"


def _check_compression(p: Path, file: io.BufferedReader) -> None:
    """A `.zst` or `.gz` file that is not what its name says is one clear error before reading,
    not a decompressor's message about frame descriptors after it. Peeked, not read: a pipe
    works too. An empty file is an empty recording."""
    want = "zstd" if p.name.endswith(".zst") else "gzip" if p.name.endswith(".gz") else None
    if want is None:
        return
    head = file.peek(4)[:4]
    if not head:
        return
    got = _compression(head)
    if got == want:
        return
    rename = {"zstd": ".zst", "gzip": ".gz", "plain text": "without the suffix"}.get(got)
    said = f"it is {got}: name it {rename}" if rename else f"it starts with {head!r}"
    raise DataError(f"{p}: not a {want} file ({said})")


def open_binary(path: str | os.PathLike[str]) -> tuple[IO[bytes], _Counting]:
    """Open `path` for reading lines, decompressing `.zst`/`.gz` by name. Returns the line
    stream and the counter of compressed bytes read from disk."""
    p = Path(path)
    try:
        file = open(p, "rb")  # noqa: SIM115 - closed by the caller through the stream
    except OSError as exc:
        raise DataError(f"cannot read {p}: {exc.strerror}") from exc
    try:
        _check_compression(p, file)
    except BaseException:
        file.close()
        raise
    raw = _Counting(file)
    if p.name.endswith(".zst"):
        stream: IO[bytes] = io.BufferedReader(_Zstd(raw), buffer_size=1 << 20)
    elif p.name.endswith(".gz"):
        stream = io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"), buffer_size=1 << 20)
    else:
        stream = io.BufferedReader(raw, buffer_size=1 << 20)
    return stream, raw


# Bytes of lines read at a time (both loops; the tests read in small chunks, to cut lines there).
_CHUNK = 1 << 20
# Lines a call of the compiled scan takes at most: its list of tuples is held while they are
# yielded (a few hundred KiB of frames); fewer would cost calls, more memory.
_BATCH = 1024


class RecordingReader:
    """Iterates (ts_ns, frame) over one recording file; `ts_ns` is None for a bare frame.

    A line that is neither raises `DataError` naming the file and line number, unless
    `skip_bad=True`, in which case it is counted in `bad_lines`, passed to `on_bad(path, line
    number, reason)` if given, and skipped. `line` is the number of the line last yielded.
    `compiled=False` reads through the Python loop, the reference of the compiled one.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        skip_bad: bool = False,
        on_bad: Callable[[Path, int, str], None] | None = None,
        compiled: bool = True,
    ) -> None:
        self.path = Path(path)
        self.skip_bad = skip_bad
        # The lines read by the compiled loop (`_read`) where it is built; False, or a tree
        # without it: the Python loop (`_read_reference`), which it must match line for line.
        self.compiled = compiled and _replay is not None
        self.on_bad = on_bad
        self.bad_lines = 0
        self.unfinished = False  # a .zst that ends inside a frame (see `_Zstd`), once read
        self.last_ts: int | None = None  # the last line's receive time, once read to the end
        self.lines = 0
        self._gen: Generator[Any, None, None] | None = None
        try:
            self.size = self.path.stat().st_size
        except OSError as exc:
            raise DataError(f"cannot read {self.path}: {exc.strerror}") from exc
        self._stream: IO[bytes] | None = None
        self._counter: _Counting | None = None

    @property
    def bytes_read(self) -> int:
        return 0 if self._counter is None else self._counter.count

    def where(self) -> tuple[Path, int | None]:
        """The file and line number of the frame last yielded."""
        return self.path, self.line

    @property
    def line(self) -> int | None:
        """The line number of the line last yielded (for a message about its frame), read from
        the suspended generator: the hot loop keeps its counter local, at no cost per line."""
        if self._gen is None:
            return None
        local = inspect.getgeneratorlocals(self._gen)
        lineno = local.get("lineno")
        if not isinstance(lineno, int):
            return None
        # In a batch of the compiled loop, `lineno` is its last line's: less those not yielded.
        batch = local.get("batch")
        return lineno if batch is None else lineno - operator.length_hint(batch)

    def __iter__(self) -> Iterator[tuple[int | None, bytes]]:
        self._gen = self._read(None) if self.compiled else self._read_reference(None)
        return self._gen

    def tagged(self, tag: int) -> Iterator[tuple[int | None, int, bytes]]:
        """Iterates (ts_ns, tag, frame): the same lines as iterating the reader, each with `tag`
        (the backtest kernel's index of the source), built here rather than by a generator
        around this one (a resume and a tuple less per line)."""
        self._gen = self._read(tag) if self.compiled else self._read_reference(tag)
        return self._gen

    def _read(self, tag: int | None) -> Generator[Any, None, None]:
        """`_read_reference` with its fast path compiled (`_replay.scan_lines`): the lines of a
        chunk the recorder wrote are made into their tuples in C, a batch at a time, and
        yielded from the batch's list (no Python code a line); the first line it does not take
        (another second spelled otherwise, a bare frame, an empty or bad line, a time past
        int64...) is taken here, by the reference's code, and the scan goes on after it."""
        stream, self._counter = open_binary(self.path)
        self._stream = stream
        read = getattr(stream, "read1", stream.read)
        scan = _replay.scan_lines
        lineno = 0  # the last line's number: of a batch's last line while it is yielded
        line = b""  # the last line taken here (not by the scan)
        tail = b""
        cache_prefix = b"-"
        cache_base = 0
        items: list[Any] = []  # the last batch, while its lines are the last read
        batch = iter(items)  # its iterator (`line`: how many are not yielded yet)
        try:
            while True:
                # The same 1 MiB reads as the reference, but no lines split: the scan reads
                # them in place, up to the chunk's last `\n` (the rest is the next chunk's),
                # the line cut by the chunk's start joined on its own (no copy of the chunk).
                chunk = read(_CHUNK)
                if chunk:
                    end = chunk.rfind(b"\n") + 1
                    if not tail:
                        parts: tuple[tuple[bytes, int, int], ...] = ((chunk, 0, end),)
                    elif end:
                        nl = chunk.index(b"\n") + 1
                        head = tail + chunk[:nl]
                        parts = ((head, 0, len(head)), (chunk, nl, end))
                    else:  # no line ends in it: all the next line's
                        tail += chunk
                        continue
                    tail = chunk[end:]
                elif tail and not unfinished(stream):  # a cut file's torn last line is no line
                    parts, tail = ((tail + b"\n", 0, len(tail) + 1),), b""
                else:
                    break
                for buf, pos, end in parts:
                    while pos < end:
                        items, pos, cache_prefix, cache_base = scan(
                            buf, pos, end, cache_prefix, cache_base, tag, _BATCH
                        )
                        if items:
                            batch = iter(items)
                            lineno += len(items)
                            # The backtest's compiled loop takes the items from `batch` itself
                            # while this waits here (`_kernel.c`): keep it a list's iterator.
                            yield from batch
                            if len(items) == _BATCH or pos == end:
                                continue
                        # The line the scan stopped at (less one `\r` before its `\n`, as the
                        # reference's CRLF lines), the reference's way.
                        nl = buf.index(b"\n", pos)
                        line = buf[pos : nl - 1 if nl > pos and buf[nl - 1] == 13 else nl]
                        pos = nl + 1
                        items = []
                        lineno += 1
                        # (One in the last line's second the scan did not take is read as of a
                        # new second: the same time, the same second.)
                        item, base = self._odd_line(line, lineno, tag)
                        if base is not None:
                            cache_prefix, cache_base = line[:20], base
                        if item is not None:
                            yield item
        except (OSError, EOFError, zstandard.ZstdError) as exc:
            raise DataError(f"{self.path}: unreadable after line {lineno}: {exc}") from exc
        finally:
            # Closed in a batch: its lines after the one last yielded were not read.
            left = operator.length_hint(batch)
            self.lines = lineno - left - self.bad_lines
            self.unfinished = unfinished(stream)
            # A batch's line's time is the time it yielded (`_line_ts` parses the same way).
            self.last_ts = items[len(items) - 1 - left][0] if items else _line_ts(line)
            stream.close()

    def _read_reference(self, tag: int | None) -> Generator[Any, None, None]:
        """The reader's line loop in Python: the reference of `_read` (tests/store/
        test_recording_compiled.py reads the same files both ways)."""
        stream, self._counter = open_binary(self.path)
        self._stream = stream
        # One raw read at a time (`read1`): a file that breaks part way keeps what came before.
        read = getattr(stream, "read1", stream.read)
        lineno = 0
        line = b""
        tail = b""
        # `YYYY-MM-DDTHH:MM:SS.` of the last line read on the fast path, and its time in ns.
        cache_prefix = b"-"
        cache_base = 0
        try:
            while True:
                # Lines split in C from large chunks, not read one by one (much faster), and
                # looped over here, not through a generator of lines (one resume less a line).
                # 1 MiB: as fast as 4 (measured), and the chunk, its copy and its lines held at
                # once are a quarter (with the reads above: a backtest's peak RSS ~29 MiB less).
                chunk = read(_CHUNK)
                if chunk:
                    buf = tail + chunk
                    if b"\r" in buf:  # CRLF lines: the fast path below never sees a line's `\r`
                        buf = buf.replace(b"\r\n", b"\n")
                    lines = buf.split(b"\n")
                    tail = lines.pop()
                elif tail and not unfinished(stream):  # a cut file's torn last line is no line
                    lines, tail = [tail[:-1] if tail[-1:] == b"\r" else tail], b""
                else:
                    break
                for line in lines:
                    lineno += 1
                    # Fast path: `YYYY-MM-DDTHH:MM:SS.fffffffZ ` (what RecordingWriter writes),
                    # in the same second as the line before.
                    if line[:20] == cache_prefix and line[27:29] == b"Z ":
                        frac = line[20:27]
                        if frac.isdigit():  # int() would take a sign, spaces or underscores
                            if tag is None:
                                yield cache_base + int(frac) * 100, line[29:]
                            else:
                                yield cache_base + int(frac) * 100, tag, line[29:]
                            continue
                    item, base = self._odd_line(line, lineno, tag)
                    if base is not None:
                        cache_prefix, cache_base = line[:20], base
                    if item is not None:
                        yield item
        except (OSError, EOFError, zstandard.ZstdError) as exc:
            raise DataError(f"{self.path}: unreadable after line {lineno}: {exc}") from exc
        finally:
            self.lines = lineno - self.bad_lines
            self.unfinished = unfinished(stream)
            self.last_ts = _line_ts(line)
            stream.close()

    def _odd_line(self, line: bytes, lineno: int, tag: int | None) -> tuple[Any, int | None]:
        """A line off both loops' fast path (not in the last line's second): what it yields
        (None: none), and the time in ns of its second when it is spelled as the recorder
        writes it (`YYYY-MM-DDTHH:MM:SS.fffffffZ `: the loops' fast path takes that second's
        next lines), else None. An empty line yields nothing; a bare frame (`{`, `[`) its
        frame with no time; any other line needs a time and a space before its frame, or it
        is a bad line: counted and skipped with `skip_bad`, else a `DataError`."""
        if line[27:29] == b"Z " and line[19:20] == b"." and line[20:27].isdigit():
            try:
                base = parse_ts(line[:19] + b"Z")
            except ValueError:
                pass
            else:
                ts = base + int(line[20:27]) * 100
                return ((ts, line[29:]) if tag is None else (ts, tag, line[29:])), base
        if not line:
            return None, None
        first = line[:1]
        if first == b"{" or first == b"[":
            return ((None, line) if tag is None else (None, tag, line)), None
        sp = line.find(b" ")
        try:
            if sp < 0:
                raise ValueError("no space after the timestamp")
            ts = parse_ts(line[:sp])
        except ValueError as exc:
            if self.skip_bad:
                self.bad_lines += 1
                if self.on_bad is not None:
                    self.on_bad(self.path, lineno, f"not a recording line ({exc})")
                return None, None
            raise DataError(f"{self.path}:{lineno}: not a recording line ({exc})") from None
        return ((ts, line[sp + 1 :]) if tag is None else (ts, tag, line[sp + 1 :])), None


def _line_ts(line: bytes) -> int | None:
    """The receive time of a recording line, or None (a bare frame, or not a recording line)."""
    try:
        return parse_ts(line[: line.find(b" ")]) if b" " in line[:40] else None
    except ValueError:
        return None


def _bare(reader: RecordingReader) -> tuple[int, int, bytes]:
    raise DataError(f"{reader.path}: a bare frame has no receive time and cannot be replayed")


def merge_recordings(readers: Iterable[RecordingReader]) -> Iterator[tuple[int, int, bytes]]:
    """Merge recordings by receive time: yields (ts_ns, index of the reader, frame). Ties keep
    the readers' order, so a merge is deterministic. Bare frames (no time) are refused."""
    readers = list(readers)

    def tagged(i: int, r: RecordingReader) -> Iterator[tuple[int, int, bytes]]:
        for ts, frame in r:
            if ts is None:
                raise DataError(f"{r.path}: a bare frame has no receive time and cannot be merged")
            yield ts, i, frame

    if len(readers) == 1:
        only = readers[0]
        return ((ts, 0, frame) if ts is not None else _bare(only) for ts, frame in only)
    return heapq.merge(*(tagged(i, r) for i, r in enumerate(readers)), key=lambda t: (t[0], t[1]))


class RecordingWriter:
    """Writes recording lines to `path` (zstd when it ends in `.zst`, gzip for `.gz`), through a
    temporary file renamed into place on `close`, so a reader never sees a half-written file."""

    def __init__(self, path: str | os.PathLike[str], *, level: int = 3) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A unique temporary name in the same folder: two writers of one path never collide,
        # and the final rename is atomic (same filesystem).
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent)
        self._tmp = Path(tmp)
        self._raw = os.fdopen(fd, "wb")
        self._out: IO[bytes]
        if self.path.name.endswith(".zst"):
            # With a checksum, a corrupt file is an error where it breaks, not lines of garbage.
            self._out = zstandard.ZstdCompressor(level=level, write_checksum=True).stream_writer(
                self._raw, closefd=False
            )
        elif self.path.name.endswith(".gz"):
            self._out = gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0)  # type: ignore[assignment]
        else:
            self._out = self._raw
        self.frames = 0

    def write(self, ts_ns: int, frame: bytes) -> None:
        self._out.write(format_ts(ts_ns).encode("ascii") + b" " + frame + b"\n")
        self.frames += 1

    def close(self) -> None:
        if self._out is not self._raw:
            self._out.close()
        self._raw.close()
        os.chmod(self._tmp, 0o644)  # mkstemp makes it private; a recording is ordinary data
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self._out is not self._raw:
            self._out.close()
        self._raw.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
