"""Nonsense settings are refused at start-up with a message naming the RTC_* variable (issue 10).

Table-driven: every bad value must fail with its variable named; the defaults and a few good
values at the edges must pass. On the code before issue 10 most of these were accepted.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from rtcrypto.config import FORECAST_HORIZON_MAX_MINUTES, Settings, get_settings
from rtcrypto.config_checks import SettingsError


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


BAD_VALUES: list[tuple[str, str]] = [
    # the cases
    ("RTC_HEARTBEAT_INTERVAL_S", "-1"),  # busy-looped the heartbeat loops
    ("RTC_HEARTBEAT_INTERVAL_S", "0"),
    ("RTC_TRADE_PCT", "5"),  # a fraction of the USD balance in (0, 1]: 5 is 500 %
    ("RTC_TRADE_PCT", "0"),
    ("RTC_TAKER_FEE_PCT", "-0.1"),
    ("RTC_SYMBOLS", "../X"),
    ("RTC_SYMBOLS", "BTCUSD,../X"),
    ("RTC_TRADER_SYMBOL", "../X"),
    ("RTC_SIMULATOR_PORT", "70000"),
    ("RTC_SIMULATOR_PORT", "0"),
    ("RTC_FORECAST_HORIZON_MINUTES", str(FORECAST_HORIZON_MAX_MINUTES + 1)),
    # the rest of the review
    ("RTC_KAFKA_BOOTSTRAP", "127.0.0.1:70000"),
    ("RTC_KAFKA_BOOTSTRAP", "no-port"),
    ("RTC_KAFKA_CONTROLLER_PORT", "-5"),
    ("RTC_KAFKA_PARTITIONS", "0"),
    ("RTC_SEARCH_URL", "http://127.0.0.1:99999"),
    ("RTC_SEARCH_URL", "ftp://host"),
    ("RTC_SEARCH_TRANSPORT_PORT", "65536"),
    ("RTC_SEARCH_HEAP", "lots"),
    ("RTC_SEARCH_BULK_BATCH_SIZE", "0"),
    ("RTC_SEARCH_FLUSH_INTERVAL_S", "inf"),
    ("RTC_KIBANA_URL", "not a url"),
    ("RTC_GEMINI_WS_URL", "https://api.gemini.com"),
    ("RTC_GEMINI_REST_URL", "api.gemini.com"),
    ("RTC_SIMULATOR_HOST", "host name; rm"),
    ("RTC_SIMULATOR_SPEED", "nan"),
    ("RTC_SIMULATOR_SEED", "-1"),
    ("RTC_TICK_INTERVAL_S", "0"),
    ("RTC_RECONNECT_INITIAL_S", "-1"),
    ("RTC_RECONNECT_INITIAL_S", "60"),  # above RTC_RECONNECT_MAX_S=30
    ("RTC_DEPTH_BAND_PCT", "0"),
    ("RTC_DEPTH_BAND_PCT", "101"),
    ("RTC_SUPERVISOR_STARTUP_GRACE_S", "-1"),
    ("RTC_SPARK_WATERMARK", "-2 seconds"),
    ("RTC_SPARK_TRIGGER", "soon"),
    ("RTC_BARS_DRIVER_MEMORY", "0g"),
    ("RTC_TAKER_FEE_PCT", "25"),  # a percent: 25 % per fill is a unit mistake (0.25)
    ("RTC_TRADE_PCT", "Infinity"),
    ("RTC_LIQUIDITY_RATIO_LOW", "0"),
    ("RTC_LIQUIDITY_RATIO_LOW", "3"),  # above RTC_LIQUIDITY_RATIO_HIGH=2
    ("RTC_AIRFLOW_PORT", "80800"),
    ("RTC_AIRFLOW_WORKER_LOG_PORT", "0"),
    ("RTC_AIRFLOW_PARALLELISM", "0"),
    ("RTC_FORECAST_HORIZON_MINUTES", "0"),
    ("RTC_FORECAST_HOLDOUT_DAYS", "-7"),
    ("RTC_FORECAST_SOURCE", "../../etc"),
    ("RTC_HISTORY_FEED_SOURCE", "a/b"),
    ("RTC_TRADER_CONSUMER_GROUP", "a b"),
    ("RTC_TRADER_MAX_RECORD_AGE_S", "-1"),
    ("RTC_FORECAST_RELOAD_INTERVAL_S", "0"),
    ("RTC_REPORT_HOURS", "0"),
    ("RTC_PAPER_USD", "-1"),
    ("RTC_PAPER_BTC", "-1"),
    ("RTC_RISK_MAX_POSITION_BTC", "0"),
    ("RTC_RISK_MAX_ORDER_NOTIONAL_USD", "-5"),
    ("RTC_RISK_MAX_DAILY_LOSS_USD", "-1"),
    ("RTC_RISK_MAX_ORDERS_PER_MINUTE", "0"),
    ("RTC_GEMINI_PRIVATE_RATE_PER_MIN", "0"),
    ("RTC_GEMINI_SYMBOL_DETAILS_REFRESH_S", "0"),
    ("RTC_PAPER_TICK_SIZE_BTC", "0"),
    ("RTC_PAPER_QUOTE_INCREMENT_USD", "-0.01"),
    ("RTC_PAPER_MIN_ORDER_SIZE_BTC", "0"),
    ("RTC_TOPIC_TRADES", "../trades"),
    ("RTC_TOPIC_LIQUIDITY", ""),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES, ids=[f"{n}={v}" for n, v in BAD_VALUES])
def test_bad_value_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        get_settings()
    assert name in str(error.value), str(error.value)


GOOD_VALUES: list[tuple[str, str]] = [
    ("RTC_HEARTBEAT_INTERVAL_S", "0.5"),
    ("RTC_TRADE_PCT", "1"),
    ("RTC_TAKER_FEE_PCT", "0"),
    ("RTC_SYMBOLS", "btcusd,ethusd"),
    ("RTC_SIMULATOR_PORT", "65535"),
    ("RTC_FORECAST_HORIZON_MINUTES", str(FORECAST_HORIZON_MAX_MINUTES)),
    ("RTC_KAFKA_BOOTSTRAP", "kafka:9092,127.0.0.1:9094"),
    ("RTC_SEARCH_URL", "https://user:secret@search.example:9243"),
    ("RTC_FORECAST_SOURCE", ""),  # empty: chosen automatically
    ("RTC_SPARK_WATERMARK", "500 milliseconds"),
]


def test_defaults_pass() -> None:
    settings = get_settings()
    assert settings == Settings()


@pytest.mark.parametrize(("name", "value"), GOOD_VALUES, ids=[f"{n}={v}" for n, v in GOOD_VALUES])
def test_good_value_passes(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    get_settings()


def test_message_lists_every_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTC_TRADE_PCT", "5")
    monkeypatch.setenv("RTC_SIMULATOR_PORT", "70000")
    with pytest.raises(SettingsError) as error:
        get_settings()
    message = str(error.value)
    assert "RTC_TRADE_PCT='5'" in message and "RTC_SIMULATOR_PORT='70000'" in message
    assert "less than or equal to 1" in message


@pytest.mark.parametrize(
    "command",
    [["-m", "rtcrypto.cli.main", "status"], ["-m", "streaming.trader"]],
    ids=["rtc status", "trader service"],
)
def test_entry_points_exit_2_with_the_message_not_a_traceback(command: list[str]) -> None:
    import os

    env = {**os.environ, "RTC_TRADE_PCT": "5", "RTC_HOME": "/nonexistent-rtc-home"}
    done = subprocess.run(
        [sys.executable, *command], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "RTC_TRADE_PCT='5'" in done.stderr
    assert "Traceback" not in done.stderr
