"""The alert watcher: the daemon's status (`Daemon.status()`, the `tradingd status` dict), once a
second, turned into alerts on transitions.

It keeps what it saw last and alerts when something changed for the worse (and for some, when it
got better again):

- `kill_switch` (critical) / `kill_switch_cleared` (info): `kill_switch` set / cleared.
- `venue_down` (critical): a venue's `feed` not `live` (down, stale, connecting) for
  `venue_down_after_s`; `venue_up` (info): live again after that alert.
- `strategy_failed` (critical): a strategy's `state` became `failed` (its `failure` says why).
- `risk_refusals` (warning): `risk_refusals` (engine-wide, by check) grew by `risk_refusals`
  within `risk_refusals_within_s`.
- `daily_loss` (critical): `today_pnl` (the engine's, each strategy's) below `-daily_loss_usd`;
  once per risk day (the UTC day) and scope.
- `foreign_order` (warning): `foreign_orders` (by venue) grew: an order not ours open there.
- `venue_override` (warning): `venue_overrides` grew: an order's state taken from the venue.
- `order_id_conflict` (critical): `order_id_conflicts` grew: a venue id claimed by a second
  working order (not sent, when refused before sending; else contested: reports naming it
  without either's client id are applied to neither). And the contested ids in `contested_ids`
  the watcher has not seen alerted, one alert per snapshot naming them (the first
  `_MAX_CONTESTED_NAMED` with their claimants, and how many in all; subject the first one's
  `venue order_id`, "and N more" when there are several): those its first snapshot holds
  (restored from the journal at the start, which does not count as a conflict; or contested
  before it), and any later one whose snapshot's `order_id_conflicts` did not grow; once while
  it stays contested. One alert, not one per id: seventy contests restored at a start would
  have spent the minute's alert budget and filled the webhooks' queues.
- `fill_not_booked` (critical): `fills_not_booked` grew: a fill of ours left unbooked (its venue
  id contested, or the journal unreadable), or a reversal applied to no order (its venue id
  contested). A fill simply not ours (`unmatched_fills`: a manual trade on a shared account,
  `fill.unknown_order`) is counted and shown, never alerted.
- `funding_not_booked` (critical): `funding_payments_not_booked` grew: a funding payment held (or
  waiting) past `funding_max_lookback_s`, given up unbooked for a person to book.
- `outcome_unrecorded` (critical): `outcomes_unrecorded` grew: a request's unknown outcome
  whose recording raised (a bug; the order is asked about all the same).
- `session_fault` (critical): a venue's `session_faults` grew: an unexpected exception out of
  its session's own tasks (a bug), the session reconnected (`session.fault` in the log).
- `position_mismatch` (critical): a confirmed entry new in `position_mismatches`.
- `reconcile_failure` (warning): `reconcile_failures` grew.
- `journal_failure` (critical): `journal.failures` grew.
- `recording_error` (warning): `recording.write_errors` grew.
- `log_write_failure` (warning): `log_write_failures` grew.

Counters are compared with the previous snapshot: the first one is the baseline (nothing before
it is alerted), a key that appears later starts from 0. States (the kill switch, a failed
strategy, a mismatch, a contested venue id) alert on the first snapshot too: they are true now.
While the daemon stops (`stopping`) its venues' feeds go down on purpose: no venue alert then.

A status dict of an odd shape (a key missing, a string where a number was) never raises out of
`observe`: what cannot be read is skipped, and a check that raises anyway is logged with its
traceback (at its 1st, 10th, 100th... failure) and counted (`errors`); the other checks still
run. Keys the daemon may not have yet (`risk_refusals`, `today_pnl`) are read with `.get`.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from ..model.words import duration, plural
from .alert import Alert, AlertKind, Severity
from .options import AlertOptions

__all__ = ["AlertWatcher"]

_S = 1_000_000_000
_DAY_NS = 86_400 * _S  # the risk day is the UTC day (engine.model.risk `roll_day`)
_NOT_UP = ("down", "stale", "connecting")
_MAX_DETAIL = 200  # of a strategy's failure message
_MAX_CONTESTED_NAMED = 10  # contested ids one alert names (with their claimants); the rest counted


def _count(value: Any) -> int | None:
    """A counter's value, or None when it is not one (a bool, a negative, a string)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _money(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _table(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _short(text: Any) -> str:
    words = " ".join(str(text).split())
    return words if len(words) <= _MAX_DETAIL else words[: _MAX_DETAIL - 1] + "…"


class AlertWatcher:
    """Turns status snapshots into alerts (module docstring). `observe(status, now)` returns the
    alerts of this snapshot and hands each to `sink` (the notifier's `notify`) when given."""

    def __init__(
        self,
        options: AlertOptions,
        *,
        sink: Callable[[Alert], None] | None = None,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.options = options
        self.sink = sink
        self.log = log or structlog.get_logger("tradingd")
        self.errors = 0  # checks that raised on a status (logged with the traceback)
        self._check_errors: dict[str, int] = {}
        self.observed = 0
        self._counts: dict[str, int] = {}
        self._kill = False
        self._not_up_since: dict[str, int] = {}  # venue -> since when it is not live
        self._down_alerted: dict[str, int] = {}  # venue -> since when (alerted as down)
        self._failed: set[str] = set()
        self._burst: collections.deque[tuple[int, dict[str, int]]] = collections.deque()
        self._loss_day: dict[tuple[str, str], int] = {}  # (scope kind, name) -> risk day alerted
        self._mismatched: set[str] = set()
        self._contested: set[str] = set()  # "venue order_id" in `contested_ids`, alerted
        self._out: list[Alert] = []
        self._now = 0

    def observe(self, status: Mapping[str, Any], now: int) -> list[Alert]:
        """The alerts `status` (taken at `now`, wall clock ns) brings. Never raises."""
        self._out = []
        self._now = now
        checks: tuple[Callable[[Mapping[str, Any]], None], ...] = (
            self._kill_switch,
            self._venues,
            self._strategies,
            self._risk_refusals,
            self._daily_loss,
            self._reconciliation,
            self._writes,
        )
        for check in checks:
            try:
                check(status)
            except Exception:
                self.errors += 1
                name = check.__name__.lstrip("_")
                n = self._check_errors[name] = self._check_errors.get(name, 0) + 1
                # A status that stays odd fails every second: its traceback at the 1st, 10th,
                # 100th... failure of each check, not 86,400 a day.
                if math.log10(n).is_integer():
                    self.log.exception("alerts.watch_failed", check=name, failures=n)
        self.observed += 1
        out, self._out = self._out, []
        for alert in out:
            # Whatever becomes of its delivery (deduplicated, rate-limited, a dead webhook), the
            # log has every alert: the notifier's summary of what it held back points here.
            emit = self.log.error if alert.severity == "critical" else self.log.warning
            emit(
                "alerts.raised",
                kind=alert.kind,
                subject=alert.subject,
                severity=alert.severity,
                text=alert.text,
            )
        if self.sink is not None:
            for alert in out:
                try:
                    self.sink(alert)  # the notifier's notify never raises; another sink might
                except Exception:
                    self.errors += 1
                    self.log.exception("alerts.sink_failed", kind=alert.kind, subject=alert.subject)
        return out

    # -- helpers ---------------------------------------------------------------------------------
    def _alert(self, kind: AlertKind, subject: str, severity: Severity, text: str) -> None:
        self._out.append(Alert(kind=kind, subject=subject, severity=severity, text=text, ts=self._now))

    def _delta(self, key: str, value: Any) -> int:
        """How much a counter grew since the last snapshot (0 on the first: the baseline, and
        when it is not a counter or went down)."""
        n = _count(value)
        if n is None:
            return 0
        before = self._counts.get(key, 0 if self.observed else None)
        self._counts[key] = n
        return 0 if before is None else max(0, n - before)

    # -- the checks --------------------------------------------------------------------------------
    def _kill_switch(self, status: Mapping[str, Any]) -> None:
        reason = status.get("kill_switch")
        engaged = bool(reason)
        if engaged and not self._kill:
            self._alert(
                "kill_switch",
                "engine",
                "critical",
                f"kill switch engaged: {_short(reason)}. Open orders are being cancelled; "
                "no new orders until it is cleared",
            )
        elif not engaged and self._kill:
            self._alert("kill_switch_cleared", "engine", "info", "kill switch cleared: trading resumes")
        self._kill = engaged

    def _venues(self, status: Mapping[str, Any]) -> None:
        now = self._now
        if status.get("stopping"):
            self._not_up_since.clear()  # the stop closes the connections on purpose
            return
        for name, venue in _table(status.get("venues")).items():
            faults = self._delta(f"session_faults:{name}", _table(venue).get("session_faults"))
            if faults:
                self._alert(
                    "session_fault",
                    str(name),
                    "critical",
                    f"{name}: {plural(faults, 'unexpected exception')} out of the session's own "
                    "tasks, a bug; reconnected (the log's session.fault has the traceback)",
                )
            feed = _table(venue).get("feed")
            if feed == "live":
                self._not_up_since.pop(name, None)
                since = self._down_alerted.pop(name, None)
                if since is not None:
                    self._alert(
                        "venue_up", name, "info", f"{name} is live again after {duration((now - since) / _S)}"
                    )
                continue
            if feed not in _NOT_UP:
                continue
            since = self._not_up_since.setdefault(name, now)
            out_s = (now - since) / _S
            if name in self._down_alerted or out_s < self.options.venue_down_after_s:
                continue
            self._down_alerted[name] = since
            if feed == "stale":
                last = _count(_table(venue).get("last_frame_ns"))
                silent = f"for {duration((now - last) / _S)}" if last is not None else "since it connected"
                text = f"{name} stale: no market data {silent} (the connection is open)"
            elif feed == "connecting":
                text = f"{name} not up yet after {duration(out_s)}: connecting, not subscribed"
            else:
                text = f"{name} down for {duration(out_s)}: not connected, reconnecting"
            self._alert("venue_down", name, "critical", text)

    def _strategies(self, status: Mapping[str, Any]) -> None:
        for name, strategy in _table(status.get("strategies")).items():
            state = _table(strategy).get("state")
            if state != "failed":
                self._failed.discard(name)
                continue
            if name in self._failed:
                continue
            self._failed.add(name)
            failure = _table(_table(strategy).get("failure"))
            phase, error, message = failure.get("phase"), failure.get("error"), failure.get("message")
            why = ": ".join(_short(p) for p in (error, message) if p) or "no reason given"
            where = f" in {phase}" if phase else ""
            self._alert("strategy_failed", name, "critical", f"strategy {name} failed{where}: {why}")

    def _risk_refusals(self, status: Mapping[str, Any]) -> None:
        burst = self._burst
        deltas = {}
        for check, n in _table(status.get("risk_refusals")).items():
            grew = self._delta(f"risk:{check}", n)
            if grew:
                deltas[str(check)] = grew
        if deltas:
            burst.append((self._now, deltas))
        within_s = self.options.risk_refusals_within_s
        while burst and burst[0][0] <= self._now - within_s * _S:
            burst.popleft()
        threshold = self.options.risk_refusals
        if threshold <= 0:
            burst.clear()
            return
        by_check: collections.Counter[str] = collections.Counter()
        for _, found in burst:
            by_check.update(found)
        total = sum(by_check.values())
        if total < threshold:
            return
        burst.clear()  # a further alert needs a further burst
        checks = ", ".join(f"{check} {n}" for check, n in by_check.most_common())
        self._alert(
            "risk_refusals",
            "engine",
            "warning",
            f"{plural(total, 'order')} refused by the risk checks within {duration(within_s)} ({checks})",
        )

    def _daily_loss(self, status: Mapping[str, Any]) -> None:
        limit = self.options.daily_loss_usd
        if not limit > 0:
            return
        day = self._now // _DAY_NS
        scopes: list[tuple[tuple[str, str], Any]] = [(("engine", "engine"), status.get("today_pnl"))]
        scopes += [
            (("strategy", name), _table(s).get("today_pnl"))
            for name, s in _table(status.get("strategies")).items()
        ]
        for scope, value in scopes:
            pnl = _money(value)
            if pnl is None or pnl >= -limit or self._loss_day.get(scope) == day:
                continue
            self._loss_day[scope] = day
            who = "the engine" if scope[0] == "engine" else f"strategy {scope[1]}"
            self._alert(
                "daily_loss",
                scope[1],
                "critical",
                f"{who}: today's PnL {pnl:+,.2f} USD, past the daily loss alert of -{limit:,.2f} USD",
            )

    def _reconciliation(self, status: Mapping[str, Any]) -> None:
        for venue, n in _table(status.get("foreign_orders")).items():
            found = self._delta(f"foreign:{venue}", n)
            if found:
                self._alert(
                    "foreign_order",
                    str(venue),
                    "warning",
                    f"{venue}: {plural(found, 'order')} not placed by this daemon found open at the "
                    "venue (the log's order.foreign_open / order.foreign_cancelled say which)",
                )
        overrides = self._delta("venue_overrides", status.get("venue_overrides"))
        if overrides:
            self._alert(
                "venue_override",
                "engine",
                "warning",
                f"{plural(overrides, 'order state')} taken from the venue over ours "
                "(the log's order.venue_state_taken says which)",
            )
        conflicts = self._delta("order_id_conflicts", status.get("order_id_conflicts"))
        if conflicts:
            self._alert(
                "order_id_conflict",
                "engine",
                "critical",
                f"{plural(conflicts, 'venue order id')} claimed by a second working order: that "
                "order not sent, or the id contested, its reports naming neither's client id "
                "applied to neither (the log's order.venue_id_conflict says which)",
            )
        self._contested_ids(status, conflicts)
        not_booked = self._delta("fills_not_booked", status.get("fills_not_booked"))
        if not_booked:
            self._alert(
                "fill_not_booked",
                "engine",
                "critical",
                f"{plural(not_booked, 'fill')} of ours left unbooked, or reversals applied to no "
                "order: a person books them (the log's fill.not_booked / "
                "fill.reversal_not_applied / fill.unknown_order with journal_unreadable say which)",
            )
        funding = self._delta("funding_payments_not_booked", status.get("funding_payments_not_booked"))
        if funding:
            self._alert(
                "funding_not_booked",
                "engine",
                "critical",
                f"{plural(funding, 'funding payment')} given up unbooked, held past "
                "funding_max_lookback_s: a person books them (the log's funding.not_booked and the "
                "journal's funding_not_booked notes say which)",
            )
        unrecorded = self._delta("outcomes_unrecorded", status.get("outcomes_unrecorded"))
        if unrecorded:
            self._alert(
                "outcome_unrecorded",
                "engine",
                "critical",
                f"{plural(unrecorded, 'unknown order outcome')} could not be recorded, a bug; the "
                "orders are asked about all the same (the log's "
                "order.outcome_unknown_not_recorded says which)",
            )
        failures = self._delta("reconcile_failures", status.get("reconcile_failures"))
        if failures:
            self._alert(
                "reconcile_failure",
                "engine",
                "warning",
                f"{plural(failures, 'reconciliation step')} failed (reconcile.step_failed in the log)",
            )
        mismatches = status.get("position_mismatches")
        confirmed: set[str] = set()
        for item in mismatches if isinstance(mismatches, list) else ():
            entry = _table(item)
            if not entry or not entry.get("confirmed", True):
                continue
            at, instrument = entry.get("venue"), entry.get("instrument")
            key = f"{at}:{instrument}"
            confirmed.add(key)
            if key in self._mismatched:
                continue
            self._alert(
                "position_mismatch",
                key,
                "critical",
                f"{at} {instrument}: the venue holds {entry.get('venue_holds')}, our ledger "
                f"{entry.get('engine')}: check the account",
            )
        self._mismatched = confirmed

    def _contested_ids(self, status: Mapping[str, Any], conflicts: int) -> None:
        """The venue ids contested now (`contested_ids`: "venue order_id" -> the claimants' client
        ids), a state: those not alerted yet, in one alert (module docstring), the first snapshot
        included (a contest the journal restored at the start is no conflict of this run: its
        `order.venue_id_contested_open` line was all a person had). New ones in a snapshot whose
        `order_id_conflicts` grew are that conflict, alerted just now (`conflicts`): not twice."""
        table = {str(key): claimants for key, claimants in _table(status.get("contested_ids")).items()}
        new = [] if conflicts else sorted(table.keys() - self._contested)
        self._contested = set(table)
        if not new:
            return
        named = []
        for key in new[:_MAX_CONTESTED_NAMED]:
            claimants = table[key]
            orders = (
                "orders " + ", ".join(str(c) for c in claimants)
                if isinstance(claimants, list) and claimants
                else "unknown orders"
            )
            named.append(_short(f"{key} by {orders}"))
        more = len(new) - len(named)
        listed = "; ".join(named) + (f"; and {more:,} more (tradingd status: contested_ids)" if more else "")
        self._alert(
            "order_id_conflict",
            new[0] if len(new) == 1 else f"{new[0]} and {len(new) - 1:,} more",
            "critical",
            # What to do first, the ids last: a chat's line is cut at its end.
            f"{plural(len(new), 'venue order id')} contested: reports naming neither claimant's "
            "client id are applied to neither until a person settles it (README, 'To settle a "
            f"contest'; the log's order.venue_id_contested_open / order.venue_id_conflict): {listed}",
        )

    def _writes(self, status: Mapping[str, Any]) -> None:
        journal = self._delta("journal_failures", _table(status.get("journal")).get("failures"))
        if journal:
            self._alert(
                "journal_failure",
                "journal",
                "critical",
                f"{plural(journal, 'journal write')} failed (a full or failing disk?): the order "
                "records may be stale",
            )
        recording = self._delta("recording_write_errors", _table(status.get("recording")).get("write_errors"))
        if recording:
            self._alert(
                "recording_error",
                "recording",
                "warning",
                f"{plural(recording, 'recording write error')}: frames are missing from the recording",
            )
        logs = self._delta("log_write_failures", status.get("log_write_failures"))
        if logs:
            self._alert(
                "log_write_failure",
                "log",
                "warning",
                f"{plural(logs, 'log write')} failed (a full or failing disk?)",
            )
