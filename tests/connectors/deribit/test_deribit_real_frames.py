"""Real Deribit answers and frames captured by other projects (tests/fixtures/deribit/README.md
says where each comes from), read right: an option ticker's empty side is no quote, a 2022
option's `last_price` "undefined" is no price, and `get_instruments` answers of 2019 and 2022
(no `instrument_type`) still tell inverse from linear."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.connectors.deribit.instruments import instrument_from_json
from tradingd.engine import InstrumentKind, OrderState, OrderUpdate, Side, Ticker
from tradingd.engine.model import InstrumentRegistry

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "deribit"
T_LOCAL = 1_700_000_000_000_000_000


def frame(name: str) -> bytes:
    """A fixture as the compact frame the venue sends."""
    return orjson.dumps(orjson.loads((FIXTURES / name).read_bytes()))


def decode_one(name: str) -> Any:
    dec = DeribitDecoder(InstrumentRegistry())
    [ev] = dec.decode(frame(name), T_LOCAL)
    return ev


# -- tickers: an empty side is written 0/0, and it is no quote --------------------------------


def test_a_deep_wing_option_with_no_bid_has_no_bid_and_no_mid() -> None:
    """Volengine's capture of the production feed (2026-09-18): `best_bid_price: 0.0,
    best_bid_amount: 0.0`. A bid of 0 would be a price a strategy could sell into, and a mid of
    half the ask; there is no bid at all."""
    t = decode_one("ws_ticker_option_empty_bid_2026.json")
    assert isinstance(t, Ticker) and t.instrument == "BTC-25SEP26-105000-C"
    assert (t.bid, t.bid_size) == (None, None)
    assert (t.ask, t.ask_size) == (0.0001, 39.2)
    assert t.mid is None
    assert t.mark == 0.0001 and t.bid_iv == 0.0 and t.ask_iv == pytest.approx(0.7695)
    assert t.greeks is not None and t.greeks.rho is None  # this capture has no rho


def test_an_option_with_no_quotes_and_no_trade_yet() -> None:
    """roq-deribit's capture (2022-04-15): both sides 0/0 and `"last_price": "undefined"`. Today
    the string made the whole ticker malformed (its mark and greeks lost), and 0/0 sides were
    quotes at 0."""
    t = decode_one("ws_ticker_option_no_quotes_2022.json")
    assert isinstance(t, Ticker) and t.instrument == "SOL-29APR22-95-C"
    assert (t.bid, t.bid_size, t.ask, t.ask_size, t.mid) == (None, None, None, None, None)
    assert t.last is None
    assert (t.mark, t.mark_iv, t.open_interest) == (0.1126, 1.0, 0.0)
    assert t.greeks is not None and t.greeks.delta == 0.6711


def test_an_expiring_option_with_a_string_delivery_price() -> None:
    """roq-deribit's capture (2020-04-02): `estimated_delivery_price: "expired"` (not read), zero
    greeks and a zero bid IV beside a real bid: every quote is kept."""
    t = decode_one("ws_ticker_option_expired_2020.json")
    assert isinstance(t, Ticker)
    assert (t.bid, t.bid_size, t.ask, t.ask_size) == (0.0005, 1.2, 0.0775, 3.0)
    assert (t.mark_iv, t.bid_iv, t.ask_iv) == (2.5, 0.0, 5.0)
    assert t.underlying == 6663.43


def test_a_real_user_orders_frame_with_an_exponent_price() -> None:
    """roq-deribit's capture (2025-12-12): a filled IOC order, its price written `9.21e4`."""
    o = decode_one("ws_user_orders_filled.json")
    assert isinstance(o, OrderUpdate)
    assert (o.status, o.side, o.price, o.size, o.filled_size) == (
        OrderState.FILLED,
        Side.BUY,
        Decimal("92100.0"),
        Decimal("10.0"),
        Decimal("10.0"),
    )
    assert o.avg_fill_price == Decimal("92037.0") and o.client_order_id == "YwACqyGDa0UAAQAAAAAA"


# -- instruments: inverse or linear from what each answer says --------------------------------


def learned(name: str) -> dict[str, Any]:
    """The instruments the decoder learns from an HTTP `get_instruments` answer (these captures
    are HTTP answers: no JSON-RPC `id`)."""
    dec = DeribitDecoder(InstrumentRegistry())
    result = orjson.loads((FIXTURES / name).read_bytes())["result"]
    assert dec.learn_instruments(result) == len(result)
    assert dec.stats.skipped_instruments == 0
    return {i.symbol: i for i in dec.registry}


def test_a_2019_answer_without_instrument_type_or_settlement_currency() -> None:
    """roq-deribit's capture (2019-08-26, testnet): no `instrument_type`, no `future_type`, no
    `settlement_currency`. USD-quoted, so coin-settled: every one is inverse (today all were
    read as linear)."""
    inst = learned("http_get_instruments_2019.json")
    assert sorted(inst) == ["BTC-27DEC19", "BTC-27SEP19", "BTC-PERPETUAL"]
    for i in inst.values():
        assert i.inverse and i.settle == "BTC" and i.quote == "USD" and i.contract_size == 10
    assert inst["BTC-PERPETUAL"].kind is InstrumentKind.PERPETUAL
    assert inst["BTC-27SEP19"].kind is InstrumentKind.FUTURE


def test_a_2022_answer_with_only_future_type() -> None:
    """ccxt's capture (2022-03-31): futures say `future_type: "reversed"` and no
    `instrument_type`; the option says neither."""
    inst = learned("http_get_instruments_2022.json")
    assert inst["BTC-27MAY22"].inverse and inst["BTC-PERPETUAL"].inverse
    option = inst["BTC-24JUN22-52000-P"]
    assert option.kind is InstrumentKind.OPTION and not option.inverse and option.settle == "BTC"


def test_todays_answers_still_read_the_same() -> None:
    """NautilusTrader's captures (2026): `instrument_type` is there, and wins."""
    inst = learned("http_get_instruments.json")
    assert inst["BTC-PERPETUAL"].inverse and inst["BTC-27DEC24"].inverse
    assert not inst["BTC-27DEC24-100000-C"].inverse


@pytest.mark.parametrize(
    ("fields", "inverse"),
    [
        # Linear USDC products, however old the answer: settled in the quote currency.
        ({"quote_currency": "USDC", "settlement_currency": "USDC"}, False),
        ({"quote_currency": "USD", "settlement_currency": "BTC"}, True),
        ({"quote_currency": "USDC", "settlement_currency": "USDC", "future_type": "linear"}, False),
        # The declared type wins over the currencies.
        ({"quote_currency": "USD", "settlement_currency": "BTC", "instrument_type": "linear"}, False),
    ],
)
def test_inverse_or_linear_is_decided_in_one_place(fields: dict[str, str], inverse: bool) -> None:
    item = {
        "kind": "future",
        "instrument_name": "BTC_USDC-PERPETUAL",
        "base_currency": "BTC",
        "tick_size": 0.5,
        "min_trade_amount": 0.001,
        "settlement_period": "perpetual",
        **fields,
    }
    assert instrument_from_json(item).inverse is inverse


def test_an_answer_that_does_not_say_is_refused_not_guessed() -> None:
    item = {
        "kind": "future",
        "instrument_name": "XYZ_EURR-PERPETUAL",
        "base_currency": "XYZ",
        "quote_currency": "EURR",
        "tick_size": 0.5,
        "min_trade_amount": 1,
    }
    with pytest.raises(ValueError, match="settlement_currency"):
        instrument_from_json(item)
    with pytest.raises(ValueError, match="instrument_type"):
        instrument_from_json({**item, "settlement_currency": "EURR", "instrument_type": "quanto"})
    dec = DeribitDecoder(InstrumentRegistry())
    assert dec.learn_instruments([item]) == 0
    assert dec.stats.skipped_instruments == 1


def test_the_synthetic_market_writes_an_empty_side_as_deribit_does() -> None:
    """The bundled generator (backtest samples, the simulator's feed) writes an empty side the
    way the captures above show it, 0/0, so every backtest exercises the real shape."""
    from tradingd.simulators.deribit.generator import DeribitFeed

    feed = DeribitFeed.create(seed=3, start_ns=1_795_478_400_000_000_000)
    i = next(k for k, st in enumerate(feed._insts) if st.option)
    st = feed._insts[i]
    _, _, ask, ask_lots = st.top
    st.top = (None, 0, ask, ask_lots)
    raw = feed._ticker_frame(feed.market.start_ns, i)
    data = orjson.loads(raw)["params"]["data"]
    assert (data["best_bid_price"], data["best_bid_amount"], data["bid_iv"]) == (0.0, 0.0, 0.0)
    dec = DeribitDecoder(InstrumentRegistry())
    [t] = dec.decode(raw, T_LOCAL)
    assert isinstance(t, Ticker) and t.bid is None and t.bid_size is None and t.mid is None
