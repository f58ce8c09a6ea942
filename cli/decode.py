"""`tradingd decode --venue V [PATH|-]`: decode raw frames, or recording lines (`<timestamp>
<frame>`), into normalized events, one JSON object a line on stdout. A file may be `.zst`/`.gz`
(a recording still being written is decoded up to its last complete block; a corrupt one up to
the block that broke, naming the line where reading stopped); `-` or no PATH reads stdin.

A line that cannot be decoded is named on stderr and skipped; then the exit status is 1. A frame
of a channel the decoder does not read is named too, but is no error. Only the first `_NAMED`
problems are named; the last lines count them all, the lines of unread channels apart from the
lines that could not be decoded: data of another venue, or no frames at all, would otherwise
name every line. When nothing was decoded, the count of lines that could not be decoded says
why: they look like another installed venue's data (its decoder reads them), they are frames
whose content this venue's decoder refused (a bad number in a ticker: its reason for the first
one), or they are no frames at all. When the first `_GIVE_UP` lines in a row are refused and
nothing was decoded, the other installed venues' decoders are tried on the last of those frames:
if one reads them, decoding stops there and says whose data it looks like; if none does, it
stops when most of those lines are no frames or malformed ones (saying which), and goes on when
most are frames of channels the decoder does not read: a venue's own data may begin with many
of those (instrument state changes ahead of the market, say), and a frame nobody reads is nobody
else's. Going on, it asks again after twice as many refused lines in a row (400, 800, ...: a few
asks however long the file), so another venue's data behind such a beginning still stops.

The exit status (`tradingd decode --help` says it too): 0 when every line was decoded or skipped
as a frame of a channel the decoder does not read (a `.zst` cut inside a frame included: a note
says so), or when the reader of stdout went away; 1 when a line could not be decoded, a file
could not be read (missing, not zstd, corrupt part way) or decoding stopped; 2 for a usage error
(an unknown venue, no --venue); 130 when interrupted."""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import IO, Any, Final

import orjson
import zstandard

from tradingd.engine.model.errors import MalformedFrame
from tradingd.engine.model.events import event_to_dict
from tradingd.engine.model.instruments import InstrumentRegistry
from tradingd.engine.store.recording import open_binary, parse_ts, unfinished
from tradingd.engine.venue.plugins import available_venues, load_venue, loads_untyped

from .exits import EXIT_FAILURE

__all__ = ["cmd_decode"]

_NAMED: Final = 20  # problem lines named on stderr; the rest are counted
_GIVE_UP: Final = 200  # refused lines in a row, with nothing decoded yet, before stopping
_SNIFF: Final = 50  # the frames kept to ask the other venues' decoders whose they are
# A JSON string (its text is not looked into), or a number JSON cannot carry as Python's json and
# JavaScript write one (`_is_a_frame`).
_STRING_OR_NOT_A_NUMBER: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|-?(?:NaN|Infinity)')


class _Unreadable(Exception):
    """The rest of a data file cannot be read (a corrupt compressed file)."""


def _readable_lines(stream: IO[bytes], path: str) -> Iterator[bytes]:
    """The lines of `stream`; a file that breaks part way (a corrupt `.zst`/`.gz`) ends the lines
    with `_Unreadable`, after every line read before it. A `.zst` cut inside a frame (still being
    written, or truncated) ends at its last complete block: its torn last line is no line."""
    try:
        for line in stream:
            if not line.endswith(b"\n") and unfinished(stream):
                return
            yield line
    except (OSError, EOFError, zstandard.ZstdError) as exc:
        raise _Unreadable(str(exc) or type(exc).__name__) from None


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return float(o)
    raise TypeError


def _is_a_frame(frame: bytes) -> bool:
    """Whether `frame` is a JSON object or array, or would be but for a NaN or an Infinity in
    place of a number: a frame whose content a decoder refused (a venue's bad number), not a
    line of something else."""
    text = _STRING_OR_NOT_A_NUMBER.sub(lambda m: m[0] if m[0][:1] == b'"' else b"0", frame)
    try:
        parsed = loads_untyped(text, "", "frame")  # bounded nesting: no frame can hurt the parse
    except MalformedFrame:
        return False
    return isinstance(parsed, dict | list)


class _Problems:
    """The lines that were not decoded: named on stderr up to `_NAMED`, all counted."""

    def __init__(self) -> None:
        self.bad = 0  # not a frame, or a malformed frame: the exit status is 1
        self.unknown = 0  # frames of channels the decoder does not read (not an error)
        self.in_a_row = 0  # lines refused since the last one accepted
        self.unknown_in_a_row = 0  # of those, frames of channels the decoder does not read
        # While nothing is decoded (`frame_refused`): bad lines that are frames whose content the
        # decoder refused, in all and in a row, and the first of them ("line 3: its reason").
        self.frames = self.frames_in_a_row = 0
        self.first_frame: str | None = None
        self.unnamed = 0

    def accepted(self) -> None:
        self.in_a_row = self.unknown_in_a_row = self.frames_in_a_row = 0

    def refused(self, lineno: int, what: str, *, bad: bool = True) -> None:
        if bad:
            self.bad += 1
        else:
            self.unknown += 1
            self.unknown_in_a_row += 1
        self.in_a_row += 1
        if self.bad + self.unknown - self.unnamed <= _NAMED:
            print(f"line {lineno}: {what}", file=sys.stderr)
        else:
            self.unnamed += 1

    def frame_refused(self, lineno: int, reason: str) -> None:
        """The bad line just counted is a frame whose content the decoder refused for `reason`."""
        self.frames += 1
        self.frames_in_a_row += 1
        if self.first_frame is None:
            self.first_frame = f"line {lineno}: {reason}"

    def refused_frames(self, decoder: str, *, in_a_row: bool) -> str | None:
        """What happened, said for a person, when some of the bad lines (of those in a row, or
        of all) are frames whose content the decoder (`decoder`: its name in the sentence)
        refused: all or most of them ("they are frames ..."), or some, the others being no
        frames at all (not a JSON object or array); None when none is."""
        frames, bad = (
            (self.frames_in_a_row, self.in_a_row - self.unknown_in_a_row)
            if in_a_row
            else (self.frames, self.bad)
        )
        if not frames:
            return None
        if frames * 2 > bad:
            return f"they are frames whose content {decoder} refused ({self.first_frame})"
        return (
            f"{frames:,} of them are frames whose content {decoder} refused ({self.first_frame}),"
            f" the other {bad - frames:,} are no frames (neither a JSON object nor an array)"
        )


def _decodes(name: str, frames: list[tuple[int, bytes]]) -> int:
    """How many of `frames` venue `name`'s decoder reads: decoded into events, not refused."""
    try:
        decoder = load_venue(name).decoder(InstrumentRegistry())
    except Exception:  # a guess about other plugins: one that does not load is no answer
        return 0
    n = 0
    for ts, frame in frames:
        unknown = decoder.stats.unknown_channel
        try:
            events = decoder.decode(frame, ts)
        except Exception:  # another venue's data may break a decoder in any way: a "no"
            continue
        if events and decoder.stats.unknown_channel == unknown:
            n += 1
    return n


def _looks_like(venue: str, frames: list[tuple[int, bytes]]) -> tuple[str | None, str]:
    """Whose data `frames` look like: the installed venue whose decoder reads most of them, if
    any does (None if none), and that said for a person."""
    scores = {name: _decodes(name, frames) for name in available_venues() if name != venue}
    best = max(scores, key=lambda name: scores[name], default=None)
    if best is None or not scores[best]:
        others = ", ".join(scores) or "none installed"
        return None, f"no other installed venue's decoder reads them either ({others}): are they frames?"
    return best, f"they look like {best}'s data (try --venue {best})"


def cmd_decode(args: argparse.Namespace) -> int:
    plugin = load_venue(args.venue)
    decoder = plugin.decoder(InstrumentRegistry())
    out = sys.stdout.buffer
    stream: IO[bytes] | None = None
    if args.path in (None, "-"):
        lines: Iterable[bytes] = sys.stdin.buffer
        close: Callable[[], None] = lambda: None  # noqa: E731
    else:
        stream, _ = open_binary(args.path)
        lines, close = _readable_lines(stream, args.path), stream.close
    problems = _Problems()
    decoded_any = False
    first: list[tuple[int, bytes]] = []
    dumps = orjson.dumps
    lineno = 0
    broken: str | None = None
    refused: deque[tuple[int, bytes]] = deque(maxlen=_SNIFF)  # the last frames refused in a row
    ask_at = _GIVE_UP  # refused lines in a row, with nothing decoded, before asking whose they are
    verdict: str | None = None  # why decoding stopped there, if it did
    try:
        for lineno, raw in enumerate(lines, 1):
            if not decoded_any and problems.in_a_row >= ask_at:
                whose, verdict = _looks_like(args.venue, list(refused))
                if whose is not None or problems.unknown_in_a_row * 2 <= problems.in_a_row:
                    if whose is None:  # the venue's own frames with a bad number are no mystery
                        verdict = problems.refused_frames("it", in_a_row=True) or verdict
                    lineno -= 1
                    break
                verdict = None  # frames of channels nobody reads: this venue's, and more may follow
                ask_at = problems.in_a_row * 2
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            if not line[:1].isdigit():  # a bare frame (JSON, or a text frame like Polymarket's PONG)
                ts, frame = time.time_ns(), line
            else:
                sp = line.find(b" ")
                try:
                    if sp < 0:
                        raise ValueError("expected a frame or '<timestamp> <frame>'")
                    ts, frame = parse_ts(line[:sp]), line[sp + 1 :]
                except ValueError as exc:
                    problems.refused(lineno, f"not a frame or recording line: {exc}")
                    continue
            if len(first) < _SNIFF:
                first.append((ts, frame))
            unknown_before = decoder.stats.unknown_channel
            try:
                events = decoder.decode(frame, ts)
            except MalformedFrame as exc:
                # "frame: not JSON (...)" is the frame's own word: said once, not "frame: frame:".
                reason = str(exc).removeprefix("frame: ")
                problems.refused(lineno, f"malformed frame: {reason}")
                if not decoded_any and _is_a_frame(frame):  # only said when nothing is decoded
                    problems.frame_refused(lineno, reason)
                refused.append((ts, frame))
                continue
            if decoder.stats.unknown_channel != unknown_before:
                channel = decoder.last_unknown_channel
                problems.refused(lineno, f"unknown channel {channel!r} (not decoded)", bad=False)
                refused.append((ts, frame))
                continue
            problems.accepted()
            refused.clear()
            if events:
                decoded_any = True
            for ev in events:
                out.write(dumps(event_to_dict(ev), default=_default) + b"\n")
        out.flush()
    except BrokenPipeError:
        return 0
    except _Unreadable as exc:
        out.flush()
        broken = str(exc)
    finally:
        close()
    err = sys.stderr
    if problems.unnamed:
        print(f"... and {problems.unnamed:,} more line(s) not named", file=err)
    if verdict is not None:
        kinds = [(problems.bad, "not decodable"), (problems.unknown, "of channels it does not read")]
        counts = ", ".join(f"{n:,} {what}" for n, what in kinds if n)
        print(
            f"stopped after line {lineno:,}: the {args.venue} decoder refused every line ({counts})"
            f" and decoded nothing; {verdict}",
            file=err,
        )
        return EXIT_FAILURE
    if broken is not None:
        print(
            f"line {lineno + 1}: {args.path}: unreadable from here on ({broken});"
            f" the {lineno} line(s) before it were decoded",
            file=err,
        )
    elif stream is not None and unfinished(stream):
        print(
            f"{args.path}: ends inside a zstd frame (still being written, or cut short):"
            f" decoded up to its last complete block, line {lineno}",
            file=err,
        )
    if problems.unknown:
        print(
            f"{problems.unknown:,} line(s) of channels the {args.venue} decoder does not read (not decoded)",
            file=err,
        )
    if problems.bad:
        hint = ""
        if not decoded_any:
            whose, said = _looks_like(args.venue, first)
            if whose is None:
                said = problems.refused_frames(f"the {args.venue} decoder", in_a_row=False) or said
            hint = f"; {said}"
        print(f"{problems.bad:,} line(s) could not be decoded{hint}", file=err)
    return EXIT_FAILURE if problems.bad or broken is not None else 0
