"""One alert: what happened (`kind`), to what (`subject`: a venue, a strategy, a scope), how bad
(`severity`), one line a person understands on a phone (`text`), and when (`ts`)."""

from __future__ import annotations

from typing import Literal, get_args

import attrs

__all__ = ["KINDS", "PAIRED", "Alert", "AlertKind", "Severity"]

Severity = Literal["critical", "warning", "info"]

AlertKind = Literal[
    "kill_switch",  # the kill switch was engaged (critical)
    "kill_switch_cleared",  # ... and cleared again (info)
    "venue_down",  # a venue down, stale or not yet connected past venue_down_after_s (critical)
    "venue_up",  # ... and live again (info)
    "strategy_failed",  # a strategy stopped by its own exception (critical)
    "risk_refusals",  # a burst of orders refused by the risk checks, engine-wide (warning)
    "daily_loss",  # today's PnL of the engine or a strategy below -daily_loss_usd (critical)
    "foreign_order",  # an order nobody of ours placed, open at a venue (warning)
    "venue_override",  # an order's state taken from the venue over ours (warning)
    "order_id_conflict",  # a venue id claimed by two working orders: contested (critical)
    "fill_not_booked",  # a fill of ours booked to no order: contested id, journal unreadable (critical)
    "funding_not_booked",  # a funding payment given up unbooked, held past the cap (critical)
    "outcome_unrecorded",  # an unknown outcome whose recording raised: a bug (critical)
    "session_fault",  # a venue session's task raised unexpectedly: a bug, reconnected (critical)
    "position_mismatch",  # the venue holds other than our ledger (critical)
    "reconcile_failure",  # a step of a reconciliation raised (warning)
    "journal_failure",  # journal writes failed: a full or broken disk (critical)
    "recording_error",  # the recording beside trading could not write (warning)
    "log_write_failure",  # the log could not be written (warning)
    "alerts_suppressed",  # the notifier's own summary after its rate limit (warning)
]
KINDS: tuple[str, ...] = get_args(AlertKind)

# A problem and its recovery, both ways: either ends the other's deduplication for its subject,
# so a kill switch engaged, cleared and engaged again within dedup_s alerts all three times and
# the phone's last word is the state now (not "cleared" while it is engaged again).
_PAIRS: tuple[tuple[AlertKind, AlertKind], ...] = (
    ("kill_switch", "kill_switch_cleared"),
    ("venue_down", "venue_up"),
)
PAIRED: dict[AlertKind, AlertKind] = dict(_PAIRS) | {b: a for a, b in _PAIRS}


@attrs.frozen
class Alert:
    """What the notifier posts. `kind` + `subject` identify it for deduplication (the same pair
    again within `dedup_s` is suppressed, unless its pair in `PAIRED` came in between), so a
    transition back (`venue_up`) is a kind of its own.
    `ts` is the daemon's wall clock, ns since the epoch (as every time in the status file)."""

    kind: AlertKind
    subject: str
    severity: Severity
    text: str
    ts: int
