"""How fast the Derive connector decodes wire frames and signs orders (STYLE.md habit 7).

Run: `python bench/bench_derive.py [--frames N] [--repeat R] [--orders M]`. For each frame type it
decodes N compact frames with `DeriveDecoder.decode` (R repetitions, the best one reported) and
prints frames/s and microseconds per frame, JSON parsing included as in a backtest, next to what a
generic `msgspec.json.decode` alone costs on the same frames. Orderbook snapshots are measured as
a realistic channel (consecutive `publish_id`s, so every one is applied and none is a gap).

Then it signs M `private/order` actions with `OrderSigner.sign_order` (the full path: checks,
1e18 fixed point, ABI encoding, three keccaks, a secp256k1 signature) and M login signatures, best
of R, and reports signatures per second; and, for scale, the official `derive-action-signing`
package on the same order when it is installed (a test-only dependency).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal

from _common import Case, best_of, decode_parser, decoding, print_decoding

from tradingd.connectors.derive.codec import DeriveDecoder
from tradingd.connectors.derive.instruments import DeriveInstrumentInfo
from tradingd.connectors.derive.signing import TESTNET, Credentials, NonceSource, OrderSigner, login_signature
from tradingd.engine.model import InstrumentRegistry

INSTRUMENTS = (
    b'{"id":1,"result":[{"instrument_type":"perp","instrument_name":"ETH-PERP","is_active":true,'
    b'"tick_size":"0.01","minimum_amount":"0.01","maximum_amount":"10000","amount_step":"0.01",'
    b'"maker_fee_rate":"0.0001","taker_fee_rate":"0.0006","base_fee":"0.1","base_currency":"ETH",'
    b'"quote_currency":"USDC","option_details":null,"perp_details":{"index":"ETH-USD"},'
    b'"base_asset_address":"0xAf65752C4643E25C02F693f9D4FE19cF23a095E3","base_asset_sub_id":"0"}]}'
)

# VENUES.md §3.3 live capture (production option, 2026-03-04), verbatim.
OPTION_SLIM = (
    b'{"method":"subscription","params":{"channel":"ticker_slim.BTC-20260305-69500-P.100","data":{"timestamp":'
    b'1772624842966,"instrument_ticker":{"t":1772624842966,"A":"0.4","a":"414","B":"0.4","b":"341","f":null,'
    b'"option_pricing":{"d":"-0.24967","t":"-453.85103","g":"0.00013192","v":"10.84014","i":"0.70513",'
    b'"r":"0.84114","f":"71067","m":"364","df":"1","bi":"0.68323","ai":"0.75013"},"I":"71078","M":"364",'
    b'"stats":{"c":"1.3","v":"91411.632","pr":"787.353","n":2,"oi":"1.3","h":"943.464","l":"504.314",'
    b'"p":"-0.465"},"minp":"4","maxp":"1968"}}}}'
)

# The captured perps/ws_ticker_slim_eth.json in its envelope.
PERP_SLIM = (
    b'{"method":"subscription","params":{"channel":"ticker_slim.ETH-PERP.100","data":{"instrument_ticker":'
    b'{"A":"1.505","B":"1.505","I":"1991.79","M":"1992.49","a":"1992.37","b":"1992.36","f":"0.000012500",'
    b'"maxp":"2032.33","minp":"1953.45","option_pricing":null,"stats":{"c":"3088.047","h":"2093.59",'
    b'"l":"1971.4","n":2599,"oi":"4248.342","p":"-0.045","pr":"6248579.356","v":"6249174.098"},'
    b'"t":1779953796714},"timestamp":1779953796714}}}'
)

# The shape of the captured spot/ws_trade_eth.json (a trade record with the account fields).
TRADE_1 = (
    b'{"method":"subscription","params":{"channel":"trades.ETH-PERP","data":[{"trade_id":"%d",'
    b'"instrument_name":"ETH-PERP","timestamp":1775245899929,"trade_price":"2050.17","trade_amount":"0.1",'
    b'"mark_price":"2052.7251","index_price":"2052.7251","direction":"sell","quote_id":null,"rfq_id":null,'
    b'"wallet":"0xB45Be91c81430D0098cbA69A59Bd45323CF33B80","subaccount_id":143373,"tx_status":"requested",'
    b'"tx_hash":null,"trade_fee":"0.1","expected_rebate":"0","liquidity_role":"taker","realized_pnl":"0",'
    b'"realized_pnl_excl_fees":"0","extra_fee":"0"}]}}'
)


def _books(n: int, levels: int) -> Iterator[bytes]:
    """A channel of `n` whole top-`levels` books with consecutive publish ids, sizes varying."""
    for k in range(n):
        bids = ",".join(f'["{2050.0 - 0.01 * i:.2f}","{1.0 + (i + k) % 7 * 0.25:g}"]' for i in range(levels))
        asks = ",".join(f'["{2050.01 + 0.01 * i:.2f}","{1.5 + (i + k) % 5 * 0.25:g}"]' for i in range(levels))
        yield (
            '{"method":"subscription","params":{"channel":"orderbook.ETH-PERP.1.10","data":'
            f'{{"timestamp":1779605870623,"instrument_name":"ETH-PERP","publish_id":{1000 + k},'
            f'"bids":[{bids}],"asks":[{asks}]}}}}}}'
        ).encode()


def _check(dec: DeriveDecoder) -> None:
    assert dec.stats.gaps == 0
    assert dec.stats.malformed == 0


def _measure(prelude: Sequence[bytes], frames: Sequence[bytes], repeat: int) -> tuple[float, float, int]:
    """(seconds to decode `frames` with a fresh decoder that has seen `prelude`, seconds for a
    generic `msgspec.json.decode` of them, events produced), best of `repeat` each."""
    return decoding(lambda: DeriveDecoder(InstrumentRegistry()), prelude, frames, repeat, _check)


KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # VENUES.md §3.6 test key
OWNER = "0x8772185a1516f0d61fC1c2524926BfC69F95d698"
INFO = DeriveInstrumentInfo(
    name="ETH-PERP",
    instrument_type="perp",
    asset_address="0xAf65752C4643E25C02F693f9D4FE19cF23a095E3",
    sub_id=0,
    amount_step=Decimal("0.01"),
    minimum_amount=Decimal("0.01"),
    maximum_amount=Decimal(10000),
    base_fee=Decimal("0.1"),
    maker_fee_rate=Decimal("0.0001"),
    taker_fee_rate=Decimal("0.0006"),
)


def _signing(orders: int, repeat: int) -> list[tuple[str, float]]:
    creds = Credentials(OWNER, KEY, 30769)
    signer = OrderSigner(creds, TESTNET, nonces=NonceSource())
    amounts = [Decimal("0.01") * (1 + i % 300) for i in range(orders)]
    prices = [Decimal("2050.17") + Decimal("0.01") * (i % 500) for i in range(orders)]
    fee = Decimal("1.25")

    def sign_all() -> None:
        sign = signer.sign_order
        for a, p in zip(amounts, prices, strict=True):
            sign(INFO, direction="buy", amount=a, limit_price=p, max_fee=fee, label="bench")

    def login_all() -> None:
        key = creds.key
        for i in range(orders):
            login_signature(key, 1_700_000_000_000 + i)

    results = [
        ("signed orders (OrderSigner.sign_order)", best_of(sign_all, repeat)),
        ("login signatures", best_of(login_all, repeat)),
    ]
    try:
        from derive_action_signing import SignedAction, TradeModuleData  # type: ignore[import-untyped]
    except ImportError:
        return results

    def official_all() -> None:
        for i, (a, p) in enumerate(zip(amounts, prices, strict=True)):
            SignedAction(
                subaccount_id=30769,
                owner=OWNER,
                signer=creds.signer,
                signature_expiry_sec=1_800_000_000,
                nonce=1_700_000_000_000_000 + i,
                module_address=TESTNET.trade_module,
                module_data=TradeModuleData(INFO.asset_address, 0, p, a, fee, 30769, True),
                DOMAIN_SEPARATOR="0x" + TESTNET.domain_separator.hex(),
                ACTION_TYPEHASH="0x4d7a9f27c403ff9c0f19bce61d76d82f9aa29f8d6d4b0c5474607d9770d1af17",
            ).sign(KEY)

    results.append(("official derive-action-signing", best_of(official_all, repeat)))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = decode_parser(__doc__, 100_000, 15)
    parser.add_argument("--orders", type=int, default=2_000, help="signatures per repetition")
    args = parser.parse_args(argv)
    n, repeat = args.frames, args.repeat
    known = [INSTRUMENTS]  # a decoder that knows ETH-PERP
    cases: list[Case] = [
        ("ticker_slim option", known, [OPTION_SLIM] * n),
        ("ticker_slim perp", known, [PERP_SLIM] * n),
        ("orderbook snapshot (10+10)", known, list(_books(n // 4, 10))),
        ("orderbook snapshot (1+1)", known, list(_books(n, 1))),
        ("trades (1 trade)", known, [TRADE_1 % i for i in range(n)]),
    ]
    print_decoding(cases, repeat, _measure)
    print()
    print(f"{'signing':<40} {'per second':>10} {'us each':>9}")
    for name, seconds in _signing(args.orders, max(1, min(repeat, 5))):
        print(f"{name:<40} {args.orders / seconds:>10,.0f} {seconds / args.orders * 1e6:>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
