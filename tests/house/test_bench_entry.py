"""`bench/run_all.py` started with a python that has no tradingd (the system's, as the README's
`python bench/run_all.py` once invited) says which python to use, in one line, instead of a
traceback from its first import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_run_all_without_tradingd_names_the_python_to_use() -> None:
    # -S: no site-packages, so neither the editable install of tradingd nor anything else.
    r = subprocess.run(
        [sys.executable, "-S", str(ROOT / "bench" / "run_all.py"), "--only", "books"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and ".venv/bin/python bench/run_all.py" in lines[0], r.stderr
