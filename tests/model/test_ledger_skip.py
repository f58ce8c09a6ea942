"""A waiting head is tried again only once the market learned a rate (`Ledger._drain`'s skip):
the same bookings, at the same rates, in the same order, as trying it on every entry
(`Ledger._drain_general`), whatever the fills, tickers, reversals and funding in between. And
the other shortcuts on a fill's way: the equity kept while nothing is open and its sums are the
same (`Ledger.equity_usd`), the booking rate without `usd_rate`'s call (`MarketState.booking_rate`)."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.helpers import OPTION, PERP, ticker
from tradingd.engine import Fill, FillReversal, Instrument, InstrumentKind, Liquidity, Side
from tradingd.engine.model import InstrumentRegistry, Ledger, MarketState
from tradingd.engine.model.ledger import CONTEXT, Booking, Position, UsdRates

ETH = Instrument(
    venue="deribit",
    symbol="ETH-PERPETUAL",
    kind=InstrumentKind.PERPETUAL,
    base="ETH",
    quote="USD",
    settle="ETH",
    tick_size="0.05",
    min_size="1",
    contract_size="1",
    inverse=True,
    maker_fee="0",
    taker_fee="0.0005",
)
INSTRUMENTS = (PERP, OPTION, ETH)


class _Tries(Ledger):
    """The reference: the head tried on every entry, as before the skip."""

    def _drain(self, pos: Position) -> None:
        self._drain_general(pos, self.market.rates_learned)


_index = st.sampled_from([None, None, 0.0, math.nan, 90_000.0, 95_000.5, 3_000.0])
_fill = st.tuples(
    st.just("fill"),
    st.sampled_from(INSTRUMENTS),
    st.sampled_from([Side.BUY, Side.SELL]),
    st.sampled_from(["1", "10", "20"]),
    st.sampled_from(["0.05", "0.1", "90000", "95000.5"]),
    st.sampled_from(["0", "0.0001", "-0.00002"]),
    _index,
)
_tick = st.tuples(st.just("ticker"), st.sampled_from(INSTRUMENTS), _index)
_reverse = st.tuples(st.just("reverse"), st.integers(0, 30))
_funding = st.tuples(st.just("funding"), st.sampled_from([PERP, ETH]), st.sampled_from(["0.001", "-0.002"]))
_ops = st.lists(st.one_of(_fill, _fill, _tick, _reverse, _funding), max_size=40)


def _on_grid(inst: Instrument, price: str) -> Decimal:
    """An inverse contract's fill on its tick grid (its ledger refuses one below the tick size,
    `ledger.no_cost_basis`): BTC-PERPETUAL's small prices are its tick, ETH's stay small."""
    p = Decimal(price)
    return inst.round_price(p, up=True) if inst.inverse else p


def _state(ledger: Ledger, late: list[tuple[str, object]]) -> object:
    def entry(b: Booking) -> object:
        return (b.kind, b.instrument.symbol, b.rates, b.event, b.amount)

    return (
        ledger.realized_usd,
        ledger.fees_usd,
        ledger.funding_usd,
        ledger.fills,
        ledger.waiting,
        sorted(ledger.booked_rates.items()),
        [
            (
                key,
                p.qty,
                p.booked,
                p.cost,
                p.realized_usd,
                p.fees_usd,
                p.turnover_usd,
                [entry(e) for e in p.waiting],
            )
            for key, p in sorted(ledger.positions.items())
        ],
        list(late),
    )


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_skipping_an_unchanged_head_books_as_trying_it_every_time(ops: list[tuple[object, ...]]) -> None:
    sides = []
    for cls in (Ledger, _Tries):
        market = MarketState(InstrumentRegistry(list(INSTRUMENTS)))
        ledger = cls("s", market)
        late: list[tuple[str, object]] = []
        ledger.on_late_booking = lambda b, late=late: late.append((b.kind, b.rates))
        fills: list[Fill] = []
        states = []
        for n, op in enumerate(ops):
            if op[0] == "fill":
                _, inst, side, size, price, fee, idx = op
                assert isinstance(inst, Instrument)
                fill = Fill(
                    venue="deribit",
                    instrument=inst.symbol,
                    ts_exchange=None,
                    ts_local=n,
                    trade_id=f"t{n}",
                    client_order_id=f"c{n}",
                    side=side,  # type: ignore[arg-type]
                    price=_on_grid(inst, str(price)),
                    size=Decimal(str(size)),
                    fee=Decimal(str(fee)),
                    fee_currency=inst.settle,
                    liquidity=Liquidity.TAKER,
                    index_price=idx,  # type: ignore[arg-type]
                )
                fills.append(fill)
                ledger.on_fill(fill, inst)
            elif op[0] == "ticker":
                _, inst, idx = op
                assert isinstance(inst, Instrument)
                market.on_ticker(ticker(inst.symbol, ts=n, index=idx))  # type: ignore[arg-type]
            elif op[0] == "reverse":
                if not fills:
                    continue
                f = fills.pop(int(op[1]) % len(fills))  # type: ignore[call-overload]
                rev = FillReversal(
                    venue=f.venue,
                    instrument=f.instrument,
                    ts_exchange=None,
                    ts_local=n,
                    order_id=f.order_id,
                    client_order_id=f.client_order_id,
                    trade_id=f.trade_id,
                    side=f.side,
                    price=f.price,
                    size=f.size,
                    fee=f.fee,
                    fee_currency=f.fee_currency,
                    reason="voided",
                )
                inst = next(i for i in INSTRUMENTS if i.symbol == f.instrument)
                ledger.reverse(rev, inst)
            else:
                _, inst, amount = op
                assert isinstance(inst, Instrument)
                ledger.funding(inst, Decimal(str(amount)), inst.settle)
            states.append(_state(ledger, late))
            # The equity as computed in full (nothing kept), whatever is open.
            with localcontext(CONTEXT):
                full = ledger.realized_usd + ledger.unrealized_usd() - ledger.fees_usd
            assert ledger.equity_usd() == full
            for inst in INSTRUMENTS:
                for ccy in {inst.base, inst.quote, inst.settle, "usdc"}:
                    usd = market.usd_rate(inst.venue, ccy)
                    want = (
                        usd
                        if usd is not None and 0 < usd < math.inf
                        else market.fill_rates.get((inst.venue, ccy))
                    )
                    assert market.booking_rate(inst.venue, ccy) == want
        sides.append(states)
    assert sides[0] == sides[1]


def test_a_head_waits_untried_until_a_rate_is_learned_then_is_booked() -> None:
    """The skip itself: fills queued behind a head that waits for BTC leave the head untried
    (no look-up of rates), and the first BTC index books them all, in order."""
    market = MarketState(InstrumentRegistry([PERP]))
    ledger = Ledger("s", market)
    tried: list[Booking] = []
    fill_in = ledger._fill_in

    def counting(entry: Booking) -> UsdRates:
        tried.append(entry)
        return fill_in(entry)

    ledger._fill_in = counting  # type: ignore[method-assign]

    def fill(n: int) -> Fill:
        return Fill(
            venue="deribit",
            instrument=PERP.symbol,
            ts_exchange=None,
            ts_local=n,
            trade_id=f"t{n}",
            side=Side.BUY,
            price=Decimal("90000"),
            size=Decimal("10"),
            fee=Decimal("0"),
            fee_currency="BTC",
            liquidity=Liquidity.MAKER,
        )

    for n in range(5):
        ledger.on_fill(fill(n), PERP)
    assert ledger.waiting == 5
    assert len(tried) == 1  # the head, once (the second fill's try); never again since
    market.on_ticker(ticker(PERP.symbol, index=90_000.0))
    assert ledger.waiting == 0 and ledger.positions[("deribit", PERP.symbol)].booked == 50
