# The compiled replay loop of the backtest kernel (_kernel.c); BacktestKernel._replay's Python loop
# is the reference (`BacktestKernel(..., compiled=False)`).

from collections.abc import Iterator
from typing import Any

def loop(
    kernel: Any, frames: Iterator[Any], consts: tuple[Any, ...], state: list[Any], /
) -> tuple[int, Any, Any, Any] | None: ...

# The test helpers below raise TypeError for an event whose class is not exactly BookUpdate /
# Ticker (the classes the loop hands their C paths).
def book_reaches(sim: Any, ev: Any, order_book: type, /) -> bool: ...
def on_ticker(market: Any, method: Any, ticker: Any, /) -> None: ...
