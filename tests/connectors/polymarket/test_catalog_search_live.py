"""Searching the catalog live, off the event loop (issue 17): `MarketCatalog.search_async` runs a
search in a worker thread for a catalog serving an event loop, and answers at once, without
yielding, in a backtest; a refresh swapping snapshots never closes one under a search in flight."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from tradingd.connectors.polymarket.catalog import PolymarketCatalog, write_cache
from tradingd.engine.venue.catalog import SearchResult
from tradingd.simulators.polymarket.catalog_generator import generate_markets, market_lines

# Every phrase of a query is scored on every row it matches (FTS5 BM25), so one common word
# repeated makes a search that takes a long while on a modest catalog: long enough that an
# event loop it blocked would show it.


@pytest.fixture(scope="module")
def big_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "polymarket_markets.jsonl"
    write_cache(path, market_lines(12_000, seed=11))
    PolymarketCatalog.from_cache(path)  # build the index once for the module
    return path


def test_search_async_answers_at_once_in_a_backtest(big_cache: Path) -> None:
    """A catalog loaded for a backtest (`from_cache`) searches on the caller's stack: the
    coroutine finishes on its first step (a backtest kernel simulates nothing else)."""
    catalog = PolymarketCatalog.from_cache(big_cache)
    assert catalog.search_in_thread is False
    for query in ("bitcoin above", "nba", "will the", "zzzz nothing", "celtics lakers"):
        coro = catalog.search_async(query, 5)
        with pytest.raises(StopIteration) as stopped:
            coro.send(None)
        assert stopped.value.value == catalog.search(query, 5)


async def test_search_async_refuses_a_bad_limit_before_any_thread(big_cache: Path) -> None:
    catalog = PolymarketCatalog.from_cache(big_cache)
    catalog.search_in_thread = True
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="limit must be a positive integer"):
            await catalog.search_async("bitcoin", bad)  # type: ignore[arg-type]


async def test_a_live_catalog_searches_in_a_thread(big_cache: Path) -> None:
    async with PolymarketCatalog.open(big_cache) as catalog:  # fresh cache: no refresh is made
        assert catalog.search_in_thread is True
        main = trio.lowlevel.current_trio_token()
        seen: list[bool] = []

        original = type(catalog).search

        def spy(self: PolymarketCatalog, query: str, limit: int = 10) -> list[SearchResult]:
            try:  # only the event loop's own thread can see the trio token
                seen.append(trio.lowlevel.current_trio_token() is main)
            except RuntimeError:
                seen.append(False)
            return original(self, query, limit)

        catalog.search = spy.__get__(catalog)  # type: ignore[method-assign]
        found = await catalog.search_async("bitcoin above", 3)
        assert seen == [False]  # ran off the event loop's thread
        assert found == original(catalog, "bitcoin above", 3)


async def test_a_live_search_leaves_the_event_loop_free(big_cache: Path) -> None:
    """A task sleeping 1 ms in a loop keeps waking on time while slow searches run live; a
    search on the loop itself would make it wait out the whole search."""
    catalog = PolymarketCatalog.from_cache(big_cache, rank_window=None)
    catalog.search_in_thread = True
    # A query long enough to block a loop for 40 ms on this machine: a search's time grows
    # steeply with its words (40 take about 30 ms on an idle 2-core VM, 80 about 800 ms).
    words, blocking = 40, 0.0
    while True:
        query = " ".join(["market"] * words)
        t0 = time.perf_counter()
        expected = catalog.search(query, 10)
        blocking = time.perf_counter() - t0
        if blocking > 0.04 or words >= 80:
            break
        words += 4
    assert len(expected) == 10
    assert blocking > 0.04, "the query must be slow enough to show a blocked loop"

    lateness: list[float] = []
    done = trio.Event()

    async def sleeper(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while not done.is_set():
            t = time.perf_counter()
            await trio.sleep(0.001)
            lateness.append(time.perf_counter() - t - 0.001)

    async with trio.open_nursery() as nursery:
        await nursery.start(sleeper)
        for _ in range(3):
            assert await catalog.search_async(query, 10) == expected
        done.set()
    # The loop was free throughout: the sleeper woke many times, never anywhere near as late
    # as the search is long (a search on the loop makes it exactly that late, each time).
    assert len(lateness) >= 10
    assert max(lateness) < blocking / 3, (max(lateness), blocking)


def test_a_swapped_snapshot_closes_after_its_last_search(tmp_path: Path) -> None:
    path = tmp_path / "polymarket_markets.jsonl"
    write_cache(path, generate_markets(50, seed=2))
    catalog = PolymarketCatalog.from_cache(path)
    snapshot = catalog._snap
    assert snapshot.con is not None
    assert snapshot.acquire()  # a search in flight in a worker thread
    snapshot.close()  # a refresh swapped it out meanwhile
    assert not snapshot.acquire()  # later searches take the catalog's newer snapshot
    assert snapshot.con.execute("SELECT count(*) FROM markets").fetchone() == (50,)
    snapshot.release()  # the search ends: the connection closes now
    with pytest.raises(sqlite3.ProgrammingError):
        snapshot.con.execute("SELECT 1")


async def test_searches_in_threads_survive_refreshes(tmp_path: Path) -> None:
    """Searches running in worker threads while the cache is replaced and reloaded again and
    again each answer from the old contents or the new ones, and never fail."""
    path = tmp_path / "polymarket_markets.jsonl"
    versions = [list(generate_markets(1_500, seed=s)) for s in (4, 5)]
    answers: list[list[str]] = []
    for markets in versions:
        write_cache(path, markets)
        answers.append([r.market.slug for r in PolymarketCatalog.from_cache(path).search("will the", 10)])
    catalog = PolymarketCatalog.from_cache(path, rank_window=None)
    catalog.search_in_thread = True
    got: list[list[str]] = []

    async def searcher() -> None:
        for _ in range(30):
            got.append([r.market.slug for r in await catalog.search_async("will the", 10)])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(searcher)
        for i in range(4):
            await trio.to_thread.run_sync(write_cache, path, versions[i % 2])
            assert await catalog.load()
    assert len(got) == 30
    assert all(g in answers for g in got)


async def test_searches_in_many_threads_at_once_answer_as_one_at_a_time(big_cache: Path) -> None:
    """Strategies searching at the same moment share the catalog's connection from several
    worker threads: each gets exactly the answer it would get alone."""
    catalog = PolymarketCatalog.from_cache(big_cache)
    queries = ["bitcoin above", "nba", "will the", "celtics lakers", "up or down", "fed rates", "xrp"]
    expected = {q: catalog.search(q, 10) for q in queries}
    catalog.search_in_thread = True
    got: dict[str, list[list[SearchResult]]] = {q: [] for q in queries}

    async def searcher(q: str) -> None:
        for _ in range(5):
            got[q].append(await catalog.search_async(q, 10))

    async with trio.open_nursery() as nursery:
        for q in queries:
            nursery.start_soon(searcher, q)
    assert got == {q: [expected[q]] * 5 for q in queries}


async def test_the_catalogs_connection_runs_one_query_at_a_time(big_cache: Path) -> None:
    """Searches in worker threads share the snapshot's one SQLite connection. From Python 3.12 the
    sqlite3 module hands two threads the same cached statement of the same SQL at once: wrong rows
    without an error, or "bad parameter or other API misuse" (the test above failed so on 3.13,
    `.ci/other-pythons`). So every query on the connection runs alone, whatever the Python:
    here a watch on the connection sees how many of its queries ever ran at once."""
    catalog = PolymarketCatalog.from_cache(big_cache)
    con = catalog._snap.con
    assert con is not None
    real: sqlite3.Connection = con  # narrowed for the class below
    count = threading.Lock()
    running = most = 0
    threads: set[int] = set()

    class Watched:
        """The connection: each query counted from its `execute` until its last row is read
        (a statement stepped outside the lock is the race too), slowed a little so that
        overlaps show."""

        def execute(self, sql: str, params: Any = ()) -> Iterator[Any]:
            nonlocal running, most
            with count:
                running += 1
                most = max(most, running)
                threads.add(threading.get_ident())
            try:
                time.sleep(0.002)
                for row in real.execute(sql, params):
                    yield row
                    time.sleep(0.0001)
            finally:
                with count:
                    running -= 1

        def close(self) -> None:
            real.close()

    catalog._snap.con = Watched()  # type: ignore[assignment]
    catalog.search_in_thread = True
    queries = ["bitcoin above", "nba", "will the", "celtics lakers", "up or down", "fed rates", "xrp"]
    async with trio.open_nursery() as nursery:
        for q in queries:
            for _ in range(3):
                nursery.start_soon(catalog.search_async, q, 10)
    assert len(threads) > 1  # the searches ran in worker threads, several at once
    assert most == 1
