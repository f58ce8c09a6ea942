"""`tradingd simulate VENUE [--port N] [--host H] [--seed S]`: a local simulator of a venue (its
WebSocket and REST APIs over a synthetic market) on 127.0.0.1 until SIGINT/SIGTERM, for trying
`tradingd run` without an account. Needs the 'sim' extra (hypercorn): without it, one line
says so. A port that cannot be listened on (in use, not allowed) is one line naming host:port."""

from __future__ import annotations

import argparse
import signal
import sys

import trio

from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.sim.plugins import load_simulator
from tradingd.engine.sim.server import require_server

from .exits import UsageError

__all__ = ["cmd_simulate"]


def cmd_simulate(args: argparse.Namespace) -> int:
    # The port is 0-65535 already (the parser's `_port`: else the server's task group died with
    # an OverflowError); what is left to fail is the bind (in use, not allowed, no such address).
    plugin = load_simulator(args.venue)
    require_server()  # one line naming the extra, before anything starts
    configure_logging(args.log_level or "info", args.log_format or "auto", sys.stderr)

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                binds = await nursery.start(
                    lambda task_status: plugin.simulate(
                        host=args.host, port=args.port, seed=args.seed, task_status=task_status
                    )
                )
                for line in plugin.banner(binds):
                    print(line, flush=True)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(main)
    except* OSError as group:
        exc: BaseException = group.exceptions[0]
        while isinstance(exc, BaseExceptionGroup):
            exc = exc.exceptions[0]
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    return 0
