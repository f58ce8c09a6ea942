# Whole-frame Deribit ticker and trades decoding (_frames.c); codec.py holds the Python reference
# (`DeribitDecoder._ticker_events`, `_trades_events`, reached through a decoder built with
# `compiled=False`).

from collections.abc import Callable
from typing import Any

def setup(
    namespace: dict[str, Any],
    ticker: Callable[..., Any],
    greeks: Callable[..., Any],
    trade: Callable[..., Any],
    venue: str,
    side_buy: Any,
    side_sell: Any,
    ivs: dict[float | None, float | None],
    iv_learn: Callable[[float | None], float | None],
    /,
) -> None: ...
def ticker_frame(decoder: Any, frame: object, ts_local: int, /) -> list[Any] | None: ...
def trades_frame(decoder: Any, frame: object, ts_local: int, /) -> list[Any] | None: ...
def string_end(text: bytes, /) -> int: ...
def member_index(name: bytes, /) -> tuple[int, int]: ...
