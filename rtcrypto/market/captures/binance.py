"""Binance and Binance.US capture frames: depth diffs over a REST snapshot, and ``aggTrade``.

Binance.US speaks the same protocol as Binance; only its hosts and symbol spelling differ
(Binance's ``BTCUSDT`` is renamed ``BTCUSD``, Binance.US already says ``BTCUSD``).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from rtcrypto.market.captures.messages import BookUpdate, CaptureMessage, TradePrint, Venue
from rtcrypto.market.captures.parser import (
    IgnoredLine,
    VenueParser,
    bid_ask_changes,
    number_text,
    v2_change,
)
from rtcrypto.market.captures.reader import CaptureLine


class BinanceParser(VenueParser):
    """Binance depth diffs over a REST snapshot, and ``aggTrade``.

    Diffs before a symbol's snapshot are held back; at the snapshot, those with ``u`` greater than
    its ``lastUpdateId`` follow it (stamped with the snapshot's time, so time never goes back);
    later diffs with ``u <= lastUpdateId`` are dropped, as Binance documents.
    """

    venue: Venue = "binance"
    symbol_aliases: ClassVar[dict[str, str]] = {"BTCUSDT": "BTCUSD"}
    _REST_SYMBOL = re.compile(r"[?&]symbol=([A-Za-z0-9]+)")

    def __init__(self) -> None:
        self._last_update_id: dict[str, int] = {}
        self._held_back: dict[str, list[dict[str, Any]]] = {}

    def rest(self, line: CaptureLine, payload: Any) -> list[CaptureMessage]:
        found = self._REST_SYMBOL.search(line.url)
        if "/depth" not in line.url or found is None or not isinstance(payload, dict):
            raise IgnoredLine
        venue_symbol = found[1].upper()
        last_update_id = int(payload["lastUpdateId"])
        self._last_update_id[venue_symbol] = last_update_id
        changes = bid_ask_changes(payload)
        symbol = self.symbol(venue_symbol)
        messages: list[CaptureMessage] = [
            BookUpdate(symbol, line.ts_ms, line.line_number, changes, True)
        ]
        for diff in self._held_back.pop(venue_symbol, []):
            if int(diff["u"]) > last_update_id:
                messages.append(self._diff(line, diff, symbol))
        return messages

    def received(self, line: CaptureLine, payload: Any) -> list[CaptureMessage]:
        data: Any = payload.get("data", payload) if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            raise IgnoredLine
        kind = data.get("e")
        if kind == "depthUpdate":
            venue_symbol = str(data["s"]).upper()
            last_update_id = self._last_update_id.get(venue_symbol)
            if last_update_id is None:
                int(data["u"])  # validate now: a held-back diff must not fail later
                self._held_back.setdefault(venue_symbol, []).append(data)
                raise IgnoredLine
            if int(data["u"]) <= last_update_id:
                raise IgnoredLine
            return [self._diff(line, data, self.symbol(venue_symbol))]
        if kind == "aggTrade":
            return [
                TradePrint(
                    symbol=self.symbol(str(data["s"]).upper()),
                    ts_receive_ms=line.ts_ms,
                    line_number=line.line_number,
                    trade_id=int(data["a"]),
                    price=number_text(data["p"]),
                    quantity=number_text(data["q"]),
                    # m: the buyer is the maker, so the taker sold
                    taker_side="sell" if data["m"] else "buy",
                    ts_exchange_ms=int(data["T"]),
                )
            ]
        raise IgnoredLine

    @staticmethod
    def _diff(line: CaptureLine, data: dict[str, Any], symbol: str) -> BookUpdate:
        changes = tuple(v2_change("buy", price, qty) for price, qty, *_ in data["b"]) + tuple(
            v2_change("sell", price, qty) for price, qty, *_ in data["a"]
        )
        return BookUpdate(symbol, line.ts_ms, line.line_number, changes, False)


class BinanceUsParser(BinanceParser):
    """Binance.US: Binance's protocol, symbols kept as the venue spells them."""

    venue: Venue = "binance_us"
    symbol_aliases: ClassVar[dict[str, str]] = {}
