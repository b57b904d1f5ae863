"""Backtest core on the real Binance segments: the fast path equals the per-minute loop,
metrics on crafted series, fees, and a reproducible random baseline."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from rtcrypto.history import import_file, load_history
from rtcrypto.trading.backtest import (
    NO_LIQUIDITY_GATE_NOTE,
    BacktestConfig,
    directional_hit_rate,
    max_drawdown_pct,
    random_baseline,
    random_sides,
    run_backtest,
    side_flip_rate,
    simulate,
)
from rtcrypto.trading.strategy import StrategyParams
from tests.helpers import shared_minute_file

SEGMENTS = (
    "binance_BTCUSDT_1m_2021-03-26_2021-04-30.csv.gz",  # two exchange halts inside
    "binance_BTCUSDT_1m_2022-06-15_2022-07-19.csv.gz",  # the June 2022 crash
)


def real_segment(name: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """(close prices, ts_ms) of a real Binance segment."""
    frame = pd.read_csv(shared_minute_file(name))
    ts_ms = pd.to_datetime(frame["timestamp"], utc=True).astype("int64").to_numpy() // 1_000_000
    return frame["close"].to_numpy(), ts_ms


def trend_sides(prices: npt.NDArray[np.float64], span: int = 60) -> npt.NDArray[np.int8]:
    """+1 while the EMA of the price rises, else -1: a smooth stand-in for a forecast's side."""
    ema = pd.Series(prices).ewm(span=span).mean().to_numpy()
    return np.where(np.diff(ema, prepend=ema[0]) >= 0, 1, -1).astype(np.int8)


def assert_same_run(fast, slow) -> None:  # type: ignore[no-untyped-def]
    assert fast.fills == slow.fills
    np.testing.assert_array_equal(fast.fill_minutes, slow.fill_minutes)
    assert fast.round_trips == slow.round_trips
    assert fast.final == slow.final
    assert fast.final_equity_usd == slow.final_equity_usd
    np.testing.assert_array_equal(fast.equity, slow.equity)


# --- the fast path is the per-minute loop -------------------------------------------------------


@pytest.mark.parametrize("segment", SEGMENTS)
@pytest.mark.parametrize("signal", ["trend", "coin", "slow_coin", "with_gaps_in_forecast"])
def test_fast_path_equals_calling_the_strategy_every_minute(segment: str, signal: str) -> None:
    prices, ts_ms = real_segment(segment)
    if signal == "trend":
        sides = trend_sides(prices)
    elif signal == "coin":  # fees ruin it: later buys are too small to fill, every minute
        sides = random_sides(len(prices), seed=7)
    elif signal == "slow_coin":
        sides = random_sides(len(prices), seed=8, flip_probability=0.01)
    else:  # stretches without a forecast (side 0)
        sides = trend_sides(prices, span=240)
        sides[10_000:12_000] = 0
        sides[30_000:30_500] = 0
    config = BacktestConfig(half_spread_pct=Decimal("0.01"))
    fast = simulate(prices, sides, config, ts_ms=ts_ms)
    slow = simulate(prices, sides, config, ts_ms=ts_ms, per_minute=True)
    assert fast.trades > 10
    assert_same_run(fast, slow)
    assert slow.strategy_calls == len(prices)
    assert fast.strategy_calls < len(prices)


def test_backtest_on_history_loaded_from_the_store(tmp_path: Path) -> None:
    import_file(shared_minute_file(SEGMENTS[0]), history_dir=tmp_path)
    bars = load_history("binance", history_dir=tmp_path, columns=["close"])
    prices = bars["close"].to_numpy()
    ts_ms = bars["ts"].astype("int64").to_numpy()  # milliseconds
    report = run_backtest(prices, trend_sides(prices), ts_ms=ts_ms)
    assert report.minutes == 50_000
    assert report.hit_rate.gaps == 2  # the two exchange halts are not scored
    assert report.hit_rate.scored + report.hit_rate.flat + report.hit_rate.gaps == 49_999


# --- metrics --------------------------------------------------------------------------------


def test_hit_rate_against_the_next_minute() -> None:
    prices = [1.0, 2.0, 2.0, 1.0, 3.0]  # moves: up, flat, down, up
    sides = [1, 1, -1, -1, 1]
    rate = directional_hit_rate(prices, sides)
    assert (rate.hits, rate.scored, rate.flat, rate.gaps) == (2, 3, 1, 0)
    assert rate.rate == pytest.approx(2 / 3)
    ts_ms = [0, 60_000, 120_000, 180_000, 300_000]  # the last step skips a minute
    gapped = directional_hit_rate(prices, sides, ts_ms)
    assert (gapped.hits, gapped.scored, gapped.flat, gapped.gaps) == (2, 2, 1, 1)
    no_forecast = directional_hit_rate(prices, [0, 0, 0, 0, 0])
    assert no_forecast.scored == 0 and no_forecast.rate is None


def test_max_drawdown() -> None:
    assert max_drawdown_pct([100.0, 120.0, 90.0, 130.0, 65.0]) == pytest.approx(50.0)
    assert max_drawdown_pct([1.0, 2.0, 3.0]) == 0.0
    assert max_drawdown_pct([]) == 0.0


def test_buy_and_hold_buys_once_and_is_valued_after_the_exit_fee() -> None:
    prices, ts_ms = real_segment(SEGMENTS[1])
    report = run_backtest(prices, trend_sides(prices), ts_ms=ts_ms)
    hold = report.buy_and_hold
    first, last = Decimal(repr(float(prices[0]))), Decimal(repr(float(prices[-1])))
    quantity = (Decimal("9000") / (first * Decimal("1.0025"))).quantize(
        Decimal("1e-8"), "ROUND_DOWN"
    )
    # the paper exchange's fee, rounded to 1e-8 USD (trading.orders.taker_fee_usd)
    entry_fee = (quantity * first * Decimal("0.0025")).quantize(Decimal("1e-8"))
    usd_left = Decimal("10000") - quantity * first - entry_fee
    expected = usd_left + quantity * last * Decimal("0.9975")
    assert hold.trades == 1 and hold.open_at_end
    assert hold.final_equity_usd == expected
    assert hold.return_pct == pytest.approx(float((expected - 10000) / 100))


def test_fees_are_charged() -> None:
    prices, ts_ms = real_segment(SEGMENTS[0])
    sides = trend_sides(prices)
    free = simulate(prices, sides, BacktestConfig(taker_fee_pct=Decimal("0")), ts_ms=ts_ms)
    taxed = simulate(prices, sides, BacktestConfig(), ts_ms=ts_ms)
    assert free.fees_usd == 0
    assert taxed.fees_usd == sum(fill.fee_usd for fill in taxed.fills) > 0
    assert taxed.final_equity_usd < free.final_equity_usd
    first = taxed.fills[0]
    assert first.fee_usd == (first.quote_amount * Decimal("0.0025")).quantize(Decimal("1e-8"))


def test_half_spread_moves_fill_prices_against_the_trader() -> None:
    prices = np.array([100.0, 100.0, 100.0, 100.0])
    sides = [1, 1, -1, -1]
    run = simulate(prices, sides, BacktestConfig(half_spread_pct=Decimal("0.5")))
    assert [fill.price for fill in run.fills] == [Decimal("100.5"), Decimal("99.5")]
    assert list(run.fill_minutes) == [0, 2]


def test_report_says_no_liquidity_gate_and_serialises() -> None:
    prices, ts_ms = real_segment(SEGMENTS[0])
    prices, ts_ms = prices[:5_000], ts_ms[:5_000]
    report = run_backtest(prices, trend_sides(prices), ts_ms=ts_ms)
    assert report.liquidity_gate_applied is False
    assert NO_LIQUIDITY_GATE_NOTE in report.notes
    text = "\n".join(report.lines())
    for phrase in ("hit rate", "strategy", "buy and hold", "random sides", "no liquidity gate"):
        assert phrase in text
    document = json.loads(json.dumps(report.to_dict()))
    assert document["liquidity_gate_applied"] is False
    assert document["hit_rate"]["rate"] == report.hit_rate.rate
    assert Decimal(document["strategy"]["pnl_usd"]) == report.strategy.pnl_usd


def test_a_gated_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="order book"):
        BacktestConfig(strategy=StrategyParams(liquidity_gate=True))


@pytest.mark.parametrize(
    ("prices", "sides"),
    [([1.0, 2.0], [1]), ([1.0, 2.0], [1, 2]), ([1.0, -2.0], [1, 1]), ([1.0, np.nan], [1, 1])],
)
def test_bad_inputs_are_refused(prices: list[float], sides: list[int]) -> None:
    with pytest.raises(ValueError):
        simulate(prices, sides)


def test_timestamps_must_match_the_prices() -> None:
    with pytest.raises(ValueError, match="one timestamp per minute"):
        simulate([1.0, 2.0], [1, 1], ts_ms=[0])
    with pytest.raises(ValueError, match="one timestamp per minute"):
        directional_hit_rate([1.0, 2.0], [1, 1], ts_ms=[0, 60_000, 120_000])


def test_no_minutes_no_trades() -> None:
    run = simulate(np.array([]), np.array([], dtype=np.int8))
    assert run.trades == 0 and run.final_equity_usd == Decimal("10000")


# --- the random baseline --------------------------------------------------------------------


def test_random_sides_are_reproducible_and_flip_as_asked() -> None:
    np.testing.assert_array_equal(random_sides(1_000, 3), random_sides(1_000, 3))
    assert not np.array_equal(random_sides(1_000, 3), random_sides(1_000, 4))
    assert set(np.unique(random_sides(1_000, 3))) == {-1, 1}
    assert side_flip_rate(random_sides(100_000, 1, flip_probability=0.02)) == pytest.approx(
        0.02, abs=0.002
    )
    assert side_flip_rate(random_sides(10, 1, flip_probability=0.0)) == 0.0
    assert side_flip_rate(random_sides(10, 1, flip_probability=1.0)) == 1.0


def test_random_baseline_is_reproducible_with_a_seed() -> None:
    prices, ts_ms = real_segment(SEGMENTS[1])
    prices, ts_ms = prices[:20_000], ts_ms[:20_000]
    config = BacktestConfig(random_seeds=(11, 12, 13))
    first = random_baseline(prices, config, ts_ms, flip_probability=0.01)
    second = random_baseline(prices, config, ts_ms, flip_probability=0.01)
    other = random_baseline(prices, config, ts_ms, flip_probability=0.01, seeds=(14, 15, 16))
    assert first == second
    assert first != other
    assert first.seeds == (11, 12, 13)
    assert first.return_pct_min <= first.return_pct_mean <= first.return_pct_max
    assert first.return_pct_stdev > 0


def test_run_backtest_matches_the_baseline_turnover_to_the_sides() -> None:
    prices, ts_ms = real_segment(SEGMENTS[1])
    prices, ts_ms = prices[:10_000], ts_ms[:10_000]
    sides = trend_sides(prices)
    report = run_backtest(prices, sides, ts_ms=ts_ms)
    assert report.random_baseline.flip_probability == side_flip_rate(sides)
    coin = run_backtest(prices, sides, BacktestConfig(random_flip_probability=0.5), ts_ms=ts_ms)
    assert coin.random_baseline.flip_probability == 0.5
    assert coin.random_baseline.trades_mean > report.random_baseline.trades_mean


def test_the_risk_gate_stops_buys_after_the_daily_loss_and_the_fast_path_jumps_a_day() -> None:
    """Two days of a falling price; buy/sell alternating every 10 minutes for 16 hours, then buy
    until noon of day two: the daily loss limit (1,000 USD, the default) stops the buys until the
    next UTC day, whose first minute buys; the fast path jumps there and takes the same orders."""
    minutes = 2 * 1440
    ts_ms = 1_700_006_400_000 + np.arange(minutes) * 60_000  # 2023-11-15 00:00 UTC
    prices = 40_000.0 * np.exp(-0.0005 * np.arange(minutes))
    sides = np.where((np.arange(minutes) // 10) % 2 == 0, 1, -1).astype(np.int8)
    sides[960:2160] = 1
    fast = simulate(prices, sides, ts_ms=ts_ms)
    slow = simulate(prices, sides, ts_ms=ts_ms, per_minute=True)
    assert_same_run(fast, slow)
    day_two = 1_700_092_800_000
    buys = [fill.ts_event_ms for fill in fast.fills if fill.side.value == "buy"]
    day_one_loss = sum(t.pnl_usd for t in fast.round_trips if t.exit.ts_event_ms < day_two)
    assert day_one_loss <= -1000, "the limit was reached on day one"
    assert not any(day_two - 8 * 3_600_000 <= ts < day_two for ts in buys), "refused on day one"
    assert day_two in buys, "the first minute of the next UTC day buys"
    assert fast.strategy_calls < slow.strategy_calls - 1000
