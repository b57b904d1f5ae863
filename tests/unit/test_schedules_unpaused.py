"""Scheduled DAGs run without a click where they can succeed: which DAGs are unpaused on
creation, history_download only with Kaggle credentials, and `rtc status` saying why not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rtcrypto.kaggle_credentials import (
    history_download_schedule_note,
    kaggle_credential_files,
    kaggle_credentials_location,
)
from tests.helpers import REPO

DAGS_FOLDER = REPO / "dags"
SECRET = "0123456789abcdef-not-a-real-key"


def test_credentials_from_env_token_or_file_never_quoting_a_value(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert kaggle_credentials_location({}, home) is None
    assert kaggle_credentials_location({"KAGGLE_USERNAME": "me"}, home) is None  # key missing
    both = {"KAGGLE_USERNAME": "me", "KAGGLE_KEY": SECRET}
    assert kaggle_credentials_location(both, home) == "KAGGLE_USERNAME and KAGGLE_KEY"
    assert kaggle_credentials_location({"KAGGLE_API_TOKEN": SECRET}, home) == "KAGGLE_API_TOKEN"
    note = history_download_schedule_note(both, home)
    assert note.startswith("history_download: unpaused on creation") and SECRET not in note

    (home / ".kaggle").mkdir()
    (home / ".kaggle" / "kaggle.json").write_text("")  # an empty file is no credential
    assert kaggle_credentials_location({}, home) is None
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "me", "key": SECRET}))
    assert kaggle_credentials_location({}, home) == str(home / ".kaggle" / "kaggle.json")
    elsewhere = tmp_path / "config"
    assert kaggle_credential_files({"KAGGLE_CONFIG_DIR": str(elsewhere)}, home)[0] == (
        elsewhere / "kaggle.json"
    )
    assert kaggle_credentials_location({"KAGGLE_CONFIG_DIR": str(elsewhere)}, home) is None


def test_the_note_says_why_history_download_is_paused(tmp_path: Path) -> None:
    note = history_download_schedule_note({}, tmp_path)
    assert note.startswith("history_download: paused, because no Kaggle credentials were found")
    assert "airflow dags unpause history_download" in note
    assert "rtc history import FILE" in note


# Runs in a child: parse the DAGs with the given HOME and env, print is_paused_upon_creation.
_PARSE = """
import json, sys
from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
print("PAUSED " + json.dumps({d: bag.dags[d].is_paused_upon_creation for d in bag.dag_ids}))
"""


def _paused_upon_creation(tmp_path: Path, home: Path, extra: dict[str, str]) -> dict[str, bool]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("KAGGLE_") and key != "XDG_CONFIG_HOME"
    }
    env |= {
        "HOME": str(home),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "PYTHONPATH": str(REPO),
        **extra,
    }
    completed = subprocess.run(
        [sys.executable, "-c", _PARSE, str(DAGS_FOLDER)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("PAUSED ")]
    assert completed.returncode == 0 and lines, completed.stdout[-3000:] + completed.stderr[-3000:]
    return dict(json.loads(lines[-1][len("PAUSED ") :]))


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bool]]:
    root = tmp_path_factory.mktemp("pause")
    bare, with_file = root / "bare-home", root / "kaggle-home"
    bare.mkdir()
    (with_file / ".kaggle").mkdir(parents=True)
    (with_file / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "u", "key": "k"}))
    return {
        "none": _paused_upon_creation(root, bare, {}),
        "file": _paused_upon_creation(root, with_file, {}),
        "env": _paused_upon_creation(root, bare, {"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}),
    }


def test_scheduled_dags_that_can_succeed_here_are_unpaused_on_creation(
    parsed: dict[str, dict[str, bool]],
) -> None:
    for case in parsed.values():
        for dag_id in ("search_provision", "trade_report", "forecast_retrain"):
            assert case[dag_id] is False, dag_id
        assert case["streaming_supervisor"] is False


def test_history_download_is_unpaused_only_with_kaggle_credentials(
    parsed: dict[str, dict[str, bool]],
) -> None:
    assert parsed["none"]["history_download"] is True
    assert parsed["file"]["history_download"] is False
    assert parsed["env"]["history_download"] is False


def test_rtc_status_prints_why_history_download_is_paused(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAGGLE_")}
    env |= {"HOME": str(tmp_path), "RTC_HOME": str(tmp_path / "rtc"), "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        [sys.executable, "-m", "rtcrypto.cli.main", "status"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in completed.stderr, completed.stderr[-3000:]
    assert (
        "history_download: paused, because no Kaggle credentials were found" in completed.stdout
    ), completed.stdout[-3000:]
