"""Public market-data endpoints of the simulator beyond the book and the v1 ticker, built from the
replayed trades, with Gemini's field names and types (https://docs.gemini.com/rest/market-data):

- ``GET /v1/symbols/details/{symbol}``: :mod:`rtcrypto.simulator.symbol_details`.
- ``GET /v2/ticker/{symbol}``: ``symbol``, ``open``/``high``/``low``/``close`` of the last 24 h of
  replayed trades, ``changes`` (24 hourly prices, newest first), ``bid``/``ask``; all strings.
- ``GET /v1/trades/{symbol}?timestamp=&since_tid=&limit_trades=``: replayed trades, newest first
  (``limit_trades`` <= 500, default 50; ``timestamp`` in s or ms, ``since`` accepted as an
  alias; see :func:`recent_trades` for the window); each ``timestamp`` (int s), ``timestampms`` (int ms), ``tid`` (int), ``price`` and
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
from rtcrypto.simulator.sandbox_trades import limit_of, since_ms, whole_number
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
    """``/v1/trades/{symbol}``: the newest ``limit_trades`` replayed trades at or after
    ``timestamp`` (alias ``since``, s or ms; as documented); with ``since_tid``, which trumps
    ``timestamp``, the earliest ``limit_trades`` trades after that id (``0``: the earliest kept),
    so a client can page forward. Newest first either way."""
    since_tid_text = query.get("since_tid")
    since_tid = whole_number(since_tid_text)
    if since_tid_text is not None and since_tid is None:
        raise ValueError(f"since_tid must be a trade id (whole number), got {since_tid_text!r}")
    start_ms = since_ms(query.get("timestamp", query.get("since")), "timestamp")
    limit = limit_of(query.get("limit_trades"), "limit_trades")
    trades = _recent(engine, symbol)
    if since_tid is not None:
        chosen = [item for item in trades if item[1].trade_id > since_tid][:limit]
    else:
        chosen = [item for item in trades if item[0] >= start_ms][-limit:]
    return [trade_json(ts_ms, trade) for ts_ms, trade in reversed(chosen)]


def trade_json(ts_ms: int, trade: TradePrint) -> dict[str, Any]:
    """One replayed trade as ``/v1/trades`` lists it (``type`` is the taker's side)."""
    return {
        "timestamp": ts_ms // 1000,
        "timestampms": ts_ms,
        "tid": trade.trade_id,
        "price": trade.price,
        "amount": trade.quantity,
        "exchange": "gemini",
        "type": trade.taker_side,
    }


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
    newer hour's price, or ``fallback``, when no trade is that old). ``trades`` oldest first."""
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
