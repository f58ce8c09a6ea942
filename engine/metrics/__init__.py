"""The daemon's Prometheus metrics (`[metrics] listen`): the catalog (`CATALOG`, the names the
dashboard and the alerting rules are written against), a collector that builds it from one
`Snapshot` of the daemon, and the HTTP server that serves it from a thread of its own.

What the hot path pays: nothing per market event beyond what the engine already counts for
`tradingd status` (read at scrape time), and the time of the event a strategy is handling (one
attribute stored per event: `StrategySlot.handling_ns`). Latencies go into preallocated bucket
counts (engine.model.histogram): `python -m timeit` here, one observation, 148 ns against 885 ns
for `prometheus_client.Histogram.observe` (1.08 us for a labelled child, 2.96 us looking the label
up each time), so the engine keeps its own and the collector exports them as histogram families.

The names are loaded when first used (PEP 562): `parse_listen` (what the config checks) costs no
import of prometheus_client.

Depends on: model."""

import typing as _typing

from ..model import lazy as _lazy
from ._listen import format_address, parse_listen

if _typing.TYPE_CHECKING:
    from ._collector import CATALOG, FEED_STATES, MetricsCollector, Snapshot, families
    from ._server import MetricsServer, MetricsUnavailable

__all__ = [
    "CATALOG",
    "FEED_STATES",
    "MetricsCollector",
    "MetricsServer",
    "MetricsUnavailable",
    "Snapshot",
    "families",
    "format_address",
    "parse_listen",
]

_EXPORTS: dict[str, str] = {
    "CATALOG": "._collector",
    "FEED_STATES": "._collector",
    "MetricsCollector": "._collector",
    "Snapshot": "._collector",
    "families": "._collector",
    "MetricsServer": "._server",
    "MetricsUnavailable": "._server",
}


__getattr__, __dir__ = _lazy.attach(__name__, _EXPORTS, globals())
