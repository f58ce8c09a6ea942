"""Deterministic, realistic Gamma market objects (VENUES.md §2.7), for tests and the 300k benchmark.

`generate_markets(count, seed=...)` yields `count` market objects shaped like the captured ones in
`shared/fixtures/polymarket/gamma_market*.json`: the same keys in the same order, the same
encodings (`outcomes`, `outcomePrices` and `clobTokenIds` are JSON-encoded strings; `volume` and
`liquidity` strings, `volumeNum`/`liquidityNum` numbers; an embedded, trimmed `events[0]`) and, as
`/markets?include_tag=true` returns them, a `tags` list of `{id, label, slug, ...}` objects.

The mix follows what Polymarket lists:

- crypto "Up or Down" markets on 5/15-minute and hourly windows (`btc-updown-5m-1773307200`),
- daily strike ladders (`will-bitcoin-be-above-104000-on-march-12-2026`),
- sports: money lines, spreads, totals, esports map handicaps, and three-way soccer results (the
  multi-outcome markets: three outcomes, three token ids),
- neg-risk events (`negRisk: true`, one `negRiskMarketID` shared by the event's markets, a
  `groupItemTitle` per candidate): nominations, elections, central-bank decisions,
- one-off binaries ("Will X happen by <date>?").

Market ids count up from 12 (the oldest real market ids are two digits), slugs are unique (a
numeric suffix is added on a clash, as Polymarket does), token ids are 256-bit decimal strings and
condition/question ids 32-byte hex, all drawn from the seeded generator: the same `(count, seed,
as_of)` always gives the same objects. Markets that ended before `as_of` are `closed` and resolved
(`outcomePrices` one "1", the rest "0"); the others are open and quoted.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import orjson

__all__ = ["DEFAULT_AS_OF", "generate_markets", "market_lines"]

DEFAULT_AS_OF = "2026-11-24T00:00:00Z"

_S3 = "https://polymarket-upload.s3.us-east-2.amazonaws.com/"
_MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
_ET = dt.timezone(dt.timedelta(hours=-5))  # Polymarket titles say "ET"; EST kept all year here


def _tag(tag_id: str, label: str, slug: str, created: str) -> dict[str, Any]:
    # The shape of shared/fixtures/polymarket/gamma_tags.json.
    return {
        "id": tag_id,
        "label": label,
        "slug": slug,
        "forceShow": False,
        "createdAt": created,
        "updatedAt": "2026-03-09T22:21:41.828275Z",
        "requiresTranslation": False,
    }


_TAGS = {
    "crypto": _tag("21", "Crypto", "crypto", "2023-10-25T18:55:50.681Z"),
    "crypto-prices": _tag("1312", "Crypto Prices", "crypto-prices", "2024-01-09T16:42:03.120Z"),
    "up-or-down": _tag("102127", "Up or Down", "up-or-down", "2025-09-02T14:01:12.531Z"),
    "recurring": _tag("101757", "Recurring", "recurring", "2025-01-07T19:35:10.110Z"),
    "sports": _tag("1", "Sports", "sports", "2023-10-25T18:55:50.681Z"),
    "games": _tag("100639", "Games", "games", "2024-08-08T16:12:44.914Z"),
    "esports": _tag("64", "Esports", "esports", "2023-11-02T21:20:09.330Z"),
    "soccer": _tag("100350", "Soccer", "soccer", "2024-05-30T17:41:18.224Z"),
    "politics": _tag("2", "Politics", "politics", "2023-10-25T18:55:50.674Z"),
    "elections": _tag("144", "Elections", "elections", "2023-11-02T21:24:31.198Z"),
    "global-elections": _tag("1597", "Global Elections", "global-elections", "2024-03-07T20:41:56.773Z"),
    "us-election": _tag("1101", "US Election", "us-presidential-election", "2024-02-06T19:42:10.132Z"),
    "economy": _tag("100328", "Economy", "economy", "2024-05-02T13:30:00.512Z"),
    "fed-rates": _tag("100196", "Fed Rates", "fed-rates", "2024-04-11T12:02:51.881Z"),
    "tech": _tag("1401", "Tech", "tech", "2024-01-30T18:10:34.702Z"),
    "ai": _tag("439", "AI", "ai", "2023-12-04T15:25:40.008Z"),
    "culture": _tag("596", "Culture", "pop-culture", "2023-11-21T20:31:05.176Z"),
    "weather": _tag("84", "Weather", "weather", "2023-11-06T10:11:02.450Z"),
}

# name, ticker, slug word, Chainlink stream, strike step, typical price
_COINS = (
    ("Bitcoin", "btc", "bitcoin", "btc-usd", 2000, 98_000),
    ("Ethereum", "eth", "ethereum", "eth-usd", 100, 3_600),
    ("Solana", "sol", "solana", "sol-usd", 10, 190),
    ("XRP", "xrp", "xrp", "xrp-usd", 0.1, 2.4),
    ("Dogecoin", "doge", "dogecoin", "doge-usd", 0.02, 0.31),
    ("BNB", "bnb", "bnb", "bnb-usd", 20, 720),
    ("Hyperliquid", "hype", "hyperliquid", "hype-usd", 2, 38),
)
_COIN_TAGS = {"btc": "Bitcoin", "eth": "Ethereum", "sol": "Solana", "xrp": "XRP", "doge": "Dogecoin"}
_COIN_TAG_IDS = {"btc": "235", "eth": "39", "sol": "818", "xrp": "101267", "doge": "100224"}

# league, tag label, tag id, teams (name, abbreviation); soccer has draws
_LEAGUES: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "nba",
        "NBA",
        "745",
        (
            ("Celtics", "bos"),
            ("Lakers", "lal"),
            ("Knicks", "nyk"),
            ("Warriors", "gsw"),
            ("Nuggets", "den"),
            ("Bucks", "mil"),
            ("Heat", "mia"),
            ("Suns", "phx"),
            ("Mavericks", "dal"),
            ("Thunder", "okc"),
            ("76ers", "phi"),
            ("Cavaliers", "cle"),
            ("Pacers", "ind"),
            ("Kings", "sac"),
            ("Rockets", "hou"),
        ),
    ),
    (
        "nfl",
        "NFL",
        "450",
        (
            ("Chiefs", "kc"),
            ("Eagles", "phi"),
            ("Bills", "buf"),
            ("Ravens", "bal"),
            ("49ers", "sf"),
            ("Cowboys", "dal"),
            ("Lions", "det"),
            ("Packers", "gb"),
            ("Bengals", "cin"),
            ("Dolphins", "mia"),
            ("Jets", "nyj"),
            ("Steelers", "pit"),
            ("Chargers", "lac"),
            ("Texans", "hou"),
        ),
    ),
    (
        "nhl",
        "NHL",
        "899",
        (
            ("Bruins", "bos"),
            ("Rangers", "nyr"),
            ("Oilers", "edm"),
            ("Panthers", "fla"),
            ("Avalanche", "col"),
            ("Maple Leafs", "tor"),
            ("Stars", "dal"),
            ("Canucks", "van"),
            ("Jets", "wpg"),
            ("Kings", "la"),
        ),
    ),
    (
        "mlb",
        "MLB",
        "100381",
        (
            ("Yankees", "nyy"),
            ("Dodgers", "lad"),
            ("Braves", "atl"),
            ("Astros", "hou"),
            ("Orioles", "bal"),
            ("Phillies", "phi"),
            ("Mets", "nym"),
            ("Padres", "sd"),
            ("Guardians", "cle"),
            ("Mariners", "sea"),
        ),
    ),
    (
        "epl",
        "EPL",
        "82",
        (
            ("Arsenal", "ars"),
            ("Chelsea", "che"),
            ("Liverpool", "liv"),
            ("Manchester City", "mci"),
            ("Manchester United", "mun"),
            ("Tottenham", "tot"),
            ("Newcastle", "new"),
            ("Aston Villa", "avl"),
            ("Brighton", "bha"),
            ("West Ham", "whu"),
        ),
    ),
    (
        "lal",
        "La Liga",
        "780",
        (
            ("Real Madrid", "rma"),
            ("Barcelona", "bar"),
            ("Atletico Madrid", "atm"),
            ("Sevilla", "sev"),
            ("Real Sociedad", "rso"),
            ("Villarreal", "vil"),
            ("Betis", "bet"),
            ("Valencia", "val"),
        ),
    ),
    (
        "cs2",
        "Counter-Strike",
        "100780",
        (
            ("FaZe", "faze"),
            ("illwill", "ill"),
            ("Natus Vincere", "navi"),
            ("Vitality", "vit"),
            ("G2", "g2"),
            ("MOUZ", "mouz"),
            ("Spirit", "spirit"),
            ("Heroic", "heroic"),
            ("Astralis", "ast"),
            ("Liquid", "tl"),
        ),
    ),
    (
        "lol",
        "League of Legends",
        "65",
        (
            ("T1", "t1"),
            ("Gen.G", "gen"),
            ("G2 Esports", "g2"),
            ("Fnatic", "fnc"),
            ("Hanwha Life", "hle"),
            ("Bilibili Gaming", "blg"),
            ("Top Esports", "tes"),
            ("Cloud9", "c9"),
        ),
    ),
)
_SOCCER = frozenset({"epl", "lal"})
_ESPORTS = frozenset({"cs2", "lol"})

_FIRST = (
    "Gavin", "Gretchen", "Josh", "Pete", "Alexandria", "Wes", "Andy", "Cory", "Raphael", "Jon",
    "Ro", "Chris", "Roy", "Tim", "Amy", "Stephen", "Mark", "Jared", "Michelle", "Ruben", "Maria",
    "Laura", "Marco", "Elena", "Lukas", "Sofia", "Hugo", "Nadia", "Tomas", "Ingrid", "Kenji",
    "Priya", "Omar", "Claire", "Diego", "Hannah", "Viktor", "Lucia", "Samuel", "Aiko",
)  # fmt: skip
_LAST = (
    "Newsom", "Whitmer", "Shapiro", "Buttigieg", "Ocasio-Cortez", "Moore", "Beshear", "Booker",
    "Warnock", "Ossoff", "Khanna", "Murphy", "Cooper", "Walz", "Klobuchar", "Smith", "Cuban", "Polis",
    "Obama", "Gallego", "Fernandez", "Rossi", "Dubois", "Keller", "Novak", "Lindqvist", "Tanaka",
    "Sharma", "Haddad", "Moreau", "Alvarez", "Becker", "Petrov", "Romero", "Osei", "Nakamura",
)  # fmt: skip
_COUNTRIES = (
    ("US", "us", "United States"), ("France", "france", "France"), ("Germany", "germany", "Germany"),
    ("Brazil", "brazil", "Brazil"), ("Japan", "japan", "Japan"), ("Canada", "canada", "Canada"),
    ("Poland", "poland", "Poland"), ("Chile", "chile", "Chile"), ("Portugal", "portugal", "Portugal"),
    ("South Korea", "south-korea", "South Korea"), ("Mexico", "mexico", "Mexico"),
    ("Colombia", "colombia", "Colombia"), ("Romania", "romania", "Romania"), ("Kenya", "kenya", "Kenya"),
)  # fmt: skip
_OFFICES = (
    ("presidential election", "presidential-election", "President"),
    ("parliamentary election", "parliamentary-election", "the largest party"),
    ("prime minister", "prime-minister", "Prime Minister"),
)
_PARTIES = (("Democratic", "democratic"), ("Republican", "republican"))
_COMPANIES = (
    ("OpenAI", "openai"), ("Apple", "apple"), ("Google", "google"), ("Tesla", "tesla"),
    ("Nvidia", "nvidia"), ("Meta", "meta"), ("Microsoft", "microsoft"), ("Amazon", "amazon"),
    ("Anthropic", "anthropic"), ("xAI", "xai"), ("SpaceX", "spacex"), ("Netflix", "netflix"),
)  # fmt: skip
_THINGS = (
    ("release GPT-6", "release-gpt-6", "ai"),
    ("announce a foldable iPhone", "announce-a-foldable-iphone", "tech"),
    ("launch a new flagship model", "launch-a-new-flagship-model", "ai"),
    ("reach a $5T market cap", "reach-a-5t-market-cap", "tech"),
    ("announce layoffs", "announce-layoffs", "tech"),
    ("be the largest company in the world", "be-the-largest-company-in-the-world", "tech"),
    ("IPO", "ipo", "tech"),
    ("release a humanoid robot", "release-a-humanoid-robot", "ai"),
)
_CITIES = ("New York", "London", "Paris", "Tokyo", "Chicago", "Seoul", "Toronto", "Madrid", "Berlin", "Miami")


# --------------------------------------------------------------------------- helpers


def _iso(ts: float, *, micros: bool = False) -> str:
    t = dt.datetime.fromtimestamp(ts, dt.UTC)
    if micros:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _strike(value: float) -> str:
    """A strike as a title shows it: `$104,000`, `$3,600`, `$2.4`."""
    if value >= 1:
        return f"${value:,.0f}" if value == int(value) else f"${value:,.2f}".rstrip("0").rstrip(".")
    return f"${value:.2f}"


def _strike_slug(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}".rstrip("0").replace(".", "pt")


def _slug_word(text: str) -> str:
    out = []
    for ch in text.lower():
        out.append(ch if ch.isalnum() else "-")
    return "-".join(p for p in "".join(out).split("-") if p)


class _Gen:
    """State shared by the families: the seeded random, ids, and the slugs already given."""

    def __init__(self, seed: int, as_of: float) -> None:
        self.rng = random.Random(seed)
        self.as_of = as_of
        self.next_id = 12
        self.next_event_id = 2_890
        self.slugs: set[str] = set()

    def hex32(self) -> str:
        return f"0x{self.rng.getrandbits(256):064x}"

    def token_id(self) -> str:
        return str(self.rng.getrandbits(256))

    def unique_slug(self, slug: str) -> str:
        if slug not in self.slugs:
            self.slugs.add(slug)
            return slug
        while True:  # Polymarket appends a number to a slug that is taken (`...-nomination-914`)
            candidate = f"{slug}-{self.rng.randrange(100, 1000)}"
            if candidate not in self.slugs:
                self.slugs.add(candidate)
                return candidate

    def event(
        self,
        *,
        slug: str,
        title: str,
        description: str,
        start: float,
        end: float,
        neg_risk: bool,
        series_slug: str | None = None,
    ) -> dict[str, Any]:
        self.next_event_id += 1
        closed = end < self.as_of
        ev: dict[str, Any] = {
            "id": str(self.next_event_id),
            "ticker": slug,
            "slug": slug,
            "title": title,
            "description": description,
            "startDate": _iso(start, micros=True),
            "creationDate": _iso(start - 1.2, micros=True),
            "endDate": _iso(end),
            "active": True,
            "closed": closed,
            "archived": False,
            "new": False,
            "featured": False,
            "restricted": True,
            "createdAt": _iso(start - 120.5, micros=True),
            "updatedAt": _iso(min(end, self.as_of), micros=True),
            "enableOrderBook": True,
            "negRisk": neg_risk,
            "commentCount": self.rng.randrange(0, 400),
        }
        if neg_risk:
            ev["negRiskMarketID"] = self.hex32()
        if series_slug is not None:
            ev["seriesSlug"] = series_slug
        return ev

    def market(
        self,
        *,
        question: str,
        slug: str,
        description: str,
        outcomes: list[str],
        start: float,
        end: float,
        event: dict[str, Any],
        tags: list[Any],
        resolution_source: str = "",
        image: str = _S3 + "polymarket-default.png",
        tick: float = 0.01,
        group_item_title: str | None = None,
        neg_risk_other: bool = False,
    ) -> dict[str, Any]:
        rng = self.rng
        market_id = str(self.next_id)
        self.next_id += 1
        closed = end < self.as_of
        n = len(outcomes)
        if closed:
            winner = rng.randrange(n)
            prices = ["1" if i == winner else "0" for i in range(n)]
            bid, ask, last = (0.999, 1.0, 0.999) if winner == 0 else (0.0, 0.001, 0.001)
        else:
            p = round(rng.uniform(0.02, 0.98), 3)
            rest = [round((1 - p) / (n - 1), 3)] * (n - 1)
            prices = [f"{x:g}" for x in [p, *rest]]
            bid = round(max(tick, p - tick), 3)
            ask = round(min(1 - tick, p + tick), 3)
            last = p
        volume = round(rng.lognormvariate(8, 2.2), 6)
        liquidity = 0.0 if closed else round(rng.lognormvariate(8, 1.5), 4)
        neg_risk = bool(event["negRisk"])
        m: dict[str, Any] = {
            "id": market_id,
            "question": question,
            "conditionId": self.hex32(),
            "slug": slug,
            "resolutionSource": resolution_source,
            "endDate": _iso(end),
            "liquidity": f"{liquidity:.4f}",
            "startDate": _iso(start, micros=True),
            "image": image,
            "icon": image,
            "description": description,
            "outcomes": orjson.dumps(outcomes).decode().replace('","', '", "'),
            "outcomePrices": orjson.dumps(prices).decode().replace('","', '", "'),
            "volume": f"{volume:.6f}",
            "active": True,
            "closed": closed,
            "marketMakerAddress": "",
            "createdAt": _iso(start - 70.1, micros=True),
            "updatedAt": _iso(min(end, self.as_of), micros=True),
            "new": False,
            "featured": False,
            "archived": False,
            "restricted": True,
        }
        if group_item_title is not None:
            m["groupItemTitle"] = group_item_title
        m["groupItemThreshold"] = "0"
        m["questionID"] = self.hex32()
        m["enableOrderBook"] = True
        m["orderPriceMinTickSize"] = tick
        m["orderMinSize"] = 5
        m["volumeNum"] = volume
        m["liquidityNum"] = liquidity
        m["endDateIso"] = _iso(end)[:10]
        m["startDateIso"] = _iso(start)[:10]
        m["hasReviewedDates"] = True
        m["volume24hr"] = 0 if closed else round(volume * 0.08, 6)
        m["volume1wk"] = 0 if closed else round(volume * 0.3, 6)
        m["clobTokenIds"] = orjson.dumps([self.token_id() for _ in outcomes]).decode().replace('","', '", "')
        m["volumeClob"] = volume
        m["liquidityClob"] = liquidity
        m["makerBaseFee"] = 0
        m["takerBaseFee"] = 0
        m["acceptingOrders"] = not closed
        m["negRisk"] = neg_risk
        if neg_risk:
            m["negRiskMarketID"] = event["negRiskMarketID"]
            m["negRiskRequestID"] = self.hex32()
        m["events"] = [event]
        m["ready"] = False
        m["funded"] = False
        m["acceptingOrdersTimestamp"] = _iso(start + 4)
        m["cyom"] = False
        m["competitive"] = 0 if closed else round(rng.uniform(0.5, 1.0), 16)
        m["pagerDutyNotificationEnabled"] = False
        m["approved"] = True
        m["rewardsMinSize"] = 50
        m["rewardsMaxSpread"] = 4.5
        m["spread"] = round(ask - bid, 3)
        m["lastTradePrice"] = last
        m["bestBid"] = bid
        m["bestAsk"] = ask
        m["automaticallyActive"] = True
        m["clearBookOnStart"] = False
        m["manualActivation"] = False
        m["negRiskOther"] = neg_risk_other
        m["umaResolutionStatuses"] = '["proposed", "resolved"]' if closed else "[]"
        m["pendingDeployment"] = False
        m["deploying"] = False
        m["rfqEnabled"] = False
        if closed:
            m["closedTime"] = dt.datetime.fromtimestamp(end + 3_600, dt.UTC).strftime("%Y-%m-%d %H:%M:%S+00")
        m["holdingRewardsEnabled"] = False
        m["feesEnabled"] = False
        m["requiresTranslation"] = False
        m["feeType"] = "crypto_fees" if "crypto" in tags else "none"
        m["tags"] = [_TAGS[t] if isinstance(t, str) else t for t in tags]  # `include_tag=true` (§2.7)
        return m


# --------------------------------------------------------------------------- families


def _updown(g: _Gen) -> list[dict[str, Any]]:
    """One "Up or Down" window of one coin (VENUES.md §2.7 sample market)."""
    rng = g.rng
    name, ticker, _, stream, _, _ = rng.choice(_COINS[:5])
    minutes, label = rng.choice(((5, "5m"), (5, "5m"), (15, "15m"), (60, "1h")))
    step = minutes * 60
    end = g.as_of + rng.uniform(-3 * 365, 30) * 86_400
    end -= end % step
    begin = end - step
    t0 = dt.datetime.fromtimestamp(begin, _ET)
    t1 = dt.datetime.fromtimestamp(end, _ET)
    day = f"{t0.strftime('%B')} {t0.day}"
    if minutes == 60:
        window = t0.strftime("%I%p").lstrip("0") + " ET"
    else:
        window = f"{t0.strftime('%I:%M%p').lstrip('0')}-{t1.strftime('%I:%M%p').lstrip('0')} ET"
    title = f"{name} Up or Down - {day}, {window}"
    slug = g.unique_slug(f"{ticker}-updown-{label}-{int(begin)}")
    source = f"https://data.chain.link/streams/{stream}"
    pair = f"{ticker.upper()}/USD"
    description = (
        f'This market will resolve to "Up" if the {name} price at the end of the time range specified in '
        f"the title is greater than or equal to the price at the beginning of that range. Otherwise, it "
        f'will resolve to "Down".\nThe resolution source for this market is information from Chainlink, '
        f"specifically the {pair} data stream available at {source}.\nPlease note that this market is "
        f"about the price according to Chainlink data stream {pair}, not according to other sources or "
        f"spot markets."
    )
    start = begin - 86_400 + rng.uniform(0, 600)
    ev = g.event(
        slug=slug,
        title=title,
        description=description,
        start=start,
        end=end,
        neg_risk=False,
        series_slug=f"{ticker}-up-or-down-{label}",
    )
    coin_tag = _tag(
        _COIN_TAG_IDS[ticker], _COIN_TAGS[ticker], _slug_word(_COIN_TAGS[ticker]), "2023-11-14T00:00:00Z"
    )
    return [
        g.market(
            question=title,
            slug=slug,
            description=description,
            outcomes=["Up", "Down"],
            start=start,
            end=end,
            event=ev,
            tags=["crypto", "crypto-prices", "up-or-down", "recurring", coin_tag],
            resolution_source=source,
            image=_S3 + f"{ticker.upper()}+fullsize.png",
        )
    ]


def _ladder(g: _Gen) -> list[dict[str, Any]]:
    """A daily strike ladder: "Will Bitcoin be above $104,000 on March 12?" for several strikes."""
    rng = g.rng
    name, ticker, word, _, step, level = rng.choice(_COINS)
    end_day = g.as_of + rng.uniform(-2 * 365, 60) * 86_400
    end_day -= end_day % 86_400
    end = end_day + 17 * 3_600  # noon ET
    when = dt.datetime.fromtimestamp(end, dt.UTC)
    month = _MONTHS[when.month - 1]
    day_text = f"{month.capitalize()} {when.day}"
    drift = level * rng.uniform(0.6, 1.4)
    center = round(drift / step) * step
    strikes = [center + (i - 5) * step for i in range(11)]
    event_slug = g.unique_slug(f"{word}-above-on-{month}-{when.day}-{when.year}")
    description = (
        f'This market will resolve to "Yes" if the Binance 1 minute candle for {ticker.upper()}/USDT 12:00 '
        f'in the ET timezone (noon) on the date specified in the title has a final "Close" price higher '
        f'than the price specified in the title. Otherwise, this market will resolve to "No".\n\nThe '
        f'resolution source for this market is Binance, specifically the {ticker.upper()}/USDT "Close" '
        f"prices currently available at https://www.binance.com/en/trade/{ticker.upper()}_USDT with "
        f'"1m" and "Candles" selected on the top bar.\n\nPlease note that this market is about the price '
        f"according to Binance {ticker.upper()}/USDT, not according to other sources or spot markets."
    )
    start = end - rng.uniform(5, 9) * 86_400
    ev = g.event(
        slug=event_slug,
        title=f"{name} above ___ on {day_text}?",
        description=description,
        start=start,
        end=end,
        neg_risk=False,
        series_slug=f"{word}-above-daily",
    )
    tags: list[Any] = ["crypto", "crypto-prices"]
    if ticker in _COIN_TAGS:
        tags.append(_tag(_COIN_TAG_IDS[ticker], _COIN_TAGS[ticker], word, "2023-11-14T00:00:00Z"))
    out = []
    for k in strikes:
        if k <= 0:
            continue
        out.append(
            g.market(
                question=f"Will {name} be above {_strike(k)} on {day_text}?",
                slug=g.unique_slug(
                    f"will-{word}-be-above-{_strike_slug(k)}-on-{month}-{when.day}-{when.year}"
                ),
                description=description,
                outcomes=["Yes", "No"],
                start=start,
                end=end,
                event=ev,
                tags=tags,
                resolution_source="https://www.binance.com",
                image=_S3 + f"{ticker.upper()}+fullsize.png",
                group_item_title=_strike(k),
            )
        )
    return out


def _game(g: _Gen) -> list[dict[str, Any]]:
    """One game: money line, plus spread/total (or map handicap), or a three-way soccer result."""
    rng = g.rng
    league, league_label, league_tag_id, teams = rng.choice(_LEAGUES)
    (home, h), (away, a) = rng.sample(teams, 2)
    kick = g.as_of + rng.uniform(-3 * 365, 45) * 86_400
    kick -= kick % 1_800
    end = kick + 3 * 3_600
    date = dt.datetime.fromtimestamp(kick, _ET)
    date_slug = date.strftime("%Y-%m-%d")
    base = g.unique_slug(f"{league}-{h}-{a}-{date_slug}")
    when = f"{date.strftime('%B')} {date.day} at {date.strftime('%I:%M%p').lstrip('0')} ET"
    title = f"{home} vs. {away}"
    intro = (
        f"This market refers to the {league_label} match between {home} and {away}, initially "
        f"scheduled for {when}."
    )
    rules = (
        "\n\nIf the match is canceled (not played at all), ends in a tie, or is delayed beyond 7 days from "
        "the scheduled date without a winner determined, this market will resolve to 50-50.\n\nIf the match "
        "begins but is not completed, and one team wins due to the opponent's forfeiture, disqualification, "
        "or walkover, this market will resolve to the team which is awarded the win."
    )
    start = kick - rng.uniform(1, 4) * 86_400
    ev = g.event(slug=base, title=title, description=intro, start=start, end=end, neg_risk=False)
    league_tag = _tag(league_tag_id, league_label, _slug_word(league_label), "2024-01-15T00:00:00Z")
    kind_tag = "esports" if league in _ESPORTS else ("soccer" if league in _SOCCER else "games")
    tags: list[Any] = ["sports", kind_tag, league_tag]
    logo = _S3 + f"{league}-{h}.png"
    out = []
    if league in _SOCCER:
        out.append(
            g.market(
                question=f"{title}: match result",
                slug=g.unique_slug(f"{base}-result"),
                description=f'{intro}\n\nThis market will resolve to "{home}" if {home} wins, "Draw" if the '
                f'match ends in a draw after regular time, and "{away}" if {away} wins.{rules}',
                outcomes=[home, "Draw", away],
                start=start,
                end=end,
                event=ev,
                tags=tags,
                image=logo,
            )
        )
    out.append(
        g.market(
            question=title,
            slug=base if league not in _SOCCER else g.unique_slug(f"{base}-winner"),
            description=f'{intro}\n\nThis market will resolve to "{home}" if {home} win the match against '
            f'{away}.\n\nThis market will resolve to "{away}" if {away} win the match against {home}.{rules}',
            outcomes=[home, away],
            start=start,
            end=end,
            event=ev,
            tags=tags,
            image=logo,
        )
    )
    if league in _ESPORTS:
        line = rng.choice((1.5, 2.5))
        side = rng.choice(("home", "away"))
        fav = home if side == "home" else away
        out.append(
            g.market(
                question=f"Map Handicap: {fav} (-{line})",
                slug=g.unique_slug(f"{base}-map-handicap-{side}-{_strike_slug(line).replace('.', 'pt')}"),
                description=f'{intro}\n\nThis market will resolve to "{fav}" if {fav} wins {int(line + 0.5)} '
                f"or more maps than the opponent in this match.\n\nOtherwise, this market will resolve to "
                f"the opponent.{rules}",
                outcomes=[home, away],
                start=start,
                end=end,
                event=ev,
                tags=tags,
                image=logo,
            )
        )
    elif rng.random() < 0.7:
        spread = rng.choice((1.5, 2.5, 3.5, 4.5, 6.5, 7.5))
        total = round(rng.uniform(180, 240)) + 0.5 if league == "nba" else rng.choice((5.5, 6.5, 41.5, 44.5))
        out.append(
            g.market(
                question=f"Spread: {home} (-{spread})",
                slug=g.unique_slug(f"{base}-spread-home-{_strike_slug(spread).replace('.', 'pt')}"),
                description=f'{intro}\n\nThis market will resolve to "{home}" if {home} wins by more than '
                f'{spread} points. Otherwise, this market will resolve to "{away}".{rules}',
                outcomes=[home, away],
                start=start,
                end=end,
                event=ev,
                tags=tags,
                image=logo,
            )
        )
        out.append(
            g.market(
                question=f"{title}: O/U {total}",
                slug=g.unique_slug(f"{base}-total-{_strike_slug(total).replace('.', 'pt')}"),
                description=f'{intro}\n\nThis market will resolve to "Over" if the total score is greater '
                f'than {total}. Otherwise, this market will resolve to "Under".{rules}',
                outcomes=["Over", "Under"],
                start=start,
                end=end,
                event=ev,
                tags=tags,
                image=logo,
            )
        )
    return out


def _neg_risk(g: _Gen) -> list[dict[str, Any]]:
    """A neg-risk event: one market per candidate/option, sharing a `negRiskMarketID`."""
    rng = g.rng
    kind = rng.random()
    end = g.as_of + rng.uniform(-3 * 365, 4 * 365) * 86_400
    end -= end % 86_400
    year = dt.datetime.fromtimestamp(end, dt.UTC).year
    start = end - rng.uniform(60, 500) * 86_400
    people = [f"{rng.choice(_FIRST)} {rng.choice(_LAST)}" for _ in range(rng.randrange(4, 16))]
    people = list(dict.fromkeys(people))
    if kind < 0.35:
        party, pslug = rng.choice(_PARTIES)
        title = f"{party} Presidential Nominee {year}"
        event_slug = g.unique_slug(f"{pslug}-presidential-nominee-{year}")
        desc = (
            f'This market will resolve to "Yes" if the named individual wins and accepts the {year} '
            f"nomination of the {party} Party for U.S. president. Otherwise, this market will resolve to "
            f'"No".\n\nThe resolution source for this market will be a consensus of official {party} Party '
            f"sources.\n\nAny replacement of the {party.lower()} nominee before election day will not change "
            "the resolution of the market."
        )
        items = [
            (p, f"Will {p} win the {year} {party} presidential nomination?",
             f"will-{_slug_word(p)}-win-the-{year}-{pslug}-presidential-nomination")
            for p in people
        ]  # fmt: skip
        tags: list[Any] = ["politics", "elections", "us-election"]
    elif kind < 0.75:
        country, cslug, cname = rng.choice(_COUNTRIES)
        office, oslug, role = rng.choice(_OFFICES)
        title = f"{cname} {office.title()} {year}"
        event_slug = g.unique_slug(f"{cslug}-{oslug}-{year}")
        desc = (
            f"This market will resolve according to the winner of the {year} {cname} {office}. The winner "
            f"is the candidate who becomes {role} as a result of this election.\n\nIf the result is not "
            f'known by December 31, {year + 1}, 11:59 PM ET, this market will resolve to "Other".\n\nThe '
            "resolution source will be official results from the national electoral authority, confirmed by "
            "a consensus of credible reporting."
        )
        items = [
            (p, f"Will {p} win the {year} {country} {office}?",
             f"will-{_slug_word(p)}-win-the-{year}-{cslug}-{oslug}")
            for p in people
        ]  # fmt: skip
        tags = ["politics", "elections", "global-elections"]
    else:
        month = _MONTHS[dt.datetime.fromtimestamp(end, dt.UTC).month - 1]
        title = f"Fed decision in {month.capitalize()} {year}?"
        event_slug = g.unique_slug(f"fed-decision-in-{month}-{year}")
        desc = (
            f"The FED interest rates are defined in this market by the upper bound of the target federal "
            f"funds range. The decisions on the target federal fund range are made by the Federal Open "
            f"Market Committee (FOMC) meetings.\n\nThis market will resolve to the amount of basis points "
            f"the upper bound of the target federal funds rate is changed by versus the level it was prior "
            f"to the Federal Reserve's {month.capitalize()} {year} meeting."
        )
        moves = (
            ("50+ bps decrease", "decrease-interest-rates-by-50-bps"),
            ("25 bps decrease", "decrease-interest-rates-by-25-bps"),
            ("No change", "no-change-in-fed-interest-rates"),
            ("25+ bps increase", "increase-interest-rates-by-25-bps"),
        )
        items = [
            (label, f"Fed {label.lower()} after {month.capitalize()} {year} meeting?",
             f"fed-{s}-after-{month}-{year}-meeting")
            for label, s in moves
        ]  # fmt: skip
        tags = ["economy", "fed-rates"]
    ev = g.event(slug=event_slug, title=title, description=desc, start=start, end=end, neg_risk=True)
    out = []
    for i, (item, question, slug) in enumerate(items):
        out.append(
            g.market(
                question=question,
                slug=g.unique_slug(slug),
                description=desc,
                outcomes=["Yes", "No"],
                start=start,
                end=end,
                event=ev,
                tags=tags,
                group_item_title=item,
                tick=0.001 if i % 3 == 0 else 0.01,
            )
        )
    if len(items) > 4:
        out.append(
            g.market(
                question=f"{title}: Other",
                slug=g.unique_slug(f"{event_slug}-other"),
                description=desc,
                outcomes=["Yes", "No"],
                start=start,
                end=end,
                event=ev,
                tags=tags,
                group_item_title="Other",
                neg_risk_other=True,
            )
        )
    return out


def _one_off(g: _Gen) -> list[dict[str, Any]]:
    """A one-off binary: a company milestone, a weather record."""
    rng = g.rng
    end = g.as_of + rng.uniform(-3 * 365, 2 * 365) * 86_400
    end -= end % 86_400
    when = dt.datetime.fromtimestamp(end, dt.UTC)
    date_text = f"{_MONTHS[when.month - 1].capitalize()} {when.day}, {when.year}"
    date_slug = f"{_MONTHS[when.month - 1]}-{when.day}-{when.year}"
    start = end - rng.uniform(20, 300) * 86_400
    if rng.random() < 0.75:
        company, cslug = rng.choice(_COMPANIES)
        thing, tslug, tag = rng.choice(_THINGS)
        question = f"Will {company} {thing} by {date_text}?"
        slug = f"will-{cslug}-{tslug}-by-{date_slug}"
        desc = (
            f'This market will resolve to "Yes" if {company} officially and publicly confirms that it will '
            f"{thing} by {date_text}, 11:59 PM ET. Otherwise, this "
            f'market will resolve to "No".\n\nAn announcement of plans without the event having occurred '
            "will not qualify. The primary resolution source will be official information from "
            f"{company}; however, a consensus of credible reporting may also be used."
        )
        tags: list[Any] = ["tech", tag]
    else:
        city = rng.choice(_CITIES)
        temp = rng.randrange(25, 42)
        question = f"Will the highest temperature in {city} be {temp}°C or higher on {date_text}?"
        slug = f"highest-temperature-in-{_slug_word(city)}-{temp}c-or-higher-on-{date_slug}"
        desc = (
            f'This market will resolve to "Yes" if the highest temperature recorded at the main airport '
            f"station of {city} on {date_text} is {temp}°C or higher, according to Weather Underground. "
            'Otherwise, it will resolve to "No".\n\nThis market will use the full-degree Celsius reading '
            "as displayed once data for the date is finalized."
        )
        tags = ["weather", "culture"]
    slug = g.unique_slug(slug)
    ev = g.event(slug=slug, title=question, description=desc, start=start, end=end, neg_risk=False)
    return [
        g.market(
            question=question,
            slug=slug,
            description=desc,
            outcomes=["Yes", "No"],
            start=start,
            end=end,
            event=ev,
            tags=tags,
        )
    ]


# (family, weight in events): about 35% of markets are Up/Down windows, 20% ladders, 25% sports
_FAMILIES = ((_updown, 30), (_ladder, 2), (_game, 7), (_neg_risk, 1), (_one_off, 9))


def generate_markets(count: int, *, seed: int = 1, as_of: str = DEFAULT_AS_OF) -> Iterator[dict[str, Any]]:
    """`count` Gamma market objects (see the module docstring), oldest id first.

    `as_of` (ISO-8601 UTC) is "now" for the generated data: markets that end before it are closed.
    Raises ValueError for a negative count or a bad `as_of`.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    try:
        when = dt.datetime.fromisoformat(as_of)
    except (TypeError, ValueError):
        raise ValueError(f"as_of is not an ISO-8601 time: {as_of!r}") from None
    if when.tzinfo is None:
        raise ValueError(f"as_of needs a time zone (e.g. a trailing Z): {as_of!r}")
    g = _Gen(seed, when.timestamp())
    families = [f for f, _ in _FAMILIES]
    weights = [w for _, w in _FAMILIES]
    made = 0
    while made < count:
        family = g.rng.choices(families, weights)[0]
        for market in family(g):
            if made == count:
                return
            made += 1
            yield market


def market_lines(count: int, *, seed: int = 1, as_of: str = DEFAULT_AS_OF) -> Iterator[bytes]:
    """The generated markets as compact JSON lines (no trailing newline): what the Gamma API
    sends for each element of a `/markets` page."""
    dumps = orjson.dumps
    for market in generate_markets(count, seed=seed, as_of=as_of):
        yield dumps(market)
