"""What every venue parser shares: the base class and the checks of a frame's fields.

A venue parser is one stateful object per capture, fed its lines in receive order; it returns the
typed messages of a line or raises :class:`IgnoredLine` for a line that carries nothing to replay.
Any other exception skips that one line (see :func:`rtcrypto.market.captures.parse.parse_sources`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from rtcrypto import bounded
from rtcrypto.market.captures.messages import CaptureMessage, TakerSide, V2Change, Venue
from rtcrypto.market.captures.reader import CaptureLine


class IgnoredLine(Exception):
    """A line that parsed but carries nothing to replay."""


class VenueParser:
    """Turns a venue's lines into typed messages. Subclasses override :meth:`received`.

    ``symbol_aliases``: venue symbols renamed into Gemini's spelling; others keep the venue's
    name without ``/``, uppercased.
    """

    venue: Venue = "gemini"
    symbol_aliases: ClassVar[dict[str, str]] = {}

    def symbol(self, venue_symbol: str) -> str:
        return self.symbol_aliases.get(venue_symbol, venue_symbol.replace("/", "").upper())

    def received(self, line: CaptureLine, payload: Any) -> list[CaptureMessage]:
        raise IgnoredLine

    def rest(self, line: CaptureLine, payload: Any) -> list[CaptureMessage]:
        raise IgnoredLine


def number_text(value: object) -> str:
    """The capture's number text, checked to be a finite non-negative decimal of bounded size
    and exponent (:func:`rtcrypto.bounded.decimal_text`; ``BoundsError`` is a ValueError)."""
    text = value if isinstance(value, str) else str(value)
    number = bounded.decimal_text(text, "decimal")
    if number < 0:
        raise ValueError(f"not a finite non-negative decimal: {text!r}")
    return text


def v2_change(side: object, price: object, quantity: object) -> V2Change:
    """One level change ``(side, price, quantity)`` with its side and numbers checked."""
    return (taker_side(side), number_text(price), number_text(quantity))


def taker_side(side: object) -> TakerSide:
    """``buy`` for ``buy``/``bid``, ``sell`` for ``sell``/``ask``; ``ValueError`` otherwise."""
    if side in ("buy", "bid"):
        return "buy"
    if side in ("sell", "ask"):
        return "sell"
    raise ValueError(f"unknown side {side!r}")


def bid_ask_changes(book: dict[str, Any]) -> tuple[V2Change, ...]:
    """A ``{"bids": [[price, qty, ...]], "asks": [...]}`` book as changes, bids first."""
    return tuple(v2_change("buy", price, qty) for price, qty, *_ in book["bids"]) + tuple(
        v2_change("sell", price, qty) for price, qty, *_ in book["asks"]
    )
