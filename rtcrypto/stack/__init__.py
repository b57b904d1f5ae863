"""The embedded local stack without Docker: jars from Maven Central, local processes, Kafka.

- :mod:`rtcrypto.stack.process`: generic detached process manager (pid files, logs, stop).
- :mod:`rtcrypto.stack.maven`: Java/Maven checks and jar sets resolved once into ``lib_dir``.
- :mod:`rtcrypto.stack.kafka`: one KRaft broker+controller, health, topics.
- :mod:`rtcrypto.stack.lifecycle`: start, stop and describe the whole local stack (``rtc stack``).
"""

from __future__ import annotations

from rtcrypto.stack.errors import (
    PortInUseError,
    ProcessAlreadyRunningError,
    ServiceStartError,
    StackError,
    ToolMissingError,
)
from rtcrypto.stack.kafka import (
    KAFKA_PROCESS,
    broker_healthy,
    delete_topics,
    ensure_topics,
    start_kafka,
    stop_kafka,
)
from rtcrypto.stack.maven import spark_kafka_jars
from rtcrypto.stack.process import (
    ProcessStatus,
    exclusive_lock,
    is_running,
    list_processes,
    log_path,
    port_in_use,
    process_status,
    start_process,
    stop_process,
)

__all__ = [
    "KAFKA_PROCESS",
    "PortInUseError",
    "ProcessAlreadyRunningError",
    "ProcessStatus",
    "ServiceStartError",
    "StackError",
    "ToolMissingError",
    "broker_healthy",
    "delete_topics",
    "ensure_topics",
    "exclusive_lock",
    "is_running",
    "list_processes",
    "log_path",
    "port_in_use",
    "process_status",
    "spark_kafka_jars",
    "start_kafka",
    "start_process",
    "stop_kafka",
    "stop_process",
]
