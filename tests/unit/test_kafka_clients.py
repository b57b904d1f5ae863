"""One place for Kafka client settings: what a secured cluster gives each client kind (issue 11).

The factories in ``rtcrypto.kafka.clients`` are exercised with the real confluent-kafka classes
(librdkafka checks every property when a client is built), spied on to read the configuration
they received. Nothing here needs a broker: building a client sends nothing that must succeed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import confluent_kafka
import confluent_kafka.admin
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from rtcrypto.config import Settings, get_settings
from rtcrypto.config_checks import SettingsError
from rtcrypto.kafka import clients
from rtcrypto.kafka.producers import producer_overrides
from rtcrypto.stack import kafka as kafka_stack

PASSWORD = "s3cr3t-pw-4711"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")  # a real PEM bundle librdkafka can load
QUIET = {"log_level": clients.QUIET_LOG_LEVEL}  # no broker listens: keep librdkafka quiet


@pytest.fixture
def sasl_ssl() -> Settings:
    return Settings(
        kafka_bootstrap="127.0.0.1:1",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="rtc-user",
        kafka_sasl_password=SecretStr(PASSWORD),
        kafka_ssl_ca_location=CA_BUNDLE,
    )


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, dict[str, Any]]]:
    """The configuration each confluent-kafka client class was built with, by class name."""
    seen: dict[str, dict[str, Any]] = {}

    def spy(module: Any, name: str) -> None:
        real = getattr(module, name)

        def build(config: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            seen[name] = dict(config)
            # the real class validates the properties; it looks its own name up in the module
            setattr(module, name, real)
            try:
                return real(config, *args, **kwargs)
            finally:
                setattr(module, name, build)

        monkeypatch.setattr(module, name, build)

    spy(confluent_kafka, "Consumer")
    spy(confluent_kafka, "Producer")
    spy(confluent_kafka.admin, "AdminClient")
    yield seen


SECURITY = {
    "security.protocol": "sasl_ssl",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "rtc-user",
    "sasl.password": PASSWORD,
    "ssl.ca.location": str(CA_BUNDLE),
}


def _subset(config: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {key: config.get(key) for key in expected}


def test_sasl_ssl_reaches_admin_consumer_and_producer(
    sasl_ssl: Settings, built: dict[str, dict[str, Any]]
) -> None:
    clients.admin_client(sasl_ssl, "probe-admin", timeout_s=2.0, **QUIET)
    clients.consumer(sasl_ssl, "probe-consumer", **QUIET)
    clients.producer(sasl_ssl, "probe-producer", **producer_overrides(sasl_ssl), **QUIET)

    for name, client_id in (
        ("AdminClient", "probe-admin"),
        ("Consumer", "probe-consumer"),
        ("Producer", "probe-producer"),
    ):
        config = built[name]
        assert _subset(config, SECURITY) == SECURITY, name
        assert config["bootstrap.servers"] == "127.0.0.1:1", name
        assert config["client.id"] == client_id, name
    assert built["AdminClient"]["socket.timeout.ms"] == 2000
    # a consumer without a group only reads assigned partitions and never commits
    assert built["Consumer"]["group.id"] == "probe-consumer-reader"
    assert built["Consumer"]["enable.auto.commit"] is False
    # the platform producer keeps its guarantees next to the security settings
    producer = built["Producer"]
    assert producer["acks"] == "all" and producer["enable.idempotence"] is True
    assert producer["delivery.timeout.ms"] == sasl_ssl.kafka_delivery_timeout_ms


def test_the_stack_admin_takes_security_from_settings_and_bootstrap_from_the_caller(
    sasl_ssl: Settings, built: dict[str, dict[str, Any]]
) -> None:
    kafka_stack._admin_client("127.0.0.1:2", 1.0, sasl_ssl)

    config = built["AdminClient"]
    assert _subset(config, SECURITY) == SECURITY
    assert config["bootstrap.servers"] == "127.0.0.1:2"
    assert config["client.id"] == kafka_stack.ADMIN_CLIENT_ID


class _Built(Exception):
    """Raised by the recording spy instead of building: the caller's configuration is enough."""


@pytest.mark.parametrize("reader", ["heartbeats", "liquidity-tail", "trader"])
def test_every_consumer_of_production_code_gets_the_security_settings(
    monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    from rtcrypto.cli.liquidity import tail_records
    from rtcrypto.supervision.heartbeats import read_recent
    from rtcrypto.trader.service import TraderService

    for name, value in {
        "RTC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "RTC_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "RTC_KAFKA_SASL_USERNAME": "rtc-user",
        "RTC_KAFKA_SASL_PASSWORD": PASSWORD,
        "RTC_KAFKA_SSL_CA_LOCATION": str(CA_BUNDLE),
    }.items():
        monkeypatch.setenv(name, value)
    seen: list[dict[str, Any]] = []

    def record(config: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        seen.append(dict(config))
        raise _Built

    monkeypatch.setattr(confluent_kafka, "Consumer", record)
    get_settings.cache_clear()
    try:
        with pytest.raises(_Built):
            if reader == "heartbeats":
                read_recent("127.0.0.1:3", "service.heartbeat.v1", timeout_s=0.5)
            elif reader == "liquidity-tail":
                tail_records(bootstrap="127.0.0.1:3", topic="liquidity.minute.v1")
            else:
                TraderService._consumer(SimpleNamespace(settings=get_settings()))  # type: ignore[arg-type]
    finally:
        get_settings.cache_clear()

    assert len(seen) == 1
    assert _subset(seen[0], SECURITY) == SECURITY
    if reader != "trader":  # the readers take the bootstrap they are given
        assert seen[0]["bootstrap.servers"] == "127.0.0.1:3"


def test_plaintext_adds_no_security_properties() -> None:
    settings = Settings()

    assert clients.security_config(settings) == {}
    assert clients.client_config(settings, "probe", acks="all") == {
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": "probe",
        "acks": "all",
    }
    assert clients.spark_kafka_options(settings) == {
        "kafka.bootstrap.servers": settings.kafka_bootstrap
    }


def test_ssl_without_sasl_sends_no_credentials() -> None:
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_ca_location=CA_BUNDLE)

    assert clients.security_config(settings) == {
        "security.protocol": "ssl",
        "ssl.ca.location": str(CA_BUNDLE),
    }


def test_spark_options_carry_the_same_security(sasl_ssl: Settings) -> None:
    options = clients.spark_kafka_options(sasl_ssl)

    assert options["kafka.bootstrap.servers"] == "127.0.0.1:1"
    assert options["kafka.security.protocol"] == "SASL_SSL"
    assert options["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert options["kafka.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="rtc-user" password="{PASSWORD}";'
    )
    assert options["kafka.ssl.truststore.type"] == "PEM"
    assert options["kafka.ssl.truststore.location"] == str(CA_BUNDLE)


def test_the_password_is_in_no_repr_and_no_log_line(
    sasl_ssl: Settings, built: dict[str, dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rtcrypto")
    made = [
        clients.admin_client(sasl_ssl, "probe-admin", **QUIET),
        clients.consumer(sasl_ssl, "probe-consumer", **QUIET),
        clients.producer(sasl_ssl, "probe-producer", **QUIET),
    ]

    assert len(caplog.records) == 3  # one debug line per client, with its redacted config
    assert all(clients.REDACTED in record.getMessage() for record in caplog.records)
    assert PASSWORD not in caplog.text
    for shown in (repr(sasl_ssl), str(sasl_ssl), *(repr(client) for client in made)):
        assert PASSWORD not in shown
    assert PASSWORD not in repr(clients.redacted(clients.spark_kafka_options(sasl_ssl)))
    assert PASSWORD in built["Producer"]["sasl.password"]  # ...but the client does get it


def test_sasl_without_credentials_is_refused_naming_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RTC_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("RTC_KAFKA_SASL_USERNAME", "rtc-user")
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError) as error:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert "RTC_KAFKA_SASL_USERNAME and RTC_KAFKA_SASL_PASSWORD" in str(error.value)


@pytest.mark.parametrize("value", ["kafka-python", "java"])
def test_the_retired_client_setting_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RTC_KAFKA_CLIENT", value)
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError) as error:
            get_settings()
    finally:
        get_settings.cache_clear()
    message = str(error.value)
    assert f"RTC_KAFKA_CLIENT={value!r} was removed" in message
    assert "unset RTC_KAFKA_CLIENT" in message


def test_the_retired_client_setting_naming_confluent_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RTC_KAFKA_CLIENT", "confluent")

    settings = Settings()  # accepted: it names what every client is

    assert "kafka_client" not in Settings.model_fields
    assert clients.security_config(settings) == {}


_STREAM_TOKENIZER_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}


def _jaas_unquoted(text: str) -> str:
    """Java's ``StreamTokenizer`` reading of one double-quoted JAAS value (Kafka's JaasConfig):
    a backslash escapes the next character, a raw quote or line end ends the value."""
    assert text[0] == '"' and text[-1] == '"'
    body, out, index = text[1:-1], [], 0
    while index < len(body):
        char = body[index]
        assert char not in '"\r\n', f"an unescaped {char!r} ends the value early"
        if char == "\\":
            index += 1
            char = _STREAM_TOKENIZER_ESCAPES.get(body[index], body[index])
        out.append(char)
        index += 1
    return "".join(out)


@given(st.text())
def test_any_password_survives_jaas_quoting(password: str) -> None:
    assert _jaas_unquoted(clients._jaas_quoted(password)) == password
