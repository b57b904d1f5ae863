"""The ingest service: Gemini market data v1 websocket -> Kafka.

One thread per symbol reads its websocket (real Gemini or the simulator) and hands each frame to a
:class:`FrameProcessor`; records go out through one shared confluent-kafka producer (acks=all,
idempotent, batched). Reconnects back off exponentially with jitter; a ``socket_sequence`` gap
forces a resubscribe, which brings a fresh snapshot. SIGTERM flushes the producer and exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import websocket

from rtcrypto.config import Settings, get_settings, settings_or_exit
from rtcrypto.exchange.feedclock import FeedClock, FeedClockError
from rtcrypto.ingest.event_window import event_time_reference
from rtcrypto.ingest.processor import FrameProcessor, FrameResult, Outgoing, Route
from rtcrypto.kafka.producers import KafkaUnavailable, RecordProducer, make_producer
from rtcrypto.market.schemas import Heartbeat
from rtcrypto.redact import redact_url

log = logging.getLogger("rtcrypto.ingest")

RECV_POLL_S = 0.25  # how often the reader wakes up to tick the clock and check for stop


def backoff_delay(attempt: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with jitter, in seconds: uniform in [initial/2, min(max, initial * 2**attempt)]."""
    ceiling = min(max_s, initial_s * (2 ** min(attempt, 30)))
    return rng.uniform(initial_s / 2, max(initial_s / 2, ceiling))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def market_data_url(base_url: str, symbol: str) -> str:
    """Gemini v1 market data URL for one symbol, with heartbeats and trades on."""
    return (
        f"{base_url.rstrip('/')}/v1/marketdata/{symbol}"
        "?heartbeat=true&top_of_book=false&bids=true&offers=true&trades=true"
    )


@dataclass
class IngestStats:
    """Counters reported in the heartbeat; updated from several threads under one lock."""

    processed: int = 0
    changes: int = 0
    trades: int = 0
    dead_letters: int = 0
    reconnects: int = 0
    gaps: int = 0
    send_errors: int = 0
    last_event_ms: int | None = None
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, result: FrameResult, last_event_ms: int | None) -> None:
        with self.lock:
            self.changes += result.changes
            self.trades += result.trades
            self.processed += result.changes + result.trades
            self.dead_letters += result.dead_letters
            if last_event_ms is not None:
                self.last_event_ms = last_event_ms

    def error(self, message: str, *, reconnect: bool = False, gap: bool = False) -> None:
        with self.lock:
            self.last_error = message
            self.reconnects += int(reconnect)
            self.gaps += int(gap)


class IngestService:
    """Runs the readers and the heartbeat until :meth:`stop` (or SIGTERM)."""

    def __init__(
        self,
        settings: Settings | None = None,
        producer: RecordProducer | None = None,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings or get_settings()
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self.stats = IngestStats()
        self._stop = threading.Event()
        self._clock_ms = clock_ms
        self._feed_clock = FeedClock.from_settings(self.settings)  # the heartbeat lag's clock
        self._producer = producer or make_producer(self.settings, "rtc-ingest", self._on_send_error)
        topics = self.settings.topics
        self._topic = {
            Route.orderbook: topics.orderbook,
            Route.trades: topics.trades,
            Route.deadletter: topics.deadletter,
        }
        self._sockets: dict[str, websocket.WebSocket] = {}

    # ------------------------------------------------------------------------------ lifecycle
    def run(self) -> None:
        """Block until stopped; then flush everything that was produced."""
        symbols = self.settings.symbols
        log.info(
            "ingest starting symbols=%s feed=%s url=%s bootstrap=%s",
            ",".join(symbols),
            self.settings.feed.value,
            self.settings.market_data_ws_url,
            self.settings.kafka_bootstrap,
        )
        readers = [
            threading.Thread(target=self._read_forever, args=(symbol,), name=f"ingest-{symbol}")
            for symbol in symbols
        ]
        for reader in readers:
            reader.start()
        try:
            while not self._stop.wait(self.settings.heartbeat_interval_s):
                self._send_heartbeat()
        finally:
            for reader in readers:
                reader.join(timeout=10)
            self._send_heartbeat()
            undelivered = self._producer.flush(30)
            self._producer.close(30)
            log.info(
                "ingest stopped processed=%d dead_letters=%d reconnects=%d gaps=%d "
                "send_errors=%d undelivered=%d",
                self.stats.processed,
                self.stats.dead_letters,
                self.stats.reconnects,
                self.stats.gaps,
                self.stats.send_errors,
                undelivered,
            )

    def stop(self) -> None:
        self._stop.set()
        for ws in list(self._sockets.values()):
            # Closing from another thread makes a blocked recv() return at once.
            with contextlib.suppress(Exception):  # best effort on shutdown
                ws.abort()

    def install_signal_handlers(self) -> None:
        def handle(signum: int, _frame: object) -> None:
            log.info("ingest received %s: flushing and stopping", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    # ------------------------------------------------------------------------------ reading
    def _read_forever(self, symbol: str) -> None:
        settings = self.settings
        url = market_data_url(settings.market_data_ws_url, symbol)
        processor = FrameProcessor(
            symbol=symbol,
            band_pct=settings.depth_band_pct,
            source=url,
            event_time_window_ms=int(settings.event_time_window_s * 1000),
            reference=event_time_reference(settings),  # one per reader: not shared by threads
        )
        rng = random.Random()
        attempt = 0
        while not self._stop.is_set():
            processor.reset_connection()
            try:
                ws = websocket.create_connection(
                    url, timeout=10, enable_multithread=True, skip_utf8_validation=True
                )
            except (OSError, websocket.WebSocketException) as error:
                delay = backoff_delay(
                    attempt, settings.reconnect_initial_s, settings.reconnect_max_s, rng
                )
                attempt += 1
                self.stats.error(f"connect failed: {error}", reconnect=attempt > 1)
                log.warning(
                    "ingest connect failed symbol=%s url=%s error=%s retry_in_s=%.2f",
                    symbol,
                    redact_url(url),
                    error,
                    delay,
                )
                self._stop.wait(delay)
                continue
            log.info("ingest connected symbol=%s url=%s", symbol, redact_url(url))
            self._sockets[symbol] = ws
            ws.settimeout(RECV_POLL_S)
            try:
                reason, frames = self._read_connection(ws, processor)
            except Exception as error:  # noqa: BLE001 - a reader thread must never die silently
                log.exception("ingest reader failed symbol=%s", symbol)
                reason, frames = f"reader error ({type(error).__name__}: {error})", 0
            self._sockets.pop(symbol, None)
            with contextlib.suppress(Exception):  # the peer may be gone already
                ws.close(timeout=1)
            if self._stop.is_set():
                break
            if frames:
                attempt = 0  # the endpoint worked: start backing off from the beginning
            if reason == "gap":
                delay = 0.0  # a gap is not a failing endpoint: resubscribe at once
            else:
                delay = backoff_delay(
                    attempt, settings.reconnect_initial_s, settings.reconnect_max_s, rng
                )
                attempt += 1
            self.stats.error(f"reconnecting after {reason}", reconnect=True)
            log.warning(
                "ingest reconnecting symbol=%s reason=%s retry_in_s=%.2f", symbol, reason, delay
            )
            self._stop.wait(delay)

    def _read_connection(
        self, ws: websocket.WebSocket, processor: FrameProcessor
    ) -> tuple[str, int]:
        """Read one connection until it fails, a sequence gap appears, or stop.

        Returns why it ended and how many frames it delivered.
        """
        next_tick = time.monotonic() + self.settings.tick_interval_s
        frames = 0
        while not self._stop.is_set():
            try:
                # recv_data hands over raw bytes: invalid UTF-8 becomes a dead letter, not a crash.
                opcode, payload = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                opcode, payload = None, b""
            except (OSError, websocket.WebSocketException) as error:
                return f"connection lost ({type(error).__name__}: {error})", frames
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return "connection closed by peer", frames
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                frames += 1
                result = processor.on_frame(payload, self._clock_ms())
                self._publish(result, processor)
                if result.sequence_gap is not None:
                    expected, received = result.sequence_gap
                    self.stats.error(
                        f"sequence gap expected={expected} received={received}", gap=True
                    )
                    log.warning(
                        "ingest socket_sequence gap symbol=%s expected=%d received=%d: "
                        "resubscribing for a fresh snapshot",
                        processor.symbol,
                        expected,
                        received,
                    )
                    return "gap", frames
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self.settings.tick_interval_s
                self._publish(processor.clock_tick(self._clock_ms()), processor)
        return "stop", frames

    # ------------------------------------------------------------------------------ output
    def _publish(self, result: FrameResult, processor: FrameProcessor) -> None:
        for record in result.records:
            self._send(record)
        if result.records or result.dead_letters:
            self.stats.add(result, processor.last_event_ms)
        if result.dead_letters:
            log.warning(
                "ingest dead-lettered symbol=%s count=%d total=%d",
                processor.symbol,
                result.dead_letters,
                self.stats.dead_letters,
            )

    def _send(self, record: Outgoing) -> None:
        key = record.key.encode() if record.key is not None else None
        self._producer.send(self._topic[record.route], key, record.value)

    def _on_send_error(self, topic: str, key: bytes | None, error: Exception) -> None:
        with self.stats.lock:
            self.stats.send_errors += 1
            self.stats.last_error = f"kafka send failed: {error}"
        log.error("ingest kafka send failed topic=%s key=%r error=%s", topic, key, error)

    def _feed_now_ms(self) -> int:
        """Now on the feed's clock (:mod:`rtcrypto.exchange.feedclock`), for the event-time lag: a history
        replay's events are years old on the wall clock but current on the simulator's. The wall
        clock while the simulator's time cannot be read."""
        try:
            return self._feed_clock.now_ms()
        except FeedClockError:
            return self._clock_ms()

    def _send_heartbeat(self) -> None:
        stats = self.stats
        feed_now = self._feed_now_ms()  # before the lock: it may ask the simulator
        with stats.lock:
            now = self._clock_ms()
            beat = Heartbeat(
                service=self.settings.ingest_instance,
                instance=self.instance,
                ts_ms=now,
                processed=stats.processed,
                last_event_ms=stats.last_event_ms,
                lag_ms=(
                    None if stats.last_event_ms is None else max(0, feed_now - stats.last_event_ms)
                ),
                reconnects=stats.reconnects,
                gaps=stats.gaps,
                dead_letters=stats.dead_letters,
                last_error=stats.last_error,
            )
        self._producer.send(
            self.settings.topics.heartbeat, self.settings.ingest_instance.encode(), beat.to_bytes()
        )


def main(settings: Settings | None = None) -> None:
    """Entry point of ``python -m streaming.ingest`` and ``rtc ingest`` (which passes its flags
    as ``settings``); None reads the ``RTC_*`` settings (bad ones: a message naming them, exit 2)."""
    from rtcrypto.logs import setup_logging

    settings = settings or settings_or_exit()
    setup_logging("ingest", settings.log_level)
    try:
        service = IngestService(settings)
    except KafkaUnavailable as error:
        log.error(
            "ingest cannot reach Kafka at %s (%s): start it with `rtc stack up` "
            "or set RTC_KAFKA_BOOTSTRAP",
            settings.kafka_bootstrap,
            error,
        )
        raise SystemExit(2) from None
    service.install_signal_handlers()
    service.run()
