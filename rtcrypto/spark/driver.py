"""What the drivers of both Spark jobs (liquidity and bars) share around their queries.

The session, the Kafka source (options from ``Settings``, security included), the stop
signals, the watchdog that exits when the JVM stops answering, and the watermark of a progress
report. The jobs' queries themselves stay in ``spark_jobs/liquidity.py`` and
``rtcrypto/feedbars/streaming.py``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rtcrypto.config import Settings, get_settings
from rtcrypto.kafka.clients import spark_kafka_options
from rtcrypto.spark import ui

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

STOP_GRACE_S = 20.0  # after a stop request, exit even if the JVM stops answering


def kafka_options(bootstrap: str, settings: Settings | None = None) -> dict[str, str]:
    """Options of the Spark Kafka source and sink for ``bootstrap``: the job's option, with the
    security settings (SASL password included) read from ``Settings``, never from argv."""
    settings = settings or get_settings()
    return spark_kafka_options(settings.model_copy(update={"kafka_bootstrap": bootstrap}))


def create_session(app_name: str) -> SparkSession:
    """A job's session on UTC; the master and jars come from spark-submit."""
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


def kafka_stream(
    spark: SparkSession,
    bootstrap: str,
    topics: str,
    starting_offsets: str,
    max_offsets_per_trigger: int | None,
) -> DataFrame:
    """The Kafka rows of ``topics`` (comma-separated) as a stream, ``value`` still bytes.

    ``failOnDataLoss=false``: when retention deleted offsets the checkpoint still points at, the
    query skips ahead (those minutes are lost either way) instead of stopping the job.
    """
    reader = (
        spark.readStream.format("kafka")
        .options(**kafka_options(bootstrap))
        .option("subscribe", topics)
        .option("startingOffsets", starting_offsets)
        .option("failOnDataLoss", "false")
    )
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", max_offsets_per_trigger)
    return reader.load()


@dataclass
class DriverStart:
    """A started driver: its stop request, session, settings and recorded Spark UI address."""

    stop: threading.Event
    spark: SparkSession
    settings: Settings
    ui_file: Path | None

    def ui_address(self) -> str:
        """The Spark UI's address as recorded, or ``off``."""
        return self.ui_file.read_text().strip() if self.ui_file else "off"


def start_driver(process: str, app_name: str, log: logging.Logger) -> DriverStart:
    """Stop handlers, the session (Spark's own log at WARN) and the UI address of ``process``."""
    stop = threading.Event()
    install_stop_handlers(stop, log)
    spark = create_session(app_name)
    spark.sparkContext.setLogLevel("WARN")
    settings = get_settings()
    ui_file = ui.record_ui_address(process, spark.sparkContext.uiWebUrl, settings)
    return DriverStart(stop, spark, settings, ui_file)


def install_stop_handlers(stop: threading.Event, log: logging.Logger) -> None:
    """SIGTERM / SIGINT ask the driver's loop to stop the queries between batches."""

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested signal=%s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def start_watchdog(log: logging.Logger, grace_s: float = STOP_GRACE_S) -> threading.Timer:
    """A timer that exits the process (code 0) after ``grace_s``; cancel it once stopped."""

    def exit_now() -> None:
        log.warning("driver JVM did not answer within %.0f s, exiting", grace_s)
        logging.shutdown()
        os._exit(0)

    watchdog = threading.Timer(grace_s, exit_now)
    watchdog.daemon = True
    watchdog.start()
    return watchdog


def watermark_ms(progress: dict[str, Any]) -> int | None:
    """A progress report's watermark as UTC ms (Spark reports ISO text; the epoch means none)."""
    text = progress.get("eventTime", {}).get("watermark")
    if not text:
        return None
    value = int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    return value or None
