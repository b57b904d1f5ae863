"""``rtc airflow connections get``: the platform's Connections as the DAGs' hooks read them,
from a plain shell (the Connections live in the environment ``rtc up`` gives Airflow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RTC = [sys.executable, "-m", "rtcrypto.cli.main", "airflow"]


def _get(conn_id: str, env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [*RTC, "connections", "get", conn_id, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout[done.stdout.index("[") :])
    assert isinstance(found, list) and len(found) == 1
    connection = found[0]
    assert isinstance(connection, dict) and connection["conn_id"] == conn_id
    return connection


@pytest.mark.slow
def test_the_three_connections_come_from_the_settings(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RTC_", "AIRFLOW"))},
        "RTC_HOME": str(tmp_path),
        "RTC_KAFKA_BOOTSTRAP": "127.0.0.1:29092",
        "RTC_SEARCH_URL": "http://127.0.0.1:29200",
        "RTC_SPARK_MASTER": "local[1]",
    }
    kafka = _get("kafka_default", env)
    assert kafka["conn_type"] == "kafka"
    assert kafka["extra_dejson"] == {"bootstrap.servers": "127.0.0.1:29092"}
    search = _get("elasticsearch_default", env)
    assert (search["host"], str(search["port"])) == ("127.0.0.1", "29200")
    spark = _get("spark_default", env)
    assert spark["conn_type"] == "spark" and "local[1]" in json.dumps(spark)


def test_a_missing_airflow_is_a_clear_error(tmp_path: Path) -> None:
    """The command names what to do when the venv has no ``airflow`` program."""
    from typer.testing import CliRunner

    from rtcrypto.cli.main import app
    from rtcrypto.stack import airflow

    original = airflow.airflow_bin
    try:
        airflow.airflow_bin = lambda: (_ for _ in ()).throw(  # type: ignore[assignment]
            airflow.ToolMissingError("no `airflow` next to python: install the requirements")
        )
        result = CliRunner().invoke(app, ["airflow", "version"], env={"RTC_HOME": str(tmp_path)})
    finally:
        airflow.airflow_bin = original  # type: ignore[assignment]
    assert result.exit_code == 1
    assert "install the requirements" in result.output
