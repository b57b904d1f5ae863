"""The Airflow UI in a real headless Chromium: log in, open forecast_retrain, trigger it through
the trigger form with changed params, watch the run succeed, and keep a screenshot of it (and
check on the way that history_download's form takes an empty local_file, i.e. a download).

Airflow standalone runs on free ports with an isolated home (as in test_airflow_standalone.py),
on real shared minute data imported into that home. The browser is Debian's ``/usr/bin/chromium``
(``make browser`` installs it) driven by Playwright's bundled driver; Playwright never downloads
a browser here. The screenshot of the successful run is kept at ``SCREENSHOT`` (gitignored).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rtcrypto.config import Settings
from rtcrypto.history import import_file
from rtcrypto.stack import airflow, process
from tests.helpers import REPO, free_port, shared_minute_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"
SCREENSHOT = ARTIFACTS / "airflow_forecast_retrain.png"
FAILURE_SCREENSHOT = ARTIFACTS / "airflow_forecast_retrain_failure.png"
DAG_ID = "forecast_retrain"
SOURCE = "binance"
MINUTE_FILE_NAME = "binance_BTCUSDT_1m_2024-01-01_2024-01-21.csv.gz"
# The smallest window the DAG accepts (minimum 2 days: 1 day to train, 1 held out) and a
# one-day horizon, both changed from the defaults (30 days, 150,000 minutes) in the form.
TRAINING_DAYS = 2
HORIZON_MINUTES = 1_440
RUN_TIMEOUT_S = 180.0
TRIGGER_TRIES = 3


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


def _wait_for_dag(url: str, token: str, timeout_s: float = 90.0) -> dict[str, Any]:
    """The DAG's REST document once the dag-processor has parsed dags/."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        document = airflow.api_get(url, "/api/v2/dags?limit=100", token)
        assert isinstance(document, dict)
        for dag in document["dags"]:
            if dag["dag_id"] == DAG_ID:
                return dict(dag)
        time.sleep(2)
    raise AssertionError(f"{DAG_ID} was not listed by {url} within {timeout_s:.0f} s")


def _wait_for_run(url: str, token: str, run_id: str, settings: Settings) -> dict[str, Any]:
    """The run's REST document once it finished (success or failed)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"
    while True:
        run = airflow.api_get(url, path, token)
        assert isinstance(run, dict)
        if run["state"] in ("success", "failed"):
            return dict(run)
        if time.monotonic() > deadline:
            raise AssertionError(
                f"run {run_id} still {run['state']!r} after {RUN_TIMEOUT_S:.0f} s:\n"
                + process.tail_log(airflow.AIRFLOW_PROCESS, 40, settings)
            )
        time.sleep(2)


def _trigger_through_form(page: Any, settings: Settings) -> tuple[str, int]:
    """Fill and submit the DAG page's trigger form; return the new run's id and the tries taken.

    On SQLite the api-server answers 500 while the scheduler holds the database lock, and the
    form does not retry: like a person, submit a fresh form again (3 tries at most).
    """
    from playwright.sync_api import expect

    for attempt in range(1, TRIGGER_TRIES + 1):
        page.get_by_role("button", name=re.compile(r"^Trigger")).first.click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_role("heading", name=f"Trigger Dag - {DAG_ID}")).to_be_visible()
        dialog.get_by_role("spinbutton", name="Training window (days)").fill(str(TRAINING_DAYS))
        dialog.get_by_role("spinbutton", name="Forecast horizon (minutes)").fill(
            str(HORIZON_MINUTES)
        )
        # The form requires every string param: an empty source keeps Trigger disabled.
        source_field = dialog.get_by_role("group").filter(has_text="History source")
        source_field.get_by_role("textbox").fill(SOURCE)
        submit = dialog.get_by_role("button", name="Trigger", exact=True)
        expect(submit, "the trigger form rejected the params").to_be_enabled()
        with page.expect_response(
            lambda reply: (
                reply.request.method == "POST" and reply.url.endswith(f"/dags/{DAG_ID}/dagRuns")
            )
        ) as answer:
            submit.click()
        reply = answer.value
        if reply.ok:
            expect(dialog).to_be_hidden()
            return str(reply.json()["dag_run_id"]), attempt
        detail = f"the UI's trigger POST answered HTTP {reply.status}: {reply.text()[:2000]}"
        if reply.status < 500 or attempt == TRIGGER_TRIES:
            raise AssertionError(
                f"{detail}\n{process.tail_log(airflow.AIRFLOW_PROCESS, 30, settings)}"
            )
        print(f"try {attempt}: {detail}; submitting a fresh form again")
        dialog.get_by_role("button", name="Close").click()
        expect(dialog).to_be_hidden()
        time.sleep(2)
    raise AssertionError("unreachable: the last try returns or raises")


def test_trigger_forecast_retrain_from_the_ui_with_changed_params(
    airflow_settings: Settings, services_report
) -> None:
    from playwright.sync_api import expect, sync_playwright

    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (as root)", pytrace=False)
    started = time.monotonic()
    url = airflow_settings.airflow_url
    password = airflow.admin_password(airflow_settings)
    token = airflow.api_token(url, airflow.ADMIN_USER, password)
    dag = _wait_for_dag(url, token)
    if dag["is_paused"]:
        airflow.api_request(
            url, f"/api/v2/dags/{DAG_ID}", token, method="PATCH", body={"is_paused": False}
        )
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile,  # a new, empty --user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        page = browser.new_page()
        page.set_default_timeout(30_000)
        try:
            # Log in through SimpleAuthManager's login page.
            page.goto(f"{url}/")
            expect(page.get_by_role("heading", name="Sign into Airflow")).to_be_visible()
            page.get_by_role("textbox", name="Username").fill(airflow.ADMIN_USER)
            page.get_by_role("textbox", name="Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda address: "/auth/login" not in address)

            # history_download's form accepts an empty local_file (= download from Kaggle).
            page.goto(f"{url}/dags/history_download")
            page.wait_for_load_state("networkidle")
            page.get_by_role("button", name=re.compile(r"^Trigger")).first.click()
            dialog = page.get_by_role("dialog")
            expect(
                dialog.get_by_role("heading", name="Trigger Dag - history_download")
            ).to_be_visible()
            expect(
                dialog.get_by_role("button", name="Trigger", exact=True),
                "history_download cannot be triggered with an empty local_file",
            ).to_be_enabled()
            dialog.get_by_role("button", name="Close").click()
            expect(dialog).to_be_hidden()

            # Open the DAG from the DAG list.
            page.goto(f"{url}/dags")
            page.wait_for_load_state("networkidle")
            page.get_by_role("link", name=DAG_ID, exact=True).first.click()
            page.wait_for_url(f"**/dags/{DAG_ID}")
            page.wait_for_load_state("networkidle")
            expect(page.get_by_role("heading", name=DAG_ID, exact=True)).to_be_visible()

            # Trigger it through the form with a changed training window and horizon.
            run_id, tries = _trigger_through_form(page, airflow_settings)
            triggered_s = time.monotonic() - started

            run = _wait_for_run(url, token, run_id, airflow_settings)
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
        except BaseException:
            page.screenshot(path=str(FAILURE_SCREENSHOT))
            print(f"failure screenshot: {FAILURE_SCREENSHOT}")
            raise
        finally:
            browser.close()

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
