"""Tardis.dev CSV datasets of Deribit, replayed as Deribit wire frames.

Tardis (https://docs.tardis.dev, "Downloadable CSV files") sells historical exchange data as
daily CSV files, gzip-compressed or plain, one row per message or per book level, times in
microseconds since the epoch (UTC). This module reads five of its datasets for Deribit:

- `options_chain` (an option's ticker: top of book, marks, IVs in percent, greeks) becomes
  `ticker.{name}.100ms`, and `book.{name}.none.1.100ms` (a one-level book) when the top changed;
- `incremental_book_L2` (one book level a row; the rows of one message share their
  `local_timestamp`) becomes `book.{name}.100ms`: a snapshot, then changes chained by
  `change_id`/`prev_change_id`. Rows before any snapshot (a file that starts mid-stream, a symbol
  listed during the day) apply to an empty book, as the Tardis FAQ says: their first message is a
  change with `prev_change_id` 0, which the decoder reads as Deribit's own first message of a new
  listing (a book that starts from empty);
- `trades` (one trade a row, `side` the aggressor's) becomes `trades.{name}.100ms`, the rows of
  one message grouped;
- `quotes` (top of book) becomes `quote.{name}`, and the one-level book when it changed;
- `derivative_ticker` (a perpetual's or future's last, index and mark prices, funding) becomes
  `ticker.{name}.100ms` without best bid/ask (Tardis does not carry them there); its
  `funding_rate` as `current_funding`, and its `funding_timestamp` (the next funding event's
  time, in ms) as a field of Tardis' own, from which the decoder reports each funding event.
  A perpetual's row with no `funding_timestamp` (every real Deribit row: Tardis' Deribit mapper
  takes `funding_rate` from `current_funding` and sets no funding time) is marked
  `funding_accrues`, Tardis' own field as well: Deribit's funding accrues continuously, and the
  decoder reports what accrued each minute (`DeribitDecoder._funding_accrued`).

It synthesizes the frames, so the very same `DeribitDecoder` turns them into events (books on
integer ticks, gap detection and all): a backtest on Tardis data runs exactly the code a
recording does. The replay clock is `local_timestamp` (when Tardis received the message), as
for a recording; exchange timestamps become Deribit's milliseconds.

Tardis files carry no instrument definitions, so each symbol's definition is derived from its
Deribit name (§1.8 naming) and sent as a `public/get_instruments` answer just before the symbol's
first frame. What is approximated (there is no history of Deribit's instrument parameters here):
tick and contract sizes are today's (`SPECS`: BTC perpetual tick 0.5 and 10 USD contracts, ETH
0.05 and 1 USD, futures 2.5 / 0.25, coin options 0.0001 and 0.0005 above 0.005); a currency or a
linear (`_USDC`) product not in the table gets a fine tick (0.0001) and unit contracts; an
option's expiry and strike come from its name, checked against the row's `expiration` and
`strike_price` when the dataset has them. Combos and names that do not parse are skipped and
counted (`stats.unsupported`).

`TardisReader` has `RecordingReader`'s interface (`(receive time ns, frame)` pairs, `size`,
`bytes_read`, `bad_lines`), so the backtest kernel merges it with other sources by time. A
path may be a file or a directory of Tardis files (each one's dataset is read from its header;
all are merged in time order). Rows are sorted by `local_timestamp` in Tardis files; a row that
goes back in time is replayed at the time of the row before it (counted in `stats.reordered`).
"""

from __future__ import annotations

import csv
import heapq
import io
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import orjson
import structlog

from tradingd.engine.backtest import open_binary
from tradingd.engine.venue import DataError

from .instruments import PERPETUAL_EXPIRY_MS, VENUE, parse_expiry_code

__all__ = [
    "DATASETS",
    "FORMATS",
    "SPECS",
    "TardisReader",
    "TardisStats",
    "dataset_of_format",
    "detect_dataset",
    "inspect",
    "instrument_item",
]

DATASETS: Final = ("options_chain", "incremental_book_L2", "trades", "quotes", "derivative_ticker")
# `tardis` infers the dataset from each file's header; `tardis-<dataset>` insists on one.
FORMATS: Final = ("tardis", *(f"tardis-{d}" for d in DATASETS))

_BASE: Final = ("exchange", "symbol", "timestamp", "local_timestamp")
# The columns each dataset needs (Tardis adds columns at times; extra ones are ignored).
_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "options_chain": (
        *_BASE,
        "type",
        "strike_price",
        "expiration",
        "open_interest",
        "last_price",
        "bid_price",
        "bid_amount",
        "bid_iv",
        "ask_price",
        "ask_amount",
        "ask_iv",
        "mark_price",
        "mark_iv",
        "underlying_index",
        "underlying_price",
        "delta",
        "gamma",
        "vega",
        "theta",
        "rho",
    ),
    "incremental_book_L2": (*_BASE, "is_snapshot", "side", "price", "amount"),
    "trades": (*_BASE, "id", "side", "price", "amount"),
    "quotes": (*_BASE, "ask_amount", "ask_price", "bid_price", "bid_amount"),
    "derivative_ticker": (*_BASE, "open_interest", "last_price", "index_price", "mark_price"),
}
# Most specific first: an options_chain header also has the columns of quotes-like datasets.
_DETECT_ORDER: Final = ("options_chain", "incremental_book_L2", "trades", "derivative_ticker", "quotes")

_MS: Final = 1_000_000
_NOTE: Final = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"'
_T = TypeVar("_T")
# The top of a book: best bid, its amount, best ask, its amount.
_Top = tuple[float | None, float | None, float | None, float | None]


@attrs.frozen
class Spec:
    """Deribit's parameters for a family of instruments (today's values; see the docstring)."""

    tick: float
    contract: float
    min_amount: float
    maker: float
    taker: float
    steps: tuple[tuple[float, float], ...] = ()


# (currency, kind) -> spec; kinds: perpetual, future, option. VENUES.md §1.8 and "Fees".
SPECS: Final[dict[tuple[str, str], Spec]] = {
    ("BTC", "perpetual"): Spec(0.5, 10.0, 10.0, 0.0, 0.0005),
    ("ETH", "perpetual"): Spec(0.05, 1.0, 1.0, 0.0, 0.0005),
    ("BTC", "future"): Spec(2.5, 10.0, 10.0, 0.0, 0.0005),
    ("ETH", "future"): Spec(0.25, 1.0, 1.0, 0.0, 0.0005),
    ("BTC", "option"): Spec(0.0001, 1.0, 0.1, 0.0003, 0.0003, ((0.005, 0.0005),)),
    ("ETH", "option"): Spec(0.0001, 1.0, 1.0, 0.0003, 0.0003, ((0.005, 0.0005),)),
}
_FALLBACK: Final = Spec(0.0001, 1.0, 0.0001, 0.0, 0.0005)


@attrs.define
class TardisStats:
    """What a reader did with the rows of its files."""

    rows: int = 0
    frames: int = 0
    bad_rows: int = 0  # rows that did not parse (raise unless `skip_bad`)
    unsupported: int = 0  # rows of instruments whose names do not parse (combos...)
    unknown_side: int = 0  # trades whose aggressor Tardis does not know: Deribit always says
    reordered: int = 0  # rows earlier than the row before them: replayed at that row's time
    instruments: int = 0  # instrument definitions derived
    approximated: int = 0  # of which with the fallback spec (a currency not in SPECS)
    off_grid: int = 0  # book prices finer than the instrument's tick (the book rounds them)


def dataset_of_format(fmt: str) -> str | None:
    """`tardis-trades` -> `trades`; `tardis` -> None (inferred per file)."""
    if fmt == "tardis":
        return None
    if fmt.startswith("tardis-") and fmt[7:] in DATASETS:
        return fmt[7:]
    raise ValueError(f"not a Tardis data format: {fmt!r} (known: {', '.join(FORMATS)})")


def detect_dataset(header: list[str]) -> str | None:
    """The dataset whose columns `header` has, or None."""
    have = set(header)
    for name in _DETECT_ORDER:
        if set(_REQUIRED[name]) <= have:
            return name
    return None


def _ns(value: str) -> int:
    """A Tardis time (µs since the epoch; ns and ms also accepted, told apart by magnitude)."""
    v = int(value)
    if v >= 10**17:
        return v
    if v >= 10**14:
        return v * 1000
    if v >= 10**11:
        return v * 1_000_000
    raise ValueError(f"not a timestamp: {value!r}")


def _num(value: str) -> float | None:
    """A number column; Tardis leaves a value the exchange did not send empty."""
    if not value:
        return None
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"not a finite number: {value!r}")
    return x


def instrument_item(
    symbol: str,
    *,
    expiration_us: int | None = None,
    strike: float | None = None,
    option_type: str | None = None,
) -> tuple[dict[str, Any], bool] | None:
    """A `public/get_instruments` item for a Deribit `symbol` (§1.8 naming), and whether its
    parameters are approximated (a currency not in `SPECS`); None for a name that is not a
    perpetual, future or option (combos). An options_chain row's `expiration`, `strike_price`
    and `type` must agree with the name (ValueError otherwise)."""
    parts = symbol.split("-")
    head = parts[0]
    ccy, _, quote = head.partition("_")
    if not ccy.isalnum() or not ccy.isupper():
        return None
    linear = bool(quote)
    item: dict[str, Any] = {
        "instrument_name": symbol,
        "base_currency": ccy,
        "counter_currency": quote or "USD",
        "is_active": True,
        "instrument_type": "linear" if linear else "reversed",
    }
    if len(parts) == 2:
        # Deribit lists a perpetual as a future whose settlement period is "perpetual".
        if parts[1] == "PERPETUAL":
            kind, period, expiry = "perpetual", "perpetual", PERPETUAL_EXPIRY_MS
        else:
            kind, period = "future", "month"
            try:
                expiry = parse_expiry_code(parts[1])
            except ValueError:
                return None
        item.update(
            kind="future",
            settlement_period=period,
            expiration_timestamp=expiry,
            quote_currency=quote or "USD",
            settlement_currency=quote or ccy,
        )
    elif len(parts) == 4 and parts[3] in ("C", "P"):
        kind = "option"
        try:
            expiry = parse_expiry_code(parts[1])
            name_strike = float(parts[2].replace("d", "."))
        except ValueError:
            return None
        right = "call" if parts[3] == "C" else "put"
        if expiration_us is not None and expiration_us // 1000 != expiry:
            raise ValueError(f"{symbol}: expiration {expiration_us} does not match the name")
        if strike is not None and abs(strike - name_strike) > 1e-9 * max(1.0, name_strike):
            raise ValueError(f"{symbol}: strike_price {strike} does not match the name")
        if option_type is not None and option_type != right:
            raise ValueError(f"{symbol}: type {option_type!r} does not match the name")
        item.update(
            kind="option",
            option_type=right,
            strike=name_strike,
            settlement_period="week",
            expiration_timestamp=expiry,
            quote_currency=quote or ccy,  # coin options are quoted in the coin
            settlement_currency=quote or ccy,
        )
    else:
        return None
    spec = None if linear else SPECS.get((ccy, kind))
    approximated = spec is None
    spec = spec or _FALLBACK
    item.update(
        tick_size=spec.tick,
        contract_size=spec.contract,
        min_trade_amount=spec.min_amount,
        maker_commission=spec.maker,
        taker_commission=spec.taker,
        tick_size_steps=[{"above_price": a, "tick_size": t} for a, t in spec.steps],
        price_index=f"{ccy.lower()}_{(quote or 'usd').lower()}",
    )
    return item, approximated


class _Columns:
    """Column positions of one file, by name."""

    def __init__(self, header: list[str], dataset: str, path: Path) -> None:
        index = {name: i for i, name in enumerate(header)}
        missing = [c for c in _REQUIRED[dataset] if c not in index]
        if missing:
            raise DataError(f"{path}: not a Tardis {dataset} file (no column {', '.join(missing)})")
        self.i = index
        self.width = len(header)

    def __getitem__(self, name: str) -> int:
        return self.i[name]


class _File:
    """One CSV file being turned into frames."""

    def __init__(self, reader: TardisReader, path: Path, dataset: str | None) -> None:
        self.reader = reader
        self.path = path
        self.size = path.stat().st_size
        self.stream, self.counter = open_binary(path)
        self.text = io.TextIOWrapper(self.stream, encoding="utf-8", newline="")
        self.rows = csv.reader(self.text)
        try:
            header = next(self.rows)
        except StopIteration:
            self.close()
            raise DataError(f"{path}: empty file (expected a Tardis CSV header)") from None
        except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
            self.close()
            raise DataError(f"{path}: unreadable: {exc}") from None
        detected = detect_dataset(header)
        if dataset is None:
            if detected is None:
                self.close()
                raise DataError(f"{path}: not a Tardis CSV file of a known dataset ({', '.join(DATASETS)})")
            dataset = detected
        self.dataset = dataset
        try:
            self.cols = _Columns(header, dataset, path)
        except DataError:
            self.close()
            raise

    def close(self) -> None:
        self.text.close()


class TardisReader:
    """Tardis CSV rows of Deribit as `(receive time ns, frame)` pairs (module docstring).

    `path` is a file or a directory of files; `dataset` forces one dataset (else each file's
    header tells). A row that does not parse raises `DataError` naming the file and line,
    unless `skip_bad=True` (then it is counted in `bad_lines`). Rows of another exchange are
    refused: this is the Deribit venue.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        dataset: str | None = None,
        *,
        skip_bad: bool = False,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.path = Path(path)
        if dataset is not None and dataset not in DATASETS:
            raise ValueError(f"unknown Tardis dataset {dataset!r} (known: {', '.join(DATASETS)})")
        self.dataset = dataset
        self.skip_bad = skip_bad
        self.log = log or structlog.get_logger("tradingd.tardis").bind(venue=VENUE)
        if self.path.is_dir():
            self.files = sorted(
                p
                for p in self.path.iterdir()
                if p.is_file() and (p.name.endswith(".csv") or p.name.endswith(".csv.gz"))
            )
            if not self.files:
                raise DataError(f"{self.path}: no Tardis CSV files (*.csv, *.csv.gz)")
        elif self.path.exists():
            self.files = [self.path]
        else:
            raise DataError(f"cannot read {self.path}: no such file or directory")
        self.size = sum(p.stat().st_size for p in self.files)
        self.stats = TardisStats()
        self.lines = 0
        self._open: list[_File] = []
        self._rpc_ids = 0
        self._defined: set[str] = set()
        self._inverse_tick: dict[str, float] = {}
        self._off_grid_symbols: set[str] = set()

    @property
    def bad_lines(self) -> int:
        return self.stats.bad_rows

    @property
    def bytes_read(self) -> int:
        return sum(f.counter.count for f in self._open)

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        streams = []
        for path in self.files:
            f = _File(self, path, self.dataset)
            self._open.append(f)
            streams.append(self._frames(f))
        try:
            if len(streams) == 1:
                yield from streams[0]
            else:
                tagged = (((ts, i, frame) for ts, frame in s) for i, s in enumerate(streams))
                for ts, _, frame in heapq.merge(*tagged, key=lambda t: (t[0], t[1])):
                    yield ts, frame
        finally:
            for f in self._open:
                f.close()

    # -- rows to frames ---------------------------------------------------------------------
    def _bad(self, f: _File, lineno: int, message: str) -> None:
        self.stats.bad_rows += 1
        if not self.skip_bad:
            raise DataError(f"{f.path}:{lineno}: {message}")
        if self.stats.bad_rows <= 10:
            self.log.warning("tardis.bad_row", file=f.path.name, line=lineno, error=message)

    def _define(
        self, symbol: str, row: list[str] | None, f: _File, ts: int
    ) -> list[tuple[int, bytes]] | None:
        """The instrument frame for a symbol seen for the first time ([] when known; None when
        its name does not parse: its rows are skipped)."""
        if symbol in self._defined:
            return []
        kw: dict[str, Any] = {}
        if row is not None and f.dataset == "options_chain":
            c = f.cols
            exp = row[c["expiration"]]
            kw = {
                "expiration_us": _ns(exp) // 1000 if exp else None,
                "strike": _num(row[c["strike_price"]]),
                "option_type": row[c["type"]] or None,
            }
        got = instrument_item(symbol, **kw)
        if got is None:
            return None
        item, approximated = got
        self._defined.add(symbol)
        self._inverse_tick[symbol] = 1.0 / item["tick_size"]
        self.stats.instruments += 1
        if approximated:
            self.stats.approximated += 1
            self.log.warning("tardis.instrument_approximated", instrument=symbol, tick=item["tick_size"])
        self._rpc_ids += 1
        frame = orjson.dumps({"jsonrpc": "2.0", "id": self._rpc_ids, "result": [item]})
        return [(ts, frame)]

    def _frames(self, f: _File) -> Iterator[tuple[int, bytes]]:
        handler = {
            "options_chain": self._options_chain,
            "incremental_book_L2": self._book_l2,
            "trades": self._trades,
            "quotes": self._quotes,
            "derivative_ticker": self._derivative_ticker,
        }[f.dataset]
        try:
            yield from handler(f)
        except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{f.path}: unreadable after line {f.rows.line_num}: {exc}") from None

    def _rows(self, f: _File) -> Iterator[tuple[int, int, int, str, list[str]]]:
        """(line number, receive time ns, exchange time ns, symbol, row) of each good row."""
        c = f.cols
        i_ex, i_sym, i_ts, i_local = c["exchange"], c["symbol"], c["timestamp"], c["local_timestamp"]
        width = c.width
        last = -1
        stats = self.stats
        for row in f.rows:
            lineno = f.rows.line_num
            if not row:
                continue
            stats.rows += 1
            if len(row) != width:
                self._bad(f, lineno, f"{len(row)} columns, the header has {width}")
                continue
            exchange = row[i_ex]
            if exchange != VENUE:
                raise DataError(
                    f"{f.path}:{lineno}: exchange {exchange!r}: the {VENUE} venue reads {VENUE} files only"
                )
            try:
                local = _ns(row[i_local])
                exch = _ns(row[i_ts])
            except ValueError as exc:
                self._bad(f, lineno, str(exc))
                continue
            if local < last:
                stats.reordered += 1
                local = last
            last = local
            self.lines += 1
            yield lineno, local, exch, row[i_sym], row

    def _parsed(
        self, f: _File, parse: Callable[[str, int, list[str]], _T], *, define_with_row: bool = False
    ) -> Iterator[tuple[int, int, str, list[tuple[int, bytes]], _T]]:
        """(receive time ns, exchange time ns, symbol, the instrument frames to send before the
        row's, `parse(symbol, exchange time, row)`) of each row that parses and names an
        instrument we can define. The row is parsed before its symbol is defined: a bad first
        row of a symbol is that row's loss only, and the next good one defines the instrument."""
        for lineno, ts, exch, symbol, row in self._rows(f):
            try:
                value = parse(symbol, exch, row)
                defined = self._define(symbol, row if define_with_row else None, f, ts)
            except ValueError as exc:
                self._bad(f, lineno, str(exc))
                continue
            if defined is None:
                self.stats.unsupported += 1
                continue
            yield ts, exch, symbol, defined, value

    def _check_grid(self, symbol: str, price: float | None) -> None:
        """Count a book price off the instrument's (finest) tick: the book keeps integer ticks,
        so it would be rounded. Real Deribit prices are on the grid; a file whose are not was
        made with other parameters than `SPECS`, and the user hears of it."""
        if price is None:
            return
        x = price * self._inverse_tick.get(symbol, 1e8)
        if abs(x - round(x)) > 1e-6:
            self.stats.off_grid += 1
            if symbol not in self._off_grid_symbols:
                self._off_grid_symbols.add(symbol)
                self.log.warning(
                    "tardis.price_off_grid",
                    instrument=symbol,
                    price=price,
                    tick=1.0 / self._inverse_tick.get(symbol, 1e8),
                )

    def _emit(self, ts: int, channel: bytes, data: dict[str, Any] | list[Any]) -> tuple[int, bytes]:
        self.stats.frames += 1
        return ts, _NOTE + channel + b'","data":' + orjson.dumps(data) + b"}}"

    def _top_book(
        self,
        tops: dict[str, tuple[Any, ...]],
        ts: int,
        exch_ms: int,
        symbol: str,
        top: _Top,
    ) -> tuple[int, bytes] | None:
        """A one-level grouped book frame (`book.X.none.1.100ms`) when the top changed."""
        if tops.get(symbol) == top:
            return None
        tops[symbol] = top
        bid, bid_amt, ask, ask_amt = top
        self._check_grid(symbol, bid)
        self._check_grid(symbol, ask)
        data = {
            "timestamp": exch_ms,
            "instrument_name": symbol,
            "change_id": self.stats.frames + 1,
            "bids": [[bid, bid_amt]] if bid is not None and bid_amt else [],
            "asks": [[ask, ask_amt]] if ask is not None and ask_amt else [],
        }
        return self._emit(ts, b"book." + symbol.encode() + b".none.1.100ms", data)

    def _options_chain(self, f: _File) -> Iterator[tuple[int, bytes]]:
        c = f.cols
        cols = [
            c[n]
            for n in (
                "bid_price",
                "bid_amount",
                "ask_price",
                "ask_amount",
                "last_price",
                "mark_price",
                "underlying_price",
                "open_interest",
                "mark_iv",
                "bid_iv",
                "ask_iv",
                "delta",
                "gamma",
                "vega",
                "theta",
                "rho",
            )
        ]
        i_index = c["underlying_index"]
        tops: dict[str, tuple[Any, ...]] = {}

        def parse(symbol: str, exch: int, row: list[str]) -> tuple[list[float | None], str | None]:
            return [_num(row[i]) for i in cols], row[i_index] or None

        for ts, exch, symbol, defined, (vals, index) in self._parsed(f, parse, define_with_row=True):
            yield from defined
            bid, bid_amt, ask, ask_amt, last, mark, under, oi, mark_iv, bid_iv, ask_iv = vals[:11]
            delta, gamma, vega, theta, rho = vals[11:]
            greeks = None
            if delta is not None and gamma is not None and vega is not None and theta is not None:
                greeks = {"delta": delta, "gamma": gamma, "vega": vega, "theta": theta, "rho": rho}
            exch_ms = exch // _MS
            data = {
                "timestamp": exch_ms,
                "instrument_name": symbol,
                "best_bid_price": bid,
                "best_bid_amount": bid_amt,
                "best_ask_price": ask,
                "best_ask_amount": ask_amt,
                "last_price": last,
                "mark_price": mark,
                "underlying_price": under,
                "underlying_index": index,
                "open_interest": oi,
                # Percent, as on Deribit's wire (the decoder makes fractions of them).
                "mark_iv": mark_iv,
                "bid_iv": bid_iv,
                "ask_iv": ask_iv,
                "greeks": greeks,
            }
            yield self._emit(ts, b"ticker." + symbol.encode() + b".100ms", data)
            book = self._top_book(tops, ts, exch_ms, symbol, (bid, bid_amt, ask, ask_amt))
            if book is not None:
                yield book

    def _quotes(self, f: _File) -> Iterator[tuple[int, bytes]]:
        c = f.cols
        i_bid, i_bid_amt, i_ask, i_ask_amt = c["bid_price"], c["bid_amount"], c["ask_price"], c["ask_amount"]
        tops: dict[str, tuple[Any, ...]] = {}

        def parse(symbol: str, exch: int, row: list[str]) -> _Top:
            return _num(row[i_bid]), _num(row[i_bid_amt]), _num(row[i_ask]), _num(row[i_ask_amt])

        for ts, exch, symbol, defined, top in self._parsed(f, parse):
            yield from defined
            exch_ms = exch // _MS
            data = {
                "timestamp": exch_ms,
                "instrument_name": symbol,
                "best_bid_price": top[0],
                "best_bid_amount": top[1],
                "best_ask_price": top[2],
                "best_ask_amount": top[3],
            }
            yield self._emit(ts, b"quote." + symbol.encode(), data)
            book = self._top_book(tops, ts, exch_ms, symbol, top)
            if book is not None:
                yield book

    def _derivative_ticker(self, f: _File) -> Iterator[tuple[int, bytes]]:
        c = f.cols
        i_oi, i_last, i_index, i_mark = c["open_interest"], c["last_price"], c["index_price"], c["mark_price"]
        i_funding = c.i.get("funding_rate")
        i_funding_ts = c.i.get("funding_timestamp")

        def parse(symbol: str, exch: int, row: list[str]) -> dict[str, Any]:
            data: dict[str, Any] = {
                "timestamp": exch // _MS,
                "instrument_name": symbol,
                "last_price": _num(row[i_last]),
                "index_price": _num(row[i_index]),
                "mark_price": _num(row[i_mark]),
                "open_interest": _num(row[i_oi]),
            }
            if i_funding is not None:
                data["current_funding"] = _num(row[i_funding])
            if i_funding_ts is not None and row[i_funding_ts]:
                # Tardis' time of the next funding event, for which `funding_rate` is the
                # rate (Tardis, "derivative_ticker"): Deribit's own ticker has no such
                # field; its decoder reports a funding event when this time passes.
                data["funding_timestamp"] = _ns(row[i_funding_ts]) // 1_000_000
            elif i_funding is not None and row[i_funding] and symbol.endswith("-PERPETUAL"):
                # No funding event named (Tardis' Deribit rows never name one: its mapper
                # sets no funding time): Deribit's funding accrues continuously, which the
                # decoder reports from the rate (`DeribitDecoder._funding_accrued`).
                data["funding_accrues"] = True
            return data

        for ts, _, symbol, defined, data in self._parsed(f, parse):
            yield from defined
            yield self._emit(ts, b"ticker." + symbol.encode() + b".100ms", data)

    def _trades(self, f: _File) -> Iterator[tuple[int, bytes]]:
        c = f.cols
        i_id, i_side, i_price, i_amount = c["id"], c["side"], c["price"], c["amount"]
        group: list[dict[str, Any]] = []
        key: tuple[str, int] | None = None

        def parse(symbol: str, exch: int, row: list[str]) -> tuple[str, str, float, float]:
            return (row[i_id], row[i_side], *_price_amount(row, i_price, i_amount))

        for ts, exch, symbol, defined, (trade_id, side, price, amount) in self._parsed(f, parse):
            if side not in ("buy", "sell"):
                self.stats.unknown_side += 1
                continue
            if key is not None and key != (symbol, ts) and group:
                yield self._emit(key[1], b"trades." + key[0].encode() + b".100ms", group)
                group = []
            yield from defined
            key = (symbol, ts)
            group.append(
                {
                    "trade_id": trade_id,
                    "timestamp": exch // _MS,
                    "price": price,
                    "amount": amount,
                    "direction": side,
                    "instrument_name": symbol,
                }
            )
        if key is not None and group:
            yield self._emit(key[1], b"trades." + key[0].encode() + b".100ms", group)

    def _book_l2(self, f: _File) -> Iterator[tuple[int, bytes]]:
        """Rows of one message (same symbol, receive time and snapshot flag) become one `book`
        frame. A run of snapshot rows (re)starts the book (Tardis repeats the snapshot after the
        exchange reconnected); change ids are synthesized as a chain, so the decoder accepts
        every change and a resync is announced as Deribit's would be."""
        c = f.cols
        i_snap, i_side, i_price, i_amount = c["is_snapshot"], c["side"], c["price"], c["amount"]
        change_ids: dict[str, int] = {}
        in_snapshot: dict[str, bool] = {}
        bids: list[list[Any]] = []
        asks: list[list[Any]] = []
        key: tuple[str, int, bool] | None = None
        exch_ms = 0

        def flush() -> tuple[int, bytes]:
            assert key is not None
            symbol, ts, snap = key
            prev = change_ids.get(symbol)
            cid = (prev or 0) + 1
            change_ids[symbol] = cid
            continuing = snap and in_snapshot.get(symbol, False)
            in_snapshot[symbol] = snap
            data: dict[str, Any] = {
                "type": "snapshot" if snap and not continuing else "change",
                "timestamp": exch_ms,
                "instrument_name": symbol,
                "change_id": cid,
                "bids": bids,
                "asks": asks,
            }
            if data["type"] == "change":
                # 0 before any message of the symbol: nothing came before, the book starts empty.
                data["prev_change_id"] = prev if prev is not None else 0
            return self._emit(ts, b"book." + symbol.encode() + b".100ms", data)

        def parse(symbol: str, exch: int, row: list[str]) -> tuple[bool, str, float, float]:
            snap_s = row[i_snap]
            side = row[i_side]
            if snap_s not in ("true", "false"):
                raise ValueError(f"is_snapshot {snap_s!r}")
            if side not in ("bid", "ask"):
                raise ValueError(f"side {side!r}")
            return (snap_s == "true", side, *_price_amount(row, i_price, i_amount))

        for ts, exch, symbol, defined, (snap, side, price, amount) in self._parsed(f, parse):
            k = (symbol, ts, snap)
            if key is not None and k != key:
                yield flush()
                bids, asks = [], []
            yield from defined
            key = k
            exch_ms = exch // _MS
            self._check_grid(symbol, price)
            if snap:
                if amount > 0:
                    (bids if side == "bid" else asks).append(["new", price, amount])
            else:
                level = ["change", price, amount] if amount > 0 else ["delete", price, 0.0]
                (bids if side == "bid" else asks).append(level)
        if key is not None:
            yield flush()


def _price_amount(row: list[str], i_price: int, i_amount: int) -> tuple[float, float]:
    """A trade's or a book level's price and amount: finite, the amount not negative."""
    price = float(row[i_price])
    amount = float(row[i_amount])
    if not (math.isfinite(price) and math.isfinite(amount)) or amount < 0:
        raise ValueError(f"bad price/amount {row[i_price]!r}/{row[i_amount]!r}")
    return price, amount


def inspect(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a Tardis file (or directory) holds: datasets, rows, instruments by kind, time span,
    and what would be skipped (`tradingd tardis inspect`)."""
    reader = TardisReader(path, skip_bad=True)
    first: int | None = None
    last: int | None = None
    kinds: dict[str, int] = {}
    for ts, frame in reader:
        if first is None:
            first = ts
        last = ts
        if frame.startswith(b'{"jsonrpc":"2.0","id"'):
            item = orjson.loads(frame)["result"][0]
            kind = "perpetual" if item.get("settlement_period") == "perpetual" else item["kind"]
            kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "path": str(reader.path),
        "files": [{"name": f.path.name, "dataset": f.dataset} for f in reader._open],
        "first_ns": first,
        "last_ns": last,
        "instruments": kinds,
        "stats": attrs.asdict(reader.stats),
    }
