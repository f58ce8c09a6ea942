"""The house's layout, checked from the source (with `ast`, every import: top level, inside
functions, under TYPE_CHECKING):

- the engine's rooms depend on each other one way, in the order `ROOM_DEPENDS` states;
- the model room is pure (no event loop, network, database, files or plotting);
- connectors reach the engine only through its two surfaces, `tradingd.engine` and
  `tradingd.engine.venue` (their Tardis reader also through `.backtest`'s file opener);
  strategies only through `tradingd.engine`;
- the simulators are witnesses of the connectors, not mirrors: they import nothing from
  `tradingd.connectors`, and from the engine only the loopback server, the recording writer and
  the market model's value types and option pricing (`SIMULATOR_ENGINE`);
- nothing outside the engine imports an `_underscore` module of it;
- nothing imports our folders under their bare names (`engine`, `config`...): only `tradingd.…`;
- every package folder is installed (pyproject's `[tool.setuptools] packages`), and nothing else.
"""

from __future__ import annotations

import ast
import functools
import graphlib
import os
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parent.parent.parent
ENGINE = "tradingd.engine"

# Each room and the rooms it may import: dependencies point one way, down this order
#   model  <-  store  <-  logs  <-  venue  <-  runtime  <-  backtest, daemon  <-  reports
#   logs  <-  alerts  <-  daemon
#   venue  <-  sim
#   model  <-  metrics  <-  daemon
#   backtest, reports  <-  sweep
#   model  <-  surface  <-  runtime, backtest, daemon
ROOM_DEPENDS: dict[str, frozenset[str]] = {
    "model": frozenset(),
    "store": frozenset({"model"}),
    "sim": frozenset({"model", "venue"}),
    "logs": frozenset({"model", "store"}),
    "venue": frozenset({"model", "logs"}),
    "runtime": frozenset({"model", "store", "logs", "venue", "surface"}),
    "backtest": frozenset({"model", "store", "logs", "venue", "runtime", "surface"}),
    "metrics": frozenset({"model"}),
    "alerts": frozenset({"model", "logs"}),
    "daemon": frozenset({"model", "store", "logs", "venue", "runtime", "metrics", "alerts", "surface"}),
    "reports": frozenset({"model", "backtest"}),
    "sweep": frozenset({"model", "store", "logs", "backtest", "reports"}),
    "surface": frozenset({"model"}),
}

# What the model room may not import: an event loop, the network, a database, files, plotting.
IMPURE = frozenset(
    {
        "asyncio",
        "gzip",
        "httpx",
        "hypercorn",
        "io",
        "matplotlib",
        "os",
        "pathlib",
        "requests",
        "shutil",
        "socket",
        "sqlite3",
        "subprocess",
        "tempfile",
        "threading",
        "trio",
        "trio_websocket",
        "urllib",
        "websockets",
        "zstandard",
    }
)
IO_BUILTINS = frozenset({"open", "print", "input"})

# Folder -> installed package (pyproject's package-dir).
FOLDERS = {
    "engine": "tradingd.engine",
    "connectors": "tradingd.connectors",
    "strategies": "tradingd.strategies",
    "config": "tradingd.config",
    "cli": "tradingd.cli",
    "simulators": "tradingd.simulators",
}
SKIP = {".venv", ".git", ".typing", "build", "dist", "node_modules", "__pycache__"}

CONNECTOR_SURFACES = frozenset({ENGINE, f"{ENGINE}.venue"})
DATA_SOURCE_SURFACES = frozenset({f"{ENGINE}.backtest"})
DATA_SOURCE_MODULES = ("tardis",)  # in a file's name: a reader of a data file
# What the simulators may take from the engine: nothing of a venue's protocol, fees, signing,
# decoding or matching, only the loopback server, the recording contract's writer, and the
# synthetic market's value types and option pricing.
SIMULATOR_ENGINE = frozenset(
    {
        f"{ENGINE}.sim",
        f"{ENGINE}.sim.server",
        f"{ENGINE}.store",
        f"{ENGINE}.model.events",
        f"{ENGINE}.model.pricing",
    }
)


@attrs.frozen
class Import:
    file: Path
    line: int
    module: str  # absolute: `from .x import y` in tradingd/engine/model/a.py is tradingd.engine.model.x
    names: tuple[str, ...]  # what a `from` import takes; () for `import module`
    type_checking: bool

    def __str__(self) -> str:
        what = f"from {self.module} import {', '.join(self.names)}" if self.names else f"import {self.module}"
        return f"{self.file.relative_to(ROOT)}:{self.line}: {what}"


def python_files(*folders: str) -> Iterator[Path]:
    """The .py files under `folders` (default: the whole repository), virtualenvs and builds left out."""
    for folder in folders or ("",):
        for here, dirs, files in os.walk(ROOT / folder):
            dirs[:] = sorted(d for d in dirs if d not in SKIP and not d.endswith(".egg-info"))
            yield from (Path(here, f) for f in sorted(files) if f.endswith(".py"))


def module_of(path: Path) -> str:
    """The dotted name `path` is imported as: installed folders under `tradingd.`."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if parts[0] in FOLDERS:
        parts[:1] = FOLDERS[parts[0]].split(".")
    return ".".join(parts)


@functools.cache
def imports(path: Path) -> tuple[Import, ...]:
    """Every import of `path`, wherever it is in the file."""
    return tuple(_imports(path))


def _imports(path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    module = module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name, (), id(node) in guarded)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield Import(path, node.lineno, name, tuple(a.name for a in node.names), id(node) in guarded)


def in_engine(module: str) -> bool:
    return module == ENGINE or module.startswith(ENGINE + ".")


def room_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and in_engine(module) else None


def rooms() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "engine").glob("*/__init__.py"))


def room_edges() -> dict[tuple[str, str], list[Import]]:
    """(importing room, imported room) -> the imports that make the edge."""
    edges: dict[tuple[str, str], list[Import]] = {}
    for path in python_files("engine"):
        src = room_of(module_of(path))
        for imp in imports(path):
            dst = room_of(imp.module)
            if src is not None and dst is not None and dst != src:
                edges.setdefault((src, dst), []).append(imp)
    return edges


def engine_module_path(module: str) -> Path | None:
    """The file or folder of an engine module, None when it is not one."""
    rel = Path("engine", *module.split(".")[2:])
    for candidate in (rel.with_suffix(".py"), rel / "__init__.py"):
        if (ROOT / candidate).exists():
            return candidate
    return None


# -- the engine's rooms ---------------------------------------------------------------------------


def test_every_room_is_in_the_stated_order() -> None:
    assert rooms() == sorted(ROOM_DEPENDS), "a room was added or removed: place it in ROOM_DEPENDS"


def test_rooms_depend_one_way() -> None:
    edges = room_edges()
    wrong = [
        str(imp)
        for (src, dst), found in sorted(edges.items())
        if dst not in ROOM_DEPENDS[src]
        for imp in found
    ]
    assert not wrong, "imports against the room order (ROOM_DEPENDS):\n" + "\n".join(wrong)
    # The order itself has no circle, so neither has the graph it allows.
    graph = {src: set(dsts) for src, dsts in ROOM_DEPENDS.items()}
    graph_of_code = {src: {d for (s, d) in edges if s == src} for src in ROOM_DEPENDS}
    graphlib.TopologicalSorter(graph).prepare()
    graphlib.TopologicalSorter(graph_of_code).prepare()


def test_rooms_reach_each_other_directly_not_through_the_strategy_surface() -> None:
    # `tradingd.engine` imports the runtime; a room importing it back would be a circle.
    found = [str(imp) for path in python_files("engine") for imp in imports(path) if imp.module == ENGINE]
    assert not found


def test_the_engine_imports_no_connector_strategy_config_or_cli() -> None:
    outside = ("tradingd.connectors", "tradingd.strategies", "tradingd.config", "tradingd.cli")
    found = [
        str(imp)
        for path in python_files("engine")
        for imp in imports(path)
        if any(imp.module == o or imp.module.startswith(o + ".") for o in outside)
    ]
    assert not found


def test_model_is_pure() -> None:
    found: list[str] = []
    for path in python_files("engine/model"):
        for imp in imports(path):
            top = imp.module.split(".")[0]
            if top in IMPURE:
                found.append(str(imp))
            elif in_engine(imp.module) and room_of(imp.module) != "model":
                found.append(f"{imp} (another room)")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [
            f"{path.relative_to(ROOT)}:{node.lineno}: {node.func.id}(...)"
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in IO_BUILTINS
        ]
    assert not found, "the model room does I/O or needs a runtime:\n" + "\n".join(found)


# -- who may import what --------------------------------------------------------------------------


def test_connectors_use_only_the_surfaces() -> None:
    found: list[str] = []
    for path in python_files("connectors"):
        allowed = CONNECTOR_SURFACES
        if any(word in path.stem for word in DATA_SOURCE_MODULES):
            allowed = allowed | DATA_SOURCE_SURFACES
        found += [str(imp) for imp in imports(path) if in_engine(imp.module) and imp.module not in allowed]
    assert not found, "connectors import the engine through tradingd.engine(.venue) only:\n" + "\n".join(
        found
    )


def imported_modules(imp: Import) -> list[str]:
    """The modules `imp` may bring in: its module, and for `from package import name` where the
    package is `tradingd` or the engine, `package.name` too (`from tradingd import connectors`
    imports the package tradingd.connectors)."""
    if imp.module in ("tradingd", ENGINE):
        return [imp.module, *(f"{imp.module}.{name}" for name in imp.names)]
    return [imp.module]


def test_the_simulators_import_nothing_of_the_connectors() -> None:
    def wrong(module: str) -> bool:
        if module.split(".")[0] == "connectors" or module.startswith("tradingd.connectors"):
            return True
        return in_engine(module) and module not in SIMULATOR_ENGINE

    found = [
        str(imp)
        for path in python_files("simulators")
        for imp in imports(path)
        if any(wrong(module) for module in imported_modules(imp))
    ]
    assert not found, (
        "simulators import no connector, and of the engine only SIMULATOR_ENGINE:\n" + "\n".join(found)
    )


def test_importing_every_simulator_module_loads_no_connector() -> None:
    """What the source check cannot see (`importlib.import_module("tradingd.connectors...")`, an
    import through another module): every module of tradingd.simulators imported in a fresh
    interpreter leaves no tradingd.connectors module loaded."""
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import tradingd.simulators as root
        for info in pkgutil.walk_packages(root.__path__, root.__name__ + "."):
            importlib.import_module(info.name)
        print("\\n".join(sorted(m for m in sys.modules if m.startswith("tradingd.connectors"))))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [], "importing tradingd.simulators loaded connectors:\n" + done.stdout


def test_strategies_use_only_the_strategy_surface() -> None:
    found = [
        str(imp)
        for path in python_files("strategies")
        for imp in imports(path)
        if in_engine(imp.module) and imp.module != ENGINE
    ]
    assert not found, "strategies import the engine through tradingd.engine only:\n" + "\n".join(found)


def test_nothing_outside_the_engine_imports_its_private_modules() -> None:
    found: list[str] = []
    for path in python_files():
        if path.is_relative_to(ROOT / "engine"):
            continue
        for imp in imports(path):
            if not in_engine(imp.module):
                continue
            if any(part.startswith("_") for part in imp.module.split(".")):
                found.append(str(imp))
            # `from tradingd.engine.model import _x` takes a private module too.
            found += [
                f"{imp} ({name} is a module)"
                for name in imp.names
                if name.startswith("_") and engine_module_path(f"{imp.module}.{name}") is not None
            ]
    assert not found


def test_nothing_imports_our_folders_by_their_bare_names() -> None:
    found = [
        str(imp) for path in python_files() for imp in imports(path) if imp.module.split(".")[0] in FOLDERS
    ]
    assert not found, "import tradingd.<folder>, never the bare folder:\n" + "\n".join(found)


# -- what is installed ----------------------------------------------------------------------------


def test_every_package_folder_is_installed_and_nothing_else() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert setuptools["package-dir"] == {package: folder for folder, package in FOLDERS.items()}
    folders = {module_of(init) for folder in FOLDERS for init in (ROOT / folder).rglob("__init__.py")}
    assert sorted(setuptools["packages"]) == sorted(folders)
