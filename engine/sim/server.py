"""What every venue simulator shares: an ASGI app (WebSocket and HTTP on one port, served by
hypercorn on trio) with a market stepped on the wall clock, and the same test switches.

`SimulatorServer` is the base of the Deribit, Polymarket and Derive simulators. A venue
simulator provides its protocol (hooks below); the base provides:

- WebSocket peers: accepted on the venue's paths (`ws_paths`), each with a bounded outbox
  drained by a writer task (a client too slow to keep up is disconnected, as venues do), a
  reader task handing each text frame to `on_text`, and the venue's own per-peer tasks
  (heartbeats); `close(peer, reason)` sends what was already queued, then the close frame.
- The market: `run` calls `step` every `step_s`; `step` takes the frames of one market step
  (`market_step`), lets the venue fold each into its own state (`on_market_frame`: books,
  matching of resting orders) and publishes it to the peers `deliveries` names.
- Fault switches, the same on every venue (`POST /_sim/faults` with a JSON object, or
  `apply_faults` in tests): `drop` (close every connection), `stall_s` (send nothing for that
  long, heartbeats included), `gap` (the next change of an instrument's book, one a peer
  follows, is lost: `"*"` any; with no book subscribed it waits, and its answer says so),
  `reject` (`{"count": n, "code": c, "message": m}`: the next orders are refused so),
  `rate_limit` (the next n requests are refused for rate), `garbage` (n malformed frames to
  every peer, the venue's kinds in turn: n frames, never more), `frames` / `frames_b64` (these
  exact frames, as text / as binary messages from base64, once to every peer: hostile frames a
  client must survive). The venue applies `gap`, `reject` and `rate_limit` where its protocol
  has them.
  A venue adds its own switches (`switches`); a body that is not a JSON object, a switch the
  venue does not have, or a value of the wrong kind is refused with 400 and one line naming it
  (`check_switches`), and nothing of that body is applied.
- Benchmarks: `POST /_sim/burst` (`{"prepare": steps}`, then `{}` to send them as fast as the
  peers take them, then `{"resume": true}`), `/_sim/latency` (`{"probe": instrument}`: when
  each probe frame left, by `probe_key`, and when orders arrived, by `arrived_at`, on the
  monotonic clock every process of the machine shares), `/_sim/state` (the venue's sessions and
  orders, and under `faults` every switch set and not yet fired: `pending_faults`).

`serve(app, host=, port=)` runs one with hypercorn (port 0 picks a free port).
"""

from __future__ import annotations

import base64
import itertools
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, ClassVar, Generic, TypeVar

import attrs
import orjson
import structlog
import trio
import trio.lowlevel

from ..model.errors import DataError

__all__ = [
    "COUNT",
    "FLAG",
    "OBJECT",
    "SECONDS",
    "SHARED_SWITCHES",
    "TEXT",
    "PeerT",
    "Receive",
    "Scope",
    "Send",
    "SimFaults",
    "SimPeer",
    "SimulatorServer",
    "Switch",
    "check_switches",
    "require_server",
    "serve",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _Binary(bytes):
    """A frame the `frames_b64` switch sends as a binary WebSocket message, byte for byte
    (invalid UTF-8 included); every other frame goes as text."""


@attrs.define
class SimFaults:
    """What the simulator breaks on purpose. Each count is consumed as it is used."""

    stall_until: float = 0.0  # trio time: nothing is sent before it
    gap: set[str] = attrs.field(factory=set)  # instruments whose next book change is skipped
    reject: list[tuple[Any, str]] = attrs.field(factory=list)  # the next orders are refused so
    rate_limit: int = 0  # the next requests are refused for rate
    garbage: int = 0  # malformed frames to send to every peer
    frames: list[bytes] = attrs.field(factory=list)  # given frames to send once to every peer
    drops: int = 0  # connections dropped on request

    def stall(self, seconds: float) -> None:
        self.stall_until = trio.current_time() + seconds

    def take_gap(self, instrument: str) -> bool:
        """Whether this change of `instrument`'s book is to be lost (consumes the switch)."""
        if instrument in self.gap or "*" in self.gap:
            self.gap.discard(instrument)
            self.gap.discard("*")
            return True
        return False

    def take_reject(self) -> tuple[Any, str] | None:
        return self.reject.pop(0) if self.reject else None

    def take_rate_limit(self) -> bool:
        if self.rate_limit > 0:
            self.rate_limit -= 1
            return True
        return False


@attrs.define(eq=False)
class SimPeer:
    """One WebSocket client of the simulator (venues subclass it for their session state)."""

    id: int
    outbox: trio.MemorySendChannel[bytes]
    path: str = ""
    close_reason: str | None = None
    done: trio.Event = attrs.field(factory=trio.Event)


PeerT = TypeVar("PeerT", bound=SimPeer)


@attrs.frozen
class Switch:
    """What one fault switch takes: `what` says it in an error, `accepts` checks a value (null
    is accepted by every switch: it leaves the switch as it is or turns it off)."""

    what: str
    accepts: Callable[[Any], bool]


def _json(*kinds: type) -> Callable[[Any], bool]:
    # bool is an int in Python; JSON's true/false is no number
    return lambda v: isinstance(v, kinds) and (bool in kinds or not isinstance(v, bool))


def _texts(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _seconds(v: Any) -> bool:
    return _json(int, float)(v) and math.isfinite(v) and v >= 0


def _count(v: Any) -> bool:
    return _json(int)(v) and v >= 0


def _reject(v: Any) -> bool:
    """`{"count": n >= 1, "code": ..., "message": "..."}`, each optional."""
    if not isinstance(v, dict) or set(v) - {"count", "code", "message"}:
        return False
    count = v.get("count", 1)
    return _json(int)(count) and count >= 1 and isinstance(v.get("message", ""), str)


SECONDS = Switch("seconds (a finite number >= 0)", _seconds)
COUNT = Switch("a count (an integer >= 0)", _count)
FLAG = Switch("true or false", _json(bool))
TEXT = Switch("a string", _json(str))
OBJECT = Switch("an object", _json(dict))
SHARED_SWITCHES: dict[str, Switch] = {
    "drop": FLAG,
    "stall_s": SECONDS,
    "gap": TEXT,
    "reject": Switch('an object {"count": n >= 1, "code": ..., "message": "..."}', _reject),
    "rate_limit": COUNT,
    "garbage": COUNT,
    "frames": Switch("a list of strings", _texts),
    "frames_b64": Switch("a list of base64 strings", _texts),
}
_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def check_switches(spec: Any, switches: dict[str, Switch]) -> None:
    """Refuse (ValueError, one line) a `/_sim/faults` body that is not an object, names a
    switch the venue does not have, or gives one a value of the wrong kind; a typo must not
    pass as a switch applied."""
    if not isinstance(spec, dict):
        kind = _JSON_NAMES.get(type(spec), "a number")
        raise ValueError(f"the switches are a JSON object, not {kind}")
    unknown = sorted(str(key) for key in spec if key not in switches)
    if unknown:
        raise ValueError(f"unknown switch {', '.join(unknown)}; known: {', '.join(sorted(switches))}")
    for key, value in spec.items():
        if value is not None and not switches[key].accepts(value):
            raise ValueError(f"{key}: expected {switches[key].what}, got {value!r}")


class SimulatorServer(Generic[PeerT]):
    """The simulator base (module docstring). Subclasses set `venue`, `ws_paths` and implement
    the hooks (`new_peer` builds the venue's `SimPeer` subclass); `default_reject` is the
    (code, message) a `reject` switch uses by default; `switches` names every fault switch the
    venue takes (the shared ones and its own), so an unknown one is refused."""

    venue: ClassVar[str]
    ws_paths: ClassVar[tuple[str, ...]]
    default_reject: ClassVar[tuple[Any, str]] = ("rejected", "rejected by the simulator")
    switches: ClassVar[dict[str, Switch]] = SHARED_SWITCHES

    def __init__(
        self,
        *,
        step_s: float = 0.1,
        outbox: int = 10_000,
        clock: Callable[[], int] = time.time_ns,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.clock = clock
        self.step_s = step_s
        self.outbox_size = outbox
        self.log = (log or structlog.get_logger("tradingd.simulator")).bind(venue=self.venue)
        self.faults = SimFaults()
        self.sessions: dict[int, PeerT] = {}
        self._peer_ids = itertools.count(1)
        self.requests = 0
        self.method_counts: Counter[str] = Counter()  # requests by method or endpoint
        self._burst: list[bytes] = []
        self._paused = False
        self.probe: str | None = None
        self.sent_at: dict[Any, float] = {}
        self.arrived_at: dict[str, float] = {}

    # -- what a venue provides ---------------------------------------------------------------
    def market_step(self) -> list[bytes]:
        """The frames of one market step (not yet applied or sent)."""
        raise NotImplementedError

    def on_market_frame(self, frame: bytes, now: int) -> None:
        """Fold one market frame into the simulator's own state (books; fills of resting orders)."""
        raise NotImplementedError

    def deliveries(self, frame: bytes) -> Iterable[tuple[PeerT, bytes]]:
        """The peers a market frame goes to, each with the frame as that peer receives it (its
        channel name, or nothing at all for a book change lost to the `gap` switch)."""
        raise NotImplementedError

    async def on_text(self, peer: PeerT, text: str) -> None:
        """One frame from a WebSocket peer."""
        raise NotImplementedError

    async def handle_http(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes] | None:
        """An HTTP request outside `/_sim/`: (status, JSON body), or None for "no such path"."""
        return None

    def new_peer(self, peer_id: int, outbox: trio.MemorySendChannel[bytes], path: str) -> PeerT:
        raise NotImplementedError

    def peer_tasks(self, peer: PeerT) -> list[Callable[[], Awaitable[None]]]:
        """Per-peer tasks beside the reader and writer (heartbeats)."""
        return []

    def garbage_frames(self) -> list[bytes]:
        """The kinds of malformed frame the `garbage` switch sends, frames a client must survive:
        a switch of n sends n frames, taking these in turn."""
        return [b'{"truncated": ', b"\x00\xffnot json at all"]

    def probe_key(self, frame: bytes) -> Any:
        """For `/_sim/latency`: the key (e.g. the exchange timestamp) of a frame about the
        probed instrument `self.probe`, None for any other frame."""
        return None

    def state(self) -> dict[str, Any]:
        return {
            "sessions": [{"id": s.id, "path": s.path} for s in self.sessions.values()],
            "requests": self.requests,
        }

    def pending_faults(self) -> dict[str, Any]:
        """Every switch set and not yet fired (or still on), shared and the venue's own
        (`pending_venue_faults`): what `/_sim/state` shows under `faults`, so a switch that waits
        for something to act on (a `gap` with no book subscribed, a `reject` with no order) is
        seen waiting. An empty object when nothing is pending."""
        f = self.faults
        pending: dict[str, Any] = {}
        stall = f.stall_until - trio.current_time()
        if stall > 0:
            pending["stall_s"] = round(stall, 3)
        if f.gap:
            pending["gap"] = sorted(f.gap)
            pending["gap_books"] = self.book_channels()
        if f.reject:
            pending["reject"] = len(f.reject)
        if f.rate_limit:
            pending["rate_limit"] = f.rate_limit
        if f.garbage:
            pending["garbage"] = f.garbage
        if f.frames:
            pending["frames"] = len(f.frames)
        pending.update(self.pending_venue_faults())
        return pending

    def pending_venue_faults(self) -> dict[str, Any]:
        """The venue's own switches set and not yet fired (`pending_faults`)."""
        return {}

    def book_channels(self) -> int:
        """How many book subscriptions the peers hold now: what a `gap` can act on (0: the
        switch waits, and says so). -1 for a venue that does not say."""
        return -1

    # -- the market ---------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Step the market in real time and publish its frames, until cancelled."""
        task_status.started()
        next_step = trio.current_time()
        while True:
            next_step += self.step_s
            await trio.sleep_until(next_step)
            if self._paused:
                next_step = trio.current_time()
                continue
            self.step()

    def step(self) -> None:
        """One market step: its frames applied and sent to their subscribers."""
        now = self.clock()
        for frame in self.market_step():
            self.on_market_frame(frame, now)
            self.publish(frame)
        if self.faults.frames and self.sessions:
            for peer in list(self.sessions.values()):
                for frame in self.faults.frames:
                    self.send(peer, frame)
            self.faults.frames = []
        if self.faults.garbage and self.sessions:  # kept until someone is there to get it
            kinds = self.garbage_frames()
            # n frames for a switch of n (one malformed frame each, counted once by a client),
            # each kind in turn: "garbage": 1 is one frame, not one of every kind.
            frames = [kinds[i % len(kinds)] for i in range(self.faults.garbage)]
            for peer in list(self.sessions.values()):
                for frame in frames:
                    self.send(peer, frame)
            self.faults.garbage = 0

    def publish(self, frame: bytes) -> None:
        for peer, out in self.deliveries(frame):
            self.send(peer, out)

    # -- peers --------------------------------------------------------------------------------
    def send(self, peer: PeerT, frame: bytes) -> None:
        """Queue a frame for a peer; a peer whose outbox is full is disconnected (too slow)."""
        try:
            peer.outbox.send_nowait(frame)
        except trio.WouldBlock:
            self.close(peer, "too slow: outbox full")
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def close(self, peer: PeerT, reason: str) -> None:
        if peer.close_reason is None:
            peer.close_reason = reason
            self.log.info("simulator.closing", session=peer.id, reason=reason)
        peer.done.set()

    def drop_all(self, reason: str = "dropped by the simulator") -> int:
        """Close every WebSocket connection (fault injection)."""
        for peer in list(self.sessions.values()):
            self.close(peer, reason)
        self.faults.drops += len(self.sessions)
        return len(self.sessions)

    # -- switches -----------------------------------------------------------------------------
    def apply_faults(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Switch faults on from a JSON object (see the module docstring). Raises ValueError,
        applying nothing, for a spec `check_switches` refuses."""
        check_switches(spec, self.switches)
        applied: dict[str, Any] = {}
        if spec.get("drop"):
            applied["dropped"] = self.drop_all()
        if spec.get("stall_s"):
            self.faults.stall(float(spec["stall_s"]))
            applied["stall_s"] = float(spec["stall_s"])
        if spec.get("gap"):
            self.faults.gap.add(str(spec["gap"]))
            applied["gap"] = spec["gap"]
            if self.book_channels() == 0:
                # Nothing to lose a change of: say so rather than seem to do nothing.
                applied["gap_waits"] = "no book channel is subscribed: the gap waits for a book subscription"
        if spec.get("reject"):
            r = spec["reject"]
            code, message = self.default_reject
            for _ in range(int(r.get("count", 1))):
                self.faults.reject.append((r.get("code", code), str(r.get("message", message))))
            applied["reject"] = len(self.faults.reject)
        if spec.get("rate_limit"):
            self.faults.rate_limit += int(spec["rate_limit"])
            applied["rate_limit"] = self.faults.rate_limit
        if spec.get("garbage"):
            self.faults.garbage += int(spec["garbage"])
            applied["garbage"] = self.faults.garbage
        if spec.get("frames") or spec.get("frames_b64"):
            self.faults.frames += [str(f).encode() for f in spec.get("frames") or ()]
            self.faults.frames += [_Binary(base64.b64decode(f)) for f in spec.get("frames_b64") or ()]
            applied["frames"] = len(self.faults.frames)
        return applied

    def prepare_burst(self, steps: int) -> int:
        """For throughput benchmarks: generate `steps` market steps ahead (the real-time market
        pauses until `burst` has sent them). Returns the number of frames."""
        self._burst = [frame for _ in range(steps) for frame in self.market_step()]
        self._paused = True
        return len(self._burst)

    async def burst(self) -> int:
        """Send the prepared frames to their subscribers as fast as they are taken (waiting on
        each peer's outbox rather than dropping a slow client). The market stays paused until
        `resume`, so a benchmark sees where the burst ends."""
        frames, self._burst = self._burst, []
        now = self.clock()
        sent = 0
        for i, frame in enumerate(frames):
            self.on_market_frame(frame, now)
            for peer, out in self.deliveries(frame):
                try:
                    await peer.outbox.send(out)
                    sent += 1
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    continue
            if i % 256 == 0:
                await trio.lowlevel.checkpoint()
        return sent

    def resume(self) -> None:
        """Back to real time after a burst."""
        self._paused = False

    def requests_for(self, method: str) -> int:
        """How many requests of `method` arrived (answered or refused)."""
        return self.method_counts[method]

    # -- ASGI ---------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "").rstrip("/")
        if path not in self.ws_paths:
            await receive()
            await send({"type": "websocket.close", "code": 4404})
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        out_send, out_receive = trio.open_memory_channel[bytes](self.outbox_size)
        peer = self.new_peer(next(self._peer_ids), out_send, path)
        self.sessions[peer.id] = peer
        try:
            async with trio.open_nursery() as nursery:
                writer_done = trio.Event()

                async def write() -> None:
                    try:
                        await self._writer(peer, out_receive, send)
                    finally:
                        writer_done.set()

                nursery.start_soon(write)
                nursery.start_soon(self._reader, peer, receive)
                for task in self.peer_tasks(peer):
                    nursery.start_soon(task)
                await peer.done.wait()
                # What was already answered goes out before the close (an error, then the cut).
                self.sessions.pop(peer.id, None)
                out_send.close()
                with trio.move_on_after(1.0):
                    await writer_done.wait()
                nursery.cancel_scope.cancel()
        finally:
            self.sessions.pop(peer.id, None)
            out_send.close()
        with trio.move_on_after(1, shield=True):
            try:
                await send(
                    {"type": "websocket.close", "code": 1000, "reason": (peer.close_reason or "")[:100]}
                )
            except Exception:  # the peer may be gone already: nothing left to tell it
                self.log.debug("simulator.close_failed", session=peer.id)

    async def _writer(self, peer: PeerT, outbox: trio.MemoryReceiveChannel[bytes], send: Send) -> None:
        async for frame in outbox:
            stall = self.faults.stall_until - trio.current_time()
            if stall > 0:
                await trio.sleep(stall)
            try:
                if frame.__class__ is _Binary:
                    await send({"type": "websocket.send", "bytes": bytes(frame)})
                else:
                    await send({"type": "websocket.send", "text": frame.decode("utf-8", "replace")})
            except Exception:  # the client went away
                self.close(peer, "send failed")
                return
            if self.probe is not None:
                key = self.probe_key(frame)
                if key is not None:
                    self.sent_at[key] = time.perf_counter()

    async def _reader(self, peer: PeerT, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.close(peer, "client closed")
                return
            text = message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")
            await self.on_text(peer, text)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path: str = scope.get("path", "")
        method: str = scope["method"]
        status = 200
        if path.startswith("/_sim/"):
            try:
                payload = await self._sim_endpoint(method, path, body)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # A switch with bad terms (or a body that is not the JSON object expected) is
                # the caller's mistake: say which, with 400, and change nothing more.
                payload = orjson.dumps({"error": f"{type(exc).__name__}: {exc}"})
                status = 400
            else:
                if payload is None:
                    status, payload = 404, orjson.dumps({"error": "not found"})
        else:
            headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
            query = scope.get("query_string", b"").decode()
            answer = await self.handle_http(method, path, query, headers, body)
            if answer is None:
                status, payload = 404, orjson.dumps({"error": "not found"})
            else:
                status, payload = answer
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _sim_endpoint(self, method: str, path: str, body: bytes) -> bytes | None:
        if path == "/_sim/faults" and method == "POST":
            return orjson.dumps({"ok": True, "applied": self.apply_faults(orjson.loads(body or b"{}"))})
        if path == "/_sim/state":
            return orjson.dumps({**self.state(), "faults": self.pending_faults()})
        if path == "/_sim/latency":
            if method == "POST":
                self.probe = str(orjson.loads(body or b"{}").get("probe")) or None
            return orjson.dumps(
                {"sent_at": self.sent_at, "arrived_at": self.arrived_at}, option=orjson.OPT_NON_STR_KEYS
            )
        if path == "/_sim/burst" and method == "POST":
            spec = orjson.loads(body or b"{}")
            if "prepare" in spec:
                return orjson.dumps({"frames": self.prepare_burst(int(spec["prepare"]))})
            if spec.get("resume"):
                self.resume()
                return orjson.dumps({"resumed": True})
            return orjson.dumps({"sent": await self.burst()})
        return None


def require_server() -> None:
    """The simulators' HTTP/WebSocket server is the 'sim' extra (hypercorn): a `DataError`
    naming it when it is not installed (checked before anything starts)."""
    try:
        import hypercorn.config
        import hypercorn.trio  # noqa: F401
    except ImportError as exc:
        raise DataError("the venue simulators need the 'sim' extra: pip install 'tradingd[sim]'") from exc


async def serve(
    app: SimulatorServer[Any],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve a simulator with hypercorn on trio (and step its market) until cancelled.
    `task_status` gets the bound addresses (port 0 picks a free port)."""
    require_server()
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.websocket_ping_interval = None
    async with trio.open_nursery() as nursery:
        await nursery.start(app.run)
        binds = await nursery.start(hypercorn_serve, app, config)
        task_status.started(binds)
