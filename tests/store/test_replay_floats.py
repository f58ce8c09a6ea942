"""The floats of a chunk read back to their very bits, however many and however often repeated.

The compiled reader (`_replay.Records`) may keep the floats it built lately to hand out the same
object again (a table of recent values, as tried in round 12): these tests read chunks of many
floats, values repeated at every distance, values that share a table slot, 0.0 beside -0.0, NaNs
with payloads, and compare every float's bits with what was written and with the Python
reference (`evformat.py_records`). A reader that gave back a float of another value, or the
same object for 0.0 and -0.0, fails them; the small records of test_replay_compiled.py's
generated chunks hold too few floats to meet such a reader's collisions."""

from __future__ import annotations

import math
import pickle
import random
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.examples import examples
from tradingd.engine.store import _replay, evformat

_BITS = struct.Struct("<Q")
_F64 = struct.Struct("<d")


def _bits(x: float) -> int:
    return int(_BITS.unpack(_F64.pack(x))[0])


def _float(bits: int) -> float:
    return float(_F64.unpack(_BITS.pack(bits))[0])


def _floats_of(value: Any) -> list[float]:
    """Every float in a record's body, in order (tuples of floats and of (float, float) levels)."""
    if type(value) is float:
        return [value]
    assert type(value) is tuple, value
    return [x for v in value for x in _floats_of(v)]


def _read_both(bodies: list[Any]) -> list[list[float]]:
    """`bodies` written as one chunk (one record each, no receive time), read by the compiled
    reader and by the reference: each record's floats, which must be the same bit for bit."""
    encoder = _replay.Encoder({}, {}, lambda v: -1, pickle.dumps)
    for body in bodies:
        encoder.add(None, 0, body)
    data = encoder.take()
    compiled = [
        _floats_of(body)
        for _, _, body in _replay.Records(data, 0, len(bodies), 1, (), (), pickle.loads, None)
    ]
    python = [
        _floats_of(body) for _, _, body in evformat.py_records(data, 0, len(bodies), 1, (), (), pickle.loads)
    ]
    _same_bits(compiled, python)
    return compiled


def _same_bits(got: list[list[float]], want: list[list[float]]) -> None:
    """The same floats to the bit; else the first that differs, named (not the whole lists)."""
    assert [len(rec) for rec in got] == [len(rec) for rec in want]
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        for j, (x, y) in enumerate(zip(a, b, strict=True)):
            assert _bits(x) == _bits(y), f"record {i}, float {j}: {x!r} read, {y!r} expected"


def _check(bodies: list[Any]) -> list[list[float]]:
    """Read back, every float is the one written, to the bit."""
    got = _read_both(bodies)
    _same_bits(got, [_floats_of(body) for body in bodies])
    return got


def test_zero_and_minus_zero_stay_apart_in_one_chunk() -> None:
    zeros = (0.0, -0.0) * 50
    got = _check([zeros, ((0.0, -0.0), (-0.0, 0.0)), zeros])
    for rec in got:
        for x in rec:
            assert x == 0.0
    assert [math.copysign(1.0, x) for x in got[0]] == [1.0, -1.0] * 50
    assert [math.copysign(1.0, x) for x in got[1]] == [1.0, -1.0, -1.0, 1.0]


def test_nans_keep_their_payloads_and_are_never_one_shared_object() -> None:
    nans = [_float(0x7FF8000000000000 | p) for p in (0, 1, 0x1234, 0x7FFFFFFFFFFFF)]
    nans += [_float(0xFFF0000000000001), _float(0x7FF0000000000001)]  # negative and signalling
    body = tuple(nans + nans)
    (got,) = _check([body])
    assert all(math.isnan(x) for x in got)
    # a shared NaN would be found by `in` and dict lookups (identity first) where fresh ones are not
    assert len({id(x) for x in got}) == len(got)


def test_many_decimal_values_repeated_at_every_distance_read_back_exactly() -> None:
    """32,000 values m / 10**e, each of 2,000 m at every e (so values written with the same m,
    and with every short encoding), each written again at a random later distance: far more than
    a table of recent floats holds, so values meet in its slots and replace one another; the
    exact bits of each come back."""
    rng = random.Random(12)
    ms = [m for m in (rng.randrange(-(10**9), 10**9) for _ in range(2_200)) if m % 10][:2_000]
    values = [m / 10.0**e for m in ms for e in range(16)]
    rng.shuffle(values)
    values += [float(m) for m in range(-200, 200)] + [5e-324, 1e300, -1e300, math.inf, -math.inf]
    stream = list(values)
    for _ in range(60_000):
        at = rng.randrange(len(stream))
        stream.insert(min(len(stream), at + rng.choice([1, 7, 300, 5_000, 40_000])), stream[at])
    bodies: list[Any] = [tuple(stream[i : i + 250]) for i in range(0, len(stream), 250)]
    pairs = [(stream[i], stream[-1 - i]) for i in range(0, 20_000, 2)]
    bodies += [tuple(pairs[i : i + 100]) for i in range(0, len(pairs), 100)]  # LEVELS
    _check(bodies)


_pool = st.one_of(
    st.integers(-(10**12), 10**12).flatmap(lambda m: st.integers(0, 15).map(lambda e: m / 10.0**e)),
    st.integers(-999, 999)
    .map(lambda m: m * 10 + 3)
    .flatmap(  # one m at several e
        lambda m: st.sampled_from([m / 10.0**e for e in range(16)])
    ),
    st.sampled_from([0.0, -0.0, 91279.29, 0.0615, 1e-15, 2.0**53, math.inf, -math.inf, math.nan]),
    st.floats(allow_nan=True, allow_infinity=True),
)


@settings(max_examples=examples(50), deadline=None)
@given(
    st.lists(_pool, min_size=150, max_size=300),
    st.lists(st.integers(0, 10_000), min_size=600, max_size=1_200),
)
def test_generated_floats_repeated_in_a_chunk_read_as_the_reference_reads_them(
    pool: list[float], picks: list[int]
) -> None:
    """A few values, written many times over in records and levels: compiled as the reference,
    each float the one written."""
    stream = [pool[k % len(pool)] for k in picks]
    bodies: list[Any] = [tuple(stream[i : i + 40]) for i in range(0, len(stream), 40)]
    if len(stream) >= 2:
        bodies.append(tuple(zip(stream[::2], stream[1::2], strict=False)))
    _check(bodies)
