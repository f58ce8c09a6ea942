"""Issue 12, follow-ups: what a venue answers outside the decoder (JSON-RPC envelopes and error
objects, instruments answers, reconciliation answers) is that answer's problem, said at the source
as malformed or a typed `VenueError`, never an exception that escapes the session or the engine's
reconciliation; and Derive's default rate limits keep a margin under the venue's."""

from __future__ import annotations

from collections.abc import Hashable
from decimal import Decimal
from typing import Any

import orjson
import pytest

from tests.support.helpers import PERP, registry
from tests.support.offline_sessions import Session, _Sink, deribit, derive, error_answer
from tradingd.connectors.deribit.execution import DeribitExecution
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.connectors.derive.settings import DeriveSettings
from tradingd.engine import MalformedFrame, OrderRequest, VenueError
from tradingd.engine.model import InstrumentRegistry, Order
from tradingd.engine.runtime.router import MarketRouter
from tradingd.engine.venue import Holdings

SESSIONS = [pytest.param(deribit, id="deribit"), pytest.param(derive, id="derive")]
DEEP = b"[" * 3000 + b"]" * 3000  # longer than SHORT_FRAME, deeper than MAX_NESTING


# ---------------------------------------------------------- 1, 2: the envelope and error objects


@pytest.mark.parametrize("make", SESSIONS)
async def test_a_non_utf8_envelope_is_malformed_at_the_source(make: Any) -> None:
    session: Session = make()
    # msgspec checks UTF-8 only where it reads a str: here `method`, in the envelope.
    await session._handle(b'{"jsonrpc":"2.0","method":"subscri\xffption","params":{}}', 0)
    assert session.stats.malformed == 1


@pytest.mark.parametrize("make", SESSIONS)
async def test_a_frame_the_session_cannot_read_is_logged_in_the_decoders_words(make: Any) -> None:
    """What the JSON-RPC session parses itself (a frame that is no notification) is refused in the
    words its decoder uses for the same bytes ("frame: not JSON (...)"): it logged "not a JSON-RPC
    message: DecodeError: Input data was truncated". Polymarket's session hands every frame to its
    decoder."""
    session: Session = make()
    said: list[str] = []
    session.malformed = lambda exc: said.append(str(exc))  # type: ignore[method-assign]
    frames = [b"not json", b'{"jsonrpc":"2.0","id":', b'{"method":"\xff"}', b"5"]
    for frame in frames:
        await session._handle(frame, 0)
    assert session.decoder.stats.frames == 0  # the session's own parse refused them all
    assert said[0].startswith("frame: not JSON (") and len(said) == len(frames)
    for frame, text in zip(frames, said, strict=True):
        with pytest.raises(MalformedFrame) as err:
            session.decoder.decode(frame, 0)
        assert str(err.value) == text


@pytest.mark.parametrize("make", SESSIONS)
@pytest.mark.parametrize(
    "error",
    [
        pytest.param(b'{"code":10028,"message":"too_many\xff_requests"}', id="non-utf8"),
        # Deeper than MAX_NESTING, longer than SHORT_FRAME, yet within what the envelope's own
        # parse survives: refused by the venue's parse of the error object itself.
        pytest.param(b'{"message":"%s","data":%s}' % (b"x" * 5000, b"[" * 700 + b"]" * 700), id="deep"),
    ],
)
async def test_an_unreadable_error_answer_is_malformed_and_its_caller_hears_at_once(
    make: Any, error: bytes
) -> None:
    session: Session = make()
    exc = await error_answer(session, error)
    assert session.stats.malformed == 1
    assert isinstance(exc, VenueError) and exc.code == "malformed" and "outcome unknown" in str(exc)
    assert not isinstance(exc, MalformedFrame)  # an order's outcome: unknown, not refused


@pytest.mark.parametrize("make", SESSIONS)
async def test_a_frame_too_deep_for_the_envelope_is_malformed(make: Any) -> None:
    session: Session = make()
    await session._handle(b'{"jsonrpc":"2.0","id":1,"error":%s}' % DEEP, 0)
    assert session.stats.malformed == 1


async def test_derive_an_unreadable_error_without_id_is_malformed() -> None:
    session = derive()
    await session._handle(b'{"jsonrpc":"2.0","error":{"code":-32700,"message":"\xff"}}', 0)
    assert session.stats.malformed == 1


async def test_deribit_a_subscribe_answer_that_is_no_array_is_a_venue_error() -> None:
    from tradingd.connectors.deribit.stream import _channels

    assert _channels(b'["book.BTC-PERPETUAL.100ms"]', "public/subscribe") == {"book.BTC-PERPETUAL.100ms"}
    assert _channels(b"null", "public/subscribe") == set()
    for answer in (b"7", b'{"a":1}', b'["x",1]', b'["\xff"]', DEEP):
        with pytest.raises(VenueError) as caught:
            _channels(answer, "public/subscribe")
        assert caught.value.code == "malformed"


# ---------------------------------------------------------- 3: an absurd instruments answer


ABSURD_ANSWERS = [
    pytest.param(b'[{"instrument_name":"BTC-\xff"}]', id="non-utf8"),
    pytest.param(b"[1e999999]", id="huge-number"),
    pytest.param(DEEP, id="deep"),
    pytest.param(b"{", id="truncated"),
]


@pytest.mark.parametrize("answer", ABSURD_ANSWERS)
async def test_deribit_an_absurd_instruments_answer_is_refused_and_the_known_stay(answer: bytes) -> None:
    session = deribit()
    known = sorted(i.symbol for i in session.registry)

    async def get_instruments(method: str, params: dict[str, Any] | None = None, **kw: Any) -> bytes:
        return answer

    session.call_retrying = get_instruments  # type: ignore[method-assign]
    await session._load_instruments()  # the handshake's step: it completes
    asked = len(session.settings.currencies) * 2  # futures and options per currency
    assert session.stats.refused_instruments == asked
    assert sorted(i.symbol for i in session.registry) == known
    assert session._instruments_loaded_at is not None


async def test_deribit_an_instruments_answer_the_decoder_trips_on_is_refused() -> None:
    session = deribit()

    def trips(result: Any) -> int:
        raise RuntimeError("a case the decoder did not foresee")

    session.decoder.learn_instruments = trips  # type: ignore[method-assign]

    async def get_instruments(method: str, params: dict[str, Any] | None = None, **kw: Any) -> bytes:
        return b"[]"

    session.call_retrying = get_instruments  # type: ignore[method-assign]
    await session._load_instruments()
    assert session.stats.refused_instruments == 4


@pytest.mark.parametrize("answer", ABSURD_ANSWERS)
async def test_derive_an_absurd_instruments_answer_is_refused_and_nothing_is_delisted(answer: bytes) -> None:
    session = derive()
    good = orjson.dumps([])
    answers = iter([good] * 4 + [answer] * 4)

    async def get_instruments(method: str, params: dict[str, Any] | None = None) -> bytes:
        return next(answers)

    session.call_retrying = get_instruments  # type: ignore[method-assign]
    await session._load_instruments()
    listed = dict(session._listed)
    await session._load_instruments()  # the refresh: every answer absurd
    assert session.stats.refused_instruments == 4
    assert session._listed == listed  # nothing delisted on the word of a refused answer


# ---------------------------------------------------------- 4: reconciliation answers (Deribit)


def _order(**changes: Any) -> dict[str, Any]:
    # VENUES.md §1.7's `private/buy` answer's order, as `get_open_orders_by_currency` lists it.
    base: dict[str, Any] = {
        "web": False, "time_in_force": "good_til_cancelled", "replaced": False, "reduce_only": False,
        "price": 60000.0, "post_only": False, "order_type": "limit", "order_state": "open",
        "order_id": "BTC-584864807", "max_show": 10, "last_update_timestamp": 1590486335742,
        "label": "s-abc-1", "is_liquidation": False, "instrument_name": PERP.symbol,
        "filled_amount": 0, "direction": "buy", "creation_timestamp": 1590486335742,
        "average_price": 0, "api": True, "amount": 10,
    }  # fmt: skip
    base.update(changes)
    return base


class _Answers:
    """The session side of `DeribitExecution`: every read answers `raw`."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    async def call_retrying(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> bytes:
        return self.raw


def _labelled() -> Order:
    request = OrderRequest(
        venue="deribit", instrument=PERP.symbol, side="buy", size=10, price=60000, client_order_id="s-abc-1"
    )
    return Order(request, now_ns=1)  # never named by the venue: looked up by its label


UNREADABLE_ORDERS = [
    pytest.param(orjson.dumps([_order(order_state="dormant")]), id="unknown-state"),
    pytest.param(orjson.dumps([_order(filled_amount=11)]), id="overfilled"),
    pytest.param(orjson.dumps([_order()]).replace(b"s-abc-1", b"s-\xff-1"), id="non-utf8"),
]


@pytest.mark.parametrize("raw", UNREADABLE_ORDERS[:2])
async def test_deribit_open_orders_that_make_no_sense_are_left_out_never_raised(raw: bytes) -> None:
    # One order of the list is that order's problem: left out and counted (the engine asks
    # about each of ours the list did not show), the rest of the list read.
    client = DeribitExecution(_Answers(raw), registry(), currencies=["BTC"])  # type: ignore[arg-type]
    assert await client.open_orders() == [] and client.orders_refused == 1


@pytest.mark.parametrize("raw", [*UNREADABLE_ORDERS[2:], orjson.dumps({"orders": [_order()]})])
async def test_deribit_open_orders_that_are_no_list_of_orders_are_a_typed_venue_error(raw: bytes) -> None:
    # Text that is not UTF-8 is no JSON: the answer's problem, not one order's.
    client = DeribitExecution(_Answers(raw), registry(), currencies=["BTC"])  # type: ignore[arg-type]
    with pytest.raises(VenueError) as caught:
        await client.open_orders()
    assert caught.value.code == "malformed" and "open orders" in str(caught.value)


@pytest.mark.parametrize("raw", UNREADABLE_ORDERS)
async def test_deribit_order_status_by_label_that_makes_no_sense_is_a_typed_venue_error(raw: bytes) -> None:
    client = DeribitExecution(_Answers(raw), registry(), currencies=["BTC"])  # type: ignore[arg-type]
    with pytest.raises(VenueError) as caught:
        await client.order_status(_labelled())
    assert caught.value.code == "malformed" and "by label" in str(caught.value)


async def test_deribit_readable_open_orders_still_read() -> None:
    client = DeribitExecution(_Answers(orjson.dumps([_order()])), registry(), currencies=["BTC"])  # type: ignore[arg-type]
    (update,) = await client.open_orders()
    assert update.client_order_id == "s-abc-1"


# ---------------------------------------------------------- 7: Derive's rate limits, with a margin


def test_sessions_pace_themselves_below_the_venues_published_limits() -> None:
    # Settings name the venue's limits as published (VENUES.md §3.7 for Derive's Trader tier: 5
    # TPS matching, non-matching and per instrument, bursts of 5x, `cancel_all` 1 TPS; §1.10 for
    # Deribit's credits); the sessions' buckets keep 10% below them: two clocks' buckets at the
    # same rate race, and an order refused for rate is never re-sent.
    published = {"matching_tps": 5.0, "non_matching_tps": 5.0, "instrument_tps": 5.0, "cancel_all_tps": 1.0}
    s = DeriveSettings()
    assert {key: getattr(s, key) for key in published} == published
    buckets = derive()._buckets
    assert buckets["matching"].refill_per_s == pytest.approx(4.5)
    assert buckets["matching"].capacity == pytest.approx(4.5 * 5)
    assert buckets["non_matching"].refill_per_s == pytest.approx(4.5)
    assert buckets["cancel_all"].refill_per_s == pytest.approx(0.9)
    assert buckets["cancel_all"].capacity == 1.0  # never below one request's cost
    assert derive()._bucket_for("ETH-PERP").refill_per_s == pytest.approx(4.5)
    matching = deribit()._buckets["matching"]
    assert matching.refill_per_s == pytest.approx(0.9 * DeribitSettings().matching_rate)
    assert matching.capacity == pytest.approx(0.9 * DeribitSettings().matching_burst)


# ---------------------------------------------------------- subscription and recovery answers


async def test_derive_an_unreadable_subscribe_answer_is_a_venue_error() -> None:
    session = derive()

    async def subscribe(method: str, params: dict[str, Any] | None = None) -> bytes:
        return b'{"status":{"orderbook.ETH-PERP.1.10\xff":"ok"}}'

    session.call_retrying = subscribe  # type: ignore[method-assign]
    with pytest.raises(VenueError) as caught:  # the session reconnects; the follower never crashes
        await session._subscription_call("subscribe", ["orderbook.ETH-PERP.1.10"])
    assert caught.value.code == "malformed"


@pytest.mark.parametrize("page", [b'{"data":5,"next_cursor":"LTE="}', b'{"data":[],"next_cursor":7}', b"[1]"])
async def test_polymarket_a_trades_page_that_is_none_ends_the_recovery(page: bytes) -> None:
    from tradingd.connectors.polymarket.settings import PolymarketSettings
    from tradingd.connectors.polymarket.stream import PolymarketSession, UserConnection

    owner = PolymarketSession(
        PolymarketSettings(), registry=InstrumentRegistry(), router=MarketRouter(), sink=_Sink()
    )
    user = UserConnection(
        owner, decoder=owner.decoder, registry=owner.registry, router=MarketRouter(), sink=_Sink()
    )
    asked: list[str] = []

    async def call(method: str, path: str, **kw: Any) -> bytes:
        asked.append(path)
        return page

    owner.rest.call = call  # type: ignore[method-assign]
    await user._recover_trades(0)
    assert asked == ["/data/trades"] and user.recovered_trades == 0


def test_holdings_compare_by_value_and_say_they_cannot_be_hashed() -> None:
    """A `PositionSource`'s answer of balances read and unread: equal by value, and honestly
    unhashable. Before, attrs' frozen class offered a `__hash__` (a `Hashable`, by
    `isinstance`) that raised on its dict at every call, from inside attrs' generated code."""
    answer = Holdings({"A": Decimal(7)}, unread=frozenset({"B"}))
    assert answer == Holdings({"A": Decimal("7.0")}, unread=frozenset({"B"}))
    assert answer != Holdings({"A": Decimal(7)})
    assert Holdings.__hash__ is None and not issubclass(Holdings, Hashable)
    with pytest.raises(TypeError, match="unhashable type: 'Holdings'"):
        hash(answer)
    with pytest.raises(ValueError, match="Holdings: A both read and unread"):
        Holdings({"A": Decimal(7)}, unread=frozenset({"A"}))
