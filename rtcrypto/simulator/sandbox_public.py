"""Public market-data endpoints of the simulator beyond the book and the v1 ticker, built from the
replayed trades, with Gemini's field names and types (https://docs.gemini.com/rest/market-data):

- ``GET /v1/symbols/details/{symbol}``: :mod:`rtcrypto.simulator.symbol_details`.
- ``GET /v2/ticker/{symbol}``: ``symbol``, ``open``/``high``/``low``/``close`` of the last 24 h of
  replayed trades, ``changes`` (24 hourly prices, newest first), ``bid``/``ask``; all strings.
- ``GET /v1/trades/{symbol}?timestamp=&since_tid=&limit_trades=``: replayed trades, newest first
  (``limit_trades`` <= 500, default 50; ``timestamp`` in s or ms, ``since`` accepted as an
  alias); each ``timestamp`` (int s), ``timestampms`` (int ms), ``tid`` (int), ``price`` and
  ``amount`` (strings), ``exchange`` ``gemini``, ``type`` the taker's side (buy/sell).

An unknown symbol gets Gemini's 400 ``InvalidSymbol`` body; a bad parameter a 400
``InvalidParameter`` naming it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from rtcrypto.market.captures import TradePrint
from rtcrypto.simulator.replay import DAY_MS, StreamEngine
from rtcrypto.simulator.sandbox_trades import limit_of, since_ms
from rtcrypto.simulator.symbol_details import symbol_details
from rtcrypto.simulator.wire import invalid_symbol_body

HOUR_MS = 3_600_000

Handler = Callable[[web.Request], Awaitable[web.Response]]


def add_public_routes(
    router: web.UrlDispatcher, engine: StreamEngine, valid_symbols: set[str]
) -> None:
    """Register this module's GET endpoints for ``engine``'s replay."""

    def checked(view: Callable[[str, web.Request], Any]) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            symbol = request.match_info["symbol"].upper()
            if symbol not in valid_symbols:
                return web.json_response(invalid_symbol_body(symbol.lower()), status=400)
            try:
                return web.json_response(view(symbol, request))
            except ValueError as error:
                body = {"result": "error", "reason": "InvalidParameter", "message": str(error)}
                return web.json_response(body, status=400)

        return handle

    router.add_get(
        "/v1/symbols/details/{symbol}", checked(lambda symbol, _: symbol_details(symbol).to_json())
    )
    router.add_get("/v2/ticker/{symbol}", checked(lambda symbol, _: ticker_v2(engine, symbol)))
    router.add_get(
        "/v1/trades/{symbol}",
        checked(lambda symbol, request: recent_trades(engine, symbol, dict(request.query))),
    )


def _recent(engine: StreamEngine, symbol: str) -> list[tuple[int, TradePrint]]:
    return list(engine.tickers[symbol].recent) if symbol in engine.tickers else []


def recent_trades(engine: StreamEngine, symbol: str, query: dict[str, str]) -> list[dict[str, Any]]:
    """``/v1/trades/{symbol}``: the replayed trades after ``timestamp`` (or ``since``) and
    ``since_tid``, newest first, at most ``limit_trades``."""
    start_ms = since_ms(query.get("timestamp", query.get("since")), "timestamp")
    since_tid = query.get("since_tid")
    if since_tid is not None and not since_tid.isdigit():
        raise ValueError(f"since_tid must be a trade id (whole number), got {since_tid!r}")
    limit = limit_of(query.get("limit_trades"), "limit_trades")
    rows: list[dict[str, Any]] = []
    for ts_ms, trade in reversed(_recent(engine, symbol)):
        if len(rows) >= limit or ts_ms < start_ms:
            break
        if since_tid is not None and trade.trade_id <= int(since_tid):
            continue
        rows.append(
            {
                "timestamp": ts_ms // 1000,
                "timestampms": ts_ms,
                "tid": trade.trade_id,
                "price": trade.price,
                "amount": trade.quantity,
                "exchange": "gemini",
                "type": trade.taker_side,
            }
        )
    return rows


def ticker_v2(engine: StreamEngine, symbol: str) -> dict[str, Any]:
    """``/v2/ticker/{symbol}``: the last 24 h of replayed trades and the book's best prices."""
    now_ms = engine.stream_time_ms()
    day = [(ts_ms, trade) for ts_ms, trade in _recent(engine, symbol) if ts_ms > now_ms - DAY_MS]
    last_price = engine.tickers[symbol].last_price if symbol in engine.tickers else None
    prices = [Decimal(trade.price) for _, trade in day]
    close = prices[-1] if prices else (Decimal(last_price) if last_price else None)
    book = engine.books.get(symbol)
    best_bid = book.best_bid() if book else None
    best_ask = book.best_ask() if book else None
    return {
        "symbol": symbol,
        "open": _text(prices[0] if prices else close),
        "high": _text(max(prices) if prices else close),
        "low": _text(min(prices) if prices else close),
        "close": _text(close),
        "changes": hourly_prices(day, now_ms, close),
        "bid": best_bid.price if best_bid else None,
        "ask": best_ask.price if best_ask else None,
    }


def hourly_prices(
    trades: list[tuple[int, TradePrint]], now_ms: int, fallback: Decimal | None
) -> list[str]:
    """24 prices, newest hour first: the last trade price at the end of each past hour (the
    previous hour's price, or ``fallback``, when an hour had no trade)."""
    changes: list[str] = []
    index = len(trades) - 1
    price = fallback
    for hour in range(24):
        hour_end_ms = now_ms - hour * HOUR_MS
        while index >= 0 and trades[index][0] > hour_end_ms:
            index -= 1
        if index >= 0:
            price = Decimal(trades[index][1].price)
        changes.append(_text(price) or "0")
    return changes


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")
