"""Kraken websocket v1 capture frames (``wss://ws.kraken.com``): book and trade channels."""

from __future__ import annotations

from typing import Any

from rtcrypto.market.captures.messages import (
    BookUpdate,
    CaptureMessage,
    TradePrint,
    V2Change,
    Venue,
)
from rtcrypto.market.captures.parser import IgnoredLine, VenueParser, number_text, v2_change
from rtcrypto.market.captures.reader import CaptureLine, epoch_seconds_to_ms


class KrakenParser(VenueParser):
    """Kraken websocket v1 ``book-N`` (``as``/``bs`` snapshot, ``a``/``b`` updates) and ``trade``."""

    venue: Venue = "kraken"

    def symbol(self, venue_symbol: str) -> str:
        # Kraken spells bitcoin XBT: XBT/USD -> BTCUSD, FIL/XBT -> FILBTC.
        return venue_symbol.replace("XBT", "BTC").replace("/", "").upper()

    def received(self, line: CaptureLine, payload: Any) -> list[CaptureMessage]:
        if not isinstance(payload, list) or len(payload) < 4:
            raise IgnoredLine  # events (systemStatus, subscriptionStatus, heartbeat) are objects
        channel, pair = str(payload[-2]), str(payload[-1])
        symbol = self.symbol(pair)
        if channel.startswith("book"):
            return [self._book(line, payload[1:-2], symbol)]
        if channel == "trade":
            return [
                self._trade(line, index, entry, symbol) for index, entry in enumerate(payload[1])
            ]
        raise IgnoredLine

    @staticmethod
    def _book(line: CaptureLine, parts: list[Any], symbol: str) -> BookUpdate:
        changes: list[V2Change] = []
        is_snapshot = False
        for part in parts:
            for key, levels in part.items():
                if key in ("as", "bs"):
                    is_snapshot = True
                elif key not in ("a", "b"):
                    continue  # "c": CRC32 checksum
                side = "sell" if key.startswith("a") else "buy"
                changes.extend(v2_change(side, level[0], level[1]) for level in levels)
        return BookUpdate(symbol, line.ts_ms, line.line_number, tuple(changes), is_snapshot)

    @staticmethod
    def _trade(line: CaptureLine, index: int, entry: list[Any], symbol: str) -> TradePrint:
        # Kraken trades carry no id: derive one from the capture position (deterministic).
        return TradePrint(
            symbol=symbol,
            ts_receive_ms=line.ts_ms,
            line_number=line.line_number,
            trade_id=line.line_number * 1000 + index,
            price=number_text(entry[0]),
            quantity=number_text(entry[1]),
            taker_side="buy" if entry[3] == "b" else "sell",
            ts_exchange_ms=epoch_seconds_to_ms(str(entry[2])),
        )
