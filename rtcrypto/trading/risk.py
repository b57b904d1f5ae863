"""The risk gate in front of every order: pure, no I/O, no clock (the caller passes ``now_ms``).

Checks, in order:

1. kill switch (``RTC_KILL_SWITCH=1`` or the kill file exists): no order at all;
2. orders per minute: at most ``max_orders_per_minute`` sent in the 60 s before ``now_ms``;
3. daily loss: once today's realised P&L (UTC day) is at or below ``-max_daily_loss_usd``, no new
   buy (a sell, which closes the position, still goes);
4. position and notional: a buy is cut so the position stays at or below ``max_position_btc`` and
   its notional at or below ``max_order_notional_usd``; a sell is cut to the notional limit too.
   An order cut to nothing is refused.

The gate returns the order it lets through (possibly smaller) or the reason it refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING

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
    ``size``) or is empty."""

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
    order: OrderRequest, state: RiskState, limits: RiskLimits, now_ms: int
) -> RiskVerdict:
    """Let ``order`` through, cut it, or refuse it (see the module's docstring)."""
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
    quantity = order.quantity
    reasons: list[str] = []
    if order.side is Side.buy:
        room = limits.max_position_btc - state.position_btc
        if quantity > room:
            quantity = max(room, Decimal(0))
            reasons.append(f"position limit {limits.max_position_btc} BTC")
    max_by_notional = (limits.max_order_notional_usd / order.limit_price).quantize(
        SATOSHI, rounding=ROUND_DOWN
    )
    if quantity > max_by_notional:
        quantity = max_by_notional
        reasons.append(f"notional limit {limits.max_order_notional_usd} USD")
    quantity = quantity.quantize(SATOSHI, rounding=ROUND_DOWN)
    if quantity <= 0:
        return RiskVerdict(None, "cut to nothing by the " + " and ".join(reasons), "size")
    if quantity == order.quantity:
        return RiskVerdict(order, "within limits")
    return RiskVerdict(
        replace(order, quantity=quantity),
        f"cut from {order.quantity} to {quantity} BTC by the " + " and ".join(reasons),
    )
