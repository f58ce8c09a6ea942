"""A loopback HTTP server that plays the webhooks (Slack, Discord, Telegram, a JSON endpoint):
trio's `serve_tcp` with h11 (httpx's own HTTP/1.1 parser), on 127.0.0.1 port 0. It records every
request (before answering it) and answers each path as the test scripts it (`Reply`): a status,
headers and a body, or never (`hang`). `refused_url()` is a port nobody listens on."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any

import attrs
import h11
import orjson
import trio

__all__ = ["Received", "Reply", "WebhookServer", "refused_url"]


@attrs.frozen
class Reply:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b"ok"
    hang: bool = False  # never answer (the connection stays open)
    echo_path: bool = False  # the body is the request's path (a server quoting the secret back)


@attrs.frozen
class Received:
    path: str  # with the query
    headers: dict[str, str]
    body: bytes
    at: float  # trio time

    def json(self) -> Any:
        return orjson.loads(self.body)


class WebhookServer:
    def __init__(self) -> None:
        self.received: list[Received] = []
        # path (without the query) -> the replies in order; the last one repeats.
        self.replies: dict[str, list[Reply]] = {}
        self.base = ""

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        task_status.started(self.base)
        await trio.serve_listeners(self._connection, listeners)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path.split("?")[0] == path]

    async def until(self, predicate: Callable[[], bool], within: float = 10.0, what: str = "") -> None:
        with trio.move_on_after(within):
            while not predicate():
                await trio.sleep(0.01)
            return
        raise AssertionError(f"not within {within} s: {what} (received: {[r.path for r in self.received]})")

    def _reply_for(self, path: str) -> Reply:
        queue = self.replies.get(path.split("?")[0])
        if not queue:
            return Reply()
        return queue.pop(0) if len(queue) > 1 else queue[0]

    async def _connection(self, stream: trio.SocketStream) -> None:
        # The client may go away (its timeout, the notifier's stop): not the server's fault.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            await self._exchange(stream)

    async def _exchange(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                request: h11.Request | None = None
                body = b""
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(65536)
                        if not data:
                            return
                        conn.receive_data(data)
                        continue
                    if isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        return
                assert request is not None
                path = request.target.decode()
                headers = {k.decode().lower(): v.decode() for k, v in request.headers}
                self.received.append(Received(path, headers, body, trio.current_time()))
                reply = self._reply_for(path)
                if reply.hang:
                    await trio.sleep_forever()
                content = path.encode() if reply.echo_path else reply.body
                head = [("content-length", str(len(content))), *reply.headers]
                await stream.send_all(conn.send(h11.Response(status_code=reply.status, headers=head)))
                await stream.send_all(conn.send(h11.Data(data=content)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()


def refused_url(path: str) -> str:
    """A URL on a loopback port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
