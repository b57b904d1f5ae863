"""Gemini market data v2 capture frames (``wss://api.gemini.com/v2/marketdata``)."""

from __future__ import annotations

from typing import Any

from rtcrypto.market.captures.messages import BookUpdate, CaptureMessage, TradePrint, Venue
from rtcrypto.market.captures.parser import (
    IgnoredLine,
    VenueParser,
    number_text,
    taker_side,
    v2_change,
)
from rtcrypto.market.captures.reader import CaptureLine


class GeminiParser(VenueParser):
    """Gemini market data v2: ``l2_updates`` (the first per symbol is the full book) and ``trade``."""

    venue: Venue = "gemini"

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def received(self, line: CaptureLine, payload: Any) -> list[CaptureMessage]:
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind == "l2_updates":
            symbol = self.symbol(payload["symbol"])
            changes = tuple(v2_change(side, price, qty) for side, price, qty in payload["changes"])
            trades = tuple(
                self._trade(line, trade, symbol) for trade in payload.get("trades") or ()
            )
            is_snapshot = symbol not in self._seen
            self._seen.add(symbol)
            return [BookUpdate(symbol, line.ts_ms, line.line_number, changes, is_snapshot, trades)]
        if kind == "trade":
            return [self._trade(line, payload, self.symbol(payload["symbol"]))]
        raise IgnoredLine

    @staticmethod
    def _trade(line: CaptureLine, trade: dict[str, Any], symbol: str) -> TradePrint:
        return TradePrint(
            symbol=symbol,
            ts_receive_ms=line.ts_ms,
            line_number=line.line_number,
            trade_id=int(trade["event_id"]),
            price=number_text(trade["price"]),
            quantity=number_text(trade["quantity"]),
            taker_side=taker_side(trade["side"]),
            ts_exchange_ms=int(trade["timestamp"]) if "timestamp" in trade else None,
        )
