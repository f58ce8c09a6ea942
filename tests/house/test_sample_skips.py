"""The tests that read `data/deribit-sample.rec.zst` skip on a fresh clone, which has none (it is
generated, not committed). Their reason said only "not in this checkout"; it now names the command
that makes the sample, and this checks that command does: its config's data is that file, and
generated when missing. Every skip of the test tree is read from its syntax (`_own_words`), not its
lines, so a reason written over several lines, in a constant or an f-string is found too."""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

from tests.support.samples import DERIBIT_SAMPLE, MAKES_DERIBIT_SAMPLE, NO_DERIBIT_SAMPLE
from tradingd.config import load_config

ROOT = Path(__file__).resolve().parent.parent.parent
_FILE = re.compile(r"deribit-sample\.rec\.zst")
_SKIPS = frozenset({"skip", "skipif", "importorskip"})  # pytest's, pytest.mark's, unittest's
_SHARED = "NO_DERIBIT_SAMPLE"


def test_the_command_a_skip_names_makes_the_sample() -> None:
    config = re.fullmatch(r"tradingd backtest --config (\S+)", MAKES_DERIBIT_SAMPLE)
    assert config is not None and f"`{MAKES_DERIBIT_SAMPLE}`" in NO_DERIBIT_SAMPLE
    loaded = load_config(ROOT / config[1])
    assert loaded.config.backtest is not None
    (spec,) = loaded.config.backtest.data
    (path,) = loaded.data_paths
    assert path == DERIBIT_SAMPLE.resolve()  # the file the tests look for
    assert spec.generate is not None  # made on the first run, when it is not there


def test_every_test_skipping_without_the_sample_says_how_to_make_it() -> None:
    own_words = [
        f"{test.relative_to(ROOT)}: {said}"
        for test in sorted((ROOT / "tests").rglob("*.py"))
        for said in _own_words(test.read_text())
    ]
    assert own_words == []  # each says NO_DERIBIT_SAMPLE


def test_the_check_finds_a_skip_in_its_own_words_however_it_is_written() -> None:
    """What a line-by-line look missed: a reason on a line of its own, in a constant, an f-string,
    a skip on the sample's absence whose reason does not name the file; what it must let be."""
    caught = {
        "a reason on its own line": """
            if not SAMPLE.exists():
                pytest.skip(
                    "data/deribit-sample.rec.zst is not in this checkout"
                )
        """,
        "a reason in a constant": """
            GONE = "no " + "data/deribit-sample.rec.zst"
            @pytest.mark.skipif(True, reason=GONE)
            def test_x(): ...
        """,
        "an f-string reason, the condition on another line": """
            @pytest.mark.skipif(
                not (ROOT / "data" / "deribit-sample.rec.zst").exists(),
                reason=f"{ROOT}/data/deribit-sample.rec.zst: run the backtest",
            )
            def test_x(): ...
        """,
        "a skip on the sample's absence in other words": """
            SAMPLE = DERIBIT_SAMPLE
            def test_x():
                sample = SAMPLE
                if not sample.exists():
                    pytest.skip("the sample is not there")
        """,
        "a mark's reason": """
            pytestmark = pytest.mark.skipif(
                not samples.DERIBIT_SAMPLE.exists(), reason="no sample")
        """,
    }
    for what, source in caught.items():
        assert len(_own_words(textwrap.dedent(source))) == 1, what
    let_be = """
        SAMPLE = DERIBIT_SAMPLE
        @pytest.mark.skipif(not SAMPLE.exists(), reason=NO_DERIBIT_SAMPLE)
        def test_x():
            if _fast is None:
                pytest.skip("the compiled path was not built")
            if not DERIBIT_SAMPLE.exists():
                pytest.skip(samples.NO_DERIBIT_SAMPLE)
        text = config.replace('path = "../data/deribit-sample.rec.zst"', 'path = "x"')
    """
    assert _own_words(textwrap.dedent(let_be)) == []


def _own_words(source: str) -> list[str]:
    """The skips in `source` that should say `NO_DERIBIT_SAMPLE` and do not: those whose reason
    names the sample's file, and those on a condition about the sample (a name bound to
    `DERIBIT_SAMPLE` or to the file's name, in any scope of the file), each as its line and text."""
    tree = ast.parse(source)
    bound = _bound_names(tree)
    sample = {"DERIBIT_SAMPLE"}
    while True:  # a name bound to the sample, or to a name that is, ...
        more = {name for name, values in bound.items() if any(_about_the_sample(v, sample) for v in values)}
        if more <= sample:
            break
        sample |= more
    said = []
    for call, conditions in _skips(tree):
        reason = _reason(call)
        if reason is not None and _named(reason) == _SHARED:
            continue
        text = "" if reason is None else _text(reason, bound, set())
        if _FILE.search(text) or any(_about_the_sample(test, sample) for test in conditions):
            said.append(f"line {call.lineno}: {ast.unparse(call)}")
    return said


def _skips(tree: ast.AST) -> Iterator[tuple[ast.Call, list[ast.expr]]]:
    """Each skip call in `tree`, with the conditions it is under: a `skipif`'s own, the tests of
    the `if`s it is in."""

    def walk(node: ast.AST, tests: list[ast.expr]) -> Iterator[tuple[ast.Call, list[ast.expr]]]:
        if isinstance(node, ast.Call) and _named(node.func) in _SKIPS:
            own = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "condition")]
            yield node, [*tests, *own] if _named(node.func) == "skipif" else tests
        for child in ast.iter_child_nodes(node):
            if isinstance(node, ast.If) and child is not node.test:
                yield from walk(child, [*tests, node.test])
            else:
                yield from walk(child, tests)

    return walk(tree, [])


def _reason(call: ast.Call) -> ast.expr | None:
    """The reason a skip call gives: `reason=` (or `msg=`), else `skip`'s first argument."""
    for keyword in call.keywords:
        if keyword.arg in {"reason", "msg"}:
            return keyword.value
    return call.args[0] if _named(call.func) == "skip" and call.args else None


def _named(node: ast.AST) -> str | None:
    """The last name of `node`, a name or an attribute (`pytest.mark.skipif`: "skipif")."""
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def _bound_names(tree: ast.AST) -> dict[str, list[ast.expr]]:
    """Every name the file binds by assignment, anywhere, and the values it is given."""
    bound: dict[str, list[ast.expr]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                bound.setdefault(target.id, []).append(value)
    return bound


def _about_the_sample(node: ast.AST, sample: set[str]) -> bool:
    """Whether `node` reads the sample: a name bound to it, or the file's name."""
    return any(
        _named(part) in sample or (isinstance(part, ast.Constant) and _FILE.search(str(part.value)))
        for part in ast.walk(node)
    )


def _text(node: ast.AST, bound: dict[str, list[ast.expr]], seen: set[str]) -> str:
    """The words an expression can say: its strings, and those of the names it reads, as the file
    binds them (an f-string's, a concatenation's, a constant's)."""
    words = []
    for part in ast.walk(node):
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            words.append(part.value)
        elif isinstance(part, ast.Name) and part.id not in seen:
            seen.add(part.id)
            words.extend(_text(value, bound, seen) for value in bound.get(part.id, ()))
    return " ".join(words)
