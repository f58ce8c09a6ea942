"""How fast `DeribitDecoder` turns realistic wire frames into events (STYLE.md habit 7).

Run: `python bench/bench_decode.py [--frames N] [--repeat R]`. For each frame type it decodes N
compact frames with `DeribitDecoder.decode` (R repetitions, the best one reported) and prints
frames/s and microseconds per frame, JSON parsing included as in a backtest, next to what a
generic `msgspec.json.decode` alone costs on the same frames (parsing no decoder code can avoid).

Book changes are measured as a realistic chain (each frame's `prev_change_id` is the previous
frame's `change_id`, so every one is applied to the book, none is a gap); their frames are built
up front so the timing is the decoder's alone.

`--sample PATH` (a Deribit recording, e.g. data/deribit-sample.rec.zst, which
`tradingd backtest --config config/backtest.toml` generates) measures instead the raw frame path of
a backtest on it, in CPU time (`time.process_time`), the median of R repetitions: the recording
read alone (`RecordingReader`: decompression, lines, receive times), then every frame it holds
decoded (frames read beforehand), in frames/s: by the decoder as a backtest builds it (with the
compiled book path, connectors/deribit/_fast.c, when it is built), by its Python book path
(`compiled=False`), and by the two-pass reference.

Targets on the 2-core build machine: option ticker <= 4.5 us, book change <= 3 us, one-trade
frame <= 3 us (a backtest needs > 200k events/s end to end; the decoder gets under half of it).
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from _common import Case, decode_parser, decoding, missing_data, print_decoding

from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.store.recording import RecordingReader
from tradingd.engine.venue.jsonrpc import JsonRpcDecoder

INSTRUMENTS = (
    b'{"jsonrpc":"2.0","id":1,"result":[{"kind":"future","instrument_name":"BTC-PERPETUAL",'
    b'"tick_size":0.5,"min_trade_amount":10.0,"contract_size":10.0,"base_currency":"BTC",'
    b'"quote_currency":"USD","settlement_currency":"BTC","settlement_period":"perpetual",'
    b'"instrument_type":"reversed","expiration_timestamp":32503708800000}]}'
)

# VENUES.md §1.6 option ticker sample, in its subscription envelope.
OPTION_TICKER = (
    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-26JUN26-100000-C.100ms",'
    b'"data":{"timestamp":1752057345721,"state":"open","stats":{"high":null,"low":null,'
    b'"price_change":null,"volume":0,"volume_usd":0},"greeks":{"delta":0.71138,"gamma":0.00001,'
    b'"vega":389.29255,"theta":-25.13021,"rho":524.77921},"index_price":108827.5,'
    b'"instrument_name":"BTC-26JUN26-100000-C","last_price":0.247,"settlement_price":0.24231149,'
    b'"min_price":0.1975,"max_price":0.3015,"open_interest":1.2,"mark_price":0.2425,'
    b'"best_bid_price":0.2395,"mark_iv":45.43,"ask_iv":46.18,"bid_iv":44.54,'
    b'"underlying_price":116086.34,"underlying_index":"BTC-26JUN26","best_ask_price":0.245,'
    b'"interest_rate":0,"estimated_delivery_price":108827.5,"best_ask_amount":2,"best_bid_amount":2}}}'
)

# NT's ws_ticker.json, compact.
PERP_TICKER = (
    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-PERPETUAL.100ms",'
    b'"data":{"timestamp":1765541474086,"state":"open","stats":{"high":93612.0,"low":89277.5,'
    b'"price_change":2.3275,"volume":11897.27640428,"volume_usd":1092371540.0,'
    b'"volume_notional":1092371540.0},"index_price":92263.55,"instrument_name":"BTC-PERPETUAL",'
    b'"last_price":92283.5,"settlement_price":92464.66,"min_price":90897.5,"max_price":93666.5,'
    b'"open_interest":1132329370.0,"mark_price":92281.78,"interest_value":0.0028213400122472977,'
    b'"best_ask_price":92284.0,"best_bid_price":92283.5,"estimated_delivery_price":92263.55,'
    b'"best_ask_amount":186520.0,"best_bid_amount":117660.0,"current_funding":0.0,'
    b'"funding_8h":0.00001742}}}'
)

TRADES_1 = (
    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms",'
    b'"data":[{"timestamp":1765531356452,"price":92288.5,"amount":750.0,"direction":"sell",'
    b'"index_price":92276.75,"instrument_name":"BTC-PERPETUAL","trade_seq":271252855,'
    b'"mark_price":92287.11,"tick_direction":2,"contracts":75.0,"trade_id":"403691825"}]}}'
)

QUOTE = (
    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-PERPETUAL",'
    b'"data":{"timestamp":1765541767174,"instrument_name":"BTC-PERPETUAL","best_ask_price":92288.5,'
    b'"best_bid_price":92288.0,"best_ask_amount":99470.0,"best_bid_amount":133440.0}}}'
)

HEARTBEAT = b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}'


def _snapshot(change_id: int) -> bytes:
    bids = ",".join(f'["new",{42500.0 - 0.5 * i},{1000.0 + 10 * i}]' for i in range(20))
    asks = ",".join(f'["new",{42501.0 + 0.5 * i},{800.0 + 10 * i}]' for i in range(20))
    return (
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms",'
        f'"data":{{"type":"snapshot","instrument_name":"BTC-PERPETUAL","timestamp":1699999999000,'
        f'"change_id":{change_id},"bids":[{bids}],"asks":[{asks}]}}}}}}'
    ).encode()


def _changes(first_id: int, n: int, *, asks: bool = True) -> Iterator[bytes]:
    """A chain of change frames: a size change of the best bid and (with `asks`) of the best ask,
    like most 100ms book messages of a liquid perpetual. Without `asks` it is the shape of the
    VENUES.md §1.6 change sample (one bid level, `"asks":[]`)."""
    for k in range(n):
        cid = first_id + k + 1
        ask_levels = f'[["change",42501.0,{700.0 + k % 30}]]' if asks else "[]"
        yield (
            '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms",'
            f'"data":{{"type":"change","timestamp":1699999999500,"prev_change_id":{cid - 1},'
            f'"instrument_name":"BTC-PERPETUAL","change_id":{cid},'
            f'"bids":[["change",42500.0,{900.0 + k % 50}]],"asks":{ask_levels}}}}}}}'
        ).encode()


def _grouped() -> bytes:
    bids = ",".join(f"[{89532.5 - 0.5 * i},{1000.0 + i}]" for i in range(10))
    asks = ",".join(f"[{89533.0 + 0.5 * i},{2000.0 + i}]" for i in range(10))
    return (
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.none.10.100ms",'
        f'"data":{{"instrument_name":"BTC-PERPETUAL","timestamp":1769246173071,"change_id":136725664747,'
        f'"bids":[{bids}],"asks":[{asks}]}}}}}}'
    ).encode()


def _check(dec: DeribitDecoder) -> None:
    # Every change of a chain applies: the benchmark measures the normal path, not gaps.
    assert dec.stats.gaps == 0
    assert dec.stats.ignored_changes == 0


def _measure(prelude: Sequence[bytes], frames: Sequence[bytes], repeat: int) -> tuple[float, float, int]:
    """(seconds to decode `frames` with a fresh decoder that has seen `prelude`, seconds for
    a generic `msgspec.json.decode` alone on the same frames, events produced), best of `repeat` each."""
    return decoding(lambda: DeribitDecoder(InstrumentRegistry()), prelude, frames, repeat, _check)


def _cpu(run: Callable[[], object]) -> float:
    t0 = time.process_time()
    run()
    return time.process_time() - t0


def sample(path: str, repeat: int) -> None:
    """The raw frame path on a recording (`--sample`): reading, then decoding, CPU time."""

    def read() -> int:
        n = 0
        for _ in RecordingReader(path):
            n += 1
        return n

    frames = list(RecordingReader(path))  # read once, untimed, for the decoding

    def decode(way: str) -> None:
        # "compiled": the decoder as a backtest builds it (the compiled book path when built);
        # "python": its Python book path; "two-pass": the reference (an envelope, then the data).
        dec = DeribitDecoder(InstrumentRegistry(), compiled=way == "compiled")
        run = functools.partial(JsonRpcDecoder.decode, dec) if way == "two-pass" else dec.decode
        for ts, frame in frames:
            run(frame, ts or 0)
        assert dec.stats.malformed == 0

    reading = statistics.median(_cpu(read) for _ in range(repeat))
    # The three ways, their order rotated from one repetition to the next.
    ways = ["compiled", "python", "two-pass"]
    times: dict[str, list[float]] = {w: [] for w in ways}
    for k in range(repeat):
        for way in ways[k % 3 :] + ways[: k % 3]:
            times[way].append(_cpu(functools.partial(decode, way)))
    n = len(frames)
    print(f"{path}: {n:,} frames; CPU time, median of {repeat}")
    print(f"  read (RecordingReader)             {n / reading:>10,.0f} frames/s  {reading:.3f} s")
    built = DeribitDecoder(InstrumentRegistry()).compiled
    names = {
        "compiled": "decode (DeribitDecoder)" if built else "decode (not compiled!)",
        "python": "decode, Python book path",
        "two-pass": "decode, two-pass reference",
    }
    for way in ways:
        t = statistics.median(times[way])
        print(f"  {names[way]:<32} {n / t:>10,.0f} frames/s  {t:.3f} s")


def main(argv: list[str] | None = None) -> int:
    parser = decode_parser(__doc__, 100_000, 15)
    parser.add_argument("--sample", metavar="PATH", help="measure reading and decoding this recording")
    args = parser.parse_args(argv)
    n, repeat = args.frames, args.repeat
    if args.sample:
        missing = missing_data("bench/bench_decode.py", Path(args.sample))
        if missing is not None:
            print(missing, file=sys.stderr)
            return 2
        sample(args.sample, repeat)
        return 0
    snapshot = _snapshot(1000)
    cases: list[Case] = [
        ("option ticker", [INSTRUMENTS], [OPTION_TICKER] * n),
        ("perpetual ticker", [INSTRUMENTS], [PERP_TICKER] * n),
        ("book change (1 bid)", [INSTRUMENTS, snapshot], list(_changes(1000, n, asks=False))),
        ("book change (1 bid + 1 ask)", [INSTRUMENTS, snapshot], list(_changes(1000, n))),
        ("trades (1 trade)", [INSTRUMENTS], [TRADES_1] * n),
        ("quote", [INSTRUMENTS], [QUOTE] * n),
        ("grouped book (10+10 levels)", [INSTRUMENTS], [_grouped()] * (n // 4)),
        ("book snapshot (20+20 levels)", [INSTRUMENTS], [_snapshot(1)] * (n // 10)),
        ("heartbeat", [], [HEARTBEAT] * n),
    ]
    print_decoding(cases, repeat, _measure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
