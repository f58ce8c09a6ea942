"""What no code caught never reaches the output as a raw traceback (issue 12, section 3): in a
process whose output is the JSON log (the daemon), an exception escaping to the top, one ending
a thread, an unraisable one, the standard `logging` module's records and warnings all become
JSON lines, redacted like any other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent.parent
SECRET = "hunter2-very-secret-value"

SCRIPT = f"""
import logging, sys, threading, traceback, warnings
import trio
from tradingd.engine.logs.setup import configure_logging, register_secret, route_uncaught_exceptions

configure_logging("info", "json", sys.stdout)
route_uncaught_exceptions(stderr=True)
register_secret({SECRET!r})

# trio's own printing: a thread's result that cannot be delivered is printed with
# traceback.print_exception to sys.stderr.
def deliver(outcome):
    raise RuntimeError("delivery failed holding {SECRET}")

done = threading.Event()
trio.lowlevel.start_thread_soon(lambda: done.set(), deliver)
done.wait()
import time; time.sleep(0.2)
print("a library prints client_secret=not-registered-42 to stderr", file=sys.stderr)

def die():
    raise ValueError("thread holds {SECRET}")

t = threading.Thread(target=die, name="worker")
t.start()
t.join()

class Noisy:
    def __del__(self):
        raise RuntimeError("finalizer holds {SECRET}")

Noisy()
logging.getLogger("trio").error("instrument failed: token={SECRET}")
warnings.warn("careful: {SECRET}", RuntimeWarning, stacklevel=1)
raise KeyError("escaping with {SECRET}")
"""


def test_every_uncaught_exception_is_a_redacted_json_line() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=60,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1  # as Python exits on an uncaught exception
    assert SECRET.encode() not in out
    assert all(line.startswith(b'{"ts":') for line in out.splitlines() if line.strip())  # no raw text
    lines = [orjson.loads(line) for line in out.splitlines() if line.strip()]  # JSON, every one
    events = {e["event"]: e for e in lines}
    assert events["thread.exception_uncaught"]["thread"] == "worker"
    assert "exception" in events["thread.exception_uncaught"]
    assert events["exception.unraisable"]["error"] == "RuntimeError"
    escaped = events["exception.uncaught"]
    assert escaped["level"] == "critical" and escaped["error"] == "KeyError" and "exception" in escaped
    logged = [e for e in lines if e.get("logger") == "trio"]
    assert logged and logged[0]["level"] == "error" and "[redacted]" in logged[0]["event"]
    assert any(e.get("logger") == "py.warnings" for e in lines)
    printed = [e["line"] for e in lines if e["event"] == "stderr"]
    assert "Exception while delivering result of thread" in printed  # trio's own print
    assert "[redacted]" in printed  # the line of its traceback holding the secret
    assert "a library prints client_secret=[redacted] to stderr" in printed
