"""What a new user gets wrong in a config, and what they are told: every problem named by its key
path (all of them, one per line, up to a bound), a suggestion for a misspelt name, and for a
data file that is not there, where it was looked for and why."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.backtests import DERIBIT_GENERATE, POLYMARKET_GENERATE
from tradingd.cli.main import main
from tradingd.config import load_config
from tradingd.config._loader import MAX_PROBLEMS, _check_crypto_path
from tradingd.engine import ConfigError

ROOT = Path(__file__).resolve().parent.parent.parent

STRATEGY = """
[[strategies]]
name = "g"
class = "gamma_scalp"
"""


def _write(folder: Path, text: str, name: str = "c.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_an_empty_config_names_every_missing_key_one_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "")
    assert main(["check-config", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"tradingd: error: {path}: 2 problems:",
        "  mode: required key missing",
        "  strategies: required key missing",
    ]


def test_a_misspelt_table_is_named_with_the_key_it_was_meant_to_be(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, 'mode = "backtest"\n[strategy]\nname = "g"\nclass = "gamma_scalp"\n'))
    lines = str(info.value).splitlines()
    assert lines[0].endswith("2 problems:"), lines
    assert lines[1:] == [
        "  strategies: required key missing",
        "  unknown key(s) strategy; did you mean 'strategies'?",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (  # a table under [[strategies]] misspelt: its keys would be silently lost
            STRATEGY + "[strategies.parms]\noption_size = 2\n",
            "strategies[0]: unknown key(s) parms; did you mean 'params'?",
        ),
        (
            STRATEGY + "[strategies.params]\ndelta_bnd = 0.2\n",
            "strategies[0].params: unknown key(s) delta_bnd; did you mean 'delta_band'?",
        ),
        (
            STRATEGY + "[strategies.risk]\nmax_postion = 3\n",
            "strategies[0].risk: unknown key(s) max_postion; did you mean 'max_position'?",
        ),
        (
            STRATEGY.replace("gamma_scalp", "gama_scalp"),
            "strategies[0].class: unknown strategy 'gama_scalp'; did you mean 'gamma_scalp'? (known: ",
        ),
        (
            STRATEGY.replace("gamma_scalp", "my_strategies.BuyTheDip"),  # a dot for the colon
            "strategies[0].class: unknown strategy 'my_strategies.BuyTheDip'; "
            "did you mean 'my_strategies:BuyTheDip'? (known: ",
        ),
        (
            STRATEGY.replace("gamma_scalp", "Momentum"),  # the class's name, not its entry point's
            "strategies[0].class: unknown strategy 'Momentum'; did you mean 'momentum'? (known: ",
        ),
    ],
)
def test_a_misspelt_name_gets_a_suggestion(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, 'mode = "live"\n' + text))
    assert message in str(info.value), info.value
    assert "\n" not in str(info.value)  # one problem, one line


def test_many_problems_are_listed_up_to_a_bound(tmp_path: Path) -> None:
    risk = "".join(f"max_order_size_{i} = 1\n" for i in range(MAX_PROBLEMS + 3))
    # One unknown-keys message per table: MAX_PROBLEMS + 3 strategies, each with a bad key.
    tables = "".join(
        f'[[strategies]]\nname = "s{i}"\nclass = "gamma_scalp"\nbad_{i} = 1\n'
        for i in range(MAX_PROBLEMS + 3)
    )
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, 'mode = "live"\n' + tables + "[risk]\n" + risk))
    lines = str(info.value).splitlines()
    assert lines[0].endswith(f"{MAX_PROBLEMS + 4} problems:"), lines[0]
    assert len(lines) == 1 + MAX_PROBLEMS + 1 and lines[-1] == "  and 4 more", lines
    assert lines[1].startswith("  strategies[0]: unknown key(s) bad_0"), lines[1]


def test_a_copied_example_says_where_its_relative_data_path_points_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `cp config/backtest.toml ~/x/`: its "../data/..." now points beside ~/x, not into the clone.
    copy = tmp_path / "x" / "backtest.toml"
    copy.parent.mkdir()
    text = (ROOT / "config" / "backtest.toml").read_text(encoding="utf-8")
    text = text.replace(DERIBIT_GENERATE + "\n", "").replace(POLYMARKET_GENERATE + "\n", "")
    copy.write_text(text, encoding="utf-8")
    loaded = load_config(copy)
    expected = [
        f'backtest.data[{i}].path = "../data/{name}" does not exist at {tmp_path / "data" / name} '
        f"(a relative path is read from the config's folder, {copy.parent})"
        for i, name in enumerate(("deribit-sample-12.rec.zst", "polymarket-btc-sample.rec.zst"))
    ]
    assert [loaded.data_file_missing(i) for i in (0, 1)] == expected
    assert main(["check-config", str(copy)]) == 1
    assert capsys.readouterr().err == f"tradingd: error: {copy}: {'; '.join(expected)}\n"


def test_a_data_path_starting_with_a_tilde_is_in_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    text = '[backtest]\n[[backtest.data]]\nvenue = "deribit"\npath = "~/data/s.rec.zst"\n'
    loaded = load_config(_write(tmp_path, 'mode = "backtest"\n' + text + STRATEGY))
    assert loaded.data_paths == [tmp_path / "home" / "data" / "s.rec.zst"]
    assert "(a relative path" not in loaded.data_file_missing(0)


def test_the_sample_is_generated_saying_where_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "copied"
    folder.mkdir()
    shutil.copy(ROOT / "config" / "backtest.toml", folder)
    text = (folder / "backtest.toml").read_text(encoding="utf-8")
    # A short sample and one strategy keep it quick; the path stays relative, as copied.
    text = text.replace("hours = 2.0", "hours = 0.05")
    text = text[: text.index('[[strategies]]\nname = "momentum_eth"')]
    (folder / "backtest.toml").write_text(text, encoding="utf-8")
    assert main(["backtest", "--config", str(folder / "backtest.toml"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    for i, name in enumerate(("deribit-sample-12.rec.zst", "polymarket-btc-sample.rec.zst")):
        where = tmp_path / "data" / name
        assert f"generating {where} (first run only; deterministic, offline)...\n" in err, err
        assert (
            f'  because backtest.data[{i}].path = "../data/{name}" does not exist at {where} '
            f"(a relative path is read from the config's folder, {folder})\n"
        ) in err, err
        assert where.exists()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (  # a top-level key written after a table's header: the table's, and the top level misses it
            '[logging]\nlevel = "warning"\nmode = "live"\n' + STRATEGY,
            "  logging: unknown key(s) mode (known: file, format, level); mode is a key of the top level: "
            "put it above [logging] (below a [table] header, a key belongs to that table)",
        ),
        (  # a strategy's own key written below its params
            'mode = "live"\n' + STRATEGY + "[strategies.params]\noption_size = 2\nenabled = false\n",
            "strategies[0].params: unknown key(s) enabled (known: ",
        ),
        (
            'mode = "live"\n' + STRATEGY + '[strategies.risk]\nmax_position = 3\non_failure = "leave"\n',
            "; on_failure is a key of [[strategies]]: put it above [strategies.risk] "
            "(below a [table] header, a key belongs to that table)",
        ),
    ],
)
def test_a_key_below_the_wrong_header_is_named_with_where_it_belongs(
    tmp_path: Path, text: str, line: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    assert line in str(info.value), info.value
    if "enabled" in line:
        assert str(info.value).endswith(
            "; enabled is a key of [[strategies]]: put it above [strategies.params] "
            "(below a [table] header, a key belongs to that table)"
        ), info.value


def test_check_config_refuses_a_generate_table_the_first_backtest_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = 'mode = "backtest"\n[backtest]\n[[backtest.data]]\nvenue = "deribit"\npath = "s.rec.zst"\n'
    path = _write(tmp_path, text + "generate = { seed = 7, hour = 0.1 }\n" + STRATEGY)
    assert main(["check-config", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"tradingd: error: {path}: backtest.data[0].generate: unknown generator option(s) hour "
        "(known: hours, seed, start, strikes)\n"
    )
    assert not (tmp_path / "s.rec.zst").exists()  # checked, not generated


def _bundled(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """The bundled example with `edits` (old, new), its sample path absolute (not generated)."""
    text = (ROOT / "config" / "backtest.toml").read_text(encoding="utf-8")
    text = text.replace(DERIBIT_GENERATE + "\n", "").replace(POLYMARKET_GENERATE + "\n", "")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return _write(tmp_path, text)


@pytest.mark.parametrize(
    ("edits", "lines"),
    [
        (  # wrong types in the structure and in a strategy's params: all of them at once
            [
                ("lookback_s = 300", 'lookback_s = "abc"'),
                ("threshold = 0.04", 'threshold = "x"'),
                ("latency_ms = 20 ", 'latency_ms = "y" '),
            ],
            [
                "  backtest.latency_ms: expected a number, got 'y'",
                "  strategies[1].params.lookback_s: expected a number, got 'abc'",
                "  strategies[1].params.threshold: expected a number, got 'x'",
            ],
        ),
        (  # an unknown key and a value its validator refuses in one strategy, a misspelt class in another
            [
                ("delta_band = 0.05", "delta_bnd = 0.05"),
                ("option_size = 10 ", "option_size = 0 "),
                ('class = "momentum"', 'class = "momentun"'),
            ],
            [
                "  strategies[0].params: unknown key(s) delta_bnd; did you mean 'delta_band'?",
                "  strategies[0].params.option_size: expected a positive number, got 0",
                "  strategies[1].class: unknown strategy 'momentun'; did you mean 'momentum'? (known: "
                "cross_venue, gamma_scalp, momentum; or use module:Class)",
            ],
        ),
        (  # two validators of one table (attrs stops at the first), and one of another table
            [
                ("max_order_notional_usd = 1_000_000", "max_order_notional_usd = 0\nmax_position = -1"),
                ("max_position = 10\n", "max_position = 0\n"),
            ],
            [
                "  strategies[1].risk.max_position: expected a positive number, got 0",
                "  risk.max_order_notional_usd: expected a positive number, got 0.0",
                "  risk.max_position: expected a positive number, got -1",
            ],
        ),
    ],
)
def test_check_config_lists_every_mistake_it_can_find_in_one_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edits: list[tuple[str, str]], lines: list[str]
) -> None:
    path = _bundled(tmp_path, *edits)
    assert main(["check-config", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"tradingd: error: {path}: {len(lines)} problems:",
        *lines,
    ]


def test_an_unknown_key_with_no_suggestion_lists_a_few_known_ones(tmp_path: Path) -> None:
    path = _bundled(tmp_path, ("option_size = 10 ", "zzz = 10 "))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: strategies[0].params: unknown key(s) zzz (known: close_on_stop, delta_band, hedge,"
        " hedge_book, min_hedge_interval_s, option, option_book, option_size, ...)"
    )


def test_a_strategy_named_engine_is_refused(tmp_path: Path) -> None:
    # The engine-wide figures share the strategy's label values (tradingd_daily_pnl_usd's
    # scope="engine", the daily-loss alert's subject): a strategy of that name would be mistaken
    # for the whole engine.
    path = _write(tmp_path, 'mode = "backtest"\n' + STRATEGY.replace('name = "g"', 'name = "engine"'))
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.name: 'engine' is reserved"):
        load_config(path)


_BOTH = (
    'mode = "backtest"\n[backtest]\n'
    '[[backtest.data]]\nvenue = "deribit"\npath = "d.rec.zst"\ngenerate = {{ {deribit} }}\n'
    '[[backtest.data]]\nvenue = "polymarket"\npath = "p.rec.zst"\ngenerate = {{ {polymarket} }}\n'
)


@pytest.mark.parametrize(
    ("deribit", "polymarket", "differ"),
    [
        ("seed = 7, strikes = 12", 'seed = 8, crypto = "deribit", strikes = 12', "seed 8 here, 7 there"),
        ("strikes = 12", 'crypto = "deribit"', "strikes 4 here, 12 there"),  # polymarket's default
        (
            'seed = 3, start = "2026-11-24T00:00:00Z", strikes = 6',
            'seed = 3, start = "2026-11-25T00:00:00Z", crypto = "deribit", strikes = 6',
            "start '2026-11-25T00:00:00Z' here, '2026-11-24T00:00:00Z' there",
        ),
    ],
)
def test_check_config_refuses_polymarket_btc_markets_on_another_path_than_the_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], deribit: str, polymarket: str, differ: str
) -> None:
    path = _write(tmp_path, _BOTH.format(deribit=deribit, polymarket=polymarket) + STRATEGY)
    assert main(["check-config", str(path)]) == 2
    assert capsys.readouterr().err == (
        f'tradingd: error: {path}: backtest.data[1].generate: crypto = "deribit" follows the BTC path'
        " of the Deribit sample of the same seed, start and strikes, but backtest.data[0] (deribit)"
        f" differs: {differ}\n"
    )
    assert not (tmp_path / "d.rec.zst").exists() and not (tmp_path / "p.rec.zst").exists()


@pytest.mark.parametrize(
    ("deribit", "polymarket"),
    [
        ("seed = 7, hours = 2.0, strikes = 12", 'seed = 7, hours = 2.0, crypto = "deribit", strikes = 12'),
        # The same path written two ways (defaults spelt out or not), another length of it.
        ('start = "2026-11-24T00:00:00Z"', 'seed = 7, hours = 1.0, crypto = "deribit", strikes = 4'),
        # No crypto markets: no path to follow.
        ("seed = 7, strikes = 12", "seed = 9"),
    ],
)
def test_polymarket_btc_markets_on_the_options_path_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], deribit: str, polymarket: str
) -> None:
    path = _write(tmp_path, _BOTH.format(deribit=deribit, polymarket=polymarket) + STRATEGY)
    assert main(["check-config", str(path)]) == 0, capsys.readouterr().err
    # Without a generated Deribit entry there is nothing to follow: not checked.
    problems: list[tuple[str, str]] = []
    _check_crypto_path([(0, "polymarket", {"seed": 1, "crypto": "deribit", "strikes": 9})], problems)
    assert problems == []
