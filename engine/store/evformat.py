"""The records of a decoded-event cache chunk (evcache.py, format 4): the Python reference.

A chunk's records are what a replay hands the kernel: (ts, source index, body), the body an
event, a tuple of events, None (a bare frame) or anything else a record holds ([events, what else
the frame did]). They are written as a compact byte string, each value tagged, and read back
lazily, one record at a time as the kernel asks for it: its events are built just before the
kernel uses them and freed just after, in memory still warm (a chunk unpickled whole built
thousands of events at once, freed long after, cold). The compiled codec (`_replay.Encoder`,
`_replay.Records`, engine/store/_replay.c) writes the same bytes and reads the same records; this
module is its reference (tests/store/test_replay_compiled.py compares them, byte for byte and
record by record, on real entries and on generated values).

A record: a flags byte (0: a receive time follows, 1: none), the receive time as the zigzag
varint of its difference with the previous record's of the chunk (the first's with 0), the source
index (varint), then the body, one value. A value is a tag byte and what the tag says:

  NONE, FALSE, TRUE             None, False, True
  F64 + 8 bytes                 a float, its IEEE bits (little-endian)
  DEC + e, zigzag varint m      the float m / 10**e (e < 16; the writer checks the division gives
                                the float's very bits: 91279.29 is 9127929 / 100, 6 bytes)
  INT, zigzag varint            an int of 64 bits
  TS                            the record's receive time (the same int object: `ts_local`)
  TSDELTA, zigzag varint d      the record's receive time + d (`ts_exchange`, a few ms before)
  STR, varint n, n bytes        a str (UTF-8), appended to the chunk's string table
  REF, varint i                 the chunk's i-th string: one object per name in a chunk
  LEVELS, varint n, 2n floats   a tuple of n (float, float) tuples (book levels)
  TUPLE, varint n, n values     a tuple
  STRUCT, varint c, values      `structs[c](*values)`: a msgspec Struct, one value per field
  CONST, varint i               `consts[i]` (enum members)
  PICKLED, varint n, n bytes    anything else, `loads(bytes)`: the entry's restricted unpickler

A record's body is at depth 0, the values of a TUPLE or STRUCT at depth d at d + 1: a TUPLE or
STRUCT is written only below MAX_DEPTH (one there is the chunk's damage: no recursion bomb); at
MAX_DEPTH a tuple or Struct is PICKLED, and any other value (a CONST too) is written as above.

Only exact types are written as themselves (a str subclass, an enum member, is not a str); a
Struct class is written by field only when its constructor takes every field in order and does
nothing else (`positional_struct`); `register` (the writer's) names the tables' new entries.
"""

from __future__ import annotations

import inspect
import math
import struct
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Final

import msgspec

__all__ = ["PyEncoder", "positional_struct", "py_records"]

NONE: Final = 0
FALSE: Final = 1
TRUE: Final = 2
F64: Final = 3
INT: Final = 4
TS: Final = 5
TSDELTA: Final = 6
STR: Final = 7
REF: Final = 8
LEVELS: Final = 9
TUPLE: Final = 10
STRUCT: Final = 11
CONST: Final = 12
PICKLED: Final = 13
DEC: Final = 32  # DEC + e, e in 0..MAX_E
MAX_E: Final = 15
MAX_DEPTH: Final = 32  # no TUPLE or STRUCT at this depth: the file's damage (no recursion bomb)
TSDELTA_MAX: Final = 1 << 31  # an int this close to the record's time is written as a difference
_TS_MAX: Final = 1 << 62  # receive times the encoder takes (their differences fit 64 bits)
_I64: Final = 1 << 63
_POW10: Final = tuple(float(10**e) for e in range(MAX_E + 1))  # each exact
_F64: Final = struct.Struct("<d")
_EXACT_M: Final = 1 << 53


_positional: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()


def positional_struct(cls: type) -> bool:
    """A msgspec Struct class its fields in order rebuild: `cls(*values)` (its pickle's own
    recipe) and nothing else (no `__post_init__`, no keyword-only field, not a dict). Memoized:
    msgspec 0.22 leaks a few objects on every read of a class's `__signature__`."""
    if not (isinstance(cls, type) and issubclass(cls, msgspec.Struct)):
        return False
    found = _positional.get(cls)
    if found is None:
        found = _positional[cls] = _positional_struct(cls)
    return found


def _positional_struct(cls: type[msgspec.Struct]) -> bool:
    if hasattr(cls, "__post_init__") or cls.__struct_config__.dict:
        return False
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return False
    return [p.name for p in params] == list(cls.__struct_fields__) and all(
        p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params
    )


def _zigzag(v: int) -> int:
    return (v << 1) ^ (v >> 63)


def _unzigzag(u: int) -> int:
    return (u >> 1) ^ -(u & 1)


def _decimal(x: float) -> tuple[int, int] | None:
    """(e, m) with m / 10**e the very float x (the smallest such e), or None."""
    if not math.isfinite(x):
        return None
    bits = _F64.pack(x)
    for e, p in enumerate(_POW10):
        s = x * p
        if not abs(s) < _EXACT_M:
            return None
        m = round(s)
        if _F64.pack(float(m) / p) == bits:
            return e, m
    return None


class PyEncoder:
    """Records in, a chunk's bytes out (`take`): the reference of `_replay.Encoder`.

    `kinds`: Struct class -> its index in the entry's `structs`; `enums`: enum class -> {member:
    index in `consts`}; `register(value)`: a value of a class in neither yet, entered in them (its
    index), or -1 (it is pickled: `dumps(value)`)."""

    def __init__(
        self,
        kinds: dict[type, int],
        enums: dict[type, dict[Any, int]],
        register: Callable[[Any], int],
        dumps: Callable[[Any], bytes],
    ) -> None:
        self.kinds = kinds
        self.enums = enums
        self.register = register
        self.dumps = dumps
        self._fields: dict[type, tuple[str, ...]] = {}
        self.buf = bytearray()
        self.strings: dict[str, int] = {}
        self.count = 0
        self.prev = 0

    def take(self) -> bytes:
        """The chunk's records so far, and a new chunk begun (its own string table)."""
        out = bytes(self.buf)
        self.buf = bytearray()
        self.strings = {}
        self.count = 0
        self.prev = 0
        return out

    def add(self, ts: int | None, idx: int, body: Any) -> None:
        """One record; all or nothing (one that cannot be written leaves the chunk as it was)."""
        size, prev, named = len(self.buf), self.prev, len(self.strings)
        try:
            self._add(ts, idx, body)
        except BaseException:
            del self.buf[size:]
            self.prev = prev
            if len(self.strings) > named:
                self.strings = {s: i for s, i in self.strings.items() if i < named}
            raise

    def _add(self, ts: int | None, idx: int, body: Any) -> None:
        buf = self.buf
        if ts is None:
            buf.append(1)
        else:
            if ts.__class__ is not int or not -_TS_MAX <= ts < _TS_MAX:
                raise ValueError(f"a receive time of {ts!r} cannot be stored")
            buf.append(0)
            self._varint(_zigzag(ts - self.prev))
            self.prev = ts
        if idx.__class__ is not int or idx < 0:
            raise ValueError(f"a source index of {idx!r} cannot be stored")
        self._varint(idx)
        self._value(body, ts, 0)
        self.count += 1

    def _varint(self, u: int) -> None:
        buf = self.buf
        while u >= 0x80:
            buf.append((u & 0x7F) | 0x80)
            u >>= 7
        buf.append(u)

    def _float(self, x: float) -> None:
        found = _decimal(x)
        if found is None:
            self.buf.append(F64)
            self.buf += _F64.pack(x)
        else:
            self.buf.append(DEC + found[0])
            self._varint(_zigzag(found[1]))

    def _value(self, v: Any, ts: int | None, depth: int, *, retried: bool = False) -> None:
        buf = self.buf
        cls = v.__class__
        if v is None:
            buf.append(NONE)
        elif v is False:
            buf.append(FALSE)
        elif v is True:
            buf.append(TRUE)
        elif cls is float:
            self._float(v)
        elif cls is int and -_I64 <= v < _I64:
            if ts is not None and v == ts:
                buf.append(TS)
            elif ts is not None and -TSDELTA_MAX < v - ts < TSDELTA_MAX:
                buf.append(TSDELTA)
                self._varint(_zigzag(v - ts))
            else:
                buf.append(INT)
                self._varint(_zigzag(v))
        elif cls is str and (i := self.strings.get(v)) is not None:
            buf.append(REF)
            self._varint(i)
        elif cls is str and _utf8(v) is not None:
            data = v.encode()
            self.strings[v] = len(self.strings)
            buf.append(STR)
            self._varint(len(data))
            buf += data
        elif cls is tuple and depth < MAX_DEPTH:
            if v and all(lvl.__class__ is tuple and len(lvl) == 2 and _floats(lvl) for lvl in v):
                buf.append(LEVELS)
                self._varint(len(v))
                for p, s in v:
                    self._float(p)
                    self._float(s)
            else:
                buf.append(TUPLE)
                self._varint(len(v))
                for x in v:
                    self._value(x, ts, depth + 1)
        elif (c := self.kinds.get(cls)) is not None and depth < MAX_DEPTH:
            buf.append(STRUCT)
            self._varint(c)
            names = self._fields.get(cls)
            if names is None:
                names = self._fields[cls] = cls.__struct_fields__
            for name in names:
                self._value(getattr(v, name), ts, depth + 1)
        elif (members := self.enums.get(cls)) is not None and (i := members.get(v)) is not None:
            buf.append(CONST)
            self._varint(i)
        elif not retried and depth < MAX_DEPTH and cls not in self.kinds and self.register(v) >= 0:
            self._value(v, ts, depth, retried=True)
        else:
            data = self.dumps(v)
            buf.append(PICKLED)
            self._varint(len(data))
            buf += data


def _floats(pair: tuple[Any, ...]) -> bool:
    return pair[0].__class__ is float and pair[1].__class__ is float


def _utf8(s: str) -> bytes | None:
    try:
        return s.encode()
    except UnicodeEncodeError:  # a lone surrogate: pickled
        return None


def py_records(
    data: bytes,
    pos: int,
    count: int,
    sources: int,
    structs: tuple[type, ...],
    consts: tuple[Any, ...],
    loads: Callable[[bytes], Any],
) -> Iterator[tuple[int | None, int, Any]]:
    """The `count` records of `data` from `pos`, one at a time: the reference of
    `_replay.Records`. A chunk that does not read as records (a source index not below
    `sources`, bytes after the last record) raises ValueError (the caller's `CacheDamaged`)."""
    if not 0 <= pos <= len(data) or count < 0:
        raise ValueError("a chunk's records start past its end")
    if count == 0 and pos != len(data):
        raise ValueError("bytes after the chunk's last record")
    return _records(data, pos, count, sources, structs, consts, loads)


def _records(
    data: bytes,
    pos: int,
    count: int,
    sources: int,
    structs: tuple[type, ...],
    consts: tuple[Any, ...],
    loads: Callable[[bytes], Any],
) -> Iterator[tuple[int | None, int, Any]]:
    fields = [len(cls.__struct_fields__) for cls in structs]  # type: ignore[attr-defined]
    strings: list[str] = []
    end = len(data)
    prev = 0

    def byte() -> int:
        nonlocal pos
        if pos >= end:
            raise ValueError("a record runs past its chunk")
        b = data[pos]
        pos += 1
        return b

    def varint() -> int:
        u = shift = 0
        while True:
            b = byte()
            u |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
            if shift > 63:
                raise ValueError("a varint longer than 64 bits")
        if u >= 1 << 64:
            raise ValueError("a varint longer than 64 bits")
        return u

    def int64(v: int) -> int:
        if not -_I64 <= v < _I64:
            raise ValueError("an int past 64 bits")
        return v

    def size() -> int:
        n = varint()
        if n > end - pos:
            raise ValueError("a length past the chunk's end")
        return n

    def floating(tag: int) -> float:
        nonlocal pos
        if tag == F64:
            if end - pos < 8:
                raise ValueError("a record runs past its chunk")
            (x,) = _F64.unpack_from(data, pos)
            pos += 8
            return float(x)
        if DEC <= tag <= DEC + MAX_E:
            return float(_unzigzag(varint())) / _POW10[tag - DEC]
        raise ValueError(f"tag {tag} where a float belongs")

    def value(ts: int | None, depth: int) -> Any:
        nonlocal pos
        tag = byte()
        if tag == NONE:
            return None
        if tag == FALSE:
            return False
        if tag == TRUE:
            return True
        if tag == F64 or DEC <= tag <= DEC + MAX_E:
            return floating(tag)
        if tag == INT:
            return _unzigzag(varint())
        if tag == TS:
            if ts is None:
                raise ValueError("a receive time in a record without one")
            return ts
        if tag == TSDELTA:
            if ts is None:
                raise ValueError("a receive time in a record without one")
            return int64(ts + _unzigzag(varint()))
        if tag == STR:
            n = size()
            s = data[pos : pos + n].decode("utf-8")
            pos += n
            strings.append(s)
            return s
        if tag == REF:
            i = varint()
            if i >= len(strings):
                raise ValueError("a string the chunk has not named")
            return strings[i]
        if tag == LEVELS:
            n = size()
            return tuple([(floating(byte()), floating(byte())) for _ in range(n)])
        if tag == TUPLE:
            if depth >= MAX_DEPTH:
                raise ValueError("values nested too deep")
            n = size()
            return tuple([value(ts, depth + 1) for _ in range(n)])
        if tag == STRUCT:
            if depth >= MAX_DEPTH:
                raise ValueError("values nested too deep")
            c = varint()
            if c >= len(structs):
                raise ValueError("a class the entry does not list")
            return structs[c](*[value(ts, depth + 1) for _ in range(fields[c])])
        if tag == CONST:
            i = varint()
            if i >= len(consts):
                raise ValueError("a constant the entry does not list")
            return consts[i]
        if tag == PICKLED:
            n = size()
            raw = data[pos : pos + n]
            pos += n
            return loads(raw)
        raise ValueError(f"unknown tag {tag}")

    for k in range(count):
        flags = byte()
        ts: int | None
        if flags == 0:
            ts = prev = int64(prev + _unzigzag(varint()))
        elif flags == 1:
            ts = None
        else:
            raise ValueError(f"a record's flags {flags}")
        idx = varint()
        if idx >= sources:
            raise ValueError(f"a record of source {idx} (of {sources})")
        body = value(ts, 0)
        if k == count - 1 and pos != end:
            raise ValueError("bytes after the chunk's last record")
        yield (ts, idx, body)
