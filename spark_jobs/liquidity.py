"""Spark Structured Streaming job: ``gemini.orderbook.v1`` -> ``liquidity.minute.v1``.

Run it with spark-submit; ``rtc liquidity run`` builds the command (``rtcrypto/spark/submit.py``)::

    spark-submit --jars <kafka connector jars> spark_jobs/liquidity.py --bootstrap 127.0.0.1:9092

Per symbol and 1-minute tumbling event-time window it writes one JSON record, Kafka key
``"<symbol>:<window_start_ms>"`` (schema_version 1)::

    schema_version, type="liquidity", key, symbol,
    window_start_ms, window_end_ms (UTC ms, end exclusive), window_start, window_end (ISO, "Z"),
    ts_event_ms = window_end_ms - 1 (the window's last ms, so the record lies in its window),
    bid_price_weighted_volume, ask_price_weighted_volume   sum of price x remaining (USD) over
                                                           the window's change events per side,
    liquidity_ratio = ask / bid (null when bid is 0), event_count (change events),
    mid_price, bid_depth, ask_depth, depth_imbalance, depth_band_pct   from the window's latest
        book_depth record (the ingest's book at minute end; all null if the window had none),
    emitted_at_ms  time of the micro-batch that wrote it (the only field a replay may change).

``tick`` records only move event time forward, so a quiet market still closes its windows; a
window with ticks only is not written. One stateful operator (the windowed aggregate, append
mode: each window is written once, after the watermark passes its end). A second, stateless
query writes malformed input to ``deadletter.v1`` (fields of ``rtcrypto.market.schemas.DeadLetter``).
Both checkpoint under ``--checkpoint`` (``liquidity/`` and ``deadletter/``); a restart resumes
after the last committed batch. SIGTERM / SIGINT stop the queries between batches.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

from rtcrypto.market.liquidity import WINDOW_MS
from rtcrypto.market.schemas import SCHEMA_VERSION
from rtcrypto.spark.event_time import checked_event_time, event_time_reason
from rtcrypto.spark.heartbeat import SparkHeartbeats

SERVICE = "spark-liquidity"
KNOWN_TYPES = ("change", "tick", "book_depth")
STOP_GRACE_S = 20.0  # after a stop request, exit even if the JVM stops answering
ISO_UTC_FORMAT = "yyyy-MM-dd'T'HH:mm:ssXXX"  # XXX prints "Z" in the job's UTC session
EVENT_TIME_WINDOW_MS = 3_600_000  # the default of settings.event_time_window_s

# The union of the fields of every record type on gemini.orderbook.v1 that the job reads.
# Prices and sizes of a change stay strings here and are cast on purpose (try_cast) so a bad
# value becomes a dead letter instead of failing the query under ANSI mode.
ORDERBOOK_SCHEMA = StructType(
    [
        StructField("schema_version", LongType()),
        StructField("type", StringType()),
        StructField("symbol", StringType()),
        StructField("side", StringType()),
        StructField("price", StringType()),
        StructField("remaining", StringType()),
        StructField("ts_event_ms", LongType()),
        StructField("window_start_ms", LongType()),
        StructField("mid_price", DoubleType()),
        StructField("bid_depth", DoubleType()),
        StructField("ask_depth", DoubleType()),
        StructField("depth_imbalance", DoubleType()),
        StructField("band_pct", DoubleType()),
    ]
)

# Field order of a liquidity.minute.v1 record (schema_version 1).
LIQUIDITY_FIELDS = (
    "schema_version",
    "type",
    "key",
    "symbol",
    "window_start_ms",
    "window_end_ms",
    "window_start",
    "window_end",
    "ts_event_ms",
    "bid_price_weighted_volume",
    "ask_price_weighted_volume",
    "liquidity_ratio",
    "event_count",
    "mid_price",
    "bid_depth",
    "ask_depth",
    "depth_imbalance",
    "depth_band_pct",
    "emitted_at_ms",
)

log = logging.getLogger(SERVICE)


# --------------------------------------------------------------------------------------------
# Column expressions (batch or streaming)
# --------------------------------------------------------------------------------------------


def _finite_decimal(text: Column) -> Column:
    """A decimal string as a double; null when it is missing, not a number, NaN or infinite."""
    number = text.try_cast(DoubleType())
    return F.when(~F.isnan(number) & (F.abs(number) != F.lit(float("inf"))), number)


def _malformed_reason(raw_value: Column, record: Column, event_time_reason: Column) -> Column:
    """Why a record cannot be used (null when it can). Unknown ``type`` values are not malformed."""
    is_change = record["type"] == "change"
    return (
        F.when(raw_value.isNull(), F.lit("empty value"))
        .when(F.json_object_keys(raw_value).isNull(), F.lit("not a JSON object"))
        .when(record["type"].isNull(), F.lit("missing type"))
        .when(
            record["type"].isin(*KNOWN_TYPES)
            & (record["symbol"].isNull() | record["ts_event_ms"].isNull()),
            F.lit("missing symbol or ts_event_ms"),
        )
        .when(event_time_reason.isNotNull(), event_time_reason)
        .when(
            is_change & ~F.coalesce(record["side"].isin("bid", "ask"), F.lit(False)),
            F.lit("change: side must be bid or ask"),
        )
        .when(
            is_change & _finite_decimal(record["price"]).isNull(),
            F.lit("change: price is not a decimal"),
        )
        .when(
            is_change & _finite_decimal(record["remaining"]).isNull(),
            F.lit("change: remaining is not a decimal"),
        )
    )


def parse_orderbook(raw: DataFrame, event_time_window_ms: int = EVENT_TIME_WINDOW_MS) -> DataFrame:
    """Parse raw ``gemini.orderbook.v1`` values into typed columns.

    ``raw`` needs a string column ``value`` (the JSON record); any other columns (Kafka's
    ``topic``, ``partition``, ``offset``, ``timestamp``) are kept. Adds ``type``, ``symbol``,
    ``side``, ``price`` and ``remaining`` (doubles), ``ts_event_ms``, ``event_time`` (timestamp),
    the depth fields, and ``malformed_reason`` (null for a usable record).

    An event time more than ``event_time_window_ms`` after Kafka's ``timestamp`` (when ``raw``
    has one), or beyond what Spark's timestamps hold, gets a null ``event_time`` (it moves no
    watermark and feeds no window) and a ``malformed_reason`` (it is dead-lettered):
    :mod:`rtcrypto.spark.event_time`.
    """
    record = F.from_json(F.col("value"), ORDERBOOK_SCHEMA)
    parsed = raw.withColumn("record", record)
    kafka_time = F.col("timestamp") if "timestamp" in raw.columns else None
    time_reason = event_time_reason(F.col("record.ts_event_ms"), kafka_time, event_time_window_ms)
    return parsed.select(
        *raw.columns,
        F.col("record.type").alias("type"),
        F.col("record.symbol").alias("symbol"),
        F.col("record.side").alias("side"),
        _finite_decimal(F.col("record.price")).alias("price"),
        _finite_decimal(F.col("record.remaining")).alias("remaining"),
        F.col("record.ts_event_ms").alias("ts_event_ms"),
        checked_event_time(F.col("record.ts_event_ms"), time_reason).alias("event_time"),
        F.col("record.mid_price").alias("mid_price"),
        F.col("record.bid_depth").alias("bid_depth"),
        F.col("record.ask_depth").alias("ask_depth"),
        F.col("record.depth_imbalance").alias("depth_imbalance"),
        F.col("record.band_pct").alias("band_pct"),
        _malformed_reason(F.col("value"), F.col("record"), time_reason).alias("malformed_reason"),
    )


def build_liquidity(parsed: DataFrame, watermark: str | None = None) -> DataFrame:
    """One row per (symbol, 1-minute window) with the fields of ``liquidity.minute.v1``.

    ``parsed`` is the output of ``parse_orderbook``, batch or streaming, malformed rows included.
    With ``watermark`` (e.g. ``"2 seconds"``) the event-time watermark is set first, on every
    row, so ticks advance it. Nothing is filtered between the parse and the aggregate: Spark
    pushes a filter that does not read the event-time column below the watermark (ticks would
    then stop advancing it) and re-parses the JSON for each pushed predicate. Record types are
    told apart inside conditional aggregates instead; rows that feed none of them (ticks,
    unknown types, malformed records) only move event time.

    Money is in quote currency (USD). The output's ``ts_event_ms`` is the window's last
    millisecond (``window_end_ms - 1``), so it falls inside the window it describes, like the
    ingest's ``book_depth`` records. A window with neither a change nor a depth record (ticks
    only) is not emitted.
    """
    rows = parsed.withWatermark("event_time", watermark) if watermark else parsed
    has_symbol = F.col("symbol").isNotNull()
    is_change = (
        has_symbol
        & (F.col("type") == "change")
        & F.col("price").isNotNull()
        & F.col("remaining").isNotNull()
    )
    is_book_depth = has_symbol & (F.col("type") == "book_depth")
    price_x_remaining = F.col("price") * F.col("remaining")
    latest_depth = F.max_by(
        F.struct("mid_price", "bid_depth", "ask_depth", "depth_imbalance", "band_pct"),
        F.when(is_book_depth, F.col("ts_event_ms")),  # max_by skips null orderings
    )
    windows = rows.groupBy(
        F.window("event_time", f"{WINDOW_MS // 1000} seconds").alias("window"), "symbol"
    ).agg(
        F.sum(F.when(is_change & (F.col("side") == "bid"), price_x_remaining)).alias("bid_pwv"),
        F.sum(F.when(is_change & (F.col("side") == "ask"), price_x_remaining)).alias("ask_pwv"),
        F.count(F.when(is_change & F.col("side").isin("bid", "ask"), 1)).alias("event_count"),
        latest_depth.alias("depth"),
    )
    windows = windows.where((F.col("event_count") > 0) | F.col("depth").isNotNull())
    return _liquidity_columns(windows)


def _liquidity_columns(windows: DataFrame) -> DataFrame:
    """Name, type and order the aggregate's columns as a ``liquidity.minute.v1`` record."""
    bid = F.coalesce(F.col("bid_pwv"), F.lit(0.0))
    ask = F.coalesce(F.col("ask_pwv"), F.lit(0.0))
    start_ms = F.unix_millis(F.col("window.start"))
    end_ms = F.unix_millis(F.col("window.end"))
    columns = {
        "schema_version": F.lit(SCHEMA_VERSION),
        "type": F.lit("liquidity"),
        "key": F.concat_ws(":", F.col("symbol"), start_ms.cast("string")),
        "symbol": F.col("symbol"),
        "window_start_ms": start_ms,
        "window_end_ms": end_ms,
        "window_start": F.date_format(F.col("window.start"), ISO_UTC_FORMAT),
        "window_end": F.date_format(F.col("window.end"), ISO_UTC_FORMAT),
        "ts_event_ms": end_ms - 1,
        "bid_price_weighted_volume": bid,
        "ask_price_weighted_volume": ask,
        "liquidity_ratio": F.when(bid != 0, ask / bid).cast(DoubleType()),
        "event_count": F.col("event_count"),
        "mid_price": F.col("depth.mid_price"),
        "bid_depth": F.col("depth.bid_depth"),
        "ask_depth": F.col("depth.ask_depth"),
        "depth_imbalance": F.col("depth.depth_imbalance"),
        "depth_band_pct": F.col("depth.band_pct"),
        # Batch time of the micro-batch that wrote the window; the only field a replay changes.
        "emitted_at_ms": F.unix_millis(F.current_timestamp()),
    }
    return windows.select(*(columns[name].alias(name) for name in LIQUIDITY_FIELDS))


def to_kafka_records(liquidity: DataFrame) -> DataFrame:
    """``key`` = ``symbol:window_start_ms`` and ``value`` = the record as JSON (nulls kept)."""
    return liquidity.select(
        F.col("key"),
        F.to_json(F.struct(*LIQUIDITY_FIELDS), {"ignoreNullFields": "false"}).alias("value"),
    )


def build_dead_letters(parsed: DataFrame, source_topic: str) -> DataFrame:
    """Kafka records for ``deadletter.v1`` (fields of ``rtcrypto.market.schemas.DeadLetter``).

    ``parsed`` must carry Kafka's ``partition``, ``offset`` and ``timestamp`` columns. The key
    names the input position, so a replayed batch rewrites the same dead letters.
    """
    bad = parsed.where(F.col("malformed_reason").isNotNull())
    value = F.struct(
        F.lit(SERVICE).alias("service"),
        F.col("malformed_reason").alias("reason"),
        F.coalesce(F.col("value"), F.lit("")).alias("raw"),
        F.lit(source_topic).alias("source"),
        F.unix_millis(F.col("timestamp")).alias("ts_receive_ms"),
        F.lit("deadletter").alias("type"),
        F.lit(SCHEMA_VERSION).alias("schema_version"),
    )
    key = F.concat_ws(":", F.lit(SERVICE), F.lit(source_topic), F.col("partition"), F.col("offset"))
    return bad.select(key.alias("key"), F.to_json(value).alias("value"))


# --------------------------------------------------------------------------------------------
# The streaming job
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobOptions:
    """Command-line options of the job (see ``parse_args``)."""

    bootstrap: str
    input_topic: str
    output_topic: str
    deadletter_topic: str
    checkpoint: Path
    starting_offsets: str
    trigger: str
    watermark: str
    progress_interval_s: float
    max_offsets_per_trigger: int | None = None
    heartbeat_topic: str = ""
    heartbeat_interval_s: float = 5.0
    event_time_window_s: float = EVENT_TIME_WINDOW_MS / 1000


def parse_args(argv: Sequence[str] | None = None) -> JobOptions:
    """Options from the command line; defaults from ``rtcrypto.config`` (``RTC_*`` variables)."""
    from rtcrypto.config import settings_or_exit  # defaults only; the job needs nothing else

    settings = settings_or_exit()
    parser = argparse.ArgumentParser(prog="liquidity.py", description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=settings.kafka_bootstrap)
    parser.add_argument("--input-topic", default=settings.topics.orderbook)
    parser.add_argument("--output-topic", default=settings.topics.liquidity)
    parser.add_argument(
        "--deadletter-topic",
        default=settings.topics.deadletter,
        help="malformed input goes here; '' disables the dead-letter query",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=settings.run_dir / "checkpoints" / "liquidity",
        help="root of the queries' checkpoints (never reuse it with other topics)",
    )
    parser.add_argument("--starting-offsets", default=settings.spark_starting_offsets)
    parser.add_argument("--trigger", default=settings.spark_trigger, help="e.g. '1 second'")
    parser.add_argument("--watermark", default=settings.spark_watermark, help="e.g. '2 seconds'")
    parser.add_argument("--progress-interval", type=float, default=30.0, dest="progress_interval")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=None)
    parser.add_argument(
        "--heartbeat-topic",
        default=settings.topics.heartbeat,
        help="service heartbeats for the supervisor; '' disables them",
    )
    parser.add_argument("--heartbeat-interval", type=float, default=settings.heartbeat_interval_s)
    parser.add_argument(
        "--event-time-window-s",
        type=float,
        default=settings.event_time_window_s,
        help="event times more than this after the Kafka time are dead-lettered",
    )
    args = parser.parse_args(argv)
    if args.event_time_window_s <= 0:
        parser.error("--event-time-window-s must be > 0 (RTC_EVENT_TIME_WINDOW_S)")
    return JobOptions(
        bootstrap=args.bootstrap,
        input_topic=args.input_topic,
        output_topic=args.output_topic,
        deadletter_topic=args.deadletter_topic,
        checkpoint=args.checkpoint,
        starting_offsets=args.starting_offsets,
        trigger=args.trigger,
        watermark=args.watermark,
        progress_interval_s=args.progress_interval,
        max_offsets_per_trigger=args.max_offsets_per_trigger,
        heartbeat_topic=args.heartbeat_topic,
        heartbeat_interval_s=args.heartbeat_interval,
        event_time_window_s=args.event_time_window_s,
    )


def create_session(app_name: str = SERVICE) -> SparkSession:
    """The job's session; the master and jars come from spark-submit."""
    return (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


def read_orderbook_stream(spark: SparkSession, options: JobOptions) -> DataFrame:
    """The input topic as a stream of Kafka rows with ``value`` decoded to a string."""
    # failOnDataLoss=false: when retention deleted offsets the checkpoint still points at, skip
    # ahead (those minutes are lost either way) instead of stopping the job.
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", options.bootstrap)
        .option("subscribe", options.input_topic)
        .option("startingOffsets", options.starting_offsets)
        .option("failOnDataLoss", "false")
    )
    if options.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", options.max_offsets_per_trigger)
    kafka_rows = reader.load()
    return kafka_rows.select(
        F.col("value").cast("string").alias("value"),
        "topic",
        "partition",
        "offset",
        "timestamp",
    )


def _write_to_kafka(
    records: DataFrame, name: str, topic: str, options: JobOptions
) -> StreamingQuery:
    """Start query ``name``: append ``records`` to ``topic``, checkpointed under its own folder."""
    return (
        records.writeStream.queryName(name)
        .format("kafka")
        .option("kafka.bootstrap.servers", options.bootstrap)
        .option("topic", topic)
        .option("checkpointLocation", str(options.checkpoint / name))
        .outputMode("append")
        .trigger(processingTime=options.trigger)
        .start()
    )


def start_liquidity_query(parsed: DataFrame, options: JobOptions) -> StreamingQuery:
    """The windowed aggregate, written once per window to the output topic."""
    liquidity = build_liquidity(parsed, watermark=options.watermark)
    return _write_to_kafka(to_kafka_records(liquidity), "liquidity", options.output_topic, options)


def start_deadletter_query(parsed: DataFrame, options: JobOptions) -> StreamingQuery:
    """The stateless side query that forwards malformed records to the dead-letter topic."""
    dead_letters = build_dead_letters(parsed, options.input_topic)
    return _write_to_kafka(dead_letters, "deadletter", options.deadletter_topic, options)


@dataclass(slots=True)
class ProgressLog:
    """Remembers what was logged so each batch that wrote windows is logged once."""

    started_at: float
    last_batch: dict[str, int] = field(default_factory=dict)
    first_batch_logged: bool = False
    last_summary_at: float = 0.0
    input_rows: int = 0  # change/tick/depth records read by the liquidity query so far
    dead_letters: int = 0
    watermark_ms: int | None = None


def _log_progress(queries: Sequence[StreamingQuery], state: ProgressLog, interval_s: float) -> None:
    """Log the first batch, every batch that wrote windows, and a summary every ``interval_s``."""
    now = time.monotonic()
    for query in queries:
        name = query.name or str(query.id)
        for progress in query.recentProgress:
            batch_id = int(progress["batchId"])
            if batch_id <= state.last_batch.get(name, -1):
                continue
            state.last_batch[name] = batch_id
            _log_batch(name, progress, state)
    if now - state.last_summary_at >= interval_s:
        state.last_summary_at = now
        for query in queries:
            latest = query.lastProgress
            if latest:
                _log_summary(query.name or str(query.id), latest)


def _state_metric(progress: dict[str, Any], metric: str) -> int:
    return sum(int(operator.get(metric, 0)) for operator in progress.get("stateOperators", []))


def _watermark_ms(progress: dict[str, Any]) -> int | None:
    """The batch's watermark as UTC ms (Spark reports ISO text; the epoch means none yet)."""
    text = progress.get("eventTime", {}).get("watermark")
    if not text:
        return None
    from datetime import datetime

    value = int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    return value or None


def _log_batch(name: str, progress: dict[str, Any], state: ProgressLog) -> None:
    output_rows = int(progress.get("sink", {}).get("numOutputRows", 0) or 0)
    if name == "liquidity":
        state.input_rows += int(progress.get("numInputRows") or 0)
        state.watermark_ms = _watermark_ms(progress) or state.watermark_ms
    elif name == "deadletter":
        state.dead_letters += output_rows
    if name == "liquidity" and not state.first_batch_logged:
        state.first_batch_logged = True
        log.info(
            "first batch done query=%s batch=%s input_rows=%s startup_s=%.1f",
            name,
            progress["batchId"],
            progress.get("numInputRows"),
            time.monotonic() - state.started_at,
        )
    if name == "liquidity" and output_rows > 0:
        log.info(
            "windows written batch=%s windows=%s watermark=%s",
            progress["batchId"],
            output_rows,
            progress.get("eventTime", {}).get("watermark"),
        )
    elif name == "deadletter" and output_rows > 0:
        log.warning("dead letters written batch=%s records=%s", progress["batchId"], output_rows)


def _log_summary(name: str, progress: dict[str, Any]) -> None:
    log.info(
        "progress query=%s batch=%s input_rows=%s input_per_s=%.1f processed_per_s=%.1f "
        "trigger_ms=%s watermark=%s state_rows=%s dropped_late=%s",
        name,
        progress.get("batchId"),
        progress.get("numInputRows"),
        float(progress.get("inputRowsPerSecond") or 0.0),
        float(progress.get("processedRowsPerSecond") or 0.0),
        progress.get("durationMs", {}).get("triggerExecution"),
        progress.get("eventTime", {}).get("watermark"),
        _state_metric(progress, "numRowsTotal"),
        _state_metric(progress, "numRowsDroppedByWatermark"),
    )


def _install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM / SIGINT ask the main loop to stop the queries between batches."""

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested signal=%s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def run(options: JobOptions) -> int:
    """Start the queries and watch them until a signal or a failure; return the exit code."""
    started_at = time.monotonic()
    stop = threading.Event()
    _install_stop_handlers(stop)
    spark = create_session()
    spark.sparkContext.setLogLevel("WARN")
    log.info(
        "starting input=%s output=%s deadletter=%s checkpoint=%s starting_offsets=%s "
        "trigger=%s watermark=%s bootstrap=%s spark=%s",
        options.input_topic,
        options.output_topic,
        options.deadletter_topic or "-",
        options.checkpoint,
        options.starting_offsets,
        options.trigger,
        options.watermark,
        options.bootstrap,
        spark.version,
    )
    log.info("failOnDataLoss=false: offsets lost to retention are skipped, not fatal")
    log.info(
        "event times more than %g s after their Kafka time are dead-lettered",
        options.event_time_window_s,
    )
    window_ms = int(options.event_time_window_s * 1000)
    parsed = parse_orderbook(read_orderbook_stream(spark, options), window_ms)
    queries = [start_liquidity_query(parsed, options)]
    if options.deadletter_topic:
        queries.append(start_deadletter_query(parsed, options))
    for query in queries:
        log.info("query started name=%s id=%s run_id=%s", query.name, query.id, query.runId)
    failed = _watch(
        spark, queries, stop, ProgressLog(started_at, last_summary_at=started_at), options
    )
    _shutdown(spark, queries)
    exit_code = 1 if failed and not stop.is_set() else 0
    log.info("stopped exit_code=%s", exit_code)
    return exit_code


def _watch(
    spark: SparkSession,
    queries: Sequence[StreamingQuery],
    stop: threading.Event,
    progress: ProgressLog,
    options: JobOptions,
) -> bool:
    """Log progress until ``stop`` is set or a query ends; True if a query ended on its own."""
    heartbeat = (
        SparkHeartbeats(
            bootstrap=options.bootstrap,
            topic=options.heartbeat_topic,
            interval_s=options.heartbeat_interval_s,
            service=SERVICE,
            client_id="rtc-liquidity-heartbeat",
        )
        if options.heartbeat_topic
        else None
    )
    try:
        while not stop.is_set():
            if spark.streams.awaitAnyTermination(1):
                log.error("a query terminated without a stop request")
                return True
            _log_progress(queries, progress, options.progress_interval_s)
            if heartbeat is not None:
                heartbeat.maybe_send(
                    processed=progress.input_rows,
                    watermark_ms=progress.watermark_ms,
                    dead_letters=progress.dead_letters,
                )
    except Exception as error:  # the query's failure, or the JVM going away under a group stop
        if not stop.is_set():
            log.exception("query failed")
            return True
        log.info("driver JVM is stopping too: %s", type(error).__name__)
    return False


def _spark_context_stopped(spark: SparkSession) -> bool:
    """True when the driver JVM already stopped the context (it got the signal too)."""
    try:
        return bool(spark.sparkContext._jsc.sc().isStopped())
    except Exception:
        return True


def _shutdown(spark: SparkSession, queries: Sequence[StreamingQuery]) -> None:
    """Stop the queries and the session; exit hard if the JVM stops answering meanwhile.

    A process-group SIGTERM reaches the spark-submit JVM as well, whose shutdown hook stops the
    context while we stop the queries; py4j calls can then block forever. Checkpoints stay
    consistent either way (a batch is committed only after its output is written).
    """
    watchdog = threading.Timer(STOP_GRACE_S, _exit_now, args=(0,))
    watchdog.daemon = True
    watchdog.start()
    if _spark_context_stopped(spark):
        log.info("spark context already stopped by the driver JVM")
        return
    _stop_queries(queries)
    spark.stop()
    watchdog.cancel()


def _exit_now(code: int) -> None:
    log.warning("driver JVM did not answer within %.0f s, exiting", STOP_GRACE_S)
    logging.shutdown()
    os._exit(code)


def _stop_queries(queries: Sequence[StreamingQuery]) -> None:
    for query in queries:
        try:
            if query.isActive:
                query.stop()  # interrupts the running batch; the commit log stays consistent
                log.info("query stopped name=%s id=%s", query.name, query.id)
        except Exception as error:  # the JVM may be going down at the same time
            log.warning(
                "query stop failed name=%s error=%s", query.name, str(error).splitlines()[0]
            )
            return


def main(argv: Sequence[str] | None = None) -> int:
    from rtcrypto.logs import setup_logging

    setup_logging(SERVICE)
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
