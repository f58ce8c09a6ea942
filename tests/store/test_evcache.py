"""The decoded-event cache's key and file: a changed data file or decoder makes a new entry; a
truncated or corrupt entry is detected, logged, removed and rebuilt, never read; two writers of one
key, or a run that fails half way, never leave a half file under the key; an unwritable folder is
one logged line and the run goes on from the frames."""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
import structlog
import trio

from tests.support import deribit_frames as dfr
from tradingd.engine import MarketEvent, Strategy, Subscription
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.model.errors import ConfigError, DataError
from tradingd.engine.store import evcache, evformat
from tradingd.engine.store.evcache import EventCache, cache_dir
from tradingd.engine.venue.plugins import load_venue

PERP = "BTC-PERPETUAL"


def _recording(path: Path, *, last_bid: float = 90000.0) -> Path:
    frames = [(0, dfr.instruments())]
    for i in range(1, 200):
        frames.append(
            (i, dfr.ticker(PERP, i, bid=last_bid - i % 7, ask=last_bid + 1, mark=last_bid, index=last_bid))
        )
    return dfr.write(path, frames)


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


def _kernel(path: Path, cache: EventCache | None) -> BacktestKernel:
    plugin = load_venue("deribit")
    return BacktestKernel(
        {"deribit": plugin}, [DataSource("deribit", path)], [], BacktestSettings(), event_cache=cache
    )


def _run(path: Path, cache: EventCache | None) -> BacktestKernel:
    kernel = _kernel(path, cache)
    trio.run(kernel.run)
    return kernel


def test_the_folder_is_the_environment_s_choice() -> None:
    assert cache_dir({"TRADINGD_CACHE_DIR": "/x/y"}) == Path("/x/y")
    assert cache_dir({"XDG_CACHE_HOME": "/c"}) == Path("/c/tradingd/events")
    assert cache_dir({}) == Path("~/.cache/tradingd/events").expanduser()


def test_first_run_writes_second_reads(tmp_path: Path) -> None:
    rec = _recording(tmp_path / "a.rec.zst")
    cache = EventCache(tmp_path / "c", write_on=1)
    first = _run(rec, cache)
    assert first.data_path == "frames, cache written"
    assert first.cache_entry is not None and first.cache_entry.exists()
    second = _run(rec, EventCache(tmp_path / "c", write_on=1))
    assert second.data_path == "cache"
    assert second.cache_entry == first.cache_entry
    assert second.frames == first.frames == 199 + 1
    assert not list((tmp_path / "c").glob(".*.part")), "no temporary file is left"


@pytest.mark.parametrize("writer", ["compiled", "python"])
def test_an_entry_written_with_either_codec_is_read_by_either(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    """A tree without the compiled codec (`_replay` not built) writes and reads entries with
    the Python reference, the same bytes: each reads the other's entry, to the same counts."""
    rec = _recording(tmp_path / "a.rec.zst")
    compiled = getattr(evcache, "_replay")  # noqa: B009 - a private module global
    if writer == "python":
        monkeypatch.setattr(evcache, "_replay", None)
    first = _run(rec, EventCache(tmp_path / "c", write_on=1))
    assert first.data_path == "frames, cache written"
    monkeypatch.setattr(evcache, "_replay", None if writer == "compiled" else compiled)
    second = _run(rec, EventCache(tmp_path / "c", write_on=1))
    assert second.data_path == "cache"
    assert (second.frames, second.malformed) == (first.frames, first.malformed)
    stats = [attrs.asdict(k.decoders["deribit"].stats) for k in (first, second)]
    assert stats[0] == stats[1] and stats[0]["events"] > 100


def test_no_cache_neither_reads_nor_writes(tmp_path: Path) -> None:
    rec = _recording(tmp_path / "a.rec.zst")
    kernel = _run(rec, None)
    assert kernel.data_path == "frames"
    assert kernel.cache_entry is None
    assert not (tmp_path / "c").exists()


def test_a_changed_file_never_reuses_its_entry(tmp_path: Path) -> None:
    rec = _recording(tmp_path / "a.rec.zst")
    cache = EventCache(tmp_path / "c", write_on=1)
    first = _run(rec, cache)
    stat = rec.stat()
    _recording(rec, last_bid=91000.0)  # other content...
    os.utime(rec, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ...with the old modification time
    # The same cache object (its in-process memo of digests): the ctime and inode moved.
    second = _run(rec, cache)
    assert second.data_path == "frames, cache written"
    assert second.cache_entry != first.cache_entry
    third = _run(rec, EventCache(tmp_path / "c", write_on=1))
    assert third.data_path == "cache" and third.cache_entry == second.cache_entry


def _counting_digests(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    hashed: list[Path] = []
    real = evcache._file_digest

    def counted(path: Path) -> bytes:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(evcache, "_file_digest", counted)
    return hashed


def test_a_data_file_s_digest_is_remembered_by_the_folder_until_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process (another cache object) on the same folder does not hash a file again
    whose stamp is the one it was hashed with; a byte changed in place (the same inode and
    size) with the old modification time set back is hashed again (its ctime moved) and makes
    a new key."""
    rec = _recording(tmp_path / "a.rec.zst")
    monkeypatch.setattr(evcache, "_RACY_NS", 0)  # the file was written a moment ago
    hashed = _counting_digests(monkeypatch)
    plugins = {"deribit": load_venue("deribit")}
    sources = [DataSource("deribit", rec)]
    key = EventCache(tmp_path / "c").key(plugins, sources)
    assert hashed == [rec]
    assert EventCache(tmp_path / "c").key(plugins, sources) == key
    assert hashed == [rec], "remembered by the folder"
    stat = rec.stat()
    with open(rec, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    os.utime(rec, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    now = rec.stat()
    assert (now.st_ino, now.st_size, now.st_mtime_ns) == (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    assert EventCache(tmp_path / "c").key(plugins, sources) != key
    assert hashed == [rec, rec]
    # A folder whose memory is not JSON, or not of this shape: hashed again, and written anew.
    for junk in (b"not json", b'{"x": 1}', b"[1, 2]"):
        (tmp_path / "c" / evcache._DIGESTS).write_bytes(junk)
        EventCache(tmp_path / "c").key(plugins, sources)
    assert len(hashed) == 5
    EventCache(tmp_path / "c").key(plugins, sources)
    assert len(hashed) == 5


def test_a_file_changed_just_before_it_was_hashed_is_not_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within `_RACY_NS` of its last change, a file's next change may keep its stamp (a coarse
    clock): it is hashed again by every process until it has been quiet that long."""
    rec = _recording(tmp_path / "a.rec.zst")
    hashed = _counting_digests(monkeypatch)
    plugins = {"deribit": load_venue("deribit")}
    sources = [DataSource("deribit", rec)]
    for _ in range(2):
        EventCache(tmp_path / "c").key(plugins, sources)
    assert hashed == [rec, rec]
    assert not (tmp_path / "c" / evcache._DIGESTS).exists()


def test_a_changed_decoder_makes_a_new_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = _recording(tmp_path / "a.rec.zst")
    plugin = load_venue("deribit")
    cache = EventCache(tmp_path / "c", write_on=1)
    sources = [DataSource("deribit", rec)]
    key = cache.key({"deribit": plugin}, sources)
    assert cache.key({"deribit": plugin}, sources) == key
    # The version is a hash of the decoder's source: a changed line is a new version.
    monkeypatch.setattr(evcache, "_version_memo", {})
    real = evcache.tree_digest

    def edited(h: Any, root: Path) -> None:
        real(h, root)
        if root.name == "deribit":
            h.update(b"# one more line in the codec")

    monkeypatch.setattr(evcache, "tree_digest", edited)
    assert cache.key({"deribit": plugin}, sources) != key


def test_the_decoder_version_covers_the_connector_package(tmp_path: Path) -> None:
    plugin = load_venue("deribit")
    version = evcache.decoder_version(plugin)
    assert len(version) == 32
    assert evcache.decoder_version(load_venue("polymarket")) != version


def test_the_decoder_version_covers_compiled_code(tmp_path: Path) -> None:
    """A decoder's C source and its built module are its code too: a changed `_fast.c` or a
    rebuilt `.so` must make a new key, as a changed `.py` does."""
    import importlib.machinery

    root = tmp_path / "pkg"
    root.mkdir()
    (root / "codec.py").write_text("X = 1\n")

    def digest() -> str:
        h = hashlib.blake2b(digest_size=16)
        evcache.tree_digest(h, root)
        return h.hexdigest()

    before = digest()
    (root / "_fast.c").write_text("int x;\n")
    with_c = digest()
    assert with_c != before, "a C source is part of the version"
    (root / "_fast.c").write_text("int y;\n")
    assert digest() != with_c, "a changed C source is a new version"
    so = root / f"_fast{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    so.write_bytes(b"\x7fELF one build")
    built = digest()
    so.write_bytes(b"\x7fELF another build")
    assert digest() != built, "a rebuilt extension module is a new version"
    assert evcache._changed_since_start([root]) is not None, "written after this process started"


def test_a_source_written_by_the_shell_line_that_execs_python_is_the_code_running(tmp_path: Path) -> None:
    """`bash -c "pip install ... && tradingd backtest ..."` execs into Python in the process that
    ran the install: its start (/proc) is before the install wrote the sources, which then looked
    "changed after this process started" and turned the cache off on every such first run. What
    counts is when the engine was first imported, after every write of that shell line."""
    import shutil
    import subprocess
    import sys

    root = tmp_path / "pkg"
    root.mkdir()
    probe = (
        "from pathlib import Path; from tradingd.engine.store import evcache; "
        f"print(evcache._changed_since_start([Path({str(root)!r})]))"
    )
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash here")
    line = f"sleep 0.05; echo 'X = 1' > {root / 'codec.py'}; exec {sys.executable} -c \"{probe}\""
    out = subprocess.run([bash, "-c", line], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "None", out.stdout + out.stderr


def test_a_module_run_from_bytecode_older_than_its_source_is_not_the_code_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python runs a `.pyc` whose header names its source's whole-second mtime and size: a
    same-size edit within that second leaves the old code running while the new source (the one
    hashed) sits on disk, and an entry would be filed under code that did not make it."""
    import importlib
    import py_compile
    import sys

    root = tmp_path / "pkg_stale_pyc"
    root.mkdir()
    src = root / "stale_pyc_codec.py"
    second = (time.time_ns() // 1_000_000_000 - 100) * 1_000_000_000  # a whole second, in the past
    src.write_text("FACTOR = 1\n")
    os.utime(src, ns=(second + 100_000_000, second + 100_000_000))
    written = py_compile.compile(str(src), doraise=True)
    assert written is not None
    cached = Path(written)
    os.utime(cached, ns=(second + 200_000_000, second + 200_000_000))
    src.write_text("FACTOR = 2\n")  # the same size, in the same second, after the .pyc
    os.utime(src, ns=(second + 500_000_000, second + 500_000_000))
    # A process that started after the edit (the run after the one that saw it): the edit is
    # older than its start, so only the bytecode can tell.
    monkeypatch.setattr(evcache, "_STARTED_NS", time.time_ns() + 1)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, "stale_pyc_codec", raising=False)
    module = importlib.import_module("stale_pyc_codec")
    assert module.FACTOR == 1, "Python ran the old bytecode (the case this guards)"
    assert evcache._changed_since_start([root]) == src.resolve()
    # Bytecode written after its source is the code running.
    cached.unlink()
    py_compile.compile(str(src), doraise=True)
    monkeypatch.setattr(evcache, "_STARTED_NS", time.time_ns() + 1)
    monkeypatch.delitem(sys.modules, "stale_pyc_codec")
    assert importlib.import_module("stale_pyc_codec").FACTOR == 2
    assert evcache._changed_since_start([root]) is None


@pytest.mark.parametrize("cut", ["truncate", "flip", "empty"])
def test_a_damaged_entry_is_logged_removed_and_rebuilt(tmp_path: Path, cut: str) -> None:
    rec = _recording(tmp_path / "a.rec.zst")
    first = _run(rec, EventCache(tmp_path / "c", write_on=1))
    entry = first.cache_entry
    assert entry is not None
    data = entry.read_bytes()
    if cut == "truncate":
        entry.write_bytes(data[: len(data) // 2])
    elif cut == "flip":
        i = len(data) // 2
        entry.write_bytes(data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :])
    else:
        entry.write_bytes(b"")
    cache = EventCache(tmp_path / "c", write_on=1)
    log = _Log()
    key = cache.key({"deribit": load_venue("deribit")}, [DataSource("deribit", rec)])
    kernel = _kernel(rec, cache)
    assert cache.open(key, kernel.sources, kernel.decoders, log) is None
    assert [event for event, _ in log.lines] == ["evcache.corrupt"]
    assert not entry.exists(), "a damaged entry is removed"
    again = _run(rec, cache)
    assert again.data_path == "frames, cache written"
    assert _run(rec, cache).data_path == "cache"


def test_an_entry_naming_a_function_is_refused(tmp_path: Path) -> None:
    payload = pickle.dumps(os.system)
    with pytest.raises(pickle.UnpicklingError):
        evcache._loads(payload)


def test_an_unwritable_folder_is_one_line_and_the_run_goes_on(tmp_path: Path) -> None:
    rec = _recording(tmp_path / "a.rec.zst")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = EventCache(blocker / "c", write_on=1)
    log = _Log()
    assert cache.writer("k", log) is None
    assert [event for event, _ in log.lines] == ["evcache.unwritable"]
    kernel = _run(rec, cache)
    assert kernel.data_path == "frames" and kernel.cache_entry is None
    assert kernel.frames == 200


def test_a_failed_run_leaves_no_entry(tmp_path: Path) -> None:
    rec = tmp_path / "bad.rec"
    rec.write_bytes(b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}\n')
    with pytest.raises(DataError):
        _run(rec, EventCache(tmp_path / "c", write_on=1))
    assert list((tmp_path / "c").iterdir()) == []


def test_concurrent_writers_of_one_key_leave_one_whole_entry(tmp_path: Path) -> None:
    rec = _recording(tmp_path / "a.rec.zst")
    cache_a, cache_b = EventCache(tmp_path / "c", write_on=1), EventCache(tmp_path / "c", write_on=1)
    a, b = _kernel(rec, cache_a), _kernel(rec, cache_b)

    async def both() -> None:
        async with trio.open_nursery() as n:
            n.start_soon(a.run)
            n.start_soon(b.run)

    trio.run(both)
    assert a.cache_entry == b.cache_entry
    assert [p.name for p in (tmp_path / "c").iterdir()] == [a.cache_entry.name if a.cache_entry else ""]
    assert _run(rec, EventCache(tmp_path / "c", write_on=1)).data_path == "cache"


def test_the_folder_is_kept_under_its_size(tmp_path: Path) -> None:
    cache = EventCache(tmp_path / "c", max_bytes=1, write_on=1)
    one = _run(_recording(tmp_path / "a.rec.zst"), cache).cache_entry
    two = _run(_recording(tmp_path / "b.rec.zst", last_bid=80000.0), cache).cache_entry
    assert two is not None and two.exists(), "the entry just written stays"
    assert one is not None and not one.exists(), "the least recently used goes"
    assert cache.clear() == 1


def test_a_missing_data_file_is_the_frame_path_s_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        _run(tmp_path / "missing.rec.zst", EventCache(tmp_path / "c", write_on=1))


def test_a_fault_while_recording_leaves_no_entry_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = _recording(tmp_path / "a.rec.zst")
    frames_only = _run(rec, None)

    def broken(*_: Any) -> None:
        raise RuntimeError("a bug of the cache")

    monkeypatch.setattr(evcache.CacheWriter, "_encode", broken)
    kernel = _run(rec, EventCache(tmp_path / "c", write_on=1))
    assert kernel.data_path == "frames" and kernel.cache_entry is None
    assert kernel.frames == frames_only.frames and kernel.events == frames_only.events
    assert list((tmp_path / "c").iterdir()) == []


def _book_recording(path: Path) -> Path:
    bids = [(90000.0 - i, 1.0 + i) for i in range(8)]
    asks = [(90001.0 + i, 1.0 + i) for i in range(8)]
    frames = [(0, dfr.instruments()), (1, dfr.snapshot(PERP, 1, 100, bids, asks))]
    for i in range(2, 120):
        frames.append((i, dfr.change(PERP, i, 99 + i, [["change", 90000.0, 1.0 + i % 5]], [])))
    return dfr.write(path, frames)


class _Books(Strategy):
    """Records the book of every event's instrument as it sees it."""

    def __init__(self) -> None:
        super().__init__("books")
        self.seen: list[Any] = []

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription("deribit", PERP)]

    async def on_event(self, event: MarketEvent) -> None:
        book = self.ctx.book(event.venue, event.instrument)
        state = None if book is None else (book.top(), book.depth(), book.valid, book.sequence)
        self.seen.append((type(event).__name__, event.ts_local, state))


def _seen(path: Path, cache: EventCache | None) -> tuple[BacktestKernel, list[Any]]:
    probe = _Books()
    kernel = BacktestKernel(
        {"deribit": load_venue("deribit")},
        [DataSource("deribit", path)],
        [probe],
        BacktestSettings(),
        event_cache=cache,
    )
    trio.run(kernel.run)
    return kernel, probe.seen


@pytest.mark.parametrize("where", ["deep", "top", "sequence"])
def test_a_book_that_diverges_mid_file_only_is_never_replayed_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """The decoder changes its book otherwise than its events say at frame 60 (a level far from
    the top, its size only; the best ask; the sequence), and puts it back at frame 61: the books
    agree at the end, but a replay must show what the frame path showed in between. Either the
    entry is refused, or it is written with the difference and replays it exactly. Such a
    decoder breaks the promise of exact book updates (`exact_books`, which the Deribit decoder
    makes: `test_a_decoder_that_breaks_its_exact_books_promise_is_caught`), so it makes none
    here: the writer's own check of the books is what is tested."""
    from tradingd.connectors.deribit.codec import DeribitDecoder

    monkeypatch.setattr(DeribitDecoder, "exact_books", False)

    rec = _book_recording(tmp_path / "a.rec.zst")
    real = DeribitDecoder.decode
    saved: list[Any] = []

    def tampering(self: DeribitDecoder, frame: Any, ts: int) -> Any:
        events = real(self, frame, ts)
        book = self.book(PERP)
        if book is None:
            return events
        side, price = (book.bids, 89995.0) if where == "deep" else (book.asks, 90001.0)
        tick = book.to_ticks(price)
        if self.stats.frames == 60:
            saved.append(book.sequence if where == "sequence" else side[tick])
            if where == "sequence":
                book.sequence = -1
            else:
                side[tick] = saved[0] + 0.5
        elif self.stats.frames == 61 and saved:
            if where == "sequence":
                book.sequence = saved[0]
            else:
                side[tick] = saved[0]
        return events

    monkeypatch.setattr(DeribitDecoder, "decode", tampering)
    _, frames_seen = _seen(rec, None)
    saved.clear()
    writer, written_seen = _seen(rec, EventCache(tmp_path / "c", write_on=1))
    assert saved, "the book was tampered with"
    assert written_seen == frames_seen
    reader, replayed = _seen(rec, EventCache(tmp_path / "c", write_on=1))
    if writer.cache_entry is None:
        assert reader.data_path == "frames, cache written" or reader.data_path == "frames"
    else:
        assert reader.data_path == "cache"
        assert replayed == frames_seen, "the replay shows the book the frame path showed"
    assert any(s[2] is not None and s[2][3] == -1 for s in frames_seen) == (where == "sequence")


@pytest.mark.parametrize("turn", [1, 2])
def test_each_test_has_a_cache_folder_of_its_own(tmp_path: Path, turn: int) -> None:
    """The same data in two tests: each writes its own entry (tests/conftest.py), so a test
    meant to cover the frame path never replays another test's entry by accident."""
    assert cache_dir() != cache_dir({}), "never the user's folder"
    kernel = _run(_recording(tmp_path / "same.rec.zst"), EventCache(write_on=1))
    assert kernel.data_path == "frames, cache written", f"turn {turn}"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1000", 1000),
        ("4G", 4 << 30),
        ("512m", 512 << 20),
        ("64KiB", 64 << 10),
        (" 2GB ", 2 << 30),
        ("1T", 1 << 40),
    ],
)
def test_the_size_limit_takes_bytes_or_a_suffix(
    monkeypatch: pytest.MonkeyPatch, text: str, size: int
) -> None:
    monkeypatch.setenv("TRADINGD_CACHE_MAX_BYTES", text)
    assert EventCache().max_bytes == size


@pytest.mark.parametrize("text", ["lots", "4X", "-1", "1.5G", "G"])
def test_a_bad_size_limit_is_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("TRADINGD_CACHE_MAX_BYTES", text)
    with pytest.raises(ConfigError, match=f"TRADINGD_CACHE_MAX_BYTES={text!r}"):
        EventCache()


def test_eviction_removes_a_killed_writer_s_old_part_files_and_counts_the_others(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    entry = _run(_recording(tmp_path / "a.rec.zst"), EventCache(folder, write_on=1)).cache_entry
    assert entry is not None
    stale = folder / f".{'0' * 40}.abc123.part"  # a killed run's: two hours old
    stale.write_bytes(b"x" * 5000)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = folder / f".{'1' * 40}.def456.part"  # a writer at work now
    fresh.write_bytes(b"x" * 5000)
    cache = EventCache(folder, max_bytes=entry.stat().st_size + 4000, write_on=1)
    cache.evict()
    assert not stale.exists(), "older than an hour: a killed writer's, removed"
    assert fresh.exists(), "a writer at work keeps its file"
    assert not entry.exists(), "the fresh part file counts in the folder's size"


@pytest.mark.parametrize("as_dir", [False, True])
def test_a_data_file_changed_after_it_was_hashed_is_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_dir: bool
) -> None:
    """The key names the content hashed; a file rewritten before (or while) it is read would
    be cached under the old content's key: the entry is not written (one log line)."""
    folder = tmp_path / "rec"
    folder.mkdir()
    path = folder / "deribit-20261124T000000.000Z.rec.zst" if as_dir else tmp_path / "d.rec.zst"
    _recording(path, last_bid=89000.0)
    real_key = EventCache.key

    def key_then_rewrite(self: EventCache, plugins: Any, sources: Any) -> str:
        k = real_key(self, plugins, sources)
        _recording(path, last_bid=89990.0)  # rewritten after it was hashed, before it is read
        return k

    monkeypatch.setattr(EventCache, "key", key_then_rewrite)
    with structlog.testing.capture_logs() as logs:
        kernel = _run(folder if as_dir else path, EventCache(tmp_path / "c", write_on=1))
    assert kernel.data_path == "frames"
    assert not list((tmp_path / "c").glob("*.evc"))
    assert [line["reason"] for line in logs if line["event"] == "evcache.not_written"] == [
        f"a data file changed while it was read: {path}"
    ]


def _plugin_from(folder: Path, name: str) -> Any:
    """A Deribit plugin whose class lives in a module of `folder` (its own decoder source)."""
    import importlib.util
    import sys

    pkg = folder / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from tradingd.connectors.deribit import DeribitPlugin\n\n\nclass Plugin(DeribitPlugin):\n    pass\n"
    )
    spec = importlib.util.spec_from_file_location(name, pkg / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.Plugin()


def _run_with(plugin: Any, path: Path, cache: EventCache) -> BacktestKernel:
    kernel = BacktestKernel(
        {"deribit": plugin}, [DataSource("deribit", path)], [], BacktestSettings(), event_cache=cache
    )
    trio.run(kernel.run)
    return kernel


def test_a_decoder_edited_after_it_was_imported_is_never_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-lived process (a notebook, a sweep runner) runs the code it imported: its source
    edited since, the key (a hash of the files on disk) would name code that is not running."""
    monkeypatch.setattr(evcache, "_version_memo", {})
    plugin = _plugin_from(tmp_path, "tradingd_test_edited_venue")
    init = tmp_path / "tradingd_test_edited_venue" / "__init__.py"
    init.write_text(init.read_text() + "# edited after the import: not the code running\n")
    with structlog.testing.capture_logs() as logs:
        kernel = _run_with(plugin, _recording(tmp_path / "a.rec.zst"), EventCache(tmp_path / "c", write_on=1))
    assert kernel.data_path == "frames"
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").glob("*.evc"))
    assert [line["event"] for line in logs if line["event"].startswith("evcache.")] == ["evcache.off"]


def test_a_decoder_edited_during_the_run_writes_no_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evcache, "_version_memo", {})
    plugin = _plugin_from(tmp_path, "tradingd_test_edited_during_venue")
    init = tmp_path / "tradingd_test_edited_during_venue" / "__init__.py"
    # As if this process had started after the module was written (it was, a moment ago).
    monkeypatch.setattr(evcache, "_STARTED_NS", time.time_ns() + 1_000_000_000)
    real_writer = EventCache.writer

    def writer_then_edit(self: EventCache, *args: Any, **kwargs: Any) -> Any:
        w = real_writer(self, *args, **kwargs)
        init.write_text(init.read_text() + "# edited while the run reads its frames\n")
        return w

    monkeypatch.setattr(EventCache, "writer", writer_then_edit)
    with structlog.testing.capture_logs() as logs:
        kernel = _run_with(plugin, _recording(tmp_path / "a.rec.zst"), EventCache(tmp_path / "c", write_on=1))
    assert kernel.data_path == "frames"
    assert not list((tmp_path / "c").glob("*.evc"))
    reasons = [line["reason"] for line in logs if line["event"] == "evcache.not_written"]
    assert reasons == ["the deribit decoder's source changed during the run"]


# -- which replay writes (evcache.WRITE_ON) -----------------------------------------------------
def test_a_data_set_s_first_replay_marks_it_and_the_next_writes_the_entry(tmp_path: Path) -> None:
    """With `write_on=2` a data set's first replay writes no entry: it leaves a mark, and the next
    replay of the same data writes."""
    rec = _recording(tmp_path / "a.rec.zst")
    cache = EventCache(tmp_path / "c", write_on=2)
    first = _run(rec, cache)
    assert (first.data_path, first.cache_entry, cache.status) == ("frames", None, "next")
    assert not list((tmp_path / "c").glob("*.evc"))
    assert [p.name for p in (tmp_path / "c").iterdir()] == [cache.mark_of(cache.key(*_keyed(rec))).name]
    cache = EventCache(tmp_path / "c", write_on=2)
    assert _run(rec, cache).data_path == "frames, cache written"
    assert _run(rec, EventCache(tmp_path / "c", write_on=2)).data_path == "cache"
    # Other data: a first replay again.
    other = _run(_recording(tmp_path / "b.rec.zst", last_bid=70000.0), EventCache(tmp_path / "c", write_on=2))
    assert other.data_path == "frames"
    assert EventCache(tmp_path / "c").clear() == 3, "two marks and the entry"


def _keyed(rec: Path) -> tuple[dict[str, Any], list[DataSource]]:
    return {"deribit": load_venue("deribit")}, [DataSource("deribit", rec)]


def test_a_first_replay_that_fails_or_reads_a_changing_file_leaves_no_mark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.rec"
    bad.write_bytes(b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}\n')
    with pytest.raises(DataError):
        _run(bad, EventCache(tmp_path / "c", write_on=2))
    assert list((tmp_path / "c").iterdir()) == []
    path = tmp_path / "d.rec.zst"
    _recording(path, last_bid=89000.0)
    real_key = EventCache.key

    def key_then_rewrite(self: EventCache, plugins: Any, sources: Any) -> str:
        k = real_key(self, plugins, sources)
        _recording(path, last_bid=89990.0)  # rewritten after it was hashed, before it is read
        return k

    monkeypatch.setattr(EventCache, "key", key_then_rewrite)
    cache = EventCache(tmp_path / "c", write_on=2)
    assert _run(path, cache).data_path == "frames"
    assert list((tmp_path / "c").iterdir()) == [] and cache.status != "next"


def test_write_on_is_the_first_or_the_second_replay(tmp_path: Path) -> None:
    assert evcache.WRITE_ON == 1, "the first replay writes by default (issue 17)"
    rec = _recording(tmp_path / "a.rec.zst")
    assert _run(rec, EventCache(tmp_path / "d")).data_path == "frames, cache written"
    with pytest.raises(ValueError, match="write_on=3"):
        EventCache(tmp_path / "c", write_on=3)


# -- exact book updates (a decoder's promise, `exact_books`) ------------------------------------
def _frames_of(path: Path) -> list[tuple[int, bytes]]:
    from tradingd.engine.store import RecordingReader

    return [(ts or 0, frame) for ts, frame in RecordingReader(path, skip_bad=True)]


def _hostile_deribit(tmp_path: Path) -> Path:
    from tests.backtest.test_cache_equality import _deribit_hostile

    return _deribit_hostile(tmp_path / "hostile.rec")


def _generated(tmp_path: Path) -> Path:
    from tradingd.simulators.deribit import SIMULATOR

    path = tmp_path / "sample.rec.zst"
    SIMULATOR.generate_sample(path, {"seed": 11, "hours": 0.1})
    return path


def _grouped_and_quotes(tmp_path: Path) -> Path:
    """Books of both kinds for one instrument (incremental and grouped top-N), a grouped book
    alone, quotes, and changes before any snapshot."""
    perp, eth = "BTC-PERPETUAL", "ETH-PERPETUAL"
    frames: list[tuple[int, bytes]] = [(0, dfr.instruments())]
    frames.append((1, dfr.change(perp, 1, 5, [["new", 89990.0, 1.0]], [])))  # no snapshot yet
    frames.append((2, dfr.snapshot(perp, 2, 10, [(90000.0, 5.0)], [(90000.5, 4.0)])))
    for i in range(3, 60):
        frames.append((i, dfr.change(perp, i, 8 + i, [["change", 90000.0 - i % 4, 1.0 + i % 3]], [])))
        if i % 5 == 0:
            frames.append((i, dfr.change(perp, i, 8 + i, [["delete", 90000.0 - i % 4, 0.0]], [])))
    for i, (inst, bid, ask) in enumerate(
        [(eth, 3000.0, 3000.5), (perp, 90001.0, 90002.0), (eth, 3001.0, 3000.5), (eth, 3000.0, 3001.0)]
    ):  # grouped top-N books: the ETH one alone, the BTC one beside its incremental book, a crossed one
        frames.append((61 + i, _grouped(inst, 61 + i, [(bid, 1.0)], [(ask, 2.0)])))
        frames.append(
            (61 + i, dfr.ticker(perp, 61 + i, bid=90000.0, ask=90001.0, mark=90000.5, index=90000.2))
        )
    return dfr.write(tmp_path / "books.rec.zst", frames)


def _grouped(inst: str, ms: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> bytes:
    data = {"timestamp": ms, "instrument_name": inst, "change_id": ms, "bids": bids, "asks": asks}
    return orjson.dumps(
        {
            "jsonrpc": "2.0",
            "method": "subscription",
            "params": {"channel": f"book.{inst}.none.10.100ms", "data": data},
        }
    )


@pytest.mark.parametrize("data", ["fixtures", "hostile", "generated"])
def test_the_deribit_decoder_keeps_its_exact_books_promise(tmp_path: Path, data: str) -> None:
    """The cache's writer keeps no shadow books for a decoder that promises exact book updates
    (`exact_books`): the promise is checked here, frame by frame, against books kept beside the
    decoder (`exact_books_violation`), on every kind of Deribit data: gaps, ignored changes,
    resyncs, crossed books, malformed frames, instruments learned mid-file, the generated sample."""
    from tradingd.connectors.deribit.codec import DeribitDecoder
    from tradingd.engine.model import InstrumentRegistry

    assert DeribitDecoder.exact_books is True
    make = {"fixtures": _grouped_and_quotes, "hostile": _hostile_deribit, "generated": _generated}[data]
    frames = _frames_of(make(tmp_path))
    decoder = load_venue("deribit").decoder(InstrumentRegistry())
    assert getattr(decoder, "exact_books", False) is True, "the decoder the backtest uses"
    assert evcache.exact_books_violation(decoder, frames) is None
    assert decoder.stats.frames > 0 and decoder.book_instruments()


def test_a_decoder_that_breaks_its_exact_books_promise_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check can fail: a book changed otherwise than its events say (one level's size at
    frame 60, put back at 61) is named at the frame it happened."""
    from tradingd.connectors.deribit.codec import DeribitDecoder
    from tradingd.engine.model import InstrumentRegistry

    real = DeribitDecoder.decode

    def tampering(self: DeribitDecoder, frame: Any, ts: int) -> Any:
        events = real(self, frame, ts)
        book = self.book(PERP)
        if book is not None and self.stats.frames == 60:
            book.bids[book.to_ticks(89995.0)] += 0.5
        return events

    monkeypatch.setattr(DeribitDecoder, "decode", tampering)
    frames = _frames_of(_book_recording(tmp_path / "a.rec.zst"))
    found = evcache.exact_books_violation(load_venue("deribit").decoder(InstrumentRegistry()), frames)
    assert found is not None and found.startswith("frame 59 ") and PERP in found


# -- a forged entry (its digest matching) -------------------------------------------------------
class _Evil:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, ("echo the cache ran code >&2",))


def _forge_first_chunk(entry: Path, records: list[tuple[Any, int, Any]] | bytes) -> None:
    """`entry` with its first chunk replaced by `records` (encoded by the reference encoder, its
    pickles unrestricted; or raw bytes), its footer and check made to match: what only a
    deliberate forger (not a damaged disk) makes."""
    import zstandard

    if isinstance(records, bytes):
        chunk = records
    else:
        encoder = evformat.PyEncoder({}, {}, lambda v: -1, lambda v: pickle.dumps(v, protocol=5))
        for rec in records:
            encoder.add(*rec)
        chunk = len(records).to_bytes(4, "little") + bytes(4) + encoder.take()
    data = entry.read_bytes()
    hlen = int.from_bytes(data[len(evcache._MAGIC) : len(evcache._MAGIC) + 4], "little")
    at = len(evcache._MAGIC) + 4 + hlen
    n = int.from_bytes(data[at : at + 4], "little")
    evil = zstandard.ZstdCompressor().compress(chunk)
    tail = len(evcache._END) + evcache._DIGEST
    flen = int.from_bytes(data[-tail - 4 : -tail], "little")
    footer = pickle.loads(data[-tail - 4 - flen : -tail - 4])
    footer["chunks_end"] += len(evil) - n
    packed = pickle.dumps(footer, protocol=5)
    body = data[:at] + len(evil).to_bytes(4, "little") + evil + data[at + 4 + n : -tail - 4 - flen]
    body += packed + len(packed).to_bytes(4, "little")
    entry.write_bytes(body + evcache._checksum(body) + evcache._END)


@pytest.mark.parametrize(
    "chunk", ["names-a-function", "wrong-shape", "not-a-chunk", "a-class-not-listed", "another-source"]
)
def test_a_forged_entry_is_refused_in_one_line_removed_and_the_next_run_decodes_the_frames(
    tmp_path: Path, chunk: str, capfd: pytest.CaptureFixture[str]
) -> None:
    rec = _recording(tmp_path / "a.rec.zst")
    entry = _run(rec, EventCache(tmp_path / "c", write_on=1)).cache_entry
    assert entry is not None
    forged: Any
    forged, why = {
        "names-a-function": ([(1, 0, _Evil())], "UnpicklingError: a cache file names posix.system"),
        "wrong-shape": ([(1, 0, (7, "x"))], "TypeError: a record holds a int, not an event of the entry"),
        "not-a-chunk": (b"\x01\x02", "ValueError: a chunk shorter than its head"),
        # a record naming the 100th class of an entry that lists fewer
        "a-class-not-listed": (
            bytes([1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, evformat.STRUCT, 99]),
            "ValueError: a class the entry does not list",
        ),
        "another-source": ([(1, 5, None)], "ValueError: a record of source 5 (of 1)"),
    }[chunk]
    _forge_first_chunk(entry, forged)
    with structlog.testing.capture_logs() as logs, pytest.raises(evcache.CacheDamaged) as raised:
        _run(rec, EventCache(tmp_path / "c", write_on=1))
    assert "the cache ran code" not in capfd.readouterr().err, "no code of the file runs"
    assert str(raised.value).startswith(f"the decoded-event cache entry {entry} cannot be replayed ({why})")
    assert "\n" not in str(raised.value)
    assert [line["event"] for line in logs if line["event"].startswith("evcache.")] == ["evcache.corrupt"]
    assert not entry.exists(), "the forged entry is removed"
    assert _run(rec, EventCache(tmp_path / "c", write_on=1)).data_path == "frames, cache written"
