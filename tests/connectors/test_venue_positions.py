"""What Deribit's and Derive's position answers may say (issue 16: positions reconciled where
the venue reports them): each instrument asked gets the venue's signed figure or 0, and an answer
that is no position (a size that is not finite or too large, a sign against its direction) is a
typed, unreadable answer: the reconciliation logs it and changes nothing. So is Derive's answer
for a subaccount not ours. Both answers list the account: any other instrument held is named
too (the engine warns of one it has no record of)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.support.canned_execution import _deribit, _derive, _Session
from tradingd.engine.model.errors import VenueError

PERP = "BTC-PERPETUAL"


async def test_deribit_positions_are_the_signed_sizes_of_the_instruments_asked() -> None:
    answer = [
        {"instrument_name": PERP, "size": -120.0, "direction": "sell", "kind": "future"},
        {"instrument_name": "BTC-29JAN27-92000-C", "size": 1.5, "direction": "buy", "kind": "option"},
    ]
    session = _Session(answer)
    held = await _deribit(session).venue_positions([PERP, "BTC-29JAN27-92000-C", "ETH-PERPETUAL"])
    assert held == {PERP: Decimal(-120), "BTC-29JAN27-92000-C": Decimal("1.5"), "ETH-PERPETUAL": Decimal(0)}
    assert session.calls == 1


@pytest.mark.parametrize(
    "item",
    [
        {"instrument_name": PERP, "size": 120.0, "direction": "sell"},  # a short with a long size
        {"instrument_name": PERP, "size": 1e300, "direction": "buy"},  # no size Deribit sends
        {"instrument_name": PERP, "size": 3.0, "direction": "zero"},
        {"instrument_name": PERP, "size": "ten", "direction": "buy"},
        {"instrument_name": 7, "size": 1.0, "direction": "buy"},
    ],
)
async def test_a_deribit_answer_that_is_no_position_is_an_unreadable_answer(item: dict[str, Any]) -> None:
    with pytest.raises(VenueError, match="positions: unreadable answer") as refused:
        await _deribit(_Session([item])).venue_positions([PERP])
    assert refused.value.code == "malformed"


async def test_derive_positions_are_the_signed_amounts_of_the_instruments_asked() -> None:
    body = {
        "subaccount_id": 1,  # ours (tests.support.canned_execution)
        "positions": [{"instrument_name": "ETH-PERP", "amount": "-0.25", "average_price": "3000"}],
    }
    held = await _derive(_Session(body)).venue_positions(["ETH-PERP", "BTC-PERP"])
    assert held == {"ETH-PERP": Decimal("-0.25"), "BTC-PERP": Decimal(0)}


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "1e80", "lots"])
async def test_a_derive_answer_that_is_no_amount_is_an_unreadable_answer(amount: str) -> None:
    body = {"subaccount_id": 1, "positions": [{"instrument_name": "ETH-PERP", "amount": amount}]}
    with pytest.raises(VenueError, match="positions: unreadable answer") as refused:
        await _derive(_Session(body)).venue_positions(["ETH-PERP"])
    assert refused.value.code == "malformed"


@pytest.mark.parametrize("whose", [{"subaccount_id": 2}, {}, {"subaccount_id": None}])
async def test_a_derive_answer_for_another_subaccount_is_refused(whose: dict[str, Any]) -> None:
    """Another subaccount's positions (or an answer that does not say whose) are no word on ours:
    read as ours, every position we hold would look gone."""
    body = {"positions": [{"instrument_name": "BTC-PERP", "amount": "3"}], **whose}
    with pytest.raises(VenueError, match=r"positions: answer for subaccount \w+, not ours \(1\)") as refused:
        await _derive(_Session(body)).venue_positions(["ETH-PERP", "BTC-PERP"])
    assert refused.value.code == "malformed"


async def test_deribit_and_derive_also_name_what_else_the_account_holds() -> None:
    answer = [
        {"instrument_name": PERP, "size": -120.0, "direction": "sell", "kind": "future"},
        {"instrument_name": "ETH-PERPETUAL", "size": 0.0, "direction": "zero", "kind": "future"},
    ]
    held = await _deribit(_Session(answer)).venue_positions([])
    assert held == {PERP: Decimal(-120)}  # not the closed one
    body = {
        "subaccount_id": 1,
        "positions": [
            {"instrument_name": "ETH-PERP", "amount": "-0.25"},
            {"instrument_name": "BTC-PERP", "amount": "0"},
        ],
    }
    held = await _derive(_Session(body)).venue_positions(["SOL-PERP"])
    assert held == {"SOL-PERP": Decimal(0), "ETH-PERP": Decimal("-0.25")}
