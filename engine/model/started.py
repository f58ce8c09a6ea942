"""When this process first imported tradingd's engine, in ns since the epoch.

The model room is the first thing any import of the engine runs (`tradingd.engine` imports it
first, and every connector, strategy and command imports the engine before its own code), so
every source file the engine or a connector loads is read after this stamp. The decoded-event
cache asks whether a decoder's source changed since: a file written before (a `pip install`
earlier in the same shell line, even in a process that `exec`ed into Python and so started
before it) is the code running; one written after may not be."""

from __future__ import annotations

import time
from typing import Final

IMPORTED_NS: Final = time.time_ns()
