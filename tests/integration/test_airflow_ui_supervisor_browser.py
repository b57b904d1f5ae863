"""The supervisor's restart of a killed ingest, seen in the Airflow UI in a real headless Chromium.

On an isolated home and fresh topics, the simulator and the ingest run as managed services (the
registry's commands, as ``rtc up`` starts them) and Airflow standalone runs on free ports with
the same ``RTC_*`` environment (its scheduler's task processes inherit it). The ingest is killed
with SIGKILL; in the browser a person logs in, opens ``streaming_supervisor``, triggers a run
from the UI (its 5-minute schedule is switched off here: ``use_job_schedule=False``, so that run
is the only one) and, once REST says it finished, the run's page shows the ingest's restart task
as Success and the other services' as Skipped, and that task's log shows the restart. Outside
the browser: a new pid that heartbeats again and the journal line with reason "dead".

Elasticsearch is not part of this test: ``search_url`` points at a closed port, so the restart's
document is spooled (fail-soft, the journal is the record); ``test_supervisor.py`` covers the
index. The screenshot of the run is kept at ``SCREENSHOT`` (gitignored).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rtcrypto import supervision as services
from rtcrypto.config import Feed, Settings, Topics
from rtcrypto.stack import airflow, process
from rtcrypto.supervision import HealthState
from tests.browser_helpers import (
    ARTIFACTS,
    chromium_page,
    log_in,
    open_dag_from_list,
    trigger_through_form,
    wait_for_dag,
    wait_for_run,
)
from tests.helpers import GEMINI_CAPTURE, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

DAG_ID = "streaming_supervisor"
RESTART_TASK = "restart_if_needed"
SCREENSHOT = ARTIFACTS / "airflow_supervisor_restart.png"
LOG_SCREENSHOT = ARTIFACTS / "airflow_supervisor_restart_log.png"
FAILURE_SCREENSHOT = ARTIFACTS / "airflow_supervisor_restart_failure.png"
RUN_TIMEOUT_S = 150.0


@pytest.fixture
def supervised(tmp_path: Path, kafka_broker: str, fresh_topics: Topics) -> Iterator[Settings]:
    """Isolated settings (home, topics, ports; 1 s heartbeats); everything started is stopped."""
    settings = Settings(
        home=tmp_path / "rtc",
        kafka_bootstrap=kafka_broker,
        topics=fresh_topics,
        feed=Feed.simulator,
        simulator_capture=GEMINI_CAPTURE,
        simulator_replay="capture",  # this test replays the recorded capture, looped
        simulator_port=free_port(),
        heartbeat_interval_s=1.0,
        reconnect_initial_s=0.2,
        reconnect_max_s=2.0,
        # A closed port: restart documents are spooled at once, never sent to a shared node.
        search_url=f"http://127.0.0.1:{free_port()}",
        airflow_port=free_port(),
        airflow_worker_log_port=free_port(),
        airflow_trigger_log_port=free_port(),
    )
    try:
        yield settings
    finally:
        # Airflow first: nothing may restart a service while they are being stopped.
        airflow.stop_airflow(settings)
        for name in reversed(services.service_names()):
            process.stop_process(name, timeout_s=20, settings=settings)
    left = [
        name
        for name in (airflow.AIRFLOW_PROCESS, *services.service_names())
        if process.is_running(name, settings)
    ]
    assert not left, f"still running after the test: {left}"


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s: {what}\n{process.tail_file(log, 30)}")


def _first_heartbeat_ms(settings: Settings, pid: int) -> int | None:
    """``ts_ms`` (UTC ms) of the first ingest heartbeat sent by ``pid``; None before it sends one."""
    from rtcrypto.supervision.heartbeats import read_recent

    sent = [
        beat["ts_ms"]
        for beat in read_recent(settings.kafka_bootstrap, settings.topics.heartbeat)
        if beat.get("service") == services.INGEST
        and isinstance(beat.get("ts_ms"), int)
        and str(beat.get("instance", "")).endswith(f":{pid}")
    ]
    return min(sent, default=None)


def _task_states(url: str, token: str, run_id: str) -> dict[str, dict[int, str]]:
    """``{task_id: {map_index: state}}`` of one run, from REST."""
    document = airflow.api_get(
        url, f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100", token
    )
    assert isinstance(document, dict)
    states: dict[str, dict[int, str]] = {}
    for instance in document["task_instances"]:
        states.setdefault(instance["task_id"], {})[int(instance["map_index"])] = str(
            instance["state"]
        )
    return states


def _run_count(url: str, token: str) -> int:
    document = airflow.api_get(url, f"/api/v2/dags/{DAG_ID}/dagRuns?limit=1", token)
    assert isinstance(document, dict)
    return int(document["total_entries"])


def _xcom(url: str, token: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
    """A task instance's ``return_value`` XCom, decoded."""
    document = airflow.api_get(
        url,
        f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        f"?map_index={map_index}",
        token,
    )
    assert isinstance(document, dict)
    value = document["value"]
    return json.loads(value) if isinstance(value, str) else value


def test_supervisor_restart_of_a_killed_ingest_shows_in_the_airflow_ui(
    supervised: Settings, services_report
) -> None:
    from playwright.sync_api import expect

    settings = supervised
    started = time.monotonic()
    ingest = services.get_service(services.INGEST)
    simulator = services.get_service(services.SIMULATOR)
    ingest_log = process.log_path(services.INGEST, settings)

    services.start_service(simulator, settings)
    first_pid = services.start_service(ingest, settings)
    airflow.start_airflow(
        settings,
        timeout_s=150,
        extra_env={
            **services.settings_env(settings),
            # Only the run triggered from the UI: no scheduled run may restart the ingest first.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        },
    )
    airflow_s = time.monotonic() - started
    url = settings.airflow_url
    password = airflow.admin_password(settings)
    token = airflow.api_token(url, airflow.ADMIN_USER, password)
    dag = wait_for_dag(url, token, DAG_ID)
    assert not dag["is_paused"], "streaming_supervisor should start unpaused"

    _wait_for(
        lambda: services.check_health(ingest, settings).state is HealthState.healthy,
        60,
        "a healthy ingest",
        ingest_log,
    )
    assert services.check_health(simulator, settings).state is HealthState.healthy
    killed_at = time.time()
    os.killpg(first_pid, signal.SIGKILL)
    _wait_for(lambda: not process.is_running("ingest", settings), 10, "the kill", ingest_log)
    assert services.check_health(ingest, settings).state is HealthState.dead

    with chromium_page(FAILURE_SCREENSHOT) as page:
        log_in(page, url, password)
        open_dag_from_list(page, url, DAG_ID)
        # The defaults (local backends) are what the schedule runs with: submit them unchanged.
        run_id, tries = trigger_through_form(page, DAG_ID, settings)
        triggered_at = time.time()
        run = wait_for_run(url, token, DAG_ID, run_id, settings, RUN_TIMEOUT_S)
        run_s = time.time() - triggered_at
        assert run["state"] == "success", (
            f"run {run_id} ended {run['state']}:\n"
            + process.tail_log(airflow.AIRFLOW_PROCESS, 40, settings)
        )
        assert run["run_type"] == "manual", run
        assert _run_count(url, token) == 1, "another run of the supervisor ran beside the UI's"

        # The restart tasks are mapped over list_services' output: map index = its position.
        names = _xcom(url, token, run_id, "list_services")
        assert names == [spec.name for spec in services.enabled_services(settings)], names
        ingest_index = names.index(services.INGEST)
        expected_restarts = {
            index: "success" if index == ingest_index else "skipped" for index in range(len(names))
        }
        assert _task_states(url, token, run_id) == {
            "list_services": {-1: "success"},
            "check_health": {index: "success" for index in range(len(names))},
            RESTART_TASK: expected_restarts,
            "report": {-1: "success"},
        }
        restart_record = _xcom(url, token, run_id, RESTART_TASK, ingest_index)
        new_pid = process.read_pid(services.INGEST, settings)
        assert (restart_record["service"], restart_record["reason"]) == ("ingest", "dead")
        assert (restart_record["old_pid"], restart_record["new_pid"]) == (first_pid, new_pid)

        # The run's page: the ingest's restart task Success, the other services' Skipped.
        page.goto(f"{url}/dags/{DAG_ID}/runs/{run_id}")
        page.wait_for_load_state("networkidle")
        expect(page.get_by_role("heading", name=run_id)).to_be_visible()
        page.set_viewport_size({"width": 1400, "height": 1300})  # all 10 task instances
        for index, state in expected_restarts.items():
            expect(
                page.get_by_role("row", name=re.compile(rf"^{RESTART_TASK} {index} {state}", re.I)),
                f"the run page does not show {RESTART_TASK} [{index}] ({names[index]}) as {state}",
            ).to_be_visible()
        for index in range(len(names)):
            expect(
                page.get_by_role("row", name=re.compile(rf"^check_health {index} Success"))
            ).to_be_visible()
        for task_id in ("list_services", "report"):
            expect(page.get_by_role("row", name=re.compile(rf"^{task_id} Success"))).to_be_visible()
        page.screenshot(path=str(SCREENSHOT))

        # The ingest's restart task, opened from the run page: its log names the restart.
        page.get_by_role(
            "row", name=re.compile(rf"^{RESTART_TASK} {ingest_index} Success")
        ).get_by_role("link", name=RESTART_TASK).click()
        page.wait_for_url(f"**/tasks/{RESTART_TASK}/mapped/{ingest_index}**")
        expect(page.get_by_role("heading", name=f"{RESTART_TASK} [{ingest_index}]")).to_be_visible()
        expect(
            page.get_by_text(f"restarted ingest (dead): pid {first_pid} -> {new_pid}"),
            "the task log does not show the ingest's restart",
        ).to_be_visible()
        page.screenshot(path=str(LOG_SCREENSHOT))

    assert new_pid is not None and new_pid != first_pid
    assert process.is_running(services.INGEST, settings)
    journal = services.read_journal(settings)
    assert [(r.service, r.reason, r.old_pid, r.new_pid) for r in journal] == [
        ("ingest", "dead", first_pid, new_pid)
    ]
    _wait_for(
        lambda: _first_heartbeat_ms(settings, new_pid) is not None,
        60,
        "a heartbeat from the restarted ingest",
        ingest_log,
    )
    first_beat_ms = _first_heartbeat_ms(settings, new_pid)
    assert first_beat_ms is not None
    # Figures from the records' own times, not from when this test looked at them.
    kill_to_restart_s = journal[0].ts_ms / 1000 - killed_at
    trigger_to_restart_s = journal[0].ts_ms / 1000 - triggered_at
    kill_to_heartbeat_s = first_beat_ms / 1000 - killed_at
    assert services.check_health(ingest, settings).state is HealthState.healthy
    assert services.check_health(simulator, settings).state is HealthState.healthy
    assert SCREENSHOT.stat().st_size > 10_000, f"{SCREENSHOT} looks empty"

    total_s = time.monotonic() - started
    message = (
        f"Airflow UI in headless Chromium: ingest killed -9 -> streaming_supervisor triggered from "
        f"the UI ({tries} submit(s)) -> restart_if_needed[{ingest_index}] Success, others "
        f"Skipped; kill -> restart {kill_to_restart_s:.1f} s, kill -> new heartbeat "
        f"{kill_to_heartbeat_s:.1f} s (log-in and trigger in the browser included; trigger -> "
        f"restart {trigger_to_restart_s:.1f} s, the run took {run_s:.0f} s; Airflow answered "
        f"after {airflow_s:.0f} s; {total_s:.0f} s in all); "
        f"screenshot {SCREENSHOT}"
    )
    print(message)
    services_report(message)
