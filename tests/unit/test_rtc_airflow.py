"""The Airflow plugin package ``plugins/rtc_airflow``: restart backends, skip rules, arguments.

Runs Airflow in this process with a temporary AIRFLOW_HOME (set before Airflow's first import)
and the repo's plugins folder, as ``rtc stack up`` configures it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rtcrypto.config import Settings
from rtcrypto.spark import submit as spark
from tests.helpers import REPO


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    home = tmp_path_factory.mktemp("airflow-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_HOME", str(home))
        patch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        patch.setenv("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
        # A Spark connection for the spark_submit backend, the way a deployment would add it.
        patch.setenv("AIRFLOW_CONN_SPARK_RTC_TEST", '{"conn_type": "spark", "host": "local[2]"}')
        import airflow  # noqa: F401  (puts the plugins folder on sys.path)
        from rtc_airflow import operators

        yield operators


def test_spark_submit_backend_builds_the_jobs_command_with_the_providers_hook(
    plugin: ModuleType, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path)
    launch = plugin.spark_submit_launch(settings, "spark_rtc_test")
    command = list(launch.command)
    ours = spark.build_submit_command(
        spark.LiquidityJobConfig.from_settings(settings), spark.kafka_connector_jars(settings)
    )
    assert command[0] == str(spark.find_spark_submit())
    assert command[command.index("--master") + 1] == "local[2]"  # from the Airflow connection
    assert command[command.index("--name") + 1] == "liquidity"
    assert command[command.index("--jars") + 1] == ours[ours.index("--jars") + 1]
    script = str(spark.liquidity_job_script())
    # The job script and its arguments are exactly the project's own.
    assert command[command.index(script) :] == ours[ours.index(script) :]
    for key, value in spark.SPARK_CONF.items():
        assert f"{key}={value}" in command
    assert launch.env["PYSPARK_PYTHON"] and launch.env["RTC_HOME"] == str(settings.home)


def test_spark_submit_backend_without_its_connection_says_what_to_add(
    plugin: ModuleType, tmp_path: Path
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="needs the Airflow connection 'spark_nowhere'"):
        plugin.spark_submit_launch(Settings(home=tmp_path), "spark_nowhere")


def _restart(plugin: ModuleType, **kwargs: Any) -> Any:
    return plugin.ServiceRestartOperator(task_id="restart", **kwargs)


@pytest.mark.parametrize("state", ["healthy", "lagging", "stopped", "unknown"])
def test_restart_is_skipped_unless_dead_or_stale(plugin: ModuleType, state: str) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    health = {"service": "ingest", "state": state, "reason": "r", "pid": 1}
    with pytest.raises(AirflowSkipException, match=f"ingest is {state}"):
        _restart(plugin, health=health).execute(context={})


def test_backend_choice_is_explicit(plugin: ModuleType) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from rtcrypto.supervision import RestartBackend

    default = _restart(plugin, service="liquidity")
    assert default._backend_for("liquidity") is RestartBackend.local
    spark_submit = _restart(plugin, service="liquidity", spark_backend="spark_submit")
    assert spark_submit._backend_for("liquidity") is RestartBackend.spark_submit
    assert spark_submit._backend_for("ingest") is RestartBackend.local  # Spark job only
    compose = _restart(plugin, service="ingest", backend="compose", spark_backend="spark_submit")
    assert compose._backend_for("liquidity") is RestartBackend.compose
    with pytest.raises(AirflowFailException, match="spark_backend"):
        _restart(plugin, service="ingest", backend="spark_submit")._backend_for("ingest")
    with pytest.raises(AirflowFailException, match="unknown restart backend"):
        _restart(plugin, service="ingest", backend="systemd")._backend_for("ingest")


def test_kafka_lag_sensor_needs_a_service_or_a_group_and_topic(plugin: ModuleType) -> None:
    from rtc_airflow.sensors import KafkaLagSensor

    with pytest.raises(ValueError, match="needs a service, or both group_id and topic"):
        KafkaLagSensor(task_id="lag", max_lag=10, group_id="rtc-trader")
    sensor = KafkaLagSensor(task_id="lag", max_lag=10, service="trader")
    assert sensor.mode == "reschedule"
