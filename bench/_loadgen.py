"""A Deribit load generator for the live benchmarks that is not itself the bottleneck.

The venue simulator (hypercorn, an ASGI app, a memory channel and an `await send` per frame)
caps a burst near 10k frames/s: a client measured against it measures the simulator. Here the
protocol is still the simulator's (`DeribitSimulator`, one per connection, seeded: the handshake,
instruments, subscriptions, orders and their answers are its own), but the transport is a bare
socket and wsproto, and the market frames of a burst are generated, routed to the connection's
subscriptions and encoded as WebSocket frames BEFORE the burst: the burst itself is one
`send_all` of a prepared buffer, sent as fast as the client reads it.

A client drives it in band, with JSON-RPC requests of its own (answered like any other):

- `bench/prepare` `{"steps": n}`: n market steps of the simulator, what this connection
  subscribed to of them, encoded. Answer `{"frames": f, "bytes": b}`.
- `bench/burst`: the answer (`burst_answer`), then the prepared frames, back to back.
- `bench/stats`: the last burst's figures on this side (its wall and CPU seconds).
- `bench/probe` `{"instrument": name, "count": n, "gap_ms": g}`: tick-to-order probes, one at a
  time: market steps until one carries a ticker of `instrument` this connection follows; those
  frames sent, the time taken just BEFORE the write that hands them to the kernel; then the order
  whose label is `lat-<that ticker's timestamp in ms>`, stamped with the kernel's own receive
  time of the bytes that carry it (`SO_TIMESTAMPNS`: on loopback, taken inside the client's send
  call, when its bytes left its socket); then `g` ms of quiet. Answered at once.
- `bench/latency`: waits until the probes are done, then `{"samples_us": [...], "read_us": [...],
  "probes": n}`: `read_us` is the same probes stamped when this process read the order instead.

Why these two stamps (both on CLOCK_REALTIME, the kernel's receive-timestamp clock): a stamp
taken after the write can be late, since on loopback the write itself delivers the frame and
wakes the client, which may run (and answer) before the write returns; it made the figures
under load too LOW. A stamp taken when this process reads the order adds this process's own
wake-up (an idle vCPU of a VM takes hundreds of microseconds to wake) to the client's figure.
Deribit signs no order (a WebSocket session authenticates once): no signing is inside the figure.

    python bench/_loadgen.py --port 18770      # prints "listening <port>", serves until killed
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import orjson
import trio
import wsproto
import wsproto.events as wse

from tradingd.engine.logs.setup import configure_logging
from tradingd.simulators.deribit.simulator import DeribitSimulator

__all__ = ["LoadGenerator", "burst_answer", "encode_text", "main"]

_NOTIFICATION = b'{"jsonrpc":"2.0","method":"subscription"'
_LABEL = '"label":"lat-'
# Linux's SO_TIMESTAMPNS (= SCM_TIMESTAMPNS; the `socket` module does not name it): each read
# carries the kernel's receive time of its bytes, a struct timespec on CLOCK_REALTIME.
_SO_TIMESTAMPNS = 35
_ANCILLARY = socket.CMSG_SPACE(16)


def kernel_stamp_ns(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The kernel's receive time (ns, CLOCK_REALTIME) in a `recvmsg`'s ancillary data, or None."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return int(sec) * 1_000_000_000 + int(nsec)
    return None


def encode_text(payload: bytes) -> bytes:
    """`payload` as one unmasked WebSocket text frame (RFC 6455 §5.2: a server's frames)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 65_536:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + payload


def answer(rid: Any, result: Any) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": rid, "result": result})


def burst_answer(rid: Any, frames: int) -> bytes:
    """The answer to `bench/burst` (a client counting bytes knows its length in advance)."""
    return answer(rid, {"frames": frames})


class _Probes:
    """The tick-to-order probes of one connection (module docstring)."""

    def __init__(self) -> None:
        self.sent_at: dict[int, int] = {}  # ticker timestamp (ms) -> just before its frame's write
        self.arrived_at: dict[int, int] = {}  # the same key -> the kernel's receive time of its order
        self.read_at: dict[int, int] = {}  # the same key -> when this process read its order
        self.waiting: tuple[int, trio.Event] | None = None
        self.done = trio.Event()
        self.count = 0

    def samples_us(self, arrived: dict[int, int] | None = None) -> list[float]:
        """Tick-to-order in us, sorted: from `sent_at` to `arrived` (by default `arrived_at`)."""
        at = self.arrived_at if arrived is None else arrived
        return sorted((at[k] - sent) / 1e3 for k, sent in self.sent_at.items() if k in at)


class _Connection:
    """One client: wsproto for its handshake and its (masked) frames, the simulator's protocol
    for what they ask, our own encoder for what goes out."""

    def __init__(self, stream: trio.SocketStream, sim: DeribitSimulator, peer_id: int) -> None:
        self.stream = stream
        self.sim = sim
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self.lock = trio.Lock()  # one `send_all` at a time (answers, bursts, probes)
        self.out_send, self.out_receive = trio.open_memory_channel[bytes](1_000_000)
        self.peer = sim.new_peer(peer_id, self.out_send, "/ws/api/v2")
        self.blob = b""
        self.blob_frames = 0
        self.last_burst: dict[str, Any] = {}
        # Set once the last burst's send_all has returned: a client that has read every frame
        # may ask for the stats before this task has resumed to write them down.
        self.burst_done = trio.Event()
        self.burst_done.set()
        self.probes: _Probes | None = None

    async def serve(self) -> None:
        stream = self.stream
        if not await self._handshake():
            return
        self.sim.sessions[self.peer.id] = self.peer
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                nursery.start_soon(self._writer)
                text: list[str] = []
                sock = stream.socket
                while True:
                    try:
                        data, ancillary, _, _ = await sock.recvmsg(65_536, _ANCILLARY)
                    except OSError:
                        break  # reset by the client
                    read = time.time_ns()
                    if not data:
                        break
                    # The kernel's time when it is there (always, on Linux), this read's otherwise.
                    now = (kernel_stamp_ns(ancillary) or read, read)
                    self.ws.receive_data(data)
                    for event in self.ws.events():
                        if isinstance(event, wse.TextMessage):
                            text.append(event.data)
                            if event.message_finished:
                                message = "".join(text)
                                text.clear()
                                await self._on_text(message, now)
                        elif isinstance(event, wse.Ping):
                            await self._send_raw(self.ws.send(event.response()))
                        elif isinstance(event, wse.CloseConnection):
                            await self._send_raw(self.ws.send(event.response()))
                            nursery.cancel_scope.cancel()
                            return
                    if self.peer.done.is_set():  # the simulator closed the session
                        break
                nursery.cancel_scope.cancel()
        finally:
            self.sim.sessions.pop(self.peer.id, None)

    async def _handshake(self) -> bool:
        while True:
            data = await self.stream.receive_some(65_536)
            if not data:
                return False
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, wse.Request):
                    await self.stream.send_all(self.ws.send(wse.AcceptConnection()))
                    return True

    async def _send_raw(self, data: bytes) -> None:
        async with self.lock:
            await self.stream.send_all(data)

    async def _writer(self) -> None:
        """The simulator's answers and notifications, as many as are queued in one send."""
        receive = self.out_receive
        while True:
            frames = [await receive.receive()]
            while True:
                try:
                    frames.append(receive.receive_nowait())
                except trio.WouldBlock:
                    break
            await self._send_raw(b"".join(encode_text(f) for f in frames))

    async def _flush_locked(self, extra: bytes = b"") -> None:
        """What the simulator queued, then `extra`, in one send (the lock held)."""
        frames = []
        while True:
            try:
                frames.append(encode_text(self.out_receive.receive_nowait()))
            except trio.WouldBlock:
                break
        data = b"".join(frames) + extra
        if data:
            await self.stream.send_all(data)

    async def _on_text(self, message: str, now: tuple[int, int]) -> None:
        probes = self.probes
        if probes is not None and _LABEL in message:
            at = message.index(_LABEL) + len(_LABEL)
            end = message.find('"', at)
            if end > at and message[at:end].isdigit():
                key = int(message[at:end])
                probes.arrived_at.setdefault(key, now[0])
                probes.read_at.setdefault(key, now[1])
                if probes.waiting is not None and probes.waiting[0] == key:
                    probes.waiting[1].set()
        if '"method":"bench/' not in message:
            await self.sim.on_text(self.peer, message)
            return
        msg = orjson.loads(message)
        rid, method, params = msg.get("id"), msg["method"], msg.get("params") or {}
        if method == "bench/prepare":
            self._prepare(int(params["steps"]))
            self.sim.send(self.peer, answer(rid, {"frames": self.blob_frames, "bytes": len(self.blob)}))
        elif method == "bench/burst":
            self.burst_done = trio.Event()
            self.nursery.start_soon(self._burst, rid)
        elif method == "bench/stats":
            self.nursery.start_soon(self._stats, rid)
        elif method == "bench/probe":
            self.probes = _Probes()
            self.nursery.start_soon(
                self._probe,
                str(params["instrument"]),
                int(params["count"]),
                float(params.get("gap_ms", 5.0)) / 1000,
            )
            self.sim.send(self.peer, answer(rid, {"started": True}))
        elif method == "bench/latency":
            self.nursery.start_soon(self._latency, rid)
        else:
            self.sim.send(self.peer, answer(rid, None))

    def _step(self) -> list[bytes]:
        """One market step of the simulator: what it publishes of it to this connection."""
        sim = self.sim
        now = sim.clock()
        out: list[bytes] = []
        peer = self.peer
        for frame in sim.market_step():
            sim.on_market_frame(frame, now)
            out.extend(f for p, f in sim.deliveries(frame) if p is peer)
        return out

    def _prepare(self, steps: int) -> None:
        frames = [f for _ in range(steps) for f in self._step()]
        self.blob = b"".join(encode_text(f) for f in frames)
        self.blob_frames = len(frames)

    async def _burst(self, rid: Any) -> None:
        blob, self.blob = self.blob, b""
        async with self.lock:
            await self._flush_locked(encode_text(burst_answer(rid, self.blob_frames)))
            cpu0, t0 = time.process_time(), time.perf_counter()
            await self.stream.send_all(blob)
            t1, cpu1 = time.perf_counter(), time.process_time()
        self.last_burst = {
            "frames": self.blob_frames,
            "bytes": len(blob),
            "wall_s": t1 - t0,
            "cpu_s": cpu1 - cpu0,
        }
        self.burst_done.set()

    async def _stats(self, rid: Any) -> None:
        await self.burst_done.wait()
        self.sim.send(self.peer, answer(rid, self.last_burst))

    async def _probe(self, instrument: str, count: int, gap_s: float) -> None:
        probes = self.probes
        assert probes is not None
        head = _NOTIFICATION + b',"params":{"channel":"ticker.' + instrument.encode() + b"."
        try:
            while probes.count < count:
                frames: list[bytes] = []
                key = None
                for _ in range(1000):
                    frames += self._step()
                    tickers = [f for f in frames if f.startswith(head)]
                    if tickers:
                        key = int(orjson.loads(tickers[-1])["params"]["data"]["timestamp"])
                        break
                if key is None:
                    raise RuntimeError(f"no ticker of {instrument} followed by this connection")
                waiting = trio.Event()
                probes.waiting = (key, waiting)
                async with self.lock:
                    await self._flush_locked()
                    await self._stamped_send(b"".join(encode_text(f) for f in frames), probes, key)
                probes.count += 1
                with trio.move_on_after(0.2):
                    await waiting.wait()
                probes.waiting = None
                await trio.sleep(gap_s)
        finally:
            probes.done.set()

    async def _stamped_send(self, data: bytes, probes: _Probes, key: int) -> None:
        """Send `data` (the lock held), `key` stamped just before the kernel takes it (module
        docstring: a stamp after the write may come after the client's answer). A plain write,
        as trio's `send_all` yields to the scheduler after its write."""
        probes.sent_at[key] = time.time_ns()
        try:
            sent = os.write(self.stream.socket.fileno(), data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):  # the socket's buffer was full: the rest as usual (its figure is late)
            await self.stream.send_all(data[sent:])

    async def _latency(self, rid: Any) -> None:
        probes = self.probes
        if probes is not None:
            await probes.done.wait()
        self.sim.send(
            self.peer,
            answer(
                rid,
                {
                    "probes": 0 if probes is None else probes.count,
                    "samples_us": [] if probes is None else probes.samples_us(),
                    "read_us": [] if probes is None else probes.samples_us(probes.read_at),
                },
            ),
        )


class LoadGenerator:
    """Serves each connection with a simulator of its own (`make_sim`, seeded: every client
    sees the same market)."""

    def __init__(self, make_sim: Callable[[], DeribitSimulator]) -> None:
        self.make_sim = make_sim
        self.connections = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        stream.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, True)
        stream.setsockopt(trio.socket.SOL_SOCKET, _SO_TIMESTAMPNS, True)  # the orders' arrival (`_Probes`)
        self.connections += 1
        conn = _Connection(stream, self.make_sim(), self.connections)
        try:
            await conn.serve()
        except (trio.BrokenResourceError, trio.ClosedResourceError, wsproto.utilities.LocalProtocolError):
            pass  # the client went away
        finally:
            await stream.aclose()

    async def serve(self, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        # Linux takes receive times only while some socket asks for them, and starts doing so a
        # moment after the first asks (deferred work): the listener asks from the start, so the
        # first probes are stamped too. (Unstamped bytes get the read's time: later, never earlier.)
        listeners[0].socket.setsockopt(trio.socket.SOL_SOCKET, _SO_TIMESTAMPNS, True)
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self.handle, listeners)


_DAY_NS = 86_400 * 10**9


class _StartAt:
    """A clock whose first reading is `start` (the market's start, read once by the simulator's
    constructor), then the wall clock (answers, and the login's 60 s window)."""

    def __init__(self, start: int) -> None:
        self.start: int | None = start

    def __call__(self) -> int:
        start, self.start = self.start, None
        return time.time_ns() if start is None else start


def bench_simulator(seed: int = 7, start_ns: int | None = None) -> DeribitSimulator:
    """The simulator every connection gets: the same market for each (seeded, and started at
    `start_ns`, by default today's midnight UTC: the market's frames depend on its start), and no
    order limits a benchmark would hit."""
    start = time.time_ns() // _DAY_NS * _DAY_NS if start_ns is None else start_ns
    return DeribitSimulator(
        seed=seed, matching_rate=1e9, matching_burst=1e9, outbox=1_000_000, clock=_StartAt(start)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="0: a free port")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    configure_logging("warning", "json")
    start = time.time_ns() // _DAY_NS * _DAY_NS  # one market for every client of this run
    gen = LoadGenerator(lambda: bench_simulator(args.seed, start))

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(gen.serve, args.port)
            print(f"listening {port}", flush=True)

    trio.run(run)


if __name__ == "__main__":
    main()
