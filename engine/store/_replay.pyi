# The compiled replay of the decoded-event cache (_replay.c); evcache.ReplayDecoder.apply,
# OrderBook.update and evformat (PyEncoder, py_records) are the Python references; scan_lines is
# RecordingReader._read_reference's fast path (recording.py).

from collections.abc import Callable, Iterator
from typing import Any

class Replay:
    # `owner` is held weakly (it must be weak-referenceable): calling a Replay whose owner is gone
    # raises ReferenceError.
    def __init__(
        self, owner: Any, classes: frozenset[type], book_update: type, malformed: type, /
    ) -> None: ...
    def __call__(self, body: Any, ts_local: int, /) -> list[Any]: ...

class Encoder:
    count: int
    def __init__(
        self,
        kinds: dict[type, int],
        enums: dict[type, dict[Any, int]],
        register: Callable[[Any], int],
        dumps: Callable[[Any], bytes],
        /,
    ) -> None: ...
    def add(self, ts: int | None, idx: int, body: Any, /) -> None: ...
    def take(self) -> bytes: ...

class Records(Iterator[tuple[Any, int, Any]]):
    def __init__(
        self,
        data: bytes,
        pos: int,
        count: int,
        sources: int,
        structs: tuple[type, ...],
        consts: tuple[Any, ...],
        loads: Callable[[bytes], Any],
        damaged: Callable[[BaseException], BaseException] | None,
        /,
    ) -> None: ...
    def __next__(self) -> tuple[Any, int, Any]: ...

def setup(order_book: type, /) -> None: ...
def update(book: Any, bids: Any, asks: Any, /) -> None: ...
def scan_lines(
    buf: bytes, pos: int, end: int, prefix: bytes, base: int, tag: int | None, limit: int, /
) -> tuple[list[Any], int, bytes, int]: ...

# Test hooks (engine/_typecache.h, compiled here): a class's version tag as the compiled modules
# trust it (0: none), and what `name` is in the dictionaries of its MRO ((): nothing).
def type_version(cls: type, /) -> int: ...
def type_lookup(cls: type, name: str, /) -> tuple[Any, ...]: ...
