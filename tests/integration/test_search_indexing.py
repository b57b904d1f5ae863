"""Indices, idempotent documents, the spooling bulk writer and the dashboard's queries against the
real local Elasticsearch node (``search_node``). Each test works under its own index prefix
(``rtct<hex>-orders``, ...) and deletes its indices and templates afterwards."""

from __future__ import annotations

import contextlib
import gzip
import math
import socket
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from elasticsearch import Elasticsearch, helpers

from rtcrypto.config import Settings
from rtcrypto.exchange.base import OrderStatus
from rtcrypto.search import documents as docs
from rtcrypto.search import queries
from rtcrypto.search.client import search_client
from rtcrypto.search.documents import SearchAction
from rtcrypto.search.indices import INDEX_SPECS, ensure_templates, template_body
from rtcrypto.search.writer import SPOOL_PREFIX, SearchWriter, iter_dead_letters
from rtcrypto.trading.ledger import Ledger
from rtcrypto.trading.order_types import OrderRequest, TopOfBook
from rtcrypto.trading.strategy import OrderIntent, PriceReference, Side, TimeInForce
from tests.helpers import GEMINI_CAPTURE, free_port, gemini_btc_window_sums, shared_minute_file
from tests.trade_documents import drop_prefix

pytestmark = pytest.mark.integration

MINUTE_FILE = "binance_BTCUSDT_1m_2021-03-26_2021-04-30.csv.gz"
MODE, VERSION = "paper", "test-v1"


# --- fixtures ------------------------------------------------------------------------------------


def _closed_port() -> int:
    """A loopback port that nothing listens on (free a moment ago)."""
    return free_port()


def _count(client: Elasticsearch, index: str) -> int:
    client.indices.refresh(index=index)
    return int(client.count(index=index)["count"])


def _spool_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob(f"{SPOOL_PREFIX}*"))


# --- real trades, real liquidity, real prices ----------------------------------------------------


def _bars(minutes: int) -> pd.DataFrame:
    with gzip.open(shared_minute_file(MINUTE_FILE), "rt") as handle:
        frame = pd.read_csv(handle, nrows=minutes)
    frame["ts_ms"] = pd.to_datetime(frame["timestamp"], utc=True).astype("int64") // 1_000_000
    return frame


def _cid(ts_ms: int, side: Side) -> str:
    return f"rtc-{VERSION}-{ts_ms}-{side.value}"


def _trade(bars: pd.DataFrame) -> tuple[Ledger, list[SearchAction]]:
    """Buy at the close every 30 minutes and sell 15 minutes later, through a real Ledger; the
    order, fill and score documents of every trade (as the trader would write them)."""
    ledger = Ledger(Decimal("10000"))
    actions: list[SearchAction] = []
    last_buy_cid: str | None = None
    for row in bars.itertuples():
        minute = int(row.Index)
        price = Decimal(str(row.close))
        ts_ms = int(row.ts_ms)
        if minute % 30 == 0 and ledger.balances.btc == 0:
            intent = OrderIntent(
                Side.buy,
                PriceReference.ask,
                TimeInForce.immediate_or_cancel,
                quote_amount=ledger.balances.usd * Decimal("0.9"),
            )
        elif minute % 30 == 15 and ledger.balances.btc > 0:
            intent = OrderIntent(
                Side.sell,
                PriceReference.bid,
                TimeInForce.immediate_or_cancel,
                base_quantity=ledger.balances.btc,
            )
        else:
            continue
        trips_before = len(ledger.round_trips)
        fill = ledger.execute(intent, price, ts_ms)
        assert fill is not None
        cid = _cid(ts_ms, fill.side)
        request = OrderRequest(cid, "btcusd", fill.side, fill.base_quantity, price)
        status = OrderStatus(
            order_id=f"paper-{ts_ms}",
            client_order_id=cid,
            symbol="btcusd",
            side=fill.side,
            limit_price=price,
            original_quantity=fill.base_quantity,
            executed_quantity=fill.base_quantity,
            average_execution_price=price,
            fee_usd=fill.fee_usd,
            is_live=False,
            is_cancelled=False,
            ts_ms=ts_ms,
        )
        actions.append(
            docs.order_document(
                request, status, trading_mode=MODE, forecast_version=VERSION, exchange="paper"
            )
        )
        actions.append(
            docs.fill_document(
                fill,
                client_order_id=cid,
                symbol="btcusd",
                trading_mode=MODE,
                forecast_version=VERSION,
            )
        )
        if fill.side is Side.buy:
            last_buy_cid = cid
        elif len(ledger.round_trips) > trips_before:
            actions.append(
                docs.score_document(
                    ledger.round_trips[-1],
                    exit_client_order_id=cid,
                    entry_client_order_id=last_buy_cid,
                    symbol="btcusd",
                    trading_mode=MODE,
                    forecast_version=VERSION,
                )
            )
    assert len(ledger.round_trips) >= len(bars) // 30 - 1
    return ledger, actions


def _tickers_and_forecast(bars: pd.DataFrame, prefix: str) -> list[SearchAction]:
    """Two tickers per minute from the real bar (low/high, then the open/close pair) and a
    hindsight forecast of that minute (yhat = log close, bounds +-1 %)."""
    actions = []
    for row in bars.itertuples():
        ts_ms = int(row.ts_ms)
        low, high = Decimal(str(row.low)), Decimal(str(row.high))
        first, second = sorted((Decimal(str(row.open)), Decimal(str(row.close))))
        actions.append(
            docs.ticker_document(TopOfBook("btcusd", low, D1, high, D1, ts_ms), prefix=prefix)
        )
        actions.append(
            docs.ticker_document(
                TopOfBook("btcusd", first, D1, second, D1, ts_ms + 30_000), prefix=prefix
            )
        )
        log_close = math.log(float(row.close))
        actions.append(
            docs.forecast_document(
                VERSION, ts_ms, log_close, log_close - 0.01, log_close + 0.01, "buy", prefix=prefix
            )
        )
    return actions


D1 = Decimal("1")


LIQUIDITY_SYMBOLS = ("BTCUSD", "ETHUSD", "ETHBTC", "LTCUSD")  # the capture's books with changes


def _liquidity_records() -> list[dict[str, Any]]:
    """Per-minute liquidity records recomputed from the real Gemini capture (tests/helpers)."""
    records = []
    for symbol in LIQUIDITY_SYMBOLS:
        for start_ms, sums in sorted(gemini_btc_window_sums(GEMINI_CAPTURE, symbol).items()):
            bid, ask = float(sums["bid"]), float(sums["ask"])
            records.append(
                {
                    "symbol": symbol,
                    "window_start_ms": start_ms,
                    "window_end_ms": start_ms + 60_000,
                    "bid_price_weighted_volume": bid,
                    "ask_price_weighted_volume": ask,
                    "liquidity_ratio": ask / bid if bid else None,
                    "event_count": sums["count"],
                    "ts_event_ms": start_ms + 59_999,
                }
            )
    assert len(records) >= 2 * len(LIQUIDITY_SYMBOLS)
    return records


def _with_prefix(actions: list[SearchAction], prefix: str) -> list[SearchAction]:
    return [
        SearchAction(action.index.replace("rtc-", f"{prefix}-", 1), action.id, action.source)
        for action in actions
    ]


# --- templates -----------------------------------------------------------------------------------


def test_templates_are_applied_and_a_second_run_changes_nothing(client: Elasticsearch) -> None:
    prefix = f"rtct{uuid.uuid4().hex[:8]}"
    try:
        # The template an earlier version made for the retired order-book kind (no writer ever).
        client.indices.put_index_template(
            name=f"{prefix}-orderbook",
            index_patterns=[f"{prefix}-orderbook-*"],
            priority=200,
            meta={"managed_by": "rtcrypto", "fingerprint": "retired"},
        )
        first = ensure_templates(client, prefix)
        second = ensure_templates(client, prefix)

        kinds = list(INDEX_SPECS)
        assert sorted(first.templates_created) == sorted(f"{prefix}-{kind}" for kind in kinds)
        concrete = sorted(f"{prefix}-{kind}" for kind in kinds)
        assert sorted(first.indices_created) == concrete
        assert not second.changed
        assert sorted(second.templates_unchanged) == sorted(first.templates_created)

        mapping = client.indices.get_mapping(index=f"{prefix}-scores")[f"{prefix}-scores"]
        properties = mapping["mappings"]["properties"]
        assert mapping["mappings"]["dynamic"] == "strict"
        assert properties["@timestamp"]["type"] == "date"
        assert properties["pnl_usd"] == {"type": "double"}
        assert properties["pnl_usd_exact"] == {"type": "keyword"}
        assert properties["trading_mode"] == {"type": "keyword"}

        # The retired order-book kind's template is deleted, once; none is created.
        assert first.templates_deleted == [f"{prefix}-orderbook"]
        assert second.templates_deleted == []
        assert f"{prefix}-orderbook" not in first.templates_created
        gone = client.options(ignore_status=404).indices.get_index_template(
            name=f"{prefix}-orderbook"
        )
        assert gone.meta.status == 404

        # A template changed by someone else is put back; the indices stay.
        stale = template_body(INDEX_SPECS["ticker"], prefix) | {"_meta": {"fingerprint": "old"}}
        client.indices.put_index_template(name=f"{prefix}-ticker", **stale)
        third = ensure_templates(client, prefix)
        assert third.templates_updated == [f"{prefix}-ticker"]
        assert third.indices_created == []
    finally:
        drop_prefix(client, prefix)


# --- idempotent documents ------------------------------------------------------------------------


def test_sending_the_same_documents_twice_leaves_every_count_unchanged(
    client: Elasticsearch, prefix: str
) -> None:
    bars = _bars(360)
    _ledger, trades = _trade(bars)
    actions = _with_prefix(trades, prefix) + _tickers_and_forecast(bars.head(60), prefix)
    actions += [docs.liquidity_document(record, prefix=prefix) for record in _liquidity_records()]
    expected = {
        index: len({a.id for a in actions if a.index == index})
        for index in {a.index for a in actions}
    }

    for _ in range(2):
        ok, errors = helpers.bulk(
            client, (action.bulk_entry() for action in actions), refresh="wait_for"
        )
        assert (ok, errors) == (len(actions), [])
        assert {index: _count(client, index) for index in expected} == expected


# --- the writer ----------------------------------------------------------------------------------


def _order_versions(prefix: str, count: int, base_ms: int) -> list[SearchAction]:
    """Each order twice under the same id: submitted, then (later) filled."""
    versions = []
    for number in range(count):
        ts_ms = base_ms + number * 60_000
        request = OrderRequest(
            _cid(ts_ms, Side.buy), "btcusd", Side.buy, Decimal("0.01"), Decimal("50000")
        )
        versions.append(
            docs.order_document(
                request,
                None,
                trading_mode=MODE,
                forecast_version=VERSION,
                ts_ms=ts_ms,
                prefix=prefix,
            )
        )
    for number in range(count):
        ts_ms = base_ms + number * 60_000
        cid = _cid(ts_ms, Side.buy)
        request = OrderRequest(cid, "btcusd", Side.buy, Decimal("0.01"), Decimal("50000"))
        status = OrderStatus(
            f"x-{number}",
            cid,
            "btcusd",
            Side.buy,
            Decimal("50000"),
            Decimal("0.01"),
            Decimal("0.01"),
            Decimal("49990"),
            Decimal("1.24975"),
            False,
            False,
            ts_ms + 150,
        )
        versions.append(
            docs.order_document(
                request, status, trading_mode=MODE, forecast_version=VERSION, prefix=prefix
            )
        )
    return versions


def test_writer_spools_while_elasticsearch_is_unreachable_then_indexes_everything_once(
    client: Elasticsearch, prefix: str, tmp_path: Path
) -> None:
    unreachable = search_client(
        Settings(search_url=f"http://127.0.0.1:{_closed_port()}"),
        max_retries=0,
        request_timeout_s=5,
    )
    bars = _bars(240)
    actions = _with_prefix(_trade(bars)[1], prefix) + _tickers_and_forecast(bars, prefix)
    actions += _order_versions(prefix, 50, 1_700_000_000_000)
    unique = {(action.index, action.id) for action in actions}

    offline = SearchWriter(
        unreachable, spool_dir=tmp_path, name="trader", batch_size=100, flush_interval_s=0.2
    )
    offline.add_many(actions)
    stats = offline.close()

    assert (stats.indexed, stats.dead) == (0, 0)
    assert stats.pending_spool == stats.spooled == len(actions)
    spooled = _spool_files(tmp_path)
    assert spooled and sum(len(path.read_bytes().splitlines()) for path in spooled) == len(actions)

    # A new writer (a restarted service) on the real node re-sends the spool first, oldest first.
    online = SearchWriter(
        client, spool_dir=tmp_path, name="trader", batch_size=100, flush_interval_s=0.2
    )
    assert online.wait_for_spool_drained(timeout_s=60)
    final = online.close()

    assert final.resent == len(actions) and final.dead == 0 and final.pending_spool == 0
    assert _spool_files(tmp_path) == []
    indices = sorted({index for index, _ in unique})
    assert sum(_count(client, index) for index in indices) == len(unique)  # none doubled
    # The later version of each order won: the spool kept their order.
    states = client.search(
        index=f"{prefix}-orders", size=0, aggs={"states": {"terms": {"field": "state"}}}
    )["aggregations"]["states"]["buckets"]
    assert {bucket["key"] for bucket in states} == {"filled"}


class _SwitchableProxy:
    """A TCP proxy to Elasticsearch that can be switched off: while off, it accepts and closes
    every connection and has cut the open ones (Elasticsearch "goes away" without stopping the
    node that other test sessions share)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                downstream.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.open += [downstream, upstream]
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def switch_off(self) -> None:
        self.up = False
        with self.lock:
            for connection in self.open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self.open.clear()

    def switch_on(self) -> None:
        self.up = True

    def close(self) -> None:
        self.switch_off()
        self.listener.close()


def test_writer_keeps_spooling_through_an_outage_and_catches_up(
    search_node: str, client: Elasticsearch, prefix: str, tmp_path: Path
) -> None:
    proxy = _SwitchableProxy(int(search_node.rsplit(":", 1)[1]))
    through_proxy = search_client(
        Settings(search_url=f"http://127.0.0.1:{proxy.port}"), max_retries=0, request_timeout_s=5
    )
    writer = SearchWriter(
        through_proxy,
        spool_dir=tmp_path,
        name="outage",
        batch_size=200,
        flush_interval_s=0.2,
        retry_initial_s=0.2,
        retry_max_s=1.0,
    )
    bars = _bars(600)
    market = _tickers_and_forecast(bars, prefix)  # 1,800 documents
    try:
        writer.add_many(market[:600])
        assert writer.flush(timeout_s=30)
        assert writer.stats().indexed == 600

        proxy.switch_off()
        outage_started = time.monotonic()
        for start in range(600, 1800, 100):  # keeps arriving during the outage
            writer.add_many(market[start : start + 100])
            time.sleep(0.25)
        writer.add_many(market[:300])  # re-sends of documents indexed before: must not double
        assert writer.flush(timeout_s=30)
        during = writer.stats()
        assert (
            during.indexed == 600 and during.pending_spool == 1500 and during.failed_requests >= 1
        )
        assert time.monotonic() - outage_started >= 3

        proxy.switch_on()
        assert writer.wait_for_spool_drained(timeout_s=60)
    finally:
        final = writer.close()
        proxy.close()
    assert final.pending_spool == 0 and final.dead == 0
    assert final.indexed == 600 + 1500
    assert _spool_files(tmp_path) == []
    unique = {(action.index, action.id) for action in market}
    assert _count(client, f"{prefix}-ticker") + _count(client, f"{prefix}-forecast") == len(unique)


def test_a_document_the_mapping_refuses_is_dead_lettered_and_the_rest_indexed(
    client: Elasticsearch, prefix: str, tmp_path: Path
) -> None:
    good = _tickers_and_forecast(_bars(10), prefix)
    bad = SearchAction(
        f"{prefix}-ticker",
        "BTCUSD:bad",
        {"@timestamp": "2021-04-17T00:00:00.000Z", "colour": "red"},
    )
    with SearchWriter(client, spool_dir=tmp_path, name="dead", batch_size=50) as writer:
        writer.add_many(good[:5] + [bad] + good[5:])
        assert writer.flush(timeout_s=30)
        stats = writer.stats()

    assert (stats.indexed, stats.dead, stats.pending_spool) == (len(good), 1, 0)
    (letter,) = list(iter_dead_letters(writer.dead_letter_path))
    assert (letter["index"], letter["id"], letter["status"]) == (
        f"{prefix}-ticker",
        "BTCUSD:bad",
        400,
    )
    assert "strict_dynamic_mapping_exception" in letter["reason"]
    assert letter["source"]["colour"] == "red"
    assert _count(client, f"{prefix}-ticker") + _count(client, f"{prefix}-forecast") == len(good)


# --- the dashboard's queries against a real ledger ------------------------------------------------


def test_each_visualization_query_returns_the_ledgers_numbers(
    client: Elasticsearch, prefix: str, tmp_path: Path
) -> None:
    bars = _bars(720)
    ledger, trades = _trade(bars)
    liquidity = _liquidity_records()
    market_bars = bars.head(90)
    with SearchWriter(client, spool_dir=tmp_path, name="queries", batch_size=500) as writer:
        writer.add_many(_with_prefix(trades, prefix))
        writer.add_many(_tickers_and_forecast(market_bars, prefix))
        writer.add_many(docs.liquidity_document(record, prefix=prefix) for record in liquidity)
        assert writer.flush(timeout_s=60)
        assert writer.stats().indexed == len(trades) + 3 * 90 + len(liquidity)
    client.indices.refresh(index=f"{prefix}-*")

    # Cumulative profit: hourly running total of the scores = the ledger's running total.
    series = queries.cumulative_profit(client, prefix=prefix, interval="1h", trading_mode=MODE)
    assert series, "no buckets"
    assert abs(series[-1][1] - float(ledger.realised_pnl_usd)) <= 1e-6
    for bucket_start, cumulative in series:
        expected = sum(
            (
                trip.pnl_usd
                for trip in ledger.round_trips
                if trip.exit.ts_event_ms < bucket_start + 3_600_000
            ),
            Decimal(0),
        )
        assert abs(cumulative - float(expected)) <= 1e-6, bucket_start

    # Liquidity ratio: one window per symbol and minute, so each bucket's average is its ask/bid.
    for symbol in LIQUIDITY_SYMBOLS:
        ratios = dict(
            queries.liquidity_ratio_series(client, prefix=prefix, interval="1m", symbol=symbol)
        )
        windows = [record for record in liquidity if record["symbol"] == symbol]
        assert len(ratios) == len(windows) >= 2
        for record in windows:
            expected = record["liquidity_ratio"]
            assert ratios[record["window_start_ms"]] == pytest.approx(expected, rel=1e-12)

    # Price against forecast: average of the minute's two tickers' mids, and exp(log close).
    start, end = int(market_bars.ts_ms.iloc[0]), int(market_bars.ts_ms.iloc[-1]) + 60_000
    points = {
        p.ts_ms: p
        for p in queries.price_vs_forecast(client, prefix=prefix, since_ms=start, until_ms=end)
    }
    assert len(points) == len(market_bars)
    for row in market_bars.itertuples():
        point = points[int(row.ts_ms)]
        mids = [(row.low + row.high) / 2, (row.open + row.close) / 2]
        assert point.values["mid_price"] == pytest.approx(sum(mids) / 2, rel=1e-12)
        assert point.values["price_forecast"] == pytest.approx(row.close, rel=1e-9)
        assert point.values["price_forecast_lower"] == pytest.approx(
            row.close * math.exp(-0.01), rel=1e-9
        )

    # Orders table: every order, newest first, with the ledger's quantities.
    rows = queries.orders_table(client, prefix=prefix, size=1000, trading_mode=MODE)
    assert len(rows) == len(ledger.fills)
    assert [row["@timestamp"] for row in rows] == sorted(
        (row["@timestamp"] for row in rows), reverse=True
    )
    by_id = {row["client_order_id"]: row for row in rows}
    for fill in ledger.fills:
        row = by_id[_cid(fill.ts_event_ms, fill.side)]
        assert row["executed_quantity"] == float(fill.base_quantity)
        assert row["fee_usd"] == float(fill.fee_usd)
        assert row["state"] == "filled" and row["forecast_version"] == VERSION
