"""Gemini's ``/v1/mytrades`` (the account's own fills): the parsed trade, its parser and paging.

Each fill carries the fee Gemini charged (``fee_amount`` in ``fee_currency``), so the trader
books fees from here: the fee of an order is the sum of ``fee_amount`` over its trades, exact
(``Decimal``, never floats). Prices are quote currency (USD) per base unit, amounts base
currency (BTC), times epoch milliseconds (UTC).

Paging follows Gemini's documented walk: the answer is sorted newest first and holds at most
``limit_trades`` (<= 500) trades at or after ``timestamp``; the next page starts at the highest
``timestampms`` of the last (trades seen twice are dropped by ``tid``) until a page is not full.

Docs: https://developer.gemini.com/trading/rest-api/orders/list-past-trades
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, runtime_checkable

from rtcrypto.exchange.base import ExchangeError
from rtcrypto.trading.strategy import Side

log = logging.getLogger("exchange.gemini")

MAX_LIMIT_TRADES = 500  # Gemini's cap per request
MAX_TEXT_CHARS = 100  # ids and currency codes longer than this are not Gemini's


@dataclass(frozen=True, slots=True)
class MyTrade:
    """One fill of the account (``/v1/mytrades`` row)."""

    tid: int
    order_id: str
    client_order_id: str | None
    side: Side  # the account's side: ``type`` Buy / Sell
    price: Decimal  # USD per BTC
    amount: Decimal  # BTC
    fee_amount: Decimal  # in fee_currency
    fee_currency: str  # upper case (USD)
    is_maker: bool  # ``aggressor`` false
    timestampms: int

    @property
    def notional(self) -> Decimal:
        """price x amount (USD)."""
        return self.price * self.amount


@runtime_checkable
class TradeHistory(Protocol):
    """An exchange that lists the account's fills (the ``gemini`` adapter; the paper exchange
    does not: the trader checks with ``isinstance``)."""

    def my_trades(self, symbol: str, since_ms: int, limit: int = MAX_LIMIT_TRADES) -> list[MyTrade]:
        """Every fill of ``symbol`` at or after ``since_ms``, oldest first, each once."""
        ...


def _bad(index: int, field: str, value: Any, what: str) -> ExchangeError:
    shown = repr(value)[:80]
    return ExchangeError(
        f"gemini /v1/mytrades: trade #{index} field {field}={shown} {what}",
        reason="UnreadableAnswer",
    )


def _text(row: Mapping[str, Any], index: int, field: str, *, required: bool = True) -> str | None:
    value = row.get(field)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(index, field, value, "is not a string")
    text = str(value)
    if not text or len(text) > MAX_TEXT_CHARS:
        raise _bad(index, field, value, f"is empty or longer than {MAX_TEXT_CHARS} characters")
    return text


def _number(row: Mapping[str, Any], index: int, field: str, *, positive: bool) -> Decimal:
    value = row.get(field)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(index, field, value, "is not a decimal number (Gemini sends a string)")
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise _bad(index, field, value, "is not a decimal number") from None
    if not number.is_finite() or number < 0 or (positive and number == 0):
        raise _bad(index, field, value, "must be a finite number " + (">0" if positive else ">=0"))
    return number


def _whole(row: Mapping[str, Any], index: int, field: str) -> int:
    value = row.get(field)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _bad(index, field, value, "is not a whole number")
    text = str(value)
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise _bad(index, field, value, "is not a whole non-negative number")
    return int(text)


def parse_my_trade(row: Any, index: int = 0) -> MyTrade:
    """One ``/v1/mytrades`` row as a :class:`MyTrade`; a row that is not Gemini's raises
    ``ExchangeError`` (reason ``UnreadableAnswer``) naming the trade and the field."""
    if not isinstance(row, Mapping):
        raise _bad(index, "(row)", row, "is not a JSON object")
    kind = _text(row, index, "type")
    if kind is None or kind.lower() not in ("buy", "sell"):
        raise _bad(index, "type", row.get("type"), "is not Buy or Sell")
    aggressor = row.get("aggressor", True)
    if not isinstance(aggressor, bool):
        raise _bad(index, "aggressor", aggressor, "is not true or false")
    fee_currency = _text(row, index, "fee_currency")
    order_id = _text(row, index, "order_id")
    assert fee_currency is not None and order_id is not None
    return MyTrade(
        tid=_whole(row, index, "tid"),
        order_id=order_id,
        client_order_id=_text(row, index, "client_order_id", required=False),
        side=Side(kind.lower()),
        price=_number(row, index, "price", positive=True),
        amount=_number(row, index, "amount", positive=True),
        fee_amount=_number(row, index, "fee_amount", positive=False),
        fee_currency=fee_currency.upper(),
        is_maker=not aggressor,
        timestampms=_whole(row, index, "timestampms"),
    )


def parse_my_trades(body: Any) -> list[MyTrade]:
    """A ``/v1/mytrades`` answer (a JSON array) as trades in the answer's order; anything else
    raises ``ExchangeError`` saying what is wrong."""
    if not isinstance(body, list):
        raise ExchangeError(
            f"gemini /v1/mytrades: expected a JSON array of trades, got {type(body).__name__}",
            reason="UnreadableAnswer",
        )
    return [parse_my_trade(row, index) for index, row in enumerate(body)]


def walk_pages(
    fetch_page: Callable[[int, int], list[MyTrade]], since_ms: int, limit: int
) -> list[MyTrade]:
    """Every trade at or after ``since_ms``, oldest first, each ``tid`` once.

    ``fetch_page(since_ms, limit)`` is one request. A page shorter than ``limit`` ends the walk;
    after a full page the next starts at its highest ``timestampms`` (one later if the page did
    not move past ``since_ms``: more than ``limit`` trades in one millisecond cannot be listed).
    """
    if not 1 <= limit <= MAX_LIMIT_TRADES:
        raise ValueError(f"limit must be from 1 to {MAX_LIMIT_TRADES}, got {limit}")
    seen: dict[int, MyTrade] = {}
    while True:
        page = fetch_page(since_ms, limit)
        for trade in page:
            seen.setdefault(trade.tid, trade)
        if len(page) < limit:
            break
        top = max(trade.timestampms for trade in page)
        if top <= since_ms:
            log.warning(
                "gemini /v1/mytrades: %d trades at %d ms fill a page; later ones in that "
                "millisecond are skipped",
                len(page),
                top,
            )
        since_ms = top if top > since_ms else since_ms + 1
    return sorted(seen.values(), key=lambda trade: (trade.timestampms, trade.tid))


def trades_of_order(trades: Iterable[MyTrade], order_id: str) -> list[MyTrade]:
    """The trades of one order (by Gemini's ``order_id``)."""
    return [trade for trade in trades if trade.order_id == order_id]


def fee_usd_of(trades: Iterable[MyTrade]) -> Decimal:
    """Sum of ``fee_amount`` charged in USD (a fee in another currency is logged and left out:
    the ledger keeps USD)."""
    total = Decimal(0)
    for trade in trades:
        if trade.fee_currency != "USD":
            log.warning(
                "fee in %s of tid=%d left out of the USD fee", trade.fee_currency, trade.tid
            )
            continue
        total += trade.fee_amount
    return total
