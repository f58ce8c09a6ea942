"""Config loading: every mistake is reported with its key path, in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradingd.config import load_config
from tradingd.engine import ConfigError
from tradingd.strategies.gamma_scalp import GammaScalpParams

ROOT = Path(__file__).resolve().parent.parent.parent

GOOD = """
mode = "backtest"
[backtest]
[[backtest.data]]
venue = "deribit"
path = "sample.rec.zst"
generate = { hours = 0.1 }
[[strategies]]
name = "g"
class = "gamma_scalp"
[strategies.params]
option_size = 2
delta_band = 0.2
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_the_example_config_loads() -> None:
    loaded = load_config(ROOT / "config" / "backtest.toml")
    assert set(loaded.strategy_classes) == {"gamma_btc", "momentum_eth", "cross_btc"}
    assert loaded.data_paths == [
        (ROOT / "data" / "deribit-sample-12.rec.zst").resolve(),
        (ROOT / "data" / "polymarket-btc-sample.rec.zst").resolve(),
    ]


def test_params_are_structured_into_the_strategy_params_class(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, GOOD))
    params = loaded.strategy_params["g"]
    assert isinstance(params, GammaScalpParams)
    assert str(params.option_size) == "2" and params.delta_band == 0.2
    assert loaded.data_paths == [tmp_path / "sample.rec.zst"]
    (strategy,) = loaded.build_strategies()
    assert strategy.name == "g" and strategy.params is params


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("delta_band = 0.2", 'delta_band = "wide"'),
            "strategies[0].params.delta_band: expected a number, got 'wide'",
        ),
        (("delta_band = 0.2", "delta_bnd = 0.2"), "strategies[0].params: unknown key(s) delta_bnd"),
        (
            ('mode = "backtest"', 'mode = "yolo"'),
            "mode: expected one of 'backtest', 'live', 'paper', got 'yolo'",
        ),
        (('class = "gamma_scalp"', 'class = "nope"'), "strategies[0].class: unknown strategy 'nope'"),
        (
            ('class = "gamma_scalp"', 'class = "os.path:join"'),
            "strategies[0].class: 'os.path:join' is not a Strategy",
        ),
        (('venue = "deribit"', 'venue = "kraken"'), "backtest.data[0].venue: unknown venue 'kraken'"),
        (("[backtest]", "[backtest]\nlatency_ms = -1"), "backtest.latency_ms: must be positive"),
        (
            ("[backtest]", "[backtest]\nlatency = 5"),
            "backtest: unknown key(s) latency; did you mean 'latency_ms'?",
        ),
        (('name = "g"', 'name = "a b"'), "strategies[0].name: a strategy name is"),
        (
            ('name = "g"', f'name = "{"g" * 41}"'),
            "strategies[0].name: a strategy name is at most 40 characters",
        ),
        (
            ("option_size = 2", "option_size = true"),
            "strategies[0].params.option_size: expected a decimal number",
        ),
        (
            ("[strategies.params]", '[strategies.params]\nright = "straddle"'),
            "params.right: expected one of 'call', 'put'",
        ),
    ],
)
def test_mistakes_name_the_key_path(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD.replace(*change)))
    text = str(info.value)
    assert message in text, text
    assert "\n" not in text


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "mode = "))
    with pytest.raises(ConfigError, match="mode is 'backtest' but there is no"):
        load_config(write(tmp_path, 'mode = "backtest"\n[[strategies]]\nname = "g"\nclass = "gamma_scalp"\n'))
    dup = GOOD + '\n[[strategies]]\nname = "g"\nclass = "momentum"\n'
    with pytest.raises(ConfigError, match=r"strategies\[1\].name: duplicate strategy name"):
        load_config(write(tmp_path, dup))


def test_fee_overrides_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="venues.deribit.fees: unknown fee setting"):
        load_config(write(tmp_path, GOOD + "\n[venues.deribit.fees]\nfuture_tker = 0.001\n"))
    load_config(write(tmp_path, GOOD + "\n[venues.deribit.fees]\nfuture_taker = 0.001\n"))


@pytest.mark.parametrize(
    ("snippet", "where"),
    [
        ('[venues.deribit]\nclient_secret = "hunter2hunter2"\n', "venues.deribit.client_secret"),
        ('[venues.polymarket]\nprivate_key = "0xabc"\n', "venues.polymarket.private_key"),
        ('[venues.polymarket.auth]\napi_passphrase = "p"\n', "venues.polymarket.auth.api_passphrase"),
    ],
)
def test_a_secret_in_the_config_is_refused_with_where_it_belongs(
    tmp_path: Path, snippet: str, where: str
) -> None:
    with pytest.raises(ConfigError, match="never read from the config: put it in the environment") as info:
        load_config(write(tmp_path, GOOD + "\n" + snippet))
    assert info.value.path == where
    assert "hunter2" not in str(info.value)  # nor is it repeated in the error


def test_daemon_settings_load_alone_and_resolve_against_the_config(tmp_path: Path) -> None:
    from tradingd.cli.settings import daemon_options
    from tradingd.config import load_daemon_settings
    from tradingd.engine.daemon.service import daemon_paths

    p = write(tmp_path, GOOD + '\n[daemon]\nstate_dir = "st"\nshutdown_timeout_s = 3\n')
    settings = load_daemon_settings(p)
    assert settings.shutdown_timeout_s == 3
    paths = daemon_paths(p, daemon_options(settings), {"RUNTIME_DIRECTORY": "/run/tradingd"})
    assert paths.state_dir == (tmp_path / "st").resolve() and paths.journal.name == "journal.sqlite"
    assert paths.status_file == Path("/run/tradingd/status.json")
    defaults = daemon_paths(
        p, daemon_options(load_daemon_settings(write(tmp_path, GOOD))), {"STATE_DIRECTORY": "/var/lib/td"}
    )
    assert defaults.kill_switch_file == Path("/var/lib/td/KILL")
    with pytest.raises(ConfigError, match=r"daemon.shutdown_timeout_s"):
        load_daemon_settings(write(tmp_path, GOOD + "\n[daemon]\nshutdown_timeout_s = -1\n"))


@pytest.mark.parametrize(
    ("snippet", "where", "got"),
    [
        ("[risk]\nmax_order_notional_usd = nan\n", "risk.max_order_notional_usd", "nan"),
        ("[risk]\nmax_position = nan\n", "risk.max_position", "nan"),
        ("[risk]\nmax_daily_loss_usd = inf\n", "risk.max_daily_loss_usd", "inf"),
        ("[risk.instruments.BTC-PERPETUAL]\nmax_order_notional_usd = nan\n", None, "nan"),
        ("[daemon]\nshutdown_timeout_s = nan\n", "daemon.shutdown_timeout_s", "nan"),
        ("[daemon]\nwatchdog_stale_s = -inf\n", "daemon.watchdog_stale_s", "-inf"),
        ("[venues.deribit]\nstale_after_s = nan\n", "venues.deribit.stale_after_s", "nan"),
        ("[venues.derive]\nkeepalive_s = inf\n", "venues.derive.keepalive_s", "inf"),
        ("[venues.polymarket]\nping_s = nan\n", "venues.polymarket.ping_s", "nan"),
        ("[venues.deribit.fees]\nfuture_taker = nan\n", "venues.deribit.fees.future_taker", "nan"),
        ('[venues.deribit.fees]\noption_cap = "NaN"\n', "venues.deribit.fees.option_cap", "NaN"),
        ("[recording]\nrotate_s = inf\n", "recording.rotate_s", "inf"),
        ("[catalog]\nrefresh_after_s = nan\n", "catalog.refresh_after_s", "nan"),
        ("[recording]\nrotate_s = 1e400\n", "recording.rotate_s", "inf"),  # TOML reads it as inf
    ],
)
def test_a_non_finite_number_is_refused_anywhere_naming_the_key(
    tmp_path: Path, snippet: str, where: str | None, got: str
) -> None:
    """A NaN limit compares false with everything: it is no limit at all (an order for 5,000,000
    contracts went through), and a NaN timeout crashed SIGTERM. Refused, naming the key."""
    with pytest.raises(ConfigError, match="expected a finite number") as info:
        load_config(write(tmp_path, GOOD + "\n" + snippet))
    assert info.value.path == (where or "risk.instruments.BTC-PERPETUAL.max_order_notional_usd")
    assert str(info.value).endswith(f": expected a finite number, got {got}")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (("delta_band = 0.2", "delta_band = nan"), "strategies[0].params.delta_band"),
        (("delta_band = 0.2", "delta_band = -inf"), "strategies[0].params.delta_band"),
        (("option_size = 2", "option_size = inf"), "strategies[0].params.option_size"),
        (("option_size = 2", 'option_size = "NaN"'), "strategies[0].params.option_size"),
        (('name = "g"', 'name = "g"\n[strategies.risk]\nmax_order_notional_usd = nan'), None),
        (('name = "g"', 'name = "g"\n[strategies.risk]\nmax_order_size = inf'), None),
        (("generate = { hours = 0.1 }", "generate = { hours = nan }"), "backtest.data[0].generate.hours"),
        (("[backtest]", "[backtest]\nlatency_ms = nan"), "backtest.latency_ms"),
        (("[backtest]", "[backtest]\nequity_interval_s = inf"), "backtest.equity_interval_s"),
    ],
)
def test_a_non_finite_strategy_param_or_strategy_limit_is_refused(
    tmp_path: Path, change: tuple[str, str], where: str | None
) -> None:
    with pytest.raises(ConfigError, match="expected a finite number") as info:
        load_config(write(tmp_path, GOOD.replace(*change)))
    if where is None:
        assert info.value.path is not None and info.value.path.startswith("strategies[0].risk.max_order_")
    else:
        assert info.value.path == where


def test_a_non_finite_limit_is_refused_by_the_structure_itself() -> None:
    """Built without the loader's TOML scan (a converter caller, or code): still refused."""
    from tradingd.config import LimitsConfig
    from tradingd.config._loader import make_converter, structure

    for raw in ({"max_order_notional_usd": float("nan")}, {"max_position": float("inf")}):
        with pytest.raises(ConfigError, match="expected a finite number"):
            structure(make_converter(), raw, LimitsConfig, file=None, path="risk")
    with pytest.raises(ValueError, match="expected a positive number"):
        LimitsConfig(max_daily_loss_usd=float("nan"))


def test_check_config_names_the_non_finite_key_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tradingd.cli.main import main

    p = write(tmp_path, GOOD + "\n[risk]\nmax_order_notional_usd = nan\n")
    assert main(["check-config", str(p)]) == 2
    err = capsys.readouterr().err
    assert err == f"tradingd: error: {p}: risk.max_order_notional_usd: expected a finite number, got nan\n"


def test_a_strategys_failure_policy_is_cancel_unless_it_says_leave(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, GOOD)).config.strategies[0].on_failure == "cancel"
    left = load_config(write(tmp_path, GOOD.replace('name = "g"', 'name = "g"\non_failure = "leave"')))
    assert left.config.strategies[0].on_failure == "leave"
    with pytest.raises(ConfigError, match=r"strategies\[0\].on_failure: expected one of 'cancel', 'leave'"):
        load_config(write(tmp_path, GOOD.replace('name = "g"', 'name = "g"\non_failure = "ignore"')))
