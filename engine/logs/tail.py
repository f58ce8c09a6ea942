"""Reading tradingd's structured logs back: sources, filters and output for `tradingd logs`.

A log is JSON lines (`engine.logs.setup`): `ts`, `level`, `event` first, then the context
(`venue`, `strategy`, `instrument`, `client_order_id`...). This module reads such lines from a
file (`.gz`/`.zst` too), from a file being written (`follow_file`, like `tail -F`: new lines as
they are appended, across logrotate's rename or truncation), or from a stream (stdin, read as
the data arrives), keeps the lines a `LogFilter` accepts, and writes them pretty (the daemon's
own console look) or as the original bytes (`--json`, for pipelines).

A line that is not a JSON object (a traceback printed by something else, a line of another
program) cannot be matched against fields: pretty output shows it as it is (hiding it could
hide a crash) unless `text=False`; `--json` output leaves it out and counts it. With a time
window, such a line goes with the JSON line before it (shown when that line's time is inside).
A JSON object after a prefix (`journalctl` without `-o cat`: `Nov 24 06:09:40 host
tradingd[812]: {...}`) is recognised as one; `--json` still passes the whole line through.

Sources yield batches (lists of complete lines, with their newline); the caller flushes its
output after each batch, so a followed line is printed as soon as it is read.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import io
import math
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal

import attrs
import orjson

from ..model.errors import DataError
from ..store.recording import open_binary
from .setup import console_renderer, terminal_width

__all__ = [
    "LEVELS",
    "LogFilter",
    "LogView",
    "follow_file",
    "parse_line",
    "parse_time",
    "read_file",
    "read_stream",
]

#: Level names and their rank (`--level warning` keeps ranks >= 30). Python's, syslog's and
#: structlog's spellings; a line whose level is missing or not here passes a level filter
#: (it cannot be ranked, and hiding it could hide a fault).
LEVELS: Mapping[str, int] = {
    "trace": 5,
    "debug": 10,
    "info": 20,
    "notice": 25,
    "warn": 30,
    "warning": 30,
    "err": 40,
    "error": 40,
    "exception": 40,
    "crit": 50,
    "critical": 50,
    "fatal": 50,
    "alert": 55,
    "emerg": 60,
    "emergency": 60,
}
_LEVEL_RANK = {**LEVELS, **{k.upper(): v for k, v in LEVELS.items()}}
_CHUNK = 1 << 16
_loads = orjson.loads
_GLOB_CHARS = frozenset("*?[")
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|day|days|w|wk|wks)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """`--since`/`--until`: an ISO-8601 time (`2026-11-24T06:00:00Z`, `2026-11-24 06:00`,
    `2026-11-24`; without a zone it is UTC, as the log's `ts` is), `now`, or a duration ago
    (`30s`, `10m`, `2h`, `1d`, `1w`, `1.5h`). Returns an aware UTC datetime; raises
    ValueError naming the accepted forms."""
    now = now or dt.datetime.now(dt.UTC)
    if text.strip().lower() == "now":
        return now
    m = _RELATIVE.match(text.lower())
    if m:
        try:
            return now - dt.timedelta(seconds=float(m[1]) * _UNIT_S[m[2][0]])
        except OverflowError:
            raise ValueError(f"{text!r} is further back than a date can go") from None
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"expected an ISO-8601 time (2026-11-24T06:00:00Z) or a duration ago "
            f"(30s, 10m, 2h, 1d, 1w), got {text!r}"
        ) from None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _line_time(ts: Any) -> dt.datetime | None:
    """A line's `ts` as an aware datetime: ISO-8601 text, or epoch seconds/ms/us/ns."""
    if isinstance(ts, str):
        try:
            when = dt.datetime.fromisoformat(ts)
        except ValueError:
            return None
        return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when
    if isinstance(ts, int | float) and not isinstance(ts, bool) and math.isfinite(ts):
        seconds = float(ts)
        while abs(seconds) >= 1e11:  # ms, us or ns since the epoch: seconds are < 1e11 until 5138
            seconds /= 1e3
        try:
            return dt.datetime.fromtimestamp(seconds, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def parse_line(line: bytes) -> dict[str, Any] | None:
    """The JSON object on `line`, or None if it holds none. The object may follow a prefix
    ending in a space (journalctl's `...tradingd[812]: {...}`)."""
    if line.startswith(b"{"):  # the common case first
        try:
            obj = _loads(line)
        except orjson.JSONDecodeError:
            return None
        return obj if type(obj) is dict else None
    start = line.find(b"{")
    if start < 0:
        return None
    if line[start - 1] not in (0x20, 0x09) and line[:start].strip():
        return None
    try:
        obj = _loads(line[start:])
    except orjson.JSONDecodeError:
        return None
    return obj if type(obj) is dict else None


def _field_text(value: Any) -> list[str] | None:
    """A field's value as the text(s) a pattern is matched against (a list: any element)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool) or value is None:
        return ["true" if value is True else "false" if value is False else "null"]
    if isinstance(value, int | float):
        return [orjson.dumps(value).decode()]
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            if not isinstance(item, dict | list):
                out.extend(_field_text(item) or ())
        return out
    return None


def _check_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    if not patterns or any(not isinstance(p, str) for p in patterns):
        raise ValueError(f"expected one or more patterns (text or globs), got {patterns!r}")
    return patterns


def _texts(value: Iterable[str]) -> tuple[str, ...]:
    texts = tuple(value)
    if any(not isinstance(t, str) for t in texts):
        raise ValueError(f"expected texts, got {texts!r}")
    return texts


def _freeze_fields(value: Mapping[str, Iterable[str]]) -> Mapping[str, tuple[str, ...]]:
    return {str(k): _check_patterns(tuple(v)) for k, v in value.items()}


@attrs.frozen
class LogFilter:
    """Which lines to keep. Every given criterion must hold; several patterns for one field
    mean any of them.

    `min_level`: a rank of `LEVELS` (e.g. 30: warnings and above). `fields`: field name ->
    patterns, each exact text or a glob (`order.*`, `BTC-*`; `*`, `?`, `[...]`), matched
    case-sensitively against the field's value (a number as its JSON text; a list matches if
    an element does); the pattern `"*"` alone requires only that the field is present.
    `grep`: the raw line contains one of these texts. `since`/`until`: the line's `ts` lies in
    [since, until] (a line whose `ts` is missing or unreadable is outside any window).
    """

    min_level: int | None = None
    fields: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict, converter=_freeze_fields)
    grep: tuple[str, ...] = attrs.field(default=(), converter=_texts)
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    _matcher: _Matcher = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        for name in ("since", "until"):
            when = getattr(self, name)
            if when is not None and when.tzinfo is None:
                raise ValueError(f"{name} must be an aware datetime (use parse_time)")
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError(f"since ({self.since.isoformat()}) is after until ({self.until.isoformat()})")
        object.__setattr__(self, "_matcher", _Matcher(self))

    @property
    def timed(self) -> bool:
        return self.since is not None or self.until is not None

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether a parsed line passes every criterion except `grep` (the raw line's)."""
        return self._matcher.obj(obj)


def _below(rank: int, min_level: int | None) -> bool:
    return min_level is not None and rank < min_level


def _plain(value: str) -> bool:
    """A value whose JSON string is its own bytes in quotes, and that no number, true, false
    or null could also match (`_field_text` matches those by their JSON text)."""
    if not value or any(c in value for c in '"\\') or any(ord(c) < 0x20 for c in value):
        return False
    try:
        literal = orjson.loads(value)
    except orjson.JSONDecodeError:
        return True
    return isinstance(literal, str | dict | list)


class _Matcher:
    """A `LogFilter` compiled for the per-line loop: exact sets, one regex per field's globs."""

    def __init__(self, spec: LogFilter) -> None:
        self.min_level = spec.min_level
        self.fields: list[tuple[str, frozenset[str], re.Pattern[str] | None, bool]] = []
        for key, patterns in spec.fields.items():
            exact = frozenset(p for p in patterns if not _GLOB_CHARS.intersection(p))
            globs = [p for p in patterns if _GLOB_CHARS.intersection(p)]
            regex = re.compile("|".join(fnmatch.translate(g) for g in globs)) if globs else None
            self.fields.append((key, exact, regex, "*" in globs))
        self.grep = tuple(g.encode() for g in spec.grep)
        self.since, self.until = spec.since, spec.until
        self.timed = spec.timed
        # For `quick_reject`: the level names below `min_level`, and per exact-only field the
        # values as JSON strings (only values whose JSON text is their bytes between quotes).
        self.low_levels = frozenset(
            name.encode() for name, rank in _LEVEL_RANK.items() if _below(rank, self.min_level)
        )
        self.needles: list[tuple[bytes, ...]] = []
        for _key, exact, regex, _anything in self.fields:
            if regex is None and all(_plain(p) for p in exact):
                self.needles.append(tuple(orjson.dumps(p) for p in exact))

    def quick_reject(self, line: bytes) -> bool:
        """True if `line`, were it a JSON object, could not pass: decided on the raw bytes,
        without parsing (most lines of a big log fail a level or venue filter). Exact:

        - level: our lines begin `{"ts":"...","level":"` (the stable order); the first key's
          value is a string without a bare quote, so the `"level"` right after it is the
          top-level key, and a single `"level":` in the line rules out a duplicate later.
        - fields: in a line without any backslash no string is escaped, so a field equal to
          `deribit` has the bytes `"deribit"` in the line; if none of the wanted values'
          bytes are there, the field cannot match.
        """
        low = self.low_levels
        if low and line.startswith(b'{"ts":"'):
            q = line.find(b'"', 7)
            if q > 0 and line.startswith(b',"level":"', q + 1):
                end = line.find(b'"', q + 11)
                if line[q + 11 : end] in low and line.count(b'"level":') == 1:
                    return True
        if self.needles and b"\\" not in line:
            for needles in self.needles:
                for n in needles:
                    if n in line:
                        break
                else:
                    return True
        return False

    def time_ok(self, obj: Mapping[str, Any]) -> bool:
        when = _line_time(obj.get("ts"))
        if when is None:
            return False
        return (self.since is None or when >= self.since) and (self.until is None or when <= self.until)

    def obj(self, obj: Mapping[str, Any]) -> bool:
        if self.min_level is not None:
            level = obj.get("level")
            rank = _LEVEL_RANK.get(level) if isinstance(level, str) else None
            if rank is None and isinstance(level, str):
                rank = LEVELS.get(level.lower())
            if rank is not None and rank < self.min_level:
                return False
        for key, exact, regex, anything in self.fields:
            if key not in obj:
                return False
            if anything:
                continue
            value = obj[key]
            if type(value) is str:  # the common case, without a list
                if value in exact or (regex is not None and regex.match(value)):
                    continue
                return False
            texts = _field_text(value)
            if not texts or not any(t in exact or (regex is not None and regex.match(t)) for t in texts):
                return False
        return not self.timed or self.time_ok(obj)


def _traceback_text(stacks: list[Any], indent: str = "") -> str:
    """dict_tracebacks' structure (`exception` of a JSON line) back as Python prints it."""
    parts: list[str] = []
    for k in range(len(stacks) - 1, -1, -1):
        stack = stacks[k]
        if not isinstance(stack, dict):
            return indent + repr(stacks)
        if k < len(stacks) - 1:
            parts.append(
                "\nThe above exception was the direct cause of the following exception:\n\n"
                if stacks[k + 1].get("is_cause")
                else "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
        lines: list[str] = []
        frames = stack.get("frames") or []
        if frames:
            lines.append("Traceback (most recent call last):")
        for frame in frames:
            if isinstance(frame, dict):
                lines.append(
                    f'  File "{frame.get("filename")}", line {frame.get("lineno")}, in {frame.get("name")}'
                )
                if frame.get("line"):
                    lines.append(f"    {str(frame['line']).strip()}")
        syntax = stack.get("syntax_error")
        if isinstance(syntax, dict):
            lines.append(f'  File "{syntax.get("filename")}", line {syntax.get("lineno")}')
            lines.append(f"    {str(syntax.get('line') or '').rstrip()}")
        value = stack.get("exc_value")
        lines.append(
            f"{stack.get('exc_type')}: {value}" if value not in (None, "") else str(stack.get("exc_type"))
        )
        lines.extend(str(note) for note in stack.get("exc_notes") or ())
        for i, sub in enumerate(stack.get("exceptions") or (), 1):
            lines.append(f"+---------------- {i} ----------------")
            sub_stacks = sub if isinstance(sub, list) else [sub]
            lines.extend("| " + s for s in _traceback_text(sub_stacks).splitlines())
        parts.append("\n".join(indent + line for line in lines))
    return "".join(parts)


class LogView:
    """Filters lines and writes the kept ones to `out` (bytes): pretty (`ConsoleRenderer`, as
    the daemon's pretty mode) or, with `json=True`, each kept line's original bytes.

    Counters: `lines_read`, `lines_shown`, `not_json` (non-blank lines that are not JSON
    objects: shown as text in pretty mode unless `text=False`, left out of JSON output); with
    a time window, `sim_first`/`sim_last`: the times of the first and last line read whose
    clock is simulated (a backtest's market time), or None.
    `width`: the terminal's columns for pretty lines (a callable, asked at each line), None
    for one line per entry, "auto": the terminal's when `out` is one.
    """

    def __init__(
        self,
        out: IO[bytes],
        flt: LogFilter | None = None,
        *,
        json: bool = False,
        colors: bool = False,
        text: bool = True,
        width: Callable[[], int] | Literal["auto"] | None = "auto",
    ) -> None:
        self._out = out
        self.filter = flt or LogFilter()
        self._m = self.filter._matcher
        self._json = json
        self._text = text and not json
        if width == "auto":  # a terminal's width: long lines go on below, indented, between fields
            width = terminal_width if _isatty(out) else None
        self._render = console_renderer(colors, width)
        self.lines_read = 0
        self.lines_shown = 0
        self.not_json = 0
        # With a time window, text lines go with the JSON line before them (see module doc).
        self._last_in_window = not self.filter.timed
        # With a time window: the first and last `ts` of lines on a simulated clock (a
        # backtest's, in market time), to say why a window in today's time found none of them.
        self.sim_first: str | None = None
        self.sim_last: str | None = None

    def _note_sim(self, ts: Any) -> None:
        if isinstance(ts, str):
            if self.sim_first is None:
                self.sim_first = ts
            self.sim_last = ts

    def _pretty(self, obj: dict[str, Any]) -> bytes:
        exc = obj.get("exception")
        if isinstance(exc, list):
            obj["exception"] = _traceback_text(exc)
        elif exc is not None and not isinstance(exc, str):
            obj["exception"] = repr(exc)
        level = obj.get("level")
        try:
            text = self._render(None, level if isinstance(level, str) else "info", obj)
        except Exception as exc:  # a shape the renderer cannot take: show the data, say why
            text = f"{orjson.dumps(obj, default=str).decode()}  (not rendered: {exc!r})"
        return text.encode("utf-8", "replace") + b"\n"

    def feed(self, lines: Iterable[bytes]) -> None:
        """Filter `lines` (each with or without its newline) and write the kept ones."""
        m = self._m
        grep = m.grep
        timed = m.timed
        matches = m.obj
        json_out = self._json
        out: list[bytes] = []
        read = shown = not_json = 0
        # Shortcuts on the raw bytes, before parsing. Not with a time window (every line's time
        # is needed for the text lines after it), nor when text lines are shown (a line that
        # only looks like JSON, torn by a crash, must then be shown as text, never skipped).
        quick = m.quick_reject if not timed and not self._text and (m.low_levels or m.needles) else None
        for line in lines:
            read += 1
            # Without a time window a line failing --grep is out whatever it holds: skip the parse.
            if grep and not timed and not any(g in line for g in grep):
                continue
            if quick is not None and quick(line):
                continue
            obj = parse_line(line)
            if obj is None:
                if not line.strip():
                    continue
                not_json += 1
                if self._text and self._last_in_window and (not grep or any(g in line for g in grep)):
                    out.append(line if line.endswith(b"\n") else line + b"\n")
                    shown += 1
                continue
            if timed:
                self._last_in_window = m.time_ok(obj)
                if obj.get("clock") == "sim":
                    self._note_sim(obj.get("ts"))
                if grep and not any(g in line for g in grep):
                    continue
            if not matches(obj):
                continue
            shown += 1
            if json_out:
                out.append(line if line.endswith(b"\n") else line + b"\n")
            else:
                out.append(self._pretty(obj))
        self.lines_read += read
        self.lines_shown += shown
        self.not_json += not_json
        if out:
            self._out.write(b"".join(out))


def _isatty(out: IO[bytes]) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError, OSError):
        return False


# -- sources -----------------------------------------------------------------------------------


def _split(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines (with their b"\\n") and the unterminated rest."""
    cut = buffer.rfind(b"\n") + 1
    if not cut:
        return [], buffer
    return io.BytesIO(buffer[:cut]).readlines(), buffer[cut:]


def read_stream(stream: IO[bytes], *, chunk: int = _CHUNK) -> Iterator[list[bytes]]:
    """Lines of `stream` (stdin) as they arrive: each read returns what the pipe holds (no
    waiting for a full buffer), so `journalctl -f | tradingd logs` prints each line at once.
    Ends at EOF; a last line without a newline is yielded too."""
    read: Callable[[int], bytes] = getattr(stream, "read1", None) or stream.read
    pending = b""
    while True:
        data = read(chunk)
        if not data:
            break
        lines, pending = _split(pending + data if pending else data)
        if lines:
            yield lines
    if pending:
        yield [pending]


def _tail_offset(f: IO[bytes], n: int) -> int:
    """The offset where the last `n` lines of the (seekable, plain) file begin."""
    end = f.seek(0, os.SEEK_END)
    if n <= 0:
        return end
    pos = end
    newlines = 0
    # A final line without its newline counts as a line; a final newline ends the last line.
    last = b""
    if end:
        f.seek(end - 1)
        last = f.read(1)
    skip_final = last == b"\n"
    while pos > 0:
        size = min(_CHUNK, pos)
        pos -= size
        f.seek(pos)
        block = f.read(size)
        if skip_final and pos + size == end:
            block = block[:-1]
        i = len(block)
        while True:
            i = block.rfind(b"\n", 0, i)
            if i < 0:
                break
            newlines += 1
            if newlines == n:
                return pos + i + 1
    return 0


def read_file(path: str | os.PathLike[str], *, lines: int | None = None) -> Iterator[list[bytes]]:
    """Lines of a log file (`.gz`/`.zst` decompressed by name), in batches; with `lines`,
    only the last that many. Raises DataError if it cannot be read."""
    p = Path(path)
    if p.name.endswith((".gz", ".zst")):
        stream, _ = open_binary(p)
    else:
        try:
            stream = open(p, "rb", buffering=_CHUNK)  # noqa: SIM115 - closed below
        except OSError as exc:
            raise DataError(f"cannot read {p}: {exc.strerror}") from exc
    with stream:
        try:
            if lines is not None and p.name.endswith((".gz", ".zst")):
                last: deque[bytes] = deque(maxlen=lines)
                while batch := stream.readlines(_CHUNK):
                    last.extend(batch)
                if last:
                    yield list(last)
                return
            if lines is not None:
                stream.seek(_tail_offset(stream, lines))
            while batch := stream.readlines(_CHUNK):
                yield batch
        except OSError as exc:  # EIO, a corrupt .gz or .zst
            raise DataError(f"cannot read {p}: {exc.strerror or exc}") from exc


def follow_file(
    path: str | os.PathLike[str],
    *,
    lines: int | None = None,
    poll_s: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
    notice: Callable[[str], None] = lambda _msg: None,
) -> Iterator[list[bytes]]:
    """Lines of `path` and then each line appended to it, forever (like `tail -F`).

    Starts at the beginning (or `lines` lines before the end). Waits for `path` to appear if
    it does not exist yet. When logrotate renames the file and a new one appears at `path`,
    the old file is read to its end (the daemon writes to it until SIGHUP makes it reopen)
    and, once the new file has data, the new file is read from its start. A file truncated
    in place (`copytruncate`) is read again from its start. A line is yielded only once its
    newline is written. `notice` receives one-line messages about these events; `sleep` is
    called between polls (inject a fake to drive it in tests)."""
    p = Path(path)
    f = _open_follow(p, sleep, poll_s, notice)
    try:
        if lines is not None:
            f.seek(_tail_offset(f, lines))
        pending = b""
        while True:
            data = f.read(_CHUNK)
            if data:
                batch, pending = _split(pending + data if pending else data)
                if batch:
                    yield batch
                continue
            # At the end of the file we hold: rotated, truncated, or just nothing new yet?
            here = os.fstat(f.fileno())
            try:
                there: os.stat_result | None = os.stat(p)
            except OSError:
                there = None  # removed, or mid-rotation: keep reading the file we hold
            if there is not None and (there.st_ino, there.st_dev) != (here.st_ino, here.st_dev):
                if there.st_size > 0:
                    rest = f.read()  # a last write between our read and the stat
                    batch, pending = _split(pending + rest)
                    if pending:  # the old file's unterminated last line: it will not grow
                        batch.append(pending)
                        pending = b""
                    if batch:
                        yield batch
                    f.close()
                    f = _open_follow(p, sleep, poll_s, notice)
                    notice(f"{p} was replaced (rotated); following the new file")
                    continue
            elif f.tell() > here.st_size:
                notice(f"{p} was truncated; reading it from the start")
                f.seek(0)
                pending = b""
                continue
            sleep(poll_s)
    finally:
        f.close()


def _open_follow(
    p: Path, sleep: Callable[[float], None], poll_s: float, notice: Callable[[str], None]
) -> io.FileIO:
    waiting = False
    while True:
        try:
            return io.FileIO(p, "rb")
        except FileNotFoundError:
            if not waiting:
                notice(f"waiting for {p} to appear")
                waiting = True
        except OSError as exc:
            raise DataError(f"cannot read {p}: {exc.strerror}") from exc
        sleep(poll_s)
