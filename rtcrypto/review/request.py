"""The Trade review page's query, validated: a range on the trader's clock, a symbol, a mode.

Every bad value is a :class:`ReviewRequestError` whose message names the parameter and what is
accepted (the page shows it; the app answers 400). Times are epoch milliseconds (UTC).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rtcrypto.report.clock import ReviewClock, ReviewRange, resolve_range
from rtcrypto.report.model import MINUTE_MS, ReportError
from rtcrypto.search.documents import TRADING_MODES

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from rtcrypto.config import Settings

MAX_PARAMETER_CHARS = 64  # longer than any ISO time or duration the page sends
_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")


class ReviewRequestError(ValueError):
    """A query the page cannot answer; the message says which parameter and why."""


@dataclass(frozen=True, slots=True)
class ReviewRequest:
    """A validated query: the range, the symbol, the trading mode (None: all modes)."""

    span: ReviewRange
    symbol: str
    mode: str | None
    live: bool  # the range ends at the trader's "now": the page refreshes it by default

    @property
    def start_ms(self) -> int:
        return self.span.start_ms

    @property
    def end_ms(self) -> int:
        return self.span.end_ms


def known_symbols(settings: Settings) -> list[str]:
    """The symbols the platform streams and trades: the page's choice of symbol."""
    return sorted({*settings.symbols, settings.trader_symbol})


def _text(name: str, value: str | None, default: str) -> str:
    text = default if value is None or not value.strip() else value.strip()
    if len(text) > MAX_PARAMETER_CHARS or not _PRINTABLE.match(text):
        raise ReviewRequestError(
            f"{name} must be at most {MAX_PARAMETER_CHARS} printable ASCII characters"
        )
    return text


def parse_request(
    settings: Settings,
    client: Elasticsearch | None,
    *,
    since: str | None,
    until: str | None,
    symbol: str | None,
    mode: str | None,
    clock: ReviewClock | None = None,
) -> ReviewRequest:
    """Validate the page's parameters; ``since`` / ``until`` as ``rtc report`` reads them
    (``1h``, ``now``, ISO), counted on the trader's clock (``clock`` None: read it, see
    :func:`rtcrypto.report.clock.review_clock`). Defaults: the last hour, the trader's symbol,
    every mode. Raises :class:`ReviewRequestError`."""
    chosen_symbol = _text("symbol", symbol, settings.trader_symbol).upper()
    symbols = known_symbols(settings)
    if chosen_symbol not in symbols:
        raise ReviewRequestError(
            f"unknown symbol {chosen_symbol!r}: this platform streams {', '.join(symbols)} "
            "(RTC_SYMBOLS, RTC_TRADER_SYMBOL)"
        )
    chosen_mode = _text("mode", mode, "all").lower()
    if chosen_mode != "all" and chosen_mode not in TRADING_MODES:
        raise ReviewRequestError(
            f"unknown mode {chosen_mode!r}: use one of all, {', '.join(sorted(TRADING_MODES))}"
        )
    until_text = _text("until", until, "now")
    try:
        span = resolve_range(
            settings,
            client,
            since=_text("since", since, "1h"),
            until=until_text,
            symbol=chosen_symbol,
            clock=clock,
        )
    except ReportError as error:
        raise ReviewRequestError(f"since/until: {error}") from None
    if span.end_ms <= span.start_ms:
        raise ReviewRequestError("since must be before until: the range is empty")
    longest_ms = round(settings.review_max_range_days * 1440) * MINUTE_MS
    if span.end_ms - span.start_ms > longest_ms:
        raise ReviewRequestError(
            f"the range is longer than {settings.review_max_range_days:g} days "
            "(RTC_REVIEW_MAX_RANGE_DAYS): choose a shorter one"
        )
    return ReviewRequest(
        span=span,
        symbol=chosen_symbol,
        mode=None if chosen_mode == "all" else chosen_mode,
        live=until_text.lower() == "now",
    )
