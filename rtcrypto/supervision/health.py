"""The health judge: is a service healthy, stale, dead, lagging, stopped or unknown, and why.

Health is judged by a pure function (:func:`judge_health`) from what is observed at the edges
(:func:`observe`): is the process alive (pid file + ``/proc``), how old is its newest heartbeat
on ``service.heartbeat.v1``, and how far behind its input it is (:mod:`rtcrypto.supervision.lag`).
:func:`check_health` and :func:`check_all` are the supervisor's check (``rtc`` and Airflow's
``ServiceHeartbeatSensor`` through ``plugins/rtc_airflow/hooks.py``): they observe, judge, and
index the heartbeats they judged into ``<search_index_prefix>-heartbeat``
(:func:`rtcrypto.supervision.indexing.index_heartbeats`: idempotent and fail-soft).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from rtcrypto.config import Settings
from rtcrypto.stack import process
from rtcrypto.supervision.indexing import index_heartbeats
from rtcrypto.supervision.lag import kafka_admin, service_lag_records
from rtcrypto.supervision.registry import LagSource, ServiceSpec, service_specs

logger = logging.getLogger(__name__)


class HealthState(StrEnum):
    """What the supervisor concludes about one service."""

    healthy = "healthy"
    stale = "stale"  # alive, but no recent heartbeat: stuck
    dead = "dead"  # should run (its pid file is there) but the process is gone
    lagging = "lagging"  # alive and reporting, but too far behind its input
    stopped = "stopped"  # not expected to run: never started, or stopped on purpose
    unknown = "unknown"  # alive, but its heartbeats cannot be read (Kafka does not answer)


RESTART_STATES = frozenset({HealthState.dead, HealthState.stale})


RECORD_LAG_SOURCES = frozenset({LagSource.consumer_group, LagSource.checkpoint})


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


def _above(value: float | None, limit: float | None) -> bool:
    """True when both are known and ``value`` exceeds ``limit`` (an unknown lag is not judged)."""
    return value is not None and limit is not None and value > limit


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
    if _above(observation.lag_records, policy.max_lag_records):
        return verdict(
            HealthState.lagging,
            f"{observation.lag_records:,} input records behind (limit {policy.max_lag_records:,})",
        )
    if _above(observation.lag_s, policy.max_lag_s):
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
    """Observe ``spec`` and judge it. Reads the heartbeats unless they are given.

    The heartbeat of ``spec`` that was judged (if any) is indexed into ``<prefix>-heartbeat``
    under its deterministic ``_id``: checking twice leaves one document (fail-soft).
    """
    if heartbeats is None and read_heartbeats:
        heartbeats = read_latest_heartbeats(settings)
    if admin is None and heartbeats is not None and spec.lag_source in RECORD_LAG_SOURCES:
        admin = kafka_admin(settings)
    observation = observe(spec, settings, heartbeats=heartbeats, admin=admin)
    verdict = judge_health(observation, health_policy(spec, settings))
    beat = heartbeats.get(spec.heartbeat_service) if heartbeats and spec.heartbeat_service else None
    if beat is not None:
        index_heartbeats([beat], settings)
    return verdict


def check_all(settings: Settings) -> list[ServiceHealth]:
    """Health of every service of the registry (the heartbeats are read once, then indexed)."""
    heartbeats = read_latest_heartbeats(settings)
    admin = kafka_admin(settings) if heartbeats is not None else None
    verdicts = [
        judge_health(
            observe(spec, settings, heartbeats=heartbeats, admin=admin),
            health_policy(spec, settings),
        )
        for spec in service_specs(settings)
    ]
    if heartbeats:
        index_heartbeats(heartbeats.values(), settings)
    return verdicts


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
