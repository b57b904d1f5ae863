"""The P&L ledger: fills with taker fees, balances, round trips scored against the last buy.

Pure bookkeeping in Decimal (no I/O, no clock): the trader records the exchange's fills and
the backtests the paper fill model's (``trading.account``) with ``Ledger.record``.
``Ledger.execute`` (fill an intent whole at one price, unrounded fee) only builds test scenarios. Money is in USD, quantities in BTC, prices in USD per BTC, times in epoch
milliseconds (UTC). Fees are a percentage of the notional (``taker_fee_pct=0.25`` is 0.25 %):
a buy pays its fee on top, out of the quote amount the intent allows; a sell's fee comes out of
the proceeds. BTC quantities are rounded down to ``base_increment`` (1 satoshi by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

import numpy as np
import numpy.typing as npt

from rtcrypto.trading.strategy import Balances, OrderIntent, Side

SATOSHI = Decimal("0.00000001")
HUNDRED = Decimal(100)


class LedgerError(ValueError):
    """A fill the balances cannot cover (selling BTC not held, spending USD not there)."""


@dataclass(frozen=True, slots=True)
class Fill:
    """One executed order: ``quote_amount`` = price x quantity (USD), before ``fee_usd``."""

    ts_event_ms: int
    side: Side
    price: Decimal
    base_quantity: Decimal
    quote_amount: Decimal
    fee_usd: Decimal
    balances_after: Balances


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """A sell scored against the last buy (the book's rule), net of both fees in USD."""

    entry: Fill
    exit: Fill
    pnl_usd: Decimal
    return_pct: Decimal  # pnl over the entry's all-in cost of the quantity sold, in percent


class Ledger:
    """Balances and the history of fills; mutable, deterministic, no I/O."""

    def __init__(
        self,
        usd: Decimal,
        btc: Decimal = Decimal(0),
        *,
        taker_fee_pct: Decimal = Decimal("0.25"),
        base_increment: Decimal = SATOSHI,
    ) -> None:
        if taker_fee_pct < 0:
            raise ValueError(f"taker_fee_pct must be >= 0, got {taker_fee_pct}")
        self.initial = Balances(usd=Decimal(usd), btc=Decimal(btc))
        self.balances = self.initial
        self.fee_rate = Decimal(taker_fee_pct) / HUNDRED
        self.base_increment = base_increment
        self.fills: list[Fill] = []
        self.round_trips: list[RoundTrip] = []
        self.last_buy: Fill | None = None

    # --- execution -----------------------------------------------------------------------------

    def execute(self, intent: OrderIntent, price: Decimal, ts_event_ms: int) -> Fill | None:
        """Fill ``intent`` completely at ``price`` (paper trading, backtests); None if nothing fills.

        A buy gets the largest quantity whose cost plus fee fits ``quote_amount``; a sell sells
        ``base_quantity`` (at most the balance).
        """
        if price <= 0:
            raise LedgerError(f"price must be > 0, got {price}")
        if intent.side is Side.buy:
            budget = min(intent.quote_amount or Decimal(0), self.balances.usd)
            all_in_price = price * (1 + self.fee_rate)
            quantity = (budget / all_in_price).quantize(self.base_increment, rounding=ROUND_DOWN)
            if quantity * all_in_price > budget:  # the division rounded up at its last digit
                quantity -= self.base_increment
        else:
            quantity = min(intent.base_quantity or Decimal(0), self.balances.btc)
        if quantity <= 0:
            return None
        quote_amount = price * quantity
        return self.record(intent.side, price, quantity, quote_amount * self.fee_rate, ts_event_ms)

    def record(
        self, side: Side, price: Decimal, base_quantity: Decimal, fee_usd: Decimal, ts_event_ms: int
    ) -> Fill:
        """Book a fill (the exchange's, or ``execute``'s) and score a sell; returns the fill."""
        quote_amount = price * base_quantity
        usd, btc = self.balances.usd, self.balances.btc
        if side is Side.buy:
            usd, btc = usd - quote_amount - fee_usd, btc + base_quantity
        else:
            usd, btc = usd + quote_amount - fee_usd, btc - base_quantity
        if usd < 0 or btc < 0:
            raise LedgerError(
                f"{side} of {base_quantity} BTC at {price} (fee {fee_usd} USD) does not fit the "
                f"balances usd={self.balances.usd} btc={self.balances.btc}"
            )
        fill = Fill(
            ts_event_ms=ts_event_ms,
            side=side,
            price=price,
            base_quantity=base_quantity,
            quote_amount=quote_amount,
            fee_usd=fee_usd,
            balances_after=Balances(usd=usd, btc=btc),
        )
        self.balances = fill.balances_after
        self.fills.append(fill)
        if side is Side.buy:
            self.last_buy = fill
        elif self.last_buy is not None:
            self.round_trips.append(score_round_trip(self.last_buy, fill))
        return fill

    # --- reporting -----------------------------------------------------------------------------

    @property
    def fees_paid_usd(self) -> Decimal:
        return sum((fill.fee_usd for fill in self.fills), Decimal(0))

    @property
    def realised_pnl_usd(self) -> Decimal:
        """Sum of the scored round trips, net of fees."""
        return sum((trip.pnl_usd for trip in self.round_trips), Decimal(0))

    def equity_usd(self, price: Decimal, *, after_exit_fee: bool = False) -> Decimal:
        """USD plus BTC valued at ``price``; ``after_exit_fee`` deducts the fee a sale would pay."""
        value = self.balances.btc * price
        if after_exit_fee:
            value -= value * self.fee_rate
        return self.balances.usd + value


def score_round_trip(entry: Fill, exit: Fill) -> RoundTrip:
    """P&L of ``exit`` (a sell) against ``entry`` (the last buy), both fees included."""
    cost_per_btc = (entry.quote_amount + entry.fee_usd) / entry.base_quantity
    cost = cost_per_btc * exit.base_quantity
    pnl = exit.quote_amount - exit.fee_usd - cost
    return RoundTrip(entry=entry, exit=exit, pnl_usd=pnl, return_pct=pnl / cost * HUNDRED)


def equity_curve(
    fills: list[Fill], fill_indices: npt.ArrayLike, prices: npt.ArrayLike, initial: Balances
) -> npt.NDArray[np.float64]:
    """Mark-to-market equity (USD, float, for charts) at every minute of ``prices``.

    ``fill_indices[k]`` is the minute at which ``fills[k]`` happened (sorted); balances hold
    from that minute on. No exit fee is deducted.
    """
    price_array = np.asarray(prices, dtype=np.float64)
    at = np.asarray(fill_indices, dtype=np.int64)
    usd = np.array([float(initial.usd)] + [float(f.balances_after.usd) for f in fills])
    btc = np.array([float(initial.btc)] + [float(f.balances_after.btc) for f in fills])
    state = np.searchsorted(at, np.arange(len(price_array)), side="right")
    return usd[state] + btc[state] * price_array
