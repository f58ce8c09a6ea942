"""The pinned metric catalog of issue 19 (names, types and labels are the contract between the
daemon's metrics server, deploy/grafana-dashboard.json and deploy/prometheus-rules.yml), and the
PromQL expressions those two files hold: the dashboard's panel targets with Grafana's template
variables substituted, and the metric names an expression reads."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent.parent
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
RULES = ROOT / "deploy" / "prometheus-rules.yml"
EXAMPLE_CONFIG = ROOT / "deploy" / "prometheus.yml"

Kind = Literal["counter", "gauge", "histogram"]

# name -> (type, labels). Counters are named as exposed (with `_total`).
CATALOG: dict[str, tuple[Kind, tuple[str, ...]]] = {
    "tradingd_info": ("gauge", ("version", "mode")),
    "tradingd_start_time_seconds": ("gauge", ()),
    "tradingd_ready": ("gauge", ()),
    "tradingd_kill_switch_engaged": ("gauge", ()),
    "tradingd_venue_up": ("gauge", ("venue",)),
    "tradingd_venue_feed_state": ("gauge", ("venue", "state")),
    "tradingd_venue_frames_total": ("counter", ("venue",)),
    "tradingd_venue_malformed_frames_total": ("counter", ("venue",)),
    "tradingd_venue_connects_total": ("counter", ("venue",)),
    "tradingd_venue_disconnects_total": ("counter", ("venue",)),
    "tradingd_venue_stale_total": ("counter", ("venue",)),
    "tradingd_venue_rate_limited_total": ("counter", ("venue",)),
    "tradingd_venue_request_timeouts_total": ("counter", ("venue",)),
    "tradingd_venue_session_faults_total": ("counter", ("venue",)),
    "tradingd_venue_last_frame_age_seconds": ("gauge", ("venue",)),
    "tradingd_book_gaps_total": ("counter", ("venue",)),
    "tradingd_book_resyncs_total": ("counter", ("venue",)),
    "tradingd_events_unrouted_total": ("counter", ()),
    "tradingd_strategy_events_total": ("counter", ("strategy",)),
    "tradingd_strategy_events_conflated_total": ("counter", ("strategy",)),
    "tradingd_strategy_events_dropped_total": ("counter", ("strategy",)),
    "tradingd_strategy_mailbox_depth": ("gauge", ("strategy",)),
    "tradingd_strategy_mailbox_high_water": ("gauge", ("strategy",)),
    "tradingd_strategy_errors_total": ("counter", ("strategy",)),
    "tradingd_strategy_failed": ("gauge", ("strategy",)),
    "tradingd_orders_sent_total": ("counter", ("strategy",)),
    "tradingd_orders_final_total": ("counter", ("strategy", "status", "reason")),
    "tradingd_open_orders": ("gauge", ("strategy",)),
    "tradingd_risk_refusals_total": ("counter", ("strategy", "check")),
    "tradingd_fills_total": ("counter", ("strategy",)),
    "tradingd_fees_usd": ("gauge", ("strategy",)),
    "tradingd_realized_pnl_usd": ("gauge", ("strategy",)),
    "tradingd_unrealized_pnl_usd": ("gauge", ("strategy",)),
    "tradingd_daily_pnl_usd": ("gauge", ("scope",)),
    "tradingd_position": ("gauge", ("strategy", "venue", "instrument")),
    "tradingd_journal_write_seconds": ("histogram", ()),
    "tradingd_journal_write_failures_total": ("counter", ()),
    "tradingd_event_loop_lateness_seconds": ("histogram", ()),
    "tradingd_tick_to_order_seconds": ("histogram", ("venue",)),
    "tradingd_order_ack_seconds": ("histogram", ("venue",)),
    "tradingd_reconcile_surprises_total": ("counter", ("kind",)),
    "tradingd_log_write_failures_total": ("counter", ()),
    "tradingd_recording_write_errors_total": ("counter", ()),
    "tradingd_alerts_sent_total": ("counter", ("channel",)),
    "tradingd_alerts_failed_total": ("counter", ("channel",)),
    "tradingd_alerts_suppressed_total": ("counter", ("reason",)),
}

# Catalog metrics that neither the dashboard nor the rules read, and why.
NOT_DISPLAYED = {
    # The webhook notifier's own counters: they exist only once a webhook alert was sent, and
    # the notifier logs each failure; the rules alert on the conditions themselves.
    "tradingd_alerts_sent_total",
    "tradingd_alerts_failed_total",
    "tradingd_alerts_suppressed_total",
}


# Labels Prometheus adds to every series it scrapes (the target's), beside the catalog's.
TARGET_LABELS = ("instance", "job")


def series_names() -> set[str]:
    """Every series name the catalog exposes: a histogram as its `_bucket`, `_sum`, `_count`."""
    names = set()
    for name, (kind, _) in CATALOG.items():
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names


def metric_of(series: str) -> str:
    """The catalog name a series belongs to (a histogram's `_bucket` -> the histogram)."""
    for suffix in ("_bucket", "_sum", "_count"):
        base = series.removesuffix(suffix)
        if base != series and CATALOG.get(base, ("", ()))[0] == "histogram":
            return base
    return series


_NAME = re.compile(r"\btradingd_[a-z0-9_]+\b")


def names_in(expr: str) -> set[str]:
    """The tradingd_ series names an expression reads."""
    return set(_NAME.findall(expr))


# Grafana's template variables, as the tests give them: every instance, venue and strategy (the
# "All" value is the regex `.*`), windows a Prometheus scraping every second fills.
GRAFANA_VALUES = {
    "instance": ".*",
    "venue": ".*",
    "strategy": ".*",
    "__rate_interval": "10s",
    "__interval": "2s",
    "__range": "1m",
    "__range_s": "60",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def substitute(expr: str) -> str:
    """`expr` with Grafana's variables replaced; an unknown variable raises `KeyError`."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return GRAFANA_VALUES[name]

    return _VARIABLE.sub(value, expr)


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel but the rows, including those inside a collapsed row."""
    for panel in board["panels"]:
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def dashboard_exprs(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target, variables substituted."""
    return [
        (f"panel {p['title']!r} target {t['refId']}", substitute(t["expr"]))
        for p in panels(board)
        for t in p["targets"]
    ]


_LABEL_VALUES = re.compile(r"^label_values\((\w+),\s*(\w+)\)$")


def label_value_queries(board: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(variable, metric, label) for each query variable (Grafana's `label_values(metric, label)`)."""
    out = []
    for var in board["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = _LABEL_VALUES.match(var["query"]["query"])
        if m is None:
            raise ValueError(f"variable {var['name']}: not label_values(metric, label): {var['query']}")
        out.append((var["name"], m.group(1), m.group(2)))
    return out
