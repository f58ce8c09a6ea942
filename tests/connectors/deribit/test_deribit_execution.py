"""Deribit auth, errors and order answers: the documented test vector, the captured order
responses, and what the execution client sends."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

from tests.support import deribit_frames as F
from tests.support.helpers import OPTION, PERP, request
from tradingd.connectors.deribit.codec import DeribitDecoder, decode_order_result
from tradingd.connectors.deribit.execution import DeribitExecution
from tradingd.connectors.deribit.signing import Credentials, http_signature_header, sign_client_signature
from tradingd.connectors.deribit.stream import map_error
from tradingd.engine import (
    AuthError,
    Fill,
    OrderRejected,
    OrderState,
    OrderUpdate,
    RateLimited,
    VenueError,
    VenueRejected,
)
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.model import InstrumentRegistry, Order

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "deribit"


def fixture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def test_client_signature_reproduces_the_documented_vector() -> None:
    # VENUES.md §1.3: AMANDASECRECT, 1576074319000, 1iqt2wls, data "".
    assert (
        sign_client_signature("AMANDASECRECT", 1576074319000, "1iqt2wls")
        == "56590594f97921b09b18f166befe0d1319b198bbcdad7ca73382de2f88fe9aa1"
    )


def test_http_signature_header_shape_and_content() -> None:
    header = http_signature_header(
        "id1",
        "secret",
        timestamp_ms=1700000000000,
        nonce="n1",
        method="get",
        uri="/api/v2/private/buy?amount=1",
    )
    assert header.startswith("deri-hmac-sha256 id=id1,ts=1700000000000,nonce=n1,sig=")
    sig = header.rsplit("sig=", 1)[1]
    import hashlib
    import hmac

    expected = hmac.new(
        b"secret", b"1700000000000\nn1\nGET\n/api/v2/private/buy?amount=1\n\n", hashlib.sha256
    ).hexdigest()
    assert sig == expected


def test_credentials_from_the_environment_and_never_shown() -> None:
    creds = Credentials.from_env({"DERIBIT_CLIENT_ID": "abc", "DERIBIT_CLIENT_SECRET": "very-secret-value"})
    assert creds.client_id == "abc"
    assert "very-secret-value" not in repr(creds)
    seed = Credentials.from_env({"DERIBIT_KEY": "k1:another-secret-1"})
    assert (seed.client_id, seed.client_secret) == ("k1", "another-secret-1")
    with pytest.raises(AuthError, match="DERIBIT_CLIENT_ID"):
        Credentials.from_env({})
    # Registered with the redactor: the secret cannot reach a log line, even in a message.
    buffer = io.StringIO()
    buffer.buffer = io.BytesIO()  # type: ignore[misc]
    buffer.isatty = lambda: False  # type: ignore[method-assign]
    configure_logging("info", "json", buffer)
    try:
        structlog.get_logger().info("oops", detail="the secret is very-secret-value")
        assert b"very-secret-value" not in buffer.buffer.getvalue()
    finally:
        structlog.reset_defaults()


def test_credentials_from_files(tmp_path: Path) -> None:
    (tmp_path / "id").write_text("file-id\n")
    (tmp_path / "secret").write_text("file-secret-123\n")
    creds = Credentials.from_env(
        {
            "DERIBIT_CLIENT_ID_FILE": str(tmp_path / "id"),
            "DERIBIT_CLIENT_SECRET_FILE": str(tmp_path / "secret"),
        }
    )
    assert (creds.client_id, creds.client_secret) == ("file-id", "file-secret-123")
    with pytest.raises(AuthError, match="cannot read"):
        Credentials.from_env({"DERIBIT_CLIENT_ID_FILE": str(tmp_path / "nope"), "DERIBIT_CLIENT_SECRET": "x"})


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        ({"code": 10028, "message": "too_many_requests", "data": None}, RateLimited, 10028),
        ({"code": 13009, "message": "unauthorized"}, AuthError, 13009),
        ({"code": 10009, "message": "not_enough_funds"}, VenueRejected, 10009),
        ({"code": 11054, "message": "post_only_reject"}, VenueRejected, 11054),
        ({"code": 11094, "message": "internal_server_error"}, VenueError, 11094),
    ],
)
def test_errors_are_typed_with_the_venue_code(
    error: dict[str, Any], kind: type[Exception], code: int
) -> None:
    exc = map_error(error, method="private/buy")
    assert type(exc) is kind
    assert exc.code == code and exc.venue_message == error["message"]


def test_the_captured_error_frame_maps_to_rate_limited() -> None:
    frame = fixture("ws_error.json")
    assert isinstance(map_error(frame["error"], method="x"), RateLimited)


def test_captured_order_responses_become_order_events() -> None:
    (buy,) = decode_order_result(orjson.dumps(fixture("ws_order_buy_response.json")["result"]), 7)
    assert isinstance(buy, OrderUpdate)
    assert (buy.order_id, buy.client_order_id, buy.status) == (
        "USDC-104819327443",
        "O-19700101-000000-001-001-1",
        OrderState.OPEN,
    )
    assert (buy.price, buy.size, buy.side.value) == (Decimal("2973.55"), Decimal("0.001"), "buy")
    (edit,) = decode_order_result(orjson.dumps(fixture("ws_order_edit_response.json")["result"]), 7)
    assert edit.price == Decimal("3067.2")
    (stop,) = decode_order_result(
        orjson.dumps(fixture("ws_order_stop_market_no_filled_amount.json")["result"]), 7
    )
    assert stop.price is None and stop.filled_size == 0 and stop.status is OrderState.OPEN
    # The documented private/buy answer with a trade: the fill first, then the filled order.
    documented = {
        "trades": [
            {
                "trade_seq": 1966068,
                "trade_id": "ETH-2696097",
                "timestamp": 1590486335742,
                "tick_direction": 0,
                "state": "filled",
                "reduce_only": True,
                "price": 202.8,
                "post_only": False,
                "order_type": "limit",
                "order_id": "ETH-584864807",
                "matching_id": None,
                "mark_price": 202.79,
                "liquidity": "T",
                "instrument_name": "ETH-PERPETUAL",
                "index_price": 202.86,
                "fee_currency": "ETH",
                "fee": 7.766e-05,
                "direction": "sell",
                "amount": 21,
            }
        ],
        "order": {
            "time_in_force": "good_til_cancelled",
            "reduce_only": True,
            "price": 198.75,
            "post_only": False,
            "order_type": "limit",
            "order_state": "filled",
            "order_id": "ETH-584864807",
            "label": "",
            "instrument_name": "ETH-PERPETUAL",
            "filled_amount": 21,
            "direction": "sell",
            "creation_timestamp": 1590486335742,
            "last_update_timestamp": 1590486335742,
            "average_price": 202.8,
            "amount": 21,
        },
    }
    fill, order = decode_order_result(orjson.dumps(documented), 7)
    assert isinstance(fill, Fill) and isinstance(order, OrderUpdate)
    assert (fill.trade_id, fill.fee, fill.fee_currency, fill.liquidity.value) == (
        "ETH-2696097",
        Decimal("7.766E-5"),
        "ETH",
        "taker",
    )
    assert (
        order.status is OrderState.FILLED
        and order.client_order_id is None
        and order.avg_fill_price == Decimal("202.8")
    )


def test_user_channel_notifications_decode_to_private_events() -> None:
    dec = DeribitDecoder(InstrumentRegistry())
    order = {
        "time_in_force": "good_til_cancelled",
        "replaced": False,
        "reduce_only": False,
        "price": 10460.43,
        "post_only": False,
        "order_type": "limit",
        "order_state": "open",
        "order_id": "4",
        "label": "s-x-1",
        "instrument_name": "BTC-PERPETUAL",
        "filled_amount": 0,
        "direction": "buy",
        "amount": 200,
        "last_update_timestamp": 1581507159533,
    }
    raw = {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"channel": "user.orders.any.any.raw", "data": order},
    }
    (ev,) = dec.decode(orjson.dumps(raw), 1)
    assert isinstance(ev, OrderUpdate) and ev.client_order_id == "s-x-1" and ev.status is OrderState.OPEN
    agg = {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"channel": "user.orders.BTC-PERPETUAL.100ms", "data": [order, order]},
    }
    assert len(dec.decode(orjson.dumps(agg), 1)) == 2
    trade = F.USER_TRADE
    raw = {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"channel": "user.trades.any.any.raw", "data": [trade]},
    }
    (fill,) = dec.decode(orjson.dumps(raw), 1)
    assert isinstance(fill, Fill) and fill.size == 20 and fill.side.value == "sell"


class _Capture:
    """A session double recording the requests the execution client makes."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def call(self, method: str, params: dict[str, Any], **_: Any) -> Any:
        self.calls.append((method, params))
        return json.dumps(self.answer).encode()


async def test_order_params_as_deribit_documents_them() -> None:
    reg = InstrumentRegistry([PERP, OPTION])
    answer = fixture("ws_order_buy_response.json")["result"]
    session = _Capture(answer)
    ex = DeribitExecution(session, reg)  # type: ignore[arg-type]
    order = Order(request(size="0.5", price="0.0525", post_only=True, cid="g-abc-7"), now_ns=0)
    events = await ex.place(order)
    method, params = session.calls[0]
    assert method == "private/buy"
    assert params == {
        "instrument_name": OPTION.symbol,
        "amount": 0.5,
        "type": "limit",
        "label": "g-abc-7",
        "time_in_force": "good_til_cancelled",
        "price": 0.0525,
        "post_only": True,
        "reject_post_only": True,
    }
    assert isinstance(events[-1], OrderUpdate)
    market = Order(
        request(
            side="sell", size="20", price=None, instrument=PERP.symbol, cid="g-abc-8", time_in_force="ioc"
        ),
        now_ns=0,
    )
    await ex.place(market)
    assert session.calls[1] == (
        "private/sell",
        {
            "instrument_name": PERP.symbol,
            "amount": 20,
            "type": "market",
            "label": "g-abc-8",
            "time_in_force": "immediate_or_cancel",
        },
    )
    with pytest.raises(OrderRejected, match="multiple of the minimum size"):
        await ex.place(Order(request(size="0.55", cid="g-abc-9"), now_ns=0))
    with pytest.raises(OrderRejected, match="not offered by Deribit"):
        await ex.place(Order(request(cid="g-abc-10", time_in_force="gtd", expire_at_ns=1), now_ns=0))
    assert len(session.calls) == 2  # the refused orders were never sent
