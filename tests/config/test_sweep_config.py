"""The sweep file (SWEEP.toml -> `SweepSpec`): the README's example loads; every problem is said
at once, one per line with its key path, the file named; each value a space can produce is
checked against its strategy's params class at load (not in trial 17); durations, times,
constraints and paths read as documented."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradingd.config import load_sweep
from tradingd.config._sweep import parse_duration
from tradingd.engine.model.errors import ConfigError
from tradingd.engine.sweep.model import Window
from tradingd.engine.sweep.objective import parse_constraint
from tradingd.engine.sweep.space import grid_points, grid_size
from tradingd.engine.sweep.spec import ObjectiveSpec, ParamSpace, SearchSpec, WalkForwardSpec

CONFIG = Path(__file__).resolve().parents[2] / "config"
BASE = CONFIG / "backtest-deribit.toml"


def _sweep(tmp_path: Path, body: str, *, base: Path | str = BASE) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(f'base = "{base}"\n{body}')
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    text = str(info.value)
    assert text.startswith(f"{path}: "), text
    return text.removeprefix(f"{path}: ").splitlines()


_GRID = """
[params.momentum_eth]
threshold = { values = [0.04, 0.08] }
"""


def test_the_readmes_example_loads() -> None:
    spec = load_sweep(CONFIG / "sweep.toml")
    assert spec.path == str((CONFIG / "sweep.toml").resolve())
    assert spec.base == str(BASE.resolve())
    assert spec.out == str((CONFIG.parent / "runs" / "sweep").resolve())
    assert spec.search == SearchSpec(method="grid")
    assert spec.objective == ObjectiveSpec(
        statistic="net_pnl",
        strategy="total",
        direction="maximize",
        constraints=(parse_constraint("max_drawdown < 10000"),),
    )
    assert spec.walk_forward == WalkForwardSpec(windows=3, train_s=2400.0, test_s=1200.0, mode="rolling")
    assert spec.window == Window()
    # Both strategies' parameters; at least 8 combinations per fold: >= 24 trials in 3 folds.
    assert set(spec.params) == {"momentum_eth", "gamma_btc"}
    assert spec.params["gamma_btc"]["option_size"] == ParamSpace("values", values=(5,))
    assert spec.params["momentum_eth"]["lookback_s"] == ParamSpace("range", low=120.0, high=600.0, step=480.0)
    assert grid_size(spec.params) == 8
    # The windows fit the bundled sample's 2 hours.
    assert spec.walk_forward.train_s + spec.walk_forward.windows * spec.walk_forward.test_s <= 2 * 3600


def test_a_minimal_sweep_takes_the_defaults_and_resolves_paths_against_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "sweeps"
    folder.mkdir()
    (folder / "bt.toml").write_text(BASE.read_text())
    path = folder / "mine.toml"
    path.write_text('base = "bt.toml"\n' + _GRID)
    spec = load_sweep(path)
    assert spec.base == str(folder / "bt.toml")
    assert spec.out == str(folder / "mine-results")
    assert (spec.workers, spec.cluster, spec.max_attempts, spec.walk_forward) == (None, None, 3, None)
    assert spec.objective == ObjectiveSpec()
    assert spec.params == {"momentum_eth": {"threshold": ParamSpace("values", values=(0.04, 0.08))}}


def test_every_setting_reads_as_written(tmp_path: Path) -> None:
    path = _sweep(
        tmp_path,
        """
out = "/tmp/elsewhere"
workers = 3
cluster = "ray://head:10001"
max_attempts = 5
[window]
start = "2026-11-24T00:10:00Z"
end = 2026-11-24T02:00:00+01:00
[search]
method = "tpe"
trials = 40
seed = 9
max_trials = 100
parallel = 2
[objective]
statistic = "win_rate"
strategy = "momentum_eth"
direction = "minimize"
constraints = ["fills >= 2", "gamma_btc.fees < 1_000"]
[params.momentum_eth]
max_open = { range = [1, 5] }
threshold = { range = [0, 1] }
[params.gamma_btc]
delta_band = { log_range = [0.02, 0.2] }
right = { choices = ["call", "put"] }
[walk_forward]
mode = "anchored"
windows = 4
train = "1h30m"
test = "90s"
""",
    )
    spec = load_sweep(path)
    assert (spec.out, spec.workers, spec.cluster, spec.max_attempts) == (
        "/tmp/elsewhere",
        3,
        "ray://head:10001",
        5,
    )
    start = 1_795_479_000 * 10**9  # 2026-11-24T00:10:00Z
    assert spec.window == Window(start_ns=start, end_ns=start + 3000 * 10**9)  # 02:00+01:00 is 01:00Z
    assert spec.search == SearchSpec(method="tpe", trials=40, seed=9, max_trials=100, parallel=2)
    assert spec.objective.constraints == (
        parse_constraint("fills >= 2", strategy="momentum_eth"),
        parse_constraint("gamma_btc.fees < 1_000"),
    )
    assert spec.objective.constraints[0].strategy == "momentum_eth"  # the objective's by default
    # An int parameter's range is of ints; a float parameter's of floats, even written [0, 1].
    assert spec.params["momentum_eth"]["max_open"] == ParamSpace("range", low=1, high=5, integer=True)
    assert spec.params["momentum_eth"]["threshold"] == ParamSpace("range", low=0.0, high=1.0)
    assert spec.walk_forward == WalkForwardSpec(windows=4, train_s=5400.0, test_s=90.0, mode="anchored")


def test_every_problem_is_said_at_once_one_per_line(tmp_path: Path) -> None:
    path = _sweep(
        tmp_path,
        """
wokers = 2
[window]
start = "2026-11-24T00:10:00"
[search]
method = "grid"
trials = 5
[objective]
statistic = "win_rate"
constraints = ["max_drawdown = 5"]
[params.momentum_eth]
threshold = { values = [0.02, "x"] }
lookback = { values = [1] }
[walk_forward]
windows = 0
train = "40 minutes"
""",
    )
    assert _problems(path) == [
        "10 problems:",
        "  unknown key(s) wokers; did you mean 'workers'?",
        "  window.start: 2026-11-24T00:10:00 has no time zone: end it with Z (UTC)",
        "  search.trials: a grid runs every combination: trials is for method = 'random' or 'tpe'",
        "  objective.statistic: 'win_rate' is a strategy's statistic, not the total's (the total has: errors,"
        " fees, filled_orders, fills, max_drawdown, net_pnl, orders, realized_pnl, rejected, round_trips,"
        " sharpe, sortino, turnover, unrealized_pnl): name a strategy",
        "  objective.constraints[0]: constraint 'max_drawdown = 5' is not `statistic op number`"
        " (op: <, <=, >, >=), e.g. 'max_drawdown < 500'",
        "  params.momentum_eth.threshold: 'x' does not fit the parameter: expected a number, got 'x'",
        "  params.momentum_eth.lookback: momentum_eth has no parameter 'lookback';"
        " did you mean 'lookback_s'?",
        "  walk_forward.windows: expected at least 1, got 0",
        "  walk_forward.train: expected a duration like '40m' (units s, m, h, d), got '40 minutes'",
        "  walk_forward.test: required key missing (a duration like '40m')",
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # Each value the space can produce is built into the strategy's params class.
        (
            "[params.momentum_eth]\norder_size = { values = [1, 0] }",
            "params.momentum_eth.order_size: 0 does not fit the parameter: expected a positive number, got 0",
        ),
        (
            '[params.gamma_btc]\nright = { choices = ["call", "straddle"] }',
            "params.gamma_btc.right: 'straddle' does not fit the parameter: expected one of 'call', 'put',"
            " got 'straddle'",
        ),
        (
            "[params.momentum_eth]\nmax_open = { range = [1, 5.5], step = 1 }",
            "params.momentum_eth.max_open: the parameter is an integer: write integer bounds and step,"
            " got {'range': [1, 5.5], 'step': 1}",
        ),
        (
            "[params.momentum_eth]\nmax_open = { values = [2, 2.5] }",
            "params.momentum_eth.max_open: 2.5 does not fit the parameter: expected an integer, got 2.5",
        ),
        (
            "[params.momentum_eth]\ninstruments = { values = [1] }",
            "params.momentum_eth.instruments: 1 does not fit the parameter: expected a list (a TOML array or"
            " [[table]]), got 1",
        ),
        (
            "[params.nobody]\nx = { values = [1] }",
            "params.nobody: the base config has no strategy 'nobody'"
            " (its strategies: gamma_btc, momentum_eth)",
        ),
        (
            "[params.gamma_btc]\nband = { values = [1] }",
            "params.gamma_btc.band: gamma_btc has no parameter 'band'",
        ),
        # The spaces themselves.
        (
            "[params.gamma_btc]\ndelta_band = { log_range = [0.0, 0.2], num = 3 }",
            "params.gamma_btc.delta_band: a log_range's low must be above 0, got 0.0",
        ),
        (
            "[params.gamma_btc]\ndelta_band = { range = [0.2, 0.1], step = 0.1 }",
            "params.gamma_btc.delta_band: low (0.2) must be below high (0.1)",
        ),
        (
            "[params.gamma_btc]\ndelta_band = { range = [0.1, 0.2], step = 0 }",
            "params.gamma_btc.delta_band: step must be positive, got 0.0",
        ),
        (
            "[params.gamma_btc]\ndelta_band = { log_range = [0.1, 0.2], num = 1 }",
            "params.gamma_btc.delta_band: num must be at least 2 (low and high), got 1",
        ),
        ("[params.gamma_btc]\ndelta_band = { values = [] }", "params.gamma_btc.delta_band: values is empty"),
        (
            "[params.gamma_btc]\ndelta_band = { values = [0.04, 0.04] }",
            "params.gamma_btc.delta_band: values holds 0.04 twice: list each value once",
        ),
        (
            "[params.gamma_btc]\nmin_hedge_interval_s = { choices = [5, 30, 5.0] }",
            "params.gamma_btc.min_hedge_interval_s: choices holds 5.0 twice: list each value once",
        ),
        (
            "[params.gamma_btc]\ndelta_band = { range = [0.1, 0.2] }",
            "params.gamma_btc.delta_band: a grid needs the range's step",
        ),
        (
            "[params.gamma_btc]\ndelta_band = { log_range = [0.1, 0.2] }",
            "params.gamma_btc.delta_band: a grid needs the log_range's num (how many points)",
        ),
        (
            "[params.gamma_btc]\ndelta_band = { values = [0.1], step = 1 }",
            "params.gamma_btc.delta_band.step: step is for a range (a log_range takes num points)",
        ),
        (
            "[params.gamma_btc]\ndelta_band = { values = [0.1], range = [0, 1] }",
            "params.gamma_btc.delta_band: give exactly one of values, choices, range, log_range"
            " (got values, range)",
        ),
        (
            "[params.gamma_btc]\ndelta_band = { valus = [0.1] }",
            "params.gamma_btc.delta_band: unknown key(s) valus; did you mean 'values'?",
        ),
        ("[params.gamma_btc]\ndelta_band = [0.1, 0.2]", "params.gamma_btc.delta_band: expected a table: {"),
        ("", "params: name at least one parameter to vary"),
        # The search.
        (
            '[search]\nmethod = "random"\n' + _GRID,
            "search.trials: a random search needs trials (how many)",
        ),
        (
            '[search]\nmethod = "annealing"\n' + _GRID,
            "search.method: expected one of 'grid', 'random', 'tpe', got 'annealing'",
        ),
        (
            '[search]\nmethod = "tpe"\ntrials = 20\nparallel = 0\n' + _GRID,
            "search.parallel: expected at least 1, got 0",
        ),
        (
            '[search]\nmethod = "tpe"\ntrials = 20\nparallel = 2.5\n' + _GRID,
            "search.parallel: expected an integer, got 2.5",
        ),
        (
            '[search]\nmethod = "random"\ntrials = 20\nparallel = 2\n' + _GRID,
            "search.parallel: parallel is for method = 'tpe' (a random search runs a trial on every worker)",
        ),
        (
            "[search]\nparallel = 2\n" + _GRID,
            "search.parallel: parallel is for method = 'tpe' (a grid search runs a trial on every worker)",
        ),
        (
            "[search]\nmax_trials = 1\n" + _GRID,
            "search: the grid has 2 combinations, more than max_trials = 1: take fewer values, raise"
            " max_trials, or use method = 'random' or 'tpe'",
        ),
        (
            "[params.momentum_eth]\nthreshold = { range = [0.0, 1000.0], step = 0.000001 }",
            "search: the grid has 1,000,000,001 combinations, more than max_trials = 10,000",
        ),
        # The objective.
        (
            '[objective]\nstatistic = "pnl"\n' + _GRID,
            "objective.statistic: unknown statistic 'pnl'; did you mean 'net_pnl'?",
        ),
        (
            '[objective]\nstatistic = "sharp"\n' + _GRID,
            "objective.statistic: unknown statistic 'sharp'; did you mean 'sharpe'?",
        ),
        (
            '[objective]\nstatistic = "profit"\n' + _GRID,
            "objective.statistic: unknown statistic 'profit' (known: avg_holding_s,",
        ),
        (
            '[objective]\nstrategy = "nobody"\n' + _GRID,
            "objective.strategy: the base config has no strategy 'nobody' (its strategies: gamma_btc,"
            " momentum_eth) (or 'total')",
        ),
        (
            '[objective]\nconstraints = "fills > 1"\n' + _GRID,
            "objective.constraints: expected a list of strings like 'max_drawdown < 500', got 'fills > 1'",
        ),
        # Windows and durations.
        (
            '[window]\nstart = "2026-11-24T01:00:00Z"\nend = "2026-11-24T00:00:00Z"\n' + _GRID,
            "window.end: the window's end must be after its start",
        ),
        (
            '[walk_forward]\ntrain = "40m"\ntest = "0m"\n' + _GRID,
            "walk_forward.test: expected a positive duration, got '0m'",
        ),
        (
            '[walk_forward]\ntrain = 2400\ntest = "20m"\n' + _GRID,
            "walk_forward.train: expected a duration like '40m' (units s, m, h, d), got 2400",
        ),
        (
            '[walk_forward]\nmode = "expanding"\ntrain = "4m"\ntest = "2m"\n' + _GRID,
            "walk_forward.mode: expected",
        ),
        # Top-level settings.
        ("workers = 0\n" + _GRID, "workers: expected at least 1, got 0"),
        ('workers = "2"\n' + _GRID, "workers: expected an integer, got '2'"),
        ("max_attempts = 0\n" + _GRID, "max_attempts: expected at least 1, got 0"),
        ("cluster = 1\n" + _GRID, "cluster: expected a string, got 1"),
        ("[surch]\nmethod = 'grid'\n" + _GRID, "unknown key(s) surch; did you mean 'search'?"),
    ],
)
def test_one_problem_is_one_line_naming_its_key(tmp_path: Path, body: str, message: str) -> None:
    lines = _problems(_sweep(tmp_path, body))
    assert len(lines) == 1, lines
    assert lines[0].startswith(message), lines[0]


def test_nan_and_inf_are_refused_everywhere(tmp_path: Path) -> None:
    path = _sweep(
        tmp_path,
        "[params.momentum_eth]\nthreshold = { values = [0.1, nan] }\n"
        "lookback_s = { range = [1, inf], step = 1 }",
    )
    assert _problems(path) == [
        "2 problems:",
        "  params.momentum_eth.threshold.values[1]: expected a finite number, got nan",
        "  params.momentum_eth.lookback_s.range[1]: expected a finite number, got inf",
    ]


def test_a_secret_is_refused_as_in_a_config(tmp_path: Path) -> None:
    path = _sweep(tmp_path, 'api_key = "abc"\n' + _GRID)
    with pytest.raises(ConfigError, match=r"^.*sweep\.toml: api_key: secrets are never read from the config"):
        load_sweep(path)


def test_the_base_must_exist_load_and_be_a_backtest(tmp_path: Path) -> None:
    assert _problems(_sweep(tmp_path, _GRID, base="missing.toml")) == [
        f"base: {tmp_path / 'missing.toml'}: no such file"
    ]
    assert _problems(_sweep(tmp_path, _GRID, base=CONFIG / "paper-deribit.toml"))[0].startswith(
        "base: the base config's mode is 'paper': a sweep runs backtests"
    )
    broken = tmp_path / "broken.toml"
    broken.write_text(BASE.read_text().replace("latency_ms = 20", "latency_ms = -1"))
    assert _problems(_sweep(tmp_path, _GRID, base=broken)) == [
        f"base: the base config does not load: {broken}: backtest.latency_ms: must be positive, got -1.0"
    ]
    assert _problems(tmp_path.joinpath("none.toml").parent / "none.toml") == ["no such file"]


def test_a_disabled_strategy_cannot_be_varied(tmp_path: Path) -> None:
    base = tmp_path / "bt.toml"
    base.write_text(
        BASE.read_text().replace('name = "momentum_eth"', 'name = "momentum_eth"\nenabled = false')
    )
    assert _problems(_sweep(tmp_path, _GRID, base=base)) == [
        "params.momentum_eth: strategy 'momentum_eth' is disabled in the base config: enable it to vary its"
        " parameters"
    ]


@given(
    parts=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from("smhd")), min_size=1, max_size=4),
)
def test_durations_add_their_parts(parts: list[tuple[int, str]]) -> None:
    seconds = sum(n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[u] for n, u in parts)
    text = "".join(f"{n}{u}" for n, u in parts)
    if seconds == 0:
        with pytest.raises(ValueError, match="expected a positive duration"):
            parse_duration(text)
    else:
        assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "40", "m", "40 minutes", "1h-30m", "-5m", "nan", "1.5.2h"])
def test_a_duration_without_units_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration like '40m'"):
        parse_duration(text)
    assert math.isfinite(parse_duration("1.5h"))


# Numbers as people write them in a file: k * 10^-e, as TOML's text.
_written = st.builds(lambda k, e: str(Decimal(k).scaleb(-e)), st.integers(1, 999), st.integers(0, 3))


@settings(max_examples=25)
@given(low=_written, step=_written, steps=st.integers(1, 6))
def test_a_range_written_in_the_file_gives_its_decimal_points(
    tmp_path_factory: pytest.TempPathFactory, low: str, step: str, steps: int
) -> None:
    high = Decimal(low) + steps * Decimal(step)
    path = _sweep(
        tmp_path_factory.mktemp("sweep"),
        f"[params.momentum_eth]\nthreshold = {{ range = [{low}, {high}], step = {step} }}\n",
    )
    space = load_sweep(path).params["momentum_eth"]["threshold"]
    # A float parameter's points: floats, `high` included, no drift from adding steps.
    expected = tuple(float(Decimal(low) + i * Decimal(step)) for i in range(steps + 1))
    assert grid_points(space) == expected


def test_a_nan_is_said_with_every_other_problem_once(tmp_path: Path) -> None:
    path = _sweep(
        tmp_path,
        "workers = inf\n[objective]\ndirection = 'up'\n[search]\nmethod = 'random'\ntrials = nan\n"
        "[params.momentum_eth]\nthreshold = { values = [0.1, nan] }\nlookback = { values = [nan] }\n",
    )
    # Each nan/inf once (not again as "expected an integer, got nan"), and the other problems too:
    # an unknown parameter holding a nan is still named.
    assert _problems(path) == [
        "6 problems:",
        "  workers: expected a finite number, got inf",
        "  search.trials: expected a finite number, got nan",
        "  params.momentum_eth.threshold.values[1]: expected a finite number, got nan",
        "  params.momentum_eth.lookback.values[0]: expected a finite number, got nan",
        "  objective.direction: expected one of 'maximize', 'minimize', got 'up'",
        "  params.momentum_eth.lookback: momentum_eth has no parameter 'lookback';"
        " did you mean 'lookback_s'?",
    ]
