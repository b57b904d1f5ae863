"""The one typed place for configuration.

Every setting is read from the environment with the prefix ``RTC_`` (``RTC_KAFKA_BOOTSTRAP``,
``RTC_FEED``, ...). Defaults are the embedded local stack: everything on loopback, state under
``<project>/.rtc``. Nothing else in the code base reads ``os.environ`` for settings.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _project_root() -> Path:
    """The checkout that holds this package when installed editable, else the working dir."""
    package_parent = Path(__file__).resolve().parent.parent
    if (package_parent / "pyproject.toml").exists():
        return package_parent
    return Path.cwd()


PROJECT_ROOT = _project_root()


class Feed(StrEnum):
    """Where market data comes from."""

    simulator = "simulator"
    live = "live"


class KafkaClient(StrEnum):
    """Which Python Kafka client produces (see rtcrypto/kafka_io.py for the trade-off)."""

    kafka_python = "kafka-python"
    confluent = "confluent"


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

    orderbook: str = "gemini.orderbook.v1"
    trades: str = "gemini.trades.v1"
    deadletter: str = "deadletter.v1"
    heartbeat: str = "service.heartbeat.v1"
    liquidity: str = "liquidity.minute.v1"

    def all(self) -> list[str]:
        return [self.orderbook, self.trades, self.deadletter, self.heartbeat, self.liquidity]


class Settings(BaseSettings):
    """All settings of the platform. Environment variables win over these defaults."""

    model_config = SettingsConfigDict(env_prefix="RTC_", extra="ignore")

    # --- where state lives -------------------------------------------------------------------
    home: Path = Field(default=PROJECT_ROOT / ".rtc", description="state, downloads, logs, pids")

    # --- Kafka ---------------------------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_controller_port: int = 9093
    kafka_partitions: int = 1
    kafka_version: str = "4.1.1"
    kafka_client: KafkaClient = KafkaClient.confluent

    # --- search (Elasticsearch) ----------------------------------------------------------------
    search_url: str = "http://127.0.0.1:9200"  # the local node's HTTP address, or docker-compose's
    search_version: str = "9.5.3"  # server jars from Maven Central; the client's major must match
    search_transport_port: int = 9300  # the local node's transport port (bound, never used)
    search_java_home: Path | None = Field(
        default=None,
        description="JDK 21+ for the local node; None picks one (JAVA_HOME, /usr/lib/jvm)",
    )
    search_heap: str = "512m"  # -Xms and -Xmx of the local node
    search_index_prefix: str = Field(
        default="rtc", pattern=r"^[a-z0-9][a-z0-9_-]*$", description="indices <prefix>-orders, ..."
    )
    search_spool_dir: Path | None = Field(
        default=None,
        description="bulk batches Elasticsearch did not take; None: <run>/search-spool",
    )
    search_bulk_batch_size: int = Field(default=500, gt=0)  # documents per bulk request
    search_flush_interval_s: float = Field(default=1.0, gt=0)  # at most this long in the buffer

    # --- Kibana (not started by `rtc stack up`: docker-compose, or a Kibana of your own) ---------
    kibana_url: str | None = None  # e.g. http://127.0.0.1:5601; None skips the saved-object import
    kibana_username: str | None = None
    kibana_password: SecretStr | None = None

    # --- market data ---------------------------------------------------------------------------
    feed: Feed = Feed.simulator
    # NoDecode: RTC_SYMBOLS=BTCUSD,ETHUSD reaches the validator as text instead of being JSON-parsed
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["BTCUSD"])
    gemini_ws_url: str = "wss://api.gemini.com"
    simulator_host: str = "127.0.0.1"
    simulator_port: int = 8765
    simulator_capture: Path = Field(
        default=PROJECT_ROOT.parent / "shared/data/orderbook/gemini_2021-04-17__GEMINI.ws.36.0.gz"
    )
    simulator_speed: float = 1.0
    simulator_seed: int = 0  # history replay: the modelled book's random seed
    simulator_calibration: Path = Field(
        default=Path(__file__).resolve().parent / "simulator" / "calibration.json",
        description="the modelled book's calibration (`rtc simulate calibrate` writes it)",
    )
    # the feed clock (rtcrypto/feedclock.py): the simulator's time, re-read this often and
    # extrapolated at the replay's speed in between; the wall clock with the live feed
    feed_clock_resync_s: float = Field(default=5.0, gt=0)
    feed_clock_timeout_s: float = Field(default=2.0, gt=0)  # one read of GET /_sim/status

    # --- ingest --------------------------------------------------------------------------------
    heartbeat_interval_s: float = 5.0
    tick_interval_s: float = 1.0
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    depth_band_pct: float = 0.5  # book-depth imbalance band around the mid price, in percent

    # --- supervision (rtcrypto/services.py: Airflow's streaming_supervisor and `rtc status`) ----
    supervisor_stale_heartbeats: float = Field(default=3.0, gt=0)  # stale after N x interval
    supervisor_startup_grace_s: float = Field(default=90.0, ge=0)  # silent start allowed (Spark)
    supervisor_max_lag_records: int = Field(default=100_000, gt=0)  # input records not yet read
    supervisor_max_lag_s: float = Field(default=120.0, gt=0)  # event-time lag in a heartbeat
    supervisor_max_restarts_per_hour: int = Field(default=6, ge=1)  # then alert, stop restarting

    # --- Spark ---------------------------------------------------------------------------------
    spark_version: str = "4.2.0"
    spark_master: str = "local[2]"
    spark_watermark: str = "2 seconds"
    spark_trigger: str = "1 second"
    spark_starting_offsets: str = "earliest"

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
    bars_trigger: str = "10 seconds"  # micro-batch interval of the bars job (a light default)
    bars_watermark: str = "30 seconds"  # event-time lateness allowed across its two input topics
    bars_master: str = "local[1]"  # one core: a few trades per second need no more
    bars_driver_memory: str = "512m"  # the job's JVM heap (spark-submit --driver-memory)

    # --- history, strategy and backtest ---------------------------------------------------------
    history_dir: Path | None = Field(
        default=None, description="partitioned Parquet minute bars; None means <home>/history"
    )
    taker_fee_pct: Decimal = Decimal("0.25")  # percent of the notional, charged on every fill
    trade_pct: Decimal = Decimal("0.9")  # fraction of the USD balance a buy spends (book: 0.9)
    liquidity_ratio_low: Decimal = Decimal("0.1")  # buy only while low < ask/bid ratio < high
    liquidity_ratio_high: Decimal = Decimal("2")

    # --- Airflow (standalone: api-server, scheduler, dag-processor, triggerer) ----------------
    airflow_home: Path | None = Field(
        default=None, description="AIRFLOW_HOME of the local Airflow; None means <home>/airflow"
    )
    airflow_port: int = 8080  # the api-server (UI and REST API) on 127.0.0.1
    airflow_worker_log_port: int = 8793  # the scheduler's log server (LocalExecutor task logs)
    airflow_trigger_log_port: int = 8794  # the triggerer's log server
    airflow_parallelism: int = 2  # task slots in total: the machine has 2 cores

    # --- forecast --------------------------------------------------------------------------------
    forecast_dir: Path | None = Field(
        default=None,
        description="versioned forecasts and the current pointer; None: <home>/forecast",
    )
    forecast_horizon_minutes: int = Field(default=150_000, gt=0)  # the book's 150,000 minutes
    forecast_holdout_days: float = Field(default=7.0, gt=0)  # held out for backtest and gate
    forecast_source: str | None = Field(
        default=None,
        description="history source the nightly retrain trains on; None or empty: chosen by "
        "rtcrypto.forecast.selection (the feed's own bars, else the freshest full import)",
    )
    history_feed_source: str = "gemini-feed"  # the platform's own recorded minute bars
    forecast_min_coverage: float = Field(
        default=0.9, gt=0, le=1
    )  # fraction of a training window's minutes that must be present for a source to qualify
    forecast_stale_after_hours: float = Field(
        default=24.0, gt=0
    )  # the current forecast is stale once it does not cover this many hours ahead

    # --- trader (paper by default) -------------------------------------------------------------
    trader_symbol: str = "BTCUSD"  # the one symbol the trader trades
    trader_consumer_group: str = "rtc-trader"  # Kafka consumer group on the liquidity topic
    trader_max_record_age_s: float | None = Field(
        default=300.0,
        description="ignore liquidity records that reach the trader more than this many wall "
        "seconds after their window ended (a replay at X times speed: X times as many feed "
        "seconds); None: never",
    )
    trader_forecast_offset_ms: int | None = Field(
        default=None,
        description="minutes the feed's clock is ahead of the forecast's, in ms; None: ask the "
        "simulator (its --shift-to-now shift), 0 for the live feed",
    )
    forecast_reload_interval_s: float = Field(default=10.0, gt=0)  # how often the pointer is read
    report_hours: float = Field(default=24.0, gt=0)  # trade_report DAG: the feed clock's last N h
    # rtc report: --since/--until durations in wall time (x the replay's speed: `--since 1h` of a 60x
    # replay is the 60 replayed hours the user watched in the last hour), or in feed time
    report_durations: Literal["feed", "wall"] = "wall"
    trader_search: bool = True  # index orders, fills, scores... into Elasticsearch (bulk, spooled)
    paper_usd: Decimal = Decimal("10000")  # the paper account's starting balances
    paper_btc: Decimal = Decimal("0")
    risk_max_position_btc: Decimal = Decimal("1")  # buys are cut to keep the position below this
    risk_max_order_notional_usd: Decimal = Decimal("25000")  # and each order's notional
    risk_max_daily_loss_usd: Decimal = Decimal("1000")  # no new buy after losing this today (UTC)
    risk_max_orders_per_minute: int = Field(default=2, ge=1)
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
    gemini_private_rate_per_min: int = Field(default=600, gt=0)  # Gemini's private-API limit

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

    # --- derived paths -------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def lib_dir(self) -> Path:
        return self.home / "lib"

    @property
    def search_spool_path(self) -> Path:
        """Spool and dead-letter files of the bulk writer: ``search_spool_dir`` or <run>/search-spool."""
        return self.search_spool_dir or self.run_dir / "search-spool"

    @property
    def trader_dir(self) -> Path:
        """The trader's journal and the paper exchange's account."""
        return self.home / "trader"

    @property
    def kill_switch_path(self) -> Path:
        return self.kill_switch_file or self.home / "KILL"

    @property
    def airflow_home_dir(self) -> Path:
        """AIRFLOW_HOME of the local Airflow: ``airflow_home`` or ``<home>/airflow``."""
        return self.airflow_home or self.home / "airflow"

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
    def market_data_ws_url(self) -> str:
        """Base websocket URL of the market data feed (Gemini or the local simulator)."""
        if self.feed is Feed.live:
            return self.gemini_ws_url.rstrip("/")
        return f"ws://{self.simulator_host}:{self.simulator_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process; tests call ``get_settings.cache_clear()`` after env edits."""
    return Settings()
