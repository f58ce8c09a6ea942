"""A backtest replayed from the decoded-event cache is the frame path's, byte for byte: the same
report JSON, the same JSON log lines (but the cache's own `evcache.*` lines and wall-clock
fields), and the same books seen by a strategy at every event. On the bundled sample (a slice)
and on hostile data of every venue: malformed frames, bare and bad lines, book gaps, crossed
books, changes to books never snapshotted, instrument definitions in the middle of the file,
channels the decoder does not read."""

from __future__ import annotations

import contextlib
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import zstandard

from tests.support import deribit_frames as dfr
from tests.support.backtests import bundled_config_on
from tests.support.log_streams import _Stream
from tradingd.config import load_config
from tradingd.connectors.derive import PLUGIN as DERIVE
from tradingd.connectors.polymarket import PLUGIN as POLYMARKET
from tradingd.engine import MarketEvent, Strategy, Subscription
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.backtest.report import report_dict
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.model.events import BookUpdate, Side
from tradingd.engine.model.orders import OrderRequest
from tradingd.engine.store import format_ts
from tradingd.engine.store.evcache import EventCache, _slots
from tradingd.engine.venue.plugins import load_venue
from tradingd.simulators.deribit import SIMULATOR as DERIBIT_SIM

ROOT = Path(__file__).resolve().parents[2]
T0 = dfr.T0_MS * 1_000_000
# Wall-clock fields: when the line was written before the first frame, how long the run took.
_WALL = ("timestamp", "duration_s", "elapsed_s", "wall_s", "wall_ts")


class Probe(Strategy):
    """Records the book of every event's instrument as it sees it (top, levels, validity,
    sequence), and trades a little on each venue so that fills depend on the books."""

    def __init__(self, name: str, subs: list[Subscription]) -> None:
        super().__init__(name)
        self.subs = subs
        self.seen: list[Any] = []
        self.orders = 0

    def required_subscriptions(self) -> list[Subscription]:
        return self.subs

    async def on_event(self, event: MarketEvent) -> None:
        book = self.ctx.book(event.venue, event.instrument)
        state = None
        if book is not None:
            state = (book.top(), book.depth(), book.valid, book.sequence, book.quantum, type(book).__name__)
        self.seen.append((type(event).__name__, event.instrument, event.ts_local, state))
        if isinstance(event, BookUpdate) and event.best_ask is not None and self.orders < 3:
            self.orders += 1
            # Refused (a size below the minimum...): the same on both paths, logged the same.
            with contextlib.suppress(Exception):
                await self.ctx.place_order(
                    OrderRequest(
                        venue=event.venue,
                        instrument=event.instrument,
                        side=Side.BUY,
                        price=Decimal(repr(event.best_ask)),
                        size=Decimal("10"),
                    )
                )


def _books_state(kernel: BacktestKernel) -> list[Any]:
    """Every book of every venue, every slot (a venue's own fields too): the strict view."""
    out = []
    for venue, decoder in sorted(kernel.decoders.items()):
        for inst in sorted(decoder.book_instruments()):
            b = decoder.book(inst)
            out.append(
                (
                    venue,
                    inst,
                    type(b).__name__,
                    tuple((n, repr(getattr(b, n, None))) for n in _slots(type(b))),
                )
            )
    return out


class _StrictKernel(BacktestKernel):
    """Records the state of EVERY book after each frame's decode (not only the event's
    instrument's, as the probe sees it): a book changed on one path only shows here."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.books_trace: list[Any] = []

    def _data(self) -> Any:
        readers, stream, decoders, writer = super()._data()

        def wrap(decode: Any) -> Any:
            def traced(frame: Any, ts: int) -> Any:
                try:
                    return decode(frame, ts)
                finally:
                    self.books_trace.append((ts, _books_state(self)))

            return traced

        return readers, stream, [wrap(d) for d in decoders], writer


def _run(
    plugins: dict[str, Any],
    sources: list[DataSource],
    subs: list[Subscription],
    cache: EventCache | None,
) -> tuple[str, list[str], list[Any], _StrictKernel]:
    stream = _Stream()
    configure_logging("info", "json", stream)
    probe = Probe("probe", subs)
    kernel = _StrictKernel(plugins, sources, [probe], BacktestSettings(), event_cache=cache)
    result = trio.run(kernel.run)
    report = report_dict(result)
    for key in _WALL:
        report.pop(key, None)
    lines = []
    for raw in stream.buffer.getvalue().splitlines():
        rec = orjson.loads(raw)
        if str(rec.get("event", "")).startswith("evcache."):
            continue
        rec.pop("wall_ts", None)
        if rec.get("clock") != "sim":
            for key in _WALL:
                rec.pop(key, None)
        lines.append(orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode())
    configure_logging("warning", "json", io.StringIO())
    return orjson.dumps(report, option=orjson.OPT_SORT_KEYS).decode(), lines, probe.seen, kernel


def _assert_same(
    plugins: dict[str, Any], sources: list[DataSource], subs: list[Subscription], tmp: Path
) -> tuple[_StrictKernel, _StrictKernel]:
    cache = EventCache(tmp / "cache", write_on=1)
    report0, logs0, seen0, reference = _run(plugins, sources, subs, None)
    report1, logs1, seen1, writer = _run(plugins, sources, subs, cache)
    report2, logs2, seen2, reader = _run(plugins, sources, subs, EventCache(tmp / "cache", write_on=1))
    assert writer.data_path == "frames, cache written", "the first run writes the cache"
    assert reader.data_path == "cache", "the second run reads it"
    assert report1 == report0
    assert report2 == report0
    assert logs1 == logs0
    assert logs2 == logs0
    assert seen1 == seen0
    assert seen2 == seen0
    assert writer.books_trace == reference.books_trace
    assert reader.books_trace == reference.books_trace, "every book, after every frame"
    assert reader.decoders[sources[0].venue].stats == writer.decoders[sources[0].venue].stats
    return writer, reader


def _write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _at(ms: int, frame: bytes) -> bytes:
    return format_ts(T0 + ms * 1_000_000).encode() + b" " + frame


# -- Deribit ------------------------------------------------------------------------------------
def _deribit_hostile(path: Path, *, bare: bool = True) -> Path:
    perp = "BTC-PERPETUAL"
    instruments = dfr.instruments()
    late = orjson.loads(instruments)
    late["id"] = 99
    late["result"] = [dict(late["result"][0], instrument_name="BTC-LATE-1", tick_size=0.5)]
    lines = [
        _at(0, instruments),
        _at(1, dfr.snapshot(perp, 1, 10, [(90000.0, 5.0), (89999.5, 3.0)], [(90000.5, 4.0), (90001.0, 1.0)])),
        _at(2, dfr.change(perp, 2, 11, [["change", 90000.0, 6.0]], [["delete", 90000.5, 0.0]])),
        b"not a recording line at all",
        _at(3, b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms"'),
        _at(4, dfr.trade(perp, 4, 90001.0, 10.0, "buy", "t1")),
        _at(5, dfr.ticker(perp, 5, bid=90000.0, ask=90001.0, mark=90000.5, index=90000.2)),
        b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}',  # a bare frame
        _at(6, dfr.change(perp, 6, 15, [["new", 89990.0, 1.0]], [])),  # a gap: prev 14 != 11
        _at(7, dfr.change(perp, 7, 16, [["new", 89991.0, 1.0]], [])),  # ignored: invalid book
        _at(8, dfr.snapshot(perp, 8, 20, [(90000.0, 2.0)], [(90002.0, 2.0)])),  # resync
        _at(9, dfr.change(perp, 9, 21, [["new", 90003.0, 1.0]], [])),  # crossed
        _at(10, b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}'),
        _at(11, b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"chart.x.1","data":{"a":1}}}'),
        _at(12, orjson.dumps(late)),  # an instrument defined in the middle of the file
        _at(13, dfr.snapshot("BTC-LATE-1", 13, 1, [(100.0, 1.0)], [(100.5, 1.0)])),
        _at(14, dfr.snapshot(perp, 14, 30, [(90000.0, 2.0)], [(90000.5, 2.0)])),
        _at(15, dfr.change(perp, 15, 31, [["new", 89999.0, 7.0]], [["change", 90000.5, 1.0]])),
        _at(16, b"[1, 2, 3]"),
        _at(17, dfr.ticker(perp, 17, bid=90001.0, ask=90000.0, mark=90000.5, index=90000.2)),  # malformed
    ]
    if not bare:  # a merge of several files refuses bare frames outright
        lines = [line for line in lines if not line.startswith(b"{")]
    return _write_lines(path, lines)


@pytest.mark.parametrize("exact", [True, False], ids=["exact-books", "shadow-books"])
def test_deribit_hostile_data_replays_the_same_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exact: bool
) -> None:
    """Both ways of writing: trusting the decoder's promise of exact book updates (its own), and
    keeping shadow books (every decoder that makes no such promise)."""
    from tradingd.connectors.deribit.codec import DeribitDecoder

    monkeypatch.setattr(DeribitDecoder, "exact_books", exact)
    path = _deribit_hostile(tmp_path / "deribit.rec")
    subs = [Subscription("deribit", "BTC-PERPETUAL"), Subscription("deribit", "BTC-LATE-1")]
    writer, reader = _assert_same(
        {"deribit": load_venue("deribit")}, [DataSource("deribit", path)], subs, tmp_path
    )
    result_books = reader.decoders["deribit"].book_instruments()
    assert sorted(result_books) == ["BTC-LATE-1", "BTC-PERPETUAL"]
    assert writer.registry.get("deribit", "BTC-LATE-1") is not None
    assert reader.registry.get("deribit", "BTC-LATE-1") == writer.registry.get("deribit", "BTC-LATE-1")


def test_a_decoder_fault_invalidates_the_books_on_the_cache_path_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unforeseen exception in a handler (a DecoderFault) invalidates every book of the
    venue: a replay from the cache must hold them invalid too until a frame resyncs them."""
    import tradingd.connectors.deribit.codec as codec

    real_top = codec._top

    def faulty(inst: Any, bid: Any, *rest: Any) -> Any:
        if bid == 12345.5:
            raise ZeroDivisionError("an unforeseen handler bug")
        return real_top(inst, bid, *rest)

    monkeypatch.setattr(codec, "_top", faulty)
    perp, late_name = "BTC-PERPETUAL", "BTC-LATE-1"
    instruments = dfr.instruments()
    late = orjson.loads(instruments)
    late["id"] = 99
    late["result"] = [dict(late["result"][0], instrument_name=late_name, tick_size=0.5)]
    lines = [
        _at(0, instruments),
        _at(0, orjson.dumps(late)),
        _at(1, dfr.snapshot(perp, 1, 10, [(90000.0, 5.0)], [(90000.5, 4.0)])),
        _at(1, dfr.snapshot(late_name, 1, 10, [(100.0, 5.0)], [(100.5, 4.0)])),
        _at(2, dfr.ticker(perp, 2, bid=12345.5, ask=90001.0, mark=90000.5, index=90000.2)),  # the fault
        *[_at(3 + i, dfr.trade(perp, 3 + i, 90001.0, 1.0, "buy", f"t{i}")) for i in range(5)],
        _at(9, dfr.trade(late_name, 9, 100.5, 1.0, "buy", "q1")),
    ]
    path = _write_lines(tmp_path / "fault.rec", lines)
    subs = [Subscription("deribit", perp), Subscription("deribit", late_name)]
    _, reader = _assert_same(
        {"deribit": load_venue("deribit")}, [DataSource("deribit", path)], subs, tmp_path
    )
    late_book = reader.decoders["deribit"].book(late_name)
    assert late_book is not None and not late_book.valid


def test_deribit_grouped_books_beside_incremental_ones_replay_the_same_from_the_cache(tmp_path: Path) -> None:
    """A grouped top-N book's snapshot names an instrument whose incremental book is the one a
    strategy sees, and leaves it as it was: the writer stores it whole, never predicts it."""
    from tests.store.test_evcache import _grouped_and_quotes

    path = _grouped_and_quotes(tmp_path)
    subs = [Subscription("deribit", "BTC-PERPETUAL"), Subscription("deribit", "ETH-PERPETUAL")]
    _assert_same({"deribit": load_venue("deribit")}, [DataSource("deribit", path)], subs, tmp_path)


def test_the_generated_sample_replays_the_same_from_the_cache(tmp_path: Path) -> None:
    # The bundled sample's generator (the same feed, a quarter of an hour): the instrument
    # definitions, books of every kind, tickers and trades of perpetuals and options. Made here
    # rather than read from data/, which only the README's first command fills.
    path = tmp_path / "sample.rec.zst"
    DERIBIT_SIM.generate_sample(path, {"seed": 5, "hours": 0.25})
    subs = [
        Subscription("deribit", "BTC-PERPETUAL"),
        Subscription("deribit", "ETH-PERPETUAL"),
    ]
    _assert_same({"deribit": load_venue("deribit")}, [DataSource("deribit", path)], subs, tmp_path)


def test_the_example_strategies_trade_the_same_from_the_cache(tmp_path: Path) -> None:
    """The README's backtest (both example strategies, which quote, hedge and fill) gives the same
    report from the cache as from the frames."""
    path = tmp_path / "sample.rec.zst"
    DERIBIT_SIM.generate_sample(path, {"seed": 3, "hours": 0.25})
    loaded = load_config(ROOT / "config" / "backtest-deribit.toml")
    reports = []
    for cache in (
        None,
        EventCache(tmp_path / "cache", write_on=1),
        EventCache(tmp_path / "cache", write_on=1),
    ):
        kernel = BacktestKernel(
            {"deribit": load_venue("deribit")},
            [DataSource("deribit", path)],
            loaded.build_strategies(),
            event_cache=cache,
        )
        report = report_dict(trio.run(kernel.run))
        for key in _WALL:
            report.pop(key, None)
        reports.append((kernel.data_path, orjson.dumps(report, option=orjson.OPT_SORT_KEYS)))
    assert [p for p, _ in reports] == ["frames", "frames, cache written", "cache"]
    assert reports[1][1] == reports[0][1]
    assert reports[2][1] == reports[0][1]
    assert sum(s["fills"] for s in orjson.loads(reports[0][1])["strategies"].values()) > 0


# -- Polymarket ---------------------------------------------------------------------------------
_TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
_OTHER = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
_MARKET = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"


def _pm_book(asset: str, ms: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> bytes:
    return orjson.dumps(
        {
            "event_type": "book",
            "market": _MARKET,
            "asset_id": asset,
            "bids": [{"price": p, "size": s} for p, s in bids],
            "asks": [{"price": p, "size": s} for p, s in asks],
            "timestamp": str(1703875200000 + ms),
            "hash": f"0xh{ms}",
        }
    )


def _pm_change(asset: str, ms: int, price: str, size: str, side: str, bid: str, ask: str) -> bytes:
    return orjson.dumps(
        {
            "event_type": "price_change",
            "market": _MARKET,
            "price_changes": [
                {
                    "asset_id": asset,
                    "price": price,
                    "size": size,
                    "side": side,
                    "hash": f"0xc{ms}",
                    "best_bid": bid,
                    "best_ask": ask,
                }
            ],
            "timestamp": str(1703875200000 + ms),
        }
    )


def test_polymarket_hostile_data_replays_the_same_from_the_cache(tmp_path: Path) -> None:
    lines = [
        _at(0, _pm_book(_TOKEN, 0, [("0.50", "200"), ("0.49", "350")], [("0.51", "150"), ("0.52", "250")])),
        _at(1, _pm_change(_TOKEN, 1, "0.50", "100", "BUY", "0.50", "0.51")),
        _at(2, _pm_change(_OTHER, 2, "0.30", "10", "BUY", "0.30", "0.70")),  # no book yet
        _at(3, _pm_change(_TOKEN, 3, "0.505", "5", "BUY", "0.40", "0.51")),  # disagrees: a gap
        _at(4, _pm_change(_TOKEN, 4, "0.49", "0", "BUY", "0.50", "0.51")),  # ignored
        _at(5, b"PONG"),
        _at(6, b"{not json"),
        _at(7, _pm_book(_TOKEN, 7, [("0.50", "10")], [("0.51", "10")])),  # resync
        _at(8, _pm_book(_OTHER, 8, [("0.60", "10")], [("0.40", "10")])),  # crossed snapshot
        _at(9, _pm_change(_TOKEN, 9, "0.52", "10", "BUY", "0.52", "0.51")),  # crossed
        _at(10, b"[]"),
        _at(11, orjson.dumps({"event_type": "something_new", "market": _MARKET})),
        _at(12, _pm_book(_TOKEN, 12, [("0.45", "10")], [("0.55", "10")])),
        _at(13, _pm_change(_TOKEN, 13, "0.46", "3", "BUY", "0.46", "0.55")),
    ]
    path = _write_lines(tmp_path / "pm.rec", lines)
    subs = [Subscription("polymarket", _TOKEN), Subscription("polymarket", _OTHER)]
    _assert_same({"polymarket": POLYMARKET}, [DataSource("polymarket", path)], subs, tmp_path)


# -- Derive -------------------------------------------------------------------------------------
def _dv_book(
    ms: int, pid: int, bids: list[list[str]], asks: list[list[str]], channel: str = "orderbook.ETH-PERP.1.10"
) -> bytes:
    data = {
        "instrument_name": "ETH-PERP",
        "timestamp": 1700000000000 + ms,
        "publish_id": pid,
        "bids": bids,
        "asks": asks,
    }
    return orjson.dumps({"method": "subscription", "params": {"channel": channel, "data": data}})


def test_derive_hostile_data_replays_the_same_from_the_cache(tmp_path: Path) -> None:
    fixtures = ROOT / "tests" / "fixtures" / "derive" / "perps"
    instruments = orjson.loads((fixtures / "http_get_instruments_eth.json").read_bytes())
    lines = [
        _at(0, orjson.dumps(instruments)),
        _at(1, _dv_book(1, 1, [["3500", "1"], ["3499", "2"]], [["3501", "2"]])),
        _at(2, _dv_book(2, 2, [["3500", "3"]], [["3501", "1"]])),
        _at(3, _dv_book(3, 2, [["3500", "3"]], [["3501", "1"]])),  # the same id: ignored
        _at(4, _dv_book(4, 5, [["3500", "4"]], [["3502", "1"]])),  # skipped ids: a gap
        _at(5, _dv_book(5, 6, [["3503", "4"]], [["3502", "1"]])),  # crossed
        _at(6, _dv_book(6, 7, [["3504", "4"]], [["3502", "1"]])),  # crossed again: silent
        _at(7, _dv_book(7, 3, [["3500", "4"]], [["3502", "1"]])),  # went back: resync
        _at(8, b'{"jsonrpc":"2.0","id":7,"error":{"code":10000,"message":"nope"}}'),
        _at(9, b"\xff\xfe"),
        _at(10, _dv_book(10, 1, [["3499", "1"]], [["3500", "1"]], channel="orderbook.ETH-PERP.10.1")),
    ]
    path = _write_lines(tmp_path / "derive.rec", lines)
    subs = [Subscription("derive", "ETH-PERP")]
    _assert_same({"derive": DERIVE}, [DataSource("derive", path)], subs, tmp_path)


# -- two venues in one run ----------------------------------------------------------------------
def test_two_venues_merged_replay_the_same_from_the_cache(tmp_path: Path) -> None:
    d = _deribit_hostile(tmp_path / "deribit.rec", bare=False)
    pm = _write_lines(
        tmp_path / "pm.rec",
        [
            _at(1, _pm_book(_TOKEN, 0, [("0.50", "200")], [("0.51", "150")])),
            _at(5, _pm_change(_TOKEN, 1, "0.50", "100", "BUY", "0.50", "0.51")),
            b"garbage line",
        ],
    )
    plugins = {"deribit": load_venue("deribit"), "polymarket": POLYMARKET}
    sources = [DataSource("deribit", d), DataSource("polymarket", pm)]
    subs = [Subscription("deribit", "BTC-PERPETUAL"), Subscription("polymarket", _TOKEN)]
    _assert_same(plugins, sources, subs, tmp_path)


# -- the command --------------------------------------------------------------------------------
def test_the_command_caches_by_default_and_no_cache_bypasses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tradingd.cli.main import main

    config = bundled_config_on(tmp_path, hours=0.05, seed=7)
    cache = tmp_path / "cache"
    monkeypatch.setenv("TRADINGD_CACHE_DIR", str(cache))
    args = ["--log-format", "json", "backtest", "--config", str(config), "--no-progress"]

    assert main([*args, "--no-cache"]) == 0
    bypassed = capsys.readouterr().out
    assert "data: events decoded from the frames (--no-cache)" in bypassed
    assert not cache.exists(), "--no-cache writes nothing"
    assert main(args) == 0
    written = capsys.readouterr().out
    assert "data: events decoded from the frames, decoded-event cache written" in written
    assert len(list(cache.glob("*.evc"))) == 1
    assert main(args) == 0
    read = capsys.readouterr().out
    assert "data: events read from the decoded-event cache" in read

    def body(out: str) -> list[str]:  # the summary but its wall-clock figures and the data line
        return [line for line in out.splitlines() if "replayed in" not in line and "data: " not in line]

    assert body(read) == body(written) == body(bypassed)


# -- the same content elsewhere -----------------------------------------------------------------
def _cut_zst(raw: bytes) -> bytes:
    """`raw` compressed in flushed blocks without the frame's end: a .zst still being written."""
    obj = zstandard.ZstdCompressor().compressobj()
    out = []
    for i in range(0, len(raw), 500):
        out.append(obj.compress(raw[i : i + 500]))
        out.append(obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
    return b"".join(out)


@pytest.mark.parametrize("kind", ["file", "cut-zst", "directory"])
def test_the_same_data_elsewhere_replays_naming_its_own_files(tmp_path: Path, kind: str) -> None:
    """One entry serves a copied or moved data set (the key is the content), and a replay names
    the files where they are now: in malformed-frame and bad-line log lines, and in the report's
    `.zst` files cut short."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    hostile = _deribit_hostile(tmp_path / "hostile.rec", bare=kind == "file").read_bytes()
    if kind == "file":
        src: Path = first / "a.rec"
        src.write_bytes(hostile)
    elif kind == "cut-zst":
        src = first / "a.rec.zst"
        src.write_bytes(_cut_zst(hostile))
    else:
        src = first / "rec"
        src.mkdir()
        (src / "deribit-20261124T000000.000Z.rec").write_bytes(hostile + b"garbage\n")
    plugins = {"deribit": load_venue("deribit")}
    subs = [Subscription("deribit", "BTC-PERPETUAL"), Subscription("deribit", "BTC-LATE-1")]
    cache = tmp_path / "cache"
    assert _run(plugins, [DataSource("deribit", src)], subs, EventCache(cache, write_on=1))[
        3
    ].data_path.endswith("written")
    second.mkdir()
    moved = second / ("b" + src.name if src.is_file() else "rec")
    if src.is_dir():
        moved.mkdir()
        for f in src.iterdir():
            (moved / f.name).write_bytes(f.read_bytes())
    else:
        moved.write_bytes(src.read_bytes())
    report0, logs0, seen0, ref = _run(plugins, [DataSource("deribit", moved)], subs, None)
    report1, logs1, seen1, replay = _run(
        plugins, [DataSource("deribit", moved)], subs, EventCache(cache, write_on=1)
    )
    assert replay.data_path == "cache", "the same content: the same entry"
    assert str(first) not in report1 + "".join(logs1), "the replay names the files where they are"
    assert str(moved) in "".join(logs0)
    assert logs1 == logs0
    assert report1 == report0
    assert seen1 == seen0
    assert replay.books_trace == ref.books_trace


def test_a_bad_cache_size_limit_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tradingd.cli.main import main

    config = bundled_config_on(tmp_path, hours=0.01, seed=7)
    monkeypatch.setenv("TRADINGD_CACHE_MAX_BYTES", "4X")
    assert main(["backtest", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.strip()] == [
        "tradingd: error: TRADINGD_CACHE_MAX_BYTES='4X' is not a size:"
        " a number of bytes, or with K, M, G or T (4G)"
    ]
