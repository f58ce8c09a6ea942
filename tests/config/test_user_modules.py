"""Where a user's `module:Class` is found, and what it may not do to the rest of the process.

The config file's folder first, then the working directory (as uvicorn's `--app-dir`). The
folder holding the module is first on `sys.path` only while the module is imported, then last:
a user's `colorsys.py` beside the config must not become the `colorsys` Python or tradingd
imports later. A module named like one already imported (or a standard one) is refused, naming
the file. (`tests/cli/test_user_folder.py` runs the console script from a user's folder.)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradingd.config import load_config
from tradingd.engine import ConfigError

STRATEGY = """\
from tradingd.engine import Strategy


class {cls}(Strategy):
    WHERE = {where!r}

    async def on_event(self, event):
        pass
"""

CONFIG = """\
mode = "backtest"
[backtest]
[[backtest.data]]
venue = "deribit"
path = "sample.rec.zst"
generate = {{ hours = 0.1 }}
[[strategies]]
name = "mine"
class = "{spec}"
"""


@pytest.fixture
def clean_imports() -> Iterator[list[str]]:
    """Module names a test creates: forgotten afterwards, with sys.path as it was."""
    names: list[str] = []
    saved = list(sys.path)
    yield names
    sys.path[:] = saved
    for name in names:
        sys.modules.pop(name, None)
    importlib.invalidate_caches()


def _user_module(folder: Path, module: str, cls: str = "Mine") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(STRATEGY.format(cls=cls, where=str(folder)), encoding="utf-8")


def _config(folder: Path, spec: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "c.toml"
    path.write_text(CONFIG.format(spec=spec), encoding="utf-8")
    return path


def test_the_users_folder_is_last_on_sys_path_once_the_module_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_imports: list[str]
) -> None:
    clean_imports += ["cfg_last_mod", "colorsys"]
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "quant"
    _user_module(folder, "cfg_last_mod")
    # A file beside the user's strategy named like a standard module not imported yet.
    (folder / "colorsys.py").write_text("HIJACKED = True\n", encoding="utf-8")
    sys.modules.pop("colorsys", None)
    loaded = load_config(_config(folder, "cfg_last_mod:Mine"))
    assert vars(loaded.strategy_classes["mine"])["WHERE"] == str(folder)
    assert sys.path[-1] == str(folder)  # still found by the user's own later imports
    assert str(folder) not in sys.path[:-1]
    colorsys = importlib.import_module("colorsys")
    assert not hasattr(colorsys, "HIJACKED"), colorsys.__file__


def test_the_config_folder_comes_before_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_imports: list[str]
) -> None:
    clean_imports.append("cfg_first_mod")
    work = tmp_path / "work"
    beside = tmp_path / "configs"
    _user_module(work, "cfg_first_mod")
    _user_module(beside, "cfg_first_mod")
    monkeypatch.chdir(work)
    loaded = load_config(_config(beside, "cfg_first_mod:Mine"))
    assert vars(loaded.strategy_classes["mine"])["WHERE"] == str(beside)


@pytest.mark.parametrize(
    ("module", "already"),
    [
        ("random", "already imported from"),  # the standard library's, imported by now
        ("trio", "already imported from"),  # an installed package tradingd runs on
        ("tabnanny", "Python's standard module 'tabnanny'"),  # standard, not imported yet
    ],
)
def test_a_user_module_named_like_one_in_use_is_refused_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_imports: list[str], module: str, already: str
) -> None:
    monkeypatch.chdir(tmp_path)
    if module == "tabnanny":
        clean_imports.append(module)
        sys.modules.pop(module, None)
    _user_module(tmp_path, module)
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, f"{module}:Mine"))
    text = str(info.value)
    assert "strategies[0].class" in text and already in text, text
    assert f"{tmp_path / module}.py" in text and f"rename your {module}.py" in text, text
    assert sys.path.count(str(tmp_path)) == 0  # nothing added for a refused module


def test_a_misspelt_class_suggests_the_strategies_the_module_defines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_imports: list[str]
) -> None:
    clean_imports.append("cfg_typo_mod")
    monkeypatch.chdir(tmp_path)
    _user_module(tmp_path, "cfg_typo_mod", cls="BuyTheDip")
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, "cfg_typo_mod:BuyTheDp"))
    assert str(info.value).endswith(
        "strategies[0].class: module 'cfg_typo_mod' has no 'BuyTheDp'; did you mean 'BuyTheDip'?"
    ), info.value


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "from tradingd.engine import Strategy\nclass Mine(Strategy)\n    pass\n",
            "strategies[0].class: strategy module 'cfg_broken_mod' does not compile: expected ':' "
            "({file}, line 2)",
        ),
        (
            "LIMIT = 1 / 0\n",
            "strategies[0].class: importing strategy module 'cfg_broken_mod' raised ZeroDivisionError: "
            "division by zero ({file}, line 1)",
        ),
    ],
)
def test_a_user_module_that_does_not_import_is_one_line_naming_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_imports: list[str], source: str, message: str
) -> None:
    clean_imports.append("cfg_broken_mod")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg_broken_mod.py").write_text(source, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, "cfg_broken_mod:Mine"))
    assert str(info.value).endswith(message.format(file=tmp_path / "cfg_broken_mod.py")), info.value


def test_params_for_a_strategy_without_a_params_class_say_how_to_take_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_imports: list[str]
) -> None:
    clean_imports.append("cfg_plain_mod")
    monkeypatch.chdir(tmp_path)
    _user_module(tmp_path, "cfg_plain_mod")
    path = _config(tmp_path, "cfg_plain_mod:Mine")
    path.write_text(path.read_text(encoding="utf-8") + "[strategies.params]\nsize = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).endswith(
        "strategies[0].params: cfg_plain_mod:Mine takes no params: it declares no `Params` class "
        "(an attrs class built from this table; README, Add a strategy)"
    ), info.value
