"""Bitcoin price markets in the synthetic Polymarket recording (`generate = {crypto = "deribit"}`),
and a market of them mispriced from the start (`mispriced`).

Witnesses: real Gamma text (quoted from the public sources of the research notes, §2), the
Deribit sample of the same seed (its index, and its option tickers' IVs priced here with a
Black-Scholes of the test's own), New York's time zone (zoneinfo), the crypto fee."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.recorded_lines import read
from tradingd.connectors.polymarket.codec import PolymarketDecoder
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.store import RecordingReader
from tradingd.simulators.deribit.generator import build_market, expiries
from tradingd.simulators.deribit.generator import generate_sample as deribit_sample
from tradingd.simulators.polymarket.crypto import ATM_LEG, noon_et_ms
from tradingd.simulators.polymarket.generator import MARKETS, PolymarketFeed, generate_sample
from tradingd.simulators.polymarket.simulator import PolymarketSimulator

START = "2026-11-24T00:00:00Z"
START_NS = 1_795_478_400 * 1_000_000_000
MS = 1_000_000
YEAR_NS = 365 * 86_400 * 10**9
NEAR_NS, FAR_NS = (e * MS for e in expiries(START_NS // MS))
RESOLVES = "2026-11-27T17:00:00Z"  # noon in New York (EST) on the near expiry's Friday
RESOLVES_NS = 1_795_798_800 * 10**9
STRIKES = 10
HOURS = 0.25

# Verbatim from real "Bitcoin above ___" markets (research notes §2; e.g. the Gamma events answer
# quoted in find_string id 13061980551 and the market page quoted in id 52361597587).
REAL_ABOVE_DESCRIPTION = (
    'This market will resolve to "Yes" if the Binance 1 minute candle for BTC/USDT 12:00 in the ET timezone '
    '(noon) on the date specified in the title has a final "Close" price higher than the price specified in '
    'the title. Otherwise, this market will resolve to "No".\n\nThe resolution source for this market is '
    'Binance, specifically the BTC/USDT "Close" prices currently available at '
    'https://www.binance.com/en/trade/BTC_USDT with "1m" and "Candles" selected on the top bar.\n\nPlease '
    "note that this market is about the price according to Binance BTC/USDT, not according to other "
    "exchanges or trading pairs.\n\nPrice precision is determined by the number of decimal places in the "
    "source."
)
ABOVE = re.compile(r"Will the price of Bitcoin be above \$(\d{2,3},000) on November 27\?")
BETWEEN = re.compile(
    r"Will the price of Bitcoin be between \$(\d{2,3},000) and \$(\d{2,3},000) on November 27\?"
)
LESS = re.compile(r"Will the price of Bitcoin be less than \$(\d{2,3},000) on November 27\?")
GREATER = re.compile(r"Will the price of Bitcoin be greater than \$(\d{2,3},000) on November 27\?")


def fee(p: float) -> float:
    """Polymarket's crypto taker fee per share at price p: 0.07 p (1 - p)."""
    return 0.07 * p * (1 - p)


@dataclass
class Run:
    """A crypto sample stepped by hand: its frames and, per step, what the model said."""

    frames: list[tuple[int, bytes]] = field(default_factory=list)
    # per step: (now ms, BTC market time ns, BTC spot, [model p per leg], [quoted p per leg],
    # [(best bid, best ask) per leg in quanta])
    steps: list[tuple[int, int, float, list[float], list[float], list[tuple[int, int]]]] = field(
        default_factory=list
    )
    legs: list[Any] = field(default_factory=list)


@pytest.fixture(scope="module")
def run() -> Run:
    feed = PolymarketFeed.create(seed=7, start_ns=START_NS, crypto="deribit", strikes=STRIKES)
    out = Run(legs=list(feed.price_legs))
    out.frames.extend(feed.opening(HOURS))
    assert feed.btc is not None
    end = START_NS // MS + int(HOURS * 3_600_000)
    while feed.now_ms < end:
        frames = feed.step()
        out.frames.extend(frames)
        out.steps.append(
            (
                feed.now_ms,
                feed.btc.now_ns,
                feed.btc.spot(),
                [m.model_p for m in feed.price_legs],
                [m.p for m in feed.price_legs],
                [m.best() for m in feed.price_legs],
            )
        )
    return out


@pytest.fixture(scope="module")
def deribit(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The option and perpetual tickers of the Deribit sample of the same seed and strikes."""
    path = tmp_path_factory.mktemp("crypto") / "deribit.rec.zst"
    deribit_sample(path, {"hours": 0.05, "start": START, "strikes": STRIKES})
    out = []
    for line in read(path):
        msg = line.msg
        if (
            isinstance(msg, dict)
            and msg.get("method") == "subscription"
            and msg["params"]["channel"].startswith("ticker.BTC-")
        ):
            out.append(msg["params"]["data"])
    return out


def gamma(run: Run) -> list[dict[str, Any]]:
    markets: list[dict[str, Any]] = orjson.loads(run.frames[0][1])
    return markets


# ------------------------------------------------------------------------------- the text


def test_the_markets_read_as_real_bitcoin_price_markets(run: Run) -> None:
    markets = gamma(run)
    assert len(markets) == len(MARKETS) + 15
    legacy = {m["slug"]: m for m in markets[: len(MARKETS)]}
    crypto = markets[len(MARKETS) :]
    assert [m["slug"] for m in markets[: len(MARKETS)]] == [s.slug for s in MARKETS]
    above = [m for m in crypto if ABOVE.fullmatch(m["question"])]
    ranged = [m for m in crypto if m not in above]
    assert len(above) == 7 and len(ranged) == 8
    strikes = [int(ABOVE.fullmatch(m["question"])[1].replace(",", "")) for m in above]  # type: ignore[index]
    assert strikes == list(range(86_000, 98_001, 2000))  # 2,000 apart around the 91,250 start
    for i, m in enumerate(above):
        k = strikes[i]
        assert m["slug"] == f"bitcoin-above-{k // 1000}k-on-november-27"
        assert m["description"] == REAL_ABOVE_DESCRIPTION
        assert m["groupItemTitle"] == f"{k:,}" and m["groupItemThreshold"] == str(i)
        assert m["negRisk"] is False
        event = m["events"][0]
        assert (event["slug"], event["title"]) == (
            "bitcoin-above-on-november-27-2026",
            "Bitcoin above ___ on November 27?",
        )
        assert event["endDate"] == RESOLVES
    assert LESS.fullmatch(ranged[0]["question"])[1] == "86,000"  # type: ignore[index]
    assert GREATER.fullmatch(ranged[-1]["question"])[1] == "98,000"  # type: ignore[index]
    bounds = [BETWEEN.fullmatch(m["question"]) for m in ranged[1:-1]]
    assert [(b[1], b[2]) for b in bounds if b] == [
        (f"{k:,}", f"{k + 2000:,}") for k in range(86_000, 96_001, 2000)
    ]
    assert [m["groupItemTitle"] for m in ranged] == ["<86,000"] + [
        f"{k:,}-{k + 2000:,}" for k in range(86_000, 96_001, 2000)
    ] + [">98,000"]
    assert all(m["negRisk"] for m in ranged)
    assert len({m["negRiskMarketID"] for m in ranged}) == 1
    assert ranged[0]["negRiskMarketID"] != legacy["ballon-dor-2026-kylian-mbappe"]["negRiskMarketID"]
    assert {m["events"][0]["slug"] for m in ranged} == {"bitcoin-price-on-november-27-2026"}
    assert {m["events"][0]["title"] for m in ranged} == {"Bitcoin price on November 27?"}
    assert ranged[-1]["description"] == REAL_ABOVE_DESCRIPTION  # "greater than" reads as "above"
    btc = legacy["btc-above-120k-on-december-31"]
    dump = {b["asset_id"] for b in orjson.loads(run.frames[1][1])}
    for m in crypto:
        assert m["endDate"] == RESOLVES and m["endDateIso"] == "2026-11-27"
        # JSON in strings, as Gamma sends them.
        assert m["outcomes"] == '["Yes", "No"]'
        tokens = orjson.loads(m["clobTokenIds"])
        assert len(tokens) == 2 and set(tokens) <= dump
        yes, no = orjson.loads(m["outcomePrices"])
        assert Decimal(yes) + Decimal(no) == 1
        # The crypto fee schedule of the sample's other Bitcoin market.
        assert (m["feesEnabled"], m["feeType"], m["feeSchedule"]) == (True, "crypto_fees", btc["feeSchedule"])
        assert m["orderPriceMinTickSize"] == 0.01 and m["orderMinSize"] == 5
        assert m["resolutionSource"] == "" and m["events"][0]["resolutionSource"] == ""


def test_noon_in_new_york_is_the_real_end_dates() -> None:
    # endDate / closing time of real markets (research notes §2).
    for day, real in (
        (dt.date(2025, 11, 8), "2025-11-08T17:00:00Z"),  # "Bitcoin above ___ on November 8?"
        (dt.date(2025, 11, 10), "2025-11-10T17:00:00Z"),
        (dt.date(2026, 3, 3), "2026-03-03T17:00:00Z"),  # a "between" leg, market 1428025
        (dt.date(2026, 4, 13), "2026-04-13T16:00:00Z"),  # "closes_at: 2026-04-13T12:00:00-04:00"
    ):
        got = dt.datetime.fromtimestamp(noon_et_ms(day) / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert got == real
    assert noon_et_ms(dt.date(2026, 11, 27)) == RESOLVES_NS // MS
    with pytest.raises(ValueError, match="before 1987"):
        noon_et_ms(dt.date(1986, 7, 4))


@given(st.dates(dt.date(1987, 1, 1), dt.date(2060, 12, 31)))
def test_noon_in_new_york_agrees_with_the_time_zone_database(day: dt.date) -> None:
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        ny = zoneinfo.ZoneInfo("America/New_York")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time zone database here")
    noon = dt.datetime(day.year, day.month, day.day, 12, tzinfo=ny)
    assert noon_et_ms(day) == int(noon.timestamp()) * 1000


# ------------------------------------------------------------------------------- the model


def test_the_btc_path_is_the_deribit_samples(run: Run, deribit: list[dict[str, Any]]) -> None:
    """Every Deribit BTC ticker's index equals the spot the Polymarket generator priced with
    at that market time (a ticker at t shows the market after the 100 ms step ending at or
    after t)."""
    step = 100 * MS
    spots = {btc_ns: spot for _, btc_ns, spot, *_ in run.steps}
    matched = 0
    for data in deribit:
        at = -(-data["timestamp"] * MS // step) * step
        if at in spots:
            assert data["index_price"] == round(spots[at], 2)
            matched += 1
    assert matched > 300


def test_the_fair_probability_is_the_deribit_surfaces(run: Run, deribit: list[dict[str, Any]]) -> None:
    """Each leg's probability before its mispricing, against one computed here from the Deribit
    sample's tickers alone: per expiry the ATM vol read off every option's mark_iv through the
    smile's shape (skew and curvature in ln(K/S)/sqrt(t), the BTC underlying's), total variance
    interpolated linearly in time to noon ET on the 27th at fixed ln(K/S), and the digital as
    -dC/dK by a finite difference of Black-Scholes calls. Tolerance 0.002: the ATM vols move
    between a ticker and the check (seconds: under 0.001 of vol, 0.0004 of probability). Priced
    at the near expiry instead (9 hours early) the legs would be off by about 0.01."""
    market, _ = build_market(7, START_NS, STRIKES)
    skew, curvature = market.underlyings[0].skew, market.underlyings[0].curvature
    options = [d for d in deribit if not d["instrument_name"].endswith("PERPETUAL")]

    def vol(atm: float, k: float, t: float) -> float:
        m = k / math.sqrt(t)
        return min(3.0, max(0.05, atm + skew * m + curvature * m * m))

    def prob_above(strike: float, s: float, atms: dict[int, float], now: int) -> float:
        t_near, t_far = (NEAR_NS - now) / YEAR_NS, (FAR_NS - now) / YEAR_NS
        t = (RESOLVES_NS - now) / YEAR_NS
        lam = (t - t_near) / (t_far - t_near)

        def call(k_: float) -> float:
            k = math.log(k_ / s)
            w = (1 - lam) * vol(atms[NEAR_NS], k, t_near) ** 2 * t_near + lam * vol(
                atms[FAR_NS], k, t_far
            ) ** 2 * t_far
            sw = math.sqrt(w)
            d1 = -k / sw + sw / 2
            return s * ncdf(d1) - k_ * ncdf(d1 - sw)

        return -(call(strike + 1.0) - call(strike - 1.0)) / 2.0

    legs = run.legs
    checked = 0
    early_gap = 0.0
    for now_ms, btc_ns, spot, model, _, _ in run.steps[40:720:40]:  # every 10 s, 3 minutes
        latest: dict[str, dict[str, Any]] = {}
        for d in options:
            if d["timestamp"] * MS <= btc_ns:
                latest[d["instrument_name"]] = d
        atms: dict[int, list[float]] = defaultdict(list)
        for name, d in latest.items():
            _, code, strike, _ = name.split("-")
            expiry = NEAR_NS if code == "27NOV26" else FAR_NS
            t = (expiry - d["timestamp"] * MS) / YEAR_NS
            m = math.log(int(strike) / d["underlying_price"]) / math.sqrt(t)
            atms[expiry].append(d["mark_iv"] / 100 - skew * m - curvature * m * m)
        assert len(atms[NEAR_NS]) >= 15 and len(atms[FAR_NS]) >= 15  # calls and puts of 10 strikes
        atm = {e: sorted(v)[len(v) // 2] for e, v in atms.items()}
        above = {k: prob_above(k, spot, atm, btc_ns) for k in range(86_000, 98_001, 2000)}
        for leg, p in zip(legs, model, strict=True):
            price = leg.spec.price
            if price.condition == "above":
                want = above[price.low]
            elif price.condition == "below":
                want = 1 - above[price.high]
            else:
                want = above[price.low] - above[price.high]
            assert p == pytest.approx(want, abs=0.002), leg.spec.question
            checked += 1
        # Resolving at the near expiry (08:00Z) would be another price.
        t = (NEAR_NS - btc_ns) / YEAR_NS
        k = math.log(92_000 / spot)
        w = vol(atm[NEAR_NS], k, t) ** 2 * t
        early = ncdf(-k / math.sqrt(w) - math.sqrt(w) / 2)
        early_gap = max(early_gap, abs(early - above[92_000]))
        del now_ms
    assert checked == 17 * 15
    assert early_gap > 0.005


def ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


# ------------------------------------------------------------------------------- the prices


def test_ladders_stay_coherent(run: Run) -> None:
    above = [i for i, m in enumerate(run.legs) if m.spec.group is None]
    ranged = [i for i, m in enumerate(run.legs) if m.spec.group is not None]
    assert len(above) == 7 and len(ranged) == 8
    for _, _, _, model, quoted, _ in run.steps:
        # The model's "above" probabilities fall with the strike; its range legs sum to 1 (they
        # are differences of the same probabilities), and so do the quoted ones (normalised).
        assert all(model[a] > model[b] for a, b in itertools.pairwise(above))
        assert sum(model[i] for i in ranged) == pytest.approx(1.0, abs=1e-9)
        assert sum(quoted[i] for i in ranged) == pytest.approx(1.0, abs=1e-9)
        assert all(0.0 < q < 1.0 for q in quoted)
    # The books' mids of the range ladder sum near 1 as well.
    _, _, _, _, _, books = run.steps[-1]
    mids = sum((books[i][0] + books[i][1]) / 2 / 10_000 for i in ranged)
    assert 0.9 < mids < 1.1


def test_gaps_wider_than_the_fee_open_now_and_then_and_close(run: Run) -> None:
    """The quoted probability strays from the model's by more than the taker fee plus half a
    tick now and then, and comes back: episodes on every ladder, each over within minutes. And
    the books show it: at times a taker could buy below (or sell above) the model's probability
    by more than the fee."""
    legs = len(run.legs)
    open_since: list[int | None] = [None] * legs
    episodes: list[int] = []  # lengths, ms
    in_gap = edges = 0
    for now_ms, _, _, model, quoted, books in run.steps:
        for i in range(legs):
            q, p = model[i], quoted[i]
            wide = abs(p - q) > fee(q) + 0.005
            in_gap += wide
            if wide and open_since[i] is None:
                open_since[i] = now_ms
            elif not wide and open_since[i] is not None:
                episodes.append(now_ms - open_since[i])  # type: ignore[operator]
                open_since[i] = None
            bid, ask = books[i][0] / 10_000, books[i][1] / 10_000
            if (0 < ask < 1 and q - ask > fee(ask)) or (0 < bid < 1 and bid - q > fee(bid)):
                edges += 1
    total = legs * len(run.steps)
    assert 0.01 < in_gap / total < 0.25
    assert len(episodes) >= 10
    assert max(episodes) < 10 * 60_000  # closed within 10 minutes
    assert sum(x is not None for x in open_since) <= legs // 3  # most are closed at the end
    assert 0.002 < edges / total < 0.2
    # And mostly the quotes sit on the model: half a point of probability on average.
    mean_gap = (
        sum(abs(p - q) for *_, model, quoted, _ in run.steps for p, q in zip(quoted, model, strict=True))
        / total
    )
    assert mean_gap < 0.01


def test_the_recording_replays_with_prices_on_the_tick_grid(run: Run) -> None:
    dec = PolymarketDecoder(InstrumentRegistry())
    ticks: dict[str, Decimal] = {}
    for m in gamma(run):
        for token in orjson.loads(m["clobTokenIds"]):
            ticks[token] = Decimal(str(m["orderPriceMinTickSize"]))
    prices = 0

    def check(token: str, price: str) -> None:
        nonlocal prices
        p = Decimal(price)
        assert 0 < p < 1 and p % ticks[token] == 0, (token, price)
        prices += 1

    for recv, frame in run.frames:
        dec.decode(frame, recv)
        if frame == b"PONG" or frame.startswith(b'[{"id"'):
            continue
        msg = orjson.loads(frame)
        for ev in msg if isinstance(msg, list) else [msg]:
            kind = ev["event_type"]
            if kind == "tick_size_change":
                ticks[ev["asset_id"]] = Decimal(ev["new_tick_size"])
            elif kind == "book":
                for level in ev["bids"] + ev["asks"]:
                    check(ev["asset_id"], level["price"])
            elif kind == "price_change":
                for change in ev["price_changes"]:
                    check(change["asset_id"], change["price"])
            elif kind == "last_trade_price":
                check(ev["asset_id"], ev["price"])
    s = dec.stats
    assert (s.malformed, s.unknown_channel, s.gaps, s.ignored_changes, s.skipped_instruments) == (
        0,
        0,
        0,
        0,
        0,
    )
    assert len(dec.registry) == 2 * (len(MARKETS) + 15)
    assert prices > 10_000
    crypto_fees = {str(o.fees.rate) for o in dec.outcomes if o.fees is not None}
    assert crypto_fees == {"0", "0.07"}


# ------------------------------------------------------------------------------- options


def test_same_options_same_bytes_and_the_legacy_markets_keep_their_text(tmp_path: Path) -> None:
    opts = {"hours": 0.02, "seed": 5, "crypto": "deribit", "strikes": 6}
    a, b, plain = tmp_path / "a.rec", tmp_path / "b.rec", tmp_path / "plain.rec"
    assert generate_sample(a, opts) == generate_sample(b, opts)
    assert a.read_bytes() == b.read_bytes()
    generate_sample(plain, {"hours": 0.02, "seed": 5})
    assert plain.read_bytes() != a.read_bytes()
    with_crypto = orjson.loads(next(iter(RecordingReader(a)))[1])
    without = orjson.loads(next(iter(RecordingReader(plain)))[1])
    assert [m["question"] for m in with_crypto[: len(without)]] == [m["question"] for m in without]
    other = tmp_path / "other.rec"
    generate_sample(other, {**opts, "strikes": 10})  # another Deribit chain, another BTC path
    assert other.read_bytes() != a.read_bytes()


def test_an_unknown_crypto_source_is_refused() -> None:
    with pytest.raises(ValueError, match='"none" or "deribit"'):
        PolymarketFeed.create(seed=1, start_ns=START_NS, crypto="binance")


# ------------------------------------------------------------------------------- mispriced

# sha256 over (receive time, frame) of 72 s crypto samples, taken before `mispriced` existed
# (commit f32330a): the default, and `mispriced = 0`, must keep writing exactly these.
CRYPTO_BEFORE = {
    (5, 12): (3565, "2b8d31a8cc561633e95146bf17910d0fee1b4e213bc9cf9a66868a8afcdf2a2a"),
    (7, 6): (3578, "09862fa1537927152b0338a8d4eca1319190f8bcf52b6ef40933cca5a3436d27"),
}


def digest(frames: Any) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    for ts, frame in frames:
        h.update(ts.to_bytes(8, "big"))
        h.update(frame)
        n += 1
    return n, h.hexdigest()


@pytest.mark.parametrize(("seed", "strikes"), sorted(CRYPTO_BEFORE))
def test_not_mispriced_by_default_the_same_bytes_as_before(seed: int, strikes: int) -> None:
    for feed in (
        PolymarketFeed.create(seed=seed, start_ns=START_NS, crypto="deribit", strikes=strikes),
        PolymarketFeed.create(seed=seed, start_ns=START_NS, crypto="deribit", strikes=strikes, mispriced=0.0),
        PolymarketFeed(seed, START_NS, crypto="deribit", strikes=strikes, mispriced=0, mispriced_leg=0),
    ):
        assert digest(feed.frames(0.02)) == CRYPTO_BEFORE[seed, strikes]


def opening_books(dump: bytes) -> dict[str, tuple[float, float]]:
    """(best bid, best ask) per token of the initial dump (the opening's second frame)."""
    return {
        b["asset_id"]: (float(b["bids"][-1]["price"]), float(b["asks"][-1]["price"]))
        for b in orjson.loads(dump)
    }


@pytest.mark.parametrize("by", [-0.1, 0.1])
def test_mispriced_quotes_the_market_nearest_the_money_that_far_from_the_model_at_once(by: float) -> None:
    feed = PolymarketFeed.create(seed=7, start_ns=START_NS, crypto="deribit", strikes=STRIKES, mispriced=by)
    plain = PolymarketFeed.create(seed=7, start_ns=START_NS, crypto="deribit", strikes=STRIKES)
    books = opening_books(feed.opening(HOURS)[1][1])
    plain_books = opening_books(plain.opening(HOURS)[1][1])
    chosen = feed.price_legs[ATM_LEG]
    # The "above" leg whose strike is nearest the starting spot (91,250: 92,000).
    assert chosen.spec.slug == "bitcoin-above-92k-on-november-27"
    assert feed.btc is not None and abs(feed.btc.spot() - 92_000) < 1000
    q = chosen.model_p
    assert chosen.p == pytest.approx(q + by, abs=1e-12)
    # The book shows the gap at once: a taker buys YES (by < 0) below, or sells it (by > 0) above,
    # the model's probability by more than the fee.
    bid, ask = books[chosen.yes]
    if by < 0:
        assert q - ask > fee(ask) + 0.05
    else:
        assert bid - q > fee(bid) + 0.05
    # The other legs are quoted as without the option, on the model.
    for m, p in zip(feed.price_legs, plain.price_legs, strict=True):
        assert m.model_p == p.model_p
        if m is not chosen:
            assert m.p == p.p == pytest.approx(m.model_p, abs=1e-12)
            assert books[m.yes] == plain_books[p.yes]
    # Then the gap closes as a kick's does (time constant 150 s): still open 20 s in, most of it
    # gone after 10 minutes.
    x0 = chosen.mispricing.x
    for _ in range(80):
        feed.step()
    assert abs(chosen.mispricing.x) > 0.75 * abs(x0) and abs(chosen.p - chosen.model_p) > 0.05
    for _ in range(2320):
        feed.step()
    assert abs(chosen.mispricing.x) < 0.3 * abs(x0)


def test_mispriced_leg_chooses_the_market() -> None:
    feed = PolymarketFeed(7, START_NS, crypto="deribit", strikes=STRIKES, mispriced=-0.05, mispriced_leg=0)
    feed.opening(HOURS)
    first = feed.price_legs[0]
    assert first.spec.slug == "bitcoin-above-86k-on-november-27"
    assert first.p == pytest.approx(first.model_p - 0.05, abs=1e-12)
    assert [m.p == pytest.approx(m.model_p, abs=1e-12) for m in feed.price_legs[:7]] == [False] + [True] * 6


def test_the_simulator_and_the_generator_take_mispriced(tmp_path: Path) -> None:
    sim = PolymarketSimulator(
        seed=7, crypto="deribit", strikes=STRIKES, mispriced=-0.1, clock=lambda: START_NS
    )
    chosen = sim.feed.price_legs[ATM_LEG]
    _, asks = sim.levels(chosen.yes)
    assert chosen.model_p - float(min(asks)) > 0.05 + fee(float(min(asks)))
    path = tmp_path / "p.rec"
    options = {"hours": 0.01, "seed": 7, "crypto": "deribit", "strikes": STRIKES, "mispriced": -0.1}
    generate_sample(path, options)
    _, dump = list(itertools.islice(RecordingReader(path), 2))[1]
    _, ask = opening_books(dump)[chosen.yes]
    assert chosen.model_p - ask > 0.05 + fee(ask)


def test_a_mispricing_that_cannot_be_quoted_is_refused() -> None:
    with pytest.raises(ValueError, match='mispriced needs the Bitcoin price markets of crypto "deribit"'):
        PolymarketFeed(7, START_NS, mispriced=-0.1)
    with pytest.raises(ValueError, match=r"mispriced: bitcoin-above-92k-on-november-27: .* outside \(0, 1\)"):
        PolymarketFeed(7, START_NS, crypto="deribit", strikes=STRIKES, mispriced=-0.9)
    with pytest.raises(ValueError, match="mispriced must be a finite number"):
        PolymarketFeed(7, START_NS, crypto="deribit", strikes=STRIKES, mispriced=math.nan)
    with pytest.raises(ValueError, match="mispriced_leg must be an index from 0 to 14, got 15"):
        PolymarketFeed(7, START_NS, crypto="deribit", strikes=STRIKES, mispriced=0.1, mispriced_leg=15)
