"""Backtest throughput: minutes per second through the strategy function and the ledger.

    .venv/bin/python -m bench.backtest_throughput [--repeat 5] [--no-save]

On every real Binance segment in ../shared/data/minute (320,000 minutes), for three side series:

- ``trend60`` / ``trend240`` / ``trend1440``: +1 while the 60- / 240- / 1440-minute EMA of the
  close rises, else -1: smooth stand-ins for a forecast's side (no model is trained here; a
  Prophet forecast, a trend plus daily and weekly waves, changes side about as often as the
  slower ones);
- ``coin``: an independent coin per minute, the worst case (a side change every other minute).

Each is run twice with identical results checked: ``naive`` calls ``strategy.decide_order`` at
every minute; ``fast`` calls it only at side changes and while it keeps acting (see
``rtcrypto.trading.backtest``). Both include the ledger's Decimal fills and the equity curve; loading the
CSV is not timed. Rates are total minutes / total seconds over the segments, median and best of
``--repeat`` runs. ``full report`` times ``run_backtest`` (strategy, buy-and-hold, five random
baselines at the same turnover, hit rate) per minute of data. Not a test: figures vary with load.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from rtcrypto.trading.backtest import BacktestConfig, run_backtest, side_flip_rate, simulate

MINUTE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "minute"


def load_segment(path: Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    frame = pd.read_csv(path)
    ts_ms = pd.to_datetime(frame["timestamp"], utc=True).astype("int64").to_numpy() // 1_000_000
    return frame["close"].to_numpy(), ts_ms


def ema_sides(prices: npt.NDArray[np.float64], span: int) -> npt.NDArray[np.int8]:
    ema = pd.Series(prices).ewm(span=span).mean().to_numpy()
    return np.where(np.diff(ema, prepend=ema[0]) >= 0, 1, -1).astype(np.int8)


def coin_sides(minutes: int, seed: int) -> npt.NDArray[np.int8]:
    return np.where(np.random.default_rng(seed).random(minutes) < 0.5, 1, -1).astype(np.int8)


def timed(function, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results")
    args = parser.parse_args()

    paths = sorted(MINUTE_DIR.glob("binance_BTCUSDT_1m_*.csv.gz"))
    if not paths:
        raise SystemExit(f"no Binance segments in {MINUTE_DIR} (see ../shared/data/README.md)")
    segments = [(path.name, *load_segment(path)) for path in paths]
    minutes_total = sum(len(prices) for _, prices, _ in segments)
    config = BacktestConfig()
    signals = {
        "trend60": lambda prices, index: ema_sides(prices, 60),
        "trend240": lambda prices, index: ema_sides(prices, 240),
        "trend1440": lambda prices, index: ema_sides(prices, 1440),
        "coin": lambda prices, index: coin_sides(len(prices), index),
    }
    print(
        f"{len(segments)} real Binance segments, {minutes_total:,} minutes; median / best of "
        f"{args.repeat}"
    )
    header = (
        f"{'sides':<9} {'flips/min':>9} {'trades':>8} {'naive min/s':>12} "
        f"{'(best)':>11} {'fast min/s':>12} {'(best)':>11} {'speed-up':>8}"
    )
    print(header)
    results = {}
    for name, make in signals.items():
        inputs = [(prices, ts_ms, make(prices, i)) for i, (_, prices, ts_ms) in enumerate(segments)]
        trades = 0
        for prices, ts_ms, sides in inputs:
            fast = simulate(prices, sides, config, ts_ms=ts_ms)
            slow = simulate(prices, sides, config, ts_ms=ts_ms, per_minute=True)
            if fast.fills != slow.fills or fast.final_equity_usd != slow.final_equity_usd:
                raise SystemExit(f"{name}: the fast path differs from the per-minute loop")
            trades += fast.trades

        def run_all(per_minute: bool, inputs=inputs) -> None:  # type: ignore[no-untyped-def]
            for prices, ts_ms, sides in inputs:
                simulate(prices, sides, config, ts_ms=ts_ms, per_minute=per_minute)

        naive = timed(lambda run_all=run_all: run_all(True), args.repeat)
        fast = timed(lambda run_all=run_all: run_all(False), args.repeat)
        flips = statistics.fmean(side_flip_rate(sides) for _, _, sides in inputs)
        row = {
            "flip_rate": flips,
            "trades": trades,
            "naive_minutes_per_s_median": minutes_total / statistics.median(naive),
            "naive_minutes_per_s_best": minutes_total / min(naive),
            "fast_minutes_per_s_median": minutes_total / statistics.median(fast),
            "fast_minutes_per_s_best": minutes_total / min(fast),
        }
        results[name] = row
        print(
            f"{name:<9} {flips:>9.4f} {trades:>8,} "
            f"{row['naive_minutes_per_s_median']:>12,.0f} {row['naive_minutes_per_s_best']:>11,.0f} "
            f"{row['fast_minutes_per_s_median']:>12,.0f} {row['fast_minutes_per_s_best']:>11,.0f} "
            f"{statistics.median(naive) / statistics.median(fast):>7.1f}x"
        )

    trend_inputs = [(prices, ts_ms, ema_sides(prices, 60)) for _, prices, ts_ms in segments]
    full = timed(
        lambda: [run_backtest(p, s, config, ts_ms=t) for p, t, s in trend_inputs],
        max(1, args.repeat // 2),
    )
    results["full_report_trend60_minutes_per_s"] = minutes_total / statistics.median(full)
    print(
        f"full report (trend60: strategy + buy-and-hold + 5 random baselines + hit rate): "
        f"{results['full_report_trend60_minutes_per_s']:,.0f} minutes of data per second"
    )
    if not args.no_save:
        from bench.common import save

        path = save("backtest_throughput", {"minutes": minutes_total, "results": results})
        print(f"saved {path}")


if __name__ == "__main__":
    main()
