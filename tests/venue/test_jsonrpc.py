"""The JSON-RPC mechanism Deribit and Derive share (engine.venue.jsonrpc), on a toy venue: answers
matched by id in any order, error answers as the venue's typed errors, timeouts and late answers,
frames that are not JSON-RPC, subscription diffs in batches, and the decoder's routing; and on the
two real sessions, a subscribe call the venue refuses whole."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import msgspec
import orjson
import pytest
import trio
import trio.testing

from tests.support.helpers import registry
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.connectors.deribit.stream import DeribitSession
from tradingd.connectors.derive.settings import DeriveSettings
from tradingd.connectors.derive.stream import DeriveSession
from tradingd.engine import (
    MalformedFrame,
    MarketEvent,
    OrderBook,
    RateLimited,
    Status,
    StatusKind,
    VenueError,
    VenueRejected,
    VenueUnavailable,
)
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.runtime.router import MarketRouter
from tradingd.engine.venue.jsonrpc import (
    Envelope,
    Handler,
    JsonRpcDecoder,
    JsonRpcSession,
    NotificationParams,
    batches,
)
from tradingd.engine.venue.ratelimit import CreditBucket

_decode_envelope = msgspec.json.Decoder(Envelope[NotificationParams]).decode


class _Decoder(JsonRpcDecoder):
    """A toy venue's decoder: `tick.X` notifications count, anything else is unknown."""

    venue = "toy"

    def __init__(self) -> None:
        super().__init__(InstrumentRegistry(), _decode_envelope)
        self.ticks: list[tuple[str, bytes]] = []
        self.routed: list[str] = []
        self.answers = 0

    def _route(self, channel: str) -> tuple[Handler, str]:
        self.routed.append(channel)
        parts = channel.split(".")
        if parts[0] == "tick" and len(parts) == 2:
            return (self._on_tick, parts[1])
        return (self._on_unknown, channel)

    def _on_tick(self, data: Any, ts_local: int, instrument: str) -> list[MarketEvent]:
        self.ticks.append((instrument, bytes(msgspec.json.decode(data, type=msgspec.Raw))))
        if bytes(data) == b'"bad"':
            raise msgspec.DecodeError("Expected `int`, got `str`")
        return []

    def _response(self, env: Envelope[Any], ts_local: int) -> list[MarketEvent]:
        if env.id is None:
            raise MalformedFrame("neither a notification nor an answer", venue=self.venue)
        self.answers += 1
        return []

    def book(self, instrument: str) -> OrderBook | None:
        return None

    def book_instruments(self) -> list[str]:
        return []

    def invalidate_books(self) -> None:
        return None  # the toy venue keeps no book


class _Sink:
    def __init__(self) -> None:
        self.events: list[MarketEvent] = []

    async def market(self, events: list[MarketEvent]) -> None:
        self.events.extend(events)

    def private(self, events: list[Any]) -> None:
        return None


class _Socket:
    """A connection that records what is sent (or refuses to send)."""

    def __init__(self, *, closed: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed = closed

    async def send_message(self, message: str) -> None:
        if self.closed:
            raise trio.ClosedResourceError("closed")
        self.sent.append(orjson.loads(message))


class _Toy(JsonRpcSession):
    """A toy JSON-RPC venue: error code 1 is a rate limit, 2 a refusal, others unknown outcome;
    subscribe answers list the granted channels, and channels named `no.*` are refused."""

    venue = "toy"
    notification_prefixes = ('{"method":"subscription"',)
    subscribe_batch = 2

    def __init__(self, *, timeout_s: float = 5.0) -> None:
        self.out = _Sink()
        super().__init__(
            envelope=_decode_envelope,
            request_timeout_s=timeout_s,
            decoder=_Decoder(),
            registry=InstrumentRegistry(),
            router=MarketRouter(),
            sink=self.out,
        )
        self.bucket = CreditBucket.below(100.0, 100.0)
        self.wanted: set[str] = set()
        self.asked: list[tuple[str, list[str]]] = []
        self.ws = _Socket()
        self._ws = self.ws  # type: ignore[assignment]

    def _map_error(self, error: Any, method: str) -> VenueError:
        code = error.get("code") if isinstance(error, dict) else None
        if code == 1:
            return RateLimited(f"{method}: slow down", venue=self.venue, code=code)
        if code == 2:
            return VenueRejected(f"{method}: refused", venue=self.venue, code=code)
        return VenueError(f"{method}: failed", venue=self.venue, code=code)

    def desired_channels(self) -> set[str]:
        return set(self.wanted)

    async def _unsubscribe(self, channels: list[str], held: set[str]) -> set[str]:
        self.asked.append(("unsubscribe", channels))
        return held - set(channels)

    async def _subscribe(self, channels: list[str], held: set[str]) -> tuple[set[str], list[tuple[str, str]]]:
        self.asked.append(("subscribe", channels))
        refused = [
            (c, "no such channel" if c.endswith("why") else "") for c in channels if c.startswith("no.")
        ]
        return held | (set(channels) - {c for c, _ in refused}), refused

    def instrument_of(self, channel: str) -> str:
        return channel.split(".")[1]

    async def ask(self, method: str, out: dict[str, Any]) -> None:
        """`request(method)`, its result (parsed) or its error put in `out[method]`."""
        try:
            out[method] = msgspec.json.decode(await self.request(method, {}, self.bucket))
        except VenueError as exc:
            out[method] = exc

    async def answer(self, frame: dict[str, Any]) -> None:
        await self._handle(orjson.dumps(frame), 0)


async def _answered(toy: _Toy, method: str, answer: Callable[[int], bytes]) -> Any:
    """What the caller of `method` gets when the venue answers it with `answer(its id)`: at once
    (within two seconds, not after the request's timeout)."""
    out: dict[str, Any] = {}
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(toy.ask, method, out)
            await trio.testing.wait_all_tasks_blocked()
            await toy._handle(answer(_rid(toy, method)), 0)
    return out[method]


def _rid(toy: _Toy, method: str) -> int:
    (rid,) = [f["id"] for f in toy.ws.sent if f["method"] == method]
    assert isinstance(rid, int)
    return rid


# -------------------------------------------------------------------------------- requests


async def test_answers_reach_their_callers_by_id_in_any_order() -> None:
    toy = _Toy()
    out: dict[str, Any] = {}
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            for method in ("a", "b", "c"):
                nursery.start_soon(toy.ask, method, out)
            await trio.testing.wait_all_tasks_blocked()
            assert sorted(f["method"] for f in toy.ws.sent) == ["a", "b", "c"]
            assert all(f["jsonrpc"] == "2.0" for f in toy.ws.sent)
            assert len({f["id"] for f in toy.ws.sent}) == 3  # a fresh id each
            for method in ("c", "a", "b"):  # answered out of order
                await toy.answer({"jsonrpc": "2.0", "id": _rid(toy, method), "result": {"for": method}})
    assert out == {"a": {"for": "a"}, "b": {"for": "b"}, "c": {"for": "c"}}
    assert toy.stats.requests == 3 and toy.stats.unmatched_answers == 0 and len(toy._requests) == 0


@pytest.mark.parametrize(
    ("code", "kind"), [(1, RateLimited), (2, VenueRejected), (3, VenueError), ([3], VenueError)]
)
async def test_an_error_answer_is_the_venues_typed_error_named_by_the_method(code: Any, kind: type) -> None:
    toy = _Toy()
    error = {"code": code, "message": "no"}
    exc = await _answered(
        toy, "private/buy", lambda rid: orjson.dumps({"jsonrpc": "2.0", "id": rid, "error": error})
    )
    assert type(exc) is kind and str(exc).startswith("private/buy: ")
    # A rate-limit answer drains the bucket it was sent under: the next request waits for the refill.
    assert (toy.bucket.available() < 1) is (kind is RateLimited)
    # And is counted (the venue's `rate_limited`: status and metrics); nothing else is.
    assert toy.stats.rate_limited == (1 if kind is RateLimited else 0)


async def test_an_unreadable_error_answer_is_malformed_and_its_caller_hears_at_once() -> None:
    toy = _Toy()
    exc = await _answered(toy, "x", lambda rid: b'{"id":%d,"error":{"code":1,"message":"\xff"}}' % rid)
    assert isinstance(exc, VenueError) and exc.code == "malformed"
    assert toy.stats.malformed == 1


async def test_a_call_unanswered_in_time_is_outcome_unknown_and_its_late_answer_is_dropped_and_counted() -> (
    None
):
    toy = _Toy(timeout_s=0.05)
    with pytest.raises(VenueError, match="outcome unknown") as err:
        await toy.request("private/buy", {"amount": 1}, toy.bucket)
    assert err.value.code == "timeout" and type(err.value) is VenueError
    assert toy.stats.timeouts == 1 and len(toy._requests) == 0
    await toy.answer({"jsonrpc": "2.0", "id": _rid(toy, "private/buy"), "result": {"late": True}})
    assert toy.stats.unmatched_answers == 1  # dropped, counted, nothing raised
    await toy.answer({"jsonrpc": "2.0", "id": "not-ours", "result": 1})
    assert toy.stats.unmatched_answers == 2 and toy.stats.malformed == 0


async def test_a_call_that_cannot_be_sent_is_unavailable_and_a_lost_connection_fails_its_waiters() -> None:
    toy = _Toy()
    toy._ws = None
    with pytest.raises(VenueUnavailable, match="not connected"):
        await toy.request("a", None, toy.bucket)
    toy._ws = _Socket(closed=True)  # type: ignore[assignment]
    with pytest.raises(VenueUnavailable, match="connection closed before sending"):
        await toy.request("a", None, toy.bucket)
    assert len(toy._requests) == 0  # never sent: nothing pending
    toy._ws = toy.ws  # type: ignore[assignment]
    out: dict[str, Any] = {}
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(toy.ask, "b", out)
            await trio.testing.wait_all_tasks_blocked()
            toy._reset()  # the connection was lost before the answer
    assert isinstance(out["b"], VenueError) and out["b"].code == "lost"


async def test_retrying_repeats_a_rate_limited_call_then_lets_the_refusal_through(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tries: list[float] = []

    async def refused() -> int:
        tries.append(trio.current_time())
        raise RateLimited("slow down", venue="toy")

    with pytest.raises(RateLimited):
        await JsonRpcSession.retrying(refused)
    assert len(tries) == 4
    assert [round(b - a, 1) for a, b in itertools.pairwise(tries)] == [0.5, 1.0, 2.0]

    calls = 0

    async def second_time() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RateLimited("slow down", venue="toy")
        return "ok"

    assert await JsonRpcSession.retrying(second_time) == "ok" and calls == 2


# ---------------------------------------------------------------------------------- frames


@pytest.mark.parametrize(
    "frame",
    [
        b"not json",
        b"[1, 2]",
        b'{"id": 1.5, "result": 1}',
        b'{"method": "subscription", "params": "x"}',
        b'{"method": "\xff"}',
        b'{"jsonrpc": "2.0", "method": "surprise"}',
        b"{" * 2000,
    ],
)
async def test_a_frame_that_is_not_json_rpc_is_that_frames_problem(frame: bytes) -> None:
    toy = _Toy()
    await toy._handle(frame, 0)  # never raises
    assert toy.stats.malformed == 1


async def test_notifications_reach_the_decoder_on_the_hot_path_and_in_any_spacing() -> None:
    toy = _Toy()
    decoder = toy.decoder
    assert isinstance(decoder, _Decoder)
    await toy._handle('{"method":"subscription","params":{"channel":"tick.A","data":1}}', 0)
    await toy._handle(b'{ "method" : "subscription", "params": {"channel": "tick.B", "data": 2}}', 0)
    assert decoder.ticks == [("A", b"1"), ("B", b"2")] and toy.stats.malformed == 0


# ----------------------------------------------------------------------------- subscriptions


async def test_subscriptions_follow_the_wanted_set_in_batches() -> None:
    toy = _Toy()
    toy.wanted = {"t.a", "t.b", "t.c", "t.d", "t.e"}
    await toy._sync_subscriptions()
    assert toy.asked == [("subscribe", ["t.a", "t.b"]), ("subscribe", ["t.c", "t.d"]), ("subscribe", ["t.e"])]
    assert toy.channels == frozenset(toy.wanted)
    toy.asked.clear()
    toy.wanted = {"t.a", "t.f", "t.g", "t.h"}
    await toy._sync_subscriptions()
    assert toy.asked == [
        ("unsubscribe", ["t.b", "t.c"]),
        ("unsubscribe", ["t.d", "t.e"]),
        ("subscribe", ["t.f", "t.g"]),
        ("subscribe", ["t.h"]),
    ]
    assert toy.channels == frozenset(toy.wanted)
    subscribed = [e for e in toy.out.events if isinstance(e, Status) and e.status is StatusKind.SUBSCRIBED]
    assert [e.data["channels"] for e in subscribed] == [5, 4]
    toy.asked.clear()
    await toy._sync_subscriptions()  # nothing changed: nothing asked, nothing said
    assert toy.asked == [] and len(toy.out.events) == 2


async def test_refused_channels_are_reported_and_not_asked_again_until_they_leave() -> None:
    toy = _Toy()
    toy.wanted = {"t.a", "no.x", "no.ywhy"}
    await toy._sync_subscriptions()
    refused = [
        e for e in toy.out.events if isinstance(e, Status) and e.status is StatusKind.SUBSCRIPTION_REFUSED
    ]
    assert [(e.instrument, e.message, e.data) for e in refused] == [
        ("x", "the venue refused no.x", {"channel": "no.x"}),
        (
            "ywhy",
            "the venue refused no.ywhy: no such channel",
            {"channel": "no.ywhy", "reason": "no such channel"},
        ),
    ]
    assert toy.stats.refused_channels == 2 and toy.channels == {"t.a"}
    toy.asked.clear()
    await toy._sync_subscriptions()
    assert toy.asked == []  # refused: not asked again while still wanted
    toy.wanted = {"t.a"}
    await toy._sync_subscriptions()
    toy.wanted = {"t.a", "no.x"}  # left and came back: asked again
    await toy._sync_subscriptions()
    assert toy.asked == [("subscribe", ["no.x"])]


async def test_a_broken_book_is_taken_again_when_the_venue_says_how() -> None:
    class Resubscribing(_Toy):
        def _resnapshot_channels(self, books: set[str]) -> set[str]:
            return {f"t.{b}" for b in books} & self._current

    toy = Resubscribing()
    toy.wanted = {"t.a", "t.b"}
    await toy._sync_subscriptions()
    toy.asked.clear()
    toy._gaps.update({"a", "z"})  # z: not held, nothing to take again
    await toy._sync_subscriptions()
    assert toy.asked == [("unsubscribe", ["t.a"]), ("subscribe", ["t.a"])]
    assert toy.stats.resubscribed_books == 1 and not toy._gaps and toy.channels == {"t.a", "t.b"}
    plain = _Toy()  # by default a venue resubscribes nothing (whole-snapshot books)
    plain._gaps.add("a")
    await plain._sync_subscriptions()
    assert plain.asked == [] and not plain._gaps


def test_batches_keep_order_and_size() -> None:
    assert list(batches(["a", "b", "c", "d", "e"], 2)) == [["a", "b"], ["c", "d"], ["e"]]
    assert list(batches([], 3)) == []


# ----------------------------------------------------------------------------------- decoder


def test_the_decoder_routes_each_channel_once_and_counts_what_it_cannot_read() -> None:
    dec = _Decoder()
    for _ in range(3):
        dec.decode(b'{"method":"subscription","params":{"channel":"tick.A","data":1}}', 0)
    dec.decode(b'{"method":"subscription","params":{"channel":"odd","data":1}}', 0)
    assert dec.routed == ["tick.A", "odd"]  # found once, then remembered
    assert dec.stats.unknown_channel == 1 and dec.last_unknown_channel == "odd"
    dec.decode(b'{"jsonrpc":"2.0","id":7,"result":[]}', 0)
    assert dec.answers == 1
    for frame, match in [
        (b'{"method":"subscription","params":{"channel":"tick.A","data":"bad"}}', "^tick.A: Expected 'int'"),
        (b'{"method":"subscription","params":{"channel":"tick.A"}}', "needs params.channel and params.data"),
        (b'{"method":"x"}', "neither a notification nor an answer"),
        (b"{nope", "^frame: not JSON "),
        (b'{"method":"\xff"}', "not UTF-8"),
    ]:
        with pytest.raises(MalformedFrame, match=match) as err:
            dec.decode(frame, 0)
        assert err.value.venue == "toy"
    assert dec.stats.malformed == 5 and dec.stats.frames == 10
    assert dec.decode_message({"jsonrpc": "2.0", "id": 8, "result": 1}, 0) == [] and dec.answers == 2


# ----------------------------------------------- a whole subscribe call refused, on both venues
# Derive reported the channels of a subscribe call it refused whole (13000, -32602) and went on;
# Deribit's session let its `subscribe_error_unsubscribed` (11052, VENUES.md §1.4) end the
# connection, which reconnected and asked the same again, forever. Both share the rule now
# (`batch_refusals`); the Deribit case fails on i14-base.

_WANTED = {"alpha.1", "beta.2"}


class _Deribit(DeribitSession):
    def desired_channels(self) -> set[str]:
        return set(_WANTED)


class _Derive(DeriveSession):
    def desired_channels(self) -> set[str]:
        return set(_WANTED)


class _Refusing:
    """A connection whose venue answers every request with the error `code`."""

    def __init__(self, session: DeribitSession | DeriveSession, nursery: trio.Nursery, code: int) -> None:
        self.session = session
        self.nursery = nursery
        self.code = code
        self.sent: list[str] = []

    async def send_message(self, message: str) -> None:
        request = orjson.loads(message)
        self.sent.append(request["method"])
        error = {"code": self.code, "message": "refused"}
        answer = orjson.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error})
        self.nursery.start_soon(self.session._handle, answer, 0)


def _deribit(sink: _Sink) -> DeribitSession:
    return _Deribit(DeribitSettings(), registry=registry(), router=MarketRouter(), sink=sink)


def _derive(sink: _Sink) -> DeriveSession:
    return _Derive(DeriveSettings(), registry=InstrumentRegistry(), router=MarketRouter(), sink=sink)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        pytest.param(_deribit, 11052, id="deribit-11052"),
        pytest.param(_derive, 13000, id="derive-13000"),
        pytest.param(_derive, -32602, id="derive-32602"),
    ],
)
async def test_a_subscribe_call_refused_whole_refuses_its_channels_and_the_session_goes_on(
    make: Any, code: int
) -> None:
    sink = _Sink()
    session = make(sink)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            ws = _Refusing(session, nursery, code)
            session._ws = ws
            await session._sync_subscriptions()  # no VenueError: the connection stays
            refused = [
                e
                for e in sink.events
                if isinstance(e, Status) and e.status is StatusKind.SUBSCRIPTION_REFUSED
            ]
            assert [e.data["channel"] for e in refused] == ["alpha.1", "beta.2"]
            assert session.stats.refused_channels == 2 and session.channels == frozenset()
            asked = len(ws.sent)
            await session._sync_subscriptions()
            assert len(ws.sent) == asked  # not asked again while still wanted


class _DeribitTrading(_Deribit):
    """A session whose wanted channels include its private ones (orders and trades)."""

    def desired_channels(self) -> set[str]:
        return set(_WANTED) | set(self.private_channels())


async def test_a_refused_private_channel_ends_the_connection_never_silently_dropped() -> None:
    """Deribit's 11052 on a batch holding `user.orders...` and `user.trades...`: taking them as
    refused for good would lose every order report and fill without a sound until a restart; the
    connection ends instead (and is retried), and nothing is remembered as refused."""
    sink = _Sink()
    session = _DeribitTrading(DeribitSettings(), registry=registry(), router=MarketRouter(), sink=sink)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            session._ws = _Refusing(session, nursery, 11052)  # type: ignore[assignment]  # a stand-in socket
            with pytest.raises(VenueError, match="private channels"):
                await session._sync_subscriptions()
    assert session._refused.isdisjoint(session.private_channels())


class _RefusingIf:
    """A Deribit connection that answers 11052 to a subscribe batch holding `bad`, and grants
    every channel of any other batch."""

    def __init__(self, session: DeribitSession, nursery: trio.Nursery, bad: str) -> None:
        self.session = session
        self.nursery = nursery
        self.bad = bad
        self.batches: list[list[str]] = []

    async def send_message(self, message: str) -> None:
        request = orjson.loads(message)
        channels = request["params"]["channels"]
        self.batches.append(channels)
        if self.bad in channels:
            body: dict[str, Any] = {"error": {"code": 11052, "message": "subscribe_error_unsubscribed"}}
        else:
            body = {"result": channels}
        answer = orjson.dumps({"jsonrpc": "2.0", "id": request["id"], **body})
        self.nursery.start_soon(self.session._handle, answer, 0)


async def test_a_batch_refused_for_a_public_channel_never_takes_the_private_channels_with_it() -> None:
    """One expired instrument's channel makes the venue refuse its whole batch: our order and
    trade channels are never in that batch (they go first, on their own), so they are granted,
    the bad channel is refused and reported, and the connection stays up (no reconnect loop)."""
    sink = _Sink()
    session = _DeribitTrading(DeribitSettings(), registry=registry(), router=MarketRouter(), sink=sink)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            ws = _RefusingIf(session, nursery, "alpha.1")
            session._ws = ws  # type: ignore[assignment]  # a stand-in socket
            await session._sync_subscriptions()  # no VenueError: the connection stays
    assert ws.batches[0] == sorted(session.private_channels())
    assert session.private_channels() <= session.channels
    assert "alpha.1" not in session.channels and "alpha.1" in session._refused
    refused = [
        e for e in sink.events if isinstance(e, Status) and e.status is StatusKind.SUBSCRIPTION_REFUSED
    ]
    assert {e.data["channel"] for e in refused} >= {"alpha.1"}


async def test_a_request_signals_its_bytes_have_left_once_right_after_its_write() -> None:
    """`request` calls the task's `SENT` callback (engine.venue.sent) once its frame is written
    and before its answer can be read: not when it could not be sent, and once only."""
    from tradingd.engine.venue.sent import SENT

    toy = _Toy(timeout_s=0.05)
    signalled: list[int] = []
    SENT.set(lambda: signalled.append(len(toy.ws.sent)))
    with pytest.raises(VenueError):  # unanswered: the signal came anyway, the frame being out
        await toy.request("private/buy", {"amount": 1}, toy.bucket)
    assert signalled == [1]
    with pytest.raises(VenueError):
        await toy.request("private/buy", {"amount": 2}, toy.bucket)
    assert signalled == [1]  # once
    toy._ws = _Socket(closed=True)  # type: ignore[assignment]
    SENT.set(lambda: signalled.append(-1))
    with pytest.raises(VenueUnavailable):
        await toy.request("a", None, toy.bucket)
    assert signalled == [1] and SENT.get() is not None  # nothing written: not signalled
    SENT.set(None)
