"""`InstrumentFilter` (engine/model/filter.py): the TOML table a strategy's config holds, structured by
the config loader, and what it selects: on the captured Derive instruments, on a synthetic Derive
option chain, on Deribit's instruments, and against a reference predicate on random instruments."""

from __future__ import annotations

import calendar
import random
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import attrs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.examples import examples
from tradingd.config import load_config
from tradingd.config._loader import make_converter, structure
from tradingd.connectors.deribit.instruments import instrument_from_json as deribit_instrument
from tradingd.connectors.derive.codec import DeriveDecoder
from tradingd.engine import ConfigError, Instrument, InstrumentKind, MarketEvent, OptionRight, Strategy
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.model.filter import InstrumentFilter, KindName
from tradingd.simulators.derive.generator import build_market

FIXTURES = Path(__file__).parent.parent / "fixtures"
DAY_NS = 86_400 * 1_000_000_000
EXPIRY_NS = 1_782_000_000 * 1_000_000_000  # ETH-20260627-3500-C's option_details.expiry


@attrs.frozen
class ChainParams:
    """What a strategy's `Params` looks like when it trades a filtered set of instruments."""

    instruments: InstrumentFilter = attrs.field(factory=InstrumentFilter)
    size: Decimal = Decimal(1)


class ChainStrategy(Strategy):
    Params = ChainParams

    async def on_event(self, event: MarketEvent) -> None:
        return None


CONFIG = """
mode = "live"

[[strategies]]
name = "eth_calls"
class = "tests.model.test_filter:ChainStrategy"

[strategies.params]
size = "0.5"

# ETH calls expiring in 7-30 days within 10% of spot
[strategies.params.instruments]
venues = ["derive"]
currencies = ["ETH"]
kinds = ["option"]
right = "call"
min_expiry_days = 7
max_expiry_days = 30
strike_within = 0.10
"""


def derive_instruments(name: str) -> list[Instrument]:
    """The instruments of a captured `get_instruments` answer, learned the way the engine learns
    them (through the decoder)."""
    registry = InstrumentRegistry()
    DeriveDecoder(registry).decode((FIXTURES / "derive" / name).read_bytes(), 0)
    return list(registry)


@pytest.fixture(scope="module")
def eth_all() -> list[Instrument]:
    instruments = derive_instruments("common/http_get_instruments_eth_all.json")
    assert sorted(i.symbol for i in instruments) == ["ETH-20260627-3500-C", "ETH-PERP"]
    return instruments


def loaded_filter(tmp_path: Path, text: str = CONFIG) -> InstrumentFilter:
    path = tmp_path / "chain.toml"
    path.write_text(text)
    params = load_config(path).strategy_params["eth_calls"]
    assert isinstance(params, ChainParams)
    return params.instruments


# ------------------------------------------------------------------------- the config snippet


def test_the_toml_table_is_structured_into_a_filter(tmp_path: Path) -> None:
    f = loaded_filter(tmp_path)
    assert f == InstrumentFilter(
        venues=["derive"],
        currencies=["ETH"],
        kinds=["option"],
        right="call",
        min_expiry_days=7.0,
        max_expiry_days=30.0,
        strike_within=0.10,
    )
    assert f.active_only and f.needs_spot


@pytest.mark.parametrize(
    ("days_before_expiry", "spot", "expected"),
    [
        (10, 3300, ["ETH-20260627-3500-C"]),  # 10 days out, strike 6.1% above spot
        (7, 3182, ["ETH-20260627-3500-C"]),  # both edges: exactly 7 days, strike 9.99% away
        (30, 3850, ["ETH-20260627-3500-C"]),  # exactly 30 days; strike 9.1% below spot
        (10, 3150, []),  # 11.1% away
        (31, 3500, []),  # expires in 31 days
        (6.5, 3500, []),  # in 6.5 days
    ],
)
def test_eth_calls_7_to_30_days_within_10_percent_on_the_captured_instruments(
    tmp_path: Path, eth_all: list[Instrument], days_before_expiry: float, spot: float, expected: list[str]
) -> None:
    f = loaded_filter(tmp_path)
    now = EXPIRY_NS - round(days_before_expiry * DAY_NS)
    assert [i.symbol for i in f.select(eth_all, now_ns=now, spot=spot)] == expected
    assert [i.symbol for i in f.select(eth_all, now_ns=now, spot={"ETH": spot})] == expected


def test_the_same_filter_on_a_synthetic_chain(tmp_path: Path) -> None:
    _, results = build_market(7, 1_795_478_400 * 10**9)  # 2026-11-24 00:00Z
    registry = InstrumentRegistry()
    dec = DeriveDecoder(registry)
    for rpc_id, result in enumerate(results, 1):
        dec.decode(orjson.dumps({"id": rpc_id, "result": result}), 0)
    assert len(registry) == 34
    f = loaded_filter(tmp_path)
    two_days_in = calendar.timegm((2026, 11, 26, 0, 0, 0)) * 10**9
    # Expiries: 2026-11-27 (1.3 days away: too near) and 2026-12-25 (29.3 days). ETH far strikes
    # 2900, 3000, 3100, 3200; 10% of 2800 is 280, so 2900 and 3000 are in.
    chosen = f.select(registry, now_ns=two_days_in, spot=2800.0)
    assert [i.symbol for i in chosen] == ["ETH-20261225-2900-C", "ETH-20261225-3000-C"]
    # Puts instead, wider: every ETH put of the far expiry, strike order.
    puts = attrs.evolve(f, right="put", strike_within=0.5)
    assert [i.symbol for i in puts.select(registry, now_ns=two_days_in, spot=2800.0)] == [
        "ETH-20261225-2900-P",
        "ETH-20261225-3000-P",
        "ETH-20261225-3100-P",
        "ETH-20261225-3200-P",
    ]


def test_config_mistakes_name_the_key(tmp_path: Path) -> None:
    cases = {
        'kinds = ["options"]': "instruments.kinds[0]: expected one of 'spot', 'perpetual'",
        'right = "calls"': "instruments.right: expected one of 'call', 'put'",
        "strike_within = -0.1": "instruments.strike_within: expected a finite number >= 0",
        "max_expiry_days = 3": "instruments.max_expiry_days: expected at least min_expiry_days (7.0)",
        'currencies = "ETH"': "instruments.currencies: expected a list",
        "strike_range = 3": "instruments: unknown key(s) strike_range",
    }
    for line, message in cases.items():
        key = line.split(" = ")[0]
        text = "\n".join(ln for ln in CONFIG.splitlines() if not ln.startswith(f"{key} = ")) + f"\n{line}\n"
        with pytest.raises(ConfigError) as err:
            loaded_filter(tmp_path, text)
        assert f"strategies[0].params.{message}" in str(err.value)


def test_the_kind_names_are_the_engine_kinds() -> None:
    assert list(get_args(KindName)) == [k.value for k in InstrumentKind]


def test_direct_construction_is_validated_too() -> None:
    assert InstrumentFilter(currencies=[" eth ", "ETH", "btc"]).currencies == ["ETH", "BTC"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kinds": ["swap"]}, "kinds: expected kinds among"),
        ({"kinds": "option"}, "kinds: expected a list"),
        ({"currencies": [""]}, "currencies: expected non-empty names"),
        ({"right": "both"}, "right: expected 'call' or 'put'"),
        ({"min_strike": "abc"}, "expected a decimal number"),
        ({"min_strike": 5, "max_strike": 4}, "max_strike: expected at least min_strike"),
        ({"min_expiry_days": float("nan")}, "min_expiry_days: expected a finite number"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            InstrumentFilter(**kwargs)


# ---------------------------------------------------------------------------------- the rules


def option(
    symbol: str = "ETH-X-C",
    *,
    venue: str = "derive",
    base: str = "ETH",
    quote: str = "USDC",
    strike: str = "3000",
    right: OptionRight = OptionRight.CALL,
    expiry_ns: int = 20 * DAY_NS,
    active: bool = True,
) -> Instrument:
    return Instrument(
        venue=venue,
        symbol=symbol,
        kind=InstrumentKind.OPTION,
        base=base,
        quote=quote,
        settle=quote,
        tick_size="0.1",
        min_size="0.01",
        expiry_ns=expiry_ns,
        strike=strike,
        right=right,
        active=active,
    )


def perp(symbol: str = "ETH-PERP", *, base: str = "ETH", venue: str = "derive") -> Instrument:
    return Instrument(
        venue=venue,
        symbol=symbol,
        kind=InstrumentKind.PERPETUAL,
        base=base,
        quote="USDC",
        settle="USDC",
        tick_size="0.01",
        min_size="0.01",
    )


def names(
    f: InstrumentFilter, instruments: Iterable[Instrument], now: int = 0, spot: Any = None
) -> list[str]:
    return [i.symbol for i in f.select(instruments, now_ns=now, spot=spot)]


def test_an_instrument_without_the_constrained_field_passes_only_when_its_kind_is_named() -> None:
    chain = [option("C"), option("P", right=OptionRight.PUT), perp()]
    window = InstrumentFilter(min_expiry_days=7, max_expiry_days=30)
    assert names(window, chain) == ["C", "P"]
    assert names(attrs.evolve(window, kinds=["option", "perpetual"]), chain) == ["ETH-PERP", "C", "P"]
    calls = InstrumentFilter(right="call")
    assert names(calls, chain) == ["C"]
    assert names(attrs.evolve(calls, kinds=["perpetual", "option"]), chain) == ["ETH-PERP", "C"]
    strikes = InstrumentFilter(min_strike=Decimal(2000), kinds=["perpetual", "option"])
    assert names(strikes, chain) == ["ETH-PERP", "C", "P"]
    assert names(InstrumentFilter(), chain) == ["ETH-PERP", "C", "P"]  # no constraint: everything


def test_active_only_drops_inactive_and_expired_instruments() -> None:
    chain = [option("live"), option("off", active=False), option("gone", expiry_ns=5)]
    assert names(InstrumentFilter(), chain, now=5) == ["live"]
    assert names(InstrumentFilter(active_only=False), chain, now=5) == ["gone", "live", "off"]


def test_venues_currencies_and_quotes() -> None:
    chain = [
        option("d-eth"),
        option("d-btc", base="BTC", strike="90000"),
        option("db-eth", venue="deribit", quote="ETH"),
        option("db-eth-usdc", venue="deribit", quote="USDC", strike="3100"),
    ]
    assert names(InstrumentFilter(venues=["deribit"]), chain) == ["db-eth", "db-eth-usdc"]
    assert names(InstrumentFilter(currencies=["btc"]), chain) == ["d-btc"]
    # Venue first in the order: deribit before derive.
    assert names(InstrumentFilter(quotes=["usdc"], currencies=["ETH"]), chain) == ["db-eth-usdc", "d-eth"]


def test_strike_within_needs_the_spot_of_each_currency_it_meets() -> None:
    f = InstrumentFilter(strike_within=0.1)
    chain = [option("e"), option("b", base="BTC", strike="90000"), perp()]
    with pytest.raises(ValueError, match="exactly one currency"):
        f.select(chain, now_ns=0, spot=3000)
    with pytest.raises(ValueError, match="needs the spot price of BTC"):
        f.select(chain, now_ns=0, spot={"ETH": 3000})
    assert names(f, chain, spot={"eth": 3000, "BTC": 85000}) == ["b", "e"]
    assert names(f, chain, spot={"ETH": 3000, "BTC": 80000}) == ["e"]  # 90000 is 12.5% away
    with pytest.raises(ValueError, match="spot price 'ETH': expected a positive number, got -1"):
        f.select(chain, now_ns=0, spot={"ETH": -1, "BTC": 1})
    # A filter that never meets an option with a strike needs no spot at all.
    assert names(attrs.evolve(f, kinds=["perpetual"]), chain) == ["ETH-PERP"]


def test_the_relative_strike_band_is_exact_at_its_edges() -> None:
    f = InstrumentFilter(strike_within=0.1)
    chain = [option("2700", strike="2700"), option("3300", strike="3300"), option("3301", strike="3301")]
    assert names(f, chain, spot={"ETH": 3000}) == ["2700", "3300"]
    chain = [option("2699.9", strike="2699.9")]
    assert names(f, chain, spot={"ETH": 3000}) == []


def test_deribit_instruments_select_alike() -> None:
    data = orjson.loads((FIXTURES / "deribit" / "http_get_instruments.json").read_bytes())
    instruments = [deribit_instrument(item) for item in data["result"]]
    expiry = 1_735_300_800 * 10**9  # 27DEC24 08:00Z
    now = expiry - 10 * DAY_NS
    calls = InstrumentFilter(
        currencies=["BTC"], kinds=["option"], right="call", max_expiry_days=30, strike_within=0.1
    )
    assert names(calls, instruments, now, {"BTC": 95000}) == ["BTC-27DEC24-100000-C"]
    assert names(calls, instruments, now, {"BTC": 85000}) == []
    # A combo "future" has no expiry: with futures named in `kinds` it passes the window.
    futures = InstrumentFilter(kinds=["future"], min_expiry_days=7, max_expiry_days=30)
    assert names(futures, instruments, now) == ["BTC-27DEC24", "BTC-COMBO-1"]
    assert names(InstrumentFilter(min_expiry_days=7, max_expiry_days=30), instruments, now) == [
        "BTC-27DEC24",
        "BTC-27DEC24-100000-C",
    ]
    assert names(InstrumentFilter(venues=["deribit"]), instruments, now) == [
        "BTC-PERPETUAL",
        "BTC-27DEC24",
        "BTC-COMBO-1",
        "BTC-27DEC24-100000-C",
    ]
    assert not InstrumentFilter(venues=["derive"]).select(instruments, now_ns=now)


# ------------------------------------------------------------------------ properties (hypothesis)


_CCYS = ["BTC", "ETH", "SOL"]


@st.composite
def instruments_st(draw: st.DrawFn) -> Instrument:
    kind = draw(st.sampled_from(InstrumentKind))
    dated = kind in (InstrumentKind.OPTION, InstrumentKind.FUTURE, InstrumentKind.OUTCOME)
    optional = kind is InstrumentKind.OPTION
    return Instrument(
        venue=draw(st.sampled_from(["derive", "deribit"])),
        symbol=draw(st.text("ABCXYZ0123456789-", min_size=1, max_size=12)),
        kind=kind,
        base=draw(st.sampled_from(_CCYS)),
        quote=draw(st.sampled_from(["USDC", "BTC", "ETH"])),
        settle="USDC",
        tick_size="0.1",
        min_size="0.01",
        expiry_ns=draw(st.integers(0, 90 * DAY_NS)) if dated else None,
        strike=draw(st.decimals(min_value=1, max_value=200000, places=1)) if optional else None,
        right=draw(st.sampled_from(OptionRight)) if optional else None,
        active=draw(st.booleans()),
    )


@st.composite
def filters_st(draw: st.DrawFn) -> InstrumentFilter:
    lo = draw(st.none() | st.floats(0, 60))
    hi = draw(st.none() | st.floats(0, 90))
    if lo is not None and hi is not None and hi < lo:
        lo, hi = hi, lo
    klo = draw(st.none() | st.decimals(min_value=1, max_value=100000, places=0))
    khi = draw(st.none() | st.decimals(min_value=1, max_value=200000, places=0))
    if klo is not None and khi is not None and khi < klo:
        klo, khi = khi, klo
    return InstrumentFilter(
        venues=draw(st.lists(st.sampled_from(["derive", "deribit"]), max_size=2)),
        currencies=draw(st.lists(st.sampled_from(_CCYS), max_size=2)),
        quotes=draw(st.lists(st.sampled_from(["USDC", "BTC"]), max_size=1)),
        kinds=draw(st.lists(st.sampled_from([k.value for k in InstrumentKind]), max_size=3)),
        right=draw(st.none() | st.sampled_from(["call", "put"])),
        min_expiry_days=lo,
        max_expiry_days=hi,
        min_strike=klo,
        max_strike=khi,
        strike_within=draw(st.none() | st.floats(0, 1)),
        active_only=draw(st.booleans()),
    )


def reference(f: InstrumentFilter, i: Instrument, now: int, spot: dict[str, Decimal]) -> bool:
    """The module docstring's rules, written out plainly."""
    named = i.kind.value in f.kinds
    checks = [
        not f.venues or i.venue in f.venues,
        not f.currencies or i.base in f.currencies,
        not f.quotes or i.quote in f.quotes,
        not f.kinds or named,
        not f.active_only or (i.active and (i.expiry_ns is None or i.expiry_ns > now)),
    ]
    if f.min_expiry_days is not None or f.max_expiry_days is not None:
        if i.expiry_ns is None:
            checks.append(named)
        else:
            # Bounds are whole ns: the days rounded to the nearest ns.
            lo, hi = f.min_expiry_days, f.max_expiry_days
            checks.append(lo is None or i.expiry_ns - now >= round(lo * DAY_NS))
            checks.append(hi is None or i.expiry_ns - now <= round(hi * DAY_NS))
    if f.right is not None:
        checks.append(named if i.right is None else i.right.value == f.right)
    if f.min_strike is not None or f.max_strike is not None or f.strike_within is not None:
        if i.strike is None:
            checks.append(named)
        else:
            checks.append(f.min_strike is None or i.strike >= f.min_strike)
            checks.append(f.max_strike is None or i.strike <= f.max_strike)
            if f.strike_within is not None:
                s = spot[i.base]
                checks.append(abs(i.strike - s) <= Decimal(repr(f.strike_within)) * s)
    return all(checks)


def _identity(i: Instrument) -> tuple[str, str]:
    """An instrument's identity: a chain (a registry) holds one instrument per venue and
    symbol, and the selection's fixed order is by it."""
    return (i.venue, i.symbol)


@settings(max_examples=examples(150), deadline=None)
@given(
    f=filters_st(),
    chain=st.lists(instruments_st(), max_size=25, unique_by=_identity),
    now=st.integers(0, 30 * DAY_NS),
    seed=st.integers(0, 2**32),
)
def test_select_is_the_reference_predicate_in_a_fixed_order(
    f: InstrumentFilter, chain: list[Instrument], now: int, seed: int
) -> None:
    spot = {"BTC": Decimal(90000), "ETH": Decimal(3000), "SOL": Decimal(150)}
    chosen = f.select(chain, now_ns=now, spot=spot)
    assert sorted(map(id, chosen)) == sorted(id(i) for i in chain if reference(f, i, now, spot))
    # The order is fixed whatever the input order.
    shuffled = list(chain)
    random.Random(seed).shuffle(shuffled)
    again = f.select(shuffled, now_ns=now, spot=spot)
    assert [attrs.astuple(i) for i in again] == [attrs.astuple(i) for i in chosen]
    assert all(f.matches(i, now_ns=now, spot=spot) for i in chosen)


@settings(max_examples=150, deadline=None)
@given(
    f=filters_st(),
    chain=st.lists(instruments_st(), max_size=25, unique_by=_identity),
    now=st.integers(0, 30 * DAY_NS),
)
def test_dropping_a_constraint_never_selects_less(
    f: InstrumentFilter, chain: list[Instrument], now: int
) -> None:
    spot = {"BTC": 90000.0, "ETH": 3000.0, "SOL": 150.0}
    chosen = {id(i) for i in f.select(chain, now_ns=now, spot=spot)}
    for looser in (
        attrs.evolve(f, right=None),
        attrs.evolve(f, strike_within=None),
        attrs.evolve(f, min_expiry_days=None, max_expiry_days=None),
        attrs.evolve(f, active_only=False),
        attrs.evolve(f, currencies=[]),
    ):
        assert chosen <= {id(i) for i in looser.select(chain, now_ns=now, spot=spot)}


def test_structuring_by_the_converter_directly() -> None:
    f = structure(make_converter(), {"kinds": ["option"], "min_strike": 2500}, InstrumentFilter, file=None)
    assert f.kinds == ["option"] and f.min_strike == Decimal(2500)


# ---------------------------------------------------------------------------- the live set


class SelectingContext:
    """The parts of a strategy context `LiveSelection` uses, over a real registry and market."""

    def __init__(self, instruments: list[Instrument], spot: float) -> None:
        from tradingd.engine import Ticker
        from tradingd.engine.model import InstrumentRegistry, MarketState

        self.registry = InstrumentRegistry(instruments)
        self.market = MarketState(self.registry)
        self.market.on_ticker(
            Ticker(venue="derive", instrument="ETH-PERP", ts_exchange=1, ts_local=1, index=spot)
        )
        self.now = 0
        self.subscribed: list[str] = []
        self.unsubscribed: list[str] = []

    def now_ns(self) -> int:
        return self.now

    def select(self, f: InstrumentFilter, venue: str | None = None) -> list[Instrument]:
        from tradingd.engine.runtime.context import BaseContext

        return BaseContext.select(self, f, venue)  # type: ignore[arg-type]

    @property
    def flow(self) -> Any:
        return self

    def subscribe(self, subs: Iterable[Any]) -> None:
        self.subscribed += [s.instrument for s in subs]

    def unsubscribe(self, subs: Iterable[Any]) -> None:
        self.unsubscribed += [s.instrument for s in subs]


def test_a_live_selection_follows_time_and_spot_and_keeps_what_is_held() -> None:
    from tradingd.engine import LiveSelection

    chain = [
        option("ETH-A-3000-C", strike="3000", expiry_ns=10 * DAY_NS),
        option("ETH-B-3300-C", strike="3300", expiry_ns=10 * DAY_NS),
        option("ETH-C-3000-C", strike="3000", expiry_ns=40 * DAY_NS),
        perp(),
    ]
    ctx = SelectingContext(chain, spot=3000.0)
    f = InstrumentFilter(currencies=["ETH"], kinds=["option"], right="call", min_expiry_days=7,
                         max_expiry_days=30, strike_within=0.05)  # fmt: skip
    live = LiveSelection(f, venue="derive", every_s=3600)
    assert live.due(0)
    assert live.refresh(ctx, spot=3000.0) == (["ETH-A-3000-C"], [])
    assert not live.due(60 * 10**9, 3010.0) and live.due(60 * 10**9, 3100.0)  # spot moved > 1%
    # Spot rises: 3300 enters the band, 3000 leaves it (but it is held, so it stays watched).
    ctx.market.on_ticker(
        __import__("engine").Ticker(
            venue="derive", instrument="ETH-PERP", ts_exchange=2, ts_local=2, index=3250.0
        )
    )
    ctx.now = 60 * 10**9
    assert live.refresh(ctx, keep=["ETH-A-3000-C"], spot=3250.0) == (["ETH-B-3300-C"], [])
    assert set(live.current) == {"ETH-A-3000-C", "ETH-B-3300-C"}
    # Time passes: A and B are within 7 days of expiry, C enters the window; A is no longer held.
    ctx.now = 12 * DAY_NS
    assert live.refresh(ctx, spot=3250.0) == ([], ["ETH-A-3000-C", "ETH-B-3300-C"])
    ctx.market.on_ticker(
        __import__("engine").Ticker(
            venue="derive", instrument="ETH-PERP", ts_exchange=3, ts_local=3, index=3000.0
        )
    )
    assert live.refresh(ctx, spot=3000.0) == (["ETH-C-3000-C"], [])
    assert ctx.subscribed == ["ETH-A-3000-C", "ETH-B-3300-C", "ETH-C-3000-C"]
    assert ctx.unsubscribed == ["ETH-A-3000-C", "ETH-B-3300-C"]


async def test_momentum_trades_the_live_set_of_a_filter_in_a_backtest(tmp_path: Path) -> None:
    from tradingd.engine.backtest.kernel import BacktestKernel, DataSource
    from tradingd.strategies.momentum import Momentum, MomentumParams

    data = tmp_path / "d.rec.zst"
    from tradingd.connectors.deribit import PLUGIN
    from tradingd.simulators.deribit import SIMULATOR as DERIBIT_SIM

    DERIBIT_SIM.generate_sample(data, {"hours": 0.3, "seed": 4})
    f = InstrumentFilter(currencies=["ETH"], kinds=["option"], right="call", strike_within=0.10)
    strat = Momentum("m", MomentumParams(select=f, lookback_s=60, reselect_s=300))
    result = await BacktestKernel({"deribit": PLUGIN}, [DataSource("deribit", data)], [strat]).run()
    assert strat.selection is not None and strat.watched
    assert all(i.startswith("ETH-") and i.endswith("-C") for i in strat.watched)
    assert result.strategies["m"].errors == 0
