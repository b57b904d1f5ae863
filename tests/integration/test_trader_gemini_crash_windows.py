"""Crash windows of the Gemini trader against the simulator's sandbox over real HTTP (issue 10).

- ``order/new`` answers 2xx but its body cannot be read: the order stays pending and the next
  minute's reconciliation finds the sandbox's fill (before: "abandoned", the fill lost);
- the trader restarts with its clock stepped back: the persisted nonce keeps every private call
  above the last one the sandbox accepted (before: ``InvalidNonce`` on every call).

The sandbox checks signatures and nonces per key as Gemini does and matches IOC orders against
the replayed real capture (``tests/integration/test_gemini_sandbox.py``'s in-process simulator).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from rtcrypto.config import Settings
from rtcrypto.exchange.base import NonceError
from rtcrypto.exchange.gemini import GeminiAdapter
from rtcrypto.exchange.gemini_settings import gemini_adapter_from_settings, nonce_path
from rtcrypto.exchange.nonce_store import PersistentNonceSource
from rtcrypto.exchange.signing import NonceSource
from rtcrypto.trader.engine import Trader, parse_liquidity
from rtcrypto.trader.forecasts import ForecastSides, ForecastSource
from rtcrypto.trader.journal import OrderJournal, read_journal
from rtcrypto.trading.risk import RiskLimits
from rtcrypto.trading.strategy import StrategyParams
from tests.integration.test_gemini_sandbox import KEY, SECRET, Sandbox
from tests.unit.test_trader_engine import T0, ListRecorder, forecast_frame, record

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    server = Sandbox()
    yield server
    server.stop()


class GarbledNewOrders(requests.Session):
    """Real HTTP to the sandbox; the body of the first ``order/new`` answer is cut in half on
    the way back (a proxy, a truncated read), its 200 status kept."""

    def __init__(self) -> None:
        super().__init__()
        self.garbled = 0

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        response = super().request(method, url, *args, **kwargs)
        if str(url).endswith("/v1/order/new") and self.garbled == 0:
            self.garbled += 1
            response._content = response.content[: len(response.content) // 2]
        return response


def gemini_trader(adapter: GeminiAdapter, journal_path: Path) -> Trader:
    forecasts = ForecastSource(journal_path.parent / "forecast", 10.0, clock_s=lambda: 0.0)
    forecasts.current = ForecastSides("v1", forecast_frame(["sell", "buy", "sell", "sell"]))
    trader = Trader(
        exchange=adapter,
        journal=OrderJournal(journal_path, mode="sandbox", venue="sandbox"),
        forecasts=forecasts,
        recorder=ListRecorder(),
        params=StrategyParams(trade_pct=Decimal("0.01")),
        limits=RiskLimits(Decimal("10"), Decimal("100000"), Decimal("100000"), 5),
        symbol="BTCUSD",
        mode="sandbox",
        taker_fee_pct=Decimal("0.25"),
        clock_ms=lambda: T0,
    )
    trader.start()
    return trader


def test_a_2xx_with_an_unreadable_body_stays_pending_and_the_fill_is_reconciled(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    session = GarbledNewOrders()
    adapter = sandbox.adapter(session=session)
    trader = gemini_trader(adapter, tmp_path / "journal.jsonl")
    before = adapter.balances()

    outcome = trader.on_liquidity(parse_liquidity(record(1)))  # forecast buy
    assert session.garbled == 1 and outcome.action == "skip"
    cid = outcome.client_order_id
    assert cid is not None
    state = read_journal(tmp_path / "journal.jsonl")
    assert state.abandoned == {}, "a 2xx order is never abandoned"
    assert list(state.acknowledged) == [cid] and "not JSON" in state.acknowledged[cid]
    assert [sent.request.client_order_id for sent in state.pending()] == [cid]
    bought = adapter.balances()["btc"] - before["btc"]
    assert bought > 0, "the sandbox did fill it"

    trader.on_liquidity(parse_liquidity(record(2)))  # the next minute reconciles first
    state = read_journal(tmp_path / "journal.jsonl")
    assert state.pending() == [] and state.abandoned == {}
    assert state.results[cid].executed_quantity == bought
    assert state.results[cid].fee_usd > 0, "the fee is read from the order's trades"
    assert trader.ledger is not None and trader.ledger.balances.btc > 0
    (sell,) = [sent.request for c, sent in state.sent.items() if c != cid]
    assert sell.quantity == bought, "the next minute sells what the reconciled buy bought"
    assert sandbox.requests_to("/v1/order/new") == 2, "the buy was not sent again"
    trader.journal.close()


def test_a_restart_with_the_clock_stepped_back_gets_no_invalid_nonce(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTC_HOME", str(tmp_path))
    monkeypatch.setenv("RTC_TRADING_MODE", "sandbox")
    monkeypatch.setenv("RTC_GEMINI_REST_URL", sandbox.url)
    monkeypatch.setenv("RTC_GEMINI_API_KEY", KEY)
    monkeypatch.setenv("RTC_GEMINI_API_SECRET", SECRET)
    settings = Settings()
    first = gemini_adapter_from_settings(settings)  # the trader before its restart
    first.balances()
    first.balances()
    last = int(nonce_path(settings).read_text())

    back_ms = last - 3_600_000  # the host's clock went back an hour across the restart
    without_the_file = sandbox.adapter(nonce_source=NonceSource(clock_ms=lambda: back_ms))
    with pytest.raises(NonceError):  # what a restart did before issue 10
        without_the_file.balances()

    restarted = GeminiAdapter(
        sandbox.url,
        KEY,
        SECRET,
        nonce_source=PersistentNonceSource(nonce_path(settings), clock_ms=lambda: back_ms),
    )
    assert restarted.balances()["usd"] > Decimal(0)
    assert int(nonce_path(settings).read_text()) == last + 1
    assert sandbox.status()["sandbox"]["rejections"].get("InvalidNonce") == 1
