"""Airflow standalone as a managed process: start on free ports with an isolated home, health,
a JWT for the admin, both DAGs through the REST API, the Connections rtc up gives it (``airflow
connections get``), and a stop that leaves no process behind."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pydantic import SecretStr

from rtcrypto.config import Settings
from rtcrypto.stack import airflow, process
from rtcrypto.stack.errors import PortInUseError
from tests.helpers import SHARED_DATA, free_port
from tests.listeners import listeners_of, process_tree

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXPECTED_DAGS = {"history_download", "forecast_retrain"}
SEARCH_SECRET = "Search0secret-Standalone"
MINUTE_FILE = SHARED_DATA / "minute" / "binance_BTCUSDT_1m_2024-01-01_2024-01-21.csv.gz"


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if proc.name == str(os.getpid()):
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in command or text in environ:
            found.append(f"{proc.name}: {command[:200]}")
    return found


def _dag_ids(url: str, token: str) -> set[str]:
    document = airflow.api_get(url, "/api/v2/dags?limit=100", token)
    assert isinstance(document, dict)
    return {entry["dag_id"] for entry in document["dags"]}


def test_standalone_starts_serves_both_dags_and_stops_cleanly(
    tmp_path: Path, services_report
) -> None:
    home = tmp_path / "rtc"
    settings = Settings(
        home=home,
        airflow_port=free_port(),
        airflow_worker_log_port=free_port(),
        airflow_trigger_log_port=free_port(),
        search_username="rtc_app",  # a search password: it reaches Airflow as a connection only
        search_password=SecretStr(SEARCH_SECRET),
    )
    started = time.monotonic()
    try:
        # A liveness deadline (speed is in bench/): on a fresh venv under CI load the api-server
        # took 100 s to answer and the components a little longer (failed once at 120 s).
        result = airflow.start_airflow(settings, timeout_s=300)
        start_s = time.monotonic() - started
        assert not result.already_running
        health = airflow.health(settings.airflow_url)
        assert health is not None
        assert airflow.component_states(health)["metadatabase"] == "healthy"
        assert result.password_file.is_file()
        assert result.password_file.stat().st_mode & 0o077 == 0  # readable by the owner only
        password = airflow.admin_password(settings)
        assert password not in process.log_path(airflow.AIRFLOW_PROCESS, settings).read_text()

        token = airflow.api_token(settings.airflow_url, airflow.ADMIN_USER, password)
        deadline = time.monotonic() + 90  # the dag-processor parses dags/ after start-up
        dag_ids: set[str] = set()
        while time.monotonic() < deadline and not dag_ids >= EXPECTED_DAGS:
            dag_ids = _dag_ids(settings.airflow_url, token)
            time.sleep(2)
        dags_s = time.monotonic() - started
        assert dag_ids >= EXPECTED_DAGS, dag_ids

        # A real run through scheduler, LocalExecutor and the execution API on our port.
        url = settings.airflow_url
        airflow.api_request(
            url,
            "/api/v2/dags/history_download",
            token,
            method="PATCH",
            body={"is_paused": False},
        )
        run = airflow.api_request(
            url,
            "/api/v2/dags/history_download/dagRuns",
            token,
            method="POST",
            body={"logical_date": None, "conf": {"local_file": str(MINUTE_FILE)}},
        )
        assert isinstance(run, dict)
        run_path = f"/api/v2/dags/history_download/dagRuns/{run['dag_run_id']}"
        deadline = time.monotonic() + 120
        state = run["state"]
        while time.monotonic() < deadline and state not in ("success", "failed"):
            time.sleep(2)
            current = airflow.api_get(url, run_path, token)
            assert isinstance(current, dict)
            state = current["state"]
        run_s = time.monotonic() - started - dags_s
        assert state == "success", process.tail_log(airflow.AIRFLOW_PROCESS, 40, settings)
        assert list((home / "history").rglob("*.parquet"))
        _assert_loopback_only_and_task_logs_readable(settings, token, run_path)
        _assert_connections_come_from_the_settings(settings)
        _assert_trade_review_needs_airflows_login(settings.airflow_url, token)

        second = airflow.start_airflow(settings, timeout_s=30)  # idempotent
        assert second.already_running and second.pid == result.pid
    finally:
        stop_started = time.monotonic()
        stopped = airflow.stop_airflow(settings)
        stop_s = time.monotonic() - stop_started
    assert stopped
    time.sleep(1)
    assert _processes_mentioning(str(home)) == []
    assert not process.is_running(airflow.AIRFLOW_PROCESS, settings)
    services_report(
        f"Airflow standalone: migrate {result.seconds_to_migrate:.1f} s, healthy "
        f"{start_s:.0f} s after start, both DAGs listed after {dags_s:.0f} s, history_download "
        f"run via REST {run_s:.0f} s, stop {stop_s:.1f} s"
    )


def _assert_loopback_only_and_task_logs_readable(
    settings: Settings, token: str, run_path: str
) -> None:
    """Issue 10 (exposure): no component of the local Airflow listens beyond loopback; its log
    servers (which bind every interface) are off, and task logs still show through the REST API
    (the api-server reads the local files)."""
    pid = process.read_pid(airflow.AIRFLOW_PROCESS, settings)
    assert pid is not None
    found = listeners_of(process_tree([pid]))
    assert [entry for entry in found if not entry.loopback] == [], "\n".join(map(str, found))
    ports = {entry.port for entry in found}
    assert settings.airflow_port in ports
    assert not ports & {settings.airflow_worker_log_port, settings.airflow_trigger_log_port}
    tasks = airflow.api_get(settings.airflow_url, f"{run_path}/taskInstances", token)
    assert isinstance(tasks, dict)
    task = tasks["task_instances"][0]
    log = airflow.api_get(
        settings.airflow_url,
        f"{run_path}/taskInstances/{task['task_id']}/logs/{task['try_number']}",
        token,
    )
    assert isinstance(log, dict)
    events = " ".join(str(line.get("event", line)) for line in log["content"] if line)
    assert "Could not read served logs" not in events
    assert len(log["content"]) > 3, events[:2000]


def _assert_connections_come_from_the_settings(settings: Settings) -> None:
    """Issue 11: ``airflow connections get`` kafka_default, elasticsearch_default and
    spark_default work in the running Airflow's own environment (read from /proc: what its
    components and tasks see), with the values of the settings; the search password is in no
    command line and no log of the stack."""
    pid = process.read_pid(airflow.AIRFLOW_PROCESS, settings)
    assert pid is not None
    raw = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    environ = dict(entry.decode().split("=", 1) for entry in raw if b"=" in entry)
    program = str(airflow.airflow_bin())

    def get(conn_id: str) -> dict[str, object]:
        done = subprocess.run(
            [program, "connections", "get", conn_id, "-o", "json"],
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        found = json.loads(done.stdout[done.stdout.index("[") :])
        assert isinstance(found, list) and len(found) == 1, done.stdout
        return dict(found[0])

    kafka = get("kafka_default")
    assert kafka["conn_type"] == "kafka"
    assert kafka["extra_dejson"] == {"bootstrap.servers": settings.kafka_bootstrap}
    search = get("elasticsearch_default")
    assert (search["conn_type"], search["host"], str(search["port"]), search["schema"]) == (
        "elasticsearch",
        "127.0.0.1",
        "9200",  # the CLI's JSON prints the port as a string
        "http",
    )
    assert (search["login"], search["password"]) == ("rtc_app", SEARCH_SECRET)
    spark = get("spark_default")
    assert (spark["conn_type"], spark["host"]) == ("spark", settings.spark_master)
    for command in process_command_lines(pid):
        assert SEARCH_SECRET not in command
    assert SEARCH_SECRET not in process.log_path(airflow.AIRFLOW_PROCESS, settings).read_text()
    for log in airflow.airflow_paths(settings).logs_dir.rglob("*.log"):
        assert SEARCH_SECRET not in log.read_text(errors="replace"), log


def _assert_trade_review_needs_airflows_login(url: str, token: str) -> None:
    """The Trade review plugin is loaded (its app and its navigation entry); its data needs a
    login: none is 401, a REST token of the admin gets the page and a payload (or, with no
    Elasticsearch node up, a 503 that says so: never a 500)."""
    from tests.trade_review_browser import anonymous_get

    plugins = airflow.api_get(url, "/api/v2/plugins", token)
    assert isinstance(plugins, dict)
    (review,) = [p for p in plugins["plugins"] if p["name"] == "rtc_trade_review"]
    assert review["fastapi_apps"][0]["url_prefix"] == "/rtc-review"
    assert review["external_views"][0]["url_route"] == "trade-review"
    assert anonymous_get(f"{url}/rtc-review/api/review")[0] == 401
    assert anonymous_get(f"{url}/rtc-review/static/review.js")[0] == 401

    def get(path: str) -> tuple[int, str]:
        request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    status, body = get("/rtc-review/")
    assert status == 200 and "<title>Trade review" in body
    status, body = get("/rtc-review/api/review?since=1h&symbol=NOPE")
    assert status == 400 and "unknown symbol 'NOPE'" in body
    status, body = get("/rtc-review/api/review?since=1h")
    if status == 503:
        assert "Elasticsearch does not answer" in json.loads(body)["detail"]
    else:
        assert status == 200 and "summary" in json.loads(body), body[:500]


def process_command_lines(pid: int) -> list[str]:
    """The command lines of ``pid`` and every process below it."""
    lines = []
    for member in process_tree([pid]):
        try:
            raw = (Path("/proc") / str(member) / "cmdline").read_bytes()
        except OSError:
            continue
        lines.append(raw.replace(b"\0", b" ").decode(errors="replace"))
    return lines


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        settings = Settings(
            home=tmp_path / "rtc",
            airflow_port=busy,
            airflow_worker_log_port=free_port(),
            airflow_trigger_log_port=free_port(),
        )
        with pytest.raises(PortInUseError, match="RTC_AIRFLOW_PORT"):
            airflow.start_airflow(settings, timeout_s=10)
    assert not process.is_running(airflow.AIRFLOW_PROCESS, settings)
