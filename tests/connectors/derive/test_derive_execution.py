"""Derive execution: what the client signs and sends for each kind of order, how venue errors are
typed, how the simulator verifies an order as the venue does (VENUES.md §3.5-§3.7), and what
reconciliation reads back from the venue: one order's state, our fills since a time (every
page), and the cancel of an order that is not ours (§3.6)."""

from __future__ import annotations

import functools
import itertools
import math
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import orjson
import pytest
import structlog
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.canned_execution import Routed, _derive
from tests.support.catch_up import Tracked, booked, catch_up, tracking
from tradingd.connectors.derive import PLUGIN
from tradingd.connectors.derive.codec import DeriveDecoder, OrderData, TradeData, order_update_from
from tradingd.connectors.derive.execution import DeriveExecution, _oldest_first
from tradingd.connectors.derive.instruments import parse_instrument
from tradingd.connectors.derive.settings import DeriveSettings
from tradingd.connectors.derive.signing import (
    TESTNET,
    Credentials,
    NonceSource,
    OrderSigner,
    login_digest,
    login_signature,
    recover_signer,
    typed_data_hash,
)
from tradingd.connectors.derive.stream import DeriveSession, map_error
from tradingd.engine import (
    AuthError,
    ConfigError,
    Fill,
    FillReversal,
    Liquidity,
    OrderRejected,
    OrderRequest,
    OrderState,
    OrderUpdate,
    RateLimited,
    Status,
    VenueError,
    VenueRejected,
    VenueUnavailable,
)
from tradingd.engine.model import InstrumentRegistry, Order
from tradingd.engine.runtime.router import MarketRouter
from tradingd.simulators.derive import SIMULATOR
from tradingd.simulators.derive.account_methods import page_of
from tradingd.simulators.derive.simulator import (
    DEMO_SESSION_KEY,
    DEMO_SUBACCOUNT,
    DEMO_WALLET,
    DeriveSimulator,
    RpcError,
    serve,
)
from tradingd.simulators.matching import Side

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "derive"
SIGNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # DEMO_SESSION_KEY's address
NOW_NS = 1_800_000_000_000_000_000
ENV = {
    "DERIVE_WALLET": DEMO_WALLET,
    "DERIVE_SESSION_KEY": DEMO_SESSION_KEY,
    "DERIVE_SUBACCOUNT_ID": str(DEMO_SUBACCOUNT),
}


def load(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


class _Sink:
    async def market(self, events: list[Any]) -> None:
        return None

    def private(self, events: list[Any]) -> None:
        return None


def make_session(**settings: Any) -> DeriveSession:
    creds = Credentials(DEMO_WALLET, DEMO_SESSION_KEY, DEMO_SUBACCOUNT)
    session = DeriveSession(
        DeriveSettings(**settings),
        registry=InstrumentRegistry(),
        router=MarketRouter(),
        sink=_Sink(),
        credentials=creds,
        clock=lambda: NOW_NS,
    )
    session.decoder.learn_instruments(load("common/http_get_instruments_eth_all.json")["result"])
    return session


def order(instrument: str = "ETH-PERP", **kw: Any) -> Order:
    fields: dict[str, Any] = {"side": "buy", "size": Decimal("1.5"), "price": Decimal("3500.5")}
    fields.update(kw)
    request = OrderRequest(
        venue="derive", instrument=instrument, client_order_id="s-abc-1", strategy="s", **fields
    )
    return Order(request, now_ns=NOW_NS)


# -------------------------------------------------------------------------- errors (§3.7)


@pytest.mark.parametrize(
    ("code", "method", "kind"),
    [
        (-32000, "private/order", RateLimited),
        (11000, "private/order", VenueRejected),  # insufficient funds
        (11017, "private/order", VenueRejected),  # nonce not unique
        (14014, "private/order", VenueRejected),  # an order refused for its signature: refused
        (14014, "public/login", AuthError),
        (14026, "private/get_open_orders", AuthError),
        (9000, "private/order", VenueError),  # order confirmation timeout: outcome unknown
        (-32603, "private/order", VenueError),
    ],
)
def test_errors_are_typed_by_code_and_method(code: int, method: str, kind: type[Exception]) -> None:
    exc = map_error({"code": code, "message": "m", "data": "d"}, method=method)
    assert type(exc) is kind
    assert exc.code == code and exc.venue_message == "m" and str(exc).endswith(": d")


# ----------------------------------------------------------------------- what is signed


def test_a_limit_order_is_signed_as_the_venue_recomputes_it() -> None:
    execution = DeriveExecution(make_session())
    execution.session.index_prices["ETH"] = 3400.0
    signed = execution.sign(order())
    params = signed.params()
    assert params["instrument_name"] == "ETH-PERP" and params["direction"] == "buy"
    assert (params["amount"], params["limit_price"], params["label"]) == ("1.5", "3500.5", "s-abc-1")
    assert (params["order_type"], params["time_in_force"], params["subaccount_id"]) == ("limit", "gtc", 30769)
    assert params["signer"] == SIGNER
    assert params["signature_expiry_sec"] == NOW_NS // 10**9 + 3600
    assert str(params["nonce"]).startswith(str(NOW_NS // 10**6))
    # The signature recovers to the session key over the EIP-712 digest of the testnet domain.
    assert typed_data_hash(TESTNET.domain_separator, signed.action_hash) == signed.typed_data_hash
    assert recover_signer(signed.typed_data_hash, params["signature"]) == SIGNER
    # max_fee: the taker fee the schedule expects per unit at the index, twice (the margin).
    inst = execution.registry.require("derive", "ETH-PERP")
    fee, _ = execution.fees.fee(inst, Decimal("3500.5"), Decimal("1.5"), Liquidity.TAKER, 3400.0)
    assert Decimal(params["max_fee"]) >= fee * 2 / Decimal("1.5")
    assert Decimal(params["max_fee"]) - fee * 2 / Decimal("1.5") < Decimal("0.000001")


def test_time_in_force_post_only_gtd_and_reduce_only() -> None:
    execution = DeriveExecution(make_session())
    assert execution.sign(order(time_in_force="ioc")).params()["time_in_force"] == "ioc"
    assert execution.sign(order(time_in_force="fok")).params()["time_in_force"] == "fok"
    assert execution.sign(order(post_only=True)).params()["time_in_force"] == "post_only"
    assert execution.sign(order(reduce_only=True)).params()["reduce_only"] is True
    with pytest.raises(OrderRejected, match="post-only cannot be combined"):
        execution.sign(order(post_only=True, time_in_force="ioc"))
    # A GTD order lives until its signature expires (§3.6): that is its expiry.
    in_two_hours = NOW_NS + 7200 * 10**9
    gtd = execution.sign(order(time_in_force="gtd", expire_at_ns=in_two_hours)).params()
    assert (gtd["time_in_force"], gtd["signature_expiry_sec"]) == ("gtc", in_two_hours // 10**9)
    with pytest.raises(OrderRejected, match="at least 330 s ahead"):
        execution.sign(order(time_in_force="gtd", expire_at_ns=NOW_NS + 60 * 10**9))


def test_a_market_order_signs_a_worst_price_beyond_the_book() -> None:
    session = make_session(market_slippage=Decimal("0.05"))
    execution = DeriveExecution(session)
    with pytest.raises(OrderRejected, match="needs a reference price"):
        execution.sign(order(price=None))
    session.mark_prices["ETH-PERP"] = 3000.0  # no book yet: the mark stands in
    buy = execution.sign(order(price=None)).params()
    assert (buy["order_type"], buy["time_in_force"]) == ("market", "ioc")
    assert Decimal(buy["limit_price"]) == 3150  # 5% beyond the mark
    book = {"timestamp": 1, "instrument_name": "ETH-PERP", "publish_id": 1, "bids": [["3000.01", "2"]],
            "asks": [["3001.99", "1"]]}  # fmt: skip
    frame = orjson.dumps(
        {"method": "subscription", "params": {"channel": "orderbook.ETH-PERP.1.10", "data": book}}
    )
    session.decoder.decode(frame, 0)
    buy = execution.sign(order(price=None)).params()
    sell = execution.sign(order(price=None, side="sell", time_in_force="fok")).params()
    assert Decimal(buy["limit_price"]) == Decimal("3152.09")  # 3001.99 x 1.05, rounded up to 0.01
    assert Decimal(sell["limit_price"]) == Decimal("2850.00")  # 3000.01 x 0.95, rounded down
    assert sell["time_in_force"] == "fok"


def test_orders_the_venue_would_refuse_are_refused_before_signing() -> None:
    execution = DeriveExecution(make_session())
    with pytest.raises(OrderRejected, match="not a multiple of the tick size"):
        execution.sign(order(price=Decimal("3500.001")))
    with pytest.raises(OrderRejected, match="no instrument|unknown"):
        execution.sign(order("BTC-PERP"))
    nobody = DeriveSession(
        DeriveSettings(), registry=InstrumentRegistry(), router=MarketRouter(), sink=_Sink()
    )
    with pytest.raises(OrderRejected, match="no Derive credentials"):
        DeriveExecution(nobody).signer  # noqa: B018


async def test_edit_is_refused_with_the_reason() -> None:
    execution = DeriveExecution(make_session())
    with pytest.raises(OrderRejected, match="Derive has no amend"):
        await execution.edit(order(), price=Decimal(3400), size=None)


def test_the_execution_is_one_per_session_so_nonces_never_repeat() -> None:
    session = make_session()
    assert session.execution() is session.execution()
    nonces = {session.execution().sign(order()).nonce for _ in range(200)}
    assert len(nonces) == 200  # the clock stands still here: strictly increasing all the same


# ----------------------------------------------------------------- answers and reports


def test_fills_are_reported_once_whichever_path_brings_them() -> None:
    decoder = DeriveDecoder(InstrumentRegistry())
    trade = {**load("perps/http_private_trade_eth.json"), "tx_status": "requested"}
    answer = {**load("spot/http_submit_order_response.json")["result"], "trades": [trade]}
    first = decoder.order_result(orjson.dumps(answer), 1)
    assert [type(e) for e in first] == [Fill, OrderUpdate]
    channel = {"method": "subscription", "params": {"channel": "42.trades", "data": [trade]}}
    assert decoder.decode(orjson.dumps(channel), 2) == []  # the same trade from the channel
    settled = {**trade, "tx_status": "settled"}
    channel["params"]["data"] = [settled]  # type: ignore[index]
    assert decoder.decode(orjson.dumps(channel), 3) == []
    assert decoder.repeated_fills == 2
    reverted = {**trade, "tx_status": "reverted"}
    channel["params"] = {"channel": "42.trades.reverted", "data": [reverted]}
    (reversal,) = decoder.decode(orjson.dumps(channel), 4)
    assert isinstance(reversal, FillReversal)
    assert (reversal.trade_id, reversal.size, reversal.price, reversal.fee) == (
        "trade-xyz",
        Decimal("0.5"),
        Decimal("3499.0"),
        Decimal("0.02"),
    )
    channel["params"] = {"channel": "42.trades", "data": [reverted]}
    assert decoder.decode(orjson.dumps(channel), 5) == []  # the same reversal again
    # A reverted trade we never reported as a fill changes nothing: a status says so.
    other = {**reverted, "trade_id": "never-seen"}
    channel["params"] = {"channel": "42.trades", "data": [other]}
    (status,) = decoder.decode(orjson.dumps(channel), 6)
    assert isinstance(status, Status) and status.data["trade_id"] == "never-seen"


# What each `tx_status` of one of our trades is (connectors/derive/codec.py `_TX_FILL`, with its
# sources): a fill, a trade the chain reverted, or neither said (never booked nor taken back).
_OUTCOMES = {
    "requested": "fill",
    "pending": "fill",
    "settled": "fill",
    "reverted": "reverted",
    "ignored": "unknown",
    "timed_out": "unknown",
    "finalised": "unknown",  # a value Derive does not document
    None: "unknown",  # said nothing
}


@pytest.mark.parametrize(("tx_status", "outcome"), list(_OUTCOMES.items()))
def test_a_trade_is_a_fill_only_when_its_tx_status_says_it_happened(
    tx_status: str | None, outcome: str
) -> None:
    """Our trade on the private channel, first as news, then after its fill was reported (as
    `requested`, the answer of its order): a fill for a status saying the trade happened, a
    reversal of the reported fill for `reverted`; for one saying neither (`timed_out`, ...) a
    status and an alert each time, never a fill nor a reversal, and a later word is applied."""
    trade = {**load("perps/http_private_trade_eth.json"), "tx_status": tx_status}
    if tx_status is None:
        del trade["tx_status"]

    def channel(decoder: DeriveDecoder, data: dict[str, Any], ts: int) -> list[Any]:
        frame = {"method": "subscription", "params": {"channel": "42.trades", "data": [data]}}
        return decoder.decode(orjson.dumps(frame), ts)

    fresh = DeriveDecoder(InstrumentRegistry())
    with structlog.testing.capture_logs() as logs:
        (news,) = channel(fresh, trade, 1)
    alerts = [e for e in logs if e["event"] == "fill.tx_status_unknown"]
    if outcome == "fill":
        assert isinstance(news, Fill) and news.trade_id == "trade-xyz" and not alerts
    else:
        assert isinstance(news, Status) and news.data["tx_status"] == tx_status
        assert news.data["trade_id"] == "trade-xyz" and news.data["order_id"] == "order-abc"
    if outcome == "unknown":
        assert "neither that it settled nor that it reverted" in news.message
        (alert,) = alerts
        assert (alert["log_level"], alert["venue"], alert["trade_id"], alert["tx_status"]) == (
            "critical",
            "derive",
            "trade-xyz",
            tx_status,
        )
        assert fresh.unknown_tx_status == 1
        # Not booked: the venue's later word that it settled is the fill.
        (fill,) = channel(fresh, {**trade, "tx_status": "settled"}, 2)
        assert isinstance(fill, Fill) and fill.trade_id == "trade-xyz"
    # After its fill was reported.
    reported = DeriveDecoder(InstrumentRegistry())
    (fill,) = channel(reported, {**trade, "tx_status": "requested"}, 1)
    assert isinstance(fill, Fill)
    with structlog.testing.capture_logs() as logs:
        later = channel(reported, trade, 2)
    if outcome == "fill":
        assert later == [] and reported.repeated_fills == 1  # the same fill again
    elif outcome == "reverted":
        (reversal,) = later
        assert isinstance(reversal, FillReversal) and reversal.trade_id == "trade-xyz"
    else:
        (status,) = later  # nothing taken back: the venue did not say the trade did not happen
        assert isinstance(status, Status) and status.data["tx_status"] == tx_status
        (alert,) = [e for e in logs if e["event"] == "fill.tx_status_unknown"]
        assert alert["fill_reported"] is True
        (reversal,) = channel(reported, {**trade, "tx_status": "reverted"}, 3)  # a later word
        assert isinstance(reversal, FillReversal)


def test_a_malformed_answer_leaves_the_fill_memory_unchanged() -> None:
    decoder = DeriveDecoder(InstrumentRegistry())
    trade = load("perps/http_private_trade_eth.json")
    bad = {**trade, "trade_id": "t-bad", "trade_amount": "NaN"}
    channel = {"method": "subscription", "params": {"channel": "42.trades", "data": [trade, bad]}}
    with pytest.raises(Exception, match="not a finite number"):
        decoder.decode(orjson.dumps(channel), 1)
    channel["params"]["data"] = [trade]  # type: ignore[index]
    (fill,) = decoder.decode(orjson.dumps(channel), 2)  # still new: nothing was remembered
    assert isinstance(fill, Fill) and decoder.repeated_fills == 0


# ------------------------------------------------ the simulator verifies as the venue does


# One nonce source for every order these tests sign, as a session has one: a fresh source per
# order drew `<ms><0-999>` anew, and two orders signed in the same millisecond shared a nonce
# one time in a thousand (the simulator rightly refused the second: 11017, a flaky test).
_NONCES = NonceSource()


def sign_for(simulator: DeriveSimulator, **terms: Any) -> dict[str, Any]:
    """A `private/order` for the simulator's ETH-PERP, signed by the demo session key now."""
    signer = OrderSigner(
        Credentials(DEMO_WALLET, DEMO_SESSION_KEY, DEMO_SUBACCOUNT),
        TESTNET,
        clock_s=time.time,
        nonces=_NONCES,
    )
    fields: dict[str, Any] = {
        "direction": "buy",
        "amount": Decimal("0.1"),
        "limit_price": Decimal(1000),
        "max_fee": Decimal(5),
        "label": "t-1",
    }
    fields.update(terms)
    # The connector's reading of the simulator's own instrument item (what a live session learns).
    item = next(i for i in simulator.instrument_items if i["instrument_name"] == "ETH-PERP")
    return signer.sign_order(parse_instrument(item)[1], **fields).params()


def params_for(simulator: DeriveSimulator, **changes: Any) -> dict[str, Any]:
    """`sign_for`'s order, then `changes` made to what is sent (after signing)."""
    return {**sign_for(simulator), **changes}


async def test_the_simulator_accepts_a_well_signed_order_and_refuses_tampering() -> None:
    simulator = DeriveSimulator(seed=3)
    account = simulator.accounts[DEMO_WALLET.lower()]

    def call(params: dict[str, Any], method: str = "private/order") -> Any:
        return simulator.call(method, params, peer=None, account=account, after=[])

    good = params_for(simulator)
    answer = call(good)
    assert answer["order"]["order_status"] == "open" and answer["order"]["label"] == "t-1"
    assert answer["order"]["signer"] == SIGNER and answer["trades"] == []
    with pytest.raises(RpcError) as info:
        call(good)  # the same nonce again
    assert info.value.code == 11017
    cases: list[tuple[dict[str, Any], int]] = [
        ({"limit_price": "1001"}, 14014),  # a term changed after signing
        ({"amount": "0.2"}, 14014),
        ({"subaccount_id": 30770}, 14001),  # not this wallet's subaccount
        ({"signature": "0x" + "00" * 65}, 14014),
        ({"signature_expiry_sec": int(time.time()) + 60}, 11011),
        ({"nonce": 1_000_000_000_000_000}, 11018),  # a date in 2001
        ({"instrument_name": "ETH-NOPE"}, 12001),
        ({"limit_price": "1000.001"}, 11013),
        ({"amount": "0.001"}, 11012),
    ]
    for change, code in cases:
        with pytest.raises(RpcError) as info:
            call(params_for(simulator, **change))
        assert info.value.code == code, change
    tampered = params_for(simulator)
    sig = tampered["signature"]
    tampered["signature"] = sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:]
    with pytest.raises(RpcError) as info:
        call(tampered)
    assert info.value.code == 14014
    # Signed by a key the wallet never registered, then by one that has expired.
    simulator.accounts[DEMO_WALLET.lower()].session_keys.clear()
    with pytest.raises(RpcError) as info:
        call(params_for(simulator))
    assert info.value.code == 14026
    simulator.register_session_key(DEMO_WALLET, SIGNER, expiry_s=int(time.time()) - 1)
    with pytest.raises(RpcError) as info:
        call(params_for(simulator))
    assert info.value.code == 14030


async def test_the_simulator_refuses_a_max_fee_below_its_estimate() -> None:
    simulator = DeriveSimulator(seed=3)
    account = simulator.accounts[DEMO_WALLET.lower()]
    params = sign_for(simulator, max_fee=Decimal("0.01"))  # signed, but below the estimate
    with pytest.raises(RpcError) as info:
        simulator.call("private/order", params, peer=None, account=account, after=[])
    assert info.value.code == -32602 and "signed_max_fee_too_low" in str(info.value.data)
    assert simulator.orders == {}


async def test_order_debug_answers_the_hashes_our_signer_made() -> None:
    simulator = DeriveSimulator(seed=3)
    params = params_for(simulator)
    session = make_session()
    session.decoder.learn_instruments(
        [next(i for i in simulator.instrument_items if i["instrument_name"] == "ETH-PERP")]
    )
    debug = simulator.call(
        "public/order_debug", {**params, "wallet": DEMO_WALLET}, peer=None, account=None, after=[]
    )
    digest = bytes.fromhex(debug["typed_data_hash"][2:])
    assert recover_signer(digest, params["signature"]) == SIGNER
    assert len(bytes.fromhex(debug["encoded_data"][2:])) == 7 * 32


async def test_login_is_checked_by_recovering_the_session_key() -> None:
    simulator = DeriveSimulator(seed=3)
    ts = time.time_ns() // 1_000_000
    creds = Credentials(DEMO_WALLET, DEMO_SESSION_KEY, DEMO_SUBACCOUNT)
    good = {"wallet": DEMO_WALLET, "timestamp": str(ts), "signature": login_signature(creds.key, ts)}
    assert simulator.call("public/login", good, peer=None, account=None, after=[]) == [DEMO_SUBACCOUNT]
    assert recover_signer(login_digest(str(ts)), good["signature"]) == SIGNER
    for change, code in [
        ({"timestamp": str(ts + 1)}, 14026),  # the signature now recovers some other address
        ({"timestamp": str(ts - 3_600_000)}, 14014),  # stale
        ({"wallet": "0x" + "22" * 20}, 14000),
        ({"signature": "0x1234"}, 14014),
    ]:
        with pytest.raises(RpcError) as info:
            simulator.call("public/login", {**good, **change}, peer=None, account=None, after=[])
        assert info.value.code == code, change


@functools.cache
def shared_simulator() -> DeriveSimulator:
    return DeriveSimulator(seed=11)


@settings(max_examples=40, deadline=None)
@given(
    amount=st.integers(min_value=1, max_value=999_999).map(lambda n: Decimal(n) / 100),  # +0.01 <= max
    price=st.integers(min_value=1, max_value=10_000_000).map(lambda n: Decimal(n) / 100),
    buy=st.booleans(),
)
def test_every_order_our_client_signs_verifies_at_the_simulator(
    amount: Decimal, price: Decimal, buy: bool
) -> None:
    simulator = shared_simulator()
    account = simulator.accounts[DEMO_WALLET.lower()]
    params = sign_for(simulator, amount=amount, limit_price=price, direction="buy" if buy else "sell")
    simulator._check_signature(simulator._verify_order(params, account), account)  # accepted
    step = Decimal("0.01")
    for changed in ({"amount": str(amount + step)}, {"limit_price": str(price + step)}):
        terms = simulator._verify_order({**params, **changed}, account)
        with pytest.raises(RpcError) as info:  # a term changed after signing: refused
            simulator._check_signature(terms, account)
        assert info.value.code == 14014


async def test_nothing_is_sent_before_the_login() -> None:
    execution = DeriveExecution(make_session())  # never connected, never logged in
    with pytest.raises(VenueUnavailable, match="not logged in"):
        await execution.place(order())
    with pytest.raises(OrderRejected, match="maximum amount"):  # the instrument's own bound
        await execution.place(order(size=Decimal(100_000)))


# ---------------------------------------------------------------------------- the plugin


def test_the_plugin_builds_sessions_for_live_and_paper() -> None:
    kwargs: dict[str, Any] = {"registry": InstrumentRegistry(), "router": MarketRouter(), "sink": _Sink()}
    with pytest.raises(AuthError, match="DERIVE_WALLET"):
        PLUGIN.live(DeriveSettings(), trading=True, environ={}, **kwargs)
    with pytest.raises(ConfigError, match="private channels"):
        PLUGIN.live(DeriveSettings(private=False), trading=True, environ=ENV, **kwargs)
    live = PLUGIN.live(DeriveSettings(), trading=True, environ=ENV, **kwargs)
    assert isinstance(live, DeriveSession)
    assert live.credentials is not None
    assert live.credentials.signer == SIGNER and live.settings.private
    paper = PLUGIN.live(DeriveSettings(), trading=False, environ=ENV, **kwargs)
    assert isinstance(paper, DeriveSession)
    assert paper.credentials is None and not paper.settings.private  # paper never logs in
    banner = "\n".join(SIMULATOR.banner(["http://127.0.0.1:8766"]))
    assert 'url = "ws://127.0.0.1:8766/ws"' in banner and DEMO_WALLET in banner


def test_settings_are_checked_where_they_are_read() -> None:
    with pytest.raises(ValueError, match="instrument types among option, perp, erc20"):
        DeriveSettings(instrument_types=["spot"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="market_slippage: expected a fraction"):
        DeriveSettings(market_slippage=Decimal(2))
    with pytest.raises(ValueError, match="max_fee_margin: expected at least 1"):
        DeriveSettings(max_fee_margin=Decimal("0.5"))
    assert DeriveSettings(url="ws://h/ws").ws_url == "ws://h/ws"


# ------------------------------------------------- reconciliation against the simulator (§3.6)

PERP = "ETH-PERP"


class _Recorder:
    """A `VenueSink` keeping what a session dispatches."""

    def __init__(self) -> None:
        self.private_events: list[Any] = []

    async def market(self, events: list[Any]) -> None:
        return None

    def private(self, events: list[Any]) -> None:
        self.private_events.extend(events)


async def connected(
    nursery: trio.Nursery, **sim_options: Any
) -> tuple[DeriveSimulator, DeriveSession, DeriveExecution, _Recorder]:
    """The simulator on a loopback port and a logged-in session to it (no engine)."""
    simulator = DeriveSimulator(seed=9, step_s=0.05, **sim_options)
    binds = await nursery.start(functools.partial(serve, simulator))
    base = binds[0].removeprefix("http://")
    sink = _Recorder()
    session = DeriveSession(
        DeriveSettings(url=f"ws://{base}/ws", rest_url=f"http://{base}"),
        registry=InstrumentRegistry(),
        router=MarketRouter(),
        sink=sink,
        credentials=Credentials(DEMO_WALLET, DEMO_SESSION_KEY, DEMO_SUBACCOUNT),
    )
    await nursery.start(session.run)
    with trio.fail_after(10):
        await session.ready.wait()
    slim = simulator.tickers[PERP]
    session.index_prices["ETH"] = float(slim["I"])  # what the tickers would have told it
    session.mark_prices[PERP] = float(slim["M"])
    execution: DeriveExecution = session.execution()
    return simulator, session, execution, sink


def engine_order(cid: str, *, size: str = "0.2", price: Decimal | None = None, **kw: Any) -> Order:
    fields: dict[str, Any] = {"side": "buy", "size": Decimal(size), "price": price}
    if price is None:
        fields["type"] = "market"
    fields.update(kw)
    request = OrderRequest(venue="derive", instrument=PERP, client_order_id=cid, strategy="s", **fields)
    return Order(request, now_ns=time.time_ns())


def resting_price(simulator: DeriveSimulator) -> Decimal:
    bid = simulator.book(PERP).best(Side.BUY)
    assert bid is not None
    return Decimal(int(bid * Decimal("0.8")))  # far below the bid: rests


async def test_order_status_by_order_id_by_label_and_for_an_order_the_venue_never_had(
    nursery: trio.Nursery,
) -> None:
    simulator, _, execution, _ = await connected(nursery)
    low = resting_price(simulator)
    # Cancelled by the venue while we were not listening: get_order says so, with the reason.
    named = engine_order("s-r-1", price=low)
    (placed,) = [e for e in await execution.place(named) if isinstance(e, OrderUpdate)]
    named.order_id = placed.order_id
    assert simulator.venue_cancel(order_id=placed.order_id, reason="insufficient_margin") == [placed.order_id]
    (report,) = await execution.order_status(named)
    assert isinstance(report, OrderUpdate) and report.order_id == placed.order_id
    assert (report.status, report.reason, report.client_order_id) == (
        OrderState.CANCELLED,
        "insufficient_margin",
        "s-r-1",
    )
    # Placed, but its answer never reached us (no order id): found by its label, named now.
    unnamed = engine_order("s-r-2", price=low - 1)
    account = simulator.accounts[DEMO_WALLET.lower()]
    answer = simulator.call(
        "private/order",
        sign_for(simulator, label="s-r-2", limit_price=low - 1, amount=Decimal("0.2")),
        peer=None,
        account=account,
        after=[],
    )
    (found,) = await execution.order_status(unnamed)
    assert isinstance(found, OrderUpdate)
    assert (found.order_id, found.status, found.client_order_id) == (
        answer["order"]["order_id"],
        OrderState.OPEN,
        "s-r-2",
    )
    # Never sent, or an id the venue does not know (11006): the venue has no such order.
    assert await execution.order_status(engine_order("s-r-3", price=low)) == []
    ghost = engine_order("s-r-4", price=low)
    ghost.order_id = "00000000-0000-4000-8000-000000000000"
    assert await execution.order_status(ghost) == []
    assert simulator.requests_for("private/get_order") == 2
    assert simulator.requests_for("private/get_orders") == 2


async def test_recent_fills_reads_every_page_once_and_lists_reverted_trades_as_reversals(
    nursery: trio.Nursery,
) -> None:
    simulator, _, execution, sink = await connected(nursery, settle_after_s=3600)
    account = simulator.accounts[DEMO_WALLET.lower()]
    await execution.place(engine_order("s-f-0", size="0.1"))  # before the window
    await trio.sleep(0.01)  # the history's timestamps are milliseconds
    since = time.time_ns()
    await trio.sleep(0.01)
    for i in range(1, 4):
        await execution.place(engine_order(f"s-f-{i}", size="0.1"))
    simulator.apply_faults({"revert": 1})
    await execution.place(engine_order("s-f-4", size="0.1"))  # its fill will fail on chain
    await execution.place(engine_order("s-f-5", size="0.1"))
    assert simulator.settle_now() >= 6
    with trio.fail_after(5):  # the reversal arrives on the private channel as it happens
        while not any(isinstance(e, FillReversal) for e in sink.private_events):
            await trio.sleep(0.01)
    in_window = [t for t in account.trades if t["timestamp"] >= since // 1_000_000]
    reverted = {t["trade_id"] for t in in_window if t["tx_status"] == "reverted"}
    executed = [t["trade_id"] for t in in_window if t["tx_status"] == "settled"]
    assert len(reverted) == 1 and len(executed) >= 4 and all(t["label"] != "s-f-0" for t in in_window)
    execution.page_size = 2  # several pages
    asked = simulator.requests_for("private/get_trade_history")
    listed = await execution.recent_fills(since)
    fills = [f for f in listed if isinstance(f, Fill)]
    assert [f.trade_id for f in fills] == executed  # oldest first, in matching order, each once
    assert all(f.fee > 0 and f.client_order_id for f in fills)
    # A reverted trade is listed as its reversal (the engine applies one only to an order that
    # holds that fill: after a restart, the journal's), never as a fill.
    assert {r.trade_id for r in listed if isinstance(r, FillReversal)} == reverted
    assert [f.ts_exchange or 0 for f in listed] == sorted(f.ts_exchange or 0 for f in listed)
    pages = simulator.requests_for("private/get_trade_history") - asked
    assert pages == math.ceil(len(in_window) / 2)
    # The reversal had come on the channel already: recent_fills does not send it again.
    assert sum(isinstance(e, FillReversal) for e in sink.private_events) == 1
    # The answers carried the fills already: the history's are repeats, not new ones.
    assert execution.session.decoder.repeated_fills >= len(executed)


class _StoppableClock:
    """The simulator's clock: the wall clock, or one instant while `stopped_ns` is set (every
    trade printed meanwhile has the same millisecond, as several do under load)."""

    def __init__(self) -> None:
        self.stopped_ns: int | None = None

    def __call__(self) -> int:
        return time.time_ns() if self.stopped_ns is None else self.stopped_ns


async def test_recent_fills_keeps_the_venues_matching_order_within_a_millisecond_whichever_way_it_lists(
    nursery: trio.Nursery,
) -> None:
    clock = _StoppableClock()
    simulator, _, execution, _ = await connected(nursery, clock=clock)
    account = simulator.accounts[DEMO_WALLET.lower()]
    since = time.time_ns()
    first_ms, second_ms = since // 1_000_000 + 1, since // 1_000_000 + 2
    for ms, orders in ((first_ms, 2), (second_ms, 4)):  # two milliseconds, several trades in each
        clock.stopped_ns = ms * 1_000_000
        for i in range(orders):
            await execution.place(engine_order(f"s-ms-{ms}-{i}", size="0.1"))
    clock.stopped_ns = None
    trades = [t for t in account.trades if t["timestamp"] >= since // 1_000_000]  # matching order
    assert {t["timestamp"] for t in trades} == {first_ms, second_ms}
    assert sum(t["timestamp"] == second_ms for t in trades) >= 4
    # Derive's trade ids are random UUIDs, no order: here they sort against the matching order
    # (the case a sort on them gets wrong; the simulator's seeded ones may happen not to).
    for i, t in enumerate(trades):
        t["trade_id"] = str(uuid.UUID(int=len(trades) - i, version=4))
    matching = [t["trade_id"] for t in trades]
    execution.page_size = 2  # a millisecond spans pages

    async def read(from_ns: int) -> list[str]:
        fills = [f for f in await execution.recent_fills(from_ns) if isinstance(f, Fill)]
        return [f.trade_id for f in fills]

    # (1) The simulator's own listing, newest first. One millisecond alone shows no direction and
    # is taken as newest first (the simulator's order); two show it. Either way the fills come in
    # the matching order, the one a ledger averaging its cost must book them in.
    later = [t["trade_id"] for t in trades if t["timestamp"] == second_ms]
    assert await read(second_ms * 1_000_000) == later
    assert await read(since) == matching
    # (2) A venue listing oldest first (the timestamps say so): the matching order too.
    account.trades.reverse()
    assert await read(since) == matching
    account.trades.reverse()
    # (3) One trade that filled two of our orders: its two records come together, by order id,
    # whichever of them the venue lists first (the same booking on every read).
    at = next(i for i, t in enumerate(account.trades) if t["trade_id"] == later[1])
    twin = {**account.trades[at], "order_id": str(uuid.UUID(int=0, version=4)), "label": "s-ms-twin"}
    pair = sorted([account.trades[at]["order_id"], twin["order_id"]])
    expected = [(i, o) for i in matching for o in (pair if i == later[1] else [None])]
    account.trades.insert(at + 1, twin)
    for listing in ("the twin listed first", "the twin listed second"):
        fills = [f for f in await execution.recent_fills(since) if isinstance(f, Fill)]
        got = [(f.trade_id, f.order_id if f.trade_id == later[1] else None) for f in fills]
        assert got == expected, listing
        account.trades[at], account.trades[at + 1] = account.trades[at + 1], account.trades[at]


# A trade record of ours spoiled each way a hostile or broken venue may spoil it.
_SPOILED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "a bad number": lambda t: {**t, "trade_price": "3,499.5"},
    "no trade id": lambda t: {k: v for k, v in t.items() if k != "trade_id"},
    "a field of the wrong type": lambda t: {**t, "direction": 7},
    "NaN": lambda t: {**t, "trade_amount": "NaN"},
}


@pytest.mark.parametrize("spoiled", list(_SPOILED))
async def test_a_trade_record_that_cannot_be_read_is_left_out_and_the_others_are_booked_once(
    nursery: trio.Nursery, spoiled: str
) -> None:
    """One record of `private/get_trade_history` that cannot be read is that record's problem:
    left out, counted, logged once per read naming the venue, its ids and why; the good fills
    around it (on its page and the next) are booked, once, however many reconciliations read
    the history again. Before, the whole page was an unreadable answer: no fill of the history
    was ever caught up while the record stayed in it."""
    simulator, session, execution, _ = await connected(nursery)
    account = simulator.accounts[DEMO_WALLET.lower()]
    placed: list[Tracked] = []
    for i in range(4):
        o = engine_order(f"s-bad-{i}", size="0.1")
        (state,) = [e for e in await execution.place(o) if isinstance(e, OrderUpdate)]
        assert state.status is OrderState.FILLED and state.order_id is not None
        placed.append(Tracked(o.client_order_id, state.order_id, "buy", "0.1", "100000"))
    # The history lists newest first: pages of 3 are [s-bad-3, s-bad-2, s-bad-1] and [s-bad-0].
    at = next(i for i, t in enumerate(account.trades) if t["label"] == "s-bad-2")
    trade_id = account.trades[at]["trade_id"]
    account.trades[at] = _SPOILED[spoiled](account.trades[at])
    execution.page_size = 3
    inst = session.registry.get("derive", PERP)
    assert inst is not None
    engine, orders = tracking(DeriveSettings(), inst, placed, environ=ENV, now_ns=time.time_ns())
    asked = simulator.requests_for("private/get_trade_history")
    with structlog.testing.capture_logs() as logs:
        await catch_up(engine, execution)
    good = {
        "s-bad-0": Decimal("0.1"),
        "s-bad-1": Decimal("0.1"),
        "s-bad-2": Decimal(0),
        "s-bad-3": Decimal("0.1"),
    }
    assert booked(orders) == good
    assert simulator.requests_for("private/get_trade_history") - asked == 2  # both pages
    assert execution.trades_refused == 1
    (line,) = [e for e in logs if e["event"] == "fills.record_refused"]
    named = None if spoiled == "no trade id" else trade_id
    assert (line["log_level"], line["venue"], line["trade_id"]) == ("error", "derive", named)
    assert line["reason"]
    assert not [e for e in logs if e["event"] == "fills.recent_unavailable"]
    # The record stays in the history: the next reconciliation reads it again, counts it again,
    # and books nothing twice.
    await catch_up(engine, execution)
    assert booked(orders) == good and execution.trades_refused == 2
    assert engine.flow.ledgers["s"].fills == 3


async def test_a_trade_whose_transaction_timed_out_is_no_fill_of_a_catch_up_but_an_alert(
    nursery: trio.Nursery,
) -> None:
    """A reconciliation reading a trade of ours whose `tx_status` is `timed_out` (Derive says
    neither that it settled nor that it reverted) books no fill of it and alerts once, counted
    (`unknown_tx_status`); a later reconciliation reading it again books nothing and alerts no
    more (it alerted at every reconnect, uncounted on this path), but the trade seen in another
    such status is alerted again; the trades around it are booked once. Before, it was booked as
    a fill."""
    simulator, session, execution, _ = await connected(nursery)
    account = simulator.accounts[DEMO_WALLET.lower()]
    placed: list[Tracked] = []
    for i in range(3):
        o = engine_order(f"s-to-{i}", size="0.1")
        (state,) = [e for e in await execution.place(o) if isinstance(e, OrderUpdate)]
        assert state.order_id is not None
        placed.append(Tracked(o.client_order_id, state.order_id, "buy", "0.1", "100000"))
    (timed_out,) = [t for t in account.trades if t["label"] == "s-to-1"]
    timed_out["tx_status"] = "timed_out"
    inst = session.registry.get("derive", PERP)
    assert inst is not None
    engine, orders = tracking(DeriveSettings(), inst, placed, environ=ENV, now_ns=time.time_ns())
    decoder = session.decoder
    before = decoder.unknown_tx_status
    for status, alerts in (("timed_out", 1), ("timed_out", 0), ("ignored", 1)):
        timed_out["tx_status"] = status
        with structlog.testing.capture_logs() as logs:
            await catch_up(engine, execution)
        assert booked(orders) == {"s-to-0": Decimal("0.1"), "s-to-1": Decimal(0), "s-to-2": Decimal("0.1")}
        found = [e for e in logs if e["event"] == "fill.tx_status_unknown"]
        assert len(found) == alerts, status
        for alert in found:
            assert (alert["log_level"], alert["trade_id"], alert["order_id"], alert["tx_status"]) == (
                "critical",
                timed_out["trade_id"],
                timed_out["order_id"],
                status,
            )
            assert alert["fill_reported"] is True  # its order's answer carried it (as `requested`)
    assert decoder.unknown_tx_status - before == 2
    assert engine.flow.ledgers["s"].fills == 2 and execution.trades_refused == 0


async def test_an_open_order_record_left_out_is_counted_before_a_bug_in_a_later_one_ends_the_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A record left out is counted as it is refused: a reader's bug (beyond a record's problems)
    on a later record ends the list with its exception, and the refusal already logged stays
    counted (before, the count was only added once the whole list was read: never, here)."""
    from tradingd.connectors.derive import execution as module

    ours = {**load("perps/http_order_eth_partially_filled.json"), "order_id": "V1", "label": "s-1"}
    ours |= {"order_status": "open", "amount": "1", "filled_amount": "0", "subaccount_id": 1}
    spoiled = {**ours, "amount": "NaN"}
    after = {**ours, "order_id": "V2", "label": "s-2"}
    convert = module.order_update_from  # type: ignore[attr-defined]

    def buggy(order: Any, now: int) -> Any:
        if order.order_id == "V2":
            raise RuntimeError("a bug, not the record's problem")
        return convert(order, now)

    monkeypatch.setattr(module, "order_update_from", buggy)
    client = _derive(Routed({"private/get_open_orders": {"orders": [spoiled, after], "subaccount_id": 1}}))
    with pytest.raises(RuntimeError, match="a bug"):
        await client.open_orders()
    assert client.orders_refused == 1


async def test_an_open_order_record_that_cannot_be_read_is_left_out_and_never_reads_as_gone() -> None:
    """`private/get_open_orders` with one record that cannot be read: the others are the venue's
    open orders, the bad one counted and logged; the reconciliation goes on (before, the whole
    answer was unreadable and every reconciliation stopped there: no fill caught up, no order
    asked about). Our order behind the bad record is not taken as gone: the engine asks about it
    by its id, and the venue's answer, the same record, concludes nothing."""
    ours = {**load("perps/http_order_eth_partially_filled.json"), "order_id": "V1", "label": "s-1"}
    ours |= {"order_status": "open", "amount": "1", "filled_amount": "0", "subaccount_id": 1}
    spoiled = {**ours, "amount": "NaN"}
    foreign = {**ours, "order_id": "F1", "label": "theirs-1"}
    session = Routed(
        {
            "private/get_open_orders": {"orders": [foreign, spoiled], "subaccount_id": 1},
            "private/get_order": spoiled,
            "private/get_trade_history": {"trades": [], "pagination": {"count": 0, "num_pages": 0}},
            "private/get_positions": {"positions": [], "subaccount_id": 1},
        }
    )
    client = _derive(session)
    with structlog.testing.capture_logs() as logs:
        listed = await client.open_orders()
    assert [(u.order_id, u.client_order_id, u.status) for u in listed] == [
        ("F1", "theirs-1", OrderState.OPEN)
    ]
    assert client.orders_refused == 1
    (line,) = [e for e in logs if e["event"] == "orders.record_refused"]
    assert (line["log_level"], line["venue"], line["order_id"], line["label"]) == (
        "error",
        "derive",
        "V1",
        "s-1",
    )
    assert "not a finite number" in line["reason"]
    inst = parse_instrument(load("perps/instrument_eth.json"))[0]
    engine, orders = tracking(
        DeriveSettings(), inst, [Tracked("s-1", "V1", "buy", "1", "3501")], environ=ENV, now_ns=time.time_ns()
    )
    order = orders["s-1"]
    engine.private([order_update_from(msgspec.json.decode(orjson.dumps(ours), type=OrderData), 1)])
    assert order.state is OrderState.OPEN
    engine.venues["derive"].execution = lambda: client  # type: ignore[method-assign]
    with structlog.testing.capture_logs() as logs:
        await engine._reconcile("derive")
    assert engine.reconciliations == 1 and engine.foreign_orders_found == {"derive": 1}
    assert "private/get_trade_history" in {m for m, _ in session.asked}  # the fills were caught up
    assert ("private/get_order", {"subaccount_id": 1, "order_id": "V1"}) in session.asked
    assert order.state is OrderState.OPEN  # nothing concluded from a record that cannot be read
    assert [e["event"] for e in logs if e["event"].startswith("order.status")] == ["order.status_unavailable"]


async def test_cancel_by_order_id_cancels_an_order_that_is_not_ours(nursery: trio.Nursery) -> None:
    simulator, _, execution, _ = await connected(nursery)
    low = resting_price(simulator)
    account = simulator.accounts[DEMO_WALLET.lower()]
    answer = simulator.call(
        "private/order",
        sign_for(simulator, label="placed-by-hand", limit_price=low),
        peer=None,
        account=account,
        after=[],
    )
    order_id = answer["order"]["order_id"]
    await execution.cancel_by_order_id(PERP, order_id)
    assert simulator.orders[order_id].state == "cancelled"
    with pytest.raises(OrderRejected) as info:
        await execution.cancel_by_order_id(PERP, order_id)
    assert info.value.code == 11003  # already cancelled
    with pytest.raises(OrderRejected) as info:
        await execution.cancel_by_order_id(PERP, "00000000-0000-4000-8000-000000000000")
    assert info.value.code == 11006  # no such order


async def test_reconciliation_reads_wait_for_the_login() -> None:
    execution = DeriveExecution(make_session())  # never connected, never logged in
    with pytest.raises(VenueUnavailable, match="not logged in"):
        await execution.recent_fills(0)
    with pytest.raises(VenueUnavailable, match="not logged in"):
        await execution.order_status(order())
    with pytest.raises(VenueUnavailable, match="not logged in"):
        await execution.cancel_by_order_id("ETH-PERP", "x")


@settings(max_examples=60, deadline=None)
@given(count=st.integers(min_value=0, max_value=40), size=st.integers(min_value=1, max_value=12))
def test_history_pages_cover_every_item_once_and_a_page_too_far_repeats_the_last(
    count: int, size: int
) -> None:
    items = [{"n": i} for i in range(count)]

    def page(p: dict[str, Any]) -> tuple[list[dict[str, int]], dict[str, int]]:
        return page_of(items, p, RpcError)

    first, pagination = page({"page_size": size})
    assert pagination == {"count": count, "num_pages": math.ceil(count / size)}
    read = list(first)
    for n in range(2, pagination["num_pages"] + 1):
        read += page({"page": n, "page_size": size})[0]
    assert read == items
    last = page({"page": max(pagination["num_pages"], 1), "page_size": size})[0]
    assert page({"page": pagination["num_pages"] + 3, "page_size": size})[0] == last


async def test_history_filters_and_their_refusals() -> None:
    simulator = DeriveSimulator(seed=3)
    account = simulator.accounts[DEMO_WALLET.lower()]

    def call(method: str, **params: Any) -> Any:
        return simulator.call(method, params, peer=None, account=account, after=[])

    low = resting_price(simulator)
    for i in range(3):
        call("private/order", **sign_for(simulator, label=f"h-{i}", limit_price=low - i))
    call("private/cancel_by_label", subaccount_id=DEMO_SUBACCOUNT, label="h-1")
    open_ = call("private/get_orders", subaccount_id=DEMO_SUBACCOUNT, status="open")
    assert sorted(o["label"] for o in open_["orders"]) == ["h-0", "h-2"]
    (one,) = call("private/get_orders", subaccount_id=DEMO_SUBACCOUNT, label="h-1")["orders"]
    assert one["order_status"] == "cancelled" and one["cancel_reason"] == "user_request"
    every = call("private/get_order_history", subaccount_id=DEMO_SUBACCOUNT, page_size=2)
    assert every["pagination"] == {"count": 3, "num_pages": 2} and len(every["orders"]) == 2
    assert call("private/get_trade_history", subaccount_id=DEMO_SUBACCOUNT)["trades"] == []
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("private/get_orders", {"subaccount_id": DEMO_SUBACCOUNT, "status": "gone"}, -32602),
        ("private/get_orders", {"subaccount_id": DEMO_SUBACCOUNT, "page_size": 1001}, -32602),
        ("private/get_trade_history", {"subaccount_id": DEMO_SUBACCOUNT, "page": 0}, -32602),
        ("private/get_trade_history", {"subaccount_id": 1}, 14001),  # not this wallet's
        ("private/get_order", {"subaccount_id": DEMO_SUBACCOUNT, "order_id": "nope"}, 11006),
    ]
    for method, params, code in cases:
        with pytest.raises(RpcError) as info:
            call(method, **params)
        assert info.value.code == code, (method, params)
    # The switches over HTTP, as `tradingd simulate derive` users flip them.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(simulator), base_url="http://sim") as http:
        answer = await http.post(
            "/_sim/faults",
            json={
                "trade": {"instrument": PERP, "direction": "sell", "price": str(low), "amount": "0.1"},
                "cancel": {"label": "h-2", "reason": "mmp_trigger"},
            },
        )
    applied = answer.json()["applied"]
    filled = [t for t in account.trades if t["label"] == "h-0"]
    assert [t["trade_amount"] for t in filled] == ["0.1"] and isinstance(applied["trade"], str)
    (cancelled,) = applied["cancelled"]
    assert simulator.orders[cancelled].cancel_reason == "mmp_trigger"
    history = call("private/get_trade_history", subaccount_id=DEMO_SUBACCOUNT, order_id=filled[0]["order_id"])
    assert [t["trade_id"] for t in history["trades"]] == [filled[0]["trade_id"]]
    with pytest.raises(ValueError, match="reason must be one of"):
        simulator.venue_cancel(label="h-0", reason="because")
    with pytest.raises(ValueError, match="tick"):
        simulator.trade(PERP, "sell", "1000.001", "1")


def _trade(i: int, ms: int) -> TradeData:
    return TradeData(
        trade_id=str(uuid.UUID(int=2**127 - i)),  # ids that sort against the matching order
        order_id=f"o{i}",
        instrument_name="ETH-PERP",
        direction="buy",
        trade_price=Decimal(100),
        trade_amount=Decimal(1),
        timestamp=ms,
    )


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.integers(0, 2), min_size=2, max_size=12), mix=st.randoms(use_true_random=False))
def test_a_history_comes_oldest_first_in_matching_order_each_way_and_by_trade_id_when_mixed(
    steps: list[int], mix: Any
) -> None:
    """`recent_fills`' order of a history, against what it promises (not its code): a listing
    newest first or oldest first comes out in matching order (the order the trades were made);
    one that goes both ways comes out oldest first, a millisecond's by trade id. Never a trade
    lost or repeated."""
    stamps = list(itertools.accumulate(steps, initial=1_000))[1:]
    if stamps[0] == stamps[-1]:
        stamps[-1] += 1  # a rise: the listing's direction can be read
    made = [_trade(i, ms) for i, ms in enumerate(stamps)]  # matching order
    assert _oldest_first(made[::-1]) == made  # newest first, as the simulator lists
    assert _oldest_first(list(made)) == made  # oldest first
    mixed = list(made)
    mix.shuffle(mixed)
    out = _oldest_first(mixed)
    assert sorted(map(id, out)) == sorted(map(id, made))
    rises = any(b.timestamp > a.timestamp for a, b in itertools.pairwise(mixed))
    falls = any(b.timestamp < a.timestamp for a, b in itertools.pairwise(mixed))
    if rises and falls:
        assert out == sorted(made, key=lambda t: (t.timestamp, str(t.trade_id)))


_BIG = b'"<10**400>"'  # an integer beyond any double (msgspec reads it as a Python int)


class _Huge(Routed):
    """As `Routed`, a marker in an answer written as a 400-digit integer (orjson cannot)."""

    async def call_retrying(self, method: str, params: dict[str, Any] | None = None) -> bytes:
        return (await super().call_retrying(method, params)).replace(_BIG, b"1" + b"0" * 400)


@pytest.mark.parametrize(
    "field",
    ["index_price", "mark_price", "realized_pnl", "subaccount_id", "timestamp", "trade_amount", "trade_fee",
     "trade_price", "trade_id", "order_id"],
)  # fmt: skip
async def test_a_trade_record_with_an_integer_beyond_any_double_is_refused_and_the_others_booked(
    field: str,
) -> None:
    """A 400-digit integer in any numeric field of a trade of `private/get_trade_history`:
    `float()` of it (the index price) raised OverflowError, which no per-record reading caught,
    so every catch-up failed whole (review of r11, item 4). Now that record is refused (or,
    where the field is not read as a number, booked) and the others are booked."""
    trade = {**load("perps/http_private_trade_eth.json"), "subaccount_id": 1}
    records = [{**trade, "trade_id": f"t-{i}", "timestamp": trade["timestamp"] + i} for i in range(3)]
    records[1][field] = _BIG.decode().strip('"')
    session = _Huge(
        {"private/get_trade_history": {"trades": records, "pagination": {"count": 3, "num_pages": 1}}}
    )
    client = _derive(session)
    with structlog.testing.capture_logs() as logs:
        fills = [f for f in await client.recent_fills(0) if isinstance(f, Fill)]
    ids = [f.trade_id for f in fills]
    assert "t-0" in ids and "t-2" in ids
    assert len(ids) == 3 - client.trades_refused  # the spoiled one booked, or refused
    # A number the fill is made of is refused.
    if field in ("index_price", "trade_amount", "trade_fee", "trade_price", "order_id"):
        assert client.trades_refused == 1
        assert [e["event"] for e in logs if e["event"] == "fills.record_refused"] == ["fills.record_refused"]


# A funding record spoiled each way a broken venue may spoil it (the simulator pages by time).
_SPOILED_FUNDING: dict[str, Callable[[dict[str, Any]], Any]] = {
    "a field of the wrong type": lambda e: {**e, "funding": {"usdc": e["funding"]}},
    "no funding": lambda e: {k: v for k, v in e.items() if k != "funding"},
    "a number that is none": lambda e: {**e, "funding": "NaN"},
}


@pytest.mark.parametrize("where", ["alone in its millisecond", "sharing its millisecond"])
@pytest.mark.parametrize("spoiled", list(_SPOILED_FUNDING))
async def test_a_funding_record_that_cannot_be_read_is_left_out_and_the_others_are_booked(
    nursery: trio.Nursery, spoiled: str, where: str
) -> None:
    """Five payments on a perpetual we hold (two of them in one millisecond), pages of two, one
    spoiled: the others are booked, under the ids an unspoiled history gives them; the spoiled
    one is counted and logged naming its instrument and time, and why. A record that cannot be
    read (or is no money) holds its millisecond's other records back with it (`funding_held`):
    their ids are numbered within the millisecond by amount, unknown without it (booked under
    another's number once it reads again, a payment would be booked twice). Before, one
    unreadable record made its whole page an unreadable answer: nothing booked."""
    simulator, _, execution, _ = await connected(nursery)
    account = simulator.accounts[DEMO_WALLET.lower()]
    (state,) = [
        e for e in await execution.place(engine_order("s-f-0", size="0.5")) if isinstance(e, OrderUpdate)
    ]
    assert state.status is OrderState.FILLED
    hour = 3_600_000
    base = time.time_ns() // 1_000_000 - 10 * hour
    for ms, rate in ((base, "0.0001"), (base + hour, "0.0002"), (base + hour, "-0.0003"),
                     (base + 2 * hour, "0.0004"), (base + 3 * hour, "0.0005")):  # fmt: skip
        simulator.pay_funding(PERP, Decimal(rate), ts_ms=ms)
    execution.page_size = 2
    whole = {p.event_id: p.amount for p in await execution.funding_payments((base - 1) * 1_000_000)}
    assert len(whole) == 5
    at = 0 if where == "alone in its millisecond" else 1
    stamp = account.funding[at]["timestamp"]
    account.funding[at] = _SPOILED_FUNDING[spoiled](account.funding[at])
    with structlog.testing.capture_logs() as logs:
        paid = await execution.funding_payments((base - 1) * 1_000_000)
    (line,) = [e for e in logs if e["event"] == "funding.record_refused"]
    spoilt = f"{PERP}:{stamp}"
    left_out = {spoilt, f"{spoilt}:1"} if at == 1 else {spoilt}
    assert {p.event_id: p.amount for p in paid} == {k: v for k, v in whole.items() if k not in left_out}
    assert (execution.funding_refused, execution.funding_held) == (1, len(left_out) - 1)
    assert (line["log_level"], line["venue"], line["instrument"], line["ts_ms"]) == (
        "error",
        "derive",
        PERP,
        stamp,
    )
    assert line["reason"] and line["held"] == f"the records of {PERP} at {stamp}"


@pytest.mark.parametrize("first", ["the catch-up", "the channel"])
async def test_an_unknown_tx_status_is_alerted_once_whichever_path_sees_it_and_again_once_its_fill_is_booked(
    first: str,
) -> None:
    """One of our trades in `timed_out`, seen by a catch-up (`recent_fills`) and by the private
    channel, in either order: one alert, counted once, saying the same of its fill whichever
    path saw it (None: this process did not report it; an earlier one's journal may have).
    Then its fill is reported (the channel's `requested`) and it turns `timed_out` again: that
    sighting is alerted (`fill_reported` True), the one a person acts on. Before, the channel
    said False where the catch-up said None, and the second `timed_out` was taken for the
    first and never alerted."""
    trade = {**load("perps/http_private_trade_eth.json"), "tx_status": "timed_out"}
    history: list[dict[str, Any]] = [trade]
    session = Routed(
        {
            "private/get_trade_history": lambda _: {
                "trades": history,
                "pagination": {"count": 1, "num_pages": 1},
            }
        }
    )
    client = _derive(session)
    decoder = session.decoder

    async def catch_up_() -> list[Any]:
        return list(await client.recent_fills(0))

    async def channel(status: str) -> list[Any]:
        frame = {
            "method": "subscription",
            "params": {"channel": "1.trades", "data": [{**trade, "tx_status": status}]},
        }
        return decoder.decode(orjson.dumps(frame), 1)

    async def channel_timed_out() -> list[Any]:
        return await channel("timed_out")

    paths = [catch_up_, channel_timed_out]
    with structlog.testing.capture_logs() as logs:
        for path in paths if first == "the catch-up" else paths[::-1]:
            assert not [e for e in await path() if isinstance(e, Fill | FillReversal)]
        (fill,) = await channel("requested")
        assert isinstance(fill, Fill)
        for path in paths:  # the later word, from either path, once
            assert not [e for e in await path() if isinstance(e, Fill | FillReversal)]
    alerts = [e for e in logs if e["event"] == "fill.tx_status_unknown"]
    assert [(e["trade_id"], e["tx_status"], e["fill_reported"]) for e in alerts] == [
        ("trade-xyz", "timed_out", None),
        ("trade-xyz", "timed_out", True),
    ]
    assert decoder.unknown_tx_status == 2


T_MS = 1_700_000_000_000


def _funding_history(events: list[Any]) -> Routed:
    page = {"events": events, "pagination": {"count": len(events), "num_pages": 1}}
    return Routed({"private/get_funding_history": page})


def _payment(funding: str, instrument: str = "ETH-PERP", ts_ms: int = T_MS) -> dict[str, Any]:
    return {"funding": funding, "instrument_name": instrument, "timestamp": ts_ms, "pnl": "0"}


# A bad record hiding part of its ids: what it may number, so what must wait with it.
_HIDDEN: dict[str, tuple[Callable[[dict[str, Any]], Any], set[tuple[str, int]]]] = {
    "its time": (lambda r: {**r, "timestamp": None}, {("ETH-PERP", T_MS), ("ETH-PERP", T_MS + 1)}),
    "its time, of the wrong type": (
        lambda r: {**r, "timestamp": "soon", "funding": None},
        {("ETH-PERP", T_MS), ("ETH-PERP", T_MS + 1)},
    ),
    "its instrument": (lambda r: {**r, "instrument_name": 7}, {("ETH-PERP", T_MS), ("BTC-PERP", T_MS)}),
    "both": (lambda r: None, {("ETH-PERP", T_MS), ("ETH-PERP", T_MS + 1), ("BTC-PERP", T_MS)}),
}


@pytest.mark.parametrize("hidden", list(_HIDDEN))
async def test_a_funding_record_hiding_its_ids_holds_back_every_payment_it_may_number(hidden: str) -> None:
    """Three payments of ETH-PERP in one millisecond, one the next, one of BTC-PERP in the
    first: the middle one of the three spoiled so that its time, its instrument or both cannot
    be read. Every payment it may share a millisecond with waits (all of its instrument, all of
    its millisecond, all), the others are booked, and once it reads again each payment is
    booked once under the ids a clean history gives. Before, the held-back set was
    `(instrument, None)` / `(None, ms)`, which matched no payment: the neighbours were numbered
    without it, one payment booked twice (under a shifted id) and one never (review of r12)."""
    spoil, waits = _HIDDEN[hidden]
    clean = [_payment("-1"), _payment("2"), _payment("3"), _payment("4", ts_ms=T_MS + 1),
             _payment("5", "BTC-PERP")]  # fmt: skip
    spoiled = [*clean[:1], spoil(clean[1]), *clean[2:]]
    client = _derive(_funding_history(spoiled))
    with structlog.testing.capture_logs() as logs:
        first = await client.funding_payments(0)
    again = await _derive(_funding_history(clean)).funding_payments(0)
    assert {(p.instrument, p.ts_ns // 1_000_000) for p in first}.isdisjoint(waits)
    assert {(p.instrument, p.ts_ns // 1_000_000) for p in again} - waits == {
        (p.instrument, p.ts_ns // 1_000_000) for p in first
    }
    books = {p.event_id: p.amount for p in first}
    for p in again:  # the engine books a payment by its id (`OrderJournal.funding_known`)
        books.setdefault(p.event_id, p.amount)
    assert sorted(books.values()) == sorted(Decimal(r["funding"]) for r in clean)
    (line,) = [e for e in logs if e["event"] == "funding.record_refused"]
    assert line["log_level"] == "error" and line["reason"]
    assert (client.funding_refused, client.funding_held) == (1, sum(1 for r in clean if _key(r) in waits) - 1)


def _key(record: dict[str, Any]) -> tuple[str, int]:
    return record["instrument_name"], record["timestamp"]


@pytest.mark.parametrize("written", [("0.60", "5E-1"), ("+0.6", ".5"), ("0.6", "0.50")])
async def test_funding_ids_follow_what_the_amounts_are_worth_not_how_they_are_written(
    written: tuple[str, str],
) -> None:
    """Two payments of one instrument in one millisecond are numbered in the order of their
    amounts: the same payments written otherwise ("0.5", "0.50", "5E-1", ".5" are one amount)
    get the same ids, and numbers sort by value ("-2" before "-1", "9" before "10", which text
    sorts the other way). Before, the ids were numbered in the order of the amounts' text: a
    venue writing an amount otherwise swapped two payments' ids."""
    ids = {
        p.event_id: p.amount
        for p in await _derive(_funding_history([_payment("0.6"), _payment("0.5")])).funding_payments(0)
    }
    otherwise = {
        p.event_id: p.amount
        for p in await _derive(_funding_history([_payment(w) for w in written])).funding_payments(0)
    }
    assert otherwise == ids == {f"ETH-PERP:{T_MS}": Decimal("0.5"), f"ETH-PERP:{T_MS}:1": Decimal("0.6")}
    signed = [_payment(a) for a in ("10", "-1", "9", "-2")]
    numbered = sorted(await _derive(_funding_history(signed)).funding_payments(0), key=lambda p: p.event_id)
    assert [p.amount for p in numbered] == [Decimal(a) for a in ("-2", "-1", "9", "10")]


async def test_a_bad_funding_record_is_counted_and_logged_once_however_many_polls_read_it() -> None:
    """The look-back reads the same history at every poll: a bad record is counted and logged
    the first time only (a new bad record is, once), and the memory of those said is bounded.
    Before, each poll counted and logged every bad record of the look-back again."""
    events = [_payment("1"), _payment("NaN", ts_ms=T_MS + 1)]
    history = Routed({"private/get_funding_history": lambda _: {"events": events}})
    client = _derive(history)
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            assert [p.amount for p in await client.funding_payments(0)] == [Decimal(1)]
        events.append(_payment("x", ts_ms=T_MS + 2))
        await client.funding_payments(0)
        await client.funding_payments(0)
    assert [e["ts_ms"] for e in logs if e["event"] == "funding.record_refused"] == [T_MS + 1, T_MS + 2]
    assert client.funding_refused == 2
    many = [_payment("NaN", ts_ms=T_MS + i) for i in range(1100)]
    flood = _derive(_funding_history(many))
    with structlog.testing.capture_logs():
        await flood.funding_payments(0)
    assert flood.funding_refused == 1100 and len(flood._funding_said) <= 1024


async def test_a_funding_answer_says_the_oldest_payment_it_held_back() -> None:
    """`held_since_ns`: None when every record reads; else the oldest payment not booked, the
    held ones' and the bad record's own, whose time is the window's start when it cannot be read
    or is before the window (the engine keeps its funding window there: tests/runtime/
    test_funding_held.py)."""
    since = (T_MS - 10) * 1_000_000
    clean = [_payment("1"), _payment("2", ts_ms=T_MS + 5)]
    assert (await _derive(_funding_history(clean)).funding_payments(since)).held_since_ns is None
    late_bad = [*clean, _payment("NaN", ts_ms=T_MS + 5)]  # holds back the other of T_MS + 5
    answer = await _derive(_funding_history(late_bad)).funding_payments(since)
    assert [p.amount for p in answer] == [Decimal(1)] and answer.held_since_ns == (T_MS + 5) * 1_000_000
    no_time = {**clean[1], "timestamp": None}  # holds back every payment of its instrument
    answer = await _derive(_funding_history([clean[0], no_time])).funding_payments(since)
    assert list(answer) == [] and answer.held_since_ns == since
    before = {**clean[1], "funding": None, "timestamp": 5}  # a time the window cannot hold
    answer = await _derive(_funding_history([clean[0], before])).funding_payments(since)
    assert [p.amount for p in answer] == [Decimal(1)] and answer.held_since_ns == since


async def test_a_funding_answer_says_all_it_read_of_each_payment_it_held_back() -> None:
    """`held`: each payment held back with a bad record (its instrument, time, amount and
    currency, as read) and the bad record itself (what of it could be read, and why not the
    rest), so the engine can give a payment held past its cap up with every field a person
    needs to book it (tests/runtime/test_funding_held.py). None held: empty."""
    since = (T_MS - 10) * 1_000_000
    clean = [_payment("1"), _payment("-2.50", ts_ms=T_MS + 5)]
    assert (await _derive(_funding_history(clean)).funding_payments(since)).held == ()
    bad = {**_payment("NaN", ts_ms=T_MS + 5), "instrument_name": "ETH-PERP"}
    answer = await _derive(_funding_history([*clean, bad])).funding_payments(since)
    assert [p.amount for p in answer] == [Decimal(1)]
    read, unreadable = answer.held
    assert (read.venue, read.instrument, read.ts_ns, read.amount, read.currency) == (
        "derive", "ETH-PERP", (T_MS + 5) * 1_000_000, Decimal("-2.50"), "USDC"
    )  # fmt: skip
    assert isinstance(read.amount, Decimal) and "unreadable funding record" in read.reason
    assert (unreadable.instrument, unreadable.ts_ns, unreadable.amount) == (
        "ETH-PERP", (T_MS + 5) * 1_000_000, None
    )  # fmt: skip
    assert "cannot be read" in unreadable.reason and "NaN" in unreadable.reason
    no_ids = {"funding": "1", "pnl": "0"}  # neither instrument nor time: holds back the whole history
    answer = await _derive(_funding_history([*clean, no_ids])).funding_payments(since)
    assert list(answer) == [] and len(answer.held) == 3
    assert (answer.held[-1].instrument, answer.held[-1].ts_ns, answer.held[-1].currency) == (None, None, None)
