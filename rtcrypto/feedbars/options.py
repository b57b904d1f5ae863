"""The bars job's options (one dataclass, from settings or its command line) and its launch.

Both sides use ``BarsJobOptions``: ``rtc up`` / the supervisor render it with ``to_args`` into
the spark-submit command (``submit_command``), and ``spark_jobs/bars.py`` reads it back with
``parse_args`` (both through ``rtcrypto.spark.options``). Nothing here imports pyspark.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rtcrypto.config import Settings, get_settings
from rtcrypto.spark import options as job_options
from rtcrypto.spark.submit import SUBMIT_ONLY, SparkSetupError, find_spark_submit, submit_conf

BARS_PROCESS = "bars"  # name under the process manager and of the registry entry
HEARTBEAT_SERVICE = "spark-bars"  # Heartbeat.service of the job
JOB_MODULE = "spark_jobs.bars"
QUERY_NAME = "bars"  # the streaming query; its checkpoint is <checkpoint>/bars


@dataclass(frozen=True, slots=True)
class BarsJobOptions:
    """Everything the bars job runs with. Durations are Spark interval strings ('10 seconds')."""

    bootstrap: str
    trades_topic: str
    orderbook_topic: str  # read for the ingest's per-minute book_depth mids and its ticks
    heartbeat_topic: str  # '' sends no heartbeats
    checkpoint: Path  # root; the query checkpoints under <checkpoint>/bars
    history_dir: Path
    feed_source: str
    traded_symbol: str
    starting_offsets: str
    trigger: str
    watermark: str
    master: str
    driver_memory: str = "512m"
    ui_enabled: bool = True  # the Spark UI (RTC_SPARK_UI_ENABLED), on loopback
    ui_port: int = 4040  # its first port; Spark tries the next ones when it is taken
    heartbeat_interval_s: float = 5.0
    progress_interval_s: float = 60.0
    max_offsets_per_trigger: int | None = None
    event_time_window_s: float = 3600.0  # rtcrypto.spark.event_time: later event times dropped
    # on a spark:// master only (rtcrypto.spark.submit.cluster_conf): executors and cores
    executor_memory: str = "512m"
    executor_cores: int = 1
    max_cores: int = 1

    def __post_init__(self) -> None:
        if self.event_time_window_s <= 0:
            raise ValueError("--event-time-window-s must be > 0 (RTC_EVENT_TIME_WINDOW_S)")

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> BarsJobOptions:
        """Defaults: topics, store, source name, trigger, watermark and master from settings."""
        settings = settings or get_settings()
        return cls(
            bootstrap=settings.kafka_bootstrap,
            trades_topic=settings.topics.trades,
            orderbook_topic=settings.topics.orderbook,
            heartbeat_topic=settings.topics.heartbeat,
            checkpoint=default_checkpoint(settings),
            history_dir=settings.history_path,
            feed_source=settings.history_feed_source,
            traded_symbol=settings.trader_symbol,
            starting_offsets=settings.spark_starting_offsets,
            trigger=settings.bars_trigger,
            watermark=settings.bars_watermark,
            master=settings.bars_master,
            driver_memory=settings.bars_driver_memory,
            ui_enabled=settings.spark_ui_enabled,
            ui_port=settings.spark_ui_port,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            event_time_window_s=settings.event_time_window_s,
            executor_memory=settings.cluster.spark_executor_memory,
            executor_cores=settings.cluster.spark_executor_cores,
            max_cores=settings.cluster.spark_bars_max_cores,
        )

    def with_overrides(self, **overrides: object) -> BarsJobOptions:
        """A copy with the given fields replaced; ``None`` values keep the current ones."""
        kept: dict[str, Any] = {key: value for key, value in overrides.items() if value is not None}
        return replace(self, **kept)

    def to_args(self) -> list[str]:
        """The job's command line (``parse_args`` reads it back); ``SUBMIT_ONLY`` go to
        spark-submit instead."""
        return job_options.to_args(self, skip=SUBMIT_ONLY)


def default_checkpoint(settings: Settings | None = None) -> Path:
    """``<run_dir>/checkpoints/bars``: the job's checkpoint root."""
    return (settings or get_settings()).run_dir / "checkpoints" / "bars"


def checkpoint_offsets_dir(settings: Settings | None = None) -> Path:
    """The query's ``offsets/`` folder (the supervisor's lag source)."""
    return default_checkpoint(settings) / QUERY_NAME / "offsets"


def parse_args(argv: Sequence[str] | None = None) -> BarsJobOptions:
    """Options from the command line; what is not given comes from settings."""
    return job_options.parse_job_args(
        BarsJobOptions.from_settings(),
        argv,
        prog="bars.py",
        description="gemini.trades.v1 -> 1-minute bars in the history store",
        skip=SUBMIT_ONLY,
    )


def job_script() -> Path:
    """Path of ``spark_jobs/bars.py`` (found without importing pyspark)."""
    spec = importlib.util.find_spec(JOB_MODULE)
    if spec is None or spec.origin is None:
        raise SparkSetupError(f"{JOB_MODULE} is not importable; run `pip install -e .`")
    return Path(spec.origin)


def submit_command(
    options: BarsJobOptions, jars: Sequence[Path], *, spark_submit: Path | None = None
) -> list[str]:
    """The spark-submit command line of the bars job (the liquidity job's Spark settings)."""
    command = [
        str(spark_submit or find_spark_submit()),
        "--master",
        options.master,
        "--driver-memory",
        options.driver_memory,
        "--name",
        BARS_PROCESS,
        "--jars",
        ",".join(str(jar) for jar in jars),
    ]
    for key, value in submit_conf(options).items():
        command += ["--conf", f"{key}={value}"]
    return [*command, str(job_script()), *options.to_args()]
