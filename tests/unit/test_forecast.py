"""Forecast on real minute data: the side rule, prepare, a small fast fit, walk-forward that never
scores a training minute, the publish gate, artifacts and ``load_current``.

Data: the real files of ../shared/data/minute (the tests fail, never skip, when missing). Each
Prophet fit here uses a few days of minutes and takes a few seconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from rtcrypto.cli.forecast import app as forecast_app
from rtcrypto.forecast import (
    FORECAST_COLUMNS,
    ForecastError,
    TrainOptions,
    aggregate,
    choose_bucket_minutes,
    forecast,
    prepare,
    side_codes,
    sides_from_yhat,
    train,
)
from rtcrypto.forecast.publish import (
    CURRENT_POINTER,
    VERSIONS_DIR,
    NoCurrentForecastError,
    _write_pointer,
    current_version,
    gate,
    load_current,
    publish,
)
from rtcrypto.forecast.walkforward import (
    SeenMinuteError,
    load_bars_file,
    score_forecast,
    split_holdout,
    walk_forward_segment,
)
from rtcrypto.trading.backtest import BacktestConfig
from tests.helpers import shared_minute_file

QUICK = TrainOptions(bucket_minutes=15)  # 4 days -> 384 rows: a fit in well under a second
BINANCE_2024 = "binance_BTCUSDT_1m_2024-01-01_2024-01-21.csv.gz"
KAGGLE_HEAD = "kaggle_bitstamp_btcusd_1-min_head_2012-01-01_2012-01-08.csv.gz"


@pytest.fixture(scope="module")
def binance_bars() -> pd.DataFrame:
    return load_bars_file(shared_minute_file(BINANCE_2024))


@pytest.fixture(scope="module")
def four_days(binance_bars: pd.DataFrame) -> pd.DataFrame:
    return binance_bars.iloc[: 4 * 1440].reset_index(drop=True)


# --- the side rule ------------------------------------------------------------------------------


def test_sides_buy_where_the_next_minute_rises_else_sell() -> None:
    sides = sides_from_yhat([1.0, 2.0, 2.0, 1.5, 1.7])
    assert sides.tolist() == ["buy", "sell", "sell", "buy", "buy"]  # last repeats the previous
    assert sides_from_yhat([3.0]).tolist() == ["sell"]
    assert sides_from_yhat([]).tolist() == []
    assert side_codes(np.array(["buy", "sell", None], dtype=object)).tolist() == [1, -1, 0]


# --- prepare ------------------------------------------------------------------------------------


def test_prepare_binance_head_is_log_of_typical_price(binance_bars: pd.DataFrame) -> None:
    frame = prepare(binance_bars.head(1000))
    assert list(frame.columns) == ["ds", "y"]
    assert frame["ds"].dt.tz is None and frame["ds"].is_monotonic_increasing
    assert frame["ds"].iloc[0] == pd.Timestamp("2024-01-01 00:00")
    first = binance_bars.iloc[0]
    typical = (first["high"] + first["low"] + first["close"]) / 3
    assert frame["y"].iloc[0] == pytest.approx(np.log(typical))


def test_prepare_kaggle_head() -> None:
    bars = load_bars_file(shared_minute_file(KAGGLE_HEAD))
    frame = prepare(bars)
    assert len(frame) == len(bars) > 0
    assert frame["ds"].iloc[0] == pd.Timestamp("2012-01-01 10:01")
    assert np.isfinite(frame["y"]).all()


def test_prepare_drops_non_positive_prices_and_needs_ts() -> None:
    bars = pd.DataFrame(
        {"ts": pd.date_range("2024-01-01", periods=3, freq="min", tz="UTC"), "price": [1, 0, 2]}
    )
    assert len(prepare(bars)) == 2
    with pytest.raises(ForecastError, match="ts"):
        prepare(pd.DataFrame({"price": [1.0]}))


def test_aggregate_and_bucket_choice() -> None:
    assert choose_bucket_minutes(9_000, 10_000) == 1
    assert choose_bucket_minutes(100_000, 10_000) == 15
    assert choose_bucket_minutes(10_000_000, 10_000) == 60
    frame = pd.DataFrame(
        {"ds": pd.date_range("2024-01-01", periods=30, freq="min"), "y": np.arange(30.0)}
    )
    means = aggregate(frame, 15)
    assert means["y"].tolist() == [7.0, 22.0]
    assert means["ds"].iloc[0] == pd.Timestamp("2024-01-01 00:07")


# --- a small real fit ---------------------------------------------------------------------------


def test_small_real_fit_forecasts_150k_minutes_quickly(four_days: pd.DataFrame) -> None:
    model = train(prepare(four_days))
    assert not model.options.book_parity
    assert model.train_last == pd.Timestamp("2024-01-04 23:59")
    started = time.perf_counter()
    frame = forecast(model)
    seconds = time.perf_counter() - started
    assert len(frame) == 150_000 and tuple(frame.columns) == FORECAST_COLUMNS
    assert seconds < 3.0  # about 0.3 s alone; generous for a shared 2-core machine
    assert frame["ds"].iloc[0] == pd.Timestamp("2024-01-05 00:00", tz="UTC")
    assert (frame["ds"].diff().dropna() == pd.Timedelta(minutes=1)).all()
    assert set(frame["side"]) <= {"buy", "sell"}
    assert (frame["yhat_lower"] < frame["yhat"]).all() and (
        frame["yhat"] < frame["yhat_upper"]
    ).all()
    # the side rule holds on the published rows, including the last (one extra minute computed)
    rises = frame["yhat"].shift(-1) > frame["yhat"]
    expected = np.where(rises, "buy", "sell")[:-1]
    assert (frame["side"].to_numpy()[:-1] == expected).all()
    # bounds widen with the horizon
    width = frame["yhat_upper"] - frame["yhat_lower"]
    assert width.iloc[-1] > width.iloc[0]
    # a later start is honoured
    later = forecast(model, "2024-02-01T00:00:00Z", minutes=10)
    assert later["ds"].iloc[0] == pd.Timestamp("2024-02-01", tz="UTC") and len(later) == 10


# --- walk-forward never scores training minutes -------------------------------------------------


def test_walk_forward_scores_only_minutes_after_training(four_days: pd.DataFrame) -> None:
    result, model = walk_forward_segment("four days", four_days, holdout_days=1.0)
    assert result.train_last == pd.Timestamp("2024-01-03 23:59", tz="UTC")
    assert result.holdout_first == pd.Timestamp("2024-01-04 00:00", tz="UTC")
    assert result.holdout_first > result.train_last
    assert result.score.minutes == 1440
    report = result.score.report
    assert report.first_ts_ms == int(pd.Timestamp("2024-01-04", tz="UTC").value // 1_000_000)
    assert not report.liquidity_gate_applied
    assert any("no liquidity gate" in line for line in result.lines())
    assert 0.0 <= (report.hit_rate.rate or 0.0) <= 1.0


def test_scoring_a_training_minute_is_refused(four_days: pd.DataFrame) -> None:
    training, holdout = split_holdout(four_days, 1.0)
    model = train(prepare(training))
    frame = forecast(model, start=training["ts"].iloc[0], minutes=4 * 1440)
    leaky = pd.concat([training.tail(5), holdout], ignore_index=True)
    with pytest.raises(SeenMinuteError, match="not after the last training minute"):
        score_forecast(frame, leaky, model.train_last)


# --- publish, gate, load_current ----------------------------------------------------------------


def _write_version(root: Path, name: str, frame: pd.DataFrame, trained_until: str) -> None:
    folder = root / VERSIONS_DIR / name
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "forecast.parquet", index=False)
    (folder / "metadata.json").write_text(
        json.dumps({"version": name, "training": {"last": trained_until}, "backtest": {}})
    )


def _sides_frame(holdout: pd.DataFrame, sides: np.ndarray) -> pd.DataFrame:
    n = len(holdout)
    return pd.DataFrame(
        {
            "ds": pd.to_datetime(holdout["ts"], utc=True).astype("datetime64[ns, UTC]"),
            "yhat": np.log(holdout["price"].to_numpy()),
            "yhat_lower": np.zeros(n),
            "yhat_upper": np.zeros(n),
            "side": sides,
        }
    )


def _with_future(frame: pd.DataFrame, minutes: int) -> pd.DataFrame:
    """``frame`` plus ``minutes`` more minutes (flat ``yhat``, ``sell``): a current version that
    still covers the days after the holdout, so it is not stale."""
    last = frame.iloc[-1]
    ds = pd.date_range(last["ds"] + pd.Timedelta(minutes=1), periods=minutes, freq="min")
    future = pd.DataFrame(
        {
            "ds": ds,
            "yhat": float(last["yhat"]),
            "yhat_lower": 0.0,
            "yhat_upper": 0.0,
            "side": "sell",
        }
    )
    return pd.concat([frame, future], ignore_index=True)


def _hindsight_sides(holdout: pd.DataFrame) -> np.ndarray:
    """One round trip from the lowest close to the highest close after it: hard to beat."""
    close = holdout["close"].to_numpy()
    low = int(np.argmin(close[:-1]))
    high = low + 1 + int(np.argmax(close[low + 1 :]))
    sides = np.full(len(close), "sell", dtype=object)
    sides[low:high] = "buy"
    return sides


def test_gate_promotes_better_and_keeps_worse_as_candidate(
    four_days: pd.DataFrame, tmp_path: Path
) -> None:
    training, holdout = split_holdout(four_days, 1.0)
    trained_until = pd.Timestamp(training["ts"].iloc[-1])
    # the best single round trip in hindsight, and staying out (no trade, 0 % return)
    foresight = _hindsight_sides(holdout)
    mirror = np.full(len(holdout), "sell", dtype=object)
    root = tmp_path / "forecast"
    config = BacktestConfig(random_seeds=(0,))

    assert gate(_sides_frame(holdout, foresight), trained_until, holdout, root).promoted

    _write_version(root, "v-mirror", _sides_frame(holdout, mirror), trained_until.isoformat())
    _write_pointer(root, "v-mirror")
    better = gate(_sides_frame(holdout, foresight), trained_until, holdout, root, config)
    assert better.candidate_metrics is not None and better.candidate_metrics["return_pct"] > 0
    assert better.promoted and better.reason.startswith("not worse than current")
    assert better.common_minutes == len(holdout)

    _write_version(root, "v-foresight", _sides_frame(holdout, foresight), trained_until.isoformat())
    _write_pointer(root, "v-foresight")
    worse = gate(_sides_frame(holdout, mirror), trained_until, holdout, root, config)
    assert not worse.promoted
    assert worse.reason.startswith("worse than current: return_pct after fees")
    assert "v-foresight" in worse.reason

    # a current version trained past the whole holdout leaves no common holdout
    _write_version(root, "v-late", _sides_frame(holdout, foresight), "2030-01-01T00:00:00+00:00")
    _write_pointer(root, "v-late")
    none = gate(_sides_frame(holdout, foresight), trained_until, holdout, root, config)
    assert not none.promoted and "no common holdout" in none.reason


def test_publish_writes_artifacts_and_load_current_follows(
    four_days: pd.DataFrame, tmp_path: Path
) -> None:
    root = tmp_path / "forecast"
    with pytest.raises(NoCurrentForecastError, match="rtc forecast publish"):
        load_current(root)
    assert current_version(root) is None
    config = BacktestConfig(random_seeds=(0,))
    first = publish(
        four_days,
        holdout_days=1.0,
        horizon_minutes=5_000,
        forecast_dir=root,
        options=QUICK,
        config=config,
        version="v1",
    )
    assert first.promoted and "first candidate" in first.reason
    for name in ("forecast.parquet", "metadata.json", "components.png", "equity.png"):
        assert (first.folder / name).stat().st_size > 0, name
    metadata = json.loads((first.folder / "metadata.json").read_text())
    assert metadata["version"] == "v1" and metadata["book_parity"] is False
    assert metadata["training"]["last"] == "2024-01-03T23:59:00+00:00"
    assert len(metadata["data_fingerprint"]) == 64
    assert set(metadata["backtest"]) >= {"hit_rate", "return_pct", "rmse_log_price", "trades"}
    current = load_current(root)
    assert current.version == "v1" and len(current.forecast) == 5_000
    assert tuple(current.forecast.columns) == FORECAST_COLUMNS
    mtime = current.pointer_mtime_ns

    # the same data again scores the same: a tie is not worse, so it becomes current
    second = publish(
        four_days,
        holdout_days=1.0,
        horizon_minutes=5_000,
        forecast_dir=root,
        options=QUICK,
        config=config,
        version="v2",
    )
    assert second.promoted, second.reason
    assert second.metadata["gate"]["compared_with"] == "v1"
    assert current_version(root) == "v2"
    assert load_current(root).pointer_mtime_ns >= mtime
    assert (root / CURRENT_POINTER).read_text().strip() == "v2"
    with pytest.raises(ForecastError, match="already exists"):
        publish(four_days, holdout_days=1.0, horizon_minutes=100, forecast_dir=root, version="v2")


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.slow  # two fits on 3 weeks of minutes: 5-12 s depending on the machine's load
def test_cli_backtest_and_publish_on_a_real_file(tmp_path: Path) -> None:
    runner = CliRunner()
    path = shared_minute_file(BINANCE_2024)
    result = runner.invoke(forecast_app, ["backtest", str(path), "--holdout-days", "3"])
    assert result.exit_code == 0, result.output
    assert "hit rate" in result.output and "buy and hold" in result.output
    assert "random sides" in result.output and "no liquidity gate applied" in result.output
    assert "not a promise of profit" in result.output
    root = tmp_path / "forecast"
    published = runner.invoke(
        forecast_app,
        [
            "publish",
            "--file",
            str(path),
            "--holdout-days",
            "3",
            "--minutes",
            "5000",
            "--forecast-dir",
            str(root),
        ],
    )
    assert published.exit_code == 0, published.output
    assert "current:" in published.output
    shown = runner.invoke(forecast_app, ["current", "--forecast-dir", str(root)])
    assert shown.exit_code == 0 and "hit_rate" in shown.output


def test_warm_start_and_prophet_bounds(four_days: pd.DataFrame) -> None:
    frame = prepare(four_days)
    previous = train(frame.iloc[: 3 * 1440], options=QUICK)
    warmed = train(frame, options=QUICK, warm_start=previous)
    assert warmed.train_last == pd.Timestamp("2024-01-04 23:59")
    assert abs(warmed.prophet.params["k"][0, 0] - previous.prophet.params["k"][0, 0]) < 10
    sampled = forecast(warmed, minutes=30, prophet_bounds=True)
    assert len(sampled) == 30
    assert (sampled["yhat_lower"] <= sampled["yhat"]).all()
    assert (sampled["yhat"] <= sampled["yhat_upper"]).all()
    assert warmed.prophet.uncertainty_samples == 0  # restored after the sampled forecast


def test_publish_worse_than_current_stays_candidate(
    four_days: pd.DataFrame, tmp_path: Path
) -> None:
    training, holdout = split_holdout(four_days, 1.0)
    foresight = _hindsight_sides(holdout)
    root = tmp_path / "forecast"
    trained_until = pd.Timestamp(training["ts"].iloc[-1]).isoformat()
    # the current version still covers the next days (not stale): the holdout comparison decides
    current = _with_future(_sides_frame(holdout, foresight), 3 * 1440)
    _write_version(root, "v-foresight", current, trained_until)
    _write_pointer(root, "v-foresight")
    result = publish(
        four_days,
        holdout_days=1.0,
        horizon_minutes=3_000,
        forecast_dir=root,
        options=QUICK,
        config=BacktestConfig(random_seeds=(0,)),
        version="v-model",
    )
    assert not result.promoted
    assert result.reason.startswith("worse than current") and "v-foresight" in result.reason
    assert current_version(root) == "v-foresight"
    metadata = json.loads((result.folder / "metadata.json").read_text())
    assert metadata["status"] == "candidate" and metadata["gate"]["reason"] == result.reason
    assert metadata["gate"]["rule"] == "worse"
    assert metadata["gate"]["freshness"]["current_covers"] is True
    assert (result.folder / "forecast.parquet").is_file()


def test_cli_bars_from_a_file_honour_start_and_end() -> None:
    """``rtc forecast publish --file F --start S --end E`` trains on [S, E) only (was ignored)."""
    import typer

    from rtcrypto.cli.forecast import _bars
    from tests.helpers import shared_minute_file

    path = shared_minute_file("binance_BTCUSDT_1m_2021-03-26_2021-04-30.csv.gz")
    bars = _bars(None, path, "2021-04-01", "2021-04-17T16:00")
    times = pd.to_datetime(bars["ts"], utc=True)
    assert times.min() == pd.Timestamp("2021-04-01", tz="UTC")
    assert times.max() == pd.Timestamp("2021-04-17 15:59", tz="UTC")
    with pytest.raises(typer.BadParameter, match="no minute"):
        _bars(None, path, "2030-01-01", None)
