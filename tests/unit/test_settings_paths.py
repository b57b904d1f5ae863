"""Paths under RTC_HOME, the log level and flag overrides come from Settings only."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtcrypto.config import Settings, get_settings, settings_with
from rtcrypto.config_checks import SettingsError
from rtcrypto.logs import setup_logging


def test_paths_under_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert settings.history_path == tmp_path / "history"
    assert settings.forecast_path == tmp_path / "forecast"
    assert settings.simulator_dir == tmp_path / "simulator"
    assert settings.downloads_dir == tmp_path / "downloads"
    assert settings.reports_dir == tmp_path / "reports"
    assert settings.trader_dir == tmp_path / "trader"


def test_explicit_folders_win_over_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, history_dir=tmp_path / "h", forecast_dir=tmp_path / "f")
    assert settings.history_path == tmp_path / "h"
    assert settings.forecast_path == tmp_path / "f"


def test_the_replay_window_lives_in_the_simulator_dir(tmp_path: Path) -> None:
    from rtcrypto.history.replay_window import replay_window_path

    settings = Settings(home=tmp_path)
    assert replay_window_path(settings).parent == settings.simulator_dir


@pytest.mark.parametrize(
    ("raw", "expected"), [("debug", "DEBUG"), ("WARNING", "WARNING"), ("", None)]
)
def test_log_level_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: str | None
) -> None:
    monkeypatch.setenv("RTC_LOG_LEVEL", raw)
    assert Settings().log_level == expected


def test_a_bad_log_level_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTC_LOG_LEVEL", "loud")
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match="RTC_LOG_LEVEL"):
            get_settings()
    finally:
        get_settings.cache_clear()


@pytest.fixture
def root_level() -> Iterator[None]:
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)
    get_settings.cache_clear()


@pytest.mark.usefixtures("root_level")
def test_setup_logging_takes_the_settings_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTC_LOG_LEVEL", "error")
    get_settings.cache_clear()
    setup_logging("test")
    assert logging.getLogger().level == logging.ERROR
    setup_logging("test", "debug")  # an explicit level wins
    assert logging.getLogger().level == logging.DEBUG


def test_settings_with_validates_and_leaves_the_original(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    changed = settings_with(settings, symbols="ethusd", feed="live")
    assert changed.symbols == ["ETHUSD"] and changed.feed.value == "live"
    assert settings.symbols != ["ETHUSD"] and changed.home == tmp_path
    with pytest.raises(SettingsError, match="RTC_SYMBOLS"):
        settings_with(settings, symbols="../x")
