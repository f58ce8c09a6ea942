"""Deribit's and Derive's execution clients over a session that answers every call with one body
(`_Session`), for the settlement and funding reads, or each method with its own (`Routed`), for
the reconciliation reads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import orjson
import structlog

from tests.support.helpers import registry
from tradingd.connectors.deribit.execution import DeribitExecution
from tradingd.connectors.derive.codec import DeriveDecoder
from tradingd.connectors.derive.execution import DeriveExecution
from tradingd.engine.model import InstrumentRegistry

S = 1_000_000_000


class _Session:
    """A venue session answering every call with one body (and counting calls)."""

    def __init__(self, body: Any, limit: int = 200) -> None:
        self.body = body
        self.calls = 0
        self.limit = limit
        self.trading = True
        self.log = structlog.get_logger("test")

    async def call_retrying(self, method: str, params: dict[str, Any]) -> bytes:
        self.calls += 1
        if self.calls > self.limit:
            raise RuntimeError(f"still asking after {self.calls - 1} calls")
        return orjson.dumps(self.body)


def _deribit(session: _Session) -> Any:
    # A stand-in for the session: the reads under test use only its `call_retrying`.
    return DeribitExecution(session, registry(), currencies=["BTC"])  # type: ignore[arg-type]


def _derive(session: _Session) -> Any:
    ex: Any = DeriveExecution.__new__(DeriveExecution)
    ex.session = session
    ex.registry = registry()
    ex._signer = SimpleNamespace(credentials=SimpleNamespace(subaccount_id=1))
    ex.clock = lambda: 2_000_000_000 * S
    return ex


class Routed(_Session):
    """A venue session answering each method with its body in `answers` (or what a callable
    there makes of the call's params), keeping the calls; a Derive decoder for the trades read."""

    def __init__(self, answers: Mapping[str, Any | Callable[[dict[str, Any]], Any]]) -> None:
        super().__init__(None)
        self.answers = dict(answers)
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.decoder = DeriveDecoder(InstrumentRegistry())

    async def call_retrying(self, method: str, params: dict[str, Any] | None = None) -> bytes:
        params = params or {}
        self.asked.append((method, params))
        self.calls += 1
        if self.calls > self.limit:
            raise RuntimeError(f"still asking after {self.calls - 1} calls")
        answer = self.answers[method]
        return orjson.dumps(answer(params) if callable(answer) else answer)
