"""The supervisor against real processes: Kafka, the simulator, the ingest, Elasticsearch, Airflow.

On an isolated home and topics, the simulator and the ingest start as managed processes (the
registry's commands, as ``rtc up`` starts them) and report healthy; the ingest is killed with
SIGKILL; one run of the ``streaming_supervisor`` DAG (``dag.test()`` in a child process with its
own AIRFLOW_HOME and the repo's plugins folder) restarts it: a new pid, heartbeats again from the
new process, the journal line with reason "dead", and the ``<prefix>-restarts`` document.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rtcrypto import supervision as services
from rtcrypto.config import Settings, Topics
from rtcrypto.stack import process
from rtcrypto.supervision import HealthState
from tests.helpers import GEMINI_CAPTURE, REPO, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RESULT_MARK = "SUPERVISOR_RESULT "
# Runs in the child: parse the DAGs, dag.test() the supervisor once, print every task's state.
_RUNNER = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
run = bag.dags["streaming_supervisor"].test()
states = [[ti.task_id, ti.map_index, str(ti.state)] for ti in run.get_task_instances()]
print("SUPERVISOR_RESULT " + json.dumps({"state": str(run.state), "tasks": states}))
"""


@pytest.fixture
def isolated(
    tmp_path: Path, kafka_broker: str, kafka_topic_factory: Callable[..., str], search_node: str
) -> Iterator[Settings]:
    """Settings of this test only: home, topics, simulator port, index prefix; 1 s heartbeats."""
    topics = Topics(**{name: kafka_topic_factory(name) for name in Topics.model_fields})
    settings = Settings(
        home=tmp_path / "rtc",
        kafka_bootstrap=kafka_broker,
        topics=topics,
        feed="simulator",
        simulator_capture=GEMINI_CAPTURE,
        simulator_replay="capture",  # this test replays the recorded capture, looped
        simulator_port=free_port(),
        heartbeat_interval_s=1.0,
        reconnect_initial_s=0.2,
        reconnect_max_s=2.0,
        search_url=search_node,
        search_index_prefix=f"test-supervisor-{uuid.uuid4().hex[:8]}",
        airflow_home=tmp_path / "airflow",
    )
    try:
        yield settings
    finally:
        for name in reversed(services.service_names()):
            process.stop_process(name, timeout_s=20, settings=settings)
        from rtcrypto.search.client import search_client

        client = search_client(settings, max_retries=0)
        client.options(ignore_status=404).indices.delete(index=services.restarts_index(settings))
        # the heartbeats the checks judged (rtcrypto.supervision.indexing)
        client.options(ignore_status=404).indices.delete(
            index=f"{settings.search_index_prefix}-heartbeat"
        )


def _airflow_env(settings: Settings) -> dict[str, str]:
    airflow_home = settings.airflow_home_dir
    return {
        **os.environ,
        **services.settings_env(settings),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
    }


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s: {what}\n{process.tail_file(log, 30)}")


def _heartbeat_from(settings: Settings, pid: int, after_ms: int) -> bool:
    beats = services.read_latest_heartbeats(settings) or {}
    beat = beats.get("ingest")
    return bool(
        beat and beat["ts_ms"] > after_ms and str(beat.get("instance", "")).endswith(f":{pid}")
    )


def test_supervisor_dag_restarts_a_killed_ingest(isolated: Settings, services_report) -> None:
    settings = isolated
    ingest = services.get_service("ingest")
    airflow_env = _airflow_env(settings)
    migrated = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=airflow_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]

    services.start_service(services.get_service("simulator"), settings)
    first_pid = services.start_service(ingest, settings)
    ingest_log = process.log_path("ingest", settings)
    _wait_for(
        lambda: _heartbeat_from(settings, first_pid, 0), 60, "the ingest's heartbeat", ingest_log
    )
    for name in ("simulator", "ingest"):
        health = services.check_health(services.get_service(name), settings)
        assert health.state is HealthState.healthy, health

    killed_at = time.time()
    os.killpg(first_pid, signal.SIGKILL)
    _wait_for(lambda: not process.is_running("ingest", settings), 10, "the kill", ingest_log)
    assert services.check_health(ingest, settings).state is HealthState.dead

    dag_started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(REPO / "dags")],
        env=airflow_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    dag_s = time.monotonic() - dag_started
    output = completed.stdout + completed.stderr
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARK)]
    assert completed.returncode == 0 and lines, output[-6000:]
    result = json.loads(lines[-1][len(RESULT_MARK) :])
    assert result["state"] == "success", output[-6000:]
    states: dict[str, list[str]] = {}
    for task_id, _map_index, state in result["tasks"]:
        states.setdefault(task_id, []).append(state)
    enabled = [spec.name for spec in services.enabled_services(settings)]
    assert states["check_health"] == ["success"] * len(enabled)
    # Exactly one restart (the ingest); the healthy simulator and the never-started rest skip.
    assert sorted(states["restart_if_needed"]) == sorted(
        ["success"] + ["skipped"] * (len(enabled) - 1)
    )
    assert states["report"] == ["success"]

    new_pid = process.read_pid("ingest", settings)
    assert new_pid is not None and new_pid != first_pid
    assert process.is_running("ingest", settings)
    journal = services.read_journal(settings)
    assert [(r.service, r.reason, r.old_pid, r.new_pid) for r in journal] == [
        ("ingest", "dead", first_pid, new_pid)
    ]
    _wait_for(
        lambda: _heartbeat_from(settings, new_pid, int(killed_at * 1000)),
        60,
        "a heartbeat from the restarted ingest",
        ingest_log,
    )
    kill_to_heartbeat_s = time.time() - killed_at
    assert services.check_health(ingest, settings).state is HealthState.healthy
    assert services.check_health(services.get_service("simulator"), settings).state is (
        HealthState.healthy
    )

    from rtcrypto.search.client import search_client

    document = search_client(settings).get(
        index=services.restarts_index(settings), id=journal[0].document_id
    )["_source"]
    assert (document["service"], document["reason"], document["pid"]) == ("ingest", "dead", new_pid)
    assert document["ts_ms"] == journal[0].ts_ms
    message = (
        f"supervisor: ingest killed -9 -> restarted by one streaming_supervisor dag.test() -> "
        f"new heartbeat {kill_to_heartbeat_s:.1f} s after the kill (the DAG run took {dag_s:.1f} s)"
    )
    print(message)
    services_report(message)


def test_reading_heartbeats_ends_while_services_keep_writing(
    kafka_broker: str, kafka_topic_factory: Callable[..., str]
) -> None:
    """The reader stops at the end offsets it saw, not at a quiet moment that never comes."""
    import threading

    from kafka import KafkaProducer

    from rtcrypto.supervision.heartbeats import RECENT_RECORDS, latest_by_service, read_recent

    topic = kafka_topic_factory("heartbeat")
    producer = KafkaProducer(bootstrap_servers=kafka_broker)
    for index in range(RECENT_RECORDS + 100):
        beat = {"service": "ingest", "ts_ms": index, "processed": index}
        producer.send(topic, json.dumps(beat).encode())
    producer.flush()
    stop = threading.Event()

    def keep_writing() -> None:
        index = 10_000
        while not stop.is_set():
            producer.send(topic, json.dumps({"service": "ingest", "ts_ms": index}).encode())
            index += 1
            time.sleep(0.05)  # far more often than any pause the old reader waited for

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        started = time.monotonic()
        records = read_recent(kafka_broker, topic, timeout_s=10.0)
        seconds = time.monotonic() - started
    finally:
        stop.set()
        writer.join(5)
        producer.close()
    assert seconds < 10.0
    assert len(records) >= RECENT_RECORDS
    assert latest_by_service(records)["ingest"]["ts_ms"] >= RECENT_RECORDS + 99
