"""The one interface every exchange adapter implements, the order status it reports and its errors.

The order an adapter is asked to place and the book it quotes (``OrderRequest``, ``TopOfBook``)
are trading's value types (``rtcrypto.trading.order_types``).

Prices are USD per BTC, quantities BTC, money USD, all ``Decimal``; times are epoch milliseconds
(UTC). Symbols are Gemini's, lower case (``btcusd``). Orders are immediate-or-cancel limit orders
identified by the trader's deterministic ``client_order_id``: an adapter never invents one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from rtcrypto.trading.order_rules import OrderRules
from rtcrypto.trading.order_types import OrderRequest, TopOfBook
from rtcrypto.trading.strategy import Side


class ExchangeError(Exception):
    """The exchange refused or failed a request; ``reason`` is its short code (Gemini's)."""

    def __init__(self, message: str, *, reason: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


class AuthenticationError(ExchangeError):
    """Bad API key, bad signature or missing credentials: nothing was traded."""


class NonceError(AuthenticationError):
    """The nonce was not larger than the previous one (Gemini: ``InvalidNonce``)."""


class RateLimitError(ExchangeError):
    """Too many requests (Gemini: HTTP 429, ``RateLimit``); retry later."""


class InsufficientFundsError(ExchangeError):
    """The balances do not cover the order (Gemini: ``InsufficientFunds``)."""


class OrderRejectedError(ExchangeError):
    """The order was invalid (price, quantity, symbol, options)."""


class OrderNotFoundError(ExchangeError):
    """No order with that id (Gemini: ``OrderNotFound``)."""


class ExchangeUnavailableError(ExchangeError):
    """The exchange did not answer (network, 5xx, maintenance): safe to retry the same request."""


class OrderStateUnknownError(ExchangeUnavailableError):
    """An order may exist but its state is unknown (a 2xx whose body could not be read, a
    timeout): it stays pending and is reconciled by ``client_order_id``, never abandoned."""


@dataclass(frozen=True, slots=True)
class OrderStatus:
    """An order as the exchange reports it (``/v1/order/status``)."""

    order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    limit_price: Decimal
    original_quantity: Decimal
    executed_quantity: Decimal
    average_execution_price: Decimal  # 0 when nothing executed
    fee_usd: Decimal  # fees charged on the executed part
    is_live: bool
    is_cancelled: bool
    ts_ms: int

    @property
    def remaining_quantity(self) -> Decimal:
        return self.original_quantity - self.executed_quantity


@runtime_checkable
class ExchangeAdapter(Protocol):
    """What the trader needs from an exchange. Every method may raise an ``ExchangeError``."""

    name: str  # "paper" | "gemini"

    def balances(self) -> dict[str, Decimal]:
        """Available balance per currency, lower case (``{"usd": ..., "btc": ...}``)."""
        ...

    def top_of_book(self, symbol: str) -> TopOfBook:
        """Best bid and ask now (public data)."""
        ...

    def order_rules(self, symbol: str) -> OrderRules | None:
        """The exchange's increments and minimum order size for ``symbol`` (the risk gate rounds
        every order to them and refuses one below the minimum); None when it publishes none."""
        ...

    def place_order(self, order: OrderRequest) -> OrderStatus:
        """Send an immediate-or-cancel limit order; returns its final state."""
        ...

    def order_status(self, client_order_id: str) -> OrderStatus | None:
        """The order sent with ``client_order_id``, or None if the exchange has none."""
        ...

    def open_orders(self) -> list[OrderStatus]:
        """Orders still live on the exchange (IOC orders normally never are)."""
        ...

    def cancel_order(self, order_id: str) -> OrderStatus:
        """Cancel a live order; returns its final state."""
        ...
