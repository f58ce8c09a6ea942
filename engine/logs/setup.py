"""Structured logging: JSON lines (one object per line) by default, pretty on a terminal.

Every line starts with `ts` (ISO-8601 UTC), `level` and `event`, in that order, then whatever
was bound (`venue`, `strategy`, `instrument`, `client_order_id`...). `ts` is the wall clock's
time, except inside `simulated_clock` (a backtest's replay): there it is the simulated (market)
time, and the line ends with `"clock": "sim"` and the wall time in `wall_ts`; a line without
`clock` carries the wall time. A Decimal is written as its exact value in plain digits (a
string: `"0.00000168"`, `"0"`, never `"0E+1"` or `"1.68E-6"`; an absurd `1E+100000000` keeps
its exponent: `decimal_text`); a string is written as it was logged, even one that looks like a
number (a label "1E+10"): log a Decimal, not its `str()`. The pretty renderer rounds
numbers for people (`console_renderer`), never an id's text. A redaction processor runs
last before rendering: any key that names a secret, any `name=value` pair in text whose name
names one, and any registered secret value wherever it appears, is replaced by "[redacted]", so
a credential never reaches a log line (nor a traceback: frame locals are never rendered).

With `configure_logging(..., path=...)` every line is also appended, as JSON, to that file: one
unbuffered `write` per line (a crash loses nothing already logged); `reopen_logs()` (the daemon's
SIGHUP) reopens it after logrotate renamed it. `tradingd logs` reads either output back.
Use the sync methods (`log.info`) under trio; structlog's async methods use asyncio.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import enum
import functools
import io
import json
import logging
import os
import re
import shutil
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

import orjson
import structlog
from structlog.tracebacks import ExceptionDictTransformer

from ..model.errors import ConfigError
from ..model.money import decimal_text

__all__ = [
    "REDACTED",
    "CachedLogger",
    "cached_logger",
    "configure_logging",
    "console_renderer",
    "decimal_text",
    "human_number",
    "log_write_failures",
    "logs_at",
    "redact_secrets",
    "redact_text",
    "register_secret",
    "reopen_logs",
    "route_uncaught_exceptions",
    "simulated_clock",
    "terminal_width",
    "uncaught_exceptions_routed",
]

REDACTED = "[redacted]"
_SECRET_WORDS = (
    r"secret|passw|passphrase|private[_-]?key|priv[_-]?key|api[_-]?key|access[_-]?token|"
    r"refresh[_-]?token|auth[_-]?token|id[_-]?token|bearer|cookie|signature|authorization|"
    r"credential|session[_-]?key|mnemonic|seed[_-]?phrase"
)
_SECRET_KEY = re.compile(f"({_SECRET_WORDS})", re.IGNORECASE)
# `name=value`, `name='value'`, `'name': 'value'`, `"name":"value"` inside text (an object's
# repr, a dict's repr, a query string, JSON), where the name names a secret. Only the value is
# replaced. A bare `name: value` is prose ("bad signature: expected ...") and is left alone.
_SECRET_PAIR = re.compile(
    rf"""(?<![\w.-])(?P<name>['"]?[\w.-]*(?:{_SECRET_WORDS})[\w.-]*+['"]?)"""
    r"""(?P<sep>\s*=\s*|(?<=['"])\s*:\s*)"""
    r"""(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|(?:Bearer\s+|Basic\s+)?[^\s,;&)}\]'"]+)""",
    re.IGNORECASE,
)
_secret_values: set[str] = set()
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
# Rendered as themselves (by orjson natively, or str() of a number): nothing to scrub.
_OPAQUE = (int, float, Decimal, dt.datetime, dt.date, dt.time, dt.timedelta, uuid.UUID, enum.Enum, Path)
# Values whose text is a traceback or a stack: scrub inside the text rather than replacing it
# whole, so the fault stays readable while the secret goes.
_TEXT_KEYS = frozenset({"exception", "stack"})


def register_secret(value: str) -> None:
    """Make `value` (a key, a token) unloggable: any log value containing it is redacted.
    Values shorter than 6 characters are refused (they would redact ordinary text)."""
    if len(value) >= 6:
        _secret_values.add(value)


@functools.lru_cache(maxsize=4096)
def _names_secret(key: str) -> bool:
    """Whether a key names a secret (keys repeat on every line: decided once each)."""
    return _SECRET_KEY.search(key) is not None


def _may_pair(text: str) -> bool:
    """A cheap necessary condition for `_SECRET_PAIR`: a `=`, or a `:` after a quote. Most
    values (names, numbers, timestamps) fail it and skip the regex."""
    return "=" in text or (":" in text and ("'" in text or '"' in text))


def _has_secret(text: str) -> bool:
    return any(secret in text for secret in _secret_values)


def _pair_sub(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match['name']}{match['sep']}{quote}{REDACTED}{quote}"


def _scrub_text(text: str) -> str:
    """Scrub inside `text`: every registered secret and every secret-named pair's value."""
    for secret in _secret_values:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if _may_pair(text):
        text = _SECRET_PAIR.sub(_pair_sub, text)
    return text


def redact_text(text: str) -> str:
    """`text` with every registered secret and every secret-named pair's value replaced (for
    text that leaves the process without passing through a log line: the status file)."""
    return _scrub_text(text)


def _scrub_str(value: str) -> str:
    if _has_secret(value):
        return REDACTED
    if _may_pair(value):
        return _SECRET_PAIR.sub(_pair_sub, value)
    return value


def _scrub_deep_text(value: Any) -> Any:
    """A traceback (text, or dict_tracebacks' structure): scrub inside every string."""
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, dict):
        return {k: _scrub_deep_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_deep_text(v) for v in value]
    return _scrub(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _scrub_str(value)
    if value is None or isinstance(value, _OPAQUE):
        return value
    if isinstance(value, dict):
        return {
            (REDACTED if isinstance(k, str) and _has_secret(k) else k): (
                REDACTED if _names_secret(str(k)) else _scrub(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        if len(items) == 2 and isinstance(items[0], str) and _names_secret(items[0]):
            return [_scrub(items[0]), REDACTED]  # a (name, value) pair: an HTTP header, a form field
        return [_scrub(v) for v in items]
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if any(secret.encode() in raw for secret in _secret_values):
            return REDACTED
        text = raw.decode("utf-8", "replace")
        scrubbed = _scrub_str(text)
        return value if scrubbed == text else scrubbed
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _scrub(dataclasses.asdict(value))  # orjson would serialize its fields by name
    # Anything else reaches the line as its str() (JSON) or repr() (pretty): scrub that text.
    for text in (str(value), repr(value)):
        scrubbed = _scrub_str(text)
        if scrubbed != text:
            return scrubbed
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact secret-named keys and registered secret values, in nested
    structures, bytes, objects' text and secret-named pairs inside text; a traceback keeps
    its text with only the secrets replaced."""
    for key in list(event_dict):
        value = event_dict[key]
        if key != "event" and _names_secret(key):
            event_dict[key] = REDACTED
        elif key in _TEXT_KEYS:
            event_dict[key] = _scrub_deep_text(value)
        else:
            event_dict[key] = _scrub(value)
    return event_dict


# -- numbers in log lines ------------------------------------------------------------------------


_HUMAN_DIGITS = 8  # significant digits a person reads; the integer part is never rounded
_NUMBER_TEXT = re.compile(r"-?(?:\d+\.\d*|\.\d+|\d+(?:\.\d*)?[eE][+-]?\d+)")


def human_number(value: Decimal | float) -> str:
    """A number as a person reads it: plain digits, no exponent, at most 8 significant digits
    (never fewer than its integer digits), trailing zeros the rounding made dropped. Exact
    values that are short already read as themselves: `0.00150`, `91274.5`. For the pretty
    console only: the JSON log keeps the exact value."""
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return repr(value)
        value = Decimal(float.__repr__(value))  # the shortest repr: 0.1 is 0.1
    if not value.is_finite():
        return str(value)
    digits = len(value.as_tuple().digits)
    if digits <= _HUMAN_DIGITS + 2 and "E" not in str(value):
        return str(value)
    exp = min(0, value.adjusted() - _HUMAN_DIGITS + 1)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= exp:  # short already: only an exponent to undo
        return decimal_text(value)
    try:
        rounded = value.quantize(Decimal(1).scaleb(exp), rounding=ROUND_HALF_EVEN)
    except InvalidOperation:  # beyond the context's precision: the exact text
        return decimal_text(value)
    text = decimal_text(rounded)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


class _Bare(str):
    """Text shown as it is inside a list or dict (its repr has no quotes): `[0.5, BTC-PERP]`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


_LIST_SHOWN = 4  # a longer list shows its first items and how many more
_HIDDEN_PRETTY = frozenset({"wall_ts", "clock"})


# Fields whose text is a name for something, never a quantity: an id (`trade_id`, `order_id`,
# a venue's camelCase `orderId`), an order's label, Polymarket's token ids (long digit strings),
# a hash, a signature, a nonce. Matched by whole name or `_`-suffix: `bid`, `mid` and
# `best_bid` are prices, whatever their last letters.
_ID_NAMES = frozenset(
    {
        "id",
        "ids",
        "label",
        "labels",
        "token",
        "tokens",
        "hash",
        "signature",
        "nonce",
        "sequence",
        "seq",
        "cursor",
    }
)
_ID_SUFFIXES = (*(f"_{name}" for name in _ID_NAMES), "Id", "Ids", "Hash", "Nonce")


def _human_key(key: str) -> bool:
    """Whether a field's text may be a number to round for people (never an id's)."""
    return not (key.lower() in _ID_NAMES or key.endswith(_ID_SUFFIXES))


def _humanise(value: Any, key: str) -> Any:
    if value.__class__ is float or isinstance(value, Decimal):
        return _Bare(human_number(value))
    if isinstance(value, str):
        if _human_key(key) and len(value) > _HUMAN_DIGITS and _NUMBER_TEXT.fullmatch(value):
            try:
                return _Bare(human_number(Decimal(value)))
            except InvalidOperation:
                return value
        return value
    if isinstance(value, list | tuple):
        items = [_humanise(v, key) for v in value[:_LIST_SHOWN]]
        items = [_Bare(v) if isinstance(v, str) and not isinstance(v, _Bare) else v for v in items]
        if len(value) > _LIST_SHOWN:
            items.append(_Bare(f"... {len(value) - _LIST_SHOWN} more"))
        return items
    if isinstance(value, dict):
        return {k: _humanise(v, str(k)) for k, v in value.items()}
    return value


class _PrettyRenderer:
    """structlog's ConsoleRenderer for people: `ts [level] event key=value ...` in the order the
    line was logged (strategy, venue, instrument first, as the code writes them), numbers
    rounded for reading (`human_number`), no `key=None`, long lists cut short, the time to the
    millisecond; the clock fields of a simulated line (`clock`, `wall_ts`) left to the JSON.
    With `width` (a terminal's), a line longer than the terminal goes on below, indented, cut
    between fields (a terminal would cut it anywhere); without (a pipe), one line per entry."""

    def __init__(self, colors: bool, width: Callable[[], int] | None = None) -> None:
        self._inner = structlog.dev.ConsoleRenderer(
            colors=colors,
            timestamp_key="ts",
            exception_formatter=structlog.dev.plain_traceback,
            sort_keys=False,
            pad_event_to=24,
        )
        self._kv = next(c.formatter for c in self._inner.columns if c.key == "")
        self._width = width

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        shown: dict[str, Any] = {}
        for key, value in event_dict.items():
            if value is None or key in _HIDDEN_PRETTY:
                continue
            if key == "ts" and isinstance(value, str):
                shown[key] = _short_ts(value)
            elif key in _TEXT_KEYS or key in _HEAD_KEYS:
                shown[key] = value
            else:
                shown[key] = _humanise(value, key)
        width = self._width() if self._width is not None else 0
        if width <= 0:
            return self._inner(logger, method, shown)
        fields = {k: v for k, v in shown.items() if k not in _HEAD_KEYS and k not in _TEXT_KEYS}
        head = self._inner(logger, method, {k: v for k, v in shown.items() if k not in fields})
        first, newline, below = head.partition("\n")
        lines = [_PADDING.sub(r"\1", first) if fields else first]  # the event's padding goes
        used = _visible(lines[0])
        for key, value in fields.items():
            text = self._kv(key, value)
            size = _visible(text)
            if used + 1 + size > width and used > _INDENT_WIDTH:
                lines.append(_INDENT + text)
                used = _INDENT_WIDTH + size
            else:
                lines[-1] += " " + text
                used += 1 + size
        return "\n".join(lines) + newline + below


_HEAD_KEYS = frozenset({"ts", "level", "event", "exc_info"})
_INDENT = "    "
_INDENT_WIDTH = len(_INDENT)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PADDING = re.compile(r" +((?:\x1b\[[0-9;]*m)*)$")  # trailing spaces, before a colour's reset


def _visible(text: str) -> int:
    """Characters a terminal shows (colour codes take none)."""
    return len(_ANSI.sub("", text)) if "\x1b" in text else len(text)


_FRACTION = re.compile(r"(\.\d{3})\d*(?=Z$|[+-]\d\d:\d\d$|$)")


def _short_ts(ts: str) -> str:
    """An ISO time to the millisecond (`2026-11-24T10:00:03.250Z`): still a time `--since`
    takes, 3 characters shorter on every line."""
    return _FRACTION.sub(r"\1", ts, count=1)


def console_renderer(colors: bool, width: Callable[[], int] | None = None) -> _PrettyRenderer:
    """The pretty renderer, shared by the daemon's pretty mode and `tradingd logs`, so a line
    looks the same in both: `ts [level] event key=value ...`, a traceback below it. `width`:
    the terminal's columns, asked at each line (a terminal may be resized); None for a pipe."""
    return _PrettyRenderer(colors, width)


def terminal_width() -> int:
    """The terminal's columns now (COLUMNS if set, as rich and `ls` take it)."""
    return shutil.get_terminal_size().columns


def _stable_order(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """`ts`, `level`, `event` first (the stable schema readers rely on), then the context."""
    head = {k: event_dict.pop(k) for k in ("ts", "level", "event") if k in event_dict}
    head.update(event_dict)
    return head


def _dumps(obj: Any) -> bytes:
    """One JSON line. A value orjson refuses (an int beyond 64 bits) must not make the log call
    raise: the standard library writes it instead."""
    try:
        return orjson.dumps(obj, default=_json_default)
    except TypeError:
        return json.dumps(obj, default=_json_default, ensure_ascii=False, separators=(",", ":")).encode()


def _json_default(value: Any) -> str:
    """What JSON has no type for: a Decimal as its exact plain digits, anything else as str()."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    return str(value)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _LogFile:
    """An append-only log file: one `os.write` per line under a lock (so threads never
    interleave and a reopen never splits a line); `reopen` swaps the descriptor for a fresh
    `open(path)`, for logrotate."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        # Its folder is made (as `runs/` for the tour's configs); one that cannot be is the
        # OSError that `configure_logging` turns into one line naming the file.
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = self._open()
        self._reopen_requested = False
        self.lines_lost = 0
        self._failing = False

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        return os.open(self.path, flags, 0o640)

    def write(self, line: bytes) -> list[tuple[str, dict[str, Any]]]:
        """Append one line; returns notices (event, fields) for the other output: a write
        that failed (disk full) or the first success after failures, with the count lost."""
        notices: list[tuple[str, dict[str, Any]]] = []
        with self._lock:
            if self._reopen_requested:
                notices += self._reopen_locked()
            if self._fd < 0:
                self.lines_lost += 1
                return notices
            try:
                _write_all(self._fd, line)
            except OSError as exc:
                self.lines_lost += 1
                if not self._failing:
                    self._failing = True
                    notices.append(("logging.file_write_failed", {"error": exc.strerror or repr(exc)}))
                return notices
            if self._failing:
                self._failing = False
                notices.append(("logging.file_write_recovered", {"lines_lost": self.lines_lost}))
        return notices

    def reopen(self) -> list[tuple[str, dict[str, Any]]] | None:
        """Reopen `path`. Safe from any thread and from a signal handler: if a write holds
        the lock (the handler interrupted it), the reopen is done by the next line instead,
        and None is returned."""
        self._reopen_requested = True
        if not self._lock.acquire(timeout=0.5):
            return None
        try:
            return self._reopen_locked() if self._reopen_requested else []
        finally:
            self._lock.release()

    def _reopen_locked(self) -> list[tuple[str, dict[str, Any]]]:
        self._reopen_requested = False
        if self._fd < 0:
            return []
        try:
            fd = self._open()
        except OSError as exc:  # keep writing to the old file: better than losing lines
            return [("logging.reopen_failed", {"error": exc.strerror or repr(exc)})]
        old, self._fd = self._fd, fd
        os.close(old)
        return []

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


class _Sink:
    """What structlog writes to: the stream (JSON bytes or pretty text) and the log file."""

    def __init__(self, stream: IO[str], pretty: bool, file: _LogFile | None) -> None:
        self._stream = stream
        self._pretty = pretty
        self._binary: IO[bytes] | None = None if pretty else getattr(stream, "buffer", sys.stderr.buffer)
        self._file = file
        self._lock = threading.Lock()
        self.failures = 0  # lines the stream refused

    def msg(self, line: bytes | str, file_line: bytes | None = None) -> None:
        notices = self._file.write(file_line) if self._file is not None and file_line is not None else []
        self.emit(line)
        for event, fields in notices:
            self.notice(event, "error" if event != "logging.file_write_recovered" else "warning", fields)

    def emit(self, line: bytes | str) -> None:
        """Write one line to the stream. A stream that fails (closed, a broken pipe, journald
        gone) never raises into the code that logged, which may be trading: the line is counted
        in `failures` (the daemon's status shows it), as stdlib logging's `handleError` would."""
        with self._lock:
            try:
                if isinstance(line, str):
                    # Pretty text to the process's stderr goes to `sys.stderr` as it is now: a
                    # progress bar on the terminal (rich's, `tradingd backtest`) swaps in a proxy
                    # there that prints each line above the bar instead of through it. (Never
                    # our own `_StderrToLog`: a line would come back here as a log line.)
                    now = sys.stderr
                    follow = self._stream is sys.__stderr__ and now is not None
                    stream = now if follow and not isinstance(now, _StderrToLog) else self._stream
                    stream.write(line + "\n")
                    stream.flush()
                else:
                    assert self._binary is not None
                    self._binary.write(line)
                    self._binary.flush()
            except (OSError, ValueError):
                self.failures += 1

    def notice(self, event: str, level: str, fields: dict[str, Any]) -> None:
        """A line about the log file itself, on the stream (the file may be what failed)."""
        file = str(self._file.path) if self._file is not None else None
        entry = {"ts": _now_iso(), "level": level, "event": event, "file": file, **fields}
        if self._pretty:
            self.emit(console_renderer(colors=False)(None, level, dict(entry)))
        else:
            self.emit(orjson.dumps(entry) + b"\n")

    debug = info = warning = warn = error = critical = exception = fatal = log = failure = err = msg


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


# -- the clock a line is stamped with --------------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# A context variable, not a global: only the code running the replay (the kernel's task, and the
# strategies and order flow it calls) is on the simulated clock; another task or thread of the
# same process logging meanwhile keeps the wall time.
_sim_clock: contextvars.ContextVar[Callable[[], int | None] | None] = contextvars.ContextVar(
    "tradingd_log_clock", default=None
)


@contextlib.contextmanager
def simulated_clock(now_ns: Callable[[], int | None]) -> Iterator[None]:
    """Within this block (in this task or thread), log lines carry the simulated time
    `now_ns()` (ns since the epoch) as `ts`, with `"clock": "sim"` and the wall time as
    `wall_ts`; while `now_ns()` is None (a replay before its first frame) they keep the wall
    time, and no `clock` field, like every line outside the block."""
    token = _sim_clock.set(now_ns)
    try:
        yield
    finally:
        _sim_clock.reset(token)


def _sim_iso(ns: int) -> str:
    when = _EPOCH + dt.timedelta(microseconds=ns // 1000)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _stamp(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """`ts`: the wall time, or the simulated time inside `simulated_clock` (then `clock` and
    `wall_ts` say so)."""
    clock = _sim_clock.get()
    sim = clock() if clock is not None else None
    if sim is None:
        event_dict["ts"] = _now_iso()
    else:
        event_dict["ts"] = _sim_iso(sim)
        event_dict["clock"] = "sim"
        event_dict["wall_ts"] = _now_iso()
    return event_dict


class _Render:
    """The last processor: the stream's line (pretty text or JSON) and the file's JSON line."""

    def __init__(self, pretty: bool, colors: bool, to_file: bool, width: Callable[[], int] | None) -> None:
        self._console = console_renderer(colors, width) if pretty else None
        self._exc_dict = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        self._to_file = to_file

    def _json(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> bytes:
        # Text is written as it was logged: a Decimal becomes plain digits in `_json_default`,
        # but a string that looks like one (an order's label "1E+10") is someone's name for
        # something, and a grep for it must find it. Code logs a Decimal, or `decimal_text(d)`.
        ordered = _stable_order(logger, method, redact_secrets(logger, method, event_dict))
        return _dumps(ordered) + b"\n"

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> tuple[tuple[bytes | str, bytes | None], dict[str, Any]]:
        if self._console is None:
            line = self._json(logger, method, self._exc_dict(logger, method, event_dict))
            return (line, line if self._to_file else None), {}
        file_line = None
        if self._to_file:
            file_line = self._json(logger, method, self._exc_dict(logger, method, dict(event_dict)))
        # A pretty traceback is plain text made before redaction (never rich's, which renders
        # frame locals after every processor has run).
        text_dict = structlog.processors.format_exc_info(logger, method, event_dict)
        pretty = self._console(logger, method, redact_secrets(logger, method, text_dict))
        return (pretty, file_line), {}


_log_file: _LogFile | None = None
_sink: _Sink | None = None


# structlog's process-wide configuration, read to tell when a cached bound logger is stale (see
# `CachedLogger`). Private to structlog, so read defensively: without it every call rebinds.
_STRUCTLOG_CONFIG: Any = getattr(getattr(structlog, "_config", None), "_CONFIG", None)
_LAZY_PROXY: Any = getattr(getattr(structlog, "_config", None), "BoundLoggerLazyProxy", None)


class CachedLogger:
    """A logger for hot paths (orders and fills of a backtest, say): structlog's lazy proxy
    (`structlog.get_logger`) builds a new bound logger on every call, about 3 us even for a
    call its level filters out; this one keeps the bound logger it built and builds it again
    only when structlog's configuration changed since (`configure_logging`, `reset_defaults`,
    a test's `capture_logs` keeps its list and is followed as it is): what is logged, and how,
    is what the proxy would log. A filtered-out call then costs about what its arguments cost;
    `logs_at(log, level)` skips building them.

    The logging methods are looked up on the current bound logger; `bind`, `new`, `unbind`
    are the proxy's own."""

    __slots__ = ("_bound", "_context", "_factory", "_min_level", "_processors", "_proxy", "_wrapper")

    def __init__(self, proxy: Any) -> None:
        self._proxy = proxy
        self._bound: Any = None
        self._processors: Any = None
        self._wrapper: Any = None
        self._factory: Any = None
        self._context: Any = None
        self._min_level = 0  # the bound logger's level filter (0: it cannot tell, log all)

    def _current(self) -> Any:
        c = _STRUCTLOG_CONFIG
        if c is None:
            return self._proxy.bind()
        if (
            self._bound is None
            or c.default_processors is not self._processors
            or c.default_wrapper_class is not self._wrapper
            or c.logger_factory is not self._factory
            or c.default_context_class is not self._context
        ):
            self._processors = c.default_processors
            self._wrapper = c.default_wrapper_class
            self._factory = c.logger_factory
            self._context = c.default_context_class
            self._bound = self._proxy.bind()
            level = getattr(self._bound, "get_effective_level", None)
            try:
                self._min_level = int(level()) if level is not None else 0
            except Exception:  # a wrapper of another kind: filter nothing here
                self._min_level = 0
        return self._bound

    def enabled(self, level: int) -> bool:
        """Whether a call at `level` writes a line (False only when the level filter says so)."""
        if self._current() is None:  # pragma: no cover - `bind` always returns a logger
            return True
        return level >= self._min_level

    # The methods hot paths call, as properties: one lookup, no `__getattr__` detour.
    @property
    def debug(self) -> Any:
        return self._current().debug

    @property
    def info(self) -> Any:
        return self._current().info

    @property
    def warning(self) -> Any:
        return self._current().warning

    @property
    def error(self) -> Any:
        return self._current().error

    @property
    def critical(self) -> Any:
        return self._current().critical

    @property
    def exception(self) -> Any:
        return self._current().exception

    def is_enabled_for(self, level: int) -> bool:
        return bool(self._current().is_enabled_for(level))

    @property
    def warn(self) -> Any:
        return self._current().warn

    @property
    def fatal(self) -> Any:
        return self._current().fatal

    @property
    def msg(self) -> Any:
        return self._current().msg

    @property
    def log(self) -> Any:
        return self._current().log

    def get_effective_level(self) -> int:
        return int(self._current().get_effective_level())

    # A new context is the proxy's to make (a `__getattr__` here would slow every lookup above).
    def bind(self, **values: Any) -> Any:
        return self._proxy.bind(**values)

    def new(self, **values: Any) -> Any:
        return self._proxy.new(**values)

    def unbind(self, *keys: str) -> Any:
        return self._proxy.unbind(*keys)

    def try_unbind(self, *keys: str) -> Any:
        return self._proxy.try_unbind(*keys)

    def __repr__(self) -> str:
        return f"CachedLogger({self._proxy!r})"


def cached_logger(log: Any) -> Any:
    """`log` for a hot path: structlog's lazy proxy wrapped in a `CachedLogger`; a logger
    already bound (or any other object with the logging methods) as it is."""
    if _LAZY_PROXY is not None and isinstance(log, _LAZY_PROXY):
        return CachedLogger(log)
    return log


def logs_at(log: Any, level: int) -> bool:
    """Whether `log` would write a line at `level` (`logging.INFO`...): False only when it says
    so itself (a filtering bound logger, `CachedLogger`); True for a logger that cannot tell,
    which is then called as usual. Lets a hot path skip building a line's fields."""
    if type(log) is CachedLogger:
        return log.enabled(level)
    check = getattr(log, "is_enabled_for", None)
    if check is None:
        return True
    try:
        return bool(check(level))
    except Exception:  # a logger of another kind: let it decide on the call itself
        return True


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    stream: IO[str] | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
) -> None:
    """Set up structlog for the process. `fmt`: "json", "pretty", or "auto" (pretty when
    `stream` is a terminal). Logs go to `stream` (stderr by default; the daemon uses stdout).
    With `path`, every line is also appended to that file as JSON (created 0640 if missing);
    raises `ConfigError` if it cannot be opened. Reconfiguring closes the previous file."""
    global _log_file, _sink
    stream = stream or sys.stderr
    pretty = fmt == "pretty" or (fmt == "auto" and stream.isatty())
    new_file = None
    if path is not None:
        try:
            new_file = _LogFile(Path(path))
        except OSError as exc:
            raise ConfigError(
                f"cannot open the log file {path}: {exc.strerror}", path="logging.file"
            ) from None
    if _log_file is not None:
        _log_file.close()
    _log_file = new_file
    _sink = _Sink(stream, pretty, new_file)
    sink = _sink
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            _stamp,
            _Render(
                pretty,
                pretty and stream.isatty(),
                new_file is not None,
                terminal_width if pretty and stream.isatty() else None,
            ),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=lambda *_args: sink,
        cache_logger_on_first_use=False,
    )


def log_write_failures() -> int:
    """How many lines the log stream refused since `configure_logging` (they were not written
    there; the log file, if any, has them)."""
    return 0 if _sink is None else _sink.failures


def reopen_logs() -> bool:
    """Reopen the log file (after logrotate renamed it): lines logged before go to the old
    file, lines after to the new one; none is lost or split. Call it from the SIGHUP handler
    (a trio signal task, a thread, or a signal handler). Returns False when there is no log
    file, or when the reopen failed (the old file is kept and the failure is logged)."""
    file, sink = _log_file, _sink
    if file is None or sink is None:
        return False
    notices = file.reopen()
    if notices is None:  # deferred to the next line (a write held the lock)
        return True
    for event, fields in notices:
        sink.notice(event, "error", fields)
    return not notices


# -- exceptions that no code caught -------------------------------------------------------------
# Python prints these itself, as raw text on stderr, past the JSON log and its redaction: an
# exception escaping `main` (sys.excepthook), one ending a thread (threading.excepthook), one
# raised where nothing can catch it (`__del__`, a finalizer: sys.unraisablehook), and whatever
# the libraries log through the standard `logging` module (trio's own errors, warnings) with no
# handler configured (logging.lastResort). In a daemon each of them becomes one structured line.

_routed = False


def _fallback_line(event: str, exc_type: type[BaseException] | None) -> None:
    """When logging itself failed: a minimal JSON line, still never the raw traceback (on the
    process's real stderr: `sys.stderr` may be the redirection below)."""
    entry = {
        "ts": _now_iso(),
        "level": "critical",
        "event": event,
        "error": getattr(exc_type, "__name__", None),
    }
    with contextlib.suppress(Exception):
        real = sys.__stderr__
        if real is not None:
            real.write(orjson.dumps(entry).decode() + "\n")
            real.flush()


class _StderrToLog(io.TextIOBase):
    """`sys.stderr` for a process whose log is on stdout: text that code prints there itself
    (trio prints a failed thread delivery with `traceback.print_exception`; a library may
    `print(..., file=sys.stderr)`) becomes log lines, one per line of text, redacted."""

    def __init__(self) -> None:
        super().__init__()
        self._buf = ""
        self._lock = threading.Lock()
        self._inside = threading.local()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        with self._lock:
            self._buf += text
            *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            rest, self._buf = self._buf, ""
        self._emit(rest)

    def _emit(self, line: str) -> None:
        if not line.strip() or getattr(self._inside, "busy", False):
            return
        self._inside.busy = True
        try:
            structlog.get_logger("tradingd").error("stderr", line=line.rstrip())
        except Exception:
            _fallback_line("stderr", None)
        finally:
            self._inside.busy = False


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    try:
        structlog.get_logger("tradingd").critical(
            "exception.uncaught", error=exc_type.__name__, exc_info=(exc_type, exc, tb)
        )
    except Exception:
        _fallback_line("exception.uncaught", exc_type)


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:  # as the default hook: a thread's way to end quietly
        return
    try:
        structlog.get_logger("tradingd").critical(
            "thread.exception_uncaught",
            thread=None if args.thread is None else args.thread.name,
            error=args.exc_type.__name__,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )
    except Exception:
        _fallback_line("thread.exception_uncaught", args.exc_type)


def _unraisablehook(u: Any) -> None:
    try:
        try:
            where = repr(u.object)[:200] if u.object is not None else None
        except Exception:
            where = type(u.object).__name__
        fields: dict[str, Any] = {"message": u.err_msg or "Exception ignored", "object": where}
        if u.exc_value is not None:
            fields["exc_info"] = (u.exc_type, u.exc_value, u.exc_traceback)
        structlog.get_logger("tradingd").error(
            "exception.unraisable", error=getattr(u.exc_type, "__name__", None), **fields
        )
    except Exception:
        _fallback_line("exception.unraisable", u.exc_type)


class _ToStructlog(logging.Handler):
    """The standard `logging` module's records as structured lines (trio's internal errors,
    libraries' warnings, `warnings.warn` through `logging.captureWarnings`)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name}
            if record.exc_info and record.exc_info[0] is not None:
                fields["exc_info"] = record.exc_info
            method = record.levelname.lower()
            if method not in _LEVELS:
                method = "critical" if record.levelno >= logging.CRITICAL else "warning"
            getattr(structlog.get_logger(record.name), method)(record.getMessage(), **fields)
        except Exception:
            _fallback_line("logging.record_failed", None)

    def handleError(self, record: logging.LogRecord) -> None:
        _fallback_line("logging.record_failed", None)


def route_uncaught_exceptions(*, stderr: bool = False) -> None:
    """Route every exception Python or a library would print raw (see above) through the
    structured log, with its traceback redacted like any other line. For a process whose
    output is the JSON log (the daemon); call it after `configure_logging`. With `stderr`
    (only when the log itself is not written to stderr), whatever is still printed to
    `sys.stderr` becomes log lines too. Idempotent."""
    global _routed
    if stderr and not isinstance(sys.stderr, _StderrToLog):
        sys.stderr = _StderrToLog()
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
    sys.unraisablehook = _unraisablehook
    root = logging.getLogger()
    if not any(isinstance(h, _ToStructlog) for h in root.handlers):
        root.addHandler(_ToStructlog())
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    _routed = True


def uncaught_exceptions_routed() -> bool:
    """Whether `route_uncaught_exceptions` was called (the process's errors are log lines)."""
    return _routed
