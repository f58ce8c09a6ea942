"""The metric catalog as a scrape returns it, parsed back with prometheus_client's own parser:
every pinned name with its type and labels (the contract the dashboard and the alerting rules are
written against), values from the daemon's own counters, and never an order id, a client order
id or a secret in it."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon_process import CLIENT_ID, SECRET
from tests.support.daemon_strategies import LIVE_ONCE_CONFIG
from tests.support.flows import S, fill
from tests.support.helpers import PERP, request, ticker
from tradingd.cli.settings import daemon_settings
from tradingd.config import load_config
from tradingd.engine import OrderRejected, Side
from tradingd.engine.daemon import Daemon
from tradingd.engine.metrics import CATALOG, MetricsCollector, Snapshot, families
from tradingd.engine.model.events import OrderState
from tradingd.engine.model.histogram import LATENCY_BUCKETS_S, SLOW_BUCKETS_S
from tradingd.engine.model.risk import CHECKS
from tradingd.engine.runtime.flow import FINAL_REASONS
from tradingd.engine.venue import HeldFunding

# COMMON19 "the metric catalog": name -> (type, labels). Written out here, not read from the code:
# a rename there must fail here.
PINNED: dict[str, tuple[str, set[str]]] = {
    "tradingd_info": ("gauge", {"version", "mode"}),
    "tradingd_start_time_seconds": ("gauge", set()),
    "tradingd_ready": ("gauge", set()),
    "tradingd_kill_switch_engaged": ("gauge", set()),
    "tradingd_venue_up": ("gauge", {"venue"}),
    "tradingd_venue_feed_state": ("gauge", {"venue", "state"}),
    "tradingd_venue_frames_total": ("counter", {"venue"}),
    "tradingd_venue_malformed_frames_total": ("counter", {"venue"}),
    "tradingd_venue_connects_total": ("counter", {"venue"}),
    "tradingd_venue_disconnects_total": ("counter", {"venue"}),
    "tradingd_venue_stale_total": ("counter", {"venue"}),
    "tradingd_venue_rate_limited_total": ("counter", {"venue"}),
    "tradingd_venue_request_timeouts_total": ("counter", {"venue"}),
    "tradingd_venue_session_faults_total": ("counter", {"venue"}),
    "tradingd_venue_last_frame_age_seconds": ("gauge", {"venue"}),
    "tradingd_book_gaps_total": ("counter", {"venue"}),
    "tradingd_book_resyncs_total": ("counter", {"venue"}),
    "tradingd_events_unrouted_total": ("counter", set()),
    "tradingd_strategy_events_total": ("counter", {"strategy"}),
    "tradingd_strategy_events_conflated_total": ("counter", {"strategy"}),
    "tradingd_strategy_events_dropped_total": ("counter", {"strategy"}),
    "tradingd_strategy_mailbox_depth": ("gauge", {"strategy"}),
    "tradingd_strategy_mailbox_high_water": ("gauge", {"strategy"}),
    "tradingd_strategy_errors_total": ("counter", {"strategy"}),
    "tradingd_strategy_failed": ("gauge", {"strategy"}),
    "tradingd_orders_sent_total": ("counter", {"strategy"}),
    "tradingd_orders_final_total": ("counter", {"strategy", "status", "reason"}),
    "tradingd_open_orders": ("gauge", {"strategy"}),
    "tradingd_risk_refusals_total": ("counter", {"strategy", "check"}),
    "tradingd_fills_total": ("counter", {"strategy"}),
    "tradingd_fees_usd": ("gauge", {"strategy"}),
    "tradingd_realized_pnl_usd": ("gauge", {"strategy"}),
    "tradingd_unrealized_pnl_usd": ("gauge", {"strategy"}),
    "tradingd_daily_pnl_usd": ("gauge", {"scope"}),
    "tradingd_position": ("gauge", {"strategy", "venue", "instrument"}),
    "tradingd_journal_write_seconds": ("histogram", set()),
    "tradingd_journal_write_failures_total": ("counter", set()),
    "tradingd_event_loop_lateness_seconds": ("histogram", set()),
    "tradingd_tick_to_order_seconds": ("histogram", {"venue"}),
    "tradingd_order_ack_seconds": ("histogram", {"venue"}),
    "tradingd_reconcile_surprises_total": ("counter", {"kind"}),
    "tradingd_log_write_failures_total": ("counter", set()),
    "tradingd_recording_write_errors_total": ("counter", set()),
    "tradingd_alerts_sent_total": ("counter", {"channel"}),
    "tradingd_alerts_failed_total": ("counter", {"channel"}),
    "tradingd_alerts_suppressed_total": ("counter", {"reason"}),
}

CONFIG = LIVE_ONCE_CONFIG
CID, OID, TRADE = "once-k3y7-1", "V-77777", "T-55555"


def _daemon(tmp_path: Path, extra: str = "") -> Daemon:
    path = tmp_path / "live.toml"
    path.write_text(CONFIG + extra, encoding="utf-8")
    return Daemon(
        daemon_settings(load_config(path)),
        environ={"DERIBIT_CLIENT_ID": CLIENT_ID, "DERIBIT_CLIENT_SECRET": SECRET},
    )


def _busy(daemon: Daemon) -> None:
    """One order filled (journaled, acknowledged by its fill), one refused by the pre-trade
    checks, a tick-to-order and a lateness sample, an event waiting in the mailbox."""
    e = daemon.engine
    flow = e.flow
    flow.registry.add(PERP)
    e.market_state.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_010.0))
    order = flow.accept(
        request("buy", "10", "90000", instrument=PERP.symbol, cid=CID, strategy="once"), now_ns=1 * S
    )
    flow.assign_order_id(order, OID)
    flow.sending(order, 5 * S - 400_000)  # 0.4 ms before the fill's receipt
    flow.on_fill(fill(TRADE, "10", "90000", oid=OID))
    with pytest.raises(OrderRejected):
        flow.accept(request(instrument="NOPE", cid="once-k3y7-2", strategy="once"), now_ns=2 * S)
    e.gateways["deribit"].tick_to_order.observe(0.0004)
    daemon.lateness.observe(0.003)
    e.slots[0].mailbox.put(ticker(PERP.symbol))


def _with_alerts(daemon: Daemon) -> None:
    """The daemon as with `[alerts]`: its notifier's counters (engine.alerts `AlertNotifier`)."""
    holder: Any = daemon
    holder.alert_notifier = SimpleNamespace(sent={"slack": 2}, failed={"discord": 1}, suppressed={"dedup": 4})


def _scrape(daemon: Daemon) -> tuple[str, dict[str, Any]]:
    registry = CollectorRegistry()
    registry.register(MetricsCollector(daemon.metrics_snapshot))
    text = generate_latest(registry).decode()
    return text, {f.name: f for f in text_string_to_metric_families(text)}


def _sample(found: dict[str, Any], name: str, **labels: str) -> float:
    family = found[name.removesuffix("_total")]
    (value,) = [s.value for s in family.samples if s.labels == labels and not s.name.endswith("_created")]
    return float(value)


def test_every_pinned_name_is_served_with_its_type_and_labels(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, '[recording]\nenabled = true\ndir = "rec"\n')
    _busy(daemon)
    _with_alerts(daemon)
    session: Any = daemon.engine.venues["deribit"]
    session.stats.frames += 1  # a frame came: its age is known
    _, found = _scrape(daemon)
    assert set(CATALOG) == set(PINNED)
    for name, (kind, labels) in PINNED.items():
        family = found.get(name.removesuffix("_total"))
        assert family is not None, f"{name} is not served"
        assert family.type == kind, name
        samples = [s for s in family.samples if not s.name.endswith("_created")]
        assert samples, name
        for sample in samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)
            if kind == "counter":
                assert sample.name == name
    assert len(found) == len(PINNED)  # nothing else


def test_the_values_are_the_daemons_counters(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path)
    _busy(daemon)
    _with_alerts(daemon)
    _, found = _scrape(daemon)
    once = {"strategy": "once"}
    version = found["tradingd_info"].samples[0].labels["version"]
    assert _sample(found, "tradingd_info", version=version, mode="live") == 1
    assert _sample(found, "tradingd_ready") == 0 and _sample(found, "tradingd_kill_switch_engaged") == 0
    assert _sample(found, "tradingd_start_time_seconds") == pytest.approx(daemon.started_ns / 1e9)
    assert _sample(found, "tradingd_fills_total", **once) == 1
    assert _sample(found, "tradingd_orders_sent_total", **once) == 1
    assert _sample(found, "tradingd_orders_final_total", strategy="once", status="filled", reason="none") == 1
    assert (
        _sample(found, "tradingd_orders_final_total", strategy="once", status="rejected", reason="risk") == 1
    )
    assert _sample(found, "tradingd_risk_refusals_total", strategy="once", check="instrument") == 1
    assert _sample(found, "tradingd_position", strategy="once", venue="deribit", instrument=PERP.symbol) == 10
    # Waiting: the order's acceptance, its fill and its filled state (reports go to the strategy
    # too), and the ticker.
    assert _sample(found, "tradingd_strategy_mailbox_depth", **once) == 4
    assert _sample(found, "tradingd_open_orders", **once) == 0
    assert _sample(found, "tradingd_daily_pnl_usd", scope="engine") == pytest.approx(
        daemon.status()["today_pnl"]
    )
    # Before any connection: down, and only down.
    states = {s.labels["state"]: s.value for s in found["tradingd_venue_feed_state"].samples}
    assert states == {"live": 0, "stale": 0, "connecting": 0, "down": 1}
    assert _sample(found, "tradingd_venue_up", venue="deribit") == 0
    assert "tradingd_venue_last_frame_age_seconds" not in found  # no frame yet: absent, not 0
    for kind in (
        "foreign_order",
        "venue_override",
        "order_id_conflict",
        "unmatched_fill",
        "fill_not_booked",
        "funding_not_booked",
        "outcome_unrecorded",
        "position_mismatch",
    ):
        assert _sample(found, "tradingd_reconcile_surprises_total", kind=kind) == 0
    assert _sample(found, "tradingd_alerts_sent_total", channel="slack") == 2
    assert _sample(found, "tradingd_alerts_failed_total", channel="discord") == 1
    assert _sample(found, "tradingd_alerts_suppressed_total", reason="dedup") == 4
    assert "tradingd_recording_write_errors" not in found  # no recording configured
    # Histograms: cumulative buckets at the pinned bounds.
    tick = {
        s.labels["le"]: s.value for s in found["tradingd_tick_to_order_seconds"].samples if "le" in s.labels
    }
    assert tick["0.00025"] == 0 and tick["0.0005"] == 1 and tick["+Inf"] == 1
    assert len(tick) == len(LATENCY_BUCKETS_S) + 1
    ack = found["tradingd_order_ack_seconds"].samples
    assert [s.value for s in ack if s.name.endswith("_count")] == [1]
    lateness = [s for s in found["tradingd_event_loop_lateness_seconds"].samples if "le" in s.labels]
    assert len(lateness) == len(SLOW_BUCKETS_S) + 1 and lateness[-1].labels["le"] == "+Inf"
    journal = [s for s in found["tradingd_journal_write_seconds"].samples if s.name.endswith("_count")]
    assert journal[0].value >= 2  # the order's request and its fill, at least


def test_no_order_id_nor_secret_is_ever_in_a_scrape(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path)
    _busy(daemon)
    text, found = _scrape(daemon)
    values = {v for family in found.values() for s in family.samples for v in s.labels.values()}
    for never in (CID, "once-k3y7-2", OID, TRADE):
        assert never not in text
    assert not [v for v in values if re.fullmatch(r"once-[0-9a-z]+-\d+", v)]
    assert SECRET not in text and CLIENT_ID not in text
    # Every label value is of a bounded set: names the config or the venue gives, or a class.
    bounded = {"once", "deribit", PERP.symbol, "live", *FINAL_REASONS, *CHECKS}
    bounded |= {"filled", "cancelled", "rejected", "expired", "stale", "connecting", "down"}
    bounded |= {"foreign_order", "venue_override", "order_id_conflict", "unmatched_fill", "fill_not_booked"}
    bounded |= {"funding_not_booked", "outcome_unrecorded", "position_mismatch", "engine"}
    version = found["tradingd_info"].samples[0].labels["version"]
    les = {s.labels["le"] for family in found.values() for s in family.samples if "le" in s.labels}
    assert values - les - {version} <= bounded


def test_a_snapshot_without_a_journal_nor_alerts_leaves_their_metrics_out() -> None:
    status: dict[str, Any] = {
        "mode": "paper",
        "started_ns": 10 * S,
        "updated_ns": 12 * S,
        "ready": True,
        "kill_switch": "drill",
        "venues": {
            "derive": {
                "feed": "stale",
                "last_frame_ns": 9 * S,
                "frames": 5,
                "malformed": 1,
                "connects": 2,
                "disconnects": 1,
                "stale": 1,
                "rate_limited": 3,
                "request_timeouts": 4,
                "session_faults": 2,
                "book_gaps": 6,
                "resubscribed_books": 7,
            }
        },
        "strategies": {},
        "unrouted_events": 8,
        "today_pnl": None,
        "journal": None,
        "log_write_failures": 0,
        "recording": None,
    }
    made = {f.name: f for f in families(Snapshot(status=status, version="9.9"))}
    assert "tradingd_journal_write_seconds" not in made and "tradingd_alerts_sent" not in made
    assert "tradingd_daily_pnl_usd" not in made  # not valued: absent, never a made-up 0
    assert made["tradingd_journal_write_failures"].samples[0].value == 0
    assert made["tradingd_kill_switch_engaged"].samples[0].value == 1
    age = made["tradingd_venue_last_frame_age_seconds"].samples[0]
    assert age.labels == {"venue": "derive"} and age.value == 3.0
    by_state = {s.labels["state"]: s.value for s in made["tradingd_venue_feed_state"].samples}
    assert by_state == {"live": 0, "stale": 1, "connecting": 0, "down": 0}
    assert made["tradingd_venue_rate_limited"].samples[0].value == 3
    assert made["tradingd_venue_request_timeouts"].samples[0].value == 4
    assert made["tradingd_venue_session_faults"].samples[0].value == 2


def test_status_says_the_pinned_counters_beside_what_it_said_before(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path)
    before = daemon.status()
    daemon.engine.flow.risk.roll_day(10 * S)  # today's PnL counts from the equity now (0)
    _busy(daemon)
    daemon.engine.market_state.on_ticker(ticker(PERP.symbol, index=99_000.0, mark=99_000.0))
    status = daemon.status()
    assert set(before) <= set(status) and set(before["venues"]["deribit"]) <= set(status["venues"]["deribit"])
    venue = status["venues"]["deribit"]
    assert venue["rate_limited"] == 0 and venue["request_timeouts"] == 0 and venue["session_faults"] == 0
    once = status["strategies"]["once"]
    assert once["fills"] == 1
    assert once["orders_final"] == {"filled/none": 1, "rejected/risk": 1}
    assert once["risk_refusals"] == {"instrument": 1}
    assert once["mailbox_depth"] == len(daemon.engine.slots[0].mailbox) == 4
    equity = float(daemon.engine.flow.equity("once"))
    # The fill's fee (0.0001 BTC) beyond the mark's rise on 10 USD of the perpetual: a loss today.
    assert equity < 0 and once["today_pnl"] == pytest.approx(equity)
    assert status["today_pnl"] == pytest.approx(equity)  # the engine's: its one strategy's
    assert status["risk_refusals"] == {"instrument": 1}
    assert status["reconcile_surprises"] == dict.fromkeys(
        (
            "foreign_order",
            "venue_override",
            "order_id_conflict",
            "unmatched_fill",
            "fill_not_booked",
            "funding_not_booked",
            "outcome_unrecorded",
            "position_mismatch",
        ),
        0,
    )
    daemon.engine.foreign_orders_found.update(deribit=2, derive=1)
    daemon.engine.position_mismatches = 4
    surprises = daemon.status()["reconcile_surprises"]
    assert surprises == {
        "foreign_order": 3,
        "venue_override": 0,
        "order_id_conflict": 0,
        "unmatched_fill": 0,
        "fill_not_booked": 0,
        "funding_not_booked": 0,
        "outcome_unrecorded": 0,
        "position_mismatch": 4,
    }


def test_a_fresh_strategy_exports_every_refusal_check_and_final_class_at_zero(tmp_path: Path) -> None:
    """Prometheus's increase() cannot see a series go from absent to N: the first burst of risk
    refusals (or of rejected orders) after a start would never alert. Every strategy's
    tradingd_risk_refusals_total is there for every check, and tradingd_orders_final_total for
    every status and reason class (4 x 9 per strategy: bounded), at 0 before anything happens."""
    daemon = _daemon(tmp_path)
    _, found = _scrape(daemon)
    refusals = {
        s.labels["check"]: s.value
        for s in found["tradingd_risk_refusals"].samples
        if s.name.endswith("_total") and s.labels["strategy"] == "once"
    }
    assert refusals == dict.fromkeys(CHECKS, 0.0)
    finals = {
        (s.labels["status"], s.labels["reason"]): s.value
        for s in found["tradingd_orders_final"].samples
        if s.name.endswith("_total") and s.labels["strategy"] == "once"
    }
    statuses = [s.value for s in OrderState if s.is_final]
    assert finals == {(status, reason): 0.0 for status in statuses for reason in FINAL_REASONS}

    _busy(daemon)  # counted ones keep their values beside the zeros
    _, found = _scrape(daemon)
    assert _sample(found, "tradingd_risk_refusals_total", strategy="once", check="instrument") == 1
    assert _sample(found, "tradingd_risk_refusals_total", strategy="once", check="price") == 0
    final = "tradingd_orders_final_total"
    assert _sample(found, final, strategy="once", status="rejected", reason="risk") == 1
    assert _sample(found, final, strategy="once", status="expired", reason="none") == 0


def test_a_position_gone_flat_is_served_at_zero_not_dropped(tmp_path: Path) -> None:
    """The ledger's view drops a flat position: without the collector remembering what it
    served, tradingd_position would vanish and the dashboard would show a gap, not 0. Bounded:
    only the (strategy, venue, instrument) triples that held a position since start."""
    daemon = _daemon(tmp_path)
    registry = CollectorRegistry()
    registry.register(MetricsCollector(daemon.metrics_snapshot))

    def scrape() -> dict[str, Any]:
        return {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}

    assert "tradingd_position" not in scrape()  # nothing traded: nothing to serve
    _busy(daemon)
    where = {"strategy": "once", "venue": "deribit", "instrument": PERP.symbol}
    assert _sample(scrape(), "tradingd_position", **where) == 10
    flow = daemon.engine.flow
    order = flow.accept(
        request("sell", "10", "90000", instrument=PERP.symbol, cid="once-k3y7-3", strategy="once"),
        now_ns=6 * S,
    )
    flow.assign_order_id(order, "V-77778")
    flow.sending(order, 7 * S)
    flow.on_fill(fill("T-55556", "10", "90000", oid="V-77778", side=Side.SELL))
    assert f"deribit:{PERP.symbol}" not in daemon.status()["strategies"]["once"]["positions"]
    found = scrape()
    assert _sample(found, "tradingd_position", **where) == 0
    assert len(found["tradingd_position"].samples) == 1  # only what was traded


def test_venue_id_conflicts_and_fills_not_booked_are_shown_as_venue_overrides_are(tmp_path: Path) -> None:
    """Two working orders named by one venue id (contested: alerted, counted), a fill naming only
    that id (booked to neither: a fill of ours not booked), and a fill of no order of ours (not
    ours: unmatched): each counter is in the status, top level and among the surprises, and in
    the scrape, as `venue_overrides` is, and the contested id with its claimants. Before, a fill
    not booked was counted as one not ours, and the contest was nowhere in the status."""
    daemon = _daemon(tmp_path)
    flow = daemon.engine.flow
    flow.registry.add(PERP)
    daemon.engine.market_state.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_010.0))
    orders = [
        flow.accept(request("buy", "10", "90000", instrument=PERP.symbol, cid=cid, strategy="once"), now_ns=S)
        for cid in (CID, "once-k3y7-2")
    ]
    assert flow.assign_order_id(orders[0], OID, source="acknowledged")
    assert not flow.assign_order_id(orders[1], OID, source="acknowledged")
    flow.on_fill(fill(TRADE, "10", "90000", oid=OID))
    flow.on_fill(fill("T-foreign", "1", "90000", oid="V-foreign"))
    status = daemon.status()
    assert (status["order_id_conflicts"], status["fills_not_booked"], status["unmatched_fills"]) == (1, 1, 1)
    assert status["contested_ids"] == {f"deribit {OID}": [CID, "once-k3y7-2"]}
    surprises = status["reconcile_surprises"]
    assert (surprises["order_id_conflict"], surprises["fill_not_booked"], surprises["unmatched_fill"]) == (
        1,
        1,
        1,
    )
    _, found = _scrape(daemon)
    assert _sample(found, "tradingd_reconcile_surprises_total", kind="order_id_conflict") == 1
    assert _sample(found, "tradingd_reconcile_surprises_total", kind="fill_not_booked") == 1
    assert _sample(found, "tradingd_reconcile_surprises_total", kind="unmatched_fill") == 1
    assert status["outcomes_unrecorded"] == 0


def test_unknown_outcomes_not_recorded_are_in_the_scrape_as_their_neighbours_are(tmp_path: Path) -> None:
    """`outcomes_unrecorded` (a request's unknown outcome whose recording raised, a bug) is among
    the surprises of the status and in the scrape, as `unmatched_fills` is. Before, only the
    status's top level had it: no scrape, no rule could see it."""
    daemon = _daemon(tmp_path)
    daemon.engine.flow.outcomes_unrecorded = 2
    assert daemon.status()["reconcile_surprises"]["outcome_unrecorded"] == 2
    _, found = _scrape(daemon)
    assert _sample(found, "tradingd_reconcile_surprises_total", kind="outcome_unrecorded") == 2


def test_funding_given_up_is_in_the_status_and_the_scrape(tmp_path: Path) -> None:
    """A funding payment given up unbooked (`OrderFlow.give_up_funding`: held past
    `funding_max_lookback_s`) is counted in the status's `funding_payments_not_booked`, among the
    surprises, and in the scrape, as a fill not booked is."""
    daemon = _daemon(tmp_path)
    daemon.engine.flow.give_up_funding(
        "derive",
        [
            HeldFunding(
                venue="derive",
                instrument="ETH-PERP",
                ts_ns=S,
                amount=Decimal("-1.5"),
                currency="USDC",
                reason="held back with an unreadable funding record that may number its id",
            )
        ],
        why="past the cap",
        pending=[],
    )
    status = daemon.status()
    assert status["funding_payments_not_booked"] == status["reconcile_surprises"]["funding_not_booked"] == 1
    _, found = _scrape(daemon)
    assert _sample(found, "tradingd_reconcile_surprises_total", kind="funding_not_booked") == 1
