"""`bench/bench_decode.py --sample` (the raw frame path of a backtest on a recording) is kept
runnable, not timed: reading and decoding are both measured, over every frame of the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.deribit_frames import PERP, T0_MS, instruments, ticker, write

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_decode_benchmark_measures_a_recording(tmp_path: Path) -> None:
    frames = [(0, instruments())] + [
        (k, ticker(PERP, T0_MS + k, bid=42000.0 + k, ask=42001.0 + k, mark=42000.5, index=42000.0))
        for k in range(1, 50)
    ]
    path = write(tmp_path / "s.rec.zst", frames)
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_decode.py"), "--sample", str(path), "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "50 frames" in r.stdout
    assert "read (RecordingReader)" in r.stdout and "decode (DeribitDecoder)" in r.stdout
    assert "decode, two-pass reference" in r.stdout
