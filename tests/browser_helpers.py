"""Helpers of the Airflow UI browser tests: headless Chromium, log-in, triggering, REST waits.

The browser is Debian's ``/usr/bin/chromium`` (``make browser`` installs it) driven by
Playwright's bundled driver; Playwright never downloads a browser here. Screenshots land in
``ARTIFACTS`` (``test-artifacts/``, gitignored).
"""

from __future__ import annotations

import re
import tempfile
import time
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rtcrypto.config import Settings
from rtcrypto.stack import airflow, process
from tests.helpers import REPO

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
TRIGGER_TRIES = 3
POLL_TIMEOUT_S = 30.0  # one REST poll; the api-server has one worker and SQLite locks


@contextmanager
def chromium_page(failure_screenshot: Path) -> Iterator[Any]:
    """A Playwright page in a fresh headless Chromium profile (1400 x 900, 30 s timeouts).

    When the block raises, a screenshot of the page is saved to ``failure_screenshot`` first.
    Fails the test (never skips) when Chromium is not installed.
    """
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (as root)", pytrace=False)
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
            yield page
        except BaseException:
            try:
                page.screenshot(path=str(failure_screenshot))
                print(f"failure screenshot: {failure_screenshot}")
            except Exception as error:  # the test's own error matters more
                print(f"no failure screenshot: {type(error).__name__}: {error}")
            raise
        finally:
            browser.close()


def log_in(page: Any, url: str, password: str) -> None:
    """Sign in as the admin through SimpleAuthManager's login page."""
    from playwright.sync_api import expect

    page.goto(f"{url}/")
    expect(page.get_by_role("heading", name="Sign into Airflow")).to_be_visible()
    page.get_by_role("textbox", name="Username").fill(airflow.ADMIN_USER)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda address: "/auth/login" not in address)


def open_dag_from_list(page: Any, url: str, dag_id: str) -> None:
    """Go to the DAG list and click ``dag_id``; wait for its page."""
    from playwright.sync_api import expect

    page.goto(f"{url}/dags")
    page.wait_for_load_state("networkidle")
    page.get_by_role("link", name=dag_id, exact=True).first.click()
    page.wait_for_url(f"**/dags/{dag_id}")
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("heading", name=dag_id, exact=True)).to_be_visible()


def trigger_through_form(
    page: Any,
    dag_id: str,
    settings: Settings,
    fill_form: Callable[[Any], None] | None = None,
) -> tuple[str, int]:
    """Open the DAG page's trigger form, fill it, submit; return the new run's id and tries taken.

    ``fill_form(dialog)`` changes params before the submit (None: the defaults). On SQLite the
    api-server answers 500 while the scheduler holds the database lock, and the form does not
    retry: like a person, submit a fresh form again (``TRIGGER_TRIES`` at most).
    """
    from playwright.sync_api import expect

    for attempt in range(1, TRIGGER_TRIES + 1):
        page.get_by_role("button", name=re.compile(r"^Trigger")).first.click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_role("heading", name=f"Trigger Dag - {dag_id}")).to_be_visible()
        if fill_form is not None:
            fill_form(dialog)
        submit = dialog.get_by_role("button", name="Trigger", exact=True)
        expect(submit, "the trigger form rejected the params").to_be_enabled()
        with page.expect_response(
            lambda reply: (
                reply.request.method == "POST" and reply.url.endswith(f"/dags/{dag_id}/dagRuns")
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


def wait_for_dag(url: str, token: str, dag_id: str, timeout_s: float = 90.0) -> dict[str, Any]:
    """The DAG's REST document once the dag-processor has parsed dags/."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        document = airflow.api_get(url, "/api/v2/dags?limit=100", token)
        assert isinstance(document, dict)
        for dag in document["dags"]:
            if dag["dag_id"] == dag_id:
                return dict(dag)
        time.sleep(2)
    raise AssertionError(f"{dag_id} was not listed by {url} within {timeout_s:.0f} s")


def wait_for_run(
    url: str, token: str, dag_id: str, run_id: str, settings: Settings, timeout_s: float
) -> dict[str, Any]:
    """The run's REST document once it finished (success or failed).

    A poll that times out or gets a 5xx (the api-server is slow on a busy machine, or SQLite is
    locked) is not an answer: it is polled again until ``timeout_s``; a 4xx fails at once.
    """
    deadline = time.monotonic() + timeout_s
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"
    state = "not read yet"
    while True:
        try:
            run = airflow.api_get(url, path, token, timeout_s=POLL_TIMEOUT_S)
        except urllib.error.HTTPError as error:
            if error.code < 500:
                raise
            state = f"unknown (HTTP {error.code})"
        except OSError as error:  # a read timeout or a refused connection
            state = f"unknown ({type(error).__name__}: {error})"
        else:
            assert isinstance(run, dict)
            if run["state"] in ("success", "failed"):
                return dict(run)
            state = repr(run["state"])
        if time.monotonic() > deadline:
            raise AssertionError(
                f"run {run_id} still {state} after {timeout_s:.0f} s:\n"
                + process.tail_log(airflow.AIRFLOW_PROCESS, 40, settings)
            )
        time.sleep(2)
