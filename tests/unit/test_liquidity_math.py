"""Pure liquidity math and order-book depth."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rtcrypto.liquidity import liquidity_ratio, price_weighted_volume, window_start_ms
from rtcrypto.orderbook import OrderBook, depth_summary


def test_window_start_floors_to_the_minute() -> None:
    assert window_start_ms(1_618_677_942_586) == 1_618_677_900_000
    assert window_start_ms(1_618_677_960_000) == 1_618_677_960_000


def test_price_weighted_volume_is_sum_of_price_times_remaining() -> None:
    assert price_weighted_volume([(60696.02, 0.02), (60695.53, 0.11410497)]) == pytest.approx(
        60696.02 * 0.02 + 60695.53 * 0.11410497, rel=1e-12
    )
    assert price_weighted_volume([]) == 0.0


def test_liquidity_ratio_is_ask_over_bid_and_undefined_without_bids() -> None:
    assert liquidity_ratio(300.0, 150.0) == 2.0
    assert liquidity_ratio(300.0, 0.0) is None


def test_order_book_apply_returns_previous_size_and_removes_zero_levels() -> None:
    book = OrderBook("BTCUSD")
    assert book.apply("bid", Decimal("100"), Decimal("2")) == 0
    assert book.apply("bid", Decimal("100"), Decimal("5")) == 2
    assert book.apply("bid", Decimal("100"), Decimal("0")) == 5
    assert book.bids == {}
    book.apply("ask", Decimal("101"), Decimal("1"))
    book.apply("ask", Decimal("102"), Decimal("1"))
    assert book.best_ask() == Decimal("101") and book.best_bid() is None


def test_depth_summary_without_both_sides_has_no_mid() -> None:
    summary = depth_summary({Decimal(100): Decimal(1)}, {}, 0.5)
    assert summary.mid_price is None and summary.depth_imbalance is None
