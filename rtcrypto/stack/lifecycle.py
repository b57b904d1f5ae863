"""Start, stop and describe the embedded local stack (Kafka, Elasticsearch, Airflow) as values.

What ``rtc stack up|down|status`` and ``rtc up|down`` do, as plain functions: each takes the
settings and a ``progress`` callback that receives one line of text per step (the CLI prints
them), and raises :class:`rtcrypto.stack.errors.StackError` on an expected failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rtcrypto.config import Settings
from rtcrypto.config_cluster import Topology
from rtcrypto.redact import redact_url
from rtcrypto.stack import airflow, kafka, maven, postgres, process, search, topology

Progress = Callable[[str], None]  # receives one line of text per step

# Airflow (the supervisor; in the cluster its components and Celery workers) stops first, so
# that nothing restarts a service being stopped; infrastructure stops last, after every service
# that may still be writing to it (the cluster's members included: brokers, nodes, Spark's
# master and workers, PostgreSQL and Redis, which Airflow needs until it has stopped).
_STOP_FIRST = (airflow.AIRFLOW_PROCESS,)
_STOP_LAST = (kafka.KAFKA_PROCESS, search.SEARCH_PROCESS, "spark-master", "spark-worker")
_STOP_LAST_NAMES = ("postgres", "redis")  # Airflow needs them until it has stopped


def _member_of(name: str, engines: tuple[str, ...]) -> bool:
    """``name`` is one of ``engines`` or a numbered member of one (``kafka-2``)."""
    return any(name == engine or name.startswith(f"{engine}-") for engine in engines)


def _stop_rank(name: str) -> int:
    if _member_of(name, _STOP_FIRST):
        return 0
    if _member_of(name, _STOP_LAST):
        return 2
    return 3 if name in _STOP_LAST_NAMES else 1


@dataclass(frozen=True)
class StackOptions:
    """What :func:`start_stack` starts and how long it waits (seconds) for each part's health."""

    kafka_timeout_s: float = 90.0
    with_search: bool = True
    search_timeout_s: float = 120.0
    with_airflow: bool = True
    airflow_timeout_s: float = 180.0
    airflow_wait: bool = True  # False: start Airflow in the background, do not wait for health


def _megabytes(size_bytes: int) -> str:
    return f"{size_bytes / 1_000_000:.0f} MB"


def _resolve(jar_set: maven.JarSet, settings: Settings, progress: Progress) -> None:
    """Resolve one jar set, saying whether Maven runs and how long it took."""
    target = maven.jar_dir(jar_set, settings)
    if maven.is_resolved(jar_set, settings):
        progress(f"jars      {jar_set.name} {jar_set.version}: cached in {target}")
        return
    progress(
        f"jars      {jar_set.name} {jar_set.version}: resolving from Maven Central "
        f"(mvn dependency:copy-dependencies, log {settings.log_dir / f'maven-{jar_set.name}.log'})"
    )
    result = maven.resolve_jars(jar_set, settings)
    progress(
        f"          {result.jar_count} jars, {_megabytes(result.size_bytes)} in {target} "
        f"({result.seconds:.1f} s)"
    )


def start_stack(settings: Settings, options: StackOptions, progress: Progress) -> None:
    """Resolve jars (first run only), start Kafka (KRaft), create the topics, then start
    Elasticsearch and Airflow as ``options`` ask; each part already running is left as it is."""
    started = time.monotonic()
    topology.record_topology(settings)  # refuses to mix with running members of the other one
    process.stopping_marker(settings).unlink(missing_ok=True)  # a start ends an earlier `rtc down`
    maven.require_java()
    jar_sets = [maven.kafka_broker_jar_set(settings), maven.spark_kafka_jar_set(settings)]
    if options.with_search:
        search.find_search_java(settings)  # say "no JDK 21" before any download
        jar_sets.append(search.elasticsearch_jar_set(settings))
    for jar_set in jar_sets:
        _resolve(jar_set, settings, progress)
    if settings.topology is Topology.CLUSTER:
        topology.start_cluster(
            settings,
            progress,
            with_search=options.with_search,
            with_airflow=options.with_airflow,
            timeouts_s=(
                options.kafka_timeout_s,
                options.search_timeout_s,
                options.airflow_timeout_s,
            ),
        )
    else:
        _start_single(settings, options, progress)
    ready = f"ready     Kafka bootstrap {settings.kafka_bootstrap}"
    if options.with_search:
        ready += f", Elasticsearch {redact_url(settings.search_url)}"
    if options.with_airflow:
        ready += f", Airflow {settings.airflow_url}"
    progress(f"{ready} ({settings.topology} topology, {time.monotonic() - started:.1f} s)")


def _start_single(settings: Settings, options: StackOptions, progress: Progress) -> None:
    """The single topology: one broker, one Elasticsearch node, Airflow standalone."""
    _start_kafka(settings, options.kafka_timeout_s, progress)
    if options.with_search:
        _start_search(settings, options.search_timeout_s, progress)
    if options.with_airflow:
        _start_airflow(settings, options.airflow_timeout_s, options.airflow_wait, progress)


def _start_kafka(settings: Settings, timeout_s: float, progress: Progress) -> None:
    """Start the KRaft broker and create (or re-bound) every topic of the settings."""
    if not process.is_running(kafka.KAFKA_PROCESS, settings):
        progress(f"kafka     starting {settings.kafka_version} (KRaft broker+controller) ...")
    result = kafka.start_kafka(settings, timeout_s=timeout_s)
    state = "already running" if result.already_running else "started"
    formatted = ", storage formatted" if result.formatted else ""
    progress(
        f"kafka     {state} (pid {result.pid}{formatted}), healthy after "
        f"{result.seconds_to_healthy:.1f} s; data {kafka.kafka_paths(settings).data_dir}"
    )
    created = kafka.ensure_topics(
        settings.topics.all(),
        bootstrap=settings.kafka_bootstrap,
        partitions=settings.kafka_partitions,
        configs=kafka.topic_configs(settings),  # bounds, also set on existing topics
    )
    existing = [topic for topic in settings.topics.all() if topic not in created]
    progress(
        f"topics    created: {', '.join(created) or '-'}; existing: {', '.join(existing) or '-'}"
    )


def _start_search(settings: Settings, timeout_s: float, progress: Progress) -> None:
    """Start the local Elasticsearch node (after Kafka) and say how it went."""
    if not process.is_running(search.SEARCH_PROCESS, settings):
        java = search.find_search_java(settings)
        progress(
            f"search    starting Elasticsearch {settings.search_version} "
            f"(single node, Java {java.major}, heap {settings.search_heap}) ..."
        )
    result = search.start_search(settings, timeout_s=timeout_s)
    state = "already running" if result.already_running else "started"
    built = ", launcher compiled" if result.built_launcher else ""
    progress(
        f"search    {state} (pid {result.pid}{built}), healthy after "
        f"{result.seconds_to_healthy:.1f} s; data {search.search_paths(settings).data_dir}"
    )


def _start_airflow(settings: Settings, timeout_s: float, wait: bool, progress: Progress) -> None:
    """Start Airflow standalone (after Kafka and Elasticsearch) and say where its UI and login are."""
    paths = airflow.airflow_paths(settings)
    if not process.is_running(airflow.AIRFLOW_PROCESS, settings):
        how = "waiting for health" if wait else "in the background"
        progress(
            f"airflow   starting standalone (api-server, scheduler, dag-processor, triggerer; "
            f"parallelism {settings.airflow_parallelism}), {how} ..."
        )
    result = airflow.start_airflow(settings, timeout_s=timeout_s, wait=wait)
    state = "already running" if result.already_running else "started"
    if wait:
        timing = f"healthy after {result.seconds_to_healthy:.1f} s"
        if result.seconds_to_migrate:
            timing += f" (db migrate {result.seconds_to_migrate:.1f} s)"
    else:
        timing = "answers in about 30 s"
    progress(f"airflow   {state} (pid {result.pid}), {timing}; home {paths.home_dir}")
    progress(
        f"          UI {settings.airflow_url}  user {airflow.ADMIN_USER}, password in "
        f"{result.password_file}; log {paths.process_log}"
    )


def stop_stack(settings: Settings, timeout_s: float, progress: Progress) -> None:
    """Stop every managed process (services first, Kafka and Elasticsearch last), each given
    ``timeout_s`` seconds before SIGKILL; leave no process behind."""
    statuses = process.list_processes(settings)
    marker = process.stopping_marker(settings)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("rtc down\n")  # a supervisor task still in flight restarts nothing
    # Airflow first, then newest first (the reverse of the start order), infrastructure last.
    ordered = sorted(reversed(statuses), key=lambda status: _stop_rank(status.name))
    if not ordered:
        progress("nothing to stop")
    for members in _stop_batches(ordered):
        # One engine's members together: a KRaft broker's clean shutdown needs the controller
        # quorum, so brokers stopped one by one leave the last without a majority (SIGKILL).
        with ThreadPoolExecutor(max_workers=len(members)) as pool:
            stopped = list(
                pool.map(lambda status: _stop_one(status.name, settings, timeout_s), members)
            )
        for status, ran in zip(members, stopped, strict=True):
            if ran:
                progress(f"stopped   {status.name} (pid {status.pid})")
            else:
                progress(f"cleared   {status.name}: stale pid file (pid {status.pid} not running)")
    topology.forget_topology(settings)


def _stop_one(name: str, settings: Settings, timeout_s: float) -> bool:
    """Stop one managed process as its engine needs: Airflow's with the task process groups
    under it, PostgreSQL by a fast shutdown (SIGTERM would wait for every client)."""
    if _member_of(name, _STOP_FIRST):
        return airflow.stop_with_task_groups(name, settings, timeout_s=timeout_s)
    if name == postgres.POSTGRES_PROCESS:
        return postgres.stop_postgres(settings, timeout_s=timeout_s)
    return process.stop_process(name, timeout_s=timeout_s, settings=settings)


def _engine(name: str) -> str:
    """``kafka-2`` -> ``kafka``, ``airflow-scheduler`` -> ``airflow``; a service keeps its name."""
    if _member_of(name, _STOP_FIRST):
        return _STOP_FIRST[0]
    base, _, number = name.rpartition("-")
    return base if base and number.isdigit() and _member_of(name, _STOP_LAST) else name


def _stop_batches(ordered: list[process.ProcessStatus]) -> list[list[process.ProcessStatus]]:
    """``ordered`` in batches stopped together: the members of one engine (Airflow's components,
    a cluster's brokers or nodes or workers); every other process alone, in order."""
    batches: dict[str, list[process.ProcessStatus]] = {}
    for status in ordered:
        batches.setdefault(_engine(status.name), []).append(status)
    return list(batches.values())


def stack_status(settings: Settings) -> list[str]:
    """Lines describing each managed process (pid, running, ports, uptime, log), then Airflow's
    and Elasticsearch's health when they are managed here."""
    statuses = process.list_processes(settings)
    if not statuses:
        return [f"no managed processes (no pid files in {settings.run_dir})"]
    lines = [f"{'NAME':<22} {'PID':>8}  {'RUNNING':<8} {'PORTS':<12} {'UPTIME':>9}  LOG"]
    now = time.time()
    for entry in statuses:
        uptime = (
            f"{now - entry.started_at_s:.0f} s" if entry.running and entry.started_at_s else "-"
        )
        ports = ",".join(str(port) for port in entry.ports) or "-"
        lines.append(
            f"{entry.name:<22} {entry.pid or '-':>8}  {'yes' if entry.running else 'no':<8} "
            f"{ports:<12} {uptime:>9}  {entry.log_path}"
        )
    if any(entry.name == airflow.AIRFLOW_PROCESS for entry in statuses):
        lines.append(_airflow_status(settings))
    if any(entry.name == search.SEARCH_PROCESS for entry in statuses):
        lines.append(_search_status(settings))
    if settings.topology is Topology.CLUSTER:
        lines += topology.cluster_status(settings)
    return lines


def _airflow_status(settings: Settings) -> str:
    airflow_health = airflow.health(settings.airflow_url, timeout_s=2.0)
    if airflow_health is None:
        return f"airflow   {settings.airflow_url}: not answering"
    components = ", ".join(
        f"{name} {state}" for name, state in airflow.component_states(airflow_health).items()
    )
    return (
        f"airflow   {settings.airflow_url}: {components}; user {airflow.ADMIN_USER}, "
        f"password in {airflow.airflow_paths(settings).password_file}"
    )


def _search_status(settings: Settings) -> str:
    health = search.node_health(settings.search_url, timeout_s=2.0)
    if health is None:
        return f"search    {redact_url(settings.search_url)}: not answering"
    return (
        f"search    {redact_url(settings.search_url)}: cluster {health.cluster_name} "
        f"{health.status}, {health.number_of_nodes} node(s)"
    )
