"""`rtc up --topology cluster` from a new home (issue 14): the whole platform on the cluster form.

One start, as a user would: `rtc up --topology cluster` on free ports brings up 3 KRaft brokers,
the Elasticsearch nodes, a Spark standalone master with its workers, PostgreSQL, Redis and
Airflow's components with their Celery workers, prepares (history, forecast, indices) and starts
the streaming services, the liquidity job submitted to the standalone master. It must print
liquidity records, `rtc status` (from a shell without RTC_TOPOLOGY) must show every member
healthy, the paper trader must fill orders as in the single form, and `rtc down` must leave no
process behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from rtcrypto.config import Settings, get_settings
from rtcrypto.search.client import search_client
from rtcrypto.search.indices import index_name
from rtcrypto.stack import maven, process
from tests.helpers import free_port
from tests.listeners import processes_mentioning

# About 20 minutes on two cores (every member of every engine, plus the services): outside the
# default run, `make test-cluster` runs it (see the README's cluster section for why).
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.cluster,
    pytest.mark.cluster_heavy,
]

# Liveness deadlines, not speed goals (speed is in bench/cluster_throughput.py).
FIRST_RECORD_DEADLINE_S = 720
FILLS_DEADLINE_S = 900  # 600 s missed the first sell by 23 s at a load average of 13-17


def _ports(count: int) -> str:
    return ",".join(str(free_port()) for _ in range(count))


def _cluster_env(home: Path) -> dict[str, str]:
    """Every member on free ports (RTC_CLUSTER_*), the rest of the platform too."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("RTC_")}
    return {
        **env,
        "RTC_HOME": str(home),
        "RTC_CLUSTER_KAFKA_PORTS": _ports(3),
        "RTC_CLUSTER_KAFKA_CONTROLLER_PORTS": _ports(3),
        "RTC_CLUSTER_SEARCH_HTTP_PORTS": _ports(3),
        "RTC_CLUSTER_SEARCH_TRANSPORT_PORTS": _ports(3),
        "RTC_CLUSTER_SPARK_MASTER_PORT": str(free_port()),
        "RTC_CLUSTER_SPARK_MASTER_UI_PORT": str(free_port()),
        "RTC_CLUSTER_SPARK_WORKER_PORTS": _ports(2),
        "RTC_CLUSTER_SPARK_WORKER_UI_PORTS": _ports(2),
        "RTC_CLUSTER_POSTGRES_PORT": str(free_port()),
        "RTC_CLUSTER_REDIS_PORT": str(free_port()),
        "RTC_CLUSTER_CELERY_WORKER_LOG_PORTS": _ports(2),
        "RTC_SIMULATOR_PORT": str(free_port()),
        "RTC_AIRFLOW_PORT": str(free_port()),
        "RTC_AIRFLOW_WORKER_LOG_PORT": str(free_port()),
        "RTC_AIRFLOW_TRIGGER_LOG_PORT": str(free_port()),
        "RTC_SPARK_UI_PORT": str(free_port()),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }


def _fills_by_side(search_url: str) -> dict[str, int]:
    client = search_client(Settings(search_url=search_url), max_retries=0)
    try:
        client.indices.refresh(index=index_name("fills", "rtc"), ignore_unavailable=True)
        response = client.search(
            index=index_name("fills", "rtc"),
            size=0,
            aggs={"sides": {"terms": {"field": "side"}}},
            ignore_unavailable=True,
        )
    finally:
        client.close()
    buckets = response.get("aggregations", {}).get("sides", {}).get("buckets", [])
    return {bucket["key"]: int(bucket["doc_count"]) for bucket in buckets}


@pytest.mark.timeout(2400)
def test_rtc_up_topology_cluster_runs_the_platform_on_every_member_and_down_leaves_nothing(
    tmp_path: Path, services_report
) -> None:
    shared = get_settings()
    for jar_set in (maven.kafka_broker_jar_set(shared), maven.spark_kafka_jar_set(shared)):
        maven.resolve_jars(jar_set, shared)
    # PostgreSQL runs as the user `postgres` when we are root: its folders must be reachable
    # (pytest's own temporary folders are 0700)
    root = Path(tempfile.mkdtemp(prefix="rtc-platform-cluster-"))
    root.chmod(0o711)
    home = root / "rtc"
    home.mkdir()
    (home / "lib").symlink_to(shared.lib_dir)  # the cached jars: no second download
    env = _cluster_env(home)
    rtc = [sys.executable, "-m", "rtcrypto.cli.main"]
    output = (tmp_path / "up.log").open("w+")
    started = time.monotonic()
    up = subprocess.Popen(
        [*rtc, "up", "--topology", "cluster"],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    first_record_s = None
    status_env = env  # no RTC_TOPOLOGY: `rtc status` and `rtc down` adopt the recorded one
    try:
        deadline = started + FIRST_RECORD_DEADLINE_S
        while time.monotonic() < deadline and first_record_s is None:
            output.seek(0)
            records = [json.loads(line) for line in output.read().splitlines() if line[:1] == "{"]
            if records:
                first_record_s = time.monotonic() - started
                record = records[0]
            elif up.poll() is not None:
                break
            time.sleep(2)
        output.seek(0)
        log = output.read()
        assert first_record_s is not None, f"no liquidity record:\n{log[-5000:]}"
        assert record["type"] == "liquidity" and record["symbol"] == "BTCUSD"
        assert "cluster topology" in log and "topology       cluster: 3 Kafka brokers" in log, log[
            -5000:
        ]

        def status_text() -> str:
            done = subprocess.run(
                [*rtc, "status"], env=status_env, capture_output=True, text=True, timeout=120
            )
            return done.stdout + done.stderr

        deadline = time.monotonic() + 300
        while True:
            status_out = status_text()
            states = dict(
                re.findall(
                    r"^  (simulator|ingest|liquidity|trader|bars) +"
                    r"(healthy|stale|dead|lagging|stopped|unknown) ",
                    status_out,
                    re.M,
                )
            )
            healthy = bool(states) and all(state == "healthy" for state in states.values())
            if healthy or time.monotonic() > deadline:
                break
            time.sleep(5)
        assert healthy, status_out
        running = {
            line.split()[0]
            for line in status_out.splitlines()
            if len(line.split()) > 2 and line.split()[2] == "yes"
        }
        members = {
            "kafka-1",
            "kafka-2",
            "kafka-3",
            "elasticsearch-1",
            "elasticsearch-2",
            "elasticsearch-3",
            "spark-master",
            "spark-worker-1",
            "spark-worker-2",
            "postgres",
            "redis",
            "airflow-worker-1",
            "airflow-worker-2",
            "simulator",
            "ingest",
            "liquidity",
            "trader",
        }
        assert members <= running, (sorted(members - running), status_out)

        search_url = f"http://127.0.0.1:{env['RTC_CLUSTER_SEARCH_HTTP_PORTS'].split(',')[0]}"
        sides: dict[str, int] = {}
        while time.monotonic() < started + first_record_s + FILLS_DEADLINE_S:
            sides = _fills_by_side(search_url)
            if sides.get("buy") and sides.get("sell"):
                break
            time.sleep(10)
        fills_s = time.monotonic() - started - first_record_s
        assert sides.get("buy") and sides.get("sell"), (sides, status_text())
    finally:
        if up.poll() is None:
            up.terminate()  # stops following; the platform keeps running until `rtc down`
            up.wait(30)
        down = subprocess.run(
            [*rtc, "down"], env=status_env, capture_output=True, text=True, timeout=300
        )
        output.close()
    assert down.returncode == 0, down.stdout + down.stderr
    time.sleep(1)
    assert processes_mentioning(str(home)) == []
    assert not process.list_processes(Settings(home=home))
    shutil.rmtree(root, ignore_errors=True)
    services_report(
        f"rtc up --topology cluster: first liquidity record {first_record_s:.0f} s after start, "
        f"every member healthy in rtc status, paper fills {sides} {fills_s:.0f} s after the "
        "first record; rtc down left no process"
    )
