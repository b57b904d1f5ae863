"""JSON forms of ``OrderRequest``, ``OrderStatus`` and ``TopOfBook`` (Decimals as strings, exact), for files."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rtcrypto.exchange.base import OrderStatus
from rtcrypto.trading.order_types import OrderRequest, TopOfBook
from rtcrypto.trading.strategy import Side

DECIMAL_FIELDS = frozenset(
    {
        "quantity",
        "limit_price",
        "original_quantity",
        "executed_quantity",
        "average_execution_price",
        "fee_usd",
    }
)


def _encode(value: Any) -> Any:
    if isinstance(value, Side):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    return value


def _decode(data: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {
        key: Decimal(value) if key in DECIMAL_FIELDS else value for key, value in data.items()
    }
    values["side"] = Side(values["side"])
    return values


def request_to_json(order: OrderRequest) -> dict[str, Any]:
    return {name: _encode(getattr(order, name)) for name in OrderRequest.__slots__}


def request_from_json(data: dict[str, Any]) -> OrderRequest:
    return OrderRequest(**_decode(data))


def status_to_json(status: OrderStatus) -> dict[str, Any]:
    return {name: _encode(getattr(status, name)) for name in OrderStatus.__slots__}


def status_from_json(data: dict[str, Any]) -> OrderStatus:
    return OrderStatus(**_decode(data))


def book_to_json(book: TopOfBook) -> dict[str, str | int]:
    """A top of book as JSON (Decimals as strings)."""
    return {
        "symbol": book.symbol,
        "bid": str(book.bid),
        "bid_quantity": str(book.bid_quantity),
        "ask": str(book.ask),
        "ask_quantity": str(book.ask_quantity),
        "ts_ms": book.ts_ms,
    }


def book_from_json(data: dict[str, Any]) -> TopOfBook:
    """The inverse of ``book_to_json``."""
    return TopOfBook(
        symbol=str(data["symbol"]),
        bid=Decimal(data["bid"]),
        bid_quantity=Decimal(data["bid_quantity"]),
        ask=Decimal(data["ask"]),
        ask_quantity=Decimal(data["ask_quantity"]),
        ts_ms=int(data["ts_ms"]),
    )
