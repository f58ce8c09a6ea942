"""A test's function run in a fresh interpreter: its own classes, caches and counts, and a crash
(a use after free in compiled code) that fails the test instead of killing the pytest worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def in_a_child(module: str, function: str, *args: Any, timeout: float = 300) -> Any:
    """`module.function(*args)` (JSON arguments) run in a new interpreter from the repository's
    root, its JSON answer; the child must end well."""
    code = (
        "import json, sys\n"
        f"from {module} import {function}\n"
        f"sys.stdout.write(json.dumps({function}(*json.loads(sys.argv[1]))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        cwd=ROOT,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"the child ended {proc.returncode}: {proc.stderr.decode()[-3000:]}"
    return json.loads(proc.stdout)
