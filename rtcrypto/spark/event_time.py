"""The event-time check of the Spark jobs as column expressions (the liquidity and bars jobs).

Mirrors :func:`rtcrypto.market.liquidity.event_time_problem`: an event time more than the window
(``RTC_EVENT_TIME_WINDOW_S``) after the record's Kafka timestamp, or outside what Spark's
timestamps hold, would move the watermark (every later window dropped as late) or fail
``timestamp_millis`` on every restart. Such a row keeps its data but gets a null ``event_time``:
it moves no watermark, and the window aggregate drops it (Spark filters null window times).
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from rtcrypto.market.liquidity import MAX_EVENT_MS


def event_time_reason(
    ts_event_ms: Column, kafka_timestamp: Column | None, window_ms: int
) -> Column:
    """The reason (string) why ``ts_event_ms`` (long, epoch ms) is unusable, else null."""
    out_of_range = (ts_event_ms < F.lit(0)) | (ts_event_ms > F.lit(MAX_EVENT_MS))
    reason = F.when(
        out_of_range,
        F.format_string(f"ts_event_ms %d is outside [0, {MAX_EVENT_MS}]", ts_event_ms),
    )
    if kafka_timestamp is None:
        return reason
    receive_ms = F.unix_millis(kafka_timestamp)
    return reason.when(
        ts_event_ms > receive_ms + F.lit(window_ms),
        F.format_string(
            f"ts_event_ms %d is more than {window_ms // 1000} s after the record's Kafka time %d",
            ts_event_ms,
            receive_ms,
        ),
    )


def checked_event_time(ts_event_ms: Column, reason: Column) -> Column:
    """``timestamp_millis(ts_event_ms)`` where ``reason`` is null, else null (never overflows:
    ``timestamp_millis`` only sees the rows that passed)."""
    return F.when(reason.isNull(), F.timestamp_millis(ts_event_ms))
