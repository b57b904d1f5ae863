"""What the Trade review page shows beside the trades: the supervisor's restarts (newest first,
from Elasticsearch), each service's current health as the supervisor judges it, and the current
forecast's version and publish metrics.

Restarts and health are about the platform's processes, so they are on the wall clock, not the
feed's (a replay's range is in the past). One reading of the health is reused for
``settings.review_health_cache_s`` seconds: a page refreshing every few seconds, or several open
pages, do not each read the heartbeat topic.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rtcrypto.search.client import SearchError

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from rtcrypto.config import Settings

log = logging.getLogger(__name__)

# Publish metrics the page shows (keys of the metadata's "backtest", see forecast.walkforward).
FORECAST_METRICS = (
    "minutes",
    "hit_rate",
    "return_pct",
    "pnl_usd",
    "buy_and_hold_return_pct",
    "random_return_pct_mean",
    "max_drawdown_pct",
    "trades",
    "taker_fee_pct",
)

_health_lock = threading.Lock()
_health_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}


def recent_restarts(client: Elasticsearch, settings: Settings) -> list[dict[str, Any]]:
    """The newest ``settings.review_restarts_shown`` restarts (ts_ms, service, reason, pid), the
    rows of the Kibana restarts table (:func:`rtcrypto.search.queries.restarts_table`)."""
    import elasticsearch

    from rtcrypto.search.queries import restarts_table

    try:
        rows = restarts_table(
            client, prefix=settings.search_index_prefix, size=settings.review_restarts_shown
        )
    except elasticsearch.ApiError as error:
        raise SearchError(f"Elasticsearch refused the search of restarts: {error}") from error
    return [
        {
            "ts_ms": int(
                datetime.fromisoformat(row["@timestamp"].replace("Z", "+00:00")).timestamp() * 1000
            ),
            "service": row.get("service"),
            "reason": row.get("reason"),
            "pid": row.get("pid"),
        }
        for row in rows
    ]


def current_health(settings: Settings) -> list[dict[str, Any]]:
    """Every registry service's verdict (``rtc status``'s columns plus ``service``), reused for
    ``review_health_cache_s`` seconds. A failure to judge is a row with state ``unknown``."""
    key = f"{settings.home}|{settings.kafka_bootstrap}"
    now = time.monotonic()
    with _health_lock:
        cached = _health_cache.get(key)
        if cached is not None and now - cached[0] < settings.review_health_cache_s:
            return cached[1]
        rows = _judge(settings)
        _health_cache[key] = (now, rows)
        return rows


def _judge(settings: Settings) -> list[dict[str, Any]]:
    from rtcrypto.supervision.health import check_all, describe_health

    try:
        verdicts = check_all(settings)
    except Exception as error:  # a health reading must not take the page down
        log.warning("trade review: the services' health could not be read: %s", error)
        return [{"service": "all", "state": "unknown", "reason": str(error)}]
    return [{"service": verdict.service, **describe_health(verdict)} for verdict in verdicts]


def current_forecast(settings: Settings) -> dict[str, Any]:
    """The current forecast's version, status, holdout and publish metrics (hit rate, P&L after
    fees, buy-and-hold, random baseline), or ``{"version": None, "note": why}``."""
    import json

    from rtcrypto.forecast.publish import VERSIONS_DIR, current_version, resolve_forecast_dir

    folder = resolve_forecast_dir(settings.forecast_dir)
    try:
        version = current_version(folder)
        if version is None:
            return {"version": None, "note": f"no current forecast in {folder}"}
        metadata = json.loads((folder / VERSIONS_DIR / version / "metadata.json").read_text())
    except (OSError, ValueError) as error:
        return {"version": None, "note": f"the current forecast could not be read: {error}"}
    backtest = metadata.get("backtest") or {}
    gate = metadata.get("gate") or {}
    return {
        "version": version,
        "status": metadata.get("status"),
        "holdout": metadata.get("holdout"),
        "gate_rule": gate.get("rule"),
        "gate_reason": gate.get("reason"),
        "metrics": {name: backtest.get(name) for name in FORECAST_METRICS},
        "note": "metrics on held-out data the model never saw; they describe that period only and claim no edge",
    }
