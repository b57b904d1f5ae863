"""The streaming services: how each one starts, how its health is judged, how it is restarted.

One registry (:data:`SERVICES`) drives ``rtc up``, ``rtc status`` and Airflow's supervisor
(``plugins/rtc_airflow``, ``dags/streaming_*.py``), so they all start a service the same way.
Adding a service is one :class:`ServiceSpec` entry: its name under the process manager, how
its command and environment are built from :class:`~rtcrypto.config.Settings`, the name it
publishes heartbeats under, and where its lag comes from.

Health is judged by a pure function (:func:`judge_health`) from what is observed at the edges:
is the process alive (pid file + ``/proc``), how old is its newest heartbeat on
``service.heartbeat.v1``, and how far behind its input it is. Lag, per service:

- ``heartbeat``: the ingest reads a websocket, not Kafka: its lag is the heartbeat's ``lag_ms``
  (receive time minus the newest exchange event time), judged against ``supervisor_max_lag_s``.
- ``consumer_group``: the trader's committed offsets on ``liquidity.minute.v1`` against the
  topic's end offsets (records not yet read), judged against ``supervisor_max_lag_records``.
- ``checkpoint``: the Spark job has no consumer group; its progress is in its checkpoint. The
  newest ``<checkpoint>/liquidity/offsets/<batch>`` file holds the input offsets the job has
  planned up to; the end offsets minus those are records not yet read. Chosen over the Spark
  heartbeat's ``lag_ms`` (now minus the watermark) because that one grows on a quiet market and
  trails by the watermark delay by design: records behind only grow when the job falls behind.
  The heartbeat's ``lag_ms`` is still shown by ``rtc status``.

A restart stops the process by its pid, starts it again through the process manager, and is
recorded: a log line, a line in the append-only journal ``<run_dir>/restarts.jsonl`` (service,
reason, time, old and new pid, backend, the service's restart count), and a document in the
Elasticsearch index ``<search_index_prefix>-restarts`` when Elasticsearch answers (fail-soft).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from pydantic import SecretBytes, SecretStr

from rtcrypto.config import PROJECT_ROOT, Feed, Settings, SimulatorReplay, Topics
from rtcrypto.stack import process
from rtcrypto.stack.errors import ServiceStartError, StackError

logger = logging.getLogger(__name__)

SIMULATOR = "simulator"
INGEST = "ingest"
LIQUIDITY = "liquidity"
TRADER = "trader"
BARS = "bars"
JOURNAL_NAME = "restarts.jsonl"
RESTARTS_INDEX_SUFFIX = "restarts"
HOUR_MS = 3_600_000


class UnknownServiceError(StackError):
    """A service name that is not in the registry."""


class RestartLimitError(StackError):
    """A service was restarted too often in the last hour: a person has to look at it."""


class HealthState(StrEnum):
    """What the supervisor concludes about one service."""

    healthy = "healthy"
    stale = "stale"  # alive, but no recent heartbeat: stuck
    dead = "dead"  # should run (its pid file is there) but the process is gone
    lagging = "lagging"  # alive and reporting, but too far behind its input
    stopped = "stopped"  # not expected to run: never started, or stopped on purpose
    unknown = "unknown"  # alive, but its heartbeats cannot be read (Kafka does not answer)


RESTART_STATES = frozenset({HealthState.dead, HealthState.stale})


class LagSource(StrEnum):
    """Where a service's lag is read from (see the module docstring)."""

    none = "none"
    heartbeat = "heartbeat"
    consumer_group = "consumer_group"
    checkpoint = "checkpoint"


class RestartBackend(StrEnum):
    """How a restart is carried out.

    ``local``: the process manager (pid files under ``run_dir``), the default and the only one
    ``rtc up`` uses. ``spark_submit``: the Spark job, its command built by the Airflow Spark
    provider's hook from an Airflow connection (``plugins/rtc_airflow/operators.py``), still
    owned by the process manager. ``compose``: ``docker compose restart <service>``.
    """

    local = "local"
    spark_submit = "spark_submit"
    compose = "compose"


@dataclass(frozen=True)
class Launch:
    """How to start one service: command, environment additions, ports it binds."""

    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[int, ...] = ()
    host: str = "127.0.0.1"
    port_hint: str = ""


@dataclass(frozen=True)
class ServiceSpec:
    """One streaming service of the registry."""

    name: str  # under the process manager: <run_dir>/<name>.pid, <log_dir>/<name>.log
    description: str
    build_command: Callable[[Settings], Launch]
    heartbeat_service: str | None  # Heartbeat.service; None: the service sends none
    lag_source: LagSource = LagSource.none
    input_topic: Callable[[Settings], str] | None = None
    consumer_group: Callable[[Settings], str] | None = None
    checkpoint_offsets_dir: Callable[[Settings], Path] | None = None
    compose_service: str | None = None  # its name in docker-compose.yml
    enabled: Callable[[Settings], bool] = lambda settings: True
    disabled_reason: Callable[[Settings], str] = lambda settings: "disabled"
    ready: Callable[[Settings], bool] | None = None  # after start: e.g. its port accepts
    ready_target: Callable[[Settings], str] = lambda settings: ""
    ready_timeout_s: float = 30.0

    def launch(self, settings: Settings) -> Launch:
        """The command and environment, with the settings passed on as ``RTC_*`` variables
        (secrets in the environment only, never in the command)."""
        built = self.build_command(settings)
        return Launch(
            command=built.command,
            env={**settings_env(settings), **secret_env(settings), **built.env},
            ports=built.ports,
            host=built.host,
            port_hint=built.port_hint,
        )


# --- settings as environment -------------------------------------------------------------------


def _env_value(value: object) -> str | None:
    """``value`` as an ``RTC_*`` variable; None for unset values and secrets (never written)."""
    if value is None or isinstance(value, SecretStr | SecretBytes):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    if isinstance(value, Path | Decimal | int | float | str):
        return str(value)
    return json.dumps(value, default=str)


def settings_env(settings: Settings) -> dict[str, str]:
    """Every non-secret setting as the ``RTC_*`` variable that reproduces it in a child process.

    Secrets (``SecretStr``) are left out: a child inherits them from this process's environment.
    """
    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        if name == "topics":
            continue
        rendered = _env_value(getattr(settings, name))
        if rendered is not None:
            env[f"RTC_{name.upper()}"] = rendered
    for name in Topics.model_fields:
        env[f"RTC_TOPIC_{name.upper()}"] = str(getattr(settings.topics, name))
    return env


def secret_env(settings: Settings) -> dict[str, str]:
    """The secret settings that are set, as ``RTC_*`` variables for a child's environment only.

    Needed where a secret did not come from its own variable: a ``user:password@`` taken out of
    ``RTC_SEARCH_URL`` (``settings_env`` passes the URL without it). Never print or log these.
    """
    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            env[f"RTC_{name.upper()}"] = value.get_secret_value()
    return env


# --- the registry ------------------------------------------------------------------------------


def _simulator_launch(settings: Settings) -> Launch:
    """History mode (default): the replay window's real minute bars on their own clock, resumed
    where the last run stopped; capture mode: the capture looped and shifted to now."""
    if settings.simulator_replay is SimulatorReplay.history:
        from rtcrypto.platform.bootstrap import BootstrapError, replay_window, replay_window_path

        try:
            window = replay_window(settings)
        except BootstrapError as error:
            raise StackError(f"simulator: {error}") from None
        feed_args: tuple[str, ...] = (
            "--history",
            window.source,
            "--start",
            window.start.isoformat(),
            "--end",
            window.end.isoformat(),
            "--speed",
            str(settings.simulator_history_speed),
            # the supervisor's restart continues from the last replayed minute, never going back
            "--resume-file",
            str(replay_window_path(settings).with_name("history-resume.json")),
        )
    else:
        if not settings.simulator_capture.exists():
            raise StackError(
                f"simulator capture {settings.simulator_capture} not found: set "
                "RTC_SIMULATOR_CAPTURE to a cryptofeed capture file (for example "
                "../shared/data/orderbook/*.gz)"
            )
        feed_args = (
            "--capture",
            str(settings.simulator_capture),
            "--loop",
            "--shift-to-now",  # a restart never replays minutes Spark's watermark has passed
            "--speed",
            str(settings.simulator_speed),
        )
    command = (
        sys.executable,
        "-m",
        "streaming.simulator",
        *feed_args,
        "--host",
        settings.simulator_host,
        "--port",
        str(settings.simulator_port),
    )
    return Launch(
        command=command,
        ports=(settings.simulator_port,),
        host=settings.simulator_host,
        port_hint="set RTC_SIMULATOR_PORT to a free port",
    )


def _liquidity_launch(settings: Settings) -> Launch:
    from rtcrypto.spark import submit as spark

    config = spark.LiquidityJobConfig.from_settings(settings)
    command = spark.build_submit_command(config, spark.kafka_connector_jars(settings))
    return Launch(command=tuple(command), env=spark.env_additions())


def _liquidity_offsets_dir(settings: Settings) -> Path:
    from rtcrypto.spark import submit as spark

    # The windowed query's checkpoint (the dead-letter query has its own, same input).
    return spark.default_checkpoint(settings) / "liquidity" / "offsets"


def _bars_launch(settings: Settings) -> Launch:
    from rtcrypto.feedbars import options
    from rtcrypto.spark import submit as spark

    job = options.BarsJobOptions.from_settings(settings)
    command = options.submit_command(job, spark.kafka_connector_jars(settings))
    return Launch(command=tuple(command), env=spark.env_additions())


def _bars_offsets_dir(settings: Settings) -> Path:
    from rtcrypto.feedbars import options

    return options.checkpoint_offsets_dir(settings)


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        name=SIMULATOR,
        description="exchange simulator: real minute bars (book modelled) or a Gemini capture, offline",
        build_command=_simulator_launch,
        heartbeat_service=None,  # judged by its process; the ingest's heartbeat shows its feed
        compose_service="simulator",
        enabled=lambda settings: settings.feed is Feed.simulator,
        disabled_reason=lambda settings: f"live: {settings.market_data_ws_url} (no simulator)",
        ready=lambda settings: process.port_accepts(
            settings.simulator_port, settings.simulator_host
        ),
        ready_target=lambda settings: f"{settings.simulator_host}:{settings.simulator_port}",
    ),
    ServiceSpec(
        name=INGEST,
        description="market data websocket -> Kafka",
        build_command=lambda settings: Launch(command=(sys.executable, "-m", "streaming.ingest")),
        heartbeat_service="ingest",
        lag_source=LagSource.heartbeat,
        compose_service="ingest",
    ),
    ServiceSpec(
        name=LIQUIDITY,
        description="Spark liquidity job (spark-submit)",
        build_command=_liquidity_launch,
        heartbeat_service="spark-liquidity",
        lag_source=LagSource.checkpoint,
        input_topic=lambda settings: settings.topics.orderbook,
        checkpoint_offsets_dir=_liquidity_offsets_dir,
        compose_service="liquidity",
    ),
    ServiceSpec(
        name=TRADER,
        description="forecast-driven trader (paper by default)",
        build_command=lambda settings: Launch(command=(sys.executable, "-m", "streaming.trader")),
        heartbeat_service="trader",
        lag_source=LagSource.consumer_group,
        input_topic=lambda settings: settings.topics.liquidity,
        consumer_group=lambda settings: settings.trader_consumer_group,
        compose_service="trader",
        enabled=lambda settings: _module_exists("streaming.trader"),
        disabled_reason=lambda settings: "not installed (no module streaming.trader)",
    ),
    ServiceSpec(
        name=BARS,
        description="Spark minute bars: trades -> history source gemini-feed (spark-submit)",
        build_command=_bars_launch,
        heartbeat_service="spark-bars",
        lag_source=LagSource.checkpoint,
        input_topic=lambda settings: settings.topics.trades,
        checkpoint_offsets_dir=_bars_offsets_dir,
        compose_service="bars",
    ),
)


def service_names() -> list[str]:
    """Every service of the registry, in start order."""
    return [spec.name for spec in SERVICES]


def enabled_services(settings: Settings) -> list[ServiceSpec]:
    """The services this configuration runs, in start order."""
    return [spec for spec in SERVICES if spec.enabled(settings)]


def get_service(name: str) -> ServiceSpec:
    """The registry entry of ``name``; :class:`UnknownServiceError` names the known ones."""
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise UnknownServiceError(f"unknown service {name!r}: known are {', '.join(service_names())}")


def select_services(names: Iterable[str], settings: Settings) -> list[str]:
    """``names`` checked against the registry, in start order; empty means every enabled one."""
    wanted = [name.strip() for name in names if name and name.strip()]
    if not wanted:
        return [spec.name for spec in enabled_services(settings)]
    for name in wanted:
        get_service(name)
    return [name for name in service_names() if name in wanted]


# --- start and stop ----------------------------------------------------------------------------


def start_service(spec: ServiceSpec, settings: Settings, *, launch: Launch | None = None) -> int:
    """Start ``spec`` through the process manager, wait until it is ready; return its pid.

    Raises :class:`~rtcrypto.stack.errors.ProcessAlreadyRunningError` if it runs already, and
    :class:`ServiceStartError` if it exits or is not ready within ``spec.ready_timeout_s``.
    """
    if not spec.enabled(settings):
        raise ServiceStartError(
            f"{spec.name} is not enabled here: {spec.disabled_reason(settings)}"
        )
    chosen = launch or spec.launch(settings)
    pid = process.start_process(
        spec.name,
        chosen.command,
        ports=chosen.ports,
        host=chosen.host,
        port_hint=chosen.port_hint,
        env=chosen.env,
        cwd=PROJECT_ROOT,
        settings=settings,
    )
    if spec.ready is not None:
        ready = spec.ready
        process.wait_until_healthy(
            spec.name,
            lambda: ready(settings),
            service=spec.name,
            target=spec.ready_target(settings),
            logs=[process.log_path(spec.name, settings)],
            timeout_s=spec.ready_timeout_s,
            settings=settings,
            poll_s=0.2,
        )
    return pid


def stop_service(name: str, settings: Settings, *, timeout_s: float = 30.0) -> bool:
    """Stop ``name`` (SIGTERM, then SIGKILL after ``timeout_s``); True if it was running.

    Its pid file goes away, so the supervisor sees it as stopped on purpose, not dead.
    """
    get_service(name)
    return process.stop_process(name, timeout_s=timeout_s, settings=settings)


# --- the health judge (pure) -------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """What was observed about one service at one moment (the judge's input)."""

    service: str
    expected: bool  # a pid file says it should run
    alive: bool
    pid: int | None = None
    uptime_s: float | None = None  # since the process started
    heartbeat_readable: bool = True  # False: Kafka did not answer
    heartbeat_age_s: float | None = None  # newest heartbeat sent since the process started
    lag_records: int | None = None
    lag_s: float | None = None  # event-time lag from the heartbeat


@dataclass(frozen=True)
class HealthPolicy:
    """Thresholds of one service (from settings, see :func:`health_policy`)."""

    expects_heartbeat: bool
    stale_after_s: float
    startup_grace_s: float
    max_lag_records: int | None = None  # None: records behind are not judged
    max_lag_s: float | None = None  # None: the heartbeat's event-time lag is not judged


@dataclass(frozen=True)
class ServiceHealth:
    """The judge's verdict on one service, with the figures it was based on."""

    service: str
    state: HealthState
    reason: str
    pid: int | None = None
    heartbeat_age_s: float | None = None
    lag_records: int | None = None
    lag_s: float | None = None

    @property
    def needs_restart(self) -> bool:
        """Dead or stuck (stale): a restart may help. Lagging is reported, not restarted."""
        return self.state in RESTART_STATES

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly (for XCom)."""
        data = asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceHealth:
        return cls(
            service=str(data["service"]),
            state=HealthState(data["state"]),
            reason=str(data.get("reason", "")),
            pid=data.get("pid"),
            heartbeat_age_s=data.get("heartbeat_age_s"),
            lag_records=data.get("lag_records"),
            lag_s=data.get("lag_s"),
        )


def judge_health(observation: Observation, policy: HealthPolicy) -> ServiceHealth:
    """Healthy, stale, dead, lagging, stopped or unknown, with a one-line reason.

    Order: not expected -> stopped; process gone -> dead; no heartbeat since the process
    started, past the start-up grace, or a heartbeat older than ``stale_after_s`` -> stale;
    lag above a threshold -> lagging; else healthy.
    """

    def verdict(state: HealthState, reason: str) -> ServiceHealth:
        return ServiceHealth(
            service=observation.service,
            state=state,
            reason=reason,
            pid=observation.pid,
            heartbeat_age_s=observation.heartbeat_age_s,
            lag_records=observation.lag_records,
            lag_s=observation.lag_s,
        )

    if not observation.expected:
        return verdict(HealthState.stopped, "not started")
    if not observation.alive:
        return verdict(HealthState.dead, f"process {observation.pid} is not running")
    if policy.expects_heartbeat:
        if not observation.heartbeat_readable:
            return verdict(
                HealthState.unknown, "process alive; heartbeats unreadable (Kafka does not answer)"
            )
        age = observation.heartbeat_age_s
        uptime = observation.uptime_s
        if age is None:
            if uptime is not None and uptime <= policy.startup_grace_s:
                return verdict(
                    HealthState.healthy,
                    f"starting: no heartbeat yet, {uptime:.0f} s of "
                    f"{policy.startup_grace_s:.0f} s grace",
                )
            since = f" in {uptime:.0f} s since start" if uptime is not None else ""
            return verdict(HealthState.stale, f"no heartbeat{since}")
        if age > policy.stale_after_s:
            return verdict(
                HealthState.stale,
                f"last heartbeat {age:.0f} s ago (stale after {policy.stale_after_s:.0f} s)",
            )
    if (
        policy.max_lag_records is not None
        and observation.lag_records is not None
        and observation.lag_records > policy.max_lag_records
    ):
        return verdict(
            HealthState.lagging,
            f"{observation.lag_records:,} input records behind (limit {policy.max_lag_records:,})",
        )
    if (
        policy.max_lag_s is not None
        and observation.lag_s is not None
        and observation.lag_s > policy.max_lag_s
    ):
        return verdict(
            HealthState.lagging,
            f"event-time lag {observation.lag_s:.0f} s (limit {policy.max_lag_s:.0f} s)",
        )
    reason = "process alive" if not policy.expects_heartbeat else "heartbeat fresh"
    return verdict(HealthState.healthy, reason)


def health_policy(spec: ServiceSpec, settings: Settings) -> HealthPolicy:
    """Thresholds of ``spec`` from settings: stale after N heartbeat intervals, lag limits."""
    judged_by_records = spec.lag_source in (LagSource.consumer_group, LagSource.checkpoint)
    return HealthPolicy(
        expects_heartbeat=spec.heartbeat_service is not None,
        stale_after_s=settings.supervisor_stale_heartbeats * settings.heartbeat_interval_s,
        startup_grace_s=settings.supervisor_startup_grace_s,
        max_lag_records=settings.supervisor_max_lag_records if judged_by_records else None,
        max_lag_s=settings.supervisor_max_lag_s if spec.lag_source is LagSource.heartbeat else None,
    )


def heartbeat_age_since_start(
    beat: Mapping[str, Any] | None, started_at_s: float | None, now_ms: int
) -> float | None:
    """Age in seconds of ``beat``, or None if there is none or it predates the process start.

    A heartbeat older than the process is its predecessor's: after a restart it says nothing
    about the new process.
    """
    if not beat or not isinstance(beat.get("ts_ms"), int):
        return None
    ts_ms = int(beat["ts_ms"])
    if started_at_s is not None and ts_ms < int(started_at_s * 1000):
        return None
    return max(0.0, (now_ms - ts_ms) / 1000)


# --- lag (offsets) -----------------------------------------------------------------------------


def offset_lag(end_offsets: Mapping[int, int], consumed: Mapping[int, int | None]) -> int | None:
    """Records between ``consumed`` offsets and ``end_offsets``, summed over partitions.

    None when no partition has a consumed offset yet (nothing committed, no batch planned).
    A partition without one counts from offset 0 (conservative).
    """
    if not any(offset is not None for offset in consumed.values()):
        return None
    total = 0
    for partition, end in end_offsets.items():
        position = consumed.get(partition)
        total += max(0, end - (position or 0))
    return total


def parse_checkpoint_offsets(text: str, topic: str) -> dict[int, int] | None:
    """Kafka offsets of ``topic`` in a Spark ``offsets/<batch>`` file, or None if absent.

    The file is a version line (``v1``), a metadata JSON line, then one JSON line (or ``-``)
    per source, e.g. ``{"gemini.orderbook.v1":{"0":1734}}``.
    """
    for line in text.splitlines()[2:]:
        try:
            source = json.loads(line)
        except ValueError:
            continue
        if isinstance(source, dict) and isinstance(source.get(topic), dict):
            return {int(partition): int(offset) for partition, offset in source[topic].items()}
    return None


def latest_checkpoint_offsets(offsets_dir: Path, topic: str) -> dict[int, int] | None:
    """Offsets of ``topic`` in the newest batch file of a checkpoint's ``offsets/`` folder."""
    try:
        batches = [int(path.name) for path in offsets_dir.iterdir() if path.name.isdigit()]
    except OSError:
        return None
    if not batches:
        return None
    try:
        text = (offsets_dir / str(max(batches))).read_text()
    except OSError:
        return None
    return parse_checkpoint_offsets(text, topic)


def kafka_admin(settings: Settings, timeout_s: float = 5.0) -> Any:
    """A confluent-kafka ``AdminClient`` on ``settings.kafka_bootstrap`` (sends nothing yet)."""
    from confluent_kafka.admin import AdminClient

    return AdminClient(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "socket.timeout.ms": int(timeout_s * 1000),
            "client.id": "rtc-supervisor",
        }
    )


def end_offsets(admin: Any, topic: str, timeout_s: float = 5.0) -> dict[int, int]:
    """The end (next write) offset of each partition of ``topic``."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    metadata = admin.list_topics(topic=topic, timeout=timeout_s)
    partitions = sorted(metadata.topics[topic].partitions) if topic in metadata.topics else []
    if not partitions:
        return {}
    futures = admin.list_offsets(
        {TopicPartition(topic, partition): OffsetSpec.latest() for partition in partitions},
        request_timeout=timeout_s,
    )
    return {
        topic_partition.partition: int(future.result().offset)
        for topic_partition, future in futures.items()
    }


def committed_offsets(
    admin: Any, group: str, topic: str, timeout_s: float = 5.0
) -> dict[int, int | None]:
    """The consumer group's committed offset per partition of ``topic`` (None: none yet)."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    futures = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)], request_timeout=timeout_s
    )
    result = futures[group].result()
    return {
        item.partition: (int(item.offset) if item.offset >= 0 else None)
        for item in result.topic_partitions
        if item.topic == topic
    }


def consumer_group_lag(admin: Any, group: str, topic: str, timeout_s: float = 5.0) -> int | None:
    """Records of ``topic`` the consumer group has not committed yet; None without commits."""
    return offset_lag(end_offsets(admin, topic, timeout_s), committed_offsets(admin, group, topic))


def service_lag_records(spec: ServiceSpec, settings: Settings, admin: Any) -> int | None:
    """Records ``spec`` is behind its input topic (consumer group or checkpoint); None if unknown."""
    if spec.input_topic is None:
        return None
    topic = spec.input_topic(settings)
    if spec.lag_source is LagSource.consumer_group and spec.consumer_group is not None:
        return consumer_group_lag(admin, spec.consumer_group(settings), topic)
    if spec.lag_source is LagSource.checkpoint and spec.checkpoint_offsets_dir is not None:
        planned = latest_checkpoint_offsets(spec.checkpoint_offsets_dir(settings), topic)
        if planned is None:
            return None
        return offset_lag(end_offsets(admin, topic), dict(planned))
    return None


# --- observing (I/O) ---------------------------------------------------------------------------


def read_latest_heartbeats(settings: Settings) -> dict[str, dict[str, Any]] | None:
    """The newest heartbeat of each service, or None when Kafka does not answer."""
    from rtcrypto.stack.kafka import broker_healthy
    from rtcrypto.supervision.heartbeats import latest_by_service, read_recent

    if not broker_healthy(settings.kafka_bootstrap, timeout_s=2.0):
        return None
    return latest_by_service(read_recent(settings.kafka_bootstrap, settings.topics.heartbeat))


def observe(
    spec: ServiceSpec,
    settings: Settings,
    *,
    heartbeats: Mapping[str, dict[str, Any]] | None,
    admin: Any | None = None,
    now_ms: int | None = None,
) -> Observation:
    """Process state, heartbeat age and lag of ``spec`` (``heartbeats=None``: Kafka is down).

    Offsets are read only for a live process and only when ``admin`` is given; a failed read
    leaves the lag unknown (logged), it never fails the observation.
    """
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    status = process.process_status(spec.name, settings)
    expected = status.pid is not None
    uptime_s = (
        max(0.0, now_ms / 1000 - status.started_at_s)
        if status.running and status.started_at_s
        else None
    )
    beat = heartbeats.get(spec.heartbeat_service) if heartbeats and spec.heartbeat_service else None
    age = heartbeat_age_since_start(beat, status.started_at_s, now_ms) if status.running else None
    lag_ms = beat.get("lag_ms") if beat else None
    lag_records = None
    if status.running and admin is not None and heartbeats is not None:
        try:
            lag_records = service_lag_records(spec, settings, admin)
        except Exception as error:  # any client error: the lag stays unknown, health still judged
            logger.warning("lag of %s unknown: %s: %s", spec.name, type(error).__name__, error)
    return Observation(
        service=spec.name,
        expected=expected,
        alive=status.running,
        pid=status.pid,
        uptime_s=uptime_s,
        heartbeat_readable=heartbeats is not None,
        heartbeat_age_s=age,
        lag_records=lag_records,
        lag_s=lag_ms / 1000 if isinstance(lag_ms, int) and age is not None else None,
    )


def check_health(
    spec: ServiceSpec,
    settings: Settings,
    *,
    heartbeats: Mapping[str, dict[str, Any]] | None = None,
    read_heartbeats: bool = True,
    admin: Any | None = None,
) -> ServiceHealth:
    """Observe ``spec`` and judge it. Reads the heartbeats unless they are given."""
    if heartbeats is None and read_heartbeats:
        heartbeats = read_latest_heartbeats(settings)
    if (
        admin is None
        and heartbeats is not None
        and spec.lag_source
        in (
            LagSource.consumer_group,
            LagSource.checkpoint,
        )
    ):
        admin = kafka_admin(settings)
    observation = observe(spec, settings, heartbeats=heartbeats, admin=admin)
    return judge_health(observation, health_policy(spec, settings))


def check_all(settings: Settings) -> list[ServiceHealth]:
    """Health of every service of the registry (the heartbeats are read once)."""
    heartbeats = read_latest_heartbeats(settings)
    admin = kafka_admin(settings) if heartbeats is not None else None
    return [
        judge_health(
            observe(spec, settings, heartbeats=heartbeats, admin=admin),
            health_policy(spec, settings),
        )
        for spec in SERVICES
    ]


# --- restart journal ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RestartRecord:
    """One restart: what, why, when (UTC ms), the pids before and after, how, which one."""

    service: str
    reason: str
    ts_ms: int
    old_pid: int | None
    new_pid: int | None
    backend: str = RestartBackend.local.value
    count: int = 1  # this service's restarts in the journal, this one included

    @property
    def ts(self) -> str:
        """ISO 8601 UTC time of the restart."""
        return datetime.fromtimestamp(self.ts_ms / 1000, UTC).isoformat(timespec="milliseconds")

    @property
    def document_id(self) -> str:
        """Deterministic Elasticsearch ``_id``: a replay of the journal never duplicates."""
        return f"{self.service}:{self.ts_ms}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ts": self.ts}


def journal_path(settings: Settings) -> Path:
    """``<run_dir>/restarts.jsonl``: one JSON line per restart, appended, never rewritten."""
    return settings.run_dir / JOURNAL_NAME


def parse_journal(lines: Iterable[str]) -> list[RestartRecord]:
    """Restart records from journal lines; unreadable lines are skipped."""
    records = []
    for line in lines:
        try:
            data = json.loads(line)
            records.append(
                RestartRecord(
                    service=str(data["service"]),
                    reason=str(data["reason"]),
                    ts_ms=int(data["ts_ms"]),
                    old_pid=data.get("old_pid"),
                    new_pid=data.get("new_pid"),
                    backend=str(data.get("backend", RestartBackend.local.value)),
                    count=int(data.get("count", 1)),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return records


def read_journal(settings: Settings) -> list[RestartRecord]:
    """Every restart recorded in ``<run_dir>/restarts.jsonl`` (none if there is no journal)."""
    try:
        text = journal_path(settings).read_text()
    except OSError:
        return []
    return parse_journal(text.splitlines())


def restart_counts(records: Iterable[RestartRecord]) -> dict[str, int]:
    """Restarts per service."""
    return dict(Counter(record.service for record in records))


def restarts_since(records: Iterable[RestartRecord], service: str, since_ms: int) -> int:
    """Restarts of ``service`` at or after ``since_ms`` (UTC ms)."""
    return sum(1 for record in records if record.service == service and record.ts_ms >= since_ms)


def restart_allowed(
    records: Iterable[RestartRecord], service: str, now_ms: int, max_per_hour: int
) -> bool:
    """False once ``service`` was restarted ``max_per_hour`` times in the last hour."""
    return restarts_since(records, service, now_ms - HOUR_MS) < max_per_hour


def append_restart(
    settings: Settings,
    *,
    service: str,
    reason: str,
    old_pid: int | None,
    new_pid: int | None,
    backend: RestartBackend,
    ts_ms: int | None = None,
) -> RestartRecord:
    """Append one restart to the journal (under a lock, so counts stay exact); return it."""
    path = journal_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with process.exclusive_lock("restarts", settings):
        count = restart_counts(read_journal(settings)).get(service, 0) + 1
        record = RestartRecord(
            service=service,
            reason=reason,
            ts_ms=time.time_ns() // 1_000_000 if ts_ms is None else ts_ms,
            old_pid=old_pid,
            new_pid=new_pid,
            backend=backend.value,
            count=count,
        )
        with path.open("a") as journal:
            journal.write(json.dumps(record.as_dict(), sort_keys=True) + "\n")
    return record


def restarts_index(settings: Settings) -> str:
    """``<search_index_prefix>-restarts`` (``rtc-restarts`` by default)."""
    from rtcrypto.search.indices import index_name

    return index_name("restarts", settings.search_index_prefix)


def index_restart(record: RestartRecord, settings: Settings, timeout_s: float = 5.0) -> bool:
    """Index ``record`` into ``rtc-restarts`` (``_id`` service:ts_ms); True once acknowledged.

    Goes through the project's ``SearchWriter``: when Elasticsearch does not answer, the document
    is spooled under ``<search_spool_path>/restarts/`` and re-sent by the next restart's writer;
    this returns False with a warning. Never raises: the journal is the record of truth.
    The document holds service, reason, ts_ms and the new pid (the index's strict mapping);
    the old pid, backend and count are in the journal.
    """
    from rtcrypto.search.client import search_client
    from rtcrypto.search.documents import restart_document
    from rtcrypto.search.writer import SearchWriter

    action = restart_document(
        record.service,
        record.ts_ms,
        reason=record.reason,
        pid=record.new_pid,
        prefix=settings.search_index_prefix,
    )
    try:
        # One restarts writer at a time (its spool folder takes one): concurrent restarts queue.
        with process.exclusive_lock("restarts-index", settings):
            client = search_client(settings, request_timeout_s=timeout_s, max_retries=0)
            writer = SearchWriter(
                client,
                spool_dir=settings.search_spool_path,
                name=RESTARTS_INDEX_SUFFIX,
                batch_size=1,
                flush_interval_s=0.1,
                retry_initial_s=0.2,
            )
            writer.add(action)
            stats = writer.close(timeout_s=timeout_s * 2)
    except Exception as error:  # any writer or client error: warn, never fail the restart
        logger.warning(
            "restart of %s not indexed in %s (journal has it): %s",
            record.service,
            action.index,
            type(error).__name__,
        )
        return False
    if stats.indexed >= 1 and stats.spooled == 0 and stats.dead == 0:
        return True
    logger.warning(
        "restart of %s not indexed in %s (journal has it; spooled under %s, re-sent by the "
        "next restart): %s",
        record.service,
        action.index,
        settings.search_spool_path / RESTARTS_INDEX_SUFFIX,
        stats.last_error or "Elasticsearch did not acknowledge",
    )
    return False


# --- restart -----------------------------------------------------------------------------------


def compose_restart_command(
    compose_service: str, compose_file: Path | None = None, project_name: str | None = None
) -> list[str]:
    """``docker compose [-f FILE] [-p NAME] restart SERVICE``."""
    command = ["docker", "compose"]
    if compose_file is not None:
        command += ["-f", str(compose_file)]
    if project_name:
        command += ["-p", project_name]
    return [*command, "restart", compose_service]


def restart_service(
    name: str,
    reason: str,
    settings: Settings,
    *,
    backend: RestartBackend = RestartBackend.local,
    launch: Launch | None = None,
    compose_file: Path | None = None,
    stop_timeout_s: float = 30.0,
    enforce_limit: bool = True,
    index: bool = True,
) -> RestartRecord:
    """Restart ``name`` and record it (log line, journal, Elasticsearch when it answers).

    ``local`` / ``spark_submit``: stop by pid (a dead process only loses its pid file), then
    start through the process manager (``launch`` replaces the registry's command, e.g. the
    Spark provider's). ``compose``: ``docker compose restart`` (no pids). Raises
    :class:`RestartLimitError` after ``supervisor_max_restarts_per_hour`` restarts in an hour.
    """
    spec = get_service(name)
    now_ms = time.time_ns() // 1_000_000
    if enforce_limit and not restart_allowed(
        read_journal(settings), name, now_ms, settings.supervisor_max_restarts_per_hour
    ):
        raise RestartLimitError(
            f"{name} was restarted {settings.supervisor_max_restarts_per_hour} times in the last "
            f"hour; not restarting it again. Read {process.log_path(name, settings)} and "
            f"{journal_path(settings)}, fix the cause, then start it (`rtc up` or the "
            "streaming_start DAG)"
        )
    old_pid: int | None
    new_pid: int | None
    if backend is RestartBackend.compose:
        if not spec.compose_service:
            raise StackError(f"{name} has no docker-compose service")
        command = compose_restart_command(spec.compose_service, compose_file)
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise StackError(
                f"`{' '.join(command)}` failed (exit {completed.returncode}): "
                f"{(completed.stderr or completed.stdout).strip()[-500:]}"
            )
        old_pid = new_pid = None
    else:
        old_pid = process.read_pid(name, settings)
        process.stop_process(name, timeout_s=stop_timeout_s, settings=settings)
        new_pid = start_service(spec, settings, launch=launch)
    record = append_restart(
        settings,
        service=name,
        reason=reason,
        old_pid=old_pid,
        new_pid=new_pid,
        backend=backend,
    )
    logger.warning(
        "restarted service=%s reason=%s old_pid=%s new_pid=%s backend=%s restarts=%d",
        name,
        reason,
        old_pid,
        new_pid,
        backend.value,
        record.count,
    )
    if index:
        index_restart(record, settings)
    return record


def describe_health(health: ServiceHealth) -> dict[str, str]:
    """Printable columns of one verdict: state, heartbeat age, lag, pid, reason."""
    lag_parts = []
    if health.lag_records is not None:
        lag_parts.append(f"{health.lag_records:,} rec")
    if health.lag_s is not None:
        lag_parts.append(f"{health.lag_s:.1f} s")
    return {
        "state": health.state.value,
        "heartbeat": "-"
        if health.heartbeat_age_s is None
        else f"{health.heartbeat_age_s:.0f} s ago",
        "lag": ", ".join(lag_parts) or "-",
        "pid": str(health.pid) if health.pid is not None else "-",
        "reason": health.reason,
    }
