"""The generators' options (`simulators.common`): what each venue takes, what it refuses (one
line naming the key), and that the defaults write what they wrote before the options existed."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tradingd.cli.main import main
from tradingd.engine.store import RecordingReader
from tradingd.simulators.common import parse_options, venue_options
from tradingd.simulators.deribit.generator import DeribitFeed
from tradingd.simulators.polymarket.generator import PolymarketFeed

START_NS = 1_795_478_400 * 1_000_000_000

# sha256 over (receive time, frame) of short samples, taken before `strikes` and `crypto` existed
# (commit 45297e1): the defaults must keep writing exactly these.
BEFORE = {
    ("deribit", 7): (3286, "22441381d451d9ed2490b6425296a80bfd6227ae17a6b564e0d57af63f4eba14"),
    ("deribit", 3): (3300, "0910630da32bdfb27d2110744e6439481fc72fd781d059ee8c2b3de848eeeca9"),
    ("polymarket", 7): (3568, "f674271bf0efc0b6033f98f873254e02021364fe672676bc86a62dd2d7430348"),
    ("polymarket", 3): (3448, "3e82c0bef9c04e737643e39b9f8500b871961786c3be21c1bd0502aa41200ead"),
}


def digest(frames: Any) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    for ts, frame in frames:
        h.update(ts.to_bytes(8, "big"))
        h.update(frame)
        n += 1
    return n, h.hexdigest()


@pytest.mark.parametrize(("venue", "seed"), sorted(BEFORE))
def test_the_defaults_write_the_bytes_they_wrote_before(venue: str, seed: int) -> None:
    if venue == "deribit":
        frames = DeribitFeed.create(seed=seed, start_ns=START_NS, **venue_options({}, venue)).frames(0.02)
        explicit = DeribitFeed.create(seed=seed, start_ns=START_NS, strikes=4).frames(0.02)
    else:
        frames = PolymarketFeed.create(seed=seed, start_ns=START_NS, **venue_options({}, venue)).frames(0.05)
        explicit = PolymarketFeed.create(seed=seed, start_ns=START_NS, crypto="none").frames(0.05)
    assert digest(frames) == BEFORE[venue, seed]
    assert digest(explicit) == BEFORE[venue, seed]


def test_each_venue_knows_its_own_options() -> None:
    assert venue_options({}, "deribit") == {"strikes": 4}
    assert venue_options({}, "polymarket") == {"crypto": "none", "strikes": 4, "mispriced": 0.0}
    assert venue_options({"crypto": "deribit", "strikes": 10}, "polymarket") == {
        "crypto": "deribit",
        "strikes": 10,
        "mispriced": 0.0,
    }
    assert venue_options({"crypto": "deribit", "mispriced": -0.1}, "polymarket")["mispriced"] == -0.1
    assert venue_options({"strikes": 12}, "deribit") == {"strikes": 12}
    assert venue_options({"strikes": 12}, "derive") == {}
    assert parse_options({"strikes": 10, "seed": 3}, venue="deribit")[0] == 3
    assert parse_options({"crypto": "deribit", "strikes": 10}, venue="polymarket")[0] == 7


@pytest.mark.parametrize(
    ("venue", "options", "message"),
    [
        (
            "deribit",
            {"crypto": "deribit"},
            r"unknown generator option\(s\) crypto \(known: hours, seed, start, strikes; "
            r"crypto is polymarket's\)",
        ),
        (
            "derive",
            {"strikes": 10},
            r"unknown generator option\(s\) strikes \(known: hours, seed, start; "
            r"strikes is deribit's and polymarket's\)",
        ),
        (None, {"strikes": 10}, r"unknown generator option\(s\) strikes"),
        ("deribit", {"strikes": 3}, "strikes must be an integer from 4 to 24, got 3"),
        ("deribit", {"strikes": 25}, "strikes must be an integer from 4 to 24, got 25"),
        ("deribit", {"strikes": 10.0}, "strikes must be an integer from 4 to 24, got 10.0"),
        ("deribit", {"strikes": True}, "strikes must be an integer"),
        ("deribit", {"strikes": "10"}, "strikes must be an integer"),
        ("polymarket", {"crypto": "binance"}, r'crypto must be "none" or "deribit", got \'binance\''),
        ("polymarket", {"crypto": True}, "crypto must be"),
        ("polymarket", {"strikes": 10}, 'strikes .* needs crypto = "deribit"'),
        ("polymarket", {"crypto": "none", "strikes": 4}, 'needs crypto = "deribit"'),
        ("polymarket", {"crypto": "deribit", "strikes": 2}, "strikes must be an integer from 4 to 24"),
        ("polymarket", {"mispriced": 0.1}, 'mispriced .* needs crypto = "deribit"'),
        ("polymarket", {"crypto": "none", "mispriced": 0}, 'mispriced .* needs crypto = "deribit"'),
        (
            "polymarket",
            {"crypto": "deribit", "mispriced": 1.5},
            "mispriced must be a probability between -1 and 1, got 1.5",
        ),
        ("polymarket", {"crypto": "deribit", "mispriced": -1}, "mispriced must be a probability"),
        ("polymarket", {"crypto": "deribit", "mispriced": float("nan")}, "mispriced must be a probability"),
        ("polymarket", {"crypto": "deribit", "mispriced": True}, "mispriced must be a probability"),
        ("polymarket", {"crypto": "deribit", "mispriced": "0.1"}, "mispriced must be a probability"),
        (
            "deribit",
            {"mispriced": 0.1},
            r"unknown generator option\(s\) mispriced \(known: hours, seed, start, strikes; "
            r"mispriced is polymarket's\)",
        ),
    ],
)
def test_a_wrong_option_is_refused_in_one_line(
    venue: str | None, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_options(options, venue=venue)
    assert "\n" not in str(info.value)


def test_the_command_line_takes_the_new_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.rec"
    argv = ["generate", "--venue", "deribit", "--out", str(out), "--hours", "0.005", "--strikes", "6"]
    assert main([*argv, "--no-progress"]) == 0
    first = next(iter(RecordingReader(out)))[1]
    assert first.count(b'"kind":"option"') == 2 * 6 * 2  # BTC options: 2 expiries x 6 strikes x C/P
    pm = tmp_path / "p.rec"
    argv = ["generate", "--venue", "polymarket", "--out", str(pm), "--hours", "0.005"]
    assert main([*argv, "--crypto", "deribit", "--strikes", "6", "--no-progress"]) == 0
    assert b"Bitcoin above ___ on November 27?" in next(iter(RecordingReader(pm)))[1]
    capsys.readouterr()
    bad = tmp_path / "bad.rec"
    assert (
        main(["generate", "--venue", "deribit", "--out", str(bad), "--crypto", "deribit", "--no-progress"])
        == 2
    )
    assert "crypto is polymarket's" in capsys.readouterr().err
    assert not bad.exists()


def test_check_config_reads_the_options_of_the_entrys_venue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    strategy = '\n[[strategies]]\nname = "g"\nclass = "gamma_scalp"\n'
    head = 'mode = "backtest"\n[backtest]\n'
    good = tmp_path / "good.toml"
    good.write_text(
        head
        + '[[backtest.data]]\nvenue = "deribit"\npath = "d.rec.zst"\n'
        + "generate = { seed = 7, hours = 2.0, strikes = 10 }\n"
        + '[[backtest.data]]\nvenue = "polymarket"\npath = "p.rec.zst"\n'
        + 'generate = { seed = 7, hours = 2.0, crypto = "deribit", strikes = 10 }\n'
        + strategy,
        encoding="utf-8",
    )
    assert main(["check-config", str(good)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(
        head
        + '[[backtest.data]]\nvenue = "polymarket"\npath = "p.rec.zst"\ngenerate = { strikes = 10 }\n'
        + strategy,
        encoding="utf-8",
    )
    capsys.readouterr()
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "backtest.data[0].generate: generator option strikes" in err and 'needs crypto = "deribit"' in err
