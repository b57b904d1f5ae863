"""Commands pass their flags to the services as values (a validated Settings), never through
``os.environ``: ``rtc trader`` and ``rtc ingest`` call the service's ``main`` with the settings."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import typer
from hypothesis import assume, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from rtcrypto.cli import checks
from rtcrypto.cli.main import app
from rtcrypto.config import Feed, Settings, TradingMode, get_settings


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Settings]]:
    """The settings each service's ``main`` was called with (the service itself not run)."""
    seen: list[Settings] = []
    monkeypatch.setattr("rtcrypto.trader.service.main", seen.append)
    monkeypatch.setattr("rtcrypto.ingest.service.main", seen.append)
    for name in ("RTC_TRADING_MODE", "RTC_TRADER_SYMBOL", "RTC_SYMBOLS", "RTC_FEED"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield seen
    get_settings.cache_clear()


def test_trader_flags_reach_the_service_as_settings(captured: list[Settings]) -> None:
    before = dict(os.environ)
    result = CliRunner().invoke(app, ["trader", "--mode", "sandbox", "--symbol", "ethusd"])
    assert result.exit_code == 0, result.output
    [settings] = captured
    assert settings.trading_mode is TradingMode.sandbox and settings.trader_symbol == "ethusd"
    assert dict(os.environ) == before
    assert get_settings().trading_mode is TradingMode.paper  # the process's settings untouched


def test_trader_without_flags_runs_on_the_settings(captured: list[Settings]) -> None:
    result = CliRunner().invoke(app, ["trader"])
    assert result.exit_code == 0, result.output
    assert captured == [get_settings()]


def test_ingest_flags_reach_the_service_as_settings(captured: list[Settings]) -> None:
    before = dict(os.environ)
    result = CliRunner().invoke(app, ["ingest", "--symbols", "btcusd, ethusd", "--live"])
    assert result.exit_code == 0, result.output
    [settings] = captured
    assert settings.symbols == ["BTCUSD", "ETHUSD"] and settings.feed is Feed.live
    assert dict(os.environ) == before
    assert get_settings().feed is Feed.simulator


def test_ingest_refuses_a_bad_symbol_naming_the_flag(captured: list[Settings]) -> None:
    result = CliRunner().invoke(app, ["ingest", "--symbols", "BTCUSD,../x"])
    assert result.exit_code == 2 and "Invalid value for '--symbols'" in result.output
    assert captured == []


def symbol_ok(name: str) -> bool:
    return name.isascii() and name.isalnum() and 3 <= len(name) <= 20


SYMBOL = st.from_regex(r"[A-Za-z0-9]{3,20}", fullmatch=True)


@given(st.lists(SYMBOL, min_size=1, max_size=5))
def test_symbols_accepts_every_list_of_valid_symbols(names: list[str]) -> None:
    text = ",".join(names)
    assert checks.symbols(text) == text
    assert Settings.model_validate({"symbols": text}).symbols == [n.upper() for n in names]


@given(st.lists(SYMBOL, max_size=3), st.text(max_size=25), st.lists(SYMBOL, max_size=3))
def test_symbols_refuses_any_list_with_one_bad_name(
    before: list[str], bad: str, after: list[str]
) -> None:
    assume("," not in bad and not symbol_ok(bad.strip()))  # one bad name
    with pytest.raises(typer.BadParameter, match="must be 3 to 20 letters or digits"):
        checks.symbols(",".join([*before, bad, *after]))
