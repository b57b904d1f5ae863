"""The Gemini adapter's pure parts: order parsing, fees, the token bucket, sandbox matching, and
the factory's refusals (no network: the factory only builds the adapter)."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest

from rtcrypto.config import Settings, TradingMode
from rtcrypto.exchange.base import ExchangeAdapter
from rtcrypto.exchange.gemini import GeminiAdapter, GeminiConfigError, TokenBucket
from rtcrypto.exchange.gemini_answers import (
    estimated_fee_usd,
    fees_usd,
    latest_order,
    order_from_json,
)
from rtcrypto.exchange.gemini_settings import gemini_adapter_from_settings, nonce_path
from rtcrypto.simulator.sandbox import match_limit_order, parse_sandbox_account
from rtcrypto.trading.strategy import Side

KEY = "account-unit-key-0123"
SECRET = "unit-secret-must-never-show-9876"

ORDER = {
    "order_id": "106028543717",
    "client_order_id": "rtc-1",
    "symbol": "btcusd",
    "avg_execution_price": "60713.37",
    "side": "buy",
    "type": "exchange limit",
    "timestamp": "1618678087",
    "timestampms": 1618678087707,
    "is_live": False,
    "is_cancelled": True,
    "executed_amount": "0.01",
    "remaining_amount": "0.02",
    "price": "60774.08",
    "original_amount": "0.03",
}


def test_order_from_json() -> None:
    status = order_from_json(ORDER, Decimal("1.5"))
    assert status.order_id == "106028543717"
    assert status.client_order_id == "rtc-1"
    assert status.side is Side.buy
    assert status.limit_price == Decimal("60774.08")
    assert status.executed_quantity == Decimal("0.01")
    assert status.remaining_quantity == Decimal("0.02")
    assert status.average_execution_price == Decimal("60713.37")
    assert status.fee_usd == Decimal("1.5")
    assert (status.is_live, status.is_cancelled, status.ts_ms) == (False, True, 1618678087707)


def test_fees_sum_usd_trades_and_the_estimate_uses_the_notional() -> None:
    trades = [
        {"fee_currency": "USD", "fee_amount": "0.75"},
        {"fee_currency": "USD", "fee_amount": "0.7678"},
    ]
    assert fees_usd(trades) == Decimal("1.5178")
    status = order_from_json(ORDER, Decimal(0))
    assert estimated_fee_usd(status, Decimal("0.25")) == Decimal("0.01") * Decimal(
        "60713.37"
    ) * Decimal("0.0025")


def test_latest_of_several_orders_with_one_client_order_id() -> None:
    older, newer = {**ORDER, "timestampms": 1}, {**ORDER, "timestampms": 2, "order_id": "2"}
    assert latest_order([newer, older]) is newer
    assert latest_order([]) is None


def test_token_bucket_allows_a_burst_then_paces_at_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(600, clock=lambda: now[0], sleep=sleep)  # 10/s, burst 10
    waits = [bucket.acquire() for _ in range(30)]
    assert waits[:10] == [0.0] * 10
    assert all(wait == pytest.approx(0.1) for wait in waits[10:])
    assert now[0] == pytest.approx(2.0)  # 20 tokens beyond the burst at 10/s
    now[0] += 60  # an idle minute refills only up to the burst
    assert [bucket.acquire() for _ in range(11)][-1] == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("side", "limit", "quantity", "expected"),
    [
        ("buy", "101", "3", [("100", "1"), ("101", "2")]),  # sweeps two levels, partial second
        ("buy", "100.5", "5", [("100", "1")]),  # stops at the limit: partial fill
        ("buy", "99", "1", []),  # nothing crosses
        ("sell", "98", "4", [("99", "2"), ("98", "2")]),
        ("sell", "99.5", "4", []),
    ],
)
def test_limit_order_matching(side: str, limit: str, quantity: str, expected: list[tuple]) -> None:
    asks = [(Decimal("100"), Decimal("1")), (Decimal("101"), Decimal("5"))]
    bids = [(Decimal("99"), Decimal("2")), (Decimal("98"), Decimal("3"))]
    fills = match_limit_order(
        asks if side == "buy" else bids, side, Decimal(limit), Decimal(quantity)
    )
    assert fills == [(Decimal(price), Decimal(size)) for price, size in expected]


def test_sandbox_account_spec() -> None:
    account = parse_sandbox_account(f"{KEY}:{SECRET}", Decimal(5), Decimal(1))
    assert (account.api_key, account.api_secret) == (KEY, SECRET)
    assert dict(account.balances) == {"usd": Decimal(5), "btc": Decimal(1)}
    assert SECRET not in repr(account)
    with pytest.raises(ValueError, match="KEY:SECRET") as caught:
        parse_sandbox_account(f"{SECRET}")
    assert SECRET not in str(caught.value)


# --- settings and the factory --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The factory keeps its nonce file under RTC_HOME: never the developer's."""
    monkeypatch.setenv("RTC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def settings_for(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in ("RTC_TRADING_MODE", "RTC_GEMINI_API_KEY", "RTC_GEMINI_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("RTC_GEMINI_REST_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_rest_url_follows_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_for(monkeypatch).gemini_rest_base_url == "http://127.0.0.1:8765"
    sandbox = settings_for(monkeypatch, RTC_TRADING_MODE="sandbox")
    assert sandbox.trading_mode is TradingMode.sandbox
    assert sandbox.gemini_rest_base_url == "https://api.sandbox.gemini.com"
    live = settings_for(monkeypatch, RTC_TRADING_MODE="live")
    assert live.gemini_rest_base_url == "https://api.gemini.com"
    pointed = settings_for(
        monkeypatch, RTC_TRADING_MODE="sandbox", RTC_GEMINI_REST_URL="http://127.0.0.1:9999/"
    )
    assert pointed.gemini_rest_base_url == "http://127.0.0.1:9999"


def test_factory_refuses_paper_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GeminiConfigError, match="paper"):
        gemini_adapter_from_settings(settings_for(monkeypatch, RTC_GEMINI_API_KEY=KEY))


@pytest.mark.parametrize("mode", ["sandbox", "live"])
def test_factory_refuses_missing_keys(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    settings = settings_for(monkeypatch, RTC_TRADING_MODE=mode, RTC_GEMINI_API_KEY=KEY)
    with pytest.raises(GeminiConfigError, match="RTC_GEMINI_API_SECRET") as caught:
        gemini_adapter_from_settings(settings)
    assert "RTC_GEMINI_API_KEY" not in str(caught.value)  # only the missing one is named
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.gemini.com",
        "https://API.gemini.com:443",  # issue 10: passed the string comparison
        "https://api.gemini.com:443/",
        "https://Api.Gemini.Com./v1",
        "http://api.gemini.com:80",
        "https://api.gemini.com:8443",
    ],
)
def test_factory_refuses_the_live_url_without_live_mode(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    settings = settings_for(
        monkeypatch,
        RTC_TRADING_MODE="sandbox",
        RTC_GEMINI_API_KEY=KEY,
        RTC_GEMINI_API_SECRET=SECRET,
        RTC_GEMINI_REST_URL=url,
    )
    with pytest.raises(GeminiConfigError, match="RTC_TRADING_MODE=live"):
        gemini_adapter_from_settings(settings)


def test_the_nonce_file_is_named_by_mode_and_host(monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = settings_for(
        monkeypatch,
        RTC_TRADING_MODE="sandbox",
        RTC_GEMINI_API_KEY=KEY,
        RTC_GEMINI_API_SECRET=SECRET,
    )
    live = settings_for(
        monkeypatch, RTC_TRADING_MODE="live", RTC_GEMINI_API_KEY=KEY, RTC_GEMINI_API_SECRET=SECRET
    )
    assert nonce_path(sandbox).name == "nonce-sandbox-api.sandbox.gemini.com.txt"
    assert nonce_path(live).name == "nonce-live-api.gemini.com.txt"
    adapter = gemini_adapter_from_settings(sandbox)
    first = adapter.nonce()
    assert int(nonce_path(sandbox).read_text()) == first


def test_live_mode_builds_with_a_loud_warning_and_no_secret_anywhere(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(
        monkeypatch, RTC_TRADING_MODE="live", RTC_GEMINI_API_KEY=KEY, RTC_GEMINI_API_SECRET=SECRET
    )
    with caplog.at_level(logging.DEBUG):
        adapter = gemini_adapter_from_settings(settings)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "LIVE TRADING" in warnings[0].getMessage()
    assert adapter.base_url == "https://api.gemini.com"
    assert isinstance(adapter, ExchangeAdapter)
    for text in (
        caplog.text,
        repr(adapter),
        str(adapter),
        repr(settings),
        str(settings.model_dump()),
    ):
        assert SECRET not in text
        assert KEY not in text


def test_sandbox_mode_builds_without_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(
        monkeypatch,
        RTC_TRADING_MODE="sandbox",
        RTC_GEMINI_API_KEY=KEY,
        RTC_GEMINI_API_SECRET=SECRET,
        RTC_GEMINI_REST_URL="http://127.0.0.1:8765",
    )
    with caplog.at_level(logging.INFO):
        adapter = gemini_adapter_from_settings(settings)
    assert adapter.base_url == "http://127.0.0.1:8765"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert SECRET not in caplog.text


def test_adapter_needs_both_credentials() -> None:
    with pytest.raises(GeminiConfigError):
        GeminiAdapter("http://127.0.0.1:1", KEY, "")
