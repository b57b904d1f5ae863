"""Reading a capture file: lines of cryptofeed's text format, split into their parts.

A capture is a text file, usually gzip-compressed, with one record per line:

- ``configuration: {...}``               cryptofeed's feed configuration (Kraken, Binance.US files)
- ``<url> <-> <epoch>``                   a websocket connection was opened
- ``<url> <- <epoch>: <json>``            a frame we sent (subscriptions)
- ``<url> -> <epoch>: <json>``            a REST response (Binance and Bitstamp book snapshots)
- ``<receive epoch seconds>: <frame>``    a websocket frame we received

:class:`Capture` holds the parsed result with the lines that could not be used (counted by
reason, the first :data:`MAX_LINE_ERRORS` kept with their file and line number). Pure apart from
reading the file: no network, no clock.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rtcrypto.market.captures.messages import CaptureError, CaptureMessage, Venue

MAX_LINE_ERRORS = 100  # skipped lines kept with their line numbers (all are counted)
MAX_EPOCH_DIGITS = 12  # epoch seconds: 10 digits until the year 2286

# Which venue recorded a capture, by a host name that appears in its URLs.
VENUE_BY_HOST: dict[str, Venue] = {
    "api.gemini.com": "gemini",
    "ws.kraken.com": "kraken",
    "stream.binance.us": "binance_us",
    "api.binance.us": "binance_us",
    "stream.binance.com": "binance",
    "www.binance.com": "binance",
    "api.binance.com": "binance",
    "ws.bitstamp.net": "bitstamp",
    "www.bitstamp.net": "bitstamp",
}


@dataclass(slots=True)
class Capture:
    """A parsed capture: the messages in replay order plus what could not be used."""

    venue: Venue
    sources: tuple[str, ...]
    messages: list[CaptureMessage] = field(default_factory=list)
    lines_read: int = 0
    lines_skipped: int = 0  # lines that did not parse (counted by reason in skip_reasons)
    lines_ignored: int = (
        0  # parsed, but no book or trade data (acks, heartbeats, tickers, stale diffs)
    )
    skip_reasons: Counter[str] = field(default_factory=Counter)
    rest_symbols: list[str] | None = None  # a recorded GET /v1/symbols response, if any
    # the first MAX_LINE_ERRORS skipped lines as "<file>:<line number>: <reason>"
    line_errors: list[str] = field(default_factory=list)

    def skip(self, reason: str, line_number: int, source: str, detail: str = "") -> None:
        """Count a line that could not be used, by reason; keep where it was (the first few)."""
        self.skip_reasons[reason] += 1
        if len(self.line_errors) < MAX_LINE_ERRORS:
            self.line_errors.append(f"{source}:{line_number}: {detail or reason}"[:500])

    @property
    def symbols(self) -> list[str]:
        """Symbols with book or trade data, in order of first appearance."""
        return list(dict.fromkeys(message.symbol for message in self.messages))

    @property
    def first_ms(self) -> int:
        return self.messages[0].ts_receive_ms if self.messages else 0

    @property
    def last_ms(self) -> int:
        return self.messages[-1].ts_receive_ms if self.messages else 0

    @property
    def span_ms(self) -> int:
        """Receive time of the last message minus that of the first, in milliseconds."""
        return self.last_ms - self.first_ms

    def for_symbol(self, symbol: str) -> list[CaptureMessage]:
        return [message for message in self.messages if message.symbol == symbol]


LineKind = Literal["config", "connect", "sent", "rest", "received"]


@dataclass(frozen=True, slots=True)
class CaptureLine:
    """One capture line split into its parts; ``body`` is the raw JSON text (may be empty)."""

    kind: LineKind
    line_number: int
    ts_ms: int
    url: str
    body: str
    source: str = ""  # the file the line came from


_CONNECT = re.compile(r"^(\S+) <-> (\d+(?:\.\d*)?)\s*$")
_SENT_OR_REST = re.compile(r"^(\S+) (<-|->) (\d+(?:\.\d*)?): (.*)$", re.DOTALL)
_RECEIVED = re.compile(r"^(\d+(?:\.\d*)?): (.*)$", re.DOTALL)


def epoch_seconds_to_ms(text: str) -> int:
    """Truncate a written epoch-seconds number to integer milliseconds, exactly (no float).

    ``"1618677942.5862669"`` -> ``1618677942586``. On every shipped capture this equals
    ``int(float(text) * 1000)``; the exact form cannot be off by one through rounding.
    """
    whole, _, fraction = text.strip().partition(".")
    if not whole.isdigit() or (fraction and not fraction.isdigit()):
        raise ValueError(f"not an epoch-seconds number: {text!r}")
    if len(whole) > MAX_EPOCH_DIGITS:  # int() of thousands of digits raises, and is no time
        raise ValueError(f"epoch seconds of {len(whole)} digits: not a time")
    return int(whole) * 1000 + int((fraction + "000")[:3])


def split_line(line: str, line_number: int, source: str = "") -> CaptureLine | None:
    """Split one capture line; ``None`` for a blank line. Raises ``ValueError`` when unparseable."""
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    if text.startswith("configuration: "):
        return CaptureLine("config", line_number, 0, "", text[len("configuration: ") :], source)
    if text[0].isdigit():
        received = _RECEIVED.match(text)
        if received is None:
            raise ValueError("received line without '<epoch>: '")
        ts_ms = epoch_seconds_to_ms(received[1])
        return CaptureLine("received", line_number, ts_ms, "", received[2], source)
    connect = _CONNECT.match(text)
    if connect is not None:
        ts_ms = epoch_seconds_to_ms(connect[2])
        return CaptureLine("connect", line_number, ts_ms, connect[1], "", source)
    other = _SENT_OR_REST.match(text)
    if other is None:
        raise ValueError("unknown line shape")
    kind: LineKind = "sent" if other[2] == "<-" else "rest"
    ts_ms = epoch_seconds_to_ms(other[3])
    return CaptureLine(kind, line_number, ts_ms, other[1], other[4], source)


def read_lines(path: Path) -> Iterator[str]:
    """Lines of a capture file, gzip or plain text (undecodable bytes replaced).

    A cut-off or corrupt gzip keeps everything decompressed before the damage; the partial
    last line is yielded too (it then fails to parse and is counted as skipped).
    """
    pending = b""
    for chunk in _file_chunks(path):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode("utf-8", errors="replace")
    if pending:
        yield pending.decode("utf-8", errors="replace")


def _file_chunks(path: Path, chunk_size: int = 1 << 16) -> Iterator[bytes]:
    with path.open("rb") as stream:
        first = stream.read(chunk_size)
        if first[:2] != b"\x1f\x8b":
            while first:
                yield first
                first = stream.read(chunk_size)
            return
        decompressor = zlib.decompressobj(wbits=31)
        compressed = first
        try:
            while compressed:
                yield decompressor.decompress(compressed)
                while decompressor.eof and decompressor.unused_data:  # concatenated gzip members
                    rest = decompressor.unused_data
                    decompressor = zlib.decompressobj(wbits=31)
                    yield decompressor.decompress(rest)
                compressed = stream.read(chunk_size)
            yield decompressor.flush()
        except zlib.error:
            return  # corrupt data: keep what was read


def capture_files(path: Path) -> list[Path]:
    """The files that make up one capture: the file itself, plus for a Bitstamp websocket
    capture the sibling REST snapshot file (``..._BITSTAMP.ws.19.0.gz`` -> ``..._BITSTAMP.http.*``)."""
    found = re.match(r"^(.*__BITSTAMP)\.ws\.", path.name)
    if found is None:
        return [path]
    siblings = sorted(path.parent.glob(f"{found[1]}.http.*"))
    return [path, *siblings]


def detect_venue(urls: Iterable[str], file_name: str = "") -> Venue:
    """The venue of a capture from the hosts in its URLs, else from the file name."""
    for url in urls:
        host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
        if host in VENUE_BY_HOST:
            return VENUE_BY_HOST[host]
    lowered = file_name.lower()
    venues: tuple[Venue, ...] = ("binance_us", "binance", "kraken", "bitstamp", "gemini")
    for venue in venues:
        if lowered.startswith(venue):
            return venue
    raise CaptureError(f"cannot tell the exchange of capture {file_name!r} from its URLs or name")
