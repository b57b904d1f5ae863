"""One local Apache Kafka 4.x broker in KRaft combined mode (broker and controller in one JVM).

Config in ``<run_dir>/kafka-config``, data in ``<run_dir>/kafka-data``, the broker's own log in
``<log_dir>/kafka-server.log`` and its stdout/stderr in ``<log_dir>/kafka.log``. Storage is formatted
once (``kafka.tools.StorageTool format --standalone``); the broker runs as ``kafka.Kafka`` under the
process manager as ``kafka``.

Topic admin (create, alter and describe configs, delete) and the health probe use confluent-kafka's
``AdminClient`` from :func:`rtcrypto.kafka.clients.admin_client`, so they honour the security
settings like every other client. Each takes the ``bootstrap`` to talk to; the rest of the client
settings come from ``settings`` (default: the process's settings).
"""

from __future__ import annotations

import base64
import logging
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rtcrypto.config import Settings, get_settings
from rtcrypto.kafka import clients
from rtcrypto.stack import maven, process
from rtcrypto.stack.errors import ServiceStartError, StackError

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

logger = logging.getLogger(__name__)

KAFKA_PROCESS = "kafka"
BROKER_MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL_CLASS = "kafka.tools.StorageTool"
NODE_ID = 1
JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)
_PORT_HINT = "set RTC_KAFKA_BOOTSTRAP / RTC_KAFKA_CONTROLLER_PORT to free ports"


@dataclass(frozen=True)
class KafkaPaths:
    """Where the local broker keeps its configuration, data and logs."""

    config_dir: Path
    server_properties: Path
    log4j_config: Path
    data_dir: Path
    server_log: Path
    process_log: Path


@dataclass(frozen=True)
class KafkaStart:
    """Outcome of :func:`start_kafka`."""

    bootstrap: str
    pid: int | None
    already_running: bool
    formatted: bool
    seconds_to_healthy: float


def kafka_paths(settings: Settings | None = None) -> KafkaPaths:
    """The broker's folders and files under ``run_dir`` and ``log_dir``."""
    settings = settings or get_settings()
    config_dir = settings.run_dir / "kafka-config"
    return KafkaPaths(
        config_dir=config_dir,
        server_properties=config_dir / "server.properties",
        log4j_config=config_dir / "log4j2.properties",
        data_dir=settings.run_dir / "kafka-data",
        server_log=settings.log_dir / "kafka-server.log",
        process_log=process.log_path(KAFKA_PROCESS, settings),
    )


def parse_bootstrap(bootstrap: str) -> tuple[str, int]:
    """``"127.0.0.1:9092"`` -> ``("127.0.0.1", 9092)``; the first server of a list counts."""
    first = bootstrap.split(",")[0].strip()
    host, separator, port = first.rpartition(":")
    if not separator or not host or not port.isdigit():
        raise StackError(f"RTC_KAFKA_BOOTSTRAP must be host:port, got {bootstrap!r}")
    return host, int(port)


# --- configuration (pure) ----------------------------------------------------------------------


def server_properties(settings: Settings, data_dir: Path) -> dict[str, str]:
    """``server.properties`` for one KRaft node acting as broker and controller."""
    host, broker_port = parse_bootstrap(settings.kafka_bootstrap)
    controller = f"{host}:{settings.kafka_controller_port}"
    return {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.bootstrap.servers": controller,
        "listeners": f"PLAINTEXT://{host}:{broker_port},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{host}:{broker_port},CONTROLLER://{controller}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": str(settings.kafka_partitions),
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Topics are data contracts: only `ensure_topics` creates them, a typo never does.
        "auto.create.topics.enable": "false",
        # One local consumer per group: no reason to wait 3 s for more members to join.
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": "168",
        "log.segment.bytes": str(256 * 1024 * 1024),
    }


def topic_configs(settings: Settings) -> dict[str, str]:
    """Per-topic bounds of every project topic: retention by bytes and time, compression.

    ``retention.bytes`` is per partition; deletion works on whole segments, so ``segment.bytes``
    is kept well below it. ``compression.type`` is the producers' codec (rtcrypto/kafka/producers.py),
    so the broker stores their batches as they come instead of recompressing them.
    """
    return {
        "retention.bytes": str(settings.kafka_retention_bytes),
        "retention.ms": str(int(settings.kafka_retention_hours * 3_600_000)),
        "segment.bytes": str(settings.kafka_segment_bytes),
        "compression.type": (
            "uncompressed" if settings.kafka_compression == "none" else settings.kafka_compression
        ),
    }


def render_properties(properties: Mapping[str, str]) -> str:
    """Java ``.properties`` text, one ``key=value`` per line (values here need no escaping)."""
    lines = ["# Written by `rtc stack up` on every start; edit rtcrypto/stack/kafka.py instead."]
    lines += [f"{key}={value}" for key, value in properties.items()]
    return "\n".join(lines) + "\n"


def log4j2_properties(server_log: Path, max_bytes: int = 10 * 1024**2, backups: int = 5) -> str:
    """A log4j2 configuration: everything at INFO into ``server_log``, rolled past ``max_bytes``
    keeping ``backups`` files (``RTC_LOG_MAX_BYTES`` / ``RTC_LOG_BACKUP_COUNT``)."""
    return f"""\
status = warn
name = rtc-kafka
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {server_log}
appender.file.filePattern = {server_log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = {max_bytes}
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = {backups}
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def new_cluster_id() -> str:
    """A random cluster id in Kafka's format: 16 bytes, URL-safe base64, no padding (22 chars)."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):  # Kafka rejects ids that look like a CLI flag
            return candidate


def jvm_options(heap: str | None = None) -> tuple[str, ...]:
    """:data:`JVM_OPTIONS`; with ``heap`` (``512m``) the heap is fixed at that size instead
    (``-Xms`` = ``-Xmx``, as Kafka's own start script does)."""
    if heap is None:
        return JVM_OPTIONS
    sized = (option for option in JVM_OPTIONS if not option.startswith(("-Xms", "-Xmx")))
    return (f"-Xms{heap}", f"-Xmx{heap}", *sized)


def java_command(
    java: Path,
    settings: Settings,
    main_class: str,
    *args: str,
    paths: KafkaPaths | None = None,
    heap: str | None = None,
) -> list[str]:
    """``java <options> -cp '<lib_dir>/kafka/*' <main_class> <args>``.

    ``paths`` (default: the single broker's) names the log4j2 configuration; ``heap`` sizes the
    heap (:func:`jvm_options`). A cluster node passes its own (rtcrypto/stack/kafka_cluster.py)."""
    paths = paths or kafka_paths(settings)
    classpath = str(maven.jar_dir(maven.kafka_broker_jar_set(settings), settings) / "*")
    return [
        str(java),
        *jvm_options(heap),
        f"-Dlog4j2.configurationFile={paths.log4j_config}",
        "-cp",
        classpath,
        main_class,
        *args,
    ]


# --- files and storage -------------------------------------------------------------------------


def write_config(settings: Settings | None = None) -> KafkaPaths:
    """Write ``server.properties`` and ``log4j2.properties`` from the settings; return the paths."""
    settings = settings or get_settings()
    paths = kafka_paths(settings)
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    paths.server_log.parent.mkdir(parents=True, exist_ok=True)
    properties = server_properties(settings, paths.data_dir)
    paths.server_properties.write_text(render_properties(properties))
    paths.log4j_config.write_text(
        log4j2_properties(paths.server_log, settings.log_max_bytes, settings.log_backup_count)
    )
    return paths


def is_formatted(settings: Settings | None = None, *, paths: KafkaPaths | None = None) -> bool:
    """True once the data folder holds the ``meta.properties`` that ``format`` writes."""
    return ((paths or kafka_paths(settings)).data_dir / "meta.properties").is_file()


def format_storage(
    java: Path,
    settings: Settings | None = None,
    *,
    paths: KafkaPaths | None = None,
    cluster_id: str | None = None,
    quorum_args: tuple[str, ...] = ("--standalone",),
) -> str:
    """Format the KRaft storage of one node; return its cluster id.

    By default a new single-node cluster (``--standalone``, a new id). A node of a cluster passes
    its ``paths``, the cluster's shared ``cluster_id`` and ``quorum_args=()`` (its voters are in
    its ``server.properties``)."""
    settings = settings or get_settings()
    paths = paths or kafka_paths(settings)
    cluster_id = cluster_id or new_cluster_id()
    command = java_command(
        java,
        settings,
        STORAGE_TOOL_CLASS,
        "format",
        *quorum_args,
        "--cluster-id",
        cluster_id,
        "--config",
        str(paths.server_properties),
        paths=paths,
    )
    logger.info("formatting Kafka storage in %s cluster_id=%s", paths.data_dir, cluster_id)
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=180, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise StackError(f"formatting Kafka storage in {paths.data_dir} timed out") from error
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip().splitlines()[-5:]
        raise StackError(
            f"formatting Kafka storage in {paths.data_dir} failed (exit {completed.returncode}): "
            + " | ".join(output)
        )
    return cluster_id


# --- health ------------------------------------------------------------------------------------


ADMIN_CLIENT_ID = "rtc-stack"
_LEADER_POLL_S = 0.1  # between metadata reads while new topics get their leaders


def _admin_client(
    bootstrap: str, timeout_s: float, settings: Settings | None = None
) -> AdminClient:
    """An admin client on ``bootstrap`` with the security settings of ``settings``.

    librdkafka's own log lines are off (they would repeat every connection attempt on stderr
    while a broker is down): every failure reaches the caller as an exception or a
    :class:`StackError` that carries librdkafka's error."""
    settings = (settings or get_settings()).model_copy(update={"kafka_bootstrap": bootstrap})
    return clients.admin_client(
        settings,
        ADMIN_CLIENT_ID,
        timeout_s=max(timeout_s, 5.0),
        log_level=clients.QUIET_LOG_LEVEL,
    )


def _topic_names(admin: AdminClient, timeout_s: float) -> set[str]:
    """The topics of the cluster (raises ``KafkaException`` if no broker answers in time)."""
    return set(admin.list_topics(timeout=timeout_s).topics)


def broker_healthy(
    bootstrap: str, timeout_s: float = 3.0, *, settings: Settings | None = None
) -> bool:
    """True if a broker of ``bootstrap`` (any of a list) answers a topic listing within about
    ``timeout_s`` s."""
    from confluent_kafka import KafkaException

    servers = [parse_bootstrap(server) for server in bootstrap.split(",")]
    if not any(process.port_accepts(p, h, timeout_s=min(timeout_s, 1.0)) for h, p in servers):
        return False
    try:
        admin = _admin_client(bootstrap, timeout_s, settings)
        _topic_names(admin, timeout_s)
    except (KafkaException, OSError):
        return False
    return True


def wait_for_kafka(settings: Settings | None = None, *, timeout_s: float = 90.0) -> float:
    """Block until the managed broker answers; return the seconds waited.

    Raises :class:`ServiceStartError` if the broker process exits or ``timeout_s`` seconds pass,
    naming the log files to read.
    """
    settings = settings or get_settings()
    paths = kafka_paths(settings)
    return process.wait_until_healthy(
        KAFKA_PROCESS,
        lambda: broker_healthy(settings.kafka_bootstrap, timeout_s=2.0, settings=settings),
        service="Kafka",
        target=settings.kafka_bootstrap,
        logs=[paths.server_log, paths.process_log],
        timeout_s=timeout_s,
        settings=settings,
    )


# --- lifecycle ---------------------------------------------------------------------------------


def start_kafka(settings: Settings | None = None, *, timeout_s: float = 90.0) -> KafkaStart:
    """Start the local broker unless it runs already, and wait until it answers.

    Resolves the broker jars (Maven, first run only), writes the config, formats storage on the
    first run, starts ``kafka.Kafka`` detached and waits up to ``timeout_s`` seconds for health.
    Raises :class:`StackError` subclasses with a message a user can act on.
    """
    settings = settings or get_settings()
    host, broker_port = parse_bootstrap(settings.kafka_bootstrap)
    with process.exclusive_lock(KAFKA_PROCESS, settings):
        if process.is_running(KAFKA_PROCESS, settings):
            seconds = wait_for_kafka(settings, timeout_s=timeout_s)
            pid = process.read_pid(KAFKA_PROCESS, settings)
            return KafkaStart(settings.kafka_bootstrap, pid, True, False, seconds)
        java = maven.require_java()
        ports = (broker_port, settings.kafka_controller_port)
        process.ensure_ports_free(ports, service="kafka", host=host, hint=_PORT_HINT)
        maven.resolve_jars(maven.kafka_broker_jar_set(settings), settings)
        paths = write_config(settings)
        formatted = False
        if not is_formatted(settings):
            format_storage(java, settings)
            formatted = True
        command = java_command(java, settings, BROKER_MAIN_CLASS, str(paths.server_properties))
        pid = process.start_process(
            KAFKA_PROCESS, command, ports=ports, host=host, port_hint=_PORT_HINT, settings=settings
        )
        try:
            seconds = wait_for_kafka(settings, timeout_s=timeout_s)
        except ServiceStartError:
            process.stop_process(KAFKA_PROCESS, settings=settings)
            raise
    logger.info(
        "kafka healthy bootstrap=%s pid=%d after %.1f s", settings.kafka_bootstrap, pid, seconds
    )
    return KafkaStart(settings.kafka_bootstrap, pid, False, formatted, seconds)


def stop_kafka(settings: Settings | None = None, *, timeout_s: float = 30.0) -> bool:
    """Stop the managed broker (SIGTERM, then SIGKILL after ``timeout_s`` s); True if it ran."""
    return process.stop_process(KAFKA_PROCESS, timeout_s=timeout_s, settings=settings)


def ensure_topics(
    topics: Iterable[str],
    *,
    bootstrap: str,
    partitions: int = 1,
    replication_factor: int = 1,
    configs: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
    settings: Settings | None = None,
) -> list[str]:
    """Create the missing ``topics`` (idempotent); return the names that were created.

    Waits until each new topic has a leader, so a producer can write to it right away.
    ``configs`` go to new topics and are set on existing ones (:func:`alter_topic_configs`),
    so a bound added later reaches topics created before it.
    """
    from confluent_kafka import KafkaException

    wanted = list(dict.fromkeys(topics))
    admin = _admin_client(bootstrap, timeout_s, settings)
    try:
        existing = _topic_names(admin, timeout_s)
    except KafkaException as error:
        raise StackError(f"cannot reach Kafka on {bootstrap} to create topics: {error}") from error
    missing = [topic for topic in wanted if topic not in existing]
    created = [
        topic
        for topic in missing
        if _create_topic(
            admin, topic, partitions, replication_factor, configs, bootstrap, timeout_s
        )
    ]
    _wait_for_leaders(admin, created, bootstrap, timeout_s)
    present = [topic for topic in wanted if topic in existing]
    if configs and present:
        alter_topic_configs(admin, present, configs, timeout_s=timeout_s)
    return created


def _create_topic(
    admin: AdminClient,
    topic: str,
    partitions: int,
    replication_factor: int,
    configs: Mapping[str, str] | None,
    bootstrap: str,
    timeout_s: float,
) -> bool:
    """Create one topic; False if someone else created it in the meantime."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    new_topic = NewTopic(
        topic,
        num_partitions=partitions,
        replication_factor=replication_factor,
        config=dict(configs or {}),
    )
    future = admin.create_topics(
        [new_topic], operation_timeout=timeout_s, request_timeout=timeout_s
    )[topic]
    try:
        future.result(timeout=timeout_s + 5)
    except KafkaException as error:
        if error.args and error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        raise StackError(f"cannot create topic {topic} on {bootstrap}: {error}") from error
    return True


def _wait_for_leaders(
    admin: AdminClient, topics: list[str], bootstrap: str, timeout_s: float
) -> None:
    """Block until every partition of ``topics`` has a leader (the broker's metadata says so)."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout_s
    waiting = list(topics)
    while waiting:
        try:
            metadata = admin.list_topics(timeout=max(0.1, deadline - time.monotonic())).topics
        except KafkaException:
            metadata = {}
        waiting = [topic for topic in waiting if not _has_leaders(metadata.get(topic))]
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise StackError(
                f"topics {waiting} on {bootstrap} have no leader after {timeout_s:.0f} s"
            )
        time.sleep(_LEADER_POLL_S)


def _has_leaders(topic_metadata: object) -> bool:
    partitions = getattr(topic_metadata, "partitions", None)
    if getattr(topic_metadata, "error", None) is not None or not partitions:
        return False
    return all(partition.leader >= 0 for partition in partitions.values())


def alter_topic_configs(
    admin: AdminClient,
    topics: Iterable[str],
    configs: Mapping[str, str],
    *,
    timeout_s: float = 30.0,
) -> None:
    """Set ``configs`` on existing ``topics`` (incremental: other overrides stay)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    topics = list(topics)
    entries = [
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in configs.items()
    ]
    resources = [
        ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries) for topic in topics
    ]
    try:
        futures = admin.incremental_alter_configs(resources, request_timeout=timeout_s)
        for future in futures.values():
            future.result(timeout=timeout_s + 5)
    except (KafkaException, ValueError, TypeError) as error:
        raise StackError(
            f"cannot set {sorted(configs)} on topics {list(topics)}: {error}"
        ) from error


def describe_topic_configs(
    topics: Iterable[str],
    *,
    bootstrap: str,
    timeout_s: float = 10.0,
    settings: Settings | None = None,
) -> dict[str, dict[str, str]]:
    """The non-default configs of each topic (set on the topic itself), as the broker reports them."""
    from confluent_kafka.admin import ConfigResource, ConfigSource, ResourceType

    # sources that are not the topic's own: the broker's static, dynamic-default and built-in ones
    inherited = {
        ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value,
        ConfigSource.STATIC_BROKER_CONFIG.value,
        ConfigSource.DEFAULT_CONFIG.value,
    }
    admin = _admin_client(bootstrap, timeout_s, settings)
    futures = admin.describe_configs(
        [ConfigResource(ResourceType.TOPIC, topic) for topic in topics], request_timeout=timeout_s
    )
    described: dict[str, dict[str, str]] = {}
    for resource, future in futures.items():
        entries = future.result(timeout=timeout_s + 5)
        described[resource.name] = {
            name: str(entry.value)
            for name, entry in entries.items()
            if _source_value(entry.source) not in inherited
        }
    return described


def _source_value(source: object) -> int:
    """A ``ConfigEntry.source`` as its number (confluent-kafka gives the enum or an int)."""
    return int(getattr(source, "value", source))  # type: ignore[call-overload]


def delete_topics(
    topics: Iterable[str],
    *,
    bootstrap: str,
    timeout_s: float = 30.0,
    settings: Settings | None = None,
) -> None:
    """Delete ``topics`` that exist (missing ones are ignored)."""
    admin = _admin_client(bootstrap, timeout_s, settings)
    existing = _topic_names(admin, timeout_s)
    present = [topic for topic in dict.fromkeys(topics) if topic in existing]
    if not present:
        return
    futures = admin.delete_topics(present, operation_timeout=timeout_s, request_timeout=timeout_s)
    for future in futures.values():
        future.result(timeout=timeout_s + 5)


def spark_kafka_jars(settings: Settings | None = None, *, resolve: bool = True) -> list[Path]:
    """Jar paths of Spark's Kafka connector for ``spark-submit --jars`` (see :mod:`maven`)."""
    return maven.spark_kafka_jars(settings, resolve=resolve)
