"""Settings come from RTC_* variables; bad values fail with a message that names the setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rtcrypto.config import Feed, Settings


def test_defaults_are_the_embedded_local_stack() -> None:
    settings = Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.feed is Feed.simulator
    assert settings.market_data_ws_url == "ws://127.0.0.1:8765"
    assert settings.topics.orderbook == "gemini.orderbook.v1"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("BTCGBP", ["BTCGBP"]), ("btcusd, ethusd", ["BTCUSD", "ETHUSD"]), ('["BTCUSD"]', ["BTCUSD"])],
)
def test_symbols_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[str]
) -> None:
    monkeypatch.setenv("RTC_SYMBOLS", raw)
    assert Settings().symbols == expected


def test_live_feed_and_topic_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTC_FEED", "live")
    monkeypatch.setenv("RTC_TOPIC_LIQUIDITY", "custom.liquidity")
    settings = Settings()
    assert settings.market_data_ws_url == "wss://api.gemini.com"
    assert settings.topics.liquidity == "custom.liquidity"


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("RTC_SIMULATOR_SPEED", "0", "simulator_speed"),
        ("RTC_FEED", "carrier-pigeon", "feed"),
        ("RTC_KAFKA_CLIENT", "java", "RTC_KAFKA_CLIENT"),  # retired: refused (issue 11)
        ("RTC_HEARTBEAT_INTERVAL_S", "often", "heartbeat_interval_s"),
    ],
)
def test_bad_values_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        Settings()
    assert field in str(error.value)
