"""The compiled ranking of catalog searches (`_rank.c`, issue 17) against the reference, FTS5's
own `bm25()` through the standard library's sqlite3: the same markets, in the same order, with
the same scores, on generated catalogs, random catalogs and random queries, before and after a
refresh changes the markets."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradingd.connectors.polymarket.catalog import PolymarketCatalog, write_cache
from tradingd.engine.venue.catalog import SearchResult
from tradingd.simulators.polymarket.catalog_generator import generate_markets

try:
    from tradingd.connectors.polymarket import _rank
except ImportError:  # the install could not build it: searches rank with bm25(), slower
    if os.environ.get("CI") == "true":
        raise  # .ci/run installs SQLite's header: in CI the compiled ranking must be there
    pytest.skip(
        "the catalog's compiled ranking (connectors/polymarket/_rank.c) was not built: it needs"
        " gcc and SQLite's header (Debian: apt-get install libsqlite3-dev), then pip install -e .",
        allow_module_level=True,
    )

TYPICAL = [
    "bitcoin above", "bitcoin price december", "will bitcoin be above 100000", "solana up or down",
    "btc updown 5m", "democratic nominee 2028", "fed decision march", "celtics lakers", "nba spread",
    "arsenal chelsea", "map handicap", "temperature paris", "crypto", "bitcoin", "up or down", "nba",
    "election", "weather", "Will the", "12 8:30PM-8:35PM ET", "17 12:15PM-12:20PM ET", "the the the",
    "zzqq nothing", "bitcoin zzqq", "bitc*", "bitcoin above*", "élection présidentielle", "l'équipe",
    "gpt-6", "Ünïcödé", "a", "THE", "x" * 70, "", "  ", "?!", "*", "nba*  ", "42", "0pt12",
]  # fmt: skip


def reference(catalog: PolymarketCatalog) -> PolymarketCatalog:
    """A second catalog on the same index that ranks with FTS5's bm25() (the reference)."""
    ref = PolymarketCatalog.from_cache(catalog.cache_path, rank_window=catalog.rank_window)
    assert ref._snap.ranker is not None
    ref._snap.ranker.close()
    ref._snap.ranker = None
    return ref


def words_of(catalog: PolymarketCatalog, n: int, seed: int) -> list[str]:
    """`n` queries of one to four words drawn from the markets' own text (and a few repeats)."""
    rng = random.Random(seed)
    markets = catalog.all()
    out = []
    for _ in range(n):
        m = rng.choice(markets)
        text = rng.choice((m.question, m.slug, m.description, " ".join(m.tags)))
        words = re.findall(r"\S+", text) or ["empty"]
        k = rng.randint(1, 4)
        start = rng.randrange(0, max(1, len(words) - k + 1))
        picked = words[start : start + k]
        if rng.random() < 0.15:
            picked.append(rng.choice(picked))  # a repeated word: two phrases, both scored
        out.append(" ".join(picked))
    return out


def assert_same(catalog: PolymarketCatalog, ref: PolymarketCatalog, query: str, limit: int) -> None:
    got = catalog.search(query, limit)
    want = ref.search(query, limit)
    assert got == want, query
    assert all(isinstance(r, SearchResult) for r in got)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> PolymarketCatalog:
    path = tmp_path_factory.mktemp("rank") / "polymarket_markets.jsonl"
    write_cache(path, generate_markets(4_000, seed=21))
    return PolymarketCatalog.from_cache(path)


def test_the_compiled_ranking_is_built_and_used(generated: PolymarketCatalog) -> None:
    # The install builds _rank.c (pyproject's ext-modules); an install without it ranks with
    # bm25() and this test says so instead of letting the speed-up vanish unnoticed.
    assert isinstance(generated._snap.ranker, _rank.Ranker)


@pytest.mark.parametrize("window", [None, 5_000, 40])
def test_the_compiled_ranking_equals_bm25(generated: PolymarketCatalog, window: int | None) -> None:
    catalog = PolymarketCatalog.from_cache(generated.cache_path, rank_window=window)
    ref = reference(catalog)
    for i, query in enumerate(TYPICAL + words_of(catalog, 400, seed=1)):
        assert_same(catalog, ref, query, (10, 1, 3, 50)[i % 4])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_queries_rank_as_bm25(generated: PolymarketCatalog, data: st.DataObject) -> None:
    ref = reference_of_generated(generated)
    vocabulary = vocabulary_of(generated)
    words = data.draw(
        st.lists(
            st.one_of(
                st.sampled_from(vocabulary),
                st.text(alphabet="abcdeéèxyz0123456789-'* ", min_size=1, max_size=8),
            ),
            min_size=1,
            max_size=7,
        )
    )
    limit = data.draw(st.integers(1, 30))
    assert_same(generated, ref, " ".join(words), limit)


_refs: dict[Path, PolymarketCatalog] = {}
_vocabularies: dict[Path, list[str]] = {}


def reference_of_generated(catalog: PolymarketCatalog) -> PolymarketCatalog:
    if catalog.cache_path not in _refs:
        _refs[catalog.cache_path] = reference(catalog)
    return _refs[catalog.cache_path]


def vocabulary_of(catalog: PolymarketCatalog) -> list[str]:
    if catalog.cache_path not in _vocabularies:
        words: set[str] = set()
        for m in catalog.all()[:800]:
            words.update(re.findall(r"\w+", f"{m.question} {m.slug} {m.description}".casefold()))
        _vocabularies[catalog.cache_path] = sorted(words)
    return _vocabularies[catalog.cache_path]


_TEXT = st.text(alphabet="aab bcc ddéeèe ff xyz 12 3-.", max_size=60)


@st.composite
def gamma_objects(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 25))
    out = []
    for i in range(n):
        # Now and then a market listed again: the earlier line is dropped, leaving a gap in the
        # rowids (line numbers) that the ranking's token counts are looked up by.
        same_as = draw(st.integers(0, i - 1)) if i and draw(st.integers(0, 4)) == 0 else i
        out.append(
            {
                "id": str(100 + i),
                "slug": draw(st.from_regex(r"[a-z]{1,6}(-[a-z0-9]{1,5}){0,3}", fullmatch=True)) + f"-{i}",
                "question": draw(_TEXT),
                "description": draw(_TEXT),
                "conditionId": f"0x{same_as:064x}",
                "active": True,
                "closed": draw(st.booleans()),
                "outcomes": '["Yes", "No"]',
                "clobTokenIds": f'["{2 * same_as + 1}", "{2 * same_as + 2}"]',
                "tags": [{"label": draw(st.sampled_from(["Crypto", "Sports", "Politics aab", "ddé"]))}],
            }
        )
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(markets=gamma_objects(), queries=st.lists(_TEXT, min_size=1, max_size=6))
def test_random_catalogs_rank_as_bm25(
    tmp_path_factory: pytest.TempPathFactory, markets: list[dict[str, Any]], queries: list[str]
) -> None:
    path = tmp_path_factory.mktemp("random") / "polymarket_markets.jsonl"
    write_cache(path, markets)
    for window in (None, 3):
        catalog = PolymarketCatalog.from_cache(path, rank_window=window)
        ref = reference(catalog)
        for query in [*queries, "aab", "aab bcc", "ddé", "12 3", "aab aab"]:
            assert_same(catalog, ref, query, 5)


def test_a_refresh_that_adds_and_closes_markets_ranks_right(tmp_path: Path) -> None:
    """The word counts are rebuilt with the index: after a refresh that adds markets (with words
    never seen before), closes others and drops some, search still ranks exactly as bm25()."""
    path = tmp_path / "polymarket_markets.jsonl"
    before = list(generate_markets(1_500, seed=8))
    write_cache(path, before)
    catalog = PolymarketCatalog.from_cache(path)
    assert catalog.search("quokkaville", 5) == []
    queries = ["bitcoin above", "nba", "will the", "quokkaville", "quokkaville bitcoin", "closed market"]

    after = [dict(m) for m in before[300:]]  # 300 dropped
    for m in after[:200]:
        m["closed"] = True
    for i, m in enumerate(list(generate_markets(400, seed=9))):  # 400 new, some with a new word
        m = dict(m)
        m["id"] = str(10_000_000 + i)
        m["slug"] = f"{m['slug']}-new-{i}"
        m["conditionId"] = f"0x{i + 1:064x}"
        m["clobTokenIds"] = f'["{9_000_000 + 2 * i}", "{9_000_001 + 2 * i}"]'
        if i % 10 == 0:
            m["question"] = f"Will quokkaville host the {m['question']}"
        after.append(m)
    write_cache(path, after)
    catalog = PolymarketCatalog.from_cache(path)
    ref = reference(catalog)
    found = catalog.search("quokkaville", 50)
    assert len(found) == 40 and all("quokkaville" in r.market.question.casefold() for r in found)
    for query in queries + words_of(catalog, 150, seed=3):
        assert_same(catalog, ref, query, 10)


def test_the_ranker_closes_with_its_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "polymarket_markets.jsonl"
    write_cache(path, generate_markets(30, seed=2))
    catalog = PolymarketCatalog.from_cache(path)
    snapshot = catalog._snap
    ranker = snapshot.ranker
    assert ranker is not None
    snapshot.close()
    with pytest.raises(ValueError, match="closed"):
        ranker.rows("SELECT 1, 0.0", ())


def test_a_limit_past_the_catalog_ranks_as_bm25(generated: PolymarketCatalog) -> None:
    ref = reference_of_generated(generated)
    got = generated.search("will the", 40_000)
    assert len(got) > 3_000
    assert got == ref.search("will the", 40_000)


def test_a_ranker_is_not_closed_under_a_search_in_another_thread(tmp_path: Path) -> None:
    """rows() reads the connection and the market sizes with the GIL released: a close() from
    another thread meanwhile would free them under it (issue 17's review). It is refused until
    the search has ended, then closes."""
    import threading

    path = tmp_path / "polymarket_markets.jsonl"
    write_cache(path, generate_markets(30, seed=2))
    catalog = PolymarketCatalog.from_cache(path)
    ranker = _rank.Ranker(f"{catalog.index_path.resolve().as_uri()}?mode=ro&immutable=1")
    started = threading.Event()
    out: list[Any] = []
    # A statement that works for a second or more and returns one row.
    slow = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000)"
        " SELECT max(x), 0.0 FROM c"
    )

    def search() -> None:
        started.set()
        out.append(ranker.rows(slow, ()))

    worker = threading.Thread(target=search)
    worker.start()
    started.wait()
    refused = 0
    while worker.is_alive():
        try:
            ranker.close()
        except RuntimeError:
            refused += 1
            worker.join(0.01)
            continue
        break  # closed: only once the search had ended
    worker.join()
    assert out == [[(3_000_000, 0.0)]]
    assert refused > 0, "the close was tried only after the search ended: no evidence"
    ranker.close()
    with pytest.raises(ValueError, match="closed"):
        ranker.rows("SELECT 1, 0.0", ())
    catalog._snap.close()
