"""Polymarket outcome tokens as engine `Instrument`s, and what the venue says about them beyond
that (VENUES.md §2.3, §2.6, §2.7).

Every binary market (a *condition*) has two outcome tokens; each token is one instrument:

- `symbol` is the token id (a 77-digit decimal string), `kind` is `OUTCOME`;
- `base` is the market's condition id, so the tokens of one market share a base (the engine only
  uses `base` to look up an index price, and an outcome token has none);
- `quote` and `settle` are `pUSD`, the CLOB V2 collateral (§2.0, §2.5);
- `tick_size` is the market's current tick (it changes: `tick_size_change`, §2.2), `min_size` its
  minimum order size (typically 5 shares, §2.6), `contract_size` 1 (a winning share pays 1 pUSD);
- `expiry_ns` is None: a market ends when it is resolved (`market_resolved`), which is an event,
  not a time known in advance (Gamma's `endDate` is a target that resolution often misses);
- `maker_fee` / `taker_fee` are the V2 fee schedule's rate (`feeSchedule.rate`, charged to
  takers only; see `fees.py`), None when the source does not say (CLOB `/markets` objects).

What signing needs and the engine's `Instrument` has no room for lives in an `Outcome`, kept in an
`Outcomes` table next to the registry: above all `neg_risk`, which picks the exchange contract an
order is signed for (§2.5: a neg-risk market's orders are verified by the Neg Risk CTF Exchange),
and the condition id the user channel subscribes by (§2.2). `neg_risk` is None when the source does
not say (`new_market` events): the execution side must then ask `GET /neg-risk` before signing.

Sources of definitions, all parsed here: CLOB market objects (`GET /markets`, `/markets/{id}`),
Gamma market objects (`GET /markets` on gamma-api; `outcomes` and `clobTokenIds` are JSON-encoded
strings, §2.7), and `GET /book` summaries (tick, minimum size, neg_risk of one token).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

import attrs
import orjson

from tradingd.engine.venue import Instrument, InstrumentKind, InstrumentRegistry, to_decimal

__all__ = [
    "COLLATERAL",
    "DEFAULT_MIN_SIZE",
    "TICK_SIZES",
    "VENUE",
    "FeeSchedule",
    "Outcome",
    "Outcomes",
    "instruments_from_clob_market",
    "instruments_from_gamma_event",
    "instruments_from_gamma_market",
    "learn",
    "parse_tick_size",
    "with_tick_size",
]

VENUE = "polymarket"
COLLATERAL = "pUSD"
# §2.6 (PM-PY `TickSize`); py-clob-client-v2 adds 0.005 and 0.0025 (its `ROUNDING_CONFIG`).
TICK_SIZES: frozenset[Decimal] = frozenset(
    Decimal(t) for t in ("0.1", "0.01", "0.005", "0.0025", "0.001", "0.0001")
)
DEFAULT_MIN_SIZE = Decimal(5)  # §2.6: "typically 5 shares"; only used when a source omits it


def parse_tick_size(v: Any) -> Decimal:
    """A tick size the venue uses (§2.6), normalized (`0.010` -> `0.01`); ValueError otherwise."""
    tick = to_decimal(v).normalize()
    if tick not in TICK_SIZES:
        raise ValueError(f"unknown tick size {v!r} (known: {', '.join(sorted(map(str, TICK_SIZES)))})")
    return tick


# §2.5 amount table: sizes have 2 decimals whatever the tick; the minimum is per market (§2.6).
SIZE_STEP = Decimal("0.01")


def _min_size(v: Any) -> Decimal:
    size = to_decimal(v)
    if size <= 0:
        raise ValueError(f"minimum order size must be positive, got {v!r}")
    return size.normalize() if size == size.to_integral_value() else size


def _token_id(v: Any) -> str:
    token = str(v)
    if not token.isdigit():
        raise ValueError(f"not a token id: {v!r}")
    return token


# What a schedule the venue publishes can say (a schedule beyond is refused, `ValueError`: the
# market's fees are then unknown, its fills booked with no fee and alerted, its orders refused,
# never a fee of a schedule the venue cannot mean). Rates seen: 0.03 (sports), 0.07 (crypto);
# exponents: 1, 2 (the older crypto schedule). A rate of 1 is half the notional at p = 0.5; a
# negative rate or exponent would pay us, or grow without bound as p nears 0 or 1; a huge one
# overflowed the fee's arithmetic (a `decimal.Overflow` out of every fill of the market: each
# dropped as a decoder fault, its books with it).
_MAX_RATE: Final = Decimal(1)
_MAX_EXPONENT: Final = Decimal(10)


def _within(what: str, value: Decimal, most: Decimal) -> None:
    if not Decimal(0) <= value <= most:
        raise ValueError(f"fee schedule: {what} {value} is not within [0, {most}]")


@attrs.frozen
class FeeSchedule:
    """A market's V2 fee schedule (Gamma `feeSchedule`): a taker pays
    `size x rate x (price x (1 - price)) ** exponent`; makers pay nothing when `taker_only` and
    share `rebate_rate` of the takers' fees (a daily pool, see `fees.py`)."""

    rate: Decimal = attrs.field(converter=to_decimal, validator=lambda _, a, v: _within(a.name, v, _MAX_RATE))
    exponent: Decimal = attrs.field(
        default=Decimal(1), converter=to_decimal, validator=lambda _, a, v: _within(a.name, v, _MAX_EXPONENT)
    )
    rebate_rate: Decimal = attrs.field(
        default=Decimal(0), converter=to_decimal, validator=lambda _, a, v: _within(a.name, v, Decimal(1))
    )
    taker_only: bool = True


@attrs.frozen
class Outcome:
    """What the venue says about one outcome token that the engine's `Instrument` does not hold."""

    token_id: str
    condition_id: str
    outcome: str = ""  # "Yes", "No", "Up", a team...
    index: int = 0  # position among the market's outcomes
    complement: str | None = None  # the other token of the (binary) market
    neg_risk: bool | None = None  # None: unknown, ask GET /neg-risk before signing
    neg_risk_market_id: str = ""
    question: str = ""
    slug: str = ""
    fees: FeeSchedule | None = None  # None: unknown (the fee model's default applies)


class Outcomes:
    """The `Outcome` of every token known, by token id; filled alongside the registry."""

    def __init__(self, outcomes: Iterable[Outcome] = ()) -> None:
        self._by_token: dict[str, Outcome] = {}
        for o in outcomes:
            self.add(o)

    def add(self, outcome: Outcome) -> None:
        self._by_token[outcome.token_id] = outcome

    def get(self, token_id: str) -> Outcome | None:
        return self._by_token.get(token_id)

    def of_market(self, condition_id: str) -> list[Outcome]:
        """The outcomes of one market, in the market's order."""
        return sorted(
            (o for o in self._by_token.values() if o.condition_id == condition_id), key=lambda o: o.index
        )

    def __contains__(self, token_id: object) -> bool:
        return token_id in self._by_token

    def __iter__(self) -> Iterator[Outcome]:
        return iter(self._by_token.values())

    def __len__(self) -> int:
        return len(self._by_token)


Definition = tuple[Instrument, Outcome]


def _json_list(v: Any) -> list[Any]:
    """Gamma sends `outcomes` / `clobTokenIds` as JSON-encoded strings (§2.7); accept lists too."""
    if isinstance(v, str):
        v = orjson.loads(v) if v else []
    if not isinstance(v, list):
        raise TypeError(f"expected a list, got {v!r}")
    return v


def _fee_schedule(market: Mapping[str, Any]) -> FeeSchedule | None:
    """Gamma's `feeSchedule` when fees are enabled, a zero schedule when they are not. A
    schedule that cannot be read or that the venue cannot mean (`FeeSchedule`'s bounds) is
    unknown (None), as on `/clob-markets`: the market is still learned, its fills booked with no
    fee and flagged, its orders refused until a schedule is known; refusing the whole market for
    it would lose its books and definitions."""
    if market.get("feesEnabled") is False:
        return FeeSchedule(rate=0)
    schedule = market.get("feeSchedule")
    if not isinstance(schedule, Mapping):
        return None
    try:
        return FeeSchedule(
            rate=schedule["rate"],
            exponent=schedule.get("exponent", 1),
            rebate_rate=schedule.get("rebateRate", 0),
            taker_only=bool(schedule.get("takerOnly", True)),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return None


def outcome_definitions(
    *,
    token_ids: Sequence[str],
    labels: Sequence[str],
    condition_id: str,
    tick: Decimal,
    min_size: Decimal,
    active: bool,
    neg_risk: bool | None,
    neg_risk_market_id: str,
    question: str,
    slug: str,
    fees: FeeSchedule | None,
) -> list[Definition]:
    """The instrument and outcome of each token of one market (`labels`: its outcomes, in token
    order, or none). Raises ValueError when the market lists no token or labels them unevenly."""
    if not token_ids:
        raise ValueError(f"market {condition_id or '?'} lists no token ids")
    if labels and len(labels) != len(token_ids):
        raise ValueError(f"market {condition_id}: {len(labels)} outcomes for {len(token_ids)} tokens")
    taker = None if fees is None else fees.rate
    maker = None if fees is None else (Decimal(0) if fees.taker_only else fees.rate)
    binary = len(token_ids) == 2
    out: list[Definition] = []
    for i, token in enumerate(token_ids):
        inst = Instrument(
            venue=VENUE,
            symbol=token,
            kind=InstrumentKind.OUTCOME,
            base=condition_id,
            quote=COLLATERAL,
            settle=COLLATERAL,
            tick_size=tick,
            min_size=min_size,
            size_step=SIZE_STEP,
            contract_size=Decimal(1),
            maker_fee=maker,
            taker_fee=taker,
            active=active,
        )
        outcome = Outcome(
            token_id=token,
            condition_id=condition_id,
            outcome=str(labels[i]) if labels else "",
            index=i,
            complement=token_ids[1 - i] if binary else None,
            neg_risk=neg_risk,
            neg_risk_market_id=neg_risk_market_id,
            question=question,
            slug=slug,
            fees=fees,
        )
        out.append((inst, outcome))
    return out


def _flag(market: Mapping[str, Any], key: str, default: bool = True) -> bool:
    v = market.get(key)
    return default if v is None else bool(v)


def _trading(market: Mapping[str, Any], accepting_orders: str, enable_order_book: str) -> bool:
    """Open for orders: active, not closed, accepting orders, with an order book (the CLOB and
    Gamma name the last two differently)."""
    return (
        _flag(market, "active")
        and not _flag(market, "closed", False)
        and _flag(market, accepting_orders)
        and _flag(market, enable_order_book)
    )


def instruments_from_clob_market(market: Mapping[str, Any]) -> list[Definition]:
    """The tokens of a CLOB market object (`GET /markets` items, `GET /markets/{condition_id}`;
    §2.3). Raises KeyError/TypeError/ValueError when a needed field is missing or malformed."""
    tokens = market["tokens"]
    if not isinstance(tokens, list):
        raise TypeError("tokens: expected a list")
    ids = [_token_id(t["token_id"]) for t in tokens]
    neg_risk = market.get("neg_risk")
    return outcome_definitions(
        token_ids=ids,
        labels=[str(t.get("outcome", "")) for t in tokens],
        condition_id=str(market["condition_id"]),
        tick=parse_tick_size(market["minimum_tick_size"]),
        min_size=_min_size(market.get("minimum_order_size", DEFAULT_MIN_SIZE)),
        active=_trading(market, "accepting_orders", "enable_order_book"),
        neg_risk=None if neg_risk is None else bool(neg_risk),
        neg_risk_market_id=str(market.get("neg_risk_market_id") or ""),
        question=str(market.get("question") or ""),
        slug=str(market.get("market_slug") or ""),
        # `maker_base_fee`/`taker_base_fee` are the V1 signed fee caps in bps, not V2 rates.
        fees=None,
    )


def instruments_from_gamma_market(market: Mapping[str, Any]) -> list[Definition]:
    """The tokens of a Gamma market object (§2.7). Raises KeyError/TypeError/ValueError when a
    needed field is missing or malformed (legacy markets without CLOB tokens, for instance)."""
    ids = [_token_id(t) for t in _json_list(market["clobTokenIds"])]
    labels = [str(x) for x in _json_list(market.get("outcomes") or "[]")]
    neg_risk = market.get("negRisk")
    return outcome_definitions(
        token_ids=ids,
        labels=labels,
        condition_id=str(market["conditionId"]),
        tick=parse_tick_size(market["orderPriceMinTickSize"]),
        min_size=_min_size(market.get("orderMinSize", DEFAULT_MIN_SIZE)),
        active=_trading(market, "acceptingOrders", "enableOrderBook"),
        neg_risk=None if neg_risk is None else bool(neg_risk),
        neg_risk_market_id=str(market.get("negRiskMarketID") or ""),
        question=str(market.get("question") or ""),
        slug=str(market.get("slug") or ""),
        fees=_fee_schedule(market),
    )


def instruments_from_gamma_event(event: Mapping[str, Any]) -> tuple[list[Definition], int]:
    """The tokens of every market a Gamma event embeds (`markets[]`, §2.7), with the event's
    `negRisk` / `negRiskMarketID` where a market omits them. Returns (definitions, how many
    markets did not parse)."""
    markets = event["markets"]
    if not isinstance(markets, list):
        raise TypeError("markets: expected a list")
    out: list[Definition] = []
    skipped = 0
    for market in markets:
        try:
            if not isinstance(market, Mapping):
                raise TypeError("not an object")
            if market.get("negRisk") is None and event.get("negRisk") is not None:
                market = {**market, "negRisk": event["negRisk"]}
                if not market.get("negRiskMarketID") and event.get("negRiskMarketID"):
                    market["negRiskMarketID"] = event["negRiskMarketID"]
            out.extend(instruments_from_gamma_market(market))
        except (KeyError, TypeError, ValueError, ArithmeticError):
            skipped += 1
    return out, skipped


def learn(registry: InstrumentRegistry, outcomes: Outcomes, definitions: Iterable[Definition]) -> int:
    """Add definitions to the registry and the outcome table; returns how many were added.

    A token already known keeps what a later, poorer source does not say: its neg_risk flag and
    fee schedule survive a definition that has None for them."""
    n = 0
    for inst, outcome in definitions:
        known = outcomes.get(outcome.token_id)
        if known is not None:
            if outcome.neg_risk is None and known.neg_risk is not None:
                outcome = attrs.evolve(
                    outcome, neg_risk=known.neg_risk, neg_risk_market_id=known.neg_risk_market_id
                )
            if outcome.fees is None and known.fees is not None:
                outcome = attrs.evolve(outcome, fees=known.fees)
                inst = attrs.evolve(
                    inst,
                    maker_fee=Decimal(0) if known.fees.taker_only else known.fees.rate,
                    taker_fee=known.fees.rate,
                )
        registry.add(inst)
        outcomes.add(outcome)
        n += 1
    return n


def with_tick_size(inst: Instrument, tick: Decimal) -> Instrument:
    """`inst` with its new tick size (after a `tick_size_change`, §2.2)."""
    return attrs.evolve(inst, tick_size=tick)
