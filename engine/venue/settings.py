"""What every connector's settings share: the checks of a `[venues.<name>]` table's values.

- `at_least(minimum)`: an attrs validator refusing a number below `minimum`, or one that is not a
  finite number (NaN, an infinity), naming the setting;
- `known_overrides(cls, overrides)`: the `[venues.<name>.fees]` overrides of a fee schedule (an
  attrs class), refused with the known names when one is not a field of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs

__all__ = ["at_least", "known_overrides"]


def at_least(minimum: float) -> Callable[[Any, attrs.Attribute[Any], float], None]:
    """An attrs validator: the value is a finite number at least `minimum` (ValueError naming the
    setting). NaN compares false with everything, so `value < minimum` alone takes it, and an
    infinite timeout or rate is no setting either: both are refused here, not only by the config
    loader, since the settings classes are also built in code."""

    def check(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
        if not math.isfinite(value) or value < minimum:
            raise ValueError(f"{attribute.name}: expected at least {minimum} (a finite number), got {value}")

    return check


def known_overrides(
    cls: type[attrs.AttrsInstance], overrides: Mapping[str, Any], *, internal: Collection[str] = ()
) -> dict[str, Any]:
    """`overrides` as keyword arguments of `cls`, once every name is one of its fields (but
    `internal`, the ones the config does not set); ValueError naming the unknown and the known."""
    known = {f.name for f in attrs.fields(cls)} - set(internal)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown fee setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return dict(overrides)
