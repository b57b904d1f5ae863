"""The trader service (``python -m streaming.trader``, ``rtc trader``): Kafka in, orders out.

Consumes ``liquidity.minute.v1`` in its own consumer group, commits a record's offset only after
the record was decided and journaled (a crash re-reads it; the journal's deterministic ids make
that harmless), dead-letters records it cannot parse, sends a heartbeat every
``heartbeat_interval_s`` and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from rtcrypto.config import Feed, Settings, TradingMode, settings_or_exit
from rtcrypto.exchange.base import ExchangeAdapter, ExchangeError
from rtcrypto.exchange.endpoints import endpoint_host
from rtcrypto.exchange.feedclock import FeedClock, FeedClockError, SimulatorTime
from rtcrypto.kafka.producers import KafkaUnavailable, RecordProducer, make_producer
from rtcrypto.market.schemas import DeadLetter, Heartbeat
from rtcrypto.trader.engine import Trader, parse_liquidity_bytes
from rtcrypto.trader.forecasts import ForecastSource
from rtcrypto.trader.journal import OrderJournal, journal_file_name, read_journal
from rtcrypto.trader.order_events import OrderEventJournaler, build_order_events
from rtcrypto.trader.recorder import NullRecorder, TradeRecorder
from rtcrypto.trading.risk import RiskLimits
from rtcrypto.trading.strategy import StrategyParams

log = logging.getLogger("trader")

SERVICE = "trader"
MAX_DEAD_LETTER_RAW_BYTES = 1024 * 1024  # a dead letter keeps the record, up to 1 MiB
MAX_REASON_CHARS = 500


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class TraderConfigError(ValueError):
    """The trader cannot start with these settings; the message names the setting."""


def forecast_offset_ms(settings: Settings, clock: FeedClock | None = None) -> int:
    """How far the feed's clock is ahead of the forecast's: the simulator's replay shift.

    ``RTC_TRADER_FORECAST_OFFSET_MS`` if set; 0 for the live feed; else the simulator's
    ``shift_ms`` (a capture replay shifted to now; 0 for a history replay on its own time)."""
    if settings.trader_forecast_offset_ms is not None:
        return settings.trader_forecast_offset_ms
    if settings.feed is Feed.live:
        return 0
    return (clock or start_feed_clock(settings)).shift_ms


def start_feed_clock(settings: Settings) -> FeedClock:
    """The feed clock, read once: the simulator must answer (``TraderConfigError`` names how)."""
    try:
        return FeedClock.from_settings(settings).start()
    except FeedClockError as error:
        raise TraderConfigError(str(error)) from None


def build_exchange(
    settings: Settings, clock_ms: Callable[[], int] | None = None
) -> ExchangeAdapter:
    """``paper`` (default) against the feed's public book, or ``gemini`` (sandbox / live);
    book reads and paper fills are timed on ``clock_ms`` (the feed clock)."""
    from rtcrypto.exchange import factory

    return factory.exchange_from_settings(settings, clock_ms)


def build_recorder(settings: Settings, exchange_name: str) -> TradeRecorder:
    """Elasticsearch through the bulk writer, unless RTC_TRADER_SEARCH is off."""
    if not settings.trader_search:
        return NullRecorder()
    from rtcrypto.trader.search_recorder import SearchRecorder

    return SearchRecorder.from_settings(settings, exchange=exchange_name)


@dataclass
class TraderStats:
    dead_letters: int = 0
    skipped: int = 0


class TraderService:
    """Runs the consume-decide-commit loop until :meth:`stop`."""

    def __init__(
        self,
        settings: Settings,
        trader: Trader,
        producer: RecordProducer,
        clock_ms: Callable[[], int] = now_ms,
        order_events: OrderEventJournaler | None = None,
    ) -> None:
        self.settings = settings
        self.trader = trader
        self.producer = producer
        self.order_events = order_events  # gemini: its order events into the journal
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self.stats = TraderStats()
        self._stop = threading.Event()
        self._clock_ms = clock_ms
        self._next_heartbeat = 0.0
        attach = getattr(trader.recorder, "attach_overflow", None)
        if attach is not None:  # documents over the search spool cap: Kafka dead letters
            attach(self._search_overflow, f"Kafka topic {settings.topics.deadletter}")

    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def handle(signum: int, _frame: object) -> None:
            log.info("trader received %s: stopping after this record", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def _consumer(self):  # type: ignore[no-untyped-def]
        from rtcrypto.kafka import clients

        return clients.consumer(
            self.settings,
            f"rtc-trader-{os.getpid()}",
            **{
                "group.id": self.settings.trader_consumer_group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # static membership: a restarted trader takes its partitions back at once instead
                # of waiting out the dead member's session; a second trader is fenced off
                "group.instance.id": f"{self.settings.trader_consumer_group}-{SERVICE}",
                "session.timeout.ms": 10_000,
            },
        )

    def run(self) -> None:
        settings = self.settings
        topic = settings.topics.liquidity
        consumer = self._consumer()
        consumer.subscribe([topic])
        log.info(
            "trader consuming topic=%s group=%s symbol=%s mode=%s exchange=%s",
            topic,
            settings.trader_consumer_group,
            settings.trader_symbol,
            self.trader.mode,
            self.trader.exchange.name,
        )
        try:
            while not self._stop.is_set():
                self._heartbeat_if_due()
                self._pump_order_events()
                message = consumer.poll(0.5)
                if message is None:
                    continue
                if message.error():
                    log.warning("kafka error topic=%s: %s", topic, message.error())
                    continue
                self.handle(message.value(), f"{topic}[{message.partition()}]@{message.offset()}")
                consumer.commit(message=message, asynchronous=False)
        finally:
            consumer.close()
            if self.order_events is not None:
                self.order_events.stop()
            self._send_heartbeat()
            self.trader.recorder.close()
            self.producer.flush(10)
            self.producer.close(10)
            self.trader.journal.close()
            log.info(
                "trader stopped processed=%d orders=%d dead_letters=%d",
                self.trader.processed,
                self.trader.orders_sent,
                self.stats.dead_letters,
            )

    def handle(self, value: bytes | None, source: str) -> None:
        """One Kafka record: parse, decide, act. Never raises (``Exception``): a record that
        cannot be parsed or processed is dead-lettered with its reason, so the caller commits its
        offset and it is not read again; exchange errors are logged and retried next minute."""
        try:
            reading = parse_liquidity_bytes(value)
        except Exception as error:  # MalformedRecordError, and anything unforeseen
            self._dead_letter(value, source, _reason(error))
            return
        if reading.symbol != self.settings.trader_symbol.upper():
            return
        try:
            outcome = self.trader.on_liquidity(reading)
        except ExchangeError as error:  # the exchange is down: keep consuming, retry next minute
            self.trader.last_error = str(error)
            log.error("record %s: exchange error: %s", source, error)
            return
        except Exception as error:  # a record that breaks the decision must not loop the service
            self.trader.last_error = _reason(error)
            log.exception("record %s: processing failed", source)
            self._dead_letter(value, source, f"processing failed: {_reason(error)}")
            return
        if outcome.action == "skip":
            self.stats.skipped += 1
            log.info("minute=%d %s", reading.window_end_ms, outcome.reason)

    def _pump_order_events(self) -> None:
        """Journal the order events received since the last call (never raises)."""
        if self.order_events is None:
            return
        try:
            self.order_events.pump()
        except Exception as error:  # the journal's REST fallback keeps the trader right
            self.trader.last_error = _reason(error)
            log.exception("order events: pump failed")

    def _dead_letter(self, value: bytes | None, source: str, reason: str) -> None:
        self.stats.dead_letters += 1
        raw = (value or b"")[:MAX_DEAD_LETTER_RAW_BYTES].decode("utf-8", errors="replace")
        letter = DeadLetter(
            service=SERVICE, reason=reason, raw=raw, source=source, ts_receive_ms=self._clock_ms()
        )
        try:
            self.producer.send(self.settings.topics.deadletter, source.encode(), letter.to_bytes())
        except Exception as error:  # the record is still skipped: the log keeps the reason
            log.error("dead letter of record %s not sent (%s): %s", source, error, reason)
        log.warning("dead-lettered record %s: %s", source, reason)

    def _search_overflow(self, records: Sequence[dict[str, Any]]) -> None:
        """Search documents over the spool cap: one dead letter each (the document as ``raw``)."""
        for record in records:
            letter = DeadLetter(
                service=SERVICE,
                reason="search spool full",
                raw=orjson.dumps(record).decode(),
                source=f"search:{record['_index']}",
                ts_receive_ms=self._clock_ms(),
            )
            key = str(record["_id"]).encode()
            self.producer.send(self.settings.topics.deadletter, key, letter.to_bytes())

    def _heartbeat_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.settings.heartbeat_interval_s
            self._send_heartbeat()

    def _send_heartbeat(self) -> None:
        now = self._clock_ms()  # the heartbeat's own time: wall clock (the supervisor's)
        last = self.trader.last_event_ms
        lag_ms = None if last is None else max(0, self.trader.clock_ms() - last)  # feed clock
        beat = Heartbeat(
            service=SERVICE,
            instance=self.instance,
            ts_ms=now,
            processed=self.trader.processed,
            last_event_ms=last,
            lag_ms=lag_ms,
            dead_letters=self.stats.dead_letters,
            last_error=self.trader.last_error,
            alerts=list(getattr(self.trader.recorder, "alerts", list)()),
        )
        self.producer.send(self.settings.topics.heartbeat, SERVICE.encode(), beat.to_bytes())


def _reason(error: BaseException) -> str:
    """A dead-letter reason: the error's type and message, bounded."""
    return f"{type(error).__name__}: {error}"[:MAX_REASON_CHARS]


def record_age_budget_ms(max_age_s: float | None, reading: SimulatorTime | None) -> int | None:
    """How old (feed ms) a liquidity record may be when the trader reads it.

    ``trader_max_record_age_s`` is the delay a user tolerates between a window's end and the
    decision, in wall seconds; a replay at X times speed moves the feed clock X times as far in that
    wall time, so the budget on the feed clock is X times larger (speed 0 and the live feed: 1x).
    """
    if max_age_s is None:
        return None
    speed = reading.speed if reading is not None and reading.speed > 1 else 1.0
    return int(max_age_s * 1000 * speed)


LEGACY_GEMINI_JOURNAL = "journal-gemini.jsonl"  # before issue 10: sandbox and live shared it


def trader_journal(settings: Settings) -> OrderJournal:
    """The journal of this mode and exchange host, locked and checked (``JournalError``).

    A ``journal-gemini.jsonl`` of an earlier version (shared by sandbox and live) is never
    guessed into a mode: the trader refuses to start and says which file to move where."""
    mode = settings.trading_mode.value
    url = None if settings.trading_mode is TradingMode.paper else settings.gemini_rest_base_url
    path = settings.trader_dir / journal_file_name(mode, url)
    legacy = settings.trader_dir / LEGACY_GEMINI_JOURNAL
    if url is not None and legacy.exists() and not path.exists():
        opened = read_journal(legacy).opened or {}
        raise TraderConfigError(
            f"found {legacy} (mode {opened.get('mode', 'unknown')}) from an earlier version, "
            f"where sandbox and live shared one journal. If it belongs to {mode} at "
            f"{endpoint_host(url)}, move it to {path}; else move it aside. The trader does not "
            "guess, as its pending orders would be reconciled on the wrong exchange"
        )
    return OrderJournal(path, mode=mode, venue=None if url is None else endpoint_host(url))


def build_trader(settings: Settings, clock: FeedClock | None = None) -> Trader:
    """The trader wired from settings (exchange, journal, forecast, recorder, limits), on the
    feed clock: staleness, risk windows, journal, order and fill times are the feed's time."""
    clock = clock or start_feed_clock(settings)
    log.info("trader clock: %s", clock.describe())
    journal = trader_journal(settings)  # first: a second trader stops here, before any I/O
    try:
        return _wire_trader(settings, clock, journal)
    except BaseException:
        journal.close()  # its lock must not outlive a failed start
        raise


def account_taker_fee_pct(exchange: object, configured_pct: Decimal) -> Decimal:
    """The taker fee (percent) the account pays: the ``gemini`` adapter's ``/v1/notionalvolume``
    tier (its fee estimate follows it too), else ``configured_pct`` (``RTC_TAKER_FEE_PCT``;
    paper, or the tier could not be read: logged)."""
    from rtcrypto.exchange.gemini import GeminiAdapter

    if not isinstance(exchange, GeminiAdapter):
        return configured_pct
    try:
        tier = exchange.fee_tier()
    except ExchangeError as error:
        log.warning(
            "fee tier unreadable (%s): the decisions use RTC_TAKER_FEE_PCT %s %%",
            error,
            configured_pct,
        )
        return configured_pct
    exchange.fallback_fee_pct = tier.taker_fee_pct
    log.info(
        "taker fee %s %% from /v1/notionalvolume (api_taker_fee_bps %s, 30-day volume %s USD; "
        "RTC_TAKER_FEE_PCT %s %% not used)",
        tier.taker_fee_pct,
        tier.api_taker_fee_bps,
        tier.notional_30d_volume_usd,
        configured_pct,
    )
    return tier.taker_fee_pct


def _wire_trader(settings: Settings, clock: FeedClock, journal: OrderJournal) -> Trader:
    exchange = build_exchange(settings, clock.now_ms)
    kill_path = settings.kill_switch_path

    def kill_switch() -> bool:
        return settings.kill_switch or kill_path.exists()

    max_age = settings.trader_max_record_age_s
    return Trader(
        exchange=exchange,
        journal=journal,
        forecasts=ForecastSource(
            settings.forecast_path,
            settings.forecast_reload_interval_s,
            clock_s=time.monotonic,
        ),
        recorder=build_recorder(settings, exchange.name),
        params=StrategyParams.from_settings(settings),
        limits=RiskLimits.from_settings(settings),
        symbol=settings.trader_symbol,
        mode=settings.trading_mode.value,
        taker_fee_pct=account_taker_fee_pct(exchange, settings.taker_fee_pct),
        clock_ms=clock.now_ms,
        kill_switch=kill_switch,
        forecast_offset_ms=forecast_offset_ms(settings, clock),
        max_record_age_ms=record_age_budget_ms(max_age, clock.reading),
    )


def main(settings: Settings | None = None) -> None:
    """Entry point of ``python -m streaming.trader`` and ``rtc trader`` (which passes its flags
    as ``settings``); None reads the ``RTC_*`` settings (bad ones: a message naming them, exit 2)."""
    from rtcrypto.logs import setup_logging

    settings = settings or settings_or_exit()
    setup_logging(SERVICE, settings.log_level)
    try:
        trader = build_trader(settings)
        trader.start()
        producer = make_producer(settings, "rtc-trader")
    except (TraderConfigError, ExchangeError, ValueError) as error:
        log.error("trader cannot start: %s", error)
        raise SystemExit(2) from None
    except KafkaUnavailable as error:
        log.error(
            "trader cannot reach Kafka at %s (%s): start it with `rtc stack up`",
            settings.kafka_bootstrap,
            error,
        )
        raise SystemExit(2) from None
    stream = build_order_events(settings, trader.exchange)
    order_events = None if stream is None else OrderEventJournaler(stream, trader).start()
    service = TraderService(settings, trader, producer, order_events=order_events)
    service.install_signal_handlers()
    service.run()
