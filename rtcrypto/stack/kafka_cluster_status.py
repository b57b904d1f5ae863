"""The status lines of the Kafka cluster (``rtc status``): members, quorum roles, partitions.

The cluster itself (members, start, topics) is :mod:`rtcrypto.stack.kafka_cluster`, whose
``kafka_cluster_status`` returns :func:`status_lines`. The quorum role of a node is read from the
``quorum-state`` file of its metadata log (no JVM tool, no request); leader and ISR of each
partition from the cluster's metadata (confluent-kafka's AdminClient).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from rtcrypto.config import Settings
from rtcrypto.stack import process
from rtcrypto.stack.kafka_cluster import (
    PartitionState,
    describe_topics,
    member_name,
    node_ids,
    node_paths,
    node_ports,
    registered_brokers,
)

QUORUM_STATE_FILE = Path("__cluster_metadata-0") / "quorum-state"


# --- lines (pure) ------------------------------------------------------------------------------


def quorum_leader(states: Iterable[str]) -> int | None:
    """The quorum leader named by the newest of some nodes' ``quorum-state`` files (JSON with
    ``leaderId`` and ``leaderEpoch``); None if none names a leader (an election is running)."""
    newest: tuple[int, int] | None = None  # (epoch, leader id)
    for text in states:
        try:
            state = json.loads(text)
            leader, epoch = int(state["leaderId"]), int(state["leaderEpoch"])
        except (ValueError, KeyError, TypeError):
            continue
        if newest is None or epoch > newest[0]:
            newest = (epoch, leader)
    if newest is None or newest[1] < 0:
        return None
    return newest[1]


def partition_line(state: PartitionState) -> str:
    """``  partition 0: leader 2, replicas [2, 3, 1], isr [2, 3]  UNDER-REPLICATED``."""
    leader = str(state.leader) if state.leader >= 0 else "none"
    line = (
        f"  partition {state.partition}: leader {leader}, replicas {list(state.replicas)}, "
        f"isr {list(state.isr)}"
    )
    return line + ("  UNDER-REPLICATED" if state.under_replicated else "")


def topic_lines(topic: str, partitions: Sequence[PartitionState]) -> list[str]:
    """A topic's header line (partitions, under-replicated count), then one line per partition."""
    under = sum(1 for state in partitions if state.under_replicated)
    header = f"topic {topic}: {len(partitions)} partitions, {under} under-replicated"
    ordered = sorted(partitions, key=lambda state: state.partition)
    return [header, *(partition_line(state) for state in ordered)]


# --- members ------------------------------------------------------------------------------------


def quorum_roles(settings: Settings) -> dict[int, str]:
    """``{node id: "leader" | "follower"}`` of the running nodes, from their ``quorum-state``
    files (read from disk: no JVM tool, no request); "election" while no live leader is known."""
    running = [i for i in node_ids(settings) if process.is_running(member_name(i), settings)]
    texts = []
    for node_id in running:
        state_file = node_paths(settings, node_id).data_dir / QUORUM_STATE_FILE
        try:
            texts.append(state_file.read_text())
        except OSError:
            continue
    leader = quorum_leader(texts)
    if leader not in running:
        return dict.fromkeys(running, "election")
    return {i: "leader" if i == leader else "follower" for i in running}


def member_lines(settings: Settings) -> list[str]:
    """One line per node: name, pid, up/down, ports, quorum role."""
    roles = quorum_roles(settings)
    lines = []
    for node_id in node_ids(settings):
        name = member_name(node_id)
        status = process.process_status(name, settings)
        port, controller_port = node_ports(settings, node_id)
        state = "up" if status.running else "down"
        role = roles.get(node_id, "-")
        lines.append(
            f"{name:<9} pid {status.pid if status.running else '-'} {state:<4} "
            f"{settings.cluster.host}:{port} (controller {controller_port}) quorum {role}"
        )
    return lines


def status_lines(settings: Settings) -> list[str]:
    """Lines for ``rtc status``: every node (pid, up/down, ports, quorum role), the brokers
    registered, then per project topic its partitions with leader and ISR and the count of
    under-replicated partitions (ISR smaller than the replicas)."""
    from confluent_kafka import KafkaException

    cluster = settings.cluster
    lines = member_lines(settings)
    try:
        brokers = registered_brokers(settings)
        described = describe_topics(settings, settings.topics.all()) if brokers else {}
    except KafkaException as error:
        return [*lines, f"kafka cluster {cluster.kafka_bootstrap}: no answer ({error})"]
    if not brokers:
        return [*lines, f"kafka cluster {cluster.kafka_bootstrap}: no broker answers"]
    states = {topic: found for topic, found in described.items() if not isinstance(found, str)}
    under = sum(1 for found in states.values() for state in found if state.under_replicated)
    lines.append(
        f"kafka cluster {cluster.kafka_bootstrap}: {len(brokers)} of {cluster.kafka_brokers} "
        f"brokers registered {sorted(brokers)}, {under} under-replicated partitions"
    )
    for topic, found in described.items():
        lines.extend(
            [f"topic {topic}: {found}"] if isinstance(found, str) else topic_lines(topic, found)
        )
    return lines


def member_rss_bytes(settings: Settings) -> Mapping[str, int | None]:
    """Resident memory of each running member (``VmRSS`` of its JVM), None where unknown."""
    sizes: dict[str, int | None] = {}
    for node_id in node_ids(settings):
        name = member_name(node_id)
        sizes[name] = _rss_bytes(process.read_pid(name, settings))
    return sizes


def _rss_bytes(pid: int | None) -> int | None:
    """``VmRSS`` of ``pid`` (the JVM: the log-rotation wrapper ``exec``s it under the same pid)."""
    if pid is None or not process.pid_alive(pid):
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None
