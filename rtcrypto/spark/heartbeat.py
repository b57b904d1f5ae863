"""Heartbeats of a Spark streaming job on ``service.heartbeat.v1``, as every service sends them.

Used by the driver of the liquidity job (``spark_jobs/liquidity.py``) and of the bars job
(``rtcrypto/feedbars/streaming.py``). The lag is the feed's clock (``rtcrypto.exchange.feedclock``: a
historical replay's time) minus the query's watermark; the wall clock when the feed's clock cannot
be read (then retried after a minute, so a missing simulator never slows the driver's loop).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Protocol

FEED_CLOCK_RETRY_S = 60.0


class HeartbeatOptions(Protocol):
    """What ``SparkHeartbeats.from_options`` reads of a job's options (liquidity's and bars')."""

    @property
    def bootstrap(self) -> str: ...

    @property
    def heartbeat_topic(self) -> str: ...

    @property
    def heartbeat_interval_s(self) -> float: ...


class SparkHeartbeats:
    """Sends at most one heartbeat per ``interval_s`` for the job named ``service``."""

    @classmethod
    def from_options(
        cls, options: HeartbeatOptions, *, service: str, client_id: str
    ) -> SparkHeartbeats | None:
        """The job's heartbeats from its options; None when ``heartbeat_topic`` is ''."""
        if not options.heartbeat_topic:
            return None
        return cls(
            bootstrap=options.bootstrap,
            topic=options.heartbeat_topic,
            interval_s=options.heartbeat_interval_s,
            service=service,
            client_id=client_id,
        )

    def __init__(
        self, *, bootstrap: str, topic: str, interval_s: float, service: str, client_id: str
    ) -> None:
        from rtcrypto.config import get_settings
        from rtcrypto.exchange.feedclock import FeedClock
        from rtcrypto.kafka.producers import make_producer

        settings = get_settings().model_copy(update={"kafka_bootstrap": bootstrap})
        self._producer = make_producer(settings, client_id)
        self._topic = topic
        self._interval_s = interval_s
        self._service = service
        self._instance = f"{socket.gethostname()}:{os.getpid()}"
        self._next_at = 0.0
        self._feed_clock = FeedClock.from_settings(settings)
        self._feed_clock_retry_at = 0.0

    def _feed_now_ms(self, wall_ms: int) -> int:
        """The feed's clock, or the wall clock if it cannot be read."""
        from rtcrypto.exchange.feedclock import FeedClockError

        if time.monotonic() < self._feed_clock_retry_at:
            return wall_ms
        try:
            return self._feed_clock.now_ms()
        except FeedClockError:
            self._feed_clock_retry_at = time.monotonic() + FEED_CLOCK_RETRY_S
            return wall_ms

    def maybe_send(
        self, *, processed: int, watermark_ms: int | None, dead_letters: int = 0
    ) -> None:
        """Send a heartbeat if the interval has passed since the last one."""
        from rtcrypto.market.schemas import Heartbeat

        now = time.monotonic()
        if now < self._next_at:
            return
        self._next_at = now + self._interval_s
        now_ms = time.time_ns() // 1_000_000
        beat = Heartbeat(
            service=self._service,
            instance=self._instance,
            ts_ms=now_ms,
            processed=processed,
            last_event_ms=watermark_ms,
            lag_ms=None
            if watermark_ms is None
            else max(0, self._feed_now_ms(now_ms) - watermark_ms),
            dead_letters=dead_letters,
        )
        self._producer.send(self._topic, self._service.encode(), beat.to_bytes())
