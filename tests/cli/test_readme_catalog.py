"""The README's catalog examples return markets against the Polymarket simulator, as written.

The test starts `tradingd simulate polymarket` (any free port: the README's 8766 is replaced by
it), then runs each `tradingd catalog ...` line of the README's block with the user's default
cache (here a temporary `XDG_CACHE_HOME`), and checks that each line finds something: a slug, a
token id and a regular expression the simulator does not serve would fail here."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.support.simulate_cli import simulate_cli
from tradingd.cli.main import main

ROOT = Path(__file__).resolve().parent.parent.parent


def _catalog_block() -> list[list[str]]:
    """The argv of every `tradingd catalog` line of the README's block that starts the simulator."""
    text = (ROOT / "README.md").read_text()
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        if "tradingd simulate polymarket" in block and "tradingd catalog token" in block:
            return [
                shlex.split(line, comments=True)[1:]
                for line in block.splitlines()
                if line.startswith("tradingd catalog ")
            ]
    raise AssertionError("the README has no catalog block run against the simulator")


def test_the_readme_catalog_block_finds_markets_on_the_simulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = _catalog_block()
    assert [c[1] for c in commands] == ["refresh", "search", "slug", "regex", "token"]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with simulate_cli("polymarket") as sim:
        for argv in commands:
            argv = [a.replace("127.0.0.1:8766", sim.address) for a in argv]
            code = main(argv)
            out = capsys.readouterr().out
            assert code == 0, argv
            if argv[1] == "refresh":
                continue
            if "--json" in argv:
                markets = json.loads(out)
                assert markets and all(m["slug"] for m in markets), argv
            else:
                assert re.search(r"[a-z0-9]+(-[a-z0-9]+)+", out), (argv, out)  # a slug is shown
