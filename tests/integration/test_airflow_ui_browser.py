"""The Airflow UI in a real headless Chromium: log in, open forecast_retrain, see its asset schedule
(cron or the history asset), trigger it through the trigger form with changed params, watch the
run succeed, and keep a screenshot of it (and check on the way that history_download's form takes
an empty local_file, i.e. a download).

Airflow standalone runs on free ports with an isolated home (as in test_airflow_standalone.py),
on real shared minute data imported into that home. The browser and the log-in come from
``tests/browser_helpers.py`` (Debian's ``/usr/bin/chromium`` driven by Playwright). The screenshot
of the successful run is kept at ``SCREENSHOT`` (gitignored).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rtcrypto.config import Settings
from rtcrypto.history import import_file
from rtcrypto.stack import airflow, process
from tests.browser_helpers import (
    ARTIFACTS,
    chromium_page,
    log_in,
    open_dag_from_list,
    trigger_through_form,
    wait_for_dag,
    wait_for_run,
)
from tests.helpers import free_port, shared_minute_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCREENSHOT = ARTIFACTS / "airflow_forecast_retrain.png"
SCHEDULE_SCREENSHOT = ARTIFACTS / "airflow_forecast_retrain_schedule.png"
FAILURE_SCREENSHOT = ARTIFACTS / "airflow_forecast_retrain_failure.png"
DAG_ID = "forecast_retrain"
SOURCE = "binance"
MINUTE_FILE_NAME = "binance_BTCUSDT_1m_2024-01-01_2024-01-21.csv.gz"
# The smallest window the DAG accepts (minimum 2 days: 1 day to train, 1 held out) and a
# one-day horizon, both changed from the defaults (30 days, 150,000 minutes) in the form.
TRAINING_DAYS = 2
HORIZON_MINUTES = 1_440
RUN_TIMEOUT_S = 180.0


@pytest.fixture
def airflow_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A stopped-afterwards Airflow standalone on free ports, with real history imported."""
    home = tmp_path / "rtc"
    history_dir = home / "history"
    # The standalone's tasks inherit this environment: they must read the history imported here.
    monkeypatch.setenv("RTC_HOME", str(home))
    monkeypatch.setenv("RTC_HISTORY_DIR", str(history_dir))
    import_file(shared_minute_file(MINUTE_FILE_NAME), history_dir=history_dir)
    settings = Settings(
        home=home,
        history_dir=history_dir,
        airflow_port=free_port(),
        airflow_worker_log_port=free_port(),
        airflow_trigger_log_port=free_port(),
    )
    try:
        airflow.start_airflow(settings, timeout_s=150)
        yield settings
    finally:
        airflow.stop_airflow(settings)
    assert not process.is_running(airflow.AIRFLOW_PROCESS, settings), "Airflow did not stop"


def _fill_changed_params(dialog: Any) -> None:
    """A 2-day training window and a one-day horizon; the form requires the source string."""
    dialog.get_by_role("spinbutton", name="Training window (days)").fill(str(TRAINING_DAYS))
    dialog.get_by_role("spinbutton", name="Forecast horizon (minutes)").fill(str(HORIZON_MINUTES))
    # The form requires every string param: an empty source keeps Trigger disabled.
    source_field = dialog.get_by_role("group").filter(has_text="History source")
    source_field.get_by_role("textbox").fill(SOURCE)


def test_trigger_forecast_retrain_from_the_ui_with_changed_params(
    airflow_settings: Settings, services_report
) -> None:
    from playwright.sync_api import expect

    started = time.monotonic()
    url = airflow_settings.airflow_url
    password = airflow.admin_password(airflow_settings)
    token = airflow.api_token(url, airflow.ADMIN_USER, password)
    dag = wait_for_dag(url, token, DAG_ID)
    if dag["is_paused"]:
        airflow.api_request(
            url, f"/api/v2/dags/{DAG_ID}", token, method="PATCH", body={"is_paused": False}
        )
    with chromium_page(FAILURE_SCREENSHOT) as page:
        log_in(page, url, password)

        # history_download's form accepts an empty local_file (= download from Kaggle).
        page.goto(f"{url}/dags/history_download")
        page.wait_for_load_state("networkidle")
        page.get_by_role("button", name=re.compile(r"^Trigger")).first.click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_role("heading", name="Trigger Dag - history_download")).to_be_visible()
        expect(
            dialog.get_by_role("button", name="Trigger", exact=True),
            "history_download cannot be triggered with an empty local_file",
        ).to_be_enabled()
        dialog.get_by_role("button", name="Close").click()
        expect(dialog).to_be_hidden()

        open_dag_from_list(page, url, DAG_ID)

        # Its schedule is cron OR the history asset (AssetOrTimeSchedule), in the API and the UI.
        details = airflow.api_get(url, f"/api/v2/dags/{DAG_ID}/details", token)
        assert isinstance(details, dict)
        assert details["timetable_summary"] == "Asset or 30 0 * * *", details["timetable_summary"]
        assert "rtc_history" in json.dumps(details["asset_expression"]), details
        expect(
            page.get_by_text(re.compile(r"Asset or 30 0 \* \* \*|rtc_history")).first,
            "the DAG page does not show forecast_retrain's asset schedule",
        ).to_be_visible()
        page.screenshot(path=str(SCHEDULE_SCREENSHOT))

        # Trigger it through the form with a changed training window and horizon.
        run_id, tries = trigger_through_form(
            page, DAG_ID, airflow_settings, fill_form=_fill_changed_params
        )
        triggered_s = time.monotonic() - started

        run = wait_for_run(url, token, DAG_ID, run_id, airflow_settings, RUN_TIMEOUT_S)
        run_s = time.monotonic() - started - triggered_s
        assert run["state"] == "success", (
            f"run {run_id} ended {run['state']}:\n"
            + process.tail_log(airflow.AIRFLOW_PROCESS, 40, airflow_settings)
        )

        # The UI shows the successful run and its three successful tasks.
        page.goto(f"{url}/dags/{DAG_ID}/runs/{run_id}")
        page.wait_for_load_state("networkidle")
        expect(page.get_by_role("heading", name=run_id)).to_be_visible()
        for task_id in ("select_window", "train_and_publish", "report"):
            expect(
                page.get_by_role("row", name=re.compile(rf"^{task_id} Success")),
                f"the run page does not show {task_id} as Success",
            ).to_be_visible()
        expect(page.get_by_text("Success", exact=True).first).to_be_visible()
        page.screenshot(path=str(SCREENSHOT))

    # The changed params reached the run and its training.
    expected_conf = {"training_days": TRAINING_DAYS, "horizon_minutes": HORIZON_MINUTES}
    assert {name: run["conf"].get(name) for name in expected_conf} == expected_conf, run["conf"]
    xcom = airflow.api_get(
        url,
        f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/train_and_publish"
        "/xcomEntries/return_value",
        token,
    )
    assert isinstance(xcom, dict)
    result = xcom["value"]
    if isinstance(result, str):  # some XCom backends hand back the JSON text
        result = json.loads(result)
    metadata = json.loads((Path(result["folder"]) / "metadata.json").read_text())
    assert metadata["horizon_minutes"] == HORIZON_MINUTES, metadata
    assert metadata["source"] == SOURCE, metadata
    # The window's minutes less the held-out ones (at most half the window, as the DAG does).
    holdout_days = min(airflow_settings.forecast_holdout_days, TRAINING_DAYS / 2)
    expected_rows = round((TRAINING_DAYS - holdout_days) * 1_440)
    assert metadata["training"]["rows"] == expected_rows, metadata["training"]
    assert SCREENSHOT.stat().st_size > 10_000, f"{SCREENSHOT} looks empty"

    total_s = time.monotonic() - started
    print(f"screenshot of the successful run: {SCREENSHOT}")
    services_report(
        f"Airflow UI in headless Chromium: forecast_retrain triggered from the form "
        f"({TRAINING_DAYS} days, {HORIZON_MINUTES} min, {tries} submit(s)) {triggered_s:.0f} s "
        f"after Airflow answered, run succeeded {run_s:.0f} s later, {total_s:.0f} s in all; "
        f"screenshot {SCREENSHOT}"
    )
