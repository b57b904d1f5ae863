"""DAG params have JSON-schema bounds: nonsense in the trigger form is refused (issue 10)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

from rtcrypto.config import FORECAST_HORIZON_MAX_MINUTES
from tests.helpers import REPO
from tests.unit.test_dag_integrity import dag_bag  # noqa: F401 (the fixture)

BAD: list[tuple[str, str, Any]] = [
    ("forecast_retrain", "horizon_minutes", FORECAST_HORIZON_MAX_MINUTES + 1),
    ("forecast_retrain", "horizon_minutes", 0),
    ("forecast_retrain", "training_days", 10_000),
    ("forecast_retrain", "training_days", 1),
    ("forecast_retrain", "source", "../../etc/passwd"),
    ("history_download", "local_file", "a\nb"),
    ("history_download", "local_file", "x" * 5000),
    ("history_download", "venue", "binance"),
    ("history_download", "symbol", "../btcusd"),
    ("history_download", "since", "yesterday"),
    ("streaming_start", "services", ["../trader"]),
    ("streaming_start", "services", ["trader", "trader"]),
    ("streaming_stop", "services", ["x" * 40]),
    ("trade_report", "mode", "yolo"),
    ("streaming_supervisor", "backend", "ssh"),
]
GOOD: list[tuple[str, str, Any]] = [
    ("forecast_retrain", "horizon_minutes", FORECAST_HORIZON_MAX_MINUTES),
    ("forecast_retrain", "training_days", 21),
    ("forecast_retrain", "source", "kaggle_bitstamp"),
    ("forecast_retrain", "source", None),
    ("forecast_retrain", "source", ""),
    ("history_download", "local_file", "/data/btcusd.csv.gz"),
    ("history_download", "venue", "gemini"),
    ("history_download", "symbol", "ethusd"),
    ("history_download", "since", "2024-10-28T12:30Z"),
    ("history_download", "since", ""),
    ("streaming_start", "services", ["ingest", "trader"]),
    ("streaming_stop", "services", []),
    ("trade_report", "mode", "paper"),
    ("trade_report", "mode", ""),
]


@pytest.fixture(scope="module")
def dags(dag_bag: Any) -> Iterator[Any]:  # noqa: F811
    yield dag_bag


def _param(dags: Any, dag_id: str, name: str) -> Any:
    return dags.dags[dag_id].params.get_param(name)


@pytest.mark.parametrize(("dag_id", "name", "value"), BAD, ids=[f"{d}.{n}" for d, n, _ in BAD])
def test_bad_param_is_refused(dags: Any, dag_id: str, name: str, value: Any) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError):
        _param(dags, dag_id, name).resolve(value)


@pytest.mark.parametrize(("dag_id", "name", "value"), GOOD, ids=[f"{d}.{n}" for d, n, _ in GOOD])
def test_good_param_passes(dags: Any, dag_id: str, name: str, value: Any) -> None:
    assert _param(dags, dag_id, name).resolve(value) == value


def test_every_default_passes(dags: Any) -> None:
    for dag_id in dags.dag_ids:
        dags.dags[dag_id].params.validate()


def test_the_dag_horizon_maximum_is_the_settings_maximum() -> None:
    spec = importlib.util.spec_from_file_location("fr", REPO / "dags" / "forecast_retrain.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.MAX_HORIZON_MINUTES == FORECAST_HORIZON_MAX_MINUTES
