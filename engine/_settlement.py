"""What a venue reports about positions it settled itself: the delivery of an expired option or
future, and a perpetual's funding payments. Execution clients answer with these (the optional
`delivery_price` and `funding_payments` methods); the live engine books them (`LiveEngine`'s
settlement task, `OrderFlow.settle` and `OrderFlow.funding`)."""

from __future__ import annotations

from decimal import Decimal

import attrs

from ._money import BadNumber, to_decimal

__all__ = [
    "MAX_FUNDING",
    "MAX_PRICE",
    "FundingPayment",
    "check_delivery_price",
    "check_funding",
    "funding_amount",
]

# Plausibility bounds of what a venue reports as money here: no instrument of ours is priced at
# a billion (of USD or of a coin), and no single funding payment of an account is that large. A
# number beyond them is a venue's error (or a hostile answer), refused, never booked.
MAX_PRICE = Decimal("1e9")
MAX_FUNDING = Decimal("1e9")


def check_delivery_price(value: object, *, option: bool, what: str = "delivery price") -> Decimal:
    """A venue's delivery price as money: finite, below `MAX_PRICE`, above 0 for a future (an
    inverse future's PnL divides by it) and at least 0 for an option (one that expired out of
    the money is delivered at 0). Raises `BadNumber` (naming it) otherwise."""
    d = to_decimal(value, what)
    if d < 0 or (d == 0 and not option) or d > MAX_PRICE:
        raise BadNumber(f"{what}: {'not >= 0' if option else 'not > 0'} or beyond {MAX_PRICE}: {value!r}")
    return d


def check_funding(value: object, what: str = "funding") -> Decimal:
    """A venue's funding amount as money: finite and within `MAX_FUNDING` either way."""
    d = to_decimal(value, what)
    if abs(d) > MAX_FUNDING:
        raise BadNumber(f"{what}: beyond {MAX_FUNDING}: {value!r}")
    return d


@attrs.frozen
class FundingPayment:
    """One funding payment on one perpetual of the account, as the venue reports it.

    `event_id` is unique per venue and instrument (the venue's id, or the instrument and the
    payment's time when the venue gives none): the journal books each once. `amount` is what the
    account received (negative: paid), in `currency`. `position` is the account's position the
    venue paid on, when it says (Deribit's settlement history does; Derive's funding history
    does not). `rate` is the funding rate when the venue reports it."""

    venue: str
    instrument: str
    event_id: str
    ts_ns: int
    amount: Decimal
    currency: str
    position: Decimal | None = None
    rate: Decimal | None = None


def funding_amount(
    qty: Decimal, mark: Decimal, rate: Decimal, *, inverse: bool, contract_size: Decimal
) -> Decimal:
    """The funding a position of `qty` receives at a funding event of `rate` (positive: longs
    pay shorts, Deribit's "Funding specifications" and Tardis' `funding_rate`), in the
    instrument's settlement currency: linear, `-qty x contract_size x mark x rate`; inverse (size
    in USD, PnL in the coin: Deribit's BTC-PERPETUAL, whose payment is "funding rate x position
    size" with the size in the coin), `-qty / mark x rate`."""
    if inverse:
        return -qty / mark * rate
    return -qty * contract_size * mark * rate
