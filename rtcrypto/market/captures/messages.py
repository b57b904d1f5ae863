"""The typed messages a capture becomes: book updates and trade prints, in Gemini v2 form.

A :class:`BookUpdate` carries level changes ``(side "buy"|"sell", price, quantity)``: quantity is
the level's new size, 0 removes it. A :class:`TradePrint` is one trade with its aggressor side.
Prices and sizes stay the capture's strings; symbols are spelled as Gemini spells them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TakerSide = Literal["buy", "sell"]
V2Change = tuple[str, str, str]  # (side "buy"|"sell", price, quantity) as the capture wrote them
Venue = Literal["gemini", "kraken", "binance", "binance_us", "bitstamp"]


class CaptureError(ValueError):
    """A capture file that cannot be used at all (missing, empty, unknown venue)."""


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """Level changes of one symbol from one capture line, in the capture's order.

    ``is_snapshot`` marks a full book (Gemini's first ``l2_updates``, Kraken ``as``/``bs``,
    a Binance or Bitstamp REST snapshot). ``ts_receive_ms`` is the capture line's receive time
    truncated to milliseconds. ``trades`` are trades carried in the same frame (Gemini puts the
    recent trades into its first ``l2_updates``; they are history, not new prints).
    """

    symbol: str
    ts_receive_ms: int
    line_number: int
    changes: tuple[V2Change, ...]
    is_snapshot: bool
    trades: tuple[TradePrint, ...] = ()


@dataclass(frozen=True, slots=True)
class TradePrint:
    """One trade. ``taker_side`` is the aggressor (Gemini v2 ``side``); the maker is the other side."""

    symbol: str
    ts_receive_ms: int
    line_number: int
    trade_id: int
    price: str
    quantity: str
    taker_side: TakerSide
    ts_exchange_ms: int | None = None

    @property
    def maker_side(self) -> Literal["bid", "ask"]:
        """Gemini v1 ``makerSide``: a buying taker lifts a resting ask, and vice versa."""
        return "ask" if self.taker_side == "buy" else "bid"


CaptureMessage = BookUpdate | TradePrint
