"""Bitstamp capture frames (``wss://ws.bitstamp.net``) over a REST ``order_book`` snapshot."""

from __future__ import annotations

from typing import Any

from rtcrypto.market.captures.messages import BookUpdate, CaptureMessage, TradePrint, Venue
from rtcrypto.market.captures.parser import (
    IgnoredLine,
    VenueParser,
    bid_ask_changes,
    number_text,
)
from rtcrypto.market.captures.reader import CaptureLine


class BitstampParser(VenueParser):
    """Bitstamp ``diff_order_book_<pair>`` over a REST ``order_book`` snapshot, and ``live_trades``.

    The REST snapshot lives in a sibling ``.http.`` file
    (see :func:`rtcrypto.market.captures.reader.capture_files`). Diffs whose ``microtimestamp``
    is not newer than the snapshot's are dropped; diffs before it are ignored.
    """

    venue: Venue = "bitstamp"

    def __init__(self) -> None:
        self._snapshot_micros: dict[str, int] = {}

    def rest(self, line: CaptureLine, payload: Any) -> list[CaptureMessage]:
        if "/order_book/" not in line.url or not isinstance(payload, dict):
            raise IgnoredLine
        pair = line.url.rstrip("/").rsplit("/", 1)[-1]
        self._snapshot_micros[pair] = int(payload["microtimestamp"])
        return [
            BookUpdate(
                self.symbol(pair), line.ts_ms, line.line_number, bid_ask_changes(payload), True
            )
        ]

    def received(self, line: CaptureLine, payload: Any) -> list[CaptureMessage]:
        if not isinstance(payload, dict) or payload.get("event") not in ("data", "trade"):
            raise IgnoredLine
        channel, data = str(payload["channel"]), payload["data"]
        if channel.startswith("diff_order_book_"):
            pair = channel[len("diff_order_book_") :]
            snapshot_micros = self._snapshot_micros.get(pair)
            if snapshot_micros is None or int(data["microtimestamp"]) <= snapshot_micros:
                raise IgnoredLine
            changes = bid_ask_changes(data)
            return [BookUpdate(self.symbol(pair), line.ts_ms, line.line_number, changes, False)]
        if channel.startswith("live_trades_"):
            return [
                TradePrint(
                    symbol=self.symbol(channel[len("live_trades_") :]),
                    ts_receive_ms=line.ts_ms,
                    line_number=line.line_number,
                    trade_id=int(data["id"]),
                    price=number_text(data["price_str"]),
                    quantity=number_text(data["amount_str"]),
                    taker_side="buy" if int(data["type"]) == 0 else "sell",
                    ts_exchange_ms=int(data["microtimestamp"]) // 1000,
                )
            ]
        raise IgnoredLine
