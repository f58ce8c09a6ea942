"""The venue sessions' WebSocket connection: trio-websocket, with its messages handed over in
batches instead of one scheduler pass each.

trio-websocket's reader task parses what one read of the socket holds and hands each message to
the connection's queue with `await channel.send(message)`: a checkpoint per message, so the
reader, the session reading the queue, and whatever the session wakes (the strategies) each run
once per frame, one pass of trio's scheduler (an epoll call, task switches) per frame. Measured
on Deribit's frames (bench/bench_deribit_live.py) that was most of the client's cost beyond
decoding.

`open_connection` opens the same trio-websocket connection and swaps the reader's end of the
queue for `_Handover`, which queues without a checkpoint while there is room (and waits, as
before, when the queue is full: the reader still stops reading the socket and TCP pushes back).
The reader then parses a whole read (`receive_buffer_size`) before it yields, and `take_nowait`
lets the session take everything queued without a checkpoint per message. Order is untouched:
one queue, first in first out.

Both reach into two attributes of trio-websocket's connection (`_send_channel`,
`_recv_channel`; the version is pinned below 0.13 in pyproject.toml). Where they are missing
(another version, or a test's stand-in connection) nothing is swapped and `take_nowait` is None:
messages then come one `get_message` at a time, as trio-websocket gives them
(tests/venue/test_websocket.py checks the pinned version has them).

`send_text` sends as `send_message` does, without its pass of the scheduler before the bytes
leave: trio-websocket takes its send lock with `acquire`, which yields even when the lock is free,
so an order waited one scheduler pass (every other ready task's step) between being encoded and
being written. When the lock is free it is taken at once and the write is the same; when it is
held (another send is writing), or the attributes are missing, `send_message` is called as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import trio
import trio_websocket
import wsproto.events

__all__ = ["RECEIVE_BUFFER", "batched", "open_connection", "send_text", "take_nowait"]

# Bytes per read of the socket: about a hundred market frames of a few hundred bytes, parsed
# before the reader yields (trio-websocket reads 4 KiB by default: a few frames per pass).
RECEIVE_BUFFER: Final = 64 * 1024


class _Handover:
    """The reader's end of a connection's message queue (module docstring): `send` queues at once
    while there is room, and waits for room otherwise; closing closes the queue as before."""

    __slots__ = ("_channel",)

    def __init__(self, channel: trio.MemorySendChannel[Any]) -> None:
        self._channel = channel

    async def send(self, message: Any) -> None:
        try:
            self._channel.send_nowait(message)
        except trio.WouldBlock:
            await self._channel.send(message)  # full: wait for the session (backpressure)

    async def aclose(self) -> None:
        await self._channel.aclose()

    def close(self) -> None:
        self._channel.close()


def batched(ws: Any) -> bool:
    """Swap `ws`'s queue hand-over for `_Handover` (module docstring); False when `ws` has no
    such queue (nothing is changed)."""
    channel = getattr(ws, "_send_channel", None)
    if isinstance(channel, _Handover):
        return True
    if not isinstance(channel, trio.MemorySendChannel) or take_nowait(ws) is None:
        return False
    ws._send_channel = _Handover(channel)
    return True


def take_nowait(ws: Any) -> Callable[[], Any] | None:
    """The next message `ws` has queued, without waiting or a checkpoint (`trio.WouldBlock`
    when none is; `trio.EndOfChannel` or `trio.ClosedResourceError` once the connection is
    closed: its `get_message` then says why). None for a connection without such a queue."""
    channel = getattr(ws, "_recv_channel", None)
    if not isinstance(channel, trio.MemoryReceiveChannel):
        return None
    receive: Callable[[], Any] = channel.receive_nowait
    return receive


async def send_text(ws: trio_websocket.WebSocketConnection, message: str) -> None:
    """`ws.send_message(message)` (the same errors: `ConnectionClosed` once the connection is
    closed or breaks), without a scheduler pass before the write when nobody else is sending
    (module docstring). A caller cancelled by now sends nothing, as with `send_message`."""
    lock = getattr(ws, "_stream_lock", None)
    proto = getattr(ws, "_wsproto", None)
    stream = getattr(ws, "_stream", None)
    if not isinstance(lock, trio.StrictFIFOLock) or proto is None or stream is None or lock.locked():
        await ws.send_message(message)
        return
    # What trio-websocket's `send_message` and `_send` do, in their order, but `acquire_nowait`.
    if ws._close_reason:
        raise trio_websocket.ConnectionClosed(ws._close_reason)
    await trio.lowlevel.checkpoint_if_cancelled()
    data = proto.send(wsproto.events.TextMessage(data=message))
    lock.acquire_nowait()  # free (checked above), and nothing ran since
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        await ws._abort_web_socket()
        assert ws._close_reason is not None
        raise trio_websocket.ConnectionClosed(ws._close_reason) from None
    finally:
        lock.release()


@contextlib.asynccontextmanager
async def open_connection(
    url: str,
    *,
    max_message_size: int,
    message_queue_size: int,
    receive_buffer_size: int = RECEIVE_BUFFER,
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """`trio_websocket.open_websocket_url(url, ...)`, its messages handed over in batches."""
    async with trio_websocket.open_websocket_url(
        url,
        max_message_size=max_message_size,
        message_queue_size=message_queue_size,
        receive_buffer_size=receive_buffer_size,
    ) as ws:
        batched(ws)
        yield ws
