"""Polymarket's fees under CLOB V2, with overrides from the config.

What the venue does (VENUES.md §2.5, §2.7; Gamma `feeSchedule`):

- Fees are **not signed** in a V2 order: the protocol sets them when an order matches.
- A taker pays `size x rate x (price x (1 - price)) ** exponent` pUSD (`feeSchedule.rate`, e.g. 0.03
  for sports, and `exponent`, 1 in the captures). The fee peaks at price 0.50 and vanishes at the
  extremes. Markets with `feesEnabled: false` charge nothing.
- Makers pay nothing (`takerOnly`) and share `rebateRate` of the takers' fees through a daily pool,
  paid pro rata to each maker's filled volume.

In which asset the fee is taken, and how it is reported (sources disagree; the frames win):

- **V1** (the exchange until the V2 cutover of 2026-04-28, docs.polymarket.com/v2-migration): the
  fee was taken from what the taker receives. `Polymarket/ctf-exchange`
  `src/exchange/libraries/CalculatorHelper.sol` `calculateFee` computes a BUY's fee "on Token
  Proceeds" (`feeRateBps x min(p, 1-p) x outcomeTokens / p`) and a SELL's "on Collateral
  proceeds"; `mixins/Trading.sol` `_matchOrders` pays the taker `taking - fee` of the asset it
  buys and `_chargeFee` sends the fee in that asset to the operator. The fee page said so
  ("fees are collected in shares on buy orders and USDC on sell orders"), and so did the frames:
  py-clob-client #311 (2026-03-31): BUY 5 @ 0.29 answered `takingAmount: "5"`, the exit of 5
  was refused with HTTP 400 `{"error": "not enough balance / allowance: the balance is not
  enough -> balance: 4893500, order amount: 5000000"}`: 4.8935 shares held, the fee
  5 x 0.03 x 0.29 x 0.71 = 0.030885 taken as 0.030885 / 0.29 = 0.1065 shares (py-clob-client
  #247, #265 likewise).
- **V2** (what this connector signs for, §2.0, §2.5): the fee is **pUSD on both sides**, and a
  taker BUY receives every share it matched. The live V2 taker fill of py-clob-client-v2 #107
  (2026-08-04): BUY 25 @ 0.13 on a market with `fd {"r": 0.05, "e": 1, "to": true}`: shares
  0 -> 25.000000 ("full size, NOTHING deducted in shares"), pUSD 388.39 -> 385.00 (3.25 notional
  + 0.14 fee: 25 x 0.05 x 0.13 x 0.87 = 0.141375), and its trade record said
  `fee_rate_bps=0`. The V2 client budgets a market buy as `amount + fee` pUSD
  (py-clob-client-v2 `utilities.adjust_market_buy_amount` and its tests
  `test_fee_calculations.py`: "adjusted + fee == amount"); the V2 exchange contract charges a BUY
  taker's fee from its collateral (`Trading.sol` `_settleTakerOrder`: "Charge fee on Collateral
  proceeds if Sell, or on order maker Collateral if Buy", `_chargeFee(maker, fee)` moves asset 0,
  the collateral; read in the public mirror `Alatharee21/ctf-exchange-v2`); decoded V2
  transactions show the fee as a pUSD amount (10.132090 for 580.677591 shares @ 0.527 at rate
  0.07, a third-party decode of 90 V2 transactions [T]). The current fee page no longer says
  "collected in shares"; the older text that says so is the V1 rule (the frames win).
- Reports: a user `trade` event's `size` (and a maker order's `matched_amount`) is the matched
  size, the shares that moved; no fee amount is sent; `fee_rate_bps` is not the rate charged (0 on
  the V2 fill above; V1 orders signed a ceiling, "1000", py-clob-client #247), nor is `GET
  /fee-rate`'s `base_fee` (1000 for every fee-bearing market whatever its rate, 0 for a free
  one: py-clob-client-v2 #107, and the maintainers' PR #110 "an authorization/ceiling value,
  not the effective rate"). The decoder computes the fee from the market's schedule
  (`codec.py`), which the session asks for (`GET /clob-markets/{condition_id}`, `fd`) when it
  loads the market (`stream.py`); orders in a market whose schedule is unknown are refused
  (`execution.py`), and a fill of one (an order of another run or client) is booked at the
  schedule learned on demand, or, when the venue cannot say, with no fee and a critical alert:
  never at a guessed rate.
- Rounding: "Fees are rounded to 5 decimal places. The smallest fee charged is 0.00001 USDC.
  Anything smaller rounds to zero" (docs.polymarket.com/trading/fees, "Fee Precision").

What is modelled here, and why:

- The taker fee, by the formula, rounded **down** to 5 decimals (0.00001 pUSD), as NautilusTrader
  reports the venue charging [T], in pUSD whichever the side (V2, above): a fill's size is the
  shares it moved, and a taker buy costs `size x price + fee` pUSD.
- The rate is the instrument's `taker_fee` (the market's schedule, `instruments.py`); `rate`
  overrides it for every market, and `default_rate` applies where the schedule is unknown (CLOB
  `/markets` objects do not carry it). The exponent is not part of the engine's `Instrument`, so
  it is one setting (`exponent`, default 1, what every schedule seen so far uses).
- The maker rebate is **not** counted by default: it is a share of a pool paid later, whose size
  depends on other makers, so a per-fill figure would be income a backtest cannot know it earns.
  `maker_rebate = true` approximates it per fill as `-rebate_rate x` the fee a taker would have
  paid for the same fill.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal
from typing import Any, Final

import attrs

from tradingd.engine.venue import BadNumber, Instrument, Liquidity, known_overrides, to_decimal

from .instruments import COLLATERAL

__all__ = ["FEE_QUANTUM", "PolymarketFees", "taker_fee"]

FEE_QUANTUM: Final = Decimal("0.00001")


def _opt_dec(v: Any) -> Decimal | None:
    return None if v is None else _dec(v)


def _dec(v: Any) -> Decimal:
    d = to_decimal(v, "fee setting")
    if d < 0:
        raise BadNumber(f"fee setting: expected a non-negative number, got {v!r}")
    return d


def taker_fee(size: Decimal, price: Decimal, rate: Decimal, exponent: Decimal = Decimal(1)) -> Decimal:
    """The pUSD fee of a taker fill of `size` shares at `price`: `size x rate x (p(1-p))**exponent`,
    rounded down to 0.00001."""
    if rate == 0 or size == 0:
        return Decimal(0)
    curve = price * (1 - price)
    if curve <= 0:
        return Decimal(0)
    weight = curve if exponent == 1 else curve**exponent
    return (size * rate * weight).quantize(FEE_QUANTUM, rounding=ROUND_DOWN)


@attrs.frozen
class PolymarketFees:
    """The fee model (engine `FeeModel`). Every field is a `[venues.polymarket.fees]` override."""

    rate: Decimal | None = attrs.field(default=None, converter=_opt_dec)
    default_rate: Decimal = attrs.field(default=Decimal(0), converter=_dec)
    exponent: Decimal = attrs.field(default=Decimal(1), converter=_dec)
    maker_rebate: bool = False
    rebate_rate: Decimal = attrs.field(default=Decimal("0.25"), converter=_dec)

    @rebate_rate.validator
    def _check_rebate(self, _: Any, value: Decimal) -> None:
        if value > 1:
            raise ValueError(f"rebate_rate is a fraction of the taker fee, at most 1, got {value}")

    @classmethod
    def from_config(cls, overrides: Mapping[str, Any]) -> PolymarketFees:
        kw = known_overrides(cls, overrides)
        if "maker_rebate" in overrides and not isinstance(overrides["maker_rebate"], bool):
            raise TypeError(f"maker_rebate must be true or false, got {overrides['maker_rebate']!r}")
        return cls(**kw)

    def rate_for(self, inst: Instrument) -> Decimal:
        """The taker rate that applies to `inst`."""
        if self.rate is not None:
            return self.rate
        if inst.taker_fee is not None:
            return inst.taker_fee
        return self.default_rate

    def fee(
        self, inst: Instrument, price: Decimal, size: Decimal, liquidity: Liquidity, index: float | None
    ) -> tuple[Decimal, str]:
        equivalent = taker_fee(size, price, self.rate_for(inst), self.exponent)
        if liquidity is Liquidity.TAKER:
            return equivalent, COLLATERAL
        if inst.maker_fee is not None and inst.maker_fee > 0:
            # A schedule that is not taker-only charges makers by the same curve.
            return taker_fee(size, price, inst.maker_fee, self.exponent), COLLATERAL
        if self.maker_rebate:
            return -(equivalent * self.rebate_rate).quantize(FEE_QUANTUM, rounding=ROUND_DOWN), COLLATERAL
        return Decimal(0), COLLATERAL
