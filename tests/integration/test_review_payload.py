"""The Trade review page's JSON (rtcrypto.review.page_payload) against the real local
Elasticsearch node: the same documents as ``rtc report``'s tests (a real Ledger's two round trips,
tests/trade_documents.py) under a unique prefix, and a forecast folder with two versions.

The page must show exactly what the report states (one place builds the series: both render
rtcrypto.report.data.review_data), the forecast line of the version that decided the orders as
well as the current one, the orders table with the ledger's exact figures, and the supervisor's
restarts. The services' health is read as the supervisor reads it (nothing runs here: no service
is healthy).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from rtcrypto.config import Settings
from rtcrypto.report import build_report
from rtcrypto.report.clock import ReviewClock
from rtcrypto.report.model import MINUTE_MS
from rtcrypto.review import page_payload, parse_request
from rtcrypto.search import documents
from rtcrypto.supervision import SERVICES
from tests.helpers import free_port
from tests.trade_documents import (
    FORECAST_VERSION,
    MINUTES,
    index_actions,
    publish_test_forecast,
    trade_scenario,
)

pytestmark = pytest.mark.integration

START_MS = int(datetime(2026, 11, 20, 10, 0, tzinfo=UTC).timestamp() * 1000)
END_MS = START_MS + MINUTES * MINUTE_MS
NEWER_VERSION = "20261128T000000Z-newernew"


def iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat()


def two_versions(forecast_dir: Path) -> None:
    """FORECAST_VERSION decided the orders; NEWER_VERSION (a copy) is current now."""
    publish_test_forecast(forecast_dir, START_MS, MINUTES)
    versions = forecast_dir / "versions"
    shutil.copytree(versions / FORECAST_VERSION, versions / NEWER_VERSION)
    (versions / NEWER_VERSION / "metadata.json").write_text(
        json.dumps(
            {
                "version": NEWER_VERSION,
                "status": "current",
                "backtest": {"hit_rate": 0.51, "return_pct": -1.5, "pnl_usd": "-150.25"},
                "gate": {"rule": "not_worse"},
            }
        )
    )
    (forecast_dir / "current").write_text(NEWER_VERSION + "\n")


def test_the_page_shows_what_the_report_states_with_each_versions_forecast(
    client: Elasticsearch, prefix: str, tmp_path: Path, search_node: str
) -> None:
    paper = trade_scenario(START_MS, mode="paper", prefix=prefix, order_prefix="pg")
    sandbox = trade_scenario(START_MS, mode="sandbox", prefix=prefix, order_prefix="sb")
    restart = documents.restart_document(
        "ingest", START_MS + 5 * MINUTE_MS, reason="dead: no heartbeat", pid=4242, prefix=prefix
    )
    index_actions(client, paper.actions + sandbox.actions + [restart])
    forecast_dir = tmp_path / "forecast"
    two_versions(forecast_dir)
    settings = Settings(
        home=tmp_path / "rtc",
        search_url=search_node,
        search_index_prefix=prefix,
        forecast_dir=forecast_dir,
        feed="live",
        report_durations="feed",
        kafka_bootstrap=f"127.0.0.1:{free_port()}",  # no broker: health is judged without one
    )
    clock = ReviewClock(END_MS + 60_000, 0, "wall", "feed clock: test")
    request = parse_request(
        settings,
        client,
        since=iso(START_MS),
        until=iso(END_MS),
        symbol=None,
        mode="paper",
        clock=clock,
    )

    payload = json.loads(json.dumps(page_payload(settings, client, request)))  # JSON as served

    ledger = paper.ledger
    summary = payload["summary"]
    assert (summary["trades"], summary["buys"], summary["sells"]) == (4, 2, 2)
    assert Decimal(summary["realised_pnl_usd"]) == ledger.realised_pnl_usd
    assert Decimal(summary["fees_paid_usd"]) == ledger.fees_paid_usd
    assert payload["pnl"][-1][1] == pytest.approx(float(ledger.realised_pnl_usd))
    assert [m[0] for m in payload["buys"]] == [
        f.ts_event_ms for f in ledger.fills if f.side == "buy"
    ]
    assert len(payload["sells"]) == 2 and len(payload["ratios"]) == MINUTES
    assert payload["ratio_band"] == [
        float(settings.liquidity_ratio_low),
        float(settings.liquidity_ratio_high),
    ]
    assert payload["range"] == {
        "start_ms": START_MS,
        "end_ms": END_MS,
        "now_ms": END_MS + 60_000,
        "live": False,
        "clock": "feed clock: test",
        "forecast_offset_ms": 0,
    }

    rows = payload["orders"]
    assert [row["client_order_id"] for row in rows] == [
        f"pg-paper-{i}-{side}" for i, side in enumerate(("buy", "sell", "buy", "sell"))
    ]
    assert [Decimal(row["fee_usd"]) for row in rows] == [fill.fee_usd for fill in ledger.fills]
    assert {row["forecast_version"] for row in rows} == {FORECAST_VERSION}
    assert {row["mode"] for row in rows} == {"paper"}  # the sandbox orders are filtered out

    lines = {line["version"]: line for line in payload["forecasts"]}
    assert set(lines) == {NEWER_VERSION, FORECAST_VERSION}  # current, and the one that traded
    assert payload["forecasts"][0]["version"] == NEWER_VERSION
    for line in lines.values():
        assert len(line["points"]) == MINUTES
        price, lower, upper = line["points"][0][1:]
        assert lower < price < upper

    assert payload["restarts"] == [
        {
            "ts_ms": START_MS + 5 * MINUTE_MS,
            "service": "ingest",
            "reason": "dead: no heartbeat",
            "pid": 4242,
        }
    ]
    health = {row["service"]: row["state"] for row in payload["health"]}
    assert set(health) == {spec.name for spec in SERVICES}
    assert "healthy" not in health.values()
    assert payload["forecast"]["version"] == NEWER_VERSION
    assert payload["forecast"]["metrics"]["hit_rate"] == 0.51

    report = build_report(
        client,
        start_ms=START_MS,
        end_ms=END_MS,
        prefix=prefix,
        forecast_dir=forecast_dir,
        out_dir=tmp_path / "report",
        mode="paper",
        symbol="BTCUSD",
        clock="feed clock: test",
    )
    assert report.summary.as_dict() == summary  # one place builds the series, two render them
