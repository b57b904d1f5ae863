"""DAG integrity: every file in dags/ parses without errors, and every DAG is configured as
the project asks (tags, an owner, retries, catchup off, the specified schedule, thin imports,
the assets between them)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO

DAGS_FOLDER = REPO / "dags"
# Every DAG of dags/ (a test fails on a DAG missing here). A schedule is compared as
# _schedule_key renders it: forecast_retrain's is cron OR the history asset.
EXPECTED_SCHEDULES: dict[str, Any] = {
    "history_download": "@weekly",
    "forecast_retrain": ("30 0 * * *", "UTC", ("rtc_history",)),  # 00:30 UTC, or new history
    "search_provision": "@daily",
    "streaming_supervisor": "*/5 * * * *",
    "streaming_start": None,  # manual
    "streaming_stop": None,  # manual
    "trade_report": ("0 1 * * *", "UTC", "1 day, 0:00:00"),  # 01:00 UTC, the 24 hours before
}
PLUGINS_FOLDER = REPO / "plugins"
# Imported inside tasks only: parsing must stay fast and never touch the network or a database.
HEAVY_MODULES = {"pandas", "numpy", "prophet", "pyspark", "kaggle", "rtcrypto", "pyarrow"}


@pytest.fixture(scope="module")
def dag_bag(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    home = tmp_path_factory.mktemp("airflow-home")
    with pytest.MonkeyPatch.context() as patch:
        # Set before Airflow's first import in this process: nothing lands in ~/airflow.
        patch.setenv("AIRFLOW_HOME", str(home))
        patch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        patch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER))
        # As rtc stack up configures it: Airflow puts this folder on sys.path (rtc_airflow).
        patch.setenv("AIRFLOW__CORE__PLUGINS_FOLDER", str(PLUGINS_FOLDER))
        from airflow.models.dagbag import DagBag

        yield DagBag(dag_folder=str(DAGS_FOLDER))


def _schedule_key(schedule: Any) -> Any:
    """A schedule as a comparable value: a string or None as it is, a cron trigger timetable as
    (cron, zone, interval), cron-or-asset as (cron, zone, asset names)."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    if isinstance(schedule, AssetOrTimeSchedule):
        condition = schedule.asset_condition
        names = tuple(sorted(asset.name for asset in getattr(condition, "objects", [condition])))
        timetable = schedule.timetable
        assert isinstance(timetable, CronTriggerTimetable), timetable
        return (timetable.expression, str(timetable.timezone), names)
    if isinstance(schedule, CronTriggerTimetable):
        return (schedule.expression, str(schedule.timezone), str(schedule.interval))
    return schedule


def test_dag_files_import_without_errors(dag_bag: Any) -> None:
    assert dag_bag.import_errors == {}
    # Every DAG file's DAG is checked below: none is left out.
    assert set(dag_bag.dag_ids) == set(EXPECTED_SCHEDULES)
    assert {dag.fileloc for dag in dag_bag.dags.values()} == {
        str(path) for path in DAGS_FOLDER.glob("*.py")
    }


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_SCHEDULES))
def test_dag_is_configured_as_specified(dag_bag: Any, dag_id: str) -> None:
    dag = dag_bag.dags[dag_id]
    assert dag is not None
    assert dag.tags, f"{dag_id} has no tags"
    assert dag.owner and dag.owner != "airflow", f"{dag_id} has no owner of its own"
    assert dag.catchup is False
    assert _schedule_key(dag.schedule) == EXPECTED_SCHEDULES[dag_id]
    for task in dag.tasks:
        assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"
        assert task.execution_timeout is not None, f"{dag_id}.{task.task_id} has no timeout"


def test_every_dag_has_tags_owner_and_retries(dag_bag: Any) -> None:
    for dag_id, dag in dag_bag.dags.items():
        assert dag.tags, dag_id
        assert dag.owner, dag_id
        assert dag.catchup is False, dag_id
        assert all(task.retries >= 1 for task in dag.tasks), dag_id


def test_forecast_retrain_params_are_editable_in_the_trigger_form(dag_bag: Any) -> None:
    params = dag_bag.dags["forecast_retrain"].params
    assert params["horizon_minutes"] == 150_000
    assert params["book_parity"] is False
    assert isinstance(params["training_days"], int)
    for name in ("training_days", "horizon_minutes", "book_parity"):
        assert params.get_param(name).schema.get("type"), name  # typed: a form field, not JSON


def test_history_download_has_local_file_param(dag_bag: Any) -> None:
    assert dag_bag.dags["history_download"].params["local_file"] == ""


def test_history_download_takes_kaggle_unless_the_venue_param_says_gemini(dag_bag: Any) -> None:
    dag = dag_bag.dags["history_download"]
    assert (dag.params["venue"], dag.params["symbol"], dag.params["since"]) == (
        "kaggle",
        "BTCUSD",
        "",
    )
    branch = dag.get_task("choose_venue")
    assert branch.downstream_task_ids == {"fetch", "download_gemini_candles"}
    assert dag.get_task("import_history").upstream_task_ids == {"fetch"}


@pytest.mark.parametrize("path", sorted(DAGS_FOLDER.glob("*.py")), ids=lambda path: path.name)
def test_dag_files_import_nothing_heavy_at_module_level(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in tree.body:  # module level only; imports inside functions are fine
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] not in HEAVY_MODULES, f"{path.name} imports {name}"


def test_plugins_folder_reaches_sys_path_through_airflow_itself(dag_bag: Any) -> None:
    import sys

    from airflow import settings

    assert str(PLUGINS_FOLDER) == settings.PLUGINS_FOLDER
    assert str(PLUGINS_FOLDER) in sys.path


def test_streaming_supervisor_runs_alone_and_maps_over_the_registry(dag_bag: Any) -> None:
    dag = dag_bag.dags["streaming_supervisor"]
    assert dag.max_active_runs == 1
    assert {"list_services", "check_health", "restart_if_needed", "report"} <= set(dag.task_ids)
    from rtc_airflow.sensors import ServiceHeartbeatSensor

    assert dag.get_task("check_health").operator_class is ServiceHeartbeatSensor
    # Its default mode: between pokes the worker slot is free (never "poke").
    assert ServiceHeartbeatSensor(task_id="probe", service="ingest").mode == "reschedule"
    assert dag.get_task("restart_if_needed").upstream_task_ids == {"check_health"}
    # The UI names each mapped task by its service, not 0..n.
    assert dag.get_task("check_health").map_index_template == "{{ task.service }}"
    assert "service" in str(dag.get_task("restart_if_needed").map_index_template)


def test_streaming_supervisor_waits_on_kafka_lag_through_kafka_default(dag_bag: Any) -> None:
    from rtc_airflow.sensors import KafkaLagSensor

    dag = dag_bag.dags["streaming_supervisor"]
    lag = dag.get_task("check_lag")
    assert lag.operator_class is KafkaLagSensor
    assert lag.upstream_task_ids == {"list_lag_targets"}
    assert "check_lag" in dag.get_task("report").upstream_task_ids
    assert lag.map_index_template == "{{ task.service }}"
    assert lag.partial_kwargs["soft_fail"] is True  # a lagging consumer: skipped, not failed
    # Offsets from the connection rtc up creates (rtcrypto/stack/airflow_connections.py).
    sensor = KafkaLagSensor(task_id="probe", service="trader", max_lag=1)
    assert sensor.kafka_config_id == "kafka_default"
    assert sensor.mode == "reschedule"


@pytest.mark.parametrize("dag_id", ["streaming_start", "streaming_stop"])
def test_streaming_start_and_stop_take_a_list_of_services_default_all(
    dag_bag: Any, dag_id: str
) -> None:
    params = dag_bag.dags[dag_id].params
    assert params["services"] == []
    assert params.get_param("services").schema["type"] == "array"


def test_trade_report_reviews_the_24_hours_before_its_0100_utc_run(dag_bag: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from airflow.sdk import CronTriggerTimetable
    from airflow.serialization.encoders import coerce_to_core_timetable

    dag = dag_bag.dags["trade_report"]
    # A bare cron string would give Airflow 3 runs an empty data interval (start == end).
    assert dag.schedule == CronTriggerTimetable(
        "0 1 * * *", timezone="UTC", interval=timedelta(days=1)
    )
    run_after = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
    interval = coerce_to_core_timetable(dag.timetable).infer_manual_data_interval(
        run_after=run_after
    )
    assert (interval.start, interval.end) == (run_after - timedelta(days=1), run_after)
    assert dag.task_ids == ["build_report"]
    assert dag.get_task("build_report").execution_timeout is not None


def test_assets_link_history_forecast_retrain_and_the_forecast_consumers(dag_bag: Any) -> None:
    """history_download's import produces the history; forecast_retrain runs on it (or its cron)
    and its publish task produces the forecast, which trade_report's review declares."""
    from rtc_airflow.assets import FORECAST, HISTORY

    def outlets(dag_id: str, task_id: str) -> list[Any]:
        return list(dag_bag.dags[dag_id].get_task(task_id).outlets)

    assert outlets("history_download", "import_history") == [HISTORY]
    assert outlets("history_download", "fetch") == []
    assert outlets("history_download", "download_gemini_candles") == [HISTORY]
    retrain = dag_bag.dags["forecast_retrain"]
    assert retrain.timetable.asset_condition == HISTORY
    assert outlets("forecast_retrain", "train_and_publish") == [FORECAST]
    assert list(dag_bag.dags["trade_report"].get_task("build_report").inlets) == [FORECAST]
    producers = {
        (dag_id, task.task_id)
        for dag_id, dag in dag_bag.dags.items()
        for task in dag.tasks
        if task.outlets
    }
    assert producers == {
        ("history_download", "import_history"),
        ("history_download", "download_gemini_candles"),
        ("forecast_retrain", "train_and_publish"),
    }


def test_forecast_retrain_task_function_stays_short() -> None:
    """The DAG function only wires tasks (issue 11: no function over 80 lines)."""
    tree = ast.parse((DAGS_FOLDER / "forecast_retrain.py").read_text())
    function = next(
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == "forecast_retrain"
    )
    assert function.end_lineno is not None
    assert function.end_lineno - function.lineno + 1 < 80


def test_no_plugin_module_shadows_an_installed_package() -> None:
    """Airflow's plugin manager imports every file of the plugins folder under its bare name: a
    ``plugins/rtc_airflow/kaggle.py`` would become ``sys.modules["kaggle"]``."""
    import sys
    from importlib.metadata import packages_distributions

    taken = set(packages_distributions()) | set(sys.stdlib_module_names)
    shadowing = [path for path in PLUGINS_FOLDER.rglob("*.py") if path.stem in taken]
    assert shadowing == []
