"""Reading a venue's list answers record by record (open orders, trade histories).

A record the venue sent that cannot be read (a bad number, no id, a field of the wrong type) is
that record's problem: it is left out, counted by the caller and logged in one line naming the
venue, whatever ids can still be read of it, why, and what became of it; the answer's other
records are read. The answer's envelope (the list itself, its paging) is not a record: when it
cannot be read the whole answer is unreadable, as before. Shared by the JSON-RPC venues
(Deribit, Derive), whose records carry the same ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar

import msgspec

from ..model.errors import MalformedFrame

__all__ = [
    "ORDER_LEFT_OUT",
    "READ_ERRORS",
    "RECORD_ERRORS",
    "TRADE_LEFT_OUT",
    "RecordIds",
    "log_refused_record",
    "read_records",
    "record_ids",
]

_T = TypeVar("_T")

# What reading a venue answer may raise (a typed parse, the codec's checks, bytes that are not
# UTF-8 in a string, too deep a nesting): each is an unreadable answer, a typed `VenueError` the
# engine's reconciliation reports, never an exception that escapes it.
READ_ERRORS: Final = (msgspec.DecodeError, MalformedFrame, UnicodeDecodeError, RecursionError)
# What reading one record of a list may raise besides: any arithmetic or value a record's numbers
# break (an integer beyond any double, a conversion the typed parse let through) is that record's
# problem, left out and counted, never an error that fails the whole answer.
RECORD_ERRORS: Final = (*READ_ERRORS, ArithmeticError, ValueError, TypeError)
# What became of a record left out (the log line's `action`).
ORDER_LEFT_OUT: Final = "left out of the open orders; the engine asks about any of ours by its id"
TRADE_LEFT_OUT: Final = "left out; the history's other trades are booked"


class RecordIds(msgspec.Struct):
    """What names a record that could not be read, when that much can be (a log line's ids)."""

    trade_id: str | int | None = None
    order_id: str | None = None
    label: str | None = None


_decode_ids: Any = msgspec.json.Decoder(RecordIds).decode
_decode_ids_lax: Any = msgspec.json.Decoder(RecordIds, strict=False).decode


def record_ids(raw: msgspec.Raw, *, strict: bool = True) -> RecordIds:
    """The ids of a record that could not be read, as far as they can be (none: all None).
    `strict=False` for a venue whose numbers come as strings (Derive)."""
    try:
        ids: RecordIds = (_decode_ids if strict else _decode_ids_lax)(raw)
    except READ_ERRORS:
        return RecordIds()
    return ids


def log_refused_record(
    log: Any,
    event: str,
    *,
    venue: str,
    raw: msgspec.Raw,
    exc: BaseException,
    action: str,
    strict: bool = True,
) -> None:
    """The one error line for a record left out: `event` (`fills.record_refused`,
    `orders.record_refused`), the venue, the record's ids as far as they can be read, why."""
    ids = record_ids(raw, strict=strict)
    log.error(
        event,
        venue=venue,
        trade_id=None if ids.trade_id is None else str(ids.trade_id),
        order_id=ids.order_id,
        label=ids.label,
        reason=str(exc),
        action=action,
    )


def read_records(
    records: Iterable[msgspec.Raw],
    read: Callable[[msgspec.Raw], _T],
    *,
    log: Any,
    event: str,
    venue: str,
    action: str,
    strict: bool = True,
    on_refused: Callable[[], object] | None = None,
) -> tuple[list[_T], int]:
    """Each record through `read`; those it cannot read logged (`log_refused_record`) and left
    out. Returns what was read, in order, and how many were left out.

    `on_refused` is told of each record left out as it is, before its line is logged: the way
    to count them. What `read` raises beyond `RECORD_ERRORS` (a bug, not a record's problem)
    ends the loop and propagates, and the count returned is then never seen: the records left
    out before it are counted all the same by `on_refused` (whose caller then does not also
    add the count returned)."""
    out: list[_T] = []
    refused = 0
    for raw in records:
        try:
            out.append(read(raw))
        except RECORD_ERRORS as exc:
            refused += 1
            if on_refused is not None:
                on_refused()
            log_refused_record(log, event, venue=venue, raw=raw, exc=exc, action=action, strict=strict)
    return out, refused


class SaidOnce:
    """The records already said (counted and logged) by their bytes, so a read that meets one
    again (a look-back reading the same history at every poll) is silent: `first(record)` is True
    the first time. Bounded: past `kept` records the oldest is forgotten (said again if met)."""

    __slots__ = ("_said", "kept")

    def __init__(self, kept: int = 1024) -> None:
        self.kept = kept
        self._said: dict[bytes, None] = {}

    def __len__(self) -> int:
        return len(self._said)

    def first(self, record: bytes) -> bool:
        said = self._said
        if record in said:
            return False
        said[record] = None
        while len(said) > self.kept:
            del said[next(iter(said))]
        return True
