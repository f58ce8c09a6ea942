"""deploy/'s monitoring files as files: promtool accepts the rules and the example config, the
dashboard imports as is into Grafana (a datasource input, variables, every panel querying the
chosen Prometheus) and reads only the pinned metric names, and every pinned metric is on it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from collections import Counter
from pathlib import Path

import attrs
import pytest

from tests.deploy import prometheus
from tests.deploy.catalog import (
    CATALOG,
    DASHBOARD,
    EXAMPLE_CONFIG,
    NOT_DISPLAYED,
    ROOT,
    RULES,
    TARGET_LABELS,
    dashboard,
    dashboard_exprs,
    label_value_queries,
    metric_of,
    names_in,
    panels,
    series_names,
    substitute,
)
from tradingd.config._schema import AlertsConfig
from tradingd.engine.alerts.alert import KINDS, Alert
from tradingd.engine.alerts.notifier import webhook_body
from tradingd.engine.alerts.options import FORMATS
from tradingd.engine.metrics import CATALOG as SERVED

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [prometheus.binary("promtool"), *args], capture_output=True, text=True, check=False, timeout=60
    )


def test_promtool_accepts_the_rules() -> None:
    proc = _promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    alerts = re.findall(r"^\s+- alert: (\w+)$", RULES.read_text(encoding="utf-8"), flags=re.M)
    assert f"SUCCESS: {len(alerts)} rules found" in proc.stdout
    # The webhook alerts' conditions, and the one only Prometheus can see (the daemon is gone).
    assert {
        "TradingdDown",
        "TradingdKillSwitchEngaged",
        "TradingdVenueNotLive",
        "TradingdStrategyFailed",
        "TradingdRiskRefusalBurst",
        "TradingdDailyLoss",
        "TradingdReconciliationSurprise",
        "TradingdJournalWriteFailures",
    } <= set(alerts)
    assert len(alerts) == len(set(alerts))


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    # Each alert fires on what should fire it (labels, rendered annotations), not just inside its
    # bound, and none for a healthy daemon: tests/deploy/prometheus-rules.test.yml.
    tests = Path(__file__).with_name("prometheus-rules.test.yml")
    proc = _promtool("test", "rules", str(tests))
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr
    alerts = set(re.findall(r"^\s+- alert: (\w+)$", RULES.read_text(encoding="utf-8"), flags=re.M))
    fired = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels", tests.read_text()))
    assert fired == alerts  # every rule is shown firing at least once


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    # The check above can fail: the same file with one expression broken is refused.
    broken = tmp_path / "rules.yml"
    text = RULES.read_text(encoding="utf-8")
    broken.write_text(
        text.replace("tradingd_kill_switch_engaged == 1", "tradingd_kill_switch_engaged == == 1")
    )
    proc = _promtool("check", "rules", str(broken))
    assert proc.returncode != 0
    assert '"TradingdKillSwitchEngaged": could not parse expression' in proc.stdout + proc.stderr


def test_promtool_accepts_the_example_config_as_it_is_in_the_clone() -> None:
    # As the README's first steps run it, in the repository: the rules file the config names
    # (relative to the config) is deploy/prometheus-rules.yml, not a name only an install has.
    proc = _promtool("check", "config", str(EXAMPLE_CONFIG))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 1 rule files found" in proc.stdout
    assert f"Checking {RULES}\n" in proc.stdout
    assert 'targets: ["127.0.0.1:9464"]' in EXAMPLE_CONFIG.read_text(encoding="utf-8")


def test_the_readme_debian_steps_give_a_config_promtool_accepts(tmp_path: Path) -> None:
    # The README's `sudo cp deploy/... /etc/prometheus/...` lines, done into tmp_path: the names
    # the README installs under are the ones the config reads.
    copies = re.findall(r"^sudo cp (deploy/\S+) /etc/prometheus/(\S+)", _readme_section(), flags=re.M)
    assert sorted(src for src, _ in copies) == ["deploy/prometheus-rules.yml", "deploy/prometheus.yml"]
    for src, dst in copies:
        shutil.copy(ROOT / src, tmp_path / dst)
    proc = _promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 1 rule files found" in proc.stdout
    assert "promtool check rules deploy/prometheus-rules.yml" in _readme_section()


def test_the_dashboard_imports_as_is() -> None:
    board = dashboard()
    # Grafana 12's export format; older and newer Grafanas migrate it on import.
    assert board["schemaVersion"] >= 39 and board["id"] is None and board["uid"] and board["title"]
    # The import form asks for a Prometheus data source and puts it where ${DS_PROMETHEUS} is:
    # the `datasource` variable's default, which every panel and variable queries.
    [ds_input] = board["__inputs"]
    assert ds_input["name"] == "DS_PROMETHEUS" and ds_input["type"] == "datasource"
    assert ds_input["pluginId"] == "prometheus"
    assert DASHBOARD.read_text(encoding="utf-8").count("${DS_PROMETHEUS}") == 1
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert list(variables) == ["datasource", "instance", "venue", "strategy"]
    ds = variables["datasource"]
    assert (ds["type"], ds["query"], ds["current"]["value"]) == (
        "datasource",
        "prometheus",
        "${DS_PROMETHEUS}",
    )
    for name in ("instance", "venue", "strategy"):
        var = variables[name]
        assert var["datasource"] == DATASOURCE and var["includeAll"] and var["multi"]
        assert var["allValue"] == ".*"  # regex matchers (=~) take it, and each chosen value
    assert [(v, label) for v, _, label in label_value_queries(board)] == [
        ("instance", "instance"),
        ("venue", "venue"),
        ("strategy", "strategy"),
    ]

    titles = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert titles == ["Daemon", "Venue health", "Strategies", "Orders and fills", "Latency", "PnL and risk"]
    ids = [p["id"] for p in board["panels"]] + [p["id"] for r in board["panels"] for p in r.get("panels", [])]
    assert len(ids) == len(set(ids))
    shown = list(panels(board))
    assert len(shown) >= 30
    for panel in shown:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["type"] in ("timeseries", "stat", "state-timeline"), panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE and target["expr"].strip(), panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]


def test_the_dashboard_reads_only_pinned_names_with_their_labels() -> None:
    board = dashboard()
    known = series_names()
    for where, expr in dashboard_exprs(board):
        assert names_in(expr), where
        assert names_in(expr) <= known, f"{where}: {sorted(names_in(expr) - known)}"
    for variable, metric, label in label_value_queries(board):
        assert label in CATALOG[metric][1] or label in TARGET_LABELS, variable
    # A panel's legend names only labels its metrics carry.
    for panel in panels(board):
        for target in panel["targets"]:
            labels = {label for name in names_in(target["expr"]) for label in CATALOG[metric_of(name)][1]}
            used = set(re.findall(r"\{\{(\w+)\}\}", target["legendFormat"]))
            assert used <= labels, f"{panel['title']}: {sorted(used - labels)}"


def test_every_dashboard_selector_keeps_to_the_chosen_instances() -> None:
    """Two daemons scraped by one Prometheus: without the instance matcher on every series a
    panel reads, their series are summed (or maxed) together whatever instance is chosen."""
    selector = re.compile(r"\b(tradingd_[a-z0-9_]+)\b(\{[^}]*\})?")
    for panel in panels(dashboard()):
        for target in panel["targets"]:
            found = list(selector.finditer(target["expr"]))
            assert found, panel["title"]
            for m in found:
                assert m.group(2) and 'instance=~"$instance"' in m.group(2), (panel["title"], m.group(0))


def test_every_pinned_metric_is_on_the_dashboard() -> None:
    shown = Counter(metric_of(n) for _, expr in dashboard_exprs(dashboard()) for n in names_in(expr))
    assert set(CATALOG) - set(shown) == NOT_DISPLAYED


def test_grafana_variables_are_substituted_and_an_unknown_one_is_refused() -> None:
    assert substitute('rate(x{venue=~"$venue"}[$__rate_interval])') == 'rate(x{venue=~".*"}[10s])'
    assert substitute('x{strategy=~"${strategy}"}') == 'x{strategy=~".*"}'
    assert substitute('x{instance=~"$instance"}') == 'x{instance=~".*"}'
    with pytest.raises(KeyError):
        substitute('x{job="$job"}')


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("### Deploy: metrics, dashboard, alerts\n")
    return text[start : text.index("\n## ", start)]


def test_the_readme_section_matches_the_files_it_names() -> None:
    section = _readme_section()
    for link in re.findall(r"\]\((deploy/[^)]+)\)", section):
        assert (ROOT / link).is_file(), link
    blocks = [tomllib.loads(b) for b in re.findall(r"```toml\n(.*?)```", section, flags=re.S)]
    [listen] = [b["metrics"]["listen"] for b in blocks if "metrics" in b]
    # The address the README turns on is the one the example config scrapes.
    assert f'targets: ["{listen}"]' in EXAMPLE_CONFIG.read_text(encoding="utf-8")
    # Every variable the README's [alerts] names has a commented example in the env file.
    env = (ROOT / "deploy" / "tradingd.env.example").read_text(encoding="utf-8")
    [alerts] = [b["alerts"] for b in blocks if "alerts" in b]
    for hook in alerts["webhooks"]:
        assert set(hook) == {"format", "url_env"} and f"\n# {hook['url_env']}=https://" in env, hook
    # One file mode for the env file, said the same everywhere: it holds webhook URLs (secrets).
    assert set(re.findall(r"\b0[0-7]{3}\b", env)) == {"0600"}


def test_the_readme_alerts_reference_says_the_defaults_formats_and_kinds() -> None:
    section = _readme_section()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, flags=re.M))
    fields = attrs.fields(AlertsConfig)
    assert set(rows) == {f.name for f in fields}
    for field in fields:
        if field.name != "webhooks":
            assert float(rows[field.name].split()[0]) == field.default, field.name
    assert "0 (off)" in rows["daily_loss_usd"]
    for fmt in FORMATS:
        assert f"`{fmt}`" in section, fmt
    for kind in KINDS:
        assert f"`{kind}`" in section, kind
    # The json body as the README shows it is the one posted (keys, `ts` an integer).
    [shown] = re.findall(r"`(\{\"kind\".*?\})`", section)
    example = json.loads(shown.replace('"..."', '"x"'))
    alert = Alert(kind="venue_down", subject="deribit", severity="critical", text="x", ts=example["ts"])
    assert webhook_body("json", alert, origin="o") == example and isinstance(example["ts"], int)


def test_the_readme_says_the_rules_bounds_as_the_rules_file_has_them() -> None:
    # Where the rules and the daemon count differently, the README says both sides' numbers.
    section, rules = _readme_section(), RULES.read_text(encoding="utf-8")
    [loss] = re.findall(r"expr: tradingd_daily_pnl_usd < -(\d+)\n", rules)
    assert f"`daily_loss_usd = {loss}` and `< -{loss}`" in section
    assert "`daily_loss_usd` is 0, off, until you set it" in section
    assert attrs.fields(AlertsConfig).daily_loss_usd.default == 0
    assert "sum by (instance, strategy) (increase(tradingd_risk_refusals_total[1m])) >= 10" in rules
    assert "`TradingdRiskRefusalBurst` fires on 10 refusals within a minute by one strategy" in section
    [silent] = re.findall(r"expr: tradingd_venue_last_frame_age_seconds > (\d+)\n", rules)
    assert f"`TradingdVenueSilent` fires {silent} s after its last frame" in section


def test_the_pinned_catalog_is_the_one_the_daemon_serves() -> None:
    # The dashboard and the rules are checked against tests/deploy/catalog.py; the daemon's own
    # list must say the same names, types and labels.
    assert {name: (entry[0], tuple(entry[1])) for name, entry in SERVED.items()} == CATALOG
