"""The checks every connector's settings share (engine.venue.settings): a number that is not one
(NaN) or has no end (an infinity) is refused by name, like one below its minimum. The settings
classes are built in code too (tests, embedding programs), not only from a TOML file the config
loader reads, so the check cannot rely on the loader."""

from __future__ import annotations

import math
from decimal import Decimal

import attrs
import pytest

from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.connectors.derive.settings import DeriveSettings
from tradingd.connectors.polymarket.settings import PolymarketSettings
from tradingd.engine.venue import at_least

NOT_NUMBERS = [math.nan, math.inf, -math.inf]


@attrs.define
class _One:
    timeout_s: float = attrs.field(default=1.0, validator=at_least(0.1))


@pytest.mark.parametrize("value", NOT_NUMBERS)
def test_at_least_refuses_nan_and_infinities_naming_the_field(value: float) -> None:
    with pytest.raises(ValueError, match=r"^timeout_s: expected at least 0\.1 \(a finite number\), got"):
        _One(timeout_s=value)


def test_at_least_still_takes_its_minimum_and_refuses_below_it() -> None:
    assert _One(timeout_s=0.1).timeout_s == 0.1
    with pytest.raises(
        ValueError, match=r"^timeout_s: expected at least 0\.1 \(a finite number\), got 0\.05$"
    ):
        _One(timeout_s=0.05)


def _checked_fields(cls: type[attrs.AttrsInstance]) -> list[str]:
    """The fields checked by `at_least` (its closure's qualified name says so)."""
    return [
        f.name for f in attrs.fields(cls) if getattr(f.validator, "__qualname__", "").startswith("at_least.")
    ]


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (cls, name)
        for cls in (PolymarketSettings, DeribitSettings, DeriveSettings)
        for name in _checked_fields(cls)
    ],
)
@pytest.mark.parametrize("value", NOT_NUMBERS)
def test_every_numeric_venue_setting_refuses_nan_and_infinities(
    cls: type[attrs.AttrsInstance], name: str, value: float
) -> None:
    with pytest.raises(ValueError, match=rf"^{name}: expected at least \S+ \(a finite number\), got"):
        cls(**{name: value})


def test_the_review_case_market_stale_after_nan() -> None:
    with pytest.raises(ValueError, match="market_stale_after_s"):
        PolymarketSettings(market_stale_after_s=math.nan)


@pytest.mark.parametrize("value", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_derives_decimal_limits_refuse_what_is_not_finite_by_name(value: str) -> None:
    """A `max_fee_margin` of Infinity would sign an unbounded `max_fee`; NaN compared as no
    bound (or raised `InvalidOperation` with no name)."""
    with pytest.raises(ValueError, match="max_fee_margin"):
        DeriveSettings(max_fee_margin=Decimal(value))
    with pytest.raises(ValueError, match="market_slippage"):
        DeriveSettings(market_slippage=Decimal(value))
