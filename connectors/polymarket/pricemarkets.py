"""Polymarket's crypto price markets read from their text: `recognize(market)` -> `PriceMarket` or
`Unrecognized` (engine/venue/pricemarket.py), never a guess.

What Polymarket lists (real texts: tests/fixtures/polymarket/price_markets/README.md):

- ladders of binary markets, one per strike, in an event "Bitcoin above ___ on November 8?"
  (slug `bitcoin-above-on-november-8`): "Will the price of Bitcoin be above $102,000 on
  November 8?" (slug `bitcoin-above-102k-on-november-8`);
- range ladders, "Bitcoin price on March 3?": "Will the price of Bitcoin be between $66,000 and
  $68,000 on March 3?", with open ends "... be less than $56,000 on June 24?" and "... be greater
  than $74,000 on June 24?";
- the same for Ethereum, Solana, XRP...; older single markets "Will Bitcoin be above $120,000 on
  December 31?"; hourly ones, "Bitcoin above 69,200 on April 6, 2PM ET".

Their description states the rule, e.g. 'This market will resolve to "Yes" if the Binance 1 minute
candle for BTC/USDT 12:00 in the ET timezone (noon) on the date specified in the title has a final
"Close" price higher than the price specified in the title.' That is read as: the settling price
is the close of Binance's BTC/USDT one-minute candle that opens at 12:00 America/New_York on the
title's date. A Binance kline is identified by its open time and closes at open + 59.999 s (its
`closeTime`); its close is the last trade before then. `resolves_at_ns` is that close instant,
12:00:59.999 ET (16:00:59.999Z under EDT, 17:00:59.999Z under EST), the instant the settling price
is taken; Gamma's `endDate` says 12:00:00 ET, a minute earlier. The title has no year: it is the
year that puts the title's date nearest `end_date`, and the instant read must then lie within a day
of `end_date`, or the market is reported (a title and an end date that disagree are not guessed
between). A year in the title ("on December 31, 2026") is used as written.

Hourly markets ("Bitcoin above 69,200 on April 6, 2PM ET") state: 'if the "Close" price for the
BTC/USDT 1 hour candle that ends on the time and date specified in the title is higher than the
price specified in the title', the exchange named where the description gives the resolution
source. That candle opens an hour before the title's time and closes a millisecond before it
(13:59:59.999 ET for "2PM ET"): `resolves_at_ns`. A daily rule ("12:00 in the ET timezone")
under a title that names another hour is reported, as is an hourly rule under a title without one.

A description that states no rule at all (no candle, exchange, oracle or "resolution source") is
read from `end_date`, and says so in `source` ("end_date; rule not stated"): only when the question
is otherwise fully read and `end_date` falls on the title's date (within a day; an hourly title's
hour must match `end_date` to the minute). A description that states a rule this reader cannot read
is reported, not replaced by `end_date`.

Reported (`Unrecognized`, one line): Up or Down markets (the price at the end against the start:
no strike); touch markets ("reach", "hit", "dip to", "What price will Bitcoin hit...": they pay when
the price trades at the level at any time, a barrier, not a digital at one instant); wording this
reader does not know; outcomes other than Yes/No, or not two tokens; a strike that is not a
positive finite number, a range whose low is not below its high; a date that does not exist or
cannot be placed in a year; a rule whose pair is another asset's, or whose hour is not the
title's. Markets that do not look like crypto price questions (no crypto asset named, or no price
in the question) are not reported at all (`classify` answers None).

Amounts: "$102,000", "$1,900", "$0.55", "69,200" (the hourly titles drop the "$", so a plain
number is read without one), and "$100k" / "$1.5m" (k: thousand, m: million: the short forms
markets' slugs use, accepted in a question too, only after a "$": "96000m" is refused). ASCII
digits only. Refused, not guessed: "$96.000" (one to three digits, a dot, exactly three digits: a
thousands separator in much of the world), more than 18 significant digits.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from decimal import Decimal
from typing import Final

import attrs

from tradingd.engine.venue import CatalogMarket, PriceCondition, PriceMarket, Unrecognized

__all__ = ["ASSETS", "classify", "looks_like_price_market", "recognize"]

# The assets read, by the words Polymarket's questions use for them (case ignored).
ASSETS: Final[dict[str, tuple[str, ...]]] = {
    "BTC": ("bitcoin", "btc"),
    "ETH": ("ethereum", "eth", "ether"),
    "SOL": ("solana", "sol"),
    "XRP": ("xrp", "ripple"),
    "DOGE": ("dogecoin", "doge"),
    "BNB": ("bnb",),
}
_ASSET_OF: Final = {word: asset for asset, words in ASSETS.items() for word in words}
_ASSET_WORDS: Final = "|".join(sorted(_ASSET_OF, key=len, reverse=True))
_ASSET_RE: Final = re.compile(rf"\b({_ASSET_WORDS})\b", re.IGNORECASE)

_MONTHS: Final = {
    name: i + 1
    for i, names in enumerate(
        (
            ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",),
            ("june", "jun"), ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"),
            ("october", "oct"), ("november", "nov"), ("december", "dec"),
        )
    )
    for name in names
}  # fmt: skip
_MONTH_WORDS: Final = "|".join(sorted(_MONTHS, key=len, reverse=True))

# ASCII digits only ("[0-9]": `\d` would take Arabic-Indic or fullwidth digits); at most 40 digits
# either side of the point here (a clear refusal of longer amounts is `_amount`'s, see _MAX_DIGITS).
_AMOUNT: Final = r"\$?\s?(?:[0-9]{1,3}(?:,[0-9]{3}){1,13}|[0-9]{1,40})(?:\.[0-9]{1,40})?[km]?"
# More significant digits than any price needs (and well inside Decimal's 28): refused, not rounded.
_MAX_DIGITS: Final = 18
# "96.000": a dot after one to three digits, then exactly three: a thousands separator in much of
# the world ("96.000" = 96,000), a decimal point here. Not guessed between: refused.
_AMBIGUOUS: Final = re.compile(r"^[1-9][0-9]{0,2}\.[0-9]{3}$")
_CONDITIONS: Final = {
    "above": PriceCondition.ABOVE,
    "greater than": PriceCondition.ABOVE,
    "higher than": PriceCondition.ABOVE,
    "below": PriceCondition.BELOW,
    "less than": PriceCondition.BELOW,
    "lower than": PriceCondition.BELOW,
    "between": PriceCondition.BETWEEN,
}
_CONDITION_WORDS: Final = "|".join(c.replace(" ", r"\s+") for c in _CONDITIONS)
_QUESTION: Final = re.compile(
    rf"^(?:will\s+)?(?:the\s+price\s+of\s+)?(?P<asset>{_ASSET_WORDS})\s+(?:be\s+)?"
    rf"(?P<cmp>{_CONDITION_WORDS})\s+"
    rf"(?P<a>{_AMOUNT})(?:\s+and\s+(?P<b>{_AMOUNT}))?\s+on\s+"
    rf"(?P<month>{_MONTH_WORDS})\.?\s+(?P<day>[0-9]{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<year>[0-9]{{4}}))?"
    r"(?:,?\s+(?P<hour>[0-9]{1,2})(?::(?P<minute>[0-9]{2}))?\s*(?P<ampm>[ap])\.?m\.?\s+et)?\s*\??$",
    re.IGNORECASE,
)

# Looks like a price question: names an amount of money, a thousands-grouped number or a number
# after "above"/"below"/..., or the price, or is an Up or Down market. Only these are reported
# when they cannot be read.
_PRICE_LIKE: Final = re.compile(
    rf"\$\s?\d|\b\d{{1,3}}(?:,\d{{3}})+\b|\bup\s+or\s+down\b|\bprice\b|\b(?:{_CONDITION_WORDS})\s+\d",
    re.IGNORECASE,
)
_UP_OR_DOWN: Final = re.compile(r"\bup\s+or\s+down\b", re.IGNORECASE)
_TOUCH: Final = re.compile(
    r"\b(?:reach(?:es)?|hit|hits|touch(?:es)?|dip(?:s)?\s+to|drop(?:s)?\s+to|fall(?:s)?\s+to|"
    r"all[-\s]time\s+high)\b|^what\s+price\s+will",
    re.IGNORECASE,
)

# The rule of the description: "Binance 1 minute candle for BTC/USDT 12:00 in the ET timezone".
_RULE: Final = re.compile(
    r"\b(?P<exchange>binance|coinbase|kraken|okx|bybit)\s+1\s+minute\s+candle\s+for\s+"
    r"(?P<base>[A-Z0-9]{2,10})/(?P<quote>[A-Z]{2,6})\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})"
    r"(?:\s*(?P<ampm>[ap])\.?m\.?)?\s+in\s+the\s+ET\s+timezone",
    re.IGNORECASE,
)
# The hourly markets' rule: 'if the "Close" price for the BTC/USDT 1 hour candle that ends on the
# time and date specified in the title is higher than the price specified in the title', the
# exchange named in the sentence on the resolution source.
_HOURLY_RULE: Final = re.compile(
    r"close\W{0,3}price\s+for\s+the\s+(?P<base>[A-Z0-9]{2,10})/(?P<quote>[A-Z]{2,6})\s+1\s+hour\s+candle\s+"
    r"that\s+ends\s+on\s+the\s+time\s+and\s+date\s+specified\s+in\s+the\s+title",
    re.IGNORECASE,
)
_SOURCE_EXCHANGE: Final = re.compile(
    r"resolution\s+source\s+for\s+this\s+market\s+is\s+(?:information\s+from\s+)?"
    r"(?P<exchange>binance|coinbase|kraken|okx|bybit)\b",
    re.IGNORECASE,
)
_FINAL_CLOSE: Final = re.compile(r"final\W{0,3}close\W{0,3}price", re.IGNORECASE)
# Words of a description that states some settlement rule (read or not).
_STATES_A_RULE: Final = re.compile(
    r"\bcandle|\bresolution\s+source\b|\baccording\s+to\b|\bbinance\b|\bcoinbase\b|\bchainlink\b|"
    r"\bpyth\b|\bkraken\b|\bclose\s+price\b|\"close\"",
    re.IGNORECASE,
)

_CANDLE_NS: Final = 59_999_000_000  # a 1m kline's closeTime is its open time + 59.999 s
_DAY_NS: Final = 86_400_000_000_000
_MINUTE_NS: Final = 60_000_000_000

try:
    _ET: zoneinfo.ZoneInfo | None = zoneinfo.ZoneInfo("America/New_York")
    _NO_ZONES = ""
except zoneinfo.ZoneInfoNotFoundError:  # pragma: no cover - an install without a time zone database
    _ET = None
    _NO_ZONES = "no time zone database for America/New_York (install the tzdata package)"


@attrs.frozen
class _Rule:
    """A settlement rule read: a one-minute candle's close at `hour`:`minute` ET (daily markets),
    or, `hourly`, the close of the one-hour candle ending at the title's time."""

    exchange: str
    pair: str
    base: str
    hour: int = 0
    minute: int = 0
    hourly: bool = False


class _Refused(Exception):
    """Why a market cannot be read (its one-line reason)."""


def _text(value: str) -> str:
    return " ".join(value.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"').split())


def _asset(text: str) -> str | None:
    found = _ASSET_RE.search(text)
    return None if found is None else _ASSET_OF[found.group(1).casefold()]


def looks_like_price_market(market: CatalogMarket) -> bool:
    """Whether the question names a crypto asset and a price (or is an Up or Down market): the
    markets `classify` reports when it cannot read them."""
    question = _text(market.question)
    return _asset(question) is not None and _PRICE_LIKE.search(question) is not None


def _amount(text: str) -> Decimal:
    said = text.strip()
    dollar = "$" in text
    raw = text.replace("$", "").replace(",", "").replace(" ", "")
    scale = 1
    if raw[-1:].casefold() == "k":
        raw, scale = raw[:-1], 1_000
    elif raw[-1:].casefold() == "m":
        raw, scale = raw[:-1], 1_000_000
    if scale != 1 and not dollar:
        # "96000m" is no way of writing an amount of money; only "$100k" / "$1.5m" are read.
        raise _Refused(f"the amount {said!r} has a k/m suffix but no '$'")
    if _AMBIGUOUS.match(raw):
        raise _Refused(f"the amount {said!r} is ambiguous (a decimal point or a thousands separator?)")
    if sum(c.isdigit() for c in raw.lstrip("0.")) > _MAX_DIGITS:
        raise _Refused(f"the amount {said[:30]!r} has more than {_MAX_DIGITS} significant digits")
    try:
        value = Decimal(raw) * scale
        if not value.is_finite() or value <= 0:
            raise _Refused(f"the strike {said} is not a positive finite number")
        return value.quantize(Decimal(1)) if value == value.to_integral_value() else value
    except ArithmeticError:  # InvalidOperation and the rest of decimal's signals
        raise _Refused(f"the amount {said[:30]!r} is not a number this reader takes") from None


def _hour24(hour: int, minute: int, ampm: str | None) -> tuple[int, int]:
    if ampm:
        if not 1 <= hour <= 12:
            raise _Refused(f"the time {hour}:{minute:02d} {ampm.upper()}M is not a clock time")
        hour = hour % 12 + (12 if ampm.casefold() == "p" else 0)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise _Refused(f"the time {hour}:{minute:02d} is not a clock time")
    return hour, minute


def _rule(description: str) -> _Rule | None:
    """The settlement rule the description states, None when it states none; `_Refused` when it
    states one that cannot be read."""
    found = _RULE.search(description)
    hourly = _HOURLY_RULE.search(description) if found is None else None
    if hourly is not None:
        exchange = _SOURCE_EXCHANGE.search(description)
        if exchange is None:
            raise _Refused("the description's hourly candle rule names no exchange")
        base = hourly["base"].upper()
        return _Rule(exchange["exchange"].lower(), f"{base}/{hourly['quote'].upper()}", base, hourly=True)
    if found is None:
        if _STATES_A_RULE.search(description):
            raise _Refused("the description states a settlement rule this reader cannot read")
        return None
    if not _FINAL_CLOSE.search(description[found.end() :]):
        raise _Refused("the description's candle rule does not settle on the candle's final close")
    hour, minute = _hour24(int(found["hour"]), int(found["minute"]), found["ampm"])
    base = found["base"].upper()
    return _Rule(found["exchange"].lower(), f"{base}/{found['quote'].upper()}", base, hour, minute)


_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _ns(when: dt.datetime) -> int:
    return (when - _EPOCH) // dt.timedelta(microseconds=1) * 1_000


def _day(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _date(month: int, day: int, year: int | None, end: dt.datetime | None, said: str) -> dt.date:
    """The title's date: its year as written, else the year that puts it nearest `end` (ET)."""
    if year is not None:
        found = _day(year, month, day)
        if found is None:
            raise _Refused(f"the date {said} does not exist")
        return found
    if end is None:
        raise _Refused(f"the title's date ({said}) has no year and the market no end date")
    assert _ET is not None
    near = end.astimezone(_ET).date()
    candidates = [d for y in (near.year - 1, near.year, near.year + 1) if (d := _day(y, month, day))]
    if not candidates:
        raise _Refused(f"the date {said} does not exist")
    return min(candidates, key=lambda d: abs((d - near).days))


def _et_ns(day: dt.date, hour: int, minute: int) -> int:
    assert _ET is not None
    return _ns(dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=_ET))


def _say_ns(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read(market: CatalogMarket, question: str, underlying: str) -> PriceMarket:
    if _UP_OR_DOWN.search(question) or {o.casefold() for o in market.outcomes} == {"up", "down"}:
        raise _Refused("an Up or Down market (the price at its end against its start), not a strike market")
    description = _text(market.description)
    if _TOUCH.search(question):
        raise _Refused(
            "a touch (barrier) market: it pays if the price trades at the level at any time, "
            "not at one instant"
        )
    if len(market.tokens) != 2:
        raise _Refused(f"{len(market.tokens)} outcome token(s): a price market needs two, Yes and No")
    if sorted(o.casefold() for o in market.outcomes) != ["no", "yes"]:
        raise _Refused(f"outcomes {' / '.join(market.outcomes)}, not Yes / No")
    found = _QUESTION.match(question)
    if found is None:
        raise _Refused(
            "wording not read: expected 'Will the price of <asset> be above|below|between $X [and $Y] "
            "on <Month> <day>?'"
        )
    if _ASSET_OF[found["asset"].casefold()] != underlying:
        raise _Refused(f"the question names two assets ({underlying} first, then {found['asset']})")
    condition = _CONDITIONS[" ".join(found["cmp"].casefold().split())]
    low: Decimal | None = _amount(found["a"])
    high = None if found["b"] is None else _amount(found["b"])
    if condition is PriceCondition.BETWEEN:
        if high is None:
            raise _Refused("a 'between' question with one amount")
        if low is None or not low < high:
            raise _Refused(f"the range's low {low} is not below its high {high}")
    elif high is not None:
        raise _Refused(f"two amounts for an '{found['cmp']}' question")
    elif condition is PriceCondition.BELOW:
        low, high = None, low
    said = f"{found['month']} {found['day']}" + (f", {found['year']}" if found["year"] else "")
    day = _date(
        _MONTHS[found["month"].casefold()], int(found["day"]), _int(found["year"]), market.end_date, said
    )
    title_time = (
        None
        if found["hour"] is None
        else _hour24(int(found["hour"]), int(found["minute"] or 0), found["ampm"])
    )
    end_ns = None if market.end_date is None else _ns(market.end_date)
    rule = _rule(description)
    if rule is not None:
        if rule.base != underlying:
            raise _Refused(f"the description settles on {rule.pair}; the question names {underlying}")
        if rule.hourly:
            if title_time is None:
                raise _Refused("an hourly candle rule, but the title gives no hour")
            # The 1h candle ending at the title's time closes a millisecond before it.
            resolves = _et_ns(day, *title_time) - 1_000_000
            ending = f"{title_time[0]:02d}:{title_time[1]:02d}"
            source = f"{rule.exchange} {rule.pair} 1h close, candle ending {ending} ET"
        else:
            if title_time is not None and title_time != (rule.hour, rule.minute):
                raise _Refused(
                    f"the title's time {title_time[0]:02d}:{title_time[1]:02d} ET is not the rule's "
                    f"{rule.hour:02d}:{rule.minute:02d} ET"
                )
            resolves = _et_ns(day, rule.hour, rule.minute) + _CANDLE_NS
            source = f"{rule.exchange} {rule.pair} 1m close {rule.hour:02d}:{rule.minute:02d} ET"
        if end_ns is not None and abs(resolves - end_ns) > _DAY_NS:
            raise _Refused(
                f"the title's date ({said}, {_say_ns(resolves)}) is {abs(resolves - end_ns) / _DAY_NS:.1f} "
                f"days from end_date {_say_ns(end_ns)}"
            )
    else:
        if end_ns is None or market.end_date is None:
            raise _Refused("the description states no settlement rule and the market has no end date")
        if title_time is not None:
            expected = _et_ns(day, *title_time)
            if abs(expected - end_ns) > _MINUTE_NS:
                raise _Refused(
                    f"no settlement rule stated, and end_date {_say_ns(end_ns)} is not the title's "
                    f"{said} {title_time[0]:02d}:{title_time[1]:02d} ET ({_say_ns(expected)})"
                )
        else:
            assert _ET is not None
            ends_on = market.end_date.astimezone(_ET).date()
            if abs((ends_on - day).days) > 1:
                raise _Refused(
                    f"no settlement rule stated, and end_date {_say_ns(end_ns)} is not on the title's date "
                    f"({said}, {day.isoformat()})"
                )
        resolves = end_ns
        source = "end_date; rule not stated"
    return PriceMarket(
        market=market,
        underlying=underlying,
        condition=condition,
        low=low,
        high=high,
        resolves_at_ns=resolves,
        source=source,
        yes_token=market.token_id("Yes"),
        no_token=market.token_id("No"),
    )


def _int(text: str | None) -> int | None:
    return None if text is None else int(text)


def classify(market: CatalogMarket) -> PriceMarket | Unrecognized | None:
    """`market` read as a price market, an `Unrecognized` saying why it cannot be (it looks like
    one), or None: it does not look like a crypto price question (not reported)."""
    question = _text(market.question)
    underlying = _asset(question)
    if underlying is None or _PRICE_LIKE.search(question) is None:
        return None
    if _ET is None:  # pragma: no cover - see _NO_ZONES
        return Unrecognized(market, _NO_ZONES, underlying)
    try:
        return _read(market, question, underlying)
    except _Refused as exc:
        return Unrecognized(market, str(exc), underlying)
    except Exception as exc:  # one hostile text must not stop the others being read
        said = " ".join(str(exc).split())[:120]
        return Unrecognized(market, f"could not be read ({type(exc).__name__}: {said})", underlying)


def recognize(market: CatalogMarket) -> PriceMarket | Unrecognized:
    """`market` read as a price market, or `Unrecognized` with the one-line reason (also for a
    market that is no crypto price question at all: "not a crypto price question")."""
    found = classify(market)
    if found is None:
        return Unrecognized(market, "not a crypto price question", _asset(_text(market.question)))
    return found
