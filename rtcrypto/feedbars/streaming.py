"""The bars query (Spark Structured Streaming) and the job's run loop.

Input: one Kafka source subscribed to ``gemini.trades.v1`` and ``gemini.orderbook.v1``. Of the
order-book topic only the ingest's ``book_depth`` records (the book's mid at each minute's last
millisecond) and ``tick`` records (event-time progress of a quiet market) are parsed: a cheap
substring test on the raw value drops the book changes before any JSON parsing.

One stateful operator: per symbol and 1-minute tumbling event-time window, the aggregates of
``rtcrypto.feedbars.model`` (first / last trade by ``(ts_event_ms, trade_id)``, high, low,
exact decimal volume, VWAP, trade count, the minute's latest mid). Append mode with a watermark
(``bars_watermark``): a window is emitted once, after the watermark passes its end. Each
micro-batch's windows are upserted into the history store by ``foreachBatch``
(``rtcrypto.feedbars.sink``); a batch re-run after a restart rewrites the same minutes, which
changes nothing. Malformed or unknown records feed no aggregate (the liquidity job dead-letters
the order-book topic; the ingest validates trades before writing them).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery
from pyspark.sql.types import DecimalType, DoubleType, LongType, StringType, StructField, StructType

from rtcrypto.feedbars.options import BARS_PROCESS, HEARTBEAT_SERVICE, QUERY_NAME, BarsJobOptions
from rtcrypto.feedbars.sink import BAR_COLUMNS, SinkTarget, write_bars
from rtcrypto.history.bars import MINUTE_MS
from rtcrypto.spark import driver, ui
from rtcrypto.spark.event_time import checked_event_time, event_time_reason
from rtcrypto.spark.heartbeat import SparkHeartbeats

log = logging.getLogger(HEARTBEAT_SERVICE)
VOLUME_DECIMAL = DecimalType(38, 18)  # trade amounts summed exactly, then rounded to double
EVENT_TIME_WINDOW_MS = 3_600_000  # the default of settings.event_time_window_s
OBSERVED = "event_times"  # the query's observed metric: rows whose event time was refused

INPUT_SCHEMA = StructType(
    [
        StructField("type", StringType()),
        StructField("symbol", StringType()),
        StructField("ts_event_ms", LongType()),
        StructField("trade_id", LongType()),
        StructField("price", StringType()),
        StructField("amount", StringType()),
        StructField("mid_price", DoubleType()),
    ]
)


# --------------------------------------------------------------------------------------------
# Column expressions (batch or streaming)
# --------------------------------------------------------------------------------------------


def relevant_records(raw: DataFrame, trades_topic: str) -> DataFrame:
    """Rows of ``raw`` (Kafka ``topic`` and string ``value``) the bars need: every trade-topic
    record, and the order-book topic's ``book_depth`` and ``tick`` records (by substring)."""
    value = F.col("value")
    return raw.where(
        (F.col("topic") == trades_topic) | value.contains('"book_depth"') | value.contains('"tick"')
    )


def _positive_finite(number: Column) -> Column:
    return F.when((number > 0) & (number != F.lit(float("inf"))) & ~F.isnan(number), number)


def parse_records(raw: DataFrame, event_time_window_ms: int = EVENT_TIME_WINDOW_MS) -> DataFrame:
    """Typed columns: ``type, symbol, ts_event_ms, event_time, trade_id, price`` (double),
    ``amount`` (exact decimal), ``amount_double``, ``mid_price``; bad numbers become null.

    An event time more than ``event_time_window_ms`` after Kafka's ``timestamp`` (when ``raw``
    has one) or beyond Spark's timestamps gets a null ``event_time`` and its reason in
    ``event_time_reason`` (:mod:`rtcrypto.spark.event_time`): it moves no watermark and feeds no
    bar; the job counts and logs these rows.
    """
    record = F.from_json(F.col("value"), INPUT_SCHEMA)
    kafka_time = ["timestamp"] if "timestamp" in raw.columns else []
    parsed = raw.select(record.alias("r"), *kafka_time)
    reason = event_time_reason(
        F.col("r.ts_event_ms"), F.col("timestamp") if kafka_time else None, event_time_window_ms
    )
    price = _positive_finite(F.col("r.price").try_cast(DoubleType()))
    amount = F.col("r.amount").try_cast(VOLUME_DECIMAL)
    return parsed.select(
        F.col("r.type").alias("type"),
        F.col("r.symbol").alias("symbol"),
        F.col("r.ts_event_ms").alias("ts_event_ms"),
        checked_event_time(F.col("r.ts_event_ms"), reason).alias("event_time"),
        F.col("r.trade_id").alias("trade_id"),
        price.alias("price"),
        F.when(amount > 0, amount).alias("amount"),
        _positive_finite(F.col("r.mid_price")).alias("mid_price"),
        reason.alias("event_time_reason"),
    )


def build_bars(parsed: DataFrame, watermark: str | None = None) -> DataFrame:
    """One row per (symbol, minute) with ``BAR_COLUMNS`` (see ``rtcrypto.feedbars.model``).

    The watermark is set on every parsed row, so ticks and mids advance it too. Record kinds are
    told apart inside conditional aggregates (no filter between the watermark and the aggregate,
    which Spark would push below it). Windows with neither a trade nor a mid are dropped.
    """
    rows = parsed.withWatermark("event_time", watermark) if watermark else parsed
    is_trade = (
        (F.col("type") == "trade")
        & F.col("symbol").isNotNull()
        & F.col("price").isNotNull()
        & F.col("amount").isNotNull()
    )
    is_mid = (F.col("type") == "book_depth") & F.col("mid_price").isNotNull()
    trade_order = F.when(is_trade, F.struct("ts_event_ms", "trade_id"))  # nulls are skipped
    windows = rows.groupBy(
        F.window("event_time", f"{MINUTE_MS // 1000} seconds").alias("window"), "symbol"
    ).agg(
        F.min_by("price", trade_order).alias("first_price"),
        F.max_by("price", trade_order).alias("last_price"),
        F.max(F.when(is_trade, F.col("price"))).alias("high_price"),
        F.min(F.when(is_trade, F.col("price"))).alias("low_price"),
        F.sum(F.when(is_trade, F.col("amount"))).alias("volume_exact"),
        F.sum(F.when(is_trade, F.col("price") * F.col("amount").cast(DoubleType()))).alias(
            "notional"
        ),
        F.count(F.when(is_trade, 1)).alias("trades"),
        F.max_by("mid_price", F.when(is_mid, F.col("ts_event_ms"))).alias("mid"),
    )
    windows = windows.where(
        F.col("symbol").isNotNull() & ((F.col("trades") > 0) | F.col("mid").isNotNull())
    )
    return _bar_columns(windows)


def _bar_columns(windows: DataFrame) -> DataFrame:
    has_trades = F.col("trades") > 0
    volume = F.col("volume_exact").cast(DoubleType())
    columns = {
        "symbol": F.col("symbol"),
        "ts_ms": F.unix_millis(F.col("window.start")),
        "open": F.when(has_trades, F.col("first_price")).otherwise(F.col("mid")),
        "high": F.when(has_trades, F.col("high_price")).otherwise(F.col("mid")),
        "low": F.when(has_trades, F.col("low_price")).otherwise(F.col("mid")),
        "close": F.when(has_trades, F.col("last_price")).otherwise(F.col("mid")),
        "volume": F.when(has_trades, volume).otherwise(F.lit(0.0)),
        "weighted_price": F.when(has_trades, F.col("notional") / volume),
        "trades": F.col("trades"),
    }
    return windows.select(*(columns[name].alias(name) for name in BAR_COLUMNS))


# --------------------------------------------------------------------------------------------
# The streaming job
# --------------------------------------------------------------------------------------------


def read_inputs(spark: SparkSession, options: BarsJobOptions) -> DataFrame:
    """Both input topics as one stream of ``topic`` and string ``value``."""
    topics = f"{options.trades_topic},{options.orderbook_topic}"
    rows = driver.kafka_stream(
        spark, options.bootstrap, topics, options.starting_offsets, options.max_offsets_per_trigger
    )
    return rows.select("topic", F.col("value").cast("string").alias("value"), "timestamp")


@dataclass
class BatchStats:
    """What the query's batches wrote so far (read by the heartbeat and the progress log)."""

    batches: int = 0
    bars_written: int = 0
    input_rows: int = 0
    watermark_ms: int | None = None
    last_batch_logged: int = -1
    refused_event_times: int = 0  # rows whose event time was out of range (not used)


def start_query(spark: SparkSession, options: BarsJobOptions, stats: BatchStats) -> StreamingQuery:
    """Start the bars query: windows -> ``foreachBatch`` upsert into the history store."""
    raw = read_inputs(spark, options)
    window_ms = int(options.event_time_window_s * 1000)
    parsed = parse_records(relevant_records(raw, options.trades_topic), window_ms)
    counted = parsed.observe(OBSERVED, F.count(F.col("event_time_reason")).alias("refused"))
    bars = build_bars(counted, options.watermark)
    target = SinkTarget(
        history_dir=options.history_dir,
        feed_source=options.feed_source,
        traded_symbol=options.traded_symbol,
        origin=f"kafka:{options.trades_topic}",
    )

    def upsert_batch(batch: DataFrame, batch_id: int) -> None:
        rows = [row.asDict() for row in batch.collect()]
        if rows:
            write_bars(rows, target)
            log.info("batch=%s bars=%d upserted", batch_id, len(rows))
        stats.batches += 1
        stats.bars_written += len(rows)

    return (
        bars.writeStream.queryName(QUERY_NAME)
        .outputMode("append")
        .foreachBatch(upsert_batch)
        .option("checkpointLocation", str(options.checkpoint / QUERY_NAME))
        .trigger(processingTime=options.trigger)
        .start()
    )


def _refused_event_times(progress: Any) -> int:
    """The batch's count of refused event times (the observed metric; a Row or a dict)."""
    row = (progress.get("observedMetrics") or {}).get(OBSERVED)
    try:
        return int(row["refused"] or 0) if row is not None else 0
    except (KeyError, TypeError, ValueError):
        return 0


def update_stats(query: StreamingQuery, stats: BatchStats) -> None:
    """Fold the query's new progress reports into ``stats``."""
    for progress in query.recentProgress:
        batch_id = int(progress["batchId"])
        if batch_id <= stats.last_batch_logged:
            continue
        if stats.last_batch_logged < 0:
            log.info(
                "first batch done batch=%s input_rows=%s", batch_id, progress.get("numInputRows")
            )
        stats.last_batch_logged = batch_id
        stats.input_rows += int(progress.get("numInputRows") or 0)
        refused = _refused_event_times(progress)
        if refused:
            stats.refused_event_times += refused
            log.warning(
                "batch=%s refused_event_times=%d total=%d: event times more than the window "
                "after their Kafka time, or beyond Spark's timestamps (RTC_EVENT_TIME_WINDOW_S)",
                batch_id,
                refused,
                stats.refused_event_times,
            )
        stats.watermark_ms = driver.watermark_ms(progress) or stats.watermark_ms


def run(options: BarsJobOptions) -> int:
    """Start the query and watch it until a signal or a failure; return the exit code."""
    started = driver.start_driver(BARS_PROCESS, HEARTBEAT_SERVICE, log)
    stop, spark, settings = started.stop, started.spark, started.settings
    log.info(
        "starting trades=%s orderbook=%s history=%s source=%s checkpoint=%s trigger=%s "
        "watermark=%s starting_offsets=%s bootstrap=%s spark=%s ui=%s",
        options.trades_topic,
        options.orderbook_topic,
        options.history_dir,
        options.feed_source,
        options.checkpoint,
        options.trigger,
        options.watermark,
        options.starting_offsets,
        options.bootstrap,
        spark.version,
        started.ui_address(),
    )
    stats = BatchStats()
    query = start_query(spark, options, stats)
    log.info("query started name=%s id=%s run_id=%s", query.name, query.id, query.runId)
    failed = _watch(spark, query, stop, stats, options)
    ui.forget_ui_address(BARS_PROCESS, settings)
    _shutdown(spark, query)
    exit_code = 1 if failed and not stop.is_set() else 0
    log.info("stopped exit_code=%s bars_written=%d", exit_code, stats.bars_written)
    return exit_code


def _watch(
    spark: SparkSession,
    query: StreamingQuery,
    stop: threading.Event,
    stats: BatchStats,
    options: BarsJobOptions,
) -> bool:
    """Heartbeats and progress until ``stop`` or the query ends; True if it ended on its own."""
    heartbeat = SparkHeartbeats.from_options(
        options, service=HEARTBEAT_SERVICE, client_id="rtc-bars-heartbeat"
    )
    next_summary = time.monotonic() + options.progress_interval_s
    try:
        while not stop.is_set():
            if spark.streams.awaitAnyTermination(1):
                log.error("the query terminated without a stop request: %s", query.exception())
                return True
            update_stats(query, stats)
            if heartbeat is not None:
                heartbeat.maybe_send(
                    processed=stats.input_rows,
                    watermark_ms=stats.watermark_ms,
                    dead_letters=stats.refused_event_times,
                )
            if time.monotonic() >= next_summary:
                next_summary = time.monotonic() + options.progress_interval_s
                log.info(
                    "progress batches=%d input_rows=%d bars_written=%d watermark_ms=%s",
                    stats.batches,
                    stats.input_rows,
                    stats.bars_written,
                    stats.watermark_ms,
                )
    except Exception as error:  # the query's failure, or the JVM going away under a group stop
        if not stop.is_set():
            log.exception("query failed")
            return True
        log.info("driver JVM is stopping too: %s", type(error).__name__)
    return False


def _shutdown(spark: SparkSession, query: StreamingQuery) -> None:
    """Stop the query and the session; exit hard if the JVM stops answering meanwhile."""
    watchdog = driver.start_watchdog(log)
    try:
        if spark.sparkContext._jsc.sc().isStopped():
            return
        if query.isActive:
            query.stop()  # the commit log stays consistent: a batch commits after its upsert
        spark.stop()
    except Exception as error:  # the JVM may be going down at the same time
        log.warning("stop failed: %s", str(error).splitlines()[0] if str(error) else error)
        return
    watchdog.cancel()
