"""A local Polymarket CLOB (`tradingd simulate polymarket --port N`): the market and user
WebSocket channels and the REST API on one port, on 127.0.0.1 (VENUES.md §2). Tests point the
daemon at it, and Polymarket's own Python client (`py-clob-client-v2`) trades on it.

Fidelity:
- **Market channel** `/ws/market` (§2.2): the subscription message (`assets_ids`, `type`,
  `custom_feature_enabled`, `initial_dump`) and dynamic `operation: subscribe | unsubscribe`
  (with or without `type`); the books of newly subscribed tokens as one JSON array of `book`
  events (best levels last), at once or, with `dump_delay_s`, that long later (the subscription
  takes effect with its books: nothing of those tokens is sent before them); then
  `price_change` (entries for the peer's tokens only, each with the best bid/ask after it),
  `last_trade_price`, `book` after trades, `tick_size_change` when a price crosses 0.96 or
  0.04, and with custom features `best_bid_ask`, `new_market`, `market_resolved`.
  The text `PING` is answered `PONG`.
- **User channel** `/ws/user` (§2.2): `{"auth": {apiKey, secret, passphrase}, "markets": [...],
  "type": "user"}` (a wrong key closes the connection; no markets = every market), then our
  `order` events (PLACEMENT, UPDATE, CANCELLATION) and `trade` events through their settlement:
  MATCHED, then MINED, then CONFIRMED; or RETRYING then FAILED for a trade the `fail_trades`
  switch spoils (its effects on balance and position are undone, as the chain never moved
  them).
- **REST** (§2.3, and every endpoint `py-clob-client-v2` calls to read, sign, post and cancel):
  `/ok`, `/time`, `/version`, `/book`, `/books`, `/price(s)`, `/midpoint(s)`, `/spread(s)`,
  `/last-trade(s)-price(s)`, `/tick-size`, `/neg-risk`, `/fee-rate` (`base_fee` 1000 for
  every fee-bearing market, 0 for a free one, as the venue answers: py-clob-client-v2 #107),
  `/markets`,
  `/markets/{condition_id}`, `/markets-by-token/{token}`, `/clob-markets/{condition_id}`;
  L1 (`ClobAuth` signature checked): `POST /auth/api-key`, `GET /auth/derive-api-key`; L2 (HMAC
  over the exact bytes received, and the key's passphrase and address checked, else 401
  `{"error": "Unauthorized/Invalid api key"}`): `POST /order`, `POST /orders`, `DELETE /order`,
  `DELETE /orders`, `DELETE /cancel-all`, `DELETE /cancel-market-orders`, `GET /data/orders`,
  `GET /data/order/{id}` (`null` once the order no longer rests), `GET /data/trades`,
  `GET /balance-allowance`, `GET /auth/api-keys`, `POST /v1/heartbeats` (when heartbeats stop
  for `heartbeat_timeout_s`, every open order of the key is cancelled).
- **Orders** are verified as the venue verifies them: the owner is the API key's, the signer
  the key's address (`signer address has to be the address of the API KEY`), the EIP-712 V2
  signature recovers the signer for the token's exchange (neg-risk or not), else 400
  `{"error": "invalid signature"}`; then the business checks answer `success: false` with the
  venue's `errorMsg` codes: tick (`INVALID_ORDER_MIN_TICK_SIZE`), minimum size, expiration (GTD at
  least 3 minutes ahead; it expires a minute before its stated time), duplicate, post-only,
  `FOK_ORDER_NOT_FILLED_ERROR`, FAK with nothing to match. An order its account cannot fund
  (pUSD for a buy, shares for a sell, less what its open orders hold) is refused as the venue's
  captured answers refuse it: HTTP 400 `{"error": "not enough balance / allowance: the balance
  is not enough -> balance: 4893500, order amount: 5000000"}` (amounts in millionths;
  py-clob-client #311, #265, #290); the docs' `INVALID_ORDER_NOT_ENOUGH_BALANCE` is never seen
  there. The order id is the EIP-712 digest.
- **Gamma** (§2.7) under `/gamma` (`gamma_simulator.py`): the simulated markets, for the market
  catalog (`[catalog] gamma_url = "http://127.0.0.1:N/gamma"`).
- **Matching**: one `simulators.matching.OrderBook` per market, price-time priority, in the terms
  of its first (Yes) token: an order of the other token is mirrored into it (a buy of No at q is
  a sell of Yes at 1 - q), so complementary orders match as the venue matches them ("the
  contract enables complementary tokens to match across a unified order book",
  docs.polymarket.com/developers/CLOB; the V2 exchange's MINT and MERGE matches; the live
  capture `nt_py_user_trade1.json`, a Yes buy at 0.518 filled partly by a No buy at 0.482): a
  buy of Yes meeting a buy of No mints the pair, two sales merge it. The
  synthetic market's levels (the generator's feed: `generator.py`, binary markets, a neg-risk
  event, a tick size change near 1, a resolution) are set into it as the feed changes them
  (`set_market_level`; a market level crossing a resting client order trades with it), the
  feed's trades fill the client orders they reach (`market_trade`), and client orders match
  the market's levels and each other's (a client taker against another client's resting order
  makes one trade for each). The public book (the market channel, `GET /book`, `/price`...)
  is the feed's levels plus the clients' resting orders, in both tokens' views (a Yes bid at p
  is a No ask at 1 - p): the feed's frames are sent with the clients' sizes added to their
  levels and the best bid/ask of the whole book, and a client order that rests, fills or leaves
  is announced by a `price_change` of its levels.
- **Fees and balances** (`fees.py`, from docs.polymarket.com/trading/fees and the V2 exchange
  contract): a taker pays `size x rate x (p(1-p))^exponent` of its market's `feeSchedule`,
  floored to 0.00001, in pUSD on both sides: a taker buy is credited every share it matched and
  pays `size x price + fee` pUSD, a taker sell receives `size x price - fee`; makers pay
  nothing. A trade reports the matched `size` and `fee_rate_bps` "0", as the one captured V2
  taker fill's record did (py-clob-client-v2 #107) while a fee was charged.
- **Signatures** (`auth.py`): the simulator's own EIP-712 `ClobAuth` and V2 `Order` structs and
  L2 HMAC rule, checked with eth-account. **Shapes** (`wire.py`): every JSON it sends.

Fault switches (engine/sim/server.py; `POST /_sim/faults`): `drop`, `stall_s`, `gap` (a token's
next price change that moves its top is lost: the client's best bid/ask cross-check catches it),
`reject` (the next orders answer `success: false` with that message), `rate_limit` (the next
REST requests get 429), `garbage`; and Polymarket's own `fail_trades` (the next n trades end
FAILED), `trade` (`{"token": ..., "side": "buy" | "sell", "price": "...", "size": "..."}`:
another participant's taker trade prints as a `last_trade_price` and fills the resting orders it
reaches, like Derive's switch: one trade, whose `maker_orders[]` lists each of an account's orders
it filled), `dump_delay_s` (the books of a subscription are sent that long after it, for clients
that wait for them), and the order of an order's two answers, both seen at the real venue (the
HTTP answer of `POST /order` and the user channel's `order`/`trade` events travel separately):
`user_lag_s` (the user channel tells of orders and trades that much after the HTTP answer: the
answer outruns the channel) and `answer_lag_s` (the HTTP answer of an order comes that much
after the user channel has told its fate: the channel outruns the answer). A client must take
the order's fate from whichever comes first and never guess it from the other's absence. And the
venue's known failures of `venue_faults.py`: `too_early` (HTTP 425), `trading` (503 disabled /
cancel-only), `cloudflare` (an HTML 403), `silent` (a market channel that answers PING and sends
nothing else). `clob_reads.py` answers `/simplified-markets`, `/sampling-markets`,
`/sampling-simplified-markets` and `/prices-history`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, ClassVar, Final
from urllib.parse import parse_qsl

import attrs
import orjson
import structlog
import trio

from tradingd.engine.sim import Receive, Scope, Send, SimPeer, SimulatorServer, serve
from tradingd.engine.sim.server import COUNT, FLAG, OBJECT, SECONDS, SHARED_SWITCHES, TEXT, Switch

from ..common import dec as _dec
from ..matching import MARKET, Match, OrderBook, Side
from . import wire
from .auth import ApiKey, Wallet, clob_auth_typed_data, hmac_signature, order_typed_data, recover, signed_by
from .clob_reads import ClobReads
from .crypto import ATM_LEG
from .fees import FeeSchedule, taker_fee
from .gamma_simulator import GammaSimulator
from .generator import PolymarketFeed
from .venue_faults import VenueFaults

__all__ = [
    "DEMO_ACCOUNT",
    "DEMO_ADDRESS",
    "DEMO_API",
    "VENUE",
    "PolymarketSimulator",
    "derive_api_credentials",
    "serve",
]

VENUE: Final = "polymarket"
# The well-known test key of VENUES.md §2.4 (Hardhat's account #0): a demo, never real funds.
DEMO_KEY: Final = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEMO_ADDRESS: Final = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
_UNITS: Final = Decimal(1_000_000)  # pUSD and outcome tokens both have 6 decimals (§2.5)
_INVALID_KEY: Final = {"error": "Unauthorized/Invalid api key"}
_ORDER_TYPES: Final = frozenset({"GTC", "GTD", "FOK", "FAK"})
_TIF: Final = {"GTC": "gtc", "GTD": "gtc", "FOK": "fok", "FAK": "ioc"}
_GTD_THRESHOLD_S: Final = 60
_GTD_MIN_AHEAD_S: Final = 180
_PAGE: Final = 500
_FAK_UNMATCHED: Final = (
    "no orders found to match with FAK order. FAK orders are partially filled or killed if no match is found."
)
_CROWD_OWNER: Final = "00000000-0000-0000-0000-00000000c0de"
_CROWD_ADDRESS: Final = "0x0000000000000000000000000000000000c0ffee"


def derive_api_credentials(address: str, nonce: int = 0) -> ApiKey:
    """The simulator's API key of an address (what `/auth/derive-api-key` gives): deterministic,
    so a restarted simulator knows the demo account's key."""
    seed = hashlib.sha256(f"tradingd-sim:{address.lower()}:{nonce}".encode()).digest()
    return ApiKey(
        key=str(uuid.UUID(bytes=seed[:16], version=4)),
        secret=base64.urlsafe_b64encode(hashlib.sha256(seed + b"secret").digest()).decode(),
        passphrase=hashlib.sha256(seed + b"passphrase").hexdigest(),
    )


DEMO_API: Final = derive_api_credentials(DEMO_ADDRESS)
DEMO_ACCOUNT: Final = Wallet(private_key=DEMO_KEY, api=DEMO_API)
_fmt = wire.fmt


class _Refused(Exception):
    """An HTTP error answer: (status, JSON body)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def _not_enough(balance: Decimal, amount: Decimal) -> _Refused:
    """The venue's refusal of an order its balance cannot fund (module docstring)."""
    return _Refused(
        400,
        {
            "error": "not enough balance / allowance: the balance is not enough -> "
            f"balance: {int(balance * _UNITS)}, order amount: {int(amount * _UNITS)}"
        },
    )


@attrs.define(eq=False)
class _Token:
    """One outcome token as the venue knows it (from its Gamma market), its public book (the
    feed's levels, as published) and its matching book (the feed's levels and client orders)."""

    token_id: str
    market: str  # condition id
    outcome: str  # "Yes" | "No"
    question: str
    slug: str
    neg_risk: bool
    neg_risk_market_id: str | None
    tick: Decimal
    min_size: Decimal
    fees: FeeSchedule | None
    book: OrderBook  # its market's one book, in the terms of the market's first token (`primary`)
    primary: bool  # the market's first token (Yes): the book's terms; the other's are mirrored
    bids: dict[Decimal, Decimal] = attrs.field(factory=dict)  # the public book: price -> size
    asks: dict[Decimal, Decimal] = attrs.field(factory=dict)
    timestamp_ms: int = 0
    active: bool = True

    def top(self) -> tuple[Decimal | None, Decimal | None]:
        return (max(self.bids) if self.bids else None, min(self.asks) if self.asks else None)

    def unified(self, side: Side, price: Decimal) -> tuple[Side, Decimal]:
        """An order of this token in its market's book: the first token's as it is; the other's
        mirrored, a buy of it at q being a sell of the first at 1 - q (module docstring)."""
        return (side, price) if self.primary else (side.opposite, 1 - price)

    def own(self, price: Decimal) -> Decimal:
        """A price of the market's book as this token's price."""
        return price if self.primary else 1 - price


@attrs.define(eq=False)
class _Account:
    address: str
    api: ApiKey
    balance: Decimal = Decimal(100_000)  # pUSD
    positions: dict[str, Decimal] = attrs.field(factory=dict)  # token -> shares
    orders: dict[str, _SimOrder] = attrs.field(factory=dict)
    trades: list[_SimTrade] = attrs.field(factory=list)
    heartbeat_deadline: float | None = None  # trio time; None: heartbeats not started


@attrs.define(eq=False)
class _SimOrder:
    account: _Account
    order_id: str  # the EIP-712 digest
    token: _Token
    side: Side
    price: Decimal
    size: Decimal  # shares
    order_type: str  # GTC | GTD | FOK | FAK
    expiration: int  # unix s, 0: none
    created_s: int
    expire_at_ns: int | None = None  # a GTD's end at the venue (a minute before its stated time)
    status: str = "LIVE"  # LIVE | MATCHED | CANCELED
    matched: Decimal = Decimal(0)
    trades: list[str] = attrs.field(factory=list)
    shown: Decimal = Decimal(0)  # what of it the public book shows now

    @property
    def market(self) -> str:
        return self.token.market

    @property
    def remaining(self) -> Decimal:
        return self.size - self.matched


@attrs.define(eq=False)
class _SimTrade:
    id: str
    account: _Account
    order: _SimOrder
    taker: bool
    side: Side  # our order's side
    price: Decimal
    size: Decimal
    fee: Decimal  # pUSD (`fees.py`)
    match_s: int
    match_ms: int
    counterparty: _SimOrder | None  # the other side's order when it is a client's; None: the crowd
    other_order: str
    next_at: float  # trio time of the next settlement step
    fail: bool = False
    status: str = "MATCHED"
    transaction_hash: str = ""
    last_update_s: int = 0
    # Our other maker orders the same taker matched: one trade, one id, each of our orders in its
    # `maker_orders[]` (§2.2). Their settlement is this trade's.
    also: list[_SimTrade] = attrs.field(factory=list)


@attrs.define(eq=False)
class _Peer(SimPeer):
    assets: set[str] = attrs.field(factory=set)
    custom: bool = False
    subscribed: bool = False
    account: _Account | None = None
    markets: set[str] = attrs.field(factory=set)  # user channel filter; empty: every market


def _is(order_id: str) -> Callable[[_SimOrder], bool]:
    return lambda o: o.order_id == order_id


def _query(query: str) -> dict[str, str]:
    return dict(parse_qsl(query, keep_blank_values=True))


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise _Refused(400, {"error": "Invalid payload: not JSON"}) from None


def _ids(value: Any) -> set[str] | None:
    """The ids of a subscription's `assets_ids` / `markets` (absent: none); None when the field
    is not a list of strings or numbers (a hostile message: logged and ignored)."""
    if value is None:
        return set()
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        return None
    return {str(v) for v in value}


def _side(text: Any) -> Side | None:
    return {"BUY": Side.BUY, "SELL": Side.SELL}.get(str(text).upper())


def _token_of(gamma: dict[str, Any]) -> list[_Token]:
    """The tokens of a Gamma market object (§2.7: `clobTokenIds`, `outcomes` JSON-encoded)."""
    ids = orjson.loads(gamma["clobTokenIds"])
    labels = orjson.loads(gamma["outcomes"])
    schedule = gamma.get("feeSchedule")
    fees = (
        FeeSchedule(
            rate=_dec(schedule["rate"]),
            exponent=_dec(schedule.get("exponent", 1)),
            rebate_rate=_dec(schedule.get("rebateRate", 0)),
            taker_only=bool(schedule.get("takerOnly", True)),
        )
        if gamma.get("feesEnabled") and schedule
        else None
    )
    # One book for the market (`_Token.unified`): its tokens' orders meet there, complementary
    # ones included.
    book = OrderBook(str(ids[0]))
    return [
        _Token(
            token_id=str(token),
            market=str(gamma["conditionId"]),
            outcome=str(label),
            question=str(gamma["question"]),
            slug=str(gamma["slug"]),
            neg_risk=bool(gamma.get("negRisk")),
            neg_risk_market_id=gamma.get("negRiskMarketID"),
            tick=_dec(gamma["orderPriceMinTickSize"]),
            min_size=_dec(gamma["orderMinSize"]),
            fees=fees,
            book=book,
            primary=i == 0,
            active=bool(gamma.get("active", True)) and not gamma.get("closed", False),
        )
        for i, (token, label) in enumerate(zip(ids, labels, strict=True))
    ]


class PolymarketSimulator(SimulatorServer[_Peer]):
    """The simulated CLOB (module docstring). An ASGI app; `run` steps its market."""

    venue = VENUE
    ws_paths = ("/ws/market", "/ws/user")
    default_reject = ("INVALID_ORDER_NOT_ENOUGH_BALANCE", "INVALID_ORDER_NOT_ENOUGH_BALANCE")
    switches: ClassVar[dict[str, Switch]] = {
        **SHARED_SWITCHES,
        "fail_trades": COUNT,
        "trade": OBJECT,
        "dump_delay_s": SECONDS,
        "user_lag_s": SECONDS,
        "answer_lag_s": SECONDS,
        # venue_faults.py's
        "trading": TEXT,
        "silent": FLAG,
        "silent_s": SECONDS,
        "too_early": COUNT,
        "cloudflare": COUNT,
        "bad_gateway": COUNT,
    }

    def __init__(
        self,
        *,
        seed: int = 7,
        crypto: str = "none",
        strikes: int = 4,
        mispriced: float = 0.0,
        mispriced_leg: int = ATM_LEG,
        chain_id: int = 137,
        accounts: Iterable[str] = (DEMO_ADDRESS,),
        step_s: float = 0.25,
        hours: float = 24.0,
        mine_s: float = 0.5,
        confirm_s: float = 1.0,
        heartbeat_timeout_s: float = 10.0,
        dump_delay_s: float = 0.0,
        outbox: int = 10_000,
        clock: Callable[[], int] = time.time_ns,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        super().__init__(step_s=step_s, outbox=outbox, clock=clock, log=log)
        self.chain_id = chain_id
        self.mine_s = mine_s
        self.confirm_s = confirm_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.dump_delay_s = dump_delay_s  # the books of a subscription are sent this much later
        self.user_lag_s = 0.0  # the user channel tells this much after the order's HTTP answer
        self.answer_lag_s = 0.0  # an order's HTTP answer comes this much after the user channel
        self._lagging: list[tuple[float, _Account, str, bytes]] = []  # (due, account, market, frame)
        self.late_sent = 0  # `user_lag_s` messages sent once due (tests wait on it)
        self._dumps: list[tuple[float, _Peer, set[str]]] = []  # (trio time due, peer, tokens)
        # crypto "deribit": the generator's Bitcoin price markets too, on the BTC path of a Deribit
        # simulator of the same seed and `strikes` started at the same instant (its Gamma serves them).
        # `mispriced`: the price leg `mispriced_leg` is quoted that far from the model's probability
        # from the start (a gap to trade on at once; `crypto.py`); 0, none.
        self.feed = PolymarketFeed(
            seed,
            clock(),
            crypto=crypto,
            strikes=strikes,
            mispriced=mispriced,
            mispriced_leg=mispriced_leg,
        )
        opening = self.feed.opening(hours)
        # What the venue knows of its markets is what its Gamma publishes of them.
        gamma = [self.feed._gamma(m) for m in self.feed.markets]
        self.gamma = GammaSimulator(gamma)
        self.tokens: dict[str, _Token] = {}
        self.condition_tokens: dict[str, list[_Token]] = {}
        for market in gamma:
            for token in _token_of(market):
                self.tokens[token.token_id] = token
                self.condition_tokens.setdefault(token.market, []).append(token)
        self.last_trade: dict[str, tuple[str, str]] = {}  # token -> (price, side)
        self.accounts: dict[str, _Account] = {}  # by API key
        for address in accounts:
            self.register(address)
        self.orders: dict[str, _SimOrder] = {}  # by order id (the EIP-712 digest)
        self._live: dict[str, dict[str, _SimOrder]] = {}  # market -> its resting client orders
        # The clients' resting orders in the public book: (token, side) -> price -> size, each
        # order in both tokens' views.
        self._shown: dict[tuple[str, Side], dict[Decimal, Decimal]] = {}
        self._dirty: set[tuple[str, Side, Decimal]] = set()  # public levels client orders moved
        self._own_frame = False  # publishing a frame of ours (sizes already with the clients')
        self.trades: dict[str, _SimTrade] = {}
        self._settling: list[_SimTrade] = []
        self._trade_ids = itertools.count(1)
        self.fail_trades = 0  # the next n trades end FAILED
        self.unserved: Counter[str] = Counter()  # requests for endpoints the simulator does not have
        self._probed: dict[int, int] = {}  # latency probe: key -> the exchange time it was last used for
        self._tops: dict[str, tuple[Any, Any]] = {}  # last best bid/ask sent per token (gap switch)
        self.venue_faults = VenueFaults(self.log)  # the venue's own failures (venue_faults.py)
        self.reads = ClobReads(self)  # simplified / sampling markets, prices history (clob_reads.py)
        for _, frame in opening:
            self.on_market_frame(frame, clock())

    # -- accounts -------------------------------------------------------------------------------
    def register(self, address: str, nonce: int = 0) -> _Account:
        """An account for `address` with its API key (the simulator's `derive_api_credentials`)."""
        api = derive_api_credentials(address, nonce)
        account = self.accounts.get(api.key)
        if account is None:
            account = self.accounts[api.key] = _Account(address, api)
        return account

    def account_of(self, address: str) -> _Account | None:
        for account in self.accounts.values():
            if account.address.lower() == address.lower():
                return account
        return None

    # -- the market -----------------------------------------------------------------------------
    def market_step(self) -> list[bytes]:
        return [frame for _, frame in self.feed.step() if frame != b"PONG"]  # PONG answers PING only

    def levels(self, token: str) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        """The public book of `token` (bids, asks: price -> size), what the market channel showed:
        the market's levels and the clients' resting orders."""
        return self.public(token, Side.BUY), self.public(token, Side.SELL)

    def public(self, token: str, side: Side) -> dict[Decimal, Decimal]:
        """One side of `token`'s public book: the market's levels (the feed's) plus the clients'
        resting orders, those of the market's other token mirrored (a bid for No at q is an ask
        for Yes at 1 - q: one book, §2.2's two views of it)."""
        t = self.tokens[token]
        out = dict(t.bids if side is Side.BUY else t.asks)
        for price, size in self._shown.get((token, side), {}).items():
            out[price] = out.get(price, Decimal(0)) + size
        return out

    def top(self, token: str) -> tuple[Decimal | None, Decimal | None]:
        """`token`'s best public bid and ask."""
        bids, asks = self.public(token, Side.BUY), self.public(token, Side.SELL)
        return (max(bids) if bids else None, min(asks) if asks else None)

    def _rests(self, sim: _SimOrder, resting: bool) -> None:
        """A client order entered (`resting`) or left the public book, or its size there moved:
        its level in both tokens' views is to be published again (`_flush`)."""
        live = self._live.setdefault(sim.market, {})
        if resting and sim.status == "LIVE" and sim.remaining > 0:
            live[sim.order_id] = sim
        else:
            live.pop(sim.order_id, None)
        now_shown = sim.remaining if sim.order_id in live else Decimal(0)
        delta, sim.shown = now_shown - sim.shown, now_shown
        views = [(sim.token.token_id, sim.side, sim.price)] + [
            (other.token_id, sim.side.opposite, 1 - sim.price)
            for other in self.condition_tokens[sim.market]
            if other is not sim.token
        ]
        for token_id, side, price in views:
            levels = self._shown.setdefault((token_id, side), {})
            size = levels.get(price, Decimal(0)) + delta
            if size > 0:
                levels[price] = size
            else:
                levels.pop(price, None)
            self._dirty.add((token_id, side, price))

    def _views(self) -> Callable[[str], tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]]:
        """`levels`, each token's computed once (for the frames of one instant)."""
        seen: dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}

        def view(token: str) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
            got = seen.get(token)
            if got is None:
                got = seen[token] = self.levels(token)
            return got

        return view

    @staticmethod
    def _top_of(view: tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]) -> tuple[str, str]:
        """The best bid and ask of a book view as a `price_change` writes them ("0"/"1": none)."""
        bids, asks = view
        return (_fmt(max(bids)) if bids else "0", _fmt(min(asks)) if asks else "1")

    def _flush(self) -> None:
        """Publish the public levels client orders moved: one `price_change` per market with the
        level's new total and the token's best bid and ask after it (§2.2)."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        now_ms = self.clock() // 1_000_000
        view = self._views()
        hashes: dict[str, str] = {}
        by_market: dict[str, list[dict[str, str]]] = {}
        for token_id, side, price in sorted(dirty, key=lambda k: (k[0], k[1].value, k[2])):
            t = self.tokens[token_id]
            bids, asks = view(token_id)
            best_bid, best_ask = self._top_of((bids, asks))
            if token_id not in hashes:
                hashes[token_id] = self.summary(token_id, (bids, asks))["hash"]
            by_market.setdefault(t.market, []).append(
                wire.price_change_entry(
                    asset_id=token_id,
                    price=_fmt(price),
                    size=_fmt((bids if side is Side.BUY else asks).get(price, Decimal(0))),
                    side=side.value.upper(),
                    hash=hashes[token_id],
                    best_bid=best_bid,
                    best_ask=best_ask,
                )
            )
        self._own_frame = True
        try:
            for market, entries in by_market.items():
                frame = wire.price_change(market=market, entries=entries, timestamp=str(now_ms))
                self.publish(orjson.dumps(frame))
        finally:
            self._own_frame = False

    def publish(self, frame: bytes) -> None:
        super().publish(frame)
        if not self._own_frame:
            self._flush()  # the client levels the frame's fills moved, after it

    def _with_clients(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        """A frame of the feed (market levels only) as the public book shows it, the clients'
        resting orders added; None when no client order rests in its market (as it is)."""
        market = msg.get("market")
        if not self._live.get(str(market)):
            return None
        kind = msg.get("event_type")
        view = self._views()
        if kind == "price_change":
            entries = []
            for e in msg.get("price_changes") or ():
                side = _side(e.get("side"))
                if e.get("asset_id") not in self.tokens or side is None:
                    entries.append(e)
                    continue
                bids, asks = view(e["asset_id"])
                best_bid, best_ask = self._top_of((bids, asks))
                size = (bids if side is Side.BUY else asks).get(_dec(e["price"]), Decimal(0))
                entries.append({**e, "size": _fmt(size), "best_bid": best_bid, "best_ask": best_ask})
            return {**msg, "price_changes": entries}
        if kind == "book" and msg.get("asset_id") in self.tokens:
            bids, asks = view(msg["asset_id"])
            return {
                **msg,
                "bids": wire.levels(bids.items(), descending=False),
                "asks": wire.levels(asks.items(), descending=True),
            }
        if kind == "best_bid_ask" and msg.get("asset_id") in self.tokens:
            bids, asks = view(msg["asset_id"])
            if not bids or not asks:
                return None
            bb, ba = max(bids), min(asks)
            return {**msg, "best_bid": _fmt(bb), "best_ask": _fmt(ba), "spread": _fmt(ba - bb)}
        return None

    def on_market_frame(self, frame: bytes, now: int) -> None:
        """Fold one frame of the synthetic market (the generator's, the venue's own) into the
        books: the public one as published, the matching one with the fills it makes."""
        try:
            msg = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return
        for ev in msg if isinstance(msg, list) else [msg]:
            if isinstance(ev, dict):
                self._market_event(ev, now)
        # The client levels it moved are published after it (`publish`): the print, then the book.

    def _market_event(self, ev: dict[str, Any], now: int) -> None:
        kind = ev.get("event_type")
        if kind == "price_change":
            for entry in ev.get("price_changes") or ():
                token = self.tokens.get(str(entry.get("asset_id")))
                side = _side(entry.get("side"))
                if token is None or side is None:
                    continue
                token.timestamp_ms = int(ev.get("timestamp") or token.timestamp_ms)
                self._set_level(token, side, _dec(entry["price"]), _dec(entry["size"]), now)
        elif kind == "book":
            token = self.tokens.get(str(ev.get("asset_id")))
            if token is None:
                return
            token.timestamp_ms = int(ev.get("timestamp") or token.timestamp_ms)
            for side, key, public in ((Side.BUY, "bids", token.bids), (Side.SELL, "asks", token.asks)):
                new = {_dec(level["price"]): _dec(level["size"]) for level in ev.get(key) or ()}
                for price in [p for p in public if p not in new]:
                    self._set_level(token, side, price, Decimal(0), now)
                for price, size in new.items():
                    self._set_level(token, side, price, size, now)
        elif kind == "last_trade_price":
            token = self.tokens.get(str(ev.get("asset_id")))
            side = _side(ev.get("side"))
            if token is None or side is None:
                return
            self.last_trade[token.token_id] = (_fmt(_dec(ev["price"])), side.value.upper())
            # The print in the book's terms: a sale of the second token at q is a purchase of
            # the first at 1 - q.
            book_side, book_price = token.unified(side, _dec(ev["price"]))
            matches = token.book.market_trade(book_side, book_price, _dec(ev["size"]))
            if matches:
                # A public trade is one taker's match: the maker orders of an account it reaches
                # are one trade (§2.2).
                self._matched(matches, now, one_match=True)
        elif kind == "tick_size_change":
            token = self.tokens.get(str(ev.get("asset_id")))
            if token is not None:
                token.tick = _dec(ev["new_tick_size"])
        elif kind == "market_resolved":
            winner = str(ev.get("winning_asset_id"))
            for token_id in ev.get("assets_ids") or ():
                token = self.tokens.get(str(token_id))
                if token is None:
                    continue
                token.active = False
                self._cancel_where(None, lambda o, t=token: o.token is t)  # type: ignore[misc]
                self._settle_positions(token.token_id, Decimal(1) if token.token_id == winner else Decimal(0))

    def _set_level(self, token: _Token, side: Side, price: Decimal, size: Decimal, now: int) -> None:
        public = token.bids if side is Side.BUY else token.asks
        if size > 0:
            public[price] = size
        else:
            public.pop(price, None)
        if not token.primary:
            return  # the feed sends the first token's entry of the same change: the book's own
        matches = token.book.set_market_level(side, price, size)
        if matches:
            self._matched(matches, now)

    def step(self) -> None:
        self._send_due_dumps()
        self._send_lagging()
        super().step()
        now = self.clock()
        for sim in [o for o in self.orders.values() if o.status == "LIVE" and o.expire_at_ns is not None]:
            if sim.expire_at_ns is not None and sim.expire_at_ns <= now:
                self._cancel_where(sim.account, _is(sim.order_id))
        self._advance_trades()
        self._check_heartbeats()
        self.reads.sample(now)

    def _settle_positions(self, token: str, payout: Decimal) -> None:
        for account in self.accounts.values():
            shares = account.positions.pop(token, Decimal(0))
            if shares:
                account.balance += shares * payout

    def garbage_frames(self) -> list[bytes]:
        return [b'{"event_type":"book","asset_id":', b"\x00\xffnot json at all"]

    def deliveries(self, frame: bytes) -> Iterable[tuple[_Peer, bytes]]:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            return []
        if not self._own_frame:
            shown = self._with_clients(msg)
            if shown is not None:
                msg, frame = shown, orjson.dumps(shown)
        kind = msg.get("event_type")
        peers = [p for p in self.sessions.values() if p.path == "/ws/market" and p.subscribed]
        out: list[tuple[_Peer, bytes]] = []
        if kind == "price_change":
            entries = msg.get("price_changes") or []
            kept = []
            for e in entries:
                asset = e["asset_id"]
                top = (e.get("best_bid"), e.get("best_ask"))
                moved = top != self._tops.get(asset)
                self._tops[asset] = top
                if (
                    moved
                    and self.faults.gap
                    and any(asset in p.assets for p in peers)  # a book someone follows
                    and self.faults.take_gap(asset)
                ):
                    self.log.info("simulator.gap", instrument=asset)
                    continue  # lost: the next change's best bid/ask no longer match the client's book
                kept.append(e)
            for peer in peers:
                mine = [e for e in kept if e["asset_id"] in peer.assets]
                if not mine:
                    continue
                out.append(
                    (
                        peer,
                        frame if len(mine) == len(entries) else orjson.dumps({**msg, "price_changes": mine}),
                    )
                )
            return out
        if kind in ("best_bid_ask", "new_market", "market_resolved"):
            peers = [p for p in peers if p.custom]
        if kind == "new_market":
            return [(p, frame) for p in peers]
        assets = set(msg.get("assets_ids") or ()) if kind == "market_resolved" else {msg.get("asset_id")}
        return [(p, frame) for p in peers if p.assets & assets]

    def probe_key(self, frame: bytes) -> Any:
        """Benchmarks: a price change of the probed token, keyed by its exchange time in ms
        modulo 10,000 (the benchmark's strategy puts that key in the size of its answer)."""
        probe = self.probe
        if probe is None or not frame.startswith(b'{"market"') or probe.encode() not in frame:
            return None
        ts = int(orjson.loads(frame)["timestamp"])
        key = ts % 10_000
        if self._probed.get(key) == ts:
            return None  # a later frame of the same instant: the first one is the tick answered
        self._probed[key] = ts
        return key

    # -- WebSocket ------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/gamma" or path.startswith("/gamma/")):
            inner = dict(scope)
            inner["path"] = path[len("/gamma") :] or "/"
            inner["raw_path"] = inner["path"].encode()
            await self.gamma(inner, receive, send)
            return
        if scope["type"] == "http" and await self.venue_faults.intercept(scope, receive, send):
            return  # refused by one of the venue's failures (venue_faults.py)
        await super().__call__(scope, receive, send)

    def send(self, peer: _Peer, frame: bytes) -> None:
        if not self.venue_faults.mutes(peer.path, frame):  # the `silent` switch (venue_faults.py)
            super().send(peer, frame)

    def new_peer(self, peer_id: int, outbox: trio.MemorySendChannel[bytes], path: str) -> _Peer:
        return _Peer(peer_id, outbox, path)

    async def on_text(self, peer: _Peer, text: str) -> None:
        if text == "PING":
            self.send(peer, b"PONG")
            return
        try:
            msg = orjson.loads(text)
            if not isinstance(msg, dict):
                raise TypeError
        except (orjson.JSONDecodeError, TypeError):
            self.log.info("simulator.bad_message", session=peer.id, text=text[:60])
            return
        if peer.path == "/ws/market":
            self._market_message(peer, msg)
        else:
            self._user_message(peer, msg)

    def _market_message(self, peer: _Peer, msg: dict[str, Any]) -> None:
        assets = _ids(msg.get("assets_ids"))
        if assets is None:
            self.log.info("simulator.bad_message", session=peer.id, reason="assets_ids is not a list of ids")
            return
        operation = msg.get("operation")
        if "custom_feature_enabled" in msg:
            peer.custom = bool(msg["custom_feature_enabled"])
        if operation == "unsubscribe":
            peer.assets -= assets
            for _, waiting, tokens in self._dumps:
                if waiting is peer:
                    tokens -= assets
            return
        peer.subscribed = True
        pending = {t for _, waiting, tokens in self._dumps if waiting is peer for t in tokens}
        new = assets - peer.assets - pending
        if not new:
            return
        if not msg.get("initial_dump", True):
            peer.assets |= new
        elif self.dump_delay_s > 0:
            self._dumps.append((trio.current_time() + self.dump_delay_s, peer, new))
        else:
            self._dump(peer, new)

    def _dump(self, peer: _Peer, tokens: set[str]) -> None:
        """The subscription of `tokens` takes effect: their books (one JSON array), then their
        changes."""
        peer.assets |= tokens
        books = [self._book_event(t) for t in sorted(tokens) if t in self.tokens]
        if books:
            self.send(peer, orjson.dumps(books))

    def _send_due_dumps(self) -> None:
        """The delayed books (`dump_delay_s`) whose time has come, to peers still connected."""
        if not self._dumps:
            return
        now = trio.current_time()
        waiting = []
        for entry in self._dumps:
            due, peer, tokens = entry
            if due > now:
                waiting.append(entry)
            elif peer.id in self.sessions and tokens:
                self._dump(peer, tokens)
        self._dumps = waiting

    def _user_message(self, peer: _Peer, msg: dict[str, Any]) -> None:
        markets = _ids(msg.get("markets"))
        if markets is None:
            self.log.info("simulator.bad_message", session=peer.id, reason="markets is not a list of ids")
            return
        if msg.get("operation") in ("subscribe", "unsubscribe"):
            if peer.account is None:
                self.close(peer, "subscribe before auth")
            elif msg["operation"] == "subscribe":
                peer.markets |= markets
            else:
                peer.markets -= markets
            return
        auth = msg.get("auth")
        if not isinstance(auth, dict):
            self.close(peer, "invalid auth")
            return
        account = self.accounts.get(str(auth.get("apiKey", "")))
        if (
            account is None
            or not hmac.compare_digest(account.api.secret, str(auth.get("secret", "")))
            or not hmac.compare_digest(account.api.passphrase, str(auth.get("passphrase", "")))
        ):
            self.close(peer, "invalid auth")
            return
        peer.account = account
        peer.markets = markets
        peer.subscribed = True

    def _book_event(self, token: str) -> dict[str, Any]:
        """A `book` event of the simulator's public book of `token` (best levels last, §2.2)."""
        return wire.book_event(self.summary(token))

    def _notify(self, account: _Account, market: str, obj: dict[str, Any]) -> None:
        frame = orjson.dumps(obj)
        if self.user_lag_s > 0:
            self._lagging.append((trio.current_time() + self.user_lag_s, account, market, frame))
            return
        self._deliver(account, market, frame)

    def _deliver(self, account: _Account, market: str, frame: bytes) -> None:
        for peer in list(self.sessions.values()):
            if (
                peer.account is account
                and peer.path == "/ws/user"
                and (not peer.markets or market in peer.markets)
            ):
                self.send(peer, frame)

    def _send_lagging(self) -> None:
        """The user-channel messages held back by `user_lag_s` whose time has come, in order."""
        if not self._lagging:
            return
        now = trio.current_time()
        due = [entry for entry in self._lagging if entry[0] <= now]
        self._lagging = [entry for entry in self._lagging if entry[0] > now]
        for _, account, market, frame in due:
            self._deliver(account, market, frame)
        self.late_sent += len(due)

    @property
    def late_pending(self) -> int:
        """User-channel messages `user_lag_s` holds back, not yet due."""
        return len(self._lagging)

    # -- REST -----------------------------------------------------------------------------------
    async def handle_http(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes] | None:
        self.requests += 1
        self.method_counts[f"{method} {path}"] += 1
        try:
            if self.faults.take_rate_limit():
                raise _Refused(429, {"error": "Too Many Requests"})
            read = self.reads.answer(method, path, _query(query))  # clob_reads.py
            if read is not None:
                return read
            result = self._route(method, path, _query(query), headers, body)
        except _Refused as exc:
            return exc.status, orjson.dumps(exc.body)
        if result is _NOT_FOUND:
            self.unserved[f"{method} {path}"] += 1
            return None
        if self.answer_lag_s > 0 and method == "POST" and path in ("/order", "/orders"):
            # The user channel has told the order's fate already; its answer trails (docstring).
            await trio.sleep(self.answer_lag_s)
        return 200, orjson.dumps(result)

    def _route(self, method: str, path: str, q: dict[str, str], headers: dict[str, str], body: bytes) -> Any:
        public = _PUBLIC.get((method, path))
        if public is not None:
            return public(self, q, body)
        if method == "GET":
            for prefix, handler in _PUBLIC_PREFIXES:
                if path.startswith(prefix) and len(path) > len(prefix):
                    return handler(self, path[len(prefix) :])
        l1 = _L1.get((method, path))
        if l1 is not None:
            return l1(self, self._l1(headers), headers)
        l2 = _L2.get((method, path))
        if l2 is None and method == "GET" and path.startswith("/data/order/"):
            return self._get_order(self._l2(method, path, headers, body), path[len("/data/order/") :])
        if l2 is None:
            return _NOT_FOUND
        return l2(self, self._l2(method, path, headers, body), q, body)

    def _l1(self, headers: dict[str, str]) -> str:
        """The address proven by the L1 headers (§2.4 `ClobAuth`); 401 otherwise."""
        address = headers.get("poly_address", "")
        try:
            typed = clob_auth_typed_data(
                address, headers.get("poly_timestamp", ""), int(headers.get("poly_nonce", "0")), self.chain_id
            )
            if recover(typed, headers.get("poly_signature", "")).lower() != address.lower():
                raise ValueError("not the address's signature")
        except (ValueError, TypeError):
            raise _Refused(401, {"error": "Invalid L1 Request headers"}) from None
        return address

    def _l2(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Account:
        """The account whose L2 headers (§2.4) sign this request exactly; 401 otherwise."""
        account = self.accounts.get(headers.get("poly_api_key", ""))
        if account is None:
            raise _Refused(401, _INVALID_KEY)
        ts = headers.get("poly_timestamp", "")
        try:
            expected = hmac_signature(account.api.secret, ts, method, path, body)
        except ValueError:
            raise _Refused(401, _INVALID_KEY) from None
        if (
            not ts.isdigit()
            or not hmac.compare_digest(expected, headers.get("poly_signature", ""))
            or not hmac.compare_digest(account.api.passphrase, headers.get("poly_passphrase", ""))
            or headers.get("poly_address", "").lower() != account.address.lower()
        ):
            raise _Refused(401, _INVALID_KEY)
        return account

    # -- public endpoints -------------------------------------------------------------------
    def _token(self, q: dict[str, str]) -> str:
        token = q.get("token_id", "")
        if token not in self.tokens:
            raise _Refused(404, {"error": "No orderbook exists for the requested token id"})
        return token

    def summary(
        self, token: str, view: tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]] | None = None
    ) -> dict[str, Any]:
        """`GET /book` (§2.3): the summary of the public book (`view`, if already computed) with
        its hash (`wire.py`)."""
        t = self.tokens[token]
        bids, asks = view if view is not None else self.levels(token)
        return wire.book_summary(
            market=t.market,
            asset_id=token,
            timestamp_ms=t.timestamp_ms or self.clock() // 1_000_000,
            bids=bids.items(),
            asks=asks.items(),
            min_order_size=t.min_size,
            tick_size=t.tick,
            neg_risk=t.neg_risk,
            last_trade_price=self.last_trade.get(token, ("", ""))[0],
        )

    def _book(self, q: dict[str, str], body: bytes) -> Any:
        return self.summary(self._token(q))

    def _tokens(self, body: bytes) -> list[dict[str, Any]]:
        items = _loads(body)
        if not isinstance(items, list) or not all(isinstance(i, dict) and "token_id" in i for i in items):
            raise _Refused(400, {"error": 'Invalid payload: expected [{"token_id": ...}]'})
        if len(items) > 500:
            raise _Refused(400, {"error": "Invalid payload: at most 500 items"})
        return [i for i in items if str(i["token_id"]) in self.tokens]

    def _books(self, q: dict[str, str], body: bytes) -> Any:
        return [self.summary(str(i["token_id"])) for i in self._tokens(body)]

    def _best(self, token: str, side: str) -> str:
        """§2.3 `/price`: the best bid for side BUY, the best ask for SELL."""
        bb, ba = self.top(token)
        value = bb if side.upper() == "BUY" else ba
        return "" if value is None else _fmt(value)

    def _price(self, q: dict[str, str], body: bytes) -> Any:
        side = q.get("side", "").upper()
        if side not in ("BUY", "SELL"):
            raise _Refused(400, {"error": "Invalid side"})
        return {"price": self._best(self._token(q), side)}

    def _prices(self, q: dict[str, str], body: bytes) -> Any:
        out: dict[str, dict[str, str]] = {}
        for i in self._tokens(body):
            token = str(i["token_id"])
            sides = [str(i["side"]).upper()] if i.get("side") else ["BUY", "SELL"]
            out.setdefault(token, {}).update({s: self._best(token, s) for s in sides})
        return out

    def _mid(self, token: str) -> str:
        bb, ba = self.top(token)
        return "" if bb is None or ba is None else _fmt((bb + ba) / 2)

    def _midpoint(self, q: dict[str, str], body: bytes) -> Any:
        return {"mid": self._mid(self._token(q))}

    def _midpoints(self, q: dict[str, str], body: bytes) -> Any:
        return {str(i["token_id"]): self._mid(str(i["token_id"])) for i in self._tokens(body)}

    def _spread_of(self, token: str) -> str:
        bb, ba = self.top(token)
        return "" if bb is None or ba is None else _fmt(ba - bb)

    def _spread(self, q: dict[str, str], body: bytes) -> Any:
        return {"spread": self._spread_of(self._token(q))}

    def _spreads(self, q: dict[str, str], body: bytes) -> Any:
        return {str(i["token_id"]): self._spread_of(str(i["token_id"])) for i in self._tokens(body)}

    def _last_trade_price(self, q: dict[str, str], body: bytes) -> Any:
        price, side = self.last_trade.get(self._token(q), ("", ""))
        return {"price": price, "side": side}

    def _last_trades_prices(self, q: dict[str, str], body: bytes) -> Any:
        out = []
        for i in self._tokens(body):
            token = str(i["token_id"])
            price, side = self.last_trade.get(token, ("", ""))
            out.append({"token_id": token, "price": price, "side": side})
        return out

    def _tick_size(self, q: dict[str, str], body: bytes) -> Any:
        return {"minimum_tick_size": float(self.tokens[self._token(q)].tick)}

    def _neg_risk(self, q: dict[str, str], body: bytes) -> Any:
        return {"neg_risk": self.tokens[self._token(q)].neg_risk}

    def _fee_rate(self, q: dict[str, str], body: bytes) -> Any:
        """`base_fee` 1000 for every fee-bearing market whatever its rate, 0 for one without
        fees: the venue's answer is the V1 signed fee authorization (a ceiling), not the rate.
        py-clob-client-v2 #107 (2026-08-04) read 1000 from markets whose `fd.r` was 0.04, 0.05
        and 0.07; the maintainers' PR #110 documents `get_fee_rate_bps` so ("a constant: 1000
        bps for every fee-bearing market, 0 for fee-free"; the real rate is `fd.r` of
        `/clob-markets`)."""
        fees = self.tokens[self._token(q)].fees
        return {"base_fee": 1000 if fees is not None and fees.rate > 0 else 0}

    def _ok(self, q: dict[str, str], body: bytes) -> Any:
        return "OK"

    def _time(self, q: dict[str, str], body: bytes) -> Any:
        return self.clock() // 1_000_000_000

    def _version(self, q: dict[str, str], body: bytes) -> Any:
        return {"version": 2}

    def clob_market(self, condition_id: str) -> dict[str, Any]:
        """A CLOB market object (§2.3 `GET /markets/{condition_id}`)."""
        tokens = self.condition_tokens.get(condition_id)
        if not tokens:
            raise _Refused(404, {"error": "market not found"})
        first = tokens[0]
        active = all(t.active for t in tokens)
        return {
            "enable_order_book": True,
            "active": active,
            "closed": not active,
            "archived": False,
            "accepting_orders": active,
            "minimum_order_size": float(first.min_size),
            "minimum_tick_size": float(first.tick),
            "condition_id": condition_id,
            "question_id": "0x" + hashlib.sha256(condition_id.encode()).hexdigest(),
            "question": first.question,
            "description": "",
            "market_slug": first.slug,
            "end_date_iso": None,
            "seconds_delay": 0,
            "maker_base_fee": 0,
            "taker_base_fee": 0,
            "neg_risk": first.neg_risk,
            "neg_risk_market_id": first.neg_risk_market_id,
            "tokens": [
                {
                    "token_id": t.token_id,
                    "outcome": t.outcome,
                    "price": float(self._mid(t.token_id) or 0),
                    "winner": False,
                }
                for t in tokens
            ],
            "tags": [],
        }

    def _markets(self, q: dict[str, str], body: bytes) -> Any:
        page = self._page(sorted(self.condition_tokens), q, 100)
        return {**page, "data": [self.clob_market(c) for c in page["data"]]}

    def _market(self, condition_id: str) -> Any:
        return self.clob_market(condition_id)

    def _market_by_token(self, token: str) -> Any:
        t = self.tokens.get(token)
        if t is None:
            raise _Refused(404, {"error": "market not found"})
        return {"condition_id": t.market, "primary_token_id": token}

    def _clob_market_info(self, condition_id: str) -> Any:
        """`/clob-markets/{id}`, the compact form `py-clob-client-v2` reads (`t`, `mts`, `nr`,
        `fd`); not in VENUES.md: shaped after that client's use of it."""
        tokens = self.condition_tokens.get(condition_id)
        if not tokens:
            raise _Refused(404, {"error": "market not found"})
        first = tokens[0]
        # `fd`: the schedule the venue charges by (`fees.py`), taker only (`to`).
        fees = first.fees
        return {
            "c": condition_id,
            "t": [{"t": t.token_id, "o": t.outcome} for t in tokens],
            "mts": float(first.tick),
            "mos": float(first.min_size),
            "nr": first.neg_risk,
            "fd": {
                "r": float(fees.rate) if fees is not None else 0.0,
                "e": float(fees.exponent) if fees is not None else 0.0,
                "to": True,
            },
        }

    # -- L1 -------------------------------------------------------------------------------------
    def _create_api_key(self, address: str, headers: dict[str, str]) -> Any:
        nonce = int(headers.get("poly_nonce", "0") or 0)
        api = derive_api_credentials(address, nonce)
        if api.key in self.accounts:
            raise _Refused(400, {"error": "Could not create api key"})
        self.register(address, nonce)
        return {"apiKey": api.key, "secret": api.secret, "passphrase": api.passphrase}

    def _derive_api_key(self, address: str, headers: dict[str, str]) -> Any:
        nonce = int(headers.get("poly_nonce", "0") or 0)
        api = self.register(address, nonce).api
        return {"apiKey": api.key, "secret": api.secret, "passphrase": api.passphrase}

    # -- L2 -------------------------------------------------------------------------------------
    def _api_keys(self, account: _Account, q: dict[str, str], body: bytes) -> Any:
        return {
            "apiKeys": [k for k, a in self.accounts.items() if a.address.lower() == account.address.lower()]
        }

    def _balance(self, account: _Account, q: dict[str, str], body: bytes) -> Any:
        if q.get("asset_type", "COLLATERAL").upper() == "CONDITIONAL":
            shares = account.positions.get(q.get("token_id", ""), Decimal(0))
            return {"balance": str(int(shares * _UNITS)), "allowance": str(10**18)}
        return {"balance": str(int(account.balance * _UNITS)), "allowance": str(10**18)}

    def _heartbeat(self, account: _Account, q: dict[str, str], body: bytes) -> Any:
        account.heartbeat_deadline = trio.current_time() + self.heartbeat_timeout_s
        return {"heartbeat_id": str(uuid.uuid4())}

    def _check_heartbeats(self) -> None:
        now = trio.current_time()
        for account in self.accounts.values():
            if account.heartbeat_deadline is not None and now > account.heartbeat_deadline:
                account.heartbeat_deadline = None
                cancelled = self._cancel_where(account, lambda o: True)
                self.log.info("simulator.heartbeat_lapsed", orders_cancelled=len(cancelled))

    def _reserved(self, account: _Account, token: str | None, side: Side) -> Decimal:
        """What the account's open orders hold: pUSD of buys, shares of `token` for sells."""
        total = Decimal(0)
        for o in account.orders.values():
            if o.status != "LIVE" or o.side is not side:
                continue
            if side is Side.BUY:
                total += o.remaining * o.price
            elif o.token.token_id == token:
                total += o.remaining
        return total

    def _post_order(self, account: _Account, q: dict[str, str], body: bytes) -> Any:
        if self.probe is not None:
            try:
                order = orjson.loads(body)["order"]
                shares = int(order["takerAmount" if order["side"] == "BUY" else "makerAmount"])
                self.arrived_at[str(shares // 10_000 - 500)] = time.perf_counter()
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                pass
        return self.place(account, _loads(body))

    def _post_orders(self, account: _Account, q: dict[str, str], body: bytes) -> Any:
        items = _loads(body)
        if not isinstance(items, list) or not 0 < len(items) <= 15:
            raise _Refused(400, {"error": "Invalid payload: a batch holds 1 to 15 orders"})
        out = []
        for item in items:
            try:
                out.append(self.place(account, item))
            except _Refused as exc:
                out.append(
                    {"success": False, "orderID": None, "errorMsg": str(exc.body.get("error", exc.body))}
                )
        return out

    def place(self, account: _Account, payload: Any) -> dict[str, Any]:
        """One order of `POST /order` (module docstring): verified, checked, matched."""
        if not isinstance(payload, dict) or not isinstance(payload.get("order"), dict):
            raise _Refused(400, {"error": "Invalid order payload"})
        o = payload["order"]
        if payload.get("owner") != account.api.key:
            raise _Refused(400, {"error": "the order owner has to be the owner of the API KEY"})
        order_type = str(payload.get("orderType", "GTC"))
        if order_type not in _ORDER_TYPES:
            raise _Refused(400, {"error": f"Invalid order type {order_type}"})
        try:
            token_id = str(o["tokenId"])
            signer = str(o["signer"])
            maker = str(o["maker"])
            sig_type = int(o["signatureType"])
            maker_amount = int(o["makerAmount"])
            taker_amount = int(o["takerAmount"])
            side = _side(o["side"]) if o["side"] in ("BUY", "SELL") else None
            expiration = int(o.get("expiration") or 0)
        except (KeyError, TypeError, ValueError):
            raise _Refused(400, {"error": "Invalid order payload"}) from None
        if side is None:
            raise _Refused(400, {"error": "Invalid order payload: side"})
        token = self.tokens.get(token_id)
        if token is None:
            raise _Refused(400, {"error": f"Invalid order payload: no market for token {token_id}"})
        if signer.lower() != account.address.lower():
            raise _Refused(400, {"error": "signer address has to be the address of the API KEY"})
        if sig_type == 0 and maker.lower() != signer.lower():
            raise _Refused(400, {"error": "maker address not allowed"})
        if sig_type not in (0, 1, 2):
            raise _Refused(400, {"error": f"signature type {sig_type} is not supported by the simulator"})
        try:
            typed = order_typed_data(o, chain_id=self.chain_id, neg_risk=token.neg_risk)
            digest, recovered = signed_by(typed, str(o.get("signature", "")))
        except (ValueError, KeyError, TypeError, OverflowError):
            raise _Refused(400, {"error": "invalid signature"}) from None
        if recovered.lower() != signer.lower():
            raise _Refused(400, {"error": "invalid signature"})
        order_id = "0x" + digest.hex()
        failed = self._business_checks(
            account, order_id, token, side, maker_amount, taker_amount, expiration, order_type, payload
        )
        if failed is not None:
            return {"success": False, "orderID": order_id, "errorMsg": failed}
        size, price = self._terms(side, maker_amount, taker_amount, order_type, token.tick)
        now = self.clock()
        sim = _SimOrder(
            account,
            order_id,
            token,
            side,
            price,
            size,
            order_type=order_type,
            expiration=expiration,
            created_s=now // 1_000_000_000,
            expire_at_ns=(expiration - _GTD_THRESHOLD_S) * 1_000_000_000 if order_type == "GTD" else None,
        )
        # Known before it matches: its fills are booked to it as they happen.
        self.orders[order_id] = account.orders[order_id] = sim
        book_side, book_price = token.unified(side, price)
        outcome = token.book.submit(
            order_id=order_id,
            owner=account.api.key,
            side=book_side,
            amount=size,
            price=book_price,
            tif=_TIF[order_type],  # type: ignore[arg-type]
            post_only=bool(payload.get("postOnly")),
        )
        if outcome.rejected is not None or not (outcome.matches or outcome.resting):
            del self.orders[order_id], account.orders[order_id]
            if outcome.rejected == "post_only":
                return {"success": False, "orderID": order_id, "errorMsg": "INVALID_POST_ONLY_ORDER"}
            if order_type == "FOK":
                # Killed at once: the venue says so in the answer, and to the user channel.
                sim.status = "CANCELED"
                self._notify(
                    account,
                    sim.market,
                    self._order_json(
                        sim,
                        "CANCELLATION",
                        "CANCELED_order couldn't be fully filled. FOK orders are fully filled or killed.",
                    ),
                )
                return {"success": False, "orderID": order_id, "errorMsg": "FOK_ORDER_NOT_FILLED_ERROR"}
            return {"success": False, "orderID": order_id, "errorMsg": _FAK_UNMATCHED}
        if outcome.resting is not None:
            self._notify(account, sim.market, self._order_json(sim, "PLACEMENT"))
        trades = self._matched(list(outcome.matches), now, taker=sim)
        if outcome.resting is None and sim.remaining > 0 and sim.status == "LIVE":
            # A FAK's unmatched rest is dropped: the order is over.
            sim.status = "CANCELED"
            self._notify(account, sim.market, self._order_json(sim, "CANCELLATION"))
        if outcome.resting is not None:
            self._rests(sim, True)
        self._flush()
        made = sum((t.size * t.price for t in trades), Decimal(0))
        shares = sum((t.size for t in trades), Decimal(0))
        return {
            "success": True,
            "errorMsg": "",
            "orderID": order_id,
            "status": "matched" if trades else "live",
            "makingAmount": _fmt(made if side is Side.BUY else shares) if trades else "",
            "takingAmount": _fmt(shares if side is Side.BUY else made) if trades else "",
            "transactionsHashes": [],
            "tradeIDs": [t.id for t in trades],
        }

    def _terms(
        self, side: Side, maker_amount: int, taker_amount: int, order_type: str, tick: Decimal
    ) -> tuple[Decimal, Decimal]:
        """(size in shares, limit price) of signed amounts (§2.5): a buy pays pUSD for shares.
        A limit order's amounts are exact at its price; a market order's (FOK/FAK, built from an
        amount to spend, §2.5 "market orders") imply a price off the tick: its limit is that
        price rounded to the tick against the trader, and its size whole hundredths of shares."""
        if side is Side.BUY:
            size, price = Decimal(taker_amount) / _UNITS, Decimal(maker_amount) / Decimal(taker_amount)
        else:
            size, price = Decimal(maker_amount) / _UNITS, Decimal(taker_amount) / Decimal(maker_amount)
        if order_type in ("FOK", "FAK") and price % tick != 0:
            rounding = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
            price = (price / tick).to_integral_value(rounding=rounding) * tick
            size = size.quantize(Decimal("0.01"), rounding=ROUND_FLOOR)
        return size, price

    def _business_checks(
        self,
        account: _Account,
        order_id: str,
        token: _Token,
        side: Side,
        maker_amount: int,
        taker_amount: int,
        expiration: int,
        order_type: str,
        payload: dict[str, Any],
    ) -> str | None:
        """The venue's `errorMsg` for an order it refuses on its terms, None when it takes it;
        `_Refused` (HTTP 400) for one its account cannot fund."""
        if order_id in self.orders:
            return "INVALID_ORDER_DUPLICATED"
        rejected = self.faults.take_reject()
        if rejected is not None:
            return str(rejected[1])
        if maker_amount <= 0 or taker_amount <= 0:
            return "INVALID_ORDER_ERROR"
        if not token.active:
            return "MARKET_NOT_READY"
        if payload.get("postOnly") and order_type in ("FOK", "FAK"):
            return "INVALID_POST_ONLY_ORDER_TYPE"
        tick = token.tick
        size, price = self._terms(side, maker_amount, taker_amount, order_type, tick)
        try:
            on_tick = price % tick == 0
        except InvalidOperation:
            on_tick = False
        if not on_tick or price < tick or price > 1 - tick:
            return "INVALID_ORDER_MIN_TICK_SIZE"
        if size < token.min_size:
            return "INVALID_ORDER_MIN_SIZE"
        now_s = self.clock() // 1_000_000_000
        if (order_type == "GTD") != (expiration > 0) or (
            order_type == "GTD" and expiration < now_s + _GTD_MIN_AHEAD_S
        ):
            return "INVALID_ORDER_EXPIRATION"
        # Funding: pUSD for a buy (its signed maker amount), shares for a sell, less what the
        # account's open orders hold [U: whether the venue's "balance" nets them out].
        if side is Side.BUY:
            free = account.balance - self._reserved(account, None, Side.BUY)
            if free < Decimal(maker_amount) / _UNITS:
                raise _not_enough(free, Decimal(maker_amount) / _UNITS)
        else:
            held = account.positions.get(token.token_id, Decimal(0)) - self._reserved(
                account, token.token_id, Side.SELL
            )
            if held < size:
                raise _not_enough(held, size)
        return None

    def _matched(
        self, matches: list[Match], now: int, *, taker: _SimOrder | None = None, one_match: bool = False
    ) -> list[_SimTrade]:
        """Book the matches of one taker (a client order `taker`, or the market: its levels or a
        print): each client maker's trade and the client taker's, balances and positions, the
        orders' state; all to the user channel, trades first (a client sees the fills before the
        order's new state). With `one_match` (a print of the market), an account's maker fills
        are one trade: one id, one `trade` message listing its maker orders (§2.2
        `maker_orders[]`). Returns the taker's trades."""
        taken: list[_SimTrade] = []
        made: list[_SimTrade] = []
        touched: dict[str, _SimOrder] = {}
        grouped: dict[int, _SimTrade] = {}  # by account: the print's trade it is a maker in
        for match in matches:
            maker = self.orders.get(match.maker_id) if match.maker_owner != MARKET else None
            if maker is not None:
                into = grouped.get(id(maker.account)) if one_match else None
                trade = self._trade(maker, match, now, taker=False, counterparty=taker, into=into)
                touched[maker.order_id] = maker
                if into is None:
                    made.append(trade)
                    if one_match:
                        grouped[id(maker.account)] = trade
            if taker is not None:
                taken.append(self._trade(taker, match, now, taker=True, counterparty=maker))
                touched[taker.order_id] = taker
        for trade in [*made, *taken]:
            self._notify(trade.account, trade.order.market, self._trade_json(trade))
        for sim in touched.values():
            if sim.remaining == 0:
                sim.status = "MATCHED"
            self._notify(sim.account, sim.market, self._order_json(sim, "UPDATE"))
            if sim is not taker:  # a maker: its level of the public book moved
                self._rests(sim, True)
        return taken

    def _trade(
        self,
        sim: _SimOrder,
        match: Match,
        now: int,
        *,
        taker: bool,
        counterparty: _SimOrder | None,
        into: _SimTrade | None = None,
    ) -> _SimTrade:
        """One fill of `sim`: its pUSD and shares moved (`fees.py`), its trade recorded."""
        account = sim.account
        size, price = match.amount, sim.token.own(match.price)
        fee = taker_fee(size, price, sim.token.fees) if taker else Decimal(0)
        token = sim.token.token_id
        if sim.side is Side.BUY:
            account.balance -= size * price + fee
            account.positions[token] = account.positions.get(token, Decimal(0)) + size
        else:
            account.balance += size * price - fee
            account.positions[token] = account.positions.get(token, Decimal(0)) - size
        sim.matched += size
        n = next(self._trade_ids)
        fail = self.fail_trades > 0 if into is None else into.fail
        if fail and into is None:
            self.fail_trades -= 1
        trade = _SimTrade(
            id=str(
                uuid.UUID(bytes=hashlib.sha256(f"trade:{n}:{sim.order_id}".encode()).digest()[:16], version=4)
            )
            if into is None
            else into.id,
            account=account,
            order=sim,
            taker=taker,
            side=sim.side,
            price=price,
            size=size,
            fee=fee,
            match_s=now // 1_000_000_000,
            match_ms=now // 1_000_000,
            counterparty=counterparty,
            other_order=counterparty.order_id
            if counterparty is not None
            else "0x" + hashlib.sha256(f"crowd:{n}".encode()).hexdigest(),
            next_at=trio.current_time() + self.mine_s,
            fail=fail,
            last_update_s=now // 1_000_000_000,
        )
        sim.trades.append(trade.id)
        if into is not None:  # another of our maker orders in `into`'s match: part of that trade
            into.also.append(trade)
            return trade
        self.trades[trade.id] = trade
        account.trades.append(trade)
        self._settling.append(trade)
        return trade

    def _advance_trades(self) -> None:
        """Settlement: MATCHED -> MINED -> CONFIRMED, or MATCHED -> RETRYING -> FAILED (§2.2)."""
        now = trio.current_time()
        still: list[_SimTrade] = []
        for t in self._settling:
            if now < t.next_at:
                still.append(t)
                continue
            if t.status == "MATCHED":
                t.status = "RETRYING" if t.fail else "MINED"
                if not t.fail:
                    t.transaction_hash = "0x" + hashlib.sha256(t.id.encode()).hexdigest()
                t.next_at = now + self.confirm_s
                still.append(t)
            elif t.status == "RETRYING":
                t.status = "FAILED"
                for leg in (t, *t.also):
                    self._undo(leg)
            else:
                t.status = "CONFIRMED"
            t.last_update_s = self.clock() // 1_000_000_000
            self._notify(t.account, t.order.market, self._trade_json(t))
        self._settling = still

    def _undo(self, t: _SimTrade) -> None:
        """A FAILED trade never moved funds on chain: its effects are taken back."""
        account = t.account
        token = t.order.token.token_id
        if t.side is Side.BUY:
            account.balance += t.size * t.price + t.fee
            account.positions[token] = account.positions.get(token, Decimal(0)) - t.size
        else:
            account.balance -= t.size * t.price - t.fee
            account.positions[token] = account.positions.get(token, Decimal(0)) + t.size
        t.order.matched -= t.size

    def _cancel_where(self, account: _Account | None, pick: Callable[[_SimOrder], bool]) -> list[str]:
        """Cancel the live orders `pick` chooses, of `account` (None: of every account)."""
        done = []
        orders = self.orders.values() if account is None else account.orders.values()
        for sim in list(orders):
            if sim.status != "LIVE" or not pick(sim):
                continue
            sim.token.book.cancel(sim.order_id)
            sim.status = "CANCELED"
            self._rests(sim, False)
            self._notify(sim.account, sim.market, self._order_json(sim, "CANCELLATION"))
            done.append(sim.order_id)
        self._flush()
        return done

    def _cancel(self, account: _Account, q: dict[str, str], body: bytes) -> Any:
        payload = _loads(body)
        if not isinstance(payload, dict) or not isinstance(payload.get("orderID"), str):
            raise _Refused(400, {"error": 'Invalid payload: expected {"orderID": ...}'})
        return self._cancel_ids(account, [payload["orderID"]])

    def _cancel_orders(self, account: _Account, q: dict[str, str], body: bytes) -> Any:
        ids = _loads(body)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise _Refused(400, {"error": "Invalid payload: expected a list of order ids"})
        return self._cancel_ids(account, ids)

    def _cancel_ids(self, account: _Account, ids: list[str]) -> Any:
        canceled: list[str] = []
        not_canceled: dict[str, str] = {}
        for oid in ids:
            sim = account.orders.get(oid)
            if sim is None or sim.status != "LIVE":
                not_canceled[oid] = "already canceled or matched" if sim is not None else "order not found"
                continue
            canceled += self._cancel_where(account, _is(oid))
        return {"canceled": canceled, "not_canceled": not_canceled}

    def _cancel_all(self, account: _Account, q: dict[str, str], body: bytes) -> Any:
        return {"canceled": self._cancel_where(account, lambda o: True), "not_canceled": {}}

    def _cancel_market(self, account: _Account, q: dict[str, str], body: bytes) -> Any:
        spec = _loads(body) or {}
        if not isinstance(spec, dict):
            raise _Refused(400, {"error": "Invalid payload"})
        market, asset = spec.get("market"), spec.get("asset_id")
        canceled = self._cancel_where(
            account,
            lambda o: (not market or o.market == market) and (not asset or o.token.token_id == asset),
        )
        return {"canceled": canceled, "not_canceled": {}}

    def _order_json(
        self, sim: _SimOrder, kind: str | None = None, status: str | None = None
    ) -> dict[str, Any]:
        """An order as the user channel (`kind` given) or `GET /data/orders` shows it (`wire.py`)."""
        rest = wire.open_order(
            order_id=sim.order_id,
            status=status or sim.status,
            owner=sim.account.api.key,
            maker_address=sim.account.address,
            market=sim.market,
            asset_id=sim.token.token_id,
            side=sim.side.value.upper(),
            original_size=sim.size,
            size_matched=sim.matched,
            price=sim.price,
            outcome=sim.token.outcome,
            expiration=sim.expiration,
            order_type=sim.order_type,
            associate_trades=sim.trades,
            created_at_s=sim.created_s,
        )
        if kind is None:
            return rest
        return wire.order_event(rest, kind=kind, timestamp_ms=self.clock() // 1_000_000)

    def _trade_json(self, t: _SimTrade, *, rest: bool = False) -> dict[str, Any]:
        """One of our trades (`wire.trade`), told as the venue tells a trade: its top level is the
        taker's (token, side, price) and `maker_orders[]` the makers it met, each with its own
        token, side and price (a complementary maker: the other token, at 1 - the price, as in
        the live capture `nt_py_user_trade1.json`). As its taker, the makers are another client's
        order or the crowd's; as a maker, our orders the taker met."""
        token = t.order.token
        other = t.counterparty
        # The other side's order, as its owner placed it: its token, and its own price.
        other_token = other.token if other is not None else token
        other_price = t.price if other_token is token else 1 - t.price
        if t.taker:
            makers = [
                wire.maker_order(
                    order_id=t.other_order,
                    owner=other.account.api.key if other is not None else _CROWD_OWNER,
                    maker_address=other.account.address if other is not None else _CROWD_ADDRESS,
                    matched_amount=t.size,
                    price=other_price,
                    asset_id=other_token.token_id,
                    outcome=other_token.outcome,
                    side=(other.side if other is not None else t.side.opposite).value.upper(),
                )
            ]
            top, top_side, top_price = token, t.side, t.price
        else:
            makers = [
                wire.maker_order(
                    order_id=leg.order.order_id,
                    owner=t.account.api.key,
                    maker_address=t.account.address,
                    matched_amount=leg.size,
                    price=leg.price,
                    asset_id=leg.order.token.token_id,
                    outcome=leg.order.token.outcome,
                    side=leg.side.value.upper(),
                )
                for leg in (t, *t.also)
            ]
            if other is not None:  # a client's taker order: its terms
                top, top_side, top_price = other_token, other.side, other_price
            else:  # the crowd's: the other side of ours, on our token
                top, top_side, top_price = token, t.side.opposite, t.price
        return wire.trade(
            trade_id=t.id,
            taker_order_id=t.order.order_id if t.taker else t.other_order,
            market=t.order.market,
            asset_id=top.token_id,
            side=top_side.value.upper(),
            size=sum((leg.size for leg in (t, *t.also)), Decimal(0)),
            price=top_price,
            status=t.status,
            match_s=t.match_s,
            last_update_s=t.last_update_s,
            outcome=top.outcome,
            # The taker's key: a trade we are a maker in names its taker as owner, ours only in
            # `maker_orders[]` (the captured maker trade, nt_py_user_trade1.json).
            owner=t.account.api.key
            if t.taker
            else other.account.api.key
            if other is not None
            else _CROWD_OWNER,
            maker_address=t.account.address,
            transaction_hash=t.transaction_hash,
            maker_orders=makers,
            trader_side="TAKER" if t.taker else "MAKER",
            timestamp_ms=t.match_ms,
            rest=rest,
        )

    @staticmethod
    def _page(items: list[Any], q: dict[str, str], size: int = _PAGE) -> dict[str, Any]:
        page = wire.cursor_page(items, q.get("next_cursor"), size)
        if page is None:
            raise _Refused(400, {"error": "invalid next_cursor"})
        return page

    def _open_orders(self, account: _Account, q: dict[str, str], body: bytes) -> Any:
        items = [
            self._order_json(o)
            for o in account.orders.values()
            if o.status == "LIVE"
            and (not q.get("id") or o.order_id == q["id"])
            and (not q.get("market") or o.market == q["market"])
            and (not q.get("asset_id") or o.token.token_id == q["asset_id"])
        ]
        return self._page(items, q)

    def _get_order(self, account: _Account, order_id: str) -> Any:
        """`GET /data/order/{id}`: a resting order of the account; `null` for any other (the
        venue answers nothing for an order it no longer holds, e.g. one matched in full: its
        trades say what became of it; py-clob-client issue #217 [T])."""
        sim = account.orders.get(order_id)
        return self._order_json(sim) if sim is not None and sim.status == "LIVE" else None

    def _trades(self, account: _Account, q: dict[str, str], body: bytes) -> Any:
        after = int(q["after"]) if q.get("after", "").isdigit() else None
        before = int(q["before"]) if q.get("before", "").isdigit() else None
        items = [
            self._trade_json(t, rest=True)
            for t in account.trades
            if (not q.get("id") or t.id == q["id"])
            and (not q.get("market") or t.order.market == q["market"])
            and (not q.get("asset_id") or t.order.token.token_id == q["asset_id"])
            and (after is None or t.match_s >= after)
            and (before is None or t.match_s <= before)
        ]
        return self._page(items, q)

    def book_channels(self) -> int:
        """Tokens subscribed on market sockets: each has a book whose change a `gap` can lose."""
        return sum(len(p.assets) for p in self.sessions.values() if p.path == "/ws/market")

    def pending_venue_faults(self) -> dict[str, Any]:
        v = self.venue_faults
        pending: dict[str, Any] = {}
        for name in ("too_early", "cloudflare", "bad_gateway"):
            if getattr(v, name):
                pending[name] = getattr(v, name)
        if v.trading != "normal":
            pending["trading"] = v.trading
        silent = v.silent_until - trio.current_time()
        if silent == float("inf"):
            pending["silent"] = True
        elif silent > 0:
            pending["silent_s"] = round(silent, 3)
        if self.fail_trades:
            pending["fail_trades"] = self.fail_trades
        return pending

    def state(self) -> dict[str, Any]:
        return {
            "sessions": [
                {
                    "id": p.id,
                    "path": p.path,
                    "assets": len(p.assets),
                    "account": p.account.api.key if p.account else None,
                }
                for p in self.sessions.values()
            ],
            "orders": {oid: o.status for oid, o in self.orders.items()},
            "trades": {tid: t.status for tid, t in self.trades.items()},
            "requests": self.requests,
        }

    def apply_faults(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The shared switches, and Polymarket's: `fail_trades` (the next n trades end FAILED),
        `trade` (another participant's taker trade, `trade()`), `dump_delay_s` (the books of
        later subscriptions are sent that long after them; 0: at once), `user_lag_s` and
        `answer_lag_s` (module docstring; 0: off). Raises ValueError for a switch it cannot apply
        (nothing of that switch is applied)."""
        applied = super().apply_faults(spec)
        applied.update(self.venue_faults.apply(spec))
        if spec.get("fail_trades"):
            self.fail_trades += int(spec["fail_trades"])
            applied["fail_trades"] = self.fail_trades
        for name in ("dump_delay_s", "user_lag_s", "answer_lag_s"):
            if name in spec:
                try:
                    delay = float(spec[name])
                except (TypeError, ValueError):
                    raise ValueError(f"{name}: expected seconds >= 0, got {spec[name]!r}") from None
                if not 0 <= delay < float("inf"):
                    raise ValueError(f"{name}: expected seconds >= 0, got {spec[name]!r}")
                setattr(self, name, delay)
                applied[name] = delay
        if spec.get("trade"):
            t = spec["trade"]
            terms = ("token", "side", "price", "size")
            if not isinstance(t, dict) or any(t.get(k) is None for k in terms):
                raise ValueError('trade: expected {"token": ..., "side": ..., "price": ..., "size": ...}')
            applied["trade"] = self.trade(str(t["token"]), str(t["side"]), t["price"], t["size"])
        return applied

    def trade(self, token: str, side: str, price: Any, size: Any) -> dict[str, Any]:
        """Another participant's taker trade of `size` shares of `token` at `price` (`side` the
        taker's: "sell" hits resting bids, "buy" lifts resting asks) prints on the market channel
        as a `last_trade_price` (§2.2), through the same two steps as every frame of the market
        (`on_market_frame`: the resting client orders it reaches are filled, their owners told on
        the user channel; then `publish`). The public book is left as it is. Returns what printed
        and the client trades and orders it made. Raises ValueError for terms the venue could not
        print (unknown token, a side other than buy or sell, a price off the token's tick or
        outside (0, 1), a size not positive)."""
        tok = self.tokens.get(token)
        if tok is None:
            raise ValueError(f"trade: no token {token!r}")
        if side.lower() not in ("buy", "sell"):
            raise ValueError(f"trade: side must be buy or sell, not {side!r}")
        try:
            px, qty = Decimal(str(price)), Decimal(str(size))
        except InvalidOperation:
            raise ValueError(f"trade: price and size must be numbers ({price!r}, {size!r})") from None
        if not (px.is_finite() and qty.is_finite()) or not 0 < px < 1 or qty <= 0 or px % tok.tick:
            raise ValueError(
                f"trade: price {price} must be in (0, 1) on the tick {tok.tick}, size {size} positive"
            )
        now = self.clock()
        printed = wire.last_trade_price(
            asset_id=token,
            market=tok.market,
            price=px,
            side=side.upper(),
            size=qty,
            timestamp_ms=now // 1_000_000,
        )
        before = len(self.trades)
        frame = orjson.dumps(printed)
        self.on_market_frame(frame, now)
        self.publish(frame)
        made = list(self.trades.values())[before:]  # dicts keep their insertion order
        self.log.info(
            "simulator.trade", instrument=token, side=side, price=str(px), size=str(qty), fills=len(made)
        )
        return {
            "token": token,
            "side": side.upper(),
            "price": _fmt(px),
            "size": _fmt(qty),
            "trades": [t.id for t in made],
            "orders": sorted({leg.order.order_id for t in made for leg in (t, *t.also)}),
        }


_NOT_FOUND: Final = object()
_P = PolymarketSimulator
_PUBLIC: Final[dict[tuple[str, str], Callable[..., Any]]] = {
    ("GET", "/ok"): _P._ok,
    ("GET", "/"): _P._ok,
    ("GET", "/time"): _P._time,
    ("GET", "/version"): _P._version,
    ("GET", "/book"): _P._book,
    ("POST", "/books"): _P._books,
    ("GET", "/price"): _P._price,
    ("POST", "/prices"): _P._prices,
    ("GET", "/midpoint"): _P._midpoint,
    ("POST", "/midpoints"): _P._midpoints,
    ("GET", "/spread"): _P._spread,
    ("POST", "/spreads"): _P._spreads,
    ("GET", "/last-trade-price"): _P._last_trade_price,
    ("POST", "/last-trades-prices"): _P._last_trades_prices,
    ("GET", "/tick-size"): _P._tick_size,
    ("GET", "/neg-risk"): _P._neg_risk,
    ("GET", "/fee-rate"): _P._fee_rate,
    ("GET", "/markets"): _P._markets,
}
_PUBLIC_PREFIXES: Final[tuple[tuple[str, Callable[..., Any]], ...]] = (
    ("/markets-by-token/", _P._market_by_token),
    ("/clob-markets/", _P._clob_market_info),
    ("/markets/", _P._market),
)
_L1: Final[dict[tuple[str, str], Callable[..., Any]]] = {
    ("POST", "/auth/api-key"): _P._create_api_key,
    ("GET", "/auth/derive-api-key"): _P._derive_api_key,
}
_L2: Final[dict[tuple[str, str], Callable[..., Any]]] = {
    ("GET", "/auth/api-keys"): _P._api_keys,
    ("POST", "/order"): _P._post_order,
    ("POST", "/orders"): _P._post_orders,
    ("DELETE", "/order"): _P._cancel,
    ("DELETE", "/orders"): _P._cancel_orders,
    ("DELETE", "/cancel-all"): _P._cancel_all,
    ("DELETE", "/cancel-market-orders"): _P._cancel_market,
    ("GET", "/data/orders"): _P._open_orders,
    ("GET", "/data/trades"): _P._trades,
    ("GET", "/balance-allowance"): _P._balance,
    ("GET", "/balance-allowance/update"): _P._balance,
    ("POST", "/v1/heartbeats"): _P._heartbeat,
}
