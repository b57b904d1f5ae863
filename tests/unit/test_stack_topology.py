"""Which topology a home runs (issue 14): recorded at start, adopted by `rtc status`/`rtc down`
from another shell, never mixed with running members of the other one; stop order by role."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rtcrypto.config import Settings
from rtcrypto.config_cluster import Topology
from rtcrypto.stack import lifecycle, process, topology
from rtcrypto.stack.errors import StackError


def _settings(home: Path, chosen: Topology) -> Settings:
    return Settings(home=home, topology=chosen)


def test_a_start_records_the_topology_and_down_forgets_it(tmp_path: Path) -> None:
    cluster = _settings(tmp_path, Topology.CLUSTER)
    assert topology.recorded_topology(cluster) is None
    topology.record_topology(cluster)
    assert topology.recorded_topology(_settings(tmp_path, Topology.SINGLE)) is Topology.CLUSTER
    lifecycle.stop_stack(cluster, 5.0, lambda line: None)
    assert topology.recorded_topology(cluster) is None


def test_the_other_topology_is_refused_while_members_run(tmp_path: Path) -> None:
    cluster = _settings(tmp_path, Topology.CLUSTER)
    topology.record_topology(cluster)
    process.start_process(
        "kafka-1", [sys.executable, "-c", "import time; time.sleep(60)"], settings=cluster
    )
    try:
        with pytest.raises(StackError, match="runs the cluster topology.*rtc down"):
            topology.record_topology(_settings(tmp_path, Topology.SINGLE))
        topology.record_topology(cluster)  # the same topology again is fine
    finally:
        process.stop_process("kafka-1", timeout_s=5.0, settings=cluster)
    topology.record_topology(_settings(tmp_path, Topology.SINGLE))  # nothing runs: may switch
    assert topology.recorded_topology(cluster) is Topology.SINGLE


def test_status_and_down_adopt_the_recorded_topology_unless_the_variable_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTC_TOPOLOGY", "single")  # recorded, so that teardown restores it
    monkeypatch.delenv("RTC_TOPOLOGY")  # adopt_recorded_topology sets os.environ itself
    single = _settings(tmp_path, Topology.SINGLE)
    assert topology.adopt_recorded_topology(single) is False  # nothing recorded
    topology.record_topology(_settings(tmp_path, Topology.CLUSTER))
    assert topology.adopt_recorded_topology(single) is True
    assert Settings(home=tmp_path).topology is Topology.CLUSTER
    monkeypatch.setenv("RTC_TOPOLOGY", "single")
    assert topology.adopt_recorded_topology(single) is False


@pytest.mark.parametrize(
    ("name", "rank"),
    [
        ("airflow", 0),
        ("airflow-scheduler", 0),
        ("airflow-worker-2", 0),
        ("ingest-1", 1),
        ("liquidity", 1),
        ("trader", 1),
        ("kafka", 2),
        ("kafka-3", 2),
        ("elasticsearch-2", 2),
        ("spark-worker-1", 2),
        ("spark-master", 2),
        ("postgres", 3),
        ("redis", 3),
    ],
)
def test_the_supervisor_stops_first_and_the_databases_last(name: str, rank: int) -> None:
    assert lifecycle._stop_rank(name) == rank


def test_each_engines_members_stop_together_in_the_order_of_their_ranks(tmp_path: Path) -> None:
    names = [
        "airflow-worker-1",
        "airflow-scheduler",
        "trader",
        "ingest-2",
        "ingest-1",
        "spark-worker-2",
        "spark-worker-1",
        "spark-master",
        "elasticsearch-2",
        "elasticsearch-1",
        "kafka-3",
        "kafka-2",
        "kafka-1",
        "redis",
        "postgres",
    ]
    statuses = [process.process_status(name, Settings(home=tmp_path)) for name in names]
    batches = [[status.name for status in batch] for batch in lifecycle._stop_batches(statuses)]
    assert batches == [
        ["airflow-worker-1", "airflow-scheduler"],
        ["trader"],
        ["ingest-2"],
        ["ingest-1"],
        ["spark-worker-2", "spark-worker-1"],
        ["spark-master"],
        ["elasticsearch-2", "elasticsearch-1"],
        ["kafka-3", "kafka-2", "kafka-1"],
        ["redis"],
        ["postgres"],
    ]
