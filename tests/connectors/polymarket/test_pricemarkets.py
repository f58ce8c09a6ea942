"""Polymarket's crypto price markets read from their text (connectors/polymarket/pricemarkets.py).

Witnesses: real Gamma and CLOB objects (tests/fixtures/polymarket/price_markets/README.md says
where each comes from) with the strike, condition and UTC instant written out here by hand from
the texts (noon ET is 16:00Z in EDT, 17:00Z in EST; Gamma's own `endDate` says the same), and
generated question texts whose amounts and dates are built independently of the reader.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradingd.connectors.polymarket.catalog import market_from_clob, market_from_gamma
from tradingd.connectors.polymarket.pricemarkets import ASSETS, classify, looks_like_price_market, recognize
from tradingd.engine import CatalogMarket, PriceCondition, PriceMarket, Unrecognized
from tradingd.engine.venue import OutcomeToken

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "polymarket"
PRICE = FIXTURES / "price_markets"

BINANCE_NOON = "binance BTC/USDT 1m close 12:00 ET"
NO_RULE = "end_date; rule not stated"


def load(name: str) -> CatalogMarket:
    obj = json.loads((PRICE / name).read_text())
    return market_from_clob(obj) if name.startswith("clob_") else market_from_gamma(obj)


def utc_ns(text: str) -> int:
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1) * 1000


# file -> (underlying, condition, low, high, the settling instant (UTC), source)
READ: dict[str, tuple[str, PriceCondition, str | None, str | None, str, str]] = {
    # November 8, 2025 is after the end of DST (November 2): noon EST = 17:00Z, as endDate says.
    "gamma_btc_above_102k_nov8.json": ("BTC", PriceCondition.ABOVE, "102000", None,
                                       "2025-11-08T17:00:59.999Z", BINANCE_NOON),
    "gamma_btc_above_96k_nov10.json": ("BTC", PriceCondition.ABOVE, "96000", None,
                                       "2025-11-10T17:00:59.999Z", BINANCE_NOON),
    "clob_btc_above_100k_nov11.json": ("BTC", PriceCondition.ABOVE, "100000", None,
                                       "2025-11-11T17:00:59.999Z", BINANCE_NOON),
    # The source gives no description: the end date, said so.
    "gamma_btc_between_66k_68k_mar3.json": ("BTC", PriceCondition.BETWEEN, "66000", "68000",
                                            "2026-03-03T17:00:00Z", NO_RULE),
    "gamma_btc_less_than_56k_jun24.json": ("BTC", PriceCondition.BELOW, None, "56000",
                                           "2026-06-24T16:00:00Z", NO_RULE),
    "gamma_btc_greater_than_74k_jun24.json": ("BTC", PriceCondition.ABOVE, "74000", None,
                                              "2026-06-24T16:00:00Z", NO_RULE),
    # April 9, 2026 is in DST: the source's closes_at 12:00-04:00 is 16:00Z.
    "gamma_eth_above_2100_apr9.json": ("ETH", PriceCondition.ABOVE, "2100", None,
                                       "2026-04-09T16:00:59.999Z", "binance ETH/USDT 1m close 12:00 ET"),
    # 2PM EDT = 18:00Z (endDate); the 1h candle ending then closes at 17:59:59.999Z.
    "gamma_btc_above_69200_apr6_2pm.json": ("BTC", PriceCondition.ABOVE, "69200", None,
                                            "2026-04-06T17:59:59.999Z",
                                            "binance BTC/USDT 1h close, candle ending 14:00 ET"),
}  # fmt: skip

# file -> (underlying, a phrase of the reason)
UNREAD: dict[str, tuple[str, str]] = {
    "gamma_xrp_up_or_down_nov7.json": ("XRP", "Up or Down"),
    "gamma_btc_reach_100k_september.json": ("BTC", "touch (barrier)"),
    "gamma_btc_dip_to_55k_september.json": ("BTC", "touch (barrier)"),
}


def test_every_fixture_is_in_a_table() -> None:
    named = {p.name for p in PRICE.glob("*.json")}
    assert named == set(READ) | set(UNREAD) | {"gamma_event_btc_above_oct3_2026.json"}


@pytest.mark.parametrize("name", sorted(READ))
def test_real_markets_are_read(name: str) -> None:
    underlying, condition, low, high, when, source = READ[name]
    market = load(name)
    found = recognize(market)
    assert isinstance(found, PriceMarket), found
    assert found.underlying == underlying
    assert found.condition is condition
    assert found.low == (None if low is None else Decimal(low))
    assert found.high == (None if high is None else Decimal(high))
    assert found.resolves_at_ns == utc_ns(when)
    assert found.source == source
    obj = json.loads((PRICE / name).read_text())
    tokens = [t["token_id"] for t in obj["tokens"]] if "tokens" in obj else json.loads(obj["clobTokenIds"])
    assert (found.yes_token, found.no_token) == (tokens[0], tokens[1])
    assert found.market is market
    # The instant agrees with the venue's end date to within a day (to the minute for the rules).
    assert market.end_date is not None
    assert abs(found.resolves_at_ns - utc_ns(market.end_date.isoformat())) < 86_400 * 10**9


@pytest.mark.parametrize("name", sorted(UNREAD))
def test_real_markets_that_cannot_be_read_are_reported(name: str) -> None:
    underlying, phrase = UNREAD[name]
    found = recognize(load(name))
    assert isinstance(found, Unrecognized)
    assert phrase in found.reason
    assert found.underlying == underlying
    assert "\n" not in found.reason


def test_the_captured_up_or_down_market_is_reported() -> None:
    market = market_from_gamma((FIXTURES / "gamma_market.json").read_bytes())
    found = recognize(market)
    assert isinstance(found, Unrecognized)
    assert "Up or Down" in found.reason
    assert found.underlying == "BTC"


@pytest.mark.parametrize(
    "name",
    [
        "gamma_market_closed_binary_accepting_false.json",
        "gamma_market_closed_binary_accepting_true.json",
        "gamma_market_sports_market_money_line.json",
        "gamma_market_sports_market_map_handicap.json",
        "gamma_market_closed_nonbinary_legacy.json",
    ],
)
def test_markets_that_are_no_crypto_price_question_are_not_reported(name: str) -> None:
    market = market_from_gamma((FIXTURES / name).read_bytes())
    assert classify(market) is None
    assert not looks_like_price_market(market)
    found = recognize(market)
    assert isinstance(found, Unrecognized) and found.reason == "not a crypto price question"


def test_a_trimmed_real_event_is_reported_where_its_rule_is_cut_off() -> None:
    """The Go test's "trimmed copies of live responses": the rule ends in "..." (no pair, no time)."""
    event = json.loads((PRICE / "gamma_event_btc_above_oct3_2026.json").read_text())
    found = classify(market_from_gamma(event["markets"][0]))
    assert isinstance(found, Unrecognized)
    assert found.reason == "the description states a settlement rule this reader cannot read"
    with pytest.raises(ValueError, match="no conditionId"):  # trimmed to a few fields: no market at all
        market_from_gamma(event["markets"][1])


# --------------------------------------------------------------------------- what is refused


def btc_102k(**changes: Any) -> CatalogMarket:
    return attrs.evolve(load("gamma_btc_above_102k_nov8.json"), **changes)


def reason(market: CatalogMarket) -> str:
    found = classify(market)
    assert isinstance(found, Unrecognized), found
    return found.reason


def test_a_title_date_far_from_the_end_date_is_reported_not_guessed() -> None:
    base = btc_102k()
    assert base.end_date is not None
    assert "3.0 days from end_date" in reason(
        attrs.evolve(base, end_date=base.end_date + dt.timedelta(days=3))
    )
    # Within a day: still read, at the title's noon (not at the end date).
    later = classify(attrs.evolve(base, end_date=base.end_date + dt.timedelta(hours=20)))
    assert isinstance(later, PriceMarket) and later.resolves_at_ns == utc_ns("2025-11-08T17:00:59.999Z")


def test_the_year_is_the_one_nearest_the_end_date() -> None:
    # "December 31" with an end date early in January: the December before it.
    q = "Will the price of Bitcoin be above $90,000 on December 31?"
    end = dt.datetime(2027, 1, 1, 2, 0, tzinfo=dt.UTC)  # 21:00 ET on December 31, 2026
    found = classify(btc_102k(question=q, end_date=end))
    assert isinstance(found, PriceMarket)
    assert found.resolves_at_ns == utc_ns("2026-12-31T17:00:59.999Z")


def test_a_year_in_the_title_is_used_as_written_even_without_an_end_date() -> None:
    q = "Will the price of Bitcoin be above $90,000 on July 4, 2026?"
    found = classify(btc_102k(question=q, end_date=None))
    assert isinstance(found, PriceMarket)
    assert found.resolves_at_ns == utc_ns("2026-07-04T16:00:59.999Z")  # EDT
    assert "no end date" in reason(btc_102k(end_date=None))


Q = "Will the price of Bitcoin be "


@pytest.mark.parametrize(
    ("changes", "phrase"),
    [
        ({"tokens": (OutcomeToken("Yes", "1"),)}, "1 outcome token(s)"),
        ({"tokens": ()}, "0 outcome token(s)"),
        ({"tokens": (OutcomeToken("Long", "1"), OutcomeToken("Short", "2"))},
         "outcomes Long / Short, not Yes / No"),
        ({"question": Q + "above $0 on November 8?"}, "not a positive finite number"),
        ({"question": Q + "above $0.00 on November 8?"}, "not a positive finite number"),
        ({"question": Q + "between $68,000 and $66,000 on November 8?"},
         "low 68000 is not below its high 66000"),
        ({"question": Q + "between $66,000 on November 8?"}, "with one amount"),
        ({"question": Q + "above $66,000 and $68,000 on November 8?"}, "two amounts"),
        ({"question": Q + "above $102,000 on November 31?"}, "November 31 does not exist"),
        ({"question": Q + "above $102,000 on Brumaire 8?"}, "wording not read"),
        ({"question": Q + "at or above $102,000 on November 8?"}, "wording not read"),
        ({"question": "Will the price of Ethereum be above $3,000 on November 8?"},
         "settles on BTC/USDT; the question names ETH"),
        ({"question": "Bitcoin above 102,000 on November 8, 2PM ET"},
         "title's time 14:00 ET is not the rule's 12:00"),
        ({"description": "Resolves per the Binance candle at noon."}, "cannot read"),
        ({"description": 'This market will resolve to "Yes" if any Binance 1 minute candle for BTC/USDT '
                         '12:00 in the ET timezone has a final "High" price equal to or above the price.'},
         "does not settle on the candle's final close"),
    ],
)  # fmt: skip
def test_what_cannot_be_read_is_reported_with_why(changes: dict[str, Any], phrase: str) -> None:
    assert phrase in reason(btc_102k(**changes))


def test_an_hourly_rule_needs_the_hour_in_the_title() -> None:
    hourly = load("gamma_btc_above_69200_apr6_2pm.json")
    assert "gives no hour" in reason(attrs.evolve(hourly, question="Bitcoin above 69,200 on April 6?"))
    # Without its rule, the hourly title is read from its end date, which must be its hour exactly.
    bare = attrs.evolve(hourly, description="")
    found = classify(bare)
    assert isinstance(found, PriceMarket)
    assert (found.resolves_at_ns, found.source) == (utc_ns("2026-04-06T18:00:00Z"), NO_RULE)
    assert bare.end_date is not None
    off = attrs.evolve(bare, end_date=bare.end_date + dt.timedelta(hours=1))
    assert "is not the title's April 6 14:00 ET" in reason(off)


def test_a_generic_rule_text_falls_back_on_the_end_date_only_on_the_titles_date() -> None:
    """The bundled sample's market: "Will Bitcoin be above $120,000 on December 31?", a generic
    description, an end date 40 days after the sample starts: not its title's date."""
    q = "Will Bitcoin be above $120,000 on December 31?"
    generic = 'This market will resolve to "Yes" if the answer to "x" is yes by its end date.'
    off = btc_102k(question=q, description=generic, end_date=dt.datetime(2027, 1, 3, tzinfo=dt.UTC))
    assert "is not on the title's date (December 31, 2026-12-31)" in reason(off)
    on = classify(attrs.evolve(off, end_date=dt.datetime(2026, 12, 31, 17, tzinfo=dt.UTC)))
    assert isinstance(on, PriceMarket)
    assert (on.low, on.resolves_at_ns, on.source) == (
        Decimal(120000),
        utc_ns("2026-12-31T17:00:00Z"),
        NO_RULE,
    )


@pytest.mark.parametrize(
    ("question", "low"),
    [
        ("Will the price of Bitcoin be above $100k on November 8?", "100000"),
        ("Will the price of Bitcoin be above $1.5m on November 8?", "1500000"),
        ("Will the price of XRP be above $2.35 on November 8?", "2.35"),
        ("will the price of bitcoin be ABOVE $102,000 on nov 8", "102000"),
        ("Will  the price of Bitcoin be above  $102,000 on November 8th?", "102000"),
    ],
)
def test_amount_and_wording_variants(question: str, low: str) -> None:
    description = "" if "XRP" in question else None
    changes: dict[str, Any] = {"question": question}
    if description is not None:
        changes["description"] = description
    found = classify(btc_102k(**changes))
    assert isinstance(found, PriceMarket), found
    assert found.low == Decimal(low)


# --------------------------------------------------------------------------- generated texts

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]  # fmt: skip
_ABBR = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _money(value: Decimal, dollar: bool) -> str:
    whole, _, frac = f"{value:f}".partition(".")
    text = f"{int(whole):,}" + (f".{frac}" if frac else "")
    return ("$" if dollar else "") + text


strikes = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999999"), places=2).map(
    lambda d: d.quantize(Decimal(1)) if d == d.to_integral_value() else d
)


@st.composite
def questions(draw: st.DrawFn) -> tuple[str, str, PriceCondition, Decimal | None, Decimal | None, dt.date]:
    asset = draw(st.sampled_from(sorted(ASSETS)))
    word = draw(st.sampled_from(ASSETS[asset]))
    word = draw(st.sampled_from([word, word.upper(), word.capitalize()]))
    day = draw(st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2030, 12, 31)))
    month = draw(st.sampled_from([_MONTHS[day.month - 1], _ABBR[day.month - 1]]))
    kind = draw(st.sampled_from(["above", "greater than", "below", "less than", "between"]))
    a = draw(strikes)
    dollar = draw(st.booleans())
    prefix = draw(st.sampled_from(["Will the price of ", "Will "]))
    if kind == "between":
        b = a + draw(strikes)
        cond, low, high = PriceCondition.BETWEEN, a, b
        middle = f"between {_money(a, dollar)} and {_money(b, dollar)}"
    else:
        cond = PriceCondition.ABOVE if kind in ("above", "greater than") else PriceCondition.BELOW
        low, high = (a, None) if cond is PriceCondition.ABOVE else (None, a)  # type: ignore[assignment]
        middle = f"{kind} {_money(a, dollar)}"
    return f"{prefix}{word} be {middle} on {month} {day.day}?", asset, cond, low, high, day


@given(questions())
def test_generated_questions_read_back(
    case: tuple[str, str, PriceCondition, Decimal | None, Decimal | None, dt.date],
) -> None:
    question, asset, cond, low, high, day = case
    # End date 16:30Z on the day: noon ET is 16:00Z or 17:00Z, either way the same day.
    end = dt.datetime(day.year, day.month, day.day, 16, 30, tzinfo=dt.UTC)
    market = CatalogMarket(
        venue="polymarket", slug="generated", question=question, condition_id="0x01",
        tokens=(OutcomeToken("Yes", "11"), OutcomeToken("No", "22")), active=True, closed=False,
        end_date=end, description="",
    )  # fmt: skip
    found = classify(market)
    assert isinstance(found, PriceMarket), (question, found)
    assert (found.underlying, found.condition, found.low, found.high) == (asset, cond, low, high)
    assert found.resolves_at_ns == utc_ns(end.isoformat())
    assert (found.yes_token, found.no_token) == ("11", "22")
    # With the Binance noon rule (the asset's own pair): the 12:00 ET candle of that day.
    rule = (
        f'Binance 1 minute candle for {asset}/USDT 12:00 in the ET timezone (noon) has a final "Close" price'
    )
    ruled = classify(attrs.evolve(market, description=rule))
    assert isinstance(ruled, PriceMarket)
    offset_h = 4 if _in_dst(day) else 5
    noon = dt.datetime(day.year, day.month, day.day, 12 + offset_h, tzinfo=dt.UTC)
    assert ruled.resolves_at_ns == utc_ns(noon.isoformat()) + 59_999_000_000


def _in_dst(day: dt.date) -> bool:
    """US Eastern daylight time at noon (Energy Policy Act of 2005): from the second Sunday of
    March to the first Sunday of November. Written out here, not asked of zoneinfo."""

    def sunday(year: int, month: int, nth: int) -> dt.date:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(6 - first.weekday()) % 7 + 7 * (nth - 1))

    return sunday(day.year, 3, 2) <= day < sunday(day.year, 11, 1)


@given(st.text(max_size=120))
def test_any_question_text_is_read_reported_or_passed_over(text: str) -> None:
    market = attrs.evolve(btc_102k(), question=text)
    found = classify(market)
    assert found is None or isinstance(found, PriceMarket | Unrecognized)
    if isinstance(found, Unrecognized):
        assert found.reason and "\n" not in found.reason


# --------------------------------------------------------------------------- hostile amounts


@pytest.mark.parametrize(
    ("question", "phrase"),
    [
        # 29+ digits: Decimal.quantize raised InvalidOperation out of classify (and price_markets).
        (Q + "above $" + "9" * 40 + " on November 8?", "significant digits"),
        (Q + "above $" + "9" * 29 + " on November 8?", "significant digits"),
        # 19..28 digits were read, 29-digit products silently rounded: refused above 18.
        (Q + "above $" + "1" * 19 + " on November 8?", "significant digits"),
        (Q + "above $" + "1" * 19 + "k on November 8?", "significant digits"),
        # Not ASCII digits: refused, not read as 100,000 / the 10th.
        (Q + "above $\u0661\u0660\u0660,\u0660\u0660\u0660 on November 8?", "wording not read"),
        (Q + "above $102,000 on November \uff11\uff10?", "wording not read"),
        # A thousands separator or a decimal point? Not guessed.
        (Q + "above $96.000 on November 8?", "ambiguous"),
        (Q + "above 96000m on November 8?", "k/m suffix but no '$'"),
    ],
)
def test_absurd_or_ambiguous_amounts_are_reported_not_raised(question: str, phrase: str) -> None:
    assert phrase in reason(btc_102k(question=question))


def test_amounts_near_the_limits_are_still_read() -> None:
    for question, low in [
        (Q + "above $" + "1" * 18 + " on November 8?", "1" * 18),
        (Q + "above $0.000000000000000001 on November 8?", "0.000000000000000001"),
        (Q + "above $96.0 on November 8?", "96.0"),
        (Q + "above $0.555 on November 8?", "0.555"),
    ]:
        found = classify(btc_102k(question=question))
        assert isinstance(found, PriceMarket), (question, found)
        assert found.low == Decimal(low)


def test_one_hostile_market_does_not_stop_the_others_being_read() -> None:
    from tradingd.engine.venue import sort_price_markets

    hostile = btc_102k(question=Q + "above $" + "9" * 40 + " on November 8?", slug="hostile")
    good = btc_102k()
    read, unread = sort_price_markets([hostile, good], classify, "BTC")
    assert [m.market.slug for m in read] == [good.slug]
    assert [u.market.slug for u in unread] == ["hostile"]

    def raising(market: CatalogMarket) -> PriceMarket | Unrecognized | None:
        if market.slug == "hostile":
            raise RuntimeError("boom\nsecond line")
        return classify(market)

    read, unread = sort_price_markets([hostile, good], raising, "BTC")
    assert [m.market.slug for m in read] == [good.slug]
    assert [u.reason for u in unread] == ["could not be read (RuntimeError: boom second line)"]
