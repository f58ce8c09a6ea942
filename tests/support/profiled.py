"""What Python code a call runs: the profiler's `call` events (a C function called from C makes
none), for tests that tell a compiled path from its Python reference by whether the reference's
code ran."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


def python_calls(call: Callable[[], Any]) -> tuple[Any, list[types.CodeType]]:
    """`call()`'s result and the code of every Python function it ran, in order."""
    codes: list[types.CodeType] = []

    def profile(frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "call":
            codes.append(frame.f_code)

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        result = call()
    finally:
        sys.setprofile(previous)
    return result, codes
