"""`tradingd simulate VENUE [--port N] [--host H] [--seed S] [--strikes N] [--crypto deribit]
[--mispriced P]`: a local simulator of a venue (its WebSocket and REST APIs over a synthetic
market) on 127.0.0.1 until SIGINT/SIGTERM, for trying `tradingd run` without an account.
`--strikes`, `--crypto` and `--mispriced` are the venue's generator options (`tradingd
generate`'s, `simulators/common.py` VENUE_OPTIONS): a venue whose generator does not take one
refuses it in one line, as does a wrong value. Needs the 'sim' extra (hypercorn): without it, one
line says so. A port that cannot be listened on (in use, not allowed) is one line naming
host:port."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

import trio

from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.sim.plugins import load_simulator
from tradingd.engine.sim.server import require_server
from tradingd.simulators.common import VENUE_OPTIONS, venue_options

from .exits import UsageError

__all__ = ["cmd_simulate", "simulator_options"]


def simulator_options(venue: str, given: dict[str, Any]) -> dict[str, Any]:
    """The generator options of `venue` given on the command line (those not None), checked as a
    sample's are (`venue_options`); only those given are returned, so a simulator that takes
    none is called as before. UsageError in one line: an option `venue` does not take, a wrong
    value."""
    options = {k: v for k, v in given.items() if v is not None}
    own = VENUE_OPTIONS.get(venue, {})
    foreign = [k for k in options if k not in own]
    if foreign:
        takers = {k: [v for v, keys in VENUE_OPTIONS.items() if k in keys] for k in foreign}
        said = "; ".join(f"--{k} is for {' and '.join(takers[k]) or 'no venue'}" for k in foreign)
        raise UsageError(
            f"tradingd simulate {venue} takes no {', '.join('--' + k for k in foreign)} ({said})"
        )
    try:
        venue_options(options, venue)
    except ValueError as exc:
        # The sample's words (a config key) put as the command line's (a flag).
        said = str(exc).replace("generator option ", "--").replace('crypto = "deribit"', "--crypto deribit")
        raise UsageError(said) from None
    return options


def cmd_simulate(args: argparse.Namespace) -> int:
    # The port is 0-65535 already (the parser's `_port`: else the server's task group died with
    # an OverflowError); what is left to fail is the bind (in use, not allowed, no such address).
    plugin = load_simulator(args.venue)
    options = simulator_options(
        args.venue, {"strikes": args.strikes, "crypto": args.crypto, "mispriced": args.mispriced}
    )
    require_server()  # one line naming the extra, before anything starts
    configure_logging(args.log_level or "info", args.log_format or "auto", sys.stderr)

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                binds = await nursery.start(
                    lambda task_status: plugin.simulate(
                        host=args.host, port=args.port, seed=args.seed, task_status=task_status, **options
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
