"""``dag.test()`` of the DAGs on real shared data, each in a child process with its own
AIRFLOW_HOME (a migrated SQLite database) and RTC_HOME, so nothing touches the developer's state
and Airflow's configuration is read fresh (it is fixed at Airflow's first import in a process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, SHARED_DATA

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MINUTE_FILE = SHARED_DATA / "minute" / "binance_BTCUSDT_1m_2024-01-01_2024-01-21.csv.gz"
RESULT_MARK = "DAG_TEST_RESULT "

# Runs in the child: parse the DAG, dag.test() it with a run conf, print the states as JSON.
_RUNNER = """
import json, sys
from airflow.models.dagbag import DagBag
dag_id, conf = sys.argv[1], json.loads(sys.argv[2])
bag = DagBag(dag_folder=sys.argv[3])
assert not bag.import_errors, bag.import_errors
run = bag.dags[dag_id].test(run_conf=conf)
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print("DAG_TEST_RESULT " + json.dumps({"state": str(run.state), "tasks": states}))
"""


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment of an isolated Airflow (temp home, SQLite migrated) and RTC home."""
    root = tmp_path_factory.mktemp("dag-test")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow' / 'airflow.db'}",
        "RTC_HOME": str(root / "rtc"),
        "RTC_HISTORY_DIR": str(root / "history"),
    }
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        env.pop(name, None)
    airflow = str(Path(sys.executable).parent / "airflow")
    migrated = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
    yield env


@pytest.fixture
def run_dag(airflow_env: dict[str, str]) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    def run(dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        completed = subprocess.run(
            [sys.executable, "-c", _RUNNER, dag_id, json.dumps(conf), str(REPO / "dags")],
            env=airflow_env,
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


def _parquet_files(history_dir: Path) -> list[Path]:
    return sorted(history_dir.rglob("*.parquet"))


def test_history_download_imports_a_local_file_and_a_rerun_is_a_no_op(
    airflow_env: dict[str, str], run_dag, services_report
) -> None:
    history_dir = Path(airflow_env["RTC_HISTORY_DIR"])
    started = time.monotonic()
    first = run_dag("history_download", {"local_file": str(MINUTE_FILE)})
    first_s = time.monotonic() - started
    assert first["state"] == "success", first["output"][-5000:]
    assert set(first["tasks"].values()) == {"success"}, first["tasks"]
    parts = _parquet_files(history_dir)
    assert parts, f"no Parquet under {history_dir}"
    written = {path: path.stat().st_mtime_ns for path in parts}

    second = run_dag("history_download", {"local_file": str(MINUTE_FILE)})
    assert second["state"] == "success", second["output"][-5000:]
    assert "already imported" in second["output"]
    assert {path: path.stat().st_mtime_ns for path in _parquet_files(history_dir)} == written
    services_report(
        f"dag.test history_download (local file, Airflow child process): {first_s:.0f} s"
    )


def test_history_download_without_kaggle_names_the_offline_command(run_dag) -> None:
    result = run_dag("history_download", {"local_file": ""})
    assert result["state"] == "failed"
    assert result["tasks"]["fetch"] == "failed"
    assert "rtc history import FILE" in result["output"]


def test_forecast_retrain_trains_backtests_and_publishes(
    airflow_env: dict[str, str], run_dag, services_report
) -> None:
    imported = run_dag("history_download", {"local_file": str(MINUTE_FILE)})
    assert imported["state"] == "success", imported["output"][-5000:]
    conf = {"training_days": 14, "horizon_minutes": 20_000, "book_parity": False, "source": ""}
    started = time.monotonic()
    result = run_dag("forecast_retrain", conf)
    seconds = time.monotonic() - started
    assert result["state"] == "success", result["output"][-5000:]
    assert set(result["tasks"].values()) == {"success"}, result["tasks"]
    forecast_dir = Path(airflow_env["RTC_HOME"]) / "forecast"
    version = (forecast_dir / "current").read_text().strip()
    folder = forecast_dir / "versions" / version
    assert (folder / "forecast.parquet").is_file()
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["horizon_minutes"] == 20_000
    assert metadata["book_parity"] is False
    services_report(f"dag.test forecast_retrain (14 days, 20k-minute horizon): {seconds:.0f} s")
