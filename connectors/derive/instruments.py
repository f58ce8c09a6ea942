"""Derive instrument definitions (VENUES.md §3.2) as engine `Instrument`s, plus what signing needs.

`public/get_instruments` (one call per currency and `instrument_type`: `option`, `perp`, `erc20`)
answers with items like the captured `tests/fixtures/derive/common/http_get_instruments_eth_all.json`.
`parse_instrument(item)` turns one item into two things:

- an engine `Instrument` (venue-neutral: tick size, size grid, expiry, strike, right, USDC quote),
  which the engine validates orders against and which `engine.model.filter.InstrumentFilter` selects;
- a `DeriveInstrumentInfo`: the Derive-only facts the engine has no field for and must not grow
  one for, chiefly the `base_asset_address` / `base_asset_sub_id` pair that every signed order
  carries (§3.6 "Action signing") and the per-order `base_fee`. They live in a `DeriveInstruments`
  side table keyed by instrument name, which the decoder fills from the same answers that teach
  the engine registry (live or replayed), and which the execution client reads when it signs.
  Keeping them beside the registry rather than in it keeps `engine/` free of any venue's fields.

Units (§3.2): amounts are in the base currency (1 = one ETH of options or perpetual), prices and
fees in USDC; options are cash-settled in USDC, so `settle` is USDC for every Derive instrument.

Sizes: Derive has `minimum_amount` and `amount_step`; the engine's `size_step` is the step and
`min_size` the smallest multiple of the step at or above the minimum, so the engine accepts
exactly the sizes Derive does (0.15 with minimum 0.1 and step 0.01, for one).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any, Literal

import attrs
import msgspec

from tradingd.engine.venue import Instrument, InstrumentKind, OptionRight, OrderRejected

__all__ = [
    "FIXED_POINT_MAX",
    "FIXED_POINT_RESOLUTION",
    "QUOTE",
    "VENUE",
    "DeriveInstrumentInfo",
    "DeriveInstruments",
    "InstrumentType",
    "ParsedName",
    "fixed_point",
    "format_strike",
    "instruments_params",
    "is_instrument_item",
    "option_name",
    "option_sub_id",
    "parse_instrument",
    "parse_instrument_name",
]

VENUE = "derive"
QUOTE = "USDC"

InstrumentType = Literal["option", "perp", "erc20"]

_KINDS: dict[str, InstrumentKind] = {
    "option": InstrumentKind.OPTION,
    "perp": InstrumentKind.PERPETUAL,
    "erc20": InstrumentKind.SPOT,
}
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_OPTION_NAME = re.compile(r"([A-Za-z0-9]+)-(\d{8})-(\d+(?:_\d+)?)-([CP])")
# Keys every `get_instruments` item has (§3.2); an object with all of them is an instrument.
_INSTRUMENT_KEYS = ("instrument_name", "instrument_type", "tick_size", "minimum_amount", "amount_step")
# Options settle at 08:00 UTC on their date unless `option_details.expiry` says otherwise (§3.2).
_SETTLEMENT_HOUR = 8
# What Derive's numbers can be (§3.6 "Action signing"): its contracts hold every price, amount
# and fee as an int256 with 18 decimals, so none reaches 2**255 / 1e18 (about 5.79e58) and none
# but zero is below 1e-18. A tick or step of at least 1e-18 also keeps price / tick a finite float.
FIXED_POINT_MAX = Decimal("5.7e58")
FIXED_POINT_RESOLUTION = Decimal("1e-18")
# An expiry (unix s) the engine's int64 nanoseconds can hold.
_MAX_EXPIRY_S = (2**63 - 1) // 1_000_000_000


# ------------------------------------------------------------------------------------- names


@attrs.frozen
class ParsedName:
    """What an instrument name says (§3.2 naming table). `expiry_s` is the date's default
    settlement time (08:00 UTC), which `option_details.expiry` may refine."""

    base: str
    kind: InstrumentKind
    quote: str | None = None
    expiry_s: int | None = None
    strike: Decimal | None = None
    right: OptionRight | None = None


def format_strike(strike: Decimal | int | str) -> str:
    """A strike as Derive writes it in names: `3500`, or `2400_5` for 2400.5 (§3.2)."""
    k = Decimal(strike)
    if not k.is_finite() or k <= 0:
        raise ValueError(f"a strike must be positive, got {strike!r}")
    text = format(k.normalize(), "f")
    return text.replace(".", "_")


def option_name(currency: str, expiry: dt.date, strike: Decimal | int | str, right: OptionRight) -> str:
    """`ETH-20260627-3500-C`: the option naming of §3.2."""
    return f"{currency}-{expiry:%Y%m%d}-{format_strike(strike)}-{'C' if right is OptionRight.CALL else 'P'}"


def parse_instrument_name(name: str) -> ParsedName:
    """Parse `ETH-20260627-3500-C`, `ETH-20260627-2400_5-P`, `ETH-PERP` or `ETH-USDC`. Raises
    ValueError for anything else (a malformed date, strike or suffix included)."""
    m = _OPTION_NAME.fullmatch(name)
    if m is not None:
        base, date_s, strike_s, cp = m.groups()
        try:
            day = dt.datetime.strptime(date_s, "%Y%m%d").date()
        except ValueError:
            raise ValueError(f"not a Derive instrument name (bad date): {name!r}") from None
        expiry_s = calendar.timegm((day.year, day.month, day.day, _SETTLEMENT_HOUR, 0, 0))
        strike = Decimal(strike_s.replace("_", "."))
        if strike <= 0:
            raise ValueError(f"not a Derive instrument name (strike must be positive): {name!r}")
        right = OptionRight.CALL if cp == "C" else OptionRight.PUT
        return ParsedName(base, InstrumentKind.OPTION, QUOTE, expiry_s, strike, right)
    parts = name.split("-")
    if len(parts) == 2 and all(p.isalnum() for p in parts):
        base, tail = parts
        if tail == "PERP":
            return ParsedName(base, InstrumentKind.PERPETUAL, QUOTE)
        return ParsedName(base, InstrumentKind.SPOT, tail)
    raise ValueError(f"not a Derive instrument name: {name!r}")


def option_sub_id(expiry_s: int, strike: Decimal | int | str, *, call: bool) -> int:
    """The `base_asset_sub_id` of an option, as Lyra v2's `OptionEncoding.toSubId` packs it:
    [1 bit is_call][63 bits strike with 8 decimals][32 bits expiry]. VENUES.md §3.2 marks the
    encoding [U]; the §3.6 signing vector's sub id (2**95: a call, expiry and strike 0) fits it.
    Used to make synthetic instruments; a live instrument's sub id always comes from the venue."""
    k = Decimal(strike) * 10**8
    if k != k.to_integral_value() or k < 0:
        raise ValueError(f"strike {strike} has more than 8 decimals")
    if not 0 <= expiry_s < 1 << 32 or int(k) >= 1 << 63:
        raise ValueError(f"expiry {expiry_s} or strike {strike} does not fit the option sub id")
    return expiry_s | int(k) << 32 | int(call) << 95


# ------------------------------------------------------------------------------- definitions

# Decimal fields arrive as strings; msgspec turns them into exact Decimals (strict=False also
# lets a plain JSON number through). Unknown fields are ignored: the venue adds them freely.


class _OptionDetails(msgspec.Struct):
    expiry: int
    strike: Decimal
    option_type: Literal["C", "P"]
    index: str | None = None
    settlement_price: Decimal | None = None


class _PerpDetails(msgspec.Struct):
    index: str | None = None


class _Item(msgspec.Struct):
    instrument_name: str
    instrument_type: str
    base_currency: str
    quote_currency: str
    tick_size: Decimal
    minimum_amount: Decimal
    maximum_amount: Decimal
    amount_step: Decimal
    base_asset_address: str
    base_asset_sub_id: int
    is_active: bool = True
    maker_fee_rate: Decimal = Decimal(0)
    taker_fee_rate: Decimal = Decimal(0)
    base_fee: Decimal = Decimal(0)
    mark_price_fee_rate_cap: Decimal | None = None
    option_details: _OptionDetails | None = None
    perp_details: _PerpDetails | None = None
    scheduled_activation: int | None = None
    scheduled_deactivation: int | None = None


@attrs.frozen
class DeriveInstrumentInfo:
    """The Derive-only facts of one instrument (module docstring): what an order signature and
    the fee schedule need beyond the engine `Instrument`."""

    name: str
    instrument_type: InstrumentType
    asset_address: str  # the `base_asset_address`, as the venue spells it
    sub_id: int  # `base_asset_sub_id`
    amount_step: Decimal
    minimum_amount: Decimal
    maximum_amount: Decimal
    base_fee: Decimal  # USDC per taker order (§3.2; the fee model's `base_fee`)
    maker_fee_rate: Decimal
    taker_fee_rate: Decimal
    mark_price_fee_rate_cap: Decimal | None = None
    index: str | None = None  # the price index, e.g. "ETH-USD"


def is_instrument_item(item: object) -> bool:
    """True for an object shaped like an item of `public/get_instruments` (§3.2)."""
    return isinstance(item, dict) and all(k in item for k in _INSTRUMENT_KEYS)


def fixed_point(value: Decimal) -> bool:
    """True for a number Derive can send: finite, and zero or between the resolution and the
    bound of its 18-decimal int256 (the constants above), whatever its sign."""
    if not value.is_finite():
        return False
    # copy_abs, not abs(): no context, so "1E+999999999" is compared instead of overflowing.
    return not value or FIXED_POINT_RESOLUTION <= value.copy_abs() < FIXED_POINT_MAX


def _positive(name: str, value: Decimal) -> Decimal:
    if not fixed_point(value) or value <= 0:
        raise ValueError(f"{name} must be positive, within the 18-decimal fixed point, got {value}")
    return value


def _number(name: str, value: Decimal | None) -> None:
    """Fees and rates may be negative (a rebate), never NaN or beyond the fixed point: a NaN
    limit is no limit, and a comparison with it raises."""
    if value is not None and not fixed_point(value):
        raise ValueError(f"{name} must be a finite 18-decimal number, got {value}")


def parse_instrument(item: Mapping[str, Any]) -> tuple[Instrument, DeriveInstrumentInfo]:
    """The engine `Instrument` and the `DeriveInstrumentInfo` of one `get_instruments` item.

    Raises ValueError naming the problem when a required field is missing or malformed, the
    type is unknown, a size or tick is not positive, or an option's name contradicts its
    `option_details` (strike or right). The exact expiry comes from `option_details.expiry`
    (unix seconds), not from the date in the name.
    """
    try:
        it = msgspec.convert(item, _Item, strict=False)
    except msgspec.ValidationError as exc:
        name = item.get("instrument_name") if isinstance(item, Mapping) else None
        raise ValueError(f"instrument {name!r}: {str(exc).replace('`', chr(39))}") from None
    name = it.instrument_name
    kind = _KINDS.get(it.instrument_type)
    if kind is None:
        raise ValueError(f"instrument {name!r}: unknown instrument_type {it.instrument_type!r}")
    tick = _positive("tick_size", it.tick_size)
    step = _positive("amount_step", it.amount_step)
    minimum = it.minimum_amount
    if not fixed_point(minimum) or minimum < 0:
        raise ValueError(f"instrument {name!r}: minimum_amount must not be negative, got {minimum}")
    maximum = _positive("maximum_amount", it.maximum_amount)  # execution checks sizes against it
    for what, number in (
        ("maker_fee_rate", it.maker_fee_rate),
        ("taker_fee_rate", it.taker_fee_rate),
        ("base_fee", it.base_fee),
        ("mark_price_fee_rate_cap", it.mark_price_fee_rate_cap),
    ):
        _number(f"instrument {name!r}: {what}", number)
    # The smallest multiple of the step at or above the minimum (module docstring).
    min_size = max(step, (minimum / step).to_integral_value(rounding="ROUND_CEILING") * step)
    if _ADDRESS.fullmatch(it.base_asset_address) is None:
        address = it.base_asset_address
        raise ValueError(f"instrument {name!r}: base_asset_address {address!r} is not an address")
    if it.base_asset_sub_id < 0 or it.base_asset_sub_id >= 1 << 256:
        raise ValueError(f"instrument {name!r}: base_asset_sub_id {it.base_asset_sub_id} is not a uint256")
    expiry_ns: int | None = None
    strike: Decimal | None = None
    right: OptionRight | None = None
    index = it.perp_details.index if it.perp_details is not None else None
    if kind is InstrumentKind.OPTION:
        od = it.option_details
        if od is None:
            raise ValueError(f"option {name!r} has no option_details")
        if not 0 < od.expiry <= _MAX_EXPIRY_S:
            raise ValueError(f"option {name!r}: expiry {od.expiry} is not a time in unix seconds")
        expiry_ns = od.expiry * 1_000_000_000
        strike = _positive("strike", od.strike)
        right = OptionRight.CALL if od.option_type == "C" else OptionRight.PUT
        index = od.index
        try:
            parsed = parse_instrument_name(name)
        except ValueError:
            parsed = None
        if (
            parsed is not None
            and parsed.kind is InstrumentKind.OPTION
            and (parsed.strike, parsed.right)
            != (
                strike,
                right,
            )
        ):
            raise ValueError(
                f"option {name!r}: the name says {parsed.strike} {parsed.right}, "
                f"option_details say {strike} {right}"
            )
    instrument = Instrument(
        venue=VENUE,
        symbol=name,
        kind=kind,
        base=it.base_currency,
        quote=it.quote_currency,
        settle=it.quote_currency,
        tick_size=tick,
        min_size=min_size,
        size_step=step,
        expiry_ns=expiry_ns,
        strike=strike,
        right=right,
        maker_fee=it.maker_fee_rate,
        taker_fee=it.taker_fee_rate,
        active=it.is_active,
    )
    info = DeriveInstrumentInfo(
        name=name,
        instrument_type=it.instrument_type,  # type: ignore[arg-type]  # checked against _KINDS above
        asset_address=it.base_asset_address,
        sub_id=it.base_asset_sub_id,
        amount_step=step,
        minimum_amount=minimum,
        maximum_amount=maximum,
        base_fee=it.base_fee,
        maker_fee_rate=it.maker_fee_rate,
        taker_fee_rate=it.taker_fee_rate,
        mark_price_fee_rate_cap=it.mark_price_fee_rate_cap,
        index=index,
    )
    return instrument, info


def instruments_params(
    currency: str, instrument_type: InstrumentType, *, expired: bool = False
) -> dict[str, Any]:
    """The params of a `public/get_instruments` call (§3.2: all three are required)."""
    if instrument_type not in _KINDS:
        raise ValueError(f"instrument_type must be one of {', '.join(_KINDS)}, got {instrument_type!r}")
    return {"currency": currency.upper(), "instrument_type": instrument_type, "expired": expired}


class DeriveInstruments:
    """The side table of `DeriveInstrumentInfo` by instrument name (module docstring)."""

    def __init__(self, infos: Iterable[DeriveInstrumentInfo] = ()) -> None:
        self._by_name: dict[str, DeriveInstrumentInfo] = {}
        for info in infos:
            self.add(info)

    def add(self, info: DeriveInstrumentInfo) -> None:
        self._by_name[info.name] = info

    def get(self, name: str) -> DeriveInstrumentInfo | None:
        return self._by_name.get(name)

    def require(self, name: str, *, client_order_id: str | None = None) -> DeriveInstrumentInfo:
        """The instrument's info, or `OrderRejected` (an order cannot be signed without it)."""
        info = self._by_name.get(name)
        if info is None:
            raise OrderRejected(
                f"no Derive definition of {name} (asset address, sub id): load its instruments first",
                venue=VENUE,
                instrument=name,
                client_order_id=client_order_id,
            )
        return info

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[DeriveInstrumentInfo]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)
