"""Walk-forward backtest of the forecast on real minute segments: train on the earlier part,
forecast the following days, score only the held-out minutes (never one seen in training).

Per segment: the last ``holdout_days`` days are held out; the model trains on the minutes before
them; its forecast starts at the minute after training; the held-out minutes' sides come from
the forecast rows with the same ``ds``; ``run_backtest`` scores them (close prices, fees, no
liquidity gate) with the buy-and-hold and random baselines, plus the forecast's RMSE of log
price on those minutes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rtcrypto.forecast.model import (
    ForecastError,
    ForecastModel,
    TrainOptions,
    forecast,
    prepare,
    side_codes,
    train,
)
from rtcrypto.trading.backtest import BacktestConfig, BacktestReport, run_backtest

DEFAULT_HOLDOUT_DAYS = 7.0
MINUTE = pd.Timedelta(minutes=1)


class SeenMinuteError(AssertionError):
    """A minute the model was trained on reached the scoring: the backtest would lie."""


@dataclass(frozen=True)
class HoldoutScore:
    """The forecast scored on held-out minutes."""

    report: BacktestReport
    rmse_log_price: float
    minutes: int

    def metrics(self) -> dict[str, Any]:
        """The gate's and metadata's numbers (JSON-friendly)."""
        strategy = self.report.strategy
        return {
            "minutes": self.minutes,
            "hit_rate": self.report.hit_rate.rate,
            "rmse_log_price": self.rmse_log_price,
            "return_pct": strategy.return_pct,
            "pnl_usd": str(strategy.pnl_usd),
            "buy_and_hold_return_pct": self.report.buy_and_hold.return_pct,
            "random_return_pct_mean": self.report.random_baseline.return_pct_mean,
            "max_drawdown_pct": strategy.max_drawdown_pct,
            "trades": strategy.trades,
            "taker_fee_pct": str(self.report.taker_fee_pct),
            "liquidity_gate_applied": self.report.liquidity_gate_applied,
        }


@dataclass(frozen=True)
class SegmentResult:
    name: str
    train_first: pd.Timestamp
    train_last: pd.Timestamp
    holdout_first: pd.Timestamp
    holdout_last: pd.Timestamp
    train_rows: int
    fit_seconds: float
    score: HoldoutScore

    def lines(self) -> list[str]:
        report = self.score.report
        return [
            f"segment {self.name}: trained on {self.train_rows:,} minutes "
            f"{self.train_first:%Y-%m-%d %H:%M} .. {self.train_last:%Y-%m-%d %H:%M} "
            f"(fit {self.fit_seconds:.1f} s); scored {self.score.minutes:,} held-out minutes "
            f"{self.holdout_first:%Y-%m-%d %H:%M} .. {self.holdout_last:%Y-%m-%d %H:%M}",
            f"  RMSE of log price {self.score.rmse_log_price:.5f}",
            *report.lines(),
            f"  edge: {edge_verdict(report)}",
        ]


def edge_verdict(report: BacktestReport) -> str:
    """A sober one-line reading of a report; never a profit claim."""
    strategy = report.strategy.return_pct
    baseline = report.random_baseline
    rate = report.hit_rate.rate
    beats_random = strategy > baseline.return_pct_max
    beats_hold = strategy > report.buy_and_hold.return_pct
    rate_text = "-" if rate is None else f"{rate:.4f}"
    if beats_random and beats_hold and rate is not None and rate > 0.5:
        return (
            f"better than every random run and buy-and-hold here (hit rate {rate_text}); one "
            "segment is not evidence of an edge"
        )
    return (
        f"no edge shown: hit rate {rate_text}, strategy {strategy:+.3f} % vs random "
        f"{baseline.return_pct_min:+.3f} .. {baseline.return_pct_max:+.3f} % and buy-and-hold "
        f"{report.buy_and_hold.return_pct:+.3f} %"
    )


def load_bars_file(path: Path) -> pd.DataFrame:
    """Minute bars of one real file (any layout ``rtcrypto.history`` reads), via a scratch import.

    The import's validation (sorting, duplicates, OHLC sanity) applies; nothing is kept.
    """
    from rtcrypto.history import import_file, load_history

    with tempfile.TemporaryDirectory(prefix="rtc-forecast-") as scratch:
        report = import_file(path, history_dir=Path(scratch))
        return load_history(report.source, history_dir=Path(scratch))


def split_holdout(
    bars: pd.DataFrame, holdout_days: float = DEFAULT_HOLDOUT_DAYS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``bars`` before the last ``holdout_days`` days, and those days."""
    if bars.empty:
        raise ForecastError("no bars to split")
    ts = pd.to_datetime(bars["ts"], utc=True)
    cut = ts.iloc[-1] + MINUTE - pd.Timedelta(days=holdout_days)
    training = bars[ts < cut].reset_index(drop=True)
    holdout = bars[ts >= cut].reset_index(drop=True)
    if len(training) < 10 or holdout.empty:
        raise ForecastError(
            f"{len(bars)} minutes cannot be split into training and {holdout_days} held-out days"
        )
    return training, holdout


def score_forecast(
    forecast_frame: pd.DataFrame,
    holdout: pd.DataFrame,
    trained_until: pd.Timestamp,
    config: BacktestConfig | None = None,
) -> HoldoutScore:
    """Score ``forecast_frame``'s sides and ``yhat`` on the ``holdout`` bars it covers.

    ``trained_until`` is the last minute (UTC) the model saw; a held-out minute at or before it
    raises ``SeenMinuteError``. Minutes without a forecast row are left out.
    """
    holdout_ts = pd.to_datetime(holdout["ts"], utc=True)
    last_seen = _utc(trained_until)
    if len(holdout_ts) and holdout_ts.min() <= last_seen:
        raise SeenMinuteError(
            f"held-out minute {holdout_ts.min()} is not after the last training minute {last_seen}"
        )
    fc = forecast_frame.assign(ds=pd.to_datetime(forecast_frame["ds"], utc=True))
    joined = pd.DataFrame(
        {
            "ds": holdout_ts,
            "close": holdout["close"].to_numpy(),
            "price": holdout["price"].to_numpy(),
        }
    ).merge(fc[["ds", "yhat", "side"]], on="ds", how="inner")
    if joined.empty:
        raise ForecastError("the forecast covers none of the held-out minutes")
    assert joined["ds"].min() > last_seen  # never score a minute seen in training
    ts_ms = joined["ds"].dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64)
    report = run_backtest(
        joined["close"].to_numpy(),
        side_codes(joined["side"].to_numpy()),
        config or BacktestConfig(),
        ts_ms=ts_ms,
    )
    error = np.log(joined["price"].to_numpy()) - joined["yhat"].to_numpy()
    return HoldoutScore(
        report=report, rmse_log_price=float(np.sqrt(np.mean(error**2))), minutes=len(joined)
    )


def _utc(moment: pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def walk_forward_segment(
    name: str,
    bars: pd.DataFrame,
    *,
    holdout_days: float = DEFAULT_HOLDOUT_DAYS,
    book_parity: bool = False,
    options: TrainOptions | None = None,
    config: BacktestConfig | None = None,
) -> tuple[SegmentResult, ForecastModel]:
    """Train on ``bars`` before the last ``holdout_days`` days, score the forecast on those days."""
    training, holdout = split_holdout(bars, holdout_days)
    model = train(prepare(training), book_parity=book_parity, options=options)
    holdout_ts = pd.to_datetime(holdout["ts"], utc=True)
    span = int((holdout_ts.iloc[-1] - _utc(model.train_last)) / MINUTE)
    frame = forecast(model, minutes=span)
    score = score_forecast(frame, holdout, model.train_last, config)
    result = SegmentResult(
        name=name,
        train_first=_utc(model.train_first),
        train_last=_utc(model.train_last),
        holdout_first=holdout_ts.iloc[0],
        holdout_last=holdout_ts.iloc[-1],
        train_rows=model.train_rows,
        fit_seconds=model.fit_seconds,
        score=score,
    )
    return result, model


def walk_forward(
    files: list[Path],
    *,
    holdout_days: float = DEFAULT_HOLDOUT_DAYS,
    book_parity: bool = False,
    config: BacktestConfig | None = None,
    on_segment: Callable[[SegmentResult], None] | None = None,
) -> list[SegmentResult]:
    """``walk_forward_segment`` on every file, each its own segment (files are not joined)."""
    results = []
    for path in files:
        result, _ = walk_forward_segment(
            path.name.split(".csv")[0],
            load_bars_file(path),
            holdout_days=holdout_days,
            book_parity=book_parity,
            config=config,
        )
        if on_segment is not None:
            on_segment(result)
        results.append(result)
    return results
