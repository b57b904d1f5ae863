"""Spark Structured Streaming job: ``gemini.orderbook.v1`` -> ``liquidity.minute.v1``.

Run it with spark-submit; ``rtc liquidity run`` builds the command (``rtcrypto/spark/submit.py``)::

    spark-submit --jars <kafka connector jars> spark_jobs/liquidity.py --bootstrap 127.0.0.1:9092

Per symbol and 1-minute tumbling event-time window it writes one JSON record, Kafka key
``"<symbol>:<window_start_ms>"``: a ``liquidity.minute.v1`` record whose fields, types, units
and order are those of ``rtcrypto.market.schemas.LiquidityMinute`` (the trader parses it from the
same definition). The depth fields come from the window's latest ``book_depth`` record (the
ingest's book at minute end); ``emitted_at_ms`` is the only field a replay may change.

``tick`` records only move event time forward, so a quiet market still closes its windows; a
window with ticks only is not written. One stateful operator (the windowed aggregate, append
mode: each window is written once, after the watermark passes its end). A second, stateless
query writes malformed input to ``deadletter.v1`` (fields of ``rtcrypto.market.schemas.DeadLetter``).
Both checkpoint under ``--checkpoint`` (``liquidity/`` and ``deadletter/``); a restart resumes
after the last committed batch. SIGTERM / SIGINT stop the queries between batches. Options:
``rtcrypto.spark.submit.LiquidityJobConfig``; Kafka security settings come from ``Settings``.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

from rtcrypto.market.liquidity import WINDOW_MS
from rtcrypto.market.schemas import SCHEMA_VERSION, LiquidityMinute
from rtcrypto.spark import driver, ui
from rtcrypto.spark.contract import contract_columns, field_names
from rtcrypto.spark.event_time import checked_event_time, event_time_reason
from rtcrypto.spark.heartbeat import SparkHeartbeats
from rtcrypto.spark.options import parse_job_args
from rtcrypto.spark.progress import ProgressLog, log_progress
from rtcrypto.spark.submit import LIQUIDITY_PROCESS, SUBMIT_ONLY, LiquidityJobConfig

SERVICE = "spark-liquidity"
KNOWN_TYPES = ("change", "tick", "book_depth")
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

# Field order of a liquidity.minute.v1 record: the contract's.
LIQUIDITY_FIELDS = field_names(LiquidityMinute)

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


def build_liquidity(
    parsed: DataFrame, watermark: str | None = None, contract: type = LiquidityMinute
) -> DataFrame:
    """One row per (symbol, 1-minute window) with the fields of ``contract`` (``liquidity.minute.v1``).

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
    return windows.select(*contract_columns(_liquidity_columns(), contract))


def _liquidity_columns() -> Mapping[str, Column]:
    """The aggregate's columns as fields of a ``liquidity.minute.v1`` record; the contract
    orders and types them and fills ``schema_version`` and ``type`` (its defaults)."""
    bid = F.coalesce(F.col("bid_pwv"), F.lit(0.0))
    ask = F.coalesce(F.col("ask_pwv"), F.lit(0.0))
    start_ms = F.unix_millis(F.col("window.start"))
    end_ms = F.unix_millis(F.col("window.end"))
    columns = {
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
    return columns


def to_kafka_records(
    liquidity: DataFrame, contract: type = LiquidityMinute, partitions: int = 1
) -> DataFrame:
    """``key`` = ``symbol:window_start_ms`` and ``value`` = the record as JSON (nulls kept), its
    fields in the contract's order. With several ``partitions``, a ``partition`` column sends
    each symbol's windows to one partition (Spark's hash of the symbol), so they stay in order."""
    fields = field_names(contract)
    columns = [
        F.col("key"),
        F.to_json(F.struct(*fields), {"ignoreNullFields": "false"}).alias("value"),
    ]
    if partitions > 1:
        columns.append(F.pmod(F.hash(F.col("symbol")), F.lit(partitions)).alias("partition"))
    return liquidity.select(*columns)


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


def parse_args(argv: Sequence[str] | None = None) -> LiquidityJobConfig:
    """Options from the command line; defaults from ``rtcrypto.config`` (``RTC_*`` variables)."""
    from rtcrypto.config import settings_or_exit

    return parse_job_args(
        LiquidityJobConfig.from_settings(settings_or_exit()),
        argv,
        prog="liquidity.py",
        description=(__doc__ or "").splitlines()[0],
        skip=SUBMIT_ONLY,
    )


def read_orderbook_stream(spark: SparkSession, options: LiquidityJobConfig) -> DataFrame:
    """The input topic as a stream of Kafka rows with ``value`` decoded to a string."""
    kafka_rows = driver.kafka_stream(
        spark,
        options.bootstrap,
        options.input_topic,
        options.starting_offsets,
        options.max_offsets_per_trigger,
    )
    return kafka_rows.select(
        F.col("value").cast("string").alias("value"),
        "topic",
        "partition",
        "offset",
        "timestamp",
    )


def _write_to_kafka(
    records: DataFrame, name: str, topic: str, options: LiquidityJobConfig
) -> StreamingQuery:
    """Start query ``name``: append ``records`` to ``topic``, checkpointed under its own folder."""
    return (
        records.writeStream.queryName(name)
        .format("kafka")
        .options(**driver.kafka_options(options.bootstrap))
        .option("topic", topic)
        .option("checkpointLocation", str(options.checkpoint / name))
        .outputMode("append")
        .trigger(processingTime=options.trigger)
        .start()
    )


def start_liquidity_query(parsed: DataFrame, options: LiquidityJobConfig) -> StreamingQuery:
    """The windowed aggregate, written once per window to the output topic."""
    liquidity = build_liquidity(parsed, watermark=options.watermark)
    records = to_kafka_records(liquidity, partitions=options.output_partitions)
    return _write_to_kafka(records, "liquidity", options.output_topic, options)


def start_deadletter_query(parsed: DataFrame, options: LiquidityJobConfig) -> StreamingQuery:
    """The stateless side query that forwards malformed records to the dead-letter topic."""
    dead_letters = build_dead_letters(parsed, options.input_topic)
    return _write_to_kafka(dead_letters, "deadletter", options.deadletter_topic, options)


def run(options: LiquidityJobConfig) -> int:
    """Start the queries and watch them until a signal or a failure; return the exit code."""
    started_at = time.monotonic()
    started = driver.start_driver(LIQUIDITY_PROCESS, SERVICE, log)
    stop, spark, settings = started.stop, started.spark, started.settings
    log.info(
        "starting input=%s output=%s deadletter=%s checkpoint=%s starting_offsets=%s "
        "trigger=%s watermark=%s bootstrap=%s spark=%s ui=%s",
        options.input_topic,
        options.output_topic,
        options.deadletter_topic or "-",
        options.checkpoint,
        options.starting_offsets,
        options.trigger,
        options.watermark,
        options.bootstrap,
        spark.version,
        started.ui_address(),
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
    ui.forget_ui_address(LIQUIDITY_PROCESS, settings)
    _shutdown(spark, queries)
    exit_code = 1 if failed and not stop.is_set() else 0
    log.info("stopped exit_code=%s", exit_code)
    return exit_code


def _watch(
    spark: SparkSession,
    queries: Sequence[StreamingQuery],
    stop: threading.Event,
    progress: ProgressLog,
    options: LiquidityJobConfig,
) -> bool:
    """Log progress until ``stop`` is set or a query ends; True if a query ended on its own."""
    heartbeat = SparkHeartbeats.from_options(
        options, service=SERVICE, client_id="rtc-liquidity-heartbeat"
    )
    try:
        while not stop.is_set():
            if spark.streams.awaitAnyTermination(1):
                log.error("a query terminated without a stop request")
                return True
            log_progress(queries, progress, options.progress_interval_s, log)
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
    watchdog = driver.start_watchdog(log)
    if _spark_context_stopped(spark):
        log.info("spark context already stopped by the driver JVM")
        return
    _stop_queries(queries)
    spark.stop()
    watchdog.cancel()


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
