"""The one place Kafka clients are configured: bootstrap, client id and security settings.

Every client of the platform is confluent-kafka (librdkafka): the producer of ingest
(:mod:`rtcrypto.kafka.producers`), the trader's consumer, the supervisor's lag reads, heartbeat
reads, ``rtc liquidity tail`` and the stack's topic admin. ``client_config`` is the one
dictionary they all start from, so a secured cluster (``RTC_KAFKA_SECURITY_PROTOCOL``,
``RTC_KAFKA_SASL_*``, ``RTC_KAFKA_SSL_CA_LOCATION``) is one change of settings, not one edit
per client. ``spark_kafka_options`` gives the same settings to the Spark Kafka source and sink.
The SASL password is read from its ``SecretStr`` only here, and never logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rtcrypto.config import Settings

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient


def security_config(settings: Settings) -> dict[str, str]:
    """librdkafka's security properties for ``settings`` ({} on a PLAINTEXT cluster)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    config = {"security.protocol": protocol.lower()}
    if protocol.startswith("SASL"):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        if settings.kafka_sasl_username is not None:
            config["sasl.username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_ca_location is not None and protocol.endswith("SSL"):
        config["ssl.ca.location"] = str(settings.kafka_ssl_ca_location)
    return config


def client_config(settings: Settings, client_id: str, **overrides: Any) -> dict[str, Any]:
    """The base configuration of every client: bootstrap servers, client id, security."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": client_id,
        **security_config(settings),
    }
    config.update(overrides)
    return config


def admin_client(settings: Settings, client_id: str, timeout_s: float = 5.0) -> AdminClient:
    """An ``AdminClient`` (connects lazily: building it sends nothing)."""
    from confluent_kafka.admin import AdminClient

    return AdminClient(
        client_config(settings, client_id, **{"socket.timeout.ms": int(timeout_s * 1000)})
    )


def consumer(settings: Settings, client_id: str, **overrides: Any) -> Consumer:
    """A ``Consumer``; pass ``group.id`` and offsets behaviour as ``overrides`` (librdkafka keys).

    Without a ``group.id`` the consumer is meant for ``assign`` only and never commits.
    """
    from confluent_kafka import Consumer

    config = client_config(settings, client_id, **overrides)
    config.setdefault("group.id", f"{client_id}-reader")
    config.setdefault("enable.auto.commit", False)
    return Consumer(config)


def producer(settings: Settings, client_id: str, **overrides: Any) -> Producer:
    """A ``Producer`` with the given librdkafka ``overrides`` (acks, batching, compression)."""
    from confluent_kafka import Producer

    return Producer(client_config(settings, client_id, **overrides))


def spark_kafka_options(settings: Settings) -> dict[str, str]:
    """Options of Spark's Kafka source and sink (``kafka.``-prefixed Kafka client properties)."""
    options = {"kafka.bootstrap.servers": settings.kafka_bootstrap}
    protocol = settings.kafka_security_protocol
    if protocol != "PLAINTEXT":
        options["kafka.security.protocol"] = protocol
    if protocol.startswith("SASL"):
        options["kafka.sasl.mechanism"] = settings.kafka_sasl_mechanism
        user = settings.kafka_sasl_username or ""
        password = (
            settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        )
        module = (
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            if settings.kafka_sasl_mechanism == "PLAIN"
            else "org.apache.kafka.common.security.scram.ScramLoginModule"
        )
        options["kafka.sasl.jaas.config"] = (
            f'{module} required username="{user}" password="{password}";'
        )
    if settings.kafka_ssl_ca_location is not None and protocol.endswith("SSL"):
        options["kafka.ssl.truststore.type"] = "PEM"
        options["kafka.ssl.truststore.location"] = str(settings.kafka_ssl_ca_location)
    return options
