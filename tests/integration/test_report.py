"""The trade review report against the real local Elasticsearch node (``search_node``).

Documents come from a real ``Ledger`` round-trip scenario built with ``rtcrypto.search.documents``
and are indexed under a unique prefix (templates from ``ensure_templates``, so the strict
mappings apply); the report must state exactly the ledger's figures.
"""

from __future__ import annotations

import json
import struct
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from typer.testing import CliRunner

from rtcrypto.cli.main import app
from rtcrypto.config import get_settings
from rtcrypto.report import build_report
from rtcrypto.report.fetch import fetch_report_rows, fetch_rows
from rtcrypto.report.model import MINUTE_MS, iso_minute
from rtcrypto.report.series import cumulative_pnl, liquidity_ratio_per_minute
from rtcrypto.search import queries
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
DAY_MS = 86_400_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; fails unless the file is a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_report_states_the_ledgers_pnl_and_trade_count(
    client: Elasticsearch, prefix: str, tmp_path: Path
) -> None:
    paper = trade_scenario(START_MS, mode="paper", prefix=prefix, order_prefix="in")
    sandbox = trade_scenario(START_MS, mode="sandbox", prefix=prefix, order_prefix="sb")
    day_before = trade_scenario(START_MS - DAY_MS, mode="paper", prefix=prefix, order_prefix="old")
    index_actions(client, paper.actions + sandbox.actions + day_before.actions)
    forecast_dir = tmp_path / "forecast"
    publish_test_forecast(forecast_dir, START_MS, MINUTES)

    result = build_report(
        client,
        start_ms=START_MS,
        end_ms=END_MS,
        prefix=prefix,
        forecast_dir=forecast_dir,
        out_dir=tmp_path / "report",
        mode="paper",
    )

    ledger = paper.ledger
    page = result.html_path.read_text()
    assert format(ledger.realised_pnl_usd, "f") in page  # the exact Decimal, as the ledger has it
    assert format(ledger.fees_paid_usd, "f") in page
    assert f"<tr><th>Trades (fills)</th><td>{len(ledger.fills)}</td></tr>" in page
    assert f"<tr><th>Round trips</th><td>{len(ledger.round_trips)}</td></tr>" in page
    assert "data:image/png;base64," in page and "<script" not in page  # self-contained
    for action in paper.actions:
        if action.index == f"{prefix}-orders":
            assert action.id in page
    assert "sb-sandbox" not in page and "old-paper" not in page  # other mode, other day

    summary = result.summary
    assert summary.trades == len(ledger.fills) == 4
    assert summary.round_trips == 2 and summary.hit_rate == 0.5
    assert summary.realised_pnl_usd == ledger.realised_pnl_usd
    assert summary.fees_paid_usd == ledger.fees_paid_usd
    assert summary.forecast.version == FORECAST_VERSION
    assert summary.forecast.minutes_compared == MINUTES
    assert summary.forecast.mean_abs_error_pct == pytest.approx(0.1, abs=1e-3)

    width, height = png_size(result.png_path)
    assert result.png_path.stat().st_size > 10_000 and (width, height) == (1100, 1200)
    saved = json.loads(result.json_path.read_text())
    assert Decimal(saved["realised_pnl_usd"]) == ledger.realised_pnl_usd
    assert saved["trades"] == 4


def test_a_range_without_documents_gives_a_no_trades_report(
    client: Elasticsearch, prefix: str, tmp_path: Path
) -> None:
    index_actions(client, trade_scenario(START_MS, prefix=prefix).actions)

    result = build_report(
        client,
        start_ms=START_MS - 30 * DAY_MS,
        end_ms=START_MS - 29 * DAY_MS,
        prefix=prefix,
        forecast_dir=tmp_path / "no-forecast-here",
        out_dir=tmp_path / "empty",
    )

    page = result.html_path.read_text()
    assert "No trades in this range." in page
    assert "No orders in this range." in page
    assert "no current forecast" in page
    assert result.summary.empty and result.summary.trades == 0
    assert png_size(result.png_path) == (1100, 1200)


def test_indices_that_do_not_exist_give_an_empty_report(
    client: Elasticsearch, tmp_path: Path
) -> None:
    result = build_report(
        client,
        start_ms=START_MS,
        end_ms=END_MS,
        prefix=f"rtcreportnone{uuid.uuid4().hex[:8]}",
        forecast_dir=tmp_path,
        out_dir=tmp_path / "none",
    )
    assert result.summary.empty
    assert "No trades in this range." in result.html_path.read_text()


def test_search_after_pages_return_every_document_once(client: Elasticsearch, prefix: str) -> None:
    scenario = trade_scenario(START_MS, prefix=prefix)
    index_actions(client, scenario.actions)
    arguments = {"start_ms": START_MS, "end_ms": END_MS, "prefix": prefix}

    for kind in ("ticker", "fills", "orders"):
        whole = fetch_rows(client, kind, **arguments)
        paged = fetch_rows(client, kind, page_size=3, **arguments)
        expected = [a.source for a in scenario.actions if a.index == f"{prefix}-{kind}"]
        assert paged == whole
        assert len(whole) == len(expected)
        assert sorted(json.dumps(row, sort_keys=True) for row in whole) == sorted(
            json.dumps(row, sort_keys=True) for row in expected
        )
    ticker = fetch_rows(client, "ticker", **arguments)
    assert [row["ts_ms"] for row in ticker] == sorted(row["ts_ms"] for row in ticker)


def test_rtc_report_prints_the_paths_and_the_summary(
    client: Elasticsearch, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = trade_scenario(START_MS, prefix=prefix)
    index_actions(client, scenario.actions)
    forecast_dir = tmp_path / "forecast"
    publish_test_forecast(forecast_dir, START_MS, MINUTES)
    monkeypatch.setenv("RTC_SEARCH_INDEX_PREFIX", prefix)
    monkeypatch.setenv("RTC_FORECAST_DIR", str(forecast_dir))
    monkeypatch.setenv("RTC_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    try:
        until = datetime.fromtimestamp(END_MS / 1000, UTC).isoformat()
        outcome = CliRunner().invoke(
            app, ["report", "--since", "25m", "--until", until, "--mode", "paper"]
        )
    finally:
        get_settings.cache_clear()

    assert outcome.exit_code == 0, outcome.output
    folder = tmp_path / "home" / "reports" / "2026-11-20"
    assert f"html: {folder / 'report.html'}" in outcome.output
    assert f"png:  {folder / 'report.png'}" in outcome.output
    assert f"range: {iso_minute(START_MS)} .. {iso_minute(END_MS)} UTC" in outcome.output
    assert "trades (fills): 4 (2 buys, 2 sells)" in outcome.output
    assert f"exact {format(scenario.ledger.realised_pnl_usd, 'f')}" in outcome.output
    assert (folder / "report.html").is_file() and png_size(folder / "report.png")


def test_rtc_report_refuses_an_unknown_mode_with_the_choices(
    search_node: str, tmp_path: Path
) -> None:
    outcome = CliRunner().invoke(
        app, ["report", "--since", "1h", "--mode", "dreams", "--out", str(tmp_path)]
    )
    assert outcome.exit_code == 1
    assert "mode must be one of ['live', 'paper', 'sandbox']" in outcome.output


def test_the_review_and_the_kibana_queries_agree_on_the_same_documents(
    client: Elasticsearch, prefix: str
) -> None:
    paper = trade_scenario(START_MS, mode="paper", prefix=prefix, order_prefix="in")
    sandbox = trade_scenario(START_MS, mode="sandbox", prefix=prefix, order_prefix="sb")
    index_actions(client, paper.actions + sandbox.actions)
    window = {"since_ms": START_MS, "until_ms": END_MS}
    rows = fetch_report_rows(
        client, start_ms=START_MS, end_ms=END_MS, prefix=prefix, mode="paper", symbol="BTCUSD"
    )

    review_pnl = cumulative_pnl(rows.scores)[-1].cumulative_pnl_usd
    assert review_pnl == paper.ledger.realised_pnl_usd
    chart_pnl = queries.cumulative_profit(
        client, prefix=prefix, interval="1m", trading_mode="paper", **window
    )
    assert chart_pnl[-1][1] == pytest.approx(float(review_pnl), abs=1e-6)

    chart_ratios = queries.liquidity_ratio_series(
        client, prefix=prefix, interval="1m", symbol="BTCUSD", **window
    )
    review_ratios = liquidity_ratio_per_minute(rows.liquidity)
    assert len(review_ratios) == MINUTES
    assert [(p.minute_ms, pytest.approx(p.value)) for p in review_ratios] == chart_ratios

    table = queries.orders_table(
        client, prefix=prefix, size=100, trading_mode="paper", since_ms=START_MS
    )
    assert sorted(row["client_order_id"] for row in table) == sorted(
        row["client_order_id"] for row in rows.orders
    )
