"""Fuzz target: the Trade review page's query parser (:func:`rtcrypto.review.parse_request`).

One input is the page's four query parameters (``since``, ``until``, ``symbol``, ``mode``)
separated by NUL bytes, decoded as a browser would send them. Whatever a client sends, the parser
returns a valid request (a non-empty range no longer than the settings allow, a configured
symbol) or raises :class:`ReviewRequestError` with a message: anything else escaping would be a
500 for the page. ``seed_corpus`` holds ranges around the real Gemini capture's minutes in
../shared/data, as ISO times and as durations.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fuzz.seeds import GEMINI_CAPTURE, capture_lines
from rtcrypto.config import Settings
from rtcrypto.report.clock import ReviewClock
from rtcrypto.report.model import MINUTE_MS
from rtcrypto.review import ReviewRequestError, parse_request

SETTINGS = Settings(symbols=["BTCUSD", "ETHUSD"], trader_symbol="BTCUSD")
NOW_MS = int(datetime(2021, 4, 17, 12, 0, tzinfo=UTC).timestamp() * 1000)
CLOCK = ReviewClock(NOW_MS, 0, "simulator", "feed clock: fuzz", speed=60.0)
LONGEST_MS = round(SETTINGS.review_max_range_days * 1440) * MINUTE_MS


def test_one_input(data: bytes) -> None:
    fields = data.decode("utf-8", errors="replace").split("\x00")
    since, until, symbol, mode = (fields + [None] * 4)[:4]
    try:
        request = parse_request(
            SETTINGS, None, since=since, until=until, symbol=symbol, mode=mode, clock=CLOCK
        )
    except ReviewRequestError as error:
        if not str(error):
            raise AssertionError("a refusal without a message") from error
        return
    if not 0 < request.end_ms - request.start_ms <= LONGEST_MS:
        raise AssertionError(f"range out of bounds: {request}")
    if request.symbol not in SETTINGS.symbols:
        raise AssertionError(f"unknown symbol accepted: {request.symbol!r}")


def seed_corpus() -> list[bytes]:
    """Ranges around the real capture's first minutes (its lines start with an epoch time)."""
    seeds = [b"1h\x00now\x00BTCUSD\x00all", b"24h\x00\x00ethusd\x00paper", b"\x00\x00\x00"]
    for line in capture_lines(GEMINI_CAPTURE, 20):
        head = line.split(":", 1)[0]
        try:
            ts_s = float(head)
        except ValueError:
            continue
        start = datetime.fromtimestamp(ts_s, UTC)
        seeds.append(f"{start.isoformat()}\x00{start.replace(minute=59).isoformat()}".encode())
        seeds.append(f"{start:%Y-%m-%d}\x00now\x00BTCUSD\x00sandbox".encode())
    return seeds
