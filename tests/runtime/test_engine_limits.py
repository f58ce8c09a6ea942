"""The engine-wide `[risk]` limits count every strategy together (README, risk controls): one
strategy's orders and positions use the room of all of them. Per-strategy limits stay per
strategy. Each engine-wide limit is tested with three strategies."""

from __future__ import annotations

import functools
import re
from decimal import Decimal
from pathlib import Path

import pytest
import trio

from tests.support.helpers import OPTION, PERP, registry, request, ticker
from tests.support.live_support import until
from tradingd.engine import Fill, Liquidity, OrderDenied, OrderRejected, OrderRequest, Side, VenueError
from tradingd.engine.model import Limits, MarketState, RiskLimits
from tradingd.engine.runtime import OrderFlow

_S = 1_000_000_000
_DAY = 86_400 * _S
T0 = 20_000 * _DAY + 3_600 * _S  # an hour into a UTC day
STRATEGIES = ("a", "b", "c")


def _flow(engine: Limits, **strategy: Limits) -> OrderFlow:
    reg = registry()
    market = MarketState(reg)
    market.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_000.0))
    market.on_ticker(ticker(OPTION.symbol, index=90_000.0, mark=0.05))
    return OrderFlow(
        reg,
        market,
        lambda _: None,
        engine_limits=RiskLimits(engine),
        strategy_limits={name: RiskLimits(limits) for name, limits in strategy.items()},
    )


def _option(strategy: str, n: int, side: str = "buy", size: str = "4") -> OrderRequest:
    return request(side, size, "0.05", instrument=OPTION.symbol, cid=f"{strategy}-{n}", strategy=strategy)


def _filled(flow: OrderFlow, req: OrderRequest, *, now_ns: int = T0) -> None:
    """Accept `req` and have the venue fill it whole at its price (the position is booked)."""
    assert req.price is not None
    order = flow.accept(req, now_ns=now_ns)
    oid = f"V-{req.client_order_id}"
    flow.tracker.set_order_id(order, oid)
    flow.on_fill(
        Fill(
            venue="deribit",
            instrument=req.instrument,
            ts_exchange=now_ns,
            ts_local=now_ns,
            order_id=oid,
            trade_id=f"T-{req.client_order_id}",
            side=req.side,
            price=req.price,
            size=req.size,
            fee=Decimal(0),
            fee_currency="BTC",
            liquidity=Liquidity.MAKER,
        )
    )


# ------------------------------------------------------------------------------ max_position


def test_engine_max_position_counts_every_strategys_position() -> None:
    """Three strategies under an engine `max_position = 10` were accepted for 12 (4 each)."""
    flow = _flow(Limits(max_position=Decimal(10)))
    _filled(flow, _option("a", 1))
    _filled(flow, _option("b", 1))
    assert flow.position("a", "deribit", OPTION.symbol) == 4
    with pytest.raises(OrderDenied, match=r"max_position \(engine\): position 8 .* would reach 12"):
        flow.accept(_option("c", 1), now_ns=T0 + _S)
    flow.accept(_option("c", 2, size="2"), now_ns=T0 + 2 * _S)  # 10: at the limit, not beyond


def test_engine_max_position_counts_every_strategys_working_orders() -> None:
    flow = _flow(Limits(max_position=Decimal(10)))
    flow.accept(_option("a", 1), now_ns=T0)
    flow.accept(_option("b", 1), now_ns=T0 + _S)
    with pytest.raises(OrderDenied, match=r"max_position \(engine\): position 0 with working 8"):
        flow.accept(_option("c", 1), now_ns=T0 + 2 * _S)
    # The other side's working orders do not use this side's room (they cannot both fill to
    # one side): a sell for 4 from a third strategy is within 10 short.
    flow.accept(_option("c", 2, side="sell"), now_ns=T0 + 3 * _S)


def test_engine_max_position_lets_an_order_that_reduces_the_engines_position_pass() -> None:
    """Past the limit (it was lowered, or fills came in at once), an order that brings the
    engine-wide position back toward zero passes, whichever strategy sends it."""
    flow = _flow(Limits(max_position=Decimal(10)))
    for name in STRATEGIES:
        flow.risk.engine_limits = RiskLimits()  # no limit while the book is built
        _filled(flow, _option(name, 1))
    flow.risk.engine_limits = RiskLimits(Limits(max_position=Decimal(10)))  # 12 held: beyond
    with pytest.raises(OrderDenied, match=r"max_position \(engine\)"):
        flow.accept(_option("a", 2, size="0.1"), now_ns=T0 + _S)
    flow.accept(_option("b", 2, side="sell", size="4"), now_ns=T0 + 2 * _S)  # 12 -> 8


def test_a_strategys_own_max_position_still_counts_only_its_own() -> None:
    flow = _flow(Limits(), a=Limits(max_position=Decimal(5)), b=Limits(max_position=Decimal(5)))
    _filled(flow, _option("a", 1))
    _filled(flow, _option("b", 1))  # b's own 4: within its 5, whatever a holds
    with pytest.raises(OrderDenied, match=r"max_position \(strategy a\): position 4"):
        flow.accept(_option("a", 2, size="2"), now_ns=T0 + _S)


# ---------------------------------------------------------------- open orders, rate, daily loss


def test_engine_max_open_orders_counts_every_strategys_orders() -> None:
    flow = _flow(Limits(max_open_orders=2))
    flow.accept(_option("a", 1, size="1"), now_ns=T0)
    flow.accept(_option("b", 1, size="1"), now_ns=T0 + _S)
    with pytest.raises(OrderDenied, match=r"max_open_orders \(engine\): 2 working, at most 2"):
        flow.accept(_option("c", 1, size="1"), now_ns=T0 + 2 * _S)


def test_engine_max_orders_per_minute_counts_every_strategys_orders() -> None:
    flow = _flow(Limits(max_orders_per_minute=3))
    for i, name in enumerate(STRATEGIES):
        flow.accept(_option(name, 1, size="1"), now_ns=T0 + i * _S)
    with pytest.raises(OrderDenied, match=r"max_orders_per_minute \(engine\): 3 in the last 60 s"):
        flow.accept(_option("a", 2, size="1"), now_ns=T0 + 10 * _S)
    flow.accept(_option("a", 3, size="1"), now_ns=T0 + 60 * _S + 1)  # the first left the window


def test_engine_max_daily_loss_counts_every_strategys_loss() -> None:
    """Each strategy loses about 3.3 USD: within a 5 USD limit alone, beyond it together."""
    flow = _flow(Limits(max_daily_loss_usd=5.0))
    flow.risk.roll_day(T0)
    for name in STRATEGIES:
        _filled(flow, request("buy", "1000", "90000", instrument=PERP.symbol, cid=f"{name}-1", strategy=name))
    flow.market.on_ticker(ticker(PERP.symbol, index=89_700.0, mark=89_700.0))  # 1000 x -0.33 %
    assert all(-5.0 < flow.equity(name) < -2.0 for name in STRATEGIES)
    with pytest.raises(OrderDenied, match=r"max_daily_loss_usd \(engine\): today's PnL -"):
        flow.accept(_option("a", 2, size="1"), now_ns=T0 + _S)


def test_engine_daily_loss_lets_only_orders_that_reduce_the_engines_position_pass() -> None:
    """Beyond the engine's daily loss, "reduces a position" is the engine's position: a sell by
    a strategy holding nothing reduces what the engine holds, and a sell bigger than what the
    engine holds does not pass."""
    flow = _flow(Limits(max_daily_loss_usd=5.0))
    flow.risk.roll_day(T0)
    _filled(flow, request("buy", "1000", "90000", instrument=PERP.symbol, cid="a-1", strategy="a"))
    flow.market.on_ticker(ticker(PERP.symbol, index=85_000.0, mark=85_000.0))
    flow.accept(
        request("sell", "500", "85000", instrument=PERP.symbol, cid="b-1", strategy="b"), now_ns=T0 + _S
    )
    with pytest.raises(OrderDenied, match=r"max_daily_loss_usd \(engine\)"):
        flow.accept(
            request("sell", "600", "85000", instrument=PERP.symbol, cid="c-1", strategy="c"),
            now_ns=T0 + 2 * _S,
        )


# ------------------------------------------------------------------------------ the refusal type


def test_a_risk_refusal_is_a_refusal_and_not_a_venue_error() -> None:
    flow = _flow(Limits(max_open_orders=0))
    with pytest.raises(OrderRejected) as info:
        flow.accept(_option("a", 1), now_ns=T0)
    assert isinstance(info.value, OrderDenied)
    assert not isinstance(info.value, VenueError)
    assert info.value.reason.startswith("max_open_orders (engine)")
    assert info.value.client_order_id == "a-1" and info.value.code is None
    assert flow.tracker.get("a-1") is None and Side.BUY is _option("a", 1).side


# ------------------------------------------------------------------- through the daemon's config


async def test_the_daemons_risk_table_limits_three_strategies_together(tmp_path: Path) -> None:
    """`tradingd run` built from its TOML (in this process), live on the Deribit simulator:
    `[risk] max_position = 100` and three strategies sending four resting buys of 30 (a sends
    two): three are placed (90), the fourth would reach 120 and is refused, by the engine's
    limit. Before, every one was placed (120; with three strategies of two each, 180)."""
    from tradingd.cli.settings import daemon_settings
    from tradingd.config import load_config
    from tradingd.engine.daemon.service import Daemon
    from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator, serve

    sim = DeribitSimulator(seed=3, step_s=0.1)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(functools.partial(serve, sim))
        address = binds[0].removeprefix("http://")
        strategies = "".join(
            f'[[strategies]]\nname = "{name}"\nclass = "tests.support.daemon_strategies:PlaceSeveral"\n'
            f"[strategies.params]\nsize = 30\ncount = {count}\n"
            for name, count in (("a", 2), ("b", 1), ("c", 1))
        )
        config = tmp_path / "live.toml"
        config.write_text(
            f'mode = "live"\n[logging]\nlevel = "warning"\n'
            f'[venues.deribit]\nurl = "ws://{address}/ws/api/v2"\nrest_url = "http://{address}"\n'
            f'currencies = ["BTC"]\n[daemon]\nstate_dir = "state"\n'
            f"[risk]\nmax_position = 100\n{strategies}",
            encoding="utf-8",
        )
        client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))
        daemon = Daemon(
            daemon_settings(load_config(config)),
            environ={"DERIBIT_CLIENT_ID": client_id, "DERIBIT_CLIENT_SECRET": secret},
        )
        flow = daemon.engine.flow
        nursery.start_soon(daemon.run)
        decided = await until(
            lambda: sum(flow.orders_sent.values()) + sum(flow.rejected.values()) >= 4 and flow,
            within=20,
            what="four orders decided",
        )
        await until(
            lambda: len(flow.tracker.open_orders()) == sum(flow.orders_sent.values()), what="all open"
        )
        assert isinstance(decided, OrderFlow)
        sent = sum(decided.orders_sent.values())
        working = sum(o.remaining for o in flow.tracker.open_orders())
        refusals = [r for s in daemon.engine.slots for r in getattr(s.strategy, "refusals", [])]
        nursery.cancel_scope.cancel()
    assert (sent, working) == (3, Decimal(90))
    assert [r.reason.split(":")[0] for r in refusals] == ["max_position (engine)"]
    assert re.search(r"would reach 120(\.0*)?, beyond 100$", refusals[0].reason), refusals[0].reason
    assert isinstance(refusals[0], OrderDenied) and not isinstance(refusals[0], VenueError)
    assert len([o for o in sim.orders.values() if o.state == "open"]) == 3
