"""Gemini's 1-minute candles into the history store: ``rtc history download --venue gemini``.

``download_gemini_candles`` reads ``GET {rest_url}/v2/candles/{symbol}/1m`` (``rest_url``:
``RTC_GEMINI_REST_URL``, the simulator's address in the demo; Gemini answers its recent window
of candles, newest first) and upserts the minutes into their own source (default
``gemini-candles`` for BTCUSD, ``gemini-candles-<symbol>`` for another symbol) with
:func:`rtcrypto.history.upsert.upsert_bars`, so a minute is stored once however often it is sent.

- **Resume.** Only candles from ``since`` on and from the newest stored minute of the source on
  are kept: a second run stores only the minutes that are new. The newest stored minute itself
  is compared again, because the venue may have sent it while it was still open; the upsert
  replaces it if it changed and leaves it alone if not.
- **Window.** Gemini's endpoint takes no start time: minutes older than its window cannot be
  fetched. When ``since`` (or the newest stored minute) is older than the first candle received,
  the report says how many minutes are missing before it (``missing_before_minutes``).
- **Errors.** :class:`VenueError` (a :class:`HistoryError`) with a message naming what to change:
  an unreachable venue (``RTC_GEMINI_REST_URL``), an unknown symbol (``--symbol``), an answer that
  is not Gemini's candles body.

Prices are the quote currency per base unit, volumes base units; times UTC epoch ms.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import requests

from rtcrypto.bounded import BoundsError, loads
from rtcrypto.config import SYMBOL_PATTERN
from rtcrypto.history.bars import MINUTE_MS, Bars
from rtcrypto.history.errors import HistoryError
from rtcrypto.history.info import summarize
from rtcrypto.history.store import check_source_name, resolve_history_dir
from rtcrypto.history.upsert import upsert_bars
from rtcrypto.market.candles import Candle, CandleParseError, parse_candles
from rtcrypto.redact import redact_url

GEMINI_CANDLES_SOURCE = "gemini-candles"
DEFAULT_SYMBOL = "BTCUSD"
REQUEST_TIMEOUT_S = 30.0
MAX_BODY_BYTES = 32 * 1024 * 1024  # a day of 1-minute candles is ~100 kB

ProgressCallback = Callable[[str], None]  # one line saying what the download does now


class VenueError(HistoryError):
    """The venue's candles cannot be fetched or read; the message says what to change."""


class UnknownSymbolError(VenueError):
    """The venue does not list the symbol (Gemini's ``InvalidSymbol``): fix ``--symbol``."""


@dataclass(frozen=True)
class CandleDownloadReport:
    """What one download fetched and stored; times in UTC epoch ms."""

    venue: str
    symbol: str
    source: str
    url: str  # credentials redacted
    candles_received: int
    first_received_ms: int | None
    last_received_ms: int | None
    resumed_after_ms: int | None  # the newest stored minute before this run
    since_ms: int | None
    kept: int  # candles at or after since and the newest stored minute
    inserted: int  # minutes the source did not have
    replaced: int  # minutes it had with other values (the newest, still open when stored)
    unchanged: int
    missing_before_minutes: int  # minutes wanted but older than the venue's window
    rows_total: int  # minutes in the source after the run
    history_dir: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The report as short human-readable lines."""
        lines = [
            f"{self.venue} {self.symbol} 1m candles from {self.url}: received "
            f"{self.candles_received:,} ({iso_minute(self.first_received_ms)} .. "
            f"{iso_minute(self.last_received_ms)})",
            f"  source={self.source}: {self.inserted:,} new minute(s), {self.replaced:,} "
            f"updated, {self.unchanged:,} unchanged; {self.rows_total:,} minutes stored",
        ]
        if not self.candles_received:
            lines.append(
                "  the venue answered no candles (a simulator serves the minutes its replay has "
                "finished: is it replaying?)"
            )
        if self.resumed_after_ms is not None:
            lines.append(
                f"  resumed at the newest stored minute {iso_minute(self.resumed_after_ms)}"
            )
        if self.missing_before_minutes:
            lines.append(
                f"  {self.missing_before_minutes:,} minute(s) before "
                f"{iso_minute(self.first_received_ms)} are older than the venue's window of "
                "candles and cannot be downloaded from it"
            )
        lines.append(f"history folder: {self.history_dir}")
        return lines


def iso_minute(ts_ms: int | None) -> str:
    if ts_ms is None:
        return "-"
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def parse_since(text: str) -> int:
    """``--since`` (``2024-10-28``, ``2024-10-28T12:30``, with or without ``Z``; naive is UTC) as
    UTC epoch ms, rounded down to the minute; raises :class:`VenueError` naming ``--since``."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise VenueError(
            f"--since {text!r} is not an ISO-8601 UTC date or time "
            "(e.g. 2024-10-28 or 2024-10-28T12:30Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ts_ms = int(moment.timestamp() * 1000)
    return ts_ms - ts_ms % MINUTE_MS


def check_symbol(symbol: str) -> str:
    """``symbol`` upper-cased if it looks like a Gemini symbol (letters and digits)."""
    if not re.match(SYMBOL_PATTERN, symbol):
        raise VenueError(
            f"--symbol {symbol!r} is not a Gemini symbol: use 3 to 20 letters or digits (BTCUSD)"
        )
    return symbol.upper()


def default_source(symbol: str) -> str:
    """The store's source for ``symbol``'s candles: ``gemini-candles`` for BTCUSD (the platform's
    market), ``gemini-candles-<symbol>`` otherwise (a source holds one market)."""
    symbol = symbol.upper()
    if symbol == DEFAULT_SYMBOL:
        return GEMINI_CANDLES_SOURCE
    return f"{GEMINI_CANDLES_SOURCE}-{symbol.lower()}"


def fetch_candles(
    rest_url: str, symbol: str, *, timeout_s: float = REQUEST_TIMEOUT_S, session: Any = None
) -> list[Candle]:
    """Gemini's 1-minute candles of ``symbol`` at ``rest_url``, oldest first."""
    url = candles_url(rest_url, symbol)
    shown = redact_url(url)
    http = session or requests
    try:
        response = http.get(url, timeout=timeout_s, headers={"Accept": "application/json"})
    except requests.RequestException as error:
        raise VenueError(
            f"Gemini at {redact_url(rest_url)} is unreachable ({type(error).__name__}): check "
            "RTC_GEMINI_REST_URL (the simulator's address in the demo: start it with "
            "`rtc simulate`) and the network"
        ) from None
    body = response.content
    try:
        payload = loads(body, max_bytes=MAX_BODY_BYTES)
    except BoundsError as error:
        raise VenueError(
            f"GET {shown} answered HTTP {response.status_code} with a body that is not JSON "
            f"({error}): is RTC_GEMINI_REST_URL a Gemini REST API?"
        ) from None
    if response.status_code != 200:
        raise _error_from_answer(shown, symbol, response.status_code, payload)
    try:
        return parse_candles(payload)
    except CandleParseError as error:
        raise VenueError(f"GET {shown}: not Gemini's candles ({error})") from None


def candles_url(rest_url: str, symbol: str) -> str:
    """``{rest_url}/v2/candles/{symbol}/1m`` (Gemini's paths take the symbol in lower case)."""
    return f"{rest_url.rstrip('/')}/v2/candles/{symbol.lower()}/1m"


def _error_from_answer(url: str, symbol: str, status: int, payload: Any) -> VenueError:
    reason = payload.get("reason") if isinstance(payload, dict) else None
    message = str(payload.get("message", ""))[:200] if isinstance(payload, dict) else ""
    if reason == "InvalidSymbol":
        return UnknownSymbolError(
            f"Gemini does not know the symbol {symbol!r} (InvalidSymbol: {message}): check "
            "--symbol; GET /v1/symbols lists the venue's symbols"
        )
    if status == 404:
        return VenueError(
            f"GET {url} answered 404 ({reason or 'not found'}): RTC_GEMINI_REST_URL does not "
            "serve Gemini's candles"
        )
    return VenueError(f"GET {url} answered HTTP {status} ({reason or '?'}: {message})")


def candles_to_store(
    candles: list[Candle], since_ms: int | None, newest_stored_ms: int | None
) -> list[Candle]:
    """The candles to upsert: from ``since_ms`` and from the newest stored minute on (pure)."""
    floor_ms = max((ts for ts in (since_ms, newest_stored_ms) if ts is not None), default=None)
    return [c for c in candles if floor_ms is None or c.ts_ms >= floor_ms]


def missing_minutes_before(
    candles: list[Candle], since_ms: int | None, newest_stored_ms: int | None
) -> int:
    """Minutes wanted (after the newest stored one, from ``since_ms``) but older than the first
    candle the venue sent (pure)."""
    if not candles:
        return 0
    wanted_from = newest_stored_ms + MINUTE_MS if newest_stored_ms is not None else since_ms
    if wanted_from is None:
        return 0
    return max(0, (candles[0].ts_ms - wanted_from) // MINUTE_MS)


def as_bars(candles: list[Candle]) -> Bars:
    """Candles (sorted, one per minute) as the store's columnar bars."""
    return Bars(
        ts_ms=np.array([c.ts_ms for c in candles], dtype=np.int64),
        open=np.array([c.open for c in candles], dtype=np.float64),
        high=np.array([c.high for c in candles], dtype=np.float64),
        low=np.array([c.low for c in candles], dtype=np.float64),
        close=np.array([c.close for c in candles], dtype=np.float64),
        volume=np.array([c.volume for c in candles], dtype=np.float64),
    )


def newest_stored_minute(source: str, history_dir: Path) -> int | None:
    """The newest minute (UTC ms) stored in ``source``, or None when it holds none."""
    for summary in summarize(history_dir):
        if summary.source == source:
            return summary.last_ts_ms
    return None


def download_gemini_candles(
    rest_url: str,
    symbol: str = DEFAULT_SYMBOL,
    *,
    since_ms: int | None = None,
    source: str | None = None,
    history_dir: Path | None = None,
    on_progress: ProgressCallback | None = None,
    session: Any = None,
) -> CandleDownloadReport:
    """Fetch ``symbol``'s 1-minute candles from ``rest_url`` and upsert the new minutes into
    ``source`` (see the module docstring). Raises :class:`VenueError` / :class:`HistoryError`."""
    symbol = check_symbol(symbol)
    source = check_source_name(source or default_source(symbol))
    folder = resolve_history_dir(history_dir)
    folder.mkdir(parents=True, exist_ok=True)
    progress = on_progress or (lambda line: None)
    newest_ms = newest_stored_minute(source, folder)
    if newest_ms is not None:
        progress(f"source={source} holds minutes up to {iso_minute(newest_ms)}: resuming there")
    progress(f"fetching {candles_url(redact_url(rest_url), symbol)}")
    candles = fetch_candles(rest_url, symbol, session=session)
    progress(
        f"received {len(candles):,} candles ({iso_minute(candles[0].ts_ms if candles else None)}"
        f" .. {iso_minute(candles[-1].ts_ms if candles else None)})"
    )
    keep = candles_to_store(candles, since_ms, newest_ms)
    inserted = replaced = unchanged = 0
    rows_total = 0
    if keep:
        progress(f"storing {len(keep):,} minute(s) into source={source}")
        report = upsert_bars(
            as_bars(keep),
            source,
            history_dir=folder,
            origin=redact_url(candles_url(rest_url, symbol)),
        )
        inserted, replaced, unchanged = report.inserted, report.replaced, report.unchanged
        rows_total = report.rows_total
    else:
        rows_total = next((s.rows for s in summarize(folder) if s.source == source), 0)
    return CandleDownloadReport(
        venue="gemini",
        symbol=symbol,
        source=source,
        url=redact_url(candles_url(rest_url, symbol)),
        candles_received=len(candles),
        first_received_ms=candles[0].ts_ms if candles else None,
        last_received_ms=candles[-1].ts_ms if candles else None,
        resumed_after_ms=newest_ms,
        since_ms=since_ms,
        kept=len(keep),
        inserted=inserted,
        replaced=replaced,
        unchanged=unchanged,
        missing_before_minutes=missing_minutes_before(candles, since_ms, newest_ms),
        rows_total=rows_total,
        history_dir=str(folder),
    )
