"""The Airflow Connections rtc up creates (kafka_default, elasticsearch_default, spark_default):
built from Settings, read back by the plugin's hooks, secrets in the environment only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from rtcrypto.config import Settings
from rtcrypto.stack import airflow
from rtcrypto.stack import airflow_connections as connections
from tests.helpers import REPO

SECRET = "Search0secret-Xy"
SASL_SECRET = "Sasl0secret-Zq"

hosts = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True)
ports = st.integers(min_value=1, max_value=65535)
words = st.from_regex(r"[A-Za-z0-9_.-]{1,24}", fullmatch=True)


@given(
    search_scheme=st.sampled_from(["http", "https"]),
    search_host=hosts,
    search_port=ports,
    username=st.none() | words,
    password=words,
    kafka_hosts=st.lists(st.tuples(hosts, ports), min_size=1, max_size=3),
    protocol=st.sampled_from(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]),
    master=st.sampled_from(["local[2]", "local[*]", "spark://m:7077", "yarn"]),
)
def test_settings_survive_the_way_through_the_connections(
    search_scheme: str,
    search_host: str,
    search_port: int,
    username: str | None,
    password: str,
    kafka_hosts: list[tuple[str, int]],
    protocol: str,
    master: str,
) -> None:
    """Property: each connection, read back onto default settings, gives the original values."""
    original = Settings(
        search_url=f"{search_scheme}://{search_host}:{search_port}",
        search_username=username,
        search_password=SecretStr(password) if username is not None else None,
        kafka_bootstrap=",".join(f"{host}:{port}" for host, port in kafka_hosts),
        kafka_security_protocol=protocol,
        kafka_sasl_username="user" if protocol.startswith("SASL") else None,
        kafka_sasl_password=SecretStr(password) if protocol.startswith("SASL") else None,
        spark_master=master,
    )
    built = connections.airflow_connections(original)
    restored = Settings()
    for kind in connections.CONNECTION_IDS:
        restored = connections.settings_with_connection(restored, kind, built[kind])
    fields = [
        "search_url",
        "search_username",
        "search_password",
        "kafka_bootstrap",
        "kafka_security_protocol",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "spark_master",
    ]
    for field in fields:
        assert getattr(restored, field) == getattr(original, field), field


def test_no_connection_leaves_the_settings_and_an_unknown_kind_is_refused() -> None:
    settings = Settings()
    assert connections.settings_with_connection(settings, "kafka_default", None) is settings
    assert connections.settings_with_connection(settings, "spark_default", {"host": ""}) is settings
    with pytest.raises(ValueError, match="unknown connection kind 'kaggle_default'"):
        connections.settings_with_connection(settings, "kaggle_default", {})
    with pytest.raises(ValueError, match="kafka_security_protocol"):
        connections.settings_with_connection(
            settings, "kafka_default", {"extra": {"security.protocol": "gopher"}}
        )


def test_the_standalone_gets_the_connections_in_its_environment_only(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        search_url="https://es.example:9243",
        search_username="rtc_app",
        search_password=SecretStr(SECRET),
        spark_master="local[1]",
    )
    env = airflow.airflow_process_env(settings, {"RTC_X": "1"})
    search = json.loads(env["AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"])
    assert (search["conn_type"], search["host"], search["port"], search["schema"]) == (
        "elasticsearch",
        "es.example",
        9243,
        "https",
    )
    assert (search["login"], search["password"]) == ("rtc_app", SECRET)
    kafka = json.loads(env["AIRFLOW_CONN_KAFKA_DEFAULT"])
    assert kafka == {"conn_type": "kafka", "extra": {"bootstrap.servers": "127.0.0.1:9092"}}
    assert json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"])["host"] == "local[1]"
    assert env["RTC_X"] == "1" and env["AIRFLOW_HOME"] == str(settings.airflow_home_dir)
    # airflow_env (printed in docs and tests, compared with docker-compose) holds no secret.
    assert SECRET not in json.dumps(airflow.airflow_env(settings))


# --- the plugin's hooks on these connections ---------------------------------------------------


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    home = tmp_path_factory.mktemp("airflow-home")
    defined = Settings(
        kafka_bootstrap="kafka-from-conn:19092",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="rtc",
        kafka_sasl_password=SecretStr(SASL_SECRET),
        search_url="https://es-from-conn:9243",
        search_username="rtc_app",
        search_password=SecretStr(SECRET),
    )
    built = connections.airflow_connections(defined)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_HOME", str(home))
        patch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        patch.setenv("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
        patch.setenv("AIRFLOW_CONN_KAFKA_RTC_TEST", json.dumps(built["kafka_default"]))
        patch.setenv("AIRFLOW_CONN_SEARCH_RTC_TEST", json.dumps(built["elasticsearch_default"]))
        import airflow as airflow_package  # noqa: F401  (puts the plugins folder on sys.path)
        from rtc_airflow import hooks as module

        yield module


def test_plugin_connection_ids_are_the_ones_rtc_up_creates(hooks: ModuleType) -> None:
    assert hooks.KAFKA_CONN_ID == connections.KAFKA_CONN_ID
    assert hooks.SEARCH_CONN_ID == connections.SEARCH_CONN_ID


def test_supervision_hook_reads_kafka_from_its_connection(hooks: ModuleType) -> None:
    hook = hooks.ServiceSupervisionHook(kafka_config_id="kafka_rtc_test")
    settings = hook.settings
    assert hook.origin == "Airflow connection kafka_rtc_test"
    assert settings.kafka_bootstrap == "kafka-from-conn:19092"
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_password == SecretStr(SASL_SECRET)
    # The offsets: the Kafka provider's admin hook on the same connection.
    from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook

    provider = KafkaAdminClientHook(kafka_config_id="kafka_rtc_test")
    assert provider._build_config()["bootstrap.servers"] == "kafka-from-conn:19092"


def test_supervision_hook_without_the_connection_uses_the_settings(hooks: ModuleType) -> None:
    hook = hooks.ServiceSupervisionHook(kafka_config_id="kafka_nowhere")
    assert hook.settings.kafka_bootstrap == Settings().kafka_bootstrap
    assert hook.origin == "settings (RTC_*)"
    assert hooks.ServiceSupervisionHook(kafka_config_id=None).settings == hook.settings


def test_search_hook_reads_elasticsearch_from_its_connection(hooks: ModuleType) -> None:
    hook = hooks.SearchHook("search_rtc_test")
    found, arguments = hook.hosts_and_arguments()
    assert found == ["https://es-from-conn:9243"]  # fit to log: no userinfo
    assert arguments["basic_auth"] == ("rtc_app", SECRET)
    client = hook.get_conn()
    try:
        nodes = [node.base_url for node in client.transport.node_pool.all()]
    finally:
        client.close()
    assert nodes == ["https://es-from-conn:9243"]
    fallback = hooks.SearchHook("search_nowhere")
    assert fallback.hosts_and_arguments()[0] == [Settings().search_url]
    assert fallback.origin == "settings (RTC_*)"


def test_lag_targets_are_the_running_services_that_read_a_topic(
    hooks: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingest's lag is event time (its heartbeat), not a topic: no lag sensor for it."""
    from rtcrypto.stack import process

    monkeypatch.setattr(process, "is_running", lambda name, settings=None: True)
    hook = hooks.ServiceSupervisionHook(kafka_config_id=None)
    names = [target["service"] for target in hook.lag_targets()]
    assert "ingest" not in names and "simulator" not in names
    assert {"liquidity", "trader"} <= set(names)
