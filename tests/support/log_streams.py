"""A text stream as the log setup sees a non-terminal stdout: its JSON lines land in its binary
`buffer`."""

from __future__ import annotations

import io


class _Stream(io.StringIO):
    """A non-terminal text stream with the binary `buffer` JSON lines are written to."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = io.BytesIO()

    @property
    def buffer(self) -> io.BytesIO:
        return self._bytes

    def isatty(self) -> bool:
        return False
