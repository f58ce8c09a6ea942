"""A local Deribit: the same JSON-RPC over WebSocket (`/ws/api/v2`) and HTTP (`/api/v2/<method>`),
on 127.0.0.1 (`tradingd simulate deribit --port N`). Tests point the daemon at it; so can users.

An independent witness of the connector: everything here is written from Deribit's documents
(VENUES.md §1) and real captured frames (tests/fixtures/deribit, /work/shared/fixtures/deribit),
and shares no code with `tradingd.connectors` (tests/house/test_layout.py checks it).

Fidelity (VENUES.md §1):
- Auth (`auth.py`): `client_credentials`, `client_signature` (HMAC checked, timestamp within
  60 s), `refresh_token`; HTTP `Authorization: Bearer`, `Basic`, or `deri-hmac-sha256` (checked).
- Heartbeats: after `public/set_heartbeat` the server sends `test_request`; a client that has not
  answered with `public/test` by the next one is disconnected (§1.5).
- The market: the synthetic market of `generator.py`, stepped on the wall clock. The simulator
  keeps its own book per instrument (`book.py`: the shared matching engine's `OrderBook` holding
  the market's levels and the clients' orders) with its own `change_id` chain, and publishes what
  that book shows: client orders are in the public book, as on Deribit.
- Public channels (any of the intervals `raw` (authenticated connections only), `100ms`, `agg2`):
  `ticker.{instrument}.{interval}`, `book.{instrument}.{interval}` (a snapshot, then changes
  chained by `prev_change_id`), `book.{instrument}.{group}.{depth}.{interval}` (always a whole
  top-`depth` book of `[price, amount]`; groups: BTC `none,1,2,5,10`, ETH `none,5,10,25,100,250`
  in hundredths), `trades.{instrument}.{interval}`, `trades.{kind}.{currency}.{interval}`,
  `quote.{instrument}` (sent when the best bid or ask changes), `deribit_price_index.{index}`
  (`btc_usd`, `eth_usd`). Unknown channels are left out of the subscribe answer (§1.4).
- Private channels: `user.orders.*`, `user.trades.*`, `user.changes.*` (by instrument, or by
  `{kind}.{currency}`; `raw` gives `user.orders` one order, the others a list), and
  `user.portfolio.{currency}`.
- A subscribe asking for a `raw` interval on a connection that has not authenticated is refused
  whole with 13778 `raw_subscriptions_not_available_for_unauthorized` (§1.4; the real answer is
  in cryptofeed's issue #768).
- An empty side of a book is written `price 0, amount 0` in `ticker` and `quote` (as the real
  captures show, whatever §1.6 says).
- Orders: `private/buy`, `sell`, `edit`, `cancel`, `cancel_all`, `cancel_all_by_instrument`,
  `cancel_by_label`, open orders, order state, user trades, account summary, positions,
  settlements (user trades: the last 24 h, or with `historical: true` all but the last few
  seconds, as Deribit's docs on historical trades say: `public_methods.kept_trades`); matched in
  price-time priority (`simulators/matching.py`) against the market's
  levels and the other clients' orders. A resting order fills when the feed prints a trade
  through it or moves its levels across it. Fees from `fees.py`. A post-only order that would
  take is repriced just inside the spread, or refused with 11054 under `reject_post_only`.
  Self-trading: prevented with `reject_taker` (10003 `order_overlap`) unless the simulator is
  built with `self_trading=True`; an account may choose `reject_taker` or `cancel_maker` with
  `private/set_self_trading_config`.
- Price band: a buy above the ticker's `max_price` is clamped to it, a sell below `min_price`
  too (Deribit's ticker docs); a market order executes within the band and carries that bound
  as its `price` (VENUES.md's official market-order samples carry a number).
- Rate limits: the matching engine's credit bucket (§1.10, tier 4 by default): a client that
  bursts past it gets `too_many_requests` and its session closed, as on Deribit.
- Funds: an order whose cost or initial margin the account's balance in the settlement
  currency cannot cover is refused with 10009 `not_enough_funds` (§1.9): a buy of an option
  pays its premium (amount x price); a future, and a sold option, need initial margin on the
  part that grows the position (futures 2% of its value in the settlement currency; a short
  option 15% of the underlying plus its mark). The model is Deribit's at its simplest: no
  portfolio margin, and other open orders reserve nothing.
- A `label` longer than 64 characters (VENUES.md §1.7) is refused with -32602 `Invalid params`
  naming it; a malformed parameter is -32602 too, its `data` naming the parameter where known
  and never carrying the simulator's internals.
- A WebSocket frame over 32 KiB is refused with `{"code": -32600, "message": "request entity too
  large"}` and no `id`: Deribit's answer to a subscribe with too many channels (seen by
  tmatic-trading/crypto-platform issues #402 and #439, which split subscriptions to stay under it;
  crypto-crawler/crypto-crawler-rs `crypto-ws-client/src/clients/deribit.rs` names the limit: "single
  frame in websocket connection frame exceeds the limit (32 kB)").

Fault switches (tests, and `POST /_sim/faults` with a JSON object):
- The shared ones (engine/sim/server.py): `drop` the connections, `stall_s` (send nothing,
  heartbeats included), `gap` (an instrument's next book change is lost to every subscriber:
  the chain breaks), `reject` (the next orders fail with a code; default 10009
  `not_enough_funds`), `rate_limit` (the next requests get 10028 and the session ends),
  `garbage` (malformed frames), `frames` / `frames_b64` (given frames).
- `no_quotes`: `{"instrument": name, "side": "buy" | "sell" | "both"}` the market stops quoting
  that side (its levels are withdrawn and the feed's ignored): ticker and quote then show the
  side as `0 / 0`; `{"instrument": name, "side": null}` quotes again.
- `listing`: an instrument (or `"*"`): the next subscription to its `book.X.interval` starts
  with a `change` from `prev_change_id: 0` instead of a snapshot, as a client subscribed at a
  new listing's birth sees it.
- `order_answer`: `"user_first"` (default: an order's `user.*` notifications go out before the
  answer to its request) or `"answer_first"` (the answer outruns them).
- `answer_delay_s`: the answer to an order request trails its `user.*` notifications by this long.
- `user_delay_s`: every `user.*` notification is held back this long (it trails the answer).
- `max_frame_bytes`: the size above which a request frame is refused (-32600; default 32 KiB).
"""

from __future__ import annotations

import base64
import hmac
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, ClassVar, Final
from urllib.parse import parse_qsl

import attrs
import orjson
import structlog
import trio

from tradingd.engine.sim import SimFaults, SimPeer, SimulatorServer, serve
from tradingd.engine.sim.server import COUNT, OBJECT, SECONDS, SHARED_SWITCHES, TEXT, Switch

from ..matching import MARKET, Match, Outcome, Side
from . import auth, public_methods, wire
from .book import MarketBook
from .fees import FeeSchedule
from .generator import DeribitFeed
from .instruments import Listing
from .naming import Right

__all__ = ["DEFAULT_ACCOUNTS", "DeribitSimulator", "Faults", "serve"]

VENUE: Final = "deribit"
DEFAULT_ACCOUNTS: Final = {"tradingd-sim": "sim-secret-0123456789"}
MAX_FRAME_BYTES: Final = 32 * 1024  # module docstring: Deribit's -32600 "request entity too large"
MAX_LABEL: Final = 64  # VENUES.md §1.7: `label` (<=64 chars)
# The funds an order needs (module docstring): futures' initial margin starts at 2% of the
# position (50x; Deribit's margin docs), a short option's at 15% of the underlying plus its mark.
_FUTURE_IM: Final = Decimal("0.02")
_SHORT_OPTION_IM: Final = Decimal("0.15")
_INTERVALS: Final = frozenset({"100ms", "raw", "agg2"})
_DEPTHS: Final = frozenset({"1", "10", "20"})
# §1.6: grouped books' groups per currency; ETH's are hundredths of a dollar.
_GROUPS: Final = {
    "BTC": {"1": Decimal(1), "2": Decimal(2), "5": Decimal(5), "10": Decimal(10)},
    "ETH": {g: Decimal(g) / 100 for g in ("5", "10", "25", "100", "250")},
}
_KINDS: Final = frozenset({"future", "option", "spot", "future_combo", "option_combo", "any"})
_NUMERIC: Final = frozenset(
    {"amount", "contracts", "price", "trigger_price", "depth", "count", "interval", "timestamp", "max_show",
     "start_timestamp", "end_timestamp", "trigger_offset", "display_amount", "search_start_timestamp"}
)  # fmt: skip
_BOOLEAN: Final = frozenset({"post_only", "reduce_only", "reject_post_only", "expired", "mmp", "include_old"})
_VERSION: Final = "1.2.26"
_MATCHING: Final = frozenset(  # the matching engine's methods: their own rate limit (§1.10)
    {
        "private/buy",
        "private/sell",
        "private/edit",
        "private/cancel",
        "private/cancel_all",
        "private/cancel_all_by_instrument",
        "private/cancel_by_label",
    }
)
_TIF: Final = {
    "good_til_cancelled": "gtc",
    "good_til_day": "gtc",
    "immediate_or_cancel": "ioc",
    "fill_or_kill": "fok",
}
_ZERO: Final = Decimal(0)
_HEARTBEAT: Final = b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}'


class RpcError(Exception):
    """A JSON-RPC error answer (§1.9 codes)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": self.data}


Faults = SimFaults  # the switches every simulator has (engine/sim/server.py)


@attrs.define
class DeribitFaults:
    """Deribit's own switches (module docstring)."""

    listing: set[str] = attrs.field(factory=set)
    order_answer: str = "user_first"
    answer_delay_s: float = 0.0
    user_delay_s: float = 0.0
    max_frame_bytes: int = MAX_FRAME_BYTES

    def take_listing(self, instrument: str) -> bool:
        if instrument in self.listing or "*" in self.listing:
            self.listing.discard(instrument)
            self.listing.discard("*")
            return True
        return False


class _Bucket:
    """A credit bucket (§1.10): `burst` requests, refilled at `rate` a second."""

    def __init__(self, burst: float, rate: float) -> None:
        self.burst = burst
        self.rate = rate
        self.credits = burst
        self.stamp = time.monotonic()

    def try_acquire(self, cost: float = 1.0) -> bool:
        now = time.monotonic()
        self.credits = min(self.burst, self.credits + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.credits >= cost:
            self.credits -= cost
            return True
        return False


@attrs.define(eq=False)
class _Account:
    client_id: str
    secret: str
    balances: dict[str, Decimal] = attrs.field(
        factory=lambda: {"BTC": Decimal(10), "ETH": Decimal(100), "USDC": Decimal(100_000)}
    )
    positions: dict[str, Decimal] = attrs.field(factory=dict)
    orders: dict[str, _Order] = attrs.field(factory=dict)
    trades: list[dict[str, Any]] = attrs.field(factory=list)  # the account's trades, oldest first
    settlements: list[dict[str, Any]] = attrs.field(factory=list)  # deliveries and settlements, oldest first
    limiter: _Bucket = attrs.field(factory=lambda: _Bucket(20.0, 5.0))
    self_trade: str = "reject_taker"  # private/set_self_trading_config: reject_taker | cancel_maker
    user_id: int = 0  # Deribit's numeric user id, in order objects


@attrs.define(eq=False)
class _Order:
    order_id: str
    account: _Account
    instrument: str
    direction: str  # buy | sell
    order_type: str  # limit | market
    price: Decimal | None
    amount: Decimal
    label: str
    time_in_force: str  # Deribit's name
    post_only: bool
    reject_post_only: bool
    reduce_only: bool
    created_ms: int
    updated_ms: int
    state: str = "open"
    filled: Decimal = _ZERO
    notional: Decimal = _ZERO  # sum of price x amount of the fills
    cancel_reason: str | None = None
    replaced: bool = False

    @property
    def average(self) -> Decimal:
        return self.notional / self.filled if self.filled else _ZERO


@attrs.define(eq=False)
class _Session(SimPeer):
    account: _Account | None = None
    # Requested public channel -> the (topic, key) pairs it is delivered under.
    wanted: dict[str, list[tuple[str, str]]] = attrs.field(factory=dict)
    index: dict[tuple[str, str], list[str]] = attrs.field(factory=dict)
    grouped: dict[str, tuple[Decimal | None, int]] = attrs.field(factory=dict)
    private: set[str] = attrs.field(factory=set)  # user.* channels
    heartbeat_s: float = 0.0
    awaiting_test: bool = False
    delayed: list[tuple[float, bytes]] = attrs.field(factory=list)  # `user_delay_s`: (due, frame)


def _coerce(params: dict[str, Any]) -> dict[str, Any]:
    """HTTP GET params arrive as strings: numbers and booleans as Deribit reads them."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if k in _NUMERIC and isinstance(v, str):
            try:
                out[k] = int(v) if v.lstrip("-").isdigit() else float(v)
            except ValueError:
                out[k] = v
        elif k in _BOOLEAN and isinstance(v, str):
            out[k] = v.lower() == "true"
        else:
            out[k] = v
    return out


def _on_step(value: Decimal, step: Decimal, param: str, code: int, message: str) -> bool:
    """`value` is a whole number of `step`s; one too large to divide (1e308) is the venue's
    error for `param`."""
    try:
        return value % step == 0
    except InvalidOperation:
        raise RpcError(code, message, {"param": param}) from None


def _decimal(x: Any, param: str, code: int, message: str) -> Decimal:
    """A JSON number as an exact Decimal (floats by their shortest repr); anything else, or a
    non-finite one, is the venue's error."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise RpcError(code, message, {"param": param})
    try:
        d = Decimal(repr(x)) if isinstance(x, float) else Decimal(x)
    except InvalidOperation:
        raise RpcError(code, message, {"param": param}) from None
    if not d.is_finite():
        raise RpcError(code, message, {"param": param})
    # 10.0 on the wire is the amount 10 (no trailing zeros carried into positions and answers).
    return d.to_integral_value() if d == d.to_integral_value() else d.normalize()


class DeribitSimulator(SimulatorServer["_Session"]):
    """The simulated venue (module docstring). An ASGI app; `run` steps its market."""

    venue = VENUE
    ws_paths = ("/ws/api/v2",)
    default_reject = (10009, "not_enough_funds")
    switches: ClassVar[dict[str, Switch]] = {
        **SHARED_SWITCHES,
        "no_quotes": OBJECT,
        "listing": TEXT,
        "order_answer": Switch(
            '"user_first" or "answer_first"', lambda v: v in ("user_first", "answer_first")
        ),
        "answer_delay_s": SECONDS,
        "user_delay_s": SECONDS,
        "max_frame_bytes": COUNT,
    }

    def __init__(
        self,
        *,
        seed: int = 7,
        strikes: int = 4,
        accounts: dict[str, str] | None = None,
        step_s: float = 0.1,
        matching_rate: float = 5.0,
        matching_burst: float = 20.0,
        outbox: int = 10_000,
        heartbeat_scale: float = 1.0,
        self_trading: bool = False,
        clock: Callable[[], int] = time.time_ns,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        super().__init__(step_s=step_s, outbox=outbox, clock=clock, log=log)
        # `strikes`: per expiry and currency, the generator's option (a chain a surface can fit
        # needs 5 or more; `tradingd simulate deribit --strikes N`).
        self.feed = DeribitFeed.create(seed=seed, start_ns=clock(), strikes=strikes)
        self.fees = FeeSchedule()
        self.deribit_faults = DeribitFaults()
        self.late_sent = 0  # `user_delay_s` notifications sent once due (tests wait on it)
        self.instrument_items: list[dict[str, Any]] = [
            item for result in self.feed.results for item in result
        ]
        self.listings: dict[str, Listing] = {}
        self.books: dict[str, MarketBook] = {}
        for item in self.instrument_items:
            self._list(item)
        self.tickers: dict[str, dict[str, Any]] = {}
        self.trades: dict[str, list[dict[str, Any]]] = {}
        self.index_prices: dict[str, Decimal] = {}  # btc_usd -> the last index price
        self._pending: list[tuple[str, str, bytes | None]] = []  # public frames to route
        self._touched: dict[str, _Order] = {}  # orders changed by the operation under way
        self._private_buffer: list[tuple[_Session, bytes]] | None = None
        for _, frame in self.feed.opening():
            self._open(frame)
        self.accounts = {
            cid: _Account(cid, sec, user_id=96_100 + n)
            for n, (cid, sec) in enumerate((accounts or DEFAULT_ACCOUNTS).items(), start=1)
        }
        self.self_trading = self_trading  # an account's orders may trade with each other
        for acct in self.accounts.values():
            acct.limiter = _Bucket(matching_burst, matching_rate)
            acct.self_trade = "allow" if self_trading else "reject_taker"
        self.tokens: dict[str, _Account] = {}
        self.refresh_tokens: dict[str, _Account] = {}
        self.orders: dict[str, _Order] = {}  # by venue order id
        self._order_ids = itertools.count(3_100_000_001)
        self._trade_ids = itertools.count(410_000_001)
        self._user_trade_seq = itertools.count(1)
        # Tests compress heartbeat time: 0.1 makes Deribit's minimum 10 s interval last 1 s.
        self.heartbeat_scale = heartbeat_scale
        self.deliveries_made: list[dict[str, Any]] = []  # the public delivery records, oldest first

    # -- instruments ---------------------------------------------------------------------------
    def _list(self, item: dict[str, Any], change_id: int = 0) -> Listing:
        listing = Listing.from_item(item)
        self.listings[listing.name] = listing
        self.books[listing.name] = MarketBook.create(listing, change_id)
        return listing

    def add_instrument(self, item: dict[str, Any]) -> None:
        """List one more instrument (a `get_instruments` item) with an empty book: a new listing."""
        self.instrument_items.append(dict(item))
        self._list(item)

    def _require_instrument(self, name: Any) -> str:
        if not isinstance(name, str) or name not in self.listings:
            raise RpcError(10020, "invalid_or_unsupported_instrument", {"param": "instrument_name"})
        return name

    def _base_of(self, instrument: str) -> str | None:
        listing = self.listings.get(instrument)
        return None if listing is None else listing.base

    def top(self, instrument: str) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
        """(bid, bid amount, ask, ask amount) of the public book (0 / 0 for an empty side)."""
        mb = self.books.get(instrument)
        return None if mb is None else mb.best(published=True)

    # -- the market ---------------------------------------------------------------------------
    def _now_ms(self) -> int:
        return self.clock() // 1_000_000

    def _open(self, frame: bytes) -> None:
        """The feed's opening: book snapshots set the market's levels and start the chains."""
        msg = orjson.loads(frame)
        if msg.get("method") != "subscription":
            return
        data = msg["params"]["data"]
        mb = self.books.get(data["instrument_name"])
        if mb is None or data.get("type") != "snapshot":
            return
        mb.change_id = int(data["change_id"])
        for key, side in (("bids", Side.BUY), ("asks", Side.SELL)):
            for _, price, amount in data[key]:
                mb.book.set_market_level(side, Decimal(repr(price)), Decimal(repr(amount)))
        mb.change(data["timestamp"])  # the published levels start as the snapshot's
        mb.change_id = int(data["change_id"])
        mb.top = mb.best()

    def market_step(self) -> list[bytes]:
        return [frame for _, frame in self.feed.step()]

    def on_market_frame(self, frame: bytes, now: int) -> None:
        """Fold one of the feed's frames into the simulator's books (matching resting client
        orders against it) and queue what the venue publishes of it (`deliveries`)."""
        msg = orjson.loads(frame)
        params: dict[str, Any] = msg.get("params") or {}
        channel = str(params.get("channel", ""))
        data: Any = params.get("data")
        topic = channel.split(".", 1)[0]
        if topic == "book":
            self._feed_book(data)
        elif topic == "trades":
            self._feed_trades(data)
        elif topic == "ticker":
            self._feed_ticker(data)
        self._finish_operation()

    def _feed_book(self, data: dict[str, Any]) -> None:
        name = data["instrument_name"]
        mb = self.books.get(name)
        if mb is None:
            return
        ts = int(data["timestamp"])
        bids = [(a, Decimal(repr(p)), Decimal(repr(q))) for a, p, q in data["bids"]]
        asks = [(a, Decimal(repr(p)), Decimal(repr(q))) for a, p, q in data["asks"]]
        if not mb.pulled and not mb.has_clients():
            # No client order rests: nothing can match, and the public change is the feed's.
            for side, levels in ((Side.BUY, bids), (Side.SELL, asks)):
                for _, price, amount in levels:
                    mb.defer_market_level(side, price, amount)
            self._publish_book(mb, ts, mb.market_change(ts, bids, asks))
            return
        matches: list[Match] = []
        for side, levels in ((Side.BUY, bids), (Side.SELL, asks)):
            if side in mb.pulled:
                continue
            for _, price, amount in levels:
                matches += mb.book.set_market_level(side, price, amount)
        self._execute_matches(mb, matches, ts)
        self._publish_book(mb, ts)

    def _feed_trades(self, data: list[dict[str, Any]]) -> None:
        """The market's public trades: published (renumbered in the simulator's own `trade_seq`)
        and run through the book, where they fill client orders they print through."""
        for item in data:
            mb = self.books.get(item["instrument_name"])
            if mb is None:
                continue
            ts = int(item["timestamp"])
            price = Decimal(repr(item["price"]))
            printed = dict(item)
            printed["trade_seq"] = next(mb.trade_seq)
            self._print_trades(mb, [printed])
            if not mb.has_clients():
                continue  # the print fills nobody
            matches = mb.book.market_trade(Side(item["direction"]), price, Decimal(repr(item["amount"])))
            if matches:  # client orders filled: the public book changed
                # The fills are part of the print just published: no second print.
                self._execute_matches(mb, matches, ts, printed=False)
                self._publish_book(mb, ts)

    def _feed_ticker(self, data: dict[str, Any]) -> None:
        name = data["instrument_name"]
        mb = self.books.get(name)
        if mb is None:
            return
        bid, bid_amount, ask, ask_amount = mb.best(published=True)
        ticker = dict(data)
        # The top of the simulator's own book (clients included); an empty side is 0 / 0.
        ticker["best_bid_price"] = wire.num(bid)
        ticker["best_bid_amount"] = wire.num(bid_amount)
        ticker["best_ask_price"] = wire.num(ask)
        ticker["best_ask_amount"] = wire.num(ask_amount)
        if "bid_iv" in ticker and bid_amount == 0:
            ticker["bid_iv"] = 0.0
        if "ask_iv" in ticker and ask_amount == 0:
            ticker["ask_iv"] = 0.0
        self.tickers[name] = ticker
        self._pending.append(("ticker", name, orjson.dumps(ticker)))
        index = ticker.get("index_price")
        listing = mb.listing
        if index is not None and listing.kind == "future" and listing.expiry_ms is None:
            index_name = f"{listing.base.lower()}_usd"
            self.index_prices[index_name] = Decimal(repr(index))
            body = {"timestamp": ticker["timestamp"], "price": index, "index_name": index_name}
            self._pending.append(("index", index_name, orjson.dumps(body)))

    def _publish_book(self, mb: MarketBook, ts_ms: int, change: dict[str, Any] | None = None) -> None:
        """Queue the change of `mb`'s public book (if any; `change` when the caller has it), its
        grouped books and its quote."""
        if change is None:
            change = mb.change(ts_ms)
        if change is None:
            return
        name = mb.listing.name
        # A gap is lost from a book someone follows: a `"*"` taken by a book nobody subscribed
        # would be a switch that fired and showed nothing.
        if not (self.faults.gap and self._book_followed(name) and self.faults.take_gap(name)):
            self._pending.append(("book", name, orjson.dumps(change)))
        self._pending.append(("grouped", name, str(ts_ms).encode()))
        best = mb.best(published=True)
        if best != mb.top:
            mb.top = best
            bid, bid_amount, ask, ask_amount = best
            quote = {
                "timestamp": ts_ms,
                "instrument_name": name,
                "best_ask_price": wire.num(ask),
                "best_bid_price": wire.num(bid),
                "best_ask_amount": wire.num(ask_amount),
                "best_bid_amount": wire.num(bid_amount),
            }
            self._pending.append(("quote", name, orjson.dumps(quote)))

    def _print_trades(self, mb: MarketBook, items: list[dict[str, Any]]) -> None:
        name = mb.listing.name
        kept = self.trades.setdefault(name, [])
        kept.extend(items)
        del kept[:-100]
        self._pending.append(("trades", name, orjson.dumps(items)))

    def garbage_frames(self) -> list[bytes]:
        return [b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":', b"\x00\xffnot json at all"]

    def deliveries(self, frame: bytes) -> Iterable[tuple[_Session, bytes]]:
        """What the last market frame (or client operation) queued, to each subscriber under the
        channel name it asked for."""
        pending, self._pending = self._pending, []
        for topic, key, body in pending:
            yield from self._route(topic, key, body)

    def _route(self, topic: str, key: str, body: bytes | None) -> Iterator[tuple[_Session, bytes]]:
        grouped_cache: dict[tuple[Decimal | None, int], bytes] = {}
        for session in list(self.sessions.values()):
            for channel in session.index.get((topic, key), ()):
                if topic == "grouped":
                    params = session.grouped[channel]
                    data = grouped_cache.get(params)
                    if data is None:
                        data = grouped_cache[params] = self._grouped_data(key, params, int(body or b"0"))
                    yield session, wire.notification(channel, data)
                else:
                    assert body is not None
                    yield session, wire.notification(channel, body)

    def _grouped_data(self, name: str, params: tuple[Decimal | None, int], ts_ms: int) -> bytes:
        group, depth = params
        mb = self.books[name]
        return orjson.dumps(
            {
                "instrument_name": name,
                "timestamp": ts_ms,
                "change_id": mb.change_id,
                "bids": wire.grouped_levels(mb.levels(Side.BUY), group, bids=True, depth=depth),
                "asks": wire.grouped_levels(mb.levels(Side.SELL), group, bids=False, depth=depth),
            }
        )

    def _send_pending(self) -> None:
        """Publish now what a client operation changed (book, quote, trades)."""
        for session, out in self.deliveries(b""):
            self.send(session, out)

    def probe_key(self, frame: bytes) -> Any:
        if frame.startswith(wire.NOTE_PREFIX + b"ticker." + (self.probe or "").encode()):
            return int(orjson.loads(frame)["params"]["data"]["timestamp"])
        return None

    def _respond(self, rid: Any, result: Any = None, error: RpcError | None = None) -> bytes:
        return wire.response(
            rid, self.clock() // 1000, result=result, error=None if error is None else error.body()
        )

    # -- WebSocket and HTTP -----------------------------------------------------------------
    def new_peer(self, peer_id: int, outbox: trio.MemorySendChannel[bytes], path: str) -> _Session:
        return _Session(peer_id, outbox, path)

    def peer_tasks(self, peer: _Session) -> list[Callable[[], Awaitable[None]]]:
        return [partial(self._heartbeats, peer), partial(self._delayed_sender, peer)]

    async def _heartbeats(self, session: _Session) -> None:
        while True:
            if session.heartbeat_s <= 0:
                await trio.sleep(0.2)
                continue
            await trio.sleep(session.heartbeat_s * self.heartbeat_scale)
            if trio.current_time() < self.faults.stall_until:
                continue
            if session.awaiting_test:
                self.close(session, "heartbeat: no public/test answer to test_request")
                return
            session.awaiting_test = True
            self.send(session, _HEARTBEAT)

    async def _delayed_sender(self, session: _Session) -> None:
        """`user_delay_s`: the held-back `user.*` notifications, each when it is due."""
        while True:
            if not session.delayed:
                await trio.sleep(0.05)
                continue
            await trio.sleep_until(session.delayed[0][0])
            now = trio.current_time()
            while session.delayed and session.delayed[0][0] <= now:
                self.send(session, session.delayed.pop(0)[1])
                self.late_sent += 1

    async def on_text(self, session: _Session, text: str) -> None:
        if len(text) > self.deribit_faults.max_frame_bytes or (
            len(text.encode()) > self.deribit_faults.max_frame_bytes
        ):
            # Deribit refuses the frame before reading it: no id to answer with (module docstring).
            self.send(session, self._respond(None, error=RpcError(-32600, "request entity too large")))
            return
        try:
            msg = orjson.loads(text)
            rid = msg.get("id")
            method = msg["method"]
            params = msg.get("params") or {}
            if not isinstance(method, str) or not isinstance(params, dict):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            self.send(session, self._respond(None, error=RpcError(11050, "bad_request")))
            return
        after: list[bytes] = []
        private: list[tuple[_Session, bytes]] = []
        self._private_buffer = private
        try:
            result = self.call(method, params, session=session, after=after)
        except RpcError as exc:
            self._private_buffer = None
            self._flush_private(private)
            self.send(session, self._respond(rid, error=exc))
            if exc.code == 10028:
                self.close(session, "too_many_requests")  # Deribit ends the session (§1.10)
            return
        finally:
            self._private_buffer = None
        answer = self._respond(rid, result)
        faults = self.deribit_faults
        if method in _MATCHING and faults.order_answer == "answer_first":
            self.send(session, answer)
            self._flush_private(private)
        else:
            self._flush_private(private)
            if method in _MATCHING and faults.answer_delay_s > 0:
                await trio.sleep(faults.answer_delay_s)
            self.send(session, answer)
        for frame in after:
            self.send(session, frame)

    async def handle_http(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes] | None:
        """`/api/v2/<method>`: GET with query parameters, or POST with a JSON-RPC body."""
        if not path.startswith("/api/v2/"):
            return None
        rpc_method = path[len("/api/v2/") :]
        rid: Any = None
        params: Any
        if method == "POST" and body:
            try:
                msg = orjson.loads(body)
                rid = msg.get("id")
                params = msg.get("params") or {}
                rpc_method = msg.get("method") or rpc_method
            except (orjson.JSONDecodeError, AttributeError):
                params = {}
        else:
            params = _coerce(dict(parse_qsl(query, keep_blank_values=True)))
        uri = path + (f"?{query}" if query else "")
        try:
            if not isinstance(params, dict) or not isinstance(rpc_method, str):
                raise RpcError(11050, "bad_request")
            account = self._http_account(
                headers.get("authorization"), method, uri, body.decode("utf-8", "replace")
            )
            result = self.call(rpc_method, _coerce(params), account=account)
            return 200, self._respond(rid, result)
        except RpcError as exc:
            return 400, self._respond(rid, error=exc)

    def _http_account(self, header: str | None, method: str, uri: str, body: str) -> _Account | None:
        """§1.3 HTTP auth: Bearer token, Basic id:secret, or deri-hmac-sha256 (checked)."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            acct = self.tokens.get(value.strip())
            if acct is None:
                raise RpcError(13009, "unauthorized", {"reason": "invalid token"})
            return acct
        if scheme == "basic":
            try:
                cid, _, secret = base64.b64decode(value).decode().partition(":")
            except ValueError:
                raise RpcError(13004, "invalid_credentials") from None
            acct = self.accounts.get(cid)
            if acct is None or not hmac.compare_digest(acct.secret.encode(), secret.encode()):
                raise RpcError(13004, "invalid_credentials")
            return acct
        if scheme == "deri-hmac-sha256":
            fields = auth.parse_hmac_header(value)
            acct = self.accounts.get(fields.get("id", ""))
            if acct is None:
                raise RpcError(13004, "invalid_credentials")
            ts, nonce = fields.get("ts", ""), fields.get("nonce", "")
            expected = auth.http_signature(acct.secret, ts, nonce, method, uri, body)
            if not auth.signature_matches(expected, fields.get("sig")):
                raise RpcError(13004, "invalid_credentials", {"reason": "bad signature"})
            if not ts.isdigit() or abs(int(ts) - self._now_ms()) > auth.TIMESTAMP_WINDOW_MS:
                raise RpcError(13004, "invalid_credentials", {"reason": "timestamp out of range"})
            return acct
        raise RpcError(13009, "unauthorized", {"reason": f"unknown scheme {scheme}"})

    # -- faults and state ---------------------------------------------------------------------
    def apply_faults(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The shared switches, and Deribit's own (module docstring). Deribit's own are checked
        before any switch is applied: a refused spec applies nothing."""
        q = spec.get("no_quotes") if isinstance(spec, dict) else None
        if q is not None:
            if str(q.get("instrument", "")) not in self.books:
                raise ValueError(f"no_quotes: no instrument {q.get('instrument')!r}")
            if q.get("side") not in (None, "buy", "sell", "both"):
                raise ValueError(f"no_quotes: side is buy, sell, both or null, not {q.get('side')!r}")
        answer = spec.get("order_answer") if isinstance(spec, dict) else None
        if answer not in (None, "user_first", "answer_first"):
            raise ValueError(f"order_answer: user_first or answer_first, not {answer!r}")
        applied = super().apply_faults(spec)
        f = self.deribit_faults
        if q is not None:
            name = str(q["instrument"])
            side = q.get("side")
            sides = set() if side is None else ({Side.BUY, Side.SELL} if side == "both" else {Side(side)})
            self._pull(self.books[name], sides)
            applied["no_quotes"] = {"instrument": name, "sides": sorted(sides)}
        if spec.get("listing"):
            f.listing.add(str(spec["listing"]))
            applied["listing"] = spec["listing"]
        if spec.get("order_answer") in ("user_first", "answer_first"):
            f.order_answer = str(spec["order_answer"])
            applied["order_answer"] = f.order_answer
        for key in ("answer_delay_s", "user_delay_s"):
            if key in spec:
                setattr(f, key, max(0.0, float(spec[key] or 0.0)))
                applied[key] = getattr(f, key)
        if spec.get("max_frame_bytes"):
            f.max_frame_bytes = int(spec["max_frame_bytes"])
            applied["max_frame_bytes"] = f.max_frame_bytes
        return applied

    def _pull(self, mb: MarketBook, sides: set[Side]) -> None:
        """`no_quotes`: the market withdraws its levels on `sides` (and ignores the feed's there)."""
        mb.pulled = sides
        for side in sides:
            for entry in mb.book.orders(MARKET):
                if entry.side is side:
                    mb.book.set_market_level(side, entry.price, _ZERO)
        self._publish_book(mb, self._now_ms())
        self._send_pending()

    @property
    def late_pending(self) -> int:
        """`user_delay_s` notifications held back and not yet due."""
        return sum(len(s.delayed) for s in self.sessions.values())

    def book_channels(self) -> int:
        """`book.*` subscriptions (the raw change streams a `gap` acts on) of every session."""
        return sum(len(names) for (topic, _), names in self._sessions_index() if topic == "book")

    def _book_followed(self, name: str) -> bool:
        return any(("book", name) in session.index for session in self.sessions.values())

    def _sessions_index(self) -> Iterator[tuple[tuple[str, str], list[str]]]:
        for session in self.sessions.values():
            yield from session.index.items()

    def pending_venue_faults(self) -> dict[str, Any]:
        f = self.deribit_faults
        pending: dict[str, Any] = {}
        if f.listing:
            pending["listing"] = sorted(f.listing)
        if f.order_answer != "user_first":
            pending["order_answer"] = f.order_answer
        if f.answer_delay_s:
            pending["answer_delay_s"] = f.answer_delay_s
        if f.user_delay_s:
            pending["user_delay_s"] = f.user_delay_s
        return pending

    def state(self) -> dict[str, Any]:
        return {
            "sessions": [
                {
                    "id": s.id,
                    "account": s.account.client_id if s.account else None,
                    "channels": len(s.wanted) + len(s.private),
                }
                for s in self.sessions.values()
            ],
            "orders": {oid: o.state for oid, o in self.orders.items()},
            "requests": self.requests,
        }

    # -- methods ------------------------------------------------------------------------------
    def call(
        self,
        method: str,
        params: dict[str, Any],
        *,
        session: _Session | None = None,
        account: _Account | None = None,
        after: list[bytes] | None = None,
    ) -> Any:
        """Answer one JSON-RPC method (WebSocket or HTTP). Raises `RpcError`; a hostile request
        that breaks a handler is answered as an invalid one, never with the simulator's end."""
        self.requests += 1
        self.method_counts[method] += 1
        if self.probe is not None and method in ("private/buy", "private/sell") and "label" in params:
            self.arrived_at[str(params["label"])] = time.perf_counter()
        if self.faults.take_rate_limit():
            raise RpcError(10028, "too_many_requests")
        if session is not None:
            account = session.account
            token = params.get("access_token")
            if account is None and isinstance(token, str):
                account = self.tokens.get(token)
        after = after if after is not None else []
        if method.startswith("private/"):
            if account is None:
                raise RpcError(13009, "unauthorized", {"reason": "authorization required"})
            if method in _MATCHING and not account.limiter.try_acquire(1):
                raise RpcError(10028, "too_many_requests")
        handler = _METHODS.get(method)
        if handler is None:
            raise RpcError(-32601, "Method not found", {"method": method})
        try:
            return handler(self, params, session, account, after)
        except RpcError:
            raise
        except KeyError as exc:
            self.log.info("simulator.bad_request", method=method, error=repr(exc))
            raise RpcError(-32602, "Invalid params", {"param": str(exc.args[0])[:64]}) from None
        except (ValueError, TypeError, ArithmeticError, AttributeError) as exc:
            # The venue's error, not the simulator's: Python's own messages (an exception's
            # class, an operand type) are logged here and never sent.
            self.log.info("simulator.bad_request", method=method, error=repr(exc))
            raise RpcError(-32602, "Invalid params", {"reason": "malformed or out of range"}) from None
        finally:
            self._finish_operation()
            self._send_pending()

    def _public_auth(self, p: dict[str, Any], session: _Session | None, _: Any, after: list[bytes]) -> Any:
        grant = p.get("grant_type")
        account: _Account | None
        if grant == "client_credentials":
            account = self.accounts.get(str(p.get("client_id")))
            if account is None or not hmac.compare_digest(
                account.secret.encode(), str(p.get("client_secret", "")).encode()
            ):
                raise RpcError(13004, "invalid_credentials")
        elif grant == "client_signature":
            account = self.accounts.get(str(p.get("client_id")))
            if account is None:
                raise RpcError(13004, "invalid_credentials")
            ts = p.get("timestamp")
            if not isinstance(ts, int) or abs(ts - self._now_ms()) > auth.TIMESTAMP_WINDOW_MS:
                raise RpcError(13004, "invalid_credentials", {"reason": "timestamp out of range"})
            expected = auth.client_signature(
                account.secret, ts, str(p.get("nonce", "")), str(p.get("data", ""))
            )
            if not auth.signature_matches(expected, p.get("signature")):
                raise RpcError(13004, "invalid_credentials", {"reason": "bad signature"})
        elif grant == "refresh_token":
            account = self.refresh_tokens.pop(str(p.get("refresh_token")), None)
            if account is None:
                raise RpcError(13009, "unauthorized", {"reason": "invalid refresh token"})
        else:
            raise RpcError(-32602, "Invalid params", {"param": "grant_type"})
        token, refresh = secrets.token_hex(24), secrets.token_hex(24)
        self.tokens[token] = account
        self.refresh_tokens[refresh] = account
        if session is not None:
            session.account = account
        return {
            "access_token": token,
            "expires_in": 900,
            "refresh_token": refresh,
            "scope": "connection mainaccount trade:read_write",
            "enabled_features": [],
            "token_type": "bearer",
        }

    def _set_heartbeat(self, p: dict[str, Any], session: _Session | None, *_: Any) -> Any:
        interval = p.get("interval")
        if session is None:
            raise RpcError(10030, "must_be_websocket_request")
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 10:
            raise RpcError(-32602, "Invalid params", {"param": "interval", "reason": "must be >= 10"})
        session.heartbeat_s = float(interval)
        return "ok"

    def _disable_heartbeat(self, p: dict[str, Any], session: _Session | None, *_: Any) -> Any:
        if session is not None:
            session.heartbeat_s = 0.0
        return "ok"

    def _test(self, p: dict[str, Any], session: _Session | None, *_: Any) -> Any:
        if p.get("expected_result") == "exception":
            raise RpcError(11094, "internal_server_error")
        if session is not None:
            session.awaiting_test = False
        return {"version": _VERSION}

    def _set_self_trading_config(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, *_: Any
    ) -> Any:
        assert a is not None
        mode = p.get("mode")
        if mode not in ("reject_taker", "cancel_maker"):
            raise RpcError(-32602, "Invalid params", {"param": "mode"})
        a.self_trade = str(mode)
        return "ok"

    # -- subscriptions -----------------------------------------------------------------------
    def _public_route(
        self, channel: str, authed: bool
    ) -> tuple[list[tuple[str, str]], tuple[Decimal | None, int] | None] | None:
        """The (topic, key) pairs a public channel is delivered under (and a grouped book's
        group and depth); None when the venue has no such channel for this connection."""
        parts = channel.split(".")
        head, n = parts[0], len(parts)
        interval = parts[-1]
        if (head in ("ticker", "book", "trades") and n >= 3) and (
            interval not in _INTERVALS or (interval == "raw" and not authed)
        ):
            return None  # §1.4: raw intervals need an authenticated connection
        if head == "ticker" and n == 3 and parts[1] in self.listings:
            return [("ticker", parts[1])], None
        if head == "book" and n == 3 and parts[1] in self.listings:
            return [("book", parts[1])], None
        if head == "book" and n == 5 and parts[1] in self.listings:
            listing = self.listings[parts[1]]
            groups = _GROUPS.get(listing.base, {})
            if parts[3] not in _DEPTHS or (parts[2] != "none" and parts[2] not in groups):
                return None
            group = None if parts[2] == "none" else groups[parts[2]]
            return [("grouped", parts[1])], (group, int(parts[3]))
        if head == "trades" and n == 3 and parts[1] in self.listings:
            return [("trades", parts[1])], None
        if head == "trades" and n == 4:
            kind, currency = parts[1], parts[2].upper()
            if kind not in _KINDS:
                return None
            names = [
                name
                for name, lst in self.listings.items()
                if kind in ("any", lst.kind) and currency in ("ANY", lst.base)
            ]
            if not names and currency not in ("ANY", "BTC", "ETH", "USDC", "USDT"):
                return None
            return [("trades", name) for name in names], None
        if head == "quote" and n == 2 and parts[1] in self.listings:
            return [("quote", parts[1])], None
        if head == "deribit_price_index" and n == 2 and parts[1] in ("btc_usd", "eth_usd"):
            return [("index", parts[1])], None
        return None

    @staticmethod
    def _private_ok(channel: str) -> bool:
        parts = channel.split(".")
        if len(parts) == 3 and parts[1] == "portfolio":
            return True
        if len(parts) not in (4, 5) or parts[1] not in ("orders", "trades", "changes"):
            return False
        if parts[-1] not in _INTERVALS:
            return False
        return len(parts) == 4 or parts[2] in _KINDS

    def _subscribe(
        self, p: dict[str, Any], session: _Session | None, account: _Account | None, after: list[bytes]
    ) -> Any:
        if session is None:
            raise RpcError(10030, "must_be_websocket_request")
        channels = p.get("channels")
        if not isinstance(channels, list):
            raise RpcError(-32602, "Invalid params", {"param": "channels"})
        if account is None and any(
            isinstance(c, str) and not c.startswith("user.") and c.endswith(".raw") for c in channels
        ):
            # The whole request is refused, as Deribit refused cryptofeed's in 2022 (its issue
            # #768: `{"code":13778,"message":"raw_subscriptions_not_available_for_unauthorized"}`).
            raise RpcError(13778, "raw_subscriptions_not_available_for_unauthorized")
        granted: list[str] = []
        for channel in channels:
            if not isinstance(channel, str) or channel in granted:
                continue
            if channel.startswith("user."):
                if account is not None and self._private_ok(channel):
                    session.private.add(channel)
                    granted.append(channel)
                continue
            route = self._public_route(channel, account is not None)
            if route is None:
                continue
            keys, grouped = route
            self._drop_channel(session, channel)
            session.wanted[channel] = keys
            for key in keys:
                session.index.setdefault(key, []).append(channel)
            if grouped is not None:
                session.grouped[channel] = grouped
            granted.append(channel)
            topic, name = keys[0] if keys else ("", "")
            if topic == "book":
                mb = self.books[name]
                first = (
                    mb.listing_change(self._now_ms())
                    if self.deribit_faults.take_listing(name)
                    else mb.snapshot(self._now_ms())
                )
                after.append(wire.notification(channel, first))
            elif topic == "grouped" and grouped is not None:
                after.append(wire.notification(channel, self._grouped_data(name, grouped, self._now_ms())))
        return granted

    def _drop_channel(self, session: _Session, channel: str) -> bool:
        keys = session.wanted.pop(channel, None)
        session.grouped.pop(channel, None)
        if keys is None:
            return False
        for key in keys:
            names = session.index.get(key)
            if names is not None and channel in names:
                names.remove(channel)
                if not names:
                    del session.index[key]
        return True

    def _unsubscribe(self, p: dict[str, Any], session: _Session | None, *_: Any) -> Any:
        if session is None:
            raise RpcError(10030, "must_be_websocket_request")
        channels = p.get("channels")
        if not isinstance(channels, list):
            raise RpcError(-32602, "Invalid params", {"param": "channels"})
        removed = []
        for channel in channels:
            if not isinstance(channel, str):
                continue
            if channel in session.private:
                session.private.discard(channel)
                removed.append(channel)
            elif self._drop_channel(session, channel):
                removed.append(channel)
        return removed

    def _unsubscribe_all(self, p: dict[str, Any], session: _Session | None, *_: Any) -> Any:
        if session is not None:
            session.wanted.clear()
            session.index.clear()
            session.grouped.clear()
            session.private.clear()
        return "ok"

    # -- public data --------------------------------------------------------------------------
    def _get_instruments(self, p: dict[str, Any], *_: Any) -> Any:
        currency = p.get("currency", "any")
        kind = p.get("kind")
        return [
            item
            for item in self.instrument_items
            if currency in (None, "any", item["base_currency"]) and (kind is None or item["kind"] == kind)
        ]

    def _get_instrument(self, p: dict[str, Any], *_: Any) -> Any:
        for item in self.instrument_items:
            if item["instrument_name"] == p.get("instrument_name"):
                return item
        raise RpcError(10020, "invalid_or_unsupported_instrument")

    def _get_currencies(self, *_: Any) -> Any:
        names = {"BTC": "Bitcoin", "ETH": "Ethereum"}
        return [
            {
                "currency": c,
                "currency_long": n,
                "coin_type": n.upper(),
                "fee_precision": 4,
                "min_confirmations": 1,
                "min_withdrawal_fee": 0.0001,
                "withdrawal_fee": 0.0001,
                "withdrawal_priorities": [],
            }
            for c, n in names.items()
        ]

    def _ticker(self, p: dict[str, Any], *_: Any) -> Any:
        inst = self._require_instrument(p.get("instrument_name"))
        return self.tickers.get(inst) or {"instrument_name": inst, "timestamp": self._now_ms()}

    def _get_order_book(self, p: dict[str, Any], *_: Any) -> Any:
        inst = self._require_instrument(p.get("instrument_name"))
        depth = p.get("depth") or 20
        if isinstance(depth, bool) or not isinstance(depth, int) or depth <= 0:
            raise RpcError(-32602, "Invalid params", {"param": "depth"})
        mb = self.books[inst]
        ticker = self.tickers.get(inst, {})
        bid, bid_amount, ask, ask_amount = mb.best()
        return {
            **{k: v for k, v in ticker.items() if k not in ("bids", "asks")},
            "instrument_name": inst,
            "timestamp": self._now_ms(),
            "change_id": mb.change_id,
            "bids": [[wire.num(px), wire.num(a)] for px, a in mb.levels(Side.BUY, depth)],
            "asks": [[wire.num(px), wire.num(a)] for px, a in mb.levels(Side.SELL, depth)],
            "best_bid_price": wire.num(bid),
            "best_bid_amount": wire.num(bid_amount),
            "best_ask_price": wire.num(ask),
            "best_ask_amount": wire.num(ask_amount),
            "state": "open",
        }

    def _get_time(self, *_: Any) -> Any:
        return self._now_ms()

    def _last_trades(self, p: dict[str, Any], *_: Any) -> Any:
        inst = self._require_instrument(p.get("instrument_name"))
        count = p.get("count") or 10
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            raise RpcError(-32602, "Invalid params", {"param": "count"})
        return {"trades": self.trades.get(inst, [])[-count:], "has_more": False}

    # -- orders: encoding ---------------------------------------------------------------------
    def _order_json(self, o: _Order) -> dict[str, Any]:
        listing = self.listings[o.instrument]
        out: dict[str, Any] = {
            "web": False,
            "time_in_force": o.time_in_force,
            "replaced": o.replaced,
            "reduce_only": o.reduce_only,
            "price": wire.num(o.price) if o.price is not None else "market_price",
            "post_only": o.post_only,
            "order_type": o.order_type,
            "order_state": o.state,
            "order_id": o.order_id,
            "max_show": wire.num(o.amount),
            "last_update_timestamp": o.updated_ms,
            "label": o.label,
            "is_rebalance": False,
            "is_liquidation": False,
            "instrument_name": o.instrument,
            "filled_amount": wire.num(o.filled),
            "direction": o.direction,
            "creation_timestamp": o.created_ms,
            "average_price": wire.num(o.average),
            "api": True,
            "amount": wire.num(o.amount),
            "contracts": wire.num(o.amount / listing.contract_size),
            "reject_post_only": o.reject_post_only,
            "mmp": False,
            "risk_reducing": False,
            "user_id": o.account.user_id,
        }
        if o.cancel_reason:
            out["cancel_reason"] = o.cancel_reason
        return out

    def _position_json(self, account: _Account, name: str) -> dict[str, Any]:
        listing = self.listings[name]
        size = account.positions.get(name, _ZERO)
        ticker = self.tickers.get(name, {})
        return {
            "instrument_name": name,
            "size": wire.num(size),
            "direction": "buy" if size > 0 else ("sell" if size < 0 else "zero"),
            "kind": listing.kind,
            "mark_price": ticker.get("mark_price"),
            "index_price": ticker.get("index_price"),
        }

    def _ids(self, listing: Listing, counter: Iterator[int]) -> str:
        # BTC ids are bare digits; other settlement currencies prefix theirs (§1.7 samples:
        # "ETH-584864807", "USDC-104819327443").
        n = next(counter)
        return str(n) if listing.settle == "BTC" else f"{listing.settle}-{n}"

    # -- orders: the matching -----------------------------------------------------------------
    def _execute_matches(
        self, mb: MarketBook, matches: Iterable[Match], ts_ms: int, *, printed: bool = True
    ) -> dict[str, list[dict[str, Any]]]:
        """Book the matches of one operation: a trade id each, the public print (unless the feed
        `printed` it already), and each client side's execution (fee, position, balance,
        `user.trades`). Returns the user trades by order id."""
        by_order: dict[str, list[dict[str, Any]]] = {}
        prints: list[dict[str, Any]] = []
        listing = mb.listing
        ticker = self.tickers.get(listing.name, {})
        for m in matches:
            trade_id = self._ids(listing, self._trade_ids)
            seq = next(mb.trade_seq)
            item: dict[str, Any] = {
                "timestamp": ts_ms,
                "price": wire.num(m.price),
                "amount": wire.num(m.amount),
                "direction": str(m.side),
                "index_price": ticker.get("index_price"),
                "instrument_name": listing.name,
                "trade_seq": seq,
                "mark_price": ticker.get("mark_price"),
                "tick_direction": 0,
                "contracts": wire.num(m.amount / listing.contract_size),
                "trade_id": trade_id,
            }
            prints.append(item)
            for order_id, owner, maker in (
                (m.taker_id, m.taker_owner, False),
                (m.maker_id, m.maker_owner, True),
            ):
                if owner == MARKET:
                    continue
                order = self.orders.get(order_id)
                if order is None:
                    continue
                trade = self._execute(
                    order, m.price, m.amount, maker=maker, trade_id=trade_id, seq=seq, ts_ms=ts_ms
                )
                by_order.setdefault(order_id, []).append(trade)
        if prints and printed:
            self._print_trades(mb, prints)
        return by_order

    def _execute(
        self, o: _Order, price: Decimal, amount: Decimal, *, maker: bool, trade_id: str, seq: int, ts_ms: int
    ) -> dict[str, Any]:
        listing = self.listings[o.instrument]
        acct = o.account
        o.filled += amount
        o.notional += price * amount
        o.updated_ms = ts_ms
        if o.filled >= o.amount:
            o.state = "filled"
        self._touched[o.order_id] = o
        index = self.index_prices.get(f"{listing.base.lower()}_usd")
        fee = self.fees.fee(listing, price=price, amount=amount, maker=maker, index=index)
        signed = amount if o.direction == "buy" else -amount
        acct.positions[o.instrument] = acct.positions.get(o.instrument, _ZERO) + signed
        acct.balances[listing.settle] = acct.balances.get(listing.settle, _ZERO) - fee
        ticker = self.tickers.get(o.instrument, {})
        trade = {
            "trade_seq": seq,
            "trade_id": trade_id,
            "timestamp": ts_ms,
            "tick_direction": 0,
            "state": o.state,
            "reduce_only": o.reduce_only,
            "price": wire.num(price),
            "post_only": o.post_only,
            "order_type": o.order_type,
            "order_id": o.order_id,
            "matching_id": None,
            "mark_price": ticker.get("mark_price"),
            "liquidity": "M" if maker else "T",
            "label": o.label,
            "instrument_name": o.instrument,
            "index_price": ticker.get("index_price"),
            "fee_currency": listing.settle,
            "fee": wire.num(fee),
            "direction": o.direction,
            "amount": wire.num(amount),
            "contracts": wire.num(amount / listing.contract_size),
        }
        acct.trades.append(trade)
        self._notify(acct, "trades", o.instrument, [trade])
        self._notify(
            acct,
            "changes",
            o.instrument,
            {
                "instrument_name": o.instrument,
                "trades": [trade],
                "orders": [],
                "positions": [self._position_json(acct, o.instrument)],
            },
        )
        return trade

    def _finish_operation(self) -> None:
        """After an operation: `user.orders` (and `user.changes`, `user.portfolio`) for every
        order it changed, once each."""
        touched, self._touched = self._touched, {}
        accounts: dict[int, tuple[_Account, set[str]]] = {}
        for o in touched.values():
            self._notify(o.account, "orders", o.instrument, self._order_json(o))
            self._notify(
                o.account,
                "changes",
                o.instrument,
                {
                    "instrument_name": o.instrument,
                    "trades": [],
                    "orders": [self._order_json(o)],
                    "positions": [],
                },
            )
            accounts.setdefault(id(o.account), (o.account, set()))[1].add(self.listings[o.instrument].settle)
        for acct, currencies in accounts.values():
            for currency in sorted(currencies):
                self._notify_portfolio(acct, currency)

    def _deliver_private(self, session: _Session, frame: bytes) -> None:
        delay = self.deribit_faults.user_delay_s
        if delay > 0:
            session.delayed.append((trio.current_time() + delay, frame))
        elif self._private_buffer is not None:
            self._private_buffer.append((session, frame))
        else:
            self.send(session, frame)

    def _flush_private(self, frames: list[tuple[_Session, bytes]]) -> None:
        for session, frame in frames:
            self.send(session, frame)
        frames.clear()

    def _notify(self, account: _Account, what: str, instrument: str, data: Any) -> None:
        listing = self.listings.get(instrument)
        kind = listing.kind if listing is not None else "any"
        base = listing.base if listing is not None else "any"
        for session in list(self.sessions.values()):
            if session.account is not account:
                continue
            for channel in session.private:
                parts = channel.split(".")
                if parts[1] != what or len(parts) < 4:
                    continue
                scope = parts[2:-1]
                if scope == [instrument] or (
                    len(scope) == 2 and scope[0] in ("any", kind) and scope[1].upper() in ("ANY", base)
                ):
                    payload = data
                    if what == "orders" and parts[-1] != "raw":
                        payload = [data]  # §1.6: raw gives one order, 100ms/agg2 a list
                    self._deliver_private(session, wire.notification(channel, payload))

    def _notify_portfolio(self, account: _Account, currency: str) -> None:
        for session in list(self.sessions.values()):
            if session.account is not account:
                continue
            for channel in session.private:
                parts = channel.split(".")
                if parts[1] == "portfolio" and parts[2].upper() in ("ANY", currency):
                    data = wire.portfolio(currency, account.balances.get(currency, _ZERO))
                    self._deliver_private(session, wire.notification(channel, data))

    def _new_order(self, direction: str, p: dict[str, Any], account: _Account | None) -> Any:
        assert account is not None
        refusal = self.faults.take_reject()
        if refusal is not None:
            raise RpcError(int(refusal[0]), refusal[1])
        name = self._require_instrument(p.get("instrument_name"))
        listing = self.listings[name]
        mb = self.books[name]
        if p.get("amount") is not None:
            amount = _decimal(p["amount"], "amount", 10021, "invalid_amount")
        elif p.get("contracts") is not None:
            amount = _decimal(p["contracts"], "contracts", 10021, "invalid_amount") * listing.contract_size
        else:
            raise RpcError(10021, "invalid_amount", {"param": "amount"})
        if amount <= 0:
            raise RpcError(10021, "invalid_amount", {"param": "amount"})
        if not _on_step(amount, listing.min_amount, "amount", 10021, "invalid_amount"):
            if listing.is_option:
                raise RpcError(10021, "invalid_amount", {"param": "amount"})
            raise RpcError(10027, "non_integer_contract_amount")
        order_type = p.get("type", "limit")
        if order_type not in ("limit", "market"):
            raise RpcError(
                11029,
                "invalid_arguments",
                {"param": "type", "reason": "the simulator takes limit and market"},
            )
        price: Decimal | None = None
        if order_type == "limit":
            price = _decimal(p.get("price"), "price", 10023, "invalid_price")
            if price <= 0 and not listing.kind.endswith("combo"):
                raise RpcError(10023, "invalid_price", {"param": "price"})
            if not _on_step(price, listing.tick_for(price), "price", 10023, "invalid_price"):
                raise RpcError(10043, "price_wrong_tick")
        # The ticker's price band: "any buy orders you submit higher than this price will be
        # clamped to this maximum" (and sells below `min_price` to it): Deribit's ticker docs. A
        # market order executes within it too, and its order object carries that limit as its
        # price (the official samples of VENUES.md §1.6/§1.7 show market orders with a number).
        band = self.tickers.get(name, {})
        limit = band.get("max_price" if direction == "buy" else "min_price")
        if limit is not None:
            bound = Decimal(repr(limit))
            if price is None:
                price = bound
            else:
                price = min(price, bound) if direction == "buy" else max(price, bound)
        tif_name = str(p.get("time_in_force", "good_til_cancelled"))
        tif = _TIF.get(tif_name)
        if tif is None:
            raise RpcError(-32602, "Invalid params", {"param": "time_in_force"})
        post_only = bool(p.get("post_only", False)) and order_type == "limit"
        reject_post_only = bool(p.get("reject_post_only", False))
        side = Side(direction)
        if post_only and price is not None and not reject_post_only:
            # §1.7 / Deribit's post_only: a price that would take is moved just inside the spread.
            opposite = mb.book.best(side.opposite)
            if opposite is not None and (price >= opposite if side is Side.BUY else price <= opposite):
                tick = listing.tick_for(opposite)
                price = opposite - tick if side is Side.BUY else opposite + tick
                if price <= 0:
                    raise RpcError(11054, "post_only_reject")
        label = p.get("label", "")
        if label is None:
            label = ""
        if not isinstance(label, str) or len(label) > MAX_LABEL:
            raise RpcError(
                -32602,
                "Invalid params",
                {"param": "label", "reason": f"a string of at most {MAX_LABEL} characters"},
            )
        if self._funds_needed(account, listing, side, amount, price) > account.balances.get(
            listing.settle, _ZERO
        ):
            raise RpcError(10009, "not_enough_funds")
        now_ms = self._now_ms()
        order = _Order(
            order_id=self._ids(listing, self._order_ids),
            account=account,
            instrument=name,
            direction=direction,
            order_type=order_type,
            price=price,
            amount=amount,
            label=label,
            time_in_force=tif_name,
            post_only=post_only,
            reject_post_only=reject_post_only,
            reduce_only=bool(p.get("reduce_only", False)),
            created_ms=now_ms,
            updated_ms=now_ms,
        )
        outcome = mb.book.submit(
            order_id=order.order_id,
            owner=account.client_id,
            side=side,
            amount=amount,
            price=price,
            tif="ioc" if order_type == "market" else tif,  # type: ignore[arg-type]
            post_only=post_only,
            self_trade=account.self_trade,  # type: ignore[arg-type]
        )
        if outcome.rejected == "post_only":
            raise RpcError(11054, "post_only_reject")
        if outcome.rejected == "self_trade":
            # §1.9: 10003 `order_overlap`, "order overlap is found and self-trading is not
            # enabled" (the official error table, as deribit-base's codes.rs quotes it).
            raise RpcError(10003, "order_overlap")
        self.orders[order.order_id] = order
        account.orders[order.order_id] = order
        self._touched[order.order_id] = order
        trades = self._settle_outcome(mb, order, outcome, now_ms)
        return {"order": self._order_json(order), "trades": trades}

    def _funds_needed(
        self, account: _Account, listing: Listing, side: Side, amount: Decimal, price: Decimal | None
    ) -> Decimal:
        """What an order needs of the balance in its settlement currency (module docstring):
        an option buy's premium; initial margin on what a future, or a sold option, adds to the
        position. Combos and spot are not modelled (nothing)."""
        ticker = self.tickers.get(listing.name, {})
        mark = Decimal(repr(ticker["mark_price"])) if ticker.get("mark_price") else None
        # A market order before any ticker: the price it would meet first.
        book = self.books[listing.name].book
        px = next(
            (p for p in (price, mark, book.best(side.opposite), book.best(side)) if p is not None), None
        )
        if px is None or px <= 0:
            return _ZERO
        held = account.positions.get(listing.name, _ZERO)
        signed = amount if side is Side.BUY else -amount
        grows = max(_ZERO, abs(held + signed) - abs(held))
        if listing.kind == "future":
            value = grows / px if listing.inverse else grows * px  # inverse: USD sized, coin settled
            return value * _FUTURE_IM
        if listing.kind == "option":
            if side is Side.BUY:
                return amount * px
            index = ticker.get("underlying_price") or ticker.get("index_price")
            underlying = Decimal(1) if listing.inverse or index is None else Decimal(repr(index))
            return grows * (_SHORT_OPTION_IM * underlying + (mark or px))
        return _ZERO

    def _settle_outcome(
        self, mb: MarketBook, order: _Order, outcome: Outcome, now_ms: int
    ) -> list[dict[str, Any]]:
        """Book an order's matches, the own makers self-trade prevention cancelled, and its end
        (an IOC, FOK or market order that did not fill is cancelled); publish the book."""
        for maker in outcome.cancelled_makers:
            other = self.orders.get(maker.order_id)
            if other is not None:
                self._end(other, "cancelled", "self_trading_prevention", now_ms)
        trades = self._execute_matches(mb, outcome.matches, now_ms).get(order.order_id, [])
        if outcome.rejected == "fill_or_kill" or (outcome.resting is None and order.filled < order.amount):
            self._end(
                order, "cancelled", "fill_or_kill" if outcome.rejected else "immediate_or_cancel", now_ms
            )
        self._publish_book(mb, now_ms)
        return trades

    def _end(self, o: _Order, state: str, reason: str | None, now_ms: int) -> None:
        o.state = state
        o.cancel_reason = reason
        o.updated_ms = now_ms
        self._touched[o.order_id] = o

    def _buy(self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]) -> Any:
        return self._new_order("buy", p, a)

    def _sell(self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]) -> Any:
        return self._new_order("sell", p, a)

    def _own(self, account: _Account | None, order_id: Any) -> _Order:
        o = self.orders.get(str(order_id))
        if o is None or o.account is not account:
            raise RpcError(10004, "order_not_found", {"param": "order_id"})
        return o

    def _cancel_one(self, o: _Order, reason: str = "user_request") -> bool:
        mb = self.books[o.instrument]
        if o.state != "open" or mb.book.cancel(o.order_id) is None:
            return False
        now_ms = self._now_ms()
        self._end(o, "cancelled", reason, now_ms)
        self._publish_book(mb, now_ms)
        return True

    def _cancel(self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]) -> Any:
        o = self._own(a, p.get("order_id"))
        if not self._cancel_one(o):
            raise RpcError(11044, "not_open_order")
        return self._order_json(o)

    def _edit(self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]) -> Any:
        o = self._own(a, p.get("order_id"))
        mb = self.books[o.instrument]
        if o.state != "open" or mb.book.get(o.order_id) is None:
            raise RpcError(11044, "not_open_order")
        listing = self.listings[o.instrument]
        new_price = None if p.get("price") is None else _decimal(p["price"], "price", 10023, "invalid_price")
        new_amount = (
            None if p.get("amount") is None else _decimal(p["amount"], "amount", 10021, "invalid_amount")
        )
        if new_price is not None and (new_price <= 0 or new_price % listing.tick_for(new_price) != 0):
            raise RpcError(10043, "price_wrong_tick")
        if new_amount is not None and (new_amount <= o.filled or new_amount % listing.min_amount != 0):
            raise RpcError(10021, "invalid_amount")
        outcome = mb.book.amend(o.order_id, price=new_price, amount=new_amount)
        if outcome.rejected == "post_only":
            raise RpcError(11054, "post_only_reject")
        now_ms = self._now_ms()
        if new_price is not None:
            o.price = new_price
        if new_amount is not None:
            o.amount = new_amount
        o.replaced = True
        o.updated_ms = now_ms
        self._touched[o.order_id] = o
        trades = self._settle_outcome(mb, o, outcome, now_ms)
        return {"order": self._order_json(o), "trades": trades}

    def _cancel_many(self, account: _Account | None, pick: Callable[[_Order], bool]) -> int:
        assert account is not None
        return sum(
            1 for o in list(account.orders.values()) if o.state == "open" and pick(o) and self._cancel_one(o)
        )

    def _cancel_all(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        return self._cancel_many(a, lambda o: True)

    def _cancel_all_by_instrument(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        inst = self._require_instrument(p.get("instrument_name"))
        return self._cancel_many(a, lambda o: o.instrument == inst)

    def _cancel_by_label(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        label = str(p.get("label", ""))
        return self._cancel_many(a, lambda o: o.label == label)

    def _open_orders_by_currency(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        assert a is not None
        currency = p.get("currency")
        return [
            self._order_json(o)
            for o in a.orders.values()
            if o.state == "open" and currency in (None, "any", self._base_of(o.instrument))
        ]

    def _open_orders_by_instrument(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        assert a is not None
        name = p.get("instrument_name")
        return [self._order_json(o) for o in a.orders.values() if o.state == "open" and o.instrument == name]

    def _order_state(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        return self._order_json(self._own(a, p.get("order_id")))

    def _order_state_by_label(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        """Recent orders (open or not) with a label, in one currency."""
        assert a is not None
        label, currency = p.get("label"), p.get("currency")
        return [
            self._order_json(o)
            for o in a.orders.values()
            if o.label == label and self._base_of(o.instrument) == currency
        ]

    def _user_trades_by_currency_and_time(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        """The account's trades in one currency within [start, end] (ms), oldest first unless
        `sorting = "desc"`, at most `count` (default 10, max 1000) with `has_more`: the recent
        ones (the last 24 h), or with `historical: true` all of them but the last few seconds
        (`public_methods.kept_trades`, as Deribit's docs say)."""
        assert a is not None
        currency = p.get("currency")
        start = int(p.get("start_timestamp", 0))
        end = int(p.get("end_timestamp", 2**62))
        count = max(1, min(int(p.get("count", 10)), 1000))
        found = [
            t
            for t in public_methods.kept_trades(a.trades, p, self._now_ms())
            if start <= t["timestamp"] <= end and self._base_of(t["instrument_name"]) == currency
        ]
        if p.get("sorting") == "desc":
            found.reverse()
        return {"trades": found[:count], "has_more": len(found) > count}

    def _account_summary(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        assert a is not None
        currency = str(p.get("currency", "BTC"))
        return wire.portfolio(currency, a.balances.get(currency, _ZERO))

    def _account_summaries(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        assert a is not None
        return {
            "summaries": [self._account_summary({"currency": c}, s, a, after) for c in sorted(a.balances)],
            "id": 1,
            "email": f"{a.client_id}@simulator.local",
            "username": a.client_id,
        }

    def _positions(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        assert a is not None
        currency = p.get("currency")
        return [
            self._position_json(a, name)
            for name, size in sorted(a.positions.items())
            if size != 0 and name in self.listings and currency in (None, "any", self.listings[name].base)
        ]

    # -- expiries and funding (what the venue does at 08:00 UTC; the tests say when) -------------
    def deliver(self, instrument: str, delivery_index: float | Decimal, *, ts_ms: int | None = None) -> float:
        """Deliver an expired instrument at `delivery_index` (the index's delivery price) and
        return its delivery price in its quote currency: a future's is the index; a coin option's
        is its value in the coin, `max(0, S - K) / S` for a call and `max(0, K - S) / S` for a put
        (Deribit "Options explained": a 300 call delivered at 400 USD is worth 100 USD, "0.25BTC
        at the price of 400 dollar"). Every account's position in it is closed and recorded as a
        `delivery` (`private/get_settlement_history_by_currency`), its delivery fee taken
        (`fees.py`), and the instrument's public delivery record is kept
        (`public/get_last_settlements_by_instrument`)."""
        listing = self.listings.get(instrument)
        if listing is None or listing.expiry_ms is None:
            raise ValueError(f"{instrument}: not an instrument that expires")
        ts = self._now_ms() if ts_ms is None else ts_ms
        s = Decimal(repr(delivery_index)) if isinstance(delivery_index, float) else Decimal(delivery_index)
        if listing.is_option:
            k = listing.strike or _ZERO
            intrinsic = max(_ZERO, s - k) if listing.right is Right.CALL else max(_ZERO, k - s)
            price = intrinsic / s if not listing.linear else intrinsic
        else:
            price = s
        record = {
            "type": "delivery",
            "timestamp": ts,
            "instrument_name": instrument,
            "mark_price": wire.num(price),
            "index_price": wire.num(s),
            "position": 0.0,
            "profit_loss": 0.0,
            "session_profit_loss": 0.0,
        }
        for acct in self.accounts.values():
            held = acct.positions.pop(instrument, _ZERO)
            if held:
                fee = self.fees.delivery_fee(listing, delivery_price=price, index=s, amount=held)
                acct.balances[listing.settle] = acct.balances.get(listing.settle, _ZERO) - fee
                acct.settlements.append({**record, "position": wire.num(held)})
        self.deliveries_made.append(record)
        return float(price)

    def pay_funding(
        self, instrument: str, rate: float | Decimal, *, ts_ms: int | None = None
    ) -> dict[str, float]:
        """A settlement of a perpetual: each account holding it gets its funding for the period,
        `funding rate x position size` with the size in the coin, in the settlement currency
        (USDC for a linear perpetual: times the mark) (Deribit "Funding specifications";
        positive rate: longs pay shorts), and the settlement is recorded with its `funding`
        (`private/get_settlement_history_by_currency`, `type = settlement`). Returns the funding
        per account (received: positive)."""
        listing = self.listings.get(instrument)
        if listing is None:
            raise ValueError(f"{instrument}: unknown")
        ts = self._now_ms() if ts_ms is None else ts_ms
        r = Decimal(repr(rate)) if isinstance(rate, float) else Decimal(rate)
        ticker = self.tickers.get(instrument, {})
        mark = Decimal(repr(float(ticker.get("mark_price") or 0.0)))
        index = float(ticker.get("index_price") or 0.0)
        out: dict[str, float] = {}
        for acct in self.accounts.values():
            held = acct.positions.get(instrument, _ZERO)
            if not held or not mark:
                continue
            # An inverse position's amount is USD: `amount / mark` coins, paid in the coin. A
            # linear one's amount is coins (§1.7) and settles in USDC: that many coins' worth at
            # the mark (Deribit "Funding specifications": rate x position size).
            funding = -r * held / mark if listing.inverse else -r * held * mark
            acct.balances[listing.settle] = acct.balances.get(listing.settle, _ZERO) + funding
            acct.settlements.append(
                {
                    "type": "settlement",
                    "timestamp": ts,
                    "instrument_name": instrument,
                    "position": wire.num(held),
                    "mark_price": wire.num(mark),
                    "index_price": index,
                    "profit_loss": 0.0,
                    "session_profit_loss": wire.num(funding),
                    "funding": wire.num(funding),
                }
            )
            out[acct.client_id] = float(funding)
        return out

    def _last_settlements_by_instrument(self, p: dict[str, Any], *_: Any) -> Any:
        """`public/get_last_settlements_by_instrument`: the instrument's records, newest first,
        of one `type` when given, at most `count` (default 20)."""
        name = self._require_instrument(p.get("instrument_name"))
        kind = p.get("type")
        found = [r for r in reversed(self.deliveries_made) if r["instrument_name"] == name]
        found = [r for r in found if kind in (None, r["type"])]
        count = max(1, min(int(p.get("count", 20)), 1000))
        return {"settlements": found[:count], "continuation": "none"}

    def _settlement_history_by_currency(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        """`private/get_settlement_history_by_currency`: the account's records in one currency,
        newest first, of one `type` when given, none newer than `search_start_timestamp`, at most
        `count` (default 20) a page, the next page by `continuation` ("none" at the end)."""
        assert a is not None
        currency = p.get("currency")
        kind = p.get("type")
        latest = int(p.get("search_start_timestamp", 2**62))
        count = max(1, min(int(p.get("count", 20)), 1000))
        skip = int(p.get("continuation") or 0)
        found = [
            r
            for r in reversed(a.settlements)
            if kind in (None, r["type"])
            and r["timestamp"] <= latest
            and self._base_of(r["instrument_name"]) == currency
        ]
        page = found[skip : skip + count]
        more = skip + count < len(found)
        return {"settlements": page, "continuation": str(skip + count) if more else "none"}


_METHODS: Final[dict[str, Callable[..., Any]]] = {
    "public/auth": DeribitSimulator._public_auth,
    "public/set_heartbeat": DeribitSimulator._set_heartbeat,
    "public/disable_heartbeat": DeribitSimulator._disable_heartbeat,
    "public/test": DeribitSimulator._test,
    "public/subscribe": DeribitSimulator._subscribe,
    "private/subscribe": DeribitSimulator._subscribe,
    "public/unsubscribe": DeribitSimulator._unsubscribe,
    "private/unsubscribe": DeribitSimulator._unsubscribe,
    "public/unsubscribe_all": DeribitSimulator._unsubscribe_all,
    "private/unsubscribe_all": DeribitSimulator._unsubscribe_all,
    "public/get_instruments": DeribitSimulator._get_instruments,
    "public/get_instrument": DeribitSimulator._get_instrument,
    "public/get_currencies": DeribitSimulator._get_currencies,
    "public/ticker": DeribitSimulator._ticker,
    "public/get_order_book": DeribitSimulator._get_order_book,
    "public/get_time": DeribitSimulator._get_time,
    "public/get_last_trades_by_instrument": DeribitSimulator._last_trades,
    "private/buy": DeribitSimulator._buy,
    "private/sell": DeribitSimulator._sell,
    "private/edit": DeribitSimulator._edit,
    "private/cancel": DeribitSimulator._cancel,
    "private/cancel_all": DeribitSimulator._cancel_all,
    "private/cancel_all_by_instrument": DeribitSimulator._cancel_all_by_instrument,
    "private/cancel_by_label": DeribitSimulator._cancel_by_label,
    "private/get_open_orders_by_currency": DeribitSimulator._open_orders_by_currency,
    "private/get_open_orders_by_instrument": DeribitSimulator._open_orders_by_instrument,
    "private/get_order_state": DeribitSimulator._order_state,
    "private/get_order_state_by_label": DeribitSimulator._order_state_by_label,
    "private/get_user_trades_by_currency_and_time": DeribitSimulator._user_trades_by_currency_and_time,
    "private/get_account_summary": DeribitSimulator._account_summary,
    "private/get_account_summaries": DeribitSimulator._account_summaries,
    "private/get_positions": DeribitSimulator._positions,
    "private/set_self_trading_config": DeribitSimulator._set_self_trading_config,
    "public/get_last_settlements_by_instrument": DeribitSimulator._last_settlements_by_instrument,
    "private/get_settlement_history_by_currency": DeribitSimulator._settlement_history_by_currency,
    **public_methods.METHODS,  # the methods a client calls first (public_methods.py)
}
