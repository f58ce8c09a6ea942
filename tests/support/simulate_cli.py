"""The real command a user runs, `tradingd simulate VENUE --host 127.0.0.1 --port 0`, as a
subprocess a test drives (`simulate_cli`): it waits for the banner, parses from it what a user
would copy (the address, the demo account's `NAME=value` credentials), and stops the process with
SIGINT when the test is done, killing it if it does not stop in time; no process outlives the
block, whatever happens in it.

What the command wrote to stderr is kept (`Simulated.stderr()`), and `Simulated.exit_code` holds
how it ended, for a test to assert a clean stop (exit 0, no fault logged)."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import attrs
import orjson

__all__ = ["BANNER_KEYS", "Simulated", "faults_in", "simulate_cli"]

ROOT = Path(__file__).resolve().parent.parent.parent

# The credentials each venue's banner names; the banner is complete once all of them are read.
BANNER_KEYS: dict[str, tuple[str, ...]] = {
    "deribit": ("DERIBIT_CLIENT_ID", "DERIBIT_CLIENT_SECRET"),
    "derive": ("DERIVE_WALLET", "DERIVE_SUBACCOUNT_ID", "DERIVE_SESSION_KEY"),
    "polymarket": (
        "POLYMARKET_PRIVATE_KEY",
        "POLYMARKET_API_KEY",
        "POLYMARKET_API_SECRET",
        "POLYMARKET_API_PASSPHRASE",
    ),
}
_FIRST = re.compile(r"^simulating .+ on (?P<address>127\.0\.0\.1:\d+) \(Ctrl-C stops\)$")
_PAIR = re.compile(r"\b([A-Z][A-Z0-9_]+)=(\S+)")
_FAULT_LEVELS = frozenset({"warning", "error", "critical", "exception"})


@attrs.define
class Simulated:
    """A running `tradingd simulate` and what its banner said."""

    venue: str
    address: str  # host:port
    credentials: dict[str, str]  # NAME=value pairs of the banner
    banner: list[str]
    process: subprocess.Popen[bytes]
    stderr_path: Path
    exit_code: int | None = None

    @property
    def http(self) -> str:
        return f"http://{self.address}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def state(self) -> dict[str, object]:
        """The simulator's `/_sim/state`, as any HTTP client reads it."""
        import httpx

        body: dict[str, object] = httpx.get(f"{self.http}/_sim/state", timeout=5).json()
        return body

    def stop(self, within: float = 10.0) -> int:
        """SIGINT (Ctrl-C), then a kill if it has not exited `within` seconds; the exit code
        (negative: killed by that signal)."""
        self.exit_code = _stop(self.process, within)
        return self.exit_code


def _stop(process: subprocess.Popen[bytes], within: float) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(within)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def faults_in(stderr: str) -> list[str]:
    """The lines of the command's stderr that signal a fault: a record at warning or above (JSON
    lines, the command's format off a terminal), and anything that is not a log record at all (a
    traceback, a raw message)."""
    faults = []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            faults.append(line)
            continue
        if not isinstance(record, dict) or str(record.get("level", "")).lower() in _FAULT_LEVELS:
            faults.append(line)
    return faults


def _command() -> list[str]:
    """The venv's `tradingd` script, beside the interpreter running the tests; else the module."""
    script = Path(sys.executable).parent / "tradingd"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "tradingd.cli.main"]


def _read_lines(stream: IO[bytes], lines: queue.Queue[str | None]) -> None:
    for raw in iter(stream.readline, b""):
        lines.put(raw.decode("utf-8", errors="replace").rstrip("\n"))
    lines.put(None)  # end of output: the process closed stdout (it has exited)


@contextlib.contextmanager
def simulate_cli(venue: str, *options: str, within: float = 20.0) -> Iterator[Simulated]:
    """`tradingd simulate VENUE [options]` on 127.0.0.1, an ephemeral port; yields once its
    banner is read (at most `within` seconds), stops it on leaving."""
    keys = BANNER_KEYS[venue]
    argv = [*_command(), "simulate", venue, *options, "--host", "127.0.0.1", "--port", "0"]
    environ = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    with tempfile.TemporaryDirectory(prefix=f"simulate-{venue}-") as tmp:
        stderr_path = Path(tmp) / "stderr"
        # stderr to a file: a pipe nobody reads would fill and stall the simulator's logging.
        with stderr_path.open("wb") as err:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=environ, cwd=tmp
            )
        try:
            assert process.stdout is not None
            lines: queue.Queue[str | None] = queue.Queue()
            threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
            banner: list[str] = []
            credentials: dict[str, str] = {}
            deadline = time.monotonic() + within
            while not banner or not all(k in credentials for k in keys):
                try:
                    line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise AssertionError(
                        f"no complete banner from `tradingd simulate {venue}` in {within} s: "
                        f"{banner!r}; stderr: {stderr_path.read_text(errors='replace')[-2000:]!r}"
                    ) from None
                if line is None:
                    raise AssertionError(
                        f"`tradingd simulate {venue}` ended (exit {process.wait()}) before its banner: "
                        f"{banner!r}; stderr: {stderr_path.read_text(errors='replace')[-2000:]!r}"
                    )
                banner.append(line)
                credentials.update(_PAIR.findall(line))
            first = _FIRST.match(banner[0])
            assert first is not None, f"unexpected first line: {banner[0]!r}"
            yield Simulated(
                venue=venue,
                address=first["address"],
                credentials=credentials,
                banner=banner,
                process=process,
                stderr_path=stderr_path,
            )
        finally:
            _stop(process, 10.0)
            if process.stdout is not None:
                process.stdout.close()
