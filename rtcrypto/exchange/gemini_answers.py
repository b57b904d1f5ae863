"""Gemini's REST answers as the adapter's types (pure): the exception of an error answer by its
``reason``, order objects as :class:`OrderStatus`, decimal fields, and the secrets' redaction.

Gemini sends decimals as JSON strings (``"0.001"``); they are read as ``Decimal``, never floats.
Error bodies are ``{"result": "error", "reason": ..., "message": ...}``; the reasons are those of
Gemini's error-codes list (https://docs.gemini.com/rest-api/#error-codes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from rtcrypto.exchange.base import (
    AuthenticationError,
    ExchangeError,
    ExchangeUnavailableError,
    InsufficientFundsError,
    NonceError,
    OrderNotFoundError,
    OrderRejectedError,
    OrderStatus,
    RateLimitError,
)
from rtcrypto.trading.strategy import Side

log = logging.getLogger("exchange.gemini")

AUTH_REASONS = frozenset(
    {
        "InvalidSignature",
        "MissingApikeyHeader",
        "MissingPayloadHeader",
        "MissingSignatureHeader",
        "InvalidApiKey",
        "MissingRole",
        "InvalidJson",
        "AccountClosed",
        "AccountNotOnTrack",
    }
)
REJECT_REASONS = frozenset(
    {
        "InvalidPrice",
        "InvalidQuantity",
        "InvalidSymbol",
        "InvalidSide",
        "InvalidOrderType",
        "InvalidAmount",
        "UnsupportedOption",
        "ConflictingOptions",
        "ClientOrderIdTooLong",
        "ClientOrderIdMustBeString",
        "MarketNotOpen",
        "InvalidStopPrice",
        "CannotCancelOrder",
    }
)
UNAVAILABLE_REASONS = frozenset({"Maintenance", "System", "ServerError"})
RATE_LIMIT_REASONS = frozenset({"RateLimit", "RateLimited", "TooManyRequests"})


def error_from_response(
    status: int, body: Any, endpoint: str, secrets: tuple[str, ...] = ()
) -> ExchangeError:
    """The exception for a non-2xx answer: Gemini's ``reason`` first, then the HTTP status.

    ``body`` is the decoded JSON (``{"result":"error","reason":...,"message":...}``) or the raw
    text when the answer was not JSON. Any of ``secrets`` found in the message is redacted.
    """
    reason, message = "", ""
    if isinstance(body, Mapping):
        reason = str(body.get("reason") or "")
        message = str(body.get("message") or "")
    elif isinstance(body, str):
        message = body.strip()[:200]
    text = redact(f"gemini {endpoint}: HTTP {status} {reason or 'error'}: {message}", secrets)
    error_class: type[ExchangeError]
    if reason == "InvalidNonce":
        error_class = NonceError
    elif reason in AUTH_REASONS:
        error_class = AuthenticationError
    elif status == 429 or reason in RATE_LIMIT_REASONS:
        error_class = RateLimitError
    elif reason == "InsufficientFunds" or (status == 406 and not reason):
        error_class = InsufficientFundsError
    elif reason == "OrderNotFound":
        error_class = OrderNotFoundError
    elif reason in REJECT_REASONS:
        error_class = OrderRejectedError
    elif status >= 500 or reason in UNAVAILABLE_REASONS:
        error_class = ExchangeUnavailableError
    elif status in (401, 403):
        error_class = AuthenticationError
    else:
        error_class = ExchangeError
    return error_class(text, reason=reason, status=status)


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def decimal_field(value: Any, field: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError) as error:
        raise ExchangeError(f"gemini: field {field}={value!r} is not a number") from error


def optional_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def fees_usd(trades: list[Mapping[str, Any]]) -> Decimal:
    """Sum of the trades' ``fee_amount`` charged in USD (Gemini charges the quote currency)."""
    total = Decimal(0)
    for trade in trades:
        currency = str(trade.get("fee_currency", "USD")).upper()
        if currency != "USD":
            log.warning("fee in %s ignored tid=%s", currency, trade.get("tid"))
            continue
        total += decimal_field(trade.get("fee_amount", "0"), "fee_amount")
    return total


def order_from_json(order: Mapping[str, Any], fee_usd: Decimal) -> OrderStatus:
    """One Gemini order object as an :class:`OrderStatus` (with the given fee)."""
    try:
        return OrderStatus(
            order_id=str(order["order_id"]),
            client_order_id=order.get("client_order_id"),
            symbol=str(order["symbol"]).lower(),
            side=Side(str(order["side"]).lower()),
            limit_price=decimal_field(order.get("price", "0"), "price"),
            original_quantity=decimal_field(order["original_amount"], "original_amount"),
            executed_quantity=decimal_field(order.get("executed_amount", "0"), "executed_amount"),
            average_execution_price=decimal_field(
                order.get("avg_execution_price") or "0", "avg_execution_price"
            ),
            fee_usd=fee_usd,
            is_live=bool(order.get("is_live", False)),
            is_cancelled=bool(order.get("is_cancelled", False)),
            ts_ms=int(order.get("timestampms") or int(order.get("timestamp", 0)) * 1000),
        )
    except (KeyError, ValueError, TypeError) as error:
        raise ExchangeError(f"gemini: unexpected order object ({error!r})") from error


def estimated_fee_usd(status: OrderStatus, fee_pct: Decimal) -> Decimal:
    """Executed notional x ``fee_pct`` percent (when the charged fee cannot be read)."""
    return status.executed_quantity * status.average_execution_price * fee_pct / Decimal(100)


def latest_order(orders: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """Of several orders sharing a client_order_id, the newest (Gemini answers with a list)."""
    if not orders:
        return None
    return max(orders, key=lambda order: int(order.get("timestampms") or 0))
