"""A local Derive: the same JSON-RPC over WebSocket (`/ws`) and REST (`POST /public/<method>`,
`POST /private/<method>`), on 127.0.0.1 (`tradingd simulate derive --port N`). Tests point the
daemon at it; so can users, and so can Derive's own clients (the tests do).

An independent witness of the connector: written from VENUES.md §3, Derive's documents and the
real captures (`tests/fixtures/derive/`), sharing no code with `tradingd.connectors`. Its own
parts: `instruments` (naming, sub ids, its record of an instrument), `fees` (Derive's published
schedule), `eip712` (the login and order signature checks, with eth-account), the shared
`simulators.matching` order books (price-time priority) and its own JSON encoding of its own
order and trade state. Built on the shared `engine.sim.SimulatorServer` (the loopback server).

Fidelity:

- Login (§3.5): `public/login` checks the EIP-191 signature of the timestamp (fresh within
  `login_window_s`) by recovering its signer, which must be a session key registered (and not
  expired) for the wallet; the answer lists the wallet's subaccounts. Private REST calls are
  checked the same way from the `X-LYRAWALLET` / `X-LYRATIMESTAMP` / `X-LYRASIGNATURE` headers
  (or v3's `X-DeriveWallet` / `X-DeriveTimestamp` / `X-DeriveSignature`).
- Orders (§3.6) are verified as the venue does: the trade module data is rebuilt from the
  decimal strings sent and the instrument's asset and sub id, the EIP-712 action hashed in the
  simulator's signing domain, the signer recovered and checked against the `signer` sent (14014)
  and the wallet's session keys (14026 unknown, 14030 expired); the nonce must be new for the
  subaccount (11017) and read as a date near now (11018); the signature must expire more than 5
  minutes ahead (11011), and the order expires then whatever its time in force; `max_fee` must
  cover the taker fee the schedule estimates per unit (refused with -32602, reason
  `signed_max_fee_too_low`). `private/order_debug` (and `public/order_debug`) answer the encoded
  data and hashes instead of placing the order.
- Matching (`simulators.matching.OrderBook`, one per instrument): the feed's book snapshots are
  the market's liquidity (`set_market_level`); client orders take it and each other by price,
  then time, at the maker's price; a resting client order fills when a feed snapshot's
  liquidity crosses it or a feed trade prints through it (`market_trade`). A market order is an
  IOC at its signed worst price. An order that would trade with its own subaccount's resting
  order is refused (11007 self-cross). Fees per `fees.FeeSchedule` (the taker's base fee once
  per order). Answers (`{order, trades}`), errors (§3.7 codes) and the `{subaccount}.orders`,
  `{subaccount}.trades[.{tx_status}]` notifications are shaped as Derive's (the NT capture in
  VENUES.md §3.6, `perps/http_order_eth_partially_filled.json`, `perps/http_private_trade_eth.json`).
  Fills are reported `requested` at the match and `settled` on `{subaccount}.trades.settled`
  `settle_after_s` later, or `reverted` (the `revert` switch) on `{subaccount}.trades` and
  `.trades.reverted`. `{subaccount}.balances` hears each fill's fee as a USDC balance change.
- `private/replace` (§3.6): the new order checked and its signature verified first, then the old
  one (`order_id_to_cancel` / `nonce_to_cancel`, `expected_filled_amount` checked) cancelled and
  the new one placed; a new order the book refuses comes back as `create_order_error`.
- History (§3.6, what a client reconciles with after a disconnect): `private/get_order` (11006
  "Order does not exist" for an order id the subaccount never had), `private/get_orders`
  (filtered by instrument, label, status), `private/get_order_history`,
  `private/get_trade_history` (from/to timestamps in ms, instrument, order id) and
  `private/get_funding_history`. Paged as Derive pages: `page` from 1, `page_size` up to 1000
  (default 100), `pagination: {count, num_pages}`, and a page beyond `num_pages` answers the
  LAST page again (as the real venue does; a client must count pages, not read until empty).
  Newest first (the venue does not document its order; clients must not depend on it).
- REST errors: HTTP 200 with the JSON-RPC `error` member, as Derive's own Python client expects
  (`derive_client/_clients/rest/http/session.py` calls `raise_for_status()` and only then reads
  the body's `error` into `DeriveJSONRPCError` in `_clients/utils.py::try_cast_response`: an
  error answered with a 4xx status would never reach that code; ccxt's `derive.handle_errors`
  reads the same `error` member whatever the status). An unknown path is a plain 404.
- Market data (§3.3, §3.4): the generator's synthetic market stepped on the wall clock:
  `ticker_slim.{instrument}.{100|1000}`, `orderbook.{instrument}.1.{1|10|20|100}` (whole
  snapshots with a `publish_id` per channel; the simulator's books hold 10 levels; groups 10
  and 100 are refused per channel; a book with client orders resting in it is published from
  the simulator's own book, their amounts in its levels, as the venue shows every order, and
  so are its slim tickers' best bid and ask), `trades.{instrument}` and `trades.{type}.{currency}` (the
  public record of production's `trades.ETH-PERP` capture; the `.{tx_status}` variants carry
  the same records as they print: the simulator keeps no per-status tape of other accounts'
  trades).
  `subscribe` answers a status per channel and `current_subscriptions`; a channel name that
  matches no pattern refuses the whole call with 13000 "Invalid channels" and a `data` naming
  it (the demo venue's answer, `bourse/error_invalid_channels_demo.json`); the deprecated
  `ticker.*` channel is refused with -32602 as Derive refuses it. No per-call channel limit is
  enforced: none is documented for Derive (VENUES.md §3.4, §3.7; the docs corpus has none).
- Rate limits (§3.7): per wallet, matching requests `matching_tps` and the rest
  `non_matching_tps`, each with a burst of `burst_multiplier` seconds, `private/cancel_all` at
  most 1 per second; beyond: -32000.

Switches (the shared ones, `POST /_sim/faults`): `drop`, `stall_s`, `gap` (an instrument's next
book snapshot is lost: the next one skips a `publish_id`), `reject` (the next orders get
`{"code", "message"}`, by default 11000 insufficient funds), `rate_limit` (the next requests get
-32000), `garbage`, `frames`; and Derive's own:
- `revert` (n): the next n client fills fail to settle (`tx_status` reverted);
- `settle` (true): every pending fill settles, or reverts, now;
- `trade` (`{"instrument", "direction", "price", "amount"}`): another account's taker trade
  prints, filling the resting client orders it reaches (e.g. while a client is disconnected);
- `cancel` (`{"order_id"}` or `{"label"}`, with a §3.6 `reason`, by default
  `insufficient_margin`): the venue cancels a client order;
- `private` (`"trail"`, `{"trail_s": s}` or `"outrun"`): order answers and the private channel
  race on a real venue. By default (`outrun`) a call's `{subaccount}.orders` / `.trades`
  notifications leave before its answer; `trail` holds them back until after the answer, `s`
  seconds (0: the next market step), so the answer outruns the channel.
"""

from __future__ import annotations

import itertools
import math
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Final, Literal

import attrs
import orjson
import structlog
import trio

from tradingd.engine.sim import SimPeer, SimulatorServer, serve
from tradingd.engine.sim.server import COUNT, FLAG, OBJECT, SHARED_SWITCHES, Switch

from ..matching import MARKET, Match, OrderBook, Side
from . import account_methods
from .eip712 import TESTNET, Action, Domain, TradeModuleData, address_of, login_signer
from .fees import FeeSchedule
from .generator import DeriveFeed
from .instruments import Listing

__all__ = [
    "DEMO_SESSION_KEY",
    "DEMO_SUBACCOUNT",
    "DEMO_WALLET",
    "DeriveSimulator",
    "RpcError",
    "SimAccount",
    "demo_account",
    "serve",
]

VENUE: Final = "derive"

# The demo account `tradingd simulate derive` prints: the §3.6 test vector's owner wallet and
# subaccount, with the well-known development key of its signer registered as a session key.
# Public test values, for the simulator only.
DEMO_WALLET: Final = "0x8772185a1516f0d61fC1c2524926BfC69F95d698"
DEMO_SESSION_KEY: Final = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEMO_SIGNER: Final = address_of(DEMO_SESSION_KEY)  # 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266
DEMO_SUBACCOUNT: Final = 30769

_PREFIX: Final = b'{"method":"subscription","params":{"channel":"'
_MATCHING: Final = frozenset(
    {
        "private/order",
        "private/replace",
        "private/cancel",
        "private/cancel_by_label",
        "private/cancel_by_instrument",
        "private/cancel_by_nonce",
        "private/cancel_all",
    }
)
_TX_STATUSES: Final = frozenset({"requested", "pending", "settled", "reverted", "ignored", "timed_out"})
# §3.6 cancel_reason values the venue can give an order it cancels on its own.
_VENUE_CANCEL_REASONS: Final = frozenset(
    {
        "mmp_trigger",
        "insufficient_margin",
        "signed_max_fee_too_low",
        "cancel_on_disconnect",
        "session_key_deregistered",
        "subaccount_withdrawn",
        "compliance",
        "validation_failed",
    }
)
_ORDER_STATUSES: Final = frozenset({"open", "filled", "rejected", "cancelled", "expired", "untriggered"})
_ZERO: Final = Decimal(0)


class RpcError(Exception):
    """A JSON-RPC error answer (§3.1 shape, §3.7 codes)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class _Bucket:
    """Requests a wallet may still make: `capacity` refilled at `rate` per second (§3.7)."""

    def __init__(self, capacity: float, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.rate = rate
        self._clock = clock
        self._level = capacity
        self._stamp = clock()

    def take(self) -> bool:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._level < 1:
            return False
        self._level -= 1
        return True


@attrs.define
class _Entry:
    """A position's entry: average price of what is open, when it opened, realized P&L and
    funding (the `get_positions` fields the simulator can know; it keeps no margin model)."""

    average: Decimal = _ZERO  # of the trade prices, fees excluded
    created_ms: int = 0
    realized: Decimal = _ZERO  # fees excluded
    fees: Decimal = _ZERO
    funding: Decimal = _ZERO

    def trade(self, before: Decimal, signed: Decimal, price: Decimal, fee: Decimal, now_ms: int) -> Decimal:
        """Fold a trade of `signed` amount at `price` into a position of `before`; the P&L it
        realizes (closing at `price` what was opened at the average), fees excluded."""
        after = before + signed
        realized = _ZERO
        if before == 0:  # a new position: its own history
            self.realized = self.fees = self.funding = _ZERO
            self.average, self.created_ms = _ZERO, now_ms
        self.fees += fee
        if before == 0 or (before > 0) == (signed > 0):  # opens or adds
            self.average = (self.average * abs(before) + price * abs(signed)) / abs(after)
        else:  # reduces, closes or flips
            closed = min(abs(signed), abs(before))
            realized = (price - self.average) * closed * (1 if before > 0 else -1)
            if after == 0:
                self.average = _ZERO
            elif (after > 0) != (before > 0):
                self.average, self.created_ms = price, now_ms
        self.realized += realized
        return realized


@attrs.define(eq=False)
class SimAccount:
    """A wallet the simulator knows: its subaccounts and registered session keys (address ->
    expiry in unix seconds, None for none), balances, positions, orders and used nonces."""

    wallet: str
    subaccounts: set[int]
    session_keys: dict[str, int | None]
    balances: dict[str, Decimal] = attrs.field(factory=lambda: {"USDC": Decimal(100_000)})
    positions: dict[tuple[int, str], Decimal] = attrs.field(factory=dict)
    entries: dict[tuple[int, str], _Entry] = attrs.field(factory=dict)  # what get_positions reports
    orders: dict[str, SimOrder] = attrs.field(factory=dict)  # by order id
    trades: list[dict[str, Any]] = attrs.field(factory=list)  # our trades, oldest first
    funding: list[dict[str, Any]] = attrs.field(factory=list)  # (subaccount, payment), oldest first
    nonces: set[tuple[int, int]] = attrs.field(factory=set)  # (subaccount, nonce)
    matching: _Bucket | None = None
    non_matching: _Bucket | None = None
    cancel_all: _Bucket | None = None

    def key_status(self, signer: str, now_s: int) -> int | None:
        """None when `signer` may sign for this wallet now, else the §3.7 error code."""
        known = {k.lower(): v for k, v in self.session_keys.items()}
        if signer.lower() not in known:
            return 14026  # session key not found
        expiry = known[signer.lower()]
        if expiry is not None and expiry <= now_s:
            return 14030  # session key expired
        return None


@attrs.define(eq=False)
class SimOrder:
    """A client order as the venue keeps it (what `_order_json` encodes)."""

    account: SimAccount
    subaccount_id: int
    order_id: str
    instrument: str
    direction: str
    amount: Decimal
    limit_price: Decimal
    max_fee: Decimal
    label: str
    nonce: int
    signer: str
    signature: str
    signature_expiry_sec: int
    order_type: str
    time_in_force: str
    mmp: bool = False
    reduce_only: bool = False
    state: str = "open"
    filled: Decimal = _ZERO
    notional: Decimal = _ZERO  # sum of price x amount of its fills: the average's numerator
    fees: Decimal = _ZERO
    base_fee_paid: bool = False  # the taker base fee is charged once per order (fees.py)
    cancel_reason: str = ""
    created_ms: int = 0
    updated_ms: int = 0
    replaced_order_id: str | None = None  # the order a `private/replace` cancelled for this one

    @property
    def owner(self) -> str:
        """Whose order this is in the matching book: self-trades are per subaccount."""
        return f"{self.account.wallet.lower()}:{self.subaccount_id}"

    @property
    def average(self) -> Decimal:
        return self.notional / self.filled if self.filled else _ZERO


@attrs.define(eq=False)
class _Peer(SimPeer):
    account: SimAccount | None = None
    # feed channel -> {channel as the peer asked for it: depth limit (0: as published)}
    routes: dict[str, dict[str, int]] = attrs.field(factory=dict)
    public: dict[str, list[str]] = attrs.field(factory=dict)  # requested channel -> feed channels
    private: set[str] = attrs.field(factory=set)  # {subaccount}.orders, .trades[.status], ...


@attrs.define
class _PendingSettlement:
    due: float  # trio time
    account: SimAccount
    trade: dict[str, Any]
    revert: bool


@attrs.define
class _Market:
    """One instrument's state: its book (the feed's levels and the clients' orders) and the last
    frames of its feed, kept raw and read when needed (most frames nobody trades against)."""

    listing: Listing
    book: OrderBook
    pending: bytes | None = None  # the last orderbook frame not yet applied to the book
    levels: dict[tuple[Side, Decimal], Decimal] = attrs.field(factory=dict)  # the feed's, as applied
    last_book: bytes | None = None  # the last orderbook frame, as published
    ticker: bytes | None = None  # the last ticker_slim frame
    # (the feed's frame, the one published instead): a book with client orders in it, and the
    # slim ticker of such a book (its best bid and ask the book's)
    published: tuple[bytes, bytes] | None = None
    published_ticker: tuple[bytes, bytes] | None = None


class _Tickers(Mapping[str, dict[str, Any]]):
    """The last `instrument_ticker` of each instrument, decoded when asked for."""

    def __init__(self, markets: dict[str, _Market]) -> None:
        self._markets = markets

    def __getitem__(self, name: str) -> dict[str, Any]:
        market = self._markets.get(name)
        if market is None or market.ticker is None:
            raise KeyError(name)
        ticker: dict[str, Any] = orjson.loads(market.ticker)["params"]["data"]["instrument_ticker"]
        return ticker

    def __iter__(self) -> Iterator[str]:
        return (n for n, m in self._markets.items() if m.ticker is not None)

    def __len__(self) -> int:
        return sum(1 for m in self._markets.values() if m.ticker is not None)


def _channel_of(frame: bytes) -> str:
    end = frame.find(b'"', len(_PREFIX))
    return frame[len(_PREFIX) : end].decode()


def _text(d: Decimal) -> str:
    """A Decimal as Derive writes numbers: a plain decimal string, no exponent, no trailing 0s."""
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


def _dec(params: Mapping[str, Any], key: str, code: int, what: str) -> Decimal:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RpcError(code, what, f"{key} must be a decimal string")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise RpcError(code, what, f"{key} is not a number: {value!r}") from None
    if not d.is_finite():
        raise RpcError(code, what, f"{key} must be finite")
    return d


def _int(params: Mapping[str, Any], key: str) -> int:
    value = params.get(key)
    if isinstance(value, str) and value.isdigit():
        return int(value)  # v3 sends nonces as strings (§3.6)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RpcError(-32602, "Invalid params", f"{key} must be an integer")
    return value


def _trio_now() -> float:
    """Trio's clock, or 0 outside a trio run (a test calling methods directly): what is due then
    is due at the first market step."""
    try:
        return trio.current_time()
    except RuntimeError:
        return 0.0


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class DeriveSimulator(SimulatorServer["_Peer"]):
    """The simulated venue (module docstring). An ASGI app; `run` steps its market."""

    venue = VENUE
    ws_paths = ("/ws",)
    default_reject = (11000, "Insufficient funds")
    switches: ClassVar[dict[str, Switch]] = {
        **SHARED_SWITCHES,
        "revert": COUNT,
        "settle": FLAG,
        "trade": OBJECT,
        "cancel": OBJECT,
        "private": Switch('"outrun", "trail" or {"trail_s": seconds}', lambda v: isinstance(v, str | dict)),
    }

    def __init__(
        self,
        *,
        seed: int = 7,
        accounts: Iterable[SimAccount] | None = None,
        domain: Domain = TESTNET,
        step_s: float = 0.1,
        matching_tps: float = 5.0,
        non_matching_tps: float = 5.0,
        burst_multiplier: float = 5.0,
        settle_after_s: float = 1.0,
        login_window_s: float = 60.0,
        outbox: int = 10_000,
        clock: Callable[[], int] = time.time_ns,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        super().__init__(step_s=step_s, outbox=outbox, clock=clock, log=log)
        self.domain = domain
        self.settle_after_s = settle_after_s
        self.login_window_s = login_window_s
        self.fees = FeeSchedule()
        self.feed = DeriveFeed.create(seed=seed, start_ns=clock())
        self.instrument_items = [item for result in self.feed.results for item in result]
        self.markets: dict[str, _Market] = {
            item["instrument_name"]: _Market(Listing.of(item), OrderBook(item["instrument_name"]))
            for item in self.instrument_items
        }
        self.tickers = _Tickers(self.markets)
        self.public_tape = account_methods.PublicTape()  # for public/get_trade_history
        self._feed_channels: dict[str, dict[str, str]] = {}  # instrument -> kind -> feed channel
        for channel in self.feed.channels():
            head, name = channel.split(".")[:2]
            self._feed_channels.setdefault(name, {})[head] = channel
        now = clock()
        for _, frame in self.feed.opening():
            if frame.startswith(_PREFIX):
                self.on_market_frame(frame, now)
        self.accounts: dict[str, SimAccount] = {}
        for acct in accounts if accounts is not None else [demo_account()]:
            acct.matching = _Bucket(matching_tps * burst_multiplier, matching_tps)
            acct.non_matching = _Bucket(non_matching_tps * burst_multiplier, non_matching_tps)
            acct.cancel_all = _Bucket(1.0, 1.0)  # §3.7: cancel_all at 1 TPS
            self.accounts[acct.wallet.lower()] = acct
        self.orders: dict[str, SimOrder] = {}  # by venue order id
        self._rng = random.Random(seed)
        self._settlements: list[_PendingSettlement] = []
        self.reverts = 0  # the `revert` switch: client fills still to fail
        # The `private` switch: None, the channel outruns the answer; else it trails it by s.
        self.private_trail_s: float | None = None
        self._held: list[tuple[float, SimAccount, str, bytes]] = []  # (due, account, channel, frame)
        self.late_sent = 0  # held notifications sent once due (tests wait on it)
        self._order_seq = itertools.count(1)

    # -- the market ---------------------------------------------------------------------------
    def _market(self, name: str) -> _Market:
        """The instrument's state; made on first use for one listed after the start (a test
        lists new instruments by adding to `instrument_items`)."""
        market = self.markets.get(name)
        if market is None:
            market = self.markets[name] = _Market(Listing.of(self._item(name)), OrderBook(name))
        return market

    def listing(self, name: str) -> Listing | None:
        if not any(i["instrument_name"] == name for i in self.instrument_items):
            return None
        return self._market(name).listing

    def book(self, name: str) -> OrderBook:
        """The instrument's matching book, brought up to the feed's last snapshot."""
        market = self._market(name)
        self._sync(market)
        return market.book

    def last_book(self, name: str) -> dict[str, Any] | None:
        """The `data` of the instrument's last orderbook snapshot (as published)."""
        market = self.markets.get(name)
        frame = None if market is None else market.last_book
        if frame is None:
            return None
        data: dict[str, Any] = orjson.loads(frame)["params"]["data"]
        return data

    def _prices(self, name: str) -> tuple[Decimal, Decimal]:
        """(index, mark) of the instrument from its last ticker; 0 when it has none."""
        slim = self.tickers.get(name) or {}
        return Decimal(str(slim.get("I") or 0)), Decimal(str(slim.get("M") or 0))

    def _sync(self, market: _Market) -> list[Match]:
        """Apply the pending feed snapshot to the book: the feed's levels replace the market's
        liquidity (vanished levels removed), which trades with client orders it crosses."""
        frame, market.pending = market.pending, None
        if frame is None:
            return []
        data = orjson.loads(frame)["params"]["data"]
        new: dict[tuple[Side, Decimal], Decimal] = {}
        for side, rows in ((Side.BUY, data["bids"]), (Side.SELL, data["asks"])):
            for price, amount in rows:
                new[(side, Decimal(price))] = Decimal(amount)
        book = market.book
        matches: list[Match] = []
        for key in [k for k in market.levels if k not in new]:
            book.set_market_level(key[0], key[1], _ZERO)
        for key, amount in new.items():
            if market.levels.get(key) != amount:
                matches += book.set_market_level(key[0], key[1], amount)
        market.levels = new
        return matches

    def _with_clients(self, market: _Market, frame: bytes) -> bytes:
        """The feed's snapshot re-encoded from the simulator's own book: its levels (the same
        depth, `publish_id` and time) with the clients' resting orders in them, as the venue's
        book shows every resting order."""
        msg = orjson.loads(frame)
        data = msg["params"]["data"]
        depth = max(len(data["bids"]), len(data["asks"]), 1)
        for key, side in (("bids", Side.BUY), ("asks", Side.SELL)):
            data[key] = [[_text(p), _text(a)] for p, a in market.book.levels(side, depth)]
        return orjson.dumps(msg)

    def _ticker_with_clients(self, market: _Market, frame: bytes) -> bytes:
        """The feed's slim ticker with its best bid and ask (`b`, `B`, `a`, `A`, §3.3) taken
        from the simulator's own book, the clients' orders in it."""
        msg = orjson.loads(frame)
        ticker = msg["params"]["data"]["instrument_ticker"]
        for price_key, amount_key, side in (("b", "B", Side.BUY), ("a", "A", Side.SELL)):
            top = market.book.levels(side, 1)
            ticker[price_key], ticker[amount_key] = (
                (_text(top[0][0]), _text(top[0][1])) if top else ("0", "0")
            )
        return orjson.dumps(msg)

    def market_step(self) -> list[bytes]:
        return [frame for _, frame in self.feed.step()]

    def on_market_frame(self, frame: bytes, now: int) -> None:
        """Keep the frame; fill resting client orders against the book or trade it moved."""
        self.public_tape.record(frame)
        channel = _channel_of(frame)
        head, _, rest = channel.partition(".")
        name = rest.split(".", 1)[0]
        market = self.markets.get(name)
        if market is None:
            return
        if head == "orderbook":
            market.pending = market.last_book = frame
            market.published = None
            if market.book.orders():  # someone rests here: the move may fill them now
                self._matched(market, self._sync(market))
                if market.book.orders():  # and the book published shows them
                    market.last_book = self._with_clients(market, frame)
                    market.published = (frame, market.last_book)
        elif head == "ticker_slim":
            market.ticker = frame
            market.published_ticker = None
            if market.book.orders():
                self._sync(market)
                market.ticker = self._ticker_with_clients(market, frame)
                market.published_ticker = (frame, market.ticker)
        elif head == "trades" and market.book.orders():
            self._sync(market)
            matches: list[Match] = []
            for t in orjson.loads(frame)["params"]["data"]:
                matches += market.book.market_trade(
                    Side(t["direction"]), Decimal(t["trade_price"]), Decimal(t["trade_amount"])
                )
            self._matched(market, matches)

    def step(self) -> None:
        super().step()
        now_s = self.clock() // 1_000_000_000
        resting = [self.orders[r.order_id] for m in self.markets.values() for r in m.book.orders()]
        for o in [o for o in resting if o.signature_expiry_sec <= now_s]:
            # §3.6: an order ends when its signature expires, whatever its time in force.
            self._end(o, "expired", "")
        self._settle()
        self._release()

    def garbage_frames(self) -> list[bytes]:
        return [b'{"method":"subscription","params":{"channel":', b"\x00\xffnot json at all"]

    def deliveries(self, frame: bytes) -> Iterable[tuple[_Peer, bytes]]:
        channel = _channel_of(frame)
        if channel.startswith(("orderbook.", "ticker_slim.")):
            market = self.markets.get(channel.split(".")[1])
            if market is not None:
                for swap in (market.published, market.published_ticker):
                    if swap is not None and swap[0] is frame:
                        frame = swap[1]  # from the simulator's own book, clients' orders in it
        if (
            channel.startswith("orderbook.")
            and self.faults.gap
            # lost from a book someone follows, not spent on one nobody sees
            and any(peer.routes.get(channel) for peer in self.sessions.values())
            and self.faults.take_gap(channel.split(".")[1])
        ):
            return  # this snapshot never leaves: the next one skips a publish_id
        for peer in list(self.sessions.values()):
            targets = peer.routes.get(channel)
            if not targets:
                continue
            for requested, depth in targets.items():
                if requested == channel and depth == 0:
                    yield peer, frame
                else:
                    yield peer, self._reshape(frame, requested, depth)

    def _reshape(self, frame: bytes, channel: str, depth: int) -> bytes:
        """The frame under the channel name the peer asked for (and its book cut to `depth`)."""
        if not depth:  # the name is the frame's first string: swapped without re-encoding
            start = len(_PREFIX)
            end = frame.index(b'"', start)
            return frame[:start] + channel.encode() + frame[end:]
        msg = orjson.loads(frame)
        params = msg["params"]
        params["channel"] = channel
        data = params["data"]
        data["bids"] = data["bids"][:depth]
        data["asks"] = data["asks"][:depth]
        return orjson.dumps(msg)

    def probe_key(self, frame: bytes) -> Any:
        if self.probe and frame.startswith(_PREFIX + b"ticker_slim." + self.probe.encode() + b"."):
            return int(orjson.loads(frame)["params"]["data"]["instrument_ticker"]["t"])
        return None

    def book_channels(self) -> int:
        """`orderbook.*` subscriptions (what a `gap` acts on) of every session."""
        return sum(ch.startswith("orderbook.") for s in self.sessions.values() for ch in s.public)

    def pending_venue_faults(self) -> dict[str, Any]:
        pending: dict[str, Any] = {}
        if self.reverts:
            pending["revert"] = self.reverts
        if self.private_trail_s is not None:
            pending["private"] = {"trail_s": self.private_trail_s}
        return pending

    def state(self) -> dict[str, Any]:
        return {
            "sessions": [
                {
                    "id": s.id,
                    "wallet": s.account.wallet if s.account else None,
                    "channels": sorted(s.public) + sorted(s.private),
                }
                for s in self.sessions.values()
            ],
            "orders": {oid: o.state for oid, o in self.orders.items()},
            "requests": self.requests,
        }

    def apply_faults(self, spec: dict[str, Any]) -> dict[str, Any]:
        applied = super().apply_faults(spec)
        if spec.get("revert"):
            self.reverts += int(spec["revert"])
            applied["revert"] = self.reverts
        if spec.get("settle"):
            applied["settled"] = self.settle_now()
        if spec.get("trade"):
            t = spec["trade"]
            applied["trade"] = self.trade(
                str(t.get("instrument")), str(t.get("direction")), t.get("price"), t.get("amount")
            )
        if spec.get("cancel"):
            c = spec["cancel"]
            applied["cancelled"] = self.venue_cancel(
                order_id=c.get("order_id"),
                label=c.get("label"),
                reason=c.get("reason", "insufficient_margin"),
            )
        if "private" in spec:
            mode = spec["private"]
            if mode == "outrun":
                self.private_trail_s = None
            elif mode == "trail":
                self.private_trail_s = 0.0
            elif (
                isinstance(mode, dict)
                and isinstance(mode.get("trail_s"), int | float)
                and mode["trail_s"] >= 0
            ):
                self.private_trail_s = float(mode["trail_s"])
            else:
                raise ValueError('private: "outrun", "trail" or {"trail_s": seconds}')
            applied["private"] = (
                "outrun" if self.private_trail_s is None else {"trail_s": self.private_trail_s}
            )
        return applied

    def trade(self, instrument: str, direction: str, price: Any, amount: Any) -> str:
        """Another account's taker trade of `amount` at `price` (`direction` its side) prints on
        `instrument`: published on `trades.*` and matched against the resting client orders it
        reaches, as any trade of the feed is. Returns its trade id. Raises ValueError for terms
        the venue could not print."""
        listing = self.listing(instrument)
        if listing is None:
            raise ValueError(f"trade: no instrument {instrument!r}")
        if direction not in ("buy", "sell"):
            raise ValueError(f"trade: direction must be buy or sell, not {direction!r}")
        try:
            px, size = Decimal(str(price)), Decimal(str(amount))
        except InvalidOperation:
            raise ValueError(f"trade: price and amount must be numbers ({price!r}, {amount!r})") from None
        if not (px.is_finite() and size.is_finite()) or px <= 0 or size <= 0 or px % listing.tick:
            raise ValueError(f"trade: price {px} (tick {listing.tick}) and amount {size} must be positive")
        now = self.clock()
        slim = self.tickers.get(instrument) or {}
        trade_id = _uuid(self._rng)
        data = {
            "trade_id": trade_id,
            "instrument_name": instrument,
            "timestamp": now // 1_000_000,
            "trade_price": _text(px),
            "trade_amount": _text(size),
            "mark_price": slim.get("M", _text(px)),
            "index_price": slim.get("I", "0"),
            "direction": direction,
            "quote_id": None,
            "rfq_id": None,
        }
        frame = orjson.dumps(
            {"method": "subscription", "params": {"channel": f"trades.{instrument}", "data": [data]}}
        )
        self.on_market_frame(frame, now)
        self.publish(frame)
        return trade_id

    def venue_cancel(
        self, *, order_id: str | None = None, label: str | None = None, reason: str = "insufficient_margin"
    ) -> list[str]:
        """The venue cancels open client orders on its own (§3.6 `cancel_reason`: margin, MMP,
        compliance, ...): the one with `order_id`, or every one labelled `label`. Their owners
        hear it on `{subaccount}.orders` if they are listening. Returns the order ids cancelled."""
        if reason not in _VENUE_CANCEL_REASONS:
            raise ValueError(f"cancel: reason must be one of {sorted(_VENUE_CANCEL_REASONS)}, not {reason!r}")
        if (order_id is None) == (label is None):
            raise ValueError("cancel: give order_id or label")
        picked = [
            o
            for o in self.orders.values()
            if o.state == "open" and (o.order_id == order_id if order_id is not None else o.label == label)
        ]
        for o in picked:
            self._end(o, "cancelled", reason)
        return [o.order_id for o in picked]

    def register_session_key(self, wallet: str, signer: str, expiry_s: int | None = None) -> None:
        """Register (or renew) a session key for a wallet the simulator knows."""
        self.accounts[wallet.lower()].session_keys[signer] = expiry_s

    # -- WebSocket and REST -------------------------------------------------------------------
    def new_peer(self, peer_id: int, outbox: trio.MemorySendChannel[bytes], path: str) -> _Peer:
        return _Peer(peer_id, outbox, path)

    def _respond(self, rid: Any, result: Any = None, error: RpcError | None = None) -> bytes:
        if error is not None:
            body: dict[str, Any] = {"code": error.code, "message": error.message}
            if error.data is not None:
                body["data"] = (
                    error.data if isinstance(error.data, str) else orjson.dumps(error.data).decode()
                )
            return orjson.dumps({"id": rid, "error": body})
        return orjson.dumps({"id": rid, "result": result})

    async def on_text(self, peer: _Peer, text: str) -> None:
        try:
            msg = orjson.loads(text)
            rid = msg.get("id")
            method = msg["method"]
            params = msg.get("params") or {}
            if not isinstance(method, str) or not isinstance(params, dict):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            self.send(peer, self._respond(None, error=RpcError(-32700, "Parse error")))
            return
        after: list[bytes] = []
        try:
            result = self.call(method, params, peer=peer, account=peer.account, after=after)
        except RpcError as exc:
            self.send(peer, self._respond(rid, error=exc))
            return
        self.send(peer, self._respond(rid, result))
        for frame in after:
            self.send(peer, frame)

    async def handle_http(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes] | None:
        """`POST /public/<method>` and `POST /private/<method>` with the params as the JSON body
        (§3.1); private calls authenticated by the `X-LYRA*` headers (§3.5). Errors are answered
        with HTTP 200 and the JSON-RPC `error` member (module docstring)."""
        if not path.startswith(("/public/", "/private/")) or method != "POST":
            return None
        name = path.lstrip("/")
        rid = _uuid(self._rng)
        try:
            try:
                params = orjson.loads(body) if body else {}
            except orjson.JSONDecodeError:
                raise RpcError(-32700, "Parse error") from None
            if not isinstance(params, dict):
                raise RpcError(-32600, "Invalid Request", "the body must be a JSON object of params")
            account = self._header_account(headers) if name.startswith("private/") else None
            result = self.call(name, params, peer=None, account=account, after=[])
        except RpcError as exc:
            return 200, self._respond(rid, error=exc)
        return 200, self._respond(rid, result)

    def _header_account(self, headers: dict[str, str]) -> SimAccount:
        wallet = headers.get("x-lyrawallet") or headers.get("x-derivewallet")
        timestamp = headers.get("x-lyratimestamp") or headers.get("x-derivetimestamp")
        signature = headers.get("x-lyrasignature") or headers.get("x-derivesignature")
        if not wallet:
            raise RpcError(14021, "Header wallet missing")
        if not timestamp or not signature:
            raise RpcError(14014, "Invalid signature", "timestamp and signature headers are required")
        return self._verify_login(wallet, timestamp, signature)

    def _verify_login(self, wallet: str, timestamp: str, signature: str) -> SimAccount:
        """§3.5: the timestamp fresh, its EIP-191 signature by a session key of the wallet."""
        account = self.accounts.get(str(wallet).lower())
        if account is None:
            raise RpcError(14000, "Account not found", f"no wallet {wallet}")
        if not str(timestamp).isdigit():
            raise RpcError(14014, "Invalid signature", "timestamp must be UTC milliseconds")
        now_ms = self.clock() // 1_000_000
        if abs(int(timestamp) - now_ms) > self.login_window_s * 1000:
            raise RpcError(14014, "Invalid signature", "timestamp too far from the server time")
        try:
            signer = login_signer(str(timestamp), str(signature))
        except ValueError as exc:
            raise RpcError(14014, "Invalid signature", str(exc)) from None
        problem = account.key_status(signer, now_ms // 1000)
        if problem == 14030:
            raise RpcError(14030, "Session key expired", f"session key {signer} has expired")
        if problem is not None:
            raise RpcError(14026, "Session key not found", f"{signer} is not a session key of {wallet}")
        return account

    # -- methods ------------------------------------------------------------------------------
    def call(
        self,
        method: str,
        params: dict[str, Any],
        *,
        peer: _Peer | None,
        account: SimAccount | None,
        after: list[bytes],
    ) -> Any:
        """Answer one JSON-RPC method (WebSocket or REST). Raises `RpcError`."""
        self.requests += 1
        self.method_counts[method] += 1
        if self.probe is not None and method == "private/order" and "label" in params:
            self.arrived_at[str(params["label"])] = time.perf_counter()
        if self.faults.take_rate_limit():
            raise RpcError(-32000, "Rate limit exceeded")
        if account is not None:
            bucket = account.matching if method in _MATCHING else account.non_matching
            if bucket is not None and not bucket.take():
                raise RpcError(-32000, "Rate limit exceeded")
            if (
                method == "private/cancel_all"
                and account.cancel_all is not None
                and not account.cancel_all.take()
            ):
                raise RpcError(-32000, "Rate limit exceeded", "private/cancel_all: 1 per second")
        handler = _METHODS.get(method)
        if handler is None:
            raise RpcError(-32601, "Method not found", method)
        if method.startswith("private/") and account is None:
            raise RpcError(14021, "Header wallet missing", "log in first (public/login)")
        try:
            return handler(self, params, peer, account, after)
        except RpcError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, InvalidOperation) as exc:
            # A hostile or malformed request is the client's problem, never the venue's.
            raise RpcError(-32602, "Invalid params", f"{type(exc).__name__}: {exc}") from None

    def _login(self, p: dict[str, Any], peer: _Peer | None, _: Any, after: list[bytes]) -> Any:
        account = self._verify_login(
            str(p.get("wallet", "")), str(p.get("timestamp", "")), str(p.get("signature", ""))
        )
        if peer is not None:
            peer.account = account
        return sorted(account.subaccounts)

    def _get_time(self, *_: Any) -> Any:
        return self.clock() // 1_000_000

    def _get_instruments(self, p: dict[str, Any], *_: Any) -> Any:
        currency = p.get("currency")
        kind = p.get("instrument_type")
        if not isinstance(currency, str) or kind not in ("option", "perp", "erc20"):
            raise RpcError(-32602, "Invalid params", "currency and instrument_type (option, perp, erc20)")
        if p.get("expired"):
            return []  # the simulator lists no expired instruments
        return [
            item
            for item in self.instrument_items
            if item["base_currency"] == currency.upper() and item["instrument_type"] == kind
        ]

    def _require(self, name: Any) -> str:
        if not isinstance(name, str) or not any(i["instrument_name"] == name for i in self.instrument_items):
            raise RpcError(12001, "Instrument not found", f"instrument_name {name!r}")
        return name

    def _item(self, name: str) -> dict[str, Any]:
        return next(item for item in self.instrument_items if item["instrument_name"] == name)

    def _get_instrument(self, p: dict[str, Any], *_: Any) -> Any:
        return self._item(self._require(p.get("instrument_name")))

    def _get_ticker(self, p: dict[str, Any], *_: Any) -> Any:
        """`public/get_ticker` (§3.3): the instrument's fields and its prices, from the last
        slim ticker and the book (the clients' resting orders included)."""
        name = self._require(p.get("instrument_name"))
        slim = self.tickers.get(name) or {}
        book = self.book(name)
        bids, asks = book.levels(Side.BUY, 1), book.levels(Side.SELL, 1)
        pricing = slim.get("option_pricing")
        return {
            **self._item(name),
            "best_bid_price": _text(bids[0][0]) if bids else "0",
            "best_bid_amount": _text(bids[0][1]) if bids else "0",
            "best_ask_price": _text(asks[0][0]) if asks else "0",
            "best_ask_amount": _text(asks[0][1]) if asks else "0",
            "mark_price": slim.get("M"),
            "index_price": slim.get("I"),
            "min_price": slim.get("minp"),
            "max_price": slim.get("maxp"),
            "timestamp": self.clock() // 1_000_000,
            "option_pricing": None
            if not pricing
            else {
                "delta": pricing.get("d"),
                "gamma": pricing.get("g"),
                "theta": pricing.get("t"),
                "vega": pricing.get("v"),
                "rho": pricing.get("r"),
                "iv": pricing.get("i"),
                "bid_iv": pricing.get("bi"),
                "ask_iv": pricing.get("ai"),
                "mark_price": pricing.get("m"),
                "forward_price": pricing.get("f"),
                "discount_factor": pricing.get("df"),
            },
        }

    # -- subscriptions --------------------------------------------------------------------------
    def _subscribe(self, p: dict[str, Any], peer: _Peer | None, account: Any, after: list[bytes]) -> Any:
        if peer is None:
            raise RpcError(-32601, "Method not found", "subscriptions are WebSocket only")
        channels = p.get("channels")
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise RpcError(-32602, "Invalid params", "channels must be a list of channel names")
        if any(c.split(".")[0] == "ticker" for c in channels):
            # §3.3: the old ticker channel is gone (the demo venue's words,
            # bourse/error_ticker_deprecated_demo.json, its wallet empty before a login).
            wallet = peer.account.wallet if peer.account is not None else ""
            raise RpcError(
                -32602,
                "Invalid params",
                "`ticker` channel has been deprecated. Please use `ticker_slim`. "
                f"Caught for wallet: {wallet}",
            )
        unmatched = {
            c: f"Channel name `{c}` does not match any patterns" for c in channels if not _pattern(c)
        }
        if unmatched:
            # The demo venue refuses the whole call (bourse/error_invalid_channels_demo.json).
            raise RpcError(13000, "Invalid channels", unmatched)
        status: dict[str, str] = {}
        for channel in channels:
            problem = self._add_channel(peer, channel, after)
            status[channel] = problem or "ok"
        return {"status": status, "current_subscriptions": sorted(peer.public) + sorted(peer.private)}

    def _add_channel(self, peer: _Peer, channel: str, after: list[bytes]) -> str | None:
        """Subscribe `peer` to `channel`; the venue's reason text when it cannot be."""
        parts = channel.split(".")
        head = parts[0]
        if head.isdigit():
            return self._add_private(peer, channel, parts)
        feeds: list[str] = []
        depth = 0
        if head == "ticker_slim" and len(parts) == 3:
            if parts[2] not in ("100", "1000"):
                return "{'interval': ['Must be one of: 100, 1000.']}"
            feed = self._feed_channels.get(parts[1], {}).get("ticker_slim")
            if feed is None:
                return "{'instrument_name': ['Instrument not found']}"
            feeds = [feed]
        elif head == "orderbook" and len(parts) == 4:
            group, book_depth = parts[2], parts[3]
            if group not in ("1", "10", "100") or book_depth not in ("1", "10", "20", "100"):
                return (
                    "{'group': ['Must be one of: 1, 10, 100.'], 'depth': ['Must be one of: 1, 10, 20, 100.']}"
                )
            if group != "1":
                return "{'group': ['the simulator publishes group 1 only']}"
            feed = self._feed_channels.get(parts[1], {}).get("orderbook")
            if feed is None:
                return "{'instrument_name': ['Instrument not found']}"
            feeds = [feed]
            depth = int(book_depth) if int(book_depth) < 10 else 0
        elif head == "trades" and len(parts) == 2:
            feed = self._feed_channels.get(parts[1], {}).get("trades")
            if feed is None:
                return "{'instrument_name': ['Instrument not found']}"
            feeds = [feed]
        elif head == "trades" and len(parts) in (3, 4):
            kind, currency = parts[1], parts[2]
            if kind not in ("option", "perp", "erc20"):
                return f"{{'instrument_type': ['Invalid enum value {kind}']}}"
            if len(parts) == 4 and parts[3] not in _TX_STATUSES:
                return f"{{'tx_status': ['Invalid enum value {parts[3]}']}}"
            feeds = [
                self._feed_channels[item["instrument_name"]]["trades"]
                for item in self.instrument_items
                if item["instrument_type"] == kind and item["base_currency"] == currency
            ]
        else:
            return "Invalid channel"
        peer.public[channel] = feeds
        for feed in feeds:
            peer.routes.setdefault(feed, {})[channel] = depth
        if head == "orderbook":
            after.append(self._snapshot(channel, parts[1], depth))
        return None

    def _add_private(self, peer: _Peer, channel: str, parts: list[str]) -> str | None:
        if peer.account is None:
            return "Unauthorized: public/login first"
        if int(parts[0]) not in peer.account.subaccounts:
            return f"{{'subaccount_id': ['Subaccount {parts[0]} is not yours']}}"
        ok = (
            (len(parts) == 2 and parts[1] in ("orders", "trades", "balances", "quotes"))
            or (len(parts) == 3 and parts[1] == "trades" and parts[2] in _TX_STATUSES)
            or (len(parts) == 3 and parts[1:] == ["best", "quotes"])
        )
        if not ok:
            return "Invalid channel"
        peer.private.add(channel)
        return None

    def _snapshot(self, channel: str, instrument: str, depth: int) -> bytes:
        """The book as the feed last published it, as the channel's next message (same
        publish_id as the last)."""
        data = self.last_book(instrument) or {
            "timestamp": self.clock() // 1_000_000,
            "instrument_name": instrument,
            "publish_id": 0,
            "bids": [],
            "asks": [],
        }
        if depth:
            data["bids"], data["asks"] = data["bids"][:depth], data["asks"][:depth]
        return orjson.dumps({"method": "subscription", "params": {"channel": channel, "data": data}})

    def _unsubscribe(self, p: dict[str, Any], peer: _Peer | None, *_: Any) -> Any:
        if peer is None:
            raise RpcError(-32601, "Method not found", "subscriptions are WebSocket only")
        channels = p.get("channels")
        if channels is None:  # all of them
            channels = list(peer.public) + list(peer.private)
        if not isinstance(channels, list):
            raise RpcError(-32602, "Invalid params", "channels must be a list of channel names")
        status: dict[str, str] = {}
        for channel in channels:
            if not isinstance(channel, str):
                continue
            feeds = peer.public.pop(channel, None)
            if feeds is not None:
                for feed in feeds:
                    targets = peer.routes.get(feed, {})
                    targets.pop(channel, None)
                    if not targets:
                        peer.routes.pop(feed, None)
                status[channel] = "ok"
            elif channel in peer.private:
                peer.private.discard(channel)
                status[channel] = "ok"
            else:
                status[channel] = "not subscribed"
        return {"status": status, "remaining_subscriptions": sorted(peer.public) + sorted(peer.private)}

    # -- orders -------------------------------------------------------------------------------
    def _subaccount(self, p: dict[str, Any], account: SimAccount | None) -> int:
        assert account is not None
        sub = _int(p, "subaccount_id")
        if sub not in account.subaccounts:
            raise RpcError(14001, "Subaccount not found", f"subaccount {sub} is not {account.wallet}'s")
        return sub

    def _verify_order(self, p: dict[str, Any], account: SimAccount | None) -> dict[str, Any]:
        """Everything §3.6 checks before matching; the order's terms and its action."""
        assert account is not None
        sub = self._subaccount(p, account)
        name = self._require(p.get("instrument_name"))
        listing = self._market(name).listing
        if not listing.active or not self._item(name).get("is_active", True):
            raise RpcError(11021, "Instrument is not live", name)
        direction = p.get("direction")
        if direction not in ("buy", "sell"):
            raise RpcError(-32602, "Invalid params", "direction must be buy or sell")
        amount = _dec(p, "amount", 11012, "Invalid amount")
        if amount <= 0 or amount < listing.minimum or amount % listing.step != 0:
            raise RpcError(
                11012,
                "Invalid amount",
                f"amount {amount} must be at least {listing.minimum} in steps of {listing.step}",
            )
        if amount > listing.maximum:
            raise RpcError(11012, "Invalid amount", f"amount {amount} is above {listing.maximum}")
        price = _dec(p, "limit_price", 11013, "Invalid limit price")
        if price <= 0 or price % listing.tick != 0:
            raise RpcError(
                11013, "Invalid limit price", f"limit_price {price} is not on the {listing.tick} grid"
            )
        max_fee = _dec(p, "max_fee", -32602, "Invalid params")
        if max_fee < 0:
            raise RpcError(-32602, "Invalid params", "max_fee must not be negative")
        nonce = _int(p, "nonce")
        expiry = _int(p, "signature_expiry_sec")
        signer = p.get("signer")
        signature = p.get("signature")
        if not isinstance(signer, str) or not isinstance(signature, str):
            raise RpcError(-32602, "Invalid params", "signer and signature are required")
        order_type = p.get("order_type", "limit")
        tif = p.get("time_in_force", "gtc")
        if order_type not in ("limit", "market") or tif not in ("gtc", "post_only", "fok", "ioc"):
            raise RpcError(
                -32602, "Invalid params", "order_type limit|market, time_in_force gtc|post_only|fok|ioc"
            )
        now_ns = self.clock()
        if expiry < now_ns // 1_000_000_000 + 300:
            raise RpcError(
                11011, "Invalid signature expiry", "signature_expiry_sec must be > 5 minutes ahead"
            )
        digits = str(nonce)
        if len(digits) < 14 or abs(int(digits[:13]) - now_ns // 1_000_000) > 86_400_000:
            raise RpcError(11018, "Invalid nonce date", "a nonce is <UTC ms><0-999>, near now")
        if (sub, nonce) in account.nonces:
            raise RpcError(11017, "Nonce not unique", f"nonce {nonce} was used")
        try:
            data = TradeModuleData(
                asset=listing.asset,
                sub_id=listing.sub_id,
                limit_price=price,
                amount=amount,
                max_fee=max_fee,
                recipient_id=sub,
                is_bid=direction == "buy",
            ).encode()
            action = Action(
                subaccount_id=sub,
                nonce=nonce,
                module=self.domain.trade_module,
                data=data,
                expiry=expiry,
                owner=account.wallet,
                signer=signer,
            )
            action_hash = action.struct_hash()
        except (ValueError, TypeError, OverflowError) as exc:
            raise RpcError(-32602, "Invalid params", str(exc)) from None
        return {
            "subaccount_id": sub,
            "instrument": name,
            "direction": direction,
            "amount": amount,
            "limit_price": price,
            "max_fee": max_fee,
            "nonce": nonce,
            "expiry": expiry,
            "signer": signer,
            "signature": signature,
            "order_type": order_type,
            "time_in_force": tif,
            "encoded_data": data,
            "action": action,
            "action_hash": action_hash,
            "typed_data_hash": action.digest(self.domain),
        }

    def _check_signature(self, terms: dict[str, Any], account: SimAccount) -> None:
        action: Action = terms["action"]
        try:
            recovered = action.signer_of(self.domain, terms["signature"])
        except ValueError as exc:
            raise RpcError(14014, "Invalid signature", str(exc)) from None
        if recovered.lower() != terms["signer"].lower():
            raise RpcError(14014, "Invalid signature", "the signature does not recover to the signer")
        problem = account.key_status(recovered, self.clock() // 1_000_000_000)
        if problem == 14030:
            raise RpcError(14030, "Session key expired", recovered)
        if problem is not None:
            raise RpcError(
                14026, "Session key not found", f"{recovered} is not a session key of {account.wallet}"
            )

    def _order_debug(self, p: dict[str, Any], peer: Any, account: SimAccount | None, after: Any) -> Any:
        """`order_debug` (§3.6): what the venue hashes for these params, nothing placed."""
        wallet = p.get("wallet") or (account.wallet if account is not None else None)
        acct = account or (self.accounts.get(str(wallet).lower()) if wallet else None)
        if acct is None:
            raise RpcError(14000, "Account not found", "give wallet, or log in")
        terms = self._verify_order(p, acct)
        from eth_hash.auto import keccak

        return {
            "encoded_data": "0x" + terms["encoded_data"].hex(),
            "encoded_data_hashed": "0x" + keccak(terms["encoded_data"]).hex(),
            "action_hash": "0x" + terms["action_hash"].hex(),
            "typed_data_hash": "0x" + terms["typed_data_hash"].hex(),
        }

    def _order(self, p: dict[str, Any], peer: Any, account: SimAccount | None, after: Any) -> Any:
        assert account is not None
        return self._place(self._accept(p, account), p, account)

    def _accept(self, p: dict[str, Any], account: SimAccount) -> dict[str, Any]:
        """An order's terms, checked (§3.6) and its signature verified, before the book sees it."""
        terms = self._verify_order(p, account)
        self._check_signature(terms, account)
        name = terms["instrument"]
        market = self._market(name)
        amount, price = terms["amount"], terms["limit_price"]
        index, mark = self._prices(name)
        per_unit = self.fees.estimate_per_unit(
            market.listing, amount, index=index or price, mark=mark or price
        )
        if terms["max_fee"] < per_unit:
            raise RpcError(
                -32602,
                "Invalid params",
                f"max_fee {terms['max_fee']} is below the estimated fee per unit {per_unit:.6f} "
                "(signed_max_fee_too_low)",
            )
        rejected = self.faults.take_reject()
        if rejected is not None:
            code, message = rejected
            raise RpcError(int(code), message)
        return terms

    def _place(
        self, terms: dict[str, Any], p: dict[str, Any], account: SimAccount, replaced: str | None = None
    ) -> dict[str, Any]:
        """Match an accepted order, rest what a GTC has left; the `{order, trades}` answer."""
        name = terms["instrument"]
        market = self._market(name)
        amount, price = terms["amount"], terms["limit_price"]
        sub = terms["subaccount_id"]
        tif = terms["time_in_force"]
        now_ms = self.clock() // 1_000_000
        order = SimOrder(
            account=account,
            subaccount_id=sub,
            order_id=_uuid(self._rng),
            instrument=name,
            direction=terms["direction"],
            amount=amount,
            limit_price=price,
            max_fee=terms["max_fee"],
            label=str(p.get("label") or ""),
            nonce=terms["nonce"],
            signer=terms["signer"],
            signature=terms["signature"],
            signature_expiry_sec=terms["expiry"],
            order_type=terms["order_type"],
            time_in_force=tif,
            mmp=bool(p.get("mmp", False)),
            reduce_only=bool(p.get("reduce_only", False)),
            created_ms=now_ms,
            updated_ms=now_ms,
            replaced_order_id=replaced,
        )
        # A market order never rests: it fills up to its signed worst price (§3.6).
        book_tif: Literal["gtc", "ioc", "fok"] = "fok" if tif == "fok" else "ioc" if tif == "ioc" else "gtc"
        if terms["order_type"] == "market" and book_tif == "gtc":
            book_tif = "ioc"
        self._sync(market)
        outcome = market.book.submit(
            order_id=order.order_id,
            owner=order.owner,
            side=Side(order.direction),
            amount=amount,
            price=price,
            tif=book_tif,
            post_only=tif == "post_only",
            self_trade="reject_taker",
        )
        if outcome.rejected == "post_only":
            raise RpcError(11008, "Post only reject", "the order would have crossed")
        if outcome.rejected == "fill_or_kill":
            raise RpcError(11014, "FOK not filled", "the whole amount was not available")
        if outcome.rejected == "self_trade":
            raise RpcError(11007, "Self-crossing disallowed", "the order would trade with your own order")
        account.nonces.add((sub, terms["nonce"]))
        self.orders[order.order_id] = order
        account.orders[order.order_id] = order
        trades = self._matched(market, list(outcome.matches), taker=order, notify_taker=False)
        if outcome.resting is None and order.filled < order.amount:
            order.state, order.cancel_reason = "cancelled", "ioc_or_market_partial_fill"
        elif order.filled == order.amount:
            order.state = "filled"
        # The answer carries the order as it now stands; the channel hears the same.
        self._notify(account, sub, "orders", [self._order_json(order)])
        return {"order": self._order_json(order), "trades": trades}

    def _matched(
        self,
        market: _Market,
        matches: list[Match],
        *,
        taker: SimOrder | None = None,
        notify_taker: bool = True,
    ) -> list[dict[str, Any]]:
        """Fold matches into the client orders they involve: fills, fees, positions, state and
        notifications. Returns `taker`'s trades (the answer's `trades`)."""
        out: list[dict[str, Any]] = []
        touched: list[SimOrder] = []
        for m in matches:
            if m.maker_owner == MARKET:
                # The market's liquidity was taken: the next snapshot sets that level afresh.
                market.levels.pop((Side(m.side).opposite, m.price), None)
            else:
                maker = self.orders.get(m.maker_id)
                if maker is not None:
                    self._fill(market, maker, m.price, m.amount, taker=False)
                    if maker.filled == maker.amount:
                        maker.state = "filled"
                    touched.append(maker)
            if taker is not None and m.taker_id == taker.order_id:
                out.append(self._fill(market, taker, m.price, m.amount, taker=True))
        for o in dict.fromkeys(touched):
            if o is not taker or notify_taker:
                o.updated_ms = self.clock() // 1_000_000
                self._notify(o.account, o.subaccount_id, "orders", [self._order_json(o)])
        return out

    def _fill(
        self, market: _Market, o: SimOrder, price: Decimal, amount: Decimal, *, taker: bool
    ) -> dict[str, Any]:
        """One execution of a client order: its fee, position, balance, trade record."""
        index, mark = self._prices(o.instrument)
        fee = self.fees.fee(
            market.listing,
            amount,
            index=index or price,
            mark=mark or price,
            taker=taker,
            base_fee=taker and not o.base_fee_paid,
        )
        if taker:
            o.base_fee_paid = True
        o.filled += amount
        o.notional += price * amount
        o.fees += fee
        o.updated_ms = self.clock() // 1_000_000
        acct = o.account
        key = (o.subaccount_id, o.instrument)
        signed = amount if o.direction == "buy" else -amount
        held = acct.positions.get(key, _ZERO)
        realized = acct.entries.setdefault(key, _Entry()).trade(held, signed, price, fee, o.updated_ms)
        acct.positions[key] = held + signed
        before = acct.balances.get("USDC", _ZERO)
        acct.balances["USDC"] = before - fee  # fees only: the simulator keeps no cash ledger of premiums
        trade = self._trade_json(o, price, amount, fee, "taker" if taker else "maker")
        trade["realized_pnl"] = _text(realized - fee)
        trade["realized_pnl_excl_fees"] = _text(realized)
        acct.trades.append(trade)  # the history's record: its tx_status follows the chain
        self._notify(acct, o.subaccount_id, "trades", [trade])
        self._notify(
            acct,
            o.subaccount_id,
            "balances",
            [
                {
                    "name": "USDC",
                    "new_balance": _text(acct.balances["USDC"]),
                    "previous_balance": _text(before),
                    "update_type": "trade",
                }
            ],
        )
        revert = self.reverts > 0
        if revert:
            self.reverts -= 1
        due = _trio_now() + self.settle_after_s
        self._settlements.append(_PendingSettlement(due, acct, trade, revert))
        return dict(trade)

    def _end(self, o: SimOrder, state: str, reason: str) -> None:
        """Take an open order out of its book: cancelled or expired, and say so."""
        self._market(o.instrument).book.cancel(o.order_id)
        o.state, o.cancel_reason = state, reason
        o.updated_ms = self.clock() // 1_000_000
        self._notify(o.account, o.subaccount_id, "orders", [self._order_json(o)])

    def _own(self, p: dict[str, Any], account: SimAccount | None) -> SimOrder:
        sub = self._subaccount(p, account)
        o = self.orders.get(str(p.get("order_id")))
        if o is None or o.account is not account or o.subaccount_id != sub:
            raise RpcError(11006, "Order does not exist", f"order_id {p.get('order_id')}")
        return o

    def _cancel(self, p: dict[str, Any], peer: Any, account: SimAccount | None, after: Any) -> Any:
        o = self._own(p, account)
        name = p.get("instrument_name")
        if name is not None and name != o.instrument:
            raise RpcError(11006, "Order does not exist", f"no order {o.order_id} on {name}")
        if o.state == "filled":
            raise RpcError(11004, "Order already filled", o.order_id)
        if o.state != "open":
            raise RpcError(11003, "Order already cancelled", o.order_id)
        self._end(o, "cancelled", "user_request")
        return self._order_json(o)

    def _replace(self, p: dict[str, Any], peer: Any, account: SimAccount | None, after: Any) -> Any:
        """`private/replace` (§3.6; derive-client `PrivateReplaceParamsSchema` /
        `PrivateReplaceResultSchema`): cancel the open order `order_id_to_cancel` (or the one
        signed with `nonce_to_cancel`) and place the new one. The new order's terms and signature
        are checked first (refused: nothing is cancelled); `expected_filled_amount`, if given,
        must be what the old order has filled (else nothing is cancelled). A new order the book
        refuses (post-only, FOK, self-cross) leaves the old one cancelled and comes back as
        `create_order_error`."""
        assert account is not None
        sub = self._subaccount(p, account)
        by_id, by_nonce = p.get("order_id_to_cancel"), p.get("nonce_to_cancel")
        if (by_id is None) == (by_nonce is None):
            raise RpcError(-32602, "Invalid params", "give order_id_to_cancel or nonce_to_cancel")
        if by_id is not None:
            old = self._own({"subaccount_id": sub, "order_id": by_id}, account)
        else:
            nonce = _int(p, "nonce_to_cancel")
            found = [o for o in account.orders.values() if o.subaccount_id == sub and o.nonce == nonce]
            if not found:
                raise RpcError(11006, "Order does not exist", f"no order with nonce {nonce}")
            old = found[0]
        terms = self._accept(p, account)
        if old.state == "filled":
            raise RpcError(11004, "Order already filled", old.order_id)
        if old.state != "open":
            raise RpcError(11003, "Order already cancelled", old.order_id)
        if "expected_filled_amount" in p and p["expected_filled_amount"] is not None:
            expected = _dec(p, "expected_filled_amount", -32602, "Invalid params")
            if expected != old.filled:
                raise RpcError(
                    -32602, "Invalid params", f"expected_filled_amount {expected}, filled {_text(old.filled)}"
                )
        self._end(old, "cancelled", "user_request")
        answer: dict[str, Any] = {"cancelled_order": self._order_json(old)}
        try:
            answer.update(self._place(terms, p, account, replaced=old.order_id))
        except RpcError as exc:
            error: dict[str, Any] = {"code": exc.code, "message": exc.message}
            if exc.data is not None:
                error["data"] = exc.data if isinstance(exc.data, str) else orjson.dumps(exc.data).decode()
            answer.update(create_order_error=error, order=None, trades=None)
        return answer

    def _cancel_where(self, account: SimAccount | None, sub: int, pick: Callable[[SimOrder], bool]) -> int:
        assert account is not None
        picked = [
            o for o in account.orders.values() if o.subaccount_id == sub and o.state == "open" and pick(o)
        ]
        for o in picked:
            self._end(o, "cancelled", "user_request")
        return len(picked)

    def _cancel_by_label(self, p: dict[str, Any], peer: Any, account: SimAccount | None, after: Any) -> Any:
        sub = self._subaccount(p, account)
        label = str(p.get("label", ""))
        name = p.get("instrument_name")
        n = self._cancel_where(
            account, sub, lambda o: o.label == label and (name is None or o.instrument == name)
        )
        return {"cancelled_orders": n}

    def _cancel_by_instrument(
        self, p: dict[str, Any], peer: Any, account: SimAccount | None, after: Any
    ) -> Any:
        sub = self._subaccount(p, account)
        name = self._require(p.get("instrument_name"))
        return {"cancelled_orders": self._cancel_where(account, sub, lambda o: o.instrument == name)}

    def _cancel_by_nonce(self, p: dict[str, Any], peer: Any, account: SimAccount | None, after: Any) -> Any:
        sub = self._subaccount(p, account)
        nonce = _int(p, "nonce")
        return {"cancelled_orders": self._cancel_where(account, sub, lambda o: o.nonce == nonce)}

    def _cancel_all(self, p: dict[str, Any], peer: Any, account: SimAccount | None, after: Any) -> Any:
        sub = self._subaccount(p, account)
        self._cancel_where(account, sub, lambda o: True)
        return "ok"

    def _open_orders(self, p: dict[str, Any], peer: Any, account: SimAccount | None, after: Any) -> Any:
        assert account is not None
        sub = self._subaccount(p, account)
        orders = [
            self._order_json(o)
            for o in account.orders.values()
            if o.subaccount_id == sub and o.state == "open"
        ]
        return {"subaccount_id": sub, "orders": orders}

    def _get_order(self, p: dict[str, Any], peer: Any, account: SimAccount | None, after: Any) -> Any:
        return self._order_json(self._own(p, account))

    def _orders_of(self, account: SimAccount | None, sub: int) -> list[SimOrder]:
        """The subaccount's orders, newest first."""
        assert account is not None
        mine = [o for o in account.orders.values() if o.subaccount_id == sub]
        return sorted(mine, key=lambda o: o.created_ms, reverse=True)

    def _get_orders(self, p: dict[str, Any], peer: Any, account: SimAccount | None, after: Any) -> Any:
        """`private/get_orders`: the subaccount's orders, filtered by `instrument_name`, `label`
        and `status`, paged."""
        sub = self._subaccount(p, account)
        name, label, status = p.get("instrument_name"), p.get("label"), p.get("status")
        if status is not None and status not in _ORDER_STATUSES:
            raise RpcError(-32602, "Invalid params", f"status must be one of {sorted(_ORDER_STATUSES)}")
        orders = [
            self._order_json(o)
            for o in self._orders_of(account, sub)
            if (name is None or o.instrument == name)
            and (label is None or o.label == label)
            and (status is None or o.state == status)
        ]
        page, pagination = account_methods.page_of(orders, p, RpcError)
        return {"subaccount_id": sub, "orders": page, "pagination": pagination}

    def _get_order_history(self, p: dict[str, Any], peer: Any, account: SimAccount | None, after: Any) -> Any:
        """`private/get_order_history`: every order of the subaccount, paged."""
        sub = self._subaccount(p, account)
        page, pagination = account_methods.page_of(
            [self._order_json(o) for o in self._orders_of(account, sub)], p, RpcError
        )
        return {"subaccount_id": sub, "orders": page, "pagination": pagination}

    def _get_trade_history(self, p: dict[str, Any], peer: Any, account: SimAccount | None, after: Any) -> Any:
        """`private/get_trade_history`: the trades of a subaccount (or, given `wallet`, of all the
        wallet's subaccounts) within [`from_timestamp`, `to_timestamp`] ms, filtered by
        `instrument_name` and `order_id`, newest first, paged; each with its current `tx_status`."""
        assert account is not None
        wallet = p.get("wallet")
        if wallet is not None:
            if str(wallet).lower() != account.wallet.lower():
                raise RpcError(14000, "Account not found", f"wallet {wallet} is not the one logged in")
            subs, sub = account.subaccounts, 0
        else:
            sub = self._subaccount(p, account)
            subs = {sub}
        start = _int(p, "from_timestamp") if "from_timestamp" in p else 0
        end = _int(p, "to_timestamp") if "to_timestamp" in p else self.clock() // 1_000_000
        name, order_id = p.get("instrument_name"), p.get("order_id")
        trades = [
            dict(t)
            for t in reversed(account.trades)
            if t["subaccount_id"] in subs
            and start <= t["timestamp"] <= end
            and (name is None or t["instrument_name"] == name)
            and (order_id is None or t["order_id"] == order_id)
        ]
        page, pagination = account_methods.page_of(trades, p, RpcError)
        return {"subaccount_id": sub, "trades": page, "pagination": pagination}

    def _get_subaccounts(self, p: dict[str, Any], peer: Any, account: SimAccount | None, after: Any) -> Any:
        assert account is not None
        return {"wallet": account.wallet, "subaccount_ids": sorted(account.subaccounts)}

    def _get_positions(self, p: dict[str, Any], peer: Any, account: SimAccount | None, after: Any) -> Any:
        assert account is not None
        sub = self._subaccount(p, account)
        out = []
        for (s, name), amount in sorted(account.positions.items()):
            listing = self.listing(name)
            if s != sub or amount == 0 or listing is None:
                continue
            slim = self.tickers.get(name) or {}
            mark = Decimal(str(slim.get("M") or 0))
            entry = account.entries.get((s, name)) or _Entry()
            pricing = slim.get("option_pricing") or {}
            greek = {
                g: _text(Decimal(str(pricing.get(k) or 0)) * amount)
                for g, k in (("gamma", "g"), ("theta", "t"), ("vega", "v"))
            }
            delta = Decimal(str(pricing["d"])) * amount if pricing else amount
            unrealized = (mark - entry.average) * amount
            # The field set of a real `get_positions` item (perps/http_positions_result_eth.json)
            # and of Derive's schema (derive-client `PositionResponseSchema`). Fees are taken in
            # the realized P&L (`realized_pnl` = `realized_pnl_excl_fees` - `total_fees`), not in
            # the average price. No margin model: margins 0, leverage and liquidation price null.
            out.append(
                {
                    "amount": _text(amount),
                    "amount_step": _text(listing.step),
                    "average_price": _text(entry.average),
                    "average_price_excl_fees": _text(entry.average),
                    "creation_timestamp": entry.created_ms,
                    "cumulative_funding": _text(entry.funding),
                    "delta": _text(delta),
                    "gamma": greek["gamma"],
                    "index_price": slim.get("I", "0"),
                    "initial_margin": "0",
                    "instrument_name": name,
                    "instrument_type": listing.kind,
                    "leverage": None,
                    "liquidation_price": None,
                    "maintenance_margin": "0",
                    "mark_price": slim.get("M", "0"),
                    "mark_value": _text(mark * amount),
                    "net_settlements": "0",
                    "open_orders_margin": "0",
                    "pending_funding": "0",
                    "realized_pnl": _text(entry.realized - entry.fees),
                    "realized_pnl_excl_fees": _text(entry.realized),
                    "theta": greek["theta"],
                    "total_fees": _text(entry.fees),
                    "unrealized_pnl": _text(unrealized),
                    "unrealized_pnl_excl_fees": _text(unrealized),
                    "vega": greek["vega"],
                }
            )
        return {"subaccount_id": sub, "positions": out}

    # -- expiries and funding (what the venue does; the tests say when) ---------------------------
    def deliver(self, instrument: str, settlement_price: Decimal) -> None:
        """An option settles at `settlement_price` (the index's): its instrument now carries
        `option_details.settlement_price` (VENUES.md §3, `public/get_instrument`: null until
        settled) and is no longer active, and every subaccount's position in it is closed."""
        item = self._item(instrument)
        if not item.get("option_details"):
            raise ValueError(f"{instrument}: not an option")
        item["option_details"] = {**item["option_details"], "settlement_price": _text(settlement_price)}
        item["is_active"] = False
        market = self._market(instrument)
        market.listing = attrs.evolve(market.listing, active=False)
        for acct in self.accounts.values():
            for key in [k for k in acct.positions if k[1] == instrument]:
                del acct.positions[key]

    def pay_funding(self, instrument: str, rate: Decimal, *, ts_ms: int | None = None) -> dict[int, Decimal]:
        """One hour's funding on a perpetual at the hourly `rate` (§3.3 `f`; positive: longs
        pay shorts) on each subaccount's position, valued at the index: kept for
        `private/get_funding_history`. Returns the funding per subaccount (received: positive)."""
        ts = self.clock() // 1_000_000 if ts_ms is None else ts_ms
        index, _ = self._prices(instrument)
        out: dict[int, Decimal] = {}
        for acct in self.accounts.values():
            for (sub, name), amount in acct.positions.items():
                if name != instrument or not amount or not index:
                    continue
                funding = -rate * amount * index
                acct.balances["USDC"] = acct.balances.get("USDC", _ZERO) + funding
                acct.entries.setdefault((sub, name), _Entry()).funding += funding
                acct.funding.append(
                    {
                        "subaccount_id": sub,
                        "instrument_name": name,
                        "timestamp": ts,
                        "funding": _text(funding),
                        "pnl": "0",
                    }
                )
                out[sub] = funding
        return out

    def _get_funding_history(
        self, p: dict[str, Any], peer: Any, account: SimAccount | None, after: Any
    ) -> Any:
        """`private/get_funding_history`: `{events: [{funding, instrument_name, pnl, timestamp}],
        pagination: {count, num_pages}}` (Derive's OpenAPI `PrivateGetFundingHistoryResultSchema`)
        for one subaccount, within [start_timestamp, end_timestamp] ms, paged by `page`,
        `page_size` (a page past the last answers the last)."""
        assert account is not None
        sub = self._subaccount(p, account)
        start = _int(p, "start_timestamp") if "start_timestamp" in p else 0
        end = _int(p, "end_timestamp") if "end_timestamp" in p else 2**62
        name = p.get("instrument_name")
        found = [
            {k: v for k, v in e.items() if k != "subaccount_id"}
            for e in account.funding
            if e["subaccount_id"] == sub
            and start <= e["timestamp"] <= end
            and name in (None, e["instrument_name"])
        ]
        page, pagination = account_methods.page_of(found, p, RpcError)
        return {"events": page, "pagination": pagination}

    # -- reports --------------------------------------------------------------------------------
    def _order_json(self, o: SimOrder) -> dict[str, Any]:
        """An order object (§3.6; the field set of the NT testnet capture of `private/order`)."""
        return {
            "amount": _text(o.amount),
            "average_price": _text(o.average),
            "cancel_reason": o.cancel_reason,
            "creation_timestamp": o.created_ms,
            "direction": o.direction,
            "extra_fee": "0",
            "filled_amount": _text(o.filled),
            "instrument_name": o.instrument,
            "is_transfer": False,
            "label": o.label,
            "last_update_timestamp": o.updated_ms,
            "limit_price": _text(o.limit_price),
            "max_fee": _text(o.max_fee),
            "mmp": o.mmp,
            "nonce": o.nonce,
            "order_fee": _text(o.fees),
            "order_id": o.order_id,
            "order_status": o.state,
            "order_type": o.order_type,
            "quote_id": None,
            "replaced_order_id": o.replaced_order_id,
            "signature": o.signature,
            "signature_expiry_sec": o.signature_expiry_sec,
            "signed_limit_price": None,
            "signer": o.signer,
            "subaccount_id": o.subaccount_id,
            "time_in_force": o.time_in_force,
            "trigger_price": None,
            "trigger_price_type": None,
            "trigger_reject_message": None,
            "trigger_type": None,
        }

    def _trade_json(
        self, o: SimOrder, price: Decimal, amount: Decimal, fee: Decimal, role: str
    ) -> dict[str, Any]:
        """One of our trades (§3.4; the field set of `perps/http_private_trade_eth.json`)."""
        slim = self.tickers.get(o.instrument) or {}
        return {
            "direction": o.direction,
            "expected_rebate": "0",
            "extra_fee": "0",
            "index_price": slim.get("I", "0"),
            "instrument_name": o.instrument,
            "is_transfer": False,
            "label": o.label,
            "liquidity_role": role,
            "mark_price": slim.get("M", "0"),
            "order_id": o.order_id,
            "quote_id": None,
            "rfq_id": None,
            "realized_pnl": "0",
            "realized_pnl_excl_fees": "0",
            "subaccount_id": o.subaccount_id,
            "timestamp": self.clock() // 1_000_000,
            "trade_amount": _text(amount),
            "trade_fee": _text(fee),
            "trade_id": _uuid(self._rng),
            "trade_price": _text(price),
            "transaction_id": _uuid(self._rng),
            "tx_hash": None,
            "tx_status": "requested",
            "wallet": o.account.wallet,
        }

    def _notify(self, account: SimAccount, sub: int, what: str, data: list[dict[str, Any]]) -> None:
        """Send `data` on `{sub}.{what}` to the peers of `account` that follow it (now, or held
        back by the `private` switch)."""
        channel = f"{sub}.{what}"
        frame = orjson.dumps({"method": "subscription", "params": {"channel": channel, "data": data}})
        if self.private_trail_s is not None:
            self._held.append((_trio_now() + self.private_trail_s, account, channel, frame))
            return
        self._deliver_private(account, channel, frame)

    def _deliver_private(self, account: SimAccount, channel: str, frame: bytes) -> None:
        for peer in list(self.sessions.values()):
            if peer.account is account and channel in peer.private:
                self.send(peer, frame)

    def _release(self) -> None:
        """Send the private notifications the `private` switch held back, once due."""
        if not self._held:
            return
        now = _trio_now()
        due = [h for h in self._held if h[0] <= now]
        self._held = [h for h in self._held if h[0] > now]
        for _, account, channel, frame in due:
            self._deliver_private(account, channel, frame)
        self.late_sent += len(due)

    @property
    def late_pending(self) -> int:
        """Private notifications the `private` switch holds back, not yet due."""
        return len(self._held)

    def settle_now(self) -> int:
        """Every pending client fill settles (or reverts) now; returns how many."""
        pending = len(self._settlements)
        self._settle(everything=True)
        return pending

    def _settle(self, *, everything: bool = False) -> None:
        """Trades settle (or revert) on chain `settle_after_s` after their match (§3.4)."""
        if not self._settlements:
            return
        now = math.inf if everything else _trio_now()
        due = [s for s in self._settlements if s.due <= now]
        if not due:
            return
        self._settlements = [s for s in self._settlements if s.due > now]
        for s in due:
            # The history's record changes with the chain; notifications carry a copy.
            s.trade["tx_status"] = "reverted" if s.revert else "settled"
            if not s.revert:
                s.trade["tx_hash"] = "0x" + self._rng.getrandbits(256).to_bytes(32, "big").hex()
            trade = dict(s.trade)
            sub = trade["subaccount_id"]
            if s.revert:
                key = (sub, trade["instrument_name"])
                amount = Decimal(trade["trade_amount"])
                signed = amount if trade["direction"] == "buy" else -amount
                s.account.positions[key] = s.account.positions.get(key, _ZERO) - signed
                s.account.balances["USDC"] += Decimal(trade["trade_fee"])
                self._notify(s.account, sub, "trades", [trade])
                self._notify(s.account, sub, "trades.reverted", [trade])
            else:
                self._notify(s.account, sub, "trades.settled", [trade])


def _pattern(channel: str) -> bool:
    """Whether a channel name matches one of the venue's channel patterns (§3.4): a name that
    does not is refused with 13000; one that does but names nothing gets a status string."""
    parts = channel.split(".")
    head = parts[0]
    if head.isdigit():
        return len(parts) in (2, 3)
    if head in ("ticker_slim", "ticker"):
        return len(parts) == 3 and bool(parts[1])
    if head == "orderbook":
        return len(parts) == 4 and bool(parts[1])
    if head == "trades":
        return len(parts) in (2, 3, 4) and bool(parts[1])
    return head in ("spot_feed", "margin", "auctions") or (len(parts) == 2 and parts[1] == "rfqs")


def demo_account() -> SimAccount:
    """The demo wallet (`DEMO_WALLET`, subaccount `DEMO_SUBACCOUNT`, session key
    `DEMO_SESSION_KEY`)."""
    return SimAccount(DEMO_WALLET, {DEMO_SUBACCOUNT}, {DEMO_SIGNER: None})


_METHODS: Final[dict[str, Callable[..., Any]]] = {
    "public/login": DeriveSimulator._login,
    "public/get_time": DeriveSimulator._get_time,
    "public/get_instruments": DeriveSimulator._get_instruments,
    "public/get_instrument": DeriveSimulator._get_instrument,
    "public/get_ticker": DeriveSimulator._get_ticker,
    "public/order_debug": DeriveSimulator._order_debug,
    "subscribe": DeriveSimulator._subscribe,
    "unsubscribe": DeriveSimulator._unsubscribe,
    "private/order": DeriveSimulator._order,
    "private/order_debug": DeriveSimulator._order_debug,
    "private/cancel": DeriveSimulator._cancel,
    "private/replace": DeriveSimulator._replace,
    "private/cancel_by_label": DeriveSimulator._cancel_by_label,
    "private/cancel_by_instrument": DeriveSimulator._cancel_by_instrument,
    "private/cancel_by_nonce": DeriveSimulator._cancel_by_nonce,
    "private/cancel_all": DeriveSimulator._cancel_all,
    "private/get_open_orders": DeriveSimulator._open_orders,
    "private/get_order": DeriveSimulator._get_order,
    "private/get_orders": DeriveSimulator._get_orders,
    "private/get_order_history": DeriveSimulator._get_order_history,
    "private/get_trade_history": DeriveSimulator._get_trade_history,
    "private/get_subaccounts": DeriveSimulator._get_subaccounts,
    "private/get_positions": DeriveSimulator._get_positions,
    "private/get_funding_history": DeriveSimulator._get_funding_history,
}
account_methods.register(_METHODS, RpcError)
