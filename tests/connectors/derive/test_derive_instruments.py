"""Derive instrument definitions (VENUES.md §3.2) against the captured items in
tests/fixtures/derive: the engine `Instrument`, the signing side table, names, option sub ids."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradingd.connectors.derive.fees import DeriveFees
from tradingd.connectors.derive.instruments import (
    DeriveInstrumentInfo,
    DeriveInstruments,
    ParsedName,
    format_strike,
    instruments_params,
    is_instrument_item,
    option_name,
    option_sub_id,
    parse_instrument,
    parse_instrument_name,
)
from tradingd.engine import Instrument, InstrumentKind, Liquidity, OptionRight, OrderRejected

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "derive"


def load(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def test_an_option_item_gives_the_instrument_and_its_signing_facts() -> None:
    inst, info = parse_instrument(load("options/instrument_eth.json"))
    assert (inst.venue, inst.symbol, inst.kind) == ("derive", "ETH-20260627-3500-C", InstrumentKind.OPTION)
    assert (inst.base, inst.quote, inst.settle) == ("ETH", "USDC", "USDC")
    assert (inst.tick_size, inst.min_size, inst.contract_size) == (Decimal(1), Decimal("0.01"), Decimal(1))
    # The exact expiry is option_details.expiry (unix seconds), not the date in the name.
    assert inst.expiry_ns == 1_782_000_000 * 1_000_000_000
    assert (inst.strike, inst.right, inst.inverse, inst.active) == (
        Decimal(3500),
        OptionRight.CALL,
        False,
        True,
    )
    assert (inst.maker_fee, inst.taker_fee) == (Decimal(0), Decimal("0.001"))
    assert info == DeriveInstrumentInfo(
        name="ETH-20260627-3500-C",
        instrument_type="option",
        asset_address="0x0000000000000000000000000000000000000001",
        sub_id=42,
        amount_step=Decimal("0.01"),
        minimum_amount=Decimal("0.01"),
        maximum_amount=Decimal(100),
        base_fee=Decimal(1),
        maker_fee_rate=Decimal(0),
        taker_fee_rate=Decimal("0.001"),
        mark_price_fee_rate_cap=None,
        index="ETH-USD",
    )


def test_a_perp_item() -> None:
    inst, info = parse_instrument(load("perps/instrument_eth.json"))
    assert (inst.symbol, inst.kind, inst.expiry_ns, inst.strike, inst.right) == (
        "ETH-PERP",
        InstrumentKind.PERPETUAL,
        None,
        None,
        None,
    )
    assert (inst.tick_size, inst.min_size, inst.settle) == (Decimal("0.01"), Decimal("0.001"), "USDC")
    assert (info.sub_id, info.base_fee, info.index, info.instrument_type) == (
        0,
        Decimal("0.5"),
        "ETH-USD",
        "perp",
    )


@pytest.mark.parametrize(
    ("name", "asset", "tick", "minimum", "step"),
    [
        ("spot/instrument_eth.json", "0x41675b7746AE0E464f2594d258CF399c392A179C", "0.1", "0.1", "0.01"),
        (
            "spot/instrument_eth_mainnet.json",
            "0xE201fCEfD4852f96810C069f66560dc25B2C7A55",
            "0.01",
            "0.1",
            "0.01",
        ),
    ],
)
def test_spot_items_live_captures(name: str, asset: str, tick: str, minimum: str, step: str) -> None:
    inst, info = parse_instrument(load(name))
    assert (inst.symbol, inst.kind, inst.base, inst.quote) == ("ETH-USDC", InstrumentKind.SPOT, "ETH", "USDC")
    assert inst.tick_size == Decimal(tick)
    # min_size: the smallest step multiple at or above the minimum (here the minimum itself).
    assert inst.min_size == Decimal(minimum)
    assert (info.asset_address, info.sub_id, info.amount_step) == (asset, 0, Decimal(step))


@pytest.mark.parametrize(
    ("minimum", "step", "min_size"),
    [("0.15", "0.1", "0.2"), ("0", "0.01", "0.01"), ("0.01", "0.001", "0.01"), ("0.001", "0.01", "0.01")],
)
def test_min_size_is_the_first_step_multiple_at_or_above_the_minimum(
    minimum: str, step: str, min_size: str
) -> None:
    item = {**load("perps/instrument_eth.json"), "minimum_amount": minimum, "amount_step": step}
    inst, _ = parse_instrument(item)
    assert inst.min_size == Decimal(min_size)
    # Every size the engine accepts is at least the venue's minimum and on its step.
    for k in range(1, 6):
        size = inst.min_size * k
        assert size >= Decimal(minimum) and size % Decimal(step) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tick_size": "0"}, "tick_size must be positive"),
        ({"amount_step": "-1"}, "amount_step must be positive"),
        ({"instrument_type": "future"}, "unknown instrument_type 'future'"),
        ({"base_asset_address": "0x1234"}, "is not an address"),
        ({"tick_size": "abc"}, "tick_size"),
        ({"base_asset_sub_id": "-5"}, "is not a uint256"),
        ({"option_details": None}, "has no option_details"),
        ({"instrument_name": "ETH-20260627-3600-C"}, "the name says 3600"),
        ({"instrument_name": "ETH-20260627-3500-P"}, "the name says 3500 put"),
        # Issue 12: numbers Derive's 18-decimal int256 cannot hold (§3.6 "Action signing"). A tick
        # below 1e-18 made price / tick infinite in the decoder's book (OverflowError); a NaN
        # maximum or fee made every later comparison with it raise.
        ({"tick_size": "1e-30"}, "tick_size must be positive"),
        ({"tick_size": "1E+999999999"}, "tick_size must be positive"),
        ({"amount_step": "1e-19"}, "amount_step must be positive"),
        ({"maximum_amount": "NaN"}, "maximum_amount must be positive"),
        ({"maximum_amount": "0"}, "maximum_amount must be positive"),
        ({"minimum_amount": "1e60"}, "minimum_amount"),
        ({"taker_fee_rate": "NaN"}, "taker_fee_rate must be a finite"),
        ({"base_fee": "1E+999999999"}, "base_fee must be a finite"),
        ({"mark_price_fee_rate_cap": "Infinity"}, "mark_price_fee_rate_cap must be a finite"),
        ({"option_details": {"expiry": 10**19, "strike": "3500", "option_type": "C"}}, "expiry"),
        ({"option_details": {"expiry": 1782000000, "strike": "1e-30", "option_type": "C"}}, "strike"),
    ],
)
def test_bad_items_are_refused_with_the_reason(change: dict[str, Any], message: str) -> None:
    item = {**load("options/instrument_eth.json"), **change}
    with pytest.raises(ValueError, match=message):
        parse_instrument(item)


def test_a_missing_field_is_named() -> None:
    item = load("options/instrument_eth.json")
    del item["minimum_amount"]
    with pytest.raises(ValueError, match="minimum_amount"):
        parse_instrument(item)


def test_is_instrument_item() -> None:
    assert is_instrument_item(load("perps/instrument_eth.json"))
    assert is_instrument_item(load("options/http_ticker_eth_snapshot.json"))  # get_ticker carries them too
    assert not is_instrument_item(load("perps/ws_trade_eth.json"))
    assert not is_instrument_item(["ETH-PERP"])


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        (
            "ETH-20260627-3500-C",
            ParsedName("ETH", InstrumentKind.OPTION, "USDC", 1782547200, Decimal(3500), OptionRight.CALL),
        ),
        (
            "BTC-20260305-69500-P",
            ParsedName("BTC", InstrumentKind.OPTION, "USDC", 1772697600, Decimal(69500), OptionRight.PUT),
        ),
        (
            "ETH-20240329-2400_5-P",
            ParsedName("ETH", InstrumentKind.OPTION, "USDC", 1711699200, Decimal("2400.5"), OptionRight.PUT),
        ),
        ("ETH-PERP", ParsedName("ETH", InstrumentKind.PERPETUAL, "USDC")),
        ("ETH-USDC", ParsedName("ETH", InstrumentKind.SPOT, "USDC")),
    ],
)
def test_names_parse(name: str, parsed: ParsedName) -> None:
    assert parse_instrument_name(name) == parsed
    # Options settle at 08:00 UTC on their date (§3.2).
    if parsed.expiry_s is not None:
        assert dt.datetime.fromtimestamp(parsed.expiry_s, dt.UTC).hour == 8


@pytest.mark.parametrize(
    "name",
    [
        "ETH",
        "ETH-20261331-3000-C",
        "ETH-20260627-0-C",
        "ETH-20260627-3000-X",
        "ETH-PERP-1",
        "",
        "ETH-2026-1-C",
    ],
)
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a Derive instrument name"):
        parse_instrument_name(name)


@given(
    day=st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2100, 12, 31)),
    strike=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10**7), places=4),
    right=st.sampled_from(OptionRight),
    ccy=st.sampled_from(["BTC", "ETH", "SOL", "HYPE"]),
)
def test_option_names_round_trip(day: dt.date, strike: Decimal, right: OptionRight, ccy: str) -> None:
    name = option_name(ccy, day, strike, right)
    assert "." not in name
    parsed = parse_instrument_name(name)
    assert (parsed.base, parsed.kind, parsed.strike, parsed.right) == (
        ccy,
        InstrumentKind.OPTION,
        strike,
        right,
    )
    assert dt.datetime.fromtimestamp(parsed.expiry_s or 0, dt.UTC).date() == day


def test_strikes_are_written_as_derive_writes_them() -> None:
    assert [format_strike(k) for k in ("3500", "2400.5", "2400.50", "0.25", "100000")] == [
        "3500",
        "2400_5",
        "2400_5",
        "0_25",
        "100000",
    ]
    with pytest.raises(ValueError, match="positive"):
        format_strike("0")


def test_option_sub_ids_pack_expiry_strike_and_call_flag() -> None:
    # The §3.6 signing vector's sub id is 2**95: the call flag alone.
    assert option_sub_id(0, 0, call=True) == 39614081257132168796771975168
    sub = option_sub_id(1782547200, Decimal("2400.5"), call=False)
    assert sub & 0xFFFFFFFF == 1782547200
    assert (sub >> 32) & ((1 << 63) - 1) == 240050000000  # 8 decimals
    assert sub >> 95 == 0
    with pytest.raises(ValueError, match="8 decimals"):
        option_sub_id(0, Decimal("0.000000001"), call=True)
    with pytest.raises(ValueError, match="does not fit"):
        option_sub_id(1 << 32, 1, call=True)


def test_the_side_table_and_its_refusal() -> None:
    _, info = parse_instrument(load("perps/instrument_eth.json"))
    table = DeriveInstruments([info])
    assert "ETH-PERP" in table and len(table) == 1 and list(table) == [info]
    assert table.require("ETH-PERP") is info
    assert table.get("BTC-PERP") is None
    with pytest.raises(OrderRejected, match="no Derive definition of BTC-PERP") as err:
        table.require("BTC-PERP", client_order_id="s-1")
    assert (err.value.venue, err.value.instrument, err.value.client_order_id) == ("derive", "BTC-PERP", "s-1")


def test_get_instruments_params() -> None:
    assert instruments_params("eth", "option") == {
        "currency": "ETH",
        "instrument_type": "option",
        "expired": False,
    }
    assert instruments_params("BTC", "perp", expired=True)["expired"] is True
    with pytest.raises(ValueError, match="instrument_type"):
        instruments_params("ETH", "future")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ fees


def fees_on(name: str) -> tuple[Instrument, DeriveInstrumentInfo]:
    return parse_instrument(load(name))


def test_option_fees_rates_base_fee_and_cap() -> None:
    option, info = fees_on("options/instrument_eth.json")  # own rates: maker 0, taker 0.001; base fee 1
    fees = DeriveFees()
    # Taker: the base fee (published $0.50 unless the instrument's is known) + rate x size x index.
    assert fees.fee(option, Decimal(100), Decimal(2), Liquidity.TAKER, 3000.0) == (Decimal("6.5"), "USDC")
    with_details = fees.with_details(DeriveInstruments([info]).get)
    assert with_details.fee(option, Decimal(100), Decimal(2), Liquidity.TAKER, 3000.0)[0] == Decimal("7.0")
    assert fees.fee(option, Decimal(100), Decimal(2), Liquidity.MAKER, 3000.0)[0] == Decimal(0)
    # Capped at 12.5% of the option's value: 0.125 x 10 x 2.
    assert fees.fee(option, Decimal(10), Decimal(2), Liquidity.TAKER, 3000.0)[0] == Decimal("2.500")
    # Without an index the strike stands in for the underlying.
    assert fees.fee(option, Decimal(100), Decimal(2), Liquidity.TAKER, None)[0] == Decimal("7.5")
    capped = with_details.with_details(
        DeriveInstruments([attrs.evolve(info, mark_price_fee_rate_cap=Decimal("0.01"))]).get
    )
    assert capped.fee(option, Decimal(100), Decimal(2), Liquidity.TAKER, 3000.0)[0] == Decimal("2.00")
    # Config overrides win over the instrument's numbers.
    override = DeriveFees.from_config({"option_taker": "0.0002", "option_base_fee": 0, "option_cap": 1})
    assert override.with_details(DeriveInstruments([info]).get).fee(
        option, Decimal(100), Decimal(2), Liquidity.TAKER, 3000.0
    )[0] == Decimal("1.2")


def test_perp_and_spot_fees_and_the_published_defaults() -> None:
    perp, _ = fees_on("perps/instrument_eth.json")  # own rates: maker 0.0001, taker 0.0005
    fees = DeriveFees()
    assert fees.fee(perp, Decimal(3000), Decimal(1), Liquidity.TAKER, 3010.0)[0] == Decimal("0.1") + Decimal(
        "0.0005"
    ) * Decimal("3010.0")
    # No index: the trade price; no cap on perpetuals.
    assert fees.fee(perp, Decimal(3000), Decimal(1), Liquidity.MAKER, None)[0] == Decimal("0.3000")
    bare = attrs.evolve(perp, maker_fee=None, taker_fee=None)
    assert fees.rate(bare, Liquidity.TAKER) == Decimal("0.0006") and fees.rate(
        bare, Liquidity.MAKER
    ) == Decimal("0.0001")
    spot, _ = fees_on("spot/instrument_eth_mainnet.json")  # 0.0015 both sides
    assert fees.fee(spot, Decimal(2000), Decimal("0.5"), Liquidity.TAKER, 2000.0) == (Decimal("1.5"), "USDC")
    assert fees.cap(spot) is None and fees.base_fee(spot) == Decimal(0)


def test_max_fee_per_unit() -> None:
    option, _ = fees_on("options/instrument_eth.json")
    fees = DeriveFees()
    # (0.5 + 0.001 x 2 x 3000) x 2 / 2 = 6.5 USDC per unit of amount.
    assert fees.max_fee(option, price=Decimal(100), size=Decimal(2), index=3000.0) == Decimal("6.500000")
    assert fees.max_fee(
        option, price=Decimal(100), size=Decimal(3), index=3000.0, margin=Decimal(1)
    ) == Decimal("3.166667")  # rounded up to USDC micro-units
    with pytest.raises(ValueError, match="size must be positive"):
        fees.max_fee(option, price=Decimal(100), size=Decimal(0), index=None)
    with pytest.raises(ValueError, match="margin must be at least 1"):
        fees.max_fee(option, price=Decimal(100), size=Decimal(1), index=None, margin=Decimal("0.5"))


def test_fee_config_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown fee setting\\(s\\) rebate"):
        DeriveFees.from_config({"rebate": 1})
    with pytest.raises(ValueError, match="positive fraction"):
        DeriveFees.from_config({"option_cap": 0})
    with pytest.raises(ValueError, match="decimal number"):
        DeriveFees.from_config({"perp_taker": [1]})
    with pytest.raises(ValueError, match="finite"):
        DeriveFees.from_config({"perp_taker": "nan"})
    assert DeriveFees.from_config({"perp_maker": -0.0001}).perp_maker == Decimal("-0.0001")  # a rebate
