"""What the decode benchmarks share: their options, the best of several timed runs, the timing
of one venue's decoder over a list of frames next to a generic JSON parse of the same frames, and
the table of those timings. And what every benchmark reading a data file shares: one line saying
it is missing (`missing_data`), naming the command that makes the bundled sample."""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec

__all__ = [
    "DERIBIT_SAMPLE",
    "Case",
    "Decoder",
    "best_of",
    "decode_parser",
    "decoding",
    "interleaved",
    "median_of",
    "missing_data",
    "print_decoding",
    "run_child",
]

ROOT = Path(__file__).resolve().parent.parent
# The 4-strike Deribit sample the peers' row e and the recorder's figures read: generated, not
# committed (a fresh clone has none); the first run of its config makes it.
DERIBIT_SAMPLE = ROOT / "data" / "deribit-sample.rec.zst"
_SAMPLE_CONFIG = ROOT / "config" / "backtest-deribit.toml"

# A decoding case: its name, the frames a decoder sees first (untimed), the frames timed.
Case = tuple[str, Sequence[bytes], Sequence[bytes]]


class Decoder(Protocol):
    def decode(self, frame: bytes, ts_local: int) -> Sequence[object]: ...


_D = TypeVar("_D", bound=Decoder)
_J = TypeVar("_J")


def _shown(path: Path) -> str:
    """`path` as typed from the working directory: relative under it, else whole."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def missing_data(script: str, path: Path, *, instead: str | None = None) -> str | None:
    """One line saying the data file `path`, which `script` reads, is not there (None when it
    is): for the bundled sample, that it is generated and the command that makes it, and
    `instead`, another way, when given ("give --sample PATH")."""
    if path.exists():
        return None
    line = f"{script}: {_shown(path)} is not there"
    if path.resolve() == DERIBIT_SAMPLE.resolve():
        # The config reads its data from its own folder: the command works from anywhere.
        made = f"tradingd backtest --config {_shown(_SAMPLE_CONFIG)}"
        line += f": it is generated, not committed; `{made}` makes it"
    return line + (f", or {instead}" if instead else "")


def best_of(run: Callable[[], object], repeat: int) -> float:
    """Best wall time of `repeat` runs of `run` (a garbage collection before each, not timed)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def decoding(
    make: Callable[[], _D],
    prelude: Sequence[bytes],
    frames: Sequence[bytes],
    repeat: int,
    check: Callable[[_D], None],
) -> tuple[float, float, int]:
    """(seconds to decode `frames` with a fresh decoder `make()` that has seen `prelude`, seconds
    for a generic `msgspec.json.decode` of the same frames (0 when they are not JSON), events
    produced), best of `repeat` each. `check(decoder)` asserts after each run that the frames took
    the normal path (no gap, nothing malformed): the benchmark measures that path."""
    events = 0

    def decode_all() -> None:
        nonlocal events
        dec = make()
        for frame in prelude:
            dec.decode(frame, 0)
        decode = dec.decode
        count = 0
        for i, frame in enumerate(frames):
            count += len(decode(frame, i))
        check(dec)
        events = count

    def parse_all() -> None:
        loads = msgspec.json.decode
        for frame in frames:
            loads(frame)

    json_frames = frames[0][:1] in (b"{", b"[")
    return best_of(decode_all, repeat), best_of(parse_all, repeat) if json_frames else 0.0, events


def decode_parser(
    doc: str | None, frames: int, repeat: int, frames_help: str = "frames per repetition"
) -> argparse.ArgumentParser:
    """The decode benchmarks' options: `--frames` per repetition and `--repeat` (the best counts)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--frames", type=int, default=frames, help=frames_help)
    parser.add_argument("--repeat", type=int, default=repeat, help="repetitions; the best is reported")
    return parser


def print_decoding(
    cases: Sequence[Case],
    repeat: int,
    measure: Callable[[Sequence[bytes], Sequence[bytes], int], tuple[float, float, int]],
    *,
    versions: bool = True,
) -> None:
    """A table row of `measure(prelude, frames, repeat)` (`decoding`) per case, after the
    versions measured with (when `versions`) and the header."""
    if versions:
        print(f"python {sys.version.split()[0]}, msgspec {msgspec.__version__}; best of {repeat}")
    header = ("frame", "bytes", "frames/s", "us/frame", "of which parse", "events/s")
    print("{:<30} {:>6} {:>10} {:>9} {:>15} {:>10}".format(*header))
    for name, prelude, frames in cases:
        seconds, parse, events = measure(prelude, frames, repeat)
        count = len(frames)
        parse_us = f"{parse / count * 1e6:.2f}" if parse else "-"
        row = (name, len(frames[0]), f"{count / seconds:,.0f}", f"{seconds / count * 1e6:.2f}", parse_us)
        print("{:<30} {:>6} {:>10} {:>9} {:>15}".format(*row), f"{events / seconds:>10,.0f}")


# -- side-by-side comparisons: fresh processes, interleaved, medians ----------------------------


def interleaved(jobs: Sequence[_J], repeat: int) -> list[tuple[int, _J]]:
    """(repetition, job) in the order to run them: every job once, then every job again, ...
    (A B C A B C, never A A B B C C), so a slow spell of a shared machine hits every side alike."""
    return [(rep, job) for rep in range(repeat) for job in jobs]


def settled() -> None:
    """Before a timed run: everything setup built (the inputs, and the engine itself with its
    strategies and data) collected once and frozen out of the collector's reach (`gc.freeze`),
    so no side's figure pays for full collections walking objects that existed before its clock
    started (tradingd prebuilt held 200k events in memory and paid ~0.14 s of row d's 0.67 s for
    it; NautilusTrader prebuilt holds 1.1 GB on row e). Both sides' best case: a real run would
    pay some of it. Called by bench_nautilus.py's and bench_hftbacktest.py's every engine and
    combination, just before the clock starts."""
    gc.collect()
    gc.freeze()


def median_of(values: Sequence[float]) -> float:
    """The median (the mean of the two middle values for an even count)."""
    if not values:
        raise ValueError("the median of no values")
    return float(statistics.median(values))


def run_child(argv: Sequence[str], timeout: float = 3600) -> dict[str, Any]:
    """Runs `argv` in a fresh process and returns the JSON after `RESULT ` on its last such line.
    Started through `sh` (fork from a small process, then exec): Linux keeps ru_maxrss across
    exec, so a child forked straight from a large parent would report the parent's peak."""
    r = subprocess.run(
        ["/bin/sh", "-c", '"$@"', "sh", *argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        tail = "\n".join(r.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(argv[1:])} failed (exit {r.returncode}):\n{tail}")
    out: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return out
