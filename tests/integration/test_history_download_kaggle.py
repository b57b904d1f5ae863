"""history_download's Kaggle path with the real official ``kaggle`` client, run by ``dag.test()``
in a child process (own AIRFLOW_HOME, RTC_HOME and HOME, so no developer credentials leak in).

There is no internet here: with (fake) credentials the client's real download fails to reach
Kaggle, which is the offline failure users meet. The task's retry is set to 0 in the child (the
retry policy is the DAG integrity test's concern; here only the failure and its message matter).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, isolated_airflow_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RESULT_MARK = "DAG_TEST_RESULT "
DAG_FILE = REPO / "dags" / "history_download.py"
OFFLINE_COMMAND = "rtc history import FILE"
FAKE_USER = "rtc-test-user"
# Looks like a Kaggle API key (32 hex digits) and appears nowhere else.
FAKE_KEY = "5f3c9e0b7a2d4c6e8f1a3b5d7c9e0f2a"
KAGGLE_VARIABLES = (
    "KAGGLE_USERNAME",
    "KAGGLE_KEY",
    "KAGGLE_API_TOKEN",
    "KAGGLE_CONFIG_DIR",
    "XDG_CONFIG_HOME",
    "AIRFLOW_CONN_KAGGLE_DEFAULT",
)

# Runs in the child: parse the DAG's file only, no retries, dag.test() it, print task states.
_RUNNER = """
import json, sys
from airflow.models.dagbag import DagBag
dag_id, conf = sys.argv[1], json.loads(sys.argv[2])
bag = DagBag(dag_folder=sys.argv[3])
assert not bag.import_errors, bag.import_errors
dag = bag.dags[dag_id]
for task in dag.tasks:
    task.retries = 0
run = dag.test(run_conf=conf)
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print("DAG_TEST_RESULT " + json.dumps({"state": str(run.state), "tasks": states}))
"""


@pytest.fixture(scope="module")
def isolated_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An isolated, migrated Airflow home and an empty HOME, with no Kaggle credentials."""
    root = tmp_path_factory.mktemp("kaggle-dag")
    (root / "home").mkdir()
    env = {**isolated_airflow_env(root, drop=KAGGLE_VARIABLES), "HOME": str(root / "home")}
    yield env


@pytest.fixture
def run_download(
    isolated_env: dict[str, str],
) -> Callable[[dict[str, str]], dict[str, Any]]:
    """``run(extra_env)``: dag.test of history_download with an empty local_file (download)."""

    def run(extra_env: dict[str, str]) -> dict[str, Any]:
        completed = subprocess.run(
            [
                sys.executable,
                "-c",
                _RUNNER,
                "history_download",
                '{"local_file": ""}',
                str(DAG_FILE),
            ],
            env={**isolated_env, **extra_env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = completed.stdout + completed.stderr
        lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARK)]
        assert completed.returncode == 0 and lines, output[-5000:]
        result: dict[str, Any] = json.loads(lines[-1][len(RESULT_MARK) :])
        result["output"] = output
        return result

    return run


def _assert_fetch_failed_offline(result: dict[str, Any]) -> None:
    output = result["output"]
    assert result["state"] == "failed", output[-5000:]
    assert result["tasks"]["fetch"] == "failed", result["tasks"]
    assert result["tasks"]["import_history"] == "upstream_failed", result["tasks"]
    assert OFFLINE_COMMAND in output, f"no `{OFFLINE_COMMAND}` in the log:\n{output[-5000:]}"


def test_kaggle_client_is_installed() -> None:
    # Not imported here: importing the package authenticates and writes to ~/.config/kaggle.
    from importlib import metadata, util

    assert util.find_spec("kaggle") is not None, "pip install -r requirements.txt"
    assert metadata.version("kaggle").startswith("2."), metadata.version("kaggle")


def test_without_credentials_fetch_fails_naming_the_offline_command(run_download) -> None:
    result = run_download({})
    _assert_fetch_failed_offline(result)
    assert "no Kaggle credentials" in result["output"], result["output"][-5000:]


def test_fake_env_credentials_without_network_fail_clearly_and_stay_secret(run_download) -> None:
    result = run_download({"KAGGLE_USERNAME": FAKE_USER, "KAGGLE_KEY": FAKE_KEY})
    _assert_fetch_failed_offline(result)
    output = result["output"]
    assert "KaggleDownloadError" in output and "no network" in output, output[-5000:]
    assert "no Kaggle credentials" not in output  # the credentials were found and used
    assert FAKE_KEY not in output, "the Kaggle key appeared in the task's log output"


def test_fake_connection_credentials_stay_secret(run_download) -> None:
    connection = json.dumps({"conn_type": "generic", "login": FAKE_USER, "password": FAKE_KEY})
    result = run_download({"AIRFLOW_CONN_KAGGLE_DEFAULT": connection})
    _assert_fetch_failed_offline(result)
    output = result["output"]
    assert "no network" in output and "no Kaggle credentials" not in output, output[-5000:]
    assert FAKE_KEY not in output, "the Kaggle key appeared in the task's log output"


def test_the_clients_own_kaggle_json_is_used(run_download, tmp_path: Path) -> None:
    config_dir = tmp_path / "kaggle-config"
    config_dir.mkdir()
    config_file = config_dir / "kaggle.json"
    config_file.write_text(json.dumps({"username": FAKE_USER, "key": FAKE_KEY}))
    config_file.chmod(0o600)
    result = run_download({"KAGGLE_CONFIG_DIR": str(config_dir)})
    _assert_fetch_failed_offline(result)
    output = result["output"]
    assert str(config_file) in output and "no network" in output, output[-5000:]
    assert FAKE_KEY not in output, "the Kaggle key appeared in the task's log output"
