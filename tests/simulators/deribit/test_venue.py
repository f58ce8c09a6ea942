"""The simulator as a venue, driven in process (its `on_text`, as a WebSocket frame arrives):
matching in price-time priority between two clients, client orders in the public book, empty
sides written 0 / 0, a new listing's first change from `prev_change_id: 0`, the 32 KiB frame
limit, and order answers that outrun or trail the user channel."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from tests.support.sim_clock import fixed_clock
from tradingd.simulators.deribit.simulator import DeribitSimulator
from tradingd.simulators.matching import Side

PERP = "BTC-PERPETUAL"
ACCOUNTS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}
_ids = itertools.count(1)


class Client:
    """One WebSocket client of the simulator, in process."""

    def __init__(self, sim: DeribitSimulator, name: str | None = None) -> None:
        self.sim = sim
        send, self.inbox = trio.open_memory_channel[bytes](100_000)
        self.backlog: list[dict[str, Any]] = []  # frames an `rpc` read past (notifications)
        self.session = sim.new_peer(next(_ids), send, "/ws/api/v2")
        sim.sessions[self.session.id] = self.session
        if name is not None:
            self.rpc(
                "public/auth",
                {"grant_type": "client_credentials", "client_id": name, "client_secret": ACCOUNTS[name]},
            )

    def send_text(self, text: str) -> list[dict[str, Any]]:
        trio.run(self.sim.on_text, self.session, text)
        return self.drain()

    def rpc(self, method: str, params: dict[str, Any]) -> Any:
        rid = next(_ids)
        frames = self.send_text(
            orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).decode()
        )
        (answer,) = [f for f in frames if f.get("id") == rid]
        self.backlog += [f for f in frames if f is not answer]
        assert "error" not in answer, answer
        return answer["result"]

    def drain(self) -> list[dict[str, Any]]:
        out, self.backlog = self.backlog, []
        while True:
            try:
                out.append(orjson.loads(self.inbox.receive_nowait()))
            except trio.WouldBlock:
                return out


def venue(**options: Any) -> DeribitSimulator:
    return DeribitSimulator(seed=5, accounts=ACCOUNTS, clock=fixed_clock(), **options)


def inside_spread(sim: DeribitSimulator) -> tuple[Decimal, Decimal]:
    """A price strictly inside the perpetual's spread (stepping the market until it has one)."""
    for _ in range(2000):
        top = sim.top(PERP)
        assert top is not None
        bid, _, ask, _ = top
        if ask - bid > Decimal("1"):
            return bid + Decimal("0.5"), ask
        sim.step()
    raise AssertionError("the spread never opened")


def test_two_clients_at_one_price_fill_in_time_order_and_show_in_the_public_book() -> None:
    sim = venue()
    alice, bob, carol = Client(sim, "alice"), Client(sim, "bob"), Client(sim, "carol")
    watcher = Client(sim)
    price, _ = inside_spread(sim)
    watcher.rpc("public/subscribe", {"channels": [f"book.{PERP}.100ms", f"trades.{PERP}.100ms"]})
    snapshot = watcher.drain()[-1]["params"]["data"]
    change_id = snapshot["change_id"]
    first = alice.rpc(
        "private/sell", {"instrument_name": PERP, "amount": 30, "type": "limit", "price": float(price)}
    )
    second = bob.rpc(
        "private/sell", {"instrument_name": PERP, "amount": 20, "type": "limit", "price": float(price)}
    )
    assert first["order"]["order_state"] == second["order"]["order_state"] == "open"
    # Both show in the public book: one level of 50 at the new best ask, chained from the snapshot.
    changes = [f["params"]["data"] for f in watcher.drain() if f["params"]["channel"].startswith("book.")]
    assert [c["prev_change_id"] for c in changes] == [change_id, change_id + 1]
    assert changes[0]["asks"] == [["new", float(price), 30.0]]
    assert changes[1]["asks"] == [["change", float(price), 50.0]]
    assert sim.top(PERP)[2:] == (price, Decimal(50))  # type: ignore[index]

    # Carol buys 40 at that price: Alice's 30 first (earlier), then 10 of Bob's.
    bought = carol.rpc(
        "private/buy", {"instrument_name": PERP, "amount": 40, "type": "limit", "price": float(price)}
    )
    assert bought["order"]["order_state"] == "filled"
    assert [(t["amount"], t["liquidity"], t["price"]) for t in bought["trades"]] == [
        (30.0, "T", float(price)),
        (10.0, "T", float(price)),
    ]
    orders = {o.label or o.account.client_id: o for o in sim.orders.values()}
    assert orders["alice"].state == "filled" and orders["bob"].state == "open"
    assert orders["bob"].filled == 10
    positions = {a: sim.accounts[a].positions.get(PERP) for a in ACCOUNTS}
    assert positions == {"alice": Decimal(-30), "bob": Decimal(-10), "carol": Decimal(40)}
    # The makers pay no fee on a perpetual, the taker 0.05% of the coins of each execution.
    assert sim.accounts["alice"].balances["BTC"] == Decimal(10)
    fees = [(Decimal("0.0005") * n / price).quantize(Decimal("1e-8")) for n in (30, 10)]  # charged in 1e-8
    assert sim.accounts["carol"].balances["BTC"] == Decimal(10) - fees[0] - fees[1]
    assert [t["fee"] for t in bought["trades"]] == [float(f) for f in fees]
    # Each side was told: the makers' user trades are maker ("M") trades with the taker's ids.
    [alice_trade] = sim.accounts["alice"].trades
    assert alice_trade["liquidity"] == "M" and alice_trade["trade_id"] == bought["trades"][0]["trade_id"]
    # The public tape printed both executions, the aggressor's side, in the venue's trade_seq.
    prints = [
        t
        for f in watcher.drain()
        if f["params"]["channel"].startswith("trades.")
        for t in f["params"]["data"]
    ]
    assert [(t["amount"], t["direction"]) for t in prints] == [(30.0, "buy"), (10.0, "buy")]
    assert prints[1]["trade_seq"] == prints[0]["trade_seq"] + 1


def test_a_resting_order_fills_when_the_tape_prints_through_it() -> None:
    sim = venue()
    alice = Client(sim, "alice")
    alice.rpc("private/subscribe", {"channels": ["user.orders.any.any.raw", "user.trades.any.any.raw"]})
    price, _ = inside_spread(sim)
    alice.rpc("private/buy", {"instrument_name": PERP, "amount": 10, "type": "limit", "price": float(price)})
    alice.drain()
    for _ in range(5000):
        sim.step()
        if sim.accounts["alice"].trades:
            break
    [trade] = sim.accounts["alice"].trades
    assert trade["liquidity"] == "M" and trade["price"] == float(price)
    pushed = [f["params"]["channel"] for f in alice.drain()]
    assert "user.trades.any.any.raw" in pushed and "user.orders.any.any.raw" in pushed


def test_self_trading_is_prevented_unless_the_account_allows_it() -> None:
    sim = venue()
    alice = Client(sim, "alice")
    price, _ = inside_spread(sim)
    alice.rpc("private/sell", {"instrument_name": PERP, "amount": 10, "type": "limit", "price": float(price)})
    frames = alice.send_text(
        orjson.dumps(
            {"jsonrpc": "2.0", "id": 7, "method": "private/buy",
             "params": {"instrument_name": PERP, "amount": 10, "type": "limit", "price": float(price)}}
        ).decode()
    )  # fmt: skip
    (answer,) = [f for f in frames if f.get("id") == 7]
    assert answer["error"] == {"code": 10003, "message": "order_overlap", "data": None}
    assert (
        alice.rpc(
            "private/set_self_trading_config", {"mode": "cancel_maker", "extended_to_subaccounts": False}
        )
        == "ok"
    )
    bought = alice.rpc(
        "private/buy", {"instrument_name": PERP, "amount": 10, "type": "limit", "price": float(price)}
    )
    assert bought["trades"] == [] and bought["order"]["order_state"] == "open"  # own ask cancelled, bid rests
    (cancelled,) = [o for o in sim.orders.values() if o.direction == "sell"]
    assert cancelled.state == "cancelled"


def test_an_empty_side_is_written_zero_zero_in_ticker_and_quote() -> None:
    sim = venue()
    option = next(name for name, lst in sim.listings.items() if lst.is_option)
    watcher = Client(sim)
    watcher.rpc("public/subscribe", {"channels": [f"ticker.{option}.100ms", f"quote.{option}"]})
    sim.apply_faults({"no_quotes": {"instrument": option, "side": "buy"}})
    quotes = [f["params"]["data"] for f in watcher.drain() if f["params"]["channel"].startswith("quote.")]
    assert quotes and (quotes[-1]["best_bid_price"], quotes[-1]["best_bid_amount"]) == (0.0, 0.0)
    for _ in range(200):
        sim.step()
        tickers = [
            f["params"]["data"] for f in watcher.drain() if f["params"]["channel"].startswith("ticker.")
        ]
        if tickers:
            break
    t = tickers[-1]
    assert (t["best_bid_price"], t["best_bid_amount"], t["bid_iv"]) == (0.0, 0.0, 0.0)
    assert t["best_ask_amount"] > 0
    sim.apply_faults({"no_quotes": {"instrument": option, "side": None}})
    for _ in range(200):
        sim.step()
        if sim.top(option)[1] > 0:  # type: ignore[index]
            break
    assert sim.top(option)[1] > 0  # type: ignore[index]


def test_a_new_listing_starts_with_a_change_from_zero_and_chains_on() -> None:
    sim = venue()
    sim.apply_faults({"listing": PERP})
    watcher = Client(sim)
    watcher.rpc("public/subscribe", {"channels": [f"book.{PERP}.100ms"]})
    [first] = [f["params"]["data"] for f in watcher.drain() if "params" in f]
    assert first["type"] == "change" and first["prev_change_id"] == 0 and first["bids"] and first["asks"]
    assert all(level[0] == "new" for level in first["bids"] + first["asks"])
    for _ in range(100):
        sim.step()
        changes = [f["params"]["data"] for f in watcher.drain()]
        if changes:
            break
    assert changes[0]["prev_change_id"] == first["change_id"]
    # Only the next subscription sees it: the switch is used up.
    again = Client(sim)
    again.rpc("public/subscribe", {"channels": [f"book.{PERP}.100ms"]})
    assert again.drain()[-1]["params"]["data"]["type"] == "snapshot"


def test_a_frame_over_32_kib_is_refused_without_an_id_and_the_session_goes_on() -> None:
    sim = venue()
    client = Client(sim)
    channels = [f"ticker.{PERP}.100ms"] + [
        f"book.BTC-27NOV26-{k}-C.none.10.100ms" for k in range(10_000, 12_000)
    ]
    text = orjson.dumps(
        {"jsonrpc": "2.0", "id": 9, "method": "public/subscribe", "params": {"channels": channels}}
    )
    assert len(text) > 32 * 1024
    (refusal,) = client.send_text(text.decode())
    assert "id" not in refusal
    assert refusal["error"] == {"code": -32600, "message": "request entity too large", "data": None}
    assert client.rpc("public/subscribe", {"channels": channels[:100]}) == [f"ticker.{PERP}.100ms"]


def _order_frames(sim: DeribitSimulator, alice: Client) -> list[str]:
    text = orjson.dumps(
        {"jsonrpc": "2.0", "id": 11, "method": "private/buy",
         "params": {"instrument_name": PERP, "amount": 10, "type": "market", "label": "x"}}
    ).decode()  # fmt: skip
    return ["answer" if f.get("id") == 11 else f["params"]["channel"] for f in alice.send_text(text)]


def test_order_answers_trail_or_outrun_the_user_channel_on_request() -> None:
    sim = venue()
    alice = Client(sim, "alice")
    alice.rpc("private/subscribe", {"channels": ["user.orders.any.any.raw", "user.trades.any.any.raw"]})
    alice.drain()
    assert _order_frames(sim, alice) == ["user.trades.any.any.raw", "user.orders.any.any.raw", "answer"]
    sim.apply_faults({"order_answer": "answer_first"})
    assert _order_frames(sim, alice) == ["answer", "user.trades.any.any.raw", "user.orders.any.any.raw"]


# -- wire shapes: the simulator's frames against the real captures ---------------------------------
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "deribit"


def capture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def kind_of(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    return type(v).__name__


def same_shape(ours: dict[str, Any], real: dict[str, Any], *, extra: frozenset[str] = frozenset()) -> None:
    """The same keys (ours may add `extra`, documented elsewhere) with values of the same JSON
    types where the capture has a value (a capture's null says nothing of the type)."""
    assert set(real) <= set(ours), sorted(set(real) - set(ours))
    assert set(ours) - set(real) <= extra, sorted(set(ours) - set(real) - extra)
    for key, value in real.items():
        if value is not None and ours[key] is not None:
            assert kind_of(ours[key]) == kind_of(value), (key, ours[key], value)
            if isinstance(value, dict) and key != "data":
                same_shape(ours[key], value)


def notifications(frames: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [
        f for f in frames if f.get("method") == "subscription" and f["params"]["channel"].startswith(prefix)
    ]


def test_public_frames_have_the_shapes_of_the_real_captures() -> None:
    sim = venue()
    option = next(name for name, lst in sim.listings.items() if lst.is_option and lst.base == "BTC")
    client = Client(sim)
    answer = client.send_text(
        orjson.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "public/subscribe", "params": {"channels": [
                f"ticker.{PERP}.100ms", f"ticker.{option}.100ms", f"book.{PERP}.100ms",
                f"book.{PERP}.none.10.100ms", f"trades.{PERP}.100ms", f"quote.{PERP}",
                "deribit_price_index.btc_usd",
            ]}}
        ).decode()
    )  # fmt: skip
    same_shape(answer[0], capture("ws_subscribe_response.json"))
    frames = answer[1:]
    for _ in range(3000):
        sim.step()
        frames += client.drain()
        if all(
            notifications(frames, p)
            for p in (f"ticker.{PERP}", f"ticker.{option}", "trades.", "quote.", "deribit_")
        ):
            break
    for f in frames:
        assert set(f) == {"jsonrpc", "method", "params"} and set(f["params"]) == {"channel", "data"}
    same_shape(
        notifications(frames, f"ticker.{PERP}")[-1]["params"]["data"],
        capture("ws_ticker.json")["params"]["data"],
    )
    real_option = capture("ws_ticker_option_empty_bid_2026.json")["params"]["data"]
    # The 2026 capture's greeks have no rho, its stats no volume_usd: VENUES.md's option sample has both.
    ours_option = notifications(frames, f"ticker.{option}")[-1]["params"]["data"]
    same_shape({**ours_option, "greeks": {}, "stats": {}}, {**real_option, "greeks": {}, "stats": {}})
    assert set(real_option["greeks"]) < set(ours_option["greeks"]) and set(real_option["stats"]) < set(
        ours_option["stats"]
    )
    books = [f["params"]["data"] for f in notifications(frames, f"book.{PERP}.100ms")]
    # ws_book_snapshot.json writes "prev_change_id": null; Deribit's docs: absent from a snapshot (§1.6).
    real_snapshot = {
        k: v for k, v in capture("ws_book_snapshot.json")["params"]["data"].items() if k != "prev_change_id"
    }
    same_shape(books[0], real_snapshot)
    same_shape(books[1], capture("ws_book_delta.json")["params"]["data"])
    for data in books:
        for level in data["bids"] + data["asks"]:
            assert [kind_of(x) for x in level] == ["str", "number", "number"] and level[0] in (
                "new",
                "change",
                "delete",
            )
    grouped = notifications(frames, f"book.{PERP}.none")[-1]["params"]["data"]
    same_shape(grouped, capture("ws_book_grouped_snapshot.json")["params"]["data"])
    assert len(grouped["bids"]) <= 10 and all(len(level) == 2 for level in grouped["bids"] + grouped["asks"])
    real_trade = capture("ws_trades.json")["params"]["data"][1]  # the first carries a combo's id
    same_shape(notifications(frames, "trades.")[-1]["params"]["data"][0], real_trade)
    same_shape(
        notifications(frames, "quote.")[-1]["params"]["data"], capture("ws_quote.json")["params"]["data"]
    )
    index = notifications(frames, "deribit_price_index.")[-1]["params"]["data"]
    same_shape(
        index, {"timestamp": 1535098298227, "price": 6521.17, "index_name": "btc_usd"}
    )  # §1.2's sample


def test_private_frames_have_the_shapes_of_the_real_captures() -> None:
    sim = venue()
    alice = Client(sim, "alice")
    alice.rpc(
        "private/subscribe",
        {"channels": ["user.orders.any.any.raw", "user.trades.any.any.raw", "user.portfolio.any"]},
    )
    price, _ = inside_spread(sim)
    placed = alice.rpc(
        "private/buy", {"instrument_name": PERP, "amount": 10, "type": "limit", "price": float(price)}
    )
    # VENUES.md §1.7's official order sample has `max_show` and `is_rebalance`; the 2026 capture not.
    official = frozenset({"max_show", "is_rebalance"})
    same_shape(placed["order"], capture("ws_order_buy_response.json")["result"]["order"], extra=official)
    cancelled = alice.rpc("private/cancel", {"order_id": placed["order"]["order_id"]})
    same_shape(cancelled, capture("ws_order_cancel_response.json")["result"], extra=official)
    _, ask = inside_spread(sim)  # an IOC limit at the ask, as the capture's order
    bought = alice.rpc(
        "private/buy",
        {"instrument_name": PERP, "amount": 10, "price": float(ask), "time_in_force": "immediate_or_cancel"},
    )
    frames = alice.drain()
    (filled,) = [
        f["params"]["data"]
        for f in notifications(frames, "user.orders.")
        if f["params"]["data"]["order_state"] == "filled"
    ]
    # The 2025 capture predates `reject_post_only` (the 2026 order answers above have it).
    real_filled = capture("ws_user_orders_filled.json")["params"]["data"]
    same_shape(filled, real_filled, extra=official | {"reject_post_only"})
    # VENUES.md §1.6's official user trade sample; ours add the order's label and the contracts.
    user_trade = {
        "trade_seq": 30289432, "trade_id": "48079254", "timestamp": 1590484156350, "tick_direction": 0,
        "state": "filled", "reduce_only": False, "price": 8954, "post_only": False, "order_type": "market",
        "order_id": "4008965646", "matching_id": None, "mark_price": 8952.86, "liquidity": "T",
        "instrument_name": "BTC-PERPETUAL", "index_price": 8956.73, "fee_currency": "BTC", "fee": 0.00000168,
        "direction": "sell", "amount": 20,
    }  # fmt: skip
    same_shape(bought["trades"][0], user_trade, extra=frozenset({"label", "contracts"}))
    same_shape(
        notifications(frames, "user.trades.")[-1]["params"]["data"][0],
        user_trade,
        extra=frozenset({"label", "contracts"}),
    )
    portfolio = notifications(frames, "user.portfolio.")[-1]["params"]["data"]
    same_shape(portfolio, capture("ws_portfolio.json")["params"]["data"])
    refused = alice.send_text(
        '{"jsonrpc":"2.0","id":5,"method":"private/cancel","params":{"order_id":"nope"}}'
    )
    same_shape(refused[0], {**capture("ws_error.json"), "usIn": 1, "usOut": 2, "usDiff": 1, "testnet": False})


@pytest.mark.parametrize(
    "params",
    [
        {"instrument_name": PERP, "amount": "ten", "type": "limit", "price": 1},
        {"instrument_name": PERP, "amount": 10, "type": "limit", "price": float("nan")},
        {"instrument_name": PERP, "amount": 10, "type": "limit", "price": 1e308},
        {"instrument_name": PERP, "amount": 1e-30, "type": "limit", "price": 90000},
        {"instrument_name": PERP, "amount": True, "type": "market"},
        {"instrument_name": ["x"], "amount": 10},
        {"instrument_name": PERP, "amount": 10, "time_in_force": {"a": 1}},
        {"instrument_name": PERP, "contracts": -3},
    ],
)
def test_a_hostile_order_is_answered_with_the_venues_error_and_the_venue_goes_on(
    params: dict[str, Any],
) -> None:
    sim = venue()
    alice = Client(sim, "alice")
    frames = alice.send_text(
        orjson.dumps({"jsonrpc": "2.0", "id": 3, "method": "private/buy", "params": params}).decode()
    )
    (answer,) = [f for f in frames if f.get("id") == 3]
    assert answer["error"]["code"] in (10020, 10021, 10023, 10027, 10043, -32602)
    assert "class" not in str(answer["error"]) and "decimal" not in str(answer["error"])  # no Python
    assert not sim.orders
    assert alice.rpc("public/test", {}) == {"version": "1.2.26"}


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"jsonrpc": "2.0", "id": 1, "method": 5}',
        '{"jsonrpc": "2.0", "id": 1, "method": "public/subscribe", "params": {"channels": "book"}}',
        '{"jsonrpc": "2.0", "id": 1, "method": "public/subscribe", "params": {"channels": [1, null, "b."]}}',
        orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "public/get_order_book",
                "params": {"instrument_name": PERP, "depth": -1},
            }
        ).decode(),
        orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "private/get_user_trades_by_currency_and_time",
                "params": {"count": "x"},
            }
        ).decode(),
    ],
)
def test_a_hostile_frame_never_ends_the_venue(text: str) -> None:
    sim = venue()
    client = Client(sim, "alice")
    frames = client.send_text(text)
    assert len(frames) == 1 and ("error" in frames[0] or frames[0]["result"] == [])
    assert client.rpc("public/test", {}) == {"version": "1.2.26"}


def test_a_buy_above_the_price_band_is_clamped_to_max_price() -> None:
    sim = venue()
    alice = Client(sim, "alice")
    for _ in range(100):
        if PERP in sim.tickers:
            break
        sim.step()
    _, ask = inside_spread(sim)
    band = sim.tickers[PERP]["max_price"]
    assert band < ask * 2
    bought = alice.rpc(
        "private/buy", {"instrument_name": PERP, "amount": 10, "type": "limit", "price": float(ask * 2)}
    )
    assert bought["order"]["price"] == band and bought["order"]["order_state"] == "filled"


def test_trades_by_kind_and_currency_and_grouped_books_by_group() -> None:
    sim = venue()
    client = Client(sim)
    eth_perp = "ETH-PERPETUAL"
    granted = client.rpc(
        "public/subscribe",
        {
            "channels": [
                "trades.future.BTC.100ms",
                f"book.{PERP}.10.1.100ms",
                f"book.{eth_perp}.25.20.agg2",
                f"book.{PERP}.3.10.100ms",  # BTC has no group 3
                "trades.swap.BTC.100ms",  # no such kind
            ]
        },
    )
    assert granted == ["trades.future.BTC.100ms", f"book.{PERP}.10.1.100ms", f"book.{eth_perp}.25.20.agg2"]
    frames = client.drain()
    for _ in range(400):
        sim.step()
        frames += client.drain()
    traded = {t["instrument_name"] for f in notifications(frames, "trades.") for t in f["params"]["data"]}
    assert traded == {PERP}  # BTC futures only: no ETH, no options
    btc = [f["params"]["data"] for f in notifications(frames, f"book.{PERP}.10.1.")]
    eth = [f["params"]["data"] for f in notifications(frames, f"book.{eth_perp}.25.20.")]
    assert btc and eth
    for data in btc:  # depth 1, prices on multiples of 10 (bids down, asks up)
        assert len(data["bids"]) <= 1 and len(data["asks"]) <= 1
        assert all(Decimal(repr(p)) % 10 == 0 for p, _ in data["bids"] + data["asks"])
    top = sim.top(PERP)
    assert top is not None
    assert btc[-1]["bids"][0][0] == float((top[0] / 10).to_integral_value(rounding="ROUND_FLOOR") * 10)
    for data in eth:  # ETH's groups are hundredths: 25 is 0.25
        assert all(Decimal(repr(p)) % Decimal("0.25") == 0 for p, _ in data["bids"] + data["asks"])
        assert len(data["bids"]) <= 20


def test_user_changes_and_positions_follow_a_fill() -> None:
    sim = venue()
    alice = Client(sim, "alice")
    alice.rpc(
        "private/subscribe", {"channels": [f"user.changes.{PERP}.100ms", "user.changes.option.any.raw"]}
    )
    alice.rpc("private/buy", {"instrument_name": PERP, "amount": 20, "type": "market"})
    changes = [f["params"] for f in alice.drain() if f.get("method") == "subscription"]
    assert {c["channel"] for c in changes} == {f"user.changes.{PERP}.100ms"}  # not the options' channel
    trades = [t for c in changes for t in c["data"]["trades"]]
    orders = [o for c in changes for o in c["data"]["orders"]]
    positions = [p for c in changes for p in c["data"]["positions"]]
    assert sum(t["amount"] for t in trades) == 20 and orders[-1]["order_state"] == "filled"
    assert positions[-1]["size"] == 20.0 and positions[-1]["direction"] == "buy"
    assert alice.rpc("private/get_positions", {"currency": "BTC"})[0]["size"] == 20.0


def test_a_book_rebuilt_from_the_frames_is_the_venues_book_through_client_orders_and_fills() -> None:
    """Snapshot + changes, applied as any client applies them, give the simulator's own book
    after every step, while clients place, take, and cancel (the cheap path of books no client
    order rests in, and the full one of books they do)."""
    import random

    sim = venue(matching_rate=1e6, matching_burst=1e6)
    alice, bob = Client(sim, "alice"), Client(sim, "bob")
    watcher = Client(sim)
    names = [PERP, "ETH-PERPETUAL", next(n for n, lst in sim.listings.items() if lst.is_option)]
    watcher.rpc("public/subscribe", {"channels": [f"book.{n}.100ms" for n in names]})
    rebuilt: dict[str, dict[str, dict[float, float]]] = {}
    chain: dict[str, int] = {}

    def apply(frames: list[dict[str, Any]]) -> None:
        for f in frames:
            data = f["params"]["data"]
            name = data["instrument_name"]
            if data["type"] == "snapshot":
                rebuilt[name] = {"bids": {}, "asks": {}}
            else:
                assert data["prev_change_id"] == chain[name]
            chain[name] = data["change_id"]
            for key in ("bids", "asks"):
                for action, price, amount in data[key]:
                    if action == "delete":
                        rebuilt[name][key].pop(price, None)
                    else:
                        rebuilt[name][key][price] = amount

    rng = random.Random(4)
    apply(watcher.drain())
    for step in range(600):
        sim.step()
        if step % 7 == 0:
            client = rng.choice((alice, bob))
            name = rng.choice(names[:2])
            top = sim.top(name)
            assert top is not None
            tick = sim.listings[name].tick_size
            side = rng.choice(("buy", "sell"))
            near = top[0] if side == "buy" else top[2]
            price = near + rng.randint(-3, 3) * tick
            if price > 0:
                client.rpc(
                    f"private/{side}",
                    {"instrument_name": name, "amount": 10 * rng.randint(1, 30), "price": float(price)},
                )
        if step % 50 == 49:
            for client in (alice, bob):
                client.rpc("private/cancel_all", {})
        apply(watcher.drain())
        for name in names:
            book = sim.books[name]
            want_bids = {float(p): float(a) for p, a in book.levels(Side.BUY)}
            want_asks = {float(p): float(a) for p, a in book.levels(Side.SELL)}
            assert rebuilt[name] == {"bids": want_bids, "asks": want_asks}, (step, name)
            assert book.best(published=True) == book.best()
    assert any(o.state == "filled" for o in sim.orders.values())  # clients did trade


def refusal(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    frames = client.send_text(
        orjson.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).decode()
    )
    (answer,) = [f for f in frames if f.get("id") == 7]
    assert "error" in answer, answer
    error: dict[str, Any] = answer["error"]
    return error


def test_a_label_over_64_characters_is_refused_as_invalid_params() -> None:
    sim = venue()
    alice = Client(sim, "alice")
    bid, _ = inside_spread(sim)
    order = {"instrument_name": PERP, "amount": 10, "type": "limit", "price": float(bid - 100)}
    error = refusal(alice, "private/buy", {**order, "label": "x" * 65})
    assert error["code"] == -32602 and error["data"]["param"] == "label"
    error = refusal(alice, "private/buy", {**order, "label": 7})
    assert error["code"] == -32602 and error["data"]["param"] == "label"
    assert not sim.orders
    placed = alice.rpc("private/buy", {**order, "label": "x" * 64})
    assert placed["order"]["label"] == "x" * 64


def test_an_amount_too_large_to_divide_is_invalid_amount_without_python_in_it() -> None:
    sim = venue()
    alice = Client(sim, "alice")
    error = refusal(alice, "private/buy", {"instrument_name": PERP, "amount": 1e308, "type": "market"})
    assert error == {"code": 10021, "message": "invalid_amount", "data": {"param": "amount"}}


def test_an_order_the_balance_cannot_cover_is_not_enough_funds() -> None:
    sim = venue()
    alice = Client(sim, "alice")
    inside_spread(sim)
    # 1e20 USD of the perpetual: 2% initial margin is far beyond 10 BTC.
    error = refusal(alice, "private/buy", {"instrument_name": PERP, "amount": 1e20, "type": "market"})
    assert error["code"] == 10009 and error["message"] == "not_enough_funds"
    # An option's premium beyond the balance, and a short option's margin likewise.
    option = next(
        name for name, listing in sim.listings.items() if listing.is_option and listing.settle == "BTC"
    )
    big = {"instrument_name": option, "amount": 100_000, "type": "limit", "price": 0.5}
    assert refusal(alice, "private/buy", big)["code"] == 10009
    assert refusal(alice, "private/sell", big)["code"] == 10009
    assert not sim.orders and sim.accounts["alice"].balances["BTC"] == 10
    # What the balance covers still trades: 1000 USD of the perpetual.
    done = alice.rpc("private/buy", {"instrument_name": PERP, "amount": 1000, "type": "market"})
    assert done["order"]["order_state"] == "filled"


def test_user_trades_are_recent_for_24_hours_and_historical_once_indexed() -> None:
    """Deribit's docs (accessing historical trades and orders): without `historical` a user-trades
    method answers the trades of the last 24 hours; with `historical: true` every trade, once
    indexed (a short delay). The simulator answers so on each of its user-trades methods; a
    `historical` that is no boolean is refused naming it. Before, every trade was answered
    whatever was asked, so a client that never asked `historical` looked right."""
    sim = venue()
    alice = Client(sim, "alice")
    _, ask = inside_spread(sim)
    alice.rpc("private/buy", {"instrument_name": PERP, "amount": 10, "type": "limit", "price": float(ask)})
    trades = sim.accounts["alice"].trades
    assert trades
    now = sim.clock() // 1_000_000
    hour = 3_600_000
    ages = {"old": 72 * hour, "a day": 24 * hour + 1, "recent": 23 * hour, "now": 1_000}
    trades[:] = [{**trades[0], "trade_id": name, "timestamp": now - age} for name, age in ages.items()]
    by_time = {
        "currency": "BTC",
        "start_timestamp": 0,
        "end_timestamp": now + 1_000,
        "count": 100,
        "sorting": "asc",
    }
    methods = [
        ("private/get_user_trades_by_currency_and_time", by_time),
        ("private/get_user_trades_by_currency", {"currency": "BTC", "count": 100, "sorting": "asc"}),
        ("private/get_user_trades_by_instrument", {"instrument_name": PERP, "count": 100, "sorting": "asc"}),
    ]
    for method, params in methods:
        for historical, seen in ((None, ["recent", "now"]), (False, ["recent", "now"]),
                                 (True, ["old", "a day", "recent"])):  # fmt: skip
            asked = params if historical is None else {**params, "historical": historical}
            assert [t["trade_id"] for t in alice.rpc(method, asked)["trades"]] == seen, (method, historical)
        frames = alice.send_text(
            orjson.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "historical": "yes"}}
            ).decode()
        )
        (answer,) = [f for f in frames if f.get("id") == 1]
        assert answer["error"]["code"] == -32602 and answer["error"]["data"]["param"] == "historical"
