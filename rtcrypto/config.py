"""The one typed place for configuration.

Every setting is read from the environment with the prefix ``RTC_`` (``RTC_KAFKA_BOOTSTRAP``,
``RTC_FEED``, ...). Defaults are the embedded local stack: everything on loopback, state under
``<project>/.rtc``. Nothing else in the code base reads ``os.environ`` for settings.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rtcrypto import config_checks
from rtcrypto.config_cluster import ClusterSettings, Topology
from rtcrypto.config_paths import DerivedPaths
from rtcrypto.redact import split_credentials


def _project_root() -> Path:
    """The checkout that holds this package when installed editable, else the working dir."""
    package_parent = Path(__file__).resolve().parent.parent
    if (package_parent / "pyproject.toml").exists():
        return package_parent
    return Path.cwd()


PROJECT_ROOT = _project_root()

# --- bounds shared by several settings (start-up refuses nonsense, naming the RTC_ variable) ---
Port = Annotated[int, Field(ge=1, le=65535)]  # a TCP port
# an interval, 0 < s <= 1 day
Seconds = Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)]
SYMBOL_PATTERN = r"^[A-Za-z0-9]{3,20}$"  # an exchange symbol: BTCUSD; never a path like ../X
TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"  # Kafka's own rule for topic names
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"  # a source, consumer group or similar identifier
JVM_MEMORY_PATTERN = config_checks.JVM_MEMORY_PATTERN  # -Xmx style: 512m, 2g
SPARK_DURATION_PATTERN = r"^[1-9][0-9]* (milliseconds?|seconds?|minutes?|hours?)$"  # 2 seconds
# The forecast's future frame holds one row per minute: a year (525,600 rows) is the most that
# predicts in reasonable time and memory on this machine (150,000 take about a minute), and a
# minute-bar model says nothing useful further ahead.
FORECAST_HORIZON_MAX_MINUTES = 525_600
# RTC_LOG_LEVEL: a logging level name, any case; empty means unset
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None,
    BeforeValidator(lambda value: (value.upper() or None) if isinstance(value, str) else value),
]


class Feed(StrEnum):
    """Where market data comes from."""

    simulator = "simulator"
    live = "live"


class SimulatorReplay(StrEnum):
    """What the offline simulator replays: real minute bars (book modelled) or a recorded capture."""

    history = "history"
    capture = "capture"


class TradingMode(StrEnum):
    """Where orders go: the paper ledger, Gemini's sandbox (or the simulator), or live Gemini."""

    paper = "paper"
    sandbox = "sandbox"
    live = "live"


GEMINI_SANDBOX_REST_URL = "https://api.sandbox.gemini.com"
GEMINI_LIVE_REST_URL = "https://api.gemini.com"


class Topics(BaseSettings):
    """Kafka topic names (versioned data contracts, see DESIGN.md)."""

    model_config = SettingsConfigDict(env_prefix="RTC_TOPIC_", extra="ignore")

    orderbook: str = Field(default="gemini.orderbook.v1", pattern=TOPIC_PATTERN)
    trades: str = Field(default="gemini.trades.v1", pattern=TOPIC_PATTERN)
    deadletter: str = Field(default="deadletter.v1", pattern=TOPIC_PATTERN)
    heartbeat: str = Field(default="service.heartbeat.v1", pattern=TOPIC_PATTERN)
    liquidity: str = Field(default="liquidity.minute.v1", pattern=TOPIC_PATTERN)

    def all(self) -> list[str]:
        return [self.orderbook, self.trades, self.deadletter, self.heartbeat, self.liquidity]


class Settings(DerivedPaths, BaseSettings):
    """All settings of the platform. Environment variables win over these defaults."""

    model_config = SettingsConfigDict(env_prefix="RTC_", extra="ignore")

    # --- where state lives -------------------------------------------------------------------
    home: Path = Field(default=PROJECT_ROOT / ".rtc", description="state, downloads, logs, pids")
    # every managed process's log (<home>/logs/<name>.log, and Kafka's and Elasticsearch's own
    # log4j logs) is rotated past this size, keeping this many older files (rtcrypto/stack/logpipe.py)
    log_max_bytes: int = Field(default=10 * 1024**2, ge=1024, le=1024**3)
    log_backup_count: int = Field(default=5, ge=1, le=100)
    # every service's and command's log level (rtcrypto/logs.py); None: INFO for the services,
    # WARNING for the terse `rtc stack|liquidity|bars` commands
    log_level: LogLevel = None

    # --- topology: one member per engine, or clusters (rtcrypto/config_cluster.py) -----------
    # in the cluster topology, RTC_KAFKA_BOOTSTRAP, RTC_SEARCH_URL and RTC_SPARK_MASTER default to
    # the cluster's members (RTC_CLUSTER_*) unless they are set
    topology: Topology = Topology.SINGLE
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)

    # --- Kafka ---------------------------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_controller_port: Port = 9093
    kafka_partitions: int = Field(default=1, ge=1, le=1000)
    kafka_version: str = "4.1.1"
    # topic bounds (rtcrypto/stack/kafka.py topic_configs; altered on existing topics at start-up):
    # each partition keeps at most this many bytes and this many hours, whichever ends first
    kafka_retention_bytes: int = Field(default=1024**3, ge=1024**2, le=1024**4)
    kafka_retention_hours: float = Field(default=168.0, gt=0, le=8784, allow_inf_nan=False)
    # segments are deleted whole: a segment much smaller than the retention keeps it precise
    kafka_segment_bytes: int = Field(default=64 * 1024**2, ge=1024**2, le=1024**3)
    # producers compress their batches with this; the topics keep them as they are
    kafka_compression: Literal["zstd", "gzip", "none"] = "zstd"
    # a record the broker has not taken within this long stops the producing service (exit 75,
    # see rtcrypto/kafka/producers.py): nothing is dropped silently
    kafka_delivery_timeout_ms: int = Field(default=600_000, ge=1000, le=86_400_000)
    # client security, applied by every Kafka client of the platform (rtcrypto/kafka/clients.py):
    # PLAINTEXT locally; SASL_SSL / SSL / SASL_PLAINTEXT against a secured cluster
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None  # RTC_KAFKA_SASL_PASSWORD; never logged
    kafka_ssl_ca_location: Path | None = None  # PEM bundle that signed the brokers' certificates

    # --- search (Elasticsearch) ----------------------------------------------------------------
    search_url: str = "http://127.0.0.1:9200"  # the local node's HTTP address, or docker-compose's
    # basic auth of search_url (docker-compose's rtc_app); a user:password@ in the URL moves here
    search_username: str | None = None
    search_password: SecretStr | None = None  # RTC_SEARCH_PASSWORD; never printed or logged
    search_version: str = "9.5.3"  # server jars from Maven Central; the client's major must match
    search_transport_port: Port = 9300  # the local node's transport port (bound, never used)
    search_java_home: Path | None = Field(
        default=None,
        description="JDK 21+ for the local node; None picks one (JAVA_HOME, /usr/lib/jvm)",
    )
    # -Xms and -Xmx of the local node
    search_heap: str = Field(default="512m", pattern=JVM_MEMORY_PATTERN)
    search_index_prefix: str = Field(
        default="rtc", pattern=r"^[a-z0-9][a-z0-9_-]*$", description="indices <prefix>-orders, ..."
    )
    search_spool_dir: Path | None = Field(
        default=None,
        description="bulk batches Elasticsearch did not take; None: <run>/search-spool",
    )
    search_bulk_batch_size: int = Field(default=500, gt=0, le=100_000)  # documents per bulk request
    search_flush_interval_s: Seconds = 1.0
    # the bulk writer's spool on disk (Elasticsearch down) stops growing here: newer documents go
    # to the Kafka dead letters and an alert shows in the heartbeat (rtcrypto/search/spool_guard.py)
    search_spool_max_bytes: int = Field(default=256 * 1024**2, ge=1024, le=1024**4)
    # the local node's disk watermarks as free space left (why: rtcrypto/stack/search_disk.py);
    # all three byte sizes (low >= high >= flood stage) or all three percentages used
    search_disk_watermark_low: str = Field(default="2gb", pattern=config_checks.WATERMARK_PATTERN)
    search_disk_watermark_high: str = Field(default="1gb", pattern=config_checks.WATERMARK_PATTERN)
    search_disk_watermark_flood_stage: str = Field(
        default="500mb", pattern=config_checks.WATERMARK_PATTERN
    )  # at most this long in the buffer

    # --- Kibana (not started by `rtc stack up`: docker-compose, or a Kibana of your own) ---------
    kibana_url: str | None = None  # e.g. http://127.0.0.1:5601; None skips the saved-object import
    kibana_username: str | None = None
    kibana_password: SecretStr | None = None

    # --- market data ---------------------------------------------------------------------------
    feed: Feed = Feed.simulator
    # NoDecode: RTC_SYMBOLS=BTCUSD,ETHUSD reaches the validator as text instead of being JSON-parsed
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["BTCUSD"])
    gemini_ws_url: str = "wss://api.gemini.com"
    simulator_host: str = Field(default="127.0.0.1", pattern=r"^[A-Za-z0-9.:-]{1,253}$")
    simulator_port: Port = 8765
    simulator_capture: Path = Field(
        default=PROJECT_ROOT.parent / "shared/data/orderbook/gemini_2021-04-17__GEMINI.ws.36.0.gz"
    )
    simulator_speed: float = Field(default=1.0, le=100_000, allow_inf_nan=False)
    # history replay: the modelled book's random seed
    simulator_seed: int = Field(default=0, ge=0, le=2**32 - 1)
    # POST /_sim/drop, /_sim/skip-sequence, /_sim/inject (fault injection, for tests); off: 404
    simulator_fault_endpoints: bool = False
    # the sandbox cancels a "Requires Heartbeat" account's orders after this many silent seconds
    simulator_heartbeat_timeout_s: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)
    # the sandbox answers 429 RateLimit above this many private requests per key and minute
    # (Gemini: 600); 0 = no limit
    simulator_private_rate_per_min: int = Field(default=0, ge=0, le=100_000)
    simulator_calibration: Path = Field(
        default=Path(__file__).resolve().parent / "simulator" / "calibration.json",
        description="the modelled book's calibration (`rtc simulate calibrate` writes it)",
    )
    # the feed clock (rtcrypto/exchange/feedclock.py): the simulator's time, re-read this often and
    # extrapolated at the replay's speed in between; the wall clock with the live feed
    feed_clock_resync_s: Seconds = 5.0
    feed_clock_timeout_s: Seconds = 2.0  # one read of GET /_sim/status

    # --- ingest --------------------------------------------------------------------------------
    # >= 0.1 s: zero or less busy-loops the services' heartbeat loops
    heartbeat_interval_s: float = Field(default=5.0, ge=0.1, le=3600, allow_inf_nan=False)
    tick_interval_s: Seconds = 1.0
    reconnect_initial_s: Seconds = 0.5
    reconnect_max_s: Seconds = 30.0
    # book-depth imbalance band around the mid price, in percent
    depth_band_pct: float = Field(default=0.5, gt=0, le=100, allow_inf_nan=False)
    # event times (timestampms) farther than this from the receive time on the feed's clock are
    # dead-lettered by the ingest, and by Spark when ahead of the record's Kafka time (bounded.py)
    event_time_window_s: float = Field(default=3600.0, gt=0, le=366 * 86_400)

    # --- supervision (rtcrypto/supervision/registry.py: Airflow's streaming_supervisor and `rtc status`) ----
    # stale after N x interval
    supervisor_stale_heartbeats: float = Field(default=3.0, gt=0, le=1000, allow_inf_nan=False)
    # silent start allowed (Spark)
    supervisor_startup_grace_s: float = Field(default=90.0, ge=0, le=86_400, allow_inf_nan=False)
    supervisor_max_lag_records: int = Field(default=100_000, gt=0)  # input records not yet read
    supervisor_max_lag_s: Seconds = 120.0  # event-time lag in a heartbeat
    # then alert, stop restarting
    supervisor_max_restarts_per_hour: int = Field(default=6, ge=1, le=3600)

    # --- Spark ---------------------------------------------------------------------------------
    spark_version: str = "4.2.0"
    spark_master: str = "local[2]"
    spark_watermark: str = Field(default="2 seconds", pattern=SPARK_DURATION_PATTERN)
    spark_trigger: str = Field(default="1 second", pattern=SPARK_DURATION_PATTERN)
    spark_starting_offsets: str = "earliest"
    # the Spark jobs' web UI, bound to loopback (SPARK_LOCAL_IP); a taken port moves to the next
    spark_ui_enabled: bool = True
    spark_ui_port: int = Field(default=4040, ge=1024, le=65535)

    # --- what `rtc up`'s simulator replays (the offline feed) ---------------------------------------
    # history: real minute bars of one imported source on their own historical clock, book modelled
    # (rtc simulate --history); capture: the recorded Gemini capture, looped and shifted to now.
    simulator_replay: SimulatorReplay = SimulatorReplay.history
    simulator_history_source: str = Field(default="binance", pattern=r"^[A-Za-z0-9_.-]+$")
    # [start, end) of the replay; None: the `simulator_history_days` days after the first forecast's
    # training window, chosen once by `rtc up` and kept in <home>/simulator/replay-window.json
    simulator_history_start: datetime | None = None
    simulator_history_end: datetime | None = None
    simulator_history_days: float = Field(default=7.0, gt=0, le=366)
    # 60x: one replayed hour per wall minute, so the forecast's buy/sell turns (hours apart) trade
    # within minutes of `make up`, while Spark's 1 s trigger still closes every minute window
    simulator_history_speed: float = Field(default=60.0, gt=0, le=10_000)

    # --- the platform's own minute bars (spark_jobs/bars.py: trades -> history store) -----------
    # history_feed_source (below): the source these bars go to
    # micro-batch interval of the bars job (a light default)
    bars_trigger: str = Field(default="10 seconds", pattern=SPARK_DURATION_PATTERN)
    # event-time lateness allowed across its two input topics
    bars_watermark: str = Field(default="30 seconds", pattern=SPARK_DURATION_PATTERN)
    bars_master: str = "local[1]"  # one core: a few trades per second need no more
    # the job's JVM heap (spark-submit --driver-memory)
    bars_driver_memory: str = Field(default="512m", pattern=JVM_MEMORY_PATTERN)

    # --- history, strategy and backtest ---------------------------------------------------------
    history_dir: Path | None = Field(
        default=None, description="partitioned Parquet minute bars; None means <home>/history"
    )
    # percent of the notional, charged on every fill
    taker_fee_pct: Decimal = Field(default=Decimal("0.25"), ge=0, le=10)
    # fraction of the USD balance a buy spends (book: 0.9)
    trade_pct: Decimal = Field(default=Decimal("0.9"), gt=0, le=1)
    # buy only while low < ask/bid ratio < high
    liquidity_ratio_low: Decimal = Field(default=Decimal("0.1"), gt=0)
    liquidity_ratio_high: Decimal = Field(default=Decimal("2"), gt=0)

    # --- Airflow (standalone: api-server, scheduler, dag-processor, triggerer) ----------------
    airflow_home: Path | None = Field(
        default=None, description="AIRFLOW_HOME of the local Airflow; None means <home>/airflow"
    )
    airflow_port: Port = 8080  # the api-server (UI and REST API) on 127.0.0.1
    airflow_worker_log_port: Port = 8793  # the scheduler's log server (LocalExecutor task logs)
    airflow_trigger_log_port: Port = 8794  # the triggerer's log server
    # Airflow's two log servers bind every interface (it has no setting for their address): off,
    # the api-server reads task logs from the local files (rtcrypto/stack/airflow_shim.py)
    airflow_serve_logs: bool = False
    # task slots in total: the machine has 2 cores
    airflow_parallelism: int = Field(default=2, ge=1, le=64)

    # --- forecast --------------------------------------------------------------------------------
    forecast_dir: Path | None = Field(
        default=None,
        description="versioned forecasts and the current pointer; None: <home>/forecast",
    )
    # the book's 150,000 minutes
    forecast_horizon_minutes: int = Field(default=150_000, gt=0, le=FORECAST_HORIZON_MAX_MINUTES)
    # held out for backtest and gate
    forecast_holdout_days: float = Field(default=7.0, gt=0, le=366, allow_inf_nan=False)
    forecast_source: str | None = Field(
        default=None,
        pattern=r"^([A-Za-z0-9_.-]{1,100})?$",
        description="history source the nightly retrain trains on; None or empty: chosen by "
        "rtcrypto.forecast.selection (the feed's own bars, else the freshest full import)",
    )
    # the platform's own recorded minute bars
    history_feed_source: str = Field(default="gemini-feed", pattern=NAME_PATTERN)
    forecast_min_coverage: float = Field(
        default=0.9, gt=0, le=1
    )  # fraction of a training window's minutes that must be present for a source to qualify
    forecast_stale_after_hours: float = Field(
        default=24.0, gt=0, le=8784, allow_inf_nan=False
    )  # the current forecast is stale once it does not cover this many hours ahead

    # --- trader (paper by default) -------------------------------------------------------------
    # the name an ingest process has under the supervisor and in its heartbeats: `ingest`, or
    # `ingest-<n>` for each symbol group of the cluster topology (set by the registry)
    ingest_instance: str = Field(default="ingest", pattern=NAME_PATTERN)
    # the one symbol the trader trades
    trader_symbol: str = Field(default="BTCUSD", pattern=SYMBOL_PATTERN)
    # Kafka consumer group on the liquidity topic
    trader_consumer_group: str = Field(default="rtc-trader", pattern=NAME_PATTERN)
    trader_max_record_age_s: float | None = Field(
        default=300.0,
        gt=0,
        allow_inf_nan=False,
        description="ignore liquidity records that reach the trader more than this many wall "
        "seconds after their window ended (a replay at X times speed: X times as many feed "
        "seconds); None: never",
    )
    trader_forecast_offset_ms: int | None = Field(
        default=None,
        ge=-100 * 366 * 86_400_000,  # a century either way: more is a unit mistake
        le=100 * 366 * 86_400_000,
        description="minutes the feed's clock is ahead of the forecast's, in ms; None: ask the "
        "simulator (its --shift-to-now shift), 0 for the live feed",
    )
    forecast_reload_interval_s: Seconds = 10.0  # how often the pointer is read
    # trade_report DAG: the feed clock's last N h
    report_hours: float = Field(default=24.0, gt=0, le=87_840, allow_inf_nan=False)
    # rtc report: --since/--until durations in wall time (x the replay's speed: `--since 1h` of a 60x
    # replay is the 60 replayed hours the user watched in the last hour), or in feed time
    report_durations: Literal["feed", "wall"] = "wall"
    # the Trade review page in the Airflow UI: its longest range, how many supervisor restarts it
    # lists, and how long one reading of the services' health is reused
    review_max_range_days: float = Field(default=31.0, gt=0, le=366, allow_inf_nan=False)
    review_restarts_shown: int = Field(default=50, ge=1, le=1_000)
    review_health_cache_s: Seconds = 10.0
    trader_search: bool = True  # index orders, fills, scores... into Elasticsearch (bulk, spooled)
    # the gemini adapter's trader journals Gemini's order events (/v1/order/events) while the
    # stream is up; REST polling covers every order either way (False: polling only)
    gemini_order_events: bool = True
    # the paper account's starting balances
    paper_usd: Decimal = Field(default=Decimal("10000"), ge=0)
    paper_btc: Decimal = Field(default=Decimal("0"), ge=0)
    # buys are cut to keep the position below this
    risk_max_position_btc: Decimal = Field(default=Decimal("1"), gt=0)
    # and each order's notional
    risk_max_order_notional_usd: Decimal = Field(default=Decimal("25000"), gt=0)
    # no new buy after losing this today (UTC)
    risk_max_daily_loss_usd: Decimal = Field(default=Decimal("1000"), ge=0)
    risk_max_orders_per_minute: int = Field(default=2, ge=1, le=1000)
    kill_switch: bool = False  # RTC_KILL_SWITCH=1: send no order at all
    kill_switch_file: Path | None = Field(
        default=None, description="send no order while this file exists; None: <home>/KILL"
    )

    # --- trading (exchange adapters) -------------------------------------------------------------
    trading_mode: TradingMode = TradingMode.paper  # live also needs keys (see exchange/gemini.py)
    gemini_api_key: SecretStr | None = None  # RTC_GEMINI_API_KEY; never logged
    gemini_api_secret: SecretStr | None = None  # RTC_GEMINI_API_SECRET; never logged
    gemini_rest_url: str | None = Field(
        default=None,
        description="Gemini REST base URL; None derives it from trading_mode (and feed for paper)",
    )
    # Gemini's private-API limit
    gemini_private_rate_per_min: int = Field(default=600, gt=0, le=100_000)
    # the gemini adapter re-reads GET /v1/symbols/details/{symbol} (increments, minimum) this often
    gemini_symbol_details_refresh_s: Seconds = 3600.0
    # the paper exchange's order rules (Gemini's published BTCUSD values): the risk gate rounds
    # quantities and prices to these increments and refuses an order below the minimum
    paper_tick_size_btc: Decimal = Field(default=Decimal("0.00000001"), ge=Decimal("1e-18"), le=1)
    paper_quote_increment_usd: Decimal = Field(
        default=Decimal("0.01"), ge=Decimal("1e-18"), le=1000
    )
    paper_min_order_size_btc: Decimal = Field(
        default=Decimal("0.00001"), ge=Decimal("1e-18"), le=1000
    )

    # --- soak test (bench/soak.py, `make soak`; not in CI) -------------------------------------
    soak_minutes: float = Field(default=60.0, gt=0, le=24 * 60)  # make soak SOAK_MINUTES=5
    # history replay speed: the modelled book is calibrated on Gemini's change rate, so 10 = 10x
    soak_speed: float = Field(default=10.0, gt=0, le=10_000)
    soak_sample_interval_s: float = Field(default=60.0, gt=0)  # RSS, topics, indices, lag
    soak_max_rss_slope_mb_per_h: float = Field(default=50.0, gt=0)  # per process, second half

    topics: Topics = Field(default_factory=Topics)

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        # RTC_SYMBOLS=BTCUSD,ETHUSD is friendlier than JSON in a shell.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip().upper() for part in text.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _cluster_addresses(self) -> Settings:
        # first of the validators: those below assign fields, which then count as set
        # the cluster topology's members, where the single-member address was not set explicitly
        if self.topology is Topology.CLUSTER:
            explicit = self.model_fields_set
            if "kafka_bootstrap" not in explicit:
                self.kafka_bootstrap = self.cluster.kafka_bootstrap
            if "search_url" not in explicit:
                self.search_url = self.cluster.search_urls[0]
            if "spark_master" not in explicit:
                self.spark_master = self.cluster.spark_master_url
            if "bars_master" not in explicit:
                self.bars_master = self.cluster.spark_master_url
        return self

    @model_validator(mode="after")
    def _credentials_out_of_urls(self) -> Settings:
        # URLs are printed and logged: their user:password goes into the credential settings
        self.search_url, self.search_username, self.search_password = split_credentials(
            "search", self.search_url, self.search_username, self.search_password
        )
        if self.kibana_url:
            self.kibana_url, self.kibana_username, self.kibana_password = split_credentials(
                "kibana", self.kibana_url, self.kibana_username, self.kibana_password
            )
        return self

    @field_validator("simulator_history_start", "simulator_history_end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # a time without a zone is UTC, like every time in the project
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @field_validator("simulator_speed")
    @classmethod
    def _positive_speed(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("RTC_SIMULATOR_SPEED must be > 0")
        return value

    # --- bounds that a Field constraint cannot say (see rtcrypto/config_checks.py) --------------
    @field_validator("symbols")
    @classmethod
    def _valid_symbols(cls, value: list[str]) -> list[str]:
        return config_checks.symbols(value)

    @field_validator("kafka_bootstrap")
    @classmethod
    def _valid_bootstrap(cls, value: str) -> str:
        return config_checks.bootstrap(value)

    @field_validator("search_url", "kibana_url", "gemini_rest_url")
    @classmethod
    def _valid_http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value and info.field_name != "search_url":
            return None  # an empty optional URL (docker-compose's `RTC_KIBANA_URL=`) is unset
        return config_checks.url(value or "", ("http", "https"))

    @field_validator("gemini_ws_url")
    @classmethod
    def _valid_ws_url(cls, value: str) -> str:
        return config_checks.url(value, ("ws", "wss"))

    @model_validator(mode="after")
    def _ordered_pairs(self) -> Settings:
        config_checks.ordered(
            "RTC_RECONNECT_INITIAL_S", self.reconnect_initial_s,
            "RTC_RECONNECT_MAX_S", self.reconnect_max_s,
        )  # fmt: skip
        config_checks.ordered(
            "RTC_LIQUIDITY_RATIO_LOW", self.liquidity_ratio_low,
            "RTC_LIQUIDITY_RATIO_HIGH", self.liquidity_ratio_high,
            strict=True,
        )  # fmt: skip
        config_checks.ordered(
            "RTC_KAFKA_SEGMENT_BYTES", self.kafka_segment_bytes,
            "RTC_KAFKA_RETENTION_BYTES", self.kafka_retention_bytes,
        )  # fmt: skip
        config_checks.watermarks(
            self.search_disk_watermark_low,
            self.search_disk_watermark_high,
            self.search_disk_watermark_flood_stage,
        )
        return self

    @model_validator(mode="after")
    def _kafka_client_settings(self) -> Settings:
        # RTC_KAFKA_CLIENT is no field any more: refused here rather than silently ignored
        config_checks.retired(os.environ)
        config_checks.sasl_credentials(
            self.kafka_security_protocol,
            self.kafka_sasl_username,
            self.kafka_sasl_password is not None,
        )
        return self

    @property
    def topic_partitions(self) -> int:
        """Partitions of every project topic: ``RTC_KAFKA_PARTITIONS``, or in the cluster
        topology ``RTC_CLUSTER_KAFKA_PARTITIONS`` (each symbol's records in one of them)."""
        if self.topology is Topology.CLUSTER:
            return self.cluster.kafka_partitions
        return self.kafka_partitions

    @property
    def airflow_url(self) -> str:
        """Base URL of the local Airflow api-server (UI and REST API)."""
        return f"http://127.0.0.1:{self.airflow_port}"

    @property
    def gemini_rest_base_url(self) -> str:
        """Gemini REST base URL: ``gemini_rest_url`` if set, else by mode: live and sandbox are
        Gemini's; paper reads public data from the market-data source (simulator or Gemini)."""
        if self.gemini_rest_url:
            return self.gemini_rest_url.rstrip("/")
        if self.trading_mode is TradingMode.live:
            return GEMINI_LIVE_REST_URL
        if self.trading_mode is TradingMode.sandbox:
            return GEMINI_SANDBOX_REST_URL
        if self.feed is Feed.live:
            return GEMINI_LIVE_REST_URL
        return f"http://{self.simulator_host}:{self.simulator_port}"

    @property
    def trades_on_simulator_sandbox(self) -> bool:
        """Sandbox mode with ``RTC_GEMINI_REST_URL`` pointing at the local simulator: the
        simulator's sandbox takes the settings' key and secret (``--sandbox-from-settings``)."""
        return self.trading_mode is TradingMode.sandbox and config_checks.is_local_port(
            self.gemini_rest_url, self.simulator_host, self.simulator_port
        )

    @property
    def market_data_ws_url(self) -> str:
        """Base websocket URL of the market data feed (Gemini or the local simulator)."""
        if self.feed is Feed.live:
            return self.gemini_ws_url.rstrip("/")
        return f"ws://{self.simulator_host}:{self.simulator_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process; tests call ``get_settings.cache_clear()`` after env edits.

    Raises :class:`rtcrypto.config_checks.SettingsError` (a ValueError) naming every bad
    ``RTC_*`` variable and what it must be."""
    try:
        return Settings()
    except ValidationError as error:
        raise config_checks.SettingsError(config_checks.describe(error)) from None


def settings_or_exit() -> Settings:
    """:func:`get_settings` for entry points: bad settings print their message and exit 2."""
    import sys

    try:
        return get_settings()
    except config_checks.SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def settings_with(settings: Settings, **changes: object) -> Settings:
    """``settings`` with ``changes`` (field name -> value, as the environment would give it)
    applied and validated like the environment: how a command passes its flags to a service.

    Raises :class:`rtcrypto.config_checks.SettingsError` naming each bad ``RTC_*`` setting."""
    try:
        return Settings.model_validate({**settings.model_dump(), **changes})
    except ValidationError as error:
        raise config_checks.SettingsError(config_checks.describe(error)) from None
