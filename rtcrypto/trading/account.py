"""The trader's per-minute decision on the paper fill model, without I/O: the backtests' trader.

``SimulatedAccount`` does what ``Trader.on_liquidity`` does with the paper exchange, minus the
journal, the clock and the network: ``decide`` is ``strategy.decide_order`` on the account's
balances; ``execute`` sizes and risk-checks the intent with ``orders.size_order``, fills it with
``orders.ioc_fill`` and the paper fee, and books the fill in a ``Ledger``. Both backtests (minute
bars and streaming records) run through it, so they take the trader's decisions by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from rtcrypto.trading.ledger import Fill, Ledger, RoundTrip
from rtcrypto.trading.order_rules import OrderRules
from rtcrypto.trading.order_types import OrderRequest, TopOfBook
from rtcrypto.trading.orders import (
    day_start_ms,
    ioc_fill,
    risk_state_for,
    size_order,
    taker_fee_usd,
)
from rtcrypto.trading.risk import RiskLimits
from rtcrypto.trading.strategy import OrderIntent, Side, StrategyParams, decide_order

HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Execution:
    """One intent taken through sizing, the risk gate and the fill model.

    ``order`` is what was sent (None: nothing, ``reason`` says why); ``fill`` the booked fill
    (None: nothing filled).
    """

    order: OrderRequest | None
    reason: str
    fill: Fill | None = None
    risk_rule: str = ""  # the risk check that refused the order (risk.RiskVerdict.rule)

    @property
    def executed_quantity(self) -> Decimal:
        return self.fill.base_quantity if self.fill is not None else Decimal(0)


class SimulatedAccount:
    """Balances, fills and sent orders of one simulated paper account (USD and BTC)."""

    def __init__(
        self,
        initial_usd: Decimal,
        initial_btc: Decimal = Decimal(0),
        *,
        params: StrategyParams,
        limits: RiskLimits,
        taker_fee_pct: Decimal,
        symbol: str = "btcusd",
        order_rules: OrderRules | None = None,
    ) -> None:
        self.ledger = Ledger(initial_usd, initial_btc, taker_fee_pct=taker_fee_pct)
        self.order_rules = order_rules  # the exchange's increments and minimum (None: a satoshi)
        self.params = params
        self.limits = limits
        self.fee_rate = Decimal(taker_fee_pct) / HUNDRED
        self.symbol = symbol
        self.send_times_ms: list[int] = []
        # the ledger's round trips by the UTC day of their exit: the risk gate reads one day
        self._round_trips_by_day: dict[int, list[RoundTrip]] = {}

    def decide(
        self, side: Side | None, liquidity_ratio: Decimal | float | None
    ) -> OrderIntent | None:
        """The strategy's intent for this minute on the account's balances."""
        return decide_order(side, self.ledger.balances, liquidity_ratio, self.params)

    def execute(
        self,
        intent: OrderIntent,
        book: TopOfBook,
        *,
        client_order_id: str,
        now_ms: int,
        fill_book: TopOfBook | None = None,
    ) -> Execution:
        """Size ``intent`` from ``book``, pass the risk gate at ``now_ms``, fill it against
        ``fill_book`` (default ``book``) and book the fill at ``now_ms``."""
        verdict = size_order(
            intent,
            book,
            fee_rate=self.fee_rate,
            client_order_id=client_order_id,
            symbol=self.symbol,
            risk_state=risk_state_for(
                self.ledger.balances.btc,
                self._round_trips_by_day.get(day_start_ms(now_ms), ()),
                tuple(self.send_times_ms[-self.limits.max_orders_per_minute - 1 :]),
                self.limits,
                now_ms,
            ),
            limits=self.limits,
            now_ms=now_ms,
            rules=self.order_rules,
        )
        order = verdict.order
        if order is None:
            return Execution(None, verdict.reason, risk_rule=verdict.risk_rule)
        self.send_times_ms.append(now_ms)
        quantity, price = ioc_fill(order, fill_book or book)
        if quantity <= 0:
            return Execution(order, "not filled: the book moved past the limit")
        fee = taker_fee_usd(price, quantity, self.fee_rate)
        trips_before = len(self.ledger.round_trips)
        fill = self.ledger.record(order.side, price, quantity, fee, now_ms)
        for trip in self.ledger.round_trips[trips_before:]:
            day = day_start_ms(trip.exit.ts_event_ms)
            self._round_trips_by_day.setdefault(day, []).append(trip)
        return Execution(order, verdict.reason, fill)
