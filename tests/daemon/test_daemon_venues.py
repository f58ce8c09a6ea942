"""The real daemon (`tradingd run` in a subprocess, with a `$NOTIFY_SOCKET` of the test's own)
against the Derive and the Polymarket simulators, each served by the test on 127.0.0.1 port 0:
READY only once the venue has our subscriptions, a resting order, `kill -9`, the venue fills
the order while the daemon is dead, a restart on the same state directory that restores the
journal and books the fill once (journal and status file), sends nothing twice, and stops on
SIGTERM within its bound; no secret of the venue's in anything the daemon wrote.
(`tests/daemon/test_daemon.py` is the same against Deribit.)"""

from __future__ import annotations

import functools
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import httpx
import orjson
import pytest
import trio
import trio.testing

from tests.support.daemon_process import ROOT, until
from tradingd.simulators.derive.simulator import (
    DEMO_SESSION_KEY,
    DEMO_SUBACCOUNT,
    DEMO_WALLET,
    DeriveSimulator,
)
from tradingd.simulators.derive.simulator import serve as serve_derive
from tradingd.simulators.polymarket.simulator import DEMO_ACCOUNT, DEMO_API, PolymarketSimulator
from tradingd.simulators.polymarket.simulator import serve as serve_polymarket

SHUTDOWN_TIMEOUT_S = 6
STRATEGY = "once"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="sd_notify and signals as on the servers")


# -- one venue, as the test needs it ------------------------------------------------------------
@attrs.frozen
class VenueCase:
    """What differs between venues: how the simulator is served and read, the daemon's venue
    table and credentials, how the venue fills our resting order while nobody listens, and the
    secrets that must never be written."""

    name: str
    serve: Callable[[trio.Nursery], Awaitable[tuple[Any, str]]]
    env: dict[str, str]
    secrets: tuple[str, ...]
    instrument: Callable[[Any], str]
    venue_toml: Callable[[Any, str, Path], str]
    size: Decimal
    # What the venue has subscribed for us right now (channels, or "path:asset" on Polymarket).
    subscribed: Callable[[Any], set[str]]
    expected: Callable[[Any, str], set[str]]
    # Our orders at the venue with their states, the order requests it received, our position.
    ours: Callable[[Any, str], list[tuple[str, str]]]
    order_requests: Callable[[Any], int]
    position: Callable[[Any, str], Decimal]
    trade_ids: Callable[[Any, str], list[str]]
    # Another account trades against our resting order (buy `size` at `price`).
    fill: Callable[[Any, str, str, Decimal, Decimal], Awaitable[None]]
    resting_state: str  # the venue's words for a resting and a filled order
    filled_state: str


# Derive (VENUES.md §3): the simulator's demo wallet, subaccount and session key.
async def _derive_serve(nursery: trio.Nursery) -> tuple[Any, str]:
    sim = DeriveSimulator(seed=5, step_s=0.05, settle_after_s=0.2)
    binds = await nursery.start(functools.partial(serve_derive, sim))
    return sim, binds[0].removeprefix("http://")


def _derive_toml(sim: Any, address: str, tmp: Path) -> str:
    return f"""
[venues.derive]
url = "ws://{address}/ws"
rest_url = "http://{address}"
currencies = ["ETH"]
instrument_types = ["perp"]
ticker_interval = 100
"""


async def _derive_fill(sim: Any, address: str, instrument: str, price: Decimal, size: Decimal) -> None:
    # The simulator's own switch, over its HTTP endpoint as an operator would use it: another
    # account's taker sell prints at our price and takes our resting bid.
    trade = {"instrument": instrument, "direction": "sell", "price": str(price), "amount": str(size)}
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"http://{address}/_sim/faults", json={"trade": trade})
    assert answer.status_code == 200 and answer.json()["applied"]["trade"], answer.text


def _derive_account(sim: Any) -> Any:
    return sim.accounts[DEMO_WALLET.lower()]


DERIVE = VenueCase(
    name="derive",
    serve=_derive_serve,
    env={
        "DERIVE_WALLET": DEMO_WALLET,
        "DERIVE_SESSION_KEY": DEMO_SESSION_KEY,
        "DERIVE_SUBACCOUNT_ID": str(DEMO_SUBACCOUNT),
    },
    secrets=(DEMO_SESSION_KEY,),
    instrument=lambda sim: "ETH-PERP",
    venue_toml=_derive_toml,
    size=Decimal("0.5"),
    subscribed=lambda sim: {c for s in sim.sessions.values() for c in (*s.public, *s.private)},
    expected=lambda sim, instrument: {
        f"ticker_slim.{instrument}.100",
        f"{DEMO_SUBACCOUNT}.orders",
        f"{DEMO_SUBACCOUNT}.trades",
    },
    ours=lambda sim, cid: [(o.order_id, o.state) for o in sim.orders.values() if o.label == cid],
    order_requests=lambda sim: sim.requests_for("private/order"),
    position=lambda sim, instrument: _derive_account(sim).positions.get(
        (DEMO_SUBACCOUNT, instrument), Decimal(0)
    ),
    trade_ids=lambda sim, cid: [t["trade_id"] for t in _derive_account(sim).trades if t["label"] == cid],
    fill=_derive_fill,
    resting_state="open",
    filled_state="filled",
)


# Polymarket (VENUES.md §2): the simulator's demo wallet key and its L2 API credentials.
async def _polymarket_serve(nursery: trio.Nursery) -> tuple[Any, str]:
    # The books of a subscription come 0.3 s after it, and the subscription takes effect with
    # them: a READY=1 sent before the venue's initial dump would find the market channel empty.
    sim = PolymarketSimulator(seed=5, step_s=0.05, mine_s=0.1, confirm_s=0.1, dump_delay_s=0.3)
    binds = await nursery.start(functools.partial(serve_polymarket, sim))
    return sim, binds[0].removeprefix("http://")


def _polymarket_toml(sim: Any, address: str, tmp: Path) -> str:
    # The market catalog reads the simulator's Gamma into a cache of the test's own (never the
    # network, never ~/.cache); the order heartbeat is on, as in config/live-polymarket.toml.
    return f"""
[catalog]
gamma_url = "http://{address}/gamma"
polymarket_cache = "catalog.jsonl"   # relative to this file's folder, not the working directory
[venues.polymarket]
url = "ws://{address}/ws"
rest_url = "http://{address}"
markets = ["{sim.feed.markets[0].condition_id}"]
order_heartbeat_s = 1
"""


async def _polymarket_fill(sim: Any, address: str, instrument: str, price: Decimal, size: Decimal) -> None:
    # The simulator's own switch, over its HTTP endpoint as an operator would use it: another
    # participant's taker sell prints at our price (a `last_trade_price`, §2.2) and takes our
    # resting bid.
    trade = {"token": instrument, "side": "sell", "price": str(price), "size": str(size)}
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"http://{address}/_sim/faults", json={"trade": trade})
    assert answer.status_code == 200, answer.text
    printed = answer.json()["applied"]["trade"]
    assert (printed["side"], Decimal(printed["price"]), Decimal(printed["size"])) == ("SELL", price, size)
    assert len(printed["orders"]) == 1 and printed["trades"], printed  # our bid, filled


POLYMARKET = VenueCase(
    name="polymarket",
    serve=_polymarket_serve,
    env={
        "POLYMARKET_PRIVATE_KEY": DEMO_ACCOUNT.private_key,
        "POLYMARKET_API_KEY": DEMO_API.key,
        "POLYMARKET_API_SECRET": DEMO_API.secret,
        "POLYMARKET_API_PASSPHRASE": DEMO_API.passphrase,
    },
    secrets=(DEMO_ACCOUNT.private_key, DEMO_API.secret, DEMO_API.passphrase),
    instrument=lambda sim: sim.feed.markets[0].yes,
    venue_toml=_polymarket_toml,
    size=Decimal(10),
    subscribed=lambda sim: {
        f"{p.path}:{a}" for p in sim.sessions.values() for a in (p.assets or ({"user"} if p.account else ()))
    },
    expected=lambda sim, instrument: {f"/ws/market:{instrument}", "/ws/user:user"},
    # Polymarket orders carry no label of ours: the API key is the owner (§2.3).
    ours=lambda sim, cid: [
        (oid, o.status) for oid, o in sim.orders.items() if o.account.api.key == DEMO_API.key
    ],
    order_requests=lambda sim: sim.requests_for("POST /order") + sim.requests_for("POST /orders"),
    position=lambda sim, instrument: sim.accounts[DEMO_API.key].positions.get(instrument, Decimal(0)),
    trade_ids=lambda sim, cid: [
        t for o in sim.orders.values() if o.account.api.key == DEMO_API.key for t in o.trades
    ],
    fill=_polymarket_fill,
    resting_state="LIVE",
    filled_state="MATCHED",
)


# -- the daemon, its notifications ---------------------------------------------------------------
class Daemon:
    """One `tradingd run` process at a time, with its config, state directory and log files."""

    def __init__(self, tmp: Path, venue: VenueCase, sim: Any, address: str, *, below: float) -> None:
        self.tmp = tmp
        self.venue = venue
        self.state = tmp / "state"
        self.config = tmp / "live.toml"
        self.cwd = tmp / "elsewhere"  # the daemon's working directory: paths are the config's
        self.cwd.mkdir(exist_ok=True)
        self.instrument = venue.instrument(sim)
        self.config.write_text(
            f"""
mode = "live"
[logging]
level = "info"
format = "json"
[daemon]
state_dir = "state"
shutdown_timeout_s = {SHUTDOWN_TIMEOUT_S}
{venue.venue_toml(sim, address, tmp)}
[[strategies]]
name = "{STRATEGY}"
class = "tests.support.daemon_strategies:PlaceOnce"
[strategies.params]
venue = "{venue.name}"
instrument = "{self.instrument}"
size = "{venue.size}"
below = {below}
""",
            encoding="utf-8",
        )
        self.logs: list[Path] = []
        self.proc: trio.Process | None = None

    async def start(self, nursery: trio.Nursery, env: dict[str, str]) -> trio.Process:
        log = self.tmp / f"daemon-{len(self.logs)}.log"
        self.logs.append(log)
        # Nothing of the test runner's own systemd or venue accounts leaks in.
        inherited = {
            k: v
            for k, v in os.environ.items()
            if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
            and not k.startswith(("DERIBIT_", "DERIVE_", "POLYMARKET_"))
        }
        environ = {**inherited, "PYTHONPATH": str(ROOT), **self.venue.env, **env}
        cmd = [sys.executable, "-c", "import sys; from tradingd.cli.main import main; sys.exit(main())"]
        with log.open("wb") as out:
            self.proc = await nursery.start(
                functools.partial(
                    trio.run_process,
                    [*cmd, "run", "--config", str(self.config)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=environ,
                    cwd=str(self.cwd),
                    check=False,
                )
            )
        assert self.proc is not None
        return self.proc

    def status(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = orjson.loads((self.state / "status.json").read_bytes())
        except (OSError, ValueError):
            return {}
        return data

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        path = self.state / "journal.sqlite"
        if not path.exists():
            return []
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                return list(db.execute(sql))
            finally:
                db.close()
        except sqlite3.Error:
            return []  # being created by the daemon: asked again

    def orders(self) -> list[tuple[str, str | None, str, str, str | None]]:
        """(client order id, venue order id, state, filled size, price) per journal row."""
        rows = self._query(
            "SELECT client_order_id, order_id, state, filled_size, price FROM orders ORDER BY created_ns"
        )
        return [(str(c), o, str(s), str(f), p) for c, o, s, f, p in rows]

    def ledger(self) -> list[tuple[str, str | None, str | None, str | None]]:
        """(kind, client order id, trade id, size) per ledger row."""
        rows = self._query("SELECT kind, client_order_id, trade_id, size FROM ledger ORDER BY seq")
        return [(str(k), c, t, s) for k, c, t, s in rows]

    def log_lines(self, run: int | None = None) -> list[dict[str, Any]]:
        out = []
        for path in self.logs if run is None else self.logs[run : run + 1]:
            for line in path.read_bytes().splitlines():
                try:
                    out.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    out.append({"event": "(not json)", "line": line.decode("utf-8", "replace")})
        return out

    def events(self, name: str, run: int | None = None) -> list[dict[str, Any]]:
        return [e for e in self.log_lines(run) if e.get("event") == name]

    async def wait_exit(self, within: float) -> int:
        assert self.proc is not None
        with trio.fail_after(within):
            return await self.proc.wait()


class Notifications:
    """The test's own `$NOTIFY_SOCKET`: every datagram, and what the venue had subscribed for us
    at the moment each READY=1 arrived."""

    def __init__(self, path: Path, subscribed: Callable[[], set[str]]) -> None:
        self.path = path
        self.subscribed = subscribed
        self.messages: list[tuple[float, dict[str, str]]] = []
        self.at_ready: list[set[str]] = []

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM)
        await sock.bind(str(self.path))
        task_status.started()
        with sock:
            while True:
                data = await sock.recv(4096)
                fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
                if "READY" in fields:
                    # What the daemon wrote before READY=1 is in this process's sockets by now
                    # (loopback), but the simulator may not have read it yet: Polymarket's user
                    # channel acknowledges no subscription (§2.2), so "subscribed" there means
                    # "sent" (its market channel's READY waits for the books the venue answers
                    # with). Let every task of this process run on what has arrived (the I/O
                    # already readable included), then look: nothing sent after READY is in.
                    await trio.testing.wait_all_tasks_blocked()
                    self.at_ready.append(self.subscribed())
                self.messages.append((trio.current_time(), fields))

    def having(self, key: str, since: float = 0.0) -> list[tuple[float, dict[str, str]]]:
        return [(t, m) for t, m in self.messages if key in m and t >= since]


# -- the test -------------------------------------------------------------------------------------
@pytest.mark.parametrize("venue", [DERIVE, POLYMARKET], ids=lambda v: v.name)
async def test_kill_9_with_a_resting_order_filled_while_down_then_restart_books_it_once(
    venue: VenueCase, nursery: trio.Nursery, tmp_path: Path
) -> None:
    sim, address = await venue.serve(nursery)
    notes = Notifications(tmp_path / "notify.sock", lambda: venue.subscribed(sim))
    await nursery.start(notes.serve)
    systemd = {"NOTIFY_SOCKET": str(notes.path), "WATCHDOG_USEC": "2000000"}
    # 30% under the price: the bid rests, far from anything the simulated market trades.
    daemon = Daemon(tmp_path, venue, sim, address, below=0.3)
    instrument = daemon.instrument
    proc = await daemon.start(nursery, systemd)

    # READY=1 only once the venue has our market and private subscriptions.
    await until(lambda: notes.at_ready, what="READY=1")
    missing = venue.expected(sim, instrument) - notes.at_ready[0]
    assert not missing, f"READY=1 before the venue had {missing} (it had {notes.at_ready[0]})"
    assert any(f"{venue.name} up" in m["STATUS"] for _, m in notes.having("READY"))

    # The strategy's bid rests at the venue, acknowledged and in the journal.
    rows = await until(
        lambda: [r for r in daemon.orders() if r[2] == "open" and r[1]], what="an open order in the journal"
    )
    [(cid, order_id, _, _, price_text)] = rows
    assert cid.startswith(f"{STRATEGY}-") and price_text is not None
    price = Decimal(price_text)
    assert venue.ours(sim, cid) == [(order_id, venue.resting_state)]
    sent = venue.order_requests(sim)
    assert sent == 1
    ready_at = notes.having("READY")[0][0]
    await until(lambda: notes.having("WATCHDOG", since=ready_at), what="WATCHDOG=1 after READY")

    proc.kill()
    assert await daemon.wait_exit(within=5) == -signal.SIGKILL
    assert not notes.having("STOPPING")  # no orderly stop: nothing was cancelled, nothing settled
    await until(lambda: not sim.sessions, what="the venue sees the connections gone")

    # While nobody listens, the venue fills the order.
    await venue.fill(sim, address, instrument, price, venue.size)
    assert venue.ours(sim, cid) == [(order_id, venue.filled_state)]
    assert venue.position(sim, instrument) == venue.size
    [trade_id] = venue.trade_ids(sim, cid)
    assert daemon.orders()[0][2] == "open" and daemon.ledger() == []  # the dead daemon never heard

    # The restart, on the same state directory.
    proc = await daemon.start(nursery, systemd)
    await until(lambda: len(notes.at_ready) == 2, what="READY=1 after the restart")
    missing = venue.expected(sim, instrument) - notes.at_ready[1]
    assert not missing, f"READY=1 (restart) before the venue had {missing}"
    [restored] = await until(lambda: daemon.events("journal.restored", run=1), what="journal.restored")
    assert restored["orders"] == 1
    await until(lambda: daemon.orders()[0][2] == "filled", what="the order reconciled as filled")
    status = await until(
        lambda: (
            (s := daemon.status()).get("pid") == proc.pid
            and s["reconciliations"]
            and s["strategies"][STRATEGY]["positions"]
            and not s["open_orders"]
            and s
        ),
        what="a status file of the new process showing the reconciled position",
    )
    # The restarted strategy had its ticker and, seeing its order or its position, placed
    # nothing: the one order request the venue ever had is the first process's.
    decided = await until(
        lambda: [e["event"] for e in daemon.log_lines(run=1) if e["event"].startswith("place_once.")],
        what="the restarted strategy's decision",
    )
    assert decided == ["place_once.already"]
    [caught_up] = daemon.events("fills.caught_up", run=1)  # the engine's reconciliation booked it
    assert caught_up["fills"] == 1 and caught_up["venue"] == venue.name

    [(cid2, order_id2, state, filled, _)] = daemon.orders()
    assert (cid2, order_id2, state, Decimal(filled)) == (cid, order_id, "filled", venue.size)
    fills = [row for row in daemon.ledger() if row[0] == "fill"]
    assert [(c, t, Decimal(s or "0")) for _, c, t, s in fills] == [(cid, trade_id, venue.size)]
    mine = status["strategies"][STRATEGY]
    assert mine["positions"] == {f"{venue.name}:{instrument}": str(venue.position(sim, instrument))}
    assert mine["orders_sent"] == 0 and mine["open_orders"] == 0
    assert status["watchdog"]["withheld"] == 0
    assert venue.ours(sim, cid) == [(order_id, venue.filled_state)]
    assert venue.order_requests(sim) == sent  # nothing sent twice
    assert venue.position(sim, instrument) == venue.size

    # SIGTERM: STOPPING=1, exit 0 within the bound.
    stop_at = trio.current_time()
    proc.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(within=SHUTDOWN_TIMEOUT_S + 6) == 0
    assert trio.current_time() - stop_at < SHUTDOWN_TIMEOUT_S + 1
    assert notes.having("STOPPING", since=stop_at)
    assert daemon.status()["stopped"] is True
    # Still booked once, and still nothing sent again, after the orderly stop.
    assert [row for row in daemon.ledger() if row[0] == "fill"] == fills
    assert venue.order_requests(sim) == sent

    if venue.name == "polymarket":  # the catalog's cache went where the config says
        assert (tmp_path / "catalog.jsonl").exists() and not (daemon.cwd / "catalog.jsonl").exists()

    # Not a secret of the venue's in anything the daemon wrote: logs, status file, journal.
    written = b"".join(p.read_bytes() for p in daemon.logs)
    assert b"order.sent" in written and b"order.fill" in written  # the logs did capture
    written += b"".join(p.read_bytes() for p in daemon.state.iterdir() if p.is_file())
    for secret in venue.secrets:
        for form in {secret, secret.removeprefix("0x")}:
            assert form.lower().encode() not in written.lower(), f"a {venue.name} secret was written"
