"""Market replay from real minute history: ``rtc simulate --history SOURCE --start T --end T``.

Every imported minute bar of ``[start, end)`` becomes a minute of Gemini market data: real prices
on the bar's path, trades carrying its volume, a modelled book around the mid (see
:mod:`rtcrypto.simulator.market_model`). Events are generated one minute at a time, so memory
stays bounded over days of bars; the websockets, REST and the sandbox are those of the capture
replay (:class:`rtcrypto.simulator.replay.StreamEngine`).

- **Clock.** The simulated clock is the bars' own time: the first frame is at the first bar at or
  after ``--start`` (no shift to now); ``--speed`` paces it, ``0`` as fast as clients read.
- **Halts.** A gap in the bars (missing minutes, e.g. Binance 2021-04-20 02:00-04:29) is an
  exchange halt: the replay closes every market-data websocket (code 1001, reason ``exchange halt:
  bars resume at T``), builds a fresh book around the next bar's open, waits up to
  ``HALT_RECONNECT_WAIT_S`` for the clients to reconnect and jumps the clock to the next bar.
  A reconnecting client gets the fresh book as its snapshot (v1 ``initial`` changes, v2 the first
  ``l2_updates``), which is how the ingest resynchronises. /_sim/status lists the gaps.
- **Ids.** The message at position ``p`` of minute ``m`` (minutes since the epoch) has
  ``eventId = 2 x (m x 100,000 + p)``; a trade's ``tid`` is ``m x 100,000 + p``: both grow
  across restarts and resumes.
- **Resume.** With ``--resume-file``, after each fully replayed minute the source, range, seed
  and that minute are written (atomically); a start with the same source, range and seed resumes
  at the next minute, so a restarted service never goes back in time. A file for other
  parameters is ignored with a warning.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from rtcrypto.history import HistoryError, load_history, summarize
from rtcrypto.market.captures import TradePrint
from rtcrypto.market.captures.gemini_v1 import Level, LevelBook, trade_to_v1_event
from rtcrypto.simulator import wire
from rtcrypto.simulator.calibration import Calibration
from rtcrypto.simulator.connections import ReplayFrame
from rtcrypto.simulator.market_model import (
    MINUTE_MS,
    STREAM_FRESH_BOOK,
    BookMessage,
    MinuteBar,
    ModelBook,
    PlannedTrade,
    cents_text,
    generate_minute,
    minute_rng,
    satoshis_text,
    to_cents,
)
from rtcrypto.simulator.replay import StreamEngine

log = logging.getLogger("simulator")

POSITIONS_PER_MINUTE = 100_000
HALT_RECONNECT_WAIT_S = 10.0  # wall seconds a halt waits for the dropped clients to come back
RESUME_FORMAT = 1


class HistoryReplayError(ValueError):
    """Bad ``--history`` input (unknown source, empty range, range outside the data)."""


def iso_utc(ts_ms: int) -> str:
    """``1730073600000`` -> ``"2024-10-28T00:00:00Z"``."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc_ms(text: str, flag: str) -> int:
    """An ISO-8601 time (``2024-10-28``, ``2024-10-28T00:00``, with or without ``Z``; naive means
    UTC) as epoch milliseconds; a bad value raises :class:`HistoryReplayError` naming ``flag``."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HistoryReplayError(
            f"{flag} {text!r} is not an ISO-8601 UTC time (e.g. 2024-10-28 or 2024-10-28T00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class HistoryReplay:
    """What to replay: ``source``'s bars with ``start_ms <= ts < end_ms`` (UTC ms)."""

    source: str
    start_ms: int
    end_ms: int
    calibration_path: Path
    seed: int = 0
    history_dir: Path | None = None  # None: the settings' history folder
    resume_file: Path | None = None
    symbol: str = "BTCUSD"

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise HistoryReplayError(
                f"--start {iso_utc(self.start_ms)} must be before --end {iso_utc(self.end_ms)} "
                "(--end is exclusive): the range is empty"
            )


@dataclass(frozen=True, slots=True)
class ReplayBars:
    """The bars of a replay as parallel arrays (``ts_ms`` UTC ms; USD; BTC)."""

    ts_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ms)

    def bar(self, index: int) -> MinuteBar:
        return MinuteBar(
            int(self.ts_ms[index]),
            float(self.open[index]),
            float(self.high[index]),
            float(self.low[index]),
            float(self.close[index]),
            float(self.volume[index]),
        )

    def gaps(self) -> list[tuple[int, int]]:
        """``(first missing minute, next bar)`` for every gap between consecutive bars."""
        steps = np.diff(self.ts_ms)
        return [
            (int(self.ts_ms[i]) + MINUTE_MS, int(self.ts_ms[i + 1]))
            for i in np.flatnonzero(steps > MINUTE_MS)
        ]


def load_replay_bars(spec: HistoryReplay) -> ReplayBars:
    """The bars of ``spec``; a source that was never imported, or a range with no bars, raises
    :class:`HistoryReplayError` with what is imported and the command to import more."""
    try:
        summaries = {summary.source: summary for summary in summarize(spec.history_dir)}
    except HistoryError as error:
        raise HistoryReplayError(f"--history: {error}") from None
    summary = summaries.get(spec.source)
    if summary is None or summary.first_ts_ms is None or summary.last_ts_ms is None:
        known = ", ".join(sorted(summaries)) or "none"
        raise HistoryReplayError(
            f"--history {spec.source!r}: no such imported source (imported: {known}); "
            "import minute files with: rtc history import FILE"
        )
    imported = f"{iso_utc(summary.first_ts_ms)} .. {iso_utc(summary.last_ts_ms)}"
    if spec.end_ms <= summary.first_ts_ms or spec.start_ms > summary.last_ts_ms:
        raise HistoryReplayError(
            f"--start {iso_utc(spec.start_ms)} --end {iso_utc(spec.end_ms)} is outside the "
            f"imported data of {spec.source!r} ({imported}, last bar included); pick a range "
            "inside it or import more with: rtc history import FILE"
        )
    columns = ["open", "high", "low", "close", "volume"]
    frame = load_history(
        spec.source, spec.start_ms * 1_000_000, spec.end_ms * 1_000_000,
        history_dir=spec.history_dir, columns=columns,
    )  # fmt: skip
    if frame.empty:
        raise HistoryReplayError(
            f"no bars of {spec.source!r} between {iso_utc(spec.start_ms)} and "
            f"{iso_utc(spec.end_ms)}: the range falls in a gap of the imported data ({imported}); "
            "`rtc history info` lists the imported files"
        )
    ts_ms = frame["ts"].dt.tz_localize(None).to_numpy().astype("datetime64[ms]").astype(np.int64)
    return ReplayBars(ts_ms, *(frame[name].to_numpy(dtype=np.float64) for name in columns))


# --- the resume file ---------------------------------------------------------------------------


def _resume_key(spec: HistoryReplay) -> dict[str, Any]:
    return {
        "source": spec.source,
        "start": iso_utc(spec.start_ms),
        "end": iso_utc(spec.end_ms),
        "seed": spec.seed,
    }


def read_resume_minute(spec: HistoryReplay) -> int | None:
    """The last fully replayed minute (UTC ms) recorded for ``spec``'s parameters, or None
    (no file, an unreadable one or one for other parameters, which is logged and ignored)."""
    path = spec.resume_file
    if path is None or not path.exists():
        return None
    try:
        document = json.loads(path.read_text())
        recorded = {key: document[key] for key in ("source", "start", "end", "seed")}
        last_minute_ms = int(document["last_minute_ms"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("resume file %s unreadable (%s): starting at --start", path, error)
        return None
    if recorded != _resume_key(spec):
        log.warning(
            "resume file %s is for %s, not %s: ignored, starting at --start",
            path,
            recorded,
            _resume_key(spec),
        )
        return None
    return last_minute_ms


def write_resume_minute(spec: HistoryReplay, minute_ms: int, minutes_replayed: int) -> None:
    """Record ``minute_ms`` as the last fully replayed minute (temporary file + rename)."""
    if spec.resume_file is None:
        return
    document = {
        "format": RESUME_FORMAT,
        **_resume_key(spec),
        "last_minute": iso_utc(minute_ms),
        "last_minute_ms": minute_ms,
        "minutes_replayed": minutes_replayed,
    }
    path = spec.resume_file
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document) + "\n")
    os.replace(temporary, path)


# --- serialization -----------------------------------------------------------------------------


def change_event_json(is_bid: bool, price: str, size: int, previous: int) -> str:
    """One v1 ``change`` event (reason ``place`` when the size grows, else ``cancel``)."""
    delta = size - previous
    return (
        f'{{"type":"change","side":"{"bid" if is_bid else "ask"}","price":"{price}",'
        f'"remaining":"{satoshis_text(size)}","delta":"{satoshis_text(delta)}",'
        f'"reason":"{"place" if delta > 0 else "cancel"}"}}'
    )


def model_level_book(symbol: str, model: ModelBook) -> LevelBook:
    """The model's levels as the :class:`LevelBook` that late joiners, REST and the sandbox read."""
    book = LevelBook(symbol, initialized=True)
    bids, asks = model.levels()
    for levels, side in ((book.bids, bids), (book.asks, asks)):
        for price, size in side:
            price_text, size_text = cents_text(price), satoshis_text(size)
            levels[Decimal(price_text)] = Level(price_text, size_text, Decimal(size_text))
    return book


# --- the engine --------------------------------------------------------------------------------


class HistoryReplayEngine(StreamEngine):
    """Replays minute bars as Gemini market data, generating one minute at a time."""

    def __init__(
        self,
        spec: HistoryReplay,
        bars: ReplayBars,
        calibration: Calibration,
        speed: float = 1.0,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        resumed_after_ms = read_resume_minute(spec)
        first_index = 0
        if resumed_after_ms is not None:
            first_index = int(np.searchsorted(bars.ts_ms, resumed_after_ms, side="right"))
        origin_ms = (
            int(bars.ts_ms[first_index])
            if first_index < len(bars)
            else int(bars.ts_ms[-1]) + MINUTE_MS
        )
        super().__init__([spec.symbol], origin_ms, speed, wall)
        self.spec = spec
        self.bars = bars
        self.calibration = calibration
        self.model = ModelBook(calibration)
        self.symbol = spec.symbol
        self.first_index = first_index
        self.resumed_after_ms = resumed_after_ms
        self.minutes_replayed = first_index
        self.current_minute_ms: int | None = None
        self.halts: list[dict[str, Any]] = []
        if resumed_after_ms is not None:
            log.info(
                "resumed history replay after minute %s (%d of %d minutes already replayed)",
                iso_utc(resumed_after_ms),
                first_index,
                len(bars),
            )
        if first_index < len(bars):
            self._fresh_book(bars.bar(first_index))
        else:
            self.done = True  # a resume after the last minute: nothing left, never go back
            self._pending_ms = None

    def describe(self) -> str:
        return (
            f"history source={self.spec.source} minutes={len(self.bars) - self.first_index} "
            f"from={iso_utc(self.clock.origin_ms)} seed={self.spec.seed}"
        )

    def _fresh_book(self, bar: MinuteBar) -> None:
        self.model.reset(
            to_cents(bar.open), minute_rng(self.spec.seed, bar.ts_ms, STREAM_FRESH_BOOK)
        )
        self.books[self.symbol] = model_level_book(self.symbol, self.model)
        self._pending_ms = bar.ts_ms
        self._last_applied_ms = max(self._last_applied_ms, bar.ts_ms)
        self._position = max(self._position, (bar.ts_ms // MINUTE_MS) * POSITIONS_PER_MINUTE)

    # --- running -------------------------------------------------------------------------------
    async def run(self) -> None:
        """Replay every bar from the first (or resumed) one, then let the clock run on."""
        await self._start_requested.wait()
        self.clock.start()
        previous_ms = self.resumed_after_ms
        for index in range(self.first_index, len(self.bars)):
            bar = self.bars.bar(index)
            if previous_ms is not None and bar.ts_ms - previous_ms > MINUTE_MS:
                await self._halt(previous_ms + MINUTE_MS, bar)
            await self._replay_minute(bar)
            previous_ms = bar.ts_ms
            self.minutes_replayed = index + 1
            write_resume_minute(self.spec, bar.ts_ms, self.minutes_replayed)
        if not self.done:
            log.info(
                "history replay done minutes=%d halts=%d", self.minutes_replayed, len(self.halts)
            )
        self.done = True
        self._pending_ms = None
        self.clock.run_free()

    async def _replay_minute(self, bar: MinuteBar) -> None:
        self.current_minute_ms = bar.ts_ms
        first_position = (bar.ts_ms // MINUTE_MS) * POSITIONS_PER_MINUTE
        for index, event in enumerate(generate_minute(bar, self.model, self.spec.seed)):
            ts_ms = bar.ts_ms + event.offset_ms
            self._pending_ms = ts_ms
            await self._pace(self.symbol, ts_ms, index)
            position = first_position + index + 1
            if isinstance(event, BookMessage):
                frame = self._apply_book(event, position, ts_ms)
            else:
                frame = self._apply_trade(event, position, ts_ms)
            if frame is not None:
                self._publish(frame)

    async def _halt(self, first_missing_ms: int, bar: MinuteBar) -> None:
        """Skip a gap in the bars like an exchange halt (see the module docstring)."""
        gap = {
            "from": iso_utc(first_missing_ms),
            "to": iso_utc(bar.ts_ms),
            "minutes": (bar.ts_ms - first_missing_ms) // MINUTE_MS,
        }
        self.halts.append(gap)
        log.warning(
            "exchange halt: no bars from %s to %s (%d minutes); closing market-data connections, "
            "fresh book at %s",
            gap["from"],
            gap["to"],
            gap["minutes"],
            gap["to"],
        )
        self._fresh_book(bar)
        self.clock.jump_to(bar.ts_ms)
        connections = list(self.connections())
        for connection in connections:
            self.unsubscribe(connection)
        reason = f"exchange halt: bars resume at {gap['to']}"
        await asyncio.gather(
            *(connection.close(reason) for connection in connections), return_exceptions=True
        )
        deadline = time.monotonic() + HALT_RECONNECT_WAIT_S
        while connections and len(self.connections()) < len(connections):
            if time.monotonic() > deadline:
                log.warning(
                    "halt: %d client(s) did not come back",
                    len(connections) - len(self.connections()),
                )
                break
            await asyncio.sleep(0.05)
        self.clock.jump_to(bar.ts_ms)  # the wait for reconnects costs no simulated time

    # --- applying one message ------------------------------------------------------------------
    def _advance(self, position: int, ts_ms: int, change_count: int) -> None:
        self._position = position
        self._last_applied_ms = ts_ms
        self.clock.advance_to(ts_ms)
        self.lines_replayed += 1
        self.change_events_replayed += change_count

    def _apply_book(self, message: BookMessage, position: int, ts_ms: int) -> ReplayFrame | None:
        book = self.books[self.symbol]
        texts = []
        for is_bid, price, size, _ in message.changes:
            price_text = cents_text(price)
            levels = book.bids if is_bid else book.asks
            key = Decimal(price_text)
            if size == 0:
                levels.pop(key, None)
            else:
                size_text = satoshis_text(size)
                levels[key] = Level(price_text, size_text, Decimal(size_text))
            texts.append(price_text)
        count = len(message.changes)
        self._advance(position, ts_ms, count)
        protocols = {connection.protocol for connection in self.subscribers.get(self.symbol, ())}
        if not protocols:
            return None  # nobody listens: skip serialization (late joiners get the book)
        event_id = 2 * position
        v1_tail = v2_text = None
        if "v1" in protocols:
            events_json = ",".join(
                change_event_json(is_bid, text, size, previous)
                for (is_bid, _, size, previous), text in zip(message.changes, texts, strict=True)
            )
            v1_tail = wire.v1_update_tail_json(event_id, ts_ms, f"[{events_json}]")
        if "v2" in protocols:
            changes_json = ",".join(
                f'["{"buy" if is_bid else "sell"}","{text}","{satoshis_text(size)}"]'
                for (is_bid, _, size, _), text in zip(message.changes, texts, strict=True)
            )
            v2_text = wire.v2_l2_updates_json(self.symbol, f"[{changes_json}]")
        return ReplayFrame(self.symbol, event_id, ts_ms, count, v1_tail, v2_text)

    def _apply_trade(self, planned: PlannedTrade, position: int, ts_ms: int) -> ReplayFrame | None:
        trade = TradePrint(
            symbol=self.symbol,
            ts_receive_ms=ts_ms,
            line_number=0,
            trade_id=position,
            price=cents_text(planned.price_cents),
            quantity=satoshis_text(planned.quantity_sats),
            taker_side=planned.taker_side,
            ts_exchange_ms=ts_ms,
        )
        self.tickers[self.symbol].record(trade, ts_ms)
        self._advance(position, ts_ms, 0)
        protocols = {connection.protocol for connection in self.subscribers.get(self.symbol, ())}
        if not protocols:
            return None
        event_id = 2 * position
        v1_tail = v2_text = None
        if "v1" in protocols:
            events_json = json.dumps([trade_to_v1_event(trade)], separators=(",", ":"))
            v1_tail = wire.v1_update_tail_json(event_id, ts_ms, events_json)
        if "v2" in protocols:
            v2_text = wire.v2_trade(trade, ts_ms)
        return ReplayFrame(self.symbol, event_id, ts_ms, 0, v1_tail, v2_text)

    # --- state ---------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What ``GET /_sim/status`` reports in history mode."""
        current = self.current_minute_ms
        return {
            "mode": "history",
            "prices": f"real (minute bars of {self.spec.source})",
            "book": f"modelled (calibration {self.calibration.label})",
            "started": self.started,
            "done": self.done,
            "speed": self.speed,
            "loop": False,
            "lines_replayed": self.lines_replayed,
            "change_events_replayed": self.change_events_replayed,
            "simulated_time_ms": self.stream_time_ms(),
            "clients": self.client_counts(),
            "history": {
                "source": self.spec.source,
                "symbol": self.symbol,
                "start": iso_utc(self.spec.start_ms),
                "end": iso_utc(self.spec.end_ms),
                "seed": self.spec.seed,
                "minutes_total": len(self.bars),
                "minutes_replayed": self.minutes_replayed,
                "current_minute": None if current is None else iso_utc(current),
                "resumed_after": (
                    None if self.resumed_after_ms is None else iso_utc(self.resumed_after_ms)
                ),
                "halts": {"count": len(self.halts), "gaps": list(self.halts)},
                "calibration": str(self.spec.calibration_path),
            },
        }
