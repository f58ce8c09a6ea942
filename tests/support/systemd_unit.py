"""The shipped systemd unit, read as systemd reads it: every `Key=value` line, by key."""

from __future__ import annotations

from pathlib import Path

UNIT = Path(__file__).resolve().parent.parent.parent / "deploy" / "tradingd.service"


def settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out
