"""The alert watcher, kind by kind, from status dicts shaped as `Daemon.status()` makes them (with
the keys the metrics work adds: `risk_refusals`, `today_pnl`), one snapshot a second."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import structlog

from tradingd.engine.alerts import Alert, AlertNotifier, AlertOptions, AlertWatcher, WebhookOptions

S = 10**9
T0 = 1_800_000_000 * S  # 2027-01-15 08:00 UTC
HOOK = (WebhookOptions(format="json", url_env="J"),)


def status(**changes: Any) -> dict[str, Any]:
    """A healthy daemon's status: one venue live, two strategies running."""
    base: dict[str, Any] = {
        "pid": 1,
        "mode": "live",
        "ready": True,
        "stopping": False,
        "kill_switch": None,
        "venues": {
            "deribit": {"feed": "live", "last_frame_ns": T0, "connected": True, "ready": True, "frames": 10},
            "derive": {"feed": "live", "last_frame_ns": T0, "connected": True, "ready": True, "frames": 5},
        },
        "strategies": {
            "gamma": {"state": "running", "failure": None, "today_pnl": 12.5, "risk_refusals": {}},
            "momo": {"state": "running", "failure": None, "today_pnl": -3.0, "risk_refusals": {}},
        },
        "risk_refusals": {},
        "today_pnl": 9.5,
        "reconciliations": 1,
        "reconcile_failures": 0,
        "venue_overrides": 0,
        "order_id_conflicts": 0,
        "unmatched_fills": 0,
        "fills_not_booked": 0,
        "outcomes_unrecorded": 0,
        "contested_ids": {},
        "foreign_orders": {},
        "position_mismatches": None,
        "journal": {"path": "/x/journal.sqlite", "writes": 3, "failures": 0},
        "recording": {"dir": "/x/rec", "write_errors": 0, "venues": {}},
        "log_write_failures": 0,
    }
    for path, value in changes.items():
        node = base
        *parents, leaf = path.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return base


class Run:
    """A watcher fed a snapshot a second from T0; `alerts` what each step brought."""

    def __init__(self, **options: Any) -> None:
        self.sent: list[Alert] = []
        self.watcher = AlertWatcher(AlertOptions(webhooks=HOOK, **options), sink=self.sent.append)
        self.now = T0

    def step(
        self, snapshot: dict[str, Any], seconds: float = 1.0, *, deep: bool = True
    ) -> list[tuple[str, str, str]]:
        self.now += int(seconds * S)
        found = self.watcher.observe(copy.deepcopy(snapshot) if deep else snapshot, self.now)
        assert all(a.ts == self.now for a in found)
        return [(a.kind, a.subject, a.severity) for a in found]

    def texts(self) -> list[str]:
        return [a.text for a in self.sent]


def test_a_healthy_daemon_alerts_nothing() -> None:
    run = Run(daily_loss_usd=100.0)
    for _ in range(120):
        assert run.step(status()) == []
    assert run.watcher.errors == 0 and run.watcher.observed == 120


def test_kill_switch_engaged_then_cleared() -> None:
    run = Run()
    assert run.step(status()) == []
    assert run.step(status(kill_switch="test drill")) == [("kill_switch", "engine", "critical")]
    assert run.step(status(kill_switch="test drill")) == []  # a state, alerted once
    assert run.step(status()) == [("kill_switch_cleared", "engine", "info")]
    assert run.texts() == [
        "kill switch engaged: test drill. Open orders are being cancelled; no new orders until it is cleared",
        "kill switch cleared: trading resumes",
    ]
    # Engaged already at the daemon's start (the file was there): true now, alerted.
    assert Run().step(status(kill_switch="left from yesterday")) == [("kill_switch", "engine", "critical")]


def test_a_venue_down_past_the_bound_then_up_again() -> None:
    run = Run(venue_down_after_s=60.0)
    run.step(status())
    down = status(venues__deribit__feed="down", venues__deribit__connected=False)
    for _ in range(60):
        assert run.step(down) == []  # 0 to 59 s: not yet
    assert run.step(down) == [("venue_down", "deribit", "critical")]
    assert run.step(down, 300) == []  # alerted once while it lasts
    assert run.step(status()) == [("venue_up", "deribit", "info")]
    assert run.texts() == [
        "deribit down for 1 min 00 s: not connected, reconnecting",
        "deribit is live again after 6 min 01 s",
    ]


def test_a_stale_venue_says_since_when_and_a_short_blip_says_nothing() -> None:
    run = Run(venue_down_after_s=30.0)
    run.step(status())
    assert run.step(status(venues__derive__feed="stale"), 20) == []
    assert run.step(status()) == []  # back within the bound: nothing, not even "up"
    assert run.step(status(venues__derive__feed="stale"), 10) == []
    assert run.step(status(venues__derive__feed="down"), 15) == []  # stale then down: one outage
    assert run.step(status(venues__derive__feed="stale"), 15) == [("venue_down", "derive", "critical")]
    assert run.texts() == ["derive stale: no market data for 1 min 02 s (the connection is open)"]


def test_a_venue_never_up_at_the_start_is_down_too() -> None:
    run = Run(venue_down_after_s=60.0)
    connecting = status(venues__deribit__feed="connecting", venues__deribit__last_frame_ns=None)
    assert run.step(connecting) == []
    assert run.step(connecting, 60) == [("venue_down", "deribit", "critical")]
    assert run.texts() == ["deribit not up yet after 1 min 00 s: connecting, not subscribed"]


def test_no_venue_alert_while_the_daemon_stops() -> None:
    run = Run(venue_down_after_s=5.0)
    run.step(status())
    stopping = status(stopping=True, venues__deribit__feed="down", venues__derive__feed="down")
    for _ in range(30):
        assert run.step(stopping) == []


def test_a_strategy_failed_says_why() -> None:
    run = Run()
    run.step(status())
    failure = {"phase": "on_event", "error": "ZeroDivisionError", "message": "division by zero", "ts_ns": T0}
    failed = status(strategies__momo__state="failed", strategies__momo__failure=failure)
    assert run.step(failed) == [("strategy_failed", "momo", "critical")]
    assert run.step(failed) == []
    assert run.texts() == ["strategy momo failed in on_event: ZeroDivisionError: division by zero"]


def test_a_risk_refusal_burst_engine_wide() -> None:
    run = Run(risk_refusals=10, risk_refusals_within_s=60.0)
    run.step(status(risk_refusals={"max_position": 100}))  # the baseline: from before, not a burst
    # 9 within the minute: not yet; the 10th, 30 s later: the burst.
    assert run.step(status(risk_refusals={"max_position": 105, "max_notional": 4}), 10) == []
    assert run.step(status(risk_refusals={"max_position": 106, "max_notional": 4}), 30) == [
        ("risk_refusals", "engine", "warning")
    ]
    assert run.texts() == [
        "10 orders refused by the risk checks within 1 min 00 s (max_position 6, max_notional 4)"
    ]
    # Refusals spread thin (9 a minute) never make a burst.
    for _ in range(10):
        n = run.watcher._counts["risk:max_position"]
        assert run.step(status(risk_refusals={"max_position": n + 9, "max_notional": 4}), 61) == []


def test_risk_refusals_of_zero_is_off() -> None:
    run = Run(risk_refusals=0)
    run.step(status(risk_refusals={"price": 0}))
    assert run.step(status(risk_refusals={"price": 1000})) == []


def test_a_daily_loss_per_strategy_and_engine_once_per_risk_day() -> None:
    run = Run(daily_loss_usd=1000.0)
    run.step(status())
    assert run.step(status(strategies__gamma__today_pnl=-999.99)) == []
    assert run.step(status(strategies__gamma__today_pnl=-1000.5)) == [("daily_loss", "gamma", "critical")]
    assert run.step(status(strategies__gamma__today_pnl=-2000.0, today_pnl=-1500.0)) == [
        ("daily_loss", "engine", "critical")
    ]
    assert run.step(status(strategies__gamma__today_pnl=-5000.0, today_pnl=-5000.0)) == []  # once a day
    assert run.texts() == [
        "strategy gamma: today's PnL -1,000.50 USD, past the daily loss alert of -1,000.00 USD",
        "the engine: today's PnL -1,500.00 USD, past the daily loss alert of -1,000.00 USD",
    ]
    # The next UTC day is a new risk day: alerted again if it loses again.
    next_day = (run.now // (86_400 * S) + 1) * 86_400 * S
    seconds = (next_day - run.now) / S
    assert sorted(run.step(status(strategies__gamma__today_pnl=-1200.0, today_pnl=-1200.0), seconds)) == [
        ("daily_loss", "engine", "critical"),
        ("daily_loss", "gamma", "critical"),
    ]


def test_daily_loss_is_off_at_zero_and_needs_a_number() -> None:
    run = Run(daily_loss_usd=0.0)
    assert run.step(status(today_pnl=-1e9)) == []
    run = Run(daily_loss_usd=10.0)
    for odd in (None, float("nan"), "-500", True):
        assert run.step(status(today_pnl=odd, strategies__gamma__today_pnl=odd)) == []
    assert run.watcher.errors == 0


def test_a_status_before_the_metrics_keys_exist_still_works() -> None:
    """main before the metrics work: no `risk_refusals`, no `today_pnl`, no `foreign_orders`."""
    old = status()
    for key in ("risk_refusals", "today_pnl", "foreign_orders"):
        del old[key]
    for strategy in old["strategies"].values():
        del strategy["today_pnl"], strategy["risk_refusals"]
    run = Run(daily_loss_usd=10.0)
    assert run.step(old) == []
    assert run.step({**old, "kill_switch": "x"}) == [("kill_switch", "engine", "critical")]
    assert run.watcher.errors == 0


def test_venue_id_conflicts_and_fills_not_booked_alert_as_they_grow() -> None:
    """`order_id_conflicts` and `fills_not_booked` (fills of ours left unbooked: a contested
    venue id, a journal unreadable) grow: critical alerts, once per growth, as `venue_overrides`
    alerts (a warning). Before, neither was watched."""
    run = Run()
    run.step(status(order_id_conflicts=2, fills_not_booked=1))  # the baseline: nothing alerted
    assert run.step(status(order_id_conflicts=3, fills_not_booked=1)) == [
        ("order_id_conflict", "engine", "critical")
    ]
    assert run.step(status(order_id_conflicts=3, fills_not_booked=1)) == []
    assert run.step(status(order_id_conflicts=3, fills_not_booked=4)) == [
        ("fill_not_booked", "engine", "critical")
    ]
    (last,) = run.sent[-1:]
    assert last.text.startswith("3 fills of ours left unbooked")


def test_a_venue_id_contested_at_the_start_is_alerted_once() -> None:
    """Contests the journal restored at the start (`contested_ids` in the first snapshot, no
    conflict of this run counted): one critical alert naming each id with its claimants, once
    while they stay, as a mismatch already there at the start is. A contest of this run comes
    with `order_id_conflicts` grown, alerted as that: not twice. Before, the first snapshot was
    the baseline and a contest open at the start reached the log's critical line only."""
    run = Run()
    restored = {"deribit V1": ["s-bt-1", "s-bt-2"], "derive 0xab": ["d-1", "d-2"]}
    assert run.step(status(contested_ids=restored)) == [
        ("order_id_conflict", "deribit V1 and 1 more", "critical")
    ]
    assert run.texts()[0].startswith("2 venue order ids contested: reports naming neither claimant's ")
    assert run.texts()[0].endswith(": deribit V1 by orders s-bt-1, s-bt-2; derive 0xab by orders d-1, d-2")
    for _ in range(3):
        assert run.step(status(contested_ids=restored)) == []
    grown = restored | {"deribit V7": ["s-bt-7", "s-bt-8"]}
    assert run.step(status(contested_ids=grown, order_id_conflicts=1)) == [
        ("order_id_conflict", "engine", "critical")
    ]
    assert run.step(status(contested_ids=grown, order_id_conflicts=1)) == []
    later = grown | {"derive 0xcd": []}  # seen without a conflict of this run counted
    assert run.step(status(contested_ids=later, order_id_conflicts=1)) == [
        ("order_id_conflict", "derive 0xcd", "critical")
    ]
    assert run.texts()[-1].startswith("1 venue order id contested: ")
    assert run.texts()[-1].endswith(": derive 0xcd by unknown orders")
    assert len(run.sent) == 3


@pytest.mark.parametrize("contests", [20, 70])
def test_many_contests_open_at_the_start_are_one_alert_that_spends_no_budget(contests: int) -> None:
    """Many contests restored at a start: one critical alert, naming the first ten with their
    claimants and counting the rest, so the notifier's minute (`max_per_minute`, 20) and its
    webhooks' queues (64) stay free: a warning the next second is posted. Before, one critical
    per id: twenty spent the minute, so the warnings after them were held back (`rate`), and
    seventy overflowed the queue, criticals dropped (`queue_full`)."""
    clock = [1000.0]
    notifier = AlertNotifier(
        AlertOptions(webhooks=HOOK), environ={"J": "http://127.0.0.1:9/j"}, clock=lambda: clock[0], origin="t"
    )
    run = Run()

    def sink(alert: Alert) -> None:
        run.sent.append(alert)
        notifier.notify(alert)

    run.watcher.sink = sink
    restored = {f"deribit V{i:02}": [f"s-{i}-a", f"s-{i}-b"] for i in range(contests)}
    at_start = run.step(status(contested_ids=restored))
    clock[0] += 1.0
    then = run.step(status(contested_ids=restored, foreign_orders={"deribit": 1}))
    assert notifier.suppressed == {"dedup": 0, "rate": 0, "queue_full": 0}
    assert at_start == [("order_id_conflict", f"deribit V00 and {contests - 1} more", "critical")]
    assert then == [("foreign_order", "deribit", "warning")]
    text = run.texts()[0]
    assert text.startswith(f"{contests} venue order ids contested: ")
    assert text.endswith(
        f"; deribit V09 by orders s-9-a, s-9-b; and {contests - 10} more (tradingd status: contested_ids)"
    )
    assert "deribit V10" not in text


def test_funding_payments_given_up_alert_as_they_grow() -> None:
    """`funding_payments_not_booked` (payments held past `funding_max_lookback_s`, given up for a person
    to book) grows: a critical alert, once per growth; a status without the key (an older
    daemon) alerts nothing."""
    run = Run()
    run.step(status(funding_payments_not_booked=0))  # the baseline
    assert run.step(status(funding_payments_not_booked=2)) == [("funding_not_booked", "engine", "critical")]
    assert run.sent[-1].text.startswith("2 funding payments given up unbooked")
    assert run.step(status(funding_payments_not_booked=2)) == []
    assert run.step(status()) == [] and run.watcher.errors == 0


def test_a_fill_simply_not_ours_is_never_an_alert() -> None:
    """`unmatched_fills` grows by fills of no order of ours (`fill.unknown_order`: a manual trade
    on an account shared with tradingd, which `foreign_orders` supports): counted and shown,
    never alerted. Before, each was a critical `unmatched_fill` alert."""
    run = Run()
    run.step(status(unmatched_fills=1))
    assert run.step(status(unmatched_fills=5)) == []
    assert run.sent == []


def test_unknown_outcomes_not_recorded_alert_as_they_grow() -> None:
    """`outcomes_unrecorded` grows (a request's unknown outcome whose recording raised, a bug):
    a critical alert, once per growth, as `unmatched_fills`'. Before, it was not watched."""
    run = Run()
    run.step(status(outcomes_unrecorded=1))  # the baseline: nothing alerted
    assert run.step(status(outcomes_unrecorded=3)) == [("outcome_unrecorded", "engine", "critical")]
    assert run.step(status(outcomes_unrecorded=3)) == []
    (last,) = run.sent[-1:]
    assert last.text.startswith("2 unknown order outcomes could not be recorded")


def test_the_venue_id_conflict_alert_says_what_was_done_either_way() -> None:
    """A conflict refused before sending leaves the holder its id (the new order not sent); one
    after contests it, and only reports naming neither order's client id are applied to neither.
    Before, the alert said every report was applied to neither: false for both."""
    run = Run()
    run.step(status())
    run.step(status(order_id_conflicts=1))
    (last,) = run.sent[-1:]
    assert "not sent" in last.text and "naming neither's client id" in last.text
    assert "reports are applied to neither" not in last.text


def test_reconciliation_surprises() -> None:
    run = Run()
    run.step(status())
    assert run.step(status(foreign_orders={"deribit": 2})) == [("foreign_order", "deribit", "warning")]
    assert run.step(status(foreign_orders={"deribit": 2})) == []  # no new sighting
    assert run.step(status(foreign_orders={"deribit": 3}, venue_overrides=1)) == [
        ("foreign_order", "deribit", "warning"),
        ("venue_override", "engine", "warning"),
    ]
    assert run.step(status(foreign_orders={"deribit": 3}, venue_overrides=1, reconcile_failures=2)) == [
        ("reconcile_failure", "engine", "warning")
    ]
    mismatch = {
        "venue": "deribit",
        "instrument": "BTC-PERPETUAL",
        "engine": "0",
        "venue_holds": "10",
        "since_ns": T0,
        "confirmed": True,
    }
    unconfirmed = {**mismatch, "instrument": "ETH-PERPETUAL", "confirmed": False}
    keep = {"foreign_orders": {"deribit": 3}, "venue_overrides": 1, "reconcile_failures": 2}
    assert run.step(status(position_mismatches=[unconfirmed], **keep)) == []  # shown, not alerted
    assert run.step(status(position_mismatches=[mismatch, unconfirmed], **keep)) == [
        ("position_mismatch", "deribit:BTC-PERPETUAL", "critical")
    ]
    assert run.step(status(position_mismatches=[mismatch], **keep)) == []
    assert run.step(status(position_mismatches=None, **keep)) == []  # agreed again
    assert run.step(status(position_mismatches=[mismatch], **keep)) == [
        ("position_mismatch", "deribit:BTC-PERPETUAL", "critical")
    ]
    assert run.texts()[:3] == [
        "deribit: 2 orders not placed by this daemon found open at the venue (the log's "
        "order.foreign_open / order.foreign_cancelled say which)",
        "deribit: 1 order not placed by this daemon found open at the venue (the log's "
        "order.foreign_open / order.foreign_cancelled say which)",
        "1 order state taken from the venue over ours (the log's order.venue_state_taken says which)",
    ]
    assert run.texts()[4] == "deribit BTC-PERPETUAL: the venue holds 10, our ledger 0: check the account"


def test_a_venue_first_seen_with_foreign_orders_after_the_start_counts_from_zero() -> None:
    run = Run()
    run.step(status())
    assert run.step(status(foreign_orders={"derive": 1})) == [("foreign_order", "derive", "warning")]


def test_journal_recording_and_log_write_failures() -> None:
    run = Run()
    run.step(status(log_write_failures=7))  # from before: the baseline
    assert run.step(status(journal__failures=2, log_write_failures=7)) == [
        ("journal_failure", "journal", "critical")
    ]
    assert run.step(status(journal__failures=2, recording__write_errors=1, log_write_failures=7)) == [
        ("recording_error", "recording", "warning")
    ]
    assert run.step(status(journal__failures=2, recording__write_errors=1, log_write_failures=9)) == [
        ("log_write_failure", "log", "warning")
    ]
    assert run.texts() == [
        "2 journal writes failed (a full or failing disk?): the order records may be stale",
        "1 recording write error: frames are missing from the recording",
        "2 log writes failed (a full or failing disk?)",
    ]
    # Paper mode: no journal, no recording (None): nothing to read, nothing raised.
    assert run.step(status(journal=None, recording=None, log_write_failures=9)) == []
    assert run.watcher.errors == 0


def test_an_odd_status_never_raises_and_the_other_checks_still_run() -> None:
    class Exploding(dict[str, Any]):
        def items(self) -> Any:
            raise RuntimeError("odd")

    run = Run()
    run.step(status())
    with structlog.testing.capture_logs() as logs:
        found = run.step(status(venues=Exploding(), kill_switch="drill"), deep=False)
        assert run.step({"venues": [1, 2], "strategies": "x", "journal": 5, "risk_refusals": None}) == [
            ("kill_switch_cleared", "engine", "info")
        ]
        assert run.step({}) == []
    assert found == [("kill_switch", "engine", "critical")]  # the venues' check raised; this one ran
    assert run.watcher.errors == 1
    logs = [e for e in logs if e["event"] != "alerts.raised"]
    assert [(e["event"], e["check"]) for e in logs] == [("alerts.watch_failed", "venues")]
    assert logs[0]["exc_info"] is True

    # A status that stays odd: counted every time, its traceback logged at the 1st, 10th, 100th.
    with structlog.testing.capture_logs() as logs:
        for _ in range(149):
            run.step(status(venues=Exploding()), deep=False)
    assert run.watcher.errors == 150
    assert [e["failures"] for e in logs] == [10, 100]


def test_a_sink_that_raises_is_counted_not_raised() -> None:
    def sink(alert: Alert) -> None:
        raise ValueError("broken sink")

    watcher = AlertWatcher(AlertOptions(webhooks=HOOK), sink=sink)
    with structlog.testing.capture_logs() as logs:
        found = watcher.observe(status(kill_switch="drill"), T0)
    assert [a.kind for a in found] == ["kill_switch"] and watcher.errors == 1
    assert [e["event"] for e in logs] == ["alerts.raised", "alerts.sink_failed"]


def test_every_alert_raised_is_logged_whatever_becomes_of_its_delivery() -> None:
    """The notifier may drop an alert (dedup, the rate limit, a full queue): the log still has it,
    a critical one at error, the others at warning, with its kind, subject, severity and text."""
    watcher = AlertWatcher(AlertOptions(webhooks=HOOK), sink=lambda alert: None)  # delivers nothing
    with structlog.testing.capture_logs() as logs:
        watcher.observe(status(), T0)
        watcher.observe(status(kill_switch="drill", venue_overrides=2), T0 + S)
    raised = [e for e in logs if e["event"] == "alerts.raised"]
    assert [(e["log_level"], e["kind"], e["subject"], e["severity"]) for e in raised] == [
        ("error", "kill_switch", "engine", "critical"),
        ("warning", "venue_override", "engine", "warning"),
    ]
    assert raised[0]["text"].startswith("kill switch engaged: drill")


def test_a_venue_session_fault_is_alerted_per_venue_as_its_counter_grows() -> None:
    # An unexpected exception out of a venue session's own tasks: the session reconnects (its
    # feed may stay live), so only `session_faults` says a bug hit it (r13 MEDIUM 2).
    run = Run()
    assert run.step(status(venues__deribit__session_faults=1)) == []  # the baseline
    assert run.step(status(venues__deribit__session_faults=1)) == []
    assert run.step(status(venues__deribit__session_faults=3, venues__derive__session_faults=0)) == [
        ("session_fault", "deribit", "critical")
    ]
    assert run.step(status(venues__deribit__session_faults=3, venues__derive__session_faults=1)) == [
        ("session_fault", "derive", "critical")
    ]
    assert run.texts() == [
        "deribit: 2 unexpected exceptions out of the session's own tasks, a bug; reconnected "
        "(the log's session.fault has the traceback)",
        "derive: 1 unexpected exception out of the session's own tasks, a bug; reconnected "
        "(the log's session.fault has the traceback)",
    ]
