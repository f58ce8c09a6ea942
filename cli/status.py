"""`tradingd status` and `tradingd kill`: the running daemon, from a shell on the same machine.

Both find the daemon's files from its config (`[daemon]`, with systemd's directories as
defaults: run them with the service's environment, e.g. `sudo systemd-run --pty -p
DynamicUser=yes ...` or as the service's user), or from an explicit path.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from tradingd.config import load_daemon_settings
from tradingd.engine.daemon.service import DaemonPaths, daemon_paths, read_status
from tradingd.engine.model.errors import ConfigError

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
    try:
        status = read_status(path)
    except FileNotFoundError:
        print(f"tradingd: not running (no status file at {path})", file=sys.stderr)
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
    ("unrecorded", "frames kept out of the recording (not public)"),
)


def _count(value: Any) -> str:
    """A counter a status file may lack (written by an older daemon): '-'."""
    return "-" if value is None else str(value)


def _print_status(s: dict[str, Any]) -> None:
    console = Console()
    state = "running" if s["running"] else ("stopped" if s.get("stopped") else "not responding")
    uptime = (s.get("updated_ns", 0) - s.get("started_ns", 0)) / 1e9
    console.print(
        f"[bold]tradingd[/bold] {state} (pid {s.get('pid')}, {s.get('mode')}, up {uptime:.0f} s, "
        f"status {s['age_s']} s old)"
    )
    console.print(s.get("status", ""))
    if s.get("kill_switch"):
        console.print(f"[bold red]KILL SWITCH ENGAGED[/bold red]: {s['kill_switch']}")
    venues = Table("venue", "connected", "ready", "subscriptions", "channels", "frames", "malformed",
                   "book gaps/resnaps", "reconnects", "last frame", title="venues")  # fmt: skip
    notes: list[str] = []
    for name, v in s.get("venues", {}).items():
        age = v.get("last_frame_age_s")
        venues.add_row(
            name,
            "yes" if v.get("connected") else "[red]no[/red]",
            "yes" if v.get("ready") else "no",
            str(v.get("subscriptions")),
            str(v.get("channels")),
            str(v.get("frames")),
            str(v.get("malformed")),
            f"{_count(v.get('book_gaps'))}/{_count(v.get('resubscribed_books'))}",
            str(max(0, (v.get("connects") or 0) - 1)),
            "-" if age is None else f"{age:.1f} s ago",
        )
        # The rarer counters, only where they are not zero (and the venue has them).
        extra = [f"{label} {v[key]}" for key, label in _VENUE_NOTES if v.get(key)]
        if extra:
            notes.append(f"{name}: " + ", ".join(extra))
    console.print(venues)
    for note in notes:
        console.print(note)
    strategies = Table("strategy", "state", "events", "errors", "conflated/merged/dropped", "orders",
                       "rejected", "open", "positions", "PnL (real./unreal./fees)",
                       title="strategies")  # fmt: skip
    for name, st in s.get("strategies", {}).items():
        positions = ", ".join(f"{k} {v}" for k, v in st.get("positions", {}).items()) or "flat"
        failure = st.get("failure")
        state = st.get("state", "running")
        if failure:
            state = f"[bold red]FAILED[/bold red] in {failure.get('phase')}: {failure.get('error')}"
        strategies.add_row(
            name,
            state,
            str(st.get("events")),
            str(st.get("errors")),
            f"{st.get('conflated')}/{st.get('merged')}/{st.get('dropped')}",
            str(st.get("orders_sent")),
            str(st.get("rejected")),
            str(st.get("open_orders")),
            positions,
            f"{st.get('realized_pnl'):+.2f} / {st.get('unrealized_pnl'):+.2f} / {st.get('fees'):.2f}",
        )
    console.print(strategies)
    orders = s.get("open_orders", [])
    if orders:
        table = Table("client order id", "venue", "instrument", "side", "price", "size", "filled", "state",
                      "age", title="open orders")  # fmt: skip
        for o in orders:
            table.add_row(
                o["client_order_id"], o["venue"], o["instrument"], o["side"], str(o["price"]), o["size"],
                o["filled"], o["state"], f"{o['age_s']:.0f} s",
            )  # fmt: skip
        console.print(table)
    if s.get("waiting_fills"):
        console.print(
            f"[yellow]{s['waiting_fills']} fills wait for a first index price[/yellow]: in the positions, "
            "not yet in the USD PnL"
        )
    journal = s.get("journal")
    if journal:
        console.print(
            f"journal {journal['path']}: {journal['writes']} writes, {journal['failures']} failures"
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
