"""The engine names no venue: a venue's specifics belong to its plugin (engine.venue.spi), so
no code of `engine/` holds a venue's name, as a string or in an identifier (`polymarket_cache`
included). Documentation may: docstrings and comments give examples ("deribit",
`connectors/polymarket/...`)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"
_VENUE = re.compile(r"\b(deribit|derive|polymarket)\b", re.IGNORECASE)


def _named(node: ast.AST) -> str | None:
    """The identifier or string a node holds (None for others)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.arg):
        return node.arg
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name
    if isinstance(node, ast.keyword):
        return node.arg
    if isinstance(node, ast.alias):
        return node.name
    if isinstance(node, ast.ImportFrom):
        return node.module
    return None


def _is_text(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def venue_names_in_code(source: str) -> list[tuple[int, str]]:
    """(line, text) of each string or identifier of `source` naming a venue, documentation
    (a string standing alone as a statement: a docstring) left out. `_` and `.` separate words,
    so `polymarket_cache` and `connectors.deribit` name one and `derived` does not."""
    tree = ast.parse(source)
    docs = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }
    found = []
    for node in ast.walk(tree):
        text = None if id(node) in docs else _named(node)
        if text and _VENUE.search(text.replace("_", " ").replace(".", " ")):
            found.append((getattr(node, "lineno", 0), text[:80]))
    return sorted(found)


def test_the_check_finds_a_venue_in_code_and_not_in_documentation() -> None:
    source = (
        '"""Works with Deribit."""\n'
        "# and Polymarket\n"
        "def f(settings: object, name: str) -> object:\n"
        '    """For `deribit` too."""\n'
        '    if name == "polymarket":\n'
        '        return getattr(settings, "x")\n'
        "    derived = settings\n"
        "    return settings.derive_url, derived\n"
    )
    assert venue_names_in_code(source) == [(5, "polymarket"), (8, "derive_url")]


def test_no_code_of_the_engine_names_a_venue() -> None:
    found = [
        f"{path.relative_to(ENGINE.parent)}:{line}: {text}"
        for path in sorted(ENGINE.rglob("*.py"))
        for line, text in venue_names_in_code(path.read_text(encoding="utf-8"))
    ]
    assert found == []
