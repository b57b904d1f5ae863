"""The Trade review bench's seeded day (bench/review_seed.py) on real bars: the liquidity and
ticker documents of the modelled book, and the orders, fills, scores and balances of the ledger."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from bench.review_seed import (
    CANCELLED_EVERY,
    SeededDay,
    book_minutes,
    check_finite,
    trade_documents,
)
from rtcrypto.history import import_file
from rtcrypto.simulator.history_replay import parse_utc_ms
from tests.helpers import shared_minute_file

DAY = "2024-10-28"
MINUTES = 30


@pytest.fixture(scope="module")
def history_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("history")
    import_file(
        shared_minute_file("binance_BTCUSDT_1m_2024-10-01_2024-11-04.csv.gz"), history_dir=folder
    )
    return folder


def test_book_minutes_are_one_liquidity_record_and_top_of_book_per_real_minute(
    history_dir: Path,
) -> None:
    start_ms = parse_utc_ms(DAY, "--day")
    minutes = book_minutes(start_ms, history_dir, seed=0, band_pct=0.5, minutes=MINUTES)
    assert [m.record["window_start_ms"] for m in minutes] == [
        start_ms + index * 60_000 for index in range(MINUTES)
    ]
    for minute in minutes:
        record, book = minute.record, minute.book
        bid_volume = float(str(record["bid_price_weighted_volume"]))
        ask_volume = float(str(record["ask_price_weighted_volume"]))
        assert bid_volume > 0 and ask_volume > 0
        assert record["liquidity_ratio"] == pytest.approx(ask_volume / bid_volume)
        assert 0 < book.bid < book.ask
        assert float(book.bid) < float(str(record["mid_price"])) < float(book.ask)
        assert -1 <= float(str(record["depth_imbalance"])) <= 1
        assert book.ts_ms == int(str(record["window_end_ms"])) - 1


def test_trade_documents_follow_the_ledger(history_dir: Path) -> None:
    start_ms = parse_utc_ms(DAY, "--day")
    minutes = book_minutes(start_ms, history_dir, seed=0, band_pct=0.5, minutes=MINUTES)
    seeded = SeededDay()
    orders = 2 * CANCELLED_EVERY
    trade_documents(minutes, orders=orders, version="v1", prefix="p", seeded=seeded)
    check_finite(seeded)
    kinds = Counter(action.index for action in seeded.actions)
    cancelled = orders // CANCELLED_EVERY
    assert seeded.orders == kinds["p-orders"] == orders
    assert seeded.fills == kinds["p-fills"] == kinds["p-balances"] == orders - cancelled
    assert seeded.round_trips == kinds["p-scores"]
    assert len({(a.index, a.id) for a in seeded.actions}) == len(seeded.actions)
    fills = [a.source for a in seeded.actions if a.index == "p-fills"]
    # buys and sells alternate; a sell sells the whole balance, so each sell empties the BTC
    assert [f["side"] for f in fills] == ["buy", "sell"] * (len(fills) // 2) + (
        ["buy"] if len(fills) % 2 else []
    )
    for fill in fills:
        if fill["side"] == "sell":
            assert Decimal(fill["btc_after_exact"]) == 0
        assert fill["forecast_version"] == "v1"
    states = Counter(a.source["state"] for a in seeded.actions if a.index == "p-orders")
    assert states == {"filled": orders - cancelled, "cancelled": cancelled}
    times = [a.source["ts_ms"] for a in seeded.actions if a.index == "p-orders"]
    assert times == sorted(times) and start_ms < times[0] and times[-1] < start_ms + 31 * 60_000
