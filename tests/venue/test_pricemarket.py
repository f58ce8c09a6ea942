"""The venue-neutral price market types (engine/venue/pricemarket.py) and the in-memory catalogs
(engine/venue/catalog.py: `StaticCatalog`, `LayeredCatalog`, `MarketCatalog.price_markets`)."""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from typing import Any

import attrs
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from tradingd.engine import CatalogMarket, PriceCondition, PriceMarket, Unrecognized
from tradingd.engine.venue import (
    InvalidPattern,
    LayeredCatalog,
    OutcomeToken,
    StaticCatalog,
    sort_price_markets,
)


def market(slug: str, question: str = "", *, cid: str | None = None, tokens: tuple[str, str] | None = None,
           tags: tuple[str, ...] = (), description: str = "", **kw: Any) -> CatalogMarket:  # fmt: skip
    yes, no = tokens or (f"{abs(hash(slug)) % 10**12}1", f"{abs(hash(slug)) % 10**12}2")
    return CatalogMarket(
        venue=kw.pop("venue", "pm"),
        slug=slug,
        question=question or slug.replace("-", " "),
        condition_id=cid or "0x" + slug.encode().hex()[:40],
        tokens=(OutcomeToken("Yes", yes), OutcomeToken("No", no)),
        active=kw.pop("active", True),
        closed=kw.pop("closed", False),
        end_date=dt.datetime(2026, 3, 3, 17, tzinfo=dt.UTC),
        tags=tags,
        description=description,
        **kw,
    )


def price(m: CatalogMarket, condition: PriceCondition, low: str | None, high: str | None) -> PriceMarket:
    return PriceMarket(
        market=m, underlying="BTC", condition=condition,
        low=None if low is None else Decimal(low), high=None if high is None else Decimal(high),
        resolves_at_ns=1_772_557_259_999_000_000, source="test", yes_token=m.tokens[0].token_id,
        no_token=m.tokens[1].token_id,
    )  # fmt: skip


class RecordingSurface:
    """Answers each query with a number that says which query and arguments it got."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def prob_above(self, strike: float, expiry_ns: int, *, now_ns: int | None = None) -> float:
        self.calls.append(("above", strike, expiry_ns, now_ns))
        return 0.25

    def prob_below(self, strike: float, expiry_ns: int, *, now_ns: int | None = None) -> float:
        self.calls.append(("below", strike, expiry_ns, now_ns))
        return 0.5

    def prob_between(self, low: float, high: float, expiry_ns: int, *, now_ns: int | None = None) -> float:
        self.calls.append(("between", low, high, expiry_ns, now_ns))
        return 0.125


M = market("bitcoin-above-102k-on-november-8")


def test_probability_asks_the_surface_the_conditions_query() -> None:
    s = RecordingSurface()
    t = 1_772_557_259_999_000_000
    assert price(M, PriceCondition.ABOVE, "102000", None).probability(s) == 0.25
    assert price(M, PriceCondition.BELOW, None, "56000.5").probability(s, now_ns=5) == 0.5
    assert price(M, PriceCondition.BETWEEN, "66000", "68000").probability(s, now_ns=7) == 0.125
    assert s.calls == [
        ("above", 102000.0, t, None),
        ("below", 56000.5, t, 5),
        ("between", 66000.0, 68000.0, t, 7),
    ]


@given(
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("1e7"), places=4),
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("1e7"), places=4),
)
def test_probability_passes_the_strikes_as_they_were_read(a: Decimal, b: Decimal) -> None:
    s = RecordingSurface()
    low, high = sorted((a, a + b))
    price(M, PriceCondition.BETWEEN, str(low), str(high)).probability(s)
    assert s.calls[0][1:3] == (float(low), float(high))


@pytest.mark.parametrize(
    ("condition", "low", "high"),
    [
        (PriceCondition.ABOVE, None, "1"),
        (PriceCondition.ABOVE, "1", "2"),
        (PriceCondition.BELOW, "1", None),
        (PriceCondition.BETWEEN, "1", None),
        (PriceCondition.BETWEEN, "2", "2"),
        (PriceCondition.BETWEEN, "3", "2"),
        (PriceCondition.ABOVE, "0", None),
        (PriceCondition.ABOVE, "-5", None),
        (PriceCondition.BELOW, None, "NaN"),
        (PriceCondition.BELOW, None, "Infinity"),
    ],
)
def test_a_condition_whose_bounds_do_not_fit_it_is_refused(
    condition: PriceCondition, low: str | None, high: str | None
) -> None:
    with pytest.raises(ValueError):
        price(M, condition, low, high)


def test_two_tokens_are_needed() -> None:
    with pytest.raises(ValueError, match="two distinct tokens"):
        attrs.evolve(price(M, PriceCondition.ABOVE, "1", None), no_token=M.tokens[0].token_id)


def test_json_forms() -> None:
    p = price(M, PriceCondition.BETWEEN, "66000", "68000.5")
    d = p.to_dict()
    assert d["condition"] == "between" and (d["low"], d["high"]) == ("66000", "68000.5")
    assert d["resolves_at"] == "2026-03-03T17:00:59.999000Z" and d["resolves_at_ns"] == p.resolves_at_ns
    assert (d["slug"], d["yes_token"], d["no_token"]) == (M.slug, M.tokens[0].token_id, M.tokens[1].token_id)
    assert p.describe() == "BTC in (66000, 68000.5)"
    assert price(M, PriceCondition.BELOW, None, "5").describe() == "BTC < 5"
    u = Unrecognized(M, "a touch market", "BTC").to_dict()
    assert u == {"slug": M.slug, "question": M.question, "condition_id": M.condition_id, "underlying": "BTC",
                 "reason": "a touch market"}  # fmt: skip


# --------------------------------------------------------------------------- catalogs


def recognizer(m: CatalogMarket) -> PriceMarket | Unrecognized | None:
    """A stand-in venue reader: "above-N" slugs are read, "touch" ones reported, others passed over."""
    found = re.search(r"above-(\d+)", m.slug)
    if found:
        p = price(m, PriceCondition.ABOVE, found[1], None)
        return attrs.evolve(p, underlying="ETH") if "eth" in m.slug else p
    if "touch" in m.slug:
        return Unrecognized(m, "touch", "BTC")
    return None


def test_sort_price_markets_keeps_tradable_ones_of_the_underlying() -> None:
    ms = [
        market("btc-above-1"),
        market("btc-touch"),
        market("eth-above-2"),
        market("btc-above-3", closed=True),
        market("btc-above-4", accepting_orders=False),
        market("fed-cut"),
    ]
    read, unread = sort_price_markets(ms, recognizer)
    assert [p.market.slug for p in read] == ["btc-above-1", "eth-above-2"]
    assert [u.market.slug for u in unread] == ["btc-touch"]
    read, unread = sort_price_markets(ms, recognizer, " btc ")
    assert [p.market.slug for p in read] == ["btc-above-1"] and len(unread) == 1
    read, unread = sort_price_markets(ms, recognizer, "ETH")
    assert [p.market.slug for p in read] == ["eth-above-2"] and unread == []


def test_a_catalog_that_cannot_read_price_markets_says_none() -> None:
    assert StaticCatalog("pm", [market("btc-above-1")]).price_markets() == ([], [])
    read, unread = StaticCatalog("pm", [market("btc-above-1")], recognize=recognizer).price_markets("BTC")
    assert [p.low for p in read] == [Decimal(1)] and unread == []


def test_static_catalog_lookups() -> None:
    a = market("will-bitcoin-be-above-100000", "Will Bitcoin be above $100,000?", tags=("Crypto",))
    b = market("fed-rate-cut", "Will the Fed cut rates?", description="bitcoin is not involved")
    a2 = attrs.evolve(a, question="Will Bitcoin be above $100,000 on Friday?")  # the same market, later
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cat = StaticCatalog("pm", [a, b, a2], updated=when)
    assert len(cat) == 2 and list(cat.all()) == [a2, b]
    assert cat.find_by_slug(a.slug) == a2 and cat.find_by_slug("nope") is None
    assert cat.get(a.condition_id) == a2 and cat.get(a.condition_id.upper()) == a2
    assert cat.find_by_token_id(b.tokens[1].token_id) == b and cat.find_by_token_id("0") is None
    assert cat.find_by_slug_regex(r"^will-") == [a2]
    assert cat.find_by_slug_regex("e") == [b, a2]  # slug order
    with pytest.raises(InvalidPattern):
        cat.find_by_slug_regex("(")
    assert cat.last_updated() == when
    assert trio.run(cat.refresh) == 2
    with pytest.raises(ValueError, match="of venue 'other'"):
        StaticCatalog("pm", [market("x", venue="other")])


def test_static_catalog_search_weighs_fields_and_needs_every_word() -> None:
    in_slug = market("bitcoin-price", "Something")
    in_question = market("x-1", "Bitcoin price")
    in_desc = market("x-2", "Other", description="bitcoin price")
    one_word = market("bitcoin-only", "Nothing")
    cat = StaticCatalog("pm", [in_desc, in_question, in_slug, one_word])
    found = cat.search("Will the bitcoin price", limit=10)
    assert [r.market.slug for r in found] == ["bitcoin-price", "x-1", "x-2"]
    # slug 8 a word (+ question's own words: none here), question 4, description 1
    assert [r.score for r in found] == [16.0, 8.0, 2.0]
    # no market has both words: any of them; "bitcoin-only" ties with "bitcoin-price" and is later
    assert [r.market.slug for r in cat.search("bitcoin zebra")] == [
        "bitcoin-only",
        "bitcoin-price",
        "x-1",
        "x-2",
    ]
    assert cat.search("zebra") == [] and cat.search("   ") == []
    assert len(cat.search("bitcoin", limit=2)) == 2
    with pytest.raises(ValueError):
        cat.search("bitcoin", limit=0)


def test_layered_catalog_first_wins() -> None:
    recorded = market("btc-above-1", "recorded")
    today = attrs.evolve(recorded, question="today", closed=True)  # the same market, since closed
    other = market("btc-above-2", "only in the cache")
    first = StaticCatalog(
        "pm", [recorded], recognize=recognizer, updated=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    second = StaticCatalog("pm", [today, other], recognize=recognizer)
    cat = LayeredCatalog(first, second)
    assert len(cat) == 2
    assert cat.get(recorded.condition_id) == recorded and cat.get(other.condition_id) == other
    assert cat.find_by_slug("btc-above-1") == recorded
    assert cat.find_by_token_id(recorded.tokens[0].token_id) == recorded
    assert [m.question for m in cat.all()] == ["recorded", "only in the cache"]
    assert [m.question for m in cat.find_by_slug_regex("^btc-")] == ["recorded", "only in the cache"]
    assert [r.market.question for r in cat.search("btc above")] == ["recorded", "only in the cache"]
    read, _ = cat.price_markets("BTC")
    assert [p.market.question for p in read] == ["recorded", "only in the cache"]
    assert cat.last_updated() == first.last_updated()  # the cache's is None here
    with pytest.raises(ValueError, match="cannot layer"):
        LayeredCatalog(first, StaticCatalog("other", []))


def test_probability_with_a_flat_surface_is_the_closed_form_digital() -> None:
    """Against the real surface type, when it is there (the surface room's branch)."""
    surface_model = pytest.importorskip("tradingd.engine.surface.model")
    if not hasattr(surface_model, "VolSurface"):
        pytest.skip("no VolSurface yet")
    flat = _flat_surface(surface_model, forward=100_000.0, vol=0.5, t_years=0.25)
    if flat is None:
        pytest.skip("the surface types differ from the pinned ones")
    surface, expiry_ns, now_ns = flat
    k, w = math.log(102_000 / 100_000), 0.5**2 * 0.25
    d2 = -k / math.sqrt(w) - math.sqrt(w) / 2
    n = 0.5 * math.erfc(-d2 / math.sqrt(2))
    p = attrs.evolve(price(M, PriceCondition.ABOVE, "102000", None), resolves_at_ns=expiry_ns)
    assert p.probability(surface, now_ns=now_ns) == pytest.approx(n, abs=1e-9)
    below = attrs.evolve(price(M, PriceCondition.BELOW, None, "102000"), resolves_at_ns=expiry_ns)
    assert below.probability(surface, now_ns=now_ns) == pytest.approx(1 - n, abs=1e-9)


def _flat_surface(mod: Any, *, forward: float, vol: float, t_years: float) -> tuple[Any, int, int] | None:
    """A one-slice surface of constant total variance vol^2 t (raw SVI with b = 0)."""
    year_ns = mod.YEAR_SECONDS * 1e9
    expiry_ns = int(1_800_000_000 * 1e9)
    now_ns = expiry_ns - int(t_years * year_ns)
    w = vol * vol * t_years
    try:
        params = mod.SviParams(a=w, b=0.0, rho=0.0, m=0.0, sigma=0.1)
        fit = mod.SliceFit(
            expiry_ns=expiry_ns, t_years=t_years, forward=forward, params=params, quotes=5, dropped=0,
            rmse_iv=0.0, max_abs_err_iv=0.0, residuals=(), butterfly_min_g=1.0, butterfly_ok=True,
            lee_ok=True,
        )  # fmt: skip
        surface = mod.VolSurface(
            venue="deribit", underlying="BTC", as_of_ns=now_ns, slices=(fit,), calendar_ok=True,
            calendar_violations=(), skipped=(),
        )  # fmt: skip
    except TypeError:
        return None
    return surface, expiry_ns, now_ns
