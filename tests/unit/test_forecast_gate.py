"""The publish gate's staleness rule and forced publishes (``rtcrypto.forecast.publish``), on real
Binance minutes; the holdout comparison itself is covered in test_forecast.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from rtcrypto.cli.forecast import app as forecast_app
from rtcrypto.forecast import ForecastError, TrainOptions
from rtcrypto.forecast.publish import (
    VERSIONS_DIR,
    _write_pointer,
    covers,
    current_version,
    gate,
    publish,
    valid_candidate,
)
from rtcrypto.forecast.walkforward import load_bars_file, split_holdout
from rtcrypto.trading.backtest import BacktestConfig
from tests.helpers import shared_minute_file

BINANCE_2024 = "binance_BTCUSDT_1m_2024-01-01_2024-01-21.csv.gz"
QUICK = TrainOptions(bucket_minutes=15)
CONFIG = BacktestConfig(random_seeds=(0,))


@pytest.fixture(scope="module")
def four_days() -> pd.DataFrame:
    bars = load_bars_file(shared_minute_file(BINANCE_2024))
    return bars.iloc[: 4 * 1440].reset_index(drop=True)


def frame_over(start: pd.Timestamp, minutes: int, sides: np.ndarray | str = "sell") -> pd.DataFrame:
    ds = pd.date_range(pd.Timestamp(start).tz_convert("UTC"), periods=minutes, freq="min")
    return pd.DataFrame(
        {
            "ds": ds,
            "yhat": np.log(np.full(minutes, 42_000.0)),
            "yhat_lower": 0.0,
            "yhat_upper": 0.0,
            "side": sides,
        }
    )


def write_current(root: Path, name: str, frame: pd.DataFrame, trained_until: str) -> None:
    folder = root / VERSIONS_DIR / name
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "forecast.parquet", index=False)
    (folder / "metadata.json").write_text(
        json.dumps({"version": name, "training": {"last": trained_until}, "backtest": {}})
    )
    _write_pointer(root, name)


def hindsight(holdout: pd.DataFrame) -> np.ndarray:
    close = holdout["close"].to_numpy()
    low = int(np.argmin(close[:-1]))
    high = low + 1 + int(np.argmax(close[low + 1 :]))
    sides = np.full(len(close), "sell", dtype=object)
    sides[low:high] = "buy"
    return sides


def test_covers_needs_every_minute_of_the_window() -> None:
    start = pd.Timestamp("2024-01-05 00:00", tz="UTC")
    frame = frame_over(start, 24 * 60)
    assert covers(frame, start, 24)
    assert covers(frame, start + pd.Timedelta(seconds=30), 23.9)  # floored to the minute
    assert not covers(frame, start + pd.Timedelta(minutes=1), 24)  # one minute short
    assert not covers(frame, start - pd.Timedelta(minutes=1), 1)  # starts too late
    assert not covers(frame.drop(index=100), start, 24)  # a hole
    assert not covers(frame.iloc[:0], start, 1)
    assert valid_candidate(frame) is None
    broken = frame.assign(yhat=np.where(frame.index == 5, np.nan, frame["yhat"]))
    assert valid_candidate(broken) == "the candidate forecast has non-finite yhat"


def test_a_stale_current_is_replaced_even_by_a_worse_candidate(
    four_days: pd.DataFrame, tmp_path: Path
) -> None:
    training, holdout = split_holdout(four_days, 1.0)
    trained_until = pd.Timestamp(training["ts"].iloc[-1])
    root = tmp_path / "forecast"
    holdout_start = pd.Timestamp(holdout["ts"].iloc[0])
    # current: the hindsight round trip over the holdout, and nothing after it (stale)
    current = frame_over(holdout_start, len(holdout), hindsight(holdout))
    write_current(root, "v-old", current, trained_until.isoformat())
    # candidate: never trades (worse on the common holdout) but covers 3 days on
    candidate = frame_over(holdout_start, len(holdout) + 3 * 1440)
    decision = gate(candidate, trained_until, holdout, root, CONFIG, stale_after_hours=24)
    assert decision.promoted and decision.rule == "stale_current"
    assert "current version v-old is stale" in decision.reason
    assert "after the candidate's data end (2024-01-05 00:00)" in decision.reason
    assert decision.current_metrics is not None and decision.candidate_metrics is not None
    assert decision.candidate_metrics["return_pct"] < decision.current_metrics["return_pct"]
    assert decision.freshness is not None
    assert decision.freshness["current_forecast_last"] == "2024-01-04T23:59:00+00:00"
    assert decision.freshness["current_covers"] is False

    # a current version that still covers the next 24 h is compared on the holdout: refused
    covering = frame_over(holdout_start, len(holdout) + 2 * 1440, "sell")
    covering.loc[: len(holdout) - 1, "side"] = hindsight(holdout)
    (root / "current").unlink()
    write_current(root, "v-covering", covering, trained_until.isoformat())
    kept = gate(candidate, trained_until, holdout, root, CONFIG, stale_after_hours=24)
    assert not kept.promoted and kept.rule == "worse"
    # ... unless the window asked for is longer than it covers
    longer = gate(candidate, trained_until, holdout, root, CONFIG, stale_after_hours=49)
    assert longer.promoted and longer.rule == "stale_current"


def test_no_common_holdout_no_longer_blocks_forever(
    four_days: pd.DataFrame, tmp_path: Path
) -> None:
    """The issue's case: the current forecast is about another period (trained on 2021, covers
    104 days of 2021); a 2024 candidate has no held-out minute in common with it."""
    training, holdout = split_holdout(four_days, 1.0)
    trained_until = pd.Timestamp(training["ts"].iloc[-1])
    root = tmp_path / "forecast"
    old_start = pd.Timestamp("2021-04-17 00:00", tz="UTC")
    write_current(root, "v-2021", frame_over(old_start, 150_000), "2021-04-16T23:59:00+00:00")
    candidate = frame_over(pd.Timestamp(holdout["ts"].iloc[0]), 20_000)
    promoted = gate(candidate, trained_until, holdout, root, CONFIG, stale_after_hours=24)
    assert promoted.promoted and promoted.rule == "stale_current"
    assert promoted.common_minutes == 0

    # with the feed's clock in 2021 (a replay), the 2021 forecast is what the trader needs
    now_2021 = int(pd.Timestamp("2021-05-01 12:00", tz="UTC").value // 1_000_000)
    kept = gate(candidate, trained_until, holdout, root, CONFIG, now_ms=now_2021)
    assert not kept.promoted and kept.rule == "no_common_holdout"
    assert "still covers the 24 h after now (feed clock) (2021-05-01 12:00)" in kept.reason
    # a clock past the 2021 forecast, which the candidate does not cover either: kept as well
    now_2022 = int(pd.Timestamp("2022-01-01", tz="UTC").value // 1_000_000)
    neither = gate(candidate, trained_until, holdout, root, CONFIG, now_ms=now_2022)
    assert not neither.promoted and "the candidate does not cover" in neither.reason
    # an invalid candidate never replaces a stale current version
    broken = candidate.assign(yhat=np.nan)
    refused = gate(broken, trained_until, holdout, root, CONFIG, stale_after_hours=24)
    assert not refused.promoted and "non-finite yhat" in refused.reason


def test_publish_records_the_rule_and_force_records_why(
    four_days: pd.DataFrame, tmp_path: Path
) -> None:
    training, holdout = split_holdout(four_days, 1.0)
    root = tmp_path / "forecast"
    covering = frame_over(pd.Timestamp(holdout["ts"].iloc[0]), len(holdout) + 3 * 1440, "sell")
    covering.loc[: len(holdout) - 1, "side"] = hindsight(holdout)
    trained_until = pd.Timestamp(training["ts"].iloc[-1]).isoformat()
    write_current(root, "v-hindsight", covering, trained_until)
    common = {
        "holdout_days": 1.0,
        "horizon_minutes": 3_000,
        "forecast_dir": root,
        "options": QUICK,
        "config": CONFIG,
        "stale_after_hours": 24.0,
    }
    refused = publish(four_days, version="v-model", **common)  # type: ignore[arg-type]
    assert not refused.promoted and refused.metadata["gate"]["rule"] == "worse"
    assert "forced" not in refused.metadata
    with pytest.raises(ForecastError, match="needs a reason"):
        publish(four_days, version="v-x", force_reason="  ", **common)  # type: ignore[arg-type]

    forced = publish(
        four_days,
        version="v-forced",
        force_reason="hand-checked after the 2024-01 halt",
        forced_by="tester",
        **common,  # type: ignore[arg-type]
    )
    assert forced.promoted and current_version(root) == "v-forced"
    metadata = json.loads((forced.folder / "metadata.json").read_text())
    assert metadata["status"] == "current" and metadata["gate"]["rule"] == "forced"
    record = metadata["forced"]
    assert record["reason"] == "hand-checked after the 2024-01 halt"
    assert record["by"] == "tester" and record["at"].endswith("+00:00")
    assert record["gate_rule"] == "worse" and record["gate_would_promote"] is False
    assert metadata["gate"]["reason"].startswith("forced by tester at ")


def test_cli_force_needs_a_reason_and_records_it(tmp_path: Path) -> None:
    runner = CliRunner()
    path = str(shared_minute_file(BINANCE_2024))
    base = ["publish", "--file", path, "--start", "2024-01-01", "--end", "2024-01-05"]
    base += ["--holdout-days", "1", "--minutes", "3000", "--forecast-dir", str(tmp_path)]
    missing = runner.invoke(forecast_app, [*base, "--force"])
    assert missing.exit_code == 2
    assert "--force needs --reason TEXT" in missing.output
    assert "Traceback" not in missing.output
    alone = runner.invoke(forecast_app, [*base, "--reason", "why"])
    assert alone.exit_code == 2 and "--reason goes with --force" in alone.output

    forced = runner.invoke(forecast_app, [*base, "--force", "--reason", "demo reset"])
    assert forced.exit_code == 0, forced.output
    assert "current: forced by " in forced.output and "demo reset" in forced.output
    version = (tmp_path / "current").read_text().strip()
    metadata = json.loads((tmp_path / VERSIONS_DIR / version / "metadata.json").read_text())
    assert metadata["forced"]["reason"] == "demo reset"
    assert metadata["forced"]["gate_rule"] == "first"  # nothing was current: the gate agreed
