"""Dependencies point one way: connectors and strategies import the engine (never the config nor
the CLI); the engine imports no connector, no strategy, not `config/` and not the CLI; `config/`
describes the TOML and is read by the CLI (it may use the engine's types, never the CLI's). No
import hides inside a function to dodge a circle: every import of every module is read here, at
any depth, with `ast`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradingd.engine.venue.plugins import available_venues

ROOT = Path(__file__).resolve().parent.parent.parent
# The folder of each installed package (pyproject's package-dir: `engine/` is tradingd.engine).
FOLDERS = {
    "engine": "tradingd.engine",
    "config": "tradingd.config",
    "cli": "tradingd.cli",
    "connectors": "tradingd.connectors",
    "strategies": "tradingd.strategies",
}
# What a module may never import, by the package it belongs to. The bare names are the folders'
# own (a second copy of a module, from the repository root on sys.path: always a bug).
BARE = ("engine", "config", "cli", "connectors", "strategies")
FORBIDDEN = {
    "engine": ("tradingd.config", "tradingd.cli", "tradingd.connectors", "tradingd.strategies", *BARE),
    "config": ("tradingd.cli", "tradingd.connectors", "tradingd.strategies", *BARE),
    # A venue or a strategy is given what it needs (its settings, its params): it reads no config.
    "connectors": ("tradingd.config", "tradingd.cli", "tradingd.strategies", *BARE),
    "strategies": ("tradingd.config", "tradingd.cli", "tradingd.connectors", *BARE),
}


def _modules(folder: str) -> Iterator[tuple[str, Path]]:
    """(dotted module name, file) for every module of a package folder."""
    base = ROOT / folder
    for path in sorted(base.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join([FOLDERS[folder], *parts]), path


def _imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, however deep in it."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                assert node.module is not None
                yield node.lineno, node.module
                continue
            # `from ..x import y` in a.b.c: drop level-1 packages from a.b, then add x.
            base = package.split(".")
            base = base[: len(base) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
            yield node.lineno, target
            if node.module is None:  # `from . import x`: x is a module of that package
                for alias in node.names:
                    yield node.lineno, f"{target}.{alias.name}"


def _is_under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_a_package_imports_only_what_its_side_of_the_house_may(folder: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for module, path in _modules(folder)
        for line, name in _imports(module, path)
        if any(_is_under(name, bad) for bad in FORBIDDEN[folder])
    ]
    assert found == [], "\n".join(found)


def test_the_relative_imports_are_resolved_as_python_does() -> None:
    """The checker itself: a relative import of the engine resolves inside `tradingd.engine`."""
    names = {
        name for _, name in _imports("tradingd.engine.daemon.service", ROOT / "engine/daemon/service.py")
    }
    assert "tradingd.engine.runtime.live" in names and "tradingd.engine.daemon.settings" in names
    assert not any(n.startswith(("engine.", "daemon.", "runtime.")) for n in names)


@pytest.mark.parametrize("folder", ["cli", "config"])
def test_every_import_of_the_cli_and_config_is_at_the_top_of_its_module(folder: str) -> None:
    """Nothing imported inside a function (the old way to dodge the config <-> engine circle);
    the CLI picks the chosen command's module by name (`cli.main._dispatch`), which is no import
    statement."""
    found = []
    for _, path in _modules(folder):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found += [
                    f"{path.relative_to(ROOT)}:{inner.lineno}"
                    for inner in ast.walk(node)
                    if isinstance(inner, ast.Import | ast.ImportFrom)
                ]
    assert found == [], "\n".join(found)


def test_the_cli_names_no_venue_in_code() -> None:
    """A venue's specifics belong to its plugin: no `venue == "polymarket"`, no
    `load_catalog_class("polymarket")` in the command line (help text may give an example)."""
    venues = set(available_venues())
    assert {"deribit", "derive", "polymarket"} <= venues  # the check below checks something
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
        for _, path in _modules("cli")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.lower() in venues
    ]
    assert found == [], "\n".join(found)
