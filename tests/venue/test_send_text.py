"""A request's bytes leave without a pass of the scheduler (engine.venue.websocket `send_text`,
engine.venue.ratelimit `CreditBucket.acquire`): no other task runs between a request being made and
its write, when nobody else is sending and the credits are there; otherwise (another send in
progress, a waiter for credits ahead) it waits its turn as before. Every message still arrives
once, whole, in order; a cancelled caller sends nothing; a closed connection says so."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket
import wsproto
import wsproto.events as wse

from tradingd.engine.venue.ratelimit import CreditBucket
from tradingd.engine.venue.websocket import open_connection, send_text


class _Steps(trio.abc.Instrument):
    """Every task step the scheduler runs while installed."""

    def __init__(self) -> None:
        self.tasks: list[trio.lowlevel.Task] = []

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.tasks.append(task)


async def _server(got: list[str], *, task_status: trio.TaskStatus[int]) -> None:
    """A WebSocket server on loopback that keeps every text message a client sends."""

    async def handle(stream: trio.SocketStream) -> None:
        ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        parts: list[str] = []
        while True:
            data = await stream.receive_some(65_536)
            if not data:
                return
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, wse.Request):
                    await stream.send_all(ws.send(wse.AcceptConnection()))
                elif isinstance(event, wse.TextMessage):
                    parts.append(event.data)
                    if event.message_finished:
                        got.append("".join(parts))
                        parts.clear()
                elif isinstance(event, wse.CloseConnection):
                    await stream.send_all(ws.send(event.response()))
                    await stream.aclose()
                    return

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


@contextlib.asynccontextmanager
async def _connected(got: list[str], max_message_size: int = 1 << 20) -> AsyncIterator[Any]:
    """A connection of ours to `_server`, which collects what it is sent in `got`."""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_server, got)
        async with open_connection(
            f"ws://127.0.0.1:{port}/", max_message_size=max_message_size, message_queue_size=16
        ) as ws:
            yield ws
        nursery.cancel_scope.cancel()


async def _until(got: list[str], n: int) -> None:
    with trio.fail_after(10):
        while len(got) < n:
            await trio.sleep(0.01)


async def test_a_message_is_written_before_any_other_task_runs() -> None:
    got: list[str] = []
    async with _connected(got) as ws:
        await trio.testing.wait_all_tasks_blocked()
        steps = _Steps()
        at_write: list[int] = []
        stream: Any = ws._stream
        send_all = stream.send_all

        async def counted(data: bytes) -> None:
            at_write.append(len(steps.tasks))
            await send_all(data)

        stream.send_all = counted
        trio.lowlevel.add_instrument(steps)
        try:
            await send_text(ws, '{"order":1}')
        finally:
            trio.lowlevel.remove_instrument(steps)
            stream.send_all = send_all
        # trio-websocket's own send_message yields at its lock first: a step (ours) before it.
        assert at_write == [0]
        await _until(got, 1)
    assert got == ['{"order":1}']


async def test_messages_sent_while_another_send_writes_arrive_whole_and_in_order() -> None:
    """Many tasks send at once, large messages (the socket's buffer fills, so a write waits with
    the lock held): each message arrives once, whole, and one task's messages keep their order."""
    got: list[str] = []
    big = "x" * 300_000
    async with _connected(got, max_message_size=1 << 22) as ws:

        async def sender(k: int) -> None:
            for i in range(5):
                await send_text(ws, f"{k}:{i}:{big if i % 2 == 0 else ''}")

        async with trio.open_nursery() as senders:
            for k in range(4):
                senders.start_soon(sender, k)
        await _until(got, 20)
    assert len(got) == 20
    for k in range(4):
        mine = [m for m in got if m.startswith(f"{k}:")]
        assert [m.split(":")[1] for m in mine] == ["0", "1", "2", "3", "4"]
        assert all(m.endswith(big) == (int(m.split(":")[1]) % 2 == 0) for m in mine)


async def test_a_cancelled_caller_sends_nothing() -> None:
    got: list[str] = []
    async with _connected(got) as ws:
        with trio.CancelScope() as scope:
            scope.cancel()
            await send_text(ws, "not sent")
        assert scope.cancelled_caught
        await send_text(ws, "sent")
        await _until(got, 1)
        await trio.sleep(0.1)
    assert got == ["sent"]


async def test_a_closed_connection_refuses_as_send_message_does() -> None:
    got: list[str] = []
    async with _connected(got) as ws:
        await ws.aclose()
        with pytest.raises(trio_websocket.ConnectionClosed):
            await send_text(ws, "late")
    assert got == []


async def test_a_connection_without_the_lock_is_sent_to_by_send_message() -> None:
    class Plain:
        def __init__(self) -> None:
            self.sent: list[str] = []

        async def send_message(self, message: str) -> None:
            self.sent.append(message)

    plain = Plain()
    await send_text(plain, "a")  # type: ignore[arg-type]
    assert plain.sent == ["a"]


# -- credits ----------------------------------------------------------------------------------
async def test_credits_there_are_taken_without_a_pass_of_the_scheduler() -> None:
    bucket = CreditBucket(10, 1)
    steps = _Steps()
    trio.lowlevel.add_instrument(steps)
    try:
        await bucket.acquire(3)
    finally:
        trio.lowlevel.remove_instrument(steps)
    assert steps.tasks == []
    assert bucket.available() == pytest.approx(7, abs=0.01)


async def test_a_cancelled_caller_takes_no_credits() -> None:
    bucket = CreditBucket(10, 0.001)
    with trio.CancelScope() as scope:
        scope.cancel()
        await bucket.acquire(3)
    assert scope.cancelled_caught
    assert bucket.available() == pytest.approx(10)


async def test_a_request_waits_behind_one_already_waiting_for_credits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Arrival order holds: a big request waiting for its credits is not overtaken by a small one
    that would fit the pool now."""
    bucket = CreditBucket(10, 1)
    await bucket.acquire(8)  # 2 left
    order: list[str] = []

    async def take(name: str, cost: float) -> None:
        await bucket.acquire(cost)
        order.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(take, "big", 6)  # waits about 4 s
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(take, "small", 1)  # 2 credits are there, but the big one came first
        await trio.testing.wait_all_tasks_blocked()
        assert order == []
    assert order == ["big", "small"]


async def test_a_peer_gone_mid_connection_is_connection_closed_not_a_stream_error() -> None:
    """The peer resets the connection: a send then raises trio-websocket's `ConnectionClosed`
    (what the request path maps to "not sent"), never trio's own stream error, as `send_message`."""
    import socket as _socket
    import struct

    async def handle(stream: trio.SocketStream) -> None:
        ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        while True:
            ws.receive_data(await stream.receive_some(65_536))
            if any(isinstance(e, wse.Request) for e in ws.events()):
                await stream.send_all(ws.send(wse.AcceptConnection()))
                break
        await trio.sleep(0.1)
        # An abortive close (RST): the client's next writes fail.
        stream.socket.setsockopt(_socket.SOL_SOCKET, _socket.SO_LINGER, struct.pack("ii", 1, 0))
        stream.socket.close()

    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, handle, listeners)
        async with open_connection(
            f"ws://127.0.0.1:{port}/", max_message_size=1 << 20, message_queue_size=16
        ) as ws:
            await trio.sleep(0.3)

            async def keep_sending() -> None:
                while True:
                    await send_text(ws, "x" * 1000)
                    await trio.sleep(0.01)

            with trio.fail_after(10), pytest.raises(trio_websocket.ConnectionClosed):
                await keep_sending()
        nursery.cancel_scope.cancel()
