"""Synthetic Polymarket recordings: a handful of binary markets, in the market channel's real
frame shapes (VENUES.md §2.2), written as a recording (DESIGN.md, "recordings").

A recording made here reads like one made by a recorder that looked its markets up on Gamma,
subscribed to all their tokens on `wss://ws-subscriptions-clob.polymarket.com/ws/market` with
`custom_feature_enabled` and `initial_dump`, and sent `PING` every 10 s:

1. the Gamma answer the recorder fetched (`GET /markets?clob_token_ids=...`: a JSON array of Gamma
   market objects, §2.7), recorded as a line of its own so that a replay learns what the live run
   knew: tokens, tick sizes, minimum sizes, neg-risk flags, fee schedules. The decoder recognises
   it (`codec.py`) and teaches the registry; no event comes of it;
2. the initial dump: one JSON array holding a `book` event per token;
3. the stream: `price_change` (one per level an order placement or cancel changes: the YES token's
   entry and the NO token's mirror entry, each with its best bid/ask after the change),
   `best_bid_ask` when a token's top changes, `last_trade_price` then a `book` snapshot of both
   tokens when a trade takes liquidity (PM-DOCS: `book` is sent "when trades affect the book"),
   `tick_size_change` when a price crosses 0.96 or 0.04 (0.01 -> 0.001, once), `market_resolved`
   (then both books, emptied) for the market that resolves, and the text frame `PONG` every 10 s.

The markets (probabilities follow bounded random walks: an Ornstein-Uhlenbeck process in logit
space, so a price never leaves (0, 1)):

- `btc-above-120k-on-december-31`: near 0.4, lively, crypto fees;
- `fed-rate-cut-in-december`: pulled towards 0.975, so it crosses 0.96 and changes tick;
- `ballon-dor-2026-winner`: a neg-risk event of four outcome markets whose YES prices are the
  softmax of four walks (they sum to 1, as a neg-risk event's do);
- `btc-up-or-down-sample-hour`: resolves three quarters into the sample, its price pulled to 0 or
  1 in the last fifth of its life;
- with `crypto = "deribit"` (`crypto.py`), two Bitcoin ladders for the Deribit near expiry's date,
  "Bitcoin above ___ on <date>?" (7 legs) and the neg-risk "Bitcoin price on <date>?" (8 range
  legs), priced by the synthetic market's own model on the BTC path of the Deribit sample of the
  same seed and start, plus a mispricing; `mispriced = d` starts one leg (by default the "above"
  leg nearest the money) `d` away from the model, so that a gap is open from the first quote.

Books: the YES book is a market maker's ladder around the fair probability, on the market's tick;
a requote changes a few levels, not all. The NO book is its mirror (a YES bid at p is a NO ask at
1 - p), as the CLOB shows it. A trade prints at the touch for no more than the level holds.

Exchange timestamps are ms strings; each line's receive time is the exchange time plus 1-3 ms
(100 ns resolution), lines in non-decreasing receive-time order. The same options always give
the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import orjson

from ..common import DEFAULT_OPTIONS, parse_options, write_sample
from . import wire
from .crypto import ATM_LEG, BtcPath, Mispricing, PriceLeg, bitcoin_legs

__all__ = ["DEFAULT_OPTIONS", "MARKETS", "MarketSpec", "PolymarketFeed", "generate_sample", "parse_options"]


_MS: Final = 1_000_000
_Q: Final = 10_000  # price quanta per 1.0 (0.0001, the codec's book quantum)
_STEP_MS: Final = 250
_PONG_MS: Final = 10_000
_FINE_TICK: Final = 10  # 0.001 in quanta, after a tick_size_change
_HIGH, _LOW = 0.96, 0.04  # §2.2: the tick changes when the book price crosses these


@attrs.frozen
class MarketSpec:
    """One binary market of the sample. `vol` is the logit's volatility per sqrt(hour), `target`
    the probability it reverts to (`reversion` per hour); `group` names the neg-risk event it
    belongs to; `resolves_at` is the fraction of the sample at which it resolves (None: never)."""

    slug: str
    question: str
    p0: float
    vol: float
    target: float | None = None
    reversion: float = 0.3
    tick: int = 100  # quanta: 0.01
    levels: int = 6
    level_size: float = 400.0  # median shares per level
    trade_size: float = 60.0  # median shares per trade
    trades_per_min: float = 2.0
    requote_s: tuple[float, float] = (1.0, 4.0)
    fees: tuple[float, float, float] | None = None  # (rate, exponent, rebate rate); None = no fees
    group: str | None = None
    title: str = ""  # the outcome's name within its group ("Kylian Mbappe")
    resolves_at: float | None = None
    tags: tuple[str, ...] = ()
    price: PriceLeg | None = None  # a price market of the `crypto` option (`crypto.py`)


_CRYPTO_FEES = (0.07, 1.0, 0.2)
MARKETS: tuple[MarketSpec, ...] = (
    MarketSpec(
        "btc-above-120k-on-december-31",
        "Will Bitcoin be above $120,000 on December 31?",
        p0=0.41, vol=0.9, trades_per_min=4.0, fees=_CRYPTO_FEES, tags=("Crypto", "Bitcoin"),
    ),
    MarketSpec(
        "fed-rate-cut-in-december",
        "Will the Fed cut rates at its December meeting?",
        p0=0.93, vol=0.6, target=0.975, reversion=3.0, trades_per_min=1.5, tags=("Economy", "Fed"),
    ),
    MarketSpec(
        "ballon-dor-2026-kylian-mbappe", "Will Kylian Mbappe win the 2026 Ballon d'Or?",
        p0=0.46, vol=0.5, group="ballon-dor-2026-winner", title="Kylian Mbappe", tags=("Sports", "Soccer"),
    ),
    MarketSpec(
        "ballon-dor-2026-lamine-yamal", "Will Lamine Yamal win the 2026 Ballon d'Or?",
        p0=0.31, vol=0.5, group="ballon-dor-2026-winner", title="Lamine Yamal", tags=("Sports", "Soccer"),
    ),
    MarketSpec(
        "ballon-dor-2026-harry-kane", "Will Harry Kane win the 2026 Ballon d'Or?",
        p0=0.17, vol=0.5, group="ballon-dor-2026-winner", title="Harry Kane", tags=("Sports", "Soccer"),
    ),
    MarketSpec(
        "ballon-dor-2026-jude-bellingham", "Will Jude Bellingham win the 2026 Ballon d'Or?",
        p0=0.06, vol=0.5, group="ballon-dor-2026-winner", title="Jude Bellingham", tags=("Sports", "Soccer"),
        levels=4, trades_per_min=0.6,
    ),
    MarketSpec(
        "btc-up-or-down-sample-hour",
        "Bitcoin Up or Down - sample hour",
        p0=0.5, vol=1.5, trades_per_min=6.0, fees=_CRYPTO_FEES, resolves_at=0.75,
        tags=("Crypto", "Up or Down"), requote_s=(0.5, 2.0),
    ),
)  # fmt: skip
_GROUP_TITLES: Final = {"ballon-dor-2026-winner": "2026 Ballon d'Or Winner"}


# ------------------------------------------------------------------------------- options


# ------------------------------------------------------------------------------- formatting


def _px(q: int) -> str:
    """A price in quanta as the venue writes it: `0.48`, `0.005`, `1`, `0`."""
    whole, frac = divmod(q, _Q)
    return str(whole) if not frac else f"{whole}.{frac:04d}".rstrip("0")


def _sz(cents: int) -> str:
    """A size in hundredths of a share as the venue writes it: `250`, `12.5`, `0.07`."""
    whole, frac = divmod(cents, 100)
    return str(whole) if not frac else f"{whole}.{frac:02d}".rstrip("0")


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _price_specs(btc: BtcPath) -> tuple[MarketSpec, ...]:
    """The Bitcoin price markets (`crypto.bitcoin_legs`) as market specs: crypto fees, the range
    ladder a neg-risk group (its event's slug), `p0` the model's probability at the start."""
    specs = []
    for slug, question, leg in bitcoin_legs(btc.spot(), btc.near_expiry_ms):
        edges = {k: btc.prob_above(k, leg.resolves_ms) for k in (leg.low, leg.high) if k is not None}
        ranged = leg.event_slug.startswith("bitcoin-price-on-")
        specs.append(
            MarketSpec(
                slug,
                question,
                p0=min(_P_MAX, max(_P_MIN, leg.probability(edges))),
                vol=0.0,  # unused: a price leg follows the model and its mispricing
                trades_per_min=2.0 if ranged else 3.0,
                fees=_CRYPTO_FEES,
                group=leg.event_slug if ranged else None,
                title=leg.title,
                tags=("Crypto", "Bitcoin"),
                price=leg,
            )
        )
    return tuple(specs)


# A price leg's model probability is kept this far from 0 and 1 (its logit stays finite).
_P_MIN, _P_MAX = 1e-3, 1.0 - 1e-3


# ------------------------------------------------------------------------------- the model


class _Market:
    """One market's state: its walk, its tick, and its YES book (levels in quanta -> cents)."""

    __slots__ = (
        "asks",
        "bids",
        "condition_id",
        "index",
        "mispricing",
        "model_p",
        "next_requote",
        "no",
        "p",
        "resolve_ms",
        "resolved",
        "spec",
        "tick",
        "top",
        "winner_yes",
        "x",
        "yes",
    )

    def __init__(self, spec: MarketSpec, index: int, rng: random.Random) -> None:
        self.spec = spec
        self.index = index
        self.yes = str(rng.getrandbits(255) | (1 << 254))
        self.no = str(rng.getrandbits(255) | (1 << 254))
        self.condition_id = f"0x{rng.getrandbits(256):064x}"
        self.x = _logit(spec.p0) if spec.group is None else math.log(spec.p0)
        self.tick = spec.tick
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.next_requote = 0
        self.resolve_ms: int | None = None
        self.resolved = False
        self.winner_yes = rng.random() < spec.p0
        self.top: tuple[int, int] = (0, _Q)  # (best bid, best ask) in quanta; 0 / 1 when empty
        # Price legs: the model's probability (before the mispricing) and the price quoted.
        self.mispricing = Mispricing()
        self.model_p = spec.p0
        self.p = spec.p0

    def best(self) -> tuple[int, int]:
        return (max(self.bids) if self.bids else 0, min(self.asks) if self.asks else _Q)


def _hash(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()


class PolymarketFeed:
    """The frames of a synthetic Polymarket market-channel recording, one step at a time.

    `opening()` gives the frames a recorder receives first (the Gamma answer, the initial dump);
    each `step()` advances the markets by 250 ms and gives that step's frames. Frames come as
    (receive time in ns, frame bytes) in receive-time order. `markets` exposes the state (books,
    tokens) for a simulator.
    """

    def __init__(
        self,
        seed: int,
        start_ns: int,
        specs: tuple[MarketSpec, ...] = MARKETS,
        *,
        crypto: str = "none",
        strikes: int = 4,
        mispriced: float = 0.0,
        mispriced_leg: int = ATM_LEG,
    ) -> None:
        # crypto "deribit": Bitcoin price markets follow the BTC path of the Deribit sample of
        # this seed, start and `strikes` (`crypto.py`). `mispriced`: the price leg
        # `mispriced_leg` (an index into `price_legs`) starts with its YES price that far from
        # the model's probability (`crypto.py`: a gap open from the first quote); 0, none.
        self.btc: BtcPath | None = None
        if crypto == "deribit":
            self.btc = BtcPath(seed, start_ns, strikes)
            specs = specs + _price_specs(self.btc)
        elif crypto != "none":
            raise ValueError(f'crypto must be "none" or "deribit", got {crypto!r}')
        self._rng = random.Random(seed)
        # Latencies have their own stream, so the market is the same whatever they draw.
        self._lat = random.Random(seed * 7919 + 104729)
        self.start_ns = start_ns
        self.now_ms = start_ns // _MS
        self._start_ms = self.now_ms
        self._last_recv = start_ns
        self.markets = [_Market(spec, i, self._rng) for i, spec in enumerate(specs)]
        self._groups: dict[str, list[_Market]] = {}
        for m in self.markets:
            if m.spec.group is not None:
                self._groups.setdefault(m.spec.group, []).append(m)
        self._neg_risk_ids = {g: f"0x{self._rng.getrandbits(256):064x}" for g in self._groups}
        self._event_ids = {g: str(100000 + self._rng.randrange(900000)) for g in self._groups}
        self.price_legs = [m for m in self.markets if m.spec.price is not None]
        # The price legs' events by slug (the range ladder's is also its neg-risk group); only
        # drawn when there are any, so that a sample without them keeps its bytes.
        self._price_event_ids: dict[str, str] = {}
        for m in self.price_legs:
            assert m.spec.price is not None
            if m.spec.price.event_slug not in self._price_event_ids:
                self._price_event_ids[m.spec.price.event_slug] = str(100000 + self._rng.randrange(900000))
        if mispriced:
            self._mispriced(float(mispriced), mispriced_leg)
        self._next_pong = self.now_ms + _PONG_MS
        self._hours = 0.0

    def _mispriced(self, by: float, leg: int) -> None:
        """Start price leg `leg`'s mispricing so that it is quoted `by` away from the model's
        probability at the start (a range leg: before its ladder is normalised, which shares the
        gap out over the ladder). Draws nothing from the market's random stream."""
        if not self.price_legs:
            raise ValueError('mispriced needs the Bitcoin price markets of crypto "deribit"')
        if not math.isfinite(by):
            raise ValueError(f"mispriced must be a finite number, got {by!r}")
        if isinstance(leg, bool) or not 0 <= leg < len(self.price_legs):
            raise ValueError(
                f"mispriced_leg must be an index from 0 to {len(self.price_legs) - 1}, got {leg!r}"
            )
        m = self.price_legs[leg]
        try:
            m.mispricing = Mispricing(Mispricing.starting(m.spec.p0, by))
        except ValueError as exc:
            raise ValueError(f"mispriced: {m.spec.slug}: {exc}") from None

    @classmethod
    def create(
        cls, *, seed: int, start_ns: int, crypto: str = "none", strikes: int = 4, mispriced: float = 0.0
    ) -> PolymarketFeed:
        return cls(seed, start_ns, crypto=crypto, strikes=strikes, mispriced=mispriced)

    # -- time ----------------------------------------------------------------------------

    def _recv(self, ts_ms: int) -> int:
        """A receive time 1-3 ms after `ts_ms` (100 ns resolution), never before the last one."""
        lat = 1_000_000 + self._lat.randrange(20_001) * 100
        recv = max(self._last_recv, ts_ms * _MS + lat)
        self._last_recv = recv
        return recv

    def fair(self, m: _Market) -> float:
        """The market's YES probability now."""
        if m.spec.price is not None:
            return m.p
        if m.spec.group is None:
            return _sigmoid(m.x)
        group = self._groups[m.spec.group]
        top = max(g.x for g in group)
        total = sum(math.exp(g.x - top) for g in group)
        return math.exp(m.x - top) / total

    # -- frames --------------------------------------------------------------------------

    def _gamma(self, m: _Market) -> dict[str, Any]:
        """The Gamma market object of `m` (§2.7; the field order of the captured one)."""
        spec = m.spec
        if spec.price is not None:
            return self._price_gamma(m, spec.price)
        start_ms = self._start_ms
        end_ms = start_ms + 40 * 86_400_000 if m.resolve_ms is None else m.resolve_ms
        p = self.fair(m)
        bid, ask = m.best()
        obj: dict[str, Any] = {
            "id": str(1_500_000 + 37 * m.index + 11),
            "question": spec.question,
            "conditionId": m.condition_id,
            "slug": spec.slug,
            "endDate": _iso(end_ms),
            "liquidity": f"{sum(m.bids.values()) * 0.01 * p:.4f}",
            "startDate": _iso(start_ms - 20 * 86_400_000),
            "description": f'This market will resolve to "Yes" if the answer to "{spec.question}" is yes '
            'by its end date. Otherwise, it will resolve to "No".',
            "outcomes": '["Yes", "No"]',
            "outcomePrices": orjson.dumps([f"{p:.3f}", f"{1 - p:.3f}"]).decode().replace(",", ", "),
            "volume": "0",
            "active": True,
            "closed": False,
            "questionID": "0x" + hashlib.sha256(m.condition_id.encode()).hexdigest(),
            "enableOrderBook": True,
            "orderPriceMinTickSize": m.tick / _Q,
            "orderMinSize": 5,
            "endDateIso": _iso(end_ms)[:10],
            "clobTokenIds": orjson.dumps([m.yes, m.no]).decode().replace(",", ", "),
            "acceptingOrders": True,
            "negRisk": spec.group is not None,
        }
        if spec.group is not None:
            obj["negRiskMarketID"] = self._neg_risk_ids[spec.group]
            obj["groupItemTitle"] = spec.title
            obj["events"] = [
                {
                    "id": self._event_ids[spec.group],
                    "ticker": spec.group,
                    "slug": spec.group,
                    "title": _GROUP_TITLES.get(spec.group, spec.group),
                    "active": True,
                    "closed": False,
                    "negRisk": True,
                }
            ]
        obj.update(
            {
                "spread": (ask - bid) / _Q,
                "lastTradePrice": round(p, 3),
                "bestBid": bid / _Q,
                "bestAsk": ask / _Q,
                "feesEnabled": spec.fees is not None,
                "feeType": "crypto_fees" if spec.fees is not None else None,
            }
        )
        if spec.fees is not None:
            rate, exponent, rebate = spec.fees
            obj["feeSchedule"] = {"exponent": exponent, "rate": rate, "rebateRate": rebate, "takerOnly": True}
        return obj

    def _price_gamma(self, m: _Market, leg: PriceLeg) -> dict[str, Any]:
        """The Gamma market object of a Bitcoin price leg, shaped as the real ones are: the
        question, slug, noon-ET endDate and Binance description of the template, groupItemTitle
        and groupItemThreshold (the leg's place in its ladder, not its strike), the event."""
        spec = m.spec
        end = _iso(leg.resolves_ms)
        listed = _iso(leg.resolves_ms - 7 * 86_400_000)
        p = self.fair(m)
        bid, ask = m.best()
        neg_risk = spec.group is not None
        obj: dict[str, Any] = {
            "id": str(1_500_000 + 37 * m.index + 11),
            "question": spec.question,
            "conditionId": m.condition_id,
            "slug": spec.slug,
            "resolutionSource": "",
            "endDate": end,
            "liquidity": f"{sum(m.bids.values()) * 0.01 * p:.4f}",
            "startDate": listed,
            "description": leg.description,
            "outcomes": '["Yes", "No"]',
            "outcomePrices": orjson.dumps([f"{p:.3f}", f"{1 - p:.3f}"]).decode().replace(",", ", "),
            "volume": "0",
            "active": True,
            "closed": False,
            "groupItemThreshold": str(leg.order),
            "questionID": "0x" + hashlib.sha256(m.condition_id.encode()).hexdigest(),
            "enableOrderBook": True,
            "orderPriceMinTickSize": m.tick / _Q,
            "orderMinSize": 5,
            "endDateIso": end[:10],
            "startDateIso": listed[:10],
            "clobTokenIds": orjson.dumps([m.yes, m.no]).decode().replace(",", ", "),
            "acceptingOrders": True,
            "negRisk": neg_risk,
        }
        if neg_risk:
            assert spec.group is not None
            obj["negRiskMarketID"] = self._neg_risk_ids[spec.group]
        obj["groupItemTitle"] = leg.title
        obj["events"] = [
            {
                "id": self._price_event_ids[leg.event_slug],
                "ticker": leg.event_slug,
                "slug": leg.event_slug,
                "title": leg.event_title,
                "description": leg.event_description,
                "resolutionSource": "",
                "startDate": listed,
                "endDate": end,
                "active": True,
                "closed": False,
                "negRisk": neg_risk,
            }
        ]
        rate, exponent, rebate = _CRYPTO_FEES
        obj.update(
            {
                "spread": (ask - bid) / _Q,
                "lastTradePrice": round(p, 3),
                "bestBid": bid / _Q,
                "bestAsk": ask / _Q,
                "feesEnabled": True,
                "feeType": "crypto_fees",
                "feeSchedule": {"exponent": exponent, "rate": rate, "rebateRate": rebate, "takerOnly": True},
            }
        )
        return obj

    def _book_event(self, m: _Market, yes: bool, ts: int) -> dict[str, Any]:
        """A `book` event of one token: bids ascending and asks descending (best last, §2.2)."""
        if yes:
            bids = sorted(m.bids.items())
            asks = sorted(m.asks.items(), reverse=True)
        else:
            bids = sorted((_Q - q, s) for q, s in m.asks.items())
            asks = sorted(((_Q - q, s) for q, s in m.bids.items()), reverse=True)
        token = m.yes if yes else m.no
        return wire.book(
            asset_id=token,
            market=m.condition_id,
            bids=[{"price": _px(q), "size": _sz(s)} for q, s in bids],
            asks=[{"price": _px(q), "size": _sz(s)} for q, s in asks],
            timestamp=str(ts),
            hash=_hash(token, ts, bids, asks),
        )

    def _best_bid_ask(self, m: _Market, ts: int) -> list[bytes]:
        """`best_bid_ask` of both tokens when the YES top changed since the last one."""
        bid, ask = m.best()
        if (bid, ask) == m.top:
            return []
        m.top = (bid, ask)
        out = []
        for token, b, a in ((m.yes, bid, ask), (m.no, _Q - ask, _Q - bid)):
            msg = wire.best_bid_ask(
                market=m.condition_id,
                asset_id=token,
                best_bid=_px(b),
                best_ask=_px(a),
                spread=_px(a - b),
                timestamp=str(ts),
            )
            out.append(orjson.dumps(msg))
        return out

    def _change(self, m: _Market, bid_side: bool, q: int, cents: int, ts: int) -> bytes:
        """One level of the YES book set to `cents` (0 removes it): a `price_change` with the
        YES entry and the NO token's mirror entry, each with its top after the change."""
        (m.bids if bid_side else m.asks)[q] = cents
        if cents == 0:
            del (m.bids if bid_side else m.asks)[q]
        bid, ask = m.best()
        yes_entry = wire.price_change_entry(
            asset_id=m.yes,
            price=_px(q),
            size=_sz(cents),
            side="BUY" if bid_side else "SELL",
            hash=_hash(m.yes, ts, q, cents),
            best_bid=_px(bid),
            best_ask=_px(ask),
        )
        no_entry = wire.price_change_entry(
            asset_id=m.no,
            price=_px(_Q - q),
            size=_sz(cents),
            side="SELL" if bid_side else "BUY",
            hash=_hash(m.no, ts, q, cents),
            best_bid=_px(_Q - ask),
            best_ask=_px(_Q - bid),
        )
        msg = wire.price_change(market=m.condition_id, entries=[yes_entry, no_entry], timestamp=str(ts))
        return orjson.dumps(msg)

    def _size(self, median: float) -> int:
        """A size in cents, lognormal around `median` shares, at least 5 shares."""
        shares = median * math.exp(self._rng.gauss(0.0, 0.6))
        return max(500, round(shares * 100))

    def _ladder(self, m: _Market) -> tuple[dict[int, int], dict[int, int]]:
        """The levels the market maker wants now: a ladder each side of the fair price."""
        spec, tick, rng = m.spec, m.tick, self._rng
        fq = self.fair(m) * _Q
        bid = math.floor((fq - 0.6 * tick) / tick) * tick
        ask = math.ceil((fq + 0.6 * tick) / tick) * tick
        bid = min(max(bid, tick), _Q - 2 * tick)
        ask = min(max(ask, bid + tick), _Q - tick)

        def side(first: int, step: int, old: dict[int, int]) -> dict[int, int]:
            levels: dict[int, int] = {}
            for k in range(spec.levels):
                q = first + k * step
                if not tick <= q <= _Q - tick:
                    break
                if k == 0 or rng.random() < 0.8:  # the touch always; deeper levels mostly
                    kept = old.get(q)
                    levels[q] = (
                        kept if kept is not None and rng.random() < 0.85 else self._size(spec.level_size)
                    )
            return levels

        return side(bid, -tick, m.bids), side(ask, tick, m.asks)

    def _requote(self, m: _Market, ts: int) -> list[bytes]:
        """Move the YES book to the ladder: cancels first (the book never crosses), then the new
        and resized levels, one `price_change` each."""
        bids, asks = self._ladder(m)
        out: list[bytes] = []
        for q in sorted(set(m.bids) - set(bids)):
            out.append(self._change(m, True, q, 0, ts))
        for q in sorted(set(m.asks) - set(asks)):
            out.append(self._change(m, False, q, 0, ts))
        for q, s in sorted(bids.items(), reverse=True):
            if m.bids.get(q) != s:
                out.append(self._change(m, True, q, s, ts))
        for q, s in sorted(asks.items()):
            if m.asks.get(q) != s:
                out.append(self._change(m, False, q, s, ts))
        out.extend(self._best_bid_ask(m, ts))
        lo, hi = m.spec.requote_s
        m.next_requote = ts + round((lo + (hi - lo) * self._rng.random()) * 1000)
        return out

    def _trade(self, m: _Market, ts: int) -> list[bytes]:
        """A taker hits the touch of the YES or the NO token: `last_trade_price` of that token,
        then both books as they are after it."""
        rng = self._rng
        fq = self.fair(m) * _Q
        bid, ask = m.best()
        mid = (bid + ask) / 2
        # Takers lean with the news: more buying when the fair price is above the mid.
        buy_yes = rng.random() < 0.5 + 0.35 * math.tanh((fq - mid) / max(m.tick, 1))
        levels = m.asks if buy_yes else m.bids
        if not levels:
            return []
        q = ask if buy_yes else bid
        take = min(levels[q], self._size(m.spec.trade_size) // 2)
        on_yes = rng.random() < 0.6
        # Buying YES at q is selling NO at 1 - q; selling YES at q is buying NO at 1 - q.
        price = q if on_yes else _Q - q
        side = ("BUY" if buy_yes else "SELL") if on_yes else ("SELL" if buy_yes else "BUY")
        msg = wire.last_trade_price(
            asset_id=m.yes if on_yes else m.no,
            market=m.condition_id,
            price=_px(price),
            side=side,
            size=_sz(take),
            timestamp_ms=ts,
            fee_rate_bps="0" if m.spec.fees is None else str(round(m.spec.fees[0] * 10_000)),
        )
        levels[q] -= take
        if levels[q] <= 0:
            del levels[q]
        out = [orjson.dumps(msg)]
        out.append(orjson.dumps(self._book_event(m, True, ts)))
        out.append(orjson.dumps(self._book_event(m, False, ts)))
        out.extend(self._best_bid_ask(m, ts))
        return out

    def _tick_change(self, m: _Market, ts: int) -> list[bytes]:
        out = []
        for token in (m.yes, m.no):
            msg = wire.tick_size_change(
                asset_id=token,
                market=m.condition_id,
                old_tick_size=_px(m.tick),
                new_tick_size=_px(_FINE_TICK),
                timestamp=str(ts),
            )
            out.append(orjson.dumps(msg))
        m.tick = _FINE_TICK
        return out

    def _resolve(self, m: _Market, ts: int) -> list[bytes]:
        """`market_resolved`, then both books emptied (resting orders are void)."""
        winner = m.yes if m.winner_yes else m.no
        msg = wire.market_resolved(
            id=str(1_500_000 + 37 * m.index + 11),
            market=m.condition_id,
            assets_ids=[m.yes, m.no],
            winning_asset_id=winner,
            winning_outcome="Yes" if m.winner_yes else "No",
            timestamp=str(ts),
            tags=list(m.spec.tags),
        )
        m.bids.clear()
        m.asks.clear()
        m.resolved = True
        return [
            orjson.dumps(msg),
            orjson.dumps(self._book_event(m, True, ts)),
            orjson.dumps(self._book_event(m, False, ts)),
        ]

    # -- the stream ----------------------------------------------------------------------

    def opening(self, hours: float) -> list[tuple[int, bytes]]:
        """The Gamma answer and the initial dump of every token's book."""
        self._hours = hours
        ts = self.now_ms
        self._price_legs(0.0)
        for m in self.markets:
            if m.spec.resolves_at is not None:
                m.resolve_ms = ts + round(m.spec.resolves_at * hours * 3_600_000)
            bids, asks = self._ladder(m)
            m.bids, m.asks = bids, asks
            m.top = m.best()
            m.next_requote = ts + 500 + self._rng.randrange(3000)
        gamma = orjson.dumps([self._gamma(m) for m in self.markets])
        dump_ts = ts + 180
        books = [self._book_event(m, yes, dump_ts) for m in self.markets for yes in (True, False)]
        return [(self._recv(ts + 40), gamma), (self._recv(dump_ts), orjson.dumps(books))]

    def _walk(self, dt_h: float) -> None:
        rng = self._rng
        now = self.now_ms
        for m in self.markets:
            if m.resolved:
                continue
            spec = m.spec
            if spec.price is not None:
                continue  # `_price_legs`
            if spec.group is not None:
                # Relative logits of a neg-risk event: a random walk with mild reversion to p0.
                m.x += spec.reversion * (math.log(spec.p0) - m.x) * dt_h + spec.vol * math.sqrt(
                    dt_h
                ) * rng.gauss(0.0, 1.0)
                continue
            target = _logit(spec.target if spec.target is not None else spec.p0)
            kappa = spec.reversion
            if m.resolve_ms is not None:
                life = m.resolve_ms - self._start_ms
                if now >= m.resolve_ms - 0.2 * life:
                    target, kappa = (7.0 if m.winner_yes else -7.0), 40.0
            m.x += kappa * (target - m.x) * dt_h + spec.vol * math.sqrt(dt_h) * rng.gauss(0.0, 1.0)
            m.x = min(max(m.x, -9.0), 9.0)

    def _price_legs(self, dt_s: float) -> None:
        """Price the Bitcoin legs now: the model's probabilities on the BTC path as it stood when
        this step began (nothing quoted here knows a later price), each leg's mispricing moved
        on by `dt_s` (0: not moved), the range ladder normalised to sum to 1."""
        btc = self.btc
        if btc is None:
            return
        btc.advance_to((self.now_ms - (_STEP_MS if dt_s else 0)) * _MS)
        above: dict[int, float] = {}
        rng = self._rng
        groups: dict[str, list[_Market]] = {}
        for m in self.price_legs:
            leg = m.spec.price
            assert leg is not None
            for k in (leg.low, leg.high):
                if k is not None and k not in above:
                    above[k] = btc.prob_above(k, leg.resolves_ms)
            if dt_s:
                m.mispricing.step(dt_s, rng)
            m.model_p = min(_P_MAX, max(_P_MIN, leg.probability(above)))
            m.p = _sigmoid(_logit(m.model_p) + m.mispricing.x)
            if m.spec.group is not None:
                groups.setdefault(m.spec.group, []).append(m)
        for legs in groups.values():
            total = sum(m.p for m in legs)
            for m in legs:
                m.p /= total

    def step(self) -> list[tuple[int, bytes]]:
        """Advance 250 ms: walk the prices, then this step's tick changes, resolutions, requotes
        and trades, in time order."""
        rng = self._rng
        self.now_ms += _STEP_MS
        now = self.now_ms
        self._walk(_STEP_MS / 3_600_000)
        self._price_legs(_STEP_MS / 1000)
        work: list[tuple[int, int, int]] = []  # (ts, kind, market): 0 tick, 1 resolve, 2 requote, 3 trade
        for m in self.markets:
            if m.resolved:
                continue
            i = m.index
            fair = self.fair(m)
            if m.tick > _FINE_TICK and (fair > _HIGH or fair < _LOW):
                work.append((now - _STEP_MS + rng.randrange(_STEP_MS), 0, i))
            if m.resolve_ms is not None and m.resolve_ms <= now:
                work.append((m.resolve_ms, 1, i))
                continue
            if m.next_requote <= now:
                work.append((max(m.next_requote, now - _STEP_MS + 1), 2, i))
            if rng.random() < m.spec.trades_per_min * _STEP_MS / 60_000:
                work.append((now - _STEP_MS + 1 + rng.randrange(_STEP_MS), 3, i))
        work.sort()
        out: list[tuple[int, bytes]] = []
        for ts, kind, i in work:
            m = self.markets[i]
            if m.resolved:
                continue
            if kind == 0:
                frames = self._tick_change(m, ts) + self._requote(m, ts)
            elif kind == 1:
                frames = self._resolve(m, ts)
            elif kind == 2:
                frames = self._requote(m, ts)
            else:
                frames = self._trade(m, ts)
            out.extend((self._recv(ts), f) for f in frames)
        if now >= self._next_pong:
            out.append((self._recv(self._next_pong), b"PONG"))
            self._next_pong += _PONG_MS
        return out

    def frames(self, hours: float) -> Iterator[tuple[int, bytes]]:
        """All frames of a sample `hours` long: the opening, then the stream."""
        yield from self.opening(hours)
        end = self._start_ms + round(hours * 3_600_000)
        while self.now_ms < end:
            yield from self.step()


def generate_sample(
    path: Path, options: Mapping[str, Any], progress: Callable[[float, float], None] | None = None
) -> int:
    """Write a synthetic Polymarket recording to `path` and return its number of frames
    (`simulators.common.write_sample`). `options` (all optional): `seed` (int, default 7),
    `hours` (default 2.0, at most 72), `start` (ISO-8601 UTC, default 2026-11-24T00:00:00Z),
    `crypto` ("none", default; "deribit": Bitcoin price markets on the BTC path of the Deribit
    sample of the same seed and start, `crypto.py`) and with it `strikes` (that Deribit sample's,
    default 4) and `mispriced` (default 0: the "above" leg nearest the money quoted that far from
    the model's probability from the start, `crypto.py`). Unknown keys raise ValueError.
    `progress(done, total)`: seconds of market time written."""
    return write_sample(path, options, PolymarketFeed.create, progress, venue="polymarket")
