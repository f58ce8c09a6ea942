"""Market discovery: `MarketCatalog`, `PolymarketCatalog` (cache, index, search, refresh), the Gamma
client and simulator, the catalog generator, run-time discovery through the router, and the CLI.

Captured Gamma objects (tests/fixtures/polymarket/gamma_*, see gamma_README.md) check the parsing;
the Gamma simulator (in process through `httpx.ASGITransport`, and over loopback through hypercorn
for the CLI) checks refreshes end to end.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import itertools
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import structlog
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradingd.cli.main import main
from tradingd.connectors.polymarket.catalog import (
    HEADER_WIDTH,
    PolymarketCatalog,
    _literal_prefix,
    default_cache_path,
    market_from_gamma,
    write_cache,
)
from tradingd.connectors.polymarket.gamma import GammaClient
from tradingd.engine import (
    DataKind,
    MarketEvent,
    RateLimited,
    Strategy,
    Subscription,
    TradingError,
    VenueError,
)
from tradingd.engine.runtime import MarketRouter
from tradingd.engine.venue.catalog import (
    CatalogMarket,
    InvalidPattern,
    MarketCatalog,
    OutcomeToken,
    compile_slug_pattern,
)
from tradingd.simulators.polymarket.catalog_generator import generate_markets, market_lines
from tradingd.simulators.polymarket.gamma_simulator import GammaSimulator

ROOT = Path(__file__).resolve().parent.parent.parent.parent
FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "polymarket"
DAY = 86_400.0
URL = "http://gamma.test"
BTC_PATTERN = r"^will-bitcoin-be-above-\d+-on-"


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def refreshing(catalog: PolymarketCatalog) -> bool:
    return catalog.refreshing


def read(path: Path) -> bytes:
    return path.read_bytes()


def fixture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def tokens_of(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return list(zip(orjson.loads(obj["outcomes"]), orjson.loads(obj["clobTokenIds"]), strict=True))


_serial = iter(range(10**9))


def gamma_market(
    slug: str,
    *,
    question: str = "",
    description: str = "",
    tags: tuple[str, ...] = (),
    outcomes: tuple[str, ...] = ("Yes", "No"),
    closed: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A Gamma market object: the captured `gamma_market.json` with these fields replaced."""
    n = next(_serial)
    m: dict[str, Any] = copy.deepcopy(fixture("gamma_market.json"))
    m.update(
        id=str(9_000_000 + n),
        slug=slug,
        question=question or slug.replace("-", " ").capitalize() + "?",
        description=description,
        conditionId=f"0x{n:064x}",
        outcomes=orjson.dumps(list(outcomes)).decode(),
        clobTokenIds=orjson.dumps([str(10**70 + n * 100 + i) for i in range(len(outcomes))]).decode(),
        closed=closed,
        acceptingOrders=not closed,
        tags=[{"id": str(i), "label": t, "slug": t.lower()} for i, t in enumerate(tags)],
    )
    m.update(extra)
    return m


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[PolymarketCatalog, list[dict[str, Any]]]:
    """600 generated markets (binary, three-way, neg-risk), cached and loaded once."""
    markets = list(generate_markets(600, seed=3))
    path = tmp_path_factory.mktemp("gen") / "polymarket_markets.jsonl"
    write_cache(path, markets)
    return PolymarketCatalog.from_cache(path), markets


@contextlib.asynccontextmanager
async def gamma_over(sim: GammaSimulator, **kwargs: Any) -> Any:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim), base_url=URL) as http:
        yield GammaClient(http, base_url=URL, **kwargs)


async def no_sleep(_: float) -> None:
    await trio.lowlevel.checkpoint()


# --------------------------------------------------------------------------- the venue-neutral types


def test_catalog_market_maps_outcomes_to_tokens() -> None:
    m = market_from_gamma(fixture("gamma_market.json"))
    assert isinstance(m, CatalogMarket)
    up, down = tokens_of(fixture("gamma_market.json"))
    assert m.tokens == (OutcomeToken(*up), OutcomeToken(*down))
    assert m.outcomes == ("Up", "Down") and m.token_ids == (up[1], down[1])
    assert m.token_id("Up") == up[1] and m.token_id("down") == down[1]  # exact, then ignoring case
    assert m.outcome_of(down[1]) == "Down"
    with pytest.raises(KeyError, match=r"no outcome 'Yes' \(outcomes: Up, Down\)"):
        m.token_id("Yes")
    with pytest.raises(KeyError, match="not an outcome"):
        m.outcome_of("123")
    assert m.subscriptions() == [Subscription("polymarket", up[1]), Subscription("polymarket", down[1])]
    assert m.subscriptions(["book"]) == [
        Subscription("polymarket", up[1], {"book"}),
        Subscription("polymarket", down[1], {"book"}),
    ]
    assert m.tradable


def test_to_dict_is_the_cli_json_contract() -> None:
    m = market_from_gamma(fixture("gamma_market.json"))
    d = m.to_dict()
    assert {"slug", "question", "condition_id", "active", "closed", "end_date", "tokens"} <= set(d)
    assert d["end_date"] == "2026-03-12T09:25:00Z"
    assert d["tokens"] == [{"outcome": o, "token_id": t} for o, t in tokens_of(fixture("gamma_market.json"))]
    assert d["tick_size"] == "0.01" and d["min_size"] == "5"
    assert orjson.loads(orjson.dumps(d)) == d  # plain JSON


def test_tradable_needs_active_open_and_accepting() -> None:
    base = market_from_gamma(fixture("gamma_market.json"))
    fields = {
        f: getattr(base, f) for f in ("venue", "slug", "question", "condition_id", "tokens", "end_date")
    }
    assert CatalogMarket(**fields, active=True, closed=False).tradable
    assert not CatalogMarket(**fields, active=True, closed=True).tradable
    assert not CatalogMarket(**fields, active=False, closed=False).tradable
    assert not CatalogMarket(**fields, active=True, closed=False, accepting_orders=False).tradable
    assert not CatalogMarket(**{**fields, "tokens": ()}, active=True, closed=False).tradable


def test_a_bad_pattern_is_a_clear_error() -> None:
    with pytest.raises(InvalidPattern) as info:
        compile_slug_pattern("^will-(bitcoin")
    assert isinstance(info.value, TradingError) and isinstance(info.value, ValueError)
    assert info.value.position == 6
    assert (
        str(info.value)
        == "invalid slug pattern '^will-(bitcoin': missing ), unterminated subpattern at position 6"
    )
    with pytest.raises(InvalidPattern, match="nothing to repeat"):
        compile_slug_pattern("*bitcoin")
    assert compile_slug_pattern(re.compile("x")).pattern == "x"


# --------------------------------------------------------------------------- Gamma objects


@pytest.mark.parametrize(
    "name",
    [
        "gamma_market.json",
        "gamma_market_closed_binary_accepting_false.json",
        "gamma_market_closed_binary_accepting_true.json",
        "gamma_market_closed_nonbinary_legacy.json",
        "gamma_market_closed_zero_zero_legacy.json",
        "gamma_market_sports_market_map_handicap.json",
        "gamma_market_sports_market_money_line.json",
    ],
)
def test_every_captured_market_parses(name: str) -> None:
    raw = fixture(name)
    m = market_from_gamma((FIXTURES / name).read_bytes())  # pretty-printed bytes as well as dicts
    assert m == market_from_gamma(raw)
    assert m.slug == raw["slug"] and m.question == raw["question"] and m.market_id == raw["id"]
    assert m.condition_id == raw["conditionId"].lower()
    assert [(t.outcome, t.token_id) for t in m.tokens] == tokens_of(raw)
    assert (m.active, m.closed, m.neg_risk) == (raw["active"], raw["closed"], raw.get("negRisk", False))
    assert m.end_date == dt.datetime.fromisoformat(raw["endDate"])
    assert m.accepting_orders == raw.get("acceptingOrders")
    tick = raw.get("orderPriceMinTickSize")
    assert m.tick_size == (None if tick is None else Decimal(str(tick)))


def test_neg_risk_markets_of_an_event() -> None:
    event = fixture("gamma_event.json")[0]
    assert event["negRisk"] is True
    for raw in event["markets"]:
        m = market_from_gamma(raw)
        assert m.neg_risk and m.neg_risk_market_id == event["negRiskMarketID"]
        assert [(t.outcome, t.token_id) for t in m.tokens] == tokens_of(raw)
        assert m.tick_size == Decimal(str(raw["orderPriceMinTickSize"]))


def test_tags_as_include_tag_returns_them() -> None:
    raw = dict(fixture("gamma_market.json"), tags=fixture("gamma_tags.json"))
    assert market_from_gamma(raw).tags == ("Health and Human Services", "Sweeden", "attorney general",
                                           "Madrid Open", "Crypto Summit")  # fmt: skip
    assert market_from_gamma(fixture("gamma_market.json")).tags == ()  # without include_tag: none
    assert market_from_gamma(fixture("gamma_market.json")).event_slug == "btc-updown-5m-1773307200"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"clobTokenIds": '["1", "2", "3"]'}, "2 outcomes but 3 clobTokenIds"),
        ({"outcomes": "Yes, No"}, "outcomes is not a JSON-encoded list"),
        ({"clobTokenIds": '["1", "0xab"]'}, "not a decimal token id"),
        ({"clobTokenIds": '["7", "7"]'}, "repeats a token id"),
        ({"slug": ""}, "no slug"),
        ({"conditionId": None}, "no conditionId"),
        ({"active": "yes"}, "Expected `bool | null`, got `str`"),
    ],
)
def test_unusable_market_objects_say_why(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        market_from_gamma(dict(fixture("gamma_market.json"), **change))


def test_a_market_not_on_the_clob_has_no_tokens() -> None:
    m = market_from_gamma(dict(fixture("gamma_market.json"), clobTokenIds=None))
    assert m.tokens == () and not m.tradable


@given(
    outcomes=st.lists(
        st.text(min_size=1, max_size=12).filter(lambda s: "\x1f" not in s), min_size=1, max_size=7
    ),
    ids=st.lists(st.integers(min_value=0, max_value=2**256 - 1), min_size=7, max_size=7, unique=True),
)
def test_outcomes_pair_with_token_ids_in_order(outcomes: list[str], ids: list[int]) -> None:
    token_ids = [str(i) for i in ids[: len(outcomes)]]
    raw = dict(fixture("gamma_market.json"), outcomes=orjson.dumps(outcomes).decode(),
               clobTokenIds=orjson.dumps(token_ids).decode())  # fmt: skip
    m = market_from_gamma(raw)
    assert m.outcomes == tuple(outcomes) and m.token_ids == tuple(token_ids)
    for o, t in zip(outcomes, token_ids, strict=True):
        assert m.outcome_of(t) == o


# --------------------------------------------------------------------------- the cache and its index


def test_cache_keeps_each_object_exactly_as_sent(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    lines = list(market_lines(50, seed=9))
    assert write_cache(path, lines, refreshed_at=1_790_000_000.5, source="http://gamma.test") == 50
    data = path.read_bytes().split(b"\n")
    assert len(data[0]) == HEADER_WIDTH - 1 and data[-1] == b""
    header = orjson.loads(data[0])
    assert header == {"_tradingd_cache": 1, "venue": "polymarket", "source": "http://gamma.test",
                      "started_at": "2026-09-21T14:13:20.500000Z",
                      "refreshed_at": "2026-09-21T14:13:20.500000Z", "count": 50}  # fmt: skip
    assert data[1:-1] == lines
    cat = PolymarketCatalog.from_cache(path)
    assert len(cat) == 50 and cat.last_updated() == dt.datetime(2026, 9, 21, 14, 13, 20, 500000, dt.UTC)
    assert cat.stats.header and cat.stats.expected_count == 50 and cat.stats.bad_lines == 0


def test_loading_tolerates_and_counts_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    good = list(market_lines(6, seed=2))
    torn = good[0][: len(good[0]) // 2]
    no_condition = orjson.dumps(dict(orjson.loads(good[1]), conditionId=""))
    mismatch = orjson.dumps(dict(orjson.loads(good[2]), clobTokenIds='["1"]'))
    body = [good[3], b"not json at all", torn, b"[1, 2]", b"", no_condition, mismatch, good[4], good[5]]
    write_cache(path, [])  # a header...
    with path.open("ab") as f:  # ...then lines as a hand edit or a broken tool might leave them
        f.write(b"\n".join(body) + b"\n")
    cat = PolymarketCatalog.from_cache(path)
    s = cat.stats
    assert (s.lines, s.markets, s.bad_lines) == (8, 3, 5)  # the blank line is not a line of data
    assert len(cat) == 3
    assert [p.split(":")[0] for p in s.problems] == ["line 3", "line 4", "line 5", "line 7", "line 8"]
    assert "no conditionId" in s.problems[3] and "1 clobTokenIds" in s.problems[4]
    assert s.expected_count == 0  # the header's own count disagrees: reported, not fatal
    assert {m.slug for m in cat.all()} == {orjson.loads(g)["slug"] for g in (good[3], good[4], good[5])}


def test_a_missing_or_broken_header_falls_back_on_the_file_time(tmp_path: Path) -> None:
    lines = list(market_lines(4, seed=5))
    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(b"\n".join(lines) + b"\n")
    os.utime(plain, (1_700_000_000, 1_700_000_000))
    cat = PolymarketCatalog.from_cache(plain)
    assert len(cat) == 4 and not cat.stats.header and cat.stats.bad_lines == 0
    assert cat.last_updated() == dt.datetime.fromtimestamp(1_700_000_000, dt.UTC)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b'{"_tradingd_cache": 1, "refreshed_at": "2026-\n' + b"\n".join(lines) + b"\n")
    os.utime(broken, (1_700_000_000, 1_700_000_000))
    cat = PolymarketCatalog.from_cache(broken)
    assert len(cat) == 4 and cat.stats.bad_lines == 1 and cat.stats.problems[0].startswith("line 1:")
    assert cat.last_updated() == dt.datetime.fromtimestamp(1_700_000_000, dt.UTC)


def test_a_repeated_market_keeps_its_later_line(tmp_path: Path) -> None:
    first = gamma_market("will-it-rain-in-paris", question="Old question?")
    later = dict(first, question="New question?", id="1", clobTokenIds='["11", "12"]')
    path = tmp_path / "c.jsonl"
    write_cache(path, [first, gamma_market("other-market"), later])
    cat = PolymarketCatalog.from_cache(path)
    assert len(cat) == 2 and cat.stats.duplicates == 1
    assert cat.find_by_slug("will-it-rain-in-paris").question == "New question?"  # type: ignore[union-attr]
    assert cat.find_by_token_id("11").question == "New question?"  # type: ignore[union-attr]
    old_token = tokens_of(first)[0][1]
    assert cat.find_by_token_id(old_token) is None  # no longer a token of any market


def test_the_index_is_reused_until_the_cache_changes(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    write_cache(path, market_lines(200, seed=1))
    notes: list[str] = []
    first = PolymarketCatalog.from_cache(path, notify=notes.append)
    assert len(notes) == 1 and "indexing" in notes[0]
    index = first.index_path
    assert index.exists() and index.name == "c.jsonl.index.sqlite3"
    again = PolymarketCatalog.from_cache(path, notify=notes.append)
    assert len(notes) == 1 and len(again) == 200  # opened, not rebuilt
    write_cache(path, market_lines(30, seed=2))  # a refresh by another process
    changed = PolymarketCatalog.from_cache(path, notify=notes.append)
    assert len(notes) == 2 and len(changed) == 30
    assert len(first) == 200  # a loaded catalog keeps its own snapshot
    index.write_bytes(b"garbage, not SQLite")
    repaired = PolymarketCatalog.from_cache(path, notify=notes.append)
    assert len(notes) == 3 and len(repaired) == 30
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_crash_mid_write_leaves_the_old_cache(tmp_path: Path) -> None:
    path = tmp_path / "polymarket_markets.jsonl"
    write_cache(path, market_lines(20, seed=1))
    before = path.read_bytes()
    script = (
        "import os, sys\n"
        "from tradingd.connectors.polymarket.catalog import write_cache\n"
        "from tradingd.simulators.polymarket.catalog_generator import market_lines\n"
        "def lines():\n"
        "    for i, line in enumerate(market_lines(12000, seed=2)):\n"
        "        if i == 11000:\n"
        "            os._exit(3)  # killed mid-write: no cleanup runs\n"
        "        yield line\n"
        "write_cache(sys.argv[1], lines())\n"
    )
    r = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, capture_output=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert path.read_bytes() == before
    temps = list(tmp_path.glob(".polymarket_markets.jsonl.*.tmp"))
    assert len(temps) == 1 and temps[0].stat().st_size > 10_000_000  # it had written a lot
    assert len(PolymarketCatalog.from_cache(path)) == 20
    os.utime(temps[0], (time.time() - 7200, time.time() - 7200))  # two hours later
    write_cache(path, market_lines(3, seed=3))
    assert not temps[0].exists()  # a stale temporary file is cleaned up by the next write


def test_an_unreadable_cache_is_a_clear_error(tmp_path: Path) -> None:
    from tradingd.engine import DataError

    with pytest.raises(DataError, match="cannot read the catalog cache"):
        PolymarketCatalog.from_cache(tmp_path)  # a directory
    empty = PolymarketCatalog.from_cache(tmp_path / "none.jsonl")
    assert len(empty) == 0 and empty.last_updated() is None and empty.is_stale()
    assert empty.search("x") == [] and empty.find_by_slug_regex(".") == [] and empty.all() == []
    assert (
        empty.find_by_slug("x") is None and empty.get("0x1") is None and empty.find_by_token_id("1") is None
    )


def test_default_cache_path_follows_xdg() -> None:
    assert default_cache_path({"XDG_CACHE_HOME": "/var/cache/me"}) == Path(
        "/var/cache/me/tradingd/polymarket_markets.jsonl"
    )
    home = Path.home() / ".cache" / "tradingd" / "polymarket_markets.jsonl"
    assert default_cache_path({}) == home
    assert default_cache_path({"XDG_CACHE_HOME": "relative/dir"}) == home  # ignored, as the spec says


# --------------------------------------------------------------------------- lookups


def test_every_lookup_agrees_with_the_generated_markets(
    generated: tuple[PolymarketCatalog, list[dict[str, Any]]],
) -> None:
    cat, markets = generated
    assert isinstance(cat, MarketCatalog) and len(cat) == 600
    assert [m.slug for m in cat.all()] == [m["slug"] for m in markets]  # cache order
    for raw in markets:
        m = cat.find_by_slug(raw["slug"])
        assert m is not None and m.condition_id == raw["conditionId"]
        assert cat.get(raw["conditionId"].upper()) == m  # hex in any case
        pairs = tokens_of(raw)
        assert [(t.outcome, t.token_id) for t in m.tokens] == pairs
        for outcome, token in pairs:
            found = cat.find_by_token_id(token)
            assert found is not None and found.slug == raw["slug"] and found.outcome_of(token) == outcome
        assert m.neg_risk is raw["negRisk"] and m.tags == tuple(t["label"] for t in raw["tags"])
    assert cat.find_by_slug(markets[0]["slug"][:-1]) is None  # exact, not a prefix
    assert cat.find_by_token_id("1") is None and cat.get("0x" + "0" * 64) is None
    three_way = [m for m in cat.all() if len(m.tokens) == 3]
    neg_risk = [m for m in cat.all() if m.neg_risk]
    assert three_way and neg_risk
    assert all(m.outcomes[1] == "Draw" for m in three_way)
    groups: dict[str, int] = {}
    for m in neg_risk:
        assert m.neg_risk_market_id is not None
        groups[m.neg_risk_market_id] = groups.get(m.neg_risk_market_id, 0) + 1
    assert max(groups.values()) >= 4  # an event's candidates share one neg-risk market id


def test_regex_finds_the_recurring_markets(generated: tuple[PolymarketCatalog, list[dict[str, Any]]]) -> None:
    cat, markets = generated
    found = cat.find_by_slug_regex(BTC_PATTERN)
    expected = sorted(m["slug"] for m in markets if re.search(BTC_PATTERN, m["slug"]))
    assert expected and [m.slug for m in found] == expected
    assert cat.find_by_slug_regex(BTC_PATTERN, tradable_only=True) == [m for m in found if m.tradable]
    assert cat.find_by_slug_regex(re.compile("UPDOWN", re.IGNORECASE)) == cat.find_by_slug_regex("updown")
    with pytest.raises(InvalidPattern, match="unterminated character set"):
        cat.find_by_slug_regex("^will-[a-")


def test_regex_can_keep_only_tradable_markets(tmp_path: Path) -> None:
    markets = [
        gamma_market("will-x-1"),
        gamma_market("will-x-2", closed=True),
        gamma_market("will-x-3", active=False),
        gamma_market("will-x-4", acceptingOrders=False),
        gamma_market("will-x-5", clobTokenIds=None),
        gamma_market("will-x-6", acceptingOrders=None),  # legacy objects lack the field
        gamma_market("wont-x-7"),
    ]
    path = tmp_path / "c.jsonl"
    write_cache(path, markets)
    cat = PolymarketCatalog.from_cache(path)
    every = cat.find_by_slug_regex("^will-x-")
    assert [m.slug for m in every] == [f"will-x-{i}" for i in range(1, 7)]
    tradable = cat.find_by_slug_regex("^will-x-", tradable_only=True)
    assert [m.slug for m in tradable] == ["will-x-1", "will-x-6"] == [m.slug for m in every if m.tradable]


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        (r"^will-bitcoin-be-above-\d+-on-", "will-bitcoin-be-above-"),
        ("^abc?", "ab"),
        ("^ab*x", "a"),
        ("^abc{2}", "ab"),
        ("^ab+", "ab"),
        ("^a|b", ""),
        ("^(a)b", ""),
        ("(?i)^abc", ""),
        ("abc", ""),
        ("^abc$", "abc"),
    ],
)
def test_literal_prefix(pattern: str, prefix: str) -> None:
    assert _literal_prefix(re.compile(pattern)) == prefix


_PIECES = ["^", "will", "-", "bitcoin", "btc", "be", "above", r"\d+", r"\d", ".", ".*", "(up|down)", "[a-z]+",
           "b?", "e*", "-?", "x{0,2}", "updown", "on", "$", "nba", "[0-9]{2}"]  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(st.sampled_from(_PIECES), min_size=1, max_size=5), anchored=st.booleans())
def test_regex_equals_a_scan_of_every_slug(
    generated: tuple[PolymarketCatalog, list[dict[str, Any]]], pieces: list[str], anchored: bool
) -> None:
    cat, markets = generated
    pattern = ("^" if anchored else "") + "".join(pieces)
    try:
        rx = re.compile(pattern)
    except re.error:
        with pytest.raises(InvalidPattern):
            cat.find_by_slug_regex(pattern)
        return
    assert [m.slug for m in cat.find_by_slug_regex(pattern)] == sorted(
        m["slug"] for m in markets if rx.search(m["slug"])
    )


# --------------------------------------------------------------------------- search


WORDS = {  # four fields, one word each swapped for "zephyr"; every market the same length
    "slug": ["alpha", "bravo", "charlie", "delta"],
    "question": ["echo", "foxtrot", "golf", "hotel", "india", "juliet"],
    "tags": ["kilo", "lima"],
    "description": ["mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform",
                    "victor"],
}  # fmt: skip


def weighted_market(field: str | None, word: str = "zephyr", n: int = 0) -> dict[str, Any]:
    w = {k: list(v) for k, v in WORDS.items()}
    if field is not None:
        w[field][1] = word
    w["slug"][0] = f"{w['slug'][0]}{n}"  # unique slugs, same token count
    return gamma_market(
        "-".join(w["slug"]),
        question=" ".join(w["question"]),
        description=" ".join(w["description"]),
        tags=tuple(w["tags"]),
    )


def test_search_weights_slug_question_tags_description(tmp_path: Path) -> None:
    fields = ["description", "tags", "question", "slug"]  # written worst first: order is not the cache's
    markets = [weighted_market(f, n=i) for i, f in enumerate(fields)]
    markets += [weighted_market(None, n=10 + i) for i in range(20)]  # 20 markets without the word
    path = tmp_path / "c.jsonl"
    write_cache(path, markets)
    cat = PolymarketCatalog.from_cache(path)
    results = cat.search("zephyr")
    assert [r.market.slug for r in results] == [markets[3]["slug"], markets[2]["slug"], markets[1]["slug"],
                                                markets[0]["slug"]]  # fmt: skip
    # The score is FTS5's BM25, negated: idf * f(k1+1) / (f + k1(1 - b + b D/avgdl)), where a hit
    # counts its column's weight in f. Every market here is 22 tokens long, so D = avgdl.
    n_rows, n_hit, k1, b = 24, 4, 1.2, 0.75
    idf = math.log((n_rows - n_hit + 0.5) / (n_hit + 0.5))
    for r, weight in zip(results, (8.0, 4.0, 2.0, 1.0), strict=True):
        assert r.score == pytest.approx(idf * weight * (k1 + 1) / (weight + k1 * (1 - b + b)), rel=1e-9)
    assert cat.search("zephyr", limit=2) == results[:2]


def test_a_very_broad_query_ranks_the_newest_matches(tmp_path: Path) -> None:
    best = weighted_market("slug", n=0)  # the best match, but the oldest market
    rest = [weighted_market("description", n=i) for i in range(1, 8)]
    others = [weighted_market(None, n=20 + i) for i in range(30)]
    path = tmp_path / "c.jsonl"
    write_cache(path, [best, *rest, *others])
    exact = PolymarketCatalog.from_cache(path, rank_window=None).search("zephyr", 3)
    assert exact[0].market.slug == best["slug"]
    windowed = PolymarketCatalog.from_cache(path, rank_window=5).search("zephyr", 3)
    assert [r.market.slug for r in windowed] == [m["slug"] for m in rest[::-1][:3]]  # ties: newest first
    assert all(w.score == pytest.approx(exact[1].score) for w in windowed)  # the same BM25 scores
    within = PolymarketCatalog.from_cache(path, rank_window=8).search("zephyr", 3)
    assert within == exact  # at most `rank_window` matches: exact
    with pytest.raises(ValueError, match="rank_window"):
        PolymarketCatalog(path, rank_window=0)


def test_search_wants_every_word_then_any(tmp_path: Path) -> None:
    a = weighted_market("question", "zephyr", n=1)
    b = weighted_market("question", "quokka", n=2)
    path = tmp_path / "c.jsonl"
    write_cache(path, [a, b, *(weighted_market(None, n=10 + i) for i in range(10))])
    cat = PolymarketCatalog.from_cache(path)
    assert {r.market.slug for r in cat.search("zephyr quokka")} == {a["slug"], b["slug"]}  # none has both
    both = gamma_market("zephyr-and-quokka", question="Zephyr quokka?")
    write_cache(path, [a, b, both, *(weighted_market(None, n=10 + i) for i in range(10))])
    cat = PolymarketCatalog.from_cache(path)
    assert [r.market.slug for r in cat.search("zephyr quokka")] == ["zephyr-and-quokka"]


def test_search_words_stop_words_prefixes_and_odd_input(
    generated: tuple[PolymarketCatalog, list[dict[str, Any]]],
) -> None:
    cat, _ = generated
    plain = cat.search("bitcoin above", 5)
    assert plain and all("bitcoin" in r.market.slug for r in plain)
    assert cat.search("Will BITCOIN be above?", 5) == plain  # case and stop words do not matter
    assert [r.market.slug for r in cat.search("bitc*", 5)] == [
        r.market.slug for r in cat.search("bitcoin", 5)
    ]
    assert cat.search("", 5) == [] and cat.search("?!- ", 5) == []
    for odd in [
        '"',
        "AND",
        "NOT bitcoin",
        "bitcoin OR",
        "NEAR(a b)",
        "col:bitcoin",
        "a*b",
        "(",
        "ünïcödé",
        "*",
    ]:
        cat.search(odd, 3)  # never a syntax error from the index
    with pytest.raises(ValueError, match="limit"):
        cat.search("bitcoin", 0)
    with pytest.raises(ValueError, match="limit"):
        cat.search("bitcoin", True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=40), limit=st.integers(min_value=1, max_value=20))
def test_any_query_gives_ranked_results(
    generated: tuple[PolymarketCatalog, list[dict[str, Any]]], query: str, limit: int
) -> None:
    cat, _ = generated
    results = cat.search(query, limit)
    assert len(results) <= limit
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)


# --------------------------------------------------------------------------- the Gamma client


async def test_refresh_pages_through_gamma_with_tags(tmp_path: Path) -> None:
    markets = list(generate_markets(1_234, seed=4))
    sim = GammaSimulator(markets)
    async with gamma_over(sim, page_size=100, concurrency=3) as gamma:
        cat = PolymarketCatalog(tmp_path / "c.jsonl", gamma=gamma)
        assert await cat.refresh() == 1_234
    assert [m.slug for m in cat.all()] == [m["slug"] for m in markets]
    offsets = sorted(int(q["offset"][0]) for p, q in sim.requests)
    assert offsets == list(range(0, 1_500, 100))  # 13 pages, the last short; waves of 3 fetch 2 more
    for path, query in sim.requests:
        assert path == "/markets"
        assert {k: v[0] for k, v in query.items() if k != "offset"} == {
            "limit": "100", "order": "id", "ascending": "true", "include_tag": "true"}  # fmt: skip
    lines = (tmp_path / "c.jsonl").read_bytes().split(b"\n")[1:-1]
    assert lines == [orjson.dumps(m) for m in markets]  # byte for byte as served
    assert cat.find_by_slug(markets[5]["slug"]).tags == tuple(t["label"] for t in markets[5]["tags"])  # type: ignore[union-attr]
    assert orjson.loads((tmp_path / "c.jsonl").read_bytes().split(b"\n")[0])["count"] == 1_234


async def test_refresh_of_an_exact_number_of_pages(tmp_path: Path) -> None:
    sim = GammaSimulator(generate_markets(200, seed=4))
    async with gamma_over(sim, page_size=50, concurrency=4) as gamma:
        cat = PolymarketCatalog(tmp_path / "c.jsonl", gamma=gamma)
        assert await cat.refresh() == 200
        assert len(sim.requests) == 8  # 4 full pages, then a wave that finds the end


async def test_retries_with_jittered_backoff_then_succeeds(tmp_path: Path) -> None:
    import random

    sim = GammaSimulator(generate_markets(30, seed=1))
    sim.fail_next(3, 503)
    sleeps: list[float] = []

    async def sleep(d: float) -> None:
        sleeps.append(d)

    async with gamma_over(
        sim, page_size=50, concurrency=1, sleep=sleep, backoff=1.0, rng=random.Random(1)
    ) as g:
        cat = PolymarketCatalog(tmp_path / "c.jsonl", gamma=g)
        assert await cat.refresh() == 30
        assert g.retries == 3 and g.requests == 4
    caps = [1.0, 2.0, 4.0]  # full jitter: uniform in [0, backoff * 2**n]
    assert len(sleeps) == 3 and all(0 <= s <= c for s, c in zip(sleeps, caps, strict=True))
    assert len(set(sleeps)) == 3


async def test_retry_after_is_honoured() -> None:
    sim = GammaSimulator(generate_markets(3, seed=1))
    sim.fail_next(1, 429, retry_after=7)
    sleeps: list[float] = []

    async def sleep(d: float) -> None:
        sleeps.append(d)

    async with gamma_over(sim, sleep=sleep) as gamma:
        assert len(await gamma.markets_page(0)) == 3
    assert sleeps == [7.0]


@pytest.mark.parametrize(("status", "error"), [(503, VenueError), (429, RateLimited)])
async def test_retries_run_out_with_a_clear_error(
    tmp_path: Path, status: int, error: type[Exception]
) -> None:
    sim = GammaSimulator(generate_markets(3, seed=1))
    sim.fail_next(10, status)
    async with gamma_over(sim, max_attempts=3, sleep=no_sleep) as gamma:
        with pytest.raises(error, match=f"failed after 3 attempt\\(s\\): HTTP {status}") as info:
            await gamma.markets_page(0)
        assert isinstance(info.value, VenueError) and info.value.code == status
        assert info.value.venue == "polymarket" and gamma.requests == 3


async def test_other_answers_fail_at_once() -> None:
    sim = GammaSimulator(generate_markets(3, seed=1))
    sim.fail_next(1, 404)
    async with gamma_over(sim, sleep=no_sleep) as gamma:
        with pytest.raises(VenueError, match="answered HTTP 404") as info:
            await gamma.markets_page(0)
        assert info.value.code == 404 and gamma.requests == 1
        with pytest.raises(VenueError, match="HTTP 400: .*limit must be an integer"):
            await gamma.get("/markets", {"limit": "many"})
        with pytest.raises(VenueError, match="HTTP 404"):
            await gamma.market_by_slug("no-such-market")
        one = await gamma.market_by_slug(sim.markets[1]["slug"])
        assert one["id"] == sim.markets[1]["id"] and "tags" in one


async def test_transport_errors_are_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, content=b'[{"id": "1"}, {"id": "2"}]')

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        gamma = GammaClient(http, base_url=URL, sleep=no_sleep)
        assert await gamma.markets_page(0) == [b'{"id": "1"}', b'{"id": "2"}']
        calls = 0
        gamma = GammaClient(http, base_url=URL, sleep=no_sleep, max_attempts=2)
        with pytest.raises(VenueError, match="ConnectError: connection refused"):
            await gamma.markets_page(0)


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"<html>busy</html>", "expected a JSON array"), (b'{"error": "x"}', "expected a JSON array"),
     (b"[1, 2]", "item 0 is not a JSON object")],
)  # fmt: skip
async def test_answers_that_are_not_market_lists(body: bytes, message: str) -> None:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=body))
    ) as h:
        with pytest.raises(VenueError, match=message):
            await GammaClient(h, base_url=URL).markets_page(0)


async def test_pretty_printed_items_become_one_line() -> None:
    body = b'[\n  {\n    "id": "1",\n    "slug": "a"\n  }\n]'
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=body))
    ) as h:
        assert await GammaClient(h, base_url=URL).markets_page(0) == [b'{"id":"1","slug":"a"}']


async def test_a_server_that_caps_the_page_size_is_not_stepped_over(tmp_path: Path) -> None:
    sim = GammaSimulator(generate_markets(120, seed=1), max_limit=40)
    async with gamma_over(sim, page_size=100, concurrency=2) as gamma:
        cat = PolymarketCatalog(tmp_path / "c.jsonl", gamma=gamma)
        with pytest.raises(VenueError, match="caps the page size; use a page_size of at most 40"):
            await cat.refresh()
    assert files_in(tmp_path) == []  # no cache, no temporary file


async def test_a_market_repeated_across_pages_is_written_once(tmp_path: Path) -> None:
    markets = list(generate_markets(10, seed=1))
    pages = {0: markets[0:5], 5: markets[4:9], 10: markets[9:10]}  # market 4 slid across a boundary

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=orjson.dumps(pages.get(int(request.url.params["offset"]), [])))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        gamma = GammaClient(http, base_url=URL, page_size=5, concurrency=1)
        cat = PolymarketCatalog(tmp_path / "c.jsonl", gamma=gamma)
        assert await cat.refresh() == 10
    lines = (tmp_path / "c.jsonl").read_bytes().split(b"\n")[1:-1]
    assert [orjson.loads(line)["id"] for line in lines] == [m["id"] for m in markets]  # each once
    assert cat.stats.duplicates == 0


def test_simulator_filters_like_gamma() -> None:
    markets = list(generate_markets(40, seed=6))

    async def ask(sim: GammaSimulator, params: dict[str, Any]) -> Any:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim), base_url=URL) as http:
            r = await http.get("/markets", params=params)
            return r.json()

    sim = GammaSimulator(markets)
    assert [m["id"] for m in trio.run(ask, sim, {})] == [m["id"] for m in markets[:20]]  # default limit 20
    closed = trio.run(ask, sim, {"closed": "true", "limit": 100})
    assert closed and all(m["closed"] for m in closed) and len(closed) == sum(m["closed"] for m in markets)
    by_slug = trio.run(ask, sim, {"slug": f"{markets[3]['slug']},{markets[7]['slug']}"})
    assert [m["id"] for m in by_slug] == [markets[3]["id"], markets[7]["id"]] and "tags" not in by_slug[0]
    token = tokens_of(markets[9])[1][1]
    assert [m["id"] for m in trio.run(ask, sim, {"clob_token_ids": token, "include_tag": "true"})] == [
        markets[9]["id"]
    ]
    desc = trio.run(ask, sim, {"order": "id", "ascending": "false", "limit": 3})
    assert [m["id"] for m in desc] == [m["id"] for m in markets[::-1][:3]]


# --------------------------------------------------------------------------- background refresh


def cache_with(path: Path, markets: list[dict[str, Any]], age_s: float) -> None:
    write_cache(path, markets, refreshed_at=time.time() - age_s)


async def test_a_fresh_cache_is_not_refreshed(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    cache_with(path, list(generate_markets(20, seed=1)), age_s=3_600)
    sim = GammaSimulator(generate_markets(50, seed=2))
    async with gamma_over(sim) as gamma, PolymarketCatalog.open(path, gamma=gamma) as cat:
        await trio.sleep(0.05)
        assert len(cat) == 20 and not cat.is_stale() and sim.requests == []


async def test_a_stale_cache_refreshes_in_the_background_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    old = list(generate_markets(300, seed=1))
    new = list(generate_markets(900, seed=2))
    cache_with(path, old, age_s=2 * DAY)
    sim = GammaSimulator(new)
    sim.delay = 0.03  # per request: the listing takes a while
    ticks: list[tuple[float, float]] = []  # (wall time, the event loop thread's CPU time)
    seen: set[tuple[int, bool, bool]] = set()

    async def router_like() -> None:  # must keep running while the refresh does
        while True:
            ticks.append((time.perf_counter(), time.thread_time()))
            await trio.sleep(0.002)

    async with gamma_over(sim, page_size=60, concurrency=2) as gamma, trio.open_nursery() as nursery:
        nursery.start_soon(router_like)
        async with PolymarketCatalog.open(path, gamma=gamma) as cat:
            gen = cat.generation
            assert len(cat) == 300 and cat.find_by_slug(old[7]["slug"]) is not None  # serving the old
            await trio.testing.wait_all_tasks_blocked()
            assert refreshing(cat)
            t0 = time.perf_counter()
            while cat.generation == gen:  # readers see the old catalog or the new, never a mix
                seen.add((len(cat), cat.find_by_slug(old[7]["slug"]) is not None,
                          cat.find_by_slug(new[800]["slug"]) is not None))  # fmt: skip
                await trio.sleep(0.001)
            took = time.perf_counter() - t0
            seen.add((len(cat), cat.find_by_slug(old[7]["slug"]) is not None,
                      cat.find_by_slug(new[800]["slug"]) is not None))  # fmt: skip
            assert cat.generation == gen + 1 and not refreshing(cat) and not cat.is_stale()
        nursery.cancel_scope.cancel()
    old_slugs = {m["slug"] for m in old}
    assert seen == {(300, True, False), (900, old[7]["slug"] in {m["slug"] for m in new}, True)}
    assert new[800]["slug"] not in old_slugs
    during = [cpu for t, cpu in ticks if t0 <= t <= t0 + took]
    assert took > 0.2 and len(during) > 20  # the other task ran all along...
    # ...never held up by work on the event loop's thread: its CPU time between two ticks, not
    # the wall time, which a loaded machine stretches by descheduling the whole process.
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert max(gaps) < 0.25
    updated = cat.last_updated()
    assert updated is not None and time.time() - updated.timestamp() < 60


async def test_no_cache_at_all_is_fetched_at_once(tmp_path: Path) -> None:
    sim = GammaSimulator(generate_markets(40, seed=2))
    async with (
        gamma_over(sim) as gamma,
        PolymarketCatalog.open(tmp_path / "sub" / "c.jsonl", gamma=gamma) as cat,
    ):
        assert len(cat) == 0
        await cat.wait_updated(cat.generation)
        assert len(cat) == 40 and (tmp_path / "sub" / "c.jsonl").exists()


async def test_a_failed_background_refresh_keeps_serving_and_retries(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    cache_with(path, list(generate_markets(10, seed=1)), age_s=2 * DAY)
    before = path.read_bytes()
    sim = GammaSimulator(generate_markets(25, seed=2))
    sim.fail_next(2, 500)  # the first refresh fails (one attempt each), the retry works
    async with (
        gamma_over(sim, max_attempts=1) as gamma,
        PolymarketCatalog.open(path, gamma=gamma, retry_s=0.05) as cat,
    ):
        with trio.fail_after(10):
            while cat.last_error is None:
                await trio.sleep(0.005)
        assert isinstance(cat.last_error, VenueError) and len(cat) == 10
        assert read(path) == before and files_in(tmp_path) == ["c.jsonl", "c.jsonl.index.sqlite3"]
        with trio.fail_after(10):
            await cat.wait_updated(cat.generation)
        assert len(cat) == 25 and cat.last_error is None


async def test_concurrent_refreshes_fetch_once(tmp_path: Path) -> None:
    sim = GammaSimulator(generate_markets(30, seed=2))
    sim.delay = 0.01
    counts: list[int] = []
    async with gamma_over(sim, page_size=50, concurrency=1) as gamma:
        cat = PolymarketCatalog(tmp_path / "c.jsonl", gamma=gamma)

        async def one() -> None:
            counts.append(await cat.refresh())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one)
            nursery.start_soon(one)
    assert counts == [30, 30] and len(sim.requests) == 1 and cat.generation == 1


async def test_a_refresh_by_another_process_is_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    cache_with(path, list(generate_markets(10, seed=1)), age_s=60)
    sim = GammaSimulator()
    async with gamma_over(sim) as gamma, PolymarketCatalog.open(path, gamma=gamma, poll_s=0.02) as cat:
        assert len(cat) == 10
        gen = cat.generation
        await trio.to_thread.run_sync(lambda: cache_with(path, list(generate_markets(15, seed=2)), age_s=0))
        with trio.fail_after(10):
            await cat.wait_updated(gen)
        assert len(cat) == 15 and sim.requests == []


async def test_cancelling_a_load_stops_the_index_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled mid-build, the load stops at its next batch (a count of markets decoded, not a
    time: under load a batch can take longer than the whole build does at idle). The build is
    held inside its first batch until the cancellation has reached it, so it cannot finish first."""
    from tradingd.connectors.polymarket import catalog as module

    path = tmp_path / "c.jsonl"
    write_cache(path, market_lines(20_000, seed=1))
    cat = PolymarketCatalog(path)
    decode, decoded = module._decode_market, 0
    inside, go_on = threading.Event(), threading.Event()

    def counting(line: bytes) -> Any:
        nonlocal decoded
        decoded += 1
        if decoded == 1_000:
            inside.set()
            go_on.wait(60)
        return decode(line)

    monkeypatch.setattr(module, "_decode_market", counting)
    scope = trio.CancelScope()

    async def load() -> None:
        with scope:
            await cat.load()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(load)
        while not inside.is_set():
            await trio.sleep(0.002)
        scope.cancel()
        await trio.testing.wait_all_tasks_blocked()  # the cancellation has told the build to stop
        go_on.set()
    assert scope.cancelled_caught
    assert decoded <= module._BATCH < 20_000  # stopped at its next batch
    assert len(cat) == 0 and cat.generation == 0  # nothing half-built was swapped in
    assert files_in(tmp_path) == ["c.jsonl"]  # no index, no temporary file
    assert await cat.load() and len(cat) == 20_000


async def test_refresh_needs_a_gamma_client(tmp_path: Path) -> None:
    from tradingd.engine import ConfigError

    with pytest.raises(ConfigError, match="no Gamma client"):
        await PolymarketCatalog(tmp_path / "c.jsonl").refresh()


# --------------------------------------------------------------------------- run-time discovery


class BitcoinLadder(Strategy):
    """Follows every tradable `will-bitcoin-be-above-...` market, as markets appear."""

    def __init__(self, name: str, catalog: MarketCatalog, router: MarketRouter) -> None:  # type: ignore[type-arg]
        super().__init__(name)
        self.catalog = catalog
        self.router = router
        self.markets: dict[str, CatalogMarket] = {}

    def discover(self) -> None:
        for m in self.catalog.find_by_slug_regex(BTC_PATTERN):
            if m.tradable and m.condition_id not in self.markets:
                self.markets[m.condition_id] = m
                self.router.subscribe(self.name, m.subscriptions([DataKind.BOOK]))

    async def follow(self) -> None:
        seen = self.catalog.generation
        while True:
            self.discover()
            seen = await self.catalog.wait_updated(seen)

    async def on_event(self, event: MarketEvent) -> None:
        pass


async def test_strategies_discover_and_subscribe_at_run_time(tmp_path: Path) -> None:
    day1 = [
        gamma_market("will-bitcoin-be-above-100000-on-march-1"),
        gamma_market("will-bitcoin-be-above-110000-on-march-1", closed=True),
        gamma_market("will-ethereum-be-above-4000-on-march-1"),
    ]
    day2 = [
        *day1,
        gamma_market("will-bitcoin-be-above-105000-on-march-2"),
        gamma_market("nba-bos-lal-2026-03-02"),
    ]
    path = tmp_path / "c.jsonl"
    cache_with(path, day1, age_s=60)
    sim = GammaSimulator(day2)
    router: MarketRouter = MarketRouter()  # type: ignore[type-arg]
    async with gamma_over(sim) as gamma, PolymarketCatalog.open(path, gamma=gamma) as cat:
        strategy = BitcoinLadder("ladder", cat, router)
        router.add(router.new_slot(strategy))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(strategy.follow)
            await trio.testing.wait_all_tasks_blocked()
            assert router.merged("polymarket") == {(t, DataKind.BOOK) for _, t in tokens_of(day1[0])}
            version = router.version("polymarket")
            await cat.refresh()  # Polymarket listed the next day's market
            await trio.testing.wait_all_tasks_blocked()
            assert router.merged("polymarket") == {
                (t, DataKind.BOOK) for m in (day1[0], day2[3]) for _, t in tokens_of(m)
            }
            assert router.version("polymarket") == version + 1
            nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- generator


def test_generator_is_deterministic_and_shaped_like_gamma() -> None:
    a = list(market_lines(400, seed=11))
    assert a == list(market_lines(400, seed=11)) and a != list(market_lines(400, seed=12))
    assert list(market_lines(10, seed=11)) == a[:10]
    captured = [fixture(n) for n in ("gamma_market.json", "gamma_market_closed_binary_accepting_true.json",
                                     "gamma_market_sports_market_money_line.json")]  # fmt: skip
    known = set().union(*(m.keys() for m in captured)) | {"tags", "negRiskMarketID", "negRiskRequestID",
                                                           "groupItemTitle"}  # fmt: skip
    markets = [orjson.loads(line) for line in a]
    for m in markets:
        assert set(m) <= known, set(m) - known
        assert isinstance(m["outcomes"], str) and isinstance(m["clobTokenIds"], str)
        assert isinstance(m["volume"], str) and isinstance(m["volumeNum"], float)
        market_from_gamma(m)  # every generated market is usable
    assert len({m["slug"] for m in markets}) == 400 and len({m["conditionId"] for m in markets}) == 400
    tokens = [t for m in markets for _, t in tokens_of(m)]
    assert len(set(tokens)) == len(tokens)
    kinds = {len(orjson.loads(m["outcomes"])) for m in markets}
    assert kinds == {2, 3} and any(m["negRisk"] for m in markets) and any(m["closed"] for m in markets)
    assert any(re.search(BTC_PATTERN, m["slug"]) for m in markets)
    with pytest.raises(ValueError, match="count"):
        list(generate_markets(-1))
    with pytest.raises(ValueError, match="time zone"):
        list(generate_markets(1, as_of="2026-01-01T00:00:00"))


# --------------------------------------------------------------------------- CLI


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_tables_show_venue_text_inert(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A market's slug, question, tags and outcomes are the venue's text: on the terminal a
    control character in them (ESC clearing the screen, a line break, a bidi override) shows as
    `?` in the search table and the one-market view, as every other venue text the CLI shows
    (`words.line_text`); the JSON output keeps them as written."""
    odd = "Will bitcoin \x1b[2J go up\u202e\nyes?"
    market = gamma_market(
        "bitcoin-odd-market", question=odd, tags=("btc\x07",), outcomes=("Up\x1b]0;x\x07", "Down")
    )
    path = tmp_path / "c.jsonl"
    write_cache(path, [*generate_markets(50, seed=3), market])
    c = ["--cache", str(path)]
    for argv in (("search", "bitcoin", "odd"), ("slug", "bitcoin-odd-market")):
        code, out, _ = run_cli(capsys, "catalog", *argv, *c)
        assert code == 0 and "bitcoin-odd-market" in out
        assert "Will bitcoin ?[2J go up??yes?" in out, out
        assert not any(ch in out for ch in "\x1b\x07\u202e"), out
    code, out, _ = run_cli(capsys, "catalog", "slug", "bitcoin-odd-market", *c, "--json")
    assert code == 0 and orjson.loads(out)["question"] == odd


def test_cli_lookups_as_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    markets = [*generate_markets(300, seed=8), gamma_market("will-bitcoin-be-above-99000-on-march-1-2027")]
    path = tmp_path / "c.jsonl"
    write_cache(path, markets)
    c = ["--cache", str(path), "--json"]
    code, out, err = run_cli(capsys, "catalog", "search", "bitcoin", "above", "--limit", "3", *c)
    results = orjson.loads(out)
    assert code == 0 and len(results) == 3 and "indexing" in err
    for r in results:
        assert {"score", "slug", "question", "condition_id", "active", "closed", "end_date", "tokens"} <= set(
            r
        )
        assert "bitcoin" in r["slug"] and r["score"] > 0
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    raw = markets[42]
    expect_tokens = [{"outcome": o, "token_id": t} for o, t in tokens_of(raw)]
    for command, arg in (
        ("slug", raw["slug"]),
        ("get", raw["conditionId"]),
        ("token", tokens_of(raw)[-1][1]),
    ):
        code, out, err = run_cli(capsys, "catalog", command, arg, *c)
        got = orjson.loads(out)
        assert code == 0 and err == "" and got["slug"] == raw["slug"] and got["tokens"] == expect_tokens
        assert got["end_date"] == raw["endDate"] and got["closed"] is raw["closed"]
    code, out, err = run_cli(capsys, "catalog", "regex", BTC_PATTERN, *c)
    slugs = [m["slug"] for m in orjson.loads(out)]
    assert code == 0 and slugs == sorted(m["slug"] for m in markets if re.search(BTC_PATTERN, m["slug"]))
    assert f"{len(slugs)} market(s) match" in err
    code, out, err = run_cli(capsys, "catalog", "regex", BTC_PATTERN, "--open", *c)
    tradable = [m["slug"] for m in orjson.loads(out)]
    assert code == 0 and tradable and set(tradable) < set(slugs)
    assert tradable == [s for s in slugs if not next(m for m in markets if m["slug"] == s)["closed"]]


def test_cli_tables_and_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    markets = list(generate_markets(100, seed=8))
    path = tmp_path / "c.jsonl"
    write_cache(path, markets)
    code, out, _ = run_cli(capsys, "catalog", "search", "bitcoin", "--cache", str(path))
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["SCORE", "SLUG", "STATUS", "ENDS", "QUESTION"]
    assert len(lines) == 11 and all(re.match(r"\d+\.\d{3}\s+\S+\s+(open|closed)\s", ln) for ln in lines[1:])
    code, out, _ = run_cli(capsys, "catalog", "slug", markets[0]["slug"], "--cache", str(path))
    assert code == 0 and f"slug         {markets[0]['slug']}" in out and "tokens       " in out
    for argv, status, message in [
        (["slug", "no-such-market"], 1, "tradingd: no market with slug 'no-such-market'"),
        (["regex", "^will-("], 2, "tradingd: error: invalid slug pattern '^will-(': missing ), unterminated"),
        (["search", "xyzzyplugh"], 1, "tradingd: nothing matches 'xyzzyplugh'"),
        (["search", "x", "--limit", "0"], 2, "tradingd: error: --limit must be at least 1"),
    ]:
        code, out, err = run_cli(capsys, "catalog", *argv, "--cache", str(path))
        assert code == status and err.startswith(message) and err.count("\n") == 1, err
    code, _, err = run_cli(capsys, "catalog", "get", "0x1", "--cache", str(tmp_path / "none.jsonl"))
    assert code == 1 and "no catalog cache at" in err and "tradingd catalog refresh" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_reads_the_catalog_table_of_a_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write_cache(
        tmp_path / "data" / "pm.jsonl", generate_markets(20, seed=8), refreshed_at=time.time() - 3 * DAY
    )
    config = tmp_path / "tradingd.toml"
    config.write_text('[catalog]\npolymarket_cache = "data/pm.jsonl"\nrefresh_after_s = 86400\n')
    code, out, err = run_cli(capsys, "catalog", "regex", ".", "--config", str(config), "--json")
    assert code == 0 and len(orjson.loads(out)) == 20
    assert "note: the catalog is 3 days old" in err  # stale: say how to update it
    config.write_text("[catalog]\npolymarket_cache = 5\n")
    code, _, err = run_cli(capsys, "catalog", "regex", ".", "--config", str(config))
    assert code == 2 and "catalog.polymarket_cache" in err and err.count("\n") == 1


@contextlib.contextmanager
def serve_over_loopback(app: Any) -> Iterator[str]:
    """Serve an ASGI app with hypercorn on 127.0.0.1 (a free port) in a thread; yields its URL."""
    import hypercorn.config
    import hypercorn.trio

    ready = threading.Event()
    state: dict[str, Any] = {}

    async def server() -> None:
        config = hypercorn.config.Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        stop = trio.Event()
        state["token"], state["stop"] = trio.lowlevel.current_trio_token(), stop
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                partial(hypercorn.trio.serve, app, config, shutdown_trigger=stop.wait)
            )
            state["url"] = binds[0]
            ready.set()

    thread = threading.Thread(target=trio.run, args=(server,), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield state["url"]
    finally:
        trio.from_thread.run_sync(state["stop"].set, trio_token=state["token"])
        thread.join(10)


def test_cli_refresh_end_to_end_over_loopback(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    markets = list(generate_markets(700, seed=5))
    sim = GammaSimulator(markets)
    path = tmp_path / "pm.jsonl"
    with serve_over_loopback(sim) as url:
        code, out, err = run_cli(
            capsys, "catalog", "refresh", "--gamma-url", url, "--cache", str(path), "--json"
        )
        assert code == 0, err
        summary = orjson.loads(out)
        assert summary["count"] == 700 and summary["cache"] == str(path) and summary["source"] == url
        sim.fail_next(50, 404)
        code, out, err = run_cli(capsys, "catalog", "refresh", "--gamma-url", url, "--cache", str(path))
        assert code == 1 and "answered HTTP 404" in err and err.count("\n") == 1
    assert len(PolymarketCatalog.from_cache(path)) == 700  # the failed refresh left the cache alone
    code, out, _ = run_cli(capsys, "catalog", "slug", markets[699]["slug"], "--cache", str(path), "--json")
    assert code == 0 and orjson.loads(out)["condition_id"] == markets[699]["conditionId"]


def test_cli_refuses_a_gamma_url_that_is_not_http(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(
        capsys, "catalog", "refresh", "--gamma-url", "gamma.local", "--cache", str(tmp_path / "c")
    )
    assert code == 2 and "must start with http:// or https://" in err and err.count("\n") == 1
    with pytest.raises(ValueError, match="http"):
        GammaClient(httpx.AsyncClient(), base_url="ftp://gamma")


async def test_open_makes_its_own_http_client(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    cache_with(path, list(generate_markets(5, seed=1)), age_s=60)  # fresh: nothing is fetched
    async with PolymarketCatalog.open(path, gamma_url="http://127.0.0.1:9") as cat:
        assert len(cat) == 5 and cat.gamma is not None and cat.gamma.base_url == "http://127.0.0.1:9"
        assert not cat.gamma.http.is_closed
    assert cat.gamma.http.is_closed


def test_catalog_benchmark_runs(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_catalog.py"), "--markets", "3000", "--queries", "30",
         "--repeat", "1", "--dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    for what in (
        "cache load (index build)",
        "cache load (index reused)",
        "search latency",
        "CLI search wall",
    ):
        assert what in r.stdout, r.stdout
