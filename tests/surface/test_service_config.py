"""`[surface]` in a config: the defaults when the table is absent, every key taken as written,
and each bad value refused in one line naming its key (what `tradingd check-config` prints)."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from tradingd.cli.main import main
from tradingd.cli.settings import surface_settings
from tradingd.config import SurfaceConfig, load_config
from tradingd.engine import ConfigError
from tradingd.engine.surface import SurfaceSettings

BASE = """
mode = "paper"
[[strategies]]
name = "g"
class = "gamma_scalp"
"""


def _write(folder: Path, text: str) -> Path:
    path = folder / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_without_the_table_the_defaults_apply(tmp_path: Path) -> None:
    loaded = load_config(_write(tmp_path, BASE))
    assert loaded.config.surface == SurfaceConfig()
    assert loaded.config.surface.min_refit_interval_s == 5.0
    assert loaded.config.surface.min_quotes == 5
    # The engine's defaults, one for one (cli.settings builds SurfaceSettings of the table).
    assert attrs.asdict(SurfaceConfig()) == attrs.asdict(SurfaceSettings())


def test_every_key_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = BASE + (
        "[surface]\nmin_refit_interval_s = 0.5\nmin_quotes = 7\nmax_iv = 3.0\nmin_expiry_s = 60\n"
        "min_iv_change = 0\nmin_forward_change = 0.002\nmax_refit_interval_s = 0.5\n"
    )
    path = _write(tmp_path, text)
    surface = load_config(path).config.surface
    assert surface_settings(surface) == SurfaceSettings(
        min_refit_interval_s=0.5,
        min_quotes=7,
        max_iv=3.0,
        min_expiry_s=60.0,
        min_iv_change=0.0,
        min_forward_change=0.002,
        max_refit_interval_s=0.5,
    )
    assert main(["check-config", str(path)]) == 0
    capsys.readouterr()


@pytest.mark.parametrize(
    ("line", "key", "said"),
    [
        ("min_refit_interval_s = 0", "surface.min_refit_interval_s", "expected a positive number, got 0"),
        ("min_refit_interval_s = -1.5", "surface.min_refit_interval_s", "expected a positive number"),
        ("min_refit_interval_s = nan", "surface.min_refit_interval_s", "expected a finite number"),
        ("max_iv = inf", "surface.max_iv", "expected a finite number"),
        ("max_iv = 0.0", "surface.max_iv", "expected a positive number"),
        ("max_iv = 10.5", "surface.max_iv", "expected an IV above 0.01 and at most 10 (1000%), got 10.5"),
        ("max_iv = 1e200", "surface.max_iv", "expected an IV above 0.01 and at most 10"),
        ("max_iv = 0.01", "surface.max_iv", "expected an IV above 0.01 and at most 10"),
        ("min_expiry_s = -3600", "surface.min_expiry_s", "expected a positive number"),
        ("min_quotes = 4", "surface.min_quotes", "expected an integer at least 5"),
        ("min_quotes = 5.5", "surface.min_quotes", "expected an integer"),
        ('min_quotes = "7"', "surface.min_quotes", "expected an integer"),
        ("min_iv_change = -0.001", "surface.min_iv_change", "expected a number at least 0, got -0.001"),
        ("min_iv_change = inf", "surface.min_iv_change", "expected a finite number"),
        ("min_forward_change = -1", "surface.min_forward_change", "expected a number at least 0"),
        ("min_forward_change = nan", "surface.min_forward_change", "expected a finite number"),
        ("max_refit_interval_s = 0", "surface.max_refit_interval_s", "expected a positive number"),
        (
            "max_refit_interval_s = 4.5",  # below min_refit_interval_s (5 by default)
            "surface.max_refit_interval_s",
            "expected a number at least min_refit_interval_s (5.0), got 4.5",
        ),
        # Huge but finite: the engine holds the intervals in integer ns (1e300 s overflowed it).
        ("min_refit_interval_s = 1e300", "surface.min_refit_interval_s", "expected at most a year"),
        ("max_refit_interval_s = 1e300", "surface.max_refit_interval_s", "expected at most a year"),
        ("max_refit_interval_s = 31536001", "surface.max_refit_interval_s", "(31536000 s), got 31536001"),
        ("min_refit_s = 5", "surface", "unknown key(s) min_refit_s; did you mean 'min_refit_interval_s'?"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, key: str, said: str
) -> None:
    path = _write(tmp_path, BASE + "[surface]\n" + line + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.path == key
    assert said in info.value.message
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert key in err[0] and said in err[0]


def test_a_year_is_the_longest_refit_interval(tmp_path: Path) -> None:
    year = 365 * 86_400
    text = BASE + f"[surface]\nmin_refit_interval_s = {year}\nmax_refit_interval_s = {year}\n"
    surface = load_config(_write(tmp_path, text)).config.surface
    assert surface_settings(surface).max_refit_interval_s == year
    # The engine's own edge says the same, naming the field.
    with pytest.raises(ValueError, match=r"surface.max_refit_interval_s must be at most a year"):
        SurfaceSettings(max_refit_interval_s=1e300)
    with pytest.raises(ValueError, match=r"surface.min_refit_interval_s must be at most a year"):
        SurfaceSettings(min_refit_interval_s=year + 1.0, max_refit_interval_s=year + 1.0)
