"""`rtc up`'s history replay window: chosen once from the imported bars, kept, validated.

Runs on the real Binance segment of October 2024 from ../shared/data/minute.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rtcrypto.config import Settings
from rtcrypto.history import import_file
from rtcrypto.history.replay_window import ReplayWindowError, replay_window, replay_window_path
from rtcrypto.platform import bootstrap
from rtcrypto.supervision import get_service
from tests.helpers import shared_minute_file

SEGMENT = "binance_BTCUSDT_1m_2024-10-01_2024-11-04.csv.gz"  # 2024-10-01 03:00 .. 11-04 20:19


@pytest.fixture(scope="module")
def history_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("history")
    import_file(shared_minute_file(SEGMENT), history_dir=folder)
    return folder


def _settings(tmp_path: Path, history_dir: Path, **overrides: object) -> Settings:
    return Settings(home=tmp_path / "rtc", history_dir=history_dir, **overrides)  # type: ignore[arg-type]


def test_default_window_is_the_last_days_from_midnight_and_is_kept(
    tmp_path: Path, history_dir: Path
) -> None:
    settings = _settings(tmp_path, history_dir)
    window = replay_window(settings)
    assert window.source == "binance"
    assert window.start == pd.Timestamp("2024-10-28 00:00", tz="UTC")
    assert window.end == pd.Timestamp("2024-11-04 20:20", tz="UTC")  # the minute after the last
    stored = json.loads(replay_window_path(settings).read_text())
    assert stored["start"].startswith("2024-10-28T00:00")
    # A later start with other settings keeps replaying the days chosen first (restarts resume).
    again = replay_window(settings.model_copy(update={"simulator_history_days": 2.0}))
    assert (again.start, again.end) == (window.start, window.end)


def test_first_forecast_trains_on_the_days_before_the_replay(
    tmp_path: Path, history_dir: Path
) -> None:
    settings = _settings(tmp_path, history_dir)
    training = bootstrap.training_window(settings, days=21)
    assert training.source == "binance"
    assert training.end == pd.Timestamp("2024-10-28 00:00", tz="UTC")
    assert training.start == pd.Timestamp("2024-10-07 00:00", tz="UTC")


def test_explicit_window_from_settings_is_not_stored(tmp_path: Path, history_dir: Path) -> None:
    settings = _settings(
        tmp_path,
        history_dir,
        simulator_history_start="2024-10-20T06:00",
        simulator_history_end="2024-10-21",
    )
    window = replay_window(settings)
    assert window.start == pd.Timestamp("2024-10-20 06:00", tz="UTC")
    assert window.end == pd.Timestamp("2024-10-21 00:00", tz="UTC")
    assert not replay_window_path(settings).exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"simulator_history_start": "2024-10-21", "simulator_history_end": "2024-10-20"},
            "empty or reversed replay window",
        ),
        (
            {"simulator_history_start": "2024-10-21", "simulator_history_end": "2024-10-21"},
            "empty or reversed replay window",
        ),
        ({"simulator_history_start": "2023-01-01"}, "outside the imported binance minutes"),
        (
            {"simulator_history_start": "2024-11-01", "simulator_history_end": "2024-12-01"},
            "outside the imported binance minutes (2024-10-01 03:00 .. 2024-11-04 20:20)",
        ),
        ({"simulator_history_source": "kraken"}, "'kraken' (RTC_SIMULATOR_HISTORY_SOURCE)"),
    ],
)
def test_bad_windows_say_what_to_change(
    tmp_path: Path, history_dir: Path, overrides: dict[str, object], message: str
) -> None:
    settings = _settings(tmp_path, history_dir, **overrides)
    with pytest.raises(ReplayWindowError) as raised:
        replay_window(settings)
    assert message in str(raised.value)


def test_unreadable_stored_window_is_a_clear_error(tmp_path: Path, history_dir: Path) -> None:
    settings = _settings(tmp_path, history_dir)
    path = replay_window_path(settings)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ReplayWindowError, match="delete it and `rtc up` chooses again"):
        replay_window(settings)


def test_simulator_service_replays_the_window_and_resumes(
    tmp_path: Path, history_dir: Path
) -> None:
    settings = _settings(tmp_path, history_dir)
    command = list(get_service("simulator").launch(settings).command)

    def value(flag: str) -> str:
        return command[command.index(flag) + 1]

    assert value("--history") == "binance"
    assert pd.Timestamp(value("--start")) == pd.Timestamp("2024-10-28", tz="UTC")
    assert pd.Timestamp(value("--end")) == pd.Timestamp("2024-11-04 20:20", tz="UTC")
    assert float(value("--speed")) == settings.simulator_history_speed
    assert Path(value("--resume-file")).parent == replay_window_path(settings).parent
    assert "--capture" not in command and "--shift-to-now" not in command

    capture = settings.model_copy(update={"simulator_replay": "capture"})
    capture_command = list(get_service("simulator").launch(capture).command)
    assert "--capture" in capture_command and "--history" not in capture_command
