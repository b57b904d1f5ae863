"""Gemini's symbol details (``GET /v1/symbols/details/{symbol}``) for the simulator, and the order
checks they imply (pure).

Gemini names the quantity increment ``tick_size`` (base currency units) and the price increment
``quote_increment`` (quote currency units); ``min_order_size`` is in base currency units. The
values below are the ones Gemini publishes for each symbol
(https://docs.gemini.com/rest/market-data, "Get Symbol Details"; BTCUSD: tick_size 1e-8,
quote_increment 0.01, min_order_size 0.00001). A symbol the simulator replays but this table does
not list gets :data:`FALLBACK` (BTCUSD's increments), so every served symbol has details.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rtcrypto.simulator.wire import split_symbol


@dataclass(frozen=True, slots=True)
class SymbolDetails:
    """One symbol's trading rules: increments and minimum in the units Gemini publishes."""

    symbol: str  # upper case, BTCUSD
    tick_size: Decimal  # quantity increment, base currency
    quote_increment: Decimal  # price increment, quote currency
    min_order_size: Decimal  # base currency
    status: str = "open"

    def to_json(self) -> dict[str, Any]:
        """The body Gemini answers: ``tick_size`` / ``quote_increment`` are JSON numbers,
        ``min_order_size`` a string (as the docs type them)."""
        base, quote = split_symbol(self.symbol)
        return {
            "symbol": self.symbol,
            "base_currency": base,
            "quote_currency": quote,
            "tick_size": float(self.tick_size),
            "quote_increment": float(self.quote_increment),
            "min_order_size": str(self.min_order_size),
            "status": self.status,
            "wrap_enabled": False,
            "product_type": "spot",
            "contract_type": "vanilla",
            "contract_price_currency": quote,
        }


def _details(symbol: str, tick: str, quote_increment: str, minimum: str) -> SymbolDetails:
    return SymbolDetails(symbol, Decimal(tick), Decimal(quote_increment), Decimal(minimum))


# Gemini's published values (docs: "symbols and minimums").
SYMBOL_DETAILS: dict[str, SymbolDetails] = {
    details.symbol: details
    for details in (
        _details("BTCUSD", "1e-8", "0.01", "0.00001"),
        _details("ETHUSD", "1e-6", "0.01", "0.001"),
    )
}
FALLBACK = SYMBOL_DETAILS["BTCUSD"]


def symbol_details(symbol: str) -> SymbolDetails:
    """Details of ``symbol`` (any case); a symbol not in the table gets BTCUSD's increments."""
    upper = symbol.upper()
    known = SYMBOL_DETAILS.get(upper)
    if known is not None:
        return known
    return SymbolDetails(
        upper, FALLBACK.tick_size, FALLBACK.quote_increment, FALLBACK.min_order_size
    )


def quantity_problem(details: SymbolDetails, amount: Decimal) -> str | None:
    """Why ``amount`` is not a valid order quantity (below the minimum, off the increment), or
    None when it is valid."""
    if amount < details.min_order_size:
        return f"below the minimum order size {details.min_order_size} {details.symbol[:3]}"
    if amount % details.tick_size != 0:
        return f"not a multiple of the quantity increment (tick_size) {details.tick_size}"
    return None


def price_problem(details: SymbolDetails, price: Decimal) -> str | None:
    """Why ``price`` is not on the symbol's price grid (``quote_increment``), or None."""
    if price % details.quote_increment != 0:
        return f"not a multiple of the price increment (quote_increment) {details.quote_increment}"
    return None
