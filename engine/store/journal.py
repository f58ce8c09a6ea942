"""The order journal: every order request, venue answer, state change and fill, in SQLite (WAL),
written before the engine acts on it or reports it.

What it guarantees (with `OrderFlow`, which writes it, and the daemon's start-up reconciliation):

- An order is journaled (request, client order id) before it is sent. After a crash or a
  `kill -9` at any point, the restarted daemon knows every order it may have sent: it asks the
  venue about each one that was not final (by venue id, or by client order id when the crash
  came before the venue named it) and never sends one again.
- Each fill is journaled (unique by venue, trade id and our order: one trade may fill several
  of our orders) with the USD rates it was booked at,
  before the position changes and before the strategy hears of it; positions are rebuilt from
  the journal's fills, voided fills, settlements and funding payments, in order, so they equal
  what they were. A funding payment is journaled once per venue payment, every strategy's share
  in one transaction (a crash leaves it whole or absent).
- Every change is one SQLite transaction, committed before the call returns. With
  `synchronous = normal` (the default) a committed write survives the process being killed
  (it is in the WAL file); `full` also survives a power cut, at the cost of an fsync per write.

Tables: `orders` (one row per order: its request and latest state), `ledger` (fills, voided
fills and settlements, in order), `events` (the audit trail: one row per step, JSON), `instruments`
(the definitions orders and positions refer to, so a restart can rebuild before any venue has
connected), `meta` (the risk day's starting equities and such).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar

import attrs
import cattrs
import orjson
import structlog

from ..model.errors import TradingError
from ..model.events import Fill, FillReversal, Liquidity, OrderState, Side
from ..model.histogram import SLOW_BUCKETS_S, Histogram
from ..model.instruments import Instrument
from ..model.ledger import UsdRates
from ..model.money import optional
from ..model.orders import Order, OrderRequest, RestoredOrder
from ..model.settlement import FundingPayment, HeldFunding

__all__ = [
    "JournalError",
    "JournalStats",
    "JournalWriteError",
    "LedgerEntry",
    "OrderJournal",
]

_SCHEMA_VERSION = 2
# The ledger table of schema 2. A fill is unique by what makes it unique at the venue: its trade
# and our order in it. One trade can fill several of our orders under one trade id (a Polymarket
# taker crossing two of our maker orders, VENUES.md §2.2 `maker_orders[]`; our own buy and sell
# crossing on Deribit when self-trading is allowed), and each of those fills is booked.
# A row without a trade id (a settlement) is never a repeat: SQLite takes NULLs in a unique index
# as distinct. A row with a trade id but no order of ours (a funding payment, named by the
# venue's id of it) is unique by that id: `coalesce` makes its missing order one value.
# `ts_exchange`: a fill's (or voided fill's) time at the venue, when it said (`ts_ns` is when we
# received it): a perpetual's position history is rebuilt by it (funding is paid on the
# position at the venue's time). NULL in rows a schema-1 journal had.
_LEDGER_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('fill', 'reversal', 'settle', 'funding')),
    ts_ns INTEGER NOT NULL,
    strategy TEXT NOT NULL,
    venue TEXT NOT NULL,
    instrument TEXT NOT NULL,
    client_order_id TEXT,
    order_id TEXT,
    trade_id TEXT,
    side TEXT,
    price TEXT NOT NULL,
    size TEXT,
    fee TEXT,
    fee_currency TEXT,
    liquidity TEXT,
    reason TEXT,
    rate_quote REAL,
    rate_settle REAL,
    rate_fee REAL,
    ts_exchange INTEGER
);
"""
_LEDGER_INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS ledger_key
    ON ledger (kind, venue, trade_id, coalesce(client_order_id, ''));
CREATE INDEX IF NOT EXISTS ledger_order ON ledger (client_order_id);
"""
_LEDGER_COLUMNS = (
    "seq, kind, ts_ns, strategy, venue, instrument, client_order_id, order_id, trade_id, side, price, size, "
    "fee, fee_currency, liquidity, reason, rate_quote, rate_settle, rate_fee"
)
# The notes a restart reads back (`OrderJournal.contests`, whose query names the same kinds, so
# SQLite uses the partial index): a partial index, so the other events (most of them) cost it
# nothing to write. Run at every opening of a schema-2
# journal too (`IF NOT EXISTS`): one written before it had none, and every start then scanned
# its whole audit trail. `events_contests` (three kinds, without the reversals) is its first
# form, dropped where found.
_CONTEST_NOTES = (
    "venue_id_contested",
    "fill_not_booked",
    "fill_reversal_not_applied",
    "venue_id_contest_settled",
)
_CONTEST_KINDS = ", ".join(f"'{k}'" for k in _CONTEST_NOTES)
_EVENTS_INDEXES = f"""
DROP INDEX IF EXISTS events_contests;
CREATE INDEX IF NOT EXISTS events_contest_notes ON events (kind) WHERE kind IN ({_CONTEST_KINDS});
"""
# The meta key (with the venue's name) of the funding payments not booked yet (held back by the
# venue, or waiting): a JSON list of what is known of each (`OrderJournal.hold_funding`). A meta
# row, no table of its own: an older journal reads as none, an older tradingd ignores it.
_FUNDING_PENDING = "funding_pending:"
# At most this many are kept: the oldest (those whose time is unknown first), since the newest are
# read again by the next round's window; the count dropped is logged as an error.
FUNDING_PENDING_MAX = 1000
# An entry of that list leaves it in the transaction that books its payment: by its event id,
# or, one whose id the venue held back, by its instrument and time (a venue pays one funding a
# time per instrument; the amount is not compared: held as '-0.50', booked as '-0.5', or held
# with an amount that could not be read, it is the same payment).
_FUNDING_UNPEND = f"""UPDATE meta SET value = (
    SELECT coalesce(json_group_array(json(e.value)), '[]') FROM json_each(meta.value) AS e
    WHERE NOT (json_extract(e.value, '$.event_id') IS ?
        OR (json_extract(e.value, '$.event_id') IS NULL AND json_extract(e.value, '$.instrument') IS ?
            AND json_extract(e.value, '$.ts_ns') IS ?))
) WHERE key = '{_FUNDING_PENDING}' || ? AND json_valid(value) AND json_type(value) = 'array'"""
_CONTESTS_QUERY = f"SELECT kind, data FROM events WHERE kind IN ({_CONTEST_KINDS}) ORDER BY seq"
_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    venue TEXT NOT NULL,
    instrument TEXT NOT NULL,
    strategy TEXT NOT NULL,
    request TEXT NOT NULL,
    order_id TEXT,
    state TEXT NOT NULL,
    price TEXT,
    size TEXT NOT NULL,
    filled_size TEXT NOT NULL,
    avg_fill_price TEXT,
    reason TEXT,
    created_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL,
    final INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS orders_open ON orders (final, updated_ns);
CREATE INDEX IF NOT EXISTS orders_venue_id ON orders (venue, order_id);
"""
    + _LEDGER_TABLE.format(name="ledger")
    + _LEDGER_INDEXES
    + """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    client_order_id TEXT,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS instruments (
    venue TEXT NOT NULL,
    symbol TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (venue, symbol)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
    + _EVENTS_INDEXES
)


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: BEGIN IMMEDIATE, COMMIT, and on any error a ROLLBACK, unless SQLite
    has rolled back already (SQLITE_FULL does: a ROLLBACK then would fail with "cannot
    rollback" and hide the real error)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Each statement of `script` inside the caller's transaction (`executescript` would commit
    it first)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _migrate_v1(db: sqlite3.Connection) -> None:
    """Schema 1 -> 2, in place and in one transaction (SQLite's table rebuild: a constraint of a
    table cannot be altered). Schema 1 keyed the ledger by (kind, venue, trade_id), so a second
    fill of one trade (another order of ours in it) could not be booked; its rows, their order
    (`seq`, and the sequence the next row takes its number from) and their rates are kept as
    they are. Everything else is the same in both schemas. A failure rolls it all back: the file
    stays a schema-1 journal."""
    with _transaction(db):
        (next_seq,) = db.execute(
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'ledger'), 0)"
        ).fetchone()
        db.execute(_LEDGER_TABLE.format(name="ledger_v2"))
        db.execute(
            f"INSERT INTO ledger_v2 ({_LEDGER_COLUMNS}) SELECT {_LEDGER_COLUMNS} FROM ledger ORDER BY seq"
        )
        db.execute("DROP TABLE ledger")  # its indexes go with it
        db.execute("ALTER TABLE ledger_v2 RENAME TO ledger")
        _run_script(db, _LEDGER_INDEXES)
        kept = db.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'ledger'", (next_seq,))
        if kept.rowcount == 0 and next_seq:
            db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('ledger', ?)", (next_seq,))
        # The tables schema 1 may have left missing (a file it left part way) in the same
        # transaction, and the version last: a crash before COMMIT leaves a schema-1 file.
        _run_script(db, _SCHEMA)
        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")


_INSERT_LEDGER = (
    "INSERT {or_ignore} INTO ledger (kind, ts_ns, strategy, venue, instrument, client_order_id, order_id, "
    "trade_id, side, price, size, fee, fee_currency, liquidity, reason, rate_quote, rate_settle, rate_fee, "
    "ts_exchange) VALUES ('{kind}', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_unstructure_hook(Decimal, str)
    conv.register_structure_hook(Decimal, lambda v, _: Decimal(str(v)))
    return conv


_CONV = _converter()


_P = TypeVar("_P", bound=FundingPayment | HeldFunding)


def _oldest(venue: str, pending: Sequence[_P]) -> list[_P]:
    """The oldest `FUNDING_PENDING_MAX` of `pending` (a time unknown counts oldest), in time
    order; an error line with the count dropped when there are more."""
    ordered = sorted(pending, key=lambda p: (p.ts_ns is not None, p.ts_ns or 0))
    if len(ordered) > FUNDING_PENDING_MAX:
        structlog.get_logger("tradingd.journal").error(
            "funding.pending_dropped",
            venue=venue,
            dropped=len(ordered) - FUNDING_PENDING_MAX,
            kept=FUNDING_PENDING_MAX,
        )
    return ordered[:FUNDING_PENDING_MAX]


def _pending_stmt(venue: str, pending: Sequence[FundingPayment | HeldFunding]) -> tuple[str, tuple[Any, ...]]:
    """The meta row of `venue`'s funding payments not booked (`OrderJournal.hold_funding`): the
    oldest `FUNDING_PENDING_MAX` (those whose time is unknown first), an error line for the rest."""
    pending = _oldest(venue, pending)
    entries = [
        {
            "instrument": p.instrument,
            "ts_ns": p.ts_ns,
            "amount": _s(p.amount),
            "currency": p.currency,
            "event_id": p.event_id,
            "reason": p.reason if isinstance(p, HeldFunding) else "waiting (no USD rate, or undecided)",
        }
        for p in pending
    ]
    value = orjson.dumps(entries).decode()
    return ("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (f"{_FUNDING_PENDING}{venue}", value))


def _pending_entry(venue: str, e: dict[str, Any]) -> HeldFunding:
    """One entry of the meta row read back, checked (a value of the wrong type raises)."""
    ts, amount = e["ts_ns"], e["amount"]
    if ts is not None and (type(ts) is not int or ts < 0):
        raise TypeError(f"ts_ns {ts!r} is no time in ns")
    money = None if amount is None else Decimal(amount)
    if money is not None and not money.is_finite():
        raise ValueError(f"amount {amount!r}")
    texts = {k: e[k] for k in ("instrument", "currency", "event_id", "reason")}
    for k, v in texts.items():
        if v is not None and type(v) is not str:
            raise TypeError(f"{k} {v!r} is no text")
    return HeldFunding(
        venue=venue,
        instrument=texts["instrument"],
        ts_ns=ts,
        amount=money,
        currency=texts["currency"],
        reason=texts["reason"] or "",
        event_id=texts["event_id"],
    )


def _s(d: Decimal | None) -> str | None:
    return None if d is None else str(d)


def _d(s: str | None) -> Decimal | None:
    return optional(s, "journal value")


class JournalError(TradingError):
    """The journal file cannot be used (empty, damaged, of another schema, on a full disk); the
    message names the file and what to do."""


class JournalWriteError(sqlite3.OperationalError):
    """A journal write failed; the message names the journal and the cause ("disk full").
    A `sqlite3.Error`, so the order flow's handling of a failed write applies: the order whose
    request could not be journaled is not sent."""


@attrs.define
class JournalStats:
    writes: int = 0
    write_ns: int = 0  # total time spent writing (for `tradingd status`)
    # Each write's seconds (the daemon's metrics: `tradingd_journal_write_seconds`).
    write_seconds: Histogram = attrs.field(factory=lambda: Histogram(SLOW_BUCKETS_S), eq=False)


@attrs.frozen
class LedgerEntry:
    """One row of the ledger table, ready to replay into a `Ledger`."""

    kind: Literal["fill", "reversal", "settle", "funding"]
    strategy: str
    venue: str
    instrument: str
    event: Fill | FillReversal | None  # None for a settlement
    price: Decimal
    rates: UsdRates
    ts_ns: int = 0  # when it was booked (a fill's or voided fill's: when we received it)


def _owner_only(path: Path) -> None:
    """Orders and positions are nobody else's business: the journal and its `-wal`/`-shm` files
    readable by their owner only. Done right after `connect` (which creates the database file)
    and before anything is written: SQLite creates the `-wal` and `-shm` files with the database
    file's permissions, so they are 0600 from their first byte; files left by an older run are
    narrowed too."""
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            p.chmod(0o600)


class OrderJournal:
    """The journal (module docstring). Open it with a path; `close()` when the daemon stops."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Literal["normal", "full"] = "normal",
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.stats = JournalStats()
        # (schema it had, copy of it kept) when this open migrated the file: the daemon says so.
        self.migrated: tuple[int, Path] | None = None
        self._db = self._open(synchronous)
        self._instruments: set[tuple[str, str]] = {
            (v, s) for v, s in self._db.execute("SELECT venue, symbol FROM instruments")
        }

    def _open(self, synchronous: str) -> sqlite3.Connection:
        """Open the journal file, or start a new one where there is no file. A file that is
        there but empty, or that SQLite cannot read, is refused (`JournalError`, naming the file
        and what to do): taking it for a new journal would forget every order and position."""
        path = self.path
        if path.exists() and path.stat().st_size == 0:
            raise JournalError(
                f"journal {path} is empty (0 bytes): it may have been truncated; move it aside to "
                "start a new journal, or restore it from backup"
            )
        db = None
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            _owner_only(path)  # before the first write: the -wal/-shm files take the file's mode
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            db.execute("PRAGMA foreign_keys=ON")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION or version < 0:
                raise JournalError(
                    f"journal {path} has schema {version}, this tradingd reads {_SCHEMA_VERSION}: "
                    "run the tradingd that wrote it, or move it aside to start a new journal"
                )
            if version < _SCHEMA_VERSION:
                # Schema 1 wrote its tables one by one, then its version: a file it left part way
                # (a crash) has version 0, and its ledger (if it got that far) is migrated too.
                has_ledger = db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger'"
                ).fetchone()
                if has_ledger:
                    # A copy of the file as it was, first (SQLite's online backup, consistent
                    # with its WAL): an older tradingd refuses schema 2, so going back needs it.
                    backup = path.with_name(f"{path.name}.schema{version or 1}")
                    os.close(os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
                    _owner_only(backup)  # an older copy's mode too
                    with contextlib.closing(sqlite3.connect(backup)) as copy:
                        db.backup(copy)
                    _owner_only(backup)
                    _migrate_v1(db)  # its tables and version with it, in one transaction
                    self.migrated = (version or 1, backup)
                else:
                    # A new journal (or the rest of one schema 1 left part way): tables and
                    # version in one transaction.
                    with _transaction(db):
                        _run_script(db, _SCHEMA)
                        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            else:
                if "ts_exchange" not in {r[1] for r in db.execute("PRAGMA table_info(ledger)")}:
                    # Schema 2 as first written (main before its ledger kept the venue's time of
                    # a fill): the column is added, empty (old rows fall back to our receive time).
                    db.execute("ALTER TABLE ledger ADD COLUMN ts_exchange INTEGER")
                # Schema 2 written before the contest notes had their index (`_EVENTS_INDEXES`).
                with _transaction(db):
                    _run_script(db, _EVENTS_INDEXES)
            db.execute("SELECT venue, symbol FROM instruments").fetchall()  # damaged: said here
        except BaseException as exc:
            if db is not None:
                db.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc, "open") from None
            raise
        return db

    def _error(self, exc: sqlite3.Error, doing: str) -> JournalError:
        """What a failure of the journal file means, naming the file and what to do."""
        code = getattr(exc, "sqlite_errorcode", None)
        if code == sqlite3.SQLITE_FULL:
            return JournalError(f"journal {self.path}: disk full ({exc}); free space on its disk")
        if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return JournalError(
                f"journal {self.path} is damaged or not a tradingd journal ({exc}): move it aside "
                "to start a new journal, or restore it from backup"
            )
        return JournalError(f"journal {self.path}: cannot {doing} it ({exc})")

    def close(self) -> str | None:
        """Checkpoint the WAL into the database file and close it. A checkpoint that fails (a
        full disk) loses nothing: the WAL stays, and SQLite reads it back at the next open. That
        failure is returned (naming the journal) for the caller to log; None when all went well."""
        failed = None
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            failed = str(self._error(exc, "checkpoint"))
        finally:
            self._db.close()
        return failed

    # -- writing ----------------------------------------------------------------------------
    def _tx(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        t0 = time.perf_counter_ns()
        db = self._db
        try:
            with _transaction(db):
                for sql, args in statements:
                    db.execute(sql, args)
        except sqlite3.IntegrityError:
            raise  # a constraint (a fill booked already): the callers' business
        except sqlite3.Error as exc:
            failed = self._error(exc, "write")
            raise JournalWriteError(str(failed)) from exc
        took = time.perf_counter_ns() - t0
        stats = self.stats
        stats.writes += 1
        stats.write_ns += took
        stats.write_seconds.observe(took / 1e9)

    @staticmethod
    def _event(kind: str, cid: str | None, now: int, **data: Any) -> tuple[str, tuple[Any, ...]]:
        payload = orjson.dumps(data, default=str).decode()
        return (
            "INSERT INTO events (ts_ns, kind, client_order_id, data) VALUES (?, ?, ?, ?)",
            (now, kind, cid, payload),
        )

    def _instrument_stmt(self, inst: Instrument) -> list[tuple[str, tuple[Any, ...]]]:
        if inst.key in self._instruments:
            return []
        self._instruments.add(inst.key)
        data = orjson.dumps(_CONV.unstructure(inst)).decode()
        return [
            (
                "INSERT OR REPLACE INTO instruments (venue, symbol, data) VALUES (?, ?, ?)",
                (inst.venue, inst.symbol, data),
            )
        ]

    def _state_stmt(self, order: Order) -> tuple[str, tuple[Any, ...]]:
        return (
            "UPDATE orders SET order_id = ?, state = ?, price = ?, size = ?, filled_size = ?, "
            "avg_fill_price = ?, reason = ?, updated_ns = ?, final = ? WHERE client_order_id = ?",
            (
                order.order_id,
                order.state.value,
                _s(order.price),
                str(order.size),
                str(order.filled_size),
                _s(order.avg_fill_price),
                order.reason,
                order.updated_ns,
                int(order.state.is_final),
                order.client_order_id,
            ),
        )

    def request(self, order: Order, inst: Instrument | None) -> None:
        """A new order, before it is sent."""
        r = order.request
        request_json = orjson.dumps(_CONV.unstructure(r)).decode()
        stmts = [] if inst is None else self._instrument_stmt(inst)
        stmts.append(
            (
                "INSERT INTO orders (client_order_id, venue, instrument, strategy, request, order_id, state, "
                "price, size, filled_size, avg_fill_price, reason, created_ns, updated_ns, final) "
                "VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, '0', NULL, NULL, ?, ?, 0)",
                (
                    order.client_order_id,
                    r.venue,
                    r.instrument,
                    r.strategy,
                    request_json,
                    order.state.value,
                    _s(r.price),
                    str(r.size),
                    order.created_ns,
                    order.updated_ns,
                ),
            )
        )
        stmts.append(
            self._event("request", order.client_order_id, order.created_ns, request=_CONV.unstructure(r))
        )
        self._tx(stmts)

    def state(self, order: Order, kind: str = "state", **data: Any) -> None:
        """The order's state after a change (an answer, a report, a cancel request...)."""
        now = order.updated_ns or self.clock()
        self._tx(
            [
                self._state_stmt(order),
                self._event(
                    kind,
                    order.client_order_id,
                    now,
                    state=order.state.value,
                    order_id=order.order_id,
                    filled_size=str(order.filled_size),
                    reason=order.reason,
                    **data,
                ),
            ]
        )

    def adopt(self, order: Order, inst: Instrument | None) -> None:
        """An order found at the venue (ours by its label) and tracked again."""
        self.request(order, inst)
        self.state(order, "adopt")

    def fill(self, fill: Fill, order: Order, rates: UsdRates) -> bool:
        """A fill booked to `order`, with the USD rates it is booked at. False when the journal
        already had it (the same trade reported again after a restart)."""
        rq, rs, rf = rates
        try:
            self._tx(
                [
                    (
                        _INSERT_LEDGER.format(kind="fill", or_ignore=""),
                        (
                            fill.ts_local,
                            order.strategy,
                            fill.venue,
                            fill.instrument,
                            order.client_order_id,
                            fill.order_id,
                            fill.trade_id or None,  # no id: never taken for a repeat (as the tracker)
                            fill.side.value,
                            str(fill.price),
                            str(fill.size),
                            str(fill.fee),
                            fill.fee_currency,
                            fill.liquidity.value,
                            None,
                            rq,
                            rs,
                            rf,
                            fill.ts_exchange,
                        ),
                    ),
                    self._state_stmt(order),
                    self._event(
                        "fill",
                        order.client_order_id,
                        fill.ts_local,
                        trade_id=fill.trade_id,
                        side=fill.side.value,
                        price=str(fill.price),
                        size=str(fill.size),
                        fee=str(fill.fee),
                    ),
                ]
            )
        except sqlite3.IntegrityError:
            return False
        return True

    def reversal(self, rev: FillReversal, order: Order, rates: UsdRates) -> None:
        rq, rs, rf = rates
        self._tx(
            [
                (
                    _INSERT_LEDGER.format(kind="reversal", or_ignore="OR IGNORE"),
                    (
                        rev.ts_local,
                        order.strategy,
                        rev.venue,
                        rev.instrument,
                        order.client_order_id,
                        rev.order_id,
                        rev.trade_id or None,
                        rev.side.value,
                        str(rev.price),
                        str(rev.size),
                        str(rev.fee),
                        rev.fee_currency,
                        None,
                        rev.reason,
                        rq,
                        rs,
                        rf,
                        rev.ts_exchange,
                    ),
                ),
                self._state_stmt(order),
                self._event(
                    "reversal", order.client_order_id, rev.ts_local, trade_id=rev.trade_id, reason=rev.reason
                ),
            ]
        )

    def settlement(
        self, strategy: str, inst: Instrument, price: float | Decimal, rates: UsdRates, now_ns: int
    ) -> None:
        rq, rs, rf = rates
        stmts = self._instrument_stmt(inst)
        stmts.append(
            (
                "INSERT INTO ledger (kind, ts_ns, strategy, venue, instrument, price, rate_quote, "
                "rate_settle, rate_fee) VALUES ('settle', ?, ?, ?, ?, ?, ?, ?, ?)",
                (now_ns, strategy, inst.venue, inst.symbol, str(price), rq, rs, rf),
            )
        )
        stmts.append(
            self._event("settle", None, now_ns, strategy=strategy, instrument=inst.symbol, price=price)
        )
        self._tx(stmts)

    def funding(
        self,
        inst: Instrument,
        event_id: str,
        currency: str,
        shares: list[tuple[str, Decimal, Decimal]],
        *,
        total: Decimal,
        rate: Decimal | None,
        usd_rate: float,
        ts_ns: int,
    ) -> bool:
        """Every strategy's share of one funding payment (`OrderFlow.funding`): `shares` is
        (strategy, amount, the position it was taken by). All in ONE transaction, so a crash
        leaves the payment either whole or absent (`funding_known` then tells the truth). False
        when the journal has it already (the same payment reported again after a restart): each
        venue payment is booked once. Columns: `trade_id` = `<event id>#<strategy>` (unique with
        the kind and venue), `client_order_id` = "" (not NULL, so a key that includes it stays
        unique), `price` = the strategy's amount, `size` = its position the share was taken by,
        `fee` = the venue's whole payment, `fee_currency` = the currency, `reason` = the funding
        rate when the venue gave one, `rate_fee` = USD per unit of the currency."""
        stmts = self._instrument_stmt(inst)
        for strategy, amount, position in shares:
            stmts.append(
                (
                    _INSERT_LEDGER.format(kind="funding", or_ignore=""),
                    (
                        ts_ns,
                        strategy,
                        inst.venue,
                        inst.symbol,
                        "",
                        None,
                        f"{event_id}#{strategy}",
                        None,
                        str(amount),
                        str(position),
                        str(total),
                        currency,
                        None,
                        None if rate is None else str(rate),
                        None,
                        None,
                        usd_rate,
                        None,
                    ),
                )
            )
            stmts.append(
                self._event(
                    "funding",
                    None,
                    ts_ns,
                    strategy=strategy,
                    instrument=inst.symbol,
                    event_id=event_id,
                    amount=str(amount),
                    currency=currency,
                )
            )
        unpend = (_FUNDING_UNPEND, (event_id, inst.symbol, ts_ns, inst.venue))
        try:
            self._tx([*stmts, unpend])
        except sqlite3.IntegrityError:
            if stmts and stmts[0][0].startswith("INSERT OR REPLACE INTO instruments"):
                self._instruments.discard(inst.key)  # rolled back with the rest
            # Booked already: pending no more either. A failure here leaves it listed, harmless:
            # a restart gives up none the ledger has (`LiveEngine._funding_start`).
            with contextlib.suppress(sqlite3.Error):
                self._tx([unpend])
            return False
        return True

    def funding_known(self, venue: str, event_id: str) -> bool:
        """Whether any strategy's share of the venue's funding payment `event_id` is journaled
        (`funding`: its rows' `trade_id` is `<event id>#<strategy>`). A range on the ledger's
        unique index (kind, venue, trade_id): every id that starts with `<event id>#` sorts
        between it and `<event id>$` ('$' follows '#'), so SQLite seeks, never scans."""
        with self._reading():
            row = self._db.execute(
                "SELECT 1 FROM ledger WHERE kind = 'funding' AND venue = ? "
                "AND trade_id >= ? AND trade_id < ? LIMIT 1",
                (venue, f"{event_id}#", f"{event_id}$"),
            ).fetchone()
        return row is not None

    def funding_booked_at(self, venue: str, instrument: str, ts_ns: int) -> bool:
        """Whether the ledger has a funding row of `venue` for `instrument` at `ts_ns`: a pending
        payment whose id the venue held back is booked already when it has (one funding a time
        per instrument)."""
        with self._reading():
            row = self._db.execute(
                "SELECT 1 FROM ledger WHERE kind = 'funding' AND venue = ? AND instrument = ? "
                "AND ts_ns = ? LIMIT 1",
                (venue, instrument, ts_ns),
            ).fetchone()
        return row is not None

    def last_seq(self) -> int:
        """The ledger's last row number (0 when empty): what the journal held at a moment."""
        with self._reading():
            row = self._db.execute("SELECT max(seq) FROM ledger").fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def last_booked_ns(self, venue: str, *, up_to_seq: int | None = None) -> int | None:
        """The latest time of a fill or funding payment of `venue` in the ledger (a fill's time
        at the venue where journaled, else when we received it), None when there is none: the
        live engine asks the venue's funding from there after a restart. `up_to_seq`: among
        the rows up to that row number only (those written before this run: a fill caught up
        since, from the downtime, is later than payments still to book)."""
        where = "venue = ? AND kind IN ('fill', 'funding')"
        args: list[str | int] = [venue]
        if up_to_seq is not None:
            where += " AND seq <= ?"
            args.append(up_to_seq)
        with self._reading():
            row = self._db.execute(
                f"SELECT max(coalesce(ts_exchange, ts_ns)) FROM ledger WHERE {where}", args
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def funding_pending(self, venue: str) -> list[HeldFunding]:
        """The funding payments of `venue` not booked yet when last said (`hold_funding`): held
        back by the venue or waiting, each with what was known of it (`HeldFunding`, `event_id`
        when known); [] when none (or the journal is older than this). The first funding round
        after a restart reads back to the oldest, and gives up those past its cap
        (`LiveEngine._funding_start`). Raises `JournalError` for a value that is no such list."""
        key = f"{_FUNDING_PENDING}{venue}"
        try:
            value = self.meta(key)
            entries = [] if value is None else [_pending_entry(venue, e) for e in value]
        except (ValueError, TypeError, KeyError, ArithmeticError) as exc:  # not JSON, or no entry
            raise JournalError(f"journal {self.path}: {key} unreadable ({exc!r})") from None
        return _oldest(venue, entries)

    def hold_funding(self, venue: str, pending: Sequence[FundingPayment | HeldFunding]) -> None:
        """Say the funding payments of `venue` not booked yet ([]: none is), for `funding_pending`
        after a restart. A booking (`funding`) takes its payment out in its own transaction."""
        self._tx([_pending_stmt(venue, pending)])

    def funding_given_up(
        self, venue: str, notes: list[dict[str, Any]], pending: Sequence[FundingPayment | HeldFunding]
    ) -> None:
        """Payments of `venue` given up unbooked (`OrderFlow.give_up_funding`): a
        `funding_not_booked` note for each and the payments still pending, in ONE transaction, so
        a payment given up is never read back as pending (and given up again) after a restart."""
        now = self.clock()
        self._tx(
            [self._event("funding_not_booked", None, now, **n) for n in notes]
            + [_pending_stmt(venue, pending)]
        )

    def rates_known(
        self,
        kind: Literal["fill", "reversal", "settle"],
        *,
        strategy: str,
        venue: str,
        instrument: str,
        trade_id: str | None,
        client_order_id: str | None,
        rates: UsdRates,
    ) -> int:
        """A fill (voided fill, settlement) journaled while a USD rate it needed was unknown
        (NULL, or a rate no money can be booked at: 0 or below, from an older journal) has now
        been booked at `rates`: those rate columns take them (a usable rate known when it was
        journaled is kept), so a restart books it at the same rates. A row whose rates stay
        unknown is booked again only once a rate is known. Returns the rows updated."""
        rq, rs, rf = rates
        match = "kind = ? AND strategy = ? AND venue = ? AND instrument = ?"
        args: tuple[Any, ...] = (kind, strategy, venue, instrument)
        if kind == "settle":  # no trade id: the settlement of that position still unpriced
            match += " AND (coalesce(rate_quote, 0) <= 0 OR coalesce(rate_settle, 0) <= 0)"
        else:
            # As `fill` and `reversal` store them: no trade id is NULL, not ''.
            match += " AND trade_id IS ? AND client_order_id IS ?"
            args += (trade_id or None, client_order_id)
        before = self._db.total_changes
        self._tx(
            [
                (
                    "UPDATE ledger SET "
                    "rate_quote = CASE WHEN rate_quote > 0 THEN rate_quote ELSE ? END, "
                    "rate_settle = CASE WHEN rate_settle > 0 THEN rate_settle ELSE ? END, "
                    "rate_fee = CASE WHEN rate_fee > 0 THEN rate_fee ELSE ? END "
                    f"WHERE {match}",
                    (rq, rs, rf, *args),
                ),
                self._event(
                    "rates_known",
                    client_order_id,
                    self.clock(),
                    entry=kind,
                    strategy=strategy,
                    venue=venue,
                    instrument=instrument,
                    trade_id=trade_id,
                    rates=[rq, rs, rf],
                ),
            ]
        )
        return self._db.total_changes - before - 1  # less the audit row

    def note(self, kind: str, client_order_id: str | None = None, **data: Any) -> None:
        """Something worth keeping in the audit trail (a reconciliation's finding, the kill
        switch, an unknown outcome)."""
        self._tx([self._event(kind, client_order_id, self.clock(), **data)])

    def set_meta(self, key: str, value: Any) -> None:
        self._tx(
            [("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, orjson.dumps(value).decode()))]
        )

    # -- reading ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """A read that fails (a journal damaged past its header) names the file."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(exc, "read") from None

    def meta(self, key: str) -> Any:
        with self._reading():
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else orjson.loads(row[0])

    def instruments(self) -> list[Instrument]:
        with self._reading():
            rows = self._db.execute("SELECT data FROM instruments ORDER BY venue, symbol").fetchall()
        return [_CONV.structure(orjson.loads(data), Instrument) for (data,) in rows]

    def orders(self, *, final_since_ns: int | None = None) -> list[RestoredOrder]:
        """Orders not final, plus (for `final_since_ns`) those that became final since then:
        their fills' trade ids keep a trade reported again from being booked twice."""
        where = "o.final = 0"
        args: tuple[int, ...] = ()
        if final_since_ns is not None:
            where, args = "(o.final = 0 OR o.updated_ns >= ?)", (final_since_ns,)
        with self._reading():
            rows = self._db.execute(f"SELECT * FROM orders o WHERE {where} ORDER BY created_ns", args)
            cols = [c[0] for c in rows.description]
            found = [dict(zip(cols, row, strict=True)) for row in rows.fetchall()]
            # Their fills in one query (not one per order: a restart may read many).
            fills: dict[str, list[tuple[str, str, str, str]]] = {}
            for cid, *fill in self._db.execute(
                "SELECT l.client_order_id, l.trade_id, l.kind, l.size, l.price FROM ledger l "
                f"JOIN orders o ON o.client_order_id = l.client_order_id WHERE {where} "
                "AND l.kind IN ('fill', 'reversal') ORDER BY l.seq",
                args,
            ):
                fills.setdefault(cid, []).append(tuple(fill))
        return [self._restored(r, fills.get(r["client_order_id"], [])) for r in found]

    def find_order(
        self, venue: str | None, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> RestoredOrder | None:
        """One order as journaled, by client order id, or by venue and venue order id (the
        tracker's `OrderArchive`: a final order it let go, named by a late report)."""
        cur: sqlite3.Cursor | None = None
        row = None
        if client_order_id:
            cur = self._db.execute("SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,))
            row = cur.fetchone()
        if row is None and order_id and venue is not None:
            cur = self._db.execute(
                "SELECT * FROM orders WHERE venue = ? AND order_id = ? ORDER BY created_ns DESC LIMIT 1",
                (venue, order_id),
            )
            row = cur.fetchone()
        if row is None or cur is None:
            return None
        cols = [c[0] for c in cur.description]
        booked = self._db.execute(  # by the ledger's index on the client order id
            "SELECT trade_id, kind, size, price FROM ledger "
            "WHERE client_order_id = ? AND kind IN ('fill', 'reversal') ORDER BY seq",
            (row[cols.index("client_order_id")],),
        ).fetchall()
        return self._restored(dict(zip(cols, row, strict=True)), booked)

    @staticmethod
    def _restored(r: dict[str, Any], booked: list[tuple[str, str, str, str]]) -> RestoredOrder:
        """An `orders` row and the fills booked to it (trade id, kind, size, price in booking
        order), less those voided since; the voided ones' trade ids are kept apart (`voided`)."""
        fills: list[tuple[str, Decimal, Decimal]] = []
        voided: set[str] = set()
        for trade_id, kind, size, price in booked:  # one order's: a trade id names its fill
            if kind == "reversal":
                if trade_id:  # a reversal names its trade (`Order.unrecord_fill`)
                    voided.add(trade_id)
            else:
                fills.append((trade_id or "", Decimal(size), Decimal(price)))
        return RestoredOrder(
            request=_CONV.structure(orjson.loads(r["request"]), OrderRequest),
            order_id=r["order_id"],
            state=OrderState(r["state"]),
            price=_d(r["price"]),
            size=Decimal(r["size"]),
            filled_size=Decimal(r["filled_size"]),
            avg_fill_price=_d(r["avg_fill_price"]),
            reason=r["reason"],
            created_ns=r["created_ns"],
            updated_ns=r["updated_ns"],
            fills=tuple(f for f in fills if f[0] not in voided),
            voided=frozenset(voided),
        )

    def ledger(self) -> Iterator[LedgerEntry]:
        """Fills, voided fills and settlements in the order they were booked."""
        with self._reading():
            cur = self._db.execute(
                "SELECT kind, ts_ns, strategy, venue, instrument, client_order_id, order_id, trade_id, side, "
                "price, size, fee, fee_currency, liquidity, reason, rate_quote, rate_settle, rate_fee, "
                "ts_exchange FROM ledger ORDER BY seq"
            )
        while True:
            with self._reading():
                batch = cur.fetchmany(1024)
            if not batch:
                return
            for row in batch:
                (kind, ts, strategy, venue, instrument, cid, oid, trade_id, side, price, size, fee, fee_ccy,
                 liquidity, reason, rq, rs, rf, ts_exchange) = row  # fmt: skip
                event: Fill | FillReversal | None = None
                if kind in ("fill", "reversal"):
                    # What a fill and its reversal share; each adds its own last field.
                    trade: dict[str, Any] = {
                        "venue": venue,
                        "instrument": instrument,
                        "ts_exchange": ts_exchange,
                        "ts_local": ts,
                        "order_id": oid,
                        "client_order_id": cid,
                        "strategy": strategy,
                        "trade_id": trade_id or "",
                        "side": Side(side),
                        "price": Decimal(price),
                        "size": Decimal(size),
                        "fee": Decimal(fee),
                        "fee_currency": fee_ccy,
                    }
                    if kind == "fill":
                        event = Fill(**trade, liquidity=Liquidity(liquidity))
                    else:
                        event = FillReversal(**trade, reason=reason or "")
                yield LedgerEntry(kind, strategy, venue, instrument, event, Decimal(price), (rq, rs, rf), ts)

    def contests(self) -> list[dict[str, Any]]:
        """The notes of contested venue ids, oldest first: each contest as it started
        (`venue_id_contested`: venue, order_id, claimants), each fill left unbooked on one
        (`fill_not_booked`: venue, order_id, trade_id, contested), each reversal of a trade applied
        to no order (`fill_reversal_not_applied`: the same), and each a person settled
        (`venue_id_contest_settled`: venue, order_id; README, "Venue order ids"). A restart
        rebuilds the contests not settled from them (`OrderFlow.restore`)."""
        with self._reading():
            rows = self._db.execute(_CONTESTS_QUERY).fetchall()
        return [{"kind": kind, **orjson.loads(data)} for kind, data in rows]

    def events(self, client_order_id: str | None = None) -> list[dict[str, Any]]:
        """The audit trail (of one order, or all), oldest first."""
        if client_order_id is None:
            rows = self._db.execute("SELECT ts_ns, kind, client_order_id, data FROM events ORDER BY seq")
        else:
            rows = self._db.execute(
                "SELECT ts_ns, kind, client_order_id, data FROM events "
                "WHERE client_order_id = ? ORDER BY seq",
                (client_order_id,),
            )
        return [
            {"ts_ns": ts, "kind": kind, "client_order_id": cid, **orjson.loads(data)}
            for ts, kind, cid, data in rows
        ]
