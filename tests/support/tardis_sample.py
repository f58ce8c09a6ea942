"""Writes the Tardis-format sample in `tests/fixtures/tardis/sample/` (see the README there).

    python -m tests.support.tardis_sample [--minutes 20] [--seed 7]

The market is the bundled generator's (`simulators.deribit.generator`: BTC perpetual and BTC
options), decoded by `DeribitDecoder` and written as Tardis.dev's Deribit CSV datasets, with
Tardis's columns, units (µs timestamps, IVs in percent, book amounts as Deribit's) and file
naming. Deterministic: the same arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
from pathlib import Path

from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.engine import BookUpdate, InstrumentKind, Ticker, Trade
from tradingd.engine.model import InstrumentRegistry
from tradingd.simulators.deribit.generator import DeribitFeed, parse_options

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "tardis" / "sample"
PERP = "BTC-PERPETUAL"

HEADERS = {
    "options_chain": "exchange,symbol,timestamp,local_timestamp,type,strike_price,expiration,open_interest,"
    "last_price,bid_price,bid_amount,bid_iv,ask_price,ask_amount,ask_iv,mark_price,mark_iv,"
    "underlying_index,underlying_price,delta,gamma,vega,theta,rho",
    "incremental_book_L2": "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount",
    "trades": "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
    "quotes": "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount",
    "derivative_ticker": "exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,"
    "predicted_funding_rate,open_interest,last_price,index_price,mark_price",
}


def _n(x: float | None, scale: float = 1.0) -> str:
    return "" if x is None else repr(round(x * scale, 10))


def write_sample(
    out: Path = OUT, *, minutes: float = 20.0, seed: int = 7, option_every_s: float = 5.0
) -> None:
    _, _, start_ns = parse_options({"seed": seed})
    feed = DeribitFeed.create(seed=seed, start_ns=start_ns)
    registry = InstrumentRegistry()
    decoder = DeribitDecoder(registry)
    rows: dict[str, list[list[str]]] = {name: [] for name in HEADERS}
    last_option: dict[str, int] = {}
    every = int(option_every_s * 1e9)
    for ts, frame in feed.frames(minutes / 60.0):
        us = str(ts // 1000)
        for ev in decoder.decode(frame, ts):
            inst = registry.get("deribit", ev.instrument)
            if inst is None or inst.base != "BTC":
                continue
            exch = str((ev.ts_exchange or ts) // 1000)
            if isinstance(ev, Ticker) and inst.kind is InstrumentKind.OPTION:
                # Tardis's options_chain is a stream of every ticker; the sample keeps one per
                # option every `option_every_s` seconds, to stay small.
                if ts - last_option.get(ev.instrument, -every) < every:
                    continue
                last_option[ev.instrument] = ts
                g = ev.greeks
                rows["options_chain"].append(
                    [
                        "deribit",
                        ev.instrument,
                        exch,
                        us,
                        "call" if inst.right is not None and inst.right.value == "call" else "put",
                        _n(float(inst.strike or 0)),
                        str((inst.expiry_ns or 0) // 1000),
                        _n(ev.open_interest),
                        _n(ev.last),
                        _n(ev.bid),
                        _n(ev.bid_size),
                        _n(ev.bid_iv, 100),
                        _n(ev.ask),
                        _n(ev.ask_size),
                        _n(ev.ask_iv, 100),
                        _n(ev.mark),
                        _n(ev.mark_iv, 100),
                        "SYN." + ev.instrument.rsplit("-", 2)[0],
                        _n(ev.underlying),
                        _n(None if g is None else g.delta),
                        _n(None if g is None else g.gamma),
                        _n(None if g is None else g.vega),
                        _n(None if g is None else g.theta),
                        _n(None if g is None else g.rho),
                    ]
                )
            elif isinstance(ev, Ticker) and ev.instrument == PERP:
                rows["derivative_ticker"].append(
                    [
                        "deribit",
                        PERP,
                        exch,
                        us,
                        "",
                        "",
                        "",
                        _n(ev.open_interest),
                        _n(ev.last),
                        _n(ev.index),
                        _n(ev.mark),
                    ]
                )
                rows["quotes"].append(
                    ["deribit", PERP, exch, us, _n(ev.ask_size), _n(ev.ask), _n(ev.bid), _n(ev.bid_size)]
                )
            elif isinstance(ev, BookUpdate) and ev.instrument == PERP:
                flag = "true" if ev.snapshot else "false"
                for side, levels in (("bid", ev.bids), ("ask", ev.asks)):
                    for price, size in levels:
                        rows["incremental_book_L2"].append(
                            ["deribit", PERP, exch, us, flag, side, _n(price), _n(size)]
                        )
            elif isinstance(ev, Trade) and ev.instrument == PERP:
                rows["trades"].append(
                    ["deribit", PERP, exch, us, ev.trade_id, ev.side.value, _n(ev.price), _n(ev.size)]
                )
    out.mkdir(parents=True, exist_ok=True)
    day = "2026-11-24"
    for name, data in rows.items():
        target = "OPTIONS" if name == "options_chain" else PERP
        text = io.StringIO(newline="")
        text.write(HEADERS[name] + "\n")
        csv.writer(text, lineterminator="\n").writerows(data)
        path = out / f"deribit_{name}_{day}_{target}.csv.gz"
        path.write_bytes(gzip.compress(text.getvalue().encode(), compresslevel=9, mtime=0))
        print(f"{path.name}: {len(data):,} rows, {path.stat().st_size:,} bytes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    write_sample(Path(args.out), minutes=args.minutes, seed=args.seed)


if __name__ == "__main__":
    main()
