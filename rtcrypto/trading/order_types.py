"""The order value types the decision path works with, independent of any exchange.

``OrderRequest`` is the immediate-or-cancel limit order the trader (and the backtests) want to
send; ``TopOfBook`` the best bid and ask an exchange quotes. Prices are USD per BTC, quantities
BTC, all ``Decimal``; times epoch milliseconds (UTC). The exchange adapters
(``rtcrypto.exchange``) take and return these; trading itself never imports an exchange.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from rtcrypto.trading.strategy import Side


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An immediate-or-cancel limit order the trader wants to send."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal  # BTC
    limit_price: Decimal  # USD per BTC

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError(f"quantity must be > 0, got {self.quantity}")
        if self.limit_price <= 0:
            raise ValueError(f"limit_price must be > 0, got {self.limit_price}")
        if not self.client_order_id:
            raise ValueError("client_order_id is required")


@dataclass(frozen=True, slots=True)
class TopOfBook:
    """Best bid and ask with the quantity resting there."""

    symbol: str
    bid: Decimal
    bid_quantity: Decimal
    ask: Decimal
    ask_quantity: Decimal
    ts_ms: int
