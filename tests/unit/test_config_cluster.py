"""The cluster topology's settings (issue 14): members from RTC_CLUSTER_*, addresses derived from
them unless set explicitly, and nonsense refused with the variable named."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rtcrypto.config import Settings, get_settings
from rtcrypto.config_checks import SettingsError
from rtcrypto.config_cluster import ClusterSettings, Topology


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("RTC_KAFKA_BOOTSTRAP", "RTC_SEARCH_URL", "RTC_SPARK_MASTER", "RTC_TOPOLOGY"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_single_is_the_default_and_keeps_the_single_member_addresses() -> None:
    settings = Settings()
    assert settings.topology is Topology.SINGLE
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.spark_master == "local[2]"


def test_cluster_topology_points_every_client_at_the_cluster_members(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RTC_TOPOLOGY", "cluster")
    monkeypatch.setenv("RTC_CLUSTER_KAFKA_PORTS", "19001, 19003,19005")
    monkeypatch.setenv("RTC_CLUSTER_KAFKA_CONTROLLER_PORTS", "19002,19004,19006")
    monkeypatch.setenv("RTC_CLUSTER_SEARCH_HTTP_PORTS", "19201,19202")
    monkeypatch.setenv("RTC_CLUSTER_SEARCH_TRANSPORT_PORTS", "19301,19302")
    settings = get_settings()
    assert settings.cluster.kafka_brokers == 3
    assert settings.kafka_bootstrap == "127.0.0.1:19001,127.0.0.1:19003,127.0.0.1:19005"
    assert settings.search_url == "http://127.0.0.1:19201"
    assert settings.cluster.search_urls == ["http://127.0.0.1:19201", "http://127.0.0.1:19202"]
    assert settings.spark_master == "spark://127.0.0.1:7077"


def test_an_explicit_address_wins_over_the_cluster_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTC_TOPOLOGY", "cluster")
    monkeypatch.setenv("RTC_KAFKA_BOOTSTRAP", "10.0.0.5:9092")
    monkeypatch.setenv("RTC_SEARCH_URL", "http://user:secret@10.0.0.6:9200")
    settings = get_settings()
    assert settings.kafka_bootstrap == "10.0.0.5:9092"
    assert settings.search_url == "http://10.0.0.6:9200"
    assert settings.search_password is not None


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"RTC_TOPOLOGY": "three"}, "RTC_TOPOLOGY"),
        ({"RTC_CLUSTER_KAFKA_PORTS": "9192,9194"}, "RTC_CLUSTER_KAFKA_CONTROLLER_PORTS"),
        ({"RTC_CLUSTER_KAFKA_PORTS": "9192,x,9196"}, "RTC_CLUSTER_KAFKA_PORTS"),
        ({"RTC_CLUSTER_KAFKA_PORTS": "70000,9194,9196"}, "RTC_CLUSTER_KAFKA_PORTS"),
        ({"RTC_CLUSTER_KAFKA_REPLICATION_FACTOR": "4"}, "RTC_CLUSTER_KAFKA_REPLICATION_FACTOR"),
        ({"RTC_CLUSTER_KAFKA_MIN_INSYNC_REPLICAS": "0"}, "RTC_CLUSTER_KAFKA_MIN_INSYNC_REPLICAS"),
        (
            {
                "RTC_CLUSTER_KAFKA_REPLICATION_FACTOR": "2",
                "RTC_CLUSTER_KAFKA_MIN_INSYNC_REPLICAS": "3",
            },
            "RTC_CLUSTER_KAFKA_MIN_INSYNC_REPLICAS",
        ),
        ({"RTC_CLUSTER_SEARCH_REPLICAS": "3"}, "RTC_CLUSTER_SEARCH_REPLICAS"),
        ({"RTC_CLUSTER_SPARK_WORKER_UI_PORTS": "8082"}, "RTC_CLUSTER_SPARK_WORKER_UI_PORTS"),
        ({"RTC_CLUSTER_SPARK_WORKER_MEMORY": "lots"}, "RTC_CLUSTER_SPARK_WORKER_MEMORY"),
        ({"RTC_CLUSTER_CELERY_WORKER_LOG_PORTS": ""}, "RTC_CLUSTER_CELERY_WORKER_LOG_PORTS"),
        ({"RTC_CLUSTER_INGEST_PROCESSES": "0"}, "RTC_CLUSTER_INGEST_PROCESSES"),
    ],
)
def test_nonsense_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], named: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as refused:
        get_settings()
    assert named in str(refused.value)


def test_member_counts_follow_the_port_lists() -> None:
    cluster = ClusterSettings(
        spark_worker_ports=[1, 2, 3], spark_worker_ui_ports=[4, 5, 6], celery_worker_log_ports=[7]
    )
    assert (cluster.spark_workers, cluster.celery_workers, cluster.search_nodes) == (3, 1, 3)
