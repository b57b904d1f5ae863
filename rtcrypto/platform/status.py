"""``rtc status``: the managed processes, what the simulator replays, and each streaming
service's health as the supervisor judges it (state, heartbeat age, lag, restarts, pid), as
lines of text produced one by one (each may wait on Kafka or an HTTP answer)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rtcrypto import supervision as services
from rtcrypto.config import Settings
from rtcrypto.kaggle_credentials import history_download_schedule_note
from rtcrypto.platform.summary import describe_feed, replay_progress
from rtcrypto.spark import ui as spark_ui
from rtcrypto.stack import lifecycle


def status_lines(settings: Settings) -> Iterator[str]:
    """Every line of ``rtc status``, in order."""
    yield from lifecycle.stack_status(settings)
    yield f"market: {describe_feed(settings)}"
    yield spark_ui.ui_status(settings)
    progress = replay_progress(settings)
    if progress:
        yield f"        {progress}"
    yield history_download_schedule_note(os.environ, Path.home())
    latest = services.read_latest_heartbeats(settings)
    yield from service_lines(settings, latest)
    yield from heartbeat_lines(settings, latest)


def service_lines(
    settings: Settings, heartbeats: dict[str, dict[str, Any]] | None
) -> Iterator[str]:
    """Per streaming service: the supervisor's verdict, heartbeat age, lag, restarts and pid."""
    admin = services.kafka_admin(settings) if heartbeats is not None else None
    restarts = services.restart_counts(services.read_journal(settings))
    yield f"services (the supervisor's view; restarts from {services.journal_path(settings)}):"
    yield f"  {'NAME':<10} {'STATE':<8} {'HEARTBEAT':<10} {'LAG':<22} {'RESTARTS':>8} {'PID':>8}  REASON"
    for spec in services.service_specs(settings):
        if not spec.enabled(settings):
            yield (
                f"  {spec.name:<10} {'-':<8} {'-':<10} {'-':<22} {'-':>8} {'-':>8}  "
                f"{spec.disabled_reason(settings)}"
            )
            continue
        health = services.judge_health(
            services.observe(spec, settings, heartbeats=heartbeats, admin=admin),
            services.health_policy(spec, settings),
        )
        row = services.describe_health(health)
        yield (
            f"  {spec.name:<10} {row['state']:<8} {row['heartbeat']:<10} {row['lag']:<22} "
            f"{restarts.get(spec.name, 0):>8} {row['pid']:>8}  {row['reason']}"
        )


def heartbeat_lines(settings: Settings, latest: dict[str, dict[str, Any]] | None) -> Iterator[str]:
    """The newest heartbeat of each service on ``service.heartbeat.v1``; ``latest`` is what
    :func:`rtcrypto.supervision.read_latest_heartbeats` returned (None: Kafka does not
    answer)."""
    from rtcrypto.supervision.heartbeats import describe

    if latest is None:
        yield f"heartbeats: Kafka at {settings.kafka_bootstrap} does not answer"
        return
    if not latest:
        yield f"heartbeats: none on {settings.topics.heartbeat} yet"
        return
    now_ms = time.time_ns() // 1_000_000
    yield f"heartbeats ({settings.topics.heartbeat}):"
    for service, beat in sorted(latest.items()):
        yield f"  {service:<16} {describe(beat, now_ms)}"
