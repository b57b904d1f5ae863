"""Gemini's symbol details (``GET /v1/symbols/details/{symbol}``) as order rules: the parser, a
per-symbol cache that re-reads them after ``refresh_s``, and the last check before an order is sent.

The document (https://developer.gemini.com/trading/rest-api/market-data/get-symbol-details)
carries ``tick_size`` (quantity increment, a JSON number), ``quote_increment`` (price increment,
a JSON number), ``min_order_size`` (a decimal string) and ``status``; numbers are accepted as
JSON numbers or decimal strings. A document that cannot be trusted to size an order (missing
field, not a positive finite number, another symbol's details) raises
:class:`SymbolDetailsError` naming the field: no order is sized from a guess.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from rtcrypto.bounded import BoundsError, decimal_text
from rtcrypto.exchange.base import ExchangeError, OrderRejectedError
from rtcrypto.trading.order_rules import OrderRules, below_minimum_reason, round_order
from rtcrypto.trading.order_types import OrderRequest

log = logging.getLogger("exchange.gemini")

ENDPOINT = "/v1/symbols/details/{symbol}"
RETRY_AFTER_FAILURE_S = 30.0  # a failed refresh keeps the cached rules and tries again this soon
MAX_TEXT_CHARS = 32  # symbol, currency and status strings are a few characters
RULE_REASONS = frozenset({"InvalidQuantity", "InvalidPrice"})


class SymbolDetailsError(ExchangeError):
    """Gemini's symbol details cannot be used as order rules; the message names the field."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="InvalidSymbolDetails")


def _number(document: Mapping[str, Any], field: str, where: str) -> Decimal:
    value = document.get(field)
    if isinstance(value, float):
        value = repr(value)  # 1e-08 -> "1e-08": the digits the JSON carried
    try:
        number = decimal_text(value, field)
    except BoundsError as error:
        raise SymbolDetailsError(f"{where}: {error}") from None
    if number <= 0:
        raise SymbolDetailsError(f"{where}: {field} must be positive, got {value!r}")
    return number


def _text(document: Mapping[str, Any], field: str, where: str, default: str | None = None) -> str:
    value = document.get(field, default)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT_CHARS:
        raise SymbolDetailsError(f"{where}: {field} is not a short string: {str(value)[:40]!r}")
    return value


def rules_from_symbol_details(document: Any, symbol: str | None = None) -> OrderRules:
    """Order rules from a decoded ``/v1/symbols/details`` answer; ``symbol`` (any case), when
    given, must be the one the document describes. Raises :class:`SymbolDetailsError`."""
    where = f"gemini {ENDPOINT.format(symbol=(symbol or '?').lower())}"
    if not isinstance(document, Mapping):
        raise SymbolDetailsError(f"{where}: expected a JSON object, got {type(document).__name__}")
    described = _text(document, "symbol", where).upper()
    if symbol is not None and described != symbol.upper():
        raise SymbolDetailsError(f"{where}: the answer describes {described}, not {symbol.upper()}")
    base = document.get("base_currency")
    try:
        return OrderRules(
            symbol=described,
            tick_size=_number(document, "tick_size", where),
            quote_increment=_number(document, "quote_increment", where),
            min_order_size=_number(document, "min_order_size", where),
            status=_text(document, "status", where, default="open").lower(),
            base_currency=_text(document, "base_currency", where).upper() if base else "",
        )
    except ValueError as error:  # OrderRules' own checks (range)
        raise SymbolDetailsError(f"{where}: {error}") from None


class SymbolRulesCache:
    """Order rules per symbol, read with ``fetch(symbol)`` (the raw document) on first use and
    again once ``refresh_s`` seconds old. A failed refresh keeps the rules already known (with a
    warning) and is retried after ``RETRY_AFTER_FAILURE_S``; a failed first read raises."""

    def __init__(
        self,
        fetch: Callable[[str], Any],
        refresh_s: float,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        if refresh_s <= 0:
            raise ValueError(f"refresh_s must be > 0, got {refresh_s}")
        self._fetch = fetch
        self.refresh_s = refresh_s
        self._clock_s = clock_s
        self._rules: dict[str, OrderRules] = {}
        self._due_s: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, symbol: str) -> OrderRules:
        """The rules of ``symbol`` (any case), read or re-read when due."""
        key = symbol.upper()
        with self._lock:
            known = self._rules.get(key)
            if known is not None and self._clock_s() < self._due_s[key]:
                return known
            try:
                rules = rules_from_symbol_details(self._fetch(key.lower()), key)
            except ExchangeError as error:
                if known is None:
                    raise
                log.warning(
                    "symbol details of %s not refreshed, keeping %s: %s",
                    key,
                    known.describe(),
                    error,
                )
                self._due_s[key] = self._clock_s() + min(self.refresh_s, RETRY_AFTER_FAILURE_S)
                return known
            if rules != known:
                log.info("order rules %s", rules.describe())
            self._rules[key] = rules
            self._due_s[key] = self._clock_s() + self.refresh_s
            return rules

    def forget(self, symbol: str) -> OrderRules | None:
        """Drop ``symbol``'s rules (returned): the next ``get`` reads them again."""
        with self._lock:
            self._due_s.pop(symbol.upper(), None)
            return self._rules.pop(symbol.upper(), None)

    def refusal(self, error: OrderRejectedError, order: OrderRequest) -> OrderRejectedError:
        """The exception for the exchange's refusal of ``order``: an ``InvalidQuantity`` or
        ``InvalidPrice`` of an order rounded to these rules means they changed, so they are
        dropped (read again before the next order) and the message names the values sent and
        the rules used (:func:`rejected_with_rules`); any other refusal is ``error`` itself."""
        if error.reason not in RULE_REASONS:
            return error
        rules = self.forget(order.symbol)
        return error if rules is None else rejected_with_rules(error, order, rules)


def fetch_over(
    public: Callable[[str], Any], read: Callable[[str, Callable[[], Any]], Any]
) -> Callable[[str], Any]:
    """``fetch(symbol)`` for :class:`SymbolRulesCache`: the adapter's public GET of
    ``/v1/symbols/details/{symbol}`` through its retried ``read``."""
    return lambda symbol: read("symbol details", lambda: public(ENDPOINT.format(symbol=symbol)))


def order_for_exchange(order: OrderRequest, rules: OrderRules) -> OrderRequest:
    """``order`` rounded to ``rules`` (quantity down; a buy's price down, a sell's up), or
    :class:`OrderRejectedError` (reason ``InvalidQuantity``, nothing sent) when it is below the
    minimum order size or rounds to nothing."""
    rounded = round_order(order, rules)
    quantity = rounded.quantity if rounded is not None else Decimal(0)
    too_small = below_minimum_reason(quantity, rules)
    if rounded is None or too_small is not None:
        raise OrderRejectedError(
            f"gemini /v1/order/new: InvalidQuantity, not sent: order client_order_id="
            f"{order.client_order_id} of {order.quantity} {rules.base_currency} at limit "
            f"{order.limit_price} rounds to {quantity} {rules.base_currency}, "
            + (too_small or f"nothing on the grid of {rules.describe()}"),
            reason="InvalidQuantity",
        )
    if rounded is not order:
        log.info(
            "order client_order_id=%s rounded to the symbol details: quantity %s -> %s, "
            "limit %s -> %s",
            order.client_order_id,
            order.quantity,
            rounded.quantity,
            order.limit_price,
            rounded.limit_price,
        )
    return rounded


def rejected_with_rules(
    error: OrderRejectedError, order: OrderRequest, rules: OrderRules
) -> OrderRejectedError:
    """The exchange refused ``order`` as off its increments or below its minimum although it was
    rounded to ``rules``: the same error, its message naming the values sent and the rules used."""
    return OrderRejectedError(
        f"{error} -- sent quantity {order.quantity} {rules.base_currency} at limit "
        f"{order.limit_price}, rounded to the symbol details read before ({rules.describe()}); "
        "they are read again before the next order",
        reason=error.reason,
        status=error.status,
    )
