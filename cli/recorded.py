"""A backtest's market catalogs: the markets its recordings define, over the venue's cache on disk.

A recorder records the market definitions it fetched as lines of their own (Polymarket: the Gamma
answer it looked its markets up with, the CLOB market objects it loaded on subscribing;
simulators/polymarket/generator.py writes them the same way), so a replay knows what the live run
knew. A strategy that looks markets up in its catalog during a backtest (`ctx.catalog`,
`price_markets`) therefore gets them from the recording itself, where the cache on disk (the
venue's markets as fetched today, if fetched at all on this machine) usually lacks them.

Which lines define markets is the venue's to say (`VenuePlugin.definition_markers`: bytes such a
line holds); reading them into a catalog too (`VenuePlugin.recorded_catalog`). Nothing here names a
venue. A venue without markers is not scanned.

Cost: the scan decompresses each recording once and looks for the markers in large chunks with
`bytes.find` (C speed); only the lines holding one are split out and handed to the venue, and no
frame goes through the venue's decoder. Measured on the generated Polymarket sample (2 hours,
`tradingd generate --venue polymarket`: 140,600 frames, 81 MB decompressed): 80 ms, against
160 ms for the recording reader merely splitting its lines and 740 ms through the codec; with
`--crypto deribit` (368,298 frames) 300 ms, 540 ms and 2.8 s. A process scans a file once (a
sweep's trials share the result; a file changed since is scanned again). Definitions may come at
any point of a live recording (a market subscribed later is loaded then), so the whole file is
scanned, not only its head.

Precedence, when a venue has both (`LayeredCatalog`): the recorded definitions answer first (they
are the markets as the recorded run saw them, at its time), the cache answers for the markets the
recordings do not define.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from tradingd.engine.store.recorder import recording_files
from tradingd.engine.store.recording import open_binary, parse_ts
from tradingd.engine.venue.catalog import LayeredCatalog, MarketCatalog
from tradingd.engine.venue.spi import VenuePlugin

__all__ = ["definition_lines", "recorded_catalogs", "with_recorded"]

_CHUNK = 1 << 22  # decompressed bytes searched at once


def _lines_with(block: bytes, stop: int, markers: tuple[bytes, ...]) -> Iterator[tuple[int | None, bytes]]:
    """The lines of `block[:stop]` (whole lines, each ending in a newline) holding one of
    `markers`, in order, as (receive time ns or None, frame). A line whose time does not parse is
    passed over (the replay reports it)."""
    spans: dict[int, int] = {}
    for marker in markers:
        i = block.find(marker, 0, stop)
        while i >= 0:
            start = block.rfind(b"\n", 0, i) + 1
            end = block.find(b"\n", i, stop)
            spans[start] = end
            i = block.find(marker, end, stop)
    for start in sorted(spans):
        line = block[start : spans[start]].rstrip(b"\r")
        if line[:1] in (b"{", b"["):
            yield None, line
            continue
        stamp, space, frame = line.partition(b" ")
        if not space:
            continue
        try:
            yield parse_ts(stamp), frame
        except ValueError:
            continue


def _scan(path: Path, markers: tuple[bytes, ...]) -> Iterator[tuple[int | None, bytes]]:
    stream, _ = open_binary(path)
    with stream:
        carry = b""
        while chunk := stream.read(_CHUNK):
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            if cut:
                yield from _lines_with(data, cut, markers)
            carry = data[cut:]
        if carry:
            carry += b"\n"
            yield from _lines_with(carry, len(carry), markers)


def definition_lines(
    path: Path, venue: str, markers: tuple[bytes, ...]
) -> Iterator[tuple[int | None, bytes]]:
    """(receive time ns or None, frame) of every line of a recording (a file, or a `tradingd
    record` directory: the venue's files in time order) that holds one of `markers`, in order.
    Raises `DataError` for a file that cannot be read."""
    if not markers:
        return
    files = recording_files(path, venue) if path.is_dir() else [path]
    for file in files:
        yield from _scanned(file, markers)


# The lines found in a file, by the file's identity: a sweep builds one backtest per trial from
# the same recordings, and scans each file once per process (a file rewritten since is scanned
# again: its size, modification time or inode differ).
_FOUND: dict[tuple[str, int, int, int, tuple[bytes, ...]], list[tuple[int | None, bytes]]] = {}
_FOUND_FILES = 16


def _scanned(path: Path, markers: tuple[bytes, ...]) -> list[tuple[int | None, bytes]]:
    try:
        st = path.stat()
    except OSError:
        return list(_scan(path, markers))  # open_binary says what is wrong with it
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, markers)
    found = _FOUND.get(key)
    if found is None:
        found = list(_scan(path, markers))
        if len(_FOUND) >= _FOUND_FILES:
            _FOUND.clear()
        _FOUND[key] = found
    return found


def recorded_catalogs(
    recordings: Iterable[tuple[str, Path]], plugins: Mapping[str, VenuePlugin]
) -> dict[str, MarketCatalog]:
    """For each venue of `recordings` ((venue, path) of the backtest's recording sources) whose
    plugin marks market definitions: the catalog of the markets its recordings define, when they
    define at least one."""
    paths: dict[str, list[Path]] = {}
    for venue, path in recordings:
        paths.setdefault(venue, []).append(path)
    out: dict[str, MarketCatalog] = {}
    for venue, files in sorted(paths.items()):
        plugin = plugins[venue]
        markers = plugin.definition_markers
        if not markers:
            continue
        lines = (line for path in files for line in definition_lines(path, venue, markers))
        catalog = plugin.recorded_catalog(lines)
        if catalog is not None and len(catalog):
            out[venue] = catalog
    return out


def with_recorded(
    recorded: Mapping[str, MarketCatalog], cached: Mapping[str, MarketCatalog]
) -> dict[str, MarketCatalog]:
    """One catalog per venue: the recorded one over the cached one where both exist (see the
    module docstring for the precedence), else whichever there is."""
    out = dict(cached)
    for venue, catalog in recorded.items():
        out[venue] = LayeredCatalog(catalog, cached[venue]) if venue in cached else catalog
    return out
