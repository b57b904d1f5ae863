"""The registry of the streaming services: how each one is started and stopped.

One registry (:data:`SERVICES`) drives ``rtc up``, ``rtc status`` and Airflow's supervisor
(``plugins/rtc_airflow``, ``dags/streaming_*.py``), so they all start a service the same way.
Adding a service is one :class:`ServiceSpec` entry: its name under the process manager, how
its command and environment are built from :class:`~rtcrypto.config.Settings`, the name it
publishes heartbeats under, and where its lag comes from (:class:`LagSource`, read by
:mod:`rtcrypto.supervision.lag`).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import Enum, StrEnum
from pathlib import Path

from pydantic import SecretBytes, SecretStr

from rtcrypto.config import PROJECT_ROOT, Feed, Settings, SimulatorReplay, Topics, get_settings
from rtcrypto.config_cluster import ClusterSettings, Topology
from rtcrypto.stack import process
from rtcrypto.stack.errors import ServiceStartError, StackError

SIMULATOR = "simulator"
INGEST = "ingest"
LIQUIDITY = "liquidity"
TRADER = "trader"
BARS = "bars"


class UnknownServiceError(StackError):
    """A service name that is not in the registry."""


class LagSource(StrEnum):
    """Where a service's lag is read from (see :mod:`rtcrypto.supervision.lag`)."""

    none = "none"
    heartbeat = "heartbeat"
    consumer_group = "consumer_group"
    checkpoint = "checkpoint"


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
        if name in _NESTED:
            continue
        rendered = _env_value(getattr(settings, name))
        if rendered is not None:
            env[f"RTC_{name.upper()}"] = rendered
    for name in Topics.model_fields:
        env[f"RTC_TOPIC_{name.upper()}"] = str(getattr(settings.topics, name))
    for name in ClusterSettings.model_fields:
        rendered = _env_value(getattr(settings.cluster, name))
        if rendered is not None:
            env[f"RTC_CLUSTER_{name.upper()}"] = rendered
    return env


_NESTED = frozenset({"topics", "cluster"})  # models of their own, with their own prefixes


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
        from rtcrypto.history.replay_window import (
            ReplayWindowError,
            replay_window,
            replay_window_path,
        )

        try:
            window = replay_window(settings)
        except ReplayWindowError as error:
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
        # sandbox mode pointed at this simulator: its sandbox takes RTC_GEMINI_API_KEY/_SECRET
        # from the environment (never on the command line, which `ps` shows)
        *(("--sandbox-from-settings",) if settings.trades_on_simulator_sandbox else ()),
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


# --- the ingest as several processes (cluster topology) ---------------------------------------


def symbol_groups(symbols: Sequence[str], processes: int) -> list[list[str]]:
    """``symbols`` dealt round-robin into ``min(processes, len(symbols))`` non-empty groups, in
    order (``["A", "B", "C"], 2`` -> ``[["A", "C"], ["B"]]``); every symbol in exactly one."""
    count = max(1, min(processes, len(symbols)))
    return [list(symbols[index::count]) for index in range(count)]


def ingest_groups(settings: Settings) -> list[list[str]]:
    """The symbol group of each ingest process: one group in the single topology; in the
    cluster topology up to ``RTC_CLUSTER_INGEST_PROCESSES`` (never an ingest without a symbol)."""
    if settings.topology is not Topology.CLUSTER:
        return [list(settings.symbols)]
    return symbol_groups(settings.symbols, settings.cluster.ingest_processes)


def _ingest_member(base: ServiceSpec, number: int, symbols: list[str]) -> ServiceSpec:
    """The ingest spec as member ``ingest-<number>``: its own symbols, pid file and heartbeat."""
    name = f"{INGEST}-{number}"
    env = {"RTC_SYMBOLS": ",".join(symbols), "RTC_INGEST_INSTANCE": name}

    def launch(settings: Settings) -> Launch:
        built = base.build_command(settings)
        return Launch(built.command, {**built.env, **env}, built.ports, built.host, built.port_hint)

    return replace(
        base,
        name=name,
        description=f"{base.description} ({', '.join(symbols)})",
        build_command=launch,
        heartbeat_service=name,
        compose_service=name,  # docker-compose's cluster profile runs ingest-1, ingest-2, ...
    )


def service_specs(settings: Settings) -> tuple[ServiceSpec, ...]:
    """Every service of this configuration, in start order: :data:`SERVICES`, with the ingest
    split into ``ingest-1`` ... (one per symbol group) when there are several groups."""
    groups = ingest_groups(settings)
    if len(groups) <= 1:
        return SERVICES
    specs: list[ServiceSpec] = []
    for spec in SERVICES:
        if spec.name != INGEST:
            specs.append(spec)
            continue
        specs += [_ingest_member(spec, number, group) for number, group in enumerate(groups, 1)]
    return tuple(specs)


def service_names(settings: Settings | None = None) -> list[str]:
    """Every service of this configuration (default: the process's settings), in start order."""
    return [spec.name for spec in service_specs(settings or get_settings())]


def enabled_services(settings: Settings) -> list[ServiceSpec]:
    """The services this configuration runs, in start order."""
    return [spec for spec in service_specs(settings) if spec.enabled(settings)]


def get_service(name: str, settings: Settings | None = None) -> ServiceSpec:
    """The registry entry of ``name`` in this configuration (default: the process's settings);
    :class:`UnknownServiceError` names the known ones."""
    specs = service_specs(settings or get_settings())
    for spec in specs:
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec in specs)
    raise UnknownServiceError(f"unknown service {name!r}: known are {known}")


def select_services(names: Iterable[str], settings: Settings) -> list[str]:
    """``names`` checked against the registry, in start order; empty means every enabled one."""
    wanted = [name.strip() for name in names if name and name.strip()]
    if not wanted:
        return [spec.name for spec in enabled_services(settings)]
    for name in wanted:
        get_service(name, settings)
    return [name for name in service_names(settings) if name in wanted]


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
