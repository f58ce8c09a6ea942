# The compiled replay of the decoded-event cache (_replay.c); evcache.ReplayDecoder.apply and
# OrderBook.update are the Python references.

from typing import Any

class Replay:
    def __init__(
        self, owner: Any, classes: frozenset[type], book_update: type, order_book: type, malformed: type, /
    ) -> None: ...
    def __call__(self, body: Any, ts_local: int, /) -> list[Any]: ...

def update(book: Any, bids: Any, asks: Any, /) -> None: ...
