"""A backtest's Polymarket catalog from the market definitions its recordings carry
(`catalog.markets_from_definitions`, `PolymarketPlugin.recorded_catalog`, cli/recorded.py, the
backtest's `build_kernel`), the cache's catalog reading price markets, and `tradingd catalog
price-markets`.

Witnesses: the generator's own list of the sample's markets (`simulators.polymarket.generator.MARKETS`),
real Gamma and CLOB objects, and, for the byte scan, the recording reader's own lines filtered in
Python (a different path through the same files)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradingd.cli import recorded
from tradingd.cli.backtest import build_kernel
from tradingd.cli.main import main
from tradingd.config import load_config
from tradingd.connectors.polymarket import PLUGIN
from tradingd.connectors.polymarket.catalog import (
    PolymarketCatalog,
    market_from_clob,
    market_from_gamma,
    markets_from_definitions,
    write_cache,
)
from tradingd.engine import MarketEvent, PriceCondition, PriceMarket, Strategy, Subscription
from tradingd.engine.store.recording import RecordingReader, RecordingWriter, format_ts
from tradingd.engine.venue import LayeredCatalog, StaticCatalog
from tradingd.simulators.polymarket.generator import MARKETS, generate_sample

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "polymarket"
PRICE = FIXTURES / "price_markets"
T0 = 1_779_000_000_000_000_000


def gamma(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((PRICE / name).read_text())
    return obj


def frames(*objs: Any) -> list[tuple[int | None, bytes]]:
    return [(T0 + i, orjson.dumps(o)) for i, o in enumerate(objs)]


# --------------------------------------------------------------------------- definitions


def test_definitions_of_every_shape_are_read_later_ones_winning() -> None:
    above = gamma("gamma_btc_above_102k_nov8.json")
    clob = json.loads((FIXTURES / "clob_market_closed_binary_accepting_true.json").read_text())
    event = gamma("gamma_event_btc_above_oct3_2026.json")
    page = {"data": [gamma("gamma_eth_above_2100_apr9.json")], "next_cursor": "LTE="}
    closed_later = {**above, "closed": True}
    found = markets_from_definitions(
        [
            *frames([above, gamma("gamma_xrp_up_or_down_nov7.json")], clob, event, page),
            (None, b"not json"),
            (T0 + 9, orjson.dumps(closed_later)),
        ]
    )
    slugs = [m.slug for m in found.markets]
    assert slugs == [
        "bitcoin-above-102k-on-november-8",
        "xrp-up-or-down-on-november-7",
        "russia-x-ukraine-ceasefire-by-end-of-2027",
        "bitcoin-above-74k-on-october-3-2026",
        "ethereum-above-2100-on-april-9",
    ]
    assert found.markets[0].closed  # the later definition, in the earlier one's place
    assert found.markets[2] == market_from_clob(clob)
    assert found.markets[3].event_slug == "bitcoin-above-on-october-3-2026"  # lent by its event
    assert found.frames == 5
    # The not-JSON frame, and the event's second market (trimmed to no condition id).
    assert found.skipped == 2 and any("no conditionId" in p for p in found.problems)
    assert found.last_ts == T0 + 9


def test_an_events_description_is_lent_to_a_market_without_one() -> None:
    market = gamma("gamma_btc_above_96k_nov10.json")
    description = market.pop("description")
    market.pop("events")
    event = {
        "id": "72027",
        "slug": "bitcoin-above-on-november-10",
        "description": description,
        "markets": [market],
    }
    (m,) = markets_from_definitions(frames(event)).markets
    assert (m.event_slug, m.description) == ("bitcoin-above-on-november-10", description)


def test_the_plugins_recorded_catalog_reads_price_markets() -> None:
    catalog = PLUGIN.recorded_catalog(
        frames(
            [gamma("gamma_btc_above_102k_nov8.json"), gamma("gamma_btc_reach_100k_september.json")],
            json.loads((PRICE / "clob_btc_above_100k_nov11.json").read_text()),
        )
    )
    assert isinstance(catalog, StaticCatalog) and len(catalog) == 3
    assert catalog.last_updated() == dt.datetime.fromtimestamp((T0 + 1) / 1e9, dt.UTC)
    read, unread = catalog.price_markets("BTC")
    assert [(p.low, p.condition) for p in read] == [
        (Decimal(102000), PriceCondition.ABOVE),
        (Decimal(100000), PriceCondition.ABOVE),
    ]
    assert [u.market.slug for u in unread] == ["will-bitcoin-reach-100k-in-september-2026"]
    assert catalog.price_markets("ETH") == ([], [])
    assert catalog.find_by_slug("bitcoin-above-100k-on-november-11") is not None


# --------------------------------------------------------------------------- the byte scan


def write_lines(path: Path, lines: list[bytes]) -> None:
    data = b"".join(line + b"\n" for line in lines)
    if path.name.endswith(".zst"):
        data = zstandard.ZstdCompressor().compress(data)
    elif path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)


def reference(path: Path, markers: tuple[bytes, ...]) -> list[tuple[int | None, bytes]]:
    """What the scan must find: the recording reader's lines, filtered here."""
    return [(ts, f) for ts, f in RecordingReader(path, skip_bad=True) if any(m in f for m in markers)]


@pytest.mark.parametrize("suffix", [".rec", ".rec.gz", ".rec.zst"])
def test_the_scan_finds_definition_lines_anywhere(tmp_path: Path, suffix: str) -> None:
    defs = orjson.dumps([gamma("gamma_btc_above_96k_nov10.json")])
    book = b'{"event_type":"book","asset_id":"1","market":"0x1","bids":[],"asks":[]}'
    lines = [
        format_ts(T0).encode() + b" " + book,
        format_ts(T0 + 100).encode() + b" " + defs,
        b"PONG",  # not a recording line: passed over (the replay counts it)
        defs,  # a bare frame: no receive time
        format_ts(T0 + 300).encode() + b" " + defs + b"\r",  # CRLF
        format_ts(T0 + 400).encode() + b" " + book,
    ]
    path = tmp_path / f"polymarket{suffix}"
    write_lines(path, lines)
    got = list(recorded.definition_lines(path, "polymarket", PLUGIN.definition_markers))
    assert got == [(T0 + 100, defs), (None, defs), (T0 + 300, defs)]
    assert got == reference(path, PLUGIN.definition_markers)
    assert list(recorded.definition_lines(path, "polymarket", ())) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kinds=st.lists(st.sampled_from(["def", "book", "long"]), min_size=0, max_size=30),
    chunk=st.integers(min_value=1, max_value=300),
)
def test_the_scan_agrees_with_the_reader_whatever_the_chunking(
    tmp_path: Path, kinds: list[str], chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines crossing chunk boundaries, markers split by them, lines longer than a chunk."""
    monkeypatch.setattr(recorded, "_CHUNK", chunk)
    monkeypatch.setattr(recorded, "_FOUND", {})  # each example scans (the file is rewritten)
    body = {
        "def": b'{"question":"Will it?","clobTokenIds":"[]"}',
        "book": b'{"event_type":"book","asset_id":"9"}',
        "long": b'[{"question":"' + b"x" * 700 + b'"}]',
    }
    lines = [format_ts(T0 + i * 1000).encode() + b" " + body[k] for i, k in enumerate(kinds)]
    path = tmp_path / "p.rec"
    write_lines(path, lines)
    got = list(recorded.definition_lines(path, "polymarket", PLUGIN.definition_markers))
    assert got == reference(path, PLUGIN.definition_markers)
    assert len(got) == sum(k != "book" for k in kinds)


def test_a_file_is_scanned_once_until_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scans: list[Path] = []
    real = recorded._scan

    def counting(path: Path, markers: tuple[bytes, ...]) -> Any:
        scans.append(path)
        return real(path, markers)

    monkeypatch.setattr(recorded, "_scan", counting)
    path = tmp_path / "p.rec"
    one = format_ts(T0).encode() + b' {"question":"a"}'
    write_lines(path, [one])
    markers = PLUGIN.definition_markers
    assert list(recorded.definition_lines(path, "polymarket", markers)) == [(T0, b'{"question":"a"}')]
    assert list(recorded.definition_lines(path, "polymarket", markers)) == [(T0, b'{"question":"a"}')]
    assert scans == [path]
    write_lines(path, [one, one])  # rewritten: longer
    assert len(list(recorded.definition_lines(path, "polymarket", markers))) == 2
    assert scans == [path, path]


def test_a_recording_directory_is_scanned_file_by_file_in_time_order(tmp_path: Path) -> None:
    first = orjson.dumps([gamma("gamma_btc_above_102k_nov8.json")])
    second = orjson.dumps([{**gamma("gamma_btc_above_102k_nov8.json"), "closed": True}])
    # Named as the recorder names its files: by their first frame's time, which orders them.
    for stamp, ts, frame in (("20260301T000000Z", T0, first), ("20260302T000000Z", T0 + 10**12, second)):
        with RecordingWriter(tmp_path / f"polymarket-{stamp}.rec") as w:
            w.write(ts, frame)
    (catalog,) = recorded.recorded_catalogs([("polymarket", tmp_path)], {"polymarket": PLUGIN}).values()
    assert len(catalog) == 1 and catalog.all()[0].closed


def test_the_generated_sample_defines_the_generators_markets(tmp_path: Path) -> None:
    path = tmp_path / "pm.rec.zst"
    generate_sample(path, {"hours": 0.05})
    lines = list(recorded.definition_lines(path, "polymarket", PLUGIN.definition_markers))
    assert len(lines) == 1  # the recorder's Gamma answer, first: nothing else holds a question
    found = recorded.recorded_catalogs([("polymarket", path)], {"polymarket": PLUGIN})
    assert sorted(m.slug for m in found["polymarket"].all()) == sorted(s.slug for s in MARKETS)
    # A venue that marks nothing is not scanned, and gets no catalog from its recordings.
    from tradingd.connectors.deribit import PLUGIN as DERIBIT

    assert recorded.recorded_catalogs([("deribit", path)], {"deribit": DERIBIT}) == {}


# --------------------------------------------------------------------------- the backtest's catalogs


def config(tmp_path: Path, data: Path, cache: Path | None) -> Path:
    path = tmp_path / "bt.toml"
    catalog = f'[catalog]\npolymarket_cache = "{cache}"\n' if cache is not None else ""
    path.write_text(
        textwrap.dedent(
            f"""\
            mode = "backtest"
            {catalog}
            [[backtest.data]]
            venue = "polymarket"
            path = "{data}"

            [[strategies]]
            name = "idle"
            class = "tests.connectors.polymarket.test_recorded_catalog:Idle"
            """
        )
    )
    return path


class Idle(Strategy):
    def required_subscriptions(self) -> list[Subscription]:
        return []

    async def on_event(self, event: MarketEvent) -> None:
        return None


def test_a_backtest_gets_its_recordings_markets_over_the_cache(tmp_path: Path) -> None:
    data = tmp_path / "pm.rec.zst"
    generate_sample(data, {"hours": 0.05})
    sample = {s.slug for s in MARKETS}

    kernel = build_kernel(load_config(config(tmp_path, data, None)), event_cache=None)
    only = kernel.catalogs["polymarket"]
    assert isinstance(only, StaticCatalog) and {m.slug for m in only.all()} == sample

    # With a cache on disk too: the recorded definitions answer first, the cache for the rest.
    recorded_btc = only.find_by_slug("btc-above-120k-on-december-31")
    assert recorded_btc is not None
    cache = tmp_path / "cache" / "pm.jsonl"
    today = {  # the same market as the cache knows it today (closed), and one the recording lacks
        "id": "1", "slug": recorded_btc.slug, "question": "changed since",
        "conditionId": recorded_btc.condition_id,
        "outcomes": '["Yes", "No"]', "clobTokenIds": json.dumps(list(recorded_btc.token_ids)),
        "active": True, "closed": True,
    }  # fmt: skip
    write_cache(cache, [today, gamma("gamma_btc_above_96k_nov10.json")])
    kernel = build_kernel(load_config(config(tmp_path, data, cache)), event_cache=None)
    both = kernel.catalogs["polymarket"]
    assert isinstance(both, LayeredCatalog)
    assert both.get(recorded_btc.condition_id) == recorded_btc
    assert both.find_by_slug("bitcoin-above-96k-on-november-10") is not None
    assert len(both) == len(sample) + 1


# --------------------------------------------------------------------------- the cache's catalog, the CLI


def test_the_cache_catalog_reads_price_markets_of_tradable_crypto_questions(tmp_path: Path) -> None:
    names = [p.name for p in sorted(PRICE.glob("gamma_btc_*.json")) + sorted(PRICE.glob("gamma_eth_*.json"))]
    objs = [gamma(n) for n in names] + [
        json.loads((FIXTURES / "gamma_market_sports_market_money_line.json").read_text()),
        {**gamma("gamma_btc_above_96k_nov10.json"), "id": "77", "slug": "closed-one",
         "conditionId": "0x" + "77" * 32, "closed": True},
    ]  # fmt: skip
    cache = tmp_path / "pm.jsonl"
    write_cache(cache, objs)
    catalog = PolymarketCatalog.from_cache(cache)
    read, unread = catalog.price_markets()
    # Every tradable crypto price market of the fixtures, read as the recogniser reads it alone.
    expect_read = sorted(
        m.slug for m in map(market_from_gamma, objs)
        if m.tradable and "reach" not in m.slug and "dip" not in m.slug
        and m.question.startswith(("Will the", "Bitcoin"))
    )  # fmt: skip
    assert sorted(p.market.slug for p in read) == expect_read
    assert sorted(u.market.slug for u in unread) == [
        "will-bitcoin-dip-to-55k-in-september-2026",
        "will-bitcoin-reach-100k-in-september-2026",
    ]
    # The async form: on the caller's stack in a backtest, in a worker thread live; the same answer.
    assert trio.run(catalog.price_markets_async) == (read, unread)
    catalog.search_in_thread = True
    assert trio.run(catalog.price_markets_async, "BTC") == catalog.price_markets("BTC")
    eth, _ = catalog.price_markets("eth")
    assert [p.underlying for p in eth] == ["ETH"]
    assert catalog.price_markets("DOGE") == ([], []) and catalog.price_markets("ADA") == ([], [])


def test_the_price_markets_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "pm.jsonl"
    write_cache(
        cache, [gamma(n) for n in ("gamma_btc_above_102k_nov8.json", "gamma_xrp_up_or_down_nov7.json")]
    )
    assert main(["catalog", "price-markets", "--cache", str(cache), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [m["slug"] for m in out["markets"]] == ["bitcoin-above-102k-on-november-8"]
    assert out["markets"][0]["resolves_at"] == "2025-11-08T17:00:59.999000Z"
    assert [(u["underlying"], u["slug"]) for u in out["unrecognized"]] == [
        ("XRP", "xrp-up-or-down-on-november-7")
    ]

    assert main(["catalog", "price-markets", "--cache", str(cache), "--underlying", "XRP"]) == 1  # none read
    text = capsys.readouterr()
    assert "xrp-up-or-down-on-november-7" in text.out and "Up or Down" in text.out
    assert "0 price market(s) of XRP read, 1 not read" in text.err

    data = tmp_path / "pm.rec"
    write_lines(
        data, [format_ts(T0).encode() + b" " + orjson.dumps([gamma("gamma_eth_above_2100_apr9.json")])]
    )
    assert main(["catalog", "price-markets", "--recording", str(data)]) == 0
    text = capsys.readouterr()
    assert "ETH" in text.out and "> 2100" in text.out and "2026-04-09 16:00:59" in text.out
    assert "binance ETH/USDT 1m close 12:00 ET" in text.out

    empty = tmp_path / "empty.rec"
    write_lines(empty, [format_ts(T0).encode() + b' {"event_type":"book"}'])
    assert main(["catalog", "price-markets", "--recording", str(empty)]) == 1
    assert "defines no polymarket markets" in capsys.readouterr().err


def test_price_markets_are_priced_through_the_surface() -> None:
    """What a strategy does with one: the YES probability at its resolution instant."""

    class Flat:
        def prob_above(self, strike: float, expiry_ns: int, *, now_ns: int | None = None) -> float:
            return 0.3 if (strike, expiry_ns) == (102000.0, 1762621259999000000) else -1.0

        def prob_below(self, strike: float, expiry_ns: int, *, now_ns: int | None = None) -> float:
            return -1.0

        def prob_between(
            self, low: float, high: float, expiry_ns: int, *, now_ns: int | None = None
        ) -> float:
            return -1.0

    catalog = PLUGIN.recorded_catalog(frames([gamma("gamma_btc_above_102k_nov8.json")]))
    assert catalog is not None
    (p,), _ = catalog.price_markets()
    assert isinstance(p, PriceMarket) and p.probability(Flat()) == 0.3
