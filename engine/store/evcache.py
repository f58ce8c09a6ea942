"""The decoded-event cache: a backtest's data, decoded once, replayed from a compact binary file.

A data set's first replay from its frames writes (`WRITE_ON`; `EventCache(write_on=2)` waits for
the second, the first only leaving a mark, for a caller that replays many data sets once), beside
its run, what each frame's decode
did: the events it returned (or the `MalformedFrame` it raised, with the file and line the kernel
names), and every side effect a strategy, the simulated venues or the report can see: the
decoder's counters (`DecoderStats`) when they moved otherwise than one frame and its events, its
`last_unknown_channel`, the instruments it taught the registry, and its order books. It also
keeps what the readers reported on the way (bad lines, bare frames, `.zst` files cut short), at
the moment they reported it. A later replay of the same data with the same decoder code reads
that file instead of parsing frames and leaves every one of those in the same state at the same
moment, so the report, the warnings and the log lines are byte-identical to the frame path
(tests/backtest/test_cache_equality.py).

Books are not stored per frame: a replay rebuilds them from the events (a `BookUpdate` sets its
levels, a snapshot clears first; `sequence` and `valid` follow), and the writer compares that
prediction with the decoder's real book after every frame that names the instrument: on the
usual frame (one event, the counters moved by that frame and its event alone) what a frame can
change of an `OrderBook` (levels, sequence, validity, best levels) with one getter; on any other
frame every slot (and every book after a frame that gave no event or counted a gap or ignored
change). Where they differ (a gap, a crossed book, a venue's own fields such as a timestamp) the
difference is stored with the frame and applied after the prediction. A book that changed
without any event naming it is caught by a comparison of every book, every slot, at the end of
each chunk and at the end of the write: the file is then not kept. A decoder that promises
exact book updates (`exact_books`, checked on every kind of its data by a test through
`exact_books_violation`) is spared those shadow books, which were most of the cost of writing:
its usual frame is stored as its events alone, and a frame that raised, counted a gap or an
ignored change, or brought a snapshot or a new book stores the books it may have changed whole.

The key is the content of every data file (BLAKE2b of its bytes; a directory: every file in it,
names included), the sources' venues and formats in order (one entry per data set: a decoder's
state carries from one file of a venue to the next, so files are not cached alone), and each
venue's decoder version: a hash of the source of its connector package, of the engine's model,
venue and store code, of this module, of the library versions that decode (msgspec, zstandard)
and Python's. A changed file or a changed line of decoder code makes a new key; nothing has to be
bumped by hand. Hashing the compressed bytes costs ~1 ms per MB, a small part of a replay; it is
memoized per process by (device, inode, size, mtime, ctime), and remembered by the folder across
processes (`_DIGESTS`) for a file that had not changed for 2 s when it was hashed (a later change
moves its ctime: git's "racily clean" rule), so reruns and a sweep's workers hash once. Those stamps
(and a folder's listing) are checked again before the entry is written: a file rewritten after it
was hashed leaves no entry. The decoder's version hashes its files on disk, which are the code
running only if none changed since this process first imported the engine (a notebook imports
once): otherwise no cache for that process (`evcache.off`), and a source changed during a run
leaves no entry.

The files an entry names (a bad line's, a malformed frame's, a `.zst` cut short) are stored
relative to the data set's sources and rebuilt from the sources of the replay: one entry serves
every copy of the data, each replay naming its own files.

Files: `$TRADINGD_CACHE_DIR`, else `$XDG_CACHE_HOME/tradingd/events`, else
`~/.cache/tradingd/events`; one `<key>.evc` per data set. Written to a temporary name and renamed
(two concurrent writers or a killed run never leave a half file under the key), checked whole
before use (a CRC-32 of the file in its last bytes, `_Check`, the format's magic and length): a
truncated or corrupt entry is logged in one line, removed and rebuilt, never read. The folder is
kept under `max_bytes` (default 4 GiB, `$TRADINGD_CACHE_MAX_BYTES`: bytes, or 512M, 4G...), least
recently used first, a writer's temporary file counted; one older than an hour (a killed run's) is
removed. Deleting the folder clears it.

Format (`FORMAT` 4, in the key: an entry of another format is never read, it is rebuilt): chunks
of `CHUNK` records compressed with zstd at level 1 (level 3: ~10% smaller, ~25% more CPU to
compress, the same to read), each frame with its XXH64. A record is (ts, source index, body): the
frame's one event, or a tuple of its events, or [events, what else it did]. A chunk holds the
marks of its readers (pickled: few) and its records as compact tagged values (`evformat`: the
events' fields as they are, floats as m / 10**e where that is their very bits, times as
differences, one string object per name per chunk; what it does not write by itself, such as a
record's [events, what else], pickled). The compiled codec (`_replay.Encoder` writing,
`_replay.Records` reading) reads a chunk one record at a time, as the kernel asks for it: an
event is built by its class's C constructor just before the kernel uses it and freed just after,
warm (format 3 unpickled a chunk's thousands of events at once and freed them cold: ~35% of a
replay); `evformat` is its Python reference. The compiled replay (`_replay.Replay`) applies the
usual records (counters, book levels) in one C call per frame, reading and writing slots at their
offsets; `ReplayDecoder.apply` is its Python reference. The header lists the classes a record may
build (events, and Structs they hold: `positional_struct`, `_allowed`) and its constants (enum
members); the unpickler resolves no global but the classes listed in `_allowed` (events,
instruments, enums, Decimal, books): a cache file cannot run code; a replay takes only events of
the classes the header lists. A file forged with a matching check whose chunk cannot be replayed
(a global refused, a record of the wrong shape) is removed and ends the run with one line
(`CacheDamaged`); the next run decodes.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import gc
import hashlib
import importlib.machinery
import io
import itertools
import json
import os
import pickle
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from operator import attrgetter
from pathlib import Path
from typing import Any, Final, Protocol, cast

import attrs
import msgspec
import zstandard

from ..model.book import OrderBook
from ..model.errors import ConfigError, DataError, MalformedFrame
from ..model.events import BookUpdate, MarketEvent
from ..model.instruments import Instrument
from ..model.started import IMPORTED_NS
from . import evformat

try:  # the compiled replay (_replay.c); a tree built without it replays in Python, the reference
    from . import _replay
except ImportError:  # pragma: no cover - the install builds it
    _replay = None  # type: ignore[assignment]
else:
    _replay.setup(OrderBook)

__all__ = [
    "CHUNK",
    "WRITE_ON",
    "CacheDamaged",
    "CacheWriter",
    "CachedReader",
    "EventCache",
    "FirstReplay",
    "ReplayDecoder",
    "cache_dir",
    "exact_books_violation",
    "source_files",
    "tree_digest",
]

FORMAT: Final = 4
_MAGIC: Final = b"TDEVC\x00\x04\n"
_END: Final = b"TDEVCEND"
_DIGEST: Final = 4  # the CRC-32 of the file before it (`_Check`)
# Which replay of a data set from its frames writes its entry: 1, the first, as the issue that
# asked for the cache says. Writing costs that replay about 0.35x more (recording every frame's
# events, encoding, compressing); waiting for the second replay (`write_on=2`) spares a data set
# replayed once, but makes the second run pay it and the fast runs start at the third: a user
# iterating on a strategy (the usual case) gains more from the first.
WRITE_ON: Final = 1
# Records per chunk: a chunk is ~0.3 MB encoded, held once compressed and once not while it is
# written or read (its events are not kept: built and freed one record at a time).
CHUNK: Final = 4096
_DEFAULT_MAX: Final = 4 << 30
_STALE_PART_S: Final = 3600  # a writer's temporary file older than this is a killed run's
_ZSTD_LEVEL: Final = 1  # level 3: 10% smaller, 25% slower to write
# The data files' digests the folder remembers (`EventCache._digest`): hashing a 23 MB recording
# was 20 ms of a 0.33 s replay from the cache, every run. A file changed less than `_RACY_NS`
# before it was hashed is not remembered (its next change could keep its stamp).
_DIGESTS: Final = ".digests.json"
_DIGESTS_MAX: Final = 256
_RACY_NS: Final = 2_000_000_000

Log = Callable[..., Any]


class _Source(Protocol):
    @property
    def venue(self) -> str: ...
    @property
    def path(self) -> Path: ...
    @property
    def format(self) -> str: ...


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$TRADINGD_CACHE_DIR`, else `$XDG_CACHE_HOME/tradingd/events`, else ~/.cache/tradingd/events."""
    env = os.environ if environ is None else environ
    if env.get("TRADINGD_CACHE_DIR"):
        return Path(env["TRADINGD_CACHE_DIR"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "tradingd" / "events"


_UNITS: Final = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}


def parse_size(name: str, text: str) -> int:
    """`4G`, `512M`, `64KiB`, `1000`: bytes (K, M, G, T are powers of 1024; B or iB may
    follow). Anything else is a `ConfigError` naming the variable: the CLI's one line, exit 2,
    as for a bad setting in a config file (a limit silently replaced by the default would let the
    folder grow past what its user asked)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    digits = t[: len(t) - len(unit)]
    if not digits.isascii() or not digits.isdigit():
        raise ConfigError(f"{name}={text!r} is not a size: a number of bytes, or with K, M, G or T (4G)")
    return int(digits) << _UNITS[unit]


# -- versions -----------------------------------------------------------------------------------
_ENGINE: Final = Path(__file__).resolve().parent.parent
_version_memo: dict[str, str] = {}


class CacheDamaged(DataError):
    """An entry whose whole-file checks passed but whose records cannot be replayed: a chunk
    that names a global it may not, or that does not unpickle or decompress, or a record of the
    wrong shape. Only a file forged with a matching digest gets there (accidental damage fails
    the digest at `open`). No code of the file has run (the restricted unpickler); the entry is
    removed, and the run ends with this one line (events already went to the strategies: it
    cannot go on from the frames), the next one decodes the frames."""


class DecoderChanged(Exception):
    """The decoder's source on disk may not be the code this process runs: no cache."""


# When this process first imported the engine (`model.started`): a source changed since is not
# what runs. Not the process's start from /proc: a shell that `exec`s into Python (`bash -c
# "pip install ... && tradingd ..."`, a Dockerfile's RUN, a Makefile line) started before the
# install it ran wrote the sources, and every first backtest there would refuse the cache.
_STARTED_NS: int = IMPORTED_NS


# What a decoder is made of: its Python source, and a compiled path's C source and the built module
# (connectors/deribit/_fast.c): a changed or rebuilt `.so` decodes differently too.
_SOURCE_SUFFIXES: Final = (".py", ".c", ".h", *importlib.machinery.EXTENSION_SUFFIXES)


def source_files(root: Path) -> Iterator[Path]:
    """The files under `root` that are code (`_SOURCE_SUFFIXES`): Python, C and built modules."""
    return (p for p in root.rglob("*") if p.name.endswith(_SOURCE_SUFFIXES) and p.is_file())


def tree_digest(h: Any, root: Path) -> None:
    """Feed `h` (a hashlib object) every code file under `root` (`source_files`), each with its
    path relative to `root`, in a fixed order: the decoder's version, and a sweep trial's code
    version (`cli.trial.code_version`), hash the same way."""
    for p in sorted(source_files(root)):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")


def _version_roots(plugin: object) -> list[Path]:
    module = sys.modules.get(type(plugin).__module__)
    file = getattr(module, "__file__", None)
    roots = [Path(file).resolve().parent] if file else []
    return [*roots, *(_ENGINE / room for room in ("model", "venue", "store"))]


def _changed_since_start(roots: Sequence[Path]) -> Path | None:
    """A source file changed (written, replaced, its time set back: the inode's change time)
    after this process first imported the engine (`model.started`), or None."""
    for root in roots:
        for p in source_files(root):
            with contextlib.suppress(OSError):
                st = p.stat()
                if max(st.st_mtime_ns, st.st_ctime_ns) >= _STARTED_NS:
                    return p
    return _stale_bytecode(roots)


def _stale_bytecode(roots: Sequence[Path]) -> Path | None:
    """A module under `roots` that Python may have run from a `.pyc` older than its source, or
    None. Python trusts a `.pyc` whose header names the source's whole-second mtime and its size:
    a same-size edit within the second the `.pyc` was written runs the old code, whose source on
    disk (the one hashed) is already the new one."""
    resolved = tuple(os.path.join(os.path.realpath(r), "") for r in roots)
    real_dirs: dict[str, str] = {}  # a folder's real path, once per folder (most modules share one)
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        cached = getattr(module, "__cached__", None)
        if not file or not cached or not file.endswith(".py"):
            continue
        folder, name = os.path.split(file)
        real = real_dirs.get(folder)
        if real is None:
            real = real_dirs[folder] = os.path.realpath(folder)
        path = os.path.join(real, name)
        if os.path.islink(path):  # a module's file linked from elsewhere: where it really is
            path = os.path.realpath(path)
        if not path.startswith(resolved):
            continue
        src = Path(path)
        with contextlib.suppress(OSError), open(cached, "rb") as f:
            head = f.read(16)
            if len(head) < 16 or int.from_bytes(head[4:8], "little") & 1:  # a hash-based .pyc
                continue
            st = src.stat()
            trusted = int.from_bytes(head[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF and (
                int.from_bytes(head[12:16], "little") == st.st_size & 0xFFFFFFFF
            )
            if trusted and os.fstat(f.fileno()).st_mtime_ns < st.st_mtime_ns:
                return src
    return None


def decoder_version(plugin: object, *, fresh: bool = False) -> str:
    """A hash of the code that decodes for `plugin`: its package's source, the engine's model,
    venue and store rooms (events, books, instruments, the JSON-RPC base, the recording reader),
    and the versions of Python and of the libraries that parse. Any change makes a new key.

    It hashes the files on disk, which are the code running only if none changed since the
    process first imported the engine (a notebook or a sweep runner imports once and lives on): otherwise
    `DecoderChanged`, and no cache for this process. `fresh`: hashed again (the writer's check
    at commit that no file changed during the run), not the memo."""
    mod = type(plugin).__module__
    cached = None if fresh else _version_memo.get(mod)
    if cached is not None:
        return cached
    if not fresh:
        changed = _changed_since_start(_version_roots(plugin))
        if changed is not None:
            raise DecoderChanged(
                f"{changed} changed after this process imported tradingd: not the code running"
            )
    import msgspec  # the venues' parser: a new version may decode differently

    h = hashlib.blake2b(digest_size=16)
    h.update(f"{FORMAT}|{sys.version}|{msgspec.__version__}|{zstandard.__version__}|".encode())
    h.update(f"{mod}.{type(plugin).__qualname__}|".encode())
    for root in _version_roots(plugin):
        tree_digest(h, root)
    out = h.hexdigest()
    if not fresh:
        _version_memo[mod] = out
    return out


# -- the content key ----------------------------------------------------------------------------
class _Check:
    """An entry's check against accidental damage, in its last bytes: the CRC-32 of the file
    before it (zlib's: ~7 GB/s here, where a BLAKE2b digest of a 16 MB entry took 13 ms of a
    0.35 s replay); each chunk's zstd frame also carries its own XXH64, checked as it is
    decompressed. Not a defense against a forger, who can recompute either: what a file may hold
    is bounded by the replay itself (module docstring)."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(_DIGEST, "little")


def _checksum(data: bytes) -> bytes:
    check = _Check()
    check.update(data)
    return check.digest()


def _file_digest(path: Path) -> bytes:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=32)).digest()


# -- files named in an entry -------------------------------------------------------------------
# An entry serves every copy of its data (the key is the content): the files it names (a bad
# line's, a malformed frame's, a `.zst` cut short) are stored as (source index, path relative to
# that source's path; None: the source itself) and rebuilt from the sources of the replay.
_Ref = tuple[int, str | None]


def _ref(roots: Sequence[Path], path: Path | str) -> _Ref:
    p = Path(path)
    for i, root in enumerate(roots):
        if p == root:
            return (i, None)
    for i, root in enumerate(roots):
        if p.is_relative_to(root):
            return (i, str(p.relative_to(root)))
    return (-1, str(p))  # not under any source (a plugin's own reader): kept as it was named


def _deref(roots: Sequence[Path], ref: _Ref) -> Path:
    i, rel = ref
    if i < 0:
        return Path(rel or "")
    return roots[i] if rel is None else roots[i] / rel


# (path, a folder's listing?, what it was): the data files as hashed for a key.
_Stamps = list[tuple[Path, bool, Any]]


def _stamp(st: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is rewritten, replaced, or touched."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


# -- events ----------------------------------------------------------------------------------------
def _cacheable_event_class(cls: type) -> bool:
    """An event Struct whose fields are all of its state, and whose constructor does nothing
    else (what the builder passes it is the event)."""
    return isinstance(cls, type) and issubclass(cls, MarketEvent) and evformat.positional_struct(cls)


# -- what a cache file may name -----------------------------------------------------------------
def _allowed(obj: object) -> bool:
    """Globals a cache file may name: the project's Structs (events) and attrs classes
    (instruments), its enums and order books, and Decimal. Never a function: unpickling calls
    nothing else (a Struct is rebuilt by its C constructor, which runs no code of ours)."""
    if obj is Decimal:
        return True
    if not isinstance(obj, type):
        return False
    if not (obj.__module__.startswith("tradingd.")):
        return False
    return attrs.has(obj) or issubclass(obj, msgspec.Struct | enum.Enum | OrderBook)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if not module.startswith("tradingd.") and (module, name) != ("decimal", "Decimal"):
            raise pickle.UnpicklingError(f"a cache file names {module}.{name}")
        obj = super().find_class(module, name)
        if not _allowed(obj):
            raise pickle.UnpicklingError(f"a cache file names {module}.{name}")
        return obj


def _dumps(value: Any) -> bytes:
    """A value the chunk format does not write by itself (`evformat.PICKLED`): pickled, and
    read back at once by the replay's unpickler, so that an entry never holds what a replay
    would refuse (a class whose pickle names a function: no entry, the run goes on)."""
    data = pickle.dumps(value, protocol=5)
    _loads(data)
    return data


def _loads(data: bytes) -> Any:
    # A chunk is thousands of nested tuples, all alive until loaded: the collector, run every
    # 700 allocations meanwhile, would walk them again and again for nothing (no cycle can be
    # made by the unpickler of plain tuples). Collection resumes right after.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _Unpickler(io.BytesIO(data)).load()
    finally:
        if enabled:
            gc.enable()


# -- books ----------------------------------------------------------------------------------------
_slots_memo: dict[type, tuple[str, ...]] = {}


def _slots(cls: type) -> tuple[str, ...]:
    found = _slots_memo.get(cls)
    if found is None:
        names: list[str] = []
        for k in reversed(cls.__mro__):
            s = k.__dict__.get("__slots__", ())
            names.extend([s] if isinstance(s, str) else s)
        found = _slots_memo[cls] = tuple(
            dict.fromkeys(n for n in names if n not in ("__weakref__", "__dict__"))
        )
    return found


_getters: dict[type, Callable[[Any], Any]] = {}


def _state_getter(cls: type) -> Callable[[Any], Any]:
    get = _getters.get(cls)
    if get is None:
        names = _slots(cls)
        get = _getters[cls] = attrgetter(*names) if len(names) > 1 else (lambda o: (getattr(o, names[0]),))
    return get


def _tuple_getter(names: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    """`attrgetter(*names)`, a tuple whatever the number of names."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        get = attrgetter(names[0])
        return lambda o: (get(o),)
    return lambda _: ()


_DICTS: Final = ("bids", "asks")
_mutable: Final = attrgetter("bids", "asks", "sequence", "valid", "_bb", "_ba")
_GONE: Final = None  # a level removed (sizes are never None)


def _book_diff(real: OrderBook, shadow: OrderBook | None) -> tuple[Any, ...] | None:
    """What turns `shadow` into `real`: None when they are equal; else (class, full) or
    (None, {slot: value}, {dict slot: {key: value or _GONE}})."""
    cls = type(real)
    if shadow is None or type(shadow) is not cls:
        state = {n: getattr(real, n) for n in _slots(cls) if hasattr(real, n)}
        for n in _DICTS:
            state[n] = dict(state[n])
        return (cls, state)
    scalars: dict[str, Any] = {}
    dicts: dict[str, dict[Any, Any]] = {}
    for n in _slots(cls):
        rv: Any = getattr(real, n, None)
        sv: Any = getattr(shadow, n, None)
        if n in _DICTS:
            if rv != sv:
                d = {k: v for k, v in rv.items() if sv.get(k) != v}
                d.update((k, _GONE) for k in sv if k not in rv)
                dicts[n] = d
        elif rv is not sv and (rv != sv or type(rv) is not type(sv)):
            scalars[n] = rv
    if not scalars and not dicts:
        return None
    return (None, scalars, dicts)


def _apply_diff(books: dict[str, OrderBook], inst: str, diff: tuple[Any, ...] | None) -> None:
    if diff is None:
        books.pop(inst, None)
        return
    cls = diff[0]
    if cls is not None:
        book = object.__new__(cls)
        for n, v in diff[1].items():
            setattr(book, n, dict(v) if n in _DICTS else v)
        books[inst] = book
        return
    book = books[inst]
    for n, v in diff[1].items():
        setattr(book, n, v)
    for n, d in diff[2].items():
        levels = getattr(book, n)
        for k, v in d.items():
            if v is _GONE:
                del levels[k]
            else:
                levels[k] = v


def _predict(books: dict[str, OrderBook], events: Sequence[Any]) -> None:
    """The books as the events say: a `BookUpdate` sets its levels (a snapshot first clears
    and makes the book valid); `sequence` is the update's. What this misses, the stored
    difference of the frame puts right (`_book_diff`)."""
    for ev in events:
        if ev.__class__ is BookUpdate:
            book = books.get(ev.instrument)
            if book is None:
                continue
            if ev.snapshot:
                book.clear()
                book.valid = True
            book.update(ev.bids, ev.asks)
            book.sequence = ev.sequence


def _same_books(decoder: Any, books: dict[str, OrderBook]) -> str | None:
    """None when every book of `decoder` equals the shadow's; else the first that does not."""
    names: list[str] = list(decoder.book_instruments())
    for inst in names:
        real = decoder.book(inst)
        if real is not None and _book_diff(real, books.get(inst)) is not None:
            return inst
    extra = sorted(set(books) - set(names))
    return extra[0] if extra else None


def exact_books_violation(decoder: Any, frames: Iterable[tuple[int, Any]]) -> str | None:
    """Check a decoder's promise `exact_books` on `frames` ((ts, frame) pairs), frame by frame,
    against books kept beside it: None when it held on every frame, else the first frame where it
    did not, said. The promise, on which the cache's writer drops its own check of the books
    (`CacheWriter.wrap_decoder`): after a frame that raises nothing and counts no gap nor
    ignored change, every book the decoder keeps is the one before the frame with the frame's
    `BookUpdate`s that are not snapshots applied as a replay applies them (`_predict`: levels are
    set, `sequence` is the update's; every slot compared), no book is removed, and a book appears
    or changes otherwise only where a `BookUpdate` names it (the writer stores the book of a
    snapshot, or a new one, whole). Tests run it on every
    decoder that declares the promise, on every kind of data (tests/store/test_evcache.py)."""
    names = [f.name for f in attrs.fields(type(decoder.stats))]
    sweep = _tuple_getter([n for n in ("gaps", "ignored_changes") if n in names])
    shadow: dict[str, OrderBook] = {}

    def resync() -> None:
        shadow.clear()
        for inst in decoder.book_instruments():
            real = decoder.book(inst)
            if real is not None:
                _apply_diff(shadow, inst, _book_diff(real, None))

    for n, (ts, frame) in enumerate(frames):
        before = sweep(decoder.stats)
        try:
            events = decoder.decode(frame, ts)
        except MalformedFrame:
            resync()
            continue
        if sweep(decoder.stats) != before:
            resync()
            continue
        new = [
            e.instrument
            for e in events
            if e.__class__ is BookUpdate and (e.snapshot or e.instrument not in shadow)
        ]
        _predict(shadow, events)
        for inst in new:
            real = decoder.book(inst)
            if real is not None:
                _apply_diff(shadow, inst, _book_diff(real, None))
            else:
                shadow.pop(inst, None)
        bad = _same_books(decoder, shadow)
        if bad is not None:
            return f"frame {n} (ts {ts}): the book of {bad} is not what its events say: {frame!r:.200}"
    return None


# -- the replay side ----------------------------------------------------------------------------
class ReplayDecoder:
    """Stands in for a venue's decoder on a replay from the cache (the `Decoder` protocol): the
    same registry, a fresh `stats` of the decoder's own class, the books rebuilt as the frames
    left them. `apply(record, ts)` is its `decode`."""

    # What the compiled replay reads on every record are slots (read at their offset); the rest
    # lives in the instance's dict (`apply`, the compiled replay, over the method).
    __slots__ = ("__dict__", "__weakref__", "_books", "stats")

    def __init__(self, decoder: Any, classes: Iterable[type], *, compiled: bool = True) -> None:
        """`classes`: the event classes the entry may hold (its header's). `compiled`: `apply`
        is the compiled replay (`_replay.Replay`) where it is built; False, or a tree without
        it, the Python method below, which stays the reference (tests/store/test_replay_compiled.py
        compares the two)."""
        self.venue: str = decoder.venue
        self.registry = decoder.registry
        self.stats = decoder.stats
        self.last_unknown_channel: str | None = decoder.last_unknown_channel
        # Gaps by book, as the decoder kept them (`gapped_books`; the writer stores them).
        self.gapped_books: dict[str, int] = {}
        self._names = [f.name for f in attrs.fields(type(self.stats))]
        self._books: dict[str, OrderBook] = {}
        self._classes = frozenset(classes)
        self.readers: Sequence[CachedReader] = ()
        self.damaged: Callable[[BaseException], BaseException] = lambda exc: exc
        if compiled and _replay is not None:
            # An instance attribute over the method: the kernel's per-frame call is one C call.
            # It holds this decoder weakly, so the decoder is in no cycle of its own (as no venue
            # decoder is: tests/venue/test_decoder_freed.py): code that holds it directly
            # (bench_cache's data path, a tool) frees it, its books with it, when it drops it; a
            # backtest's goes with its kernel (which holds it in `decoders`, and is freed as
            # soon as its finished run's last reference goes: tests/backtest/test_kernel_freed.py).
            # Whoever calls it keeps the decoder; called after the decoder is gone, it raises
            # ReferenceError.
            self.apply = _replay.Replay(self, self._classes, BookUpdate, MalformedFrame)  # type: ignore[assignment]

    def decode(self, frame: Any, ts_local: int) -> list[MarketEvent]:
        return self.apply(frame, ts_local)

    def apply(self, body: Any, ts_local: int) -> list[MarketEvent]:
        """A frame's record: its one event, or a tuple of its events (the frame did nothing
        else a replay must redo but move the counters and the books as they say), or [events,
        what else]. A record that cannot be replayed is the entry's damage (`CacheDamaged`),
        never a malformed frame of the data. The compiled `Replay` does the same, and hands
        this method every record but the first two kinds."""
        try:  # free in 3.11 unless raised: the hot path pays no call for it
            events: list[MarketEvent]
            if body.__class__ in self._classes:  # most frames: one event
                events = [cast(MarketEvent, body)]
            elif body.__class__ is tuple:
                events = self._events(body)
            else:
                return self._extra(body[0], body[1])
            stats = self.stats
            stats.frames += 1
            stats.events += len(events)
            books = self._books
            if books:
                # `_predict`, inlined (the hot path of a replay): the writer checked its result.
                for ev in events:
                    if ev.__class__ is BookUpdate:
                        book = books.get(ev.instrument)
                        if book is not None:
                            if ev.snapshot:
                                book.clear()
                                book.valid = True
                            book.update(ev.bids, ev.asks)
                            book.sequence = ev.sequence
            return events
        except MalformedFrame:
            raise
        except Exception as exc:
            raise self.damaged(exc) from exc

    def _events(self, stored: Any) -> list[MarketEvent]:
        """A record's tuple of events, each of a class the entry lists (a forged record may
        hold anything the unpickler allows: an instrument, a book, a tuple)."""
        if stored.__class__ is not tuple:
            raise TypeError(f"a record's events are a {type(stored).__name__}, not a tuple")
        classes = self._classes
        for ev in stored:
            if ev.__class__ not in classes:
                raise TypeError(f"a record holds a {type(ev).__name__}, not an event of the entry")
        return list(stored)

    def _extra(self, stored: tuple[Any, ...], extra: dict[str, Any]) -> list[MarketEvent]:
        events = self._events(stored)
        stats = self.stats
        delta = extra.get("stats")
        if delta is None:
            stats.frames += 1
            stats.events += len(events)
        else:
            for n, d in zip(self._names, delta, strict=True):
                if d:
                    setattr(stats, n, getattr(stats, n) + d)
        if "luc" in extra:
            self.last_unknown_channel = extra["luc"]
        if "gapped" in extra:
            self.gapped_books = dict(extra["gapped"])
        for inst in extra.get("reg", ()):
            self.registry.add(inst)
        _predict(self._books, events)
        for inst, diff in extra.get("books", ()):
            _apply_diff(self._books, inst, diff)
        if "malformed" in extra:  # after the books: a decoder's fault invalidated them
            ref, line = extra["where"]
            readers = self.readers
            # The kernel names it, under the replay's own sources.
            readers[extra["idx"]].current = (_deref([r.path for r in readers], ref), line)
            raise MalformedFrame(extra["malformed"])
        return events

    def book(self, instrument: str) -> OrderBook | None:
        return self._books.get(instrument)

    def book_instruments(self) -> list[str]:
        return list(self._books)

    def invalidate_books(self) -> None:
        for book in self._books.values():
            book.valid = False


class CachedReader:
    """Stands in for a source's reader on a replay from the cache: its path and size, how much
    has been replayed (progress), and at the end what its reader said (bad lines, files cut)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.bytes_read = 0
        self.bad_lines = 0
        self.unfinished_files: list[tuple[Path, int | None]] = []
        self.current: tuple[Path, int | None] = (path, None)

    def where(self) -> tuple[Path, int | None]:
        return self.current

    def __iter__(self) -> Iterator[tuple[int | None, bytes]]:  # the protocol's; never iterated
        return iter(())


@attrs.define
class CachedReplay:
    """An entry found whole: its readers, decoders and the stream of records to replay."""

    path: Path
    readers: list[CachedReader]
    decoders: dict[str, ReplayDecoder]
    footer: dict[str, Any]
    _file: Any
    _chunks_at: int
    structs: tuple[type, ...] = ()
    consts: tuple[Any, ...] = ()
    compiled: bool = True
    log: Log = print

    def damaged(self, exc: BaseException) -> CacheDamaged:
        """The entry cannot be replayed: removed, said in one log line, and the run's error."""
        return _damaged(self.path, self.log, exc)

    def stream(self, on_bad: Callable[[Path, int, str], None]) -> Iterator[tuple[Any, int, Any]]:
        """(ts, source index, record) in the order the frame path met them; the readers' bad
        lines are reported through `on_bad` where they were met (between the same frames).
        Records are handed out a chunk (or the run of it between two such marks) at a time,
        without a Python step per record."""
        return itertools.chain.from_iterable(self._runs(on_bad))

    def _runs(self, on_bad: Callable[[Path, int, str], None]) -> Iterator[Iterator[tuple[Any, int, Any]]]:
        f = self._file
        f.seek(self._chunks_at)
        end = self.footer["chunks_end"]
        dctx = zstandard.ZstdDecompressor()
        readers = self.readers
        roots = [r.path for r in readers]
        total = max(1, self.footer["records"])
        done = 0
        try:
            while f.tell() < end:
                n = int.from_bytes(f.read(4), "little")
                try:
                    data = dctx.decompress(f.read(n))
                    if len(data) < 8:
                        raise ValueError("a chunk shorter than its head")
                    count = int.from_bytes(data[:4], "little")
                    at = 8 + int.from_bytes(data[4:8], "little")
                    marks = _loads(data[8:at]) if at > 8 else ()
                    if marks.__class__ is not tuple:
                        raise TypeError("a chunk's marks are not a tuple")
                    for _, kind, ref, _, _, idx in marks:  # few: checked before any is used
                        _deref(roots, ref)
                        if kind != "bad":
                            readers[idx].where()
                    records = self._records(data, at, count)
                except Exception as exc:
                    raise self.damaged(exc) from exc
                done += count
                share = done / total
                for r in readers:
                    r.bytes_read = int(r.size * share)
                if not marks:
                    yield records
                    continue
                pos = 0
                for at, kind, ref, line, reason, idx in marks:
                    if at > pos:
                        yield itertools.islice(records, at - pos)
                        pos = at
                    if kind == "bad":
                        on_bad(_deref(roots, ref), line, reason)
                    else:  # a bare frame next: the kernel names its line
                        readers[idx].current = (_deref(roots, ref), line)
                if pos < count:
                    yield records
        finally:
            f.close()

    def _records(self, data: bytes, at: int, count: int) -> Iterator[tuple[Any, int, Any]]:
        """A chunk's records, read one at a time as the kernel asks (`evformat`): compiled, or
        the Python reference; what does not read as a record is the entry's damage."""
        if self.compiled and _replay is not None:
            records: Iterator[tuple[Any, int, Any]] = _replay.Records(
                data, at, count, len(self.readers), self.structs, self.consts, _loads, self.damaged
            )
            return records
        return self._py_records(
            evformat.py_records(data, at, count, len(self.readers), self.structs, self.consts, _loads)
        )

    def _py_records(self, records: Iterator[tuple[Any, int, Any]]) -> Iterator[tuple[Any, int, Any]]:
        while True:
            try:
                rec = next(records)
            except StopIteration:
                return
            except Exception as exc:
                raise self.damaged(exc) from exc
            yield rec


def _damaged(path: Path, log: Log, exc: BaseException) -> CacheDamaged:
    """`CachedReplay.damaged`: the entry at `path` removed, said in one line, the run's error."""
    why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    log("evcache.corrupt", file=str(path), error=why)
    with contextlib.suppress(OSError):
        path.unlink()
    return CacheDamaged(
        f"the decoded-event cache entry {path} cannot be replayed ({why}): removed;"
        " the next run decodes the frames"
    )


class EventCache:
    """The cache folder (module docstring). `open` finds an entry for a data set, `writer`
    starts one; `log(event, **fields)` says what happened in one line each."""

    def __init__(
        self, directory: Path | None = None, *, max_bytes: int | None = None, write_on: int = WRITE_ON
    ) -> None:
        self.directory = Path(directory) if directory is not None else cache_dir()
        if write_on not in (1, 2):
            raise ValueError(f"write_on={write_on!r}: 1 (the first replay writes) or 2 (the second)")
        self.write_on = write_on
        env_max = os.environ.get("TRADINGD_CACHE_MAX_BYTES")
        if max_bytes is None:
            max_bytes = parse_size("TRADINGD_CACHE_MAX_BYTES", env_max) if env_max else _DEFAULT_MAX
        self.max_bytes = max_bytes
        self._digests: dict[tuple[Any, ...], bytes] = {}
        self._remembered: dict[str, list[Any]] | None = None  # the folder's `_DIGESTS`, once read
        self._remember_more = False
        self.stamps: _Stamps = []  # of the last `key`: a writer checks them (`changed`)
        self.versions: dict[str, tuple[object, str]] = {}  # of the last `key`: (plugin, version)
        # "next": the last replay was a data set's first, which only marked it (`write_on` 2):
        # the next replay of the same data writes the entry (the run's summary line says so).
        self.status = "off"
        self.entry: Path | None = None

    # -- keys --
    def _content(self, path: Path, stamps: _Stamps) -> bytes:
        h = hashlib.blake2b(digest_size=32)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            stamps.append((path, True, tuple(files)))  # the listing: a file added or removed
        else:
            files = [path]
        for p in files:
            st = p.stat()
            stamp = _stamp(st)
            stamps.append((p, False, stamp))
            real = str(p.resolve())
            memo = (real, *stamp)
            d = self._digests.get(memo)
            if d is None:
                d = self._digests[memo] = self._digest(p, real, st)
            h.update(str(p.relative_to(path)).encode() + b"\0" if path.is_dir() else b"\0")
            h.update(d)
        return h.digest()

    def _digest(self, p: Path, real: str, st: os.stat_result) -> bytes:
        """The digest of a data file: remembered by the folder (`_DIGESTS`) for a file whose
        stamp is the one it was hashed with, else hashed. A file is remembered only when
        nothing changed it for `_RACY_NS` before it was hashed, nor while it was: a change after
        (even within the second, or of the same size, or its time set back) changes its stamp,
        as its change time is the clock's then (git's "racily clean" rule)."""
        stamp = [*_stamp(st)]
        remembered = self._remembered_digests()
        known = remembered.get(real)
        if known is not None and known[:-1] == stamp:
            with contextlib.suppress(ValueError, TypeError):
                return bytes.fromhex(known[-1])
        started = time.time_ns()
        d = _file_digest(p)
        with contextlib.suppress(OSError):
            if max(st.st_mtime_ns, st.st_ctime_ns) < started - _RACY_NS and [*_stamp(p.stat())] == stamp:
                remembered.pop(real, None)
                remembered[real] = [*stamp, d.hex()]
                while len(remembered) > _DIGESTS_MAX:  # the oldest first
                    del remembered[next(iter(remembered))]
                self._remember_more = True
        return d

    def _remembered_digests(self) -> dict[str, list[Any]]:
        if self._remembered is None:
            self._remembered = {}
            with contextlib.suppress(OSError, ValueError, TypeError):
                found = json.loads((self.directory / _DIGESTS).read_bytes())
                if type(found) is dict:
                    self._remembered = {
                        k: v
                        for k, v in found.items()
                        if type(k) is str and type(v) is list and len(v) == 6 and type(v[-1]) is str
                    }
        return self._remembered

    def _save_digests(self) -> None:
        """The folder's remembered digests written (to a temporary name, renamed): best effort."""
        if not self._remember_more or self._remembered is None:
            return
        self._remember_more = False
        with contextlib.suppress(OSError):
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f"{_DIGESTS}.", suffix=".part", dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(json.dumps(self._remembered).encode())
                os.replace(tmp, self.directory / _DIGESTS)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def key(self, plugins: Mapping[str, object], sources: Sequence[_Source]) -> str:
        """The key of `sources` read by `plugins`' decoders. What each file was when hashed is
        kept (`stamps`): a writer started next checks at its commit that none has changed."""
        stamps: _Stamps = []
        self.stamps = stamps
        self.versions = {}
        h = hashlib.blake2b(digest_size=20)
        h.update(f"tradingd-evcache|{FORMAT}|".encode())
        for venue in sorted({s.venue for s in sources}):
            version = decoder_version(plugins[venue])
            self.versions[venue] = (plugins[venue], version)
            h.update(f"{venue}={version}|".encode())
        for s in sources:
            h.update(f"{s.venue}|{s.format}|".encode())
            h.update(self._content(Path(s.path), stamps))
        self._save_digests()
        return h.hexdigest()

    @staticmethod
    def changed(stamps: _Stamps) -> Path | None:
        """The first data file (or folder) no longer as it was when hashed, or None."""
        for p, listing, stamp in stamps:
            try:
                if listing:
                    now: Any = tuple(sorted(q for q in p.rglob("*") if q.is_file()))
                else:
                    now = _stamp(p.stat())
            except OSError:
                return p
            if now != stamp:
                return p
        return None

    def path_of(self, key: str) -> Path:
        return self.directory / f"{key}.evc"

    def mark_of(self, key: str) -> Path:
        """The empty file saying a data set was replayed once from its frames (`write_on` 2)."""
        return self.directory / f".{key}.seen"

    # -- reading --
    def open(
        self,
        key: str,
        sources: Sequence[_Source],
        decoders: Mapping[str, Any],
        log: Log,
        *,
        compiled: bool = True,
    ) -> CachedReplay | None:
        """The entry of `key` checked whole, or None (missing, or corrupt: logged, removed).
        `compiled`: its records are read and replayed by the compiled codec where it is built;
        False, by the Python reference (`evformat.py_records`, `ReplayDecoder.apply`)."""
        path = self.path_of(key)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the replay's stream
        except FileNotFoundError:
            return None
        except OSError as exc:
            log("evcache.unreadable", file=str(path), error=exc.strerror or str(exc))
            return None
        try:
            replay = self._check(f, path, key, sources, decoders, compiled, log)
        except (OSError, ValueError, EOFError, pickle.UnpicklingError, zstandard.ZstdError, KeyError) as exc:
            f.close()
            log("evcache.corrupt", file=str(path), error=str(exc) or type(exc).__name__)
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently used goes first
        return replay

    def _check(
        self,
        f: Any,
        path: Path,
        key: str,
        sources: Sequence[_Source],
        decoders: Mapping[str, Any],
        compiled: bool,
        log: Log,
    ) -> CachedReplay:
        size = os.fstat(f.fileno()).st_size
        if size < len(_MAGIC) + 4 + 4 + _DIGEST + len(_END):
            raise ValueError(f"{size} bytes: too short")
        f.seek(size - len(_END) - _DIGEST - 4)
        tail = f.read()
        if tail[-len(_END) :] != _END:
            raise ValueError("no end mark (truncated?)")
        footer_len = int.from_bytes(tail[:4], "little")
        digest = tail[4 : 4 + _DIGEST]
        f.seek(0)
        h = _Check()
        remaining = size - len(_END) - _DIGEST
        while remaining:
            block = f.read(min(remaining, 1 << 20))
            if not block:
                raise ValueError("shorter than it says")
            h.update(block)
            remaining -= len(block)
        if h.digest() != digest:
            raise ValueError("checksum mismatch")
        f.seek(0)
        if f.read(len(_MAGIC)) != _MAGIC:
            raise ValueError("not a cache file of this format")
        hlen = int.from_bytes(f.read(4), "little")
        header = _loads(f.read(hlen))
        if header.get("key") != key:
            raise ValueError("written for another key")
        chunks_at = f.tell()
        f.seek(size - len(_END) - _DIGEST - 4 - footer_len)
        footer = _loads(f.read(footer_len))
        classes = header["classes"]
        for cls in classes:
            if not _cacheable_event_class(cls):
                raise ValueError(f"class {cls!r} cannot be rebuilt")
        structs = tuple(header["structs"])
        for cls in structs:
            if not (evformat.positional_struct(cls) and _allowed(cls)):
                raise ValueError(f"class {cls!r} cannot be rebuilt")
        consts = tuple(header["consts"])
        for const in consts:
            if not isinstance(const, enum.Enum):
                raise ValueError(f"constant {const!r} is not an enum member")
        replay_decoders = {v: ReplayDecoder(d, classes, compiled=compiled) for v, d in decoders.items()}
        readers: list[CachedReader] = []
        roots = [Path(s.path) for s in sources]
        for i, root in enumerate(roots):
            r = CachedReader(root, footer["sizes"][i])
            r.bad_lines = footer["bad_lines"][i]
            r.unfinished_files = [(_deref(roots, ref), last) for ref, last in footer["unfinished"][i]]
            readers.append(r)
        # The decoders raise the entry's damage from its path and the log, not through the replay
        # (`replay.damaged`), which holds them: a cycle that kept a dropped replay's decoders and
        # books until a full collection where nothing else held them (bench_cache's data path, a
        # tool, a finished backtest's kernel).
        damaged = functools.partial(_damaged, path, log)
        for rd in replay_decoders.values():
            rd.readers = readers
            rd.damaged = damaged
        return CachedReplay(
            path, readers, replay_decoders, footer, f, chunks_at, structs, consts, compiled, log
        )

    # -- writing --
    def writer(self, key: str, log: Log, sources: Sequence[_Source] = ()) -> CacheWriter | None:
        """A writer of `key`'s entry, or None when the folder cannot be written (logged once).
        With `write_on` 2, a data set's first replay gets a `FirstReplay` instead, which costs
        the replay nothing and marks the data set seen when it ends whole."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if self.write_on > 1 and not self.mark_of(key).exists():
                return FirstReplay(self, key, log)
            fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".part", dir=self.directory)
        except OSError as exc:
            log("evcache.unwritable", dir=str(self.directory), error=exc.strerror or str(exc))
            return None
        writer = CacheWriter(self, key, Path(tmp), os.fdopen(fd, "wb"), log)
        writer.roots = [Path(s.path) for s in sources]
        writer.stamps = list(self.stamps)
        writer.versions = dict(self.versions)
        return writer

    def evict(self, keep: Path | None = None) -> int:
        """Remove the least recently used entries until the folder is under `max_bytes`; and the
        temporary files of writers killed (older than `_STALE_PART_S`), which nothing else
        removes. A younger one (a writer at work) counts in the folder's size."""
        entries: list[tuple[int, int, Path]] = []
        parts = 0
        stale_before = time.time_ns() - _STALE_PART_S * 1_000_000_000
        try:
            found = [*self.directory.glob("*.evc"), *self.directory.glob(".*.part")]
        except OSError:
            return 0
        for p in found:
            try:
                st = p.stat()
            except OSError:  # removed meanwhile (another process's eviction or commit)
                continue
            if p.suffix == ".part":
                if st.st_mtime_ns < stale_before:
                    with contextlib.suppress(OSError):
                        p.unlink()
                        continue
                parts += st.st_size
            else:
                entries.append((st.st_mtime_ns, st.st_size, p))
        total = parts + sum(s for _, s, _ in entries)
        removed = 0
        for _, s, p in sorted(entries, key=lambda e: (e[0], str(e[2]))):
            if total <= self.max_bytes:
                break
            if p == keep:
                continue
            with contextlib.suppress(OSError):
                p.unlink()
                total -= s
                removed += 1
        return removed

    def clear(self) -> int:
        """Remove every entry (and any temporary file left by a killed writer)."""
        n = 0
        found = [
            *self.directory.glob("*.evc"),
            *self.directory.glob(".*.part"),
            *self.directory.glob(".*.seen"),
        ]
        for p in found:
            with contextlib.suppress(OSError):
                p.unlink()
                n += 1
        return n


class CacheWriter:
    """Records a frame-path replay (`wrap_stream`, `wrap_decoder`, `bad_line`), then `commit`s
    it under its key, or `abort`s (the temporary file removed)."""

    def __init__(self, cache: EventCache, key: str, tmp: Path, file: Any, log: Log) -> None:
        self.cache = cache
        self.key = key
        self.tmp = tmp
        self.file = file
        self.log = log
        self.hash = _Check()
        self.cctx = zstandard.ZstdCompressor(level=_ZSTD_LEVEL, write_checksum=True)
        # The chunk being written: its records encoded as they come (`evformat`), their events
        # not kept. The tables the records refer to are the entry's: the Struct classes met (the
        # events' and those they hold) and the constants (enum members).
        self.structs: list[type] = []
        self.kinds: dict[type, int] = {}
        self.consts: list[Any] = []
        self.enums: dict[type, dict[Any, int]] = {}
        self.encoder: Any = (evformat.PyEncoder if _replay is None else _replay.Encoder)(
            self.kinds, self.enums, self._register, _dumps
        )
        # Readers' events (a bad line, a bare frame next) at their place among the records:
        # (record index in the chunk, kind, file (`_ref`), line, reason, source index).
        self.marks: list[tuple[int, str, _Ref, int | None, str, int]] = []
        self.roots: list[Path] = []  # the sources' paths: the files named are stored under them
        self.stamps: _Stamps = []  # the data files as hashed for the key
        self.versions: dict[str, tuple[object, str]] = {}  # each venue's (plugin, decoder version)
        self.count = 0
        # The event classes met (checked cacheable when first met): the header lists them, and
        # a replay refuses a record holding any other.
        self.classes: dict[type, int] = {}
        self.failed: str | None = None
        self.done = False
        self.shadows: dict[str, dict[str, OrderBook]] = {}
        # Venues whose decoder promises exact book updates (`exact_books`): no shadow books, only
        # the names of the books the entry has made so far.
        self.exact: set[str] = set()
        self.known: dict[str, set[str]] = {}
        self.decoders: dict[str, Any] = {}
        self.registries: list[Any] = []
        self._adds: list[Instrument] = []
        # The header names the event classes met, known only at the end: the chunks wait in an
        # unnamed temporary file beside the entry until `commit` writes the header before them.
        self._body = tempfile.TemporaryFile(dir=tmp.parent)  # noqa: SIM115 - closed by commit/abort

    def _write(self, data: bytes) -> None:
        self.file.write(data)
        self.hash.update(data)

    def fail(self, why: str) -> None:
        if self.failed is None:
            self.failed = why

    # -- hooks --
    def bad_line(self, path: Path, lineno: int, reason: str) -> None:
        """A reader reported a bad line (its `on_bad`): replayed at the same point."""
        self.marks.append((self.encoder.count, "bad", _ref(self.roots, path), lineno, reason, -1))

    def wrap_stream(
        self, stream: Iterator[tuple[Any, int, Any]], readers: Sequence[Any]
    ) -> Iterator[tuple[Any, int, Any]]:
        try:
            for item in stream:
                ts, idx, _ = item
                if ts is None:
                    where = getattr(readers[idx], "where", None)
                    path, line = where() if where is not None else (readers[idx].path, None)
                    self.marks.append((self.encoder.count, "bare", _ref(self.roots, path), line, "", idx))
                    self._record((None, idx, None))
                yield item
        except BaseException:  # the run failed or was abandoned: no entry from half a replay
            self.abort()
            raise

    def watch_registry(self, registry: Any) -> None:
        """Record what decoders add to `registry` (an instance attribute over its `add`)."""
        original = registry.add
        adds = self._adds

        def add(instrument: Instrument) -> None:
            adds.append(instrument)
            original(instrument)

        registry.add = add
        self.registries.append(registry)

    def wrap_decoder(self, idx: int, decoder: Any, reader: Any) -> Callable[[Any, int], list[MarketEvent]]:
        stats = decoder.stats
        names = [f.name for f in attrs.fields(type(stats))]
        snap = attrgetter(*names)
        i_frames, i_events = names.index("frames"), names.index("events")
        # Every counter but `frames` and `events`: the usual frame moves none of them.
        others_names = [n for n in names if n not in ("frames", "events")]
        others = _tuple_getter(others_names)
        sweep_on = [names.index(n) for n in ("ignored_changes", "gaps") if n in names]
        # A decoder's gaps by book (`Decoder.gapped_books`, read when used): stored whole on a
        # frame that counted a gap, for the run's warning that names the books.
        i_gaps = names.index("gaps") if "gaps" in names else None
        shadow = self.shadows.setdefault(decoder.venue, {})
        self.decoders[decoder.venue] = decoder
        decode = decoder.decode
        book_of = decoder.book
        adds = self._adds
        add = self.encoder.add
        classes = self.classes
        flush = self._flush
        exact = getattr(decoder, "exact_books", False) is True
        known = self.known.setdefault(decoder.venue, set())
        if exact:
            self.exact.add(decoder.venue)

        def recorded_exact(frame: Any, ts: int) -> list[MarketEvent]:
            """`recorded` for a decoder whose book updates are exact (`exact_books`): the usual
            frame is its events alone, the books they name being what a replay's `_predict`
            makes of them (no shadow book kept, nor compared). A snapshot, or a `BookUpdate` of
            a book the entry has not made yet, makes an unusual frame, which stores the book
            whole (a Deribit grouped book's snapshot names an instrument whose incremental book
            is the one `book()` gives, and does not change it)."""
            if self.failed is not None:  # nothing will be written: the frame path alone
                plain: list[MarketEvent] = decode(frame, ts)
                return plain
            frames0 = stats.frames
            events0 = stats.events
            others0 = others(stats)
            luc = decoder.last_unknown_channel
            try:
                events: list[MarketEvent] = decode(frame, ts)
            except MalformedFrame as exc:
                unusual(frame, ts, exc, (), luc, frames0, events0, others0)
                raise
            try:
                if (
                    len(events) == 1
                    and stats.frames == frames0 + 1
                    and stats.events == events0 + 1
                    and not adds
                    and decoder.last_unknown_channel is luc
                    and others(stats) == others0
                ):
                    ev = events[0]
                    if ev.__class__ in classes and (
                        ev.__class__ is not BookUpdate or (not ev.snapshot and ev.instrument in known)
                    ):
                        add(ts, idx, ev)
                        if self.encoder.count >= CHUNK:
                            flush()
                        return events
                unusual(frame, ts, None, events, luc, frames0, events0, others0)
            except Exception as exc:  # the cache's own fault: no entry, and the run goes on
                self.fail(f"recording a frame failed: {exc!r}")
            return events

        def recorded(frame: Any, ts: int) -> list[MarketEvent]:
            if self.failed is not None:  # nothing will be written: the frame path alone
                plain: list[MarketEvent] = decode(frame, ts)
                return plain
            frames0 = stats.frames
            events0 = stats.events
            others0 = others(stats)
            luc = decoder.last_unknown_channel
            try:
                events: list[MarketEvent] = decode(frame, ts)
            except MalformedFrame as exc:
                unusual(frame, ts, exc, (), luc, frames0, events0, others0)
                raise
            try:
                # The usual frame, recorded here without a call: one event of a known class,
                # the counters moved by one frame and its event, nothing else seen to change,
                # and the book it names (if any) equal to the one its events predict.
                if (
                    len(events) == 1
                    and stats.frames == frames0 + 1
                    and stats.events == events0 + 1
                    and not adds
                    and decoder.last_unknown_channel is luc
                    and others(stats) == others0
                ):
                    ev = events[0]
                    if ev.__class__ in classes:
                        inst = ev.instrument
                        known = shadow.get(inst)
                        if known is not None and ev.__class__ is BookUpdate:
                            # `_predict`, inlined for the one event.
                            if ev.snapshot:
                                known.clear()
                                known.valid = True
                            known.update(ev.bids, ev.asks)
                            known.sequence = ev.sequence
                        real = book_of(inst)
                        if real is None:
                            ok = known is None
                        elif known is None or known.__class__ is not real.__class__:
                            ok = False
                        elif real.__class__ is OrderBook:
                            # What a frame can change of a book (its quantum is compared at
                            # each chunk's end and at the end of the run, with every book).
                            ok = _mutable(real) == _mutable(known)
                        else:
                            get = _state_getter(real.__class__)
                            ok = get(real) == get(known)
                        if ok:
                            add(ts, idx, ev)
                            if self.encoder.count >= CHUNK:
                                flush()
                            return events
                        unusual(frame, ts, None, events, luc, frames0, events0, others0, predicted=True)
                        return events
                unusual(frame, ts, None, events, luc, frames0, events0, others0)
            except Exception as exc:  # the cache's own fault: no entry, and the run goes on
                self.fail(f"recording a frame failed: {exc!r}")
            return events

        def unusual(
            frame: Any,
            ts: int,
            malformed: MalformedFrame | None,
            events: Sequence[MarketEvent],
            luc: str | None,
            frames0: int,
            events0: int,
            others0: Any,
            *,
            predicted: bool = False,
        ) -> None:
            """Any other frame: what it did besides its events is stored with them."""
            try:
                extra: dict[str, Any] = {}
                if malformed is not None:
                    extra["malformed"] = str(malformed)
                    where = getattr(reader, "where", None)
                    path, line = where() if where is not None else (reader.path, None)
                    extra["where"] = (_ref(self.roots, path), line)
                    extra["idx"] = idx
                after = snap(stats)
                n = len(events)
                old = dict(zip(others_names, others0, strict=True))
                old["frames"], old["events"] = frames0, events0
                before = [old[name] for name in names]
                delta = tuple(a - b for a, b in zip(after, before, strict=True))
                expected = [0] * len(names)
                expected[i_frames] = 1
                expected[i_events] = n
                sweep = False
                if delta != tuple(expected):
                    extra["stats"] = delta
                    sweep = any(delta[i] for i in sweep_on)
                    if i_gaps is not None and delta[i_gaps]:
                        extra["gapped"] = tuple(decoder.gapped_books.items())
                if decoder.last_unknown_channel != luc:
                    extra["luc"] = decoder.last_unknown_channel
                if adds:
                    extra["reg"] = tuple(adds)
                    adds.clear()
                diffs: list[tuple[str, tuple[Any, ...] | None]] = []
                if exact:
                    # Books change as the events say (`exact_books`) but on a frame that raised
                    # (a decoder's fault invalidates every book) or counted a gap or an ignored
                    # change: every book is stored whole then; else only a book new to the entry
                    # or named by a snapshot.
                    if malformed is not None or sweep:
                        new = list(dict.fromkeys([*decoder.book_instruments(), *known]))
                    else:
                        new = [
                            e.instrument
                            for e in events
                            if e.__class__ is BookUpdate and (e.snapshot or e.instrument not in known)
                        ]
                    for inst in dict.fromkeys(new):
                        real = decoder.book(inst)
                        if real is not None:
                            diffs.append((inst, _book_diff(real, None)))
                            known.add(inst)
                        elif inst in known:
                            diffs.append((inst, None))
                            known.discard(inst)
                    if diffs:
                        extra["books"] = tuple(diffs)
                    encoded = tuple([self._encode(ev) for ev in events])
                    self._record((ts, idx, [encoded, extra] if extra else encoded))
                    return
                # A malformed frame changes no book as a rule, but a decoder's fault (an
                # unforeseen exception, `guard_decode`) invalidates every book of the venue:
                # every book is compared then, and the replay applies that before it raises.
                if not predicted:
                    _predict(shadow, events)
                if not events or sweep or malformed is not None:
                    names_ = list(dict.fromkeys([*decoder.book_instruments(), *shadow]))
                else:
                    names_ = list(dict.fromkeys(ev.instrument for ev in events))
                for inst in names_:
                    real = decoder.book(inst)
                    if real is None:
                        if inst in shadow:
                            diffs.append((inst, None))
                            del shadow[inst]
                        continue
                    diff = _book_diff(real, shadow.get(inst))
                    if diff is not None:
                        diffs.append((inst, diff))
                        _apply_diff(shadow, inst, diff)
                if diffs:
                    extra["books"] = tuple(diffs)
                encoded = tuple([self._encode(ev) for ev in events])
                self._record((ts, idx, [encoded, extra] if extra else encoded))
            except Exception as exc:  # the cache's own fault: no entry, and the run goes on
                self.fail(f"recording a frame failed: {exc!r}")

        return recorded_exact if exact else recorded

    def _encode(self, ev: Any) -> Any:
        """The event as stored: itself, of a class the header will list (a replay refuses a
        record holding any other)."""
        cls = ev.__class__
        if cls not in self.classes:
            if not _cacheable_event_class(cls):
                self.fail(f"{cls.__qualname__} events cannot be cached")
                return None
            self.classes[cls] = len(self.classes)
        return ev

    def _register(self, value: Any) -> int:
        """A value of a class the encoder has not met (its `register`): a Struct rebuilt by its
        fields, or an enum member, entered in the entry's tables (its index); else -1, and the
        value is pickled."""
        cls = value.__class__
        if isinstance(value, msgspec.Struct) and evformat.positional_struct(cls) and _allowed(cls):
            self.kinds[cls] = len(self.structs)
            self.structs.append(cls)
            return self.kinds[cls]
        if isinstance(value, enum.Enum) and _allowed(cls) and cls.__members__.get(value.name) is value:
            self.enums.setdefault(cls, {})[value] = len(self.consts)
            self.consts.append(value)
            return len(self.consts) - 1
        return -1

    def _record(self, rec: tuple[Any, ...]) -> None:
        self.encoder.add(*rec)
        if self.encoder.count >= CHUNK:
            self._flush()

    def _check_books(self) -> None:
        """Every book of every decoder against its prediction, every slot (a frame's own check
        looks at the book its event names, and not at the quantum)."""
        for venue, decoder in self.decoders.items():
            if venue in self.exact:  # its promise, tested (`exact_books_violation`)
                continue
            bad = _same_books(decoder, self.shadows.get(venue, {}))
            if bad is not None:
                self.fail(f"the {venue} decoder's book of {bad} changed without an event naming it")
                return

    def _flush(self) -> None:
        if self.failed is None:
            self._check_books()
        records = self.encoder.count
        body = self.encoder.take()
        if (not records and not self.marks) or self.failed:
            self.marks.clear()
            return
        try:
            marks = pickle.dumps(tuple(self.marks), protocol=5) if self.marks else b""
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
            self.fail(f"a record cannot be stored ({exc})")
            self.marks.clear()
            return
        data = self.cctx.compress(
            b"".join([records.to_bytes(4, "little"), len(marks).to_bytes(4, "little"), marks, body])
        )
        try:
            self._body.write(len(data).to_bytes(4, "little"))
            self._body.write(data)
        except OSError as exc:  # the disk is full: no entry, and the run goes on
            self.fail(f"cannot write beside {self.tmp}: {exc.strerror or exc}")
        self.count += records
        # The entry's temporary name stays empty until `commit`: its time says a writer is at
        # work, so that another process's eviction never takes it for a killed run's.
        with contextlib.suppress(OSError, ValueError):
            os.utime(self.file.fileno())
        self.marks.clear()

    # -- the end --
    def commit(
        self, decoders: Mapping[str, Any], readers: Sequence[Any], unfinished: Sequence[Any]
    ) -> Path | None:
        """After the whole stream: check the books, write the entry, rename it into place."""
        for venue, decoder in decoders.items():
            if venue in self.exact:
                continue
            bad = _same_books(decoder, self.shadows.get(venue, {}))
            if bad is not None:
                self.fail(f"the {venue} decoder's book of {bad} changed without an event naming it")
        self._flush()
        if self.failed is None:
            # A file rewritten after it was hashed: the events are not the key's content.
            moved = self.cache.changed(self.stamps)
            if moved is not None:
                self.fail(f"a data file changed while it was read: {moved}")
        if self.failed is None:
            # The decoder's source edited during the run: the key no longer names the code.
            for venue, (plugin, version) in self.versions.items():
                if decoder_version(plugin, fresh=True) != version:
                    self.fail(f"the {venue} decoder's source changed during the run")
                    break
        if self.failed is not None:
            self.log("evcache.not_written", reason=self.failed)
            self.abort()
            return None
        try:
            header = pickle.dumps(
                {
                    "key": self.key,
                    "format": FORMAT,
                    "classes": list(self.classes),
                    "structs": list(self.structs),
                    "consts": list(self.consts),
                    "created": time.time(),
                },
                protocol=5,
            )
            body_size = self._body.tell()
            footer = pickle.dumps(
                {
                    "records": self.count,
                    "chunks_end": len(_MAGIC) + 4 + len(header) + body_size,
                    "sizes": [int(r.size) for r in readers],
                    "bad_lines": [int(r.bad_lines) for r in readers],
                    "unfinished": [[(_ref(self.roots, p), last) for p, last in cut] for cut in unfinished],
                },
                protocol=5,
            )
            self._write(_MAGIC)
            self._write(len(header).to_bytes(4, "little"))
            self._write(header)
            self._body.seek(0)
            while block := self._body.read(1 << 20):
                self._write(block)
            self._write(footer)
            self._write(len(footer).to_bytes(4, "little"))
            self.file.write(self.hash.digest() + _END)
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            self._body.close()
            os.chmod(self.tmp, 0o644)
            final = self.cache.path_of(self.key)
            os.replace(self.tmp, final)
        except OSError as exc:
            self.log("evcache.not_written", reason=exc.strerror or str(exc))
            self.abort()
            return None
        self.done = True
        self._restore()
        self.cache.evict(keep=final)
        return final

    def abort(self) -> None:
        self.done = True
        self._restore()
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            self._body.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink()

    def _restore(self) -> None:
        for registry in self.registries:
            with contextlib.suppress(AttributeError):
                del registry.add  # the instance attribute: the class's method again
        self.registries.clear()


class FirstReplay(CacheWriter):
    """A data set's first replay from its frames when the cache writes on the second
    (`EventCache.write_on`, `WRITE_ON`): the writer's hooks, doing nothing per frame, and at the
    end of a whole replay an empty mark file (`EventCache.mark_of`) so that the next replay of
    the same data (the same key: content and decoder code) records the entry. A run that fails
    or is abandoned leaves no mark (`abort`). A `CacheWriter` for the kernel, which drives
    either the same way; none of the recording's state is made."""

    def __init__(self, cache: EventCache, key: str, log: Log) -> None:
        self.cache = cache
        self.key = key
        self.log = log
        self.stamps = list(cache.stamps)  # the data files as hashed for the key

    def bad_line(self, path: Path, lineno: int, reason: str) -> None:
        pass

    def wrap_stream(
        self, stream: Iterator[tuple[Any, int, Any]], readers: Sequence[Any]
    ) -> Iterator[tuple[Any, int, Any]]:
        return stream

    def watch_registry(self, registry: Any) -> None:
        pass

    def wrap_decoder(self, idx: int, decoder: Any, reader: Any) -> Callable[[Any, int], list[MarketEvent]]:
        decode: Callable[[Any, int], list[MarketEvent]] = decoder.decode
        return decode

    def commit(
        self, decoders: Mapping[str, Any], readers: Sequence[Any], unfinished: Sequence[Any]
    ) -> Path | None:
        """Mark the data set seen (no entry: None). A file changed during the run marks nothing
        (the key is not its content)."""
        if self.cache.changed(self.stamps) is None:
            try:
                self.cache.mark_of(self.key).touch()
            except OSError as exc:
                self.log("evcache.unwritable", dir=str(self.cache.directory), error=exc.strerror or str(exc))
                return None
            self.cache.status = "next"
        return None

    def abort(self) -> None:
        pass
