"""The runtime (trio): the strategy API and its discovery, strategy contexts, the market router
and strategy mailboxes, the order flow (tracker, risk, ledger, journal, reconciliation), the
execution gateway, and the live engine that runs them in `live` and `paper` modes.

Depends on: model, venue (the SPI it drives), store (the journal), logs (redaction), surface
(the chains' volatility surfaces strategies ask for)."""

from .context import BaseContext
from .flow import OrderFlow
from .gateway import ExecutionGateway
from .live import LiveEngine, PaperExecution
from .mailbox import Mailbox, MailboxStats, log_drops, merge_book_updates
from .router import MarketRouter, StrategySlot, run_strategy
from .strategy import (
    FailurePolicy,
    Strategy,
    StrategyContext,
    StrategyFailure,
    available_strategies,
    load_strategy_class,
    split_strategy_fault,
)

__all__ = [
    "BaseContext",
    "ExecutionGateway",
    "FailurePolicy",
    "LiveEngine",
    "Mailbox",
    "MailboxStats",
    "MarketRouter",
    "OrderFlow",
    "PaperExecution",
    "Strategy",
    "StrategyContext",
    "StrategyFailure",
    "StrategySlot",
    "available_strategies",
    "load_strategy_class",
    "log_drops",
    "merge_book_updates",
    "run_strategy",
    "split_strategy_fault",
]
