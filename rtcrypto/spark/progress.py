"""The liquidity job's progress log: what its two queries (``liquidity``, ``deadletter``) did.

``log_progress`` reads each query's new progress reports once: the first batch, each batch that
wrote windows or dead letters, and a summary every interval; ``ProgressLog`` keeps the counts the
job's heartbeat reports (input rows, dead letters, watermark).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql.streaming.query import StreamingQuery

from rtcrypto.spark.driver import watermark_ms


@dataclass(slots=True)
class ProgressLog:
    """Remembers what was logged so each batch that wrote windows is logged once."""

    started_at: float
    last_batch: dict[str, int] = field(default_factory=dict)
    first_batch_logged: bool = False
    last_summary_at: float = 0.0
    input_rows: int = 0  # change/tick/depth records read by the liquidity query so far
    dead_letters: int = 0
    watermark_ms: int | None = None


def log_progress(
    queries: Sequence[StreamingQuery], state: ProgressLog, interval_s: float, log: logging.Logger
) -> None:
    """Log the first batch, every batch that wrote windows, and a summary every ``interval_s``."""
    now = time.monotonic()
    for query in queries:
        name = query.name or str(query.id)
        for progress in query.recentProgress:
            batch_id = int(progress["batchId"])
            if batch_id <= state.last_batch.get(name, -1):
                continue
            state.last_batch[name] = batch_id
            log_batch(name, progress, state, log)
    if now - state.last_summary_at >= interval_s:
        state.last_summary_at = now
        for query in queries:
            latest = query.lastProgress
            if latest:
                log_summary(query.name or str(query.id), latest, log)


def state_metric(progress: dict[str, Any], metric: str) -> int:
    """The sum of ``metric`` over the report's stateful operators."""
    return sum(int(operator.get(metric, 0)) for operator in progress.get("stateOperators", []))


def log_batch(name: str, progress: dict[str, Any], state: ProgressLog, log: logging.Logger) -> None:
    """Fold one new progress report of query ``name`` into ``state`` and log what it wrote."""
    output_rows = int(progress.get("sink", {}).get("numOutputRows", 0) or 0)
    if name == "liquidity":
        state.input_rows += int(progress.get("numInputRows") or 0)
        state.watermark_ms = watermark_ms(progress) or state.watermark_ms
    elif name == "deadletter":
        state.dead_letters += output_rows
    if name == "liquidity" and not state.first_batch_logged:
        state.first_batch_logged = True
        log.info(
            "first batch done query=%s batch=%s input_rows=%s startup_s=%.1f",
            name,
            progress["batchId"],
            progress.get("numInputRows"),
            time.monotonic() - state.started_at,
        )
    if name == "liquidity" and output_rows > 0:
        log.info(
            "windows written batch=%s windows=%s watermark=%s",
            progress["batchId"],
            output_rows,
            progress.get("eventTime", {}).get("watermark"),
        )
    elif name == "deadletter" and output_rows > 0:
        log.warning("dead letters written batch=%s records=%s", progress["batchId"], output_rows)


def log_summary(name: str, progress: dict[str, Any], log: logging.Logger) -> None:
    """One line per query: rates, trigger time, watermark and state size."""
    log.info(
        "progress query=%s batch=%s input_rows=%s input_per_s=%.1f processed_per_s=%.1f "
        "trigger_ms=%s watermark=%s state_rows=%s dropped_late=%s",
        name,
        progress.get("batchId"),
        progress.get("numInputRows"),
        float(progress.get("inputRowsPerSecond") or 0.0),
        float(progress.get("processedRowsPerSecond") or 0.0),
        progress.get("durationMs", {}).get("triggerExecution"),
        progress.get("eventTime", {}).get("watermark"),
        state_metric(progress, "numRowsTotal"),
        state_metric(progress, "numRowsDroppedByWatermark"),
    )
