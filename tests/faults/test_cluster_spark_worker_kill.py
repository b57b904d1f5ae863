"""kill -9 of one Spark standalone worker (and its executor) while the liquidity job's windows
are open: the job finishes its input on the surviving worker, every window emitted once.

A private cluster of this module alone (``rtcrypto.stack.spark_cluster``: master + 2 workers on
free ports, its own RTC_HOME; the connector jars come from the shared library folder through a
symlink), the real liquidity job submitted to its ``spark://`` master, reading a fresh topic of
the shared broker. Input: the recorded Gemini BTCUSD/ETHUSD books replayed 3 times one minute
apart (``tests/integration/test_liquidity_job.py``); expected values: the same plain-Python
recomputation.

The kill: the worker's whole process group (the worker JVM and its executor, a node lost), after
the job wrote the windows of its first input and while the next minute's window is open (its
state in the state store), then the rest of the input is produced. No batch runs at the kill
(the job has drained its input), so no Kafka write is in flight and exactly once is asserted.

Spark's Kafka sink is at-least-once: its writer (``KafkaDataWriter``, spark-sql-kafka 4.2.0)
hands each row to ``KafkaProducer.send`` as the task produces it and only flushes at the task's
commit, with no Kafka transaction. A write task lost *while it sends* is run again on another
executor, and whatever the lost attempt's producer had already delivered stays on the topic (the
producer's idempotence dedupes its own retries, never another producer's). Such copies carry
identical values (same batch, same ``emitted_at_ms``); readers keep one per key
(``symbol:window_start_ms``). Map tasks and write tasks that had finished are not re-run as
output. This test's kill does not land inside a write (the job is idle between batches), so 0
duplicates is what it asserts; the inside-a-write case is not measured here.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rtcrypto.config import Settings, get_settings
from rtcrypto.config_cluster import ClusterSettings
from rtcrypto.market.liquidity import WINDOW_MS
from rtcrypto.spark import submit as spark
from rtcrypto.stack import maven, process
from rtcrypto.stack import spark_cluster as cluster
from rtcrypto.stack.spark_json import ALIVE
from tests.helpers import free_port, wait_until
from tests.integration.test_liquidity_job import (
    JOB_START_TIMEOUT_S,
    RunningJob,
    TopicReader,
    as_messages,
    closed_windows,
    produce,
    replayed_capture,
)
from tests.unit.test_liquidity_spark import (
    assert_window_matches,
    expected_windows,
    with_ticks_and_depth,
)

# outside `make test` for CI's time limit: `make test-cluster` runs it (docs/scaling.md)
pytestmark = [
    pytest.mark.faults,
    pytest.mark.cluster,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.cluster_heavy,
]

WORKERS = 2
REPLAYS = 3  # the capture three times, one minute apart: 4 windows per symbol, 3 closed
EXECUTOR_MAIN_CLASS = b"CoarseGrainedExecutorBackend"


def _rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _processes_under(home: Path) -> list[int]:
    """Pids of live processes whose command line or working folder is inside ``home``."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            command = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        inside = str(home).encode() in command or cwd.startswith(str(home))
        if inside and process.pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _executor_pids(worker_pid: int) -> list[int]:
    """The executor JVMs a worker started (its children running the executor backend)."""
    return [
        child
        for child in spark._children(worker_pid)
        if EXECUTOR_MAIN_CLASS in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


@dataclass(frozen=True)
class RunningCluster:
    """The module's cluster: its settings and how long its start took (seconds)."""

    settings: Settings
    startup_s: float


@pytest.fixture(scope="module")
def spark_members(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    """A running master + 2 workers of this module alone (free ports, own home)."""
    shared = get_settings()
    jars = maven.resolve_jars(maven.spark_kafka_jar_set(shared), shared).jar_dir
    home = tmp_path_factory.mktemp("spark-cluster-home")
    (home / "lib").mkdir()
    (home / "lib" / jars.name).symlink_to(jars, target_is_directory=True)
    members = ClusterSettings(
        spark_master_port=free_port(),
        spark_master_ui_port=free_port(),
        spark_worker_ports=[free_port() for _ in range(WORKERS)],
        spark_worker_ui_ports=[free_port() for _ in range(WORKERS)],
    )
    settings = Settings(
        home=home,
        cluster=members,
        spark_master=members.spark_master_url,
        kafka_bootstrap=shared.kafka_bootstrap,
    )
    lines: list[str] = []
    try:
        started = cluster.start_spark_cluster(settings, lines.append, timeout_s=120)
        yield RunningCluster(settings, started.seconds_to_ready)
    finally:
        for name in reversed(cluster.spark_cluster_processes(settings)):
            process.stop_process(name, timeout_s=20, settings=settings)


def test_status_lists_the_master_and_every_worker_alive(
    spark_members: RunningCluster, services_report: Callable[[str], None]
) -> None:
    settings = spark_members.settings
    lines = cluster.spark_cluster_status(settings)
    assert len(lines) == 1 + WORKERS, lines
    master, *workers = lines
    assert master.startswith("spark-master") and " ALIVE " in master, master
    assert settings.cluster.spark_master_url in master and f"{WORKERS}/{WORKERS} workers alive" in (
        master
    )
    for index, line in enumerate(workers, start=1):
        assert line.startswith(f"spark-worker-{index} ") and " ALIVE " in line, line
        cores = settings.cluster.spark_worker_cores
        assert f"cores 0/{cores} used" in line and "memory 0/1024 MiB used" in line, line
    pids = [process.read_pid(name, settings) for name in cluster.spark_cluster_processes(settings)]
    again = cluster.start_spark_cluster(settings, lambda line: None, timeout_s=30)
    assert again.already_running == tuple(cluster.spark_cluster_processes(settings))
    assert list(again.pids.values()) == pids  # a second start leaves the running members be
    rss = ", ".join(
        f"{name} {_rss_mb(pid or 0):.0f} MB"
        for name, pid in zip(cluster.spark_cluster_processes(settings), pids, strict=True)
    )
    services_report(
        f"Spark standalone (cluster topology): master + {WORKERS} workers ALIVE "
        f"{spark_members.startup_s:.1f} s after the start; idle RSS {rss}"
    )


def test_worker_kill_while_windows_are_open_emits_every_window_once(
    spark_members: RunningCluster,
    kafka_topic_factory: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    services_report: Callable[[str], None],
) -> None:
    settings = spark_members.settings
    monkeypatch.setenv("RTC_HOME", str(settings.home))  # the job's driver: its files go there
    get_settings.cache_clear()
    topics = {label: kafka_topic_factory(label) for label in ("input", "output")}
    timeline = with_ticks_and_depth(replayed_capture(REPLAYS))
    expected = expected_windows(timeline)
    # the capture starts 42.5 s into a minute: the split is 52.5 s into the second window
    split_ms = timeline[0].ts_event_ms + WINDOW_MS + 10_000
    first = [record for record in timeline if record.ts_event_ms <= split_ms]
    second = [record for record in timeline if record.ts_event_ms > split_ms]
    closed_first = closed_windows(expected, first[-1].ts_event_ms - 2_000)
    closed_all = closed_windows(expected, timeline[-1].ts_event_ms - 2_000)
    assert len(closed_first) == 2 and len(closed_all) == 6  # 1, then 3 minutes x 2 symbols

    config = spark.LiquidityJobConfig.from_settings(settings).with_overrides(
        bootstrap=settings.kafka_bootstrap,
        input_topic=topics["input"],
        output_topic=topics["output"],
        deadletter_topic="",  # one query: the windowed one (malformed input is not the point)
        heartbeat_topic="",
        checkpoint=settings.run_dir / "checkpoints" / "liquidity",
        starting_offsets="earliest",
        trigger="1 second",
        watermark="2 seconds",
        progress_interval_s=10.0,
    )
    assert config.master.startswith("spark://")
    produce(settings.kafka_bootstrap, topics["input"], as_messages(first))
    output = TopicReader(settings.kafka_bootstrap, topics["output"])
    job = RunningJob(config, tmp_path / "liquidity.log")
    try:
        records = output.wait_for(
            lambda values: {v["key"] for v in values} >= closed_first, JOB_START_TIMEOUT_S, job
        )
        first_output_s = time.monotonic() - job.started_at
        records = output.drain(quiet_s=2)
        assert sorted(record["key"] for record in records) == sorted(closed_first)

        # both workers run one executor of the job (spark.cores.max 2, one core each)
        running = cluster.spark_cluster_status(settings)
        app_lines = [line for line in running if line.startswith("spark-app")]
        assert len(app_lines) == 1 and "liquidity RUNNING" in app_lines[0], running
        assert "spark-worker-1#" in app_lines[0] and "spark-worker-2#" in app_lines[0], running
        worker_pids = {
            index: process.read_pid(cluster.spark_worker_process(index), settings) or 0
            for index in range(1, WORKERS + 1)
        }
        executors = {index: _executor_pids(pid) for index, pid in worker_pids.items()}
        assert all(len(found) == 1 for found in executors.values()), (executors, running)
        rss = {
            "master": _rss_mb(process.read_pid(cluster.SPARK_MASTER_PROCESS, settings) or 0),
            "worker": _rss_mb(worker_pids[1]),
            "executor": _rss_mb(executors[1][0]),
            "driver JVM": _rss_mb(job.process.pid),
            "driver Python": _rss_mb(spark.job_driver_pid(job.process.pid) or 0),
        }

        victim = 1
        os.killpg(worker_pids[victim], signal.SIGKILL)  # the worker and its executor: a node lost
        killed_at = time.monotonic()
        produce(settings.kafka_bootstrap, topics["input"], as_messages(second))

        def master_saw_it() -> bool:
            state = cluster.read_master_state(settings)
            victim_port = settings.cluster.spark_worker_ports[victim - 1]
            return all(w.state != ALIVE for w in state.workers if w.port == victim_port)

        wait_until(master_saw_it, 60, "the master marking the killed worker lost")
        worker_lost_s = time.monotonic() - killed_at
        output.wait_for(
            lambda values: len({v["key"] for v in values}) > len(closed_first),
            JOB_START_TIMEOUT_S,
            job,
        )
        first_after_kill_s = time.monotonic() - killed_at
        records = output.wait_for(
            lambda values: {v["key"] for v in values} >= closed_all, JOB_START_TIMEOUT_S, job
        )
        recovered_s = time.monotonic() - killed_at
        records = output.drain(quiet_s=2)
        after_kill = cluster.spark_cluster_status(settings)
        job.assert_alive()  # the driver survived the loss of a worker
        assert job.stop() == 0, job.log_tail()
    finally:
        output.close()
        if job.process.poll() is None:
            job.kill()

    copies = Counter(record["key"] for record in records)
    duplicates = sum(count - 1 for count in copies.values())
    assert sorted(copies) == sorted(closed_all), "every closed window, no other key"
    assert duplicates == 0, f"windows written more than once: {copies.most_common(3)}"
    for record in records:
        assert_window_matches(record, expected[record["key"]])
    victim_line = next(line for line in after_kill if line.startswith("spark-worker-1 "))
    assert "not running" in victim_line, after_kill
    survivor = next(line for line in after_kill if line.startswith("spark-worker-2 "))
    assert " ALIVE " in survivor, after_kill

    for name in reversed(cluster.spark_cluster_processes(settings)):
        process.stop_process(name, timeout_s=20, settings=settings)
    left = _processes_under(settings.home)
    assert left == [], f"processes left after the stop: {left}"
    print("\n".join(["", *running, "after the kill:", *after_kill]))
    services_report(
        f"faults (cluster): Spark worker + executor kill -9 with windows open: "
        f"{len(copies)} windows in {len(records)} records, {duplicates} duplicates, all equal to "
        f"the recomputation; master saw the worker lost {worker_lost_s:.1f} s after the kill, "
        f"first window of the rest out {first_after_kill_s:.1f} s and every window "
        f"{recovered_s:.1f} s after it (rest of the input produced at the kill); submit -> "
        f"first windows {first_output_s:.1f} s; RSS MB "
        + ", ".join(f"{member} {mb:.0f}" for member, mb in rss.items())
    )
