"""An exchange's order rules for one symbol, and the pure rounding of an order to them.

Gemini publishes, per symbol (``GET /v1/symbols/details/{symbol}``), the quantity increment
(``tick_size``, base currency), the price increment (``quote_increment``, quote currency per unit
of base), the minimum order size (``min_order_size``, base currency) and the market's
``status``. An order off either increment or below the minimum is refused by the exchange, so the
risk gate (``rtcrypto.trading.risk.check_order``) rounds every order to them and refuses one
below the minimum before anything is sent.

Rounding never makes an order worse for the trader: quantities round DOWN to ``tick_size`` (never
more than asked for, never more than the balance allows), a buy's limit price rounds DOWN and a
sell's UP to ``quote_increment`` (never a worse price than the trader's limit).

All values are ``Decimal``; symbols upper case (``BTCUSD``). Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING

from rtcrypto.trading.order_types import OrderRequest
from rtcrypto.trading.strategy import Side

if TYPE_CHECKING:
    from rtcrypto.config import Settings

# Gemini's market states (Get Symbol Details); an immediate-or-cancel limit order is accepted in
# these only ("post_only" takes maker orders, "cancel_only" and "closed" take none)
TRADABLE_STATUSES = frozenset({"open", "limit_only"})
MAX_EXPONENT = 30  # |adjusted exponent| of any increment or minimum: 1e30 is nonsense already
_PRECISION = 100  # digits for the exact integer division (quotients stay below 1e61)
QUOTE_CURRENCIES = ("USDT", "USDC", "GUSD", "RLUSD", "USD", "EUR", "GBP", "SGD", "BTC", "ETH")


def base_currency_of(symbol: str) -> str:
    """The base currency of a Gemini symbol (``BTCUSD`` -> ``BTC``): the symbol without its quote
    currency suffix (the first three letters when no known quote currency ends it)."""
    upper = symbol.upper()
    for quote in QUOTE_CURRENCIES:
        if upper.endswith(quote) and len(upper) > len(quote):
            return upper[: -len(quote)]
    return upper[:3]


@dataclass(frozen=True, slots=True)
class OrderRules:
    """One symbol's order rules, in the units the exchange publishes them."""

    symbol: str  # upper case, BTCUSD
    tick_size: Decimal  # quantity increment, base currency (BTC)
    quote_increment: Decimal  # price increment, quote currency (USD per BTC)
    min_order_size: Decimal  # smallest order quantity, base currency (BTC)
    status: str = "open"  # open, closed, cancel_only, post_only, limit_only
    base_currency: str = ""  # BTC; derived from the symbol when empty

    def __post_init__(self) -> None:
        if not self.symbol:
            raise ValueError("order rules need a symbol")
        object.__setattr__(self, "symbol", self.symbol.upper())
        if not self.base_currency:
            object.__setattr__(self, "base_currency", base_currency_of(self.symbol))
        for name in ("tick_size", "quote_increment", "min_order_size"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
                raise ValueError(f"{self.symbol} {name} must be a positive number, got {value!r}")
            if abs(value.adjusted()) > MAX_EXPONENT or abs(_exponent(value)) > MAX_EXPONENT:
                raise ValueError(f"{self.symbol} {name} is out of range: {value}")

    @classmethod
    def paper_from_settings(cls, settings: Settings) -> OrderRules:
        """The paper exchange's rules for ``RTC_TRADER_SYMBOL``: ``RTC_PAPER_TICK_SIZE_BTC``,
        ``RTC_PAPER_QUOTE_INCREMENT_USD``, ``RTC_PAPER_MIN_ORDER_SIZE_BTC`` (Gemini's BTCUSD
        values by default)."""
        return cls(
            symbol=settings.trader_symbol,
            tick_size=settings.paper_tick_size_btc,
            quote_increment=settings.paper_quote_increment_usd,
            min_order_size=settings.paper_min_order_size_btc,
        )

    @property
    def tradable(self) -> bool:
        """True when the market takes immediate-or-cancel limit orders (status open/limit_only)."""
        return self.status in TRADABLE_STATUSES

    def describe(self) -> str:
        """The rules in one line, for messages and logs."""
        return (
            f"{self.symbol}: quantity increment (tick_size) {self.tick_size} "
            f"{self.base_currency}, price increment (quote_increment) {self.quote_increment}, "
            f"minimum order size {self.min_order_size} {self.base_currency}, "
            f"status {self.status}"
        )


def _exponent(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return exponent if isinstance(exponent, int) else 0


def round_quantity_down(quantity: Decimal, tick_size: Decimal) -> Decimal:
    """The largest multiple of ``tick_size`` at or below ``quantity`` (0 when below one tick).

    ``quantity`` >= 0 and ``tick_size`` > 0; the result has ``tick_size``'s exponent when a
    multiple of it (``0.000123456789``, tick ``1e-8`` -> ``0.00012345``).
    """
    with localcontext() as context:
        context.prec = _PRECISION
        steps = quantity // tick_size  # exact: truncates toward zero, quantity is not negative
        return steps * tick_size


def round_limit_price(price: Decimal, quote_increment: Decimal, side: Side) -> Decimal:
    """``price`` on the ``quote_increment`` grid, never worse than the trader's limit: a buy
    rounds down (pays at most its limit), a sell rounds up (gets at least its limit)."""
    with localcontext() as context:
        context.prec = _PRECISION
        steps = price // quote_increment
        if side is Side.sell and steps * quote_increment < price:
            steps += 1
        return steps * quote_increment


def below_minimum_reason(quantity: Decimal, rules: OrderRules) -> str | None:
    """Why an order of ``quantity`` (base currency) is too small for ``rules``, or None."""
    if quantity >= rules.min_order_size:
        return None
    return (
        f"below the exchange's minimum order size {rules.min_order_size} "
        f"{rules.base_currency} ({rules.symbol}): {quantity} {rules.base_currency}"
    )


def round_order(order: OrderRequest, rules: OrderRules) -> OrderRequest | None:
    """``order`` with its quantity and limit price rounded to ``rules`` (see the module's
    docstring); the same object when already on both grids; None when either rounds to zero.
    The minimum size is not checked here (``below_minimum_reason``)."""
    quantity = round_quantity_down(order.quantity, rules.tick_size)
    price = round_limit_price(order.limit_price, rules.quote_increment, order.side)
    if quantity <= 0 or price <= 0:
        return None
    if quantity == order.quantity and price == order.limit_price:
        return order
    return replace(order, quantity=quantity, limit_price=price)
