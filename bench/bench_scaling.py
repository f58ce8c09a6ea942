"""The cost as the work grows: strategies, frames, orders.

    python bench/bench_scaling.py [--quotes 50000] [--strategies 1,4,16,64] [--runs 3]
                                  [--rss] [--rss-10m] [--orders 4000,16000] [--json]

- events/s with 1, 4, 16, 64 strategies on the same quotes (one perpetual, a quote every 100 ms,
  each strategy counts every quote and every `--every` quotes cancels its order and places a new
  one that never fills): CPU time of the replay (`time.process_time`), each run in a fresh
  process, the counts interleaved (1, 4, 16, 64, 1, 4, ...), the median of `--runs`; and the
  marginal cost per event per strategy, the slope of CPU time per event over the count.
- `--rss`: peak RSS of `tradingd backtest` (both Deribit example strategies of config/backtest-deribit.toml)
  on a day of generated Deribit data cut to about 1M frames (`tradingd generate --hours 6 --seed 1`, 981k
  frames, about 2 minutes to make once), without and with `--report`; `--rss-10m` adds about 10M frames
  (`--hours 61`, about 20 minutes to generate once and 10 to replay twice on a 2-core machine). Peak RSS is
  `ru_maxrss` of the process, read by `wait4` (the command is started through `exec` from a small shell, so
  it does not inherit this process's peak). With `--report` the command execs into its drawing process
  (cli/render.py) once the JSON is written: Linux keeps the larger of the images' high-water marks in
  `ru_maxrss` (exec_mmap folds the old image's into the process's), so the figure is the peak of the whole
  command, replay and drawing; /proc's VmHWM, by contrast, starts again at the exec.
- `--rss-phases` (with `--rss`; or `--phases-config FILE` for any backtest config): where the
  `--report` run's memory goes: VmRSS and VmHWM (/proc/self/status) after the imports, after the
  replay, after the JSON report and before the exec; then, in the drawing process (VmHWM from
  the exec on), after its imports, matplotlib's, each chart and at the end. The run is one
  `tradingd backtest --report` in a fresh process, with the command's functions wrapped to read
  the figures (nothing else changes). The kernel's counters are approximate to a few hundred KiB
  (proc(5)).
- memory per order: tracemalloc in a fresh process, what the engine still holds after replays
  with two counts of orders (each filled at once, or cancelled), divided by the difference.

Prints a table; `--json` prints the figures as JSON instead.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
STEP = 100_000_000  # ns between quotes

# -- the child: one measurement in a fresh process --------------------------------------------

_CHILD = r"""
import contextlib, json, sys, time, tracemalloc, gc
from decimal import Decimal
import trio
from tradingd.connectors.deribit import PLUGIN
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.model.errors import OrderRejected
from tradingd.engine.model.events import Ticker
from tradingd.engine.runtime.strategy import Strategy, Subscription

mode, path, count, every = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
configure_logging("warning", "json")


class Quoter(Strategy):
    # Counts every quote; every `every` quotes cancels its resting order and places a new one:
    # 1% below the bid (rests, then cancelled), or with `cross` 1% above the ask (fills at once).
    def __init__(self, name, every, cross=False):
        super().__init__(name)
        self.every, self.cross, self.count, self.orders, self.resting = every, cross, 0, 0, None

    def required_subscriptions(self):
        return [Subscription("deribit", "BTC-PERPETUAL", {"ticker"})]

    async def on_event(self, event):
        if event.__class__ is not Ticker:
            return
        self.count += 1
        if not self.every or self.count % self.every or event.bid is None or event.ask is None:
            return
        if self.resting is not None:
            with contextlib.suppress(OrderRejected):
                await self.ctx.cancel_order(self.resting)
        if self.cross:
            price = Decimal(round(event.ask * 1.01 * 2)) / 2
            side = self.ctx.buy if self.orders % 2 == 0 else self.ctx.sell
            if self.orders % 2:
                price = Decimal(round(event.bid * 0.99 * 2)) / 2
        else:
            price, side = Decimal(round(event.bid * 0.99 * 2)) / 2, self.ctx.buy
        placed = await side("deribit", "BTC-PERPETUAL", 10, price=price)
        self.orders += 1
        self.resting = None if self.cross else placed.client_order_id


def kernel(strategies):
    return BacktestKernel(
        {"deribit": PLUGIN}, [DataSource("deribit", path)], strategies, BacktestSettings(latency_ms=0)
    )


if mode == "strategies":
    k = kernel([Quoter(f"q{i}", every) for i in range(count)])
    t0 = time.process_time()
    result = trio.run(k.run)
    cpu = time.process_time() - t0
    orders = sum(s.orders for s in result.strategies.values())
    print(json.dumps({"cpu_s": cpu, "events": result.events, "orders": orders}))
elif mode == "orders":
    # What the engine holds after `count` orders, cancelled or filled: live, so measured.
    out = {}
    for kind, cross in (("cancelled", False), ("filled", True)):
        gc.collect()
        tracemalloc.start()
        k = kernel([Quoter("q", every, cross=cross)])
        result = trio.run(k.run)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out[kind] = {"held_bytes": held, "orders": result.strategies["q"].orders}
        del k, result
    print(json.dumps(out))
"""


def _child(mode: str, path: Path, count: int, every: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(path), str(count), str(every)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- the data ---------------------------------------------------------------------------------


def write_quotes(path: Path, n: int, seed: int = 1) -> None:
    """`n` quotes of BTC-PERPETUAL in Deribit's wire format, a random walk on its 0.5 tick."""
    import orjson

    from tradingd.engine.store import RecordingWriter

    rnd = random.Random(seed)
    mid = 60_000.0
    definition = {
        "jsonrpc": "2.0",
        "id": 1,
        "result": [
            {
                "kind": "future",
                "instrument_name": "BTC-PERPETUAL",
                "tick_size": 0.5,
                "min_trade_amount": 10.0,
                "contract_size": 10.0,
                "base_currency": "BTC",
                "quote_currency": "USD",
                "settlement_currency": "BTC",
                "settlement_period": "perpetual",
                "instrument_type": "reversed",
                "expiration_timestamp": 32503708800000,
            }
        ],
    }
    prefix = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-PERPETUAL","data":'
    with RecordingWriter(path) as w:
        w.write(T0 - 1000, orjson.dumps(definition))
        for i in range(n):
            mid = max(1000.0, mid + rnd.choice((-0.5, 0.0, 0.5)))
            ts = T0 + i * STEP
            data = {
                "timestamp": ts // 1_000_000,
                "instrument_name": "BTC-PERPETUAL",
                "best_bid_price": mid - 0.5,
                "best_bid_amount": float(rnd.randint(1, 50) * 10),
                "best_ask_price": mid + 0.5,
                "best_ask_amount": float(rnd.randint(1, 50) * 10),
            }
            w.write(ts, prefix + orjson.dumps(data) + b"}}")


# -- the parts --------------------------------------------------------------------------------


def strategies_part(path: Path, counts: list[int], runs: int, every: int) -> dict[str, Any]:
    cpu: dict[int, list[float]] = {n: [] for n in counts}
    events = 0
    for _ in range(runs):  # interleaved: every count once per round, each in a fresh process
        for n in counts:
            r = _child("strategies", path, n, every)
            cpu[n].append(r["cpu_s"])
            events = r["events"]
    rows: list[dict[str, Any]] = []
    for n in counts:
        med = statistics.median(cpu[n])
        rows.append({"strategies": n, "cpu_s": med, "events_per_s": events / med, "runs_s": cpu[n]})
    # The slope of CPU time per event over the count of strategies (least squares).
    xs = [float(n) for n in counts]
    ys = [statistics.median(cpu[n]) / events * 1e6 for n in counts]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return {"events": events, "every": every, "runs": runs, "rows": rows, "us_per_event_per_strategy": slope}


def _peak_rss_kib(cmd: list[str]) -> tuple[int, float]:
    """(peak RSS in KiB, wall seconds) of `cmd`, started through `exec` from a small shell."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["/bin/sh", "-c", 'exec "$@"', "sh", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-2000:]}")
    return usage.ru_maxrss, time.perf_counter() - t0


_MARK = r"""
import json, sys


def mark(label):
    with open("/proc/self/status") as f:
        fields = (line.partition(":") for line in f)
        kib = {k: int(v.split()[0]) for k, _, v in fields if k in ("VmRSS", "VmHWM")}
    marks.append({"phase": label, "rss_mib": kib["VmRSS"] / 1024, "hwm_mib": kib["VmHWM"] / 1024})


def after(module, name, label):
    fn = getattr(module, name)

    def wrapped(*a, **kw):
        if name == "write_report":
            mark("the replay (summary printed)")
        out = fn(*a, **kw)
        mark(label(a) if callable(label) else label)
        return out

    setattr(module, name, wrapped)


marks = []
"""

# The command's first image: the replay, the JSON report, then the exec, here into `_DRAWING`
# (the drawing process as cli/render.py runs it, with the marks), its marks printed first.
_PHASES = (
    _MARK
    + r"""
import os
import tradingd.cli.backtest as cli
from tradingd.cli.main import main

config, out, drawing = sys.argv[1:4]


def exec_drawing(report, since, show, *, traceback):
    mark("the replay's image, before exec")
    print(json.dumps({"phases": marks}), flush=True)
    os.execv(sys.executable, [sys.executable, "-P", "-c", drawing, str(report), "--since", repr(since)])


after(cli, "write_report", "the JSON report written")
cli._exec_render = exec_drawing
mark("imports (python, engine, CLI)")
sys.argv = ["tradingd", "backtest", "--config", config, "--no-progress", "--report", out]
code = main()  # the process's own command line: it execs
print(json.dumps({"exit": code, "phases": marks}))
"""
)

_DRAWING = (
    _MARK
    + r"""
import tradingd.engine.reports.html as html
from tradingd.cli import render

after(html, "pyplot", "drawing: matplotlib imported")
after(html, "_overview", "drawing: the overview chart drawn")
after(html, "_strategy_figure", lambda a: f"drawing: chart of {a[1]} drawn")
mark("drawing: imports (python, renderer)")
code = render.main(sys.argv[1:])
mark("drawing: end")
print(json.dumps({"exit": code, "phases": marks}))
"""
)


def phases_part(config: Path) -> list[dict[str, Any]]:
    """VmRSS/VmHWM of a `tradingd backtest --report` run at its phases (`_PHASES`, then
    `_DRAWING` in the image it execs into: VmHWM starts again there)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", _PHASES, str(config), str(Path(tmp) / "run"), _DRAWING],
            capture_output=True,
            text=True,
            check=False,
        )
    if out.returncode:
        raise RuntimeError(f"the phases run failed ({out.returncode}): {out.stderr[-2000:]}")
    replay, result = (json.loads(line) for line in out.stdout.strip().splitlines()[-2:])
    if result["exit"]:
        raise RuntimeError(f"the phases run's backtest exited {result['exit']}: {out.stderr[-2000:]}")
    phases: list[dict[str, Any]] = replay["phases"] + result["phases"]
    return phases


def rss_part(data_dir: Path, hours: float, label: str, phases: bool = False) -> dict[str, Any]:
    tradingd = str(Path(sys.executable).with_name("tradingd"))
    path = data_dir / f"scaling-deribit-{hours:g}h.rec.zst"
    if not path.exists():
        print(f"  generating {hours:g} h of Deribit data into {path} (once)...", file=sys.stderr, flush=True)
        generate = [tradingd, "generate", "--venue", "deribit", "--out", str(path), "--hours", str(hours)]
        subprocess.run([*generate, "--seed", "1", "--no-progress"], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "backtest.toml"
        text = (ROOT / "config" / "backtest-deribit.toml").read_text()
        text = text.replace('path = "../data/deribit-sample.rec.zst"', f"path = {json.dumps(str(path))}")
        config.write_text(text)
        base = [tradingd, "backtest", "--config", str(config), "--no-progress"]
        plain, plain_s = _peak_rss_kib(base)
        report, report_s = _peak_rss_kib([*base, "--report", str(Path(tmp) / "run")])
        more = {"phases": phases_part(config)} if phases else {}
    return {
        **more,
        "label": label,
        "hours": hours,
        "data": str(path),
        "peak_rss_mib": plain / 1024,
        "peak_rss_report_mib": report / 1024,
        "seconds": plain_s,
        "seconds_report": report_s,
    }


def orders_part(data: Path, quotes: int, counts: tuple[int, int]) -> dict[str, Any]:
    """Bytes held per order: the difference between two replays' held memory (of `quotes`
    quotes, an order every `quotes // count`), per order."""
    lo, hi = (_child("orders", data, 1, max(1, quotes // count)) for count in counts)
    out: dict[str, Any] = {}
    for kind in ("cancelled", "filled"):
        d_bytes = hi[kind]["held_bytes"] - lo[kind]["held_bytes"]
        d_orders = hi[kind]["orders"] - lo[kind]["orders"]
        out[kind] = {
            "orders": [lo[kind]["orders"], hi[kind]["orders"]],
            "held_bytes": [lo[kind]["held_bytes"], hi[kind]["held_bytes"]],
            "bytes_per_order": d_bytes / d_orders if d_orders else float("nan"),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quotes", type=int, default=50_000, help="quotes replayed per run")
    ap.add_argument("--strategies", default="1,4,16,64", help="counts of strategies, comma separated")
    ap.add_argument("--every", type=int, default=100, help="an order every this many quotes (0: none)")
    ap.add_argument("--runs", type=int, default=3, help="fresh processes per count (the median counts)")
    ap.add_argument("--orders", default="1000,4000", help="two counts of orders for the memory per order")
    ap.add_argument("--order-quotes", type=int, default=50_000, help="quotes of the memory-per-order runs")
    ap.add_argument(
        "--rss", action="store_true", help="peak RSS at about 1M frames, with and without --report"
    )
    ap.add_argument("--rss-10m", action="store_true", help="and at about 10M frames (about half an hour)")
    ap.add_argument(
        "--rss-phases", action="store_true", help="with --rss: where the --report run's memory goes"
    )
    ap.add_argument("--phases-config", help="only the phases of `tradingd backtest --report` on this config")
    ap.add_argument("--no-strategies", action="store_true", help="skip the strategies part")
    ap.add_argument("--no-orders", action="store_true", help="skip the memory per order")
    ap.add_argument("--data-dir", default=str(ROOT / "data"), help="where the generated data is kept")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    out: dict[str, Any] = {"python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        quotes = Path(tmp) / "quotes.rec"
        write_quotes(quotes, args.order_quotes)
        if not args.no_strategies:
            counts = [int(x) for x in args.strategies.split(",")]
            run = quotes
            if args.quotes != args.order_quotes:
                run = Path(tmp) / "quotes-run.rec"
                write_quotes(run, args.quotes)
            out["strategies"] = strategies_part(run, counts, args.runs, args.every)
        if not args.no_orders:
            lo, hi = (int(x) for x in args.orders.split(","))
            out["orders"] = orders_part(quotes, args.order_quotes, (lo, hi))
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if args.rss or args.rss_10m:
        out["rss"] = [rss_part(data_dir, 6, "about 1M frames", args.rss_phases)]
        if args.rss_10m:
            out["rss"].append(rss_part(data_dir, 61, "about 10M frames"))
    if args.phases_config:
        out["phases"] = phases_part(Path(args.phases_config))
    if args.json:
        print(json.dumps(out, indent=2))
        return
    if "strategies" in out:
        s = out["strategies"]
        orders = f"an order every {s['every']} quotes" if s["every"] else "no order"
        print(f"{s['events']:,} events, {orders} per strategy; median of {s['runs']}")
        print(f"{'strategies':>10} {'CPU s':>8} {'events/s':>11} {'us/event':>9}")
        for row in s["rows"]:
            us = row["cpu_s"] / s["events"] * 1e6
            print(f"{row['strategies']:>10} {row['cpu_s']:>8.2f} {row['events_per_s']:>11,.0f} {us:>9.2f}")
        print(f"marginal cost: {s['us_per_event_per_strategy']:+.3f} us per event per strategy")
    for kind, o in out.get("orders", {}).items():
        print(
            f"memory per {kind} order: {o['bytes_per_order']:,.0f} bytes"
            f" ({o['orders'][0]:,} -> {o['orders'][1]:,} orders)"
        )
    for r in out.get("rss", []):
        print(
            f"peak RSS, {r['label']} ({r['hours']:g} h): {r['peak_rss_mib']:,.0f} MiB,"
            f" with --report {r['peak_rss_report_mib']:,.0f} MiB"
            f" ({r['seconds']:.0f} s, {r['seconds_report']:.0f} s)"
        )
    for label, phases in [(r["label"], r["phases"]) for r in out.get("rss", []) if "phases" in r] + (
        [(args.phases_config, out["phases"])] if "phases" in out else []
    ):
        print(f"--report run's memory, {label} (MiB):  {'VmRSS':>6} {'VmHWM':>6}")
        for ph in phases:
            print(f"  {ph['phase']:<40} {ph['rss_mib']:>6.0f} {ph['hwm_mib']:>6.0f}")


if __name__ == "__main__":
    main()
