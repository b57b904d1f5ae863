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


def measure(
    label: str,
    training: pd.DataFrame,
    holdout: pd.DataFrame,
    *,
    forecast_timing: bool = True,
    **kwargs: Any,
) -> dict:
    frame = prepare(training)
    model = train(frame, **kwargs)
    span = int(
        (pd.Timestamp(holdout["ts"].iloc[-1]) - pd.Timestamp(training["ts"].iloc[-1]))
        / pd.Timedelta(minutes=1)
    )
    score = score_forecast(forecast(model, minutes=span), holdout, model.train_last)
    forecast_seconds = float("nan")
    if forecast_timing:
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
        "forecast_150k_seconds": round(forecast_seconds, 3) if forecast_timing else None,
    }
    print(
        f"{label:<28} rows {row['train_rows']:>9,} fit rows {row['fit_rows']:>7,} "
        f"fit {row['fit_seconds']:>7.1f} s (train {row['train_seconds']:.1f} s)  RMSE {row['rmse_log_price']:.5f}  "
        f"hit {row['hit_rate']:.4f}  forecast 150k {forecast_seconds:.2f} s",
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
        help="instead: walk-forward over the 7 Binance segments (each its last 7 days held out),"
        " stock vs fast variants, plus each fast variant's fit time on 1M minutes",
    )
    parser.add_argument(
        "--variants",
        default="",
        help=f"with --segments: comma-separated keys of {', '.join(SEGMENT_VARIANTS)}",
    )
    parser.add_argument("--skip-million", action="store_true", help="with --segments: no 1M fits")
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


SEGMENT_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    # key: (label, train kwargs); ``--variants`` picks keys. cp = changepoints.
    "stock": ("stock Prophet (book)", {"book_parity": True}),
    "rows10k": (
        "buckets within 10k rows, 25 cp (the old default)",
        {"options": TrainOptions(max_fit_rows=10_000)},
    ),
    "rows10kcp10": (
        "buckets within 10k rows, 10 cp",
        {"options": TrainOptions(max_fit_rows=10_000, n_changepoints=10)},
    ),
    "rows10kcp5": (
        "buckets within 10k rows, 5 cp",
        {"options": TrainOptions(max_fit_rows=10_000, n_changepoints=5)},
    ),
    "b15": ("15-min buckets, 25 cp", {"options": TrainOptions(bucket_minutes=15)}),
    "b15cp10": (
        "15-min buckets, 10 cp",
        {"options": TrainOptions(bucket_minutes=15, n_changepoints=10)},
    ),
    "b60": ("60-min buckets, 25 cp", {"options": TrainOptions(bucket_minutes=60)}),
    "b60cp10": (
        "60-min buckets, 10 cp",
        {"options": TrainOptions(bucket_minutes=60, n_changepoints=10)},
    ),
    "rows50k": (
        "every minute up to 50k rows, then buckets, 25 cp (the default since 2026-12-07)",
        {"options": TrainOptions(max_fit_rows=50_000)},
    ),
    "rows50kcp10": (
        "every minute up to 50k rows, then buckets, 10 cp",
        {"options": TrainOptions(max_fit_rows=50_000, n_changepoints=10)},
    ),
}


def million_fit_seconds(million: pd.DataFrame, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``train`` on the 1M-minute series (prepare excluded): fit and whole-train seconds."""
    frame = prepare(million)
    model = train(frame, **kwargs)
    return {
        "fit_seconds_1m": round(model.fit_seconds, 2),
        "train_seconds_1m": round(model.train_seconds, 2),
        "fit_rows_1m": model.fit_rows,
        "bucket_minutes_1m": model.bucket_minutes,
    }


def segments(args: argparse.Namespace) -> None:
    """Walk-forward on every Binance segment: its last 7 days held out, the rest trains; every
    variant of ``SEGMENT_VARIANTS`` (or ``--variants``) on each, then each fast variant's fit
    time on 1,000,000 minutes (stock is not run there: > 15 min). Verdict per variant: held-out
    RMSE(log) no worse than stock's on every segment, and the 1M fit at most 180 s."""
    keys = [key.strip() for key in args.variants.split(",")] if args.variants else []
    keys = keys or list(SEGMENT_VARIANTS)
    unknown = [key for key in keys if key not in SEGMENT_VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; choose from {list(SEGMENT_VARIANTS)}")
    if args.skip_stock and "stock" in keys:
        keys.remove("stock")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = RESULTS / f"forecast_segments_{stamp}.json"
    rows: list[dict[str, Any]] = []
    million_rows: dict[str, dict[str, Any]] = {}

    def save() -> None:
        if args.no_save:
            return
        RESULTS.mkdir(exist_ok=True)
        payload = {"machine": platform.platform(), "cpus": _cpus(), "rows": rows}
        out.write_text(json.dumps({**payload, "million": million_rows}, indent=2))

    for path in sorted(MINUTE_DIR.glob("binance_*.csv.gz")):
        training, holdout = split_holdout(load_bars_file(path), 7.0)
        print(f"segment {path.name}: {len(training):,} training minutes", flush=True)
        for key in keys:
            label, kwargs = SEGMENT_VARIANTS[key]
            row = measure(f"  {key}", training, holdout, forecast_timing=False, **kwargs)
            row.pop("model")
            rows.append({"segment": path.name, "variant": key, **row, "label": label})
            save()
    if not args.skip_million:
        training_all, _ = split_holdout(real_minutes(), 7.0)
        million = synthetic_million(training_all)
        for key in keys:
            if key == "stock":
                continue
            million_rows[key] = million_fit_seconds(million, SEGMENT_VARIANTS[key][1])
            print(f"  1M minutes {key:<12} {million_rows[key]}", flush=True)
            save()
    print_segment_table(rows, million_rows, keys)
    if not args.no_save:
        print(f"saved {out}")


def print_segment_table(
    rows: list[dict[str, Any]], million_rows: dict[str, dict[str, Any]], keys: list[str]
) -> None:
    """Markdown: one row per segment and variant, then a verdict per variant."""
    stock = {row["segment"]: row for row in rows if row["variant"] == "stock"}
    print("| segment | variant | fit rows | fit s | RMSE(log) | vs stock | hit rate |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        base = stock.get(row["segment"])
        ratio = (
            f"{row['rmse_log_price'] / base['rmse_log_price'] - 1:+.1%}"
            if base and base["rmse_log_price"]
            else "-"
        )
        print(
            f"| {row['segment'][16:37]} | {row['variant']} | {row['fit_rows']:,} | "
            f"{row['fit_seconds']:.1f} | {row['rmse_log_price']:.5f} | {ratio} | "
            f"{row['hit_rate']:.4f} |"
        )
    print()
    print(
        "| variant | mean RMSE(log) | pooled hit | total fit s (7 seg) | segments worse than "
        "stock | fit s on 1M | verdict |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for key in keys:
        mine = [row for row in rows if row["variant"] == key]
        if not mine:
            continue
        rmse = float(np.mean([row["rmse_log_price"] for row in mine]))
        hits = sum(row["hit_rate"] * row["holdout_minutes"] for row in mine) / sum(
            row["holdout_minutes"] for row in mine
        )
        seconds = sum(row["fit_seconds"] for row in mine)
        worse = [
            row["segment"][16:26]
            for row in mine
            if row["segment"] in stock
            and row["rmse_log_price"] > stock[row["segment"]]["rmse_log_price"]
        ]
        million = million_rows.get(key, {}).get("fit_seconds_1m")
        million_text = "-" if million is None else f"{million:.1f}"
        ok = key != "stock" and not worse and million is not None and million <= 180
        print(
            f"| {key} | {rmse:.5f} | {hits:.4f} | {seconds:.1f} | "
            f"{len(worse)} {' '.join(worse)} | {million_text} | {'meets' if ok else '-'} |"
        )


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
