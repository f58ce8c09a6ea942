"""The venue SPI is really checked: mypy, run on a connector's execution client that lacks a
method of `VenueExecution` or has one with a wrong signature, reports it (a witness that the
Protocols of engine.venue.spi are what the connectors are held to, not documentation)."""

from __future__ import annotations

import re
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[2]

# Each line that must be an error ends with `# error: <what mypy's report of it must contain>`.
WITNESS = """\
from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from tradingd.engine.venue import Fill, FillReversal, Order, OrderUpdate, PrivateEvent, VenueExecution


class Complete(VenueExecution):
    venue = "x"

    @property
    def positions(self) -> None:
        return None

    @property
    def delivery(self) -> None:
        return None

    @property
    def funding(self) -> None:
        return None

    def prepare(self, order: Order) -> str | None:
        return None

    async def place(self, order: Order) -> Sequence[PrivateEvent]:
        return []

    async def cancel(self, order: Order) -> Sequence[PrivateEvent]:
        return []

    async def edit(
        self, order: Order, *, price: Decimal | None, size: Decimal | None
    ) -> Sequence[PrivateEvent]:
        return []

    async def open_orders(self) -> Sequence[OrderUpdate]:
        return []

    async def order_status(self, order: Order) -> Sequence[PrivateEvent]:
        return []

    async def recent_fills(self, since_ns: int) -> Sequence[Fill | FillReversal]:
        return []

    async def cancel_by_order_id(self, instrument: str, order_id: str) -> None:
        return None


class Lacking(VenueExecution):
    venue = "x"

    async def place(self, order: Order) -> Sequence[PrivateEvent]:
        return []


class WrongSignature(Complete):
    async def recent_fills(self, since_ns: str) -> Sequence[Fill | FillReversal]:  # error: "recent_fills"
        return []


class Structural:
    venue = "x"
    positions = None
    delivery = None
    funding = None

    def prepare(self, order: Order) -> None:
        return None

    async def place(self, order: Order) -> Sequence[PrivateEvent]:
        return []

    async def cancel(self, order: Order) -> Sequence[PrivateEvent]:
        return []

    async def edit(
        self, order: Order, *, price: Decimal | None, size: Decimal | None
    ) -> Sequence[PrivateEvent]:
        return []

    async def open_orders(self) -> Sequence[OrderUpdate]:
        return []

    async def order_status(self, order: Order) -> Sequence[PrivateEvent]:
        return []

    async def recent_fills(self, since_ns: int) -> Sequence[Fill | FillReversal]:
        return []


complete: VenueExecution = Complete()
lacking = Lacking()  # error: "cancel_by_order_id"
structural: VenueExecution = Structural()  # error: cancel_by_order_id
"""


def _expected(source: str) -> dict[int, str]:
    return {
        n: m.group(1)
        for n, line in enumerate(source.splitlines(), 1)
        if (m := re.search(r"# error: (.+)$", line)) is not None
    }


def test_mypy_reports_an_execution_client_that_does_not_follow_the_spi(tmp_path: Path) -> None:
    witness = tmp_path / "witness.py"
    witness.write_text(WITNESS, encoding="utf-8")
    report, errors, status = api.run(
        [
            str(witness),
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            "--hide-error-context",
        ]
    )
    assert errors == ""
    found: dict[int, list[str]] = {}
    for line in report.splitlines():
        m = re.match(rf"{re.escape(str(witness))}:(\d+): (?:error|note): (.+)$", line)
        assert m is not None, line  # every report is about the witness (the SPI itself is clean)
        found.setdefault(int(m.group(1)), []).append(m.group(2))
    expected = _expected(WITNESS)
    assert status == 1
    assert sorted(found) == sorted(expected)  # the complete client has no error
    for number, what in expected.items():
        assert any(what in text for text in found[number]), (number, found[number])
