"""Numbers in log lines read as numbers a person expects. The JSON line keeps a Decimal's exact
value, in plain digits (`"0"`, never `"0E+1"`; `"0.000000168"`, never `"1.68E-7"`); the pretty
console rounds for people (8 significant digits, never the integer part) and reads at 80
columns: the time to the millisecond, no `key=None`, the fields in the order they were logged,
long lists cut short. A simulated Deribit fee is charged in whole 1e-8, as the venue charges it
(it was `rate x size / price` to 28 digits: `"0.0001139967899029849519854943056"`)."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import cast

import pytest
import structlog
import trio

from tests.support.backtests import BuyOnce
from tests.support.log_streams import _Stream
from tradingd.connectors.deribit import PLUGIN
from tradingd.connectors.deribit.fees import DeribitFees
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import Liquidity, OrderState, OrderUpdate, Side
from tradingd.engine.backtest.kernel import BacktestKernel, DataSource
from tradingd.engine.logs.setup import configure_logging, human_number
from tradingd.engine.logs.tail import LogView
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.model.money import decimal_text
from tradingd.engine.runtime.live import LiveEngine
from tradingd.engine.venue import Reconciler
from tradingd.simulators.deribit import SIMULATOR as DERIBIT_SIM

LONG_FEE = "0.0001139967899029849519854943056"  # seen in a backtest's order.fill lines
# Long and unique (a short registered secret would redact other tests' lines); nothing connects.
_CREDS = {
    "DERIBIT_CLIENT_ID": "log-numbers-client-7f3a",
    "DERIBIT_CLIENT_SECRET": "log-numbers-secret-91c2e0",
}


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def json_lines(stream: _Stream) -> list[dict[str, object]]:
    return [json.loads(raw) for raw in stream.buffer.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0E+1"), "0"),  # a maker's 0 x 20 / 91274.5
        (Decimal("0E-8"), "0"),
        (Decimal("-0E+2"), "-0"),
        (Decimal("1.68E-7"), "0.000000168"),
        (Decimal("1.2E+3"), "1200"),
        (Decimal("0.00150"), "0.00150"),  # no exponent: its own digits
        (Decimal(LONG_FEE), LONG_FEE),  # exact in JSON
        (Decimal("-91274.5"), "-91274.5"),
    ],
)
def test_decimal_text_is_exact_and_plain(value: Decimal, text: str) -> None:
    assert decimal_text(value) == text and Decimal(text) == value and "E" not in text


def test_json_lines_write_decimals_in_plain_exact_digits() -> None:
    stream = _Stream()
    configure_logging("info", "json", stream)
    structlog.get_logger("t").info(
        "order.fill",
        fee=Decimal("0E+1"),
        tiny=Decimal("1.68E-7"),
        big=Decimal("1.2E+3"),
        exact=Decimal(LONG_FEE),
        nested={"fees": [Decimal("0E-8")]},
        trade_id="5E+3",  # an id is text, whatever it looks like
    )
    [line] = stream.buffer.getvalue().splitlines()
    assert b"E+" not in line.replace(b'"5E+3"', b"") and b"E-" not in line
    entry = json.loads(line)
    assert entry["fee"] == "0" and entry["tiny"] == "0.000000168" and entry["big"] == "1200"
    assert entry["exact"] == LONG_FEE and entry["nested"] == {"fees": ["0"]}
    assert entry["trade_id"] == "5E+3"


def test_json_lines_write_text_as_it_was_logged() -> None:
    """Only a Decimal becomes plain digits: a string that looks like a number is written as it
    was logged. A foreign order's label "1E+10" was written "10000000000", and a grep for the
    label found nothing; so was any text field (`note`, a nested one) that parsed as a number."""
    stream = _Stream()
    configure_logging("info", "json", stream)
    structlog.get_logger("t").warning(
        "order.foreign_open",
        label="1E+10",
        note="2.5E-7",
        venue_data={"text": "0E+1"},
        size=Decimal("2E+1"),
    )
    entry = json_lines(stream)[0]
    assert entry["label"] == "1E+10" and entry["note"] == "2.5E-7"
    assert entry["venue_data"] == {"text": "0E+1"} and entry["size"] == "20"


def test_pretty_rounds_for_people_while_the_json_file_keeps_the_exact_value(tmp_path: Path) -> None:
    stream = _Stream()
    path = tmp_path / "t.log"
    configure_logging("info", "pretty", stream, path=path)
    structlog.get_logger("t").info(
        "order.fill",
        strategy="gamma_btc",
        fee=Decimal(LONG_FEE),
        zero=Decimal("0E+1"),
        mark_iv=0.5428000000000001,
        text_fee=LONG_FEE,  # logged as text: still a number to a reader
        token_id="71321045679252212594626385532706912750332728571942532289631379312455583992563",
        price=Decimal("91274.5"),
        reason=None,
    )
    pretty = stream.getvalue()
    assert "fee=0.00011399679 " in pretty and "text_fee=0.00011399679 " in pretty
    assert "zero=0 " in pretty and "mark_iv=0.5428 " in pretty and "price=91274.5" in pretty
    assert "token_id=71321045679252212594626385532706912750332728571942532289631379312455583992563" in pretty
    assert "reason" not in pretty and "Decimal(" not in pretty
    entry = json.loads(path.read_bytes())
    assert entry["fee"] == LONG_FEE and entry["zero"] == "0" and entry["mark_iv"] == 0.5428000000000001
    assert entry["reason"] is None


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal(LONG_FEE), "0.00011399679"),
        (0.5428000000000001, "0.5428"),
        (1e-05, "0.00001"),
        (Decimal("-1581.871234567891"), "-1581.8712"),
        (123456789012.75, "123456789013"),  # the integer part is never rounded
        (Decimal("0.00150"), "0.00150"),
        (3050.12, "3050.12"),
    ],
)
def test_human_numbers(value: Decimal | float, shown: str) -> None:
    assert human_number(value) == shown


def test_deribit_fees_are_charged_in_whole_1e8_of_the_coin() -> None:
    """A perpetual's taker fee is `0.05% x size / price` (in BTC), rounded to 1e-8 as Deribit
    charges it; a maker's 0% is 0 (not `0E+1`); a fee already coarser keeps its digits."""
    registry = InstrumentRegistry()
    decoder = PLUGIN.decoder(registry)
    rec = Path(__file__).resolve().parent.parent / "fixtures" / "deribit" / "http_get_instruments.json"
    decoder.decode(rec.read_bytes(), 0)
    perp = registry.get("deribit", "BTC-PERPETUAL")
    assert perp is not None and perp.inverse
    taker, ccy = DeribitFees().fee(perp, Decimal("91274.5"), Decimal("20810"), Liquidity.TAKER, None)
    assert (taker, ccy) == (Decimal("0.00011400"), "BTC") and str(taker) == "0.00011400"
    maker, _ = DeribitFees().fee(perp, Decimal("91274.5"), Decimal("20"), Liquidity.MAKER, None)
    assert str(maker) == "0"
    coarse, _ = DeribitFees().fee(perp, Decimal("100000"), Decimal("10000"), Liquidity.TAKER, None)
    assert str(coarse) == "0.00005"


def test_a_backtests_fill_lines_read_as_numbers(tmp_path: Path) -> None:
    rec = tmp_path / "s.rec"
    DERIBIT_SIM.generate_sample(rec, {"hours": 0.02, "seed": 5})
    stream = _Stream()
    configure_logging("info", "json", stream)
    kernel = BacktestKernel({"deribit": PLUGIN}, [DataSource("deribit", rec)], [BuyOnce()])
    result = trio.run(kernel.run)
    fills = [e for e in json_lines(stream) if e["event"] == "order.fill"]
    assert fills and result.strategies["holder"].fills == len(fills)
    for e in fills:
        for key in ("price", "size", "fee"):
            text = e[key]
            assert isinstance(text, str) and re.fullmatch(r"-?\d+(\.\d{1,8})?", text), (key, text)


def test_logs_pretty_prints_a_json_log_for_people_at_80_columns() -> None:
    """`tradingd logs` (pretty) of an order.fill as a backtest writes it: shorter than the
    line it was (127 characters shorter here), its numbers rounded, the ids and the JSON's
    own order kept; `--json` passes the exact bytes."""
    line = (
        b'{"ts":"2026-11-24T00:00:03.250123Z","level":"info","event":"order.fill","strategy":"gamma_btc",'
        b'"venue":"deribit","instrument":"BTC-PERPETUAL","client_order_id":"gamma_btc-bt-2",'
        b'"trade_id":"SIMT-2","side":"sell","price":"91274.5","size":"20810.0",'
        b'"fee":"' + LONG_FEE.encode() + b'","liquidity":"taker","reason":null,'
        b'"instruments":["A-1","A-2","A-3","A-4","A-5","A-6","A-7","A-8","A-9"],'
        b'"clock":"sim","wall_ts":"2026-12-06T09:29:42.162025Z"}\n'
    )
    out = io.BytesIO()
    LogView(out).feed([line])
    text = out.getvalue().decode()
    assert text.startswith("2026-11-24T00:00:03.250Z [info")
    assert text.index("strategy=") < text.index("venue=") < text.index("instrument=") < text.index("fee=")
    assert "fee=0.00011399679 " in text and "client_order_id=gamma_btc-bt-2" in text
    assert "instruments=[A-1, A-2, A-3, A-4, ... 5 more]" in text
    for noise in ("reason", "None", "wall_ts", "clock=", "'"):
        assert noise not in text
    assert len(text) < len(line) - 100
    raw = io.BytesIO()
    LogView(raw, json=True).feed([line])
    assert raw.getvalue() == line


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_on_an_80_column_terminal_a_long_line_goes_on_below_between_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A terminal cut the 200-character order lines anywhere (mid-number); now they go on below,
    indented, between fields, within the terminal's width, colours or not. A pipe keeps one
    line per entry (for grep)."""
    line = (
        b'{"ts":"2026-11-24T00:00:01.882123Z","level":"info","event":"order.fill","strategy":"gamma_btc",'
        b'"venue":"deribit","instrument":"BTC-PERPETUAL","client_order_id":"gamma_btc-bt-2",'
        b'"trade_id":"SIMT-2","side":"sell","price":"91274.5","size":"20810.0","fee":"0.00011400",'
        b'"liquidity":"taker"}\n'
    )
    flat = io.BytesIO()
    LogView(flat).feed([line])  # not a terminal: one line
    assert flat.getvalue().count(b"\n") == 1 and len(flat.getvalue()) > 160
    fields = flat.getvalue().decode().split()[4:]
    for colors in (False, True):
        out = io.BytesIO()
        LogView(out, colors=colors, width=lambda: 80).feed([line])
        shown = _ANSI.sub("", out.getvalue().decode()).splitlines()
        assert len(shown) == 3 and all(len(s) <= 80 for s in shown)
        assert shown[0].startswith("2026-11-24T00:00:01.882Z [info") and "order.fill" in shown[0]
        assert all(s.startswith("    ") and not s.startswith("     ") for s in shown[1:])
        assert " ".join(shown).split()[4:] == fields  # the same fields, in the same order
    # The daemon's own pretty console on a terminal (COLUMNS=80) wraps the same way.
    monkeypatch.setenv("COLUMNS", "80")

    class Terminal(_Stream):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    configure_logging("info", "pretty", stream)
    structlog.get_logger("t").info(
        "order.fill", **{k: v for k, v in json.loads(line).items() if k not in ("ts", "level", "event")}
    )
    shown = _ANSI.sub("", stream.getvalue()).splitlines()
    assert len(shown) == 3 and all(len(s) <= 80 for s in shown)


def test_pretty_lines_to_stderr_go_above_a_progress_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    """`tradingd backtest` on a terminal draws rich's progress bar on stderr, and rich puts a
    proxy in `sys.stderr` that prints each line above the bar. The log's lines were written to
    the stderr captured at set-up, through the bar (`-:--:--2026-11-24T00:00:00.132Z [info`);
    they now go to `sys.stderr` as it is when each line is written."""
    proxy = io.StringIO()
    configure_logging("info", "pretty", sys.__stderr__)
    monkeypatch.setattr(sys, "stderr", proxy)
    structlog.get_logger("t").info("order.fill", fee=Decimal(LONG_FEE))
    assert "order.fill" in proxy.getvalue() and "fee=0.00011399679" in proxy.getvalue()


@pytest.mark.parametrize(
    ("size", "price", "maker_rate"),
    [
        (Decimal("0.0002"), Decimal("100000"), None),  # 0.0005 x 0.0002 / 100000 = 1E-12 BTC
        (Decimal("2.4"), Decimal("1000000"), None),  # 1.2E-9 BTC
        (Decimal("4.9"), Decimal("100000"), Decimal("-0.0001")),  # a rebate of -4.9E-9 BTC
    ],
)
def test_a_deribit_fee_below_half_a_1e8_is_a_plain_zero(
    size: Decimal, price: Decimal, maker_rate: Decimal | None
) -> None:
    """A fee that rounds away to nothing in 1e-8 is `0`: the rounding made `0E-8` (or `-0E-8`
    for a rebate), the exponent form the rounding was there to end."""
    registry = InstrumentRegistry()
    decoder = PLUGIN.decoder(registry)
    rec = Path(__file__).resolve().parent.parent / "fixtures" / "deribit" / "http_get_instruments.json"
    decoder.decode(rec.read_bytes(), 0)
    perp = registry.get("deribit", "BTC-PERPETUAL")
    assert perp is not None and perp.inverse
    fees = DeribitFees(future_maker=maker_rate)
    liquidity = Liquidity.TAKER if maker_rate is None else Liquidity.MAKER
    fee, _ = fees.fee(perp, price, size, liquidity, None)
    assert fee == 0 and str(fee) == "0"


def test_pretty_rounds_prices_named_like_bid_and_never_an_ids_text() -> None:
    """Any key ending in `id` was taken for an id: `bid`, `mid`, `best_bid` (prices) were never
    rounded. Ids are matched by name and suffix: `order_id`, `orderId`, `label`, `token`..."""
    stream = _Stream()
    configure_logging("info", "pretty", stream)
    structlog.get_logger("t").info(
        "quote",
        bid=LONG_FEE,
        mid=Decimal(LONG_FEE),
        best_bid=LONG_FEE,
        order_id=LONG_FEE,
        orderId=LONG_FEE,
        label=LONG_FEE,
        token=LONG_FEE,
        tx_hash=LONG_FEE,
    )
    pretty = stream.getvalue()
    for key in ("bid", "mid", "best_bid"):
        assert f" {key}=0.00011399679 " in pretty or pretty.rstrip().endswith(f" {key}=0.00011399679")
    for key in ("order_id", "orderId", "label", "token", "tx_hash"):
        assert f" {key}={LONG_FEE}" in pretty


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1E+40"), "1" + "0" * 40),  # 40 zeros: still written out
        (Decimal("1E-41"), "0." + "0" * 40 + "1"),
        (Decimal("1E+41"), "1E+41"),  # beyond: its exponent form, exact and short
        (Decimal("1E-42"), "1E-42"),
        (Decimal("1E+100000000"), "1E+100000000"),  # a hostile venue's number: 100 MB written out
        (Decimal("-4.2E-100000000"), "-4.2E-100000000"),
    ],
)
def test_decimal_text_writes_at_most_40_zeros(value: Decimal, text: str) -> None:
    assert decimal_text(value) == text and Decimal(text) == value


def test_an_absurd_number_keeps_a_log_line_short(tmp_path: Path) -> None:
    """`1E+100000000` from a venue made a 100 MB JSON line (and the same again in the pretty
    console): now its exponent form, in both."""
    stream = _Stream()
    path = tmp_path / "t.log"
    configure_logging("info", "pretty", stream, path=path)
    structlog.get_logger("t").warning("order.foreign_open", size=Decimal("1E+100000000"), price="9E+99999999")
    assert len(path.read_bytes()) < 300 and json.loads(path.read_bytes())["size"] == "1E+100000000"
    assert len(stream.getvalue()) < 300 and "size=1E+100000000" in stream.getvalue()
    assert human_number(Decimal("-1.5E-100000000")) == "-1.5E-100000000"


def test_a_foreign_orders_line_keeps_its_label_and_writes_its_numbers_plainly() -> None:
    """An order we did not send (`order.foreign_open`): its label, someone else's text, was
    rewritten "1E+10" -> "10000000000" (a grep for it found nothing); its size and price, logged
    as `str(Decimal)`, are now plain digits by themselves (the writer no longer rewrites text)."""
    stream = _Stream()
    configure_logging("info", "json", stream)
    engine = LiveEngine([], {"deribit": DeribitSettings()}, mode="live", clock=lambda: 10, environ=_CREDS)
    update = OrderUpdate(
        venue="deribit",
        instrument="BTC-PERPETUAL",
        ts_exchange=None,
        ts_local=10,
        order_id="V9",
        client_order_id="1E+10",
        status=OrderState.OPEN,
        side=Side.SELL,
        price=Decimal("1.5E+4"),
        size=Decimal("2E+1"),
        filled_size=Decimal(0),
    )
    trio.run(engine._foreign_order, "deribit", cast("Reconciler", None), update)  # "report": no call
    [entry] = [e for e in json_lines(stream) if e["event"] == "order.foreign_open"]
    assert entry["label"] == "1E+10" and entry["size"] == "20" and entry["price"] == "15000"
