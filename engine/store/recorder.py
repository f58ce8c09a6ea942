"""Session recording: every raw frame of every venue connection, on disk, as it arrives.

A `SessionRecorder` writes the recording format of DESIGN.md ("recordings": one line per frame,
`<receive time ISO-8601 UTC> <frame exactly as received>`) into one directory:

    DIR/deribit-20261124T060000.000Z.rec.zst    one file per venue per period, named by the
    DIR/deribit-20261124T070000.012Z.rec.zst    receive time of its first frame (sortable)
    DIR/manifest.json                           venues, files, time spans, frame counts, channels

- The hot path is `frame_hook(venue)`: the callable a live session calls for every frame (it
  becomes `LiveVenue.on_frame`). It appends `(ts, frame)` to a list and returns; no formatting,
  no compression, no I/O on the event loop.
- `run` is the recorder's task: at least once a second it hands what was appended to a worker
  thread, which formats the lines, compresses them (zstd) and writes them with a zstd *block
  flush*: everything written so far decompresses even if the process dies before the file is
  closed, so a crash loses at most the last second (tests/store/test_recorder.py kills a recording
  process with SIGKILL and reads the file it left).
- Files rotate per venue when a frame's receive time enters a new period of `rotate_s` (aligned
  to UTC: hourly files start on the hour) or, checked at each flush, when a file has reached
  `rotate_bytes` on disk. A closed file is one complete zstd frame.
- The manifest is rewritten (atomically) on rotation, every 10 s, and on close.

`RecordingSet` reads a recording directory back: the files of one venue in time order, as one
stream of `(receive time, frame)`, which is how `[[backtest.data]]` replays a directory.
"""

from __future__ import annotations

import calendar
import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
import structlog
import trio
import zstandard

from ..model.errors import DataError
from .recording import RecordingReader, format_ts


class Subscribed(Protocol):
    """What the recorder reads of a live venue (`LiveVenue.channels`): the store room sits below
    the venue room, so it names only this."""

    @property
    def channels(self) -> frozenset[str]: ...


__all__ = ["MANIFEST_NAME", "RecordingSet", "SessionRecorder", "read_manifest", "recording_files"]

MANIFEST_NAME = "manifest.json"
_NS = 1_000_000_000
_MANIFEST_EVERY_NS = 10 * _NS
# `deribit-20261124T060000.123Z.rec.zst`: venue, then the first frame's receive time (ms).
_NAME = re.compile(r"^(?P<venue>[A-Za-z0-9_]+)-(?P<stamp>\d{8}T\d{6}\.\d{3}Z)\.rec(?:\.zst|\.gz)?$")


def _tradingd_version() -> str:
    try:
        return version("tradingd")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
        return "unknown"


def _stamp(ns: int) -> str:
    """`20261124T060000.123Z`: a file name's time (ms resolution, lexicographically sortable)."""
    sec, rem = divmod(ns, _NS)
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(sec)) + f".{rem // 1_000_000:03d}Z"


def _stamp_ns(stamp: str) -> int:
    tm = time.strptime(stamp[:15], "%Y%m%dT%H%M%S")
    return calendar.timegm(tm) * _NS + int(stamp[16:19]) * 1_000_000


class _Lines:
    """Formats recording lines fast: the `YYYY-MM-DDTHH:MM:SS.` prefix is cached per second."""

    __slots__ = ("_prefix", "_sec")

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = b""

    def chunk(self, batch: list[tuple[int, bytes | str]]) -> bytes:
        parts: list[bytes] = []
        append = parts.append
        sec_cached, prefix = self._sec, self._prefix
        for ts, frame in batch:
            sec, rem = divmod(ts, _NS)
            if sec != sec_cached:
                sec_cached = sec
                prefix = format_ts(sec * _NS)[:20].encode("ascii")  # `...:SS.`
            append(b"%s%07dZ " % (prefix, rem // 100))
            # A text frame is stored as the UTF-8 bytes it arrived as (a WebSocket text frame is
            # UTF-8 on the wire: encoding it back gives those exact bytes).
            append(frame.encode() if isinstance(frame, str) else frame)
            append(b"\n")
        self._sec, self._prefix = sec_cached, prefix
        return b"".join(parts)


class _File:
    """One open recording file of one venue (used by the writer thread only)."""

    def __init__(self, path: Path, level: int, first_ns: int, period_end_ns: int) -> None:
        self.path = path
        self.raw: IO[bytes] = open(path, "xb")  # noqa: SIM115 - closed by `close`; never overwrite
        self.out = zstandard.ZstdCompressor(level=level).stream_writer(self.raw, closefd=False)
        self.period_end_ns = period_end_ns
        self.entry: dict[str, Any] = {
            "name": path.name,
            "first": format_ts(first_ns),
            "last": format_ts(first_ns),
            "first_ns": first_ns,
            "last_ns": first_ns,
            "frames": 0,
            "bytes": 0,
            "closed": False,
        }

    def write(self, data: bytes, frames: int, last_ns: int) -> None:
        self.out.write(data)
        self.entry["frames"] += frames
        self.entry["last_ns"] = last_ns
        self.entry["last"] = format_ts(last_ns)

    def flush(self, fsync: bool) -> int:
        """A zstd block flush (what is written so far can be decompressed), to the OS."""
        self.out.flush(zstandard.FLUSH_BLOCK)
        self.raw.flush()
        if fsync:
            os.fsync(self.raw.fileno())
        size = self.raw.tell()
        self.entry["bytes"] = size
        return size

    def close(self) -> None:
        try:
            self.out.close()  # type: ignore[no-untyped-call]  # ends the zstd frame
            self.entry["bytes"] = self.raw.tell()
            self.entry["closed"] = True
        finally:
            self.raw.close()


class _Venue:
    """What the recorder keeps for one venue: the frames waiting for the writer, the open file,
    the files written, and the counters of the manifest."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pending: list[tuple[int, bytes | str]] = []
        self.file: _File | None = None
        self.files: list[dict[str, Any]] = []
        self.frames = 0
        self.bytes = 0  # uncompressed line bytes
        self.dropped = 0  # frames refused because the writer fell `max_pending` frames behind
        self.late = 0  # frames offered after `close`
        self.channels_source: Callable[[], Iterable[str] | None] | None = None
        self.channels_at_start: list[str] | None = None
        self.channels_last: list[str] | None = None
        self.channel_changes = 0


class SessionRecorder:
    """Records the raw frames of live venue sessions into `directory` (module docstring).

    Wire it into a `LiveEngine` with `frame_hook=recorder.frame_hook`, run `recorder.run` in the
    same nursery (it flushes until cancelled, then closes everything), and call
    `recorder.watch(engine.venues)` so the manifest names the channels each session carried.

    `strict` (the default) makes a write error fatal: `run` raises `DataError` (what `tradingd
    record` wants). With `strict=False` (recording alongside live trading) a write error is
    logged and counted, the frames of that flush are counted as dropped, and trading goes on.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        rotate_s: float = 3600.0,
        rotate_bytes: int = 256 * 1024 * 1024,
        flush_interval_s: float = 1.0,
        level: int = 3,
        fsync: bool = False,
        max_pending: int = 2_000_000,
        strict: bool = True,
        config_path: str | os.PathLike[str] | None = None,
        clock: Callable[[], int] = time.time_ns,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        if rotate_s <= 0:
            raise ValueError(f"rotate_s must be positive, got {rotate_s}")
        if rotate_bytes <= 0:
            raise ValueError(f"rotate_bytes must be positive, got {rotate_bytes}")
        if not 0 < flush_interval_s <= 1.0:
            raise ValueError(
                f"flush_interval_s must be in (0, 1] (a crash loses at most that), got {flush_interval_s}"
            )
        self.directory = Path(directory)
        self.rotate_ns = int(rotate_s * _NS)
        self.rotate_bytes = rotate_bytes
        self.flush_interval_s = flush_interval_s
        self.level = level
        self.fsync = fsync
        self.max_pending = max_pending
        self.strict = strict
        self.config_path = None if config_path is None else str(Path(config_path).resolve())
        self.clock = clock
        self.log = log or structlog.get_logger("tradingd.recorder")
        self.venues: dict[str, _Venue] = {}
        self.write_errors = 0
        self.started_ns: int | None = None
        self.closed = False
        self._lines: dict[str, _Lines] = {}
        self._lock = threading.Lock()  # one writer at a time (the flush task, or `close`)
        self._manifest_at = 0

    @classmethod
    def from_config(
        cls,
        cfg: Any,
        *,
        base: str | os.PathLike[str] | None = None,
        config_path: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> SessionRecorder:
        """From a `[recording]` table (`config.RecordingConfig`); a relative `dir` is taken
        from `base` (the config file's folder)."""
        directory = Path(cfg.dir)
        if base is not None and not directory.is_absolute():
            directory = Path(base) / directory
        return cls(
            directory,
            rotate_s=cfg.rotate_s,
            rotate_bytes=cfg.rotate_bytes,
            config_path=config_path,
            **kwargs,
        )

    # -- the hot path -----------------------------------------------------------------------
    def _venue(self, name: str) -> _Venue:
        v = self.venues.get(name)
        if v is None:
            if not re.fullmatch(r"[A-Za-z0-9_]+", name):
                raise ValueError(f"venue name {name!r} cannot name a recording file")
            v = self.venues[name] = _Venue(name)
            self._lines[name] = _Lines()
        return v

    def frame_hook(self, venue: str) -> Callable[[int, bytes | str], None]:
        """The per-frame callable for `venue`'s sessions (`LiveVenue.on_frame`)."""
        v = self._venue(venue)
        cap = self.max_pending
        log = self.log

        def on_frame(ts_ns: int, frame: bytes | str) -> None:
            pending = v.pending
            if len(pending) < cap and not self.closed:
                pending.append((ts_ns, frame))
                return
            if self.closed:
                v.late += 1
                return
            v.dropped += 1
            n = v.dropped
            if n & (n - 1) == 0:  # 1st, 2nd, 4th, 8th...: loud, then quieter; every one counted
                log.error("recorder.dropping", venue=venue, dropped=n, reason="writer behind")

        return on_frame

    def watch(self, venues: Mapping[str, Subscribed]) -> None:
        """Name the channels each venue's session carries in the manifest: `venues` maps names
        to live venues (`LiveVenue.channels`; e.g. `LiveEngine.venues`)."""
        for name, live in venues.items():
            self.watch_channels(name, _channels_of(live))

    def watch_channels(self, venue: str, source: Callable[[], Iterable[str] | None]) -> None:
        self._venue(venue).channels_source = source

    def _poll_channels(self) -> None:
        for v in self.venues.values():
            if v.channels_source is None:
                continue
            try:
                got = v.channels_source()
            except Exception as exc:  # a session's property must not stop the recording
                self.log.warning("recorder.channels_unavailable", venue=v.name, error=repr(exc))
                continue
            channels = sorted(got or ())
            if not channels:
                continue  # disconnected: keep what it carried last
            if v.channels_at_start is None:
                v.channels_at_start = channels
            elif channels != v.channels_last:
                v.channel_changes += 1
            v.channels_last = channels

    # -- the task ---------------------------------------------------------------------------
    def open(self) -> None:
        """Create the directory and write the first manifest (done by `run`)."""
        if self.started_ns is not None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(
                f"cannot create the recording directory {self.directory}: {exc.strerror}"
            ) from exc
        self.started_ns = self.clock()
        self._write_manifest()
        self.log.info("recorder.started", dir=str(self.directory))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Flush every `flush_interval_s` until cancelled; then flush what is left and close
        every file (shielded, bounded). Raises `DataError` on a write error when `strict`."""
        self.open()
        task_status.started()
        try:
            deadline = trio.current_time()
            while True:
                deadline += self.flush_interval_s
                now = trio.current_time()
                if deadline < now:  # a slow flush: the next one at once, then on the beat again
                    deadline = now
                await trio.sleep_until(deadline)
                self._poll_channels()
                batches = self._take()
                if batches:
                    await trio.to_thread.run_sync(self._write, batches)
        finally:
            with trio.move_on_after(30, shield=True):
                await trio.to_thread.run_sync(self.close)

    def _take(self) -> dict[str, list[tuple[int, bytes | str]]]:
        """Swap every venue's pending list for an empty one (on the event loop: no lock)."""
        out: dict[str, list[tuple[int, bytes | str]]] = {}
        for name, v in self.venues.items():
            if v.pending:
                out[name], v.pending = v.pending, []
        return out

    def flush(self) -> None:
        """Write what is pending now (synchronously; `run` does this every second)."""
        self.open()
        self._poll_channels()
        self._write(self._take())

    def close(self) -> None:
        """Flush, close every file (each a complete zstd frame) and write the final manifest.
        Frames offered after this are counted as `late` and not written."""
        if self.closed:
            return
        self.open()
        self.closed = True  # first: a frame offered from now on is counted as late, not lost
        batches = self._take()
        failure: DataError | None = None
        try:
            self._write(batches)
        except DataError as exc:  # strict: raised once every file is closed and the manifest written
            failure = exc
        with self._lock:
            for v in self.venues.values():
                if v.file is not None:
                    try:
                        v.file.close()
                    except OSError as exc:
                        try:
                            self._write_error(v, exc, 0)
                        except DataError as error:
                            failure = failure or error
                    v.file = None
            try:
                self._write_manifest(final=True)
            except DataError as exc:
                failure = failure or exc
        self.log.info(
            "recorder.closed",
            dir=str(self.directory),
            frames={name: v.frames for name, v in self.venues.items()},
        )
        if failure is not None:
            raise failure

    # -- the writer (a worker thread) -------------------------------------------------------
    def _write(self, batches: dict[str, list[tuple[int, bytes | str]]]) -> None:
        with self._lock:
            rotated = False
            for name, batch in batches.items():
                v = self.venues[name]
                try:
                    rotated |= self._write_venue(v, batch)
                except OSError as exc:
                    self._write_error(v, exc, len(batch))
            now = self.clock()
            if rotated or now - self._manifest_at >= _MANIFEST_EVERY_NS:
                self._write_manifest()

    def _write_venue(self, v: _Venue, batch: list[tuple[int, bytes | str]]) -> bool:
        lines = self._lines[v.name]
        rotated = False
        start = 0
        n = len(batch)
        while start < n:
            ts0 = batch[start][0]
            f = v.file
            if f is None or ts0 >= f.period_end_ns:
                if f is not None:
                    v.file = None
                    f.close()
                f = v.file = self._open_file(v, ts0)
                rotated = True
            # The run of frames that stays in this file's period.
            end = start
            limit = f.period_end_ns
            while end < n and batch[end][0] < limit:
                end += 1
            if end == start:  # a clock step back past the period: stays in this file
                end = start + 1
            chunk = lines.chunk(batch[start:end])
            f.write(chunk, end - start, batch[end - 1][0])
            v.frames += end - start
            v.bytes += len(chunk)
            start = end
        f = v.file
        if f is not None:
            size = f.flush(self.fsync)
            if size >= self.rotate_bytes:
                v.file = None
                rotated = True
                f.close()
        return rotated

    def _open_file(self, v: _Venue, first_ns: int) -> _File:
        period_end = first_ns - first_ns % self.rotate_ns + self.rotate_ns
        stamp_ns = first_ns
        while True:
            path = self.directory / f"{v.name}-{_stamp(stamp_ns)}.rec.zst"
            if not path.exists():
                break
            stamp_ns += 1_000_000  # taken (two files in one ms): the next free, still sorted
        f = _File(path, self.level, first_ns, period_end)
        v.files.append(f.entry)
        self.log.info("recorder.file_opened", venue=v.name, file=path.name)
        return f

    def _write_error(self, v: _Venue, exc: OSError, frames: int) -> None:
        self.write_errors += 1
        v.dropped += frames
        self.log.error("recorder.write_failed", venue=v.name, error=str(exc), frames_lost=frames)
        if self.strict:
            raise DataError(f"recording to {self.directory} failed: {exc}") from exc

    def manifest(self, *, final: bool = False) -> dict[str, Any]:
        """The manifest as a dict (what `manifest.json` holds)."""
        venues: dict[str, Any] = {}
        first: int | None = None
        last: int | None = None
        for name in sorted(self.venues):
            v = self.venues[name]
            files = [dict(e) for e in v.files]
            if files:
                f0, f1 = files[0]["first_ns"], files[-1]["last_ns"]
                first = f0 if first is None else min(first, f0)
                last = f1 if last is None else max(last, f1)
            venues[name] = {
                "frames": v.frames,
                "bytes": v.bytes,
                "dropped": v.dropped,
                "late": v.late,
                "files": files,
                "channels_at_start": v.channels_at_start,
                "channels_at_end": v.channels_last,
                "channel_changes": v.channel_changes,
            }
        return {
            "format": "tradingd-recording/1",
            "tradingd_version": _tradingd_version(),
            "config": self.config_path,
            "started": None if self.started_ns is None else format_ts(self.started_ns),
            "closed": final,
            "first": None if first is None else format_ts(first),
            "last": None if last is None else format_ts(last),
            "rotate_s": self.rotate_ns / _NS,
            "rotate_bytes": self.rotate_bytes,
            "write_errors": self.write_errors,
            "venues": venues,
        }

    def _write_manifest(self, *, final: bool = False) -> None:
        data = orjson.dumps(self.manifest(final=final), option=orjson.OPT_INDENT_2) + b"\n"
        target = self.directory / MANIFEST_NAME
        tmp = target.with_name(f".{MANIFEST_NAME}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except OSError as exc:
            self.write_errors += 1
            self.log.error("recorder.manifest_failed", error=str(exc))
            if self.strict:
                raise DataError(f"cannot write {target}: {exc}") from exc
        self._manifest_at = self.clock()


def _channels_of(live: Subscribed) -> Callable[[], Iterable[str] | None]:
    def channels() -> Iterable[str] | None:
        return live.channels

    return channels


# -- reading a recording directory ----------------------------------------------------------


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of a recording directory, None when it has none. Raises `DataError` when
    it exists but is not JSON."""
    path = Path(directory) / MANIFEST_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        manifest = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise DataError(f"{path}: expected a JSON object")
    return manifest


def _first_ts(path: Path) -> int | None:
    with contextlib.suppress(DataError):
        for ts, _ in RecordingReader(path, skip_bad=True):
            return ts
    return None


def recording_files(directory: str | os.PathLike[str], venue: str) -> list[Path]:
    """The recording files of `venue` in `directory`, in time order: the recorder's own files
    (`<venue>-<time>.rec[.zst|.gz]`, ordered by the time in their name) and any other
    `<venue>*.rec*` file (ordered by its first line's receive time)."""
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"{d} is not a directory")
    keyed: list[tuple[int, str, Path]] = []
    for p in d.iterdir():
        name = p.name
        if not p.is_file() or not name.startswith(venue) or ".rec" not in name or name.startswith("."):
            continue
        m = _NAME.match(name)
        if m is not None:
            if m["venue"] != venue:
                continue
            keyed.append((_stamp_ns(m["stamp"]), name, p))
            continue
        if not name.startswith(venue + "-") and not name.startswith(venue + "."):
            continue
        ts = _first_ts(p)
        keyed.append((ts if ts is not None else 0, name, p))
    keyed.sort()
    return [p for _, _, p in keyed]


class RecordingSet:
    """Every recording file of one venue in a directory, read as one stream of
    `(receive time ns, frame)` in time order (the interface of `RecordingReader`).

    The last file of a session that was never closed (a crash: the manifest says `closed:
    false`, or there is none) may end in a partly written block: what decompresses is read,
    and a torn tail is counted in `truncated_files` and logged. A file the manifest lists as
    closed must hold the frames it counts, and anywhere else an unreadable file raises
    `DataError`. A file that starts before the previous one ended (two sessions
    recording at once, or a clock step back) is counted in `overlaps`.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        venue: str,
        *,
        skip_bad: bool = False,
        on_bad: Callable[[Path, int, str], None] | None = None,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.path = Path(directory)
        self.venue = venue
        self.files = recording_files(self.path, venue)
        if not self.files:
            raise DataError(f"{self.path}: no recording files of {venue} (expected {venue}-<time>.rec.zst)")
        manifest = read_manifest(self.path)
        self.session_closed = bool(manifest.get("closed")) if manifest is not None else False
        # Frame counts of the files the recorder closed: a closed file that reads short is damaged
        # (a zstd stream cut at a block boundary reads without an error, so this is the check).
        self._expected: dict[str, int] = {}
        if manifest is not None:
            entry = (manifest.get("venues") or {}).get(venue) or {}
            for f in entry.get("files") or ():
                if isinstance(f, dict) and f.get("closed") and isinstance(f.get("frames"), int):
                    self._expected[str(f.get("name"))] = f["frames"]
        self.skip_bad = skip_bad
        self.on_bad = on_bad
        self.unfinished_files: list[tuple[Path, int | None]] = []  # (file, its last time read)
        self.log = log or structlog.get_logger("tradingd.recording")
        self.size = sum(p.stat().st_size for p in self.files)
        self.bad_lines = 0
        self.lines = 0
        self.overlaps = 0
        self.truncated_files = 0
        self._done_bytes = 0
        self._current: RecordingReader | None = None

    @property
    def bytes_read(self) -> int:
        return self._done_bytes + (0 if self._current is None else self._current.bytes_read)

    def where(self) -> tuple[Path, int | None]:
        """The file and line number of the frame last yielded."""
        cur = self._current
        return (self.path, None) if cur is None else (cur.path, cur.line)

    def __iter__(self) -> Iterator[tuple[int | None, bytes]]:
        last_ts = -1
        count = len(self.files)
        for i, path in enumerate(self.files):
            reader = self._current = RecordingReader(path, skip_bad=self.skip_bad, on_bad=self.on_bad)
            first = True
            try:
                for ts, frame in reader:
                    if first:
                        first = False
                        if ts is not None and ts < last_ts:
                            self.overlaps += 1
                            self.log.warning("recording.overlap", file=path.name, behind_ns=last_ts - ts)
                    if ts is not None:
                        last_ts = ts
                    yield ts, frame
            except DataError as exc:
                if i != count - 1 or self.session_closed or path.name in self._expected:
                    raise
                self.truncated_files += 1
                self.log.warning("recording.torn_tail", file=path.name, error=str(exc))
            finally:
                self.bad_lines += reader.bad_lines
                self.lines += reader.lines
                if reader.unfinished:
                    self.unfinished_files.append((path, reader.last_ts))
                self._done_bytes += reader.size
                self._current = None
            expected = self._expected.get(path.name)
            if expected is not None and reader.lines + reader.bad_lines != expected:
                raise DataError(
                    f"{path}: {reader.lines + reader.bad_lines} frames where the manifest says {expected}:"
                    " the file is damaged or was changed"
                )
