"""The README's `check-config` console example is what the command prints on the example config.

`bad.toml` and `nan.toml` in the README are the example config (config/backtest.toml) with one
value broken; the test breaks the same value and compares the README's lines with the output,
so a README key path that the example config does not have (`strategies[0].params.lookback_s`
once named GammaScalp, which has no lookback) fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tradingd.cli.main import main

ROOT = Path(__file__).resolve().parent.parent.parent

# How the README's broken configs are made from the example: (line pattern, replacement).
_BROKEN: dict[str, tuple[str, Any]] = {
    "bad.toml": (r"(?m)^lookback_s = .*$", 'lookback_s = "abc"'),
    "nan.toml": (r"(?m)^max_order_notional_usd = .*$", "max_order_notional_usd = nan"),
    "three.toml": (
        r"(?m)^latency_ms = .*$|^lookback_s = .*$|^threshold = .*$",
        lambda m: {
            "latency_ms": 'latency_ms = "y"',
            "lookback_s": 'lookback_s = "abc"',
            "threshold": 'threshold = "x"',
        }[m.group(0).split(" ")[0]],
    ),
}


def _console_examples() -> list[tuple[str, list[str]]]:
    """Each `$ tradingd check-config FILE` of the README's console blocks, with its output lines."""
    text = (ROOT / "README.md").read_text()
    out: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        current: list[str] | None = None
        for line in block.splitlines():
            if line.startswith("$ "):
                m = re.fullmatch(r"\$ tradingd check-config (\S+)", line)
                current = None
                if m:
                    current = []
                    out.append((m.group(1), current))
            elif current is not None:
                current.append(line)
    return out


def test_the_readme_has_check_config_examples() -> None:
    names = [name for name, _ in _console_examples()]
    assert "config/backtest.toml" in names and set(_BROKEN) <= set(names), names


@pytest.mark.parametrize(("name", "expected"), _console_examples())
def test_each_check_config_example_prints_what_the_readme_says(
    name: str,
    expected: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if name in _BROKEN:
        pattern, replacement = _BROKEN[name]
        example = (ROOT / "config" / "backtest.toml").read_text()
        broken, n = re.subn(pattern, replacement, example)
        assert n == (3 if name == "three.toml" else 1), f"the example config has no line to break for {name}"
        (tmp_path / name).write_text(broken)
        monkeypatch.chdir(tmp_path)
    else:
        monkeypatch.chdir(ROOT)
    main(["check-config", name])
    captured = capsys.readouterr()
    assert (captured.out + captured.err).splitlines() == expected
