"""The exhaustive differential fuzz of the C that reads venue bytes and the cache, against the
Python references, on real data (`.ci/asan` runs it on a build with AddressSanitizer, where a
read past a buffer or a bad reference count aborts the run; it runs on any build):

- `frames`: every Deribit frame of the captures (tests/fixtures/deribit), and of the generator's
  stream and the bundled sample when asked, cut at every byte, each byte dropped or replaced by
  hostile ones, each number spliced with extreme spellings (400 digits, 1e999999999, -0, NaN...),
  escapes and odd bytes in each string, deep and unbalanced nesting. The compiled decoder's
  outcome (events by repr, or the exception's type and text) and state must be the reference's
  (`compiled=False`), both from the same state (deep copies); the frame's whole-frame function,
  called directly, returns None with nothing changed or the reference's very events.
- `cache`: chunks of real records (the frames' decoded events) written both ways (the same bytes),
  then cut at every byte, each byte changed, dropped or followed by a long varint: `_replay.Records`
  reads the records `evformat.py_records` reads, then raises the same error; recording lines cut
  and changed at every byte: `_replay.scan_lines` takes what the reader's Python loop takes.

    python -m tests.support.cfuzz frames|cache [--quick] [--more]

`--quick`: a sparser set of mutations (minutes, not hours); `--more`: more real data (frames of
each channel kind from the generator's stream and the bundled sample; the sample's records),
slower: each frame starts from deep copies of the decoders, which then hold many books.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from tradingd.connectors.deribit import _fast, _frames
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.engine.model import InstrumentRegistry

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "deribit"
SAMPLE = ROOT / "data" / "deribit-sample.rec.zst"
T_LOCAL = 1_700_000_000_123_456_789
PREFIX = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"'

# A byte put in each place of a frame.
BYTES = [bytes([b]) for b in b'\x00\x01\x1f "\\{}[],:-+09.eEnt\x7f\x80\xc3\xff']
# What a number token is replaced by: past 64 characters, past int64, past a double, JSON's
# grammar broken, other JSON values.
NUMBERS = [
    *(b"0", b"-0", b"-0.0", b"1e999999999", b"-1e999999999", b"1e-999999999", b"1.7976931348623159e308"),
    *(b"4.9e-324", b"2.5e-324", b"9" * 400, b"-" + b"9" * 400, b"0." + b"0" * 400 + b"1"),
    *(b"9" * 64, b"9" * 65, b"1." + b"1" * 62, b"1." + b"1" * 63, b"9007199254740993", b"9999999999999999"),
    *(b"999999999999999999", b"9999999999999999999", b"9223372036854775808", b"-9223372036854775809"),
    *(b"9223372036854", b"9223372036855", b"1e22", b"1e23", b"1.5e-22", b"123456789012345.6", b"0.1e1"),
    *(b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"inf", b"+1", b"01", b"-01", b"1.", b".5", b"1e", b"1e+"),
    *(b"--1", b"0x10", b"1_000", b"1.5.5", b"true", b"null", b'"1"', b"[]", b"{}", b"1 "),
]
# What is put inside a string, at its start and at its end.
IN_STRINGS = [
    b"\\u0041",
    b"\\n",
    b'\\"',
    b"\\\\",
    b"\\u0000",
    b"\\ud800",
    b"\\",
    b"\\x41",
    b"\x00",
    b"\xc3\xa9",
]
# What is put in each place of a recording's lines.
LINE_BYTES = [b"\n", b"\x00", b"\r", b" ", b"Z", b".", b"9", b"\xff"]
NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
STRING = re.compile(rb'"[^"\\]*"')


class Tally:
    """What a run tried, and what it found (each failure a text, printed when found: a run cut
    short by a timeout has said them)."""

    def __init__(self) -> None:
        self.tried = 0
        self.taken = 0  # by a whole-frame function, called directly
        self.failures: list[str] = []

    def fail(self, text: str) -> None:
        self.failures.append(text)
        if len(self.failures) <= 20:
            print("FAILURE", text[:3000], flush=True)


# -- frames ---------------------------------------------------------------------------------------


def _outcome(dec: DeribitDecoder, frame: bytes) -> str:
    try:
        return repr(("events", dec.decode(frame, T_LOCAL)))
    except Exception as exc:  # MalformedFrame, or the decoder's fault: the same both ways
        return repr(("raised", type(exc).__name__, str(exc)))


def _state(dec: DeribitDecoder) -> str:
    books = {
        k: (b.bids, b.asks, b.best_bid_ticks, b.best_ask_ticks, b.sequence, b.valid, b.quantum)
        for k, b in [*dec._books.items(), *(("g:" + k, b) for k, b in dec._grouped.items())]
    }
    kept = (dec._states, dec._funding, dec._accrual, dec.stats, dec.gapped_books, dec.last_unknown_channel)
    return repr((books, kept, len(dec.registry)))


def _whole(frame: bytes) -> Callable[..., Any] | None:
    """The whole-frame function of the frame's channel (None: none)."""
    if not frame.startswith(PREFIX):
        return None
    head = frame[len(PREFIX) :].split(b'"', 1)[0].split(b".", 1)[0]
    functions = {
        b"book": _fast.book_frame,
        b"quote": _fast.quote_frame,
        b"ticker": _frames.ticker_frame,
        b"trades": _frames.trades_frame,
    }
    return functions.get(head)


def check_frame(fast: DeribitDecoder, ref: DeribitDecoder, frame: bytes, tally: Tally) -> None:
    """One frame, from copies of the two decoders as they are."""
    tally.tried += 1
    f, r = copy.deepcopy(fast), copy.deepcopy(ref)
    got, want = _outcome(f, frame), _outcome(r, frame)
    if got != want or _state(f) != _state(r):
        tally.fail(f"decode: {frame!r}\n compiled {got}\n python   {want}")
        return
    fn = _whole(frame)
    if fn is None:
        return
    texts = fn in (_frames.ticker_frame, _frames.trades_frame)  # they take an ASCII str too
    for arg in (frame, frame.decode("latin-1")) if texts else (frame,):
        d = copy.deepcopy(fast)
        before = _state(d)
        try:
            direct = fn(d, arg, T_LOCAL)
        except Exception as exc:
            if not want.startswith("('raised'"):
                tally.fail(f"direct raised {exc!r}, the reference {want}: {frame!r}")
            continue
        if direct is None:
            if _state(d) != before:
                tally.fail(f"direct None with the decoder changed: {frame!r}")
            continue
        tally.taken += isinstance(arg, bytes)
        if (isinstance(arg, str) and not arg.isascii()) or repr(("events", direct)) != want:
            tally.fail(f"direct {direct!r}\n reference {want}: {arg!r}")


def frame_mutations(frame: bytes, quick: bool) -> Iterator[bytes]:
    step = 7 if quick else 1
    for i in range(0, len(frame), step):
        yield frame[:i]
        yield frame[:i] + frame[i + 1 :]
        for b in BYTES[::3] if quick else BYTES:
            if frame[i : i + 1] != b:
                yield frame[:i] + b + frame[i + 1 :]
    for m in NUMBER.finditer(frame):
        if m.start() >= len(PREFIX) and not frame[m.start() - 1 : m.start()].isalnum():
            for text in NUMBERS[::4] if quick else NUMBERS:
                yield frame[: m.start()] + text + frame[m.end() :]
    for m in STRING.finditer(frame):
        for text in IN_STRINGS:
            yield frame[: m.start() + 1] + text + frame[m.start() + 1 :]
            yield frame[: m.end() - 1] + text + frame[m.end() - 1 :]
        if frame[m.start() - 1 : m.start()] == b":":  # a value: a number or null instead
            for text in (b"1", b"-0", b"9" * 30, b"null"):
                yield frame[: m.start()] + text + frame[m.end() :]
    head, sep, rest = frame.partition(b'"data":')
    if sep:
        for depth in (31, 32, 33, 200, 5000):
            yield head + sep + rest[:1] + b'"zz":' + b"[" * depth + b"]" * depth + b"," + rest[1:]
            yield head + sep + rest[:1] + b'"zz":' + b"[" * depth + b"," + rest[1:]
        yield frame[:-2] + b"}}}"
        yield frame + b"\x00"


def fixture_frames() -> list[bytes]:
    """The captures' frames, compact as the venue sends them."""
    frames = []
    for path in sorted(FIXTURES.glob("ws_*.json")):
        frames.append(orjson.dumps(orjson.loads(path.read_bytes())))
    return frames


def fuzz_frames(stream: list[bytes], at: list[int], quick: bool, tally: Tally, label: str) -> None:
    """The frames of `stream` decoded in order by both decoders; those at `at` mutated first."""
    fast = DeribitDecoder(InstrumentRegistry())
    ref = DeribitDecoder(InstrumentRegistry(), compiled=False)
    targets = set(at)
    for i, frame in enumerate(stream):
        if i in targets:
            t0, n0, f0 = time.perf_counter(), tally.tried, len(tally.failures)
            for m in frame_mutations(frame, quick):
                check_frame(fast, ref, m, tally)
            channel = frame[len(PREFIX) : len(PREFIX) + 40]
            print(
                f"{label} #{i} {channel!r}: {tally.tried - n0} frames, {len(tally.failures) - f0} failures,"
                f" {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
        if _outcome(fast, frame) != _outcome(ref, frame):
            tally.fail(f"the stream's frame: {frame!r}")


def _picks(frames: list[bytes], start: int, per_kind: int) -> list[int]:
    """Up to `per_kind` frames of each channel kind from `start`, spread over the stream."""
    kinds: dict[bytes, list[int]] = {}
    for i, f in enumerate(frames[start:], start):
        kinds.setdefault(f[len(PREFIX) : len(PREFIX) + 5], []).append(i)
    return sorted(i for idx in kinds.values() for i in idx[:: max(1, len(idx) // per_kind)][:per_kind])


def generated(n: int) -> list[tuple[int, bytes]]:
    from tradingd.simulators.deribit.generator import DeribitFeed

    feed = DeribitFeed.create(seed=11, start_ns=1_795_478_400_000_000_000)
    return list(itertools.islice(feed.frames(1.0), n))


def sample(n: int) -> list[tuple[int, bytes]]:
    from tradingd.engine.store import RecordingReader

    lines = itertools.islice(RecordingReader(SAMPLE), n) if SAMPLE.exists() and n else ()
    return [(ts or 0, frame) for ts, frame in lines]


def run_frames(args: argparse.Namespace, tally: Tally) -> None:
    fixtures = fixture_frames()
    # the captures twice: the second time every instrument's state is known, books are valid
    stream = [(FIXTURES / "http_get_instruments.json").read_bytes(), *fixtures, *fixtures]
    fuzz_frames(stream, list(range(1 + len(fixtures), len(stream))), args.quick, tally, "captures")
    if args.more:
        frames = [f for _, f in generated(3000)]
        fuzz_frames(frames, _picks(frames, 500, 6), args.quick, tally, "generated")
        frames = [f for _, f in sample(20_000)]
        fuzz_frames(frames, _picks(frames, 2000, 6), args.quick, tally, "sample")


# -- cache and recording lines ---------------------------------------------------------------------


def run_cache(args: argparse.Namespace, tally: Tally) -> None:
    from tests.store.test_recording_compiled import model_scan
    from tests.store.test_replay_compiled import _both_ways, _encode_both
    from tradingd.engine.store import _replay

    stamp = 1_795_478_400_000_000_000
    frames = [(stamp + i * 1_000_123, f) for i, f in enumerate(fixture_frames() * 2)]
    frames += generated(2000) + sample(20_000 if args.more else 0)
    dec = DeribitDecoder(InstrumentRegistry(), compiled=False)
    dec.decode((FIXTURES / "http_get_instruments.json").read_bytes(), stamp)
    records: list[tuple[int, int, Any]] = []
    for ts, frame in frames:
        try:
            events = dec.decode(frame, ts)
        except Exception:
            continue
        if events:
            records.append((ts, 0, events[0] if len(events) == 1 else tuple(events)))

    def read(chunk: bytes, count: int, structs: Any, consts: Any) -> None:
        _both_ways(chunk, count, 1, structs, consts)  # asserts: the same records, the same error
        tally.tried += 1

    t0 = time.perf_counter()
    for at in range(0, len(records), 40):
        group = records[at : at + 40]
        data, structs, consts = _encode_both(group)
        n, tables = len(group), (structs, consts)
        step = max(1, len(data) // 300) if args.quick else 1
        for i in range(0, len(data) + 1, step):
            read(data[:i], n, *tables)
            read(data[:i], n + 1, *tables)
        for i in range(0, len(data), step):
            for x in (0x01, 0x02, 0x40, 0x7F, 0x80, 0xFF)[:: 2 if args.quick else 1]:
                read(data[:i] + bytes([data[i] ^ x]) + data[i + 1 :], n, *tables)
            read(data[:i] + data[i + 1 :], n, *tables)
            read(data[:i] + b"\xff" * 9 + b"\x7f" + data[i:], n, *tables)
    print(f"records: {len(records)} real ones, {tally.tried} chunks read, {time.perf_counter() - t0:.0f} s")

    def scan(*scan_args: Any) -> None:
        def outcome(f: Callable[..., Any]) -> Any:
            try:
                return f(*scan_args)
            except ValueError:
                return "ValueError"

        tally.tried += 1
        got, want = outcome(_replay.scan_lines), outcome(model_scan)
        if got != want:
            tally.fail(f"scan_lines{scan_args!r}\n compiled {got!r}\n model {want!r}")

    def line(ts: int, frame: bytes) -> bytes:
        sec, frac = divmod(ts, 1_000_000_000)
        return (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode() + b".%07dZ " % (frac // 100) + frame
        )

    t0, n0 = time.perf_counter(), tally.tried
    lines = [line(ts, f[:200]) + b"\n" for ts, f in frames[:400]]
    for k in range(0, len(lines) - 4, 40 if args.quick else 4):
        buf = b"".join(lines[k : k + 4])
        cached = [
            (b"-", 0),
            (lines[k][:20], _replay.scan_lines(lines[k], 0, len(lines[k]), b"-", 0, None, 1)[3]),
        ]
        for i in range(0, len(buf) + 1, 5 if args.quick else 1):
            for prefix, base in cached:
                scan(buf, 0, i, prefix, base, None, 10)
        for i in range(len(buf)):
            for b in (b"\n", b"9", b"\xff") if args.quick else LINE_BYTES:
                for prefix, base in cached:
                    scan(buf[:i] + b + buf[i + 1 :], 0, len(buf), prefix, base, 7, 10)
    print(f"lines: {tally.tried - n0} scans compared with the model, {time.perf_counter() - t0:.0f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.support.cfuzz", description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["frames", "cache"])
    ap.add_argument("--quick", action="store_true", help="a sparser set of mutations")
    ap.add_argument("--more", action="store_true", help="the generator's and the sample's data too")
    args = ap.parse_args(argv)
    tally = Tally()
    t0 = time.perf_counter()
    (run_frames if args.what == "frames" else run_cache)(args, tally)
    print(
        f"cfuzz {args.what}: {tally.tried} tried, {tally.taken} taken by a whole-frame function, "
        f"{len(tally.failures)} failures, {time.perf_counter() - t0:.0f} s"
    )
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
