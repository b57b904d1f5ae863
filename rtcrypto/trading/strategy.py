"""The one trading strategy (the book's rules), shared by the live trader, the paper trader and
the backtester. Pure: no I/O, no clock, no prices; it maps this minute's inputs to an intent.

Rules (DESIGN.md, parity mode):

- forecast says **sell** and the BTC balance is > 0: sell all of it, immediate-or-cancel limit at
  the bid;
- forecast says **buy**, no BTC held yet ("not already in"), and the latest liquidity ratio
  (ask / bid price-weighted volume) is strictly inside ``(ratio_low, ratio_high)``: buy with
  ``trade_pct`` of the USD balance, immediate-or-cancel limit at the ask;
- anything else: no order.

The liquidity gate can be switched off (``liquidity_gate=False``) for backtests on minute bars,
which have no order book; a report must say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rtcrypto.config import Settings


class Side(StrEnum):
    """A forecast's direction for a minute, and an order's side."""

    buy = "buy"
    sell = "sell"


class PriceReference(StrEnum):
    """Which side of the book an order's limit price is taken from."""

    bid = "bid"
    ask = "ask"


class TimeInForce(StrEnum):
    immediate_or_cancel = "immediate-or-cancel"


@dataclass(frozen=True, slots=True)
class Balances:
    """Spendable balances: ``usd`` in USD, ``btc`` in BTC."""

    usd: Decimal
    btc: Decimal

    def __post_init__(self) -> None:
        if self.usd < 0 or self.btc < 0:
            raise ValueError(f"balances cannot be negative: usd={self.usd} btc={self.btc}")


@dataclass(frozen=True, slots=True)
class StrategyParams:
    """Knobs of the book's strategy (defaults are the book's)."""

    trade_pct: Decimal = Decimal("0.9")  # fraction of the USD balance one buy spends, in (0, 1]
    ratio_low: Decimal = Decimal("0.1")  # buy only while ratio_low < ask/bid ratio < ratio_high
    ratio_high: Decimal = Decimal("2")
    liquidity_gate: bool = True  # False: buy without a ratio (backtests on minute bars)

    def __post_init__(self) -> None:
        if not Decimal(0) < self.trade_pct <= Decimal(1):
            raise ValueError(f"trade_pct must be in (0, 1], got {self.trade_pct}")
        if not Decimal(0) <= self.ratio_low < self.ratio_high:
            raise ValueError(
                f"need 0 <= ratio_low < ratio_high, got {self.ratio_low} and {self.ratio_high}"
            )

    @classmethod
    def from_settings(cls, settings: Settings, *, liquidity_gate: bool = True) -> StrategyParams:
        """Params from ``RTC_TRADE_PCT``, ``RTC_LIQUIDITY_RATIO_LOW`` / ``_HIGH``."""
        return cls(
            trade_pct=settings.trade_pct,
            ratio_low=settings.liquidity_ratio_low,
            ratio_high=settings.liquidity_ratio_high,
            liquidity_gate=liquidity_gate,
        )


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order the strategy wants; the execution layer prices it from the book's bid or ask.

    A sell names ``base_quantity`` (BTC); a buy names ``quote_amount`` (USD to spend, fees
    included), because its BTC quantity depends on the ask at execution time.
    """

    side: Side
    limit_reference: PriceReference
    time_in_force: TimeInForce
    base_quantity: Decimal | None = None
    quote_amount: Decimal | None = None
    reason: str = ""


def liquidity_ok(ratio: Decimal | float | None, params: StrategyParams) -> bool:
    """True if the buy gate is open: switched off, or ``ratio`` strictly inside the bounds."""
    if not params.liquidity_gate:
        return True
    if ratio is None or (isinstance(ratio, float) and not math.isfinite(ratio)):
        return False  # no or broken liquidity reading: stay out
    return params.ratio_low < ratio < params.ratio_high


def decide_order(
    forecast_side: Side | None,
    balances: Balances,
    liquidity_ratio: Decimal | float | None,
    params: StrategyParams,
) -> OrderIntent | None:
    """The order to send this minute, or None.

    ``forecast_side`` is the published forecast's side for this minute (None: no forecast);
    ``liquidity_ratio`` the latest ask/bid ratio of ``liquidity.minute.v1`` (None: none yet).
    """
    if forecast_side is Side.sell:
        if balances.btc > 0:
            return OrderIntent(
                side=Side.sell,
                limit_reference=PriceReference.bid,
                time_in_force=TimeInForce.immediate_or_cancel,
                base_quantity=balances.btc,
                reason="forecast sell: close the position",
            )
        return None
    if forecast_side is Side.buy:
        if balances.btc > 0:
            return None  # already in
        if not liquidity_ok(liquidity_ratio, params):
            return None
        quote_amount = balances.usd * params.trade_pct
        if quote_amount <= 0:
            return None
        return OrderIntent(
            side=Side.buy,
            limit_reference=PriceReference.ask,
            time_in_force=TimeInForce.immediate_or_cancel,
            quote_amount=quote_amount,
            reason="forecast buy: open a position",
        )
    return None
