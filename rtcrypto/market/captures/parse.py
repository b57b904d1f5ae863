"""Parsing a capture: lines of one or more files fed in receive order to their venue's parser.

Nothing raises for bad input below :func:`load_capture`: a line that does not parse is skipped
and counted by reason (with its file and line number), never a failure of the whole capture.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from rtcrypto import bounded
from rtcrypto.market.captures.binance import BinanceParser, BinanceUsParser
from rtcrypto.market.captures.bitstamp import BitstampParser
from rtcrypto.market.captures.gemini import GeminiParser
from rtcrypto.market.captures.kraken import KrakenParser
from rtcrypto.market.captures.messages import CaptureError, Venue
from rtcrypto.market.captures.parser import IgnoredLine, VenueParser
from rtcrypto.market.captures.reader import (
    MAX_LINE_ERRORS,
    Capture,
    CaptureLine,
    capture_files,
    detect_venue,
    read_lines,
    split_line,
)

MAX_LINE_BYTES = 64 * 1024 * 1024  # one capture line's JSON (the largest real one is 207 kB)

PARSERS: dict[Venue, type[VenueParser]] = {
    "gemini": GeminiParser,
    "kraken": KrakenParser,
    "binance": BinanceParser,
    "binance_us": BinanceUsParser,
    "bitstamp": BitstampParser,
}


def parse_lines(
    lines: Iterable[str], venue: Venue | None = None, source: str = "<lines>"
) -> Capture:
    """Parse capture lines of one venue (detected from the URLs when ``venue`` is None).

    Lines that do not parse are skipped and counted by reason; nothing raises for bad input.
    """
    return parse_sources([(source, lines)], venue)


def parse_sources(
    sources: Sequence[tuple[str, Iterable[str]]], venue: Venue | None = None
) -> Capture:
    """Parse the lines of one or more files of one capture, merged by line time (stable)."""
    skip_reasons: Counter[str] = Counter()
    split: list[CaptureLine] = []
    lines_read = 0
    line_errors: list[str] = []
    for name, lines in sources:
        for line_number, text in enumerate(lines, start=1):
            lines_read += 1
            try:
                parsed = split_line(text, line_number, name)
            except ValueError as error:
                skip_reasons[f"line: {error}"[:200]] += 1
                if len(line_errors) < MAX_LINE_ERRORS:
                    line_errors.append(f"{name}:{line_number}: {error}"[:500])
                continue
            if parsed is not None:
                split.append(parsed)
    names = tuple(name for name, _ in sources)
    chosen = venue or detect_venue((line.url for line in split if line.url), Path(names[0]).name)
    capture = Capture(venue=chosen, sources=names, lines_read=lines_read, skip_reasons=skip_reasons)
    capture.line_errors = line_errors
    if len(sources) > 1:
        split.sort(key=lambda line: line.ts_ms)  # config lines (ts 0) first; ties keep file order
    _feed(PARSERS[chosen](), split, capture)
    capture.lines_skipped = sum(skip_reasons.values())
    return capture


def _feed(parser: VenueParser, lines: list[CaptureLine], capture: Capture) -> None:
    for line in lines:
        if line.kind in ("config", "connect", "sent"):
            continue
        try:
            payload = bounded.loads(line.body, max_bytes=MAX_LINE_BYTES)
        except bounded.BoundsError as error:
            reason = "json: invalid" if str(error).startswith("invalid JSON") else "json: bounds"
            capture.skip(reason, line.line_number, line.source, f"{reason} ({error})")
            continue
        try:
            if line.kind == "rest":
                if line.url.rstrip("/").endswith("/v1/symbols") and isinstance(payload, list):
                    capture.rest_symbols = [str(symbol) for symbol in payload]
                    continue
                messages = parser.rest(line, payload)
            else:
                messages = parser.received(line, payload)
        except IgnoredLine:
            capture.lines_ignored += 1
            continue
        except Exception as error:  # noqa: BLE001 - one bad line never fails the whole capture
            reason = f"{capture.venue}: {type(error).__name__}"
            capture.skip(reason, line.line_number, line.source, f"{reason}: {error}")
            continue
        capture.messages.extend(messages)


def load_capture(*paths: Path | str, venue: Venue | None = None) -> Capture:
    """Read and parse a capture (gzip or plain text). With one path, sibling files that belong to
    it (Bitstamp's REST snapshots) are read too. Raises :class:`CaptureError` if nothing usable."""
    files = [Path(path) for path in paths]
    if len(files) == 1:
        files = capture_files(files[0])
    for file in files:
        if not file.is_file():
            raise CaptureError(f"capture file not found: {file}")
    capture = parse_sources([(str(file), read_lines(file)) for file in files], venue)
    if not capture.messages and capture.rest_symbols is None:
        raise CaptureError(
            f"no book or trade data in {', '.join(map(str, files))} "
            f"({capture.lines_read} lines, {capture.lines_skipped} unparseable)"
        )
    return capture


def load_rest_symbols(path: Path | str) -> list[str]:
    """The lowercase symbol list of a recorded Gemini ``GET /v1/symbols`` response."""
    capture = parse_sources([(str(path), read_lines(Path(path)))], "gemini")
    if capture.rest_symbols is None:
        raise CaptureError(f"no /v1/symbols response in {path}")
    return [symbol.lower() for symbol in capture.rest_symbols]
