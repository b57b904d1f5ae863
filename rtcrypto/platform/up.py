"""``rtc up``: the whole platform on one machine, without Docker.

Kafka, Elasticsearch and Airflow (:mod:`rtcrypto.stack.lifecycle`), the preparation
(:mod:`rtcrypto.platform.prepare`), then every enabled streaming service of the registry
(``rtcrypto/supervision/registry.py``) as a managed background process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rtcrypto import supervision as services
from rtcrypto.config import Settings
from rtcrypto.platform.prepare import StepStarted, prepare
from rtcrypto.stack import lifecycle, process

Progress = Callable[[str], None]  # receives one line of text per step

# Airflow starts in the background: the streaming services come first (the cluster topology
# waits for its Celery workers). The health waits allow for a loaded two-core machine.
UP_STACK = lifecycle.StackOptions(
    kafka_timeout_s=120.0,
    with_search=True,
    search_timeout_s=180.0,
    with_airflow=True,
    airflow_timeout_s=300.0,
    airflow_wait=False,
)


@dataclass(frozen=True)
class UpOptions:
    """What ``rtc up`` does besides starting the stack and the services."""

    prepare: bool = True  # history, forecast, indices (each a no-op when already done)


def up(
    settings: Settings,
    options: UpOptions,
    progress: Progress,
    step_started: StepStarted | None = None,
) -> None:
    """Start the local stack, prepare (unless ``options.prepare`` is False) and start every
    enabled streaming service, reporting each step to ``progress`` (``step_started`` hears each
    preparation step's label as it begins).

    Raises ``StackError``, ``BootstrapError``, ``SearchError`` or ``KibanaError`` with a message
    naming what to fix; what was started before stays running (``rtc down`` stops it)."""
    lifecycle.start_stack(settings, UP_STACK, progress)
    if options.prepare:
        prepare(settings, progress, step_started)
    start_services(settings, progress)


def start_services(settings: Settings, progress: Progress) -> None:
    """Every enabled service of the registry (``rtcrypto/supervision/registry.py``), in order,
    each once; a disabled one reports why.

    The same start path as Airflow's ``streaming_start`` DAG and the supervisor's restarts.
    """
    for spec in services.service_specs(settings):
        if not spec.enabled(settings):
            label = "feed" if spec.name == services.SIMULATOR else spec.name
            progress(f"{label:<9} {spec.disabled_reason(settings)}")
            continue
        name = spec.name
        if process.is_running(name, settings):
            progress(f"{name:<9} already running (pid {process.read_pid(name, settings)})")
            continue
        pid = services.start_service(spec, settings)
        progress(f"{name:<9} started (pid {pid}), log {process.log_path(name, settings)}")
