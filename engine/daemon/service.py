"""`tradingd run`: the live engine as a service (DESIGN.md, "the shape").

    trio.run(daemon)
    └── root nursery
        ├── signal task      SIGTERM/SIGINT -> orderly shutdown (a second one: exit at once);
        │                    SIGHUP -> reopen the log file
        ├── systemd task     READY=1 once every venue is connected and subscribed; WATCHDOG=1
        │                    while the event loop is responsive and every feed is alive;
        │                    STATUS= one-line summaries; STOPPING=1 on shutdown
        ├── status task      every second: the status file (`tradingd status`), the kill switch
        │                    file, the risk day, the alert watcher (`[alerts]`)
        ├── alert notifier   a task per webhook posting the watcher's alerts (engine.alerts)
        └── the live engine  venues, gateways, router, strategies (engine/runtime/live.py)
    (with `[metrics]`, a thread of its own serves Prometheus metrics, read from the trio thread:
    engine.metrics)

The orderly shutdown, bounded by `[daemon] shutdown_timeout_s`: orders queued and not sent yet
are refused (with `send_queued_on_stop` they keep going out while the strategies stop),
strategies stop (their `on_stop` runs, and what it sends goes), order requests and whatever is
still queued are refused from then on (cancels still go), the requests already with a venue
get their answers, open orders are cancelled if `cancel_on_shutdown`, the journal is closed,
connections close, exit 0. Without systemd (no `$NOTIFY_SOCKET`) everything runs the same.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.metadata
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import orjson
import structlog
import trio

from ..alerts import AlertNotifier, AlertWatcher
from ..logs.setup import log_write_failures
from ..metrics import MetricsServer, Snapshot, parse_listen
from ..model.errors import ConfigError, CredentialsRefused
from ..model.histogram import LATENCY_BUCKETS_S, SLOW_BUCKETS_S, Histogram
from ..model.words import duration, plural
from ..runtime.live import LiveEngine
from ..store.journal import OrderJournal
from ..store.recorder import SessionRecorder
from ..venue.spi import LiveVenue, VenueConnection
from .settings import DaemonOptions, DaemonSettings

__all__ = ["Daemon", "DaemonPaths", "Notifier", "book_health", "daemon_paths", "read_status"]


def hold_state_dir(state_dir: Path) -> int:
    """Take the live daemon's lock on its state directory (`flock` on `<state_dir>/lock`, held
    until the file is closed or the process ends, however it ends): one journal, one daemon.
    A second `tradingd run` on the same directory (a manual run beside the systemd unit, say)
    would trade the same account from the same journal. `ConfigError` naming the holder's pid
    when it is taken; the open descriptor otherwise (`release_state_dir`)."""
    path = state_dir / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(
            f"{state_dir} is in use by another tradingd (pid {holder}): one live daemon per state "
            "directory ([daemon] state_dir)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def release_state_dir(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)  # closing the descriptor releases the lock


class Notifier:
    """sd_notify(3): datagrams to the unix socket systemd names in `$NOTIFY_SOCKET` (a leading
    `@` is the abstract namespace). Written here rather than taken from a package: the protocol
    is one `sendto` of `KEY=value` lines, and the packages that wrap it are unmaintained and
    blocking. Without `$NOTIFY_SOCKET` every call does nothing. `$WATCHDOG_USEC` (for this pid,
    per `$WATCHDOG_PID`) sets how often WATCHDOG=1 is due."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        address = environ.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if address.startswith("@"):
            self.address = "\0" + address[1:]
        elif address.startswith("/"):
            self.address = address
        self.watchdog_s: float | None = None
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1_000_000
        self.sent = 0
        self.failed = 0
        self._sock: socket.socket | None = None
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, **fields: str | int) -> bool:
        """Send `KEY=value` lines (keys upper-cased); False when there is no socket or it failed."""
        if self._sock is None or self.address is None:
            return False
        message = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        try:
            self._sock.sendto(message, self.address)
        except OSError:
            self.failed += 1
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


@attrs.frozen
class DaemonPaths:
    state_dir: Path
    journal: Path
    status_file: Path
    kill_switch_file: Path


def daemon_paths(config_path: Path, daemon: DaemonOptions, environ: Mapping[str, str]) -> DaemonPaths:
    """Where the daemon keeps its state (`[daemon]`, with systemd's directories by default)."""
    base = config_path.parent

    def resolve(p: str) -> Path:
        q = Path(os.path.expanduser(p))
        return q if q.is_absolute() else (base / q).resolve()

    if daemon.state_dir:
        state = resolve(daemon.state_dir)
    elif environ.get("STATE_DIRECTORY"):
        state = Path(environ["STATE_DIRECTORY"].split(":")[0])
    else:
        xdg = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
        state = Path(xdg) / "tradingd"
    if daemon.status_file:
        status = resolve(daemon.status_file)
    elif environ.get("RUNTIME_DIRECTORY"):
        status = Path(environ["RUNTIME_DIRECTORY"].split(":")[0]) / "status.json"
    else:
        status = state / "status.json"
    return DaemonPaths(
        state_dir=state,
        journal=resolve(daemon.journal) if daemon.journal else state / "journal.sqlite",
        status_file=status,
        kill_switch_file=resolve(daemon.kill_switch_file) if daemon.kill_switch_file else state / "KILL",
    )


def book_health(live: LiveVenue) -> dict[str, int]:
    """What a venue session's status says of its books and frames, beside `malformed`: the
    decoder's book gaps (a broken chain or a crossed book), the books resnapshotted and those held
    back by the resnapshot backoff (engine.venue.session), the instruments answers refused, the frames
    kept out of a recording (`unrecorded`), and, where the decoder counts them, Polymarket's
    changes for tokens without a book (`bookless_changes`) and Derive's crossed books
    (`LiveVenue.book_counters`); and the venue's records its execution client left out of an
    answer or could not say (`LiveVenue.execution_counters`: trades, open orders, funding records,
    balances). A counter a venue does not have is left out, never shown as 0."""
    stats = live.stats
    return {
        "book_gaps": live.decoder.stats.gaps,
        "resubscribed_books": stats.resubscribed_books,
        "deferred_resnapshots": stats.deferred_resnapshots,
        "refused_instruments": stats.refused_instruments,
        "unrecorded": stats.unrecorded,
        **live.book_counters(),
        **live.execution_counters(),
    }


@attrs.define
class _FeedWatch:
    """What the daemon saw of one venue's frames (`Daemon.feed`)."""

    frames: int = 0  # the venue's frame counter when it last moved
    last_frame_ns: int | None = None  # when the last frame came (wall clock); None before the first
    stale_seen: int = 0  # the session's `stale` count at that frame
    before_stop: str | None = None  # the feed's state when the daemon began to stop


def _version() -> str:
    try:
        return importlib.metadata.version("tradingd")
    except importlib.metadata.PackageNotFoundError:  # run from a tree that is not installed
        return "unknown"


_VERSION = _version()


def _usd(value: float | None) -> float | None:
    """A JSON number to the micro-dollar, or None for none (or no number: NaN)."""
    return None if value is None or value != value else round(value, 6)


def read_status(path: Path) -> dict[str, Any]:
    """The status file a running daemon writes (raises OSError / ValueError)."""
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def _write_private(path: Path, data: bytes) -> None:
    """Atomically replace `path` with `data`, readable by its owner only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:  # a write may be short (a nearly full disk)
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # no temp file left behind (a full disk, say)
            tmp.unlink()
        raise


_K = TypeVar("_K", bound=str)


def _summed(counts: Iterable[Mapping[_K, int]]) -> dict[_K, int]:
    """Per-key sums of several {key: count} dicts, keys sorted."""
    total: dict[_K, int] = {}
    for one in counts:
        for key, n in one.items():
            total[key] = total.get(key, 0) + n
    return dict(sorted(total.items()))


class Daemon:
    """`tradingd run` (module docstring). Build it from the settings the command line made of a
    config; `run()` returns the exit code."""

    def __init__(
        self,
        settings: DaemonSettings,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], int] = time.time_ns,
        frame_hook: Any = None,
        recorder: SessionRecorder | None = None,
        stop_after_s: float | None = None,
        reopen_logs: Callable[[], bool | None] | None = None,
        log: structlog.typing.FilteringBoundLogger | None = None,
        **engine_options: Any,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.mode = settings.mode
        self.settings = settings.options
        self.config_path = settings.config_path
        self.metrics_options = settings.metrics  # None: no metrics server
        self.metrics: MetricsServer | None = None  # while `run` serves them
        self.clock = clock
        self.log = log or structlog.get_logger("tradingd")
        # `[alerts]` (`DaemonSettings.alerts`): each webhook's URL is read here, at the start; one
        # missing is a ConfigError naming its variable or file. The watcher runs in the status loop.
        alerts = settings.alerts
        self.alert_notifier: AlertNotifier | None = None
        self.alert_watcher: AlertWatcher | None = None
        if alerts is not None:
            self.alert_notifier = AlertNotifier(
                alerts, environ=environ, config_path=settings.config_path, log=self.log
            )
            self.alert_watcher = AlertWatcher(alerts, sink=self.alert_notifier.notify, log=self.log)
        self.paths = daemon_paths(settings.config_path, settings.options, environ)
        self.paths.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.paths.status_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # `[recording]`: every raw frame of every venue connection, beside trading. A write error
        # there is logged and counted and trading goes on (`tradingd record` passes its own,
        # strict recorder: there the recording is the point).
        if recorder is None and settings.recording is not None:
            rec = settings.recording
            recorder = SessionRecorder(
                rec.directory,
                rotate_s=rec.rotate_s,
                rotate_bytes=rec.rotate_bytes,
                config_path=settings.config_path,
                strict=False,
                log=self.log,
            )
        self.recorder = recorder
        if recorder is not None:
            if frame_hook is not None:
                raise ValueError("give either a recorder or a frame_hook, not both")
            frame_hook = recorder.frame_hook
        self.stop_after_s = stop_after_s
        self.journal: OrderJournal | None = None
        self._journaled_risk_day: int | None = None  # the risk day last journaled (`_journal_risk_day`)
        self._state_lock: int | None = None
        # A failure from here on (the journal, a venue's settings) lets go of the lock again.
        with contextlib.ExitStack() as undo:
            if settings.mode == "live":
                self._state_lock = hold_state_dir(self.paths.state_dir)
                undo.callback(release_state_dir, self._state_lock)
                self.journal = OrderJournal(
                    self.paths.journal, synchronous=self.settings.journal_sync, clock=clock
                )
                if self.journal.migrated is not None:
                    was, copy = self.journal.migrated
                    self.log.warning(
                        "journal.migrated",
                        path=str(self.paths.journal),
                        schema_was=was,
                        schema=2,
                        copy=str(copy),
                    )
            self.engine = LiveEngine(
                settings.strategies,
                settings.venues,
                mode=settings.mode,
                engine_limits=settings.engine_limits,
                strategy_limits=settings.strategy_limits,
                catalog_settings=settings.catalogs,
                environ=environ,
                clock=clock,
                frame_hook=frame_hook,
                journal=self.journal,
                foreign_orders=self.settings.foreign_orders,
                log=self.log,
                on_failure=settings.on_failure,
                surface_settings=settings.surface,
                **engine_options,
            )
            self.engine.strategy_start_wait_s = self.settings.strategy_start_wait_s
            self.engine.position_check_interval_s = self.settings.position_check_interval_s
            # Refused credentials are decided here, for the whole process (`_refusal_is_fatal`).
            self.refused: CredentialsRefused | None = None  # the refusal the daemon exits 78 for
            self.refusals: dict[str, str] = {}  # venue -> the last refusal retried (status file)
            for live in self.engine.venues.values():
                for session in live.connections:
                    session.refusal_is_fatal = functools.partial(self._refusal_is_fatal, session=session)
            self._nursery: trio.Nursery | None = None
            self.notifier = Notifier(environ)
            self._extending_start = False  # `_extend_start` is running
            self.extend_every_s = 10.0
            self.reopen_logs = reopen_logs
            self.started_ns = clock()
            self.stopping = False
            self.kill_switch: str | None = None
            self.max_lag_s = 0.0  # the event loop's worst lateness since the last watchdog check
            self.lateness = Histogram(SLOW_BUCKETS_S)  # every sample of it (`_measure_lag`)
            self.watchdog_sent = 0
            self.watchdog_withheld = 0
            self._last_status_line = ""
            self._feeds: dict[str, _FeedWatch] = {}  # venue -> its frames as seen here (`feed`)
            undo.pop_all()

    # -- running ----------------------------------------------------------------------------
    async def run(self) -> int:
        """Run until a signal stops it; the process's exit code."""
        code = 0
        try:
            self._start_metrics()
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
                    if self.alert_notifier is not None:
                        await nursery.start(self.alert_notifier.run)  # tasks of its own: never in the way
                    if self.recorder is not None:
                        # Started first and cancelled last: it flushes and closes its files
                        # after the engine's last frame.
                        await nursery.start(self.recorder.run)
                    await nursery.start(self.engine.run)
                    if self.recorder is not None:
                        self.recorder.watch(self.engine.venues)
                    if self.stop_after_s is not None:
                        nursery.start_soon(self._stop_after, self.stop_after_s, nursery.cancel_scope)
                    self.log.info(
                        "daemon.started",
                        pid=os.getpid(),
                        mode=self.mode,
                        venues=sorted(self.engine.venues),
                        strategies=[s.name for s in self.engine.slots],
                        journal=str(self.paths.journal) if self.journal else None,
                        status_file=str(self.paths.status_file),
                        restored=self.engine.restored or None,
                    )
                    nursery.start_soon(self._announce_ready)
                    nursery.start_soon(self._measure_lag)
                    nursery.start_soon(self._status_loop)
                    if self.notifier.watchdog_s:
                        nursery.start_soon(self._watchdog)
                    async for signum in signals:
                        name = signal.Signals(signum).name
                        if signum == signal.SIGHUP:
                            self._reopen_logs()
                            continue
                        if not self.stopping:
                            self.log.info("daemon.stopping", signal=name)
                            nursery.start_soon(self._stop, nursery.cancel_scope)
                            continue
                        self.log.warning("daemon.forced_exit", signal=name)
                        code = 1
                        nursery.cancel_scope.cancel()
                        break
        finally:
            if self.metrics is not None:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self.metrics.close)
                self.metrics = None
            self._write_status(final=True)
            if self.journal is not None and (failed := self.journal.close()):
                # A full disk, say: nothing is lost (the WAL is read back at the next start).
                self.log.critical("journal.close_failed", path=str(self.paths.journal), error=failed)
            self.notifier.close()
            release_state_dir(self._state_lock)
            self._state_lock = None
        if self.refused is not None:
            # After the orderly stop: the command line makes it one line and exit status 78
            # (EXIT_CREDENTIALS, cli.main), which systemd does not restart into.
            self.log.info("daemon.exit", code=78, reason="credentials refused at start")
            raise self.refused
        self.log.info("daemon.exit", code=code)
        return code

    def _start_metrics(self) -> None:
        """Serve `[metrics]` (nothing without the table: no port, no thread). The address is
        bound here, before anything connects: one in use (or not this machine's) is one line
        naming the key, and the daemon exits (`ConfigError`)."""
        if self.metrics_options is None:
            return
        listen = self.metrics_options.listen
        host, port = parse_listen(listen)
        server = MetricsServer(host, port, self.metrics_snapshot, log=self.log)
        try:
            server.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {listen}: {exc.strerror or exc} (another tradingd or "
                "exporter on that port? choose another)",
                file=str(self.config_path),
                path="metrics.listen",
            ) from None
        self.metrics = server
        self.log.info("metrics.listening", address=f"http://{server.address}/metrics")

    def metrics_snapshot(self) -> Snapshot:
        """What a scrape shows (engine.metrics): `status()` and the latency histograms, copied
        here, in the trio thread."""
        e = self.engine
        none = Histogram(LATENCY_BUCKETS_S)  # a venue without an answer yet: zero, not absent
        histograms = {
            "tick_to_order": {v: g.tick_to_order.copy() for v, g in e.gateways.items()},
            "order_ack": {v: e.flow.order_ack.get(v, none).copy() for v in e.gateways},
            "event_loop_lateness": {"": self.lateness.copy()},
        }
        if self.journal is not None:
            histograms["journal_write"] = {"": self.journal.stats.write_seconds.copy()}
        # The alert notifier (engine.alerts `AlertNotifier`, with `[alerts]`): its counters.
        notifier = self.alert_notifier
        counts = (
            None
            if notifier is None
            else {
                "sent": dict(notifier.sent),
                "failed": dict(notifier.failed),
                "suppressed": dict(notifier.suppressed),
            }
        )
        return Snapshot(status=self.status(), version=_VERSION, histograms=histograms, alerts=counts)

    def _trading(self) -> bool:
        """Whether this process has sent an order: then it has a book of its own to look after."""
        return any(self.engine.flow.orders_sent.values())

    def _resting(self, venue: str | None) -> int:
        """Orders working at `venue` as far as the journal knows: open, with the venue's order
        id (the venue took them). A refusal at start may be a clock not yet synced (Deribit's
        13004, Polymarket's L2 timestamps), not a wrong secret: exiting 78 would leave them
        unattended for good (systemd does not restart it, `RestartPreventExitStatus=78`), so
        the daemon retries instead. Not another venue's orders (the refusing venue's retry does
        nothing for them), nor one restored as sent with no answer (no venue id: the crash came
        before the venue said it took it). Positions alone do not hold it: they stay at the
        venue as they are, with no order to move them, and the next start reconciles them."""
        return sum(
            1
            for o in self.engine.flow.tracker.open_orders()
            if o.request.venue == venue and o.order_id is not None
        )

    def _refusal_is_fatal(self, refused: CredentialsRefused, session: VenueConnection | None = None) -> bool:
        """A venue refused the credentials (engine.venue.session). Fatal only at the daemon's start:
        before it is ready (every venue up, READY=1), before this process sent any order
        (`_trading`), with no order the journal holds as working at the refusing venue
        (`_resting`; a position restored alone does not count), and from a session that never
        logged in (`session.handshaken`; the daemon is not ready while another venue stays
        down, and a venue that logged in then refused hours later was refused for a key rotated
        or a clock step, not a wrong secret). A wrong secret then ends the daemon in order (the
        SIGTERM path) with exit status 78. Otherwise leaving a book alone is worse: the refusing
        venue is retried with backoff, as a critical log saying why (`why`) and in the status
        (Deribit's 13004 can mean either, connectors/deribit/stream.py)."""
        if self.refused is not None:
            return True  # stopping for one already
        handshaken = session is not None and session.handshaken
        resting = self._resting(refused.venue)
        restored = (
            f"{plural(resting, 'order')} the journal holds as working at {refused.venue}: "
            "retrying, not leaving them"
        )
        why = (
            "stopping already"
            if self.stopping
            else "ready: a refusal after the start is retried (a key rotated, a clock step)"
            if self.engine.ready.is_set()
            else "this venue logged in before in this run"
            if handshaken
            else "this process has sent orders: its book is not left alone"
            if self._trading()
            else restored
            if resting
            else None
        )
        if why is not None:
            self.refusals[refused.venue or "?"] = str(refused)
            self.log.critical(
                "daemon.credentials_refused",
                venue=refused.venue,
                error=str(refused),
                retrying=True,
                why=why,
                ready=self.engine.ready.is_set(),
                logged_in_before=handshaken,
            )
            self.notifier.notify(status=f"{refused.venue}: credentials refused, retrying")
            if not self.engine.ready.is_set() and not self._extending_start and self._nursery is not None:
                self._extending_start = True
                self._nursery.start_soon(self._extend_start)
            return False
        self.refused = refused
        self.log.critical(
            "daemon.credentials_refused", venue=refused.venue, error=str(refused), retrying=False
        )
        self.log.info("daemon.stopping", reason="credentials refused at start", venue=refused.venue)
        assert self._nursery is not None
        self._nursery.start_soon(self._stop, self._nursery.cancel_scope)
        return True

    async def _stop_after(self, seconds: float, scope: trio.CancelScope) -> None:
        await trio.sleep(seconds)
        if not self.stopping:
            self.log.info("daemon.stopping", reason=f"ran for {seconds:g} s")
            await self._stop(scope)

    async def _stop(self, scope: trio.CancelScope) -> None:
        self.stopping = True
        self.notifier.notify(stopping=1, status="stopping: settling orders")
        timeout = self.settings.shutdown_timeout_s
        clean = await self.engine.shutdown(
            cancel_open_orders=self.settings.cancel_on_shutdown,
            timeout_s=timeout,
            send_queued=self.settings.send_queued_on_stop,
        )
        self.log.info("daemon.stopped", clean=clean)
        scope.cancel()

    def _reopen_logs(self) -> None:
        if self.reopen_logs is None:
            self.log.info("daemon.sighup", reopened=False)
            return
        reopened = self.reopen_logs()
        self.log.info("daemon.sighup", reopened=reopened is not False)

    async def _extend_start(self) -> None:
        """While a refusal at start is retried (`_refusal_is_fatal`), READY=1 does not come:
        systemd's start timeout (`TimeoutStartSec`, 90 s by default) would stop the daemon and
        start it again, a loop rather than the intended backoff. So every `extend_every_s` the
        timeout is pushed out (EXTEND_TIMEOUT_USEC, sd_notify(3)), until READY=1 or the stop."""
        while not self.engine.ready.is_set() and not self.stopping:
            self.notifier.notify(extend_timeout_usec=int(self.extend_every_s * 3 * 1_000_000))
            with trio.move_on_after(self.extend_every_s):
                await self.engine.ready.wait()

    async def _announce_ready(self) -> None:
        await self.engine.ready.wait()
        self.notifier.notify(ready=1, status=self.status_line())
        self.log.info("daemon.ready", notified=self.notifier.enabled)

    async def _measure_lag(self) -> None:
        """How late the event loop wakes a task: a loop blocked by something synchronous shows."""
        period = 0.1
        while True:
            t0 = trio.current_time()
            await trio.sleep(period)
            late = max(0.0, trio.current_time() - t0 - period)
            self.lateness.observe(late)
            self.max_lag_s = max(self.max_lag_s, late)

    def health(self) -> list[str]:
        """What is wrong right now (empty: healthy). The watchdog withholds WATCHDOG=1 then."""
        problems = []
        limit = max(1.0, (self.notifier.watchdog_s or 10.0) / 4)
        if self.max_lag_s > limit:
            problems.append(f"event loop {self.max_lag_s:.1f} s late")
        stale = self.settings.watchdog_stale_s
        if stale > 0 and self.engine.ready.is_set():
            now = self.clock()
            for name, live in self.engine.venues.items():
                age = self._silent_s(name, live, now)
                if age is not None and age > stale:
                    problems.append(f"{name}: nothing received for {age:.0f} s")
        return problems

    async def _watchdog(self) -> None:
        assert self.notifier.watchdog_s is not None
        interval = self.notifier.watchdog_s / 2
        while True:
            await trio.sleep(interval)
            problems = self.health()
            self.max_lag_s = 0.0
            if problems:
                self.watchdog_withheld += 1
                self.log.error("daemon.unhealthy", problems=problems)
                self.notifier.notify(status="unhealthy: " + "; ".join(problems))
                continue
            if self.notifier.notify(watchdog=1):
                self.watchdog_sent += 1

    # -- status, kill switch, risk day ----------------------------------------------------------
    async def _status_loop(self) -> None:
        while True:
            now = self.clock()
            self._journal_risk_day(now)
            await self._check_kill_switch()
            status = self._write_status()
            if self.alert_watcher is not None:
                self.alert_watcher.observe(status, now)  # never raises
            line = self.status_line()
            if line != self._last_status_line and self.engine.ready.is_set() and not self.stopping:
                self.notifier.notify(status=line)
                self._last_status_line = line
            await trio.sleep(1.0)

    def _journal_risk_day(self, now: int) -> None:
        """Roll the risk day if `now` is in a new one, and journal the day's start whenever the
        risk checker's day is not the one journaled last, whoever rolled it: an order's check
        rolls it too (at 00:00:00, before this second's call), and a day left unjournaled is,
        after a restart, the old day restored and rolled again at the equity then (the day's
        losses forgiven)."""
        risk = self.engine.flow.risk
        risk.roll_day(now)
        if self.journal is None or risk.day == self._journaled_risk_day:
            return
        flow = self.engine.flow
        failures = flow.journal_failures
        flow._journal(  # a failed write is logged and counted, never fatal (tried again next second)
            "set_meta",
            "risk_day",
            {
                "start_ns": now,
                "equity": {("*" if k is None else k): v for k, v in risk.day_start_equity.items()},
            },
        )
        if flow.journal_failures == failures:
            self._journaled_risk_day = risk.day

    async def _check_kill_switch(self) -> None:
        path = self.paths.kill_switch_file
        try:
            reason = path.read_text(encoding="utf-8").strip().splitlines()[0:1]
            engaged: str | None = (reason[0] if reason else "") or f"kill switch file {path}"
        except FileNotFoundError:
            engaged = None
        except OSError as exc:
            engaged = f"kill switch file unreadable ({exc.strerror})"  # fail safe: stop trading
        if engaged is not None and self.kill_switch is None:
            self.kill_switch = engaged
            self.engine.flow.risk.halt(engaged)
            self.log.error("risk.kill_switch_engaged", reason=engaged, file=str(path))
            if self.journal is not None:
                self.engine.flow._journal("note", "kill_switch", reason=engaged)
            # Said (status file, alert) before the cancels, which may take a slow venue seconds.
            status = self._write_status()
            if self.alert_watcher is not None:
                self.alert_watcher.observe(status, self.clock())  # never raises
            await self.engine.cancel_all_orders("kill switch", cause="kill_switch")
        elif engaged is None and self.kill_switch is not None:
            self.log.warning("risk.kill_switch_cleared", was=self.kill_switch)
            if self.journal is not None:
                self.engine.flow._journal("note", "kill_switch_cleared", was=self.kill_switch)
            self.kill_switch = None
            self.engine.flow.risk.resume()

    def feed(self, name: str, live: LiveVenue, now: int) -> tuple[str, int | None]:
        """How a venue's feed is, `live`, `stale`, `connecting` (before it is first ready) or
        `down`, and when its last frame came (wall clock ns; None before the first). The
        session's `last_frame_age_s` starts again at each connection: a venue that stops sending
        while its socket stays open is reconnected at its `stale_after_s` and then reads "0 s"
        without a frame. So the daemon follows the frame counter itself and takes the time when
        it moves (each status write, every second). Stale: the session declared the feed stale
        (its `stale` count, engine.venue.session `_watchdog`) and no frame came since; the
        engine's own detection, at each venue's own limit."""
        stats = live.stats
        watch = self._feeds.setdefault(name, _FeedWatch())
        if stats.frames != watch.frames:
            age = live.last_frame_age_s
            watch.frames = stats.frames
            watch.last_frame_ns = now - int((age or 0.0) * 1e9)
            watch.stale_seen = stats.stale
        if not live.connected:
            state = "down"
        elif stats.stale > watch.stale_seen:
            state = "stale"
        elif not live.ready.is_set():
            state = "connecting"
        else:
            state = "live"
        if not self.stopping:
            watch.before_stop = state
        return state, watch.last_frame_ns

    def _silent_s(self, name: str, live: LiveVenue, now: int) -> float | None:
        """Seconds without a frame from the venue (or since it connected, before the first)."""
        _, last = self.feed(name, live, now)
        if last is None:
            return live.last_frame_age_s
        return max(0.0, (now - last) / 1e9)

    def status_line(self) -> str:
        """One line for systemd's STATUS= (`systemctl status tradingd`)."""
        e = self.engine
        now = self.clock()
        feeds = []
        for name, live in e.venues.items():
            state, last = self.feed(name, live, now)
            if state == "stale":
                silent = "since it connected" if last is None else f"for {duration((now - last) / 1e9)}"
                feeds.append(f"{name} stale (no frame {silent})")
            else:
                feeds.append(f"{name} {'up' if state == 'live' else state}")
        open_orders = len(e.flow.tracker.open_orders())
        pnl = e.flow.equity(None)
        kill = " KILL SWITCH" if self.kill_switch else ""
        failed = f" ({len(e.failures)} failed)" if e.failures else ""
        waiting = e.flow.waiting_fills()
        waits = "fill waits" if waiting == 1 else "fills wait"
        unpriced = f" ({waiting:,} {waits} for an index price)" if waiting else ""
        return (
            f"{e.mode}: {', '.join(feeds)}; {plural(len(e.slots), 'strategy', 'strategies')}{failed}; "
            f"{plural(open_orders, 'open order')}; PnL {pnl:+,.2f} USD{unpriced}{kill}"
        )

    def status(self) -> dict[str, Any]:
        """What `tradingd status` shows (the status file's content)."""
        e = self.engine
        now = self.clock()
        venues = {}
        for name, live in e.venues.items():
            stats = live.stats
            age = live.last_frame_age_s
            feed, last_frame_ns = self.feed(name, live, now)
            venues[name] = {
                # `live`, `stale` (no frame since the session found it silent), `connecting`, `down`.
                "feed": feed,
                # When the last frame came (wall clock, ns): `tradingd status` says how long ago
                # as of when it is run, also once the daemon has stopped.
                "last_frame_ns": last_frame_ns,
                "connected": live.connected,
                "ready": live.ready.is_set(),
                "frames": stats.frames,
                "malformed": stats.malformed,
                "connects": stats.connects,
                "disconnects": stats.disconnects,
                "stale": stats.stale,
                "rate_limited": stats.rate_limited,
                # Unexpected exceptions out of the session's own tasks: each a reconnect (a bug).
                "session_faults": stats.session_faults,
                "request_timeouts": stats.timeouts,
                # Since the last frame or the current connection's start, whichever is later.
                "last_frame_age_s": None if age is None else round(age, 3),
                "channels": len(live.channels),
                "subscriptions": len(e.router.merged(name)),
                **book_health(live),
            }
        strategies = {}
        risk = e.flow.risk
        for slot in e.slots:
            ledger = e.flow.ledgers.get(slot.name)
            m = slot.mailbox.stats
            failure = e.failures.get(slot.name)
            finals = e.flow.finals.get(slot.name, {})
            strategies[slot.name] = {
                "state": "running" if failure is None else "failed",
                "failure": None if failure is None else failure.as_dict(),
                "subscriptions": len(slot.keys),
                "events": m.delivered,
                "errors": slot.errors,
                "conflated": m.conflated,
                "merged": m.merged,
                "dropped": m.dropped,
                "queued_high_water": m.high_water,
                "orders_sent": e.flow.orders_sent.get(slot.name, 0),
                "rejected": e.flow.rejected.get(slot.name, 0),
                "open_orders": len(e.flow.tracker.open_orders(slot.name)),
                "positions": {
                    f"{venue}:{symbol}": str(qty)
                    for (venue, symbol), qty in (ledger.view().positions.items() if ledger else ())
                },
                # JSON numbers (the engine's money is Decimal), to the micro-dollar.
                "realized_pnl": round(float(ledger.realized_usd), 6) if ledger else 0.0,
                "unrealized_pnl": round(float(ledger.unrealized_usd()), 6) if ledger else 0.0,
                "fees": round(float(ledger.fees_usd), 6) if ledger else 0.0,
                # Fills in the positions whose USD value waits for a first index price.
                "waiting_fills": ledger.waiting if ledger else 0,
                "fills": e.flow.fills.get(slot.name, 0),
                # Orders that became final, by "<status>/<reason class>" (engine.runtime.flow).
                "orders_final": {f"{st}/{why}": n for (st, why), n in sorted(finals.items())},
                # Orders and edits refused by a pre-trade check, by check (engine.model.risk).
                "risk_refusals": dict(sorted(risk.refusals.get(slot.name, {}).items())),
                # Since the risk day began (UTC), USD; None when it cannot be valued.
                "today_pnl": _usd(risk.today_pnl(slot.name)),
                "mailbox_depth": len(slot.mailbox),
            }
        orders = [
            {
                "client_order_id": o.client_order_id,
                "order_id": o.order_id,
                "strategy": o.strategy,
                "venue": o.request.venue,
                "instrument": o.request.instrument,
                "side": o.request.side.value,
                "price": None if o.price is None else str(o.price),
                "size": str(o.size),
                "filled": str(o.filled_size),
                "state": o.state.value,
                "age_s": round((now - o.created_ns) / 1e9, 3),
            }
            for o in e.flow.tracker.open_orders()
        ]
        return {
            "pid": os.getpid(),
            "mode": e.mode,
            "started_ns": self.started_ns,
            "updated_ns": now,
            "ready": e.ready.is_set(),
            "stopping": self.stopping,
            "kill_switch": self.kill_switch,
            # Venues retried after a refusal, while they are still down.
            "credentials_refused": {
                v: err for v, err in self.refusals.items() if v not in e.venues or not e.venues[v].connected
            }
            or None,
            "status": self.status_line(),
            "venues": venues,
            "strategies": strategies,
            "open_orders": orders,
            "unrouted_events": e.router.unrouted,
            # The option chains' volatility surfaces strategies asked for (engine.surface.service):
            # fits, failed fits, the CPU seconds of the latest, per chain its surface's time.
            "surfaces": e.surfaces.status(),
            # Every strategy's refusals by check together, and the engine's PnL today (USD).
            "risk_refusals": _summed(risk.refusals.values()),
            "today_pnl": _usd(risk.today_pnl(None)),
            # What reconciliations and the venues' reports showed that is not ours to expect
            # (alerts): open orders at a venue not ours, states a venue forced over ours, venue
            # ids two working orders claimed, fills booked to no order, unknown outcomes whose
            # recording raised, positions that differ.
            "reconcile_surprises": {
                "foreign_order": sum(e.foreign_orders_found.values()),
                "venue_override": e.flow.tracker.stats.venue_overrides,
                "order_id_conflict": e.flow.tracker.stats.order_id_conflicts,
                "unmatched_fill": e.flow.unmatched_fills,
                "fill_not_booked": e.flow.fills_not_booked,
                "funding_not_booked": e.flow.funding_payments_not_booked,
                "outcome_unrecorded": e.flow.outcomes_unrecorded,
                "position_mismatch": e.position_mismatches,
            },
            # Paper orders placed on an instrument of which no book has been received (they
            # cannot fill: the fill model needs a book), per `venue:instrument`.
            "paper_no_book": {
                f"{v}:{i}": n for v, paper in e.paper.items() for i, n in sorted(paper.no_book.items())
            }
            or None,
            "waiting_fills": e.flow.waiting_fills(),
            "reconciliations": e.reconciliations,
            # Expired instruments still held, their delivery price not yet published by the
            # venue (since when): valued at their last mark; they settle once it is.
            "awaiting_delivery": {f"{v}:{i}": ns for (v, i), ns in e.awaiting_delivery.items()} or None,
            # Alerts of expiries and funding: delivery prices refused (no price), funding
            # payments held (our positions at their time did not fit the venue's) or refused
            # (no money), journal rows a restart could not apply.
            "settlement_alerts": {
                "delivery_refused": e.delivery_refused + e.flow.settlements_refused,
                "funding_held": sorted(f"{v}:{i}" for v, i in e.flow.funding_held) or None,
                "funding_refused": e.flow.funding_refused,
                "journal_rows_not_applied": e.flow.restore_skipped,
            },
            # Steps of a reconciliation that raised, and venue states taken over ours (alerts).
            "reconcile_failures": e.reconcile_failures,
            "venue_overrides": e.flow.tracker.stats.venue_overrides,
            # Venue ids two working orders claimed (order.venue_id_conflict: contested, their
            # reports applied to neither), alerted; fills booked to no order (fill.unknown_order:
            # not ours, a manual trade say), shown only; fills of ours left unbooked
            # (fill.not_booked: a contested id; a journal unreadable), alerted, for a person.
            "order_id_conflicts": e.flow.tracker.stats.order_id_conflicts,
            "unmatched_fills": e.flow.unmatched_fills,
            "fills_not_booked": e.flow.fills_not_booked,
            # Funding payments given up unbooked (funding.not_booked: held or waiting past
            # funding_max_lookback_s), alerted, for a person (the journal's funding_not_booked notes).
            "funding_payments_not_booked": e.flow.funding_payments_not_booked,
            # The venue ids contested now, those restored from the journal included (they last as
            # long as it: README, "Venue order ids"): "venue order_id" -> the claimants' client ids.
            "contested_ids": {f"{v} {oid}": c for (v, oid), c in e.flow.tracker.contests().items()},
            # Requests whose unknown outcome could not be recorded (a bug; its questions asked
            # all the same): order.outcome_unknown_not_recorded in the log.
            "outcomes_unrecorded": e.flow.outcomes_unrecorded,
            # Orders not ours found open at each venue (each sighting, engine.runtime.live).
            "foreign_orders": dict(e.foreign_orders_found),
            # Positions the venue reports other than ours, alerted and not seen to agree since
            # (venue, instrument, engine, venue_holds, since_ns): the ledger is not rewritten.
            "position_mismatches": [e.mismatched[k] for k in sorted(e.mismatched)] or None,
            "journal": None
            if self.journal is None
            else {
                "path": str(self.journal.path),
                "writes": self.journal.stats.writes,
                "failures": e.flow.journal_failures,
                # Final orders leave memory for the journal; a late report brings one back.
                "orders_in_memory": len(e.flow.tracker),
                "orders_let_go": e.flow.tracker.evicted,
                "orders_recalled": e.flow.tracker.recalled,
                # Kept in memory for good: a journal write for them failed (their record is stale).
                "orders_dirty": e.flow.tracker.dirty,
                "lookup_failures": e.flow.tracker.stats.archive_failures,
            },
            "watchdog": {"sent": self.watchdog_sent, "withheld": self.watchdog_withheld},
            "recording": None if self.recorder is None else self._recording_status(),
            "log_write_failures": log_write_failures(),
        }

    def _recording_status(self) -> dict[str, Any]:
        rec = self.recorder
        assert rec is not None
        return {
            "dir": str(rec.directory),
            "write_errors": rec.write_errors,
            "venues": {
                name: {"frames": v.frames, "bytes": v.bytes, "dropped": v.dropped, "files": len(v.files)}
                for name, v in rec.venues.items()
            },
        }

    def _write_status(self, *, final: bool = False) -> dict[str, Any]:
        data = self.status()
        if final:
            data["stopped"] = True
            # The line as it was when the stop began (the stop closes the connections, "down").
            data["status"] = self._last_status_line or data["status"]
            for name, venue in data["venues"].items():
                # As it was when the stop began (the stop closes the connections).
                watch = self._feeds.get(name)
                venue["feed_before_stop"] = watch.before_stop if watch else None
        try:
            _write_private(self.paths.status_file, orjson.dumps(data, option=orjson.OPT_INDENT_2))
        except OSError as exc:
            self.log.warning("status.write_failed", path=str(self.paths.status_file), error=str(exc))
        return data


def run_daemon(settings: DaemonSettings, **options: Any) -> int:
    """`tradingd run`: build the daemon and run it under trio; the exit code. Raises
    `CredentialsRefused` when a venue refused the credentials at start (engine.venue.session): the
    command line makes it one line and an exit status of its own."""
    daemon = Daemon(settings, **options)
    try:
        code: int = trio.run(daemon.run)
    except BaseExceptionGroup as group:
        refused, rest = group.split(CredentialsRefused)
        if refused is None or rest is not None:
            raise
        first: BaseException = refused
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None  # the nurseries it came through say nothing more
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return code
