"""How fast `tradingd logs` filters a big log (STYLE.md habit 7).

Run: `python bench/bench_logs.py [--lines N] [--repeat R] [--keep PATH]`. It writes a log of N
lines (default 1,000,000) shaped like the daemon's own (`ts`, `level`, `event` first, then venue,
strategy, instrument, client_order_id...: orders, fills, book resyncs, warnings, an error with
its traceback now and then, and a few lines that are not JSON), then times `LogView` over it for
each filter (R repetitions, the best reported) with the output discarded, and once end to end
through the real CLI (`tradingd logs FILE --level warning --json > /dev/null`, process start
included). Prints lines/s and microseconds per line.

`python bench/bench_logs.py --calls` times instead what a log call costs when its level is
filtered out (the daemon at `warning`, an `info` line on the order path): through structlog's
lazy proxy, and through the `CachedLogger` the order and fill paths use (CPU time per call,
best of R rounds of 200,000 calls; tests/logs/test_cached_logger.py holds the ratio).

Target: a 1-million-line log filtered in a few seconds (>= 300k lines/s for a selective filter).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tradingd.engine.logs.tail import LogFilter, LogView, parse_time, read_file  # noqa: E402

START = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)


class _Discard:
    """An output that keeps nothing (the terminal is not what is measured): bytes for `tail`'s
    view, text for the logging set-up."""

    def write(self, data: bytes | str) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def generate(path: Path, lines: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    venues = ("deribit", "derive", "polymarket")
    strategies = ("gamma_btc", "momentum_eth", "mm_poly")
    instruments = ("BTC-PERPETUAL", "ETH-PERPETUAL", "BTC-25DEC26-92000-C", "ETH-PERP", "7132093")
    step_us = 3_600_000_000 // max(lines, 1)  # one hour of log
    with path.open("wb") as f:
        buf: list[bytes] = []
        for i in range(lines):
            ts = (START + dt.timedelta(microseconds=i * step_us)).isoformat().replace("+00:00", "Z")
            r = rnd.random()
            venue = venues[i % 3]
            strategy = strategies[(i // 3) % 3]
            instrument = instruments[i % 5]
            entry: dict[str, Any]
            if r < 0.002:
                buf.append(b"Traceback (most recent call last):  [printed by something else]\n")
                continue
            if r < 0.02:
                entry = {"ts": ts, "level": "error", "event": "order.report_failed", "venue": venue,
                         "strategy": strategy, "instrument": instrument,
                         "exception": [{"exc_type": "ValueError", "exc_value": "bad report",
                                        "frames": [{"filename": "engine/runtime/live.py", "lineno": 286,
                                                    "name": "_report"}]}]}  # fmt: skip
            elif r < 0.08:
                entry = {"ts": ts, "level": "warning", "event": "session.disconnected", "venue": venue,
                         "reason": "ping timeout"}  # fmt: skip
            elif r < 0.30:
                entry = {"ts": ts, "level": "debug", "event": "book.resync", "venue": venue,
                         "instrument": instrument, "levels": rnd.randrange(1, 400)}  # fmt: skip
            else:
                event = ("order.sent", "order.update", "order.fill")[i % 3]
                entry = {"ts": ts, "level": "info", "event": event, "strategy": strategy, "venue": venue,
                         "instrument": instrument, "client_order_id": f"{strategy}-{i}",
                         "side": "buy" if i % 2 else "sell", "size": str(rnd.randrange(1, 50)),
                         "price": f"{rnd.uniform(0.01, 100000):.2f}", "status": "open"}  # fmt: skip
            buf.append(orjson.dumps(entry) + b"\n")
            if len(buf) >= 10_000:
                f.write(b"".join(buf))
                buf.clear()
        f.write(b"".join(buf))


def time_view(path: Path, flt: LogFilter, *, json: bool, repeat: int) -> tuple[float, int, int]:
    best = float("inf")
    shown = read = 0
    for _ in range(repeat):
        gc.collect()
        view = LogView(_Discard(), flt, json=json)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        for batch in read_file(path):
            view.feed(batch)
        best = min(best, time.perf_counter() - t0)
        shown, read = view.lines_shown, view.lines_read
    return best, read, shown


def filtered_calls(repeat: int, n: int = 200_000) -> None:
    """CPU time per `log.info(...)` call that the `warning` level filters out, through structlog's
    lazy proxy and through `cached_logger`'s wrapper (what the order and fill paths hold)."""
    import structlog

    from tradingd.engine.logs.setup import cached_logger, configure_logging

    configure_logging("warning", "json", _Discard())  # type: ignore[arg-type]  # every call is filtered out
    proxy = structlog.get_logger("bench")
    for name, log in (("structlog lazy proxy", proxy), ("CachedLogger (order path)", cached_logger(proxy))):
        best = float("inf")
        for _ in range(repeat):
            t0 = time.process_time()
            for _ in range(n):
                log.info("order.fill", strategy="s", venue="v", instrument="i", size="1", price="2")
            best = min(best, time.process_time() - t0)
        print(f"a filtered-out info call, {name:28} {best / n * 1e6:6.2f} us")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", help="write the generated log here (and keep it)")
    ap.add_argument("--calls", action="store_true", help="time a filtered-out log call instead")
    args = ap.parse_args()
    if args.calls:
        filtered_calls(args.repeat)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    path = Path(args.keep) if args.keep else tmp / "tradingd.log"
    try:
        t0 = time.perf_counter()
        generate(path, args.lines)
        size = path.stat().st_size
        print(
            f"log: {args.lines:,} lines, {size / 1e6:.0f} MB, generated in {time.perf_counter() - t0:.1f} s"
        )
        middle = (START + dt.timedelta(minutes=30)).isoformat()
        venue_event = LogFilter(fields={"venue": ["deribit"], "event": ["order.*"]})
        strategy_glob = LogFilter(fields={"strategy": ["gamma_btc"], "instrument": ["BTC-*"]})
        cases: list[tuple[str, LogFilter, bool]] = [
            ("no filter, --json (parse + copy)", LogFilter(), True),
            ("--level warning --json", LogFilter(min_level=30), True),
            ("--venue deribit --json", LogFilter(fields={"venue": ["deribit"]}), True),
            ("--venue deribit --event 'order.*' --json", venue_event, True),
            ("--strategy gamma_btc --instrument 'BTC-*' --json", strategy_glob, True),
            (f"--since {middle} --json", LogFilter(since=parse_time(middle)), True),
            ("--grep gamma_btc-4242 --json", LogFilter(grep=["gamma_btc-4242"]), True),
            ("--level warning (pretty)", LogFilter(min_level=30), False),
            ("--event order.fill (pretty)", LogFilter(fields={"event": ["order.fill"]}), False),
        ]
        print(f"{'filter':52} {'shown':>9} {'seconds':>8} {'lines/s':>11} {'us/line':>8}")
        for name, flt, json in cases:
            seconds, read, shown = time_view(path, flt, json=json, repeat=args.repeat)
            print(
                f"{name:52} {shown:>9,} {seconds:>8.2f} {read / seconds:>11,.0f} {seconds / read * 1e6:>8.2f}"
            )
        exe = shutil.which("tradingd", path=str(Path(sys.executable).parent)) or "tradingd"
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            with open(os.devnull, "wb") as null:
                subprocess.run(
                    [exe, "logs", str(path), "--level", "warning", "--json"], stdout=null, check=True
                )
            best = min(best, time.perf_counter() - t0)
        print(f"CLI end to end: tradingd logs FILE --level warning --json > /dev/null: {best:.2f} s "
              f"= {args.lines / best:,.0f} lines/s")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
