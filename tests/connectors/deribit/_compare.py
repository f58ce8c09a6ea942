"""What the compiled Deribit decoder's tests share: the frames they build and the child process
that runs anything that could crash (a crash fails the test instead of killing the session)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[3]
T_LOCAL = 1_700_000_000_123_456_789
PERP = "BTC-PERPETUAL"
PREFIX = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"'
INSTRUMENTS = (
    b'{"jsonrpc":"2.0","id":1,"result":[{"kind":"future","instrument_name":"BTC-PERPETUAL",'
    b'"tick_size":0.5,"min_trade_amount":10.0,"contract_size":10.0,"base_currency":"BTC",'
    b'"quote_currency":"USD","settlement_currency":"BTC","settlement_period":"perpetual",'
    b'"instrument_type":"reversed","expiration_timestamp":32503708800000}]}'
)
HYPOTHESIS = settings(
    max_examples=int(os.environ.get("CODEC_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CHANGE = {
    "type": "change",
    "timestamp": 1_700_000_000_100,
    "instrument_name": PERP,
    "change_id": 11,
    "prev_change_id": 10,
    "bids": [["delete", 42500.0, 0.0], ["new", 42498.5, 70.0]],
    "asks": [["change", 42501.0, 45.0]],
}
QUOTE_DATA = {
    "timestamp": 1_700_000_000_200,
    "instrument_name": PERP,
    "best_bid_price": 42500.0,
    "best_bid_amount": 10.0,
    "best_ask_price": 42500.5,
    "best_ask_amount": 20.0,
}


def frame(channel: str, data: Any) -> bytes:
    """A canonical notification (the recorder's bytes) of `data` on `channel`."""
    return PREFIX + channel.encode() + b'","data":' + orjson.dumps(data) + b"}}"


def run_child(module: str, case: str, *, timeout: float = 600, examples: bool = True) -> None:
    """`module._child(case)` in a child process (with `CODEC_EXAMPLES` when `examples`)."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    if examples:
        env.update({k: v for k, v in os.environ.items() if k == "CODEC_EXAMPLES"})
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", f"from {module} import _child; _child({case!r})"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{case}: exit {done.returncode}\n{done.stderr[-5000:]}"
