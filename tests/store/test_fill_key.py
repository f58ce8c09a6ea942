"""One trade, two fills of ours: a fill is unique by its trade AND our order in it, in the journal
(schema 2, migrated in place from schema 1), the tracker and the decoders' memories.

A Polymarket taker crossing two of our resting maker orders is one trade listing both in
`maker_orders[]` (VENUES.md §2.2; `tests/runtime/test_fill_key_live.py` has it end to end against the
simulator); on Deribit, our own buy and sell crossing (self-trading is an account setting there,
`private/set_self_trading_config`) give both our orders a user trade under the one `trade_id`.
Derive refuses an order that would cross our own (§3.7 error 11007 "self-cross"), so its decoder
is tested on a frame of the captured shape: it keys our trades by (trade, order) all the same.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support import simulated_venue as simvenue
from tests.support.flows import fill, make_flow
from tests.support.helpers import OPTION, PERP, request
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.connectors.derive.codec import DeriveDecoder
from tradingd.engine import Fill, FillReversal, Liquidity, MarketEvent, OrderState, OrderUpdate, Side
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.runtime import OrderFlow
from tradingd.engine.store.journal import JournalError, OrderJournal

S = 1_000_000_000
FIXTURES = Path(__file__).parent.parent / "fixtures"

# Schema 1 exactly as abc0571's engine/_journal.py wrote it (user_version 1).
V1_SCHEMA = """
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
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('fill', 'reversal', 'settle')),
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
    UNIQUE (kind, venue, trade_id)
);
CREATE INDEX IF NOT EXISTS ledger_order ON ledger (client_order_id);
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
_V1_LEDGER = (
    "INSERT INTO ledger (seq, kind, ts_ns, strategy, venue, instrument, client_order_id, order_id, trade_id, "
    "side, price, size, fee, fee_currency, liquidity, reason, rate_quote, rate_settle, rate_fee) "
    "VALUES (?, ?, ?, 's', 'deribit', ?, ?, ?, ?, ?, ?, ?, ?, 'BTC', ?, ?, ?, ?, ?)"
)
_V1_ORDER = (
    "INSERT INTO orders (client_order_id, venue, instrument, strategy, request, order_id, state, price, "
    "size, filled_size, avg_fill_price, reason, created_ns, updated_ns, final) "
    "VALUES (?, 'deribit', ?, 's', ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)"
)


def _request_json(cid: str, side: str, size: str, price: str, instrument: str) -> str:
    return orjson.dumps(
        {
            "venue": "deribit",
            "instrument": instrument,
            "side": side,
            "size": size,
            "price": price,
            "type": "limit",
            "time_in_force": "gtc",
            "post_only": False,
            "reduce_only": False,
            "client_order_id": cid,
            "strategy": "s",
            "expire_at_ns": None,
        }
    ).decode()


def v1_journal(path: Path, version: int = 1) -> None:
    """A schema-1 journal as abc0571 left it: two orders, their fills (the rates they were booked
    at), a voided fill, a settlement; seq numbers with a hole (10, 11, 13, 14, 15) and the
    AUTOINCREMENT sequence past them (20), the audit trail and the meta rows. `version` 0: as
    abc0571 left it when it died between writing its tables and its version."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(V1_SCHEMA)
    db.execute(f"PRAGMA user_version={version}")
    perp, opt = PERP.symbol, OPTION.symbol
    db.execute(_V1_ORDER, ("s-1", perp, _request_json("s-1", "buy", "30", "90000", perp), "V1",
                           "partially_filled", "90000", "30", "10", "90000", 1 * S, 6 * S, 0))  # fmt: skip
    db.execute(_V1_ORDER, ("s-2", opt, _request_json("s-2", "buy", "1", "0.05", opt), "V2",
                           "filled", "0.05", "1", "1", "0.05", 2 * S, 5 * S, 1))  # fmt: skip
    rows = [
        (10, "fill", 3 * S, perp, "s-1", "V1", "T1", "buy", "90000", "10", "0.0001", "maker", None,
         0.0, 90000.5, 90000.5),
        (11, "fill", 4 * S, opt, "s-2", "V2", "T2", "buy", "0.05", "1", "0.0003", "maker", None,
         90123.25, 90123.25, 90123.25),
        (13, "fill", 5 * S, perp, "s-1", "V1", "T3", "buy", "90100", "10", "0.0001", "maker", None,
         0.0, 90011.75, 90011.75),
        (14, "reversal", 6 * S, perp, "s-1", "V1", "T3", "buy", "90100", "10", "0.0001", None,
         "settlement failed", 0.0, 90011.75, 90011.75),
        (15, "settle", 7 * S, opt, None, None, None, None, "0.0", None, None, None, None,
         90200.0, 90200.0, 90200.0),
    ]  # fmt: skip
    for row in rows:
        db.execute(_V1_LEDGER, row)
    db.execute("UPDATE sqlite_sequence SET seq = 20 WHERE name = 'ledger'")
    db.execute("INSERT INTO events (ts_ns, kind, client_order_id, data) VALUES (1, 'request', 's-1', '{}')")
    db.execute("INSERT INTO meta (key, value) VALUES ('risk_day', '[\"2026-12-06\", {}]')")
    db.close()


def ledger_rows(path: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT * FROM ledger ORDER BY seq").fetchall()
    finally:
        db.close()


def schema_of(path: Path) -> tuple[int, list[tuple[Any, ...]]]:
    db = sqlite3.connect(path)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        return version, db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        db.close()


# -- the journal's schema 2 and its migration ----------------------------------------------------


@pytest.mark.parametrize("version", [1, 0])
def test_a_schema_1_journal_is_migrated_in_place_keeping_rows_order_and_rates(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "journal.sqlite"
    v1_journal(path, version)
    before = ledger_rows(path)
    journal = OrderJournal(path)
    version, tables = schema_of(path)
    assert version == 2
    # Every row, column for column: seq, kinds, rates; and the venue's time, a column schema 1
    # had not, unknown (NULL).
    assert [row[:-1] for row in ledger_rows(path)] == before
    assert {row[-1] for row in ledger_rows(path)} == {None}
    ddl = {name: sql for _, name, sql in tables}
    assert "ledger_v2" not in ddl and "UNIQUE (kind, venue, trade_id)" not in ddl["ledger"]
    assert "'funding'" in ddl["ledger"] and "ledger_key" in ddl and "ledger_order" in ddl
    # Positions rebuilt from the migrated ledger, in its order, at the rates it kept.
    entries = list(journal.ledger())
    assert [(e.kind, e.rates) for e in entries] == [
        ("fill", (0.0, 90000.5, 90000.5)),
        ("fill", (90123.25, 90123.25, 90123.25)),
        ("fill", (0.0, 90011.75, 90011.75)),
        ("reversal", (0.0, 90011.75, 90011.75)),
        ("settle", (90200.0, 90200.0, 90200.0)),
    ]
    restored = make_flow(None)
    assert restored.restore(journal, now_ns=8 * S) == {"orders": 2, "live": 1, "ledger": 5}
    order = restored.tracker.get("s-1")
    assert order is not None and order.fills_size == 10 and order.state is OrderState.PARTIALLY_FILLED
    assert restored.position("s", "deribit", PERP.symbol) == 10
    assert journal.meta("risk_day") == ["2026-12-06", {}]
    assert [e["kind"] for e in journal.events("s-1")] == ["request"]
    # The next row is numbered after the old sequence, not after the last row kept.
    restored.journal = journal
    second = restored.accept(request(size="1", price="0.05", cid="s-3"), now_ns=9 * S)
    restored.assign_order_id(second, "V3")
    restored.on_fill(_fill("T2", "1", "0.05", oid="V3", inst=OPTION.symbol))  # T2: s-2's trade too
    rows = ledger_rows(path)
    assert [r[0] for r in rows] == [10, 11, 13, 14, 15, 21]
    assert rows[-1][6:9] == ("s-3", "V3", "T2")  # another order's fill of trade T2: booked
    journal.close()


def test_a_migration_keeps_a_copy_of_the_schema_1_journal_and_says_so(tmp_path: Path) -> None:
    """An older tradingd refuses schema 2: going back needs the file as it was, kept beside it
    (owner-only, like the journal) and named, so the daemon can log where it is."""
    path = tmp_path / "journal.sqlite"
    v1_journal(path, 1)
    before = ledger_rows(path)
    journal = OrderJournal(path)
    assert journal.migrated == (1, tmp_path / "journal.sqlite.schema1")
    copy = tmp_path / "journal.sqlite.schema1"
    assert schema_of(copy)[0] == 1 and ledger_rows(copy) == before
    assert copy.stat().st_mode & 0o777 == 0o600
    journal.close()
    assert OrderJournal(path).migrated is None  # once only


def test_a_journal_at_schema_2_opens_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    flow = make_flow(journal)
    for cid, oid in (("s-1", "V1"), ("s-2", "V2")):
        order = flow.accept(request(size="1", price="0.05", cid=cid), now_ns=1 * S)
        flow.assign_order_id(order, oid)
        flow.on_fill(_fill("T1", "1", "0.05", oid=oid, inst=OPTION.symbol))
    journal.close()
    schema, rows = schema_of(path), ledger_rows(path)
    assert schema[0] == 2 and len(rows) == 2
    OrderJournal(path).close()
    assert (schema_of(path), ledger_rows(path)) == (schema, rows)


def test_a_schema_2_journal_written_before_the_venues_time_was_kept_opens_and_books(
    tmp_path: Path,
) -> None:
    """Schema 2 as first written (on main before its ledger had `ts_exchange`): opened, the
    column is added, the ledger restores, and the next fill is journaled."""
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    flow = make_flow(journal)
    order = flow.accept(request(size="1", price="0.05", cid="s-1"), now_ns=1 * S)
    flow.assign_order_id(order, "V1")
    flow.on_fill(_fill("T1", "1", "0.05", oid="V1", inst=OPTION.symbol))
    journal.close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE ledger DROP COLUMN ts_exchange")
    db.commit()
    db.close()
    journal = OrderJournal(path)
    restored = make_flow(None)
    assert restored.restore(journal, now_ns=2 * S)["ledger"] == 1
    assert journal.last_booked_ns("deribit") is not None
    second = restored.accept(request(size="1", price="0.05", cid="s-2"), now_ns=3 * S)
    restored.assign_order_id(second, "V2")
    assert restored.on_fill(_fill("T2", "1", "0.05", oid="V2", inst=OPTION.symbol)) is not None
    assert len(ledger_rows(path)) == 2
    journal.close()


def test_a_journal_of_a_later_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=3")
    db.close()
    with pytest.raises(JournalError, match="has schema 3, this tradingd reads 2"):
        OrderJournal(path)


def test_one_row_per_trade_and_order_and_one_per_funding_id(tmp_path: Path) -> None:
    """The key (kind, venue, trade_id, client_order_id) with NULLs: fills of one trade by two
    orders are two rows, the same fill again is none; settlements (no trade id) are never
    repeats; a funding row (no order of ours) is unique by its trade id."""
    journal = OrderJournal(tmp_path / "journal.sqlite")
    db = journal._db
    insert = (
        "INSERT INTO ledger (kind, ts_ns, strategy, venue, instrument, client_order_id, trade_id, price) "
        "VALUES (?, 1, 's', 'deribit', 'BTC-PERPETUAL', ?, ?, '1')"
    )
    rows = [
        ("fill", "a", "T"),
        ("fill", "b", "T"),
        ("reversal", "a", "T"),
        ("settle", None, None),
        ("settle", None, None),
        ("funding", None, "F1"),
    ]
    for kind, cid, tid in rows:
        db.execute(insert, (kind, cid, tid))
    for kind, cid, tid in [("fill", "a", "T"), ("funding", None, "F1")]:
        with pytest.raises(sqlite3.IntegrityError):
            db.execute(insert, (kind, cid, tid))
    assert db.execute("SELECT count(*) FROM ledger").fetchone() == (6,)
    journal.close()


# -- one trade, two orders of ours: booked twice, once each ---------------------------------------


def _fill(trade_id: str, size: str, price: str, *, oid: str, inst: str = PERP.symbol) -> Fill:
    """Our buy's fill, as a taker."""
    return fill(trade_id, size, price, oid=oid, inst=inst, liquidity=Liquidity.TAKER)


def _fills(events: Sequence[MarketEvent]) -> list[Fill]:
    """A decoder's events, each checked to be a fill."""
    fills = [e for e in events if isinstance(e, Fill)]
    assert len(fills) == len(events), events
    return fills


def _self_cross(*, trade_id: str = "48079254") -> bytes:
    """Our buy (maker, label s-1) and our sell (taker, label s-2) matched with each other: one
    Deribit trade, one `user.trades` record per order of ours under its one `trade_id`, in the
    shape of the official sample (VENUES.md §1.6 "User trade sample")."""
    common = {"trade_seq": 30289432, "trade_id": trade_id, "timestamp": 1590484156350, "tick_direction": 0,
              "state": "filled", "reduce_only": False, "price": 8954, "post_only": False, "matching_id": None,
              "mark_price": 8952.86, "instrument_name": "BTC-PERPETUAL", "index_price": 8956.73,
              "fee_currency": "BTC", "amount": 20}  # fmt: skip
    records = [
        {**common, "order_id": "4008965645", "label": "s-1", "order_type": "limit", "liquidity": "M",
         "direction": "buy", "fee": 0.0},
        {**common, "order_id": "4008965646", "label": "s-2", "order_type": "market", "liquidity": "T",
         "direction": "sell", "fee": 0.00000168},
    ]  # fmt: skip
    params = {"channel": "user.trades.any.any.raw", "data": records}
    return orjson.dumps({"jsonrpc": "2.0", "method": "subscription", "params": params})


def _our_two_orders(flow: OrderFlow) -> None:
    buy = flow.accept(request("buy", "20", "8954", instrument=PERP.symbol, cid="s-1"), now_ns=1 * S)
    flow.assign_order_id(buy, "4008965645")
    sell = flow.accept(request("sell", "20", None, instrument=PERP.symbol, cid="s-2"), now_ns=2 * S)
    flow.assign_order_id(sell, "4008965646")


def test_a_deribit_self_cross_books_both_our_fills_once_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    flow = make_flow(journal)
    _our_two_orders(flow)
    decoder = DeribitDecoder(flow.registry)
    fills = _fills(decoder.decode(_self_cross(), 5 * S))
    assert [(f.client_order_id, f.trade_id, f.side) for f in fills] == [
        ("s-1", "48079254", Side.BUY),
        ("s-2", "48079254", Side.SELL),
    ]
    booked = [flow.on_fill(f) for f in fills]
    assert all(b is not None for b in booked)
    ledger = flow.ledgers["s"]
    assert ledger.fills == 2 and flow.position("s", "deribit", PERP.symbol) == 0  # bought 20, sold 20
    orders = (flow.tracker.get("s-1"), flow.tracker.get("s-2"))
    assert [None if o is None else o.state for o in orders] == [OrderState.FILLED] * 2
    assert [(r[1], r[6], r[8]) for r in ledger_rows(path)] == [
        ("fill", "s-1", "48079254"),
        ("fill", "s-2", "48079254"),
    ]
    fees = ledger.fees_usd
    assert fees > 0  # the taker's fee is in, as well as the maker's (none)
    # The same records again (a reconnect's catch-up) are repeats, each for its own order.
    assert [flow.on_fill(f) for f in _fills(decoder.decode(_self_cross(), 6 * S))] == [None, None]
    journal.close()
    # A restart: both fills rebuilt from the journal; the venue reporting them again books none.
    again = OrderJournal(path)
    restored = make_flow(None)
    assert restored.restore(again, now_ns=10 * S)["ledger"] == 2
    assert restored.ledgers["s"].fills == 2 and restored.ledgers["s"].fees_usd == fees
    assert [
        restored.on_fill(f) for f in _fills(DeribitDecoder(restored.registry).decode(_self_cross(), 11 * S))
    ] == [
        None,
        None,
    ]
    assert len(ledger_rows(path)) == 2 and restored.ledgers["s"].fills == 2
    again.close()


def test_a_reversal_voids_the_fill_of_the_order_it_names_only(tmp_path: Path) -> None:
    """Two orders of ours filled by one trade; the venue voids one order's fill (it names the
    trade and the order): that order's fill goes, the other's stays, and both reversals of the
    trade are journaled when both are voided."""
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    flow = make_flow(journal)
    for cid, oid in (("s-1", "V1"), ("s-2", "V2")):
        order = flow.accept(request(size="1", price="0.05", cid=cid), now_ns=1 * S)
        flow.assign_order_id(order, oid)
        assert flow.on_fill(_fill("T1", "1", "0.05", oid=oid, inst=OPTION.symbol)) is not None
    assert flow.position("s", "deribit", OPTION.symbol) == 2

    def reversal(oid: str) -> FillReversal:
        return FillReversal(
            venue="deribit",
            instrument=OPTION.symbol,
            ts_exchange=None,
            ts_local=7 * S,
            order_id=oid,
            trade_id="T1",
            side=Side.BUY,
            price=Decimal("0.05"),
            size=Decimal("1"),
            fee=Decimal("0.0001"),
            fee_currency="BTC",
            reason="trade failed on chain",
        )

    voided = flow.on_reversal(reversal("V2"))
    assert voided is not None and voided.client_order_id == "s-2"
    one, two = flow.tracker.get("s-1"), flow.tracker.get("s-2")
    assert one is not None and two is not None
    assert (one.fills_size, two.fills_size) == (Decimal(1), Decimal(0))
    assert one.has_fill("T1") and not two.has_fill("T1")
    assert flow.position("s", "deribit", OPTION.symbol) == 1
    assert flow.on_reversal(reversal("V2")) is None  # voided already
    assert flow.on_reversal(reversal("V1")) is not None  # the other order's fill of that trade
    assert flow.position("s", "deribit", OPTION.symbol) == 0
    journal.close()
    again = OrderJournal(path)
    restored = make_flow(None)
    restored.restore(again, now_ns=10 * S)
    assert [(r[1], r[6]) for r in ledger_rows(path)] == [
        ("fill", "s-1"),
        ("fill", "s-2"),
        ("reversal", "s-2"),
        ("reversal", "s-1"),
    ]
    assert restored.position("s", "deribit", OPTION.symbol) == 0
    for cid in ("s-1", "s-2"):
        kept = restored.tracker.get(cid)
        assert kept is not None and kept.fills_size == 0 and not kept.has_fill("T1")
    again.close()


# -- Derive: our trades remembered by (trade, order) ------------------------------------------------


def _derive_trades(*records: dict[str, Any]) -> bytes:
    return orjson.dumps({"method": "subscription", "params": {"channel": "42.trades", "data": list(records)}})


def test_derive_reports_each_order_of_one_trade_once() -> None:
    captured = orjson.loads((FIXTURES / "derive" / "perps" / "http_private_trade_eth.json").read_bytes())
    maker = {**captured, "order_id": "order-abc", "label": "s-1", "direction": "buy"}  # maker, as captured
    taker = {
        **captured,
        "order_id": "order-def",
        "label": "s-2",
        "direction": "sell",
        "liquidity_role": "taker",
    }
    d = DeriveDecoder(InstrumentRegistry())
    fills = _fills(d.decode(_derive_trades(maker, taker), 1))
    assert [(f.order_id, f.trade_id, f.side) for f in fills] == [
        ("order-abc", "trade-xyz", Side.BUY),
        ("order-def", "trade-xyz", Side.SELL),
    ]
    # Either record again (an order's answer, the `.settled` variant) is a repeat.
    assert d.decode(_derive_trades(taker), 2) == [] and d.decode(_derive_trades(maker), 3) == []
    assert d.repeated_fills == 2
    # Reverted: each order's fill is reversed, once.
    reverted = [d.decode(_derive_trades({**r, "tx_status": "reverted"}), 4) for r in (maker, taker, maker)]
    assert [
        [(type(e).__name__, e.order_id if isinstance(e, FillReversal) else None) for e in events]
        for events in reverted
    ] == [
        [("FillReversal", "order-abc")],
        [("FillReversal", "order-def")],
        [],
    ]


# -- the simulated venue's self-trading (what the Deribit simulator's `self_trading` uses) ---------


def test_a_simulated_self_trade_is_one_trade_id_for_both_orders_and_only_when_allowed() -> None:
    for allowed in (False, True):
        sim, _ = simvenue.make()  # bids 0.048 / 0.047, asks 0.050 / 0.051
        bid = simvenue.order("s-1", side="buy", size="1", price="0.049")  # inside the spread: the best bid
        assert [type(e).__name__ for e in sim.submit(bid, 1)] == ["OrderUpdate"]
        ask = simvenue.order("s-2", side="sell", size="1.5", price="0.048")
        events = sim.submit(ask, 2, own=(lambda o: True) if allowed else None)
        got = [
            (e.client_order_id, e.price, e.size, e.liquidity, e.trade_id)
            for e in events
            if isinstance(e, Fill)
        ]
        if not allowed:  # as before: our orders never meet; the sell takes the market's bid
            assert [g[:4] for g in got] == [("s-2", Decimal("0.048"), Decimal("1.5"), Liquidity.TAKER)]
            continue
        # The sell meets our bid first (the best price), at its price: one trade, both our orders
        # in it; the rest takes the market's bid.
        assert [g[:4] for g in got] == [
            ("s-1", Decimal("0.049"), Decimal("1"), Liquidity.MAKER),
            ("s-2", Decimal("0.049"), Decimal("1"), Liquidity.TAKER),
            ("s-2", Decimal("0.048"), Decimal("0.5"), Liquidity.TAKER),
        ]
        assert got[0][4] == got[1][4] != got[2][4]
        assert not sim.has_orders(OPTION.symbol)  # our bid filled
        # A post-only order that would meet our own resting order is refused, as one that would
        # take from the market.
        sim.submit(simvenue.order("s-3", side="buy", size="1", price="0.049"), 3)
        refused = sim.submit(
            simvenue.order("s-4", side="sell", size="1", price="0.049", post_only=True), 4, own=lambda o: True
        )
        assert [
            (e.status, e.reason) if isinstance(e, OrderUpdate) else e
            for e in refused
            if not isinstance(e, Fill)
        ] == [(OrderState.REJECTED, "post_only_reject")]
