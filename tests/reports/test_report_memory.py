"""The report's drawing phase is the peak of `tradingd backtest --report` (issue 17): what it
does to keep that peak low is checked here. The charts are drawn on bare Figures (no pyplot,
whose registry holds figures until closed), and `release_memory` hands freed heap pages back
to the OS, so memory the replay freed is not resident under matplotlib."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys
from pathlib import Path

import pytest

from tradingd.engine.reports.html import _malloc_trim, release_memory

ROOT = Path(__file__).resolve().parent.parent.parent


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


_GLIBC = sys.platform == "linux" and (ctypes.util.find_library("c") or "").startswith("libc.so")


@pytest.mark.skipif(not _GLIBC, reason="malloc_trim is glibc's")
def test_release_memory_gives_freed_heap_pages_back() -> None:
    assert _malloc_trim() is not None
    # 40 MB in 1,000-byte blocks (past pymalloc's 512: glibc's heap), one in a hundred kept:
    # the rest is freed but the kept blocks pin the heap, so glibc keeps those pages resident
    # until trimmed.
    blocks = [bytes([i % 251]) * 1000 for i in range(40_000)]
    kept = blocks[::100]
    del blocks
    release_memory()
    before = _rss_kib()
    blocks = [bytes([i % 251]) * 1000 for i in range(40_000)]
    kept += blocks[::100]
    del blocks
    held = _rss_kib()
    release_memory()
    after = _rss_kib()
    assert held - before > 20_000  # the freed blocks were still resident
    assert held - after > 0.6 * (held - before)  # and most of them are given back
    assert len(kept) == 800


def test_the_charts_are_drawn_without_pyplot(tmp_path: Path) -> None:
    # In a fresh interpreter (other tests import pyplot): drawing a report loads no pyplot and
    # leaves no figure alive once its PNG is made.
    code = f"""
import gc, sys
from tradingd.engine.reports.html import render_html
report = {{"strategies": {{"s": {{"series": {{"ts": [1, 2, 3], "equity": [0.0, 1.0, -1.0],
    "positions": {{"deribit:X": [0.0, 1.0, 0.0]}}, "prices": {{"deribit:X": [1.0, 2.0, None]}},
    "fills": [[2, "deribit:X", "buy", 2.0, 1.0, 0.01, "taker"]]}}}}}}}}
render_html(report, {str(tmp_path)!r})
import matplotlib.figure
gc.collect()
alive = sum(isinstance(o, matplotlib.figure.Figure) for o in gc.get_objects())
print("matplotlib.pyplot" in sys.modules, alive)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report-s.png", "report.html", "report.png"]
