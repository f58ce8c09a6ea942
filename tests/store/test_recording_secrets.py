"""Recordings are shared as backtest data: a live-mode recording against each venue's simulator
(logged in, with an order placed and filled) holds no token, secret, signature or private frame,
and still replays as market data (issue 12 §3). The filter itself: engine.venue.session."""

from __future__ import annotations

import contextlib
import functools
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import trio

from tests.support.live_support import Probe, until
from tests.support.sessions import venue_session
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.connectors.deribit.stream import DeribitSession
from tradingd.connectors.derive.settings import DeriveSettings
from tradingd.connectors.derive.stream import DeriveSession
from tradingd.connectors.polymarket.settings import PolymarketSettings
from tradingd.connectors.polymarket.stream import PolymarketSession
from tradingd.engine import BookUpdate, Fill, MalformedFrame, Subscription, Ticker
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.runtime.live import LiveEngine
from tradingd.engine.store.recorder import RecordingSet, SessionRecorder
from tradingd.engine.venue import CatalogSettings
from tradingd.engine.venue.plugins import load_venue
from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator
from tradingd.simulators.deribit.simulator import serve as serve_deribit
from tradingd.simulators.derive.simulator import (
    DEMO_SESSION_KEY,
    DEMO_SUBACCOUNT,
    DEMO_WALLET,
    DeriveSimulator,
)
from tradingd.simulators.derive.simulator import serve as serve_derive
from tradingd.simulators.polymarket.simulator import DEMO_ACCOUNT, DEMO_API, PolymarketSimulator
from tradingd.simulators.polymarket.simulator import serve as serve_polymarket

DERIBIT_ID, DERIBIT_SECRET = next(iter(DEFAULT_ACCOUNTS.items()))


async def record_live(
    nursery: trio.Nursery,
    directory: Path,
    venue: str,
    settings: Any,
    environ: dict[str, str],
    probe: Probe,
    **kw: Any,
) -> tuple[LiveEngine, SessionRecorder]:
    recorder = SessionRecorder(directory)
    engine = LiveEngine(
        [probe],
        {venue: settings},
        mode="live",
        environ=environ,
        paper_latency_s=0.0,
        frame_hook=recorder.frame_hook,
        **kw,
    )
    await nursery.start(engine.run)
    with trio.fail_after(15):
        await engine.ready.wait()
    return engine, recorder


def recorded(recorder: SessionRecorder, venue: str) -> list[bytes]:
    recorder.close()
    return [frame for _, frame in RecordingSet(recorder.directory, venue)]


def leaks(frames: list[bytes], secrets: dict[str, str]) -> list[str]:
    """The names of the secrets some recorded frame holds."""
    blob = b"\n".join(frames)
    return [name for name, value in secrets.items() if value and value.encode() in blob]


def replay(venue: str, frames: list[bytes]) -> tuple[InstrumentRegistry, list[Any]]:
    """The recorded frames through a fresh decoder, as a backtest reads them."""
    registry = InstrumentRegistry()
    decoder = load_venue(venue).decoder(registry)
    events: list[Any] = []
    for i, frame in enumerate(frames):
        with contextlib.suppress(MalformedFrame):  # a replay counts and skips them too
            events += decoder.decode(frame, i)
    return registry, events


async def test_a_live_deribit_recording_holds_no_token_secret_or_private_frame(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    sim = DeribitSimulator(seed=5, step_s=0.05)
    (address,) = await nursery.start(functools.partial(serve_deribit, sim))
    base = address.removeprefix("http://")
    perp = "BTC-PERPETUAL"
    probe = Probe("p", [Subscription("deribit", perp)])
    settings = DeribitSettings(url=f"ws://{base}/ws/api/v2", rest_url=f"http://{base}")
    environ = {"DERIBIT_CLIENT_ID": DERIBIT_ID, "DERIBIT_CLIENT_SECRET": DERIBIT_SECRET}
    engine, recorder = await record_live(nursery, tmp_path / "rec", "deribit", settings, environ, probe)
    live = venue_session(engine, "deribit", DeribitSession)
    assert live.authenticated and "user.orders.any.any.raw" in live.channels
    await until(lambda: bool(probe.of(Ticker, perp)))
    filled = await probe.ctx.buy("deribit", perp, 50)  # a private/buy answer and user.* frames
    await until(lambda: any(isinstance(e, Fill) for e in probe.mine(filled.client_order_id)))
    await trio.sleep(0.3)
    frames = recorded(recorder, "deribit")

    secrets = {f"access token {i}": t for i, t in enumerate(sim.tokens)}
    secrets |= {f"refresh token {i}": t for i, t in enumerate(sim.refresh_tokens)}
    secrets |= {"client secret": DERIBIT_SECRET, "our order id": str(filled.order_id)}
    assert sim.tokens and sim.refresh_tokens  # the session did log in
    assert leaks(frames, secrets) == []
    assert not [f for f in frames if b'"user.' in f or b"access_token" in f]
    assert live.stats.unrecorded > 0  # the auth answer, the private answers, user.* frames
    # Still backtest data: the instruments answers and the market data are there.
    registry, events = replay("deribit", frames)
    assert registry.get("deribit", perp) is not None
    assert any(isinstance(e, Ticker) for e in events) and any(isinstance(e, BookUpdate) for e in events)


async def test_a_live_derive_recording_holds_no_login_answer_key_or_private_frame(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    sim = DeriveSimulator(seed=5, step_s=0.05, settle_after_s=0.2)
    (address,) = await nursery.start(functools.partial(serve_derive, sim))
    base = address.removeprefix("http://")
    perp = "ETH-PERP"
    probe = Probe("p", [Subscription("derive", perp)])
    settings = DeriveSettings(url=f"ws://{base}/ws", rest_url=f"http://{base}")
    environ = {
        "DERIVE_WALLET": DEMO_WALLET,
        "DERIVE_SESSION_KEY": DEMO_SESSION_KEY,
        "DERIVE_SUBACCOUNT_ID": str(DEMO_SUBACCOUNT),
    }
    engine, recorder = await record_live(nursery, tmp_path / "rec", "derive", settings, environ, probe)
    live = venue_session(engine, "derive", DeriveSession)
    assert live.authenticated and f"{DEMO_SUBACCOUNT}.orders" in live.channels
    await until(lambda: bool(probe.of(Ticker, perp)))
    filled = await probe.ctx.buy("derive", perp, Decimal("0.3"))
    await until(lambda: any(isinstance(e, Fill) for e in probe.mine(filled.client_order_id)))
    await trio.sleep(0.3)
    frames = recorded(recorder, "derive")

    key = DEMO_SESSION_KEY.removeprefix("0x")
    secrets = {"session key": key, "our order id": str(filled.order_id)}
    assert leaks(frames, secrets) == []
    private = f'"channel":"{DEMO_SUBACCOUNT}.'.encode()
    assert not [f for f in frames if private in f.replace(b" ", b"")]
    answers = [orjson.loads(f) for f in frames if f.startswith(b'{"id"')]
    assert answers  # instruments and subscriptions
    # The login answer is the wallet's subaccount list; an order answer holds the order.
    assert not [a for a in answers if a.get("result") == live.subaccounts]
    assert not [a for a in answers if isinstance(a.get("result"), dict) and "order" in a["result"]]
    registry, events = replay("derive", frames)
    assert registry.get("derive", perp) is not None
    assert any(isinstance(e, Ticker) for e in events) and any(isinstance(e, BookUpdate) for e in events)


async def test_a_live_polymarket_recording_holds_no_api_credential_or_user_channel_frame(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    sim = PolymarketSimulator(seed=5, step_s=0.05, mine_s=0.1, confirm_s=0.1)
    (address,) = await nursery.start(functools.partial(serve_polymarket, sim))
    base = address.removeprefix("http://")
    token = sim.feed.markets[0].yes
    probe = Probe("p", [Subscription("polymarket", token)])
    settings = PolymarketSettings(url=f"ws://{base}/ws", rest_url=f"http://{base}")
    environ = {
        "POLYMARKET_PRIVATE_KEY": DEMO_ACCOUNT.private_key,
        "POLYMARKET_API_KEY": DEMO_API.key,
        "POLYMARKET_API_SECRET": DEMO_API.secret,
        "POLYMARKET_API_PASSPHRASE": DEMO_API.passphrase,
    }
    catalog = {
        "polymarket": CatalogSettings(cache=tmp_path / "catalog.jsonl", source_url=f"http://{base}/gamma")
    }
    engine, recorder = await record_live(
        nursery, tmp_path / "rec", "polymarket", settings, environ, probe, catalog_settings=catalog
    )
    live = venue_session(engine, "polymarket", PolymarketSession)
    user = live.user
    assert user is not None and "user" in live.channels
    await until(lambda: bool(probe.of(BookUpdate, token)))
    ask = Decimal(repr(probe.of(BookUpdate, token)[-1].best_ask))
    filled = await probe.ctx.buy("polymarket", token, 5, price=ask + Decimal("0.02"))
    await until(lambda: any(isinstance(e, Fill) for e in probe.mine(filled.client_order_id)))
    await until(lambda: user.stats.frames >= 2)  # the user channel told us of it
    await trio.sleep(0.3)
    frames = recorded(recorder, "polymarket")

    secrets = {
        "API key": DEMO_API.key,
        "API secret": DEMO_API.secret,
        "API passphrase": DEMO_API.passphrase,
        "private key": DEMO_ACCOUNT.private_key.removeprefix("0x"),
        "our order id": str(filled.order_id),
    }
    assert leaks(frames, secrets) == []
    assert user.stats.unrecorded == user.stats.frames > 0
    registry, events = replay("polymarket", frames)
    assert registry.get("polymarket", token) is not None
    assert any(isinstance(e, BookUpdate) for e in events)


class _Sink:
    def private(self, events: Any) -> None:
        pass

    async def market(self, events: Any) -> None:
        pass


def _sessions() -> tuple[Any, Any]:
    from tradingd.connectors.deribit.stream import DeribitSession
    from tradingd.connectors.derive.stream import DeriveSession
    from tradingd.engine.runtime.router import MarketRouter

    deribit = DeribitSession(
        DeribitSettings(), registry=InstrumentRegistry(), router=MarketRouter(), sink=_Sink()
    )
    derive = DeriveSession(
        DeriveSettings(), registry=InstrumentRegistry(), router=MarketRouter(), sink=_Sink()
    )
    return deribit, derive


def test_what_is_public_is_told_by_the_frame_head_without_parsing_it() -> None:
    deribit, derive = _sessions()
    book = (
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms","data":{}}}'
    )
    spaced = (
        '{"jsonrpc": "2.0", "method": "subscription", "params": {"channel": "ticker.BTC-PERPETUAL.100ms"}}'
    )
    mine = (
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"user.orders.any.any.raw","data":[]}}'
    )
    heartbeat = '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}'
    assert deribit.recordable(book) and deribit.recordable(book.encode()) and deribit.recordable(spaced)
    assert deribit.recordable(heartbeat)
    assert not deribit.recordable(mine) and not deribit.recordable(mine.replace(":", ": "))
    # Answers: by the method of the request still awaiting them; unknown ids, never.
    auth = deribit._requests.open("public/auth")
    instruments = deribit._requests.open("public/get_instruments")
    order = deribit._requests.open("private/buy")
    assert not deribit.recordable(f'{{"jsonrpc":"2.0","id":{auth},"result":{{"access_token":"x"}}}}')
    assert deribit.recordable(f'{{"jsonrpc":"2.0","id":{instruments},"result":[]}}')
    assert not deribit.recordable(f'{{"jsonrpc":"2.0","id":{order},"result":{{}}}}')
    assert not deribit.recordable('{"jsonrpc":"2.0","id":999,"result":[]}')
    # What cannot be told apart by its head is left out (fail closed), and nothing is parsed:
    # a hostile frame nested 100,000 deep costs a look at its first bytes.
    assert not deribit.recordable(f'{{"result":[],"jsonrpc":"2.0","id":{instruments}}}')
    assert not deribit.recordable("[" * 100_000 + "]" * 100_000)
    assert not deribit.recordable(b"\xff\xfe not utf-8")

    sub = derive._requests.open("subscribe")
    login = derive._requests.open("public/login")
    orderbook = '{"method":"subscription","params":{"channel":"orderbook.ETH-PERP.1.10","data":{}}}'
    assert derive.recordable(orderbook) and derive.recordable('{"jsonrpc":"2.0",' + orderbook[1:])
    assert not derive.recordable('{"method":"subscription","params":{"channel":"30769.orders","data":[]}}')
    assert derive.recordable(f'{{"id":{sub},"result":{{"status":{{}}}}}}')
    assert not derive.recordable(f'{{"id":{login},"result":[30769]}}')


def test_the_session_hook_records_only_public_frames_and_counts_the_rest() -> None:
    deribit, _ = _sessions()
    got: list[tuple[int, bytes | str]] = []
    deribit.on_frame = lambda ts, frame: got.append((ts, frame))
    public = '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms"}}'
    private = (
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"user.trades.any.any.raw","data":[]}}'
    )
    assert deribit.on_frame is not None
    deribit.on_frame(1, public)
    deribit.on_frame(2, private)
    assert got == [(1, public)] and deribit.stats.unrecorded == 1
    deribit.on_frame = None
    assert deribit.on_frame is None
