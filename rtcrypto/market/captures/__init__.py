"""Recorded exchange traffic (cryptofeed's text capture format) as typed book and trade messages.

Each venue's frames become :class:`BookUpdate` (level changes in Gemini v2 form:
``(side "buy"|"sell", price, quantity)``, quantity = the level's new size, 0 removes it) and
:class:`TradePrint`. Prices and sizes stay the capture's strings. Symbols are re-encoded as
Gemini spells them (Kraken ``XBT/USD`` and Binance ``BTCUSDT`` become ``BTCUSD``).

Modules: ``messages`` (the typed messages), ``reader`` (file and line reading, :class:`Capture`
with its skipped-line errors, venue detection), ``parser`` (the base venue parser and field
checks), one module per venue (``gemini``, ``kraken``, ``binance`` with Binance.US,
``bitstamp``), ``parse`` (the venue registry, :func:`parse_lines`, :func:`load_capture`),
``shift`` (moving a capture by whole minutes) and ``gemini_v1`` (the contract of the
simulator's Gemini v1 feed: the v2 -> v1 event mapping and its :class:`~.gemini_v1.LevelBook`).
Everything here is pure apart from reading the capture file (no network, no clock); it imports
only :mod:`rtcrypto.bounded` outside this package. The names below are the entry points.
"""

from rtcrypto.market.captures.messages import (
    BookUpdate,
    CaptureError,
    CaptureMessage,
    TakerSide,
    TradePrint,
    V2Change,
    Venue,
)
from rtcrypto.market.captures.parse import (
    load_capture,
    load_rest_symbols,
    parse_lines,
    parse_sources,
)
from rtcrypto.market.captures.reader import Capture
from rtcrypto.market.captures.shift import shift_capture, whole_minutes_until

__all__ = [
    "BookUpdate",
    "Capture",
    "CaptureError",
    "CaptureMessage",
    "TakerSide",
    "TradePrint",
    "V2Change",
    "Venue",
    "load_capture",
    "load_rest_symbols",
    "parse_lines",
    "parse_sources",
    "shift_capture",
    "whole_minutes_until",
]
