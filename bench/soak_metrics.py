"""What the soak test (``bench/soak.py``) records each minute, and the pure arithmetic on it.

Read at the edges of a running platform (its own ``RTC_HOME``): RSS of every managed process and
its children (``/proc``), topic sizes (end offsets and bytes on disk), Elasticsearch indices
(documents and store bytes), the trader's Elasticsearch spool, consumer lag per consumer group
(and the Spark jobs' checkpoint lag), and each service's newest heartbeat counter.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtcrypto import supervision as services
from rtcrypto.config import Settings
from rtcrypto.stack import kafka, process

MB = 1_000_000
PROC = Path("/proc")


# --- processes (pure parts first) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcInfo:
    """One process of ``/proc``: parent, short name (``comm``) and resident memory in bytes."""

    pid: int
    ppid: int
    comm: str
    rss_bytes: int


def parse_stat(text: str) -> tuple[str, int]:
    """``(comm, ppid)`` from the text of ``/proc/<pid>/stat`` (comm may hold spaces and ')')."""
    left, right = text.index("("), text.rindex(")")
    fields = text[right + 2 :].split()
    return text[left + 1 : right], int(fields[1])


def parse_vm_rss_bytes(status_text: str) -> int:
    """``VmRSS`` of ``/proc/<pid>/status`` in bytes (0 for a kernel thread or a zombie)."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def descendants(root: int, table: Mapping[int, ProcInfo]) -> list[int]:
    """Every process below ``root`` (children, their children, ...), by parent pid."""
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    found: list[int] = []
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return sorted(found)


def tree_rss(root: int, table: Mapping[int, ProcInfo]) -> dict[str, Any]:
    """RSS of ``root`` and its descendants in MB: total, and by process name (``comm``)."""
    by_comm: dict[str, float] = {}
    total = 0
    tree = [pid for pid in [root, *descendants(root, table)] if pid in table]
    for pid in tree:
        info = table[pid]
        total += info.rss_bytes
        by_comm[info.comm] = by_comm.get(info.comm, 0.0) + info.rss_bytes / MB
    return {
        "pid": root,
        "rss_mb": round(total / MB, 1),
        "processes": len(tree),
        "by_comm_mb": {name: round(value, 1) for name, value in sorted(by_comm.items())},
        "by_pid_mb": {str(pid): round(table[pid].rss_bytes / MB, 1) for pid in tree},
    }


def read_proc_table(proc: Path = PROC) -> dict[int, ProcInfo]:
    """Every process now (processes that exit while being read are left out)."""
    table: dict[int, ProcInfo] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm, ppid = parse_stat((entry / "stat").read_text())
            rss = parse_vm_rss_bytes((entry / "status").read_text())
        except (OSError, ValueError, IndexError):
            continue
        table[int(entry.name)] = ProcInfo(int(entry.name), ppid, comm, rss)
    return table


def process_memory(settings: Settings) -> dict[str, dict[str, Any]]:
    """RSS per managed process of ``settings.home`` (its whole process tree), by process name."""
    table = read_proc_table()
    return {
        status.name: tree_rss(status.pid, table)
        for status in process.list_processes(settings)
        if status.running and status.pid is not None
    }


# --- Kafka --------------------------------------------------------------------------------------


def _start_offsets(admin: Any, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    futures = admin.list_offsets(
        {TopicPartition(topic, partition): OffsetSpec.earliest() for partition in partitions},
        request_timeout=5.0,
    )
    return {tp.partition: int(future.result().offset) for tp, future in futures.items()}


def log_bytes(folder: Path) -> int:
    """Bytes of a partition folder's log segments (``*.log``; the preallocated index files left
    out), 0 if it does not exist."""
    total = 0
    for path in folder.glob("*.log") if folder.is_dir() else ():
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            continue
    return total


def topic_sizes(settings: Settings, admin: Any) -> dict[str, dict[str, int]]:
    """Per topic: records produced (end offsets), records retained, log segment bytes on disk."""
    data_dir = kafka.kafka_paths(settings).data_dir
    sizes: dict[str, dict[str, int]] = {}
    for topic in settings.topics.all():
        ends = services.end_offsets(admin, topic)
        starts = _start_offsets(admin, topic, ends) if ends else {}
        on_disk = sum(log_bytes(data_dir / f"{topic}-{partition}") for partition in ends)
        sizes[topic] = {
            "produced": sum(ends.values()),
            "retained": sum(end - starts.get(p, 0) for p, end in ends.items()),
            "bytes": on_disk,
        }
    return sizes


def consumer_lags(settings: Settings, admin: Any) -> dict[str, int | None]:
    """Records not yet read: per consumer group and topic (committed offsets against the end
    offsets), and per Spark job (``spark:<service>``: its checkpoint's planned offsets)."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    lags: dict[str, int | None] = {}
    listed = admin.list_consumer_groups(request_timeout=5.0).result()
    for group in sorted(listing.group_id for listing in listed.valid):
        result = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=5.0
        )[group].result()
        by_topic: dict[str, dict[int, int | None]] = {}
        for item in result.topic_partitions:
            offset = int(item.offset) if item.offset >= 0 else None
            by_topic.setdefault(item.topic, {})[item.partition] = offset
        for topic, committed in sorted(by_topic.items()):
            ends = services.end_offsets(admin, topic)
            lags[f"{group}:{topic}"] = services.offset_lag(ends, committed)
    for spec in services.SERVICES:
        if spec.lag_source is services.LagSource.checkpoint and spec.enabled(settings):
            lags[f"spark:{spec.name}"] = services.service_lag_records(spec, settings, admin)
    return lags


def heartbeat_counters(latest: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """Per service: the newest heartbeat's ``processed``, ``dead_letters`` and ``ts_ms``."""
    return {
        service: {key: beat.get(key) for key in ("processed", "dead_letters", "ts_ms", "instance")}
        for service, beat in sorted((latest or {}).items())
    }


# --- Elasticsearch and the spool ----------------------------------------------------------------


def index_sizes(client: Any, prefix: str) -> dict[str, dict[str, int]]:
    """Per index ``<prefix>-*``: documents and store bytes (``_cat/indices``)."""
    rows = client.cat.indices(index=f"{prefix}-*", format="json", bytes="b")
    return {
        row["index"]: {
            "docs": int(row.get("docs.count") or 0),
            "bytes": int(row.get("store.size") or 0),
        }
        for row in sorted(rows, key=lambda row: row["index"])
    }


def spool_size(settings: Settings) -> dict[str, int]:
    """The bulk writers' spool: spool files and their bytes, dead-letter bytes."""
    root = settings.search_spool_path
    spool_files = list(root.rglob("spool-*")) if root.is_dir() else []
    dead = list(root.rglob("dead-letter.jsonl")) if root.is_dir() else []
    return {
        "files": len(spool_files),
        "bytes": sum(path.stat().st_size for path in spool_files if path.exists()),
        "dead_letter_bytes": sum(path.stat().st_size for path in dead if path.exists()),
    }


# --- one sample -----------------------------------------------------------------------------------


def take_sample(settings: Settings, admin: Any, client: Any, elapsed_s: float) -> dict[str, Any]:
    """Everything above at one moment; a part that cannot be read is recorded as its error."""
    sample: dict[str, Any] = {
        "ts_ms": time.time_ns() // 1_000_000,
        "elapsed_s": round(elapsed_s, 1),
        "load_1m": round(os.getloadavg()[0], 2),
    }
    parts = {
        "rss": lambda: process_memory(settings),
        "topics": lambda: topic_sizes(settings, admin),
        "indices": lambda: index_sizes(client, settings.search_index_prefix),
        "spool": lambda: spool_size(settings),
        "lag": lambda: consumer_lags(settings, admin),
        "heartbeats": lambda: heartbeat_counters(services.read_latest_heartbeats(settings)),
    }
    for name, read in parts.items():
        try:
            sample[name] = read()
        except Exception as error:  # noqa: BLE001 - one unreadable part must not end the soak
            sample[name] = {"error": f"{type(error).__name__}: {error}"}
    return sample


def flat_rows(sample: Mapping[str, Any]) -> list[tuple[float, str, str, str, Any]]:
    """The sample as long CSV rows ``(elapsed_s, part, name, metric, value)``."""
    rows: list[tuple[float, str, str, str, Any]] = []
    elapsed = float(sample["elapsed_s"])
    rows.append((elapsed, "machine", "load", "load_1m", sample["load_1m"]))
    for part in ("rss", "topics", "indices", "spool", "lag", "heartbeats"):
        values = sample.get(part) or {}
        for name, value in values.items():
            if isinstance(value, Mapping):
                for metric, number in value.items():
                    if isinstance(number, Mapping):
                        for sub, inner in number.items():
                            rows.append((elapsed, part, name, f"{metric}.{sub}", inner))
                    else:
                        rows.append((elapsed, part, name, metric, number))
            else:
                rows.append((elapsed, part, name, "value", value))
    return rows


# --- memory slope (pure) --------------------------------------------------------------------------


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(seconds, value)`` points, in value per hour; None below 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var_x = sum((x - mean_x) ** 2 for x, _ in points)
    if var_x == 0:
        return None
    cov = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return cov / var_x * 3600.0


def rss_series(samples: Iterable[Mapping[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Per managed process: ``(elapsed_s, rss_mb)`` of its whole tree, every sample it ran in."""
    series: dict[str, list[tuple[float, float]]] = {}
    for sample in samples:
        for name, value in (sample.get("rss") or {}).items():
            if isinstance(value, Mapping) and "rss_mb" in value:
                series.setdefault(name, []).append((float(sample["elapsed_s"]), value["rss_mb"]))
    return series


def persistent_series(samples: Sequence[Mapping[str, Any]], name: str) -> list[tuple[float, float]]:
    """``(elapsed_s, rss_mb)`` of the processes of ``name``'s tree present in every one of
    ``samples``: a leak lives in a long-lived process, while short-lived children (Airflow's
    task runs) come and go and would only add noise to the slope."""
    trees = [
        (float(sample["elapsed_s"]), ((sample.get("rss") or {}).get(name) or {}).get("by_pid_mb"))
        for sample in samples
    ]
    if not trees or any(not isinstance(tree, Mapping) for _, tree in trees):
        return []
    common = set.intersection(*(set(tree) for _, tree in trees if isinstance(tree, Mapping)))
    return [
        (elapsed, sum(tree[pid] for pid in common))
        for elapsed, tree in trees
        if isinstance(tree, Mapping)
    ]


def steady_rss_mb(samples: Sequence[Mapping[str, Any]], index: int, name: str) -> float | None:
    """RSS (MB) of ``name``'s tree at sample ``index``, counting only processes also present in
    the neighbouring samples: a fork being spawned (``jspawnhelper``, which shares its JVM's
    pages and would count it twice) or a short task run is left out."""
    tree = ((samples[index].get("rss") or {}).get(name) or {}).get("by_pid_mb")
    if not isinstance(tree, Mapping):
        return None
    pids = set(tree)
    for neighbour in (index - 1, index + 1):
        if 0 <= neighbour < len(samples):
            other = ((samples[neighbour].get("rss") or {}).get(name) or {}).get("by_pid_mb")
            pids &= set(other) if isinstance(other, Mapping) else set()
    return round(sum(tree[pid] for pid in pids), 1)


def second_half_slopes(
    samples: Sequence[Mapping[str, Any]], run_s: float
) -> dict[str, dict[str, float | None]]:
    """Per managed process, over the samples of the run's second half: the RSS slope (MB/h) of
    its long-lived processes (``persistent``, the one judged) and of its whole tree (``tree``)."""
    late = [sample for sample in samples if float(sample["elapsed_s"]) >= run_s / 2]
    return {
        name: {
            "persistent": slope_per_hour(persistent_series(late, name)),
            "tree": slope_per_hour(points),
        }
        for name, points in rss_series(late).items()
    }
