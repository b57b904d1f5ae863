"""The risk gate in front of every order: pure, no I/O, no clock (the caller passes ``now_ms``).

Checks, in order:

1. kill switch (``RTC_KILL_SWITCH=1`` or the kill file exists): no order at all;
2. orders per minute: at most ``max_orders_per_minute`` sent in the 60 s before ``now_ms``;
3. daily loss: once today's realised P&L (UTC day) is at or below ``-max_daily_loss_usd``, no new
   buy (a sell, which closes the position, still goes);
4. the exchange's order rules (``rules``, :class:`~rtcrypto.trading.order_rules.OrderRules`, when
   the exchange publishes them): a market that takes no IOC orders (status) refuses every order;
   the limit price is rounded to the price increment (a buy down, a sell up);
5. position and notional: a buy is cut so the position stays at or below ``max_position_btc`` and
   its notional at or below ``max_order_notional_usd``; a sell is cut to the notional limit too.
   The quantity is rounded down to the exchange's increment (a satoshi without rules). An order
   cut to nothing is refused, and so is one below the exchange's minimum order size.

The gate returns the order it lets through (possibly smaller) or the reason it refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING

from rtcrypto.trading.order_rules import (
    OrderRules,
    below_minimum_reason,
    round_limit_price,
    round_quantity_down,
)
from rtcrypto.trading.order_types import OrderRequest
from rtcrypto.trading.strategy import Side

if TYPE_CHECKING:
    from rtcrypto.config import Settings

SATOSHI = Decimal("0.00000001")
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Hard limits; money in USD, quantities in BTC."""

    max_position_btc: Decimal
    max_order_notional_usd: Decimal
    max_daily_loss_usd: Decimal
    max_orders_per_minute: int

    def __post_init__(self) -> None:
        for name in ("max_position_btc", "max_order_notional_usd", "max_daily_loss_usd"):
            if getattr(self, name) <= 0:
                raise ValueError(f"risk limit {name} must be > 0, got {getattr(self, name)}")
        if self.max_orders_per_minute < 1:
            raise ValueError(
                f"risk limit max_orders_per_minute must be >= 1, got {self.max_orders_per_minute}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> RiskLimits:
        """Limits from ``RTC_RISK_MAX_POSITION_BTC``, ``..._ORDER_NOTIONAL_USD``, ``..._DAILY_LOSS_USD``,
        ``..._ORDERS_PER_MINUTE``."""
        return cls(
            max_position_btc=settings.risk_max_position_btc,
            max_order_notional_usd=settings.risk_max_order_notional_usd,
            max_daily_loss_usd=settings.risk_max_daily_loss_usd,
            max_orders_per_minute=settings.risk_max_orders_per_minute,
        )


@dataclass(frozen=True, slots=True)
class RiskState:
    """What the gate needs to know about the account right now."""

    position_btc: Decimal
    realised_pnl_today_usd: Decimal
    recent_order_times_ms: tuple[int, ...]  # send times of earlier orders (any order is fine)
    kill_switch: bool = False


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    """``order`` is what may be sent (None: nothing); ``reason`` says why it was cut or refused;
    ``rule`` names the check that refused it (``kill_switch``, ``order_rate``, ``daily_loss``,
    ``market_status``, ``size``, ``min_order_size``) or is empty."""

    order: OrderRequest | None
    reason: str
    rule: str = ""

    @property
    def allowed(self) -> bool:
        return self.order is not None


def orders_in_last_minute(send_times_ms: tuple[int, ...], now_ms: int) -> int:
    """How many of ``send_times_ms`` fall in ``(now_ms - 60 s, now_ms]``."""
    return sum(1 for ts in send_times_ms if now_ms - MINUTE_MS < ts <= now_ms)


def check_order(
    order: OrderRequest,
    state: RiskState,
    limits: RiskLimits,
    now_ms: int,
    rules: OrderRules | None = None,
) -> RiskVerdict:
    """Let ``order`` through, cut or rounded, or refuse it (see the module's docstring).

    ``rules`` are the exchange's increments and minimum for the order's symbol; None (the
    minute-bar backtest) rounds quantities to a satoshi and checks no minimum."""
    if state.kill_switch:
        return RiskVerdict(None, "kill switch is on: no orders", "kill_switch")
    sent = orders_in_last_minute(state.recent_order_times_ms, now_ms)
    if sent >= limits.max_orders_per_minute:
        return RiskVerdict(
            None,
            f"order rate: {sent} orders in the last minute (max {limits.max_orders_per_minute})",
            "order_rate",
        )
    if order.side is Side.buy and state.realised_pnl_today_usd <= -limits.max_daily_loss_usd:
        return RiskVerdict(
            None,
            f"daily loss limit: realised {state.realised_pnl_today_usd} USD today "
            f"(max loss {limits.max_daily_loss_usd}); only sells until the next UTC day",
            "daily_loss",
        )
    if rules is not None and not rules.tradable:
        return RiskVerdict(
            None,
            f"the exchange's market {rules.symbol} is {rules.status}: it takes no "
            "immediate-or-cancel orders now",
            "market_status",
        )
    price = order.limit_price
    if rules is not None:
        price = round_limit_price(price, rules.quote_increment, order.side)
        if price <= 0:
            return RiskVerdict(
                None, f"limit {order.limit_price} is below the price increment", "size"
            )
    quantity, reasons = _cut_to_limits(order, price, state, limits)
    quantity = round_quantity_down(quantity, rules.tick_size if rules is not None else SATOSHI)
    if quantity <= 0:
        cut_by = " and ".join(reasons) if reasons else "quantity increment"
        return RiskVerdict(None, f"cut to nothing by the {cut_by}", "size")
    if rules is not None:
        too_small = below_minimum_reason(quantity, rules)
        if too_small is not None:
            cut = f" (cut by the {' and '.join(reasons)})" if reasons else ""
            return RiskVerdict(None, too_small + cut, "min_order_size")
    if quantity == order.quantity and price == order.limit_price:
        return RiskVerdict(order, "within limits")
    changes = []
    if quantity != order.quantity:
        by = " and ".join(reasons) if reasons else "exchange's quantity increment"
        changes.append(f"cut from {order.quantity} to {quantity} BTC by the {by}")
    if price != order.limit_price:
        changes.append(
            f"limit rounded from {order.limit_price} to {price} (price increment "
            f"{rules.quote_increment if rules is not None else ''})"
        )
    return RiskVerdict(replace(order, quantity=quantity, limit_price=price), "; ".join(changes))


def _cut_to_limits(
    order: OrderRequest, price: Decimal, state: RiskState, limits: RiskLimits
) -> tuple[Decimal, list[str]]:
    """The quantity within the position and notional limits at ``price``, and what cut it."""
    quantity = order.quantity
    reasons: list[str] = []
    if order.side is Side.buy:
        room = limits.max_position_btc - state.position_btc
        if quantity > room:
            quantity = max(room, Decimal(0))
            reasons.append(f"position limit {limits.max_position_btc} BTC")
    max_by_notional = (limits.max_order_notional_usd / price).quantize(SATOSHI, rounding=ROUND_DOWN)
    if quantity > max_by_notional:
        quantity = max_by_notional
        reasons.append(f"notional limit {limits.max_order_notional_usd} USD")
    return quantity, reasons
