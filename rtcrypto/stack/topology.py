"""Which topology a home runs, and the cluster topology's start and status.

The single topology is :mod:`rtcrypto.stack.lifecycle`'s own path (one broker, one node, Airflow
standalone, Spark ``local[2]`` inside each job). The cluster topology starts each engine's
members from its own module, in dependency order: the Kafka brokers, the Elasticsearch nodes,
the Spark standalone master and workers, then PostgreSQL, Redis and Airflow's components with
their Celery workers.

A start records the topology in ``<run_dir>/topology``, so that ``rtc status`` and ``rtc down``
from another shell (without ``RTC_TOPOLOGY``) describe and stop what runs, and so that a start of
the other topology over running members is refused instead of mixing the two.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from rtcrypto.config import Settings
from rtcrypto.config_cluster import Topology
from rtcrypto.stack import process
from rtcrypto.stack.errors import StackError

Progress = Callable[[str], None]  # receives one line of text per step

TOPOLOGY_FILE = "topology"
TOPOLOGY_VARIABLE = "RTC_TOPOLOGY"


def topology_path(settings: Settings) -> Path:
    """``<run_dir>/topology``: the topology of the last start, until ``rtc down``."""
    return settings.run_dir / TOPOLOGY_FILE


def recorded_topology(settings: Settings) -> Topology | None:
    """The topology the last start recorded, None if there is none (or it is unreadable)."""
    try:
        return Topology(topology_path(settings).read_text().strip())
    except (OSError, ValueError):
        return None


def record_topology(settings: Settings) -> None:
    """Record ``settings.topology`` as this home's, refusing to mix it with running members of
    the other one (:class:`StackError` says how to switch)."""
    recorded = recorded_topology(settings)
    if recorded is not None and recorded is not settings.topology and _any_running(settings):
        raise StackError(
            f"the platform in {settings.home} runs the {recorded} topology: stop it first "
            f"(`rtc down`), or start with --topology {recorded} (RTC_TOPOLOGY={recorded})"
        )
    path = topology_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{settings.topology}\n")


def forget_topology(settings: Settings) -> None:
    """After ``rtc down``: the next start may choose either topology."""
    topology_path(settings).unlink(missing_ok=True)


def adopt_recorded_topology(settings: Settings) -> bool:
    """Make this process (and its children) use the home's recorded topology when
    ``RTC_TOPOLOGY`` is not set; True if the environment changed (re-read the settings)."""
    recorded = recorded_topology(settings)
    if TOPOLOGY_VARIABLE in os.environ or recorded is None or recorded is settings.topology:
        return False
    os.environ[TOPOLOGY_VARIABLE] = str(recorded)
    return True


def _any_running(settings: Settings) -> bool:
    return any(status.running for status in process.list_processes(settings))


def start_cluster(
    settings: Settings,
    progress: Progress,
    *,
    with_search: bool,
    with_airflow: bool,
    timeouts_s: tuple[float, float, float],
) -> None:
    """Start every member of the cluster topology (each module leaves running members as they
    are); ``timeouts_s`` are Kafka's, Elasticsearch's and Airflow's health waits."""
    from rtcrypto.stack import kafka_cluster, spark_cluster

    kafka_timeout_s, search_timeout_s, airflow_timeout_s = timeouts_s
    kafka_cluster.start_kafka_cluster(settings, progress, timeout_s=kafka_timeout_s)
    if with_search:
        from rtcrypto.stack import search_cluster

        search_cluster.start_search_cluster(settings, progress, timeout_s=search_timeout_s)
    spark_cluster.start_spark_cluster(settings, progress)
    if with_airflow:
        from rtcrypto.stack import airflow_cluster

        # always waits for health: the Celery workers must be there before a DAG run is queued
        airflow_cluster.start_airflow_cluster(settings, progress, timeout_s=airflow_timeout_s)


def cluster_status(settings: Settings) -> list[str]:
    """Every member of the cluster topology as each engine's module describes it: Kafka's
    brokers with leaders, ISR and under-replicated partitions, Elasticsearch's nodes and health,
    Spark's master, workers and executors, PostgreSQL, Redis, Airflow's components and workers."""
    from rtcrypto.stack import airflow_cluster, kafka_cluster, search_cluster, spark_cluster

    lines: list[str] = []
    for describe in (
        kafka_cluster.kafka_cluster_status,
        search_cluster.search_cluster_status,
        spark_cluster.spark_cluster_status,
        airflow_cluster.airflow_cluster_status,
    ):
        try:
            lines += describe(settings)
        except Exception as error:  # noqa: BLE001 - one engine's failure must not hide the others
            lines.append(f"{describe.__module__.rsplit('.', 1)[-1]}: status failed: {error}")
    return lines
