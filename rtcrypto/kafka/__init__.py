"""Kafka clients of the platform: one factory per client kind, one library, one place for security.

``clients`` builds every Kafka client of production code on confluent-kafka (librdkafka):
``admin_client``, ``consumer`` and ``producer`` start from ``client_config`` (bootstrap, client id
and the ``RTC_KAFKA_SECURITY_PROTOCOL`` / ``RTC_KAFKA_SASL_*`` / ``RTC_KAFKA_SSL_CA_LOCATION``
settings), and ``spark_kafka_options`` gives the same settings to Spark's Kafka source and sink.
``producers`` is the services' record producer (acks=all, idempotent, batched; a delivery that
times out stops the process with exit 75). Nothing else builds a Kafka client, and kafka-python is
not used (tests/unit/test_kafka_client_boundary.py). This package may import only the root
utilities (``rtcrypto.config``, ``logs``, ``redact``, ``bounded``), ``market`` and ``trading``;
the services, ``stack``, ``supervision``, the CLI and the DAGs import it, never the reverse.
"""
