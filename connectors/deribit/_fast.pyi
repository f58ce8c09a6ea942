# The compiled Deribit book path (_fast.c); codec.py holds the Python reference of each function.

from collections.abc import Callable
from typing import Any

def setup(
    namespace: dict[str, Any],
    apply: Callable[..., Any],
    book_events: Callable[..., Any],
    book_update: Callable[..., Any],
    venue: str,
    ms: int,
    book_type: type,
    data_type: type,
    ticker: Callable[..., Any],
    /,
) -> None: ...
def apply(
    book: Any, bid_levels: Any, ask_levels: Any, /
) -> tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]: ...
def book_events(decoder: Any, data: Any, ts_local: int, /) -> list[Any]: ...
def book_frame(decoder: Any, frame: bytes, ts_local: int, /) -> list[Any] | None: ...
def quote_frame(decoder: Any, frame: bytes, ts_local: int, /) -> list[Any] | None: ...
def decode(decoder: Any, frame: Any, ts_local: int, /) -> list[Any]: ...
def setup_decode(
    decode: Callable[..., Any], whole_raised: Callable[..., Any], whole_returned: Callable[..., Any], /
) -> None: ...
def method(cls: type, /) -> Any:
    """`cls.decode`: the C entry on a compiled decoder, the guarded Python decode on any other."""
