"""The venue sessions' connection hands messages over in batches (engine.venue.websocket), and the
session's receive loop takes them without a checkpoint each: every frame still arrives, once, in
order; a full queue still holds the reader back; a connection without the batched hand-over (a
stand-in, or another trio-websocket) is read one message at a time as before."""

from __future__ import annotations

import struct

import trio
import wsproto
import wsproto.events as wse

from tests.support.frame_sessions import _session, _Ws
from tradingd.engine.venue import session as session_module
from tradingd.engine.venue.websocket import _Handover, batched, open_connection, take_nowait


def _text_frame(payload: bytes) -> bytes:
    """One unmasked text frame (RFC 6455 §5.2), as a server sends it."""
    n = len(payload)
    head = bytes((0x81, n)) if n < 126 else struct.pack("!BBH", 0x81, 126, n)
    return head + payload


def _frames(n: int) -> list[bytes]:
    return [b'{"n":%d,"pad":"%s"}' % (i, b"x" * (i % 300)) for i in range(n)]


async def _serve(frames: list[bytes], *, task_status: trio.TaskStatus[int]) -> None:
    """A WebSocket server on loopback: accepts one client, then sends `frames` in one write."""

    async def handle(stream: trio.SocketStream) -> None:
        ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        accepted = False
        while not accepted:
            ws.receive_data(await stream.receive_some(65_536))
            for event in ws.events():
                if isinstance(event, wse.Request):
                    await stream.send_all(ws.send(wse.AcceptConnection()))
                    accepted = True
        await stream.send_all(b"".join(_text_frame(f) for f in frames))
        while True:  # until the client closes: its close answered, the stream closed
            data = await stream.receive_some(65_536)
            if not data:
                return
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, wse.CloseConnection):
                    await stream.send_all(ws.send(event.response()))
                    await stream.aclose()
                    return

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


def _counting(ws: object) -> list[int]:
    """Count the `get_message` calls made on `ws` (each one a checkpoint)."""
    calls = [0]
    get = ws.get_message  # type: ignore[attr-defined]

    async def get_message() -> object:
        calls[0] += 1
        return await get()

    ws.get_message = get_message  # type: ignore[attr-defined]
    return calls


async def _receive_all(port: int, n: int, queue: int = 4096) -> tuple[list[bytes | str], int]:
    """Every message the session's receive loop hands its `_handle`, until `n` came; and how
    many times it waited on `get_message`."""
    seen: list[bytes | str] = []
    got_all = trio.Event()

    def handle(message: bytes | str) -> None:
        seen.append(message)
        if len(seen) == n:
            got_all.set()

    session = _session(handle)
    url = f"ws://127.0.0.1:{port}/"
    async with open_connection(url, max_message_size=1 << 20, message_queue_size=queue) as ws:
        calls = _counting(ws)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session._receive, ws)
            with trio.fail_after(20):
                await got_all.wait()
            await trio.sleep(0.05)  # nothing more (no frame handed over twice)
            nursery.cancel_scope.cancel()
    return seen, calls[0]


async def test_the_pinned_trio_websocket_is_handed_over_in_batches() -> None:
    """The connection trio-websocket opens has the queue the batched hand-over swaps: without
    it (a trio-websocket upgrade), the session would silently fall back to a checkpoint per frame."""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_serve, [b"{}"])
        url = f"ws://127.0.0.1:{port}/"
        async with open_connection(url, max_message_size=1 << 20, message_queue_size=16) as ws:
            assert isinstance(getattr(ws, "_send_channel", None), _Handover)
            assert take_nowait(ws) is not None
            assert batched(ws)  # twice is harmless
            assert await ws.get_message() == "{}"
        nursery.cancel_scope.cancel()


async def test_every_frame_arrives_once_in_order_with_few_checkpoints() -> None:
    """5,000 frames sent in one write reach the handler exactly once each, in order; the loop
    waited on the connection about once per `_BATCH` frames, not once per frame."""
    frames = _frames(5000)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_serve, frames)
        seen, waits = await _receive_all(port, len(frames))
        nursery.cancel_scope.cancel()
    assert seen == [f.decode() for f in frames]
    assert waits <= len(frames) // session_module._BATCH * 2, waits


async def test_a_full_queue_holds_the_reader_back_and_loses_nothing() -> None:
    """A queue of 8 messages and a reader with 2,000 to hand over: the reader waits for room (as
    trio-websocket does; TCP then pushes back on the venue), never drops, never reorders."""
    frames = _frames(2000)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_serve, frames)
        url = f"ws://127.0.0.1:{port}/"
        async with open_connection(url, max_message_size=1 << 20, message_queue_size=8) as ws:
            await trio.sleep(0.3)  # nobody reads: the reader fills the queue, then waits
            assert ws._recv_channel.statistics().current_buffer_used == 8
            got = [await ws.get_message() for _ in frames]
        nursery.cancel_scope.cancel()
    assert got == [f.decode() for f in frames]


async def test_a_connection_without_the_queue_is_read_one_message_at_a_time() -> None:
    """A stand-in connection (only `get_message`) gets no hand-over and the loop still reads
    every frame from it, in order."""
    plain = _Ws([b"a", b"b", b"c"])
    assert not batched(plain) and take_nowait(plain) is None
    seen: list[bytes | str] = []
    session = _session(seen.append)
    with trio.move_on_after(0.3):
        await session._receive(plain)  # type: ignore[arg-type]
    assert seen == [b"a", b"b", b"c"]


def test_the_declared_trio_websocket_floor_takes_every_keyword_we_pass() -> None:
    """`receive_buffer_size` came with trio-websocket 0.12.0: a floor that admitted 0.11 let an
    install keep a trio-websocket whose `open_websocket_url` refuses it, and every connect failed
    with a TypeError (issue 17's review)."""
    import inspect
    import re
    import tomllib
    from pathlib import Path

    from packaging.version import Version

    from tradingd.engine.venue import websocket

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    spec = next(d for d in pyproject["project"]["dependencies"] if d.startswith("trio-websocket"))
    floor = re.search(r">=\s*([0-9.]+)", spec)
    assert floor is not None, spec
    if "receive_buffer_size=" in inspect.getsource(websocket):
        assert Version(floor.group(1)) >= Version("0.12"), spec
