"""The live benchmark's load generator (bench/_loadgen.py) does what its figures rely on: it answers
the handshake and the requests a client makes, sends exactly the frames it prepared (those of the
channels subscribed, nothing else), and stamps each tick-to-order probe once, never negative."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio_websocket
import wsproto.events as wse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "bench"))
from _loadgen import LoadGenerator, bench_simulator, burst_answer, encode_text, kernel_stamp_ns

PERP = "BTC-PERPETUAL"
NOTIFICATION = '{"jsonrpc":"2.0","method":"subscription"'


class _Client:
    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self.rid = 0
        self.notes: list[str] = []

    async def send(self, method: str, params: dict[str, Any] | None = None) -> int:
        self.rid += 1
        message = {"jsonrpc": "2.0", "id": self.rid, "method": method, "params": params or {}}
        await self.ws.send_message(orjson.dumps(message).decode())
        return self.rid

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        rid = await self.send(method, params)
        while True:
            message = str(await self.ws.get_message())
            if message.startswith(NOTIFICATION):
                self.notes.append(message)
                continue
            answer = orjson.loads(message)
            if answer.get("id") == rid:
                assert "error" not in answer, answer
                return answer["result"]


@asynccontextmanager
async def _connected() -> AsyncIterator[_Client]:
    gen = LoadGenerator(lambda: bench_simulator(7, 1_780_000_000_000_000_000))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(gen.serve, 0)
        async with trio_websocket.open_websocket_url(f"ws://127.0.0.1:{port}/ws/api/v2") as ws:
            yield _Client(ws)
        nursery.cancel_scope.cancel()


async def test_a_burst_is_exactly_the_prepared_frames_of_the_subscribed_channels() -> None:
    async with _connected() as client:
        names = [
            i["instrument_name"] for i in await client.call("public/get_instruments", {"currency": "BTC"})
        ]
        assert PERP in names
        channels = {f"ticker.{PERP}.100ms", f"book.{PERP}.100ms"}
        assert set(await client.call("public/subscribe", {"channels": sorted(channels)})) == channels
        prepared = await client.call("bench/prepare", {"steps": 40})
        assert prepared["frames"] > 0
        rid = await client.send("bench/burst")
        assert await client.ws.get_message() == burst_answer(rid, prepared["frames"]).decode()
        burst = [str(await client.ws.get_message()) for _ in range(prepared["frames"])]
        assert all(m.startswith(NOTIFICATION) for m in burst)
        assert {orjson.loads(m)["params"]["channel"] for m in burst} == channels
        assert prepared["bytes"] == sum(len(encode_text(m.encode())) for m in burst)
        with trio.move_on_after(0.3) as quiet:
            await client.ws.get_message()  # nothing more
        assert quiet.cancelled_caught
        stats = await client.call("bench/stats")
        assert stats["frames"] == prepared["frames"] and stats["bytes"] == prepared["bytes"]


async def test_each_probe_is_stamped_once_from_its_ticker_to_its_order() -> None:
    """Three probes answered with an order labelled after the ticker: three samples, each the
    time from the ticker leaving to the order arriving (never negative)."""
    with trio.fail_after(60):
        await _probe_three()


async def _probe_three() -> None:
    async with _connected() as client:
        await client.call("public/subscribe", {"channels": [f"ticker.{PERP}.100ms"]})
        await client.call("bench/probe", {"instrument": PERP, "count": 3, "gap_ms": 1})
        # A probe's ticker may come before the probe request's answer (`call` keeps it aside).
        waiting = list(client.notes)
        client.notes.clear()
        answered = 0
        while answered < 3:
            message = waiting.pop(0) if waiting else str(await client.ws.get_message())
            if message.startswith(NOTIFICATION):
                ts = orjson.loads(message)["params"]["data"]["timestamp"]
                # Refused by the simulator (not logged in): the stamp is taken before it reads it.
                await client.send(
                    "private/buy", {"instrument_name": PERP, "amount": 10, "label": f"lat-{ts}"}
                )
                answered += 1
        result = await client.call("bench/latency")
        assert result["probes"] == 3 and len(result["samples_us"]) == 3
        assert all(0 < s < 5e6 for s in result["samples_us"])


async def test_a_probe_is_stamped_before_its_frame_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """On loopback the write itself delivers the ticker and wakes the client, which may answer
    before the write returns: the send stamp must be taken before the write, or the figure is
    too low (what made round 1's figures under load lower than at idle)."""
    import _loadgen

    stamped: list[int] = []  # at each probe's write: how many probes were stamped by then
    real_write = os.write
    made: list[_loadgen._Probes] = []

    def write(fd: int, data: bytes) -> int:
        if made:
            stamped.append(len(made[-1].sent_at))
        return real_write(fd, data)

    class Kept(_loadgen._Probes):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    monkeypatch.setattr(os, "write", write)  # the generator's stamped write (`_stamped_send`)
    monkeypatch.setattr(_loadgen, "_Probes", Kept)
    with trio.fail_after(60):
        async with _connected() as client:
            await client.call("public/subscribe", {"channels": [f"ticker.{PERP}.100ms"]})
            await client.call("bench/probe", {"instrument": PERP, "count": 2, "gap_ms": 1})
            await client.call("bench/latency")
    assert len(made) == 1 and len(made[0].sent_at) == 2
    assert stamped == [1, 2]  # each probe stamped before its write, never after


async def _kernel_stamps_taken() -> None:
    """Wait until Linux stamps received bytes (it starts a moment after a socket first asks,
    and stops once none asks): a loopback pair, one byte, read 20 ms later, until its stamp is
    the arrival's and not the read's."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS
        with socket.create_connection(server.getsockname()) as a:
            b, _ = server.accept()
            with b:
                b.setsockopt(socket.SOL_SOCKET, 35, 1)
                while True:
                    a.send(b"x")
                    await trio.sleep(0.02)
                    _, ancillary, _, _ = b.recvmsg(16, socket.CMSG_SPACE(16))
                    read = time.time_ns()
                    stamp = kernel_stamp_ns(ancillary)
                    if stamp is not None and read - stamp >= 15_000_000:
                        return


async def test_an_order_is_stamped_with_the_kernels_receive_time_not_the_read() -> None:
    """The arrival stamp is the kernel's receive time of the order's bytes: a generator slow to
    read them (here: its process busy 50 ms right after each order was written) does not lengthen
    the figure, while the time it read them (`read_us`) shows the delay. A client slow to answer
    (30 ms) is in the figure. Under heavy load Linux now and then takes the stamp only when the
    bytes are read (the figure is then the read's: later, never earlier), so of three probes one
    stamped on arrival is asked for (a stamp at the read, as before, never gives one)."""
    with trio.fail_after(60):
        async with _connected() as client:
            # Inside: the generator's listener asks for stamps all along (a last socket asking
            # closed would stop them, and restarting takes a moment).
            await _kernel_stamps_taken()
            await client.call("public/subscribe", {"channels": [f"ticker.{PERP}.100ms"]})
            await client.call("bench/probe", {"instrument": PERP, "count": 3, "gap_ms": 1})
            waiting = list(client.notes)
            answered = 0
            while answered < 3:
                message = waiting.pop(0) if waiting else str(await client.ws.get_message())
                if not message.startswith(NOTIFICATION):
                    continue
                ts = orjson.loads(message)["params"]["data"]["timestamp"]
                await trio.sleep(0.03)  # the client's own delay: inside the figure
                order = {
                    "jsonrpc": "2.0",
                    "id": 99,
                    "method": "private/buy",
                    "params": {"label": f"lat-{ts}"},
                }
                # Written without a checkpoint (trio-websocket's send would let the generator, in
                # this process, read it at once), then this process is kept busy: the generator
                # reads it 50 ms after the kernel took it.
                ws: Any = client.ws
                os.write(
                    ws._stream.socket.fileno(),
                    ws._wsproto.send(wse.Message(data=orjson.dumps(order).decode())),
                )
                time.sleep(0.05)  # noqa: ASYNC251 -- blocking on purpose: the generator must not run
                answered += 1
            result = await client.call("bench/latency")
    samples, reads = result["samples_us"], result["read_us"]
    assert len(samples) == len(reads) == 3 and all(s >= 30_000 for s in samples), result
    # Each probe's read comes at or after its stamp; one stamped on arrival is 50 ms before.
    assert sum(reads) - sum(samples) >= 50_000, result


def test_the_kernel_stamp_is_read_from_the_ancillary_data() -> None:
    import struct

    stamp = struct.pack("qq", 1_780_000_000, 123_456_789)
    assert kernel_stamp_ns([(socket.SOL_SOCKET, 35, stamp)]) == 1_780_000_000_123_456_789
    assert kernel_stamp_ns([(socket.SOL_SOCKET, 29, stamp)]) is None
    assert kernel_stamp_ns([]) is None
