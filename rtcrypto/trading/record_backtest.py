"""The backtest fed what a streaming run saw: its liquidity records and its exchange's quotes.

``backtest_records`` takes the ``liquidity.minute.v1`` records in the order the trader read them,
the forecast, and per decision minute the top of book the order was priced from (``MinuteQuote``;
also the book the exchange matched it against when that one differs), and runs them through the
trader's path (``trading.account.SimulatedAccount``: ``decide_order``, ``size_order`` with the risk
gate, the paper fill). Like the trader it skips a minute the forecast does not cover and never
sends the same (minute, side) twice. The risk gate's clock is the record's window end.

``first_difference`` compares two order lists (the trader's and the backtest's): same minute and
side, quantity equal within ``quantity_tolerance_btc``; it names the first minute that differs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from rtcrypto.trading.account import SimulatedAccount
from rtcrypto.trading.ledger import Fill, RoundTrip
from rtcrypto.trading.order_rules import OrderRules
from rtcrypto.trading.order_types import TopOfBook
from rtcrypto.trading.orders import SATOSHI
from rtcrypto.trading.risk import RiskLimits
from rtcrypto.trading.strategy import Balances, Side, StrategyParams

if TYPE_CHECKING:
    from rtcrypto.config import Settings


class LiquidityMinuteReading(Protocol):
    """The fields of a parsed ``liquidity.minute.v1`` record the backtest reads (the trader's
    parsed record has them; trading never imports the trader)."""

    @property
    def symbol(self) -> str: ...

    @property
    def window_end_ms(self) -> int: ...

    @property
    def liquidity_ratio(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class MinuteQuote:
    """The exchange's top of book for one decision minute: ``book`` prices and sizes the order,
    ``fill_book`` (None: ``book``) is what the exchange matched it against."""

    book: TopOfBook
    fill_book: TopOfBook | None = None


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """An order as sent, for comparison: ``quantity`` in BTC (None: wanted but no quote to price
    it), ``limit_price`` in USD per BTC, ``executed_quantity`` what filled."""

    minute_ms: int
    side: Side
    quantity: Decimal | None
    limit_price: Decimal | None = None
    executed_quantity: Decimal = Decimal(0)

    def describe(self) -> str:
        if self.quantity is None:
            return f"{self.side} (no quote to price it)"
        return f"{self.side} {self.quantity} BTC at {self.limit_price}"


@dataclass(frozen=True)
class RecordBacktestConfig:
    """Money, rules and symbol of a record backtest (the trader's settings)."""

    initial_usd: Decimal
    initial_btc: Decimal
    taker_fee_pct: Decimal
    strategy: StrategyParams
    risk: RiskLimits
    symbol: str = "BTCUSD"
    forecast_offset_ms: int = 0  # the feed's clock minus the forecast's (the replay shift)
    order_rules: OrderRules | None = None  # the paper exchange's increments and minimum

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RecordBacktestConfig:
        """The trader's knobs: ``RTC_PAPER_USD`` / ``_BTC``, ``RTC_TAKER_FEE_PCT``, the strategy's
        and ``RTC_RISK_*``, the paper exchange's order rules (``RTC_PAPER_*``); the liquidity
        gate on, as in the trader."""
        values: dict[str, Any] = {
            "initial_usd": settings.paper_usd,
            "initial_btc": settings.paper_btc,
            "taker_fee_pct": settings.taker_fee_pct,
            "strategy": StrategyParams.from_settings(settings),
            "risk": RiskLimits.from_settings(settings),
            "symbol": settings.trader_symbol,
            "forecast_offset_ms": settings.trader_forecast_offset_ms or 0,
            "order_rules": OrderRules.paper_from_settings(settings),
        }
        return cls(**{**values, **overrides})


@dataclass(frozen=True)
class RecordBacktestResult:
    orders: tuple[PlacedOrder, ...]
    fills: tuple[Fill, ...]
    round_trips: tuple[RoundTrip, ...]
    final: Balances
    records: int  # records of the traded symbol looked at
    skipped: Mapping[str, int] = field(default_factory=dict)  # minutes without an order, by reason

    @property
    def realised_pnl_usd(self) -> Decimal:
        return sum((trip.pnl_usd for trip in self.round_trips), Decimal(0))


def backtest_records(
    records: Iterable[LiquidityMinuteReading],
    forecast_side_at: Callable[[int], Side | None],
    quotes: Mapping[int, MinuteQuote],
    config: RecordBacktestConfig,
) -> RecordBacktestResult:
    """Run the trader's path over ``records`` (in the order the trader read them).

    ``forecast_side_at(ts_ms)`` is the forecast's side of a minute (``ForecastSides.side_at``);
    ``quotes`` maps a decision minute (the record's ``window_end_ms``) to the exchange's book.
    """
    account = SimulatedAccount(
        config.initial_usd,
        config.initial_btc,
        params=config.strategy,
        limits=config.risk,
        taker_fee_pct=config.taker_fee_pct,
        symbol=config.symbol.lower(),
        order_rules=config.order_rules,
    )
    orders: list[PlacedOrder] = []
    sent: set[tuple[int, Side]] = set()
    skipped: dict[str, int] = {}
    looked_at = 0

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for reading in records:
        if reading.symbol.upper() != config.symbol.upper():
            continue
        looked_at += 1
        minute_ms = reading.window_end_ms
        side = forecast_side_at(minute_ms - config.forecast_offset_ms)
        if side is None:
            skip("forecast does not cover the minute")
            continue
        intent = account.decide(side, reading.liquidity_ratio)
        if intent is None:
            skip("strategy: no order")
            continue
        if (minute_ms, intent.side) in sent:
            skip("already sent this minute's order")
            continue
        quote = quotes.get(minute_ms)
        if quote is None:
            sent.add((minute_ms, intent.side))
            orders.append(PlacedOrder(minute_ms, intent.side, None))
            continue
        execution = account.execute(
            intent,
            quote.book,
            client_order_id=f"record-backtest-{minute_ms}-{intent.side.value}",
            now_ms=minute_ms,
            fill_book=quote.fill_book,
        )
        if execution.order is None:
            skip(execution.reason)
            continue
        sent.add((minute_ms, intent.side))
        orders.append(
            PlacedOrder(
                minute_ms,
                execution.order.side,
                execution.order.quantity,
                execution.order.limit_price,
                execution.executed_quantity,
            )
        )
    ledger = account.ledger
    return RecordBacktestResult(
        orders=tuple(orders),
        fills=tuple(ledger.fills),
        round_trips=tuple(ledger.round_trips),
        final=ledger.balances,
        records=looked_at,
        skipped=skipped,
    )


@dataclass(frozen=True, slots=True)
class OrderDifference:
    """The first minute whose orders differ, with what each side sent there."""

    minute_ms: int
    trader: tuple[PlacedOrder, ...]
    backtest: tuple[PlacedOrder, ...]
    index: int  # position of the first differing order in the two lists

    def __str__(self) -> str:
        when = datetime.fromtimestamp(self.minute_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")

        def sent(orders: tuple[PlacedOrder, ...]) -> str:
            return ", ".join(order.describe() for order in orders) or "no order"

        return (
            f"first difference at minute {when} ({self.minute_ms}, order #{self.index + 1}): "
            f"trader sent {sent(self.trader)}; backtest sent {sent(self.backtest)}"
        )


def _same(a: PlacedOrder, b: PlacedOrder, tolerance: Decimal) -> bool:
    if a.minute_ms != b.minute_ms or a.side is not b.side:
        return False
    if a.quantity is None or b.quantity is None:
        return a.quantity is None and b.quantity is None
    return abs(a.quantity - b.quantity) <= tolerance


def first_difference(
    trader_orders: Sequence[PlacedOrder],
    backtest_orders: Sequence[PlacedOrder],
    *,
    quantity_tolerance_btc: Decimal = SATOSHI,
) -> OrderDifference | None:
    """None when both lists hold the same orders in the same order (same minute and side,
    quantities within ``quantity_tolerance_btc``); else the first minute where they differ."""
    for index in range(max(len(trader_orders), len(backtest_orders))):
        ours = trader_orders[index] if index < len(trader_orders) else None
        theirs = backtest_orders[index] if index < len(backtest_orders) else None
        if ours is not None and theirs is not None and _same(ours, theirs, quantity_tolerance_btc):
            continue
        minute_ms = min(order.minute_ms for order in (ours, theirs) if order is not None)
        return OrderDifference(
            minute_ms=minute_ms,
            trader=tuple(o for o in trader_orders[index:] if o.minute_ms == minute_ms),
            backtest=tuple(o for o in backtest_orders[index:] if o.minute_ms == minute_ms),
            index=index,
        )
    return None
