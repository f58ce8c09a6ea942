"""What a venue reports about positions it settled itself: the delivery of an expired option or
future, and a perpetual's funding payments. Execution clients answer with these (the optional
`delivery_price` and `funding_payments` methods); the live engine books them (`LiveEngine`'s
settlement task, `OrderFlow.settle` and `OrderFlow.funding`)."""

from __future__ import annotations

import bisect
import itertools
from decimal import Decimal, localcontext

import attrs

from .ledger import CONTEXT
from .money import BadNumber, to_decimal

__all__ = [
    "MAX_FUNDING",
    "MAX_PRICE",
    "FundingPayment",
    "HeldFunding",
    "PositionHistory",
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
    does not). `rate` is the funding rate when the venue reports it.

    `span_ns`: the payment accrued over `[ts_ns - span_ns, ts_ns]` on whatever was held then
    (Deribit: funding is "calculated every millisecond" into the session's realized PnL and
    booked at the daily settlement, 08:00 UTC: its `funding` is the whole session's, so it is
    split by each strategy's time-weighted position over the session). None: the payment was
    realized at `ts_ns` on the position held just before it (Derive realizes an account's
    accrued funding whenever its perpetual position changes and at each settlement: the
    position was constant since the previous record)."""

    venue: str
    instrument: str
    event_id: str
    ts_ns: int
    amount: Decimal
    currency: str
    position: Decimal | None = None
    rate: Decimal | None = None
    span_ns: int | None = None


@attrs.frozen
class HeldFunding:
    """A funding record a venue listed but held back (`FundingPayments.held`): a payment read
    whose id an unreadable record may number, or that record itself. What could be read of it,
    the rest None (`ts_ns` None: its time unreadable; `amount` None: no money could be read), and
    why it is held. A person books it by hand from this if it is given up
    (`OrderFlow.give_up_funding`). `event_id`: the venue's id of the payment when known (one
    read back from the journal after a restart, that was waiting for its USD rate)."""

    venue: str
    instrument: str | None
    ts_ns: int | None
    amount: Decimal | None
    currency: str | None
    reason: str
    event_id: str | None = None


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


# How far back a perpetual position's history is kept: past the venue's funding history
# look-back and the start's (`LiveEngine`: at most 8 days back).
HISTORY_NS = 8 * 86_400 * 10**9


class PositionHistory:
    """Each strategy's perpetual positions through time, for funding: a payment is split by
    the positions held at (or over) its time, which may be closed, flipped or grown by the
    time the venue lists it. Kept by `OrderFlow`, fed where it books fills, voided fills and
    settlements and where it restores them from the journal.

    Times are the VENUE's (`ts_exchange`, else our receive time `ts_local`): a payment's time
    is the venue's, and a fill caught up after a reconnect or a restart is received long after
    it happened. Changes are kept in time order whatever order they are learnt in (a late
    report goes to its place, never to the end); each is a change of quantity, so one learnt
    late moves every later position with it. Changes older than `HISTORY_NS` before the latest
    are folded into a base quantity."""

    __slots__ = ("_base", "_changes", "_seq")

    def __init__(self) -> None:
        # (strategy, venue, instrument) -> [(ts, seq, change)], time ordered (seq keeps the order
        # of changes at one time as they were learnt).
        self._changes: dict[tuple[str, str, str], list[tuple[int, int, Decimal]]] = {}
        self._base: dict[tuple[str, str, str], Decimal] = {}
        self._seq = itertools.count()

    def record(self, strategy: str, venue: str, instrument: str, ts_ns: int, change: Decimal) -> None:
        """`strategy`'s position in the perpetual changed by `change` at (venue time) `ts_ns`."""
        if change == 0:
            return
        key = (strategy, venue, instrument)
        changes = self._changes.setdefault(key, [])
        entry = (ts_ns, next(self._seq), change)
        if not changes or changes[-1][0] <= ts_ns:
            # In time order (the usual case): its sequence number sorts it last, where insort
            # would put it, without the search.
            changes.append(entry)
        else:
            bisect.insort(changes, entry)
        if len(changes) > 1024 and changes[0][0] < changes[-1][0] - HISTORY_NS:
            cut = bisect.bisect_left(changes, changes[-1][0] - HISTORY_NS, key=lambda e: e[0])
            old = sum((c for _, _, c in changes[:cut]), Decimal(0))
            self._base[key] = self._base.get(key, Decimal(0)) + old
            del changes[:cut]

    def _keys(self, venue: str, instrument: str) -> list[tuple[str, str, str]]:
        return sorted(k for k in self._changes if k[1] == venue and k[2] == instrument)

    def qty_at(
        self, strategy: str, venue: str, instrument: str, ts_ns: int, *, before: bool = False
    ) -> Decimal:
        """The position after every change at or before `ts_ns` (`before`: strictly before it)."""
        key = (strategy, venue, instrument)
        qty = self._base.get(key, Decimal(0))
        for ts, _, change in self._changes.get(key, ()):
            if ts > ts_ns or (before and ts == ts_ns):
                break
            qty += change
        return qty

    def holders_at(
        self, venue: str, instrument: str, ts_ns: int, *, before: bool = False
    ) -> dict[str, Decimal]:
        """Each strategy's position at `ts_ns` (`qty_at`), those not flat only."""
        out: dict[str, Decimal] = {}
        for key in self._keys(venue, instrument):
            qty = self.qty_at(key[0], venue, instrument, ts_ns, before=before)
            if qty != 0:
                out[key[0]] = qty
        return out

    def weighted(self, venue: str, instrument: str, start_ns: int, end_ns: int) -> dict[str, Decimal]:
        """`_weighted` in the ledger's decimal context (these weights split money)."""
        with localcontext(CONTEXT):
            return self._weighted(venue, instrument, start_ns, end_ns)

    def _weighted(self, venue: str, instrument: str, start_ns: int, end_ns: int) -> dict[str, Decimal]:
        """Each strategy's time-weighted position over `[start_ns, end_ns]` (the integral of its
        position over the span, divided by the span), those not 0 only."""
        span = Decimal(max(end_ns - start_ns, 1))
        out: dict[str, Decimal] = {}
        for key in self._keys(venue, instrument):
            qty = self._base.get(key, Decimal(0))
            area = Decimal(0)
            at = start_ns
            for ts, _, change in self._changes[key]:
                if ts > end_ns:
                    break
                if ts > at:
                    area += qty * (ts - at)
                    at = ts
                qty += change
            area += qty * (end_ns - at)
            if area != 0:
                out[key[0]] = area / span
        return out

    def changed_since(self, venue: str, since_ns: int) -> bool:
        """Whether any strategy's position in a perpetual of `venue` changed at or after
        `since_ns` (it was held then, before or after the change)."""
        return any(k[1] == venue and c and c[-1][0] >= since_ns for k, c in self._changes.items())
