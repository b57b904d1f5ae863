"""Forecast training speed and held-out error: stock Prophet vs the fast path.

    .venv/bin/python -m bench.forecast_train [--skip-stock] [--no-save]

Data (real, say so honestly): the seven Binance BTCUSDT minute segments of ../shared/data/minute
concatenated in time order (about 300,000 minutes with months-long gaps between segments). The
held-out set is the last 7 days of the last segment; every model trains only on minutes before
it and is scored on it (RMSE of log price; directional hit rate of the forecast side against the
next minute's close).

Rows: ``stock`` = ``Prophet()`` with stock defaults on 100k minutes (as the book); ``fast`` and
its variants on the same 100k; ``fast`` on all real minutes; ``fast`` at 1,000,000 minutes, a
series that does NOT exist in the shared data: one-minute log returns of the real segments
chained (tiled) backwards from the held-out start until 1M minutes, then shifted to end on the
real price level (real return statistics, not a real price history). Forecast time is
``forecast(model, minutes=150_000)``. Results: printed and saved to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rtcrypto.forecast import TrainOptions, forecast, prepare, train
from rtcrypto.forecast.walkforward import load_bars_file, score_forecast, split_holdout

MINUTE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "minute"
RESULTS = Path(__file__).resolve().parent / "results"


def real_minutes() -> pd.DataFrame:
    files = sorted(MINUTE_DIR.glob("binance_*.csv.gz"))
    if not files:
        raise SystemExit(f"no Binance minute files in {MINUTE_DIR}")
    bars = pd.concat([load_bars_file(path) for path in files], ignore_index=True)
    return bars.sort_values("ts").reset_index(drop=True)


def synthetic_million(training: pd.DataFrame, rows: int = 1_000_000) -> pd.DataFrame:
    """``rows`` contiguous minutes ending at the last training minute, from real returns tiled."""
    log_price = np.log(training["price"].to_numpy())
    returns = np.diff(log_price)
    ts_ns = pd.to_datetime(training["ts"], utc=True).dt.tz_convert(None).to_numpy()
    gaps = np.diff(ts_ns.astype("datetime64[ns]").astype(np.int64)) != 60_000_000_000
    returns = returns[~gaps]  # no jump across the months between segments
    tiled = np.resize(returns, rows - 1)
    path = np.concatenate(([0.0], np.cumsum(tiled)))
    path += log_price[-1] - path[-1]
    end = pd.Timestamp(training["ts"].iloc[-1])
    ts = pd.date_range(end=end, periods=rows, freq="min")
    price = np.exp(path)
    return pd.DataFrame({"ts": ts, "price": price, "close": price})


def measure(label: str, training: pd.DataFrame, holdout: pd.DataFrame, **kwargs: Any) -> dict:
    frame = prepare(training)
    model = train(frame, **kwargs)
    span = int(
        (pd.Timestamp(holdout["ts"].iloc[-1]) - pd.Timestamp(training["ts"].iloc[-1]))
        / pd.Timedelta(minutes=1)
    )
    score = score_forecast(forecast(model, minutes=span), holdout, model.train_last)
    started = time.perf_counter()
    forecast(model, minutes=150_000)
    forecast_seconds = time.perf_counter() - started
    row = {
        "label": label,
        "train_rows": model.train_rows,
        "fit_rows": model.fit_rows,
        "bucket_minutes": model.bucket_minutes,
        "fit_seconds": round(model.fit_seconds, 2),
        "train_seconds": round(model.train_seconds, 2),
        "holdout_minutes": score.minutes,
        "rmse_log_price": round(score.rmse_log_price, 5),
        "hit_rate": score.report.hit_rate.rate,
        "forecast_150k_seconds": round(forecast_seconds, 3),
    }
    print(
        f"{label:<28} rows {row['train_rows']:>9,} fit rows {row['fit_rows']:>7,} "
        f"fit {row['fit_seconds']:>7.1f} s (train {row['train_seconds']:.1f} s)  RMSE {row['rmse_log_price']:.5f}  "
        f"hit {row['hit_rate']:.4f}  forecast 150k {row['forecast_150k_seconds']:.2f} s",
        flush=True,
    )
    row["model"] = model
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-stock", action="store_true", help="no stock Prophet fit (147 s)")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument(
        "--segments",
        action="store_true",
        help="instead: stock vs fast on each segment's walk-forward split (7 held-out weeks)",
    )
    args = parser.parse_args()
    if args.segments:
        segments(args)
        return

    bars = real_minutes()
    training_all, holdout = split_holdout(bars, 7.0)
    last_100k = training_all.iloc[-100_000:].reset_index(drop=True)
    print(
        f"real minutes {len(bars):,}; held out {len(holdout):,} minutes "
        f"{holdout['ts'].iloc[0]} .. {holdout['ts'].iloc[-1]}",
        flush=True,
    )
    rows = []
    if not args.skip_stock:
        rows.append(measure("stock Prophet, 100k", last_100k, holdout, book_parity=True))
    fast = measure("fast (default), 100k", last_100k, holdout)
    rows.append(fast)
    rows.append(
        measure(
            "fast, 5-min buckets, 100k", last_100k, holdout, options=TrainOptions(bucket_minutes=5)
        )
    )
    rows.append(
        measure(
            "fast, 60-min buckets, 100k",
            last_100k,
            holdout,
            options=TrainOptions(bucket_minutes=60),
        )
    )
    rows.append(
        measure(
            "fast, 10 changepoints, 100k",
            last_100k,
            holdout,
            options=TrainOptions(n_changepoints=10),
        )
    )
    rows.append(
        measure(
            "fast, tol_rel_grad 1e9, 100k",
            last_100k,
            holdout,
            options=TrainOptions(tol_rel_grad=1e9),
        )
    )
    rows.append(measure("fast, warm start, 100k", last_100k, holdout, warm_start=fast["model"]))
    rows.append(measure("fast, all real minutes", training_all, holdout))
    million = synthetic_million(training_all)
    rows.append(measure("fast, 1M (real returns tiled)", million, holdout))
    for row in rows:
        row.pop("model")
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"forecast_train_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
        out.write_text(
            json.dumps({"machine": platform.platform(), "cpus": _cpus(), "rows": rows}, indent=2)
        )
        print(f"saved {out}")


def segments(args: argparse.Namespace) -> None:
    """Stock vs fast variants on every Binance segment: last 7 days held out, the rest trains."""
    variants: dict[str, dict[str, Any]] = {
        "stock": {"book_parity": True},
        "fast (default)": {},
        "fast, 60-min buckets": {"options": TrainOptions(bucket_minutes=60)},
        "fast, 60-min, tol_rel_grad 1e9": {
            "options": TrainOptions(bucket_minutes=60, tol_rel_grad=1e9)
        },
    }
    if args.skip_stock:
        variants.pop("stock")
    rows = []
    for path in sorted(MINUTE_DIR.glob("binance_*.csv.gz")):
        training, holdout = split_holdout(load_bars_file(path), 7.0)
        print(f"segment {path.name}: {len(training):,} training minutes", flush=True)
        for label, kwargs in variants.items():
            row = measure(f"  {label}", training, holdout, **kwargs)
            row.pop("model")
            rows.append({"segment": path.name, "variant": label, **row})
    print("summary over segments (mean RMSE of log price, pooled hit rate, total fit seconds):")
    for label in variants:
        mine = [row for row in rows if row["variant"] == label]
        rmse = float(np.mean([row["rmse_log_price"] for row in mine]))
        hits = sum(row["hit_rate"] * row["holdout_minutes"] for row in mine) / sum(
            row["holdout_minutes"] for row in mine
        )
        seconds = sum(row["fit_seconds"] for row in mine)
        print(f"  {label:<32} RMSE {rmse:.5f}  hit {hits:.4f}  fit {seconds:7.1f} s", flush=True)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        out = RESULTS / f"forecast_segments_{stamp}.json"
        out.write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=2))
        print(f"saved {out}")


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
