"""The metrics' HTTP server: prometheus_client's WSGI app (content negotiation, OpenMetrics,
gzip) on a private registry, served by the standard library's threaded WSGI server in a thread of
its own, never in the trio loop.

Each scrape takes the daemon's snapshot in the trio thread (`trio.from_thread.run_sync`): the
engine's dicts are read only where trio changes them, and a scrape waits for the loop, never the
loop for a scrape (the snapshot is a status dict and a few histogram copies; the text is made in
the server's thread). Not `prometheus_client.start_http_server` itself, whose app cannot tell a
stopped daemon from a failure: once the trio run has ended (or while it is being torn down) a
scrape answers 503 with one line, not a 500 and a traceback on stderr; and the server stops with
the daemon (`close`).
"""

from __future__ import annotations

import contextlib
import math
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
import trio
from prometheus_client.exposition import make_wsgi_app
from prometheus_client.registry import CollectorRegistry

from ._collector import MetricsCollector, Snapshot
from ._listen import format_address

__all__ = ["MetricsServer", "MetricsUnavailable"]


class MetricsUnavailable(Exception):
    """A scrape came when there is no daemon to read: its trio run has ended (or is ending)."""


class _Quiet(WSGIRequestHandler):
    """No access log on stderr (the daemon's stderr is its log)."""

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per scrape (a slow client holds no other), none outliving the process."""

    daemon_threads = True
    block_on_close = False
    errors = 0

    def server_bind(self) -> None:
        # HTTPServer's own asks `socket.getfqdn(host)`: a DNS lookup that can hang the start on a
        # machine without a resolver, for a name nothing here uses.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client gone mid-answer: counted, never a traceback on stderr.
        self.errors += 1


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _SnapshotFailed(Exception):
    """The daemon's snapshot raised (logged where it did, in the trio thread)."""


def _worth_a_line(n: int) -> bool:
    """The 1st, 10th, 100th... of a failure that repeats: its lines stay few."""
    return math.log10(n).is_integer()


class MetricsServer:
    """Serves `snapshot()`'s metrics on `host:port` (port 0: a free one, `address` says which).
    `snapshot` runs in the trio thread of `trio_token` (by default the current run's, so build
    the server inside it). `start` binds (raising OSError: the address in use, not local...)
    and serves from a thread of its own; `close` stops it."""

    def __init__(
        self,
        host: str,
        port: int,
        snapshot: Callable[[], Snapshot],
        *,
        trio_token: trio.lowlevel.TrioToken | None = None,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._snapshot = snapshot
        self._token = trio_token or trio.lowlevel.current_trio_token()
        self.log = log or structlog.get_logger("tradingd.metrics")
        self.registry = CollectorRegistry()
        self.registry.register(MetricsCollector(self._take))
        self._app = make_wsgi_app(self.registry)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.scrapes = 0
        self.failures = 0  # scrapes that failed otherwise than for a stopped daemon (logged)
        self.snapshot_failures = 0  # of which the daemon's snapshot raised

    @property
    def address(self) -> str:
        """`host:port` as bound (the port chosen when 0 was asked)."""
        return format_address(self.host, self.port)

    def start(self) -> None:
        found = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family = found[0][0]
        server_class: type[_Server] = type("_MetricsServer", (_Server,), {"address_family": family})
        server = make_server(self.host, self.port, self._serve, server_class, handler_class=_Quiet)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="tradingd-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and let go of the port (blocks for up to half a second: call it from a
        worker thread in the trio run, or after it)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    # -- in the server's threads ------------------------------------------------------------
    def _take(self) -> Snapshot:
        try:
            return trio.from_thread.run_sync(self._snapshot_in_trio, trio_token=self._token)
        except trio.RunFinishedError:
            raise MetricsUnavailable("tradingd has stopped: no metrics") from None

    def _serve(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        self.scrapes += 1
        try:
            return list(self._app(environ, start_response))
        except MetricsUnavailable as exc:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
            return [f"{exc}\n".encode()]
        except Exception as exc:
            self.failures += 1
            # A scrape that keeps failing (every 15 s, for days) is logged at its 1st, 10th,
            # 100th... failure; a snapshot's failure was logged in the trio thread already.
            if not isinstance(exc, _SnapshotFailed) and _worth_a_line(self.failures):
                self._log_in_trio(
                    "metrics.scrape_failed", error=f"{type(exc).__name__}: {exc}", failures=self.failures
                )
            start_response("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"tradingd could not build its metrics: see its log\n"]

    def _log_in_trio(self, event: str, **fields: Any) -> None:
        """A log line written from the trio thread (the daemon's log is written there)."""
        with contextlib.suppress(trio.RunFinishedError):
            trio.from_thread.run_sync(lambda: self.log.error(event, **fields), trio_token=self._token)

    # -- in the trio thread -----------------------------------------------------------------
    def _snapshot_in_trio(self) -> Snapshot:
        try:
            return self._snapshot()
        except Exception as exc:
            self.snapshot_failures += 1
            if _worth_a_line(self.snapshot_failures):
                self.log.exception("metrics.snapshot_failed", failures=self.snapshot_failures)
            raise _SnapshotFailed from exc
