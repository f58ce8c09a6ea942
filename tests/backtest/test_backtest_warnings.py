"""Configs that silently do nothing (issue 16): each used to pass `check-config` and print rows of
zeros. Now a size of zero is a config error naming its key, and a backtest says, under
"warnings:" in its summary, in the report's `warnings` and as one `backtest.warning` log event
each (with its `kind`), what did nothing and why. The bundled config warns of nothing."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
import trio

from tests.support.backtests import Scripted
from tests.support.polymarket_frames import T, load, wire
from tradingd.cli.main import main
from tradingd.connectors.deribit import PLUGIN
from tradingd.connectors.derive import PLUGIN as DERIVE
from tradingd.connectors.polymarket import PLUGIN as POLYMARKET
from tradingd.engine import MarketEvent, StrategyContext, Subscription
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.backtest.report import print_summary
from tradingd.engine.store.evcache import EventCache
from tradingd.engine.store.recording import RecordingReader, RecordingWriter
from tradingd.engine.venue import BookGaps
from tradingd.simulators.deribit import SIMULATOR as DERIBIT_SIM

BUNDLED = Path(__file__).parent.parent.parent / "config" / "backtest-deribit.toml"
SAMPLE_PATH = 'path = "../data/deribit-sample.rec.zst"'
SAMPLE_GENERATE = "generate = { seed = 7, hours = 2.0 }"


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three minutes of the bundled sample's BTC and ETH (its generator, its seed)."""
    path = tmp_path_factory.mktemp("data") / "deribit.rec.zst"
    DERIBIT_SIM.generate_sample(path, {"hours": 0.05, "seed": 7})
    return path


def _config(tmp_path: Path, data: Path, *edits: tuple[str, str]) -> Path:
    """The bundled config on `data`, with `edits` (old, new) applied to its text."""
    text = BUNDLED.read_text().replace(SAMPLE_PATH, f'path = "{data}"').replace(SAMPLE_GENERATE, "")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    cfg = tmp_path / "bt.toml"
    cfg.write_text(text)
    return cfg


def _backtest(cfg: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, list[str], list[dict[str, Any]]]:
    """Run `tradingd backtest`: its stdout, the report's warnings, the `backtest.warning` logs
    (the report itself is left in `cfg`'s folder, run/report.json)."""
    report = cfg.parent / "run" / "report.json"
    assert main(["backtest", "--config", str(cfg), "--report", str(report), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    logged = [
        e
        for e in (orjson.loads(line) for line in err.splitlines() if line.startswith("{"))
        if e.get("event") == "backtest.warning"
    ]
    warnings: list[str] = orjson.loads(report.read_bytes())["warnings"]
    return out, warnings, logged


def _section(out: str) -> list[str]:
    """The summary's warnings, one per line (a long one may be wrapped by the terminal width)."""
    head = re.search(r"\nwarnings \((\d+)\):\n", out)
    assert head is not None, out
    found = [" ".join(w.split()) for w in re.split(r"\n  - ", "\n" + out[head.end() :])[1:]]
    assert len(found) == int(head.group(1)), out
    return found


def test_an_underlying_with_no_instruments_in_the_data_is_a_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sample: Path
) -> None:
    """GammaScalp on SOL against BTC/ETH data: it gets its hedge's tickers but finds no option,
    so it trades nothing; it says so. With a SOL hedge too, it subscribed to an instrument the
    data does not have: the kernel says so, naming the underlyings the data does have."""
    cfg = _config(tmp_path, sample, ('underlying = "BTC"', 'underlying = "SOL"'))
    out, warnings, logged = _backtest(cfg, capsys)
    expected = (
        "gamma_btc: no call option of SOL expiring in more than a day in the deribit data"
        " (options of: BTC, ETH): nothing traded"
    )
    assert warnings == [expected]
    assert _section(out) == [expected]
    assert [(e["kind"], e["message"]) for e in logged] == [("strategy", expected)]

    cfg = _config(
        tmp_path,
        sample,
        ('underlying = "BTC"', 'underlying = "SOL"'),
        ('hedge = "BTC-PERPETUAL"', 'hedge = "SOL-PERPETUAL"'),
    )
    out, warnings, logged = _backtest(cfg, capsys)
    expected = (
        "gamma_btc: subscribes to deribit SOL-PERPETUAL, which the data does not have"
        " (its deribit underlyings: BTC, ETH)"
    )
    assert warnings == [expected] and _section(out) == [expected]
    assert [e["kind"] for e in logged] == ["instrument_not_in_data"]

    # Momentum discovers its options from its underlying: none of SOL, said too.
    cfg = _config(tmp_path, sample, ('underlying = "ETH"', 'underlying = "SOL"'))
    out, warnings, logged = _backtest(cfg, capsys)
    expected = (
        "momentum_eth: no option of SOL within 40 days and moneyness 0.08 in the deribit data"
        " (options of: BTC, ETH): nothing traded"
    )
    assert warnings == [expected] and _section(out) == [expected]


def test_a_size_of_zero_is_a_config_error_naming_its_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sample: Path
) -> None:
    """`option_size = 0` can never order: `check-config` refuses it (exit 2) with its key path,
    as it does other bad values, and so does `backtest` before running anything."""
    cfg = _config(tmp_path, sample, ("option_size = 10 ", "option_size = 0 "))
    assert main(["check-config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: strategies[0].params.option_size: expected a positive number, got 0" in err
    assert main(["backtest", "--config", str(cfg), "--no-progress"]) == 2
    assert "strategies[0].params.option_size" in capsys.readouterr().err

    for name, old, new in (
        ("order_size", "\norder_size = 5", "\norder_size = 0"),
        ("max_position", "max_position = 10\nmax_open", "max_position = 0\nmax_open"),
        ("max_open", "max_open = 4", "max_open = 0"),
    ):
        cfg = _config(tmp_path, sample, (old, new))
        assert main(["check-config", str(cfg)]) == 2
        assert f"strategies[1].params.{name}: expected a positive number, got 0" in capsys.readouterr().err


def test_data_of_a_venue_no_strategy_reads_is_refused_then_each_frame_accounted_for(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sample: Path
) -> None:
    """Deribit data declared as Derive's ("149,595 events from 326,857 frames" and zeros): the
    Derive decoder reads its tickers (as Derive's), refuses its trades and does not read its
    books, and the strategies subscribe to Deribit, of which there is no data.

    `check-config` now refuses a strategy subscribed to a venue no data file is of, naming its
    `venue` param. With the strategies moved to Derive too, the backtest runs and the data file
    says how many frames were decoded, how many reached no strategy, and why."""
    as_derive = ('venue = "deribit"\npath', 'venue = "derive"\npath')
    cfg = _config(tmp_path, sample, as_derive)
    assert main(["check-config", str(cfg)]) == 2
    assert (
        f"{cfg}: strategies[0].params.venue: subscribes to deribit, but no [[backtest.data]] is of it"
        " (the data is of derive): it would get nothing"
    ) in capsys.readouterr().err
    assert main(["backtest", "--config", str(cfg), "--no-progress"]) == 2
    capsys.readouterr()

    cfg = _config(
        tmp_path,
        sample,
        as_derive,
        ('underlying = "BTC"', 'venue = "derive"\nunderlying = "BTC"'),
        ('underlying = "ETH"', 'venue = "derive"\nunderlying = "ETH"'),
    )
    assert main(["check-config", str(cfg)]) == 0
    capsys.readouterr()
    out, warnings, logged = _backtest(cfg, capsys)
    frames = sum(1 for _ in RecordingReader(sample))
    # The Derive decoder reads none of Deribit's channels (not even its tickers, whose names
    # Derive's old ticker channel shares): every frame is accounted for as unread or control.
    per_file = re.fullmatch(
        rf"data file {re.escape(str(sample))} \(derive\): {frames:,} frames read, {frames:,} not routed"
        r" to any strategy: ([\d,]+) of channels the derive decoder does not read"
        r" \(e\.g\. book\.[A-Z0-9-]+\.100ms: is it derive data\?\); 5 control \(responses, heartbeats\)",
        warnings[-1],
    )
    assert per_file is not None, warnings
    assert int(per_file.group(1).replace(",", "")) + 5 == frames
    assert any("which the data does not have (its derive underlyings: none)" in w for w in warnings), warnings
    assert logged[-1]["kind"] == "data_file_unused" and _section(out) == warnings


def test_a_strategy_on_a_venue_without_data_is_a_warning(sample: Path) -> None:
    """The same through the kernel (no config to check): the strategy is told it has no data
    of its venue, and the data file that no strategy reads says so."""

    async def noop(ctx: StrategyContext, event: MarketEvent) -> None:
        pass

    strategy = Scripted("s", noop, [Subscription("deribit", "BTC-PERPETUAL", {"ticker"})])
    kernel = BacktestKernel(
        {"deribit": PLUGIN, "derive": DERIVE}, [DataSource("derive", sample)], [strategy], BacktestSettings()
    )
    result = trio.run(kernel.run)
    assert result.warnings[0] == (
        "s: subscribes to deribit, but no data file is of deribit (the data files are of derive):"
        " it got nothing from there"
    )
    assert result.warnings[1].startswith(f"data file {sample} (derive): ")
    assert result.warnings[1].endswith("is it derive data?); 5 control (responses, heartbeats)")
    assert len(result.warnings) == 2


def test_orders_with_no_book_to_fill_against_are_a_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sample: Path
) -> None:
    """A recording of tickers only (no book channel recorded): GammaScalp sends its orders and
    none can fill ("fill ratio 0%"). Now the instruments are named, with the reason."""
    tickers = tmp_path / "tickers.rec.zst"
    with RecordingWriter(tickers) as w:
        for ts, frame in RecordingReader(sample):
            assert ts is not None  # a recording: every line has its receive time
            if b'"book.' not in frame:
                w.write(ts, frame)
    out, warnings, logged = _backtest(_config(tmp_path, tickers), capsys)
    assert re.search(r"orders filled \(any part\) +0 \(0%\)", out), out
    (warning,) = warnings
    found = re.fullmatch(
        r"gamma_btc: ([\d,]+) order\(s\) on deribit (BTC-\w+-\d+-C) could not fill: the data holds no"
        r" order book for them \(record their book channel\)",
        warning,
    )
    assert found is not None, warning
    gamma = orjson.loads((tmp_path / "run" / "report.json").read_bytes())["strategies"]["gamma_btc"]
    assert gamma["orders"] == int(found.group(1).replace(",", "")) and gamma["fills"] == 0
    assert _section(out) == warnings and [e["kind"] for e in logged] == ["no_book"]


def test_a_strategy_that_received_nothing_is_a_warning(sample: Path) -> None:
    """A strategy that subscribed to nothing gets no market event: said (not a row of zeros)."""

    async def noop(ctx: StrategyContext, event: MarketEvent) -> None:
        pass

    kernel = BacktestKernel(
        {"deribit": PLUGIN}, [DataSource("deribit", sample)], [Scripted("idle", noop, [])], BacktestSettings()
    )
    with structlog.testing.capture_logs() as logs:
        result = trio.run(kernel.run)
    assert result.warnings[0] == "idle: received no market event from the data (subscribed to nothing)"
    # Its data reached no strategy at all: the file says where its frames went.
    (stats,) = result.files
    assert (stats.frames, stats.control, stats.unrouted) == (result.frames, 5, result.frames - 5)
    assert result.warnings[1] == (
        f"data file {sample} (deribit): {result.frames:,} frames read, {result.frames:,} not routed to"
        f" any strategy: 5 control (responses, heartbeats); {result.frames - 5:,} of deribit, which no"
        " strategy subscribes to"
    )
    assert [e["kind"] for e in logs if e["event"] == "backtest.warning"] == ["no_events", "data_file_unused"]


def test_the_bundled_config_warns_of_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sample: Path
) -> None:
    """The README's backtest, on three minutes of its sample (same generator and seed): both
    strategies find their instruments and GammaScalp fills, so no warning at all."""
    out, warnings, logged = _backtest(_config(tmp_path, sample), capsys)
    assert warnings == [] and logged == [] and "warnings:" not in out


TARDIS = Path(__file__).parent.parent.parent / "config" / "backtest-tardis.toml"


def test_a_book_file_the_fills_use_is_no_warning(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The shipped Tardis example: no strategy subscribes to the perpetual's book, but its hedges
    fill against it, so that file is used (its frames kept the book the fills read), not "not
    routed". Its trades file is read by nothing (the hedges never rest, so no trade is checked
    against them): that warning is genuine and stays."""
    cfg = tmp_path / "backtest-tardis.toml"
    cfg.write_text(TARDIS.read_text().replace('"../tests/', f'"{TARDIS.parent.parent}/tests/'))
    out, warnings, logged = _backtest(cfg, capsys)
    assert not any("incremental_book_L2" in w for w in warnings), warnings
    (trades,) = warnings
    assert re.fullmatch(
        r"data file \S+deribit_trades_2026-11-24_BTC-PERPETUAL\.csv\.gz \(deribit\): 642 frames read,"
        r" 642 not routed to any strategy: 1 control \(responses, heartbeats\); 641 of instruments or"
        r" channels no strategy subscribed to",
        trades,
    ), trades
    # The summary wraps the long path mid-name: compared without the spaces.
    assert [w.replace(" ", "") for w in _section(out)] == [trades.replace(" ", "")]
    assert [e["kind"] for e in logged] == ["data_file_unused"]
    fills = orjson.loads((tmp_path / "run" / "report.json").read_bytes())["strategies"]["gamma_btc"]["fills"]
    assert fills == 20


def _damaged(sample: Path, tmp_path: Path) -> Path:
    """`sample` with the middle change of BTC-PERPETUAL's book damaged (a level's price "abc"):
    a malformed frame, after which that book has a gap and ignores its changes (no snapshot
    comes again in a recording)."""
    frames = list(RecordingReader(sample))
    book = [
        i
        for i, (_, f) in enumerate(frames)
        if b'"channel":"book.BTC-PERPETUAL.100ms"' in f and b'"type":"change"' in f
    ]
    mid = book[len(book) // 2]
    ts, frame = frames[mid]
    bad = re.sub(rb'\[\["(new|change|delete)",[-0-9.e]+', rb'[["\1","abc"', frame, count=1)
    assert bad != frame and ts is not None
    frames[mid] = (ts, bad)
    path = tmp_path / "damaged.rec.zst"
    with RecordingWriter(path) as w:
        for t, f in frames:
            assert t is not None
            w.write(t, f)
    return path


def test_book_gaps_from_a_damaged_frame_are_a_warning_on_frames_and_from_the_cache(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A damaged book frame mid-recording: counted as malformed, then the book has a gap and
    every later change of it is ignored until a snapshot (a recording cannot resync). That lost
    data used to show only in the report's decoders section; it is a warning, naming the books,
    the same whether the events were decoded from the frames or replayed from the cache."""
    monkeypatch.setenv("TRADINGD_CACHE_DIR", str(tmp_path / "cache"))
    cfg = _config(tmp_path, _damaged(sample, tmp_path))
    seen = []
    for _ in range(2):  # frames (the cache written), then the cache
        out, warnings, logged = _backtest(cfg, capsys)
        report = orjson.loads((tmp_path / "run" / "report.json").read_bytes())
        stats = report["decoders"]["deribit"]
        assert stats["gaps"] >= 1 and stats["ignored_changes"] > 100, stats
        expected = (
            f"deribit: {stats['gaps']:,} book gap{'s' if stats['gaps'] > 1 else ''};"
            f" {stats['ignored_changes']:,} book changes ignored until a snapshot (BTC-PERPETUAL)"
        )
        assert expected in warnings, warnings
        assert expected in _section(out)
        assert any(e["kind"] == "book_gaps" and e["message"] == expected for e in logged), logged
        seen.append((warnings, "events read from the decoded-event cache" in out))
    assert seen[0][0] == seen[1][0]
    assert [c for _, c in seen] == [False, True]


def test_gaps_of_more_books_than_a_decoder_names_are_one_total_in_the_warning(tmp_path: Path) -> None:
    """Polymarket changes for ever new tokens, none with a book: each is a gap ("no_book"). The
    decoder names the first `BookGaps.NAMED` books (a stream of invented token ids cannot grow
    it without bound); the warning names those and tells the other books' gaps as one total, the
    same from the frames and from the cache."""
    n = BookGaps.NAMED + 30
    tokens = [str(10**76 + i) for i in range(n)]
    change = load("ws_market_price_change_msg.json")
    path = tmp_path / "poly.rec"
    with RecordingWriter(path) as w:
        for i, token in enumerate([*tokens, tokens[0], tokens[-1]]):  # again: no new gap
            msg = {**change, "price_changes": [{**change["price_changes"][0], "asset_id": token}]}
            w.write(T + i * 1_000_000, wire(msg))
    seen = []
    for _ in range(2):  # frames (the cache written), then the cache
        kernel = BacktestKernel(
            {"polymarket": POLYMARKET},
            [DataSource("polymarket", path)],
            [],
            BacktestSettings(),
            event_cache=EventCache(tmp_path / "cache", write_on=1),
        )
        trio.run(kernel.run)
        decoder = kernel.decoders["polymarket"]
        assert decoder.stats.gaps == n
        assert dict(decoder.gapped_books) == dict.fromkeys(tokens[: BookGaps.NAMED], 1)
        (line,) = (w for w in kernel.warnings if w.startswith("polymarket: "))
        named = ", ".join(sorted(tokens[: BookGaps.NAMED]))
        assert line.endswith(f" ({named}, and 30 gaps of other books)"), line
        assert line.startswith(f"polymarket: {n:,} book gaps"), line
        seen.append((kernel.warnings, type(decoder).__name__))
    assert seen[0][0] == seen[1][0]
    assert [name for _, name in seen] == ["PolymarketDecoder", "ReplayDecoder"]


def test_a_gapped_books_id_that_steers_a_terminal_is_shown_inert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Polymarket asset_id is venue text, not checked: a gap on a book whose id holds an
    escape sequence and a line break is named in the warning with `?` for them (`line_text`),
    in the result (so in report.json, which a sweep's last line and the log print from too) and
    in the printed summary, which holds no ESC."""
    token = "7\x1b[2J\x1b]0;pwned\x07\n8"
    change = load("ws_market_price_change_msg.json")
    path = tmp_path / "poly.rec"
    with RecordingWriter(path) as w:
        msg = {**change, "price_changes": [{**change["price_changes"][0], "asset_id": token}]}
        w.write(T, wire(msg))
    kernel = BacktestKernel(
        {"polymarket": POLYMARKET}, [DataSource("polymarket", path)], [], BacktestSettings()
    )
    result = trio.run(kernel.run)
    assert dict(kernel.decoders["polymarket"].gapped_books) == {token: 1}  # the decoder keeps it exact
    (line,) = (w for w in result.warnings if w.startswith("polymarket: "))
    assert line.startswith("polymarket: 1 book gap") and line.endswith(" (7?[2J?]0;pwned??8)"), line
    monkeypatch.setenv("COLUMNS", "200")
    out = io.StringIO()
    print_summary(result, out)
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text, repr(text)
    assert " (7?[2J?]0;pwned??8)\n" in text, text
