"""Settings of the cluster topology (``RTC_TOPOLOGY=cluster``, ``rtc up --topology cluster``).

The single topology (the default) runs one member of each engine. The cluster topology runs
several on loopback: 3 KRaft brokers, a Spark standalone master with workers, several
Elasticsearch nodes, Airflow on PostgreSQL with Celery workers (Redis as the broker), and several
ingest processes. Every address and size is a setting here, read from ``RTC_CLUSTER_*``.
Lists of ports are comma-separated (``RTC_CLUSTER_KAFKA_PORTS=9192,9194,9196``); the number of
members of an engine is the length of its port list.

A nested model of :class:`rtcrypto.config.Settings` (``settings.cluster``), like the topics.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rtcrypto import config_checks

Port = Annotated[int, Field(ge=1, le=65535)]
Ports = Annotated[list[Port], NoDecode]


class Topology(StrEnum):
    """How many members each engine runs: one (``single``) or a cluster (``cluster``)."""

    SINGLE = "single"
    CLUSTER = "cluster"


def _split_ports(value: object) -> object:
    """``"9192,9194"`` -> ``["9192", "9194"]`` (pydantic then checks each is a port)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


_JVM_UNIT_MB = {"k": 1 / 1024, "m": 1, "g": 1024}


def jvm_memory_mb(size: str) -> float:
    """A ``-Xmx`` style size (``512m``, ``2g``; ``config_checks.JVM_MEMORY_PATTERN``) in MiB."""
    return int(size[:-1]) * _JVM_UNIT_MB[size[-1].lower()]


class ClusterSettings(BaseSettings):
    """Members, ports and sizes of the cluster topology (``RTC_CLUSTER_*``)."""

    model_config = SettingsConfigDict(env_prefix="RTC_CLUSTER_", extra="ignore")

    # every member listens on this address (loopback: nothing of the platform is reachable from
    # outside the machine)
    host: str = Field(default="127.0.0.1", pattern=r"^[A-Za-z0-9.:-]{1,253}$")

    # --- Kafka: KRaft brokers, each broker and controller (a 3-voter quorum) -----------------
    kafka_ports: Ports = Field(default_factory=lambda: [9192, 9194, 9196])
    kafka_controller_ports: Ports = Field(default_factory=lambda: [9193, 9195, 9197])
    kafka_replication_factor: int = Field(default=3, ge=1, le=9)
    kafka_min_insync_replicas: int = Field(default=2, ge=1, le=9)
    # partitions of every topic; records are keyed by symbol, so one symbol stays in order
    kafka_partitions: int = Field(default=6, ge=1, le=1000)
    kafka_heap: str = Field(default="512m", pattern=config_checks.JVM_MEMORY_PATTERN)
    # a broker silent this long is fenced and its partitions get new leaders: the bulk of the
    # production stall when a leader dies (Kafka's default 9 s; heartbeats every quarter of it,
    # at most every 2 s as Kafka's default)
    kafka_broker_session_timeout_ms: int = Field(default=9000, ge=1000, le=300_000)

    # --- Spark standalone: one master, one worker per port ------------------------------------
    spark_master_port: Port = 7077
    spark_master_ui_port: Port = 8081
    spark_worker_ports: Ports = Field(default_factory=lambda: [7078, 7079])
    spark_worker_ui_ports: Ports = Field(default_factory=lambda: [8082, 8083])
    # cores a worker offers (scheduling slots, not pinned CPUs): 2 per worker hold the liquidity
    # job's 2 executors and the bars job's 1 with a slot to spare after losing a worker
    spark_worker_cores: int = Field(default=2, ge=1, le=256)
    spark_worker_memory: str = Field(default="1g", pattern=config_checks.JVM_MEMORY_PATTERN)
    spark_daemon_memory: str = Field(default="256m", pattern=config_checks.JVM_MEMORY_PATTERN)
    # each executor of a job (spark.executor.memory / spark.executor.cores): it must fit a worker
    spark_executor_memory: str = Field(default="512m", pattern=config_checks.JVM_MEMORY_PATTERN)
    spark_executor_cores: int = Field(default=1, ge=1, le=256)
    # a job's share of the cluster's cores (spark.cores.max): without it the first job submitted
    # takes every core and the next one waits forever
    spark_liquidity_max_cores: int = Field(default=2, ge=1, le=4096)
    spark_bars_max_cores: int = Field(default=1, ge=1, le=4096)

    # --- Elasticsearch: one node per HTTP port, one replica per index --------------------------
    search_http_ports: Ports = Field(default_factory=lambda: [9201, 9202, 9203])
    search_transport_ports: Ports = Field(default_factory=lambda: [9301, 9302, 9303])
    search_replicas: int = Field(default=1, ge=0, le=8)
    search_heap: str = Field(default="384m", pattern=config_checks.JVM_MEMORY_PATTERN)

    # --- Airflow on PostgreSQL with the CeleryExecutor (Redis as the broker) -------------------
    postgres_port: Port = 5433
    redis_port: Port = 6380
    # one Celery worker per log-server port (each serves its task logs to the api-server)
    celery_worker_log_ports: Ports = Field(default_factory=lambda: [8795, 8796])
    celery_worker_concurrency: int = Field(default=1, ge=1, le=64)
    postgres_max_connections: int = Field(default=100, ge=20, le=10_000)
    postgres_shared_buffers: str = Field(default="32MB", pattern=r"^[1-9][0-9]{0,5}(kB|MB|GB)$")
    # seconds without a heartbeat of a running task (its worker died) before the scheduler fails
    # that try, which is then retried by the DAG's retries (Airflow's default: 300)
    airflow_task_heartbeat_timeout_s: int = Field(default=300, ge=10, le=86_400)
    # an Airflow component that exits (the scheduler does when PostgreSQL is gone) is started
    # again after this many seconds by its restart loop
    airflow_restart_delay_s: int = Field(default=10, ge=1, le=600)
    # cap on every task's retry delay (a cluster policy), seconds; None keeps the DAGs' own
    airflow_retry_delay_max_s: int | None = Field(default=None, ge=0, le=86_400)

    # --- ingest: the symbols are split into this many groups, one ingest process each ---------
    ingest_processes: int = Field(default=2, ge=1, le=64)

    _split = field_validator(
        "kafka_ports",
        "kafka_controller_ports",
        "spark_worker_ports",
        "spark_worker_ui_ports",
        "search_http_ports",
        "search_transport_ports",
        "celery_worker_log_ports",
        mode="before",
    )(_split_ports)

    @model_validator(mode="after")
    def _consistent(self) -> ClusterSettings:
        """Paired port lists have equal lengths, and Kafka's replication fits its brokers."""
        pairs = (
            ("RTC_CLUSTER_KAFKA_PORTS", self.kafka_ports, "RTC_CLUSTER_KAFKA_CONTROLLER_PORTS",
             self.kafka_controller_ports),
            ("RTC_CLUSTER_SPARK_WORKER_PORTS", self.spark_worker_ports,
             "RTC_CLUSTER_SPARK_WORKER_UI_PORTS", self.spark_worker_ui_ports),
            ("RTC_CLUSTER_SEARCH_HTTP_PORTS", self.search_http_ports,
             "RTC_CLUSTER_SEARCH_TRANSPORT_PORTS", self.search_transport_ports),
        )  # fmt: skip
        for first_name, first, second_name, second in pairs:
            if not first or len(first) != len(second):
                raise ValueError(
                    f"{first_name} and {second_name} must list the same number of ports "
                    f"(one per member), got {len(first)} and {len(second)}"
                )
        if not self.celery_worker_log_ports:
            raise ValueError("RTC_CLUSTER_CELERY_WORKER_LOG_PORTS must list one port per worker")
        if self.kafka_replication_factor > len(self.kafka_ports):
            raise ValueError(
                f"RTC_CLUSTER_KAFKA_REPLICATION_FACTOR ({self.kafka_replication_factor}) cannot "
                f"exceed the number of brokers ({len(self.kafka_ports)} in RTC_CLUSTER_KAFKA_PORTS)"
            )
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError(
                f"RTC_CLUSTER_KAFKA_MIN_INSYNC_REPLICAS ({self.kafka_min_insync_replicas}) cannot "
                f"exceed RTC_CLUSTER_KAFKA_REPLICATION_FACTOR ({self.kafka_replication_factor})"
            )
        if self.search_replicas >= len(self.search_http_ports):
            raise ValueError(
                f"RTC_CLUSTER_SEARCH_REPLICAS ({self.search_replicas}) must be below the number "
                f"of nodes ({len(self.search_http_ports)} in RTC_CLUSTER_SEARCH_HTTP_PORTS)"
            )
        return self

    @model_validator(mode="after")
    def _spark_executors_fit(self) -> ClusterSettings:
        """An executor larger than a worker would never start (its job would wait forever)."""
        if jvm_memory_mb(self.spark_executor_memory) > jvm_memory_mb(self.spark_worker_memory):
            raise ValueError(
                f"RTC_CLUSTER_SPARK_EXECUTOR_MEMORY ({self.spark_executor_memory}) cannot exceed "
                f"RTC_CLUSTER_SPARK_WORKER_MEMORY ({self.spark_worker_memory})"
            )
        if self.spark_executor_cores > self.spark_worker_cores:
            raise ValueError(
                f"RTC_CLUSTER_SPARK_EXECUTOR_CORES ({self.spark_executor_cores}) cannot exceed "
                f"RTC_CLUSTER_SPARK_WORKER_CORES ({self.spark_worker_cores})"
            )
        for name, max_cores in (
            ("RTC_CLUSTER_SPARK_LIQUIDITY_MAX_CORES", self.spark_liquidity_max_cores),
            ("RTC_CLUSTER_SPARK_BARS_MAX_CORES", self.spark_bars_max_cores),
        ):
            if max_cores < self.spark_executor_cores:
                raise ValueError(
                    f"{name} ({max_cores}) must be at least RTC_CLUSTER_SPARK_EXECUTOR_CORES "
                    f"({self.spark_executor_cores}): the job would get no executor"
                )
        return self

    # --- derived -------------------------------------------------------------------------------

    @property
    def kafka_brokers(self) -> int:
        return len(self.kafka_ports)

    @property
    def search_nodes(self) -> int:
        return len(self.search_http_ports)

    @property
    def spark_workers(self) -> int:
        return len(self.spark_worker_ports)

    @property
    def celery_workers(self) -> int:
        return len(self.celery_worker_log_ports)

    @property
    def kafka_bootstrap(self) -> str:
        """Every broker of the cluster as a bootstrap list: ``host:p1,host:p2,host:p3``."""
        return ",".join(f"{self.host}:{port}" for port in self.kafka_ports)

    @property
    def search_urls(self) -> list[str]:
        """The HTTP address of every Elasticsearch node."""
        return [f"http://{self.host}:{port}" for port in self.search_http_ports]

    @property
    def spark_master_url(self) -> str:
        """Where the jobs are submitted: ``spark://host:port`` of the standalone master."""
        return f"spark://{self.host}:{self.spark_master_port}"
