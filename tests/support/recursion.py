"""Which way this interpreter goes with deep JSON: Python 3.11 has msgspec's parse refuse it at the
recursion limit (a RecursionError); from 3.12 C code recurses against the interpreter's own C
limit (about 10,000 levels on 3.13), not `sys.getrecursionlimit()`, and the same text is read."""

from __future__ import annotations

import sys

import msgspec


def msgspec_refuses(text: bytes) -> bool:
    """Whether msgspec refuses `text` with a RecursionError here, with the recursion limit and
    stack depth the caller has set up; 3.11 always refuses what reaches its limit."""
    try:
        msgspec.json.decode(text)
    except RecursionError:
        return True
    assert sys.version_info >= (3, 12), "Python 3.11 refuses JSON nested past its recursion limit"
    return False
