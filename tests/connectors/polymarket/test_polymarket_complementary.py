"""The connector as the maker of a complementary match: our buy of a market's No token met by
another trader's buy of its Yes token mints the pair (docs.polymarket.com/developers/CLOB: "the
contract enables complementary tokens to match across a unified order book"; the live capture
`tests/fixtures/polymarket/nt_py_user_trade1.json`). The venue's trade message has the taker's
terms on top (the Yes token, BUY, its price) and our order in `maker_orders[]` with its own token,
side and price: the connector must book our No buy at our price, not the Yes taker's terms."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import trio
from py_clob_client_v2.clob_types import CreateOrderOptions, OrderArgsV2  # type: ignore[import-untyped]
from py_clob_client_v2.order_builder.builder import OrderBuilder  # type: ignore[import-untyped]
from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2  # type: ignore[import-untyped]
from py_clob_client_v2.signer import Signer  # type: ignore[import-untyped]

from tests.support.live_support import Probe, until
from tests.support.polymarket_live import V, cache, serve_sim, start
from tradingd.engine import BookUpdate, Fill, Liquidity, OrderState, Side, Subscription

__all__ = ["cache"]  # the fixture (tests/support/polymarket_live), used by name

OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # Hardhat's #1: a demo


async def test_our_no_buy_met_by_a_yes_buy_is_booked_at_our_price(nursery: trio.Nursery, cache: Path) -> None:
    simulator, base = await serve_sim(nursery)
    market = simulator.feed.markets[0]
    probe = Probe("p", [Subscription(V, market.no)])
    await start(nursery, base, probe, cache=cache)
    await until(lambda: bool(probe.of(BookUpdate, market.no)))
    simulator.prepare_burst(0)  # the market pauses: its spread stays where it is
    await trio.sleep(0.2)
    bid, ask = simulator.tokens[market.yes].top()
    assert bid is not None and ask is not None and ask - bid >= Decimal("0.02")
    yes_price = bid + Decimal("0.01")  # inside the Yes spread, so our No bid is inside the No one
    no_price = 1 - yes_price
    ours = await probe.ctx.buy(V, market.no, 10, price=no_price)
    assert ours.status is OrderState.OPEN
    # Another trader buys Yes at the complement of our price: the pair is minted.
    signer = Signer(OTHER_KEY, 137)
    other = simulator.register(signer.address())
    signed = OrderBuilder(signer).build_order(
        OrderArgsV2(token_id=market.yes, price=float(yes_price), size=10.0, side="BUY"),
        CreateOrderOptions(tick_size="0.01", neg_risk=False),
    )
    answer = simulator.place(other, order_to_json_v2(signed, other.api.key, "GTC"))
    assert answer["success"] and answer["status"] == "matched"
    await until(lambda: probe.ctx.position(V, market.no) == 10, within=5)
    (fill,) = [e for e in probe.of(Fill) if e.client_order_id == ours.client_order_id]
    assert (fill.instrument, fill.side, fill.price, fill.size, fill.liquidity) == (
        market.no,
        Side.BUY,
        no_price,
        Decimal(10),
        Liquidity.MAKER,
    )
    assert fill.fee == 0  # makers pay nothing
    assert probe.ctx.position(V, market.yes) == 0  # nothing of the taker's token is ours
    simulator.resume()
