"""From a strategy intent to the order sent, and how a paper order fills: pure, no I/O, no clock.

The trader (``rtcrypto.trader.engine``) and both backtests (``rtcrypto.trading.backtest`` on minute bars,
``rtcrypto.trading.record_backtest`` on a streaming run's records) go through the same steps:

1. ``strategy.decide_order`` -> an intent (or None);
2. ``size_order``: ``price_intent`` prices and sizes it from the top of the book, then
   ``risk.check_order`` (with the state from ``risk_state_for`` and the exchange's order rules,
   ``order_rules.OrderRules``, when it publishes them) lets it through, cuts, rounds or refuses it;
3. the exchange fills it; the paper exchange and the backtests use ``ioc_fill`` and
   ``taker_fee_usd``.

Money in USD, quantities in BTC, prices in USD per BTC, all ``Decimal``; times in epoch ms (UTC).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from rtcrypto.trading.ledger import RoundTrip
from rtcrypto.trading.order_rules import OrderRules
from rtcrypto.trading.order_types import OrderRequest, TopOfBook
from rtcrypto.trading.risk import RiskLimits, RiskState, check_order
from rtcrypto.trading.strategy import OrderIntent, Side

SATOSHI = Decimal("0.00000001")
DAY_MS = 86_400_000
FEE_QUANTUM_USD = Decimal("0.00000001")  # the paper exchange rounds fees to this


def price_intent(
    intent: OrderIntent, book: TopOfBook, fee_rate: Decimal, client_id: str, symbol: str
) -> OrderRequest | None:
    """An IOC limit order for ``intent``: a buy at the ask sized so cost plus fee fits the quote
    amount; a sell of the whole quantity at the bid. None if the book has no price or size is 0.

    ``fee_rate`` is a fraction (0.0025 for 0.25 %); quantities are rounded down to a satoshi.
    """
    if intent.side is Side.buy:
        if book.ask <= 0 or intent.quote_amount is None:
            return None
        quantity = (intent.quote_amount / (book.ask * (1 + fee_rate))).quantize(
            SATOSHI, rounding=ROUND_DOWN
        )
        limit = book.ask
    else:
        if book.bid <= 0 or intent.base_quantity is None:
            return None
        quantity = intent.base_quantity.quantize(SATOSHI, rounding=ROUND_DOWN)
        limit = book.bid
    if quantity <= 0:
        return None
    return OrderRequest(
        client_order_id=client_id,
        symbol=symbol.lower(),
        side=intent.side,
        quantity=quantity,
        limit_price=limit,
    )


def day_start_ms(ts_ms: int) -> int:
    """Start of the UTC day holding ``ts_ms``."""
    return ts_ms - ts_ms % DAY_MS


def realised_pnl_on_day(round_trips: Iterable[RoundTrip], now_ms: int) -> Decimal:
    """Sum of the P&L (USD) of the round trips whose exit is in the UTC day of ``now_ms`` (that
    day only: a replay started again has later days in its journal)."""
    start = day_start_ms(now_ms)
    return sum(
        (trip.pnl_usd for trip in round_trips if start <= trip.exit.ts_event_ms < start + DAY_MS),
        Decimal(0),
    )


def risk_state_for(
    position_btc: Decimal,
    round_trips: Iterable[RoundTrip],
    send_times_ms: tuple[int, ...],
    limits: RiskLimits,
    now_ms: int,
    *,
    kill_switch: bool = False,
) -> RiskState:
    """The risk gate's view of the account at ``now_ms``: today's (UTC) realised P&L over
    ``round_trips`` (``realised_pnl_on_day``) and the send times the order-rate check needs."""
    return RiskState(
        position_btc=position_btc,
        realised_pnl_today_usd=realised_pnl_on_day(round_trips, now_ms),
        recent_order_times_ms=send_times_ms[-limits.max_orders_per_minute - 1 :],
        kill_switch=kill_switch,
    )


@dataclass(frozen=True, slots=True)
class OrderVerdict:
    """``order`` is what may be sent (None: nothing); ``reason`` says why; ``risk_rule`` names
    the risk check that refused it (see ``risk.RiskVerdict.rule``), empty otherwise."""

    order: OrderRequest | None
    reason: str
    risk_rule: str = ""

    @property
    def refused_by_risk(self) -> bool:
        return self.order is None and bool(self.risk_rule)


def size_order(
    intent: OrderIntent,
    book: TopOfBook,
    *,
    fee_rate: Decimal,
    client_order_id: str,
    symbol: str,
    risk_state: RiskState,
    limits: RiskLimits,
    now_ms: int,
    rules: OrderRules | None = None,
) -> OrderVerdict:
    """Price ``intent`` from ``book`` and pass it through the risk gate, which rounds it to the
    exchange's ``rules`` and refuses it below their minimum size (None: a satoshi, no minimum)."""
    order = price_intent(intent, book, fee_rate, client_order_id, symbol)
    if order is None:
        return OrderVerdict(None, "nothing to order at this price")
    verdict = check_order(order, risk_state, limits, now_ms, rules)
    if verdict.order is None:
        return OrderVerdict(None, f"risk: {verdict.reason}", verdict.rule or "risk")
    return OrderVerdict(verdict.order, verdict.reason)


def ioc_fill(order: OrderRequest, book: TopOfBook) -> tuple[Decimal, Decimal]:
    """(quantity filled, price) of an IOC limit order against the top of ``book``.

    A buy at limit L fills ``min(quantity, ask quantity)`` at the ask when ask <= L; a sell
    fills ``min(quantity, bid quantity)`` at the bid when bid >= L; else nothing (0, 0).
    """
    if order.side is Side.buy:
        if book.ask <= 0 or book.ask > order.limit_price:
            return Decimal(0), Decimal(0)
        return min(order.quantity, book.ask_quantity), book.ask
    if book.bid <= 0 or book.bid < order.limit_price:
        return Decimal(0), Decimal(0)
    return min(order.quantity, book.bid_quantity), book.bid


def taker_fee_usd(price: Decimal, quantity: Decimal, fee_rate: Decimal) -> Decimal:
    """The taker fee on a fill (USD), rounded to ``FEE_QUANTUM_USD`` like the paper exchange."""
    # the rounding is explicit: a library in the same process may change the thread's decimal
    # context (ccxt sets ROUND_HALF_UP), and the trader and its backtest must round alike
    return (price * quantity * fee_rate).quantize(FEE_QUANTUM_USD, rounding=ROUND_HALF_EVEN)
