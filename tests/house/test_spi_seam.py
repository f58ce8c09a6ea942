"""The seam between the engine and a venue is typed (engine/venue/spi.py, and a venue's
simulator: engine/sim/plugins.py): nothing in the engine
or the CLI finds a venue's capability by name (`getattr(plugin, "simulate", None)`,
`hasattr(client, "recent_fills")`), and the runtime never catches an `AttributeError`, which would
take a bug inside a venue's method for a capability it lacks."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from tradingd.engine.sim import plugins as sim_plugins
from tradingd.engine.venue import spi

ROOT = Path(__file__).resolve().parent.parent.parent


def _spi_members() -> set[str]:
    """Every member a class of the SPI declares (methods, properties, attributes), and a
    simulator's."""
    classes = [cls for _, cls in inspect.getmembers(spi, inspect.isclass) if cls.__module__ == spi.__name__]
    names: set[str] = set()
    for cls in [*classes, sim_plugins.SimulatorPlugin]:
        names |= {n for n in vars(cls) if not n.startswith("_")}
        names |= set(getattr(cls, "__annotations__", {}))
    return names


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def _lookups_by_name(path: Path, members: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "hasattr"}
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in members
        ):
            found.append(f"{_name(path)}:{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
    return found


def _catches_attribute_error(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            names = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
            if any(isinstance(n, ast.Name) and n.id == "AttributeError" for n in names):
                found.append(f"{_name(path)}:{node.lineno}")
    return found


def test_the_spi_declares_what_the_engine_reads() -> None:
    members = _spi_members()
    # The scan's own witness: these are SPI members today, so a lookup of them would be caught.
    assert {
        "simulate",
        "banner",
        "generate_sample",
        "recent_fills",
        "delivery",
        "channels",
        "data_formats",
    } <= members


def test_no_capability_of_a_venue_is_looked_up_by_name() -> None:
    members = _spi_members()
    found = [
        hit
        for folder in ("engine", "cli")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for hit in _lookups_by_name(path, members)
    ]
    # A data file's reader is no venue: Tardis's reader counts its rows in `stats`, a recording's
    # does not (the `data inspect` summary shows them when there are).
    where_what = [(hit.split(":")[0], hit.split(": ", 1)[1]) for hit in found]
    assert where_what == [("cli/data.py", "getattr(..., 'stats')")]


def test_what_drives_a_venue_never_catches_an_attribute_error() -> None:
    """The live engine, the gateway, the order flow, the daemon and the venue room call venue
    code; `runtime/strategy.py` may (it resolves a user's `module:Class` path)."""
    paths = [ROOT / "engine" / "runtime" / f for f in ("live.py", "gateway.py", "flow.py")]
    paths += [p for folder in ("daemon", "venue") for p in sorted((ROOT / "engine" / folder).rglob("*.py"))]
    assert [hit for path in paths for hit in _catches_attribute_error(path)] == []


def test_the_scans_find_what_they_look_for(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        "def f(client):\n    try:\n        return getattr(client, 'recent_fills', None)\n"
        "    except AttributeError:\n        return None\n",
        encoding="utf-8",
    )
    assert _lookups_by_name(planted, _spi_members()) == ["planted.py:3: getattr(..., 'recent_fills')"]
    assert _catches_attribute_error(planted) == ["planted.py:4"]
