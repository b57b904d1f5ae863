"""The query bodies behind the Kibana charts and tables that mirror the Trade review page, run on
the real Elasticsearch node: forecast price per version, buys and sells, equity, depth imbalance,
restarts and heartbeats (the first four charts and the orders table are in
test_search_indexing.py). Kibana itself cannot run here; tests/unit/test_kibana_objects.py ties
each saved object to its body, this module checks what the bodies return.

Data: real minute bars (the shared Binance BTCUSDT file) traded through a real Ledger, per-minute
liquidity recomputed from the real Gemini capture, documents built by rtcrypto.search.documents.
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from rtcrypto.search import documents as docs
from rtcrypto.search import queries
from rtcrypto.search.documents import SearchAction
from rtcrypto.search.writer import SearchWriter
from tests.integration.test_search_indexing import (
    LIQUIDITY_SYMBOLS,
    MODE,
    VERSION,
    _bars,
    _liquidity_records,
    _trade,
    _with_prefix,
)

pytestmark = pytest.mark.integration

OTHER_VERSION = "test-v2"  # a second forecast version over the same minutes
MINUTE_MS = 60_000


def _index_all(
    client: Elasticsearch, prefix: str, actions: list[SearchAction], tmp_path: Path
) -> None:
    with SearchWriter(client, spool_dir=tmp_path, name="charts", batch_size=500) as writer:
        writer.add_many(actions)
        assert writer.flush(timeout_s=60)
        assert writer.stats().indexed == len(actions)
    client.indices.refresh(index=f"{prefix}-*")


def test_forecast_versions_are_separate_series_never_averaged(
    client: Elasticsearch, prefix: str, tmp_path: Path
) -> None:
    """Two versions forecast the same minutes (one exp(log close), one exp(log open)); each
    series holds its own version's price, which the averaged price chart cannot show."""
    bars = _bars(60)
    actions = []
    for row in bars.itertuples():
        for version, price in ((VERSION, row.close), (OTHER_VERSION, row.open)):
            log_price = math.log(float(price))
            actions.append(
                docs.forecast_document(
                    version,
                    int(row.ts_ms),
                    log_price,
                    log_price - 0.01,
                    log_price + 0.01,
                    "buy",
                    prefix=prefix,
                )
            )
    _index_all(client, prefix, actions, tmp_path)

    start, end = int(bars.ts_ms.iloc[0]), int(bars.ts_ms.iloc[-1]) + MINUTE_MS
    series = queries.forecast_by_version(client, prefix=prefix, since_ms=start, until_ms=end)
    assert set(series) == {VERSION, OTHER_VERSION}
    expected = {
        VERSION: {int(row.ts_ms): row.close for row in bars.itertuples()},
        OTHER_VERSION: {int(row.ts_ms): row.open for row in bars.itertuples()},
    }
    for version, points in series.items():
        assert [ts for ts, _ in points] == sorted(expected[version])
        for ts, price in points:
            assert price == pytest.approx(expected[version][ts], rel=1e-9), (version, ts)
    assert any(row.open != row.close for row in bars.itertuples())  # the versions differ


def test_buys_sells_and_equity_follow_the_ledger(
    client: Elasticsearch, prefix: str, tmp_path: Path
) -> None:
    """Fill prices per side and equity (USD + BTC at the fill price) per minute, from the
    documents a real Ledger's trades produce."""
    ledger, trades = _trade(_bars(360))
    balances = [
        docs.balances_document(
            fill.balances_after.usd,
            fill.balances_after.btc,
            fill.ts_event_ms,
            trading_mode=MODE,
            mark_price=fill.price,
            prefix=prefix,
        )
        for fill in ledger.fills
    ]
    other_mode = docs.balances_document(
        Decimal("5"),
        Decimal("0"),
        ledger.fills[0].ts_event_ms,
        trading_mode="sandbox",
        mark_price=ledger.fills[0].price,
        prefix=prefix,
    )
    _index_all(client, prefix, [*_with_prefix(trades, prefix), *balances, other_mode], tmp_path)

    sides = queries.fills_by_side(client, prefix=prefix, trading_mode=MODE, symbol="btcusd")
    assert set(sides) == {"buy", "sell"}
    for side, points in sides.items():
        fills = [fill for fill in ledger.fills if str(fill.side) == side]
        assert [ts for ts, _ in points] == [fill.ts_event_ms for fill in fills]
        for (_, price), fill in zip(points, fills, strict=True):
            assert price == pytest.approx(float(fill.price), rel=1e-12)

    equity = queries.equity_series(client, prefix=prefix)
    assert set(equity) == {MODE, "sandbox"}  # one line per trading mode
    assert equity["sandbox"] == [(ledger.fills[0].ts_event_ms, 5.0)]
    paper = dict(queries.equity_series(client, prefix=prefix, trading_mode=MODE)[MODE])
    assert len(paper) == len(ledger.fills) >= 20
    for fill in ledger.fills:
        after = fill.balances_after
        assert paper[fill.ts_event_ms] == pytest.approx(
            float(after.usd + after.btc * fill.price), rel=1e-12
        )


def test_depth_imbalance_is_the_minute_average_per_symbol(
    client: Elasticsearch, prefix: str, tmp_path: Path
) -> None:
    """Each window carries an imbalance in [-1, 1]; here the price-weighted volume imbalance
    (bid - ask) / (bid + ask) of the real capture's minute, the book-depth fields being absent
    from the capture's per-minute sums. One window per symbol and minute: the average is it."""
    records = _liquidity_records()
    for record in records:
        bid = record["bid_price_weighted_volume"]
        ask = record["ask_price_weighted_volume"]
        record["depth_imbalance"] = (bid - ask) / (bid + ask) if bid + ask else None
    _index_all(
        client, prefix, [docs.liquidity_document(r, prefix=prefix) for r in records], tmp_path
    )
    for symbol in LIQUIDITY_SYMBOLS:
        windows = [r for r in records if r["symbol"] == symbol]
        series = dict(queries.depth_imbalance_series(client, prefix=prefix, symbol=symbol))
        assert len(series) == len(windows) >= 2
        for record in windows:
            value = series[record["window_start_ms"]]
            if record["depth_imbalance"] is None:
                assert value is None
            else:
                assert value is not None and -1.0 <= value <= 1.0
                assert value == pytest.approx(record["depth_imbalance"], rel=1e-12)


def test_restart_and_heartbeat_tables_list_the_newest_first(
    client: Elasticsearch, prefix: str, tmp_path: Path
) -> None:
    start_ms = int(_bars(1).ts_ms.iloc[0])
    restarts = [
        ("ingest", start_ms, "exited with code 1", 4101),
        ("trader", start_ms + MINUTE_MS, "no heartbeat for 90 s", 4102),
        ("ingest", start_ms + 2 * MINUTE_MS, "exited with code 137", None),
    ]
    beats = [
        {
            "service": service,
            "instance": "a",
            "ts_ms": start_ms + n * 10_000,
            "processed": n,
            "lag_ms": 100 * n,
            "reconnects": 0,
            "gaps": 0,
            "dead_letters": 0,
            "last_error": None,
        }
        for n, service in enumerate(["ingest", "trader", "ingest", "liquidity", "trader"])
    ]
    actions = [
        docs.restart_document(service, ts, reason=reason, pid=pid, prefix=prefix)
        for service, ts, reason, pid in restarts
    ] + [docs.heartbeat_document(beat, prefix=prefix) for beat in beats]
    _index_all(client, prefix, actions, tmp_path)

    rows = queries.restarts_table(client, prefix=prefix)
    assert [(r["service"], r["reason"], r["pid"]) for r in rows] == [
        (service, reason, pid) for service, _, reason, pid in reversed(restarts)
    ]
    assert all(set(row) == set(queries.RESTARTS_TABLE_COLUMNS) for row in rows)
    assert len(queries.restarts_table(client, prefix=prefix, service="trader")) == 1

    rows = queries.heartbeats_table(client, prefix=prefix, service="ingest")
    assert [row["processed"] for row in rows] == [2, 0]
    assert [row["lag_ms"] for row in rows] == [200, 0]
    newest = queries.heartbeats_table(client, prefix=prefix, size=1)
    assert [(row["service"], row["processed"]) for row in newest] == [("trader", 4)]
    assert set(newest[0]) <= set(queries.HEARTBEATS_TABLE_COLUMNS)
