"""The backtest: the kernel that replays recordings through the runtime's router and order flow
against the simulated venue (model.simvenue), its statistics, and the JSON report. Also
re-exports what a backtest data source (a connector's sample generator, a Tardis reader)
writes and reads: the recording format of the store room, and the simulated venue.

Depends on: model, venue, store, logs, runtime, surface."""

from ..model.simvenue import SimulatedVenue
from ..store.recorder import RecordingSet
from ..store.recording import RecordingReader, RecordingWriter, open_binary
from .kernel import (
    BacktestKernel,
    BacktestResult,
    BacktestSettings,
    DataSource,
    FillRecord,
    FrameSource,
    StrategyResult,
    StrategySeries,
    max_drawdown,
    sharpe_ratio,
    sortino_ratio,
)
from .report import print_summary, report_dict, write_report
from .span import data_span

__all__ = [
    "BacktestKernel",
    "BacktestResult",
    "BacktestSettings",
    "DataSource",
    "FillRecord",
    "FrameSource",
    "RecordingReader",
    "RecordingSet",
    "RecordingWriter",
    "SimulatedVenue",
    "StrategyResult",
    "StrategySeries",
    "data_span",
    "max_drawdown",
    "open_binary",
    "print_summary",
    "report_dict",
    "sharpe_ratio",
    "sortino_ratio",
    "write_report",
]
