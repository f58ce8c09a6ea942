"""`tradingd status` and `tradingd kill`: the running daemon, from a shell on the same machine.

Both find the daemon's files from its config (`[daemon]`, with systemd's directories as
defaults: run them with the service's environment, e.g. `sudo systemd-run --pty -p
DynamicUser=yes ...` or as the service's user), or from an explicit path.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from tradingd.config import load_daemon_settings
from tradingd.engine.daemon.service import DaemonPaths, daemon_paths, read_status
from tradingd.engine.model.errors import ConfigError
from tradingd.engine.model.words import duration, plural

from .settings import daemon_options

__all__ = ["cmd_kill", "cmd_status"]

_EXIT_NOT_RUNNING = 3  # as `systemctl status` for a stopped unit


def _paths(args: argparse.Namespace) -> DaemonPaths:
    if not args.config:
        raise ConfigError("give --config (the daemon's config) or the file's path")
    return daemon_paths(Path(args.config), daemon_options(load_daemon_settings(args.config)), os.environ)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def cmd_status(args: argparse.Namespace) -> int:
    path = Path(args.status_file) if args.status_file else _paths(args).status_file
    if path.is_dir():
        path = path / "status.json"  # a `tradingd record` --out directory: its status file is there
    try:
        status = read_status(path)
    except FileNotFoundError:
        hint = ""
        if not args.status_file:
            # `tradingd record` keeps its status beside its recording, not where a daemon on the
            # same config keeps its own (cli/record.py): the config alone does not say where.
            hint = "; for a `tradingd record`: tradingd status --status-file <its --out directory>"
        print(f"tradingd: not running (no status file at {path}){hint}", file=sys.stderr)
        return _EXIT_NOT_RUNNING
    except (OSError, ValueError) as exc:
        print(f"tradingd: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    age = time.time() - status.get("updated_ns", 0) / 1e9
    running = not status.get("stopped") and _alive(int(status.get("pid", 0))) and age < 10
    status["running"] = running
    status["age_s"] = round(age, 1)
    if args.json:
        sys.stdout.write(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0 if running else _EXIT_NOT_RUNNING
    _print_status(status)
    return 0 if running else _EXIT_NOT_RUNNING


# A venue's counters shown under the table when not zero (engine.daemon.service.book_health).
_VENUE_NOTES = (
    ("deferred_resnapshots", "resnapshots held back (a book that keeps breaking)"),
    ("bookless_changes", "changes for tokens without a book"),
    ("crossed_books", "crossed books"),
    ("refused_instruments", "instruments answers refused"),
    ("session_faults", "unexpected exceptions in the session's tasks (a bug; reconnected)"),
    ("unrecorded", "frames kept out of the recording (not public)"),
    ("trades_refused", "trade history records left out (unreadable)"),
    ("orders_refused", "open orders records left out (unreadable)"),
    ("funding_refused", "funding records left out (unreadable)"),
    ("history_truncated", "histories read short (fills or payments maybe not caught up)"),
    ("funding_held", "funding payments held back with an unreadable record"),
    ("balances_unknown", "balances the venue could not say"),
)


def _count(value: Any) -> str:
    """A counter a status file may lack (written by an older daemon): '-'. Thousands separated."""
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else escape(str(value))


def _money(value: Any, sign: str = "+") -> str:
    return "-" if value is None else f"{value:{sign},.2f}"


def _quantity(value: Any) -> str:
    """A position or an order's size, exact (a Decimal's string), thousands separated."""
    try:
        return f"{Decimal(str(value)):,}"
    except (InvalidOperation, ValueError):
        return escape(str(value))


def _at(ns: int, now_ns: int) -> str:
    """A moment in local time: the time of day when it is today, else the date too."""
    at = datetime.fromtimestamp(ns / 1e9).astimezone()
    today = datetime.fromtimestamp(now_ns / 1e9).astimezone().date() == at.date()
    return at.strftime("%H:%M:%S %Z" if today else "%Y-%m-%d %H:%M:%S %Z")


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


Fields = list[tuple[str, str]]
_NUMBER = re.compile(r"[-+]?[\d,]+(\.\d+)?")  # a column of them is right-aligned: digits line up


def _show(console: Console, title: str, key: str, rows: list[tuple[str, Fields]]) -> None:
    """Rows of (name, [(label, value)]) as a table when its natural width fits the console, else
    one block per row (its name, then a field a line): a table too wide for the terminal would
    cut its cells to `548…`, and a number or a name must be read whole."""
    if not rows:
        return
    table = Table(title=title)
    table.add_column(key, no_wrap=True)
    for i, (label, _) in enumerate(rows[0][1]):
        numbers = all(_NUMBER.fullmatch(fields[i][1]) for _, fields in rows)
        table.add_column(label, no_wrap=True, justify="right" if numbers else "left")
    for name, fields in rows:
        table.add_row(escape(name), *(value for _, value in fields))
    wide = Measurement.get(console, console.options.update_width(1_000_000), table).maximum
    if wide <= console.width:
        console.print(table)
        return
    console.print(f"[bold]{title}[/bold]")
    for name, fields in rows:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, style="dim")
        grid.add_column(overflow="fold")  # wraps between words; only a word wider than it folds
        for label, value in fields:
            grid.add_row(label, value)
        console.print(Padding(Text.assemble((f"{key} ", "dim"), (name, "bold")), (0, 0, 0, 1), expand=False))
        console.print(Padding(grid, (0, 0, 0, 3), expand=False))


def _feed(v: dict[str, Any], running: bool, now_ns: int, age_s: float) -> tuple[str, str]:
    """A venue's feed and its last frame, as of now (the status file was written `age_s` ago)."""
    state = v.get("feed")
    if state is None:  # written by an older daemon
        state = ("live" if v.get("ready") else "connecting") if v.get("connected") else "down"
    last_ns = v.get("last_frame_ns")
    if last_ns is None and v.get("last_frame_age_s") is not None:
        last_ns = now_ns - int((v["last_frame_age_s"] + age_s) * 1e9)
    silent = None if last_ns is None else (now_ns - last_ns) / 1e9
    if last_ns is None or silent is None:
        last = "none yet" if running else "none"
    elif running:
        last = f"{duration(silent)} ago"
    else:
        last = f"at {_at(last_ns, now_ns)} ({duration(silent)} ago)"
    if not running:
        # The daemon is not there to say: as it was (when the stop began, for an orderly stop).
        return f"was {v.get('feed_before_stop') or state}", last
    if state == "stale":
        since = "since it connected" if silent is None else f"for {duration(silent)}"
        return f"[bold red]stale[/bold red]: no frame {since}", last
    return {"live": "[green]live[/green]", "down": "[red]down[/red]"}.get(state, escape(state)), last


def _print_status(s: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    running = bool(s["running"])
    age = float(s.get("age_s") or 0.0)
    updated_ns = int(s.get("updated_ns") or 0)
    now_ns = updated_ns + int(age * 1e9)  # as `cmd_status` measured the file's age
    ran = duration((updated_ns - int(s.get("started_ns") or 0)) / 1e9)
    who = f"pid {s.get('pid')}, {s.get('mode')}"
    if running:
        console.print(f"[bold]tradingd[/bold] running ({who}, up {ran}, status {age:.1f} s old)")
        console.print(escape(s.get("status", "")))
    else:
        when = f"{_at(updated_ns, now_ns)}, {duration(age)} ago"
        if s.get("stopped"):
            console.print(f"[bold]tradingd[/bold] stopped at {when} ({who}, ran {ran})")
        else:  # killed, or hung: its last word
            console.print(f"[bold]tradingd[/bold] [red]not responding[/red]: last status at {when} ({who})")
        console.print("last status: " + escape(s.get("status", "")))
    if s.get("kill_switch"):
        console.print(f"[bold red]KILL SWITCH ENGAGED[/bold red]: {escape(str(s['kill_switch']))}")
    venue_rows: list[tuple[str, Fields]] = []
    notes: list[str] = []
    for name, v in s.get("venues", {}).items():
        feed, last = _feed(v, running, now_ns, age)
        resnaps = _count(v.get("resubscribed_books"))
        reconnects = _count(max(0, (v.get("connects") or 0) - 1))
        if v.get("stale"):
            reconnects += f" ({_count(v['stale'])} for a silent feed)"
        venue_rows.append(
            (
                name,
                [
                    ("feed", feed),
                    ("last frame", last),
                    ("subscriptions", _count(v.get("subscriptions"))),
                    ("channels", _count(v.get("channels"))),
                    ("frames", _count(v.get("frames"))),
                    ("malformed", _count(v.get("malformed"))),
                    ("book gaps/resnaps", f"{_count(v.get('book_gaps'))}/{resnaps}"),
                    ("reconnects", reconnects),
                ],
            )
        )
        # The rarer counters, only where they are not zero (and the venue has them).
        extra = [f"{label} {_count(v[key])}" for key, label in _VENUE_NOTES if v.get(key)]
        if extra:
            notes.append(f"{escape(name)}: " + ", ".join(extra))
    _show(console, "venues", "venue", venue_rows)
    for note in notes:
        console.print(note)
    strategy_rows: list[tuple[str, Fields]] = []
    for name, st in s.get("strategies", {}).items():
        positions = "\n".join(f"{escape(k)} {_quantity(q)}" for k, q in st.get("positions", {}).items())
        failure = st.get("failure")
        state = st.get("state", "running")
        if failure:
            state = (
                f"[bold red]FAILED[/bold red] in {escape(str(failure.get('phase')))}: "
                f"{escape(str(failure.get('error')))}"
            )
        elif not running and state == "running":
            state = "stopped" if s.get("stopped") else "was running"
        strategy_rows.append(
            (
                name,
                [
                    ("state", state),
                    ("events", _count(st.get("events"))),
                    ("errors", _count(st.get("errors"))),
                    (
                        "conflated/merged/dropped",
                        f"{_count(st.get('conflated'))}/{_count(st.get('merged'))}/{_count(st.get('dropped'))}",
                    ),
                    ("orders", _count(st.get("orders_sent"))),
                    ("rejected", _count(st.get("rejected"))),
                    ("open", _count(st.get("open_orders"))),
                    ("positions", positions or "flat"),
                    (
                        "PnL (real./unreal./fees)",
                        f"{_money(st.get('realized_pnl'))} / {_money(st.get('unrealized_pnl'))} / "
                        f"{_money(st.get('fees'), '')}",
                    ),
                ],
            )
        )
    _show(console, "strategies", "strategy", strategy_rows)
    order_rows: list[tuple[str, Fields]] = []
    for o in s.get("open_orders", []):
        order_rows.append(
            (
                o["client_order_id"],
                [
                    ("venue", escape(o["venue"])),
                    ("instrument", escape(o["instrument"])),
                    ("side", escape(o["side"])),
                    ("price", "-" if o["price"] is None else _quantity(o["price"])),
                    ("size", _quantity(o["size"])),
                    ("filled", _quantity(o["filled"])),
                    ("state", escape(o["state"])),
                    ("age", duration(o["age_s"] + (age if running else 0.0))),
                ],
            )
        )
    _show(console, "open orders" if running else "open orders when last seen", "client order id", order_rows)
    if s.get("waiting_fills"):
        waits = "fill waits" if s["waiting_fills"] == 1 else "fills wait"
        console.print(
            f"[yellow]{_count(s['waiting_fills'])} {waits} for a first index price[/yellow]: in the "
            "positions, not yet in the USD PnL"
        )
    for where, orders in (s.get("paper_no_book") or {}).items():  # paper orders the fill model cannot fill
        console.print(
            f"[yellow]{plural(orders, 'paper order')} on {escape(where)} could not fill[/yellow]: no order "
            "book of it received (subscribe its `book` channel; a ticker alone does not fill)"
        )
    for m in s.get("position_mismatches") or []:  # alerted by the daemon; the ledger is not rewritten
        # `confirmed: false`: a difference that never held still for two looks (orders of ours
        # kept moving in it); shown, not alerted. Absent in a status file of an older daemon.
        title = (
            "[bold red]position mismatch[/bold red]"
            if m.get("confirmed", True)
            else "[yellow]position unconfirmed[/yellow]"
        )
        console.print(
            f"{title} {escape(m['venue'])} {escape(m['instrument'])}: "
            f"we hold {_quantity(m['engine'])}, the venue {_quantity(m['venue_holds'])} "
            f"(since {_at(int(m['since_ns']), now_ns)}; check the account)"
        )
    for contested, claimants in (s.get("contested_ids") or {}).items():  # they last as long as the journal
        console.print(
            f"[bold red]venue id contested[/bold red] {escape(contested)} by "
            f"{escape(', '.join(claimants))}: its fills naming neither's client id are booked to "
            "neither (README, 'Venue order ids', says how a person settles it)"
        )
    if s.get("fills_not_booked"):
        console.print(
            f"[bold red]{plural(s['fills_not_booked'], 'fill')} of ours not booked[/bold red] "
            "(the log's fill.not_booked / fill.reversal_not_applied say which)"
        )
    if funding := s.get("funding_payments_not_booked"):
        console.print(
            f"[bold red]{plural(funding, 'funding payment')} given up unbooked[/bold red] "
            "(held past funding_max_lookback_s; the log's funding.not_booked and the journal's "
            "funding_not_booked notes say which: a person books them)"
        )
    journal = s.get("journal")
    if journal:
        console.print(
            f"journal {escape(journal['path'])}: {plural(journal['writes'], 'write')}, "
            f"{plural(journal['failures'], 'failure')}"
        )
    recording = s.get("recording")
    if recording:
        errors = recording.get("write_errors") or 0
        said = f" ({plural(errors, 'write error')})" if errors else ""
        console.print(f"recording into {escape(recording['dir'])}{said}")
        for venue, r in recording.get("venues", {}).items():
            console.print(
                f"  {escape(venue)}: {plural(r['frames'], 'frame')}, {_bytes(r['bytes'])} in "
                f"{plural(r['files'], 'file')}, {_count(r['dropped'])} dropped"
            )


def cmd_kill(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else _paths(args).kill_switch_file
    if args.clear:
        try:
            path.unlink()
        except FileNotFoundError:
            print(f"tradingd: the kill switch was not engaged ({path})")
            return 0
        print(f"kill switch cleared ({path}): the daemon accepts orders again within a second")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    reason = args.reason or f"engaged by {os.environ.get('USER', 'an operator')} with `tradingd kill`"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (reason + "\n").encode())
    finally:
        os.close(fd)
    print(
        f"kill switch engaged ({path}): within a second the daemon cancels every open order and "
        "refuses new ones until `tradingd kill --clear`"
    )
    return 0
