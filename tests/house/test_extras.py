"""Optional weight stays optional: the simulators (hypercorn) and the HTML/PNG report
(matplotlib) are extras (`tradingd[sim]`, `tradingd[report]`). Without them, what needs them
says so in one line naming the extra, and nothing else needs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tradingd.engine.model.errors import DataError
from tradingd.engine.reports.html import pyplot
from tradingd.engine.sim.server import serve

ROOT = Path(__file__).resolve().parent.parent.parent

# Run a tradingd command in a fresh interpreter where some packages cannot be imported.
_BLOCKED = """
import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"No module named {{name!r}} (blocked by the test)")
        return None
sys.meta_path.insert(0, _Blocked())
from tradingd.cli.main import main
sys.exit(main({argv!r}))
"""


def _run_without(blocked: set[str], argv: list[str]) -> subprocess.CompletedProcess[str]:
    code = _BLOCKED.format(blocked=sorted(blocked), argv=argv)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_report_names_its_extra_when_matplotlib_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(DataError, match=r"pip install 'tradingd\[report\]'"):
        pyplot()


async def test_a_simulator_names_its_extra_when_hypercorn_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hypercorn.config", None)
    monkeypatch.setitem(sys.modules, "hypercorn.trio", None)
    app: Any = None  # never reached: the import comes first
    with pytest.raises(DataError, match=r"pip install 'tradingd\[sim\]'"):
        await serve(app)


def test_tradingd_simulate_without_the_sim_extra_is_one_clear_line() -> None:
    done = _run_without({"hypercorn"}, ["simulate", "deribit", "--port", "0"])
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "tradingd: error: the venue simulators need the 'sim' extra: pip install 'tradingd[sim]'"
    ], done.stderr


def test_the_engine_and_the_connectors_import_without_the_extras() -> None:
    code = _BLOCKED.format(blocked=["hypercorn", "matplotlib"], argv=["--help"]).replace(
        "from tradingd.cli.main import main",
        "import tradingd.engine, tradingd.cli.main, tradingd.engine.backtest.kernel\n"
        "import tradingd.engine.runtime.live, tradingd.engine.daemon.service\n"
        "import tradingd.connectors.deribit, tradingd.connectors.derive, tradingd.connectors.polymarket\n"
        "import tradingd.strategies.momentum\n"
        "from tradingd.cli.main import main",
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
