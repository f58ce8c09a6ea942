"""The simulated Derive's fee schedule against Derive's own fee page (help.derive.xyz, "What are
the fees?"): its table and its worked examples, the option cap, and the base fee charged once per
taker order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tradingd.simulators.derive.fees import PUBLISHED, FeeSchedule
from tradingd.simulators.derive.instruments import Listing

D = Decimal


def listing(kind: str, **own: str) -> Listing:
    """An instrument item carrying no fee fields of its own unless given."""
    item: dict[str, Any] = {
        "instrument_name": {"option": "ETH-20260627-2000-P", "perp": "BTC-PERP"}.get(kind, "ETH-USDC"),
        "instrument_type": kind,
        "base_currency": "ETH",
        "tick_size": "0.1",
        "amount_step": "0.01",
        "minimum_amount": "0.01",
        "maximum_amount": "1000",
        "base_asset_address": "0x" + "11" * 20,
        "base_asset_sub_id": "0",
        **own,
    }
    if kind == "option":
        item["option_details"] = {"expiry": 1782547200, "strike": "2000", "option_type": "P"}
    return Listing.of(item)


def test_the_pages_table() -> None:
    assert PUBLISHED["perp"][:3] == (D("0.0001"), D("0.0006"), D("0.1"))
    assert PUBLISHED["option"] == (D("0.0003"), D("0.0004"), D("0.5"), D("0.125"))


def test_alice_takes_two_eth_puts_and_pays_two_dollars_26() -> None:
    # "Alice buys 2 ETH $2,000 puts against an existing order on the book, with the spot price at
    # $2,200. The fee charged: $0.50 + (0.04% * $4,400) = $2.26." The put's value (say $150 a
    # unit) caps nothing here: 12.5% of $300 is $37.50.
    fee = FeeSchedule().fee(listing("option"), D(2), index=D(2200), mark=D(150), taker=True, base_fee=True)
    assert fee == D("2.26")


def test_bob_maker_and_charlie_taker_on_a_btc_perp() -> None:
    # "Bob submits an order to short 0.1 BTC perp and later gets filled by Charlie, with the spot
    # price at $43,000. To Bob (Maker): 0.01% * $4,300 = $0.43. To Charlie (Taker): $0.10 +
    # (0.06% * $4,300) = $2.68."
    schedule, perp = FeeSchedule(), listing("perp")
    bob = schedule.fee(perp, D("0.1"), index=D(43000), mark=D(43010), taker=False, base_fee=False)
    charlie = schedule.fee(perp, D("0.1"), index=D(43000), mark=D(43010), taker=True, base_fee=True)
    assert (bob, charlie) == (D("0.43"), D("2.68"))


def test_an_option_fee_is_capped_at_an_eighth_of_its_value_base_fee_included() -> None:
    # A cheap put: 2 units at a mark of $1 are worth $2; 12.5% of that is $0.25, below the $2.26.
    fee = FeeSchedule().fee(listing("option"), D(2), index=D(2200), mark=D(1), taker=True, base_fee=True)
    assert fee == D("0.25")
    # The instrument's own cap (`mark_price_fee_rate_cap`) replaces the page's 12.5%.
    own = listing("option", mark_price_fee_rate_cap="0.1")
    assert FeeSchedule().fee(own, D(2), index=D(2200), mark=D(1), taker=True, base_fee=True) == D("0.2")


def test_the_base_fee_is_charged_once_per_taker_order() -> None:
    schedule, perp = FeeSchedule(), listing("perp")
    first = schedule.fee(perp, D("0.1"), index=D(43000), mark=D(0), taker=True, base_fee=True)
    second = schedule.fee(perp, D("0.1"), index=D(43000), mark=D(0), taker=True, base_fee=False)
    assert first - second == D("0.1") and second == D("2.58")


def test_an_instruments_own_rates_replace_the_pages() -> None:
    own = listing("perp", maker_fee_rate="0", taker_fee_rate="0.001", base_fee="1")
    assert FeeSchedule().fee(own, D(1), index=D(3500), mark=D(0), taker=True, base_fee=True) == D("4.5")
    assert FeeSchedule().fee(own, D(1), index=D(3500), mark=D(0), taker=False, base_fee=False) == 0


def test_max_fee_must_cover_the_whole_orders_taker_fee_per_unit() -> None:
    per_unit = FeeSchedule().estimate_per_unit(listing("perp"), D("0.5"), index=D(3000), mark=D(0))
    assert per_unit == (D("0.1") + D("0.0006") * D("0.5") * 3000) / D("0.5") == D("2")


def test_an_instrument_stating_zero_fees_is_free() -> None:
    free = listing("perp", maker_fee_rate="0", taker_fee_rate="0", base_fee="0")
    assert FeeSchedule().fee(free, D(1), index=D(3500), mark=D(0), taker=True, base_fee=True) == 0
    assert FeeSchedule().fee(free, D(1), index=D(3500), mark=D(0), taker=False, base_fee=False) == 0
    # One stating none of them pays the page's: 0.1 base + 0.06% of 3500.
    assert FeeSchedule().fee(listing("perp"), D(1), index=D(3500), mark=D(0), taker=True, base_fee=True) == D(
        "2.2"
    )
