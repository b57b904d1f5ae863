"""Recorded exchange traffic (cryptofeed's text capture format) as typed book and trade messages.

A capture is a text file, usually gzip-compressed, with one record per line:

- ``configuration: {...}``               cryptofeed's feed configuration (Kraken, Binance.US files)
- ``<url> <-> <epoch>``                   a websocket connection was opened
- ``<url> <- <epoch>: <json>``            a frame we sent (subscriptions)
- ``<url> -> <epoch>: <json>``            a REST response (Binance and Bitstamp book snapshots)
- ``<receive epoch seconds>: <frame>``    a websocket frame we received

Each venue's frames become :class:`BookUpdate` (level changes in Gemini v2 form:
``(side "buy"|"sell", price, quantity)``, quantity = the level's new size, 0 removes it) and
:class:`TradePrint`. Prices and sizes stay the capture's strings. Symbols are re-encoded as
Gemini spells them (Kraken ``XBT/USD`` and Binance ``BTCUSDT`` become ``BTCUSD``).

The second half of the module is the contract of the simulator's Gemini v1 feed:
:func:`v2_change_to_v1_event` maps one level change onto a v1 ``change`` event, and
:class:`LevelBook` / :func:`replay_v1_change_events` apply it over a stream, so anyone can
recompute from the file what the simulator sends. Everything here is pure (no network, no clock).
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from rtcrypto import bounded

TakerSide = Literal["buy", "sell"]
V2Change = tuple[str, str, str]  # (side "buy"|"sell", price, quantity) as the capture wrote them
Venue = Literal["gemini", "kraken", "binance", "binance_us", "bitstamp"]

ZERO = Decimal(0)
MAX_LINE_ERRORS = 100  # skipped lines kept with their line numbers (all are counted)
MAX_EPOCH_DIGITS = 12  # epoch seconds: 10 digits until the year 2286
MAX_LINE_BYTES = 64 * 1024 * 1024  # one capture line's JSON (the largest real one is 207 kB)

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

# Symbols renamed into Gemini's spelling, per venue (others keep the venue's name, uppercased).
SYMBOL_ALIASES: dict[Venue, dict[str, str]] = {
    "gemini": {},
    "kraken": {},  # XBT -> BTC in every pair (XBT/USD -> BTCUSD): see KrakenParser.symbol
    "binance": {"BTCUSDT": "BTCUSD"},
    "binance_us": {},
    "bitstamp": {},
}


class CaptureError(ValueError):
    """A capture file that cannot be used at all (missing, empty, unknown venue)."""


# --------------------------------------------------------------------------------------------
# Typed messages
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Lines
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Venue parsers: one stateful object per capture, fed lines in receive order
# --------------------------------------------------------------------------------------------


class _Ignored(Exception):
    """A line that parsed but carries nothing to replay."""


class VenueParser:
    """Turns a venue's lines into typed messages. Subclasses override :meth:`received`."""

    venue: Venue = "gemini"

    def symbol(self, venue_symbol: str) -> str:
        return SYMBOL_ALIASES[self.venue].get(venue_symbol, venue_symbol.replace("/", "").upper())

    def received(self, line: CaptureLine, payload: Any) -> list[CaptureMessage]:
        raise _Ignored

    def rest(self, line: CaptureLine, payload: Any) -> list[CaptureMessage]:
        raise _Ignored


class GeminiParser(VenueParser):
    """Gemini market data v2: ``l2_updates`` (the first per symbol is the full book) and ``trade``."""

    venue: Venue = "gemini"

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def received(self, line: CaptureLine, payload: Any) -> list[CaptureMessage]:
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind == "l2_updates":
            symbol = self.symbol(payload["symbol"])
            changes = tuple(_v2_change(side, price, qty) for side, price, qty in payload["changes"])
            trades = tuple(
                self._trade(line, trade, symbol) for trade in payload.get("trades") or ()
            )
            is_snapshot = symbol not in self._seen
            self._seen.add(symbol)
            return [BookUpdate(symbol, line.ts_ms, line.line_number, changes, is_snapshot, trades)]
        if kind == "trade":
            return [self._trade(line, payload, self.symbol(payload["symbol"]))]
        raise _Ignored

    @staticmethod
    def _trade(line: CaptureLine, trade: dict[str, Any], symbol: str) -> TradePrint:
        return TradePrint(
            symbol=symbol,
            ts_receive_ms=line.ts_ms,
            line_number=line.line_number,
            trade_id=int(trade["event_id"]),
            price=_decimal_text(trade["price"]),
            quantity=_decimal_text(trade["quantity"]),
            taker_side=_taker_side(trade["side"]),
            ts_exchange_ms=int(trade["timestamp"]) if "timestamp" in trade else None,
        )


class KrakenParser(VenueParser):
    """Kraken websocket v1 ``book-N`` (``as``/``bs`` snapshot, ``a``/``b`` updates) and ``trade``."""

    venue: Venue = "kraken"

    def symbol(self, venue_symbol: str) -> str:
        # Kraken spells bitcoin XBT: XBT/USD -> BTCUSD, FIL/XBT -> FILBTC.
        return venue_symbol.replace("XBT", "BTC").replace("/", "").upper()

    def received(self, line: CaptureLine, payload: Any) -> list[CaptureMessage]:
        if not isinstance(payload, list) or len(payload) < 4:
            raise _Ignored  # events (systemStatus, subscriptionStatus, heartbeat) are objects
        channel, pair = str(payload[-2]), str(payload[-1])
        symbol = self.symbol(pair)
        if channel.startswith("book"):
            return [self._book(line, payload[1:-2], symbol)]
        if channel == "trade":
            return [
                self._trade(line, index, entry, symbol) for index, entry in enumerate(payload[1])
            ]
        raise _Ignored

    @staticmethod
    def _book(line: CaptureLine, parts: list[Any], symbol: str) -> BookUpdate:
        changes: list[V2Change] = []
        is_snapshot = False
        for part in parts:
            for key, levels in part.items():
                if key in ("as", "bs"):
                    is_snapshot = True
                elif key not in ("a", "b"):
                    continue  # "c": CRC32 checksum
                side = "sell" if key.startswith("a") else "buy"
                changes.extend(_v2_change(side, level[0], level[1]) for level in levels)
        return BookUpdate(symbol, line.ts_ms, line.line_number, tuple(changes), is_snapshot)

    @staticmethod
    def _trade(line: CaptureLine, index: int, entry: list[Any], symbol: str) -> TradePrint:
        # Kraken trades carry no id: derive one from the capture position (deterministic).
        return TradePrint(
            symbol=symbol,
            ts_receive_ms=line.ts_ms,
            line_number=line.line_number,
            trade_id=line.line_number * 1000 + index,
            price=_decimal_text(entry[0]),
            quantity=_decimal_text(entry[1]),
            taker_side="buy" if entry[3] == "b" else "sell",
            ts_exchange_ms=epoch_seconds_to_ms(str(entry[2])),
        )


class BinanceParser(VenueParser):
    """Binance depth diffs over a REST snapshot, and ``aggTrade``.

    Diffs before a symbol's snapshot are held back; at the snapshot, those with ``u`` greater than
    its ``lastUpdateId`` follow it (stamped with the snapshot's time, so time never goes back);
    later diffs with ``u <= lastUpdateId`` are dropped, as Binance documents.
    """

    venue: Venue = "binance"
    _REST_SYMBOL = re.compile(r"[?&]symbol=([A-Za-z0-9]+)")

    def __init__(self) -> None:
        self._last_update_id: dict[str, int] = {}
        self._held_back: dict[str, list[dict[str, Any]]] = {}

    def rest(self, line: CaptureLine, payload: Any) -> list[CaptureMessage]:
        found = self._REST_SYMBOL.search(line.url)
        if "/depth" not in line.url or found is None or not isinstance(payload, dict):
            raise _Ignored
        venue_symbol = found[1].upper()
        last_update_id = int(payload["lastUpdateId"])
        self._last_update_id[venue_symbol] = last_update_id
        changes = tuple(
            _v2_change("buy", price, qty) for price, qty, *_ in payload["bids"]
        ) + tuple(_v2_change("sell", price, qty) for price, qty, *_ in payload["asks"])
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
            raise _Ignored
        kind = data.get("e")
        if kind == "depthUpdate":
            venue_symbol = str(data["s"]).upper()
            last_update_id = self._last_update_id.get(venue_symbol)
            if last_update_id is None:
                int(data["u"])  # validate now: a held-back diff must not fail later
                self._held_back.setdefault(venue_symbol, []).append(data)
                raise _Ignored
            if int(data["u"]) <= last_update_id:
                raise _Ignored
            return [self._diff(line, data, self.symbol(venue_symbol))]
        if kind == "aggTrade":
            return [
                TradePrint(
                    symbol=self.symbol(str(data["s"]).upper()),
                    ts_receive_ms=line.ts_ms,
                    line_number=line.line_number,
                    trade_id=int(data["a"]),
                    price=_decimal_text(data["p"]),
                    quantity=_decimal_text(data["q"]),
                    # m: the buyer is the maker, so the taker sold
                    taker_side="sell" if data["m"] else "buy",
                    ts_exchange_ms=int(data["T"]),
                )
            ]
        raise _Ignored

    @staticmethod
    def _diff(line: CaptureLine, data: dict[str, Any], symbol: str) -> BookUpdate:
        changes = tuple(_v2_change("buy", price, qty) for price, qty, *_ in data["b"]) + tuple(
            _v2_change("sell", price, qty) for price, qty, *_ in data["a"]
        )
        return BookUpdate(symbol, line.ts_ms, line.line_number, changes, False)


class BinanceUsParser(BinanceParser):
    venue: Venue = "binance_us"


class BitstampParser(VenueParser):
    """Bitstamp ``diff_order_book_<pair>`` over a REST ``order_book`` snapshot, and ``live_trades``.

    The REST snapshot lives in a sibling ``.http.`` file (see :func:`capture_files`). Diffs whose
    ``microtimestamp`` is not newer than the snapshot's are dropped; diffs before it are ignored.
    """

    venue: Venue = "bitstamp"

    def __init__(self) -> None:
        self._snapshot_micros: dict[str, int] = {}

    def rest(self, line: CaptureLine, payload: Any) -> list[CaptureMessage]:
        if "/order_book/" not in line.url or not isinstance(payload, dict):
            raise _Ignored
        pair = line.url.rstrip("/").rsplit("/", 1)[-1]
        self._snapshot_micros[pair] = int(payload["microtimestamp"])
        return [
            BookUpdate(self.symbol(pair), line.ts_ms, line.line_number, _bid_ask(payload), True)
        ]

    def received(self, line: CaptureLine, payload: Any) -> list[CaptureMessage]:
        if not isinstance(payload, dict) or payload.get("event") not in ("data", "trade"):
            raise _Ignored
        channel, data = str(payload["channel"]), payload["data"]
        if channel.startswith("diff_order_book_"):
            pair = channel[len("diff_order_book_") :]
            snapshot_micros = self._snapshot_micros.get(pair)
            if snapshot_micros is None or int(data["microtimestamp"]) <= snapshot_micros:
                raise _Ignored
            return [
                BookUpdate(self.symbol(pair), line.ts_ms, line.line_number, _bid_ask(data), False)
            ]
        if channel.startswith("live_trades_"):
            return [
                TradePrint(
                    symbol=self.symbol(channel[len("live_trades_") :]),
                    ts_receive_ms=line.ts_ms,
                    line_number=line.line_number,
                    trade_id=int(data["id"]),
                    price=_decimal_text(data["price_str"]),
                    quantity=_decimal_text(data["amount_str"]),
                    taker_side="buy" if int(data["type"]) == 0 else "sell",
                    ts_exchange_ms=int(data["microtimestamp"]) // 1000,
                )
            ]
        raise _Ignored


PARSERS: dict[Venue, type[VenueParser]] = {
    "gemini": GeminiParser,
    "kraken": KrakenParser,
    "binance": BinanceParser,
    "binance_us": BinanceUsParser,
    "bitstamp": BitstampParser,
}


def _decimal_text(value: object) -> str:
    """The capture's number text, checked to be a finite non-negative decimal of bounded size
    and exponent (:func:`rtcrypto.bounded.decimal_text`; ``BoundsError`` is a ValueError)."""
    text = value if isinstance(value, str) else str(value)
    number = bounded.decimal_text(text, "decimal")
    if number < 0:
        raise ValueError(f"not a finite non-negative decimal: {text!r}")
    return text


def _v2_change(side: object, price: object, quantity: object) -> V2Change:
    return (_taker_side(side), _decimal_text(price), _decimal_text(quantity))


def _taker_side(side: object) -> TakerSide:
    if side in ("buy", "bid"):
        return "buy"
    if side in ("sell", "ask"):
        return "sell"
    raise ValueError(f"unknown side {side!r}")


def _bid_ask(book: dict[str, Any]) -> tuple[V2Change, ...]:
    return tuple(_v2_change("buy", price, qty) for price, qty, *_ in book["bids"]) + tuple(
        _v2_change("sell", price, qty) for price, qty, *_ in book["asks"]
    )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def capture_files(path: Path) -> list[Path]:
    """The files that make up one capture: the file itself, plus for a Bitstamp websocket
    capture the sibling REST snapshot file (``..._BITSTAMP.ws.19.0.gz`` -> ``..._BITSTAMP.http.*``)."""
    found = re.match(r"^(.*__BITSTAMP)\.ws\.", path.name)
    if found is None:
        return [path]
    siblings = sorted(path.parent.glob(f"{found[1]}.http.*"))
    return [path, *siblings]


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
        except _Ignored:
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


def whole_minutes_until(first_ms: int, now_ms: int) -> int:
    """The largest multiple of one minute that moves ``first_ms`` to at most ``now_ms``."""
    return max(0, (now_ms - first_ms) // 60_000 * 60_000)


def shift_capture(capture: Capture, shift_ms: int) -> Capture:
    """A copy of ``capture`` with every receive (and exchange) time moved by ``shift_ms``.

    Shifting by whole minutes keeps every message in the same position inside its one-minute
    window, so per-window sums are those of the file, relabelled to later minutes.
    """

    def trade(print_: TradePrint) -> TradePrint:
        exchange_ms = None if print_.ts_exchange_ms is None else print_.ts_exchange_ms + shift_ms
        return replace(
            print_, ts_receive_ms=print_.ts_receive_ms + shift_ms, ts_exchange_ms=exchange_ms
        )

    messages: list[CaptureMessage] = []
    for message in capture.messages:
        if isinstance(message, TradePrint):
            messages.append(trade(message))
        else:
            messages.append(
                replace(
                    message,
                    ts_receive_ms=message.ts_receive_ms + shift_ms,
                    trades=tuple(trade(t) for t in message.trades),
                )
            )
    return replace(capture, messages=messages, skip_reasons=Counter(capture.skip_reasons))


def load_rest_symbols(path: Path | str) -> list[str]:
    """The lowercase symbol list of a recorded Gemini ``GET /v1/symbols`` response."""
    capture = parse_sources([(str(path), read_lines(Path(path)))], "gemini")
    if capture.rest_symbols is None:
        raise CaptureError(f"no /v1/symbols response in {path}")
    return [symbol.lower() for symbol in capture.rest_symbols]


# --------------------------------------------------------------------------------------------
# The Gemini v1 mapping (the contract of the simulator's v1 feed)
# --------------------------------------------------------------------------------------------

V1ChangeEvent = dict[
    str, str
]  # {"type","side","price","remaining","delta","reason"}, in that order


def decimal_text(number: Decimal) -> str:
    """A decimal as plain text without exponent (``Decimal('1E-8')`` -> ``'0.00000001'``)."""
    return format(number, "f")


def v2_change_to_v1_event(
    side: str, price: str, quantity: str, previous_quantity: Decimal, is_snapshot: bool
) -> V1ChangeEvent:
    """Map one v2 level change ``[side, price, quantity]`` onto a Gemini v1 ``change`` event.

    - ``side``: buy -> ``bid``, sell -> ``ask`` (``bid``/``ask`` are accepted as is);
    - ``price``, ``remaining``: the capture's strings unchanged (``remaining`` = quantity);
    - ``delta``: quantity minus the level's previous quantity (0 for a new level), as a plain
      decimal string, e.g. ``"-0.25000000"``;
    - ``reason``: ``initial`` for the first snapshot, else ``place`` when delta > 0 and ``cancel``
      when delta < 0; a zero delta (a venue re-sending an unchanged level) is ``cancel`` when the
      quantity is 0 and ``place`` otherwise.
    """
    size = Decimal(quantity)
    delta = size - previous_quantity
    if is_snapshot:
        reason = "initial"
    elif delta > 0:
        reason = "place"
    elif delta < 0:
        reason = "cancel"
    else:
        reason = "cancel" if size == 0 else "place"
    return {
        "type": "change",
        "side": "bid" if side in ("buy", "bid") else "ask",
        "price": price,
        "remaining": quantity,
        "delta": decimal_text(delta),
        "reason": reason,
    }


@dataclass(slots=True)
class Level:
    """One price level as the venue wrote it, with the size parsed once."""

    price: str
    quantity: str
    size: Decimal


LevelOp = tuple[bool, Decimal, Level | None]  # (is bid, price, new level or None to remove it)


def level_ops(changes: Iterable[V2Change]) -> tuple[LevelOp, ...]:
    """Changes compiled for :meth:`LevelBook.apply_levels` (prices and sizes parsed once)."""
    ops: list[LevelOp] = []
    for side, price, quantity in changes:
        size = Decimal(quantity)
        level = Level(price, quantity, size) if size != 0 else None
        ops.append((side == "buy", Decimal(price), level))
    return tuple(ops)


@dataclass(slots=True)
class LevelBook:
    """The book of one symbol, keyed by price value, keeping the venue's strings for replay."""

    symbol: str
    bids: dict[Decimal, Level] = field(default_factory=dict)
    asks: dict[Decimal, Level] = field(default_factory=dict)
    initialized: bool = False  # a first message was applied (the book may still be empty)

    def is_empty(self) -> bool:
        return not self.bids and not self.asks

    def apply(self, update: BookUpdate) -> list[V1ChangeEvent]:
        """Apply one capture message; return its v1 change events in the capture's order.

        The first snapshot (on a book never applied to) maps with reason ``initial``. A later snapshot (a loop
        restart or a venue re-sync) maps like ordinary changes and is followed by removals (remaining
        ``"0"``, reason ``cancel``) of the levels it does not list, so the book becomes the snapshot.
        """
        first_snapshot = update.is_snapshot and not self.initialized
        events = [self._apply_change(change, first_snapshot) for change in update.changes]
        if update.is_snapshot and not first_snapshot:
            events.extend(self._remove_unlisted(update.changes))
        self.initialized = True
        return events

    def apply_levels(self, ops: Sequence[LevelOp], is_snapshot: bool) -> None:
        """Fast path without events (see :func:`level_ops`): the same resulting book as
        :meth:`apply` of the message the ops were compiled from."""
        if is_snapshot and self.initialized:
            self.bids.clear()
            self.asks.clear()
        bids, asks = self.bids, self.asks
        for is_bid, key, level in ops:
            levels = bids if is_bid else asks
            if level is None:
                levels.pop(key, None)
            else:
                levels[key] = level
        self.initialized = True

    def quantities(self) -> tuple[dict[Decimal, str], dict[Decimal, str]]:
        """Bids and asks as ``{price: quantity text}`` (to compare two books)."""
        return (
            {key: level.quantity for key, level in self.bids.items()},
            {key: level.quantity for key, level in self.asks.items()},
        )

    def _apply_change(self, change: V2Change, is_snapshot: bool) -> V1ChangeEvent:
        side, price, quantity = change
        levels = self.bids if side == "buy" else self.asks
        key = Decimal(price)
        level = levels.get(key)
        previous = level.size if level is not None else ZERO
        event = v2_change_to_v1_event(side, price, quantity, previous, is_snapshot)
        size = Decimal(quantity)
        if size == 0:
            levels.pop(key, None)
        else:
            levels[key] = Level(price, quantity, size)
        return event

    def _remove_unlisted(self, changes: tuple[V2Change, ...]) -> list[V1ChangeEvent]:
        listed = {(side, Decimal(price)) for side, price, _ in changes}
        events: list[V1ChangeEvent] = []
        for side, levels in (("buy", self.bids), ("sell", self.asks)):
            for key in [key for key in levels if (side, key) not in listed]:
                level = levels.pop(key)
                events.append(v2_change_to_v1_event(side, level.price, "0", level.size, False))
        return events

    def snapshot_events(self) -> list[V1ChangeEvent]:
        """All current levels as ``initial`` change events (delta = remaining): bids from the best
        down, then asks from the best up, as Gemini sends its first update."""
        bids = [self.bids[key] for key in sorted(self.bids, reverse=True)]
        asks = [self.asks[key] for key in sorted(self.asks)]
        return [
            {
                "type": "change",
                "side": side,
                "price": level.price,
                "remaining": level.quantity,
                "delta": level.quantity,
                "reason": "initial",
            }
            for side, levels in (("bid", bids), ("ask", asks))
            for level in levels
        ]

    def best_bid(self) -> Level | None:
        return self.bids[max(self.bids)] if self.bids else None

    def best_ask(self) -> Level | None:
        return self.asks[min(self.asks)] if self.asks else None


def trade_to_v1_event(trade: TradePrint) -> dict[str, Any]:
    """A trade as a Gemini v1 ``trade`` event (``makerSide`` is the side opposite the taker)."""
    return {
        "type": "trade",
        "tid": trade.trade_id,
        "price": trade.price,
        "amount": trade.quantity,
        "makerSide": trade.maker_side,
    }


def replay_v1_change_events(
    messages: Iterable[CaptureMessage], symbol: str
) -> Iterator[tuple[int, V1ChangeEvent]]:
    """``(timestampms, change event)`` for every level change of ``symbol``, as the simulator's
    first pass over the capture sends them to a client connected from the start."""
    book = LevelBook(symbol)
    for message in messages:
        if isinstance(message, BookUpdate) and message.symbol == symbol:
            for event in book.apply(message):
                yield message.ts_receive_ms, event
