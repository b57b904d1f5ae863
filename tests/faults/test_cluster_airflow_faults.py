"""The cluster's Airflow (PostgreSQL, Redis, CeleryExecutor, 2 Celery workers) under faults.

One cluster serves the module (its start is most of the cost): (a) kill -9 of the Celery worker
that runs ``train_and_publish`` of a real ``forecast_retrain`` run (14 days of real Binance
minutes) -> the scheduler fails that try when its heartbeats stop and the DAG's retry runs it on
the other worker, and the run succeeds; (b) PostgreSQL killed -9 for 30 s and started again ->
the scheduler and api-server report healthy again and a run created before the outage finishes.
At the end: no process left, no password in a command line, a log or the printed output.

Time-based schedules are off (``USE_JOB_SCHEDULE``): only the runs the test creates run. The
heartbeat timeout is 20 s and the retry delay capped at 5 s (``RTC_CLUSTER_AIRFLOW_*``), so the
retry lands within the budget (Airflow's defaults: 300 s and the DAG's 5 minutes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rtcrypto.config import Settings
from rtcrypto.config_cluster import ClusterSettings
from rtcrypto.history.importer import import_file
from rtcrypto.stack import airflow, cluster_secrets, postgres, process, redis_server
from rtcrypto.stack import airflow_cluster as ac
from tests.conftest import _SERVICE_LINES
from tests.helpers import SHARED_DATA, free_port
from tests.listeners import process_tree
from tests.secret_leaks import needles, scan_command_lines, scan_files, scan_texts

# outside `make test` for CI's time limit: `make test-cluster` runs it (docs/scaling.md)
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.faults,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.cluster_heavy,
]

MINUTE_FILE = SHARED_DATA / "minute" / "binance_BTCUSDT_1m_2024-01-01_2024-01-21.csv.gz"
RETRAIN_CONF = {"training_days": 14, "horizon_minutes": 20_000, "book_parity": False, "source": ""}
HEARTBEAT_TIMEOUT_S = 20
RETRY_DELAY_MAX_S = 5
POSTGRES_OUTAGE_S = 30.0


class Cluster:
    """The running cluster of the module: settings, admin token, printed start-up lines."""

    def __init__(self, settings: Settings, printed: list[str], start: ac.AirflowClusterStart):
        self.settings = settings
        self.printed = printed
        self.start = start
        self.url = settings.airflow_url
        self.token = airflow.api_token(
            self.url, airflow.ADMIN_USER, airflow.admin_password(settings)
        )

    def get(self, path: str) -> Any:
        return airflow.api_get(self.url, path, self.token, timeout_s=30)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        run = airflow.api_request(
            self.url,
            f"/api/v2/dags/{dag_id}/dagRuns",
            self.token,
            method="POST",
            body={"logical_date": None, "conf": conf},
            timeout_s=30,
        )
        assert isinstance(run, dict)
        return str(run["dag_run_id"])

    def wait_for_dags(self) -> None:
        """Until the dag-processor has parsed the repo's DAGs (after the start)."""

        def listed() -> bool:
            document = self.get("/api/v2/dags?limit=100")
            return {"forecast_retrain", "history_download"} <= {
                entry["dag_id"] for entry in document["dags"]
            }

        _wait_for(listed, 120, "the DAGs listed")

    def pause(self, dag_id: str, *, paused: bool) -> None:
        airflow.api_request(
            self.url,
            f"/api/v2/dags/{dag_id}",
            self.token,
            method="PATCH",
            body={"is_paused": paused},
            timeout_s=30,
        )

    def task(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        document = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        assert isinstance(document, dict)
        return document

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait_run(self, dag_id: str, run_id: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        state = self.run_state(dag_id, run_id)
        while state not in ("success", "failed") and time.monotonic() < deadline:
            time.sleep(2)
            state = self.run_state(dag_id, run_id)
        return state


def _wait_for(check: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 1.0) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout_s, f"{what} not within {timeout_s:.0f} s"
        time.sleep(poll_s)
    return time.monotonic() - started


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid``'s process group and its tasks' own groups (a lost machine)."""
    for group in {pid, *airflow.task_process_groups(pid)}:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


def _running_under(home: Path) -> list[str]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(home) in command and proc.name != str(os.getpid()):
            found.append(f"{proc.name}: {command[:160]}")
    return found


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # PostgreSQL runs as the user `postgres` when we are root: its folders must be reachable
    root = Path(tempfile.mkdtemp(prefix="rtc-airflow-cluster-"))
    root.chmod(0o711)
    home = root / "rtc"
    settings = Settings(
        home=home,
        airflow_port=free_port(),
        airflow_worker_log_port=free_port(),
        airflow_trigger_log_port=free_port(),
        cluster=ClusterSettings(
            postgres_port=free_port(),
            redis_port=free_port(),
            celery_worker_log_ports=[free_port(), free_port()],
            airflow_task_heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S,
            airflow_retry_delay_max_s=RETRY_DELAY_MAX_S,
        ),
    )
    import_file(MINUTE_FILE, history_dir=settings.history_path)
    printed: list[str] = []
    extra = {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    try:
        start = ac.start_airflow_cluster(settings, printed.append, timeout_s=300, extra_env=extra)
        status = ac.airflow_cluster_status(settings)
        printed += status
        assert len(status) == 2 + len(ac.COMPONENTS) + 2, status
        assert "accepting" in status[0] and "answers PING" in status[1], status
        assert all(line.endswith(", healthy") for line in status[2:6]), status
        assert all(line.endswith(", online") for line in status[6:]), status
        yield Cluster(settings, printed, start)
        _assert_no_password_leaked(settings, printed)
    finally:
        pids = [process.read_pid(name, settings) for name in ac.process_names(settings)]
        members = process_tree([pid for pid in pids if pid is not None])
        stop_started = time.monotonic()
        stopped = ac.stop_airflow_cluster(settings)
        printed.append(f"stopped: {', '.join(stopped)}")
        _SERVICE_LINES.append(
            f"cluster Airflow: stop of {len(stopped)} processes {time.monotonic() - stop_started:.0f} s"
        )
    time.sleep(1)
    assert _running_under(home) == []
    assert [pid for pid in members if process.pid_alive(pid)] == []
    shutil.rmtree(root, ignore_errors=True)
    for name in ac.process_names(settings):
        assert not process.is_running(name, settings), name


def _assert_no_password_leaked(settings: Settings, printed: list[str]) -> None:
    names = (
        postgres.SUPERUSER_SECRET,
        postgres.AIRFLOW_SECRET,
        postgres.CELERY_SECRET,
        redis_server.REDIS_SECRET,
    )
    secrets = {name: cluster_secrets.read_secret(settings, name) for name in names}
    secrets["admin"] = airflow.admin_password(settings)
    patterns = needles(secrets)
    assert scan_texts({"printed": "\n".join(printed)}, patterns) == []
    findings, processes = scan_command_lines(patterns)
    assert processes > 10 and findings == []
    for folder in (settings.log_dir, settings.airflow_home_dir / "logs"):
        findings, files = scan_files(folder, patterns)
        assert files and findings == [], folder
    for name in ac.process_names(settings):
        pid = process.read_pid(name, settings)
        if pid is None or not process.is_running(name, settings):
            continue
        for member in process_tree([pid]):
            try:
                environ = Path(f"/proc/{member}/environ").read_bytes()
            except OSError:
                continue
            assert not [hit for hit in patterns.values() if hit in environ], name


def _worker_of(settings: Settings, marker: str) -> str | None:
    for name in ac.worker_names(settings):
        if marker in process.log_path(name, settings).read_text(errors="replace"):
            return name
    return None


def test_celery_worker_killed_mid_retrain_the_task_is_retried_on_the_other_worker(
    cluster: Cluster, services_report
) -> None:
    settings = cluster.settings
    cluster.wait_for_dags()
    run_id = cluster.trigger("forecast_retrain", RETRAIN_CONF)
    task = "train_and_publish"

    def train_running() -> bool:
        state = cluster.task("forecast_retrain", run_id, task)["state"]
        assert state not in ("success", "failed", "skipped", "upstream_failed"), state
        return state == "running"

    _wait_for(train_running, 180, f"{task} running")
    marker = f"task_id='{task}', dag_id='forecast_retrain', run_id='{run_id}'"
    _wait_for(lambda: _worker_of(settings, marker) is not None, 30, "the worker's log line")
    victim = _worker_of(settings, marker)
    assert victim is not None
    survivor = next(name for name in ac.worker_names(settings) if name != victim)
    pid = process.read_pid(victim, settings)
    assert pid is not None
    killed_at = time.monotonic()
    _kill_tree(pid)
    _wait_for(lambda: not process.is_running(victim, settings), 10, f"{victim} dead")
    status = ac.airflow_cluster_status(settings)
    cluster.printed.extend(status)
    assert [line for line in status if line.startswith(f"{victim} ")] == [
        f"{victim} ({victim}@{settings.cluster.host}): not running, NOT answering a Celery ping"
    ]

    def retried() -> bool:
        current = cluster.task("forecast_retrain", run_id, task)
        return current["try_number"] >= 2 and current["state"] in ("running", "success")

    retry_s = _wait_for(retried, 180, f"try 2 of {task}")
    state = cluster.wait_run("forecast_retrain", run_id, 240)
    done_s = time.monotonic() - killed_at
    final = cluster.task("forecast_retrain", run_id, task)
    assert state == "success", process.tail_log(survivor, 40, settings)
    assert final["try_number"] == 2 and final["state"] == "success"
    assert marker in process.log_path(survivor, settings).read_text(errors="replace")
    assert (settings.home / "forecast" / "current").is_file()
    # how: the scheduler failed try 1 once its heartbeats stopped; the DAG's retry queued try 2
    scheduler_log = process.tail_file(process.log_path(ac.SCHEDULER, settings), 3000)
    assert "Detected a task instance without a heartbeat" in scheduler_log
    services_report(
        f"cluster Airflow: start {cluster.start.seconds['total']:.0f} s (migrate "
        f"{cluster.start.seconds.get('migrate', 0):.0f} s); kill -9 of {victim} mid "
        f"{task}: try 2 running on {survivor} {retry_s:.0f} s after the kill (heartbeat "
        f"timeout {HEARTBEAT_TIMEOUT_S} s, retry delay {RETRY_DELAY_MAX_S} s), run success "
        f"{done_s:.0f} s after the kill"
    )


def test_postgres_down_30_s_scheduler_and_api_server_recover_and_the_run_finishes(
    cluster: Cluster, services_report
) -> None:
    settings = cluster.settings
    cluster.wait_for_dags()
    # created while its DAG is paused: it waits queued through the outage, runs after it
    cluster.pause("history_download", paused=True)
    run_id = cluster.trigger("history_download", {"local_file": str(MINUTE_FILE)})
    assert cluster.run_state("history_download", run_id) == "queued"
    pid = process.read_pid(postgres.POSTGRES_PROCESS, settings)
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    _wait_for(lambda: not process.is_running(postgres.POSTGRES_PROCESS, settings), 10, "kill")
    time.sleep(POSTGRES_OUTAGE_S)
    health = airflow.health(settings.airflow_url, timeout_s=10)
    assert health is None or airflow.component_states(health)["metadatabase"] != "healthy"
    restarted_at = time.monotonic()
    postgres.start_postgres(settings)
    recover_s = _wait_for(lambda: ac.components_healthy(settings), 180, "healthy again", 2.0)
    for name in ac.COMPONENTS:
        assert process.is_running(name, settings), f"{name}'s restart loop exited"
    restarted = [
        name
        for name in ac.COMPONENTS
        if ac.restarted_since_start(process.log_path(name, settings).read_text(errors="replace"))
    ]
    assert cluster.run_state("history_download", run_id) == "queued"  # not lost
    cluster.pause("history_download", paused=False)
    state = cluster.wait_run("history_download", run_id, 180)
    finished_s = time.monotonic() - restarted_at
    assert state == "success", process.tail_log(ac.SCHEDULER, 60, settings)
    assert list(settings.history_path.rglob("*.parquet"))
    services_report(
        f"cluster Airflow: PostgreSQL killed -9 for {POSTGRES_OUTAGE_S:.0f} s: every component "
        f"healthy {recover_s:.0f} s after its restart (restarted by their loops: "
        f"{', '.join(restarted) or 'none'}), the run queued before the outage succeeded "
        f"{finished_s:.0f} s after the restart"
    )
