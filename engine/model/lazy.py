"""Lazy exports of a package (PEP 562): a name is imported from its module on first use, then
kept in the package, so importing the package costs only what is used. `_EXPORTS` of the
package says where each name lives; type checkers read its `TYPE_CHECKING` imports."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["attach"]


def attach(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's module `__getattr__` and `__dir__`: `exports` maps each name to its module
    (relative to `package`), `namespace` is the package's `globals()` (its `__all__` in it)."""

    def __getattr__(name: str) -> Any:
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *namespace.get("__all__", ())})

    return __getattr__, __dir__
