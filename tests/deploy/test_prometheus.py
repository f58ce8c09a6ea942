"""A real Prometheus (Debian's `prometheus` package) with deploy/prometheus.yml and the rules of
deploy/prometheus-rules.yml: it runs them, and every PromQL expression of the dashboard and of the
rules is evaluated through its HTTP API, first with nothing to scrape, then scraping the daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from tests.deploy import prometheus
from tests.deploy.catalog import (
    dashboard,
    dashboard_exprs,
    label_value_queries,
    names_in,
    series_names,
)


async def _rules_evaluated(server: prometheus.Prometheus) -> list[dict[str, Any]]:
    """The rules once each has been evaluated at least once (else an empty list)."""
    rules = await server.rules()
    never = ("0001-01-01T00:00:00Z", "")
    return rules if all(r["lastEvaluation"] not in never for r in rules) else []


async def _poll(what: str, within: float, attempt: Any) -> Any:
    """Call the async `attempt` until it returns something truthy."""
    with trio.move_on_after(within):
        while True:
            value = await attempt()
            if value:
                return value
            await trio.sleep(0.2)
    raise AssertionError(f"not within {within} s: {what}")


async def test_prometheus_runs_the_example_config_and_rules_and_parses_every_dashboard_query(
    prometheus_exe: str, nursery: trio.Nursery, tmp_path: Path
) -> None:
    # The target's port answers nothing: the daemon is down, as far as Prometheus can tell.
    down = f"127.0.0.1:{prometheus.free_port()}"
    server = await prometheus.start(nursery, prometheus_exe, tmp_path, down)
    async with server:

        async def scraped_down() -> bool:
            return any(t["health"] == "down" for t in await server.targets())

        await _poll("the first scrape of the dead target", 10, scraped_down)
        [target] = await server.targets()
        assert target["labels"]["job"] == "tradingd" and target["scrapeUrl"] == f"http://{down}/metrics"

        async def rule_states() -> dict[str, str]:
            rules = await _rules_evaluated(server)
            states = {r["name"]: r["state"] for r in rules}
            return states if states.get("TradingdDown") == "pending" else {}

        # Every rule evaluates on the real engine; TradingdDown (up == 0, for 1 minute) is
        # pending for the dead target, the others have no tradingd_ series and stay inactive.
        states = await _poll("TradingdDown pending", 15, rule_states)
        rules = await server.rules()
        assert [(r["name"], r["lastError"]) for r in rules if r["health"] != "ok"] == []
        assert {name for name, state in states.items() if state != "inactive"} == {"TradingdDown"}
        [alert] = [a for r in rules if r["name"] == "TradingdDown" for a in r["alerts"]]
        assert alert["labels"]["instance"] == down and alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["summary"] == f"tradingd on {down} is not answering scrapes"
        for rule in rules:
            assert rule["labels"]["severity"] in ("critical", "warning"), rule["name"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["name"]
            assert names_in(rule["query"]) <= series_names(), rule["name"]

        # Every dashboard query parses and runs (no data yet: nothing to scrape).
        for where, expr in dashboard_exprs(dashboard()):
            try:
                await server.query(expr)
            except prometheus.PromQLError as exc:
                raise AssertionError(f"{where}: {exc}") from None


async def test_prometheus_scrapes_the_daemon_and_every_dashboard_and_rule_query_has_data(
    prometheus_exe: str, metrics_daemon: str, nursery: trio.Nursery, tmp_path: Path
) -> None:
    # Prometheus scrapes the daemon each second: every dashboard expression returns data, every
    # rule evaluates without error and every tradingd_ series a rule reads has data.
    server = await prometheus.start(nursery, prometheus_exe, tmp_path, metrics_daemon)
    async with server:
        board = dashboard()
        exprs = dashboard_exprs(board)

        async def scraped_up() -> bool:
            return any(t["health"] == "up" for t in await server.targets())

        await _poll(f"a successful scrape of {metrics_daemon}", 10, scraped_up)

        async def empty() -> list[str]:
            missing = []
            for where, expr in exprs:
                if not await server.query(expr):
                    missing.append(f"{where}: {expr}")
            for rule in await server.rules():
                for name in sorted(names_in(rule["query"])):
                    if not await server.query(name):
                        missing.append(f"rule {rule['name']}: no {name}")
            for variable, metric, label in label_value_queries(board):
                if not await server.label_values(label, metric):
                    missing.append(f"variable {variable}: no {label} values of {metric}")
            return missing

        # rate() and increase() need two scrapes within their window: poll until then.
        with trio.move_on_after(15):
            while missing := await empty():
                await trio.sleep(0.5)
        assert missing == [], "\n".join(missing)

        # The rules, evaluated by Prometheus itself now that the series exist: no errors.
        before = {r["name"]: r["lastEvaluation"] for r in await server.rules()}

        async def evaluated_again() -> list[dict[str, Any]]:
            rules = await server.rules()
            return rules if all(r["lastEvaluation"] != before[r["name"]] for r in rules) else []

        rules = await _poll("every rule evaluated again", 10, evaluated_again)
        assert [(r["name"], r["lastError"]) for r in rules if r["health"] != "ok"] == []
        for rule in rules:
            await server.query(rule["query"])  # raises PromQLError if Prometheus refuses it

        # The template variables list the daemon's venue and strategy, and the panels fed by
        # what the fixture's strategy did show it (not only zeros).
        values = {v: await server.label_values(label, m) for v, m, label in label_value_queries(board)}
        assert values == {"instance": [metrics_daemon], "venue": ["deribit"], "strategy": ["exercise"]}
        done = {
            'tradingd_fills_total{strategy="exercise"}': 1,
            'tradingd_orders_final_total{strategy="exercise", status="filled"}': 1,
            'tradingd_orders_final_total{strategy="exercise", status="cancelled"}': 1,
            'tradingd_risk_refusals_total{strategy="exercise", check="max_order_size"}': 1,
            'tradingd_position{strategy="exercise", venue="deribit", instrument="BTC-PERPETUAL"}': 10,
            'tradingd_reconcile_surprises_total{kind="foreign_order"}': 1,
            'tradingd_tick_to_order_seconds_count{venue="deribit"}': 2,
            'tradingd_order_ack_seconds_count{venue="deribit"}': 2,
        }
        shown = {}
        for expr in done:
            result = await server.query(f"sum({expr})")
            shown[expr] = float(result[0]["value"][1]) if result else None
        assert shown == done
