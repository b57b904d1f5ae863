"""The history replay's market model and its calibration (pure functions, real data).

The bars are real (``../shared/data/minute``); the calibration is recomputed from the real
Gemini capture and compared with the committed file.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcrypto.simulator.calibration import (
    PACKAGED_CALIBRATION,
    Calibration,
    CalibrationError,
    compute_calibration,
    load_calibration,
)
from rtcrypto.simulator.market_model import (
    BookMessage,
    MinuteBar,
    ModelBook,
    PlannedTrade,
    cents_text,
    generate_minute,
    mid_cents_at,
    minute_rng,
    path_waypoints,
    plan_trades,
    price_weighted_volumes,
    satoshis_text,
    split_volume,
    to_cents,
    to_satoshis,
)
from tests.helpers import GEMINI_CAPTURE, shared_minute_file

BINANCE_2024 = "binance_BTCUSDT_1m_2024-10-01_2024-11-04.csv.gz"


@cache
def calibration() -> Calibration:
    return load_calibration()


@cache
def real_bars(name: str = BINANCE_2024, limit: int = 3000) -> tuple[MinuteBar, ...]:
    """The first ``limit`` bars of a real minute file (header timestamp,open,high,low,close,volume)."""
    import pandas as pd

    frame = pd.read_csv(shared_minute_file(name), nrows=limit)
    ts_ms = pd.to_datetime(frame["timestamp"], utc=True).astype("int64") // 1_000_000
    return tuple(
        MinuteBar(int(ts), float(o), float(h), float(low), float(c), float(v))
        for ts, o, h, low, c, v in zip(
            ts_ms, frame["open"], frame["high"], frame["low"], frame["close"], frame["volume"],
            strict=True,
        )
    )  # fmt: skip


# --- calibration --------------------------------------------------------------------------------


def test_committed_calibration_is_recomputed_from_the_real_capture() -> None:
    """Never hand-typed: the packaged file equals what `rtc simulate calibrate` computes now."""
    recomputed = compute_calibration([GEMINI_CAPTURE])
    committed = json.loads(PACKAGED_CALIBRATION.read_text())
    assert recomputed.to_json() == committed
    assert committed["sources"][0]["name"] == GEMINI_CAPTURE.name
    assert load_calibration(PACKAGED_CALIBRATION) == recomputed


def test_calibration_figures_match_an_independent_count_of_the_capture() -> None:
    """Messages, in-band changes and trades of BTCUSD counted straight from the gzip lines."""
    in_band_counts: list[int] = []
    trades = 0
    first = last = None
    book: dict[str, dict[float, float]] = {"buy": {}, "sell": {}}
    with gzip.open(GEMINI_CAPTURE, "rt") as lines:
        for line in lines:
            stamp, separator, payload = line.partition(": ")
            if not separator or not stamp[:1].isdigit():
                continue
            frame = json.loads(payload)
            if frame.get("symbol") != "BTCUSD":
                continue
            first = float(stamp) if first is None else first
            last = float(stamp)
            if frame["type"] == "trade":
                trades += 1
                continue
            if book["buy"]:  # not the snapshot
                mid = (max(book["buy"]) + min(book["sell"])) / 2
                near = [c for c in frame["changes"] if abs(float(c[1]) - mid) / mid * 1e4 <= 50]
                if near:
                    in_band_counts.append(len(near))
            for side, price, quantity in frame["changes"]:
                if float(quantity) == 0:
                    book[side].pop(float(price), None)
                else:
                    book[side][float(price)] = float(quantity)
    result = calibration()
    span_s = last - first
    assert result.span_s == pytest.approx(span_s, abs=0.002)
    assert result.trades_per_s == pytest.approx(trades / span_s, rel=1e-3)  # 18 trades
    assert result.messages_per_s == pytest.approx(len(in_band_counts) / span_s, rel=1e-3)
    assert result.changes_per_s == pytest.approx(sum(in_band_counts) / span_s, rel=1e-3)
    assert sum(result.changes_per_message.values()) == len(in_band_counts)
    assert result.levels_per_side == {"bid": 51, "ask": 53}
    assert 0 < result.level_distance_bps[0] < result.level_distance_bps[50] <= result.band_bps
    assert result.change_distance_bps[50] < result.level_distance_bps[50]  # changes hug the mid


def test_calibrate_command_writes_the_committed_file_and_refuses_other_venues(
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from rtcrypto.cli.main import app

    out = tmp_path / "calibration.json"
    done = CliRunner().invoke(
        app, ["simulate", "calibrate", "--capture", str(GEMINI_CAPTURE), "--out", str(out)]
    )
    assert done.exit_code == 0, done.output
    assert "51/53 levels within 50 bps" in done.output
    assert json.loads(out.read_text()) == json.loads(PACKAGED_CALIBRATION.read_text())
    kraken = GEMINI_CAPTURE.parent / "kraken_2021-04-05__KRAKEN-c197c0.0_book.gz"
    refused = CliRunner().invoke(
        app, ["simulate", "calibrate", "--capture", str(kraken), "--out", str(out)]
    )
    assert refused.exit_code == 2 and "kraken capture: calibrate on Gemini v2" in refused.output


def test_missing_corrupt_and_other_version_files_name_the_file_and_the_command(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "missing.json"
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"schema_version": 1, "symbol": ')
    other = tmp_path / "v9.json"
    other.write_text(
        json.dumps({**json.loads(PACKAGED_CALIBRATION.read_text()), "schema_version": 9})
    )
    truncated = tmp_path / "truncated.json"
    document = json.loads(PACKAGED_CALIBRATION.read_text())
    document["level_size_base"] = document["level_size_base"][:10]
    truncated.write_text(json.dumps(document))
    for path, words in (
        (missing, "not found"),
        (corrupt, "is corrupt"),
        (other, "schema version 9"),
        (truncated, "quantile lists of different lengths"),
    ):
        with pytest.raises(CalibrationError) as caught:
            load_calibration(path)
        message = str(caught.value)
        assert words in message and str(path) in message
        assert f"rtc simulate calibrate --out {path}" in message


# --- path and trades ----------------------------------------------------------------------------


def test_up_bar_dips_first_and_down_bar_rallies_first() -> None:
    up = MinuteBar(0, 100.00, 101.50, 99.25, 101.00, 1.0)
    down = MinuteBar(0, 100.00, 100.75, 98.00, 98.50, 1.0)
    assert path_waypoints(up) == (10000, 9925, 10150, 10100)
    assert path_waypoints(down) == (10000, 10075, 9800, 9850)
    assert mid_cents_at(path_waypoints(up), 10_000) == pytest.approx((10000 + 9925) / 2)
    assert mid_cents_at(path_waypoints(up), 59_500) == 10100  # flat at the close


def test_split_volume_is_exact_and_gives_everyone_a_satoshi() -> None:
    assert split_volume(10, [1.0, 1.0]) == [5, 5]
    assert split_volume(3, [100.0, 0.0, 0.0]) == [1, 1, 1]
    shares = split_volume(1_234_567_891, [0.3, 2.0, 0.7, 5.5])
    assert sum(shares) == 1_234_567_891 and min(shares) >= 1
    with pytest.raises(ValueError, match="cannot split 2 satoshis into 3"):
        split_volume(2, [1.0, 1.0, 1.0])


def test_trades_hit_open_high_low_close_and_carry_the_volume() -> None:
    bar = real_bars()[0]
    trades = plan_trades(bar, minute_rng(0, bar.ts_ms, 0), calibration().trades_per_s)
    prices = {trade.price_cents for trade in trades}
    assert {
        to_cents(bar.open),
        to_cents(bar.high),
        to_cents(bar.low),
        to_cents(bar.close),
    } <= prices
    assert sum(trade.quantity_sats for trade in trades) == to_satoshis(bar.volume)
    assert [t.offset_ms for t in trades] == sorted(t.offset_ms for t in trades)
    assert trades[-1].price_cents == to_cents(bar.close)  # the close is the minute's last print


def test_a_bar_without_volume_trades_nothing_and_a_tiny_one_trades_its_extremes() -> None:
    flat = MinuteBar(0, 5.0, 5.0, 5.0, 5.0, 0.0)  # Kaggle's gap-filled rows
    assert plan_trades(flat, minute_rng(0, 0, 0), 0.6) == []
    tiny = MinuteBar(0, 100.0, 102.0, 99.0, 101.0, 0.00000002)
    trades = plan_trades(tiny, minute_rng(0, 0, 0), 0.6)
    assert sorted(t.price_cents for t in trades) == [9900, 10200]
    assert [t.quantity_sats for t in trades] == [1, 1]


def test_text_forms_of_prices_and_sizes() -> None:
    assert cents_text(6069602) == "60696.02" and cents_text(5) == "0.05"
    assert satoshis_text(20_000_000) == "0.2" and satoshis_text(-1) == "-0.00000001"
    assert satoshis_text(0) == "0" and satoshis_text(300_000_000) == "3"


# --- the book -----------------------------------------------------------------------------------


def _assert_book_sound(book: ModelBook, mid_cents: float) -> None:
    assert book.bid_prices == sorted(book.bids) and book.ask_prices == sorted(book.asks)
    assert all(size > 0 for size in [*book.bids.values(), *book.asks.values()])
    if book.bid_prices and book.ask_prices:
        assert book.bid_prices[-1] < mid_cents < book.ask_prices[0]  # never crosses


def test_fresh_book_has_the_calibrated_shape() -> None:
    book = ModelBook(calibration())
    book.reset(6_000_000.0, minute_rng(0, 0, 1))
    _assert_book_sound(book, 6_000_000.0)
    target = calibration().target_levels_per_side
    assert target - 5 <= len(book.bids) <= target and target - 5 <= len(book.asks) <= target
    distances = [(6_000_000 - p) / 6_000_000 * 1e4 for p in book.bids]
    assert max(distances) <= calibration().band_bps + 0.01
    assert np.median(distances) == pytest.approx(calibration().level_distance_bps[50], rel=0.35)


def test_a_replayed_day_keeps_rate_level_count_and_liquidity_ratio_in_range() -> None:
    """Over real bars: calibrated change rate, level count near target, ratio inside (0.1, 2)."""
    bars = real_bars()[:240]
    book = ModelBook(calibration())
    book.reset(to_cents(bars[0].open), minute_rng(0, bars[0].ts_ms, 1))
    ratios, changes_per_minute = [], []
    for bar in bars:
        events = generate_minute(bar, book, seed=0)
        changes = [c for e in events if isinstance(e, BookMessage) for c in e.changes]
        changes_per_minute.append(len(changes))
        bid, ask = price_weighted_volumes(changes)
        ratios.append(ask / bid)
        _assert_book_sound(book, to_cents(bar.close))
    expected = calibration().changes_per_s * 60
    assert np.mean(changes_per_minute) == pytest.approx(expected, rel=0.1)
    assert all(0.1 < ratio < 2 for ratio in ratios)
    target = calibration().target_levels_per_side
    assert 0.5 * target <= len(book.bids) <= 1.5 * target


def test_same_seed_same_minute_other_seed_other_minute() -> None:
    bar = real_bars()[10]

    def run(seed: int) -> list:
        book = ModelBook(calibration())
        book.reset(to_cents(bar.open), minute_rng(seed, bar.ts_ms, 1))
        return generate_minute(bar, book, seed)

    assert run(7) == run(7)
    assert run(7) != run(8)


@st.composite
def real_and_perturbed_bars(draw: st.DrawFn) -> MinuteBar:
    """A real bar of ../shared/data/minute, rescaled (2012-like to 2024 prices) and with its range,
    close and volume perturbed: quiet to wild, empty to huge, down to one-cent bars."""
    bars = real_bars()
    base = bars[draw(st.integers(0, len(bars) - 1))]
    scale = draw(st.sampled_from([1e-4, 1.0, 3.0]))
    open_ = round(base.open * scale, 2) or 0.01
    spread = draw(st.floats(0.0, 10.0)) * base.open * scale * 0.003  # 0 to 3 % of the price
    high = round(open_ + draw(st.floats(0.0, 1.0)) * spread, 2)
    low = max(0.01, round(open_ - draw(st.floats(0.0, 1.0)) * spread, 2))
    close = round(low + draw(st.floats(0.0, 1.0)) * (high - low), 2)
    volume = draw(
        st.one_of(
            st.sampled_from([0.0, 1e-8, 3e-8, base.volume]),
            st.floats(0.0, 5.0),
            st.floats(0.0, 2000.0),
        )
    )
    minutes_later = draw(st.integers(0, 10**6))
    return MinuteBar(base.ts_ms + minutes_later * 60_000, open_, high, low, close, round(volume, 8))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(bar=real_and_perturbed_bars(), seed=st.integers(0, 2**31 - 1))
def test_generator_properties_on_random_real_and_perturbed_bars(bar: MinuteBar, seed: int) -> None:
    """Property test: for any bar, every trade price lies in [low, high], the quantities sum to
    the volume, each change states the level's true previous size, the book never crosses."""
    open_, high, low = bar.open, bar.high, bar.low
    book = ModelBook(calibration())
    book.reset(to_cents(open_), minute_rng(seed, bar.ts_ms, 1))
    sides = {True: dict(book.bids), False: dict(book.asks)}
    events = generate_minute(bar, book, seed=seed)
    trades = [event for event in events if isinstance(event, PlannedTrade)]
    assert all(to_cents(low) <= t.price_cents <= to_cents(high) for t in trades)
    assert sum(t.quantity_sats for t in trades) == to_satoshis(bar.volume)
    assert all(t.quantity_sats >= 1 for t in trades)
    offsets = [event.offset_ms for event in events]
    assert offsets == sorted(offsets) and all(0 <= o < 60_000 for o in offsets)
    # Re-apply every change to a copy of the fresh book: each one states the level's true
    # previous size, and after each message bids < mid < asks at that message's mid.
    waypoints = path_waypoints(bar)
    for event in events:
        if not isinstance(event, BookMessage):
            continue
        for is_bid, price, size, previous in event.changes:
            assert sides[is_bid].get(price, 0) == previous and size != previous
            if size:
                sides[is_bid][price] = size
            else:
                del sides[is_bid][price]
        mid = mid_cents_at(waypoints, event.offset_ms)
        assert max(sides[True], default=-1) < mid < min(sides[False], default=10**15)
    assert sides[True] == book.bids and sides[False] == book.asks
