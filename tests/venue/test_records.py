"""Reading a venue's list answers record by record (engine/venue/records.py): a record that
cannot be read is left out, logged and counted as it is refused, so a bug that ends the loop
later (an exception beyond `RECORD_ERRORS`) never leaves a refusal logged but uncounted."""

from __future__ import annotations

import msgspec
import pytest
import structlog

from tradingd.engine.venue import ORDER_LEFT_OUT, SaidOnce, read_records


class _Record(msgspec.Struct):
    order_id: str
    amount: int


_decode = msgspec.json.Decoder(_Record).decode


def _read(raw: msgspec.Raw) -> _Record:
    record = _decode(raw)
    if record.amount < 0:
        raise RuntimeError("a codec bug: not a record's problem")
    return record


def _records(*texts: bytes) -> list[msgspec.Raw]:
    return [msgspec.Raw(t) for t in texts]


def test_each_refused_record_is_counted_as_it_is_refused_even_when_a_bug_ends_the_loop() -> None:
    """Two records that cannot be read (a string amount, no id) are left out, each told to
    `on_refused` as it is and logged; then a codec bug (RuntimeError, beyond RECORD_ERRORS)
    ends the loop and propagates. The two refusals already logged are counted. Before, they
    were counted only from the returned total, which the raise never let the caller see."""
    counted: list[int] = []
    records = _records(
        b'{"order_id": "A", "amount": 1}',
        b'{"order_id": "B", "amount": "x"}',
        b'{"amount": 2}',
        b'{"order_id": "C", "amount": -1}',
        b'{"order_id": "D", "amount": "y"}',
    )
    with structlog.testing.capture_logs() as logs, pytest.raises(RuntimeError, match="codec bug"):
        read_records(
            records,
            _read,
            log=structlog.get_logger("test"),
            event="orders.record_refused",
            venue="deribit",
            action=ORDER_LEFT_OUT,
            on_refused=lambda: counted.append(1),
        )
    refused = [e for e in logs if e["event"] == "orders.record_refused"]
    assert [e["order_id"] for e in refused] == ["B", None]
    assert len(counted) == len(refused) == 2  # every refusal logged is counted, none after the bug


def test_the_count_returned_and_the_one_told_agree() -> None:
    """Without a bug: what was read in order, and the refusals returned and told alike."""
    counted: list[int] = []
    out, refused = read_records(
        _records(b'{"order_id": "A", "amount": 1}', b"[1]", b'{"order_id": "C", "amount": 3}'),
        _read,
        log=structlog.get_logger("test"),
        event="orders.record_refused",
        venue="deribit",
        action=ORDER_LEFT_OUT,
        on_refused=lambda: counted.append(1),
    )
    assert [r.order_id for r in out] == ["A", "C"]
    assert refused == len(counted) == 1


def test_a_record_is_said_once_until_it_is_the_oldest_of_more_than_kept() -> None:
    """`SaidOnce`: the first meeting of a record's bytes is said, later ones are not; past `kept`
    records the oldest is forgotten and said again if met (the memory stays bounded)."""
    said = SaidOnce(kept=2)
    assert [said.first(r) for r in (b"a", b"a", b"b", b"a")] == [True, False, True, False]
    assert said.first(b"c") and len(said) == 2  # "a", the oldest, is forgotten
    assert [said.first(r) for r in (b"b", b"c", b"a")] == [False, False, True]
