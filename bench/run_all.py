"""Every benchmark, one command: a table of the figures in `bench/RESULTS.md` (and `results.json`).

    python bench/run_all.py [--out bench/RESULTS.md] [--quick]

A few minutes on 2 cores (the first run also generates a day of synthetic Deribit data into
`data/`, about two minutes, kept for later runs). Each figure names the command that measures
it on its own, with more detail. This machine's speed drifts by up to about 30% between runs:
the benchmarks report the best of their repetitions.

- backtest events/s with 1, 2 and 8 strategies (`bench_backtest.py`, the bundled sample);
- frames/s through each venue's decoder (`bench_decode.py`, `bench_polymarket.py`,
  `bench_derive.py`), and book updates/s;
- live: Deribit's client CPU per frame beside a bare trio-websocket client on the same frames, and
  tick-to-order latency (median, p99), against a load generator on loopback in its own process
  (`bench_deribit_live.py`); Derive's and Polymarket's ingest and tick-to-order against their
  simulators (`bench_derive_live.py`, `bench_polymarket_live.py`), and orders placed and
  acknowledged one after another (signed);
- what recording costs: the frame hook per frame, and the writer's frames/s;
- signed orders/s per venue; catalog search latency (`bench_catalog.py`, a 30,000-market cache);
- peak RSS (and events/s) of a day-sized replay with both example strategies, in a fresh process;
- the same trivial strategy, doing the same work, through tradingd's kernel and NautilusTrader's
  BacktestEngine (quotes, L2 books with fills, the bundled sample) and hftbacktest (L2), each
  run in a fresh process, interleaved, median CPU time (`bench_nautilus.py`; skipped, naming
  `pip install -e '.[bench]'`, when the peers are not installed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PY = sys.executable
sys.path.insert(0, str(BENCH))  # bench_nautilus: whether its peers are installed

Row = dict[str, Any]
Group = tuple[list[Row], tuple["Step", ...]]  # a group's rows, and the commands it ran


class Step:
    """One benchmark command: runs it, keeps its output, parses figures out of it."""

    def __init__(self, name: str, argv: list[str], timeout: float = 900) -> None:
        self.name = name
        self.argv = argv
        self.timeout = timeout
        self.out = ""
        self.error: str | None = None
        self.seconds = 0.0

    @property
    def command(self) -> str:
        shown = [a if not a.startswith(str(ROOT)) else os.path.relpath(a, ROOT) for a in self.argv]
        return "python " + " ".join(shown[1:])

    def run(self) -> Step:
        t0 = time.perf_counter()
        try:
            r = subprocess.run(
                self.argv, cwd=ROOT, capture_output=True, text=True, timeout=self.timeout, check=False
            )
            self.out = r.stdout
            if r.returncode != 0:
                self.error = _last_error(r.stderr) or f"exit {r.returncode}"
        except subprocess.TimeoutExpired:
            self.error = f"timed out after {self.timeout:.0f} s"
        self.seconds = time.perf_counter() - t0
        print(
            f"  {self.name}: {self.seconds:.0f} s" + (f" FAILED: {self.error}" if self.error else ""),
            flush=True,
        )
        return self

    def find(self, pattern: str) -> re.Match[str] | None:
        return re.search(pattern, self.out, re.MULTILINE)


def _last_error(stderr: str) -> str | None:
    """The line of a failed command's stderr that says what went wrong: the last exception line
    (tracebacks of exception groups end in box drawing, not in the error)."""
    lines = [ln.strip().lstrip("|").strip() for ln in stderr.strip().splitlines()]
    for ln in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception|Exit|Interrupt)\b", ln):
            return ln
    return next((ln for ln in reversed(lines) if ln.strip("+-| ")), None)


def _num(s: str) -> float:
    return float(s.replace(",", ""))


def _row(figure: str, value: str, command: str, **data: Any) -> Row:
    return {"figure": figure, "value": value, "command": command, **data}


def _parsed(step: Step, rows: list[tuple[str, str, Callable[[re.Match[str]], str]]]) -> list[Row]:
    out = []
    for figure, pattern, fmt in rows:
        m = step.find(pattern)
        if step.error is not None:
            out.append(_row(figure, f"failed: {step.error}", step.command))
        elif m is None:
            out.append(_row(figure, "not found in the output (see results.json)", step.command))
        else:
            out.append(_row(figure, fmt(m), step.command))
    return out


# -- the figures ----------------------------------------------------------------------------


def backtest(quick: bool) -> Group:
    step = Step(
        "backtest", [PY, str(BENCH / "bench_backtest.py"), "--repeat", "1" if quick else "2", "--copies", "3"]
    ).run()
    per_s = r"\s+[\d.]+\s+([\d,]+)\s+([\d.]+)$"
    return _parsed(
        step,
        [
            (
                "backtest, 1 strategy (GammaScalp)",
                r"^kernel, 1 strategy" + per_s,
                lambda m: f"{m[1]} events/s ({m[2]} µs/event)",
            ),
            (
                "backtest, 2 strategies (both examples)",
                r"^kernel, 2 strategies" + per_s,
                lambda m: f"{m[1]} events/s ({m[2]} µs/event)",
            ),
            (
                "backtest, 8 strategies (4 copies of each)",
                r"^kernel, 8 strategies" + per_s,
                lambda m: f"{m[1]} events/s ({m[2]} µs/event)",
            ),
            (
                "read + decode the bundled recording (no strategy)",
                r"^read \+ decode" + per_s,
                lambda m: f"{m[1]} events/s",
            ),
        ],
    ), (step,)


def decoders(quick: bool) -> Group:
    n, rep = ("20000", "3") if quick else ("50000", "5")
    deribit = Step(
        "decode deribit", [PY, str(BENCH / "bench_decode.py"), "--frames", n, "--repeat", rep]
    ).run()
    poly = Step(
        "decode polymarket",
        [
            PY,
            str(BENCH / "bench_polymarket.py"),
            "--frames",
            str(int(n) // 4),
            "--repeat",
            rep,
            "--replay-hours",
            "0.25",
        ],
    ).run()
    derive = Step(
        "decode derive",
        [PY, str(BENCH / "bench_derive.py"), "--frames", n, "--repeat", rep, "--orders", "500"],
    ).run()
    fps = r"\s+\d+\s+([\d,]+)\s+([\d.]+)"
    rows = _parsed(
        deribit,
        [
            (
                "decode Deribit option ticker",
                r"^option ticker" + fps,
                lambda m: f"{m[1]} frames/s ({m[2]} µs)",
            ),
            (
                "decode Deribit book change (one level)",
                r"^book change \(1 bid\)" + fps,
                lambda m: f"{m[1]} frames/s ({m[2]} µs)",
            ),
            ("decode Deribit trade", r"^trades \(1 trade\)" + fps, lambda m: f"{m[1]} frames/s ({m[2]} µs)"),
        ],
    )
    rows += _parsed(
        poly,
        [
            (
                "decode Polymarket price_change (2 tokens)",
                r"^price_change \(2 tokens\)" + fps,
                lambda m: f"{m[1]} frames/s ({m[2]} µs)",
            ),
            (
                "decode Polymarket book snapshot",
                r"^book snapshot \(10\+10, x2\)" + fps,
                lambda m: f"{m[1]} frames/s ({m[2]} µs)",
            ),
            (
                "book updates: Polymarket LocalOrderBook.change",
                r"^book: LocalOrderBook\.change alone\s+([\d,]+) changes/s\s+([\d.]+)",
                lambda m: f"{m[1]} updates/s ({m[2]} µs)",
            ),
            (
                "signed orders: Polymarket (CLOB V2 EIP-712 + HMAC)",
                r"^signing: check \+ amounts.*?([\d,]+) orders/s\s+([\d.]+)",
                lambda m: f"{m[1]} orders/s ({m[2]} µs)",
            ),
        ],
    )
    rows += _parsed(
        derive,
        [
            (
                "decode Derive ticker_slim (option)",
                r"^ticker_slim option" + fps,
                lambda m: f"{m[1]} frames/s ({m[2]} µs)",
            ),
            (
                "decode Derive orderbook (10+10)",
                r"^orderbook snapshot \(10\+10\)" + fps,
                lambda m: f"{m[1]} frames/s ({m[2]} µs)",
            ),
            (
                "signed orders: Derive (action signing)",
                r"^signed orders \(OrderSigner\.sign_order\)\s+([\d,]+)\s+([\d.]+)",
                lambda m: f"{m[1]} orders/s ({m[2]} µs)",
            ),
        ],
    )
    return rows, (deribit, poly, derive)


def engine_books_and_deribit_signing(quick: bool) -> Group:
    """Measured here: the engine's integer-tick book, and Deribit's request signature."""
    from tradingd.connectors.deribit.signing import http_signature_header, new_nonce
    from tradingd.engine import OrderBook

    n = 100_000 if quick else 300_000
    book = OrderBook(0.5)
    book.update(
        [(90_000.0 - i * 0.5, 10.0) for i in range(50)], [(90_000.5 + i * 0.5, 10.0) for i in range(50)]
    )
    updates = [
        (((90_000.0 - (i % 50) * 0.5, float(i % 7)),), ((90_000.5 + (i % 50) * 0.5, float((i + 3) % 7)),))
        for i in range(1000)
    ]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        upd = book.update
        for _k in range(n // 1000):
            for bids, asks in updates:
                upd(bids, asks)
        best = min(best, time.perf_counter() - t0)
    rows = [
        _row(
            "book updates: engine OrderBook.update (1 bid + 1 ask)",
            f"{n / best:,.0f} updates/s ({best / n * 1e6:.2f} µs)",
            "python bench/run_all.py --only books",
        )
    ]
    m = 20_000
    t0 = time.perf_counter()
    for i in range(m):
        http_signature_header(
            "client",
            "secret-0123456789",
            timestamp_ms=1_700_000_000_000 + i,
            nonce=new_nonce(),
            method="POST",
            uri="/api/v2/private/buy",
            body="{}",
        )
    t = time.perf_counter() - t0
    rows.append(
        _row(
            "signed orders: Deribit",
            f"n/a per order (orders ride the session authenticated once, `client_signature`); "
            f"REST request signatures {m / t:,.0f}/s",
            "python bench/run_all.py --only books",
        )
    )
    return rows, ()


# The recorder's figures: each is a row, measured or failed (a missing sample fails the three).
_RECORDER_FIGURES = (
    "recording: the frame hook, per frame (event loop)",
    "recording: public-frames filter + frame hook, per frame (as the session calls it)",
    "recording: format + zstd + write (worker thread)",
)


def recorder(quick: bool) -> Group:
    """Measured here: what recording costs. The frame hook (on the event loop, per frame), and
    the writer (formatting, zstd, block flush; a worker thread in a live session)."""
    import tempfile

    from _common import DERIBIT_SAMPLE, missing_data

    from tradingd.connectors.deribit.settings import DeribitSettings
    from tradingd.connectors.deribit.stream import DeribitSession
    from tradingd.engine.model import InstrumentRegistry
    from tradingd.engine.runtime.router import MarketRouter
    from tradingd.engine.store import RecordingReader
    from tradingd.engine.store.recorder import SessionRecorder

    cmd = "python bench/run_all.py --only recorder"
    missing = missing_data("recorder", DERIBIT_SAMPLE)  # the backtest group, run first, makes it
    if missing is not None:
        print(f"  {missing}", flush=True)
        return [_row(figure, f"failed: {missing}", cmd) for figure in _RECORDER_FIGURES], ()
    n = 100_000 if quick else 300_000
    frames: list[tuple[int, bytes]] = []
    for ts, raw in RecordingReader(DERIBIT_SAMPLE):
        frames.append((ts or 0, raw))
        if len(frames) == n:
            break
    size = sum(len(f) for _, f in frames)
    # As a live session hands them over: text frames, through the session's public-frames filter
    # (engine.venue.session: nothing private reaches a recording), read the way its receive loop does.
    texts = [(ts, raw.decode()) for ts, raw in frames]
    session = DeribitSession(
        DeribitSettings(),
        registry=InstrumentRegistry(),
        router=MarketRouter(),
        sink=None,  # type: ignore[arg-type]  # only its frame filter runs: nothing is decoded or delivered
    )
    best_hook = best_write = best_session = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(3):
            rec = SessionRecorder(Path(tmp) / str(i))
            hook = rec.frame_hook("deribit")
            t0 = time.perf_counter()
            for ts, raw in frames:
                hook(ts, raw)
            best_hook = min(best_hook, time.perf_counter() - t0)
            t0 = time.perf_counter()
            rec.close()
            best_write = min(best_write, time.perf_counter() - t0)
            filtered = SessionRecorder(Path(tmp) / f"session-{i}")
            session.on_frame = filtered.frame_hook("deribit")
            t0 = time.perf_counter()
            for ts, text in texts:
                if session.on_frame is not None:
                    session.on_frame(ts, text)
            best_session = min(best_session, time.perf_counter() - t0)
            filtered.close()
    by_hook, by_session, by_writer = _RECORDER_FIGURES
    return [
        _row(by_hook, f"{best_hook / len(frames) * 1e9:,.0f} ns", cmd),
        _row(by_session, f"{best_session / len(texts) * 1e9:,.0f} ns", cmd),
        _row(
            by_writer,
            f"{len(frames) / best_write:,.0f} frames/s ({size / best_write / 1e6:,.0f} MB/s of frames)",
            cmd,
        ),
    ], ()


def live(quick: bool) -> Group:
    steps, rounds, probes = ("1000", "3", "500") if quick else ("4000", "5", "1500")
    step = Step(
        "live (load generator on loopback)",
        [
            PY,
            str(BENCH / "bench_deribit_live.py"),
            "--burst-steps",
            steps,
            "--rounds",
            rounds,
            "--probes",
            probes,
        ],
    ).run()
    return _parsed(
        step,
        [
            (
                "live ingest: Deribit frames -> strategy (loopback)",
                r"= ([\d,]+) events/s into the strategy",
                lambda m: f"{m[1]} events/s",
            ),
            (
                "live ingest: Deribit, client CPU per frame",
                r"client cost: ([\d.]+) us of CPU per frame.*?room for ([\d,]+) frames/s",
                lambda m: f"{m[1]} µs (room for {m[2]} frames/s on one core)",
            ),
            (
                "live ingest: Deribit client CPU per frame / a bare trio-websocket client's",
                r"ratio to the bare trio-websocket client: ([\d.]+) \(goal <= 2; reference ([\d.]+) us\)",
                lambda m: f"{m[1]} (bare client {m[2]} µs)",
            ),
            (
                "tick-to-order latency, Deribit (load generator -> strategy -> order at the generator)",
                r"tick-to-order: median (\d+) us, p99 (\d+) us",
                lambda m: f"median {int(m[1]) / 1000:.2f} ms, p99 {int(m[2]) / 1000:.2f} ms",
            ),
        ],
    ), (step,)


def live_other_venues(quick: bool) -> Group:
    """Derive's and Polymarket's daemon paths against their simulators (each in a child
    process): ingest, orders placed and acknowledged one after another, tick-to-order."""
    steps, orders, lat = ("3000", "200", "8") if quick else ("8000", "500", "15")
    out: list[Row] = []
    ran: list[Step] = []
    for venue, script in (("Derive", "bench_derive_live.py"), ("Polymarket", "bench_polymarket_live.py")):
        step = Step(
            f"live {venue.lower()} (simulator on loopback)",
            [
                PY,
                str(BENCH / script),
                "--burst-steps",
                steps,
                "--orders",
                orders,
                "--latency-s",
                lat,
            ],
        ).run()
        ran.append(step)
        out += _parsed(
            step,
            [
                (
                    f"live ingest: {venue} frames -> strategy (loopback)",
                    r"= ([\d,]+) events/s into the strategy",
                    lambda m: f"{m[1]} events/s",
                ),
                (
                    f"live orders: {venue}, signed, placed and acknowledged one after another",
                    r"= ([\d,]+) orders/s \((\d+) us",
                    lambda m: f"{m[1]} orders/s ({int(m[2]) / 1000:.2f} ms round trip)",
                ),
                (
                    f"tick-to-order latency, {venue} (simulator -> strategy -> order at the simulator)",
                    r"tick-to-order: median (\d+) us, p99 (\d+) us",
                    lambda m: f"median {int(m[1]) / 1000:.2f} ms, p99 {int(m[2]) / 1000:.2f} ms",
                ),
            ],
        )
    return out, tuple(ran)


def catalog(quick: bool) -> Group:
    step = Step(
        "catalog",
        [
            PY,
            str(BENCH / "bench_catalog.py"),
            "--markets",
            "30000",
            "--queries",
            "100" if quick else "300",
            "--repeat",
            "2",
            "--dir",
            str(ROOT / "data" / "bench-catalog-30k"),
        ],
    ).run()
    return _parsed(
        step,
        [
            (
                "catalog search latency (30,000 markets), median",
                r"search latency, median\s+([\d.]+) ms",
                lambda m: f"{m[1]} ms",
            ),
            (
                "catalog search latency (30,000 markets), p99",
                r"search latency, p99\s+([\d.]+) ms",
                lambda m: f"{m[1]} ms",
            ),
            (
                "catalog search latency (30,000 markets), p99 with bm25() (the reference)",
                r"search latency, bm25\(\) before\s+[\d.]+ ms median,\s+([\d.]+) ms p99",
                lambda m: f"{m[1]} ms",
            ),
            (
                "event loop lateness during live catalog searches (worst; on the loop instead)",
                r"live search_async \(thread\)\s+([\d.]+) ms worst.*\n"
                r".*on the loop \(before\)\s+([\d.]+) ms worst",
                lambda m: f"{m[1]} ms (on the loop: {m[2]} ms)",
            ),
        ],
    ), (step,)


_DAY_CHILD = """
import resource, sys, time, trio
from tradingd.config import load_config
from tradingd.connectors.deribit import PLUGIN
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.logs.setup import configure_logging
configure_logging("error", "json")
strategies = load_config(sys.argv[2]).build_strategies()
source = DataSource("deribit", sys.argv[1])
kernel = BacktestKernel({"deribit": PLUGIN}, [source], strategies, BacktestSettings())
t0 = time.perf_counter()
result = trio.run(kernel.run)
t = time.perf_counter() - t0
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # this process's peak (KiB, Linux)
hwm_kb = 0
try:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            hwm_kb = int(line.split()[1])
except OSError:
    pass
print(f"events {result.events} frames {result.frames} seconds {t:.2f} peak_kb {peak_kb} hwm_kb {hwm_kb}")
"""


def day_replay(quick: bool) -> Group:
    hours = 6 if quick else 24
    path = ROOT / "data" / f"bench-deribit-{hours}h.rec.zst"
    if not path.exists():
        print(f"  generating {hours} h of Deribit data into {path.relative_to(ROOT)} (once)...", flush=True)
        gen = Step(
            "generate",
            [
                PY,
                "-m",
                "tradingd.cli.main",
                "generate",
                "--venue",
                "deribit",
                "--out",
                str(path),
                "--hours",
                str(hours),
                "--seed",
                "1",
            ],
        ).run()
        if gen.error:
            return [_row(f"peak RSS, {hours} h replay", f"failed: {gen.error}", gen.command)], (gen,)
    # A fresh process reports its own peak resident set: getrusage(RUSAGE_SELF).ru_maxrss at its
    # end. Linux keeps ru_maxrss across exec, so a child forked straight from this (large)
    # process would start from this process's peak: the replay is started by a small shell
    # instead (fork from sh, then exec). /proc's VmHWM (reset at exec) cross-checks it.
    step = Step(
        f"{hours} h replay",
        [
            "/bin/sh",
            "-c",
            '"$@"; exit $?',
            "sh",
            PY,
            "-c",
            _DAY_CHILD,
            str(path),
            str(ROOT / "config" / "backtest-deribit.toml"),
        ],
    ).run()
    cmd = f"python bench/run_all.py --only day (data: tradingd generate --hours {hours} --seed 1)"
    m = step.find(r"events (\d+) frames (\d+) seconds ([\d.]+) peak_kb (\d+) hwm_kb (\d+)")
    if step.error or m is None:
        return [_row(f"peak RSS, {hours} h replay", f"failed: {step.error}", cmd)], (step,)
    events, seconds, peak_kb, hwm_kb = int(m[1]), float(m[3]), int(m[4]), int(m[5])
    return [
        _row(
            f"peak RSS, {hours} h replay (both strategies, {events:,} events)",
            f"{peak_kb / 1024:,.0f} MiB (VmHWM {hwm_kb / 1024:,.0f} MiB)",
            cmd,
            peak_kb=peak_kb,
            hwm_kb=hwm_kb,
        ),
        _row(
            f"{hours} h replay, both strategies", f"{events / seconds:,.0f} events/s ({seconds:.0f} s)", cmd
        ),
    ], (step,)


def nautilus(quick: bool) -> Group:
    """tradingd against NautilusTrader (rows a-e) and hftbacktest (row f), the same work on both
    sides, interleaved runs in fresh processes, median CPU time (`bench_nautilus.py`)."""
    import tempfile

    import bench_nautilus

    args = ["--quotes", "100000", "--frames", "50000", "--sample-frames", "60000"] if quick else []
    missing = [
        name
        for name, version in (
            ("NautilusTrader", bench_nautilus.nautilus_available()),
            ("hftbacktest", bench_nautilus.hftbacktest_available()),
        )
        if version is None
    ]
    if missing:
        print(f"  peers: {' and '.join(missing)} not installed: pip install -e '.[bench]'", flush=True)
        return [
            _row(
                "tradingd vs NautilusTrader / hftbacktest",
                f"skipped: {' and '.join(missing)} not installed (pip install -e '.[bench]')",
                "python bench/bench_nautilus.py",
            )
        ], ()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peers.json"
        step = Step(
            "tradingd vs NautilusTrader / hftbacktest",
            [PY, str(BENCH / "bench_nautilus.py"), *args, "--repeat", "3", "--json", str(out)],
            timeout=7200,
        ).run()
        report = json.loads(out.read_text()) if out.exists() else None
    cmd = "python bench/bench_nautilus.py" + (" " + " ".join(args) if args else "")
    if report is None:
        return [_row("tradingd vs NautilusTrader / hftbacktest", f"failed: {step.error}", cmd)], (step,)
    rows: list[Row] = []
    for key, r in report["rows"].items():
        figures = r["figures"]
        sides = ", ".join(f"{name} {f['events_per_s']:,.0f}/s" for name, f in figures.items())
        work = figures["tradingd parsed"]
        rows.append(
            _row(
                f"row {key}: {r['title']} (events/s, median CPU)",
                f"{sides}; {work['events']:,} events, {work['orders']:,} orders, "
                f"{work['fills']:,} fills each",
                cmd,
                figures=figures,
            )
        )
        ratios = "; ".join(f"{name} {value:.2f}" for name, value in r["ratios"].items())
        rows.append(
            _row(
                f"row {key}: ratio tradingd / peer (higher: tradingd faster)", ratios, cmd, ratios=r["ratios"]
            )
        )
    if step.error:  # the sides did not do the same work: the figures above are not comparable
        rows.append(_row("tradingd vs peers: same work on both sides", f"failed: {step.error}", cmd))
    return rows, (step,)


def sweep(quick: bool) -> Group:
    """Sweep trials per minute (`bench_sweep.py`): 1 and 2 local workers and a local Ray
    instance, and the cost's growth with trials and with the data's length."""
    args = ["--runs", "1", "--trials", "4,8", "--minutes", "30,120"] if quick else ["--runs", "3"]
    step = Step("sweep", [PY, str(BENCH / "bench_sweep.py"), *args], timeout=3600).run()
    # A table row: label, trials, wall s, trials/min, CPU s/trial, raw wall figures.
    figures = r"\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s"
    rows = _parsed(
        step,
        [
            (
                f"sweep, {label} (bundled example, 2 h of data)",
                "^" + re.escape(label) + figures,
                lambda m: f"{m[3]} trials/min ({m[4]} s CPU per trial)",
            )
            for label in ("local, 1 worker", "local, 2 workers")
        ]
        + [
            (
                "sweep, Ray tasks on a local instance (bundled example, 2 h of data)",
                r"^Ray, \d+ CPUs \(local instance\)" + figures,
                lambda m: f"{m[3]} trials/min ({m[4]} s CPU per trial)",
            )
        ],
    )
    for kind, pattern in (("trials", r"^(\d+) trials"), ("data", r"^([\d.]+) min")):
        found = re.findall(pattern + figures, step.out, re.MULTILINE)
        if found and step.error is None:
            unit = " trials" if kind == "trials" else " min"
            value = "; ".join(f"{m[0]}{unit}: {m[4]} s CPU/trial, {m[3]} trials/min" for m in found)
            rows.append(_row(f"sweep cost as the {kind} grow (2 local workers)", value, step.command))
    return rows, (step,)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit or None,
    }


# `--only` picks groups by these names; all run by default, in this order.
GROUPS: dict[str, Callable[[bool], Group]] = {
    "backtest": backtest,
    "decode": decoders,
    "books": engine_books_and_deribit_signing,
    "recorder": recorder,
    "live": live,
    "live-others": live_other_venues,
    "catalog": catalog,
    "day": day_replay,
    "nautilus": nautilus,
    "sweep": sweep,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(BENCH / "RESULTS.md"))
    ap.add_argument("--json", default=str(BENCH / "results.json"))
    ap.add_argument("--quick", action="store_true", help="smaller runs (a 6 h replay), for a smoke test")
    ap.add_argument(
        "--only",
        metavar="GROUPS",
        help=f"comma-separated groups to run (default: all): {', '.join(GROUPS)}",
    )
    args = ap.parse_args()
    try:  # run with a python that has no tradingd (the system's): say which one to use
        import tradingd.engine  # noqa: F401
    except ImportError:
        print(
            f"bench/run_all.py: tradingd is not installed for {sys.executable}; run it with the "
            "project's environment: .venv/bin/python bench/run_all.py (or `. .venv/bin/activate` first)",
            file=sys.stderr,
        )
        return 2
    selected = list(GROUPS) if not args.only else [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = [g for g in selected if g not in GROUPS]
    if unknown:
        ap.error(f"unknown group(s) {', '.join(unknown)} (known: {', '.join(GROUPS)})")
    from tradingd.engine.logs.setup import configure_logging

    configure_logging("error", "json")  # the in-process figures: no log lines in the output
    t0 = time.perf_counter()
    facts = machine()
    print(f"benchmarks on {facts['cpu']} ({facts['cores']} cores), Python {facts['python']}", flush=True)
    rows: list[Row] = []
    outputs: dict[str, str] = {}
    for name in selected:
        got, ran = GROUPS[name](args.quick)
        rows += got
        outputs.update({s.name: s.out for s in ran})
    total = time.perf_counter() - t0
    failed = [r for r in rows if r["value"].startswith(("failed", "not found"))]
    cmd = (
        "python bench/run_all.py"
        + (" --quick" if args.quick else "")
        + (f" --only {','.join(selected)}" if args.only else "")
    )
    lines = [
        "# Benchmark results",
        "",
        f"`{cmd}` on {facts['date']}: {facts['cpu']}, {facts['cores']} cores, Python {facts['python']}"
        + (f", commit {facts['commit']}" if facts["commit"] else "")
        + f"; {total / 60:.1f} min in all. Best of each benchmark's repetitions; this machine's speed "
        "drifts by up to about 30% between runs.",
        "",
        "| figure | value | command |",
        "|---|---:|---|",
        *(f"| {r['figure']} | {r['value']} | `{r['command']}` |" for r in rows),
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    Path(args.json).write_text(
        json.dumps({"machine": facts, "seconds": total, "rows": rows, "outputs": outputs}, indent=2) + "\n"
    )
    print("\n".join(lines))
    print(f"written: {os.path.relpath(args.out, ROOT)}, {os.path.relpath(args.json, ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
