"""Prophet on log price: prepare, train (fast default or the book's stock settings), forecast.

Default fit, chosen by measurement (``python -m bench.forecast_train --segments``, 2026-12-07,
2-core machine shared with other work; the full table is in docs/forecast.md):
walk-forward over the 7 real Binance segments of ../shared/data/minute (each: train on the
segment minus its last 7 days, score those 7 days: RMSE of log price, hit rate), stock Prophet
against 9 fast variants, plus each variant's fit on 1,000,000 minutes. The rule: held-out RMSE no
worse than stock Prophet's on **every** segment, and the fit at most 3 min on 1M minutes.

- Only one variant meets it: **every minute up to** ``max_fit_rows = 50,000`` rows, then bucket
  means (the smallest bucket of 1, 5, 15, 30, 60 minutes within 50,000 rows). Below 50,000
  minutes (the nightly 30-day window is 43,200) this *is* stock Prophet's fit (same LBFGS, same
  10,000 iterations, same 25 changepoints: identical RMSE on all 7 segments); on 1M minutes it
  fits 30-minute means (33,334 rows) in 25 s. Cost: 181 s of fitting over the 7 segments instead
  of 23 s.
- The old default (buckets within 10,000 rows, i.e. 5-minute means here): mean RMSE 0.09824 vs
  stock 0.09851, but worse than stock on 5 of 7 segments (up to +13 %).
- 10 changepoints (any bucket size): mean RMSE about 0.073-0.075, far better on average (-46 %
  on 2021, -42 % on 2023-01), but worse than stock on 2 segments (2024-01 +19 %, 2024-10 +14 %):
  an option (``TrainOptions(n_changepoints=10)``), not the default, under the rule above.
- Larger buckets (15, 60 minutes) with 25 changepoints: worse than stock on 4-5 segments.
  Hit rates of every variant are 0.47-0.51 (one standard error is about 0.005 on 10k minutes):
  no model has a directional edge.
- Trend, daily and weekly seasonality live at scales of hours and days, so bucket means keep
  them while Stan's cost grows with the row count; seasonality is chosen by Prophet's own rules
  on the same time span, so it matches the stock model's.
- ``algorithm="LBFGS"`` (Prophet's own choice above 100 rows); earlier measurement (2026-11-27,
  100k minutes): a looser ``tol_rel_grad=1e9`` fits in 2.0 s (RMSE 0.02334 vs stock 0.03466)
  by stopping early with a flatter trend; too little evidence to make it the default.
- Warm start: ``train(..., warm_start=previous)`` passes the previous model's MAP parameters as
  Stan's ``init`` (Prophet keeps its own start where shapes differ): 0.3 s instead of 9.5 s at
  100k, measured refitting the same data (same RMSE and hit rate); the intended nightly case, a
  window moved by a day, is not measured (the unit test warm-starts 4 days from 3).
- ``uncertainty_samples=0`` at forecast time: Prophet then returns no bounds (it would simulate
  1,000 trend paths: 54 s for 150k minutes). The bounds here are cheap and documented:
  ``yhat +- z * sqrt(residual_var + h * step_var)`` on the log scale, where ``residual_var`` is
  the variance of the training minutes' residuals (log price minus the fitted ``yhat``),
  ``step_var`` the variance of one-minute log returns in training, ``h`` the minutes since the
  end of training and ``z`` the normal quantile of ``interval_width`` (0.8, Prophet's default).
  A random-walk widening, not Prophet's trend-change simulation.

``book_parity=True`` is ``Prophet()`` with stock defaults fitted on every minute, as the book
did; its forecast still uses the cheap bounds unless ``prophet_bounds=True``.

The side rule (``sides_from_yhat``): buy at minute ``t`` when ``yhat[t + 1] > yhat[t]``, else
sell, as in the book; the forecast computes one extra minute so the last row has a side too.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

if TYPE_CHECKING:
    from prophet import Prophet

BUY_SIDE, SELL_SIDE = "buy", "sell"
BUCKET_CHOICES = (1, 5, 15, 30, 60)
DEFAULT_HORIZON_MINUTES = 150_000
FORECAST_COLUMNS = ("ds", "yhat", "yhat_lower", "yhat_upper", "side")


class ForecastError(Exception):
    """The input cannot be forecast (too few rows, no price column, ...)."""


@dataclass(frozen=True)
class TrainOptions:
    """How a model is fitted; ``book_parity`` overrides everything with stock Prophet."""

    book_parity: bool = False
    max_fit_rows: int = 50_000  # above this, minutes are averaged into buckets (module doc)
    bucket_minutes: int | None = None  # None: the smallest of BUCKET_CHOICES within max_fit_rows
    n_changepoints: int = 25  # Prophet's default
    tol_rel_grad: float | None = None  # None: cmdstan's LBFGS default (1e7); larger is looser
    iterations: int = 10_000  # LBFGS iteration cap (Prophet's own default)
    interval_width: float = 0.8  # Prophet's default, for the cheap bounds

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ForecastModel:
    """A fitted Prophet model plus what the forecast needs (bounds, training window)."""

    prophet: Prophet
    options: TrainOptions
    train_first: pd.Timestamp  # first training minute (UTC, naive inside Prophet)
    train_last: pd.Timestamp  # last training minute
    train_rows: int  # minute rows given to train
    fit_rows: int  # rows Stan saw (bucket means on the fast path)
    bucket_minutes: int
    residual_std: float  # log scale, over the training minutes
    step_std: float  # std of one-minute log returns in training
    fit_seconds: float  # aggregation and Stan's fit
    train_seconds: float = 0.0  # all of ``train``: also the residuals for the bounds
    extra: dict[str, Any] = field(default_factory=dict)


def _quiet_stan() -> None:
    # cmdstanpy sets its logger to DEBUG on first use when no handler is configured above it:
    # let it do that first, then quiet it (its per-chain INFO lines are not news)
    from cmdstanpy.utils import get_logger

    get_logger()
    for name in ("cmdstanpy", "prophet", "prophet.plot"):
        logging.getLogger(name).setLevel(logging.WARNING)


def prepare(bars: pd.DataFrame) -> pd.DataFrame:
    """Minute bars (``ts`` UTC, ``price`` USD per BTC, as ``load_history`` returns) to Prophet's
    ``ds`` (naive UTC minute) and ``y`` = natural log of the price; sorted, one row per minute.

    ``price`` is the weighted price when the file had one, else the typical price (see
    ``rtcrypto.history``); a frame with only ``close`` uses the close. Rows with a missing or
    non-positive price are dropped.
    """
    if "ts" not in bars.columns:
        raise ForecastError("bars need a 'ts' column (minute open time, UTC)")
    price_column = "price" if "price" in bars.columns else "close"
    if price_column not in bars.columns:
        raise ForecastError("bars need a 'price' (or 'close') column")
    ts = pd.to_datetime(bars["ts"], utc=True).dt.tz_localize(None).astype("datetime64[ns]")
    price = pd.to_numeric(bars[price_column], errors="coerce").to_numpy(dtype=np.float64)
    keep = np.isfinite(price) & (price > 0)
    frame = pd.DataFrame({"ds": ts.to_numpy()[keep], "y": np.log(price[keep])})
    frame = frame.sort_values("ds", kind="stable").drop_duplicates("ds", keep="last")
    return frame.reset_index(drop=True)


def choose_bucket_minutes(rows: int, max_fit_rows: int) -> int:
    """The smallest bucket of ``BUCKET_CHOICES`` that leaves at most ``max_fit_rows`` rows."""
    for bucket in BUCKET_CHOICES:
        if math.ceil(rows / bucket) <= max_fit_rows:
            return bucket
    return BUCKET_CHOICES[-1]


def aggregate(frame: pd.DataFrame, bucket_minutes: int) -> pd.DataFrame:
    """Mean ``y`` per ``bucket_minutes`` bucket, stamped at the mean minute of its rows."""
    if bucket_minutes <= 1:
        return frame
    ds_ns = frame["ds"].to_numpy().astype("datetime64[ns]").astype(np.int64)
    width_ns = bucket_minutes * 60_000_000_000
    bucket = ds_ns // width_ns
    offset_s = (ds_ns - bucket * width_ns) / 1e9  # small numbers: the mean stays exact
    grouped = pd.DataFrame({"bucket": bucket, "offset_s": offset_s, "y": frame["y"].to_numpy()})
    means = grouped.groupby("bucket", sort=True)[["offset_s", "y"]].mean()
    stamp_ns = means.index.to_numpy() * width_ns + np.round(means["offset_s"].to_numpy()) * 1e9
    return pd.DataFrame(
        {"ds": pd.to_datetime(stamp_ns.astype(np.int64)), "y": means["y"].to_numpy()}
    )


def _warm_init(previous: ForecastModel | None) -> dict[str, Any] | None:
    if previous is None:
        return None
    params = previous.prophet.params
    return {
        "k": float(params["k"][0, 0]),
        "m": float(params["m"][0, 0]),
        "delta": np.asarray(params["delta"][0], dtype=np.float64),
        "beta": np.asarray(params["beta"][0], dtype=np.float64),
        "sigma_obs": float(params["sigma_obs"][0, 0]),
    }


def train(
    frame: pd.DataFrame,
    *,
    book_parity: bool = False,
    options: TrainOptions | None = None,
    warm_start: ForecastModel | None = None,
) -> ForecastModel:
    """Fit Prophet on ``prepare``'s frame (``ds``, ``y`` = log price).

    Default: the fast path of the module doc. ``book_parity=True``: ``Prophet()`` with stock
    defaults on every minute (slow: about 147 s per 100k rows on 2 cores).
    """
    from prophet import Prophet

    _quiet_stan()
    options = options or TrainOptions(book_parity=book_parity)
    if book_parity and not options.book_parity:
        options = TrainOptions(**{**options.to_dict(), "book_parity": True})
    if len(frame) < 10:
        raise ForecastError(f"need at least 10 minutes of prices to train, got {len(frame)}")
    started = time.perf_counter()
    if options.book_parity:
        bucket = 1
        fit_frame = frame[["ds", "y"]]
        prophet = Prophet()
        prophet.fit(fit_frame)
    else:
        bucket = options.bucket_minutes or choose_bucket_minutes(len(frame), options.max_fit_rows)
        fit_frame = aggregate(frame[["ds", "y"]], bucket)
        prophet = Prophet(n_changepoints=options.n_changepoints, uncertainty_samples=0)
        fit_kwargs: dict[str, Any] = {"algorithm": "LBFGS", "iter": options.iterations}
        if options.tol_rel_grad is not None:
            fit_kwargs["tol_rel_grad"] = options.tol_rel_grad
        init = _warm_init(warm_start)
        if init is not None:
            fit_kwargs["init"] = init  # Prophet keeps its own start where shapes differ
        prophet.fit(fit_frame, **fit_kwargs)
    fit_seconds = time.perf_counter() - started
    fitted = _predict_yhat(prophet, frame["ds"])
    y = frame["y"].to_numpy()
    steps = np.diff(y)
    return ForecastModel(
        prophet=prophet,
        options=options,
        train_first=pd.Timestamp(frame["ds"].iloc[0]),
        train_last=pd.Timestamp(frame["ds"].iloc[-1]),
        train_rows=len(frame),
        fit_rows=len(fit_frame),
        bucket_minutes=bucket,
        residual_std=float(np.std(y - fitted)),
        step_std=float(np.std(steps)) if len(steps) else 0.0,
        fit_seconds=fit_seconds,
        train_seconds=time.perf_counter() - started,
    )


def _predict_yhat(prophet: Prophet, ds: pd.Series | pd.DatetimeIndex) -> npt.NDArray[np.float64]:
    """``yhat`` only, without uncertainty sampling."""
    saved = prophet.uncertainty_samples
    prophet.uncertainty_samples = 0
    try:
        predicted = prophet.predict(pd.DataFrame({"ds": pd.DatetimeIndex(ds)}))
    finally:
        prophet.uncertainty_samples = saved
    return np.asarray(predicted["yhat"].to_numpy(), dtype=np.float64)


def sides_from_yhat(yhat: npt.ArrayLike) -> npt.NDArray[np.object_]:
    """The book's rule: ``buy`` where ``yhat[t + 1] > yhat[t]``, else ``sell``.

    The last minute has no successor; it repeats the previous side (``sell`` if it is alone).
    Pass one extra minute to get a side for every minute you care about (``forecast`` does).
    """
    values = np.asarray(yhat, dtype=np.float64)
    sides = np.full(len(values), SELL_SIDE, dtype=object)
    if len(values) >= 2:
        sides[:-1] = np.where(values[1:] > values[:-1], BUY_SIDE, SELL_SIDE)
        sides[-1] = sides[-2]
    return sides


def side_codes(sides: npt.ArrayLike) -> npt.NDArray[np.int8]:
    """``buy`` -> +1, ``sell`` -> -1, anything else -> 0 (the backtest's encoding)."""
    values = np.asarray(sides, dtype=object)
    return np.where(values == BUY_SIDE, 1, np.where(values == SELL_SIDE, -1, 0)).astype(np.int8)


def _naive_utc(moment: datetime | str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.floor("min")


def forecast(
    model: ForecastModel,
    start: datetime | str | pd.Timestamp | None = None,
    minutes: int = DEFAULT_HORIZON_MINUTES,
    *,
    prophet_bounds: bool = False,
) -> pd.DataFrame:
    """``minutes`` rows from ``start`` (default: the minute after training), one per minute.

    Columns: ``ds`` (UTC), ``yhat``, ``yhat_lower``, ``yhat_upper`` (log price) and ``side``
    (``buy`` / ``sell``, see ``sides_from_yhat``). Bounds are the cheap ones of the module doc;
    ``prophet_bounds=True`` asks Prophet to simulate them instead (about 54 s per 150k minutes).
    """
    if minutes <= 0:
        raise ForecastError(f"minutes must be > 0, got {minutes}")
    begin = model.train_last + pd.Timedelta(minutes=1) if start is None else _naive_utc(start)
    ds = pd.date_range(begin, periods=minutes + 1, freq="min")
    prophet = model.prophet
    if prophet_bounds:
        saved = prophet.uncertainty_samples
        prophet.uncertainty_samples = saved or 1000  # Prophet's default number of paths
        try:
            predicted = prophet.predict(pd.DataFrame({"ds": ds}))
        finally:
            prophet.uncertainty_samples = saved
        yhat = predicted["yhat"].to_numpy()
        lower = predicted["yhat_lower"].to_numpy()[:minutes]
        upper = predicted["yhat_upper"].to_numpy()[:minutes]
    else:
        yhat = _predict_yhat(prophet, ds)
        horizon = np.maximum((ds[:minutes] - model.train_last) / pd.Timedelta(minutes=1), 0.0)
        z = NormalDist().inv_cdf(0.5 + model.options.interval_width / 2)
        half_width = z * np.sqrt(
            model.residual_std**2 + np.asarray(horizon, dtype=np.float64) * model.step_std**2
        )
        lower = yhat[:minutes] - half_width
        upper = yhat[:minutes] + half_width
    sides = sides_from_yhat(yhat)
    return pd.DataFrame(
        {
            "ds": ds[:minutes].tz_localize("UTC"),
            "yhat": yhat[:minutes],
            "yhat_lower": lower,
            "yhat_upper": upper,
            "side": sides[:minutes],
        }
    )


def components_frame(model: ForecastModel, ds: pd.DatetimeIndex) -> pd.DataFrame:
    """Prophet's components (trend, daily, weekly, ...) at ``ds`` (naive UTC), for plots."""
    saved = model.prophet.uncertainty_samples
    model.prophet.uncertainty_samples = 0
    try:
        return model.prophet.predict(pd.DataFrame({"ds": ds}))
    finally:
        model.prophet.uncertainty_samples = saved
