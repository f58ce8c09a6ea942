"""How the engine finds venues and strategies by name, without importing them.

Venues register under the entry-point group `tradingd.venues` (an object following
`VenuePlugin`), strategies under `tradingd.strategies` (a `Strategy` subclass). A config may also
name a strategy as `package.module:Class`, the way uvicorn names an app, so a user's own strategy
needs no packaging at all. The venue SPI's Protocols (`VenuePlugin`, `LiveVenue`, `Decoder`...)
live in engine.venue.spi.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import operator
import re
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Final, Generic, Protocol, TypeVar, cast

import msgspec
import orjson

from ..model.errors import ConfigError, MalformedFrame
from ..model.events import MarketEvent
from ..model.instruments import InstrumentRegistry
from .spi import Decoder, VenuePlugin

__all__ = [
    "MAX_NESTING",
    "SHORT_FRAME",
    "DecoderFault",
    "available_venues",
    "check_nesting",
    "checked_decoder",
    "decode_parsed",
    "guard_decode",
    "load_catalog_class",
    "load_venue",
    "loads_untyped",
    "restore_recursion_limit",
]


# -- venue data can never take the process down --------------------------------------------------
#
# Every frame a decoder reads comes from outside. Two things make one frame more than that frame's
# problem, and both are handled here, once for every venue:
#
# - nesting. JSON parsers (msgspec, json) recurse once per `[`/`{` and are bounded only by the
#   interpreter's recursion limit; a dependency of eth-account (py_ecc) raises that limit to
#   100,000 when it is imported, and a frame nested 50,000 deep then overflows the C stack: a
#   segfault, not an exception (msgspec survives 25,000 levels, not 35,000). This is the one
#   bound for every venue: nothing deeper than `MAX_NESTING` reaches a parser.
#   * A whole frame: `guard_decode` (every decoder's `decode`) and the live session's receive
#     loop refuse one longer than `SHORT_FRAME` bytes nested deeper than `MAX_NESTING`
#     (`check_nesting`) before any parser sees it. A frame of at most `SHORT_FRAME` bytes
#     cannot nest deep enough to hurt, so the hot path pays one `len`: the typed parsers refuse
#     it at the recursion limit (`RecursionError`, a malformed frame), or the codec refuses
#     what it parsed.
#   * A schemaless parse (a JSON-RPC `result` or error `data`, an instruments or markets
#     answer, a REST body): `loads_untyped`, whatever its length, since what it returns is
#     walked by Python code afterwards. Never `msgspec.json.decode(x)` without a type, nor
#     `json.loads` or httpx's `.json()` (stdlib json follows the recursion limit too) on venue
#     bytes. orjson bounds itself at 1,024 levels whatever the recursion limit, but turns an
#     integer above 64 bits into a float without a word: msgspec reads it exactly, and with the
#     nesting bounded first it cannot go deep. Python code that walks what was parsed, level by
#     level, stops at the depth it needs (two frames a level would reach the default limit
#     before `MAX_NESTING`): polymarket's `_normalize`.
# - an exception the decoder did not plan for (`OverflowError` converting 1e308 to ticks, a
#   `decimal.InvalidOperation`, a `UnicodeDecodeError`...). `guard_decode` turns it into a
#   `DecoderFault` (a `MalformedFrame`), so the `Decoder` contract, "raises only MalformedFrame",
#   holds for every caller: the live sessions, the backtest kernel, `tradingd decode`,
#   `tradingd data inspect`. The frame may have been half applied when it failed, so the decoder's
#   books are invalidated (`Decoder.invalidate_books`): each starts again from its next
#   snapshot (never guess). Only `Exception`s are caught: `trio.Cancelled`, `KeyboardInterrupt`
#   and `SystemExit` go on.

MAX_NESTING: Final = 512
"""The deepest nesting of `[`/`{` a frame may have. Real venue frames nest under 10 levels
(VENUES.md: a Deribit `get_instruments` item's `tick_size_steps`, a Derive ticker's
`option_pricing`, a Gamma event's markets). The bound is far above them, far enough below the
default recursion limit (1000) that a parser's 512 levels plus a task's stack never reach it, and
high enough that a large book snapshot (hundreds of `[`/`{` side by side, but 3 deep) is settled
by the two `count`s of `_too_deep` without a closer look."""

SHORT_FRAME: Final = 4096
"""Frames of at most this many bytes are not scanned for nesting (see above): most frames."""

_decode_untyped: Final = msgspec.json.Decoder().decode
_skim: Final = msgspec.json.Decoder(msgspec.Raw).decode  # the syntax alone: no str decoded
_FAULT_TEXT: Final = 200  # characters of an exception's text kept: it may quote a huge frame
_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string: its brackets are text
_NOT_BRACKETS: Final = bytes(c for c in range(256) if c not in b"[]{}")
_STEPS: Final = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")  # depth step + 1, for `_depth`
_QUICK_PASSES: Final = 16
_RUN_OF_OPENERS: Final = (b"[" * (MAX_NESTING + 1), b"{" * (MAX_NESTING + 1))
_AT_BYTE: Final = re.compile(r" \(byte (\d+)\)$")  # msgspec's "JSON is malformed: ... (byte 7)"
_NOT_A_JSON_NUMBER: Final = re.compile(rb"-?(?:NaN|Infinity)")
_LETTERS: Final = re.compile(rb"[A-Za-z]+")
_INVALID_CHARACTER: Final = "JSON is malformed: invalid character"
# msgspec's refusals that name a byte after the one at fault (its _core.c, 0.18 to 0.22: it reads
# the byte, then complains), and how far after.
_NAMED_AFTER: Final = {
    "JSON is malformed: trailing characters": 1,
    "JSON is malformed: invalid escape character in string": 1,
    "JSON is malformed: invalid character in unicode escape": 1,
    "JSON is malformed: invalid utf-16 surrogate pair": 6,  # after the \uXXXX it read: its start
}


def _depth(brackets: bytes) -> int:
    """The deepest nesting of a string of brackets (exact; it runs at C speed but allocates an
    int per bracket, so only for the rare frame `check_nesting` cannot settle otherwise)."""
    steps = brackets.translate(_STEPS)  # an opener is 2, a closer 0: prefix sum - i = depth
    return max(map(operator.sub, itertools.accumulate(steps), range(1, len(steps) + 1)), default=0)


_Text = bytes | bytearray | memoryview | str | msgspec.Raw


def _utf8(frame: _Text) -> bytes | bytearray:
    """The bytes a parser reads of `frame`: a str's UTF-8 (msgspec counts positions in it)."""
    if isinstance(frame, str):
        return frame.encode("utf-8", "surrogatepass")
    if isinstance(frame, bytes | bytearray):
        return frame
    return bytes(frame)  # a memoryview, a msgspec.Raw


def _too_deep(frame: _Text) -> bool:
    """Whether `frame` nests deeper than `MAX_NESTING` (exact for what a parser would read)."""
    data = _utf8(frame)
    # An upper bound at C speed: a frame with few openers cannot nest deep (most frames).
    if data.count(b"[") + data.count(b"{") <= MAX_NESTING:
        return False
    # Many openers (a large book snapshot): the structure alone, without the strings.
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= MAX_NESTING:
        return False
    if _RUN_OF_OPENERS[0] in brackets or _RUN_OF_OPENERS[1] in brackets:
        return True  # the usual hostile frame: a long run of openers, found at C speed
    # Removing every innermost pair takes one level off everywhere: a real frame is empty after
    # a few passes. What is left then (hostile, or not JSON) is measured exactly.
    for _ in range(_QUICK_PASSES):
        shorter = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if not shorter:
            return False
        if len(shorter) == len(brackets):
            break
        brackets = shorter
    return _depth(brackets) + _QUICK_PASSES > MAX_NESTING


def _nested_too_deep(venue: str, where: str) -> MalformedFrame:
    return MalformedFrame(f"{where}: nested deeper than {MAX_NESTING} levels", venue=venue)


def malformed_frame(venue: str, message: str, instrument: str | None = None) -> MalformedFrame:
    """The `MalformedFrame` a decoder raises for a frame of `venue` (about `instrument`)."""
    return MalformedFrame(message, venue=venue, instrument=instrument)


def invalid_frame(venue: str, where: str, exc: Exception) -> MalformedFrame:
    """A typed parse's refusal (msgspec's `DecodeError`) as the frame's `MalformedFrame`: msgspec
    says "Expected `float`, got `str` - at `$.best_bid_price`", quoted our way."""
    return MalformedFrame(f"{where}: {str(exc).replace('`', chr(39))}", venue=venue)


def check_nesting(frame: _Text, venue: str, *, where: str = "frame") -> None:
    """Raise `MalformedFrame` ("{where}: nested deeper than ...") for JSON text nested deeper than
    `MAX_NESTING` (see above). Exact, whatever the length: a caller on the hot path checks
    `len(frame) > SHORT_FRAME` first."""
    if _too_deep(frame):
        raise _nested_too_deep(venue, where)


def check_text(data: _Text, venue: str, where: str) -> None:
    """Raise `MalformedFrame` ("{where}: a string is not UTF-8 ...") unless `data` is UTF-8 text, as JSON
    is. For an answer read record by record (its records kept as `msgspec.Raw`, whose strings
    msgspec reads only when the record is): bytes that are no text make the whole answer
    unreadable, as they do where it is parsed at once (`loads_untyped`), not one record."""
    try:
        if isinstance(data, str):
            data.encode()  # a lone surrogate: no text a venue sent
        else:
            bytes(data).decode()
    except UnicodeError as exc:
        raise _not_utf8(venue, where, exc) from None


def _not_utf8(venue: str, where: str, exc: UnicodeError) -> MalformedFrame:
    what = f"{exc.reason} at {exc.start}" if isinstance(exc, UnicodeDecodeError | UnicodeEncodeError) else exc
    return MalformedFrame(f"{where}: a string is not UTF-8 ({what})", venue=venue)


def loads_untyped(data: _Text, venue: str, where: str) -> Any:
    """Venue JSON parsed without a schema, safely (see above): `MalformedFrame` for text nested
    deeper than `MAX_NESTING`, and for text that is not JSON (not UTF-8 included), naming
    `where`. Every schemaless msgspec parse of a venue's bytes goes through it (orjson, which
    stops at 1,024 levels by itself, still reads a cursor or an id in a few Polymarket answers)."""
    if _too_deep(data):
        raise _nested_too_deep(venue, where)
    try:
        return _decode_untyped(data)
    except UnicodeError as exc:  # bytes that are not UTF-8 in a string, a str with a lone surrogate
        raise _not_utf8(venue, where, exc) from None
    except RecursionError:  # only from a caller already deep in its stack: never guess
        raise MalformedFrame(f"{where}: too deep to parse from here", venue=venue) from None
    except msgspec.DecodeError as exc:
        raise not_json(venue, where, exc, data) from None


def not_json(venue: str, where: str, exc: msgspec.DecodeError, text: _Text) -> MalformedFrame:
    """msgspec's refusal of `text`, which is not JSON (cut off, a stray byte), as the frame's
    `MalformedFrame`: "{where}: not JSON (Input data was truncated)", every venue alike.

    msgspec names a byte, counted from 0 ("(byte 7)"), not always the one at fault; the byte said
    is the one at fault, inside the text:
    - after a trailing character, a bad escape or a bad hex digit in one, msgspec names the byte
      after it (`_NAMED_AFTER`): the byte said is the offending one ('{"a":1}x': byte 7);
    - for a word that is not `null`, `true` or `false`, msgspec names the byte after the bytes
      it compared ('{"a":tru}': byte 9 of 9; 'nope': byte 4), or after the first: the word and
      where it starts are said: "not JSON ('tru' at byte 5: JSON's words are null, true and
      false)";
    - a NaN or an Infinity where a value should start (what Python's json and JavaScript write for
      a number JSON cannot carry: a venue's bad number, not a stray byte) is named, only when
      msgspec says an invalid character there: "not JSON (NaN at byte 531: JSON has no NaN or
      Infinity)" (a NaN after a bad escape or a missing comma is not what stopped it);
    - a number the text ends in the middle of ('1.', '-'), msgspec names the byte past the end:
      "invalid number (after byte 1, the last)". A text cut off elsewhere is msgspec's "Input
      data was truncated"."""
    said = str(exc).replace("`", "'")
    at = _AT_BYTE.search(said)
    if at is None:
        return MalformedFrame(f"{where}: not JSON ({said[:_FAULT_TEXT]})", venue=venue)
    data = _utf8(text)
    what = said[: at.start()]
    pos = int(at[1]) - _NAMED_AFTER.get(what, 0)
    if what == _INVALID_CHARACTER:
        word = _bad_word(data, pos)
        if word is not None:
            said = f"{_word_at(data, word)} at byte {word}: JSON's words are null, true and false"
            return MalformedFrame(f"{where}: not JSON ({said})", venue=venue)
        start = pos - 1 if pos > 0 and data[pos - 1 : pos] == b"-" else pos  # msgspec read the sign
        number = _NOT_A_JSON_NUMBER.match(data, start)
        if number is not None:
            return MalformedFrame(
                f"{where}: not JSON ({number[0].decode()} at byte {start}: JSON has no NaN or Infinity)",
                venue=venue,
            )
    place = f"after byte {len(data) - 1}, the last" if pos >= len(data) > 0 else f"byte {pos}"
    return MalformedFrame(f"{where}: not JSON ({what[:_FAULT_TEXT]} ({place}))", venue=venue)


def _bad_word(data: bytes | bytearray, named: int) -> int | None:
    """Where the word starts that msgspec found not to be `null`, `true` or `false`, if the byte it
    named (`named`, with "invalid character") follows one: it names the byte after the 4 bytes it
    compared (5 for `false`), or after the first when it skips a value. Only where msgspec
    expects a value (`_value_starts`): a 't' inside a string is no word."""
    for start, letters in ((named - 4, b"nt"), (named - 5, b"f"), (named - 1, b"ntf")):
        if 0 <= start < len(data) and data[start] in letters and _value_starts(data, start):
            return start
    return None


def _value_starts(data: bytes | bytearray, at: int) -> bool:
    """Whether msgspec, reading `data`, comes to byte `at` expecting a value: its text up to there
    is JSON, and with an 'x' at `at`, msgspec says "invalid character" at `at`. A string, a
    separator, a number's digits would say something else (cut off, "expected ','")."""
    try:
        _skim(bytes(data[:at]) + b"x")
    except msgspec.DecodeError as exc:
        return str(exc) == f"{_INVALID_CHARACTER} (byte {at})"
    except RecursionError:  # only from a caller already deep in its stack: no guess
        return False
    return False  # never: a text that ends in an 'x' is not JSON


def _word_at(data: bytes | bytearray, start: int) -> str:
    """The word at `start`, quoted: its letters among those msgspec compared (`false`'s 5, 4 else)."""
    word = _LETTERS.match(data, start, start + (5 if data[start] == ord("f") else 4))
    return repr(word[0].decode() if word else "")


class DecoderFault(MalformedFrame):
    """A frame on which a decoder raised something other than `MalformedFrame` (a decoder bug
    or a case it did not foresee): counted as malformed, and the decoder's books were
    invalidated (`guard_decode`). `error_type` names the original exception."""

    def __init__(self, message: str, *, venue: str, error_type: str, books: tuple[str, ...] = ()) -> None:
        super().__init__(message, venue=venue)
        self.error_type = error_type
        self.books = books  # the instruments whose book the decoder held (each now waits for a snapshot)


_D = TypeVar("_D", bound="Decoder")
_DecodeMethod = Callable[[_D, Any, int], list[MarketEvent]]


def guard_decode(decode: _DecodeMethod[_D]) -> _DecodeMethod[_D]:
    """Decorate a decoder's `decode` so that it keeps the `Decoder` contract whatever the frame:
    too deep a frame is refused before parsing, and any other exception becomes a `DecoderFault`
    (counted in `stats.malformed`, the books invalidated). See the comment above."""

    @functools.wraps(decode)
    def guarded(self: _D, frame: Any, ts_local: int) -> list[MarketEvent]:
        stats = self.stats  # once: this runs for every frame of every venue
        if len(frame) > SHORT_FRAME and _too_deep(frame):
            stats.frames += 1
            stats.malformed += 1
            raise _nested_too_deep(self.venue, "frame")
        counted = stats.malformed
        try:
            return decode(self, frame, ts_local)
        except MalformedFrame:
            if stats.malformed == counted:  # every refused frame is counted, wherever it failed
                stats.malformed += 1
            raise
        except Exception as exc:
            stats.malformed = counted + 1
            raise _fault(self, exc) from exc

    return guarded


def _fault(decoder: Decoder, exc: Exception) -> DecoderFault:
    books = tuple(decoder.book_instruments())  # before invalidating: a decoder may forget them
    decoder.invalidate_books()  # the frame may have been half applied: every book waits for a snapshot
    name = type(exc).__name__
    text = str(exc)
    if len(text) > _FAULT_TEXT:
        text = text[:_FAULT_TEXT] + "..."
    return DecoderFault(
        f"decoder fault {name}: {text} (books invalidated until their next snapshot)",
        venue=decoder.venue,
        error_type=name,
        books=books,
    )


_RECURSION_LIMIT: Final = sys.getrecursionlimit()


def restore_recursion_limit() -> None:
    """Put back the interpreter's recursion limit if an import raised it (py_ecc, imported by
    eth-account, sets 100,000): with it, deep recursion in any parser overflows the C stack and
    kills the process instead of raising `RecursionError`. Called where every live session is
    built (`VenueSession`), after its venue's signing modules are imported."""
    if sys.getrecursionlimit() > _RECURSION_LIMIT:
        sys.setrecursionlimit(_RECURSION_LIMIT)


def decode_parsed(decoder: Decoder, msg: Any, ts_local: int, venue: str) -> list[MarketEvent]:
    """Every venue decoder's `decode_message`: an already-parsed message, decoded as its JSON
    frame with the decoder's own contract. One that cannot be JSON is counted as a malformed
    frame and raises `MalformedFrame`."""
    try:
        frame = orjson.dumps(msg)
    except TypeError as exc:
        decoder.stats.frames += 1
        decoder.stats.malformed += 1
        raise MalformedFrame(f"not a JSON message: {exc}", venue=venue) from None
    return decoder.decode(frame, ts_local)


def load_catalog_class(venue: str) -> type[Any] | None:
    """The `MarketCatalog` class a venue registers (entry point group `tradingd.catalogs`),
    None when the venue has no catalog."""
    for ep in entry_points(group="tradingd.catalogs"):
        if ep.name == venue:
            cls: type[Any] = ep.load()
            return cls
    return None


def available_venues() -> list[str]:
    return sorted(ep.name for ep in entry_points(group="tradingd.venues"))


def load_checked(group: str, name: str, protocol: type[Any], what: str, public: str) -> Any | None:
    """The object registered as `name` in the entry point group `group`, checked against the
    runtime-checkable `protocol` before anything uses it: one lacking a member is one line
    naming what it lacks (`what`: "venue plugin"; `public`: the protocol's public name). None
    when nothing is registered under that name."""
    for ep in entry_points(group=group):
        if ep.name == name:
            plugin = ep.load()
            missing = _lacking(plugin, protocol)
            if missing:
                raise ConfigError(f"the {what} {name!r} ({ep.value}) is no {public}: it lacks {missing}")
            return plugin
    return None


def _lacking(obj: object, protocol: type[Any]) -> str:
    """The public members of the runtime-checkable `protocol` that `obj` lacks, named ("" when
    it has them all). The check itself, not only its message: `isinstance` against a protocol
    does not ask an object's `__getattr__` since Python 3.12 (`hasattr` does), so it would refuse
    an object that provides its members that way, saying it lacks nothing. The members are the
    protocol's and those of the protocols it derives from (its MRO, up to `Protocol`)."""
    members = {
        n
        for base in protocol.__mro__
        if base not in _NOT_MEMBERS
        for n in (*inspect.get_annotations(base), *vars(base))
        if not n.startswith("_")
    }
    return ", ".join(sorted(m for m in members if not hasattr(obj, m)))


# What a protocol's MRO ends with, whose attributes are no member of the protocol.
_NOT_MEMBERS: Final = frozenset({Protocol, Generic, object})


def checked_decoder(plugin: VenuePlugin, registry: InstrumentRegistry) -> Decoder:
    """`plugin.decoder(registry)`, checked against `Decoder` before anything reads it: a decoder
    lacking a member (a third-party one written before `Decoder.gapped_books` was declared) is one
    line naming what it lacks (`ConfigError`), never an `AttributeError` in the middle of a run,
    nor a member silently taken for absent."""
    decoder: Any = plugin.decoder(registry)  # typed by a plugin mypy may never have seen
    missing = _lacking(decoder, Decoder)
    if missing:
        cls = type(decoder)
        raise ConfigError(
            f"the venue {plugin.name!r} made a decoder ({cls.__module__}.{cls.__qualname__}) that is"
            f" no tradingd.engine.venue.Decoder: it lacks {missing}"
        )
    return cast(Decoder, decoder)


def load_venue(name: str) -> VenuePlugin:
    """The venue plugin registered as `name`; `ConfigError` naming the known ones otherwise."""
    plugin: VenuePlugin | None = load_checked(
        "tradingd.venues", name, VenuePlugin, "venue plugin", "tradingd.engine.venue.VenuePlugin"
    )
    if plugin is None:
        known = ", ".join(available_venues()) or "none installed"
        raise ConfigError(f"unknown venue {name!r} (known: {known})")
    return plugin
