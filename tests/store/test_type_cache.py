"""What the compiled modules learn of a class (slot offsets, what a name is on it) is kept while the
class keeps its version tag: engine/_typecache.h's `tc_version` and `tc_lookup`, the one place that
touches CPython's attribute cache, checked here on the running interpreter through `_replay`'s
hooks (the same header compiled there as in `_fast`, `_frames` and `_kernel`).

- a lookup gives the class a tag, which holds until the class or a base changes, and is never
  given again: so a tag is valid where it is not 0 on every Python (from 3.13
  Py_TPFLAGS_VALID_VERSION_TAG is never set: reading it made every class untrusted, and every
  module's learning run again on every use);
- a lookup finds what the dictionaries of the class's MRO hold, as `_PyType_Lookup` does (on 3.12
  and later through public API), and one that raises finds nothing and gives no tag (the walk of
  3.12 and later gave one after the error, so what a caller learnt of the class was kept);
- a class that can be given no more tags (from 3.13 CPython gives a class at most 1,000) is still
  looked up right, and nothing learnt of it is kept;
- no C source reads the tag or calls `_PyType_Lookup` but through the header.
"""

from __future__ import annotations

import pickle
import re
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import msgspec
import pytest

try:
    from tradingd.engine.store import _replay, evformat
except ImportError:  # not built: nothing compiled learns a class
    _replay = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[2]
HEADER = ROOT / "engine" / "_typecache.h"
compiled_only = pytest.mark.skipif(_replay is None, reason="engine/store/_replay.c was not built")


def _mro_lookup(cls: type, name: str) -> tuple[Any, ...]:
    """`name` in the dictionaries of `cls.__mro__`, the first that has it; () when none does."""
    for base in cls.__mro__:
        if name in vars(base):
            return (vars(base)[name],)
    return ()


class _Meta(type):
    on_the_metaclass = 1


class _Base(metaclass=_Meta):
    __slots__ = ("slot",)
    shared = "base"

    def method(self) -> str:
        return "base"


class _Left(_Base):
    __slots__ = ()
    shared = "left"


class _Right(_Base):
    __slots__ = ()

    def method(self) -> str:
        return "right"


class _Diamond(_Left, _Right):
    __slots__ = ("own",)


class _Struct(msgspec.Struct):
    field: int = 0


@attrs.define
class _Attrs:
    field: int = 0


CLASSES = [_Base, _Left, _Right, _Diamond, _Struct, _Attrs, int, dict, object, type, _Meta]
NAMES = ["slot", "own", "shared", "method", "field", "on_the_metaclass", "__add__", "__init__", "missing"]


@compiled_only
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_lookup_finds_what_the_dictionaries_of_the_mro_hold(cls: type) -> None:
    for name in NAMES:
        found = _replay.type_lookup(cls, name)
        want = _mro_lookup(cls, name)
        assert len(found) == len(want) and all(a is b for a, b in zip(found, want, strict=True)), name


@compiled_only
def test_a_lookup_gives_a_tag_that_holds_until_the_class_or_a_base_changes() -> None:
    base = type("Base", (), {"x": 1})
    cls = type("Cls", (base,), {"__slots__": ("a",)})
    assert _replay.type_lookup(cls, "a")
    tag = _replay.type_version(cls)
    assert tag != 0  # from 3.13 the flag is never set: the old test said 0 here, always
    cls()  # an instance made, an attribute looked up again: the same tag
    assert _replay.type_lookup(cls, "x") == (1,) and _replay.type_version(cls) == tag
    seen = {tag}
    changes: list[Callable[[], None]] = [
        lambda: setattr(cls, "y", 2),
        lambda: setattr(base, "x", 3),  # a base's change is the class's
        lambda: delattr(cls, "y"),
    ]
    for change in changes:
        change()
        assert _replay.type_version(cls) == 0  # cleared: nothing learnt with the old tag holds
        _replay.type_lookup(cls, "a")
        tag = _replay.type_version(cls)
        assert tag != 0 and tag not in seen  # a new one, never an earlier one
        seen.add(tag)
    assert _replay.type_lookup(cls, "x") == (3,)


class _Raising(str):
    """A str key of a class dictionary whose comparison raises while `armed`: looking up a name
    equal to it (same hash) raises in the dictionary (a str subclass leaves the dict's generic
    lookup, which compares)."""

    armed = True

    def __hash__(self) -> int:
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        if type(self).armed:
            raise RuntimeError("a key that cannot be compared")
        return str.__eq__(self, other)


@compiled_only
def test_a_lookup_that_raises_finds_nothing_and_gives_the_class_no_tag() -> None:
    key = type("Key", (_Raising,), {})  # its own `armed`
    cls = type("Cls", (), {key("probe"): 1, "plain": 2})
    cls.touched = 0  # type: ignore[attr-defined]  # (a class changed: whatever tag it had, none now)
    assert _replay.type_version(cls) == 0
    assert _replay.type_lookup(cls, "probe") == ()
    assert _replay.type_version(cls) == 0  # 3.12+ walk (before): a tag, so the miss was kept
    assert not hasattr(cls, "probe")  # Python's answer too (its lookup clears the error)
    key.armed = False  # type: ignore[attr-defined]
    assert _replay.type_lookup(cls, "probe") == (1,) == (cls.probe,)  # type: ignore[attr-defined]
    assert _replay.type_version(cls) != 0


def _exhausted(cls: type) -> int:
    """`cls` changed, and looked up, until it is given no tag any more: the changes it took."""
    for changes in range(1, 5_001):
        cls.changes = changes  # type: ignore[attr-defined]
        assert _replay.type_lookup(cls, "changes") == (changes,)
        if _replay.type_version(cls) == 0:
            return changes
    pytest.skip("this Python gives a class tags without end (a bound per class came in 3.13)")


@compiled_only
def test_a_class_given_no_more_tags_is_looked_up_right_and_nothing_learnt_of_it_is_kept() -> None:
    """From 3.13 a class is given at most 1,000 tags (MAX_VERSIONS_PER_CLASS): past them its tag
    stays 0 whatever changes. The lookups still answer as the dictionaries do, and a compiled
    module that learnt the class (the event cache's encoder, its fields' slot offsets) reads it
    through a change made since, though the tag did not move."""

    class Point(msgspec.Struct):
        field: int = 0

    def written(encoder_class: Any, value: Point) -> bytes:
        encoder = encoder_class({Point: 0}, {}, lambda v: -1, lambda v: pickle.dumps(v, protocol=5))
        encoder.add(1, 0, value)
        return bytes(encoder.take())

    changes = _exhausted(Point)
    assert changes > 100
    for name in ["field", "changes", "__init__", "missing"]:
        found = _replay.type_lookup(Point, name)
        assert found == _mro_lookup(Point, name) and _replay.type_version(Point) == 0, name
    encoder = _replay.Encoder({Point: 0}, {}, lambda v: -1, lambda v: pickle.dumps(v, protocol=5))
    encoder.add(1, 0, Point(5))  # the class learnt: its field a slot
    before = encoder.take()
    assert before == written(evformat.PyEncoder, Point(5))
    Point.field = property(lambda self: 99)  # type: ignore[assignment]
    assert _replay.type_version(Point) == 0 and Point(5).field == 99
    encoder.add(1, 0, Point(5))  # read through the property, not the slot learnt
    assert encoder.take() == written(evformat.PyEncoder, Point(5)) != before


def _c_sources() -> list[Path]:
    """The project's C sources: the files git tracks (so nothing in a venv or a build, whatever
    its name), or, out of a git checkout (`.ci/other-pythons` copies the tracked files), the C
    files in the folders of the packages pyproject.toml names."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", "*.c", "*.h"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):  # no git, or not a checkout
        packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
        folders = sorted({name.split(".")[1] for name in packages})
        return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.[ch]"))
    return sorted(ROOT / name for name in listed.decode().split("\0") if name)


def test_no_c_source_reads_the_tag_or_looks_a_class_up_but_through_the_header() -> None:
    private = re.compile(r"\b(tp_version_tag|Py_TPFLAGS_VALID_VERSION_TAG|_PyType_Lookup\w*)\b")
    sources = _c_sources()
    assert len(sources) >= 5 and HEADER in sources
    offending = {
        str(p.relative_to(ROOT)): sorted(set(private.findall(p.read_text())))
        for p in sources
        if p != HEADER and private.search(p.read_text())
    }
    assert offending == {}
    users = {p.name for p in sources if re.search(r"\btc_(lookup|version)\(", p.read_text()) and p != HEADER}
    assert users == {"_json.h", "_fast.c", "_replay.c", "_kernel.c"}
