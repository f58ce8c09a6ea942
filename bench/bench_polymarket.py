"""How fast the Polymarket venue code is (STYLE.md habit 7): book updates applied, frames decoded,
orders signed.

Run: `python bench/bench_polymarket.py [--frames N] [--repeat R]`. Every figure is the best of R
repetitions (the build machines are shared; timings are noisy).

- book updates: `LocalOrderBook.change` alone, and level changes applied through
  `PolymarketDecoder.decode` of realistic `price_change` frames (each frame: a YES entry and the NO
  token's mirror entry, the shape of VENUES.md §2.2's sample and of the venue's frames);
- decode: frames/s and us/frame per message type, JSON parsing included as in a backtest, next to
  what a generic `msgspec.json.decode` alone costs on the same frames;
- replay: a generated sample (30 minutes by default) read from disk (zstd) and decoded, end to end;
- signing: limit orders checked, amounts computed, EIP-712 signed (coincurve), with their POST
  body and L2 HMAC headers; next to eth-account's own `sign_message` path and, when installed, the
  official client's order builder, on the same order.

Targets on the 2-core build machine: a 2-entry price_change <= 8 us, >= 250k level changes/s
through the decoder, >= 5k signed orders/s (a strategy never waits on signing).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import msgspec
import orjson
from _common import Case, best_of, decode_parser, decoding, print_decoding

from tradingd.connectors.polymarket.book import LocalOrderBook
from tradingd.connectors.polymarket.codec import PolymarketDecoder
from tradingd.connectors.polymarket.signing import (
    ApiCredentials,
    OrderSigner,
    OrderType,
    l2_headers,
    order_body,
)
from tradingd.engine import Instrument, InstrumentKind, Side
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.store import RecordingReader
from tradingd.simulators.polymarket.generator import generate_sample

YES = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
MARKET = "0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1"
KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
API = ApiCredentials(
    "00000000-0000-0000-0000-000000000001", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "pass"
)


def _book(token: str, mid: int) -> dict[str, object]:
    """A 10+10 level book around `mid` cents, best levels last (§2.2)."""
    bids = [{"price": f"0.{mid - 1 - i:02d}", "size": f"{100 + 7 * i}"} for i in reversed(range(10))]
    asks = [{"price": f"0.{mid + 1 + i:02d}", "size": f"{120 + 5 * i}"} for i in reversed(range(10))]
    return {
        "event_type": "book",
        "asset_id": token,
        "market": MARKET,
        "bids": bids,
        "asks": asks,
        "timestamp": "1757908892351",
        "hash": "0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d",
    }


SNAPSHOTS = orjson.dumps([_book(YES, 50), _book(NO, 50)])


def _price_changes(n: int) -> list[bytes]:
    """A YES bid level resized (and the NO ask that mirrors it), the tops unchanged."""
    out = []
    for k in range(n):
        size = str(100 + k % 50)
        changes = [
            {
                "asset_id": YES,
                "price": "0.47",
                "size": size,
                "side": "BUY",
                "hash": "56621a121a47ed9333273e21c83b660cff37ae50",
                "best_bid": "0.49",
                "best_ask": "0.51",
            },
            {
                "asset_id": NO,
                "price": "0.53",
                "size": size,
                "side": "SELL",
                "hash": "1895759e4df7a796bf4f1c5a5950b748306923e2",
                "best_bid": "0.49",
                "best_ask": "0.51",
            },
        ]
        msg = {
            "market": MARKET,
            "price_changes": changes,
            "timestamp": "1757908892351",
            "event_type": "price_change",
        }
        out.append(orjson.dumps(msg))
    return out


LAST_TRADE = orjson.dumps(
    {
        "asset_id": YES,
        "event_type": "last_trade_price",
        "fee_rate_bps": "0",
        "market": MARKET,
        "price": "0.51",
        "side": "BUY",
        "size": "219.217767",
        "timestamp": "1750428146322",
    }
)
BEST_BID_ASK = orjson.dumps(
    {
        "event_type": "best_bid_ask",
        "market": MARKET,
        "asset_id": YES,
        "best_bid": "0.49",
        "best_ask": "0.51",
        "spread": "0.02",
        "timestamp": "1766789469958",
    }
)
USER_ORDER = orjson.dumps(
    {
        "event_type": "order",
        "asset_id": YES,
        "associate_trades": None,
        "id": "0xff35",
        "market": MARKET,
        "order_owner": "k",
        "original_size": "10",
        "outcome": "YES",
        "owner": "k",
        "price": "0.57",
        "side": "SELL",
        "size_matched": "0",
        "timestamp": "1672290687",
        "type": "PLACEMENT",
    }
)


def _user_trades(n: int) -> list[bytes]:
    return [
        orjson.dumps(
            {
                "asset_id": YES,
                "event_type": "trade",
                "id": f"t{k}",
                "maker_orders": [],
                "market": MARKET,
                "owner": "k",
                "price": "0.57",
                "side": "BUY",
                "size": "10",
                "status": "MATCHED",
                "taker_order_id": "0x06bc",
                "timestamp": "1672290701",
                "trader_side": "TAKER",
                "type": "TRADE",
            }
        )
        for k in range(n)
    ]


def _check(dec: PolymarketDecoder) -> None:
    # The normal path is what is measured: no gap, nothing malformed.
    assert dec.stats.gaps == 0
    assert dec.stats.malformed == 0


def _decoding(prelude: Sequence[bytes], frames: Sequence[bytes], repeat: int) -> tuple[float, float, int]:
    """(seconds to decode `frames` after `prelude`, seconds for msgspec's generic parse alone,
    events), best of `repeat` each."""
    return decoding(lambda: PolymarketDecoder(InstrumentRegistry()), prelude, frames, repeat, _check)


def _book_changes(n: int, repeat: int) -> float:
    book = LocalOrderBook(YES)
    book.snapshot([(0.4 + 0.01 * i, 100.0) for i in range(10)], [(0.51 + 0.01 * i, 100.0) for i in range(10)])
    prices = [0.4 + 0.01 * (k % 10) for k in range(n)]

    def run() -> None:
        change = book.change
        for k, p in enumerate(prices):
            change("BUY", p, 100.0 + (k & 7))

    return best_of(run, repeat)


def _signing(n: int, repeat: int) -> dict[str, float]:
    inst = Instrument(
        venue="polymarket",
        symbol=YES,
        kind=InstrumentKind.OUTCOME,
        base=MARKET,
        quote="pUSD",
        settle="pUSD",
        tick_size="0.01",
        min_size="5",
    )
    signer = OrderSigner(KEY, salt=lambda now: now // 3, clock_ms=lambda: 1_760_000_000_000)
    price, size = Decimal("0.57"), Decimal("25.5")
    address = signer.address

    def ours() -> None:
        for _ in range(n):
            order = signer.limit_order(inst, Side.BUY, price, size, neg_risk=False)
            body = order_body(order, owner=API.key, order_type=OrderType.GTC)
            l2_headers(API, address, method="POST", path="/order", body=body, timestamp=1_760_000_000)

    out = {"ours": best_of(ours, repeat) / n}
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    order = signer.limit_order(inst, Side.BUY, price, size, neg_risk=False)
    fields = (
        ("salt", "uint256"),
        ("maker", "address"),
        ("signer", "address"),
        ("tokenId", "uint256"),
        ("makerAmount", "uint256"),
        ("takerAmount", "uint256"),
        ("side", "uint8"),
        ("signatureType", "uint8"),
        ("timestamp", "uint256"),
        ("metadata", "bytes32"),
        ("builder", "bytes32"),
    )
    domain_fields = (
        ("name", "string"),
        ("version", "string"),
        ("chainId", "uint256"),
        ("verifyingContract", "address"),
    )
    typed = {
        "primaryType": "Order",
        "types": {
            "EIP712Domain": [{"name": k, "type": t} for k, t in domain_fields],
            "Order": [{"name": k, "type": t} for k, t in fields],
        },
        "domain": {
            "name": "Polymarket CTF Exchange",
            "version": "2",
            "chainId": 137,
            "verifyingContract": order.exchange,
        },
        "message": {
            "salt": order.salt,
            "maker": order.maker,
            "signer": order.signer,
            "tokenId": int(YES),
            "makerAmount": order.maker_amount,
            "takerAmount": order.taker_amount,
            "side": 0,
            "signatureType": 0,
            "timestamp": order.timestamp_ms,
            "metadata": bytes(32),
            "builder": bytes(32),
        },
    }

    def eth_account_path() -> None:
        for _ in range(n):
            signed = Account.sign_message(encode_typed_data(full_message=typed), private_key=KEY)
        assert "0x" + signed.signature.hex().removeprefix("0x") == order.signature  # the same bytes

    out["eth_account"] = best_of(eth_account_path, repeat) / n
    try:
        from py_clob_client_v2.order_utils import ExchangeOrderBuilderV2, OrderDataV2  # type: ignore[import-untyped]
        from py_clob_client_v2.order_utils.model.side import Side as OfficialSide  # type: ignore[import-untyped]
        from py_clob_client_v2.signer import Signer  # type: ignore[import-untyped]
    except ImportError:
        return out
    official = ExchangeOrderBuilderV2(
        order.exchange, 137, Signer(KEY, 137), generate_salt=lambda: str(order.salt)
    )
    data = OrderDataV2(
        maker=address,
        tokenId=YES,
        makerAmount=str(order.maker_amount),
        takerAmount=str(order.taker_amount),
        side=OfficialSide.BUY,
        signer=address,
        timestamp=str(order.timestamp_ms),
    )

    def official_path() -> None:
        for _ in range(n):
            signed = official.build_signed_order(data)
        assert signed.signature == order.signature

    out["official"] = best_of(official_path, repeat) / n
    return out


def _replay(hours: float, repeat: int) -> tuple[float, int, int]:
    """(best seconds, frames, events) to read and decode a generated sample `hours` long."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sample.rec.zst"
        generate_sample(path, {"hours": hours})
        result = {"frames": 0, "events": 0}

        def run() -> None:
            dec = PolymarketDecoder(InstrumentRegistry())
            frames = events = 0
            for ts, f in RecordingReader(path):
                events += len(dec.decode(f, ts or 0))
                frames += 1
            result["frames"], result["events"] = frames, events

        return best_of(run, repeat), result["frames"], result["events"]


def main(argv: list[str] | None = None) -> int:
    parser = decode_parser(__doc__, 50_000, 7, "frames (or orders / 25) per repetition")
    parser.add_argument("--replay-hours", type=float, default=0.5, help="length of the replayed sample")
    args = parser.parse_args(argv)
    n, repeat = args.frames, args.repeat
    print(f"python {sys.version.split()[0]}, msgspec {msgspec.__version__}; best of {repeat}")

    seconds = _book_changes(n, repeat)
    alone = f"{n / seconds:>11,.0f} changes/s  {seconds / n * 1e6:.2f} us"
    print(f"\nbook: LocalOrderBook.change alone         {alone}")
    changes = _price_changes(n)
    seconds, _, _ = _decoding([SNAPSHOTS], changes, repeat)
    via = f"{2 * n / seconds:>11,.0f} changes/s  {seconds / n * 1e6:.2f} us/frame"
    print(f"book: price_change frames via the decoder {via}")

    print()
    cases: list[Case] = [
        ("price_change (2 tokens)", [SNAPSHOTS], changes),
        ("book snapshot (10+10, x2)", [], [SNAPSHOTS] * (n // 10)),
        ("last_trade_price", [], [LAST_TRADE] * n),
        ("best_bid_ask", [], [BEST_BID_ASK] * n),
        ("PONG", [], [b"PONG"] * n),
        ("user order", [], [USER_ORDER] * (n // 5)),
        ("user trade (MATCHED)", [], _user_trades(n // 5)),
    ]
    print_decoding(cases, repeat, _decoding, versions=False)

    seconds, frames_n, events_n = _replay(args.replay_hours, max(1, repeat // 3))
    rates = f"{frames_n / seconds:,.0f} frames/s, {events_n / seconds:,.0f} events/s"
    print(
        f"\nreplay: a {args.replay_hours:g} h sample (.zst), {frames_n:,} frames in {seconds:.2f} s: {rates}"
    )

    orders = max(20, n // 25)
    timings = _signing(orders, repeat)
    paths = (
        ("ours", "check + amounts + EIP-712 + coincurve + body + L2 HMAC"),
        ("eth_account", "eth-account encode_typed_data + sign_message (same bytes)"),
        ("official", "py-clob-client-v2 ExchangeOrderBuilderV2 (same bytes)"),
    )
    print()
    for key, label in paths:
        if key in timings:
            t = timings[key]
            print(f"signing: {label:<58} {1 / t:>8,.0f} orders/s {t * 1e6:>8.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
