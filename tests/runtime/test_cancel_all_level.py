"""`orders.cancel_all` is a warning when there was something to cancel, and info when a clean
shutdown had no order open: every clean stop logged a warning (`tradingd logs --level warning`
showed it after each tour), which taught operators to ignore the line."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tradingd.engine.runtime.live import LiveEngine


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        def log(event: str, **fields: Any) -> None:
            self.lines.append((level, event, fields))

        return log


class _Gateway:
    async def cancel_order(self, client_order_id: str, *, cause: str = "user") -> None:
        return None


@pytest.mark.parametrize(("open_orders", "level"), [(0, "info"), (2, "warning")])
async def test_cancel_all_is_a_warning_only_with_orders_to_cancel(open_orders: int, level: str) -> None:
    orders = [
        SimpleNamespace(client_order_id=f"s-{n}", request=SimpleNamespace(venue="deribit"))
        for n in range(open_orders)
    ]
    log = _Log()
    engine: Any = SimpleNamespace(
        flow=SimpleNamespace(tracker=SimpleNamespace(open_orders=lambda strategy=None: orders)),
        gateways={"deribit": _Gateway()},
        log=log,
    )
    answered = await LiveEngine.cancel_all_orders(engine, "shutdown")
    assert answered == open_orders
    (line,) = [entry for entry in log.lines if entry[1] == "orders.cancel_all"]
    assert line[0] == level and line[2]["orders"] == open_orders
