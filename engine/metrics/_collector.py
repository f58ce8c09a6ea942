"""The metric catalog: a `Snapshot` of the daemon (its `tradingd status` dict and its latency
histograms, taken in the trio thread) as Prometheus metric families.

Names, types and labels are a contract (the dashboard and the alerting rules in `deploy/` are
written against them): `CATALOG` lists every one. Label values are bounded: venue, strategy and
instrument names (what the config trades), states, reason and check classes. Never an order id,
a client order id or any free text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, Literal

import attrs
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ..model.events import OrderState
from ..model.histogram import HistogramCopy
from ..model.orders import FINAL_REASONS
from ..model.risk import CHECKS

__all__ = ["CATALOG", "FEED_STATES", "MetricsCollector", "Snapshot", "families"]

Kind = Literal["counter", "gauge", "histogram"]

# The "<status>/<reason>" classes of tradingd_orders_final_total, all served from the start.
_FINAL_KEYS: Final[tuple[str, ...]] = tuple(
    f"{state.value}/{reason}" for state in OrderState if state.is_final for reason in FINAL_REASONS
)
_FINAL_KEY_SET: Final = frozenset(_FINAL_KEYS)

# name (a counter's with its `_total`) -> (type, labels, help).
CATALOG: Final[dict[str, tuple[Kind, tuple[str, ...], str]]] = {
    "tradingd_info": ("gauge", ("version", "mode"), "tradingd's version and mode (always 1)."),
    "tradingd_start_time_seconds": ("gauge", (), "When the daemon started (unix seconds)."),
    "tradingd_ready": (
        "gauge",
        (),
        "1 once every venue has been connected and subscribed since the start (stays 1 after).",
    ),
    "tradingd_kill_switch_engaged": ("gauge", (), "1 while the kill switch is engaged."),
    "tradingd_venue_up": ("gauge", ("venue",), "1 while the venue's feed is live."),
    "tradingd_venue_feed_state": (
        "gauge",
        ("venue", "state"),
        "The venue's feed state (live, stale, connecting, down): 1 for the current one.",
    ),
    "tradingd_venue_frames_total": ("counter", ("venue",), "Frames received from the venue."),
    "tradingd_venue_malformed_frames_total": (
        "counter",
        ("venue",),
        "Frames from the venue that could not be read (or whose handling failed).",
    ),
    "tradingd_venue_connects_total": ("counter", ("venue",), "Connections made to the venue."),
    "tradingd_venue_disconnects_total": (
        "counter",
        ("venue",),
        "Connections to the venue lost or closed (a reconnect is a disconnect then a connect).",
    ),
    "tradingd_venue_stale_total": ("counter", ("venue",), "Times the venue's feed went silent (stale)."),
    "tradingd_venue_rate_limited_total": ("counter", ("venue",), "Requests the venue refused for rate."),
    "tradingd_venue_session_faults_total": (
        "counter",
        ("venue",),
        "Unexpected exceptions out of the venue session's own tasks (each reconnected; a bug).",
    ),
    "tradingd_venue_request_timeouts_total": (
        "counter",
        ("venue",),
        "Requests to the venue that got no answer in time.",
    ),
    "tradingd_venue_last_frame_age_seconds": (
        "gauge",
        ("venue",),
        "Seconds since the venue's last frame (absent before the first).",
    ),
    "tradingd_book_gaps_total": ("counter", ("venue",), "Order book gaps (a broken chain, a crossed book)."),
    "tradingd_book_resyncs_total": ("counter", ("venue",), "Order books resnapshotted after a gap."),
    "tradingd_events_unrouted_total": ("counter", (), "Events no strategy was subscribed to."),
    "tradingd_strategy_events_total": ("counter", ("strategy",), "Events handed to the strategy."),
    "tradingd_strategy_events_conflated_total": (
        "counter",
        ("strategy",),
        "Events folded into a newer one in the strategy's mailbox (tickers, book updates).",
    ),
    "tradingd_strategy_events_dropped_total": (
        "counter",
        ("strategy",),
        "Trades dropped from the strategy's full mailbox.",
    ),
    "tradingd_strategy_mailbox_depth": ("gauge", ("strategy",), "Events waiting in the strategy's mailbox."),
    "tradingd_strategy_mailbox_high_water": (
        "gauge",
        ("strategy",),
        "The most events that waited in the strategy's mailbox at once.",
    ),
    "tradingd_strategy_errors_total": (
        "counter",
        ("strategy",),
        "Exceptions raised by the strategy's on_event.",
    ),
    "tradingd_strategy_failed": ("gauge", ("strategy",), "1 once the strategy has failed (stopped)."),
    "tradingd_orders_sent_total": (
        "counter",
        ("strategy",),
        "Orders accepted by the pre-trade checks and sent.",
    ),
    "tradingd_orders_final_total": (
        "counter",
        ("strategy", "status", "reason"),
        "Orders that reached a final state, by status and reason class.",
    ),
    "tradingd_open_orders": ("gauge", ("strategy",), "The strategy's orders working now."),
    "tradingd_risk_refusals_total": (
        "counter",
        ("strategy", "check"),
        "Orders (and edits) refused by a pre-trade check, by check.",
    ),
    "tradingd_fills_total": ("counter", ("strategy",), "Fills booked."),
    "tradingd_fees_usd": ("gauge", ("strategy",), "Fees paid (USD; rebates lower it)."),
    "tradingd_realized_pnl_usd": ("gauge", ("strategy",), "Realized PnL (USD)."),
    "tradingd_unrealized_pnl_usd": ("gauge", ("strategy",), "Unrealized PnL at the marks (USD)."),
    "tradingd_daily_pnl_usd": (
        "gauge",
        ("scope",),
        "Today's PnL (UTC day, since the risk day began): the engine's, or a strategy's (USD).",
    ),
    "tradingd_position": ("gauge", ("strategy", "venue", "instrument"), "Net position (instrument units)."),
    "tradingd_journal_write_seconds": ("histogram", (), "Seconds each order journal write took."),
    "tradingd_journal_write_failures_total": ("counter", (), "Order journal writes that failed."),
    "tradingd_event_loop_lateness_seconds": (
        "histogram",
        (),
        "How late the event loop woke a sleeping task (seconds; sampled 10 times a second).",
    ),
    "tradingd_tick_to_order_seconds": (
        "histogram",
        ("venue",),
        "From the receipt of the event a strategy was handling to its order handed to the venue's sender.",
    ),
    "tradingd_order_ack_seconds": (
        "histogram",
        ("venue",),
        "From an order handed to the venue's sender to the venue's first answer (ack, fill or refusal).",
    ),
    "tradingd_reconcile_surprises_total": (
        "counter",
        ("kind",),
        "What reconciliations and reports found (foreign_order, venue_override, order_id_conflict, "
        "unmatched_fill, fill_not_booked, funding_not_booked, outcome_unrecorded, position_mismatch).",
    ),
    "tradingd_log_write_failures_total": ("counter", (), "Log lines that could not be written."),
    "tradingd_recording_write_errors_total": (
        "counter",
        (),
        "Recording writes that failed (absent without recording).",
    ),
    "tradingd_alerts_sent_total": ("counter", ("channel",), "Alerts posted, by webhook format."),
    "tradingd_alerts_failed_total": ("counter", ("channel",), "Alert posts that failed, by webhook format."),
    "tradingd_alerts_suppressed_total": (
        "counter",
        ("reason",),
        "Alerts not posted: a repeat (dedup), beyond the rate (rate), a full queue (queue_full).",
    ),
}

FEED_STATES: Final = ("live", "stale", "connecting", "down")
SURPRISES: Final = (
    "foreign_order",
    "venue_override",
    "order_id_conflict",
    "unmatched_fill",
    "fill_not_booked",
    "funding_not_booked",
    "outcome_unrecorded",
    "position_mismatch",
)


@attrs.frozen
class Snapshot:
    """What one scrape shows, taken at once in the trio thread (so nothing is read while the
    engine changes it): `Daemon.status()` (one source of truth with `tradingd status`), the
    latency histograms copied (by name: `tick_to_order` and `order_ack` by venue,
    `journal_write` and `event_loop_lateness` under ""), and the alert notifier's counters
    (`sent`, `failed`, `suppressed`: label value -> count), None without alerts."""

    status: Mapping[str, Any]
    version: str
    histograms: Mapping[str, Mapping[str, HistogramCopy]] = attrs.field(factory=dict)
    alerts: Mapping[str, Mapping[str, int]] | None = None


class _Families:
    """The families of one scrape, each made (and kept in `CATALOG`'s order) when first used."""

    def __init__(self) -> None:
        self.made: dict[str, Metric] = {}

    def _family(self, name: str) -> Metric:
        found = self.made.get(name)
        if found is None:
            kind, labels, doc = CATALOG[name]
            if kind == "counter":
                found = CounterMetricFamily(name, doc, labels=labels)
            elif kind == "gauge":
                found = GaugeMetricFamily(name, doc, labels=labels)
            else:
                found = HistogramMetricFamily(name, doc, labels=labels)
            self.made[name] = found
        return found

    def add(self, name: str, value: float | None, *labels: str) -> None:
        """One sample (none for a value the daemon does not have)."""
        if value is None:
            return
        family = self._family(name)
        assert isinstance(family, CounterMetricFamily | GaugeMetricFamily)
        family.add_metric(list(labels), float(value))

    def histogram(self, name: str, copy: HistogramCopy, *labels: str) -> None:
        family = self._family(name)
        assert isinstance(family, HistogramMetricFamily)
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(copy.bounds, copy.counts, strict=False):
            running += n
            buckets.append((_le(bound), running))
        buckets.append(("+Inf", running + copy.counts[-1]))
        family.add_metric(list(labels), buckets, copy.sum)

    def ordered(self) -> list[Metric]:
        return [self.made[name] for name in CATALOG if name in self.made]


def _le(bound: float) -> str:
    """A bucket's bound as Prometheus's Go client writes it (`1.0`, `0.00025`)."""
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
    return text


def _flag(value: object) -> float:
    return 1.0 if value else 0.0


def families(snap: Snapshot, held: set[tuple[str, str, str]] | None = None) -> list[Metric]:
    """The snapshot as metric families (`CATALOG`): what a scrape returns. `held`, when given,
    is the (strategy, venue, instrument) triples served before (updated here): the ledger drops
    a flat position, so those now absent are served at 0, not left out (a gap on the dashboard)."""
    st = snap.status
    out = _Families()
    out.add("tradingd_info", 1, snap.version, str(st["mode"]))
    out.add("tradingd_start_time_seconds", st["started_ns"] / 1e9)
    out.add("tradingd_ready", _flag(st["ready"]))
    out.add("tradingd_kill_switch_engaged", _flag(st["kill_switch"] is not None))
    now_ns = st["updated_ns"]
    for venue, v in sorted(st["venues"].items()):
        feed = v["feed"]
        out.add("tradingd_venue_up", _flag(feed == "live"), venue)
        for state in FEED_STATES:
            out.add("tradingd_venue_feed_state", _flag(feed == state), venue, state)
        for name, key in (
            ("tradingd_venue_frames_total", "frames"),
            ("tradingd_venue_malformed_frames_total", "malformed"),
            ("tradingd_venue_connects_total", "connects"),
            ("tradingd_venue_disconnects_total", "disconnects"),
            ("tradingd_venue_stale_total", "stale"),
            ("tradingd_venue_rate_limited_total", "rate_limited"),
            ("tradingd_venue_request_timeouts_total", "request_timeouts"),
            ("tradingd_venue_session_faults_total", "session_faults"),
            ("tradingd_book_gaps_total", "book_gaps"),
            ("tradingd_book_resyncs_total", "resubscribed_books"),
        ):
            out.add(name, v.get(key), venue)
        last = v.get("last_frame_ns")
        if last is not None:
            out.add("tradingd_venue_last_frame_age_seconds", max(0.0, (now_ns - last) / 1e9), venue)
    out.add("tradingd_events_unrouted_total", st["unrouted_events"])
    out.add("tradingd_daily_pnl_usd", st.get("today_pnl"), "engine")
    for strategy, s in sorted(st["strategies"].items()):
        out.add("tradingd_strategy_events_total", s["events"], strategy)
        out.add("tradingd_strategy_events_conflated_total", s["conflated"] + s["merged"], strategy)
        out.add("tradingd_strategy_events_dropped_total", s["dropped"], strategy)
        out.add("tradingd_strategy_mailbox_depth", s["mailbox_depth"], strategy)
        out.add("tradingd_strategy_mailbox_high_water", s["queued_high_water"], strategy)
        out.add("tradingd_strategy_errors_total", s["errors"], strategy)
        out.add("tradingd_strategy_failed", _flag(s["state"] == "failed"), strategy)
        out.add("tradingd_orders_sent_total", s["orders_sent"], strategy)
        # Every check and every (status, reason) class from the first scrape, at 0 until counted:
        # increase() cannot see a series go from absent to N, so a first burst after a start
        # would never alert. Bounded: 10 checks and 4 x 9 classes a strategy.
        finals = s["orders_final"]
        for key in _FINAL_KEYS:
            status, _, reason = key.partition("/")
            out.add("tradingd_orders_final_total", finals.get(key, 0), strategy, status, reason)
        for key, n in sorted(finals.items()):
            if key not in _FINAL_KEY_SET:  # a class this module does not know: still served
                status, _, reason = key.partition("/")
                out.add("tradingd_orders_final_total", n, strategy, status, reason)
        out.add("tradingd_open_orders", s["open_orders"], strategy)
        refusals = s["risk_refusals"]
        for check in CHECKS:
            out.add("tradingd_risk_refusals_total", refusals.get(check, 0), strategy, check)
        for check, n in sorted(refusals.items()):
            if check not in CHECKS:
                out.add("tradingd_risk_refusals_total", n, strategy, check)
        out.add("tradingd_fills_total", s["fills"], strategy)
        out.add("tradingd_fees_usd", s["fees"], strategy)
        out.add("tradingd_realized_pnl_usd", s["realized_pnl"], strategy)
        out.add("tradingd_unrealized_pnl_usd", s["unrealized_pnl"], strategy)
        out.add("tradingd_daily_pnl_usd", s.get("today_pnl"), strategy)
        positions: dict[tuple[str, str], float] = {}
        for where, qty in s["positions"].items():
            venue, _, instrument = where.partition(":")
            positions[venue, instrument] = float(qty)
        if held is not None:
            held.update((strategy, *key) for key in positions)
            for owner, venue, instrument in held:
                if owner == strategy:
                    positions.setdefault((venue, instrument), 0.0)
        for (venue, instrument), qty in sorted(positions.items()):
            out.add("tradingd_position", qty, strategy, venue, instrument)
    journal = st.get("journal")
    out.add("tradingd_journal_write_failures_total", journal["failures"] if journal else 0)
    surprises = st.get("reconcile_surprises") or {}
    for kind in SURPRISES:
        out.add("tradingd_reconcile_surprises_total", surprises.get(kind, 0), kind)
    out.add("tradingd_log_write_failures_total", st["log_write_failures"])
    recording = st.get("recording")
    if recording is not None:
        out.add("tradingd_recording_write_errors_total", recording["write_errors"])
    for name, by_label in (
        ("tradingd_journal_write_seconds", snap.histograms.get("journal_write", {})),
        ("tradingd_event_loop_lateness_seconds", snap.histograms.get("event_loop_lateness", {})),
        ("tradingd_tick_to_order_seconds", snap.histograms.get("tick_to_order", {})),
        ("tradingd_order_ack_seconds", snap.histograms.get("order_ack", {})),
    ):
        labelled = bool(CATALOG[name][1])
        for label, copy in sorted(by_label.items()):
            out.histogram(name, copy, *((label,) if labelled else ()))
    if snap.alerts is not None:
        for name, key in (
            ("tradingd_alerts_sent_total", "sent"),
            ("tradingd_alerts_failed_total", "failed"),
            ("tradingd_alerts_suppressed_total", "suppressed"),
        ):
            for label, n in sorted(snap.alerts.get(key, {}).items()):
                out.add(name, n, label)
    return out.ordered()


class MetricsCollector(Collector):
    """A prometheus_client collector over `take()`, which returns the daemon's `Snapshot` (taken
    in the trio thread; engine.metrics.MetricsServer gives it). Register it in a registry of its
    own (`CollectorRegistry()`), never the process-wide default."""

    def __init__(self, take: Callable[[], Snapshot]) -> None:
        self.take = take
        # The positions served since start (bounded by what was traded): flat ones stay at 0.
        # Scrapes run in the server's threads, possibly two at once: never the trio thread.
        self._held: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        snap = self.take()
        with self._lock:
            made = families(snap, self._held)
        yield from made
