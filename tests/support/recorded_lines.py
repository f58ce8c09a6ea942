"""A recording read back as a test reads it: each frame with its receive time and its JSON
(`read`, `Line`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tradingd.engine.store import RecordingReader


@dataclass
class Line:
    """One recorded frame: when it was received (ns), its bytes, its JSON."""

    recv: int
    frame: bytes
    msg: Any


def read(path: Path) -> list[Line]:
    return [Line(ts, f, orjson.loads(f)) for ts, f in RecordingReader(path) if ts is not None]
