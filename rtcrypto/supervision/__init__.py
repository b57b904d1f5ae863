"""Supervision of the streaming services: registry, health, lag, restarts, heartbeats, healthcheck.

``registry`` (:class:`ServiceSpec`, :data:`SERVICES`: how each service starts and stops),
``health`` (the pure judge and the supervisor's check), ``lag`` (consumer-group and checkpoint
lag), ``restarts`` (journal, restart, restart documents), ``indexing`` (what the supervisor
writes to Elasticsearch: restarts and the heartbeats it judged), ``heartbeats`` (reading
``service.heartbeat.v1``) and ``healthcheck`` (the docker-compose containers' check). Their
public names are re-exported here, so ``rtc``, ``plugins/rtc_airflow`` and the DAGs use one
face (``from rtcrypto import supervision``). It may import the root utilities (config, logs,
redact), ``market``, ``kafka`` (the client factory), ``search``, ``spark`` and ``feedbars`` (the
services' job options), and from ``rtcrypto.stack`` only the process manager and its probes
(``process``, ``errors``, ``kafka.broker_healthy``, ``airflow`` health), which it used before
the split. It never imports ``cli``, ``dags`` or ``plugins``; the simulator's launch still reads
the replay window from ``rtcrypto.platform.bootstrap`` (lazily), the one upward import left.
"""

from __future__ import annotations

from rtcrypto.supervision.health import (
    RESTART_STATES,
    HealthPolicy,
    HealthState,
    Observation,
    ServiceHealth,
    check_all,
    check_health,
    describe_health,
    health_policy,
    heartbeat_age_since_start,
    judge_health,
    observe,
    read_latest_heartbeats,
)
from rtcrypto.supervision.indexing import (
    heartbeat_actions,
    index_heartbeats,
)
from rtcrypto.supervision.lag import (
    committed_offsets,
    consumer_group_lag,
    end_offsets,
    kafka_admin,
    latest_checkpoint_offsets,
    offset_lag,
    parse_checkpoint_offsets,
    service_lag_records,
)
from rtcrypto.supervision.registry import (
    BARS,
    INGEST,
    LIQUIDITY,
    SERVICES,
    SIMULATOR,
    TRADER,
    LagSource,
    Launch,
    ServiceSpec,
    UnknownServiceError,
    enabled_services,
    get_service,
    secret_env,
    select_services,
    service_names,
    service_specs,
    settings_env,
    start_service,
    stop_service,
    symbol_groups,
)
from rtcrypto.supervision.restarts import (
    HOUR_MS,
    JOURNAL_NAME,
    RestartBackend,
    RestartLimitError,
    RestartRecord,
    append_restart,
    compose_restart_command,
    index_restart,
    journal_path,
    parse_journal,
    read_journal,
    restart_allowed,
    restart_counts,
    restart_service,
    restarts_index,
    restarts_since,
)

__all__ = [
    "BARS",
    "HOUR_MS",
    "HealthPolicy",
    "HealthState",
    "INGEST",
    "JOURNAL_NAME",
    "LIQUIDITY",
    "LagSource",
    "Launch",
    "Observation",
    "RESTART_STATES",
    "RestartBackend",
    "RestartLimitError",
    "RestartRecord",
    "SERVICES",
    "SIMULATOR",
    "ServiceHealth",
    "ServiceSpec",
    "TRADER",
    "UnknownServiceError",
    "append_restart",
    "check_all",
    "check_health",
    "committed_offsets",
    "compose_restart_command",
    "consumer_group_lag",
    "describe_health",
    "enabled_services",
    "end_offsets",
    "get_service",
    "health_policy",
    "heartbeat_actions",
    "heartbeat_age_since_start",
    "index_heartbeats",
    "index_restart",
    "journal_path",
    "judge_health",
    "kafka_admin",
    "latest_checkpoint_offsets",
    "observe",
    "offset_lag",
    "parse_checkpoint_offsets",
    "parse_journal",
    "read_journal",
    "read_latest_heartbeats",
    "restart_allowed",
    "restart_counts",
    "restart_service",
    "restarts_index",
    "restarts_since",
    "secret_env",
    "select_services",
    "service_lag_records",
    "service_names",
    "service_specs",
    "symbol_groups",
    "settings_env",
    "start_service",
    "stop_service",
]
