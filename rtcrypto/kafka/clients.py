"""The one place Kafka clients are built: bootstrap, client id and security settings.

Every Kafka client of the platform is confluent-kafka (librdkafka): the producer of ingest and
the trader (:mod:`rtcrypto.kafka.producers`), the trader's consumer, the supervisor's lag reads,
heartbeat reads, ``rtc liquidity tail`` and the stack's topic admin. ``client_config`` is the one
dictionary they all start from, so a secured cluster (``RTC_KAFKA_SECURITY_PROTOCOL``,
``RTC_KAFKA_SASL_*``, ``RTC_KAFKA_SSL_CA_LOCATION``) is one change of settings, not one edit
per client. ``spark_kafka_options`` gives the same settings to the Spark Kafka source and sink.

The SASL password is read from its ``SecretStr`` only here. It goes into the client's
configuration and nowhere else: log a configuration only through :func:`redacted`, and give
``spark_kafka_options`` to a Spark job through its environment, never its command line (argv is
readable by every user of the machine through ``ps``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rtcrypto.config import Settings

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient

log = logging.getLogger(__name__)

REDACTED = "**********"
# configuration keys whose values are secrets (librdkafka's and Spark's Kafka options)
SECRET_KEYS = frozenset(
    {"sasl.password", "ssl.key.password", "kafka.sasl.jaas.config", "kafka.ssl.key.password"}
)
QUIET_LOG_LEVEL = 0  # librdkafka's log_level for a client whose errors all reach its caller
_PLAIN_LOGIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"


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
    """The base configuration of every client: bootstrap servers, client id, security.

    ``overrides`` are librdkafka properties (``acks``, ``group.id``, ...); they win."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": client_id,
        **security_config(settings),
    }
    config.update(overrides)
    return config


def redacted(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with every secret value (:data:`SECRET_KEYS`) replaced: the only form to log."""
    return {key: REDACTED if key in SECRET_KEYS else value for key, value in config.items()}


def admin_client(
    settings: Settings, client_id: str, timeout_s: float = 5.0, **overrides: Any
) -> AdminClient:
    """An ``AdminClient`` whose requests give up after ``timeout_s`` s (building it sends nothing)."""
    from confluent_kafka.admin import AdminClient

    config = client_config(
        settings, client_id, **{"socket.timeout.ms": int(timeout_s * 1000), **overrides}
    )
    log.debug("kafka admin client %s", redacted(config))
    return AdminClient(config)


def consumer(settings: Settings, client_id: str, **overrides: Any) -> Consumer:
    """A ``Consumer``; pass ``group.id`` and offsets behaviour as ``overrides`` (librdkafka keys).

    Without a ``group.id`` the consumer is meant for ``assign`` only: librdkafka needs a group
    name, ``<client_id>-reader``, but nothing joins or commits to it (auto commit is off)."""
    from confluent_kafka import Consumer

    config = client_config(settings, client_id, **overrides)
    config.setdefault("group.id", f"{client_id}-reader")
    config.setdefault("enable.auto.commit", False)
    log.debug("kafka consumer %s", redacted(config))
    return Consumer(config)


def producer(settings: Settings, client_id: str, **overrides: Any) -> Producer:
    """A ``Producer`` with the given librdkafka ``overrides`` (acks, batching, compression)."""
    from confluent_kafka import Producer

    config = client_config(settings, client_id, **overrides)
    log.debug("kafka producer %s", redacted(config))
    return Producer(config)


def _jaas_quoted(value: str) -> str:
    """``value`` as a double-quoted JAAS option value: backslash, quote and line ends escaped
    (Kafka reads it with Java's ``StreamTokenizer``, where a raw line end ends the value)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r") + '"'


def spark_kafka_options(settings: Settings) -> dict[str, str]:
    """Options of Spark's Kafka source and sink (``kafka.``-prefixed Kafka client properties).

    With SASL the options hold the password (``kafka.sasl.jaas.config``): build them inside the
    job from its own Settings (environment), never pass them on a command line."""
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
        module = _PLAIN_LOGIN if settings.kafka_sasl_mechanism == "PLAIN" else _SCRAM_LOGIN
        options["kafka.sasl.jaas.config"] = (
            f"{module} required username={_jaas_quoted(user)} password={_jaas_quoted(password)};"
        )
    if settings.kafka_ssl_ca_location is not None and protocol.endswith("SSL"):
        options["kafka.ssl.truststore.type"] = "PEM"
        options["kafka.ssl.truststore.location"] = str(settings.kafka_ssl_ca_location)
    return options
