"""Venue data can never take the daemon down (issue 12, section 1): a fuzzer for every venue's
decoder.

Frames are seeded from real captured frames (`tests/fixtures/<venue>/ws_*.json`) and from each
venue's generator, then mutated by a seeded random mutator: type swaps, missing and extra keys,
huge and non-finite numbers, negative numbers, truncation, invalid UTF-8, deep nesting, very long
lines. Whatever the frame, the decoder raises nothing but `MalformedFrame` (the contract
`engine.venue.plugins.guard_decode` guarantees), its counters agree with what the caller saw, and it
still decodes valid frames afterwards.

Fast in CI (`FRAMES_CI` per venue). A long run: `TRADINGD_FUZZ_FRAMES=1000000 pytest
tests/venue/test_fuzz_frames.py` (and `TRADINGD_FUZZ_SEED` to start elsewhere). A failure names the
exception type and a shortened example frame.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import os
import random
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.support.recursion import msgspec_refuses
from tradingd.engine import MalformedFrame
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.sim.plugins import load_simulator
from tradingd.engine.store.recording import RecordingReader
from tradingd.engine.venue import Decoder
from tradingd.engine.venue.plugins import MAX_NESTING, DecoderFault, load_venue

ROOT = Path(__file__).parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
VENUES = ("deribit", "derive", "polymarket")
FRAMES_CI = 4000
FRAMES = int(os.environ.get("TRADINGD_FUZZ_FRAMES", FRAMES_CI))
SEED = int(os.environ.get("TRADINGD_FUZZ_SEED", 12))

# Values a field may be swapped for: wrong types, and numbers no venue sends.
_HOSTILE: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    -0.5,
    1e308,
    -1e308,
    5e-324,
    10**400,
    -(10**400),
    "",
    "x",
    "-1",
    "1e308",
    "-1e308",
    "1e999999",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "sNaN",
    "0x10",
    "9" * 5000,
    [],
    {},
    [1, 2],
    {"a": 1},
    ["new", "x", "y"],
]
_BAD_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"]
_NUMBER_TOKENS = [b"1e308", b"-1e308", b"NaN", b"Infinity", b"-Infinity", b"1" * 400, b"-0", b"-5", b"1e-400"]


def _messages(obj: Any) -> Iterator[Any]:
    """A fixture file is one message or a list of them."""
    if isinstance(obj, list) and obj and all(isinstance(m, dict) for m in obj):
        yield from obj
    else:
        yield obj


def _derive_notification(name: str, data: Any) -> Any:
    if not isinstance(data, dict) or "instrument_name" not in data:
        return data if name.startswith("ws_subscribe") else None
    inst = data["instrument_name"]
    for prefix, channel in (
        ("ws_orderbook", f"orderbook.{inst}.1.10"),
        ("ws_ticker_slim", f"ticker_slim.{inst}.1000"),
        ("ws_ticker", f"ticker.{inst}.100"),
        ("ws_trade", f"trades.{inst}"),
    ):
        if name.startswith(prefix):
            payload = [data] if prefix == "ws_trade" else data
            return {"method": "subscription", "params": {"channel": channel, "data": payload}}
    return None


def seed_frames(venue: str, tmp: Path) -> list[bytes]:
    """Real captured frames (compact, one per message), then the venue generator's own."""
    frames: list[bytes] = []
    for path in sorted((FIXTURES / venue).rglob("*.json")):
        if not path.name.startswith("ws_"):
            continue
        try:
            obj = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue
        if venue == "derive":  # Derive's captures are a notification's `data` (§3.1)
            obj = _derive_notification(path.name, obj)
            if obj is None:
                continue
        frames += [orjson.dumps(m) for m in _messages(obj)]
    sample = tmp / f"{venue}.rec"
    load_simulator(venue).generate_sample(sample, {"seed": 7, "hours": 0.02})
    for i, (_, frame) in enumerate(RecordingReader(sample)):
        if i >= 400:
            break
        frames.append(frame)
    return frames


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:8]):
            yield from _paths(v, (*prefix, i))


def _hostile(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(_HOSTILE))  # a fresh one: later mutations must not share it


def _mutate_tree(rng: random.Random, obj: Any) -> Any:
    """One to three changes at random places of a parsed frame."""
    for _ in range(rng.randint(1, 3)):
        paths = list(_paths(obj))
        path = rng.choice(paths)
        if not path:
            obj = _hostile(rng)
            continue
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        value = parent[key]
        op = rng.random()
        if op < 0.45:
            parent[key] = _hostile(rng)
        elif op < 0.6 and isinstance(value, int | float) and not isinstance(value, bool):
            scale = rng.randint(1, 300)
            parent[key] = (
                -value
                if rng.random() < 0.5
                else value * (10**scale if isinstance(value, int) else 10.0**scale)
            )
        elif op < 0.75:
            del parent[key]  # a missing key (or list item)
        elif op < 0.85 and isinstance(parent, dict):
            parent[rng.choice(["extra", "type", "data", "bids", "asks", key + "_"])] = _hostile(rng)
        elif op < 0.92 and isinstance(value, str):
            parent[key] = value * rng.randint(2, 50)
        else:
            parent[key] = [value] if rng.random() < 0.5 else {"v": value}
    return obj


def _dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError):  # ints beyond 64 bits, non-finite floats
        return json.dumps(obj, separators=(",", ":")).encode()


def _mutate_bytes(rng: random.Random, frame: bytes) -> bytes:
    op = rng.random()
    n = len(frame)
    if op < 0.25:
        return frame[: rng.randrange(n + 1)]  # truncated
    if op < 0.45:
        at = rng.randrange(n + 1)
        return frame[:at] + rng.choice(_BAD_UTF8) + frame[at:]  # invalid UTF-8, often in a string
    if op < 0.55:
        at = rng.randrange(n)
        return frame[:at] + bytes([rng.randrange(256)]) + frame[at + 1 :]
    if op < 0.75:
        # a number token replaced by one no venue sends
        digits = [i for i in range(1, n) if 48 <= frame[i] <= 57 and frame[i - 1] in b":,["]
        if digits:
            at = rng.choice(digits)
            end = at
            while end < n and frame[end] in b"0123456789.eE+-":
                end += 1
            return frame[:at] + rng.choice(_NUMBER_TOKENS) + frame[end:]
        return frame
    if op < 0.85:
        # deep nesting, around the frame or inside its first container
        depth = rng.choice([MAX_NESTING - 5, MAX_NESTING + 1, 900, 2_000, 5_000, 50_000])
        if rng.random() < 0.5:
            return b"[" * depth + frame + b"]" * depth
        at = frame.find(b"[")
        at = at if at >= 0 else 0
        return frame[: at + 1] + b"[" * depth + b"1" + b"]" * depth + b"," + frame[at + 1 :]
    if op < 0.9:
        return frame + frame  # two messages in one frame
    if op < 0.95:
        at = frame.find(b'"', frame.find(b":") + 1)
        return frame[: at + 1] + b"A" * rng.choice([10_000, 300_000]) + frame[at + 1 :]  # a very long line
    return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))  # noise


def fuzz_frames(rng: random.Random, seeds: list[bytes], count: int) -> Iterator[bytes]:
    json_seeds = [s for s in seeds if s[:1] in b"{["]  # not Polymarket's `PONG`
    for _ in range(count):
        op = rng.random()
        if op < 0.55:
            frame = _dumps(_mutate_tree(rng, orjson.loads(rng.choice(json_seeds))))
            if rng.random() < 0.2:
                frame = _mutate_bytes(rng, frame)
        elif op < 0.95:
            frame = _mutate_bytes(rng, rng.choice(seeds))
        else:
            frame = rng.choice(seeds)  # valid frames in between keep the decoder's state moving
        yield frame


def _where(fault: DecoderFault) -> str:
    """The original exception's type and the line of venue code that raised it."""
    cause = fault.__cause__
    tb = cause.__traceback__ if cause is not None else None
    where = "?"
    while tb is not None:
        code = tb.tb_frame.f_code
        if "connectors" in code.co_filename:
            path = Path(code.co_filename).relative_to(ROOT)
            where = f"{path}:{tb.tb_lineno} ({code.co_name})"
        tb = tb.tb_next
    return f"{fault.error_type} at {where}"


def _short(frame: bytes) -> str:
    return repr(frame[:300]) + (f"... ({len(frame)} bytes)" if len(frame) > 300 else "")


def run_fuzz(
    decoder: Decoder, seeds: list[bytes], count: int, seed: int
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Feed `count` mutated frames; returns the escapes (type -> examples) and the decoder
    faults the safety net converted (type -> one example), for the venue owners."""
    rng = random.Random(seed)
    escapes: dict[str, list[str]] = {}
    faults: dict[str, str] = {}
    frames_before, malformed_before = decoder.stats.frames, decoder.stats.malformed
    malformed = 0
    calls = 0
    for frame in fuzz_frames(rng, seeds, count):
        calls += 1
        try:
            decoder.decode(frame, 1_700_000_000_000_000_000)
        except MalformedFrame as exc:
            malformed += 1
            if isinstance(exc, DecoderFault):
                faults.setdefault(_where(exc), _short(frame))
        except Exception as exc:  # an escape: what this test exists to find
            escapes.setdefault(type(exc).__name__, []).append(f"{exc!r:.200} <- {_short(frame)}")
    assert decoder.stats.frames - frames_before == calls, "every frame is counted"
    assert decoder.stats.malformed - malformed_before == malformed, "every refused frame is counted"
    return escapes, faults


def _snapshot(venue: str) -> tuple[bytes, str]:
    """A real book snapshot of the venue, and its instrument."""
    if venue == "deribit":
        frame = orjson.loads((FIXTURES / "deribit/ws_book_snapshot.json").read_bytes())
        return orjson.dumps(frame), frame["params"]["data"]["instrument_name"]
    if venue == "polymarket":
        frame = orjson.loads((FIXTURES / "polymarket/ws_book_snapshot.json").read_bytes())
        msg = frame[0] if isinstance(frame, list) else frame
        return orjson.dumps(msg), msg["asset_id"]
    data = orjson.loads((FIXTURES / "derive/perps/ws_orderbook_eth.json").read_bytes())
    return orjson.dumps(_derive_notification("ws_orderbook", data)), data["instrument_name"]


@pytest.mark.parametrize("venue", VENUES)
def test_fuzzed_frames_raise_only_malformed(venue: str, tmp_path: Path) -> None:
    seeds = seed_frames(venue, tmp_path)
    assert len(seeds) > 20
    decoder = load_venue(venue).decoder(InstrumentRegistry())
    for s in seeds:  # the seeds teach the decoder instruments and books first
        with contextlib.suppress(MalformedFrame):
            decoder.decode(s, 1)
    escapes, faults = run_fuzz(decoder, seeds, FRAMES, SEED + VENUES.index(venue))
    assert not escapes, "\n".join(f"{t}: {len(v)} x, e.g. {v[0]}" for t, v in escapes.items())
    # The safety net (`guard_decode`) turns whatever a codec raises into a `MalformedFrame` by
    # construction, so the real test is that it never had to: every fuzzed frame is refused by
    # the venue's codec itself, at the edge, with its books untouched (a `DecoderFault`
    # invalidates every book of the venue).
    assert not faults, "decoder faults the codec should refuse at the source:\n" + "\n".join(
        f"  {what}\n    e.g. {example}" for what, example in sorted(faults.items())
    )

    # After the garbage, valid frames still decode: a real snapshot makes a valid book.
    snapshot, instrument = _snapshot(venue)
    decoder.decode(snapshot, 2)
    book = decoder.book(instrument)
    assert book is not None and book.valid
    for s in seeds:
        with contextlib.suppress(MalformedFrame):
            decoder.decode(s, 3)


def test_a_huge_price_is_malformed_and_the_book_untouched() -> None:
    """A well-formed Deribit snapshot with a price of 1e308 used to end the process
    (`OverflowError` converting to ticks): the codec now refuses it at the edge, before any
    state changes, so the book it would have overwritten is still the venue's."""
    decoder = load_venue("deribit").decoder(InstrumentRegistry())
    good, instrument = _snapshot("deribit")
    decoder.decode(good, 1)
    before = decoder.book(instrument)
    assert before is not None and before.valid
    best = (before.best_bid_ticks, before.best_ask_ticks)
    msg = orjson.loads(good)
    msg["params"]["data"]["bids"][0][1] = 1e308
    with pytest.raises(MalformedFrame):
        decoder.decode(orjson.dumps(msg), 2)
    assert decoder.stats.malformed == 1 and decoder.stats.frames == 2
    after = decoder.book(instrument)
    assert after is not None and after.valid and (after.best_bid_ticks, after.best_ask_ticks) == best


def test_decoder_fault_is_malformed_and_invalidates_books(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a decoder raises part way through a frame (here the tick conversion of a book
    snapshot failing as 1e308 once made it) is a `DecoderFault`, a `MalformedFrame`, counted
    once; the book it may have half written is no longer trusted until its next snapshot."""
    import tradingd.connectors.deribit.codec as deribit_codec

    decoder = load_venue("deribit").decoder(InstrumentRegistry())
    good, instrument = _snapshot("deribit")
    decoder.decode(good, 1)
    assert decoder.book(instrument).valid  # type: ignore[union-attr]
    real_apply = deribit_codec._apply

    def half_applied(book: Any, bids: Any, asks: Any) -> Any:
        book.clear()  # the old book is gone, and then the conversion fails
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(deribit_codec, "_apply", half_applied)
    with pytest.raises(DecoderFault) as caught:
        decoder.decode(good, 2)
    assert caught.value.error_type == "OverflowError"
    assert decoder.stats.malformed == 1 and decoder.stats.frames == 2
    book = decoder.book(instrument)
    assert book is None or not book.valid
    monkeypatch.setattr(deribit_codec, "_apply", real_apply)
    decoder.decode(good, 3)
    assert decoder.book(instrument).valid  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "frame",
    [
        b"invalid-utf8",  # the venue's book snapshot, with non-UTF-8 bytes in its instrument
        b"[" * 50_000 + b"]" * 50_000,
        b'{"a":' * 3_000 + b"1" + b"}" * 3_000,
        b"[" * 50_000,  # truncated as well
        b"[" * 2_000 + b"]" * 2_000,  # short: not scanned, refused by the parser's recursion limit
    ],
    ids=["invalid-utf8", "deep-list", "deep-object", "deep-truncated", "deep-short"],
)
@pytest.mark.parametrize("venue", VENUES)
def test_hostile_frame_is_malformed(venue: str, frame: bytes) -> None:
    decoder = load_venue(venue).decoder(InstrumentRegistry())
    if frame == b"invalid-utf8":
        snapshot, instrument = _snapshot(venue)
        name = instrument.encode()
        frame = snapshot.replace(b'"' + name + b'"', b'"' + name[:3] + b"\xff\xfe" + name[3:] + b'"')
    with pytest.raises(MalformedFrame):
        decoder.decode(frame, 1)
    if frame.isascii():
        with pytest.raises(MalformedFrame):
            decoder.decode(frame.decode(), 1)  # type: ignore[arg-type]  # as a session hands a text frame over
    assert decoder.stats.malformed == decoder.stats.frames == (2 if frame.isascii() else 1)


def test_nesting_check_is_exact_where_it_matters() -> None:
    from tradingd.engine.venue.plugins import check_nesting

    ok = b"[" * MAX_NESTING + b"]" * MAX_NESTING
    check_nesting(ok, "x")
    with pytest.raises(MalformedFrame, match=f"^frame: nested deeper than {MAX_NESTING} levels$"):
        check_nesting(b"[" + ok + b"]", "x")
    with pytest.raises(MalformedFrame, match="^result: nested deeper"):  # exact at any length:
        check_nesting(b"[" * (MAX_NESTING + 1), "x", where="result")  # the hot path gates on length
    # Brackets inside strings are text, not nesting (a frame must not be refused for them)...
    check_nesting(b'["' + b"[" * 5000 + b'"]', "x")
    check_nesting(b'{"a":"\\"' + b"{" * 5000 + b'"}', "x")  # ... nor behind an escaped quote
    # ... nor can a string's closers hide real nesting.
    sneaky = b"[" * 600 + b'"' + b"]" * 600 + b'"' + b"[" * 600 + b"1" + b"]" * 1200
    with pytest.raises(MalformedFrame):
        check_nesting(sneaky, "x")
    with pytest.raises(MalformedFrame):
        check_nesting(b'{"a":"]' + b'",[' * 2 * (MAX_NESTING + 1) + b"]" * 600 + b"}", "x")  # every other [
    # A big but shallow frame (a large book snapshot, lists side by side) passes.
    levels = b",".join(b'["new",%d.5,1.0]' % i for i in range(5000))
    check_nesting(b'{"bids":[' + levels + b"]}", "x")
    with pytest.raises(MalformedFrame):  # every frame type a decoder takes
        check_nesting(memoryview(b"[" * 5000 + b"]" * 5000), "x")
    with pytest.raises(MalformedFrame):
        check_nesting("[" * 5000, "x")
    with pytest.raises(MalformedFrame):
        check_nesting(msgspec.Raw(b"[" * 5000), "x")


@pytest.mark.parametrize("venue", VENUES)
def test_a_frame_no_venue_could_read_is_refused_in_the_same_words_by_every_venue(venue: str) -> None:
    """A cut-off frame, a stray byte, JSON that is no message: one vocabulary in the logs, whatever
    the venue ("frame: not JSON (...)"); the JSON-RPC venues said "message: Input data was
    truncated" where Polymarket said "frame: not JSON (Input data was truncated)"."""
    decoder = load_venue(venue).decoder(InstrumentRegistry())
    refused = {
        b'{"method":"subscription","params":{"channel":"ticker.BTC-PERPETUAL.raw","data":{"a":1': (
            r"^frame: not JSON \(Input data was truncated\)$"
        ),
        b"not json": r"^frame: not JSON \('not' at byte 0: JSON's words are null, true and false\)$",
        b'{"method":"\xff"}': "^frame: a string is not UTF-8",
        # JSON, but no message: the prefix and a complaint about its shape, in each venue's own
        # words ("Expected 'object', got 'int'" from msgspec; Polymarket's "expected a JSON
        # object (or an array of them), got int").
        b"5": "^frame: [Ee]xpected ",
    }
    for frame, message in refused.items():
        with pytest.raises(MalformedFrame, match=message) as err:
            decoder.decode(frame, 0)
        assert err.value.venue == venue
    assert decoder.stats.malformed == len(refused)


def _byte_named(said: str) -> int | None:
    """The byte a refusal names ("... (byte 7))", "at byte 5:", "(after byte 3, the last)")."""
    found = re.search(r"\(byte (\d+)\)|at byte (\d+):|\(after byte (\d+), the last\)", said)
    return None if found is None else int(found[1] or found[2] or found[3])


@pytest.mark.parametrize("venue", VENUES)
def test_where_a_frame_stops_being_json_is_a_byte_of_it(venue: str) -> None:
    """msgspec names the byte where it gave up, not always the one at fault: the one after it (a
    trailing character, a bad escape), the one after a word it compared ('nope': byte 4 of 4,
    which a newcomer met; '{"a":tru}': byte 9 of 9). Every venue names the byte at fault, inside
    the frame, counted in its UTF-8 when the frame is a str: a word that is not null, true or
    false where it starts, a NaN or an Infinity in place of a number at its own byte, but only
    when it is what msgspec stopped at (not after a bad escape, a trailing character, a missing
    comma), and a number the frame ends inside of after the last byte."""
    decoder = load_venue(venue).decoder(InstrumentRegistry())
    said: dict[str, str] = {}
    texts = (
        *("nope", '{"a":tru}', '{"a":fals}', '{"nt":NaN}', '{"a":nxxxNaN}'),
        *('{"a":1}x', "xyz", '{"a":nul}', '{"é":1}xy', '{"a":NaN}', '{"b":[-Infinity]}', '{"a":1.'),
        *('{"a":"\\qNaN"}', '{"a":1}xNaN', '{"a":1}-Infinity', "[1 NaN]", '{"a":[1 NaN]}'),
    )
    for text in texts:
        frame: Any  # a str frame too (a live session's): positions are its UTF-8's
        for frame in (text, text.encode()):
            with pytest.raises(MalformedFrame) as err:
                decoder.decode(frame, 0)
            where = _byte_named(str(err.value))
            assert where is None or where < len(text.encode()), (frame, str(err.value))
            said[text] = str(err.value)
    word = "frame: not JSON ({} at byte {}: JSON's words are null, true and false)"
    assert said["nope"] == word.format("'nope'", 0)
    assert said['{"a":tru}'] == word.format("'tru'", 5)
    assert said['{"a":fals}'] == word.format("'fals'", 5)
    assert said['{"a":nxxxNaN}'] == word.format("'nxxx'", 5)  # the word stopped it, not the NaN after
    malformed = "frame: not JSON (JSON is malformed: {})"
    assert said['{"a":1}x'] == malformed.format("trailing characters (byte 7)")
    assert said["xyz"] == malformed.format("invalid character (byte 0)")
    assert said['{"a":nul}'] == word.format("'nul'", 5)
    assert said['{"é":1}xy'] == malformed.format("trailing characters (byte 8)")
    assert said['{"a":1.'] == malformed.format("invalid number (after byte 6, the last)")
    # msgspec's words for a bad escape are its path's: "escaped character" where the JSON-RPC
    # venues' typed parse skips the field (naming the escape at once), "escape character in
    # string" where Polymarket's reads it.
    escape = "escape character in string" if venue == "polymarket" else "escaped character"
    assert said['{"a":"\\qNaN"}'] == malformed.format(f"invalid {escape} (byte 7)")
    assert said['{"a":1}xNaN'] == malformed.format("trailing characters (byte 7)")
    assert said['{"a":1}-Infinity'] == malformed.format("trailing characters (byte 7)")
    assert said['{"a":[1 NaN]}'] == malformed.format("expected ',' or ']' (byte 8)")
    # Polymarket reads an array of messages; a JSON-RPC venue wants an object, and says so first.
    wrong_shape = "frame: Expected 'object', got 'array'"
    bare = malformed.format("expected ',' or ']' (byte 3)") if venue == "polymarket" else wrong_shape
    assert said["[1 NaN]"] == bare
    assert said['{"a":NaN}'] == "frame: not JSON (NaN at byte 5: JSON has no NaN or Infinity)"
    assert said['{"nt":NaN}'] == "frame: not JSON (NaN at byte 6: JSON has no NaN or Infinity)"
    assert said['{"b":[-Infinity]}'] == "frame: not JSON (-Infinity at byte 6: JSON has no NaN or Infinity)"


@given(text=st.binary(max_size=40))
@example(text=b"nope")
@example(text=b'{"a":tru}')
@example(text=b'{"a":1}x')
@example(text=b'"\\udc00')
@example(text=b"1e999")
def test_no_refusal_names_a_byte_past_the_text(text: bytes) -> None:
    """Whatever the text, a frame's refusal (every venue's) and a schemaless parse's name a byte
    of it, if any; one that says the text is not JSON names one unless the text is cut off or a
    number out of range ('nope' and '{"a":tru}' were "(at the end)", which read as a cut-off
    frame)."""
    from tradingd.engine.venue.plugins import loads_untyped

    refusals: list[str] = []
    for venue in VENUES:
        try:
            load_venue(venue).decoder(InstrumentRegistry()).decode(text, 0)
        except MalformedFrame as exc:
            refusals.append(str(exc))
    try:
        loads_untyped(text, "x", "result")
    except MalformedFrame as exc:
        refusals.append(str(exc))
    for said in refusals:
        where = _byte_named(said)
        assert where is None or where < len(text), (text, said)
        if where is None and "not JSON" in said:  # msgspec's two refusals that name no byte
            byteless = r": not JSON \((Input data was truncated|Number out of range)"
            assert re.search(byteless, said), (text, said)


def test_every_schemaless_parse_is_bounded_and_refuses_what_is_not_json() -> None:
    """`loads_untyped`, the one schemaless parse of venue bytes: MalformedFrame naming where."""
    from tradingd.engine.venue.plugins import loads_untyped

    ok = b"[" * MAX_NESTING + b"]" * MAX_NESTING
    assert loads_untyped(ok, "x", "result") is not None
    assert loads_untyped(msgspec.Raw(b'{"a":[1]}'), "x", "result") == {"a": [1]}
    # An integer is read exactly (orjson would make this one a float, silently).
    assert loads_untyped("123456789012345678901234567890", "x", "result") == 123456789012345678901234567890
    refused: dict[bytes | str, str] = {
        b"[" + ok + b"]": f"^result: nested deeper than {MAX_NESTING} levels$",
        b"[" * 3000: "^result: nested deeper",  # short, and unclosed
        b'{"a":1': "^result: not JSON",
        b'{"a":"\xff"}': "^result: a string is not UTF-8",
        '{"a":"\ud800"}': "^result: a string is not UTF-8",  # a lone surrogate in a text frame
        b'{"a":"\\ud800"}': "^result: not JSON",  # an escaped one
    }
    for text, message in refused.items():
        with pytest.raises(MalformedFrame, match=message) as err:
            loads_untyped(text, "x", "result")
        assert err.value.venue == "x"
    # Called from deep in a stack, the parse meets the recursion limit under MAX_NESTING on 3.11.
    # From 3.12 msgspec's C recursion is bounded by the interpreter's C limit (about 10,000 levels
    # on 3.13), not this one, and the parse is simply done: which one happens here is asked of
    # msgspec itself at the same depth.
    deep = b"[" * 300 + b"]" * 300
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 100)
    try:
        if msgspec_refuses(deep):
            with pytest.raises(MalformedFrame, match="^result: too deep to parse from here$"):
                loads_untyped(deep, "x", "result")
        else:
            nested = loads_untyped(deep, "x", "result")
            for _ in range(299):
                assert isinstance(nested, list) and len(nested) == 1
                nested = nested[0]
            assert nested == []
    finally:
        sys.setrecursionlimit(limit)


_DEEP_SCRIPT = textwrap.dedent(
    """
    import sys, trio
    from tradingd.engine.venue import InstrumentRegistry, MalformedFrame
    from tradingd.engine.venue.plugins import load_venue
    import tradingd.connectors.polymarket.signing  # imports eth-account, whose py_ecc raises the limit
    frame = b"[" * 50_000 + b"]" * 50_000
    for venue in ("deribit", "derive", "polymarket"):
        decoder = load_venue(venue).decoder(InstrumentRegistry())
        for f in (frame, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
            try:
                decoder.decode(f, 1)
            except MalformedFrame:
                pass
    from tests.support.frame_sessions import polymarket_session_receives
    trio.run(polymarket_session_receives, frame)
    print("alive", sys.getrecursionlimit())
    """
)


def test_deep_frame_does_not_crash_the_interpreter() -> None:
    """A frame nested 50,000 deep used to segfault the Polymarket daemon (py_ecc raises the
    recursion limit to 100,000 at import; the parser's recursion then overflows the C stack).
    In a subprocess: a crash is a signal, not an exception."""
    proc = subprocess.run(
        [sys.executable, "-c", _DEEP_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "alive" in proc.stdout
    assert int(proc.stdout.split()[-1]) < 100_000, "a session puts the recursion limit back"
