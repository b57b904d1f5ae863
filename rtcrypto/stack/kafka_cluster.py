"""Kafka in the cluster topology: N KRaft nodes on loopback, each broker and controller.

N is ``len(settings.cluster.kafka_ports)`` (3 by default). Node ``i`` (1..N) listens on
``cluster.host:kafka_ports[i-1]`` (clients) and ``kafka_controller_ports[i-1]`` (the quorum), runs
as the managed process ``kafka-<i>`` with its config in ``<run_dir>/kafka-cluster/config-<i>``,
its data in ``<run_dir>/kafka-cluster/node-<i>``, its own log in ``<log_dir>/kafka-<i>-server.log``
and its stdout/stderr in ``<log_dir>/kafka-<i>.log``.

The controller quorum is **static**: every node's ``server.properties`` lists all N voters in
``controller.quorum.voters`` and each node is formatted with the same cluster id and no quorum
flag. The dynamic alternative (``--initial-controllers`` with a directory id per node) would let a
voter be added or removed at run time, but the members here are fixed by the settings, and a
static quorum needs no directory-id bookkeeping across formats: a wiped node is formatted again on
its own with the cluster's id and rejoins. Changing the number of nodes means a new cluster
(remove ``<run_dir>/kafka-cluster``).

The nodes are started together (a quorum needs a majority before any broker registers). Topics
get ``cluster.kafka_partitions`` partitions, replication ``cluster.kafka_replication_factor`` and
``min.insync.replicas`` = ``cluster.kafka_min_insync_replicas``; so do the internal topics
(offsets, transactions, share-group state). Generic pieces (jars, JVM command, log4j, storage
format, topic admin) are :mod:`rtcrypto.stack.kafka`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rtcrypto.config import Settings
from rtcrypto.stack import kafka, maven, process
from rtcrypto.stack.errors import ServiceStartError, StackError

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]  # receives one line of text per step

CLUSTER_DIR = "kafka-cluster"
LOCK_NAME = "kafka-cluster"
_PORT_HINT = "set RTC_CLUSTER_KAFKA_PORTS / RTC_CLUSTER_KAFKA_CONTROLLER_PORTS to free ports"
_HEALTH_POLL_S = 0.5


@dataclass(frozen=True)
class PartitionState:
    """Leader, replicas and in-sync replicas (broker ids) of one partition."""

    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    @property
    def under_replicated(self) -> bool:
        return len(self.isr) < len(self.replicas)


@dataclass(frozen=True)
class KafkaClusterStart:
    """Outcome of :func:`start_kafka_cluster` (members by process name)."""

    bootstrap: str
    started: tuple[str, ...]
    already_running: tuple[str, ...]
    formatted: tuple[str, ...]
    seconds_to_healthy: float
    topics_created: tuple[str, ...]


# --- members and paths (pure) ------------------------------------------------------------------


def node_ids(settings: Settings) -> list[int]:
    """The node ids of the cluster: 1..N, N = ``len(cluster.kafka_ports)``."""
    return list(range(1, settings.cluster.kafka_brokers + 1))


def member_name(node_id: int) -> str:
    """The managed process name of node ``node_id``: ``kafka-<node_id>``."""
    return f"kafka-{node_id}"


def node_ports(settings: Settings, node_id: int) -> tuple[int, int]:
    """``(broker port, controller port)`` of node ``node_id``."""
    cluster = settings.cluster
    return cluster.kafka_ports[node_id - 1], cluster.kafka_controller_ports[node_id - 1]


def node_paths(settings: Settings, node_id: int) -> kafka.KafkaPaths:
    """Config, data and log files of node ``node_id`` (see the module docstring)."""
    base = settings.run_dir / CLUSTER_DIR
    config_dir = base / f"config-{node_id}"
    name = member_name(node_id)
    return kafka.KafkaPaths(
        config_dir=config_dir,
        server_properties=config_dir / "server.properties",
        log4j_config=config_dir / "log4j2.properties",
        data_dir=base / f"node-{node_id}",
        server_log=settings.log_dir / f"{name}-server.log",
        process_log=process.log_path(name, settings),
    )


def quorum_voters(settings: Settings) -> str:
    """``controller.quorum.voters``: ``1@host:cport1,2@host:cport2,...`` (the static quorum)."""
    host = settings.cluster.host
    return ",".join(
        f"{node_id}@{host}:{node_ports(settings, node_id)[1]}" for node_id in node_ids(settings)
    )


def node_properties(settings: Settings, node_id: int, data_dir: Path) -> dict[str, str]:
    """``server.properties`` of node ``node_id``: the single broker's, made a cluster member."""
    cluster = settings.cluster
    port, controller_port = node_ports(settings, node_id)
    listeners = f"PLAINTEXT://{cluster.host}:{port},CONTROLLER://{cluster.host}:{controller_port}"
    replication = str(cluster.kafka_replication_factor)
    min_isr = str(cluster.kafka_min_insync_replicas)
    properties = kafka.server_properties(settings, data_dir)
    properties.pop("controller.quorum.bootstrap.servers")  # static voters instead
    properties.update(
        {
            "node.id": str(node_id),
            "controller.quorum.voters": quorum_voters(settings),
            "listeners": listeners,
            "advertised.listeners": listeners,
            "num.partitions": str(cluster.kafka_partitions),
            "default.replication.factor": replication,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replication,
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": min_isr,
            "broker.session.timeout.ms": str(cluster.kafka_broker_session_timeout_ms),
            "broker.heartbeat.interval.ms": str(heartbeat_interval_ms(settings)),
        }
    )
    return properties


def heartbeat_interval_ms(settings: Settings) -> int:
    """``broker.heartbeat.interval.ms``: a quarter of the session timeout, at most Kafka's
    default 2,000 ms (a broker misses 3 heartbeats before it is fenced)."""
    return min(2000, settings.cluster.kafka_broker_session_timeout_ms // 4)


def cluster_topic_configs(settings: Settings) -> dict[str, str]:
    """Configs of every project topic in the cluster: the bounds of :func:`kafka.topic_configs`
    plus ``min.insync.replicas``."""
    return {
        **kafka.topic_configs(settings),
        "min.insync.replicas": str(settings.cluster.kafka_min_insync_replicas),
    }


def parse_properties(text: str) -> dict[str, str]:
    """``key=value`` lines of a Java properties file (comments and blank lines skipped)."""
    parsed: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "!")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        parsed[key.strip()] = value.strip()
    return parsed


# --- files and storage -------------------------------------------------------------------------


def write_node_config(settings: Settings, node_id: int) -> kafka.KafkaPaths:
    """Write node ``node_id``'s ``server.properties`` and ``log4j2.properties``; return its paths."""
    paths = node_paths(settings, node_id)
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    paths.server_log.parent.mkdir(parents=True, exist_ok=True)
    properties = node_properties(settings, node_id, paths.data_dir)
    paths.server_properties.write_text(kafka.render_properties(properties))
    paths.log4j_config.write_text(
        kafka.log4j2_properties(paths.server_log, settings.log_max_bytes, settings.log_backup_count)
    )
    return paths


def formatted_cluster_id(settings: Settings) -> str | None:
    """The cluster id the formatted nodes share (None if no node is formatted yet).

    Raises :class:`StackError` if two nodes were formatted for different clusters."""
    found: dict[str, list[int]] = {}
    for node_id in node_ids(settings):
        meta = node_paths(settings, node_id).data_dir / "meta.properties"
        if meta.is_file():
            cluster_id = parse_properties(meta.read_text()).get("cluster.id", "")
            found.setdefault(cluster_id, []).append(node_id)
    if len(found) > 1:
        raise StackError(
            f"the Kafka cluster's nodes were formatted for different clusters ({found}); "
            f"stop them and remove {settings.run_dir / CLUSTER_DIR} to start a new cluster "
            "(its records are lost)"
        )
    return next(iter(found), None)


def _format_missing(java: Path, settings: Settings, ids: Sequence[int]) -> list[int]:
    """Format the storage of every node of ``ids`` not formatted yet, with the cluster's id."""
    missing = [i for i in ids if not kafka.is_formatted(paths=node_paths(settings, i))]
    if not missing:
        return []
    cluster_id = formatted_cluster_id(settings) or kafka.new_cluster_id()
    for node_id in missing:
        kafka.format_storage(
            java,
            settings,
            paths=node_paths(settings, node_id),
            cluster_id=cluster_id,
            quorum_args=(),
        )
    return missing


# --- health ------------------------------------------------------------------------------------


def _admin(settings: Settings, timeout_s: float) -> AdminClient:
    """An admin client on every node of the cluster (quiet: errors reach the caller)."""
    from rtcrypto.kafka import clients

    on_cluster = settings.model_copy(update={"kafka_bootstrap": settings.cluster.kafka_bootstrap})
    return clients.admin_client(
        on_cluster, kafka.ADMIN_CLIENT_ID, timeout_s=timeout_s, log_level=clients.QUIET_LOG_LEVEL
    )


def registered_brokers(settings: Settings, timeout_s: float = 3.0) -> set[int]:
    """Ids of the brokers the cluster's metadata lists (alive and registered); empty if no node
    answers within about ``timeout_s`` s."""
    from confluent_kafka import KafkaException

    cluster = settings.cluster
    if not any(process.port_accepts(port, cluster.host, 0.5) for port in cluster.kafka_ports):
        return set()
    try:
        metadata = _admin(settings, timeout_s).list_topics(timeout=timeout_s)
    except KafkaException:
        return set()
    return {int(broker_id) for broker_id in metadata.brokers}


def describe_topics(
    settings: Settings, topics: Iterable[str], timeout_s: float = 5.0
) -> dict[str, list[PartitionState] | str]:
    """The partitions of each of ``topics``, or why there are none (``"missing"``, or the
    broker's error for the topic).

    Raises ``KafkaException`` if no broker answers."""
    metadata = _admin(settings, timeout_s).list_topics(timeout=timeout_s).topics
    described: dict[str, list[PartitionState] | str] = {}
    for topic in topics:
        found = metadata.get(topic)
        if found is None:
            described[topic] = "missing"
        elif found.error is not None:
            described[topic] = str(found.error)
        else:
            described[topic] = [
                PartitionState(int(p.id), int(p.leader), tuple(p.replicas), tuple(p.isrs))
                for p in found.partitions.values()
            ]
    return described


def partition_states(
    settings: Settings, topics: Iterable[str], timeout_s: float = 5.0
) -> dict[str, list[PartitionState] | None]:
    """Leader, replicas and ISR of every partition of ``topics`` (None: the topic is missing or
    its metadata has an error). Raises ``KafkaException`` if no broker answers."""
    return {
        topic: None if isinstance(found, str) else found
        for topic, found in describe_topics(settings, topics, timeout_s).items()
    }


def under_replicated_partitions(settings: Settings, timeout_s: float = 5.0) -> int:
    """How many partitions of the project topics have fewer in-sync replicas than replicas."""
    states = partition_states(settings, settings.topics.all(), timeout_s)
    return sum(1 for found in states.values() for state in found or () if state.under_replicated)


def _wait_for_brokers(settings: Settings, started: Sequence[int], timeout_s: float) -> float:
    """Block until all N brokers are registered; return the seconds waited.

    Raises :class:`ServiceStartError` if a node of ``started`` exits or ``timeout_s`` s pass."""
    began = time.monotonic()
    wanted = set(node_ids(settings))
    while True:
        registered = registered_brokers(settings, timeout_s=2.0)
        if wanted <= registered:
            return time.monotonic() - began
        for node_id in started:
            if not process.is_running(member_name(node_id), settings):
                paths = node_paths(settings, node_id)
                last = "\n".join(
                    process.tail_file(log, 5) for log in (paths.server_log, paths.process_log)
                )
                raise ServiceStartError(
                    f"Kafka node {member_name(node_id)} exited during start-up; see "
                    f"{paths.server_log} and {paths.process_log}. Last lines:\n{last}"
                )
        if time.monotonic() - began > timeout_s:
            missing = sorted(wanted - registered)
            raise ServiceStartError(
                f"Kafka cluster on {settings.cluster.kafka_bootstrap}: brokers {missing} not "
                f"registered within {timeout_s:.0f} s (a quorum needs a majority of "
                f"{len(wanted)} nodes); see {settings.log_dir}/kafka-<n>-server.log"
            )
        time.sleep(_HEALTH_POLL_S)


# --- lifecycle ---------------------------------------------------------------------------------


def _start_node(java: Path, settings: Settings, node_id: int) -> int:
    """Start node ``node_id`` (its config written, storage formatted) detached; return its pid."""
    paths = node_paths(settings, node_id)
    command = kafka.java_command(
        java,
        settings,
        kafka.BROKER_MAIN_CLASS,
        str(paths.server_properties),
        paths=paths,
        heap=settings.cluster.kafka_heap,
    )
    return process.start_process(
        member_name(node_id),
        command,
        ports=node_ports(settings, node_id),
        host=settings.cluster.host,
        port_hint=_PORT_HINT,
        settings=settings,
    )


def _start_dead_nodes(settings: Settings, dead: Sequence[int], progress: Progress) -> list[int]:
    """Check ports, resolve jars, write configs, format new storage, start ``dead``; return the
    ids whose storage was formatted."""
    cluster = settings.cluster
    java = maven.require_java()
    for node_id in dead:
        process.ensure_ports_free(
            node_ports(settings, node_id),
            service=member_name(node_id),
            host=cluster.host,
            hint=_PORT_HINT,
        )
    maven.resolve_jars(maven.kafka_broker_jar_set(settings), settings)
    for node_id in dead:
        write_node_config(settings, node_id)
    formatted = _format_missing(java, settings, dead)
    if formatted:
        progress(f"kafka     storage formatted: {', '.join(map(member_name, formatted))}")
    for node_id in dead:
        pid = _start_node(java, settings, node_id)
        port, controller_port = node_ports(settings, node_id)
        progress(
            f"kafka     {member_name(node_id)} started (pid {pid}), "
            f"{cluster.host}:{port} (controller {controller_port})"
        )
    return formatted


def start_kafka_cluster(
    settings: Settings, progress: Progress, *, timeout_s: float = 120.0
) -> KafkaClusterStart:
    """Start the members that do not run, wait for all N brokers, create or update the topics.

    Running members are left as they are; dead ones are started together. Storage is formatted on
    first start. Every project topic gets ``cluster.kafka_partitions`` partitions (grown if it has
    fewer), replication ``cluster.kafka_replication_factor`` and :func:`cluster_topic_configs`.
    Raises :class:`StackError` subclasses with a message a user can act on; nodes this call
    started are stopped again when the cluster does not come up.
    """
    cluster = settings.cluster
    ids = node_ids(settings)
    with process.exclusive_lock(LOCK_NAME, settings):
        running = [i for i in ids if process.is_running(member_name(i), settings)]
        dead = [i for i in ids if i not in running]
        formatted: list[int] = []
        if running:
            progress(f"kafka     already running: {', '.join(map(member_name, running))}")
        if dead:
            progress(
                f"kafka     starting {', '.join(map(member_name, dead))} of {len(ids)} "
                f"({settings.kafka_version} KRaft broker+controller, heap {cluster.kafka_heap}) ..."
            )
            try:
                formatted = _start_dead_nodes(settings, dead, progress)
            except StackError:
                _stop_nodes(settings, dead)
                raise
        try:
            seconds = _wait_for_brokers(settings, dead, timeout_s)
        except ServiceStartError:
            _stop_nodes(settings, dead)
            raise
    progress(f"kafka     {len(ids)} brokers registered after {seconds:.1f} s")
    created = ensure_cluster_topics(settings, timeout_s=min(timeout_s, 60.0))
    existing = [topic for topic in settings.topics.all() if topic not in created]
    progress(
        f"topics    created: {', '.join(created) or '-'}; existing: {', '.join(existing) or '-'} "
        f"({cluster.kafka_partitions} partitions, replication {cluster.kafka_replication_factor}, "
        f"min.insync.replicas {cluster.kafka_min_insync_replicas})"
    )
    return KafkaClusterStart(
        bootstrap=cluster.kafka_bootstrap,
        started=tuple(map(member_name, dead)),
        already_running=tuple(map(member_name, running)),
        formatted=tuple(map(member_name, formatted)),
        seconds_to_healthy=seconds,
        topics_created=tuple(created),
    )


def _stop_nodes(settings: Settings, ids: Iterable[int]) -> None:
    for node_id in ids:
        process.stop_process(member_name(node_id), timeout_s=20.0, settings=settings)


def stop_kafka_cluster(settings: Settings, *, timeout_s: float = 30.0) -> list[str]:
    """Stop every member at once (SIGTERM, SIGKILL after ``timeout_s`` s); return the names that
    ran.

    Together, not one after the other: a broker's controlled shutdown needs the controller quorum,
    and the last node stopped alone has no majority left (it would hang until the SIGKILL)."""
    names = [member_name(node_id) for node_id in node_ids(settings)]
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        stopped = list(
            pool.map(
                lambda name: process.stop_process(name, timeout_s=timeout_s, settings=settings),
                names,
            )
        )
    return [name for name, ran in zip(names, stopped, strict=True) if ran]


def ensure_cluster_topics(settings: Settings, *, timeout_s: float = 60.0) -> list[str]:
    """Create the missing project topics, set the configs on all, grow partitions to
    ``cluster.kafka_partitions``; return the names created."""
    cluster = settings.cluster
    topics = settings.topics.all()
    on_cluster = settings.model_copy(update={"kafka_bootstrap": cluster.kafka_bootstrap})
    created = kafka.ensure_topics(
        topics,
        bootstrap=cluster.kafka_bootstrap,
        partitions=cluster.kafka_partitions,
        replication_factor=cluster.kafka_replication_factor,
        configs=cluster_topic_configs(settings),
        timeout_s=timeout_s,
        settings=on_cluster,
    )
    _grow_partitions(settings, [t for t in topics if t not in created], timeout_s)
    return created


def _grow_partitions(settings: Settings, topics: Sequence[str], timeout_s: float) -> None:
    """Raise the partition count of ``topics`` to ``cluster.kafka_partitions`` where it is lower
    (Kafka cannot lower it; keys written before map to other partitions afterwards)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewPartitions

    wanted = settings.cluster.kafka_partitions
    states = partition_states(settings, topics, timeout_s)
    grow = [
        NewPartitions(topic, wanted)
        for topic, found in states.items()
        if found is not None and len(found) < wanted
    ]
    if not grow:
        return
    admin = _admin(settings, timeout_s)  # kept: a collected client cancels its requests
    futures = admin.create_partitions(grow, request_timeout=timeout_s)
    try:
        for future in futures.values():
            future.result(timeout=timeout_s + 5)
    except KafkaException as error:
        raise StackError(f"cannot grow topics to {wanted} partitions: {error}") from error


# --- status (lines in rtcrypto/stack/kafka_cluster_status.py) ----------------------------------


def kafka_cluster_status(settings: Settings) -> list[str]:
    """Lines for ``rtc status``: every node (pid, up/down, ports, quorum role), the brokers
    registered, then per project topic its partitions with leader and ISR and the count of
    under-replicated partitions (:func:`rtcrypto.stack.kafka_cluster_status.status_lines`)."""
    from rtcrypto.stack import kafka_cluster_status

    return kafka_cluster_status.status_lines(settings)
