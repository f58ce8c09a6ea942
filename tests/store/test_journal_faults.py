"""The journal's file going wrong: an empty or damaged file is refused (naming it and what to
do), a full disk is said as such and sends no order it could not journal, and the daemon then
still stops cleanly on SIGTERM, leaving no temporary status file behind."""

from __future__ import annotations

import functools
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio

from tests.support.flows import make_flow
from tests.support.helpers import PERP, request
from tests.support.live_support import until
from tradingd.cli.settings import daemon_settings
from tradingd.config import load_config
from tradingd.engine import OrderRejected, OrderState
from tradingd.engine.daemon.service import Daemon, _write_private
from tradingd.engine.store.journal import JournalError, OrderJournal
from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator, serve

ROOT = Path(__file__).resolve().parent.parent.parent
S = 1_000_000_000


def fill_the_disk(journal: OrderJournal) -> None:
    """Make the journal's database as full as a full disk would: SQLite's `max_page_count` at
    the pages it has raises SQLITE_FULL ("database or disk is full") on the next page it needs,
    the very error a full disk gives."""
    pages = journal._db.execute("PRAGMA page_count").fetchone()[0]
    journal._db.execute(f"PRAGMA max_page_count = {pages}")
    # Then use up the room left in those pages (small audit notes), so the next order's records
    # need a new page.
    for _ in range(10_000):
        try:
            journal.note("filler", pad="x" * 32)
        except sqlite3.Error:
            return
    raise AssertionError("the journal never filled up")


def test_an_empty_journal_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    path.touch()
    with pytest.raises(JournalError) as err:
        OrderJournal(path)
    message = str(err.value)
    assert f"journal {path} is empty (0 bytes)" in message
    assert "move it aside to start a new journal, or restore it from backup" in message
    assert path.stat().st_size == 0  # left as it was, not made a new journal


def test_only_a_missing_journal_file_starts_a_new_journal(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.sqlite"
    journal = OrderJournal(path)
    journal.set_meta("k", 1)
    journal.close()
    again = OrderJournal(path)
    assert again.meta("k") == 1
    again.close()


def test_a_file_that_is_not_a_journal_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"this is not a database, it is some other file that landed here\n" * 100)
    with pytest.raises(JournalError) as err:
        OrderJournal(path)
    message = str(err.value)
    assert str(path) in message and "damaged or not a tradingd journal" in message
    assert "move it aside" in message


def test_a_journal_damaged_inside_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    flow = make_flow(journal)
    for i in range(200):
        flow.accept(
            request(size="10", price="90000", instrument=PERP.symbol, cid=f"s-{i}"), now_ns=(i + 1) * S
        )
    journal.close()
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[page:-page] = b"\xa5" * (len(data) - 2 * page)  # every page but the first and the last
    path.write_bytes(bytes(data))
    with pytest.raises(JournalError) as err:  # at opening, or when the orders are read back
        make_flow(None).restore(OrderJournal(path), now_ns=300 * S)
    assert str(path) in str(err.value) and "move it aside" in str(err.value)


def test_the_daemon_refuses_an_empty_journal_in_one_clear_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "journal.sqlite").touch()
    config = tmp_path / "live.toml"
    config.write_text(
        'mode = "live"\n[venues.deribit]\nurl = "ws://127.0.0.1:9/ws/api/v2"\nrest_url = "http://127.0.0.1:9"\n'
        '[daemon]\nstate_dir = "state"\n[[strategies]]\nname = "once"\n'
        'class = "tests.support.daemon_strategies:PlaceOnce"\n',
        encoding="utf-8",
    )
    client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DERIBIT_CLIENT_ID": client_id,
        "DERIBIT_CLIENT_SECRET": secret,
    }
    cmd = [sys.executable, "-c", "import sys; from tradingd.cli.main import main; sys.exit(main())"]
    done = subprocess.run(
        [*cmd, "run", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("tradingd:")]
    assert errors == [
        f"tradingd: error: journal {state / 'journal.sqlite'} is empty (0 bytes): it may have been "
        "truncated; move it aside to start a new journal, or restore it from backup"
    ]
    assert (state / "journal.sqlite").stat().st_size == 0


def test_a_full_disk_is_said_and_no_order_goes_out_that_was_not_journaled(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    flow = make_flow(journal)
    log = structlog.testing.CapturingLogger()
    flow.log = structlog.wrap_logger(log, processors=[])
    flow.accept(request(size="10", price="90000", instrument=PERP.symbol, cid="s-0"), now_ns=S)
    fill_the_disk(journal)
    refused = None
    for i in range(1, 200):  # the pages there are fill up first
        try:
            flow.accept(
                request(size="10", price="90000", instrument=PERP.symbol, cid=f"s-{i}"), now_ns=(i + 1) * S
            )
        except OrderRejected as exc:
            refused = (f"s-{i}", exc)
            break
    assert refused is not None
    cid, error = refused
    assert f"journal {path}: disk full" in str(error)
    order = flow.tracker.get(cid)
    assert order is not None and order.state is OrderState.REJECTED  # final: never sent
    failures = [c.kwargs for c in log.calls if c.kwargs.get("event") == "journal.write_failed"]
    assert failures and all(f"journal {path}: disk full" in f["error"] for f in failures)
    assert not any("cannot rollback" in str(c.kwargs) for c in log.calls)
    # Every order the flow accepted (and so could send) is in the journal.
    journaled = {r.request.client_order_id for r in OrderJournal(path).orders(final_since_ns=0)}
    accepted = {f"s-{n}" for n in range(int(cid[2:]))}
    assert accepted <= journaled and cid not in journaled


def test_a_status_file_that_cannot_be_written_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "status.json"

    def full(fd: int, data: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space left"):
        _write_private(target, b"{}")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []

    short = iter([3, 100])  # a short first write (a nearly full disk), then the rest
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[: next(short)])))
    _write_private(target, b'{"a": 12345}')
    monkeypatch.undo()
    assert target.read_bytes() == b'{"a": 12345}'
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


async def test_on_a_full_disk_the_daemon_refuses_orders_and_sigterm_exits_cleanly(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = DeribitSimulator(seed=3, step_s=0.1)
    binds = await nursery.start(functools.partial(serve, sim))
    address = binds[0].removeprefix("http://")
    config = tmp_path / "live.toml"
    config.write_text(
        f'mode = "live"\n[venues.deribit]\nurl = "ws://{address}/ws/api/v2"\nrest_url = "http://{address}"\n'
        'currencies = ["BTC"]\n[daemon]\nstate_dir = "state"\nshutdown_timeout_s = 3\n'
        '[[strategies]]\nname = "once"\nclass = "tests.support.daemon_strategies:PlaceOnce"\n'
        "[strategies.params]\nbelow = 0.1\nafter_s = 1.0\n",
        encoding="utf-8",
    )
    client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))
    log = structlog.testing.CapturingLogger()
    daemon = Daemon(
        daemon_settings(load_config(config)),
        environ={"DERIBIT_CLIENT_ID": client_id, "DERIBIT_CLIENT_SECRET": secret},
        log=structlog.wrap_logger(log, processors=[]),
    )
    assert daemon.journal is not None
    fill_the_disk(daemon.journal)
    # The disk is full for the status file too.
    real_write = os.write

    def write(fd: int, data: Any) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    codes: list[int] = []

    async def run() -> None:
        codes.append(await daemon.run())

    nursery.start_soon(run)

    def events(name: str) -> list[dict[str, Any]]:
        return [c.kwargs for c in log.calls if c.kwargs.get("event") == name]

    refused = await until(lambda: events("order.refused"), within=20, what="the order refused")
    assert "disk full" in refused[0]["reason"] and str(daemon.paths.journal) in refused[0]["reason"]
    assert not sim.orders  # nothing reached the venue
    os.kill(os.getpid(), signal.SIGTERM)
    await until(lambda: codes, within=15, what="the daemon's exit")
    assert codes == [0]
    assert events("status.write_failed")
    assert not [p for p in daemon.paths.status_file.parent.iterdir() if p.name.endswith(".tmp")]
    assert not any("cannot rollback" in str(c.kwargs) for c in log.calls)
    # What it could journal is there; opening it again works (nothing lost, nothing damaged).
    monkeypatch.undo()
    assert sqlite3.connect(daemon.paths.journal).execute("PRAGMA quick_check").fetchone() == ("ok",)


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A real 2 MB filesystem (tmpfs), where the machine lets the test mount one (root)."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root); the max_page_count tests stand in")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


async def test_a_real_full_disk_then_sigterm_exits_cleanly_and_leaves_no_temp_file(
    nursery: trio.Nursery, tmp_path: Path, small_disk: Path
) -> None:
    sim = DeribitSimulator(seed=3, step_s=0.1)
    binds = await nursery.start(functools.partial(serve, sim))
    address = binds[0].removeprefix("http://")
    config = tmp_path / "live.toml"
    config.write_text(
        f'mode = "live"\n[logging]\nlevel = "info"\nformat = "json"\n'
        f'[venues.deribit]\nurl = "ws://{address}/ws/api/v2"\nrest_url = "http://{address}"\n'
        f'currencies = ["BTC"]\n[daemon]\nstate_dir = "{small_disk}"\nshutdown_timeout_s = 3\n'
        '[[strategies]]\nname = "once"\nclass = "tests.support.daemon_strategies:PlaceOnce"\n'
        "[strategies.params]\nbelow = 0.1\nafter_s = 4.0\n",
        encoding="utf-8",
    )
    client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DERIBIT_CLIENT_ID": client_id,
        "DERIBIT_CLIENT_SECRET": secret,
    }
    log_path = tmp_path / "daemon.log"
    cmd = [sys.executable, "-c", "import sys; from tradingd.cli.main import main; sys.exit(main())"]
    with log_path.open("wb") as out:
        proc = await nursery.start(
            functools.partial(
                trio.run_process,
                [*cmd, "run", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                check=False,
            )
        )
    await until(lambda: (small_disk / "status.json").exists(), within=20, what="the daemon running")
    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass  # the disk is full
    finally:
        os.close(fd)

    def lines() -> list[str]:
        return log_path.read_text(encoding="utf-8", errors="replace").splitlines()

    await until(lambda: [x for x in lines() if "order.refused" in x], within=20, what="the order refused")
    assert not sim.orders  # nothing went out that the journal could not record
    proc.send_signal(signal.SIGTERM)
    with trio.fail_after(20):
        code = await proc.wait()
    assert code == 0, lines()[-3:]
    text = "\n".join(lines())
    assert f"journal {small_disk / 'journal.sqlite'}: disk full" in text
    assert "cannot rollback" not in text and "internal error" not in text
    assert not [name for name in os.listdir(small_disk) if name.endswith(".tmp")]
