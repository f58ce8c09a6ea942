"""Synthetic Derive recordings: the venue-neutral `simulators.synth.SynthMarket`, encoded in Derive's
v2 wire format (VENUES.md §3) and written as a recording (DESIGN.md, "recordings").

A recording made here reads like one made against `wss://api.lyra.finance/ws` by a client that
asked for the instruments and subscribed to everything:

1. four `public/get_instruments` answers (ids 1-4: BTC options, BTC perps, ETH options, ETH perps;
   §3.2), then the `subscribe` answer (id 5: per-channel "ok" status and
   `current_subscriptions`; §3.4) for `ticker_slim.{name}.{interval}`, `orderbook.{name}.1.10`
   and `trades.{name}` of all 34 instruments (BTC-PERP, ETH-PERP and, per currency, 16 USDC
   options: 2 expiries x 4 strikes x call/put);
2. an `orderbook` snapshot and a `ticker_slim` of every instrument;
3. the live stream, on the venue's 100 ms publishing clock: `trades.*` as they print, then at
   each 100 ms tick a whole top-10 `orderbook` snapshot (next `publish_id`) of every instrument
   whose book changed, then the tickers due (perpetuals every 100 ms, `ticker_slim.X.100`;
   options every second, `ticker_slim.X.1000`, staggered).

Shapes follow the captured frames in `shared/fixtures/derive/`: responses and notifications
without `jsonrpc` (as the DV-PROBE capture and `spot/ws_subscribe_ack.json`), decimal strings for
every number but timestamps, ids and trade counts, the slim ticker's key order of the live
capture of §3.3, trade records with the field set of the production `trades.ETH-PERP` capture
(`tests/fixtures/derive/bourse/ws_trades_eth_perp_mainnet.json`: the public record, no account
fields; the direction is the aggressor's; `spot/ws_trade_eth.json`, with wallet and fee, is a
`.{tx_status}` variant's record), instrument items with the key order of
`spot/http_get_instruments_eth.json`. Option prices are USDC per unit of underlying; option
`base_asset_sub_id`s are packed as the protocol packs them (`instruments.option_sub_id`) on the
mainnet option asset addresses of §3.2.

Consistency a decoder can check: a ticker's best bid/ask are the top of the last orderbook
snapshot of its instrument; publish ids follow each other per channel; prices sit on the tick
grid and amounts on the amount step; receive times are the exchange time plus 1-3 ms, never
decreasing. The same options always give the same bytes.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import random
import uuid
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from ..common import DEFAULT_OPTIONS, parse_options, write_sample
from ..synth import InstrumentSpec, MarketUpdate, SynthMarket, TickGrid, UnderlyingSpec
from .instruments import QUOTE, option_name, option_sub_id

__all__ = ["DEFAULT_OPTIONS", "DeriveFeed", "build_market", "generate_sample", "parse_options"]


_MS = 1_000_000
_DAY_MS = 86_400_000
_CURRENCIES = ("BTC", "ETH")
_BOOK_DEPTH = 10
_INT64_MAX = 9223372036854775807  # `scheduled_deactivation` of a perpetual (the probe capture)

# Per currency: spot, realised vol, drift beta, skew, strike steps (near, far expiry), ticks and
# amount steps (= the model's lots), median sizes in lots (perp level, perp trade, option level,
# option trade), a perpetual's daily volume in coins, and the mainnet asset contracts (§3.2).
_CCY: dict[str, dict[str, Any]] = {
    "BTC": {
        "spot": 91250.0, "vol": 0.5, "beta": 1.0, "skew": -0.03, "strike_steps": (1000, 2000),
        "perp_tick": "0.1", "perp_lot": "0.001", "opt_tick": "1", "opt_lot": "0.01",
        "perp_level": 900.0, "perp_trade": 60.0, "opt_level": 150.0, "opt_trade": 10.0, "perp_day": 150.0,
        "perp_asset": "0xDBa83C0C654DB1cd914FA2710bA743e925B53086",
        "option_asset": "0xd0711b9eBE84b778483709CDe62BacFDBAE13623",
    },
    "ETH": {
        "spot": 3050.0, "vol": 0.65, "beta": 1.25, "skew": -0.02, "strike_steps": (50, 100),
        "perp_tick": "0.01", "perp_lot": "0.01", "opt_tick": "0.1", "opt_lot": "0.01",
        "perp_level": 1500.0, "perp_trade": 150.0, "opt_level": 900.0, "opt_trade": 60.0, "perp_day": 3000.0,
        "perp_asset": "0xAf65752C4643E25C02F693f9D4FE19cF23a095E3",
        "option_asset": "0x4BB4C3CDc7562f08e9910A0C7D8bB7e108861eB4",
    },
}  # fmt: skip

# The published schedule (fees.PUBLISHED): (maker, taker, base fee, cap) as the venue writes them.
_OPTION_FEES = ("0.0003", "0.0004", "0.5", "0.125")
_PERP_FEES = ("0.0001", "0.0006", "0.1", "0")


# --------------------------------------------------------------------------- options


# --------------------------------------------------------------------------- instruments


def _expiries(start_ms: int) -> tuple[dt.date, dt.date]:
    """The two option expiry dates (settling 08:00 UTC, §3.2): the first Friday at least 3 days
    after the start, and the last Friday of the next month (at least a week later)."""
    earliest = start_ms + 3 * _DAY_MS
    day = dt.datetime.fromtimestamp(earliest / 1000, dt.UTC).date()
    while day.weekday() != 4 or _settle_ms(day) < earliest:
        day += dt.timedelta(days=1)
    start_day = dt.datetime.fromtimestamp(start_ms / 1000, dt.UTC).date()
    year, month = (start_day.year + 1, 1) if start_day.month == 12 else (start_day.year, start_day.month + 1)
    last = dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)
    while last.weekday() != 4:
        last -= dt.timedelta(days=1)
    while _settle_ms(last) < _settle_ms(day) + 7 * _DAY_MS:
        last += dt.timedelta(days=7)
    return day, last


def _settle_ms(day: dt.date) -> int:
    return calendar.timegm((day.year, day.month, day.day, 8, 0, 0)) * 1000


def _lot(step: str) -> float:
    return float(Decimal(step))


def _instrument_item(
    *,
    name: str,
    kind: str,
    ccy: str,
    tick: str,
    step: str,
    activation_s: int,
    deactivation_s: int,
    fees: tuple[str, str, str, str],
    asset: str,
    sub_id: int,
    option: dict[str, Any] | None = None,
) -> dict[str, Any]:
    maker, taker, base_fee, cap = fees
    perp = (
        None
        if option is not None
        else {
            "index": f"{ccy}-USD",
            "max_rate_per_hour": "0.004",
            "min_rate_per_hour": "-0.004",
            "static_interest_rate": "0",
            "aggregate_funding": "0",
            "funding_rate": "0",
        }
    )
    return {
        "instrument_type": kind,
        "instrument_name": name,
        "scheduled_activation": activation_s,
        "scheduled_deactivation": deactivation_s,
        "is_active": True,
        "tick_size": tick,
        "minimum_amount": step,
        "maximum_amount": "10000" if option is None else "1000",
        "amount_step": step,
        "mark_price_fee_rate_cap": cap,
        "maker_fee_rate": maker,
        "taker_fee_rate": taker,
        "base_fee": base_fee,
        "base_currency": ccy,
        "quote_currency": QUOTE,
        "option_details": option,
        "perp_details": perp,
        "erc20_details": None,
        "base_asset_address": asset,
        "base_asset_sub_id": str(sub_id),
        "pro_rata_fraction": "0",
        "fifo_min_allocation": "0",
        "pro_rata_amount_step": "1",
    }


def build_market(seed: int, start_ns: int) -> tuple[SynthMarket, list[list[dict[str, Any]]]]:
    """The market of a Derive sample and its instrument definitions.

    Per currency a perpetual and 16 options (2 expiries x 4 strikes around spot x call/put).
    Returns the market (instruments in the order BTC-PERP, BTC options, ETH-PERP, ETH options)
    and the four `get_instruments` results (BTC options, BTC perps, ETH options, ETH perps) as
    Derive sends them.
    """
    start_ms = start_ns // _MS
    near, far = _expiries(start_ms)
    underlyings: list[UnderlyingSpec] = []
    specs: list[InstrumentSpec] = []
    results: list[list[dict[str, Any]]] = []
    for ccy in _CURRENCIES:
        c = _CCY[ccy]
        underlyings.append(UnderlyingSpec(ccy, c["spot"], c["vol"], beta=c["beta"], skew=c["skew"]))
        perp_name = f"{ccy}-PERP"
        specs.append(
            InstrumentSpec(
                name=perp_name,
                underlying=ccy,
                kind="perpetual",
                grid=TickGrid(float(c["perp_tick"])),
                lot=_lot(c["perp_lot"]),
                levels=_BOOK_DEPTH,
                level_lots=c["perp_level"],
                trade_lots=c["perp_trade"],
                trades_per_s=0.5,
                requote_ms=300,
                density=0.6,
            )
        )
        options: list[dict[str, Any]] = []
        for expiry, step, listed_days in ((near, c["strike_steps"][0], 14), (far, c["strike_steps"][1], 63)):
            expiry_s = _settle_ms(expiry) // 1000
            k0 = math.floor(c["spot"] / step)
            for strike in ((k0 - 1) * step, k0 * step, (k0 + 1) * step, (k0 + 2) * step):
                for call in (True, False):
                    name = option_name(ccy, expiry, strike, call=call)
                    specs.append(
                        InstrumentSpec(
                            name=name,
                            underlying=ccy,
                            kind="option",
                            grid=TickGrid(float(c["opt_tick"])),
                            lot=_lot(c["opt_lot"]),
                            strike=float(strike),
                            expiry_ns=expiry_s * 1_000_000_000,
                            call=call,
                            levels=5,
                            level_lots=c["opt_level"],
                            trade_lots=c["opt_trade"],
                            trades_per_s=0.01,
                            requote_ms=2000,
                            half_spread=0.025,
                            density=0.6,
                        )
                    )
                    details = {
                        "index": f"{ccy}-USD",
                        "expiry": expiry_s,
                        "strike": str(strike),
                        "option_type": "C" if call else "P",
                        "settlement_price": None,
                    }
                    options.append(
                        _instrument_item(
                            name=name,
                            kind="option",
                            ccy=ccy,
                            tick=c["opt_tick"],
                            step=c["opt_lot"],
                            activation_s=min(expiry_s - listed_days * 86_400, start_ms // 1000 - 86_400),
                            deactivation_s=expiry_s,
                            fees=_OPTION_FEES,
                            asset=c["option_asset"],
                            sub_id=option_sub_id(expiry_s, strike, call=call),
                            option=details,
                        )
                    )
        results.append(options)
        perp = _instrument_item(
            name=perp_name,
            kind="perp",
            ccy=ccy,
            tick=c["perp_tick"],
            step=c["perp_lot"],
            activation_s=1_701_000_000,
            deactivation_s=_INT64_MAX,
            fees=_PERP_FEES,
            asset=c["perp_asset"],
            sub_id=0,
        )
        results.append([perp])
    market = SynthMarket(seed=seed, start_ns=start_ns, underlyings=underlyings, instruments=specs)
    return market, results


# --------------------------------------------------------------------------- encoding


def _fixed(units: int, places: int) -> str:
    """`units` x 10**-places as Derive writes decimals: exact, no exponent, no trailing zeros."""
    if places == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**places)
    text = f"{frac:0{places}d}".rstrip("0")
    return f"{sign}{whole}.{text}" if text else f"{sign}{whole}"


def _num(x: float, places: int) -> str:
    """A float as a decimal string rounded to `places` (trailing zeros dropped, no "-0")."""
    return _fixed(round(x * 10**places), places)


def _places(step: str) -> int:
    exponent = Decimal(step).normalize().as_tuple().exponent
    return max(0, -int(exponent))


_TICKS = 10  # steps per second: the venue's 100 ms publishing clock is the model's step


class _Inst:
    """What the encoder keeps per instrument: channel prefixes, number formats, the publish id,
    the ticker cadence, and the state the slim ticker's `stats` report."""

    __slots__ = (
        "book_prefix",
        "contracts",
        "high",
        "low",
        "n",
        "name",
        "oi",
        "option",
        "phase",
        "premium",
        "price_places",
        "publish_id",
        "ref",
        "size_places",
        "spec",
        "ticker_prefix",
        "trades_prefix",
        "underlying",
        "volume",
    )

    def __init__(self, spec: InstrumentSpec, price_places: int, size_places: int) -> None:
        self.spec = spec
        self.name = name = spec.name
        self.option = spec.kind == "option"
        interval = 1000 if self.option else 100
        self.ticker_prefix = _prefix(f"ticker_slim.{name}.{interval}")
        self.book_prefix = _prefix(f"orderbook.{name}.1.{_BOOK_DEPTH}")
        self.trades_prefix = _prefix(f"trades.{name}")
        self.price_places = price_places
        self.size_places = size_places
        self.underlying = 0
        self.publish_id = 0
        self.phase = 0  # options: which of the 10 ticks of a second carries their ticker
        self.contracts = 0  # lots traded (24 h stats)
        self.volume = 0.0  # notional USDC
        self.premium = 0.0  # premium USDC (options)
        self.n = 0
        self.oi = 0  # lots
        self.high: float | None = None
        self.low: float | None = None
        self.ref = 0.0  # the price the percent change is measured from


def _prefix(channel: str) -> bytes:
    # orjson writes keys in insertion order without spaces: prefix + dumps(data) + b"}}" is
    # byte for byte orjson.dumps of the whole notification, without re-encoding the data.
    return b'{"method":"subscription","params":{"channel":"' + channel.encode() + b'","data":'


_SUFFIX = b"}}"


class DeriveFeed:
    """Derive's wire frames for a `SynthMarket` built by `build_market`, one step at a time.

    `opening()` gives the frames a client receives on connecting (instruments, subscription,
    snapshots and tickers); each `step()` advances the market by one 100 ms step and gives that
    step's frames. Frames come as (receive time in ns, frame bytes), in receive-time order.
    """

    def __init__(
        self, market: SynthMarket, instrument_results: list[list[dict[str, Any]]], *, seed: int
    ) -> None:
        if market.step_ns != 100 * _MS:
            raise ValueError(
                "the Derive feed publishes on a 100 ms clock: build the market with step_ns=100 ms"
            )
        self.market = market
        self.results = instrument_results
        # The feed has its own random stream (latencies, ids), so the market is the same
        # whatever the encoding draws.
        self._rng = random.Random(seed * 7919 + 271828)
        self._last_recv = market.start_ns
        self._steps = 0
        items = {item["instrument_name"]: item for result in instrument_results for item in result}
        self._insts: list[_Inst] = []
        rng = self._rng
        for i, spec in enumerate(market.instruments):
            item = items[spec.name]
            st = _Inst(spec, _places(item["tick_size"]), _places(item["amount_step"]))
            st.underlying = market.underlying_of(i)
            st.publish_id = rng.randrange(1_000, 900_000)
            st.phase = i % _TICKS
            fair = market.fair_price(i)
            st.ref = fair * (1.0 + rng.uniform(-0.03, 0.03))
            if st.option:
                st.oi = round(rng.uniform(5.0, 400.0) / spec.lot)
            else:
                # A perpetual carries a busy day's statistics from the start.
                day = _CCY[_CURRENCIES[st.underlying]]["perp_day"]
                st.oi = round(day * rng.uniform(0.8, 2.0) / spec.lot)
                st.contracts = round(day * rng.uniform(0.5, 1.5) / spec.lot)
                st.volume = st.contracts * spec.lot * fair
                st.n = rng.randrange(1_500, 4_000)
                st.high = fair * (1.0 + rng.uniform(0.004, 0.03))
                st.low = fair * (1.0 - rng.uniform(0.004, 0.03))
            self._insts.append(st)

    @classmethod
    def create(cls, *, seed: int, start_ns: int) -> DeriveFeed:
        market, results = build_market(seed, start_ns)
        return cls(market, results, seed=seed)

    # ------------------------------------------------------------------ frames

    def _recv(self, exch_ns: int) -> int:
        """The receive time of a frame sent at `exch_ns`: 1-3 ms later on a 100 ns grid, never
        before the previous line."""
        recv = exch_ns + _MS + int(self._rng.random() * 20_001) * 100
        if recv < self._last_recv:
            recv = self._last_recv
        self._last_recv = recv
        return recv

    def channels(self) -> list[str]:
        """The subscribed channels, in subscription order."""
        out: list[str] = []
        for st in self._insts:
            interval = 1000 if st.option else 100
            out += [
                f"ticker_slim.{st.name}.{interval}",
                f"orderbook.{st.name}.1.{_BOOK_DEPTH}",
                f"trades.{st.name}",
            ]
        return out

    def opening(self) -> list[tuple[int, bytes]]:
        """The instruments answers, the subscribe answer, and a snapshot and a ticker of every
        instrument."""
        start = self.market.start_ns
        out: list[tuple[int, bytes]] = []
        for rpc_id, result in enumerate(self.results, start=1):
            recv = start + (rpc_id - 1) * 200_000
            out.append((recv, orjson.dumps({"id": rpc_id, "result": result})))
        channels = self.channels()
        recv = start + 800_000
        answer = {"current_subscriptions": channels, "status": dict.fromkeys(channels, "ok")}
        out.append((recv, orjson.dumps({"id": 5, "result": answer})))
        self._last_recv = recv
        for i in range(len(self._insts)):
            out.append((self._recv(start), self._book_frame(start, i)))
        for i in range(len(self._insts)):
            out.append((self._recv(start), self._ticker_frame(start, i)))
        return out

    def step(self) -> list[tuple[int, bytes]]:
        """Advance the market one 100 ms step; that step's frames in receive-time order."""
        market = self.market
        updates = market.step()
        now = market.now_ns
        self._steps += 1
        out: list[tuple[int, bytes]] = []
        dirty: set[int] = set()
        for u in updates:  # time-ordered; the books publish at the tick, after every trade of it
            dirty.add(u.instrument)
            if u.trades:
                out.append((self._recv(u.ts_ns), self._trades_frame(u)))
        for i in sorted(dirty):
            out.append((self._recv(now), self._book_frame(now, i)))
        tick = self._steps % _TICKS
        for i, st in enumerate(self._insts):
            if not st.option or st.phase == tick:
                out.append((self._recv(now), self._ticker_frame(now, i)))
        return out

    def frames(self, hours: float) -> Iterator[tuple[int, bytes]]:
        """All frames of a sample `hours` long: the opening, then the stream."""
        yield from self.opening()
        end = self.market.start_ns + round(hours * 3600.0 * 1e9)
        while self.market.now_ns < end:
            yield from self.step()

    # -------------------------------------------------------------- encoders

    def _book_frame(self, ts_ns: int, i: int) -> bytes:
        st = self._insts[i]
        st.publish_id += 1
        bids, asks = self.market.levels(i)
        pp, sp = st.price_places, st.size_places
        lot_units, tick_units = self._units(st)
        data = {
            "timestamp": ts_ns // _MS,
            "instrument_name": st.name,
            "publish_id": st.publish_id,
            "bids": [[_fixed(t * tick_units, pp), _fixed(n * lot_units, sp)] for t, n in bids[:_BOOK_DEPTH]],
            "asks": [[_fixed(t * tick_units, pp), _fixed(n * lot_units, sp)] for t, n in asks[:_BOOK_DEPTH]],
        }
        return st.book_prefix + orjson.dumps(data) + _SUFFIX

    def _units(self, st: _Inst) -> tuple[int, int]:
        """(units of 10**-size_places per lot, units of 10**-price_places per model tick)."""
        spec = st.spec
        return round(spec.lot * 10**st.size_places), round(spec.grid.quantum * 10**st.price_places)

    def _trades_frame(self, u: MarketUpdate) -> bytes:
        i = u.instrument
        st = self._insts[i]
        market = self.market
        spec = st.spec
        rng = self._rng
        index = market.index(st.underlying)
        mark = market.fair_price(i)
        lot_units, tick_units = self._units(st)
        data: list[dict[str, Any]] = []
        for tr in u.trades:
            price = spec.grid.price(tr.ticks)
            amount = spec.size(tr.lots)
            notional = amount * index
            if st.option:
                st.premium += price * amount
            # The public record, as production sends it on `trades.{instrument}`
            # (bourse/ws_trades_eth_perp_mainnet.json): no account fields; the aggressor's side.
            data.append(
                {
                    "trade_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "instrument_name": st.name,
                    "timestamp": u.ts_ns // _MS,
                    "trade_price": _fixed(tr.ticks * tick_units, st.price_places),
                    "trade_amount": _fixed(tr.lots * lot_units, st.size_places),
                    "mark_price": _num(mark, 4),
                    "index_price": _num(index, 4),
                    "direction": tr.side.value,
                    "quote_id": None,
                    "rfq_id": None,
                }
            )
            st.contracts += tr.lots
            st.volume += notional
            st.n += 1
            st.high = price if st.high is None else max(st.high, price)
            st.low = price if st.low is None else min(st.low, price)
            # Some trades open positions, some close them.
            st.oi = max(0, st.oi + (tr.lots if rng.random() < 0.55 else -tr.lots))
        return st.trades_prefix + orjson.dumps(data) + _SUFFIX

    def _ticker_frame(self, ts_ns: int, i: int) -> bytes:
        st = self._insts[i]
        market = self.market
        spec = st.spec
        grid = spec.grid
        index = market.index(st.underlying)
        bb, bbl, ba, bal = market.top(i)
        lot_units, tick_units = self._units(st)
        pp, sp = st.price_places, st.size_places
        ms = ts_ns // _MS
        funding: str | None = None
        pricing: dict[str, str] | None = None
        if st.option:
            oq = market.option_quote(i)
            g = oq.greeks
            mark = oq.price
            bid = None if bb is None else grid.price(bb)
            ask = None if ba is None else grid.price(ba)
            pricing = {
                "d": _num(g.delta, 5),
                "t": _num(g.theta, 5),
                "g": _num(g.gamma, 8),
                "v": _num(g.vega, 5),
                "i": _num(oq.vol, 5),
                "r": _num(g.rho or 0.0, 5),
                "f": _num(index, 2),
                "m": _num(mark, pp),
                "df": "1",
                "bi": "0" if bid is None else _num(market.implied_vol(i, bid, guess=oq.vol), 5),
                "ai": "0" if ask is None else _num(market.implied_vol(i, ask, guess=oq.vol), 5),
            }
            band = max(0.08 * mark, 0.01 * index)
            lo, hi = max(grid.quantum, mark - band), mark + band
            change = mark / st.ref - 1.0 if st.n else 0.0  # premium change: none before a trade
        else:
            mark = market.fair_price(i)
            # Hourly funding follows the premium over the index (Derive funds hourly, §3.3 `f`).
            funding = _num(market.basis(st.underlying) / 8.0, 9)
            lo, hi = mark * 0.98, mark * 1.02
            change = mark / st.ref - 1.0
        stats = {
            "c": _fixed(st.contracts * lot_units, sp),
            "v": _num(st.volume, 3),
            "pr": _num(st.premium, 3),
            "n": st.n,
            "oi": _fixed(st.oi * lot_units, sp),
            "h": "0" if st.high is None else _num(st.high, pp),
            "l": "0" if st.low is None else _num(st.low, pp),
            "p": _num(change, 3),
        }
        data = {
            "timestamp": ms,
            "instrument_ticker": {
                "t": ms,
                "A": "0" if ba is None else _fixed(bal * lot_units, sp),
                "a": "0" if ba is None else _fixed(ba * tick_units, pp),
                "B": "0" if bb is None else _fixed(bbl * lot_units, sp),
                "b": "0" if bb is None else _fixed(bb * tick_units, pp),
                "f": funding,
                "option_pricing": pricing,
                "I": _num(index, 2),
                "M": _num(mark, pp),
                "stats": stats,
                "minp": _num(grid.price(grid.floor(lo / grid.quantum)) or grid.quantum, pp),
                "maxp": _num(grid.price(grid.ceil(hi / grid.quantum)), pp),
            },
        }
        return st.ticker_prefix + orjson.dumps(data) + _SUFFIX


def generate_sample(
    path: Path, options: Mapping[str, Any], progress: Callable[[float, float], None] | None = None
) -> int:
    """Write a synthetic Derive recording to `path` and return its number of frames
    (`simulators.common.write_sample`). `options` (all optional): `seed` (int, default 7),
    `hours` (default 2.0, at most 72), `start` (ISO-8601 UTC, default 2026-11-24T00:00:00Z).
    Unknown keys raise ValueError. `progress(done, total)`: seconds of market time written."""
    return write_sample(path, options, DeriveFeed.create, progress)
