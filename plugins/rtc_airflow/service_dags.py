"""What the two manual service DAGs (``streaming_start``, ``streaming_stop``) share: their DAG
arguments and the ``services`` param (names from the registry, ``rtcrypto/supervision/registry.py``;
the DAG's first task checks them against it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "rtcrypto",
    "retries": 1,
    "retry_delay": timedelta(seconds=30),
}

# manual, one run at a time, never back-filled
MANUAL_SERVICE_DAG: dict[str, Any] = {
    "schedule": None,
    "start_date": datetime(2026, 1, 1, tzinfo=UTC),
    "catchup": False,
    "max_active_runs": 1,
    "default_args": DEFAULT_ARGS,
    "tags": ["rtcrypto", "streaming", "manual"],
}


def services_param() -> dict[str, Param]:
    """The ``services`` param: registry names, at most 16, each once; empty means all."""
    return {
        "services": Param(
            [],
            type="array",
            items={"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$"},
            maxItems=16,
            uniqueItems=True,
            title="Services",
            description="simulator, ingest, liquidity, trader; empty: all.",
        ),
    }
