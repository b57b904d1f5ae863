"""The Gemini adapter against the simulator as a Gemini sandbox, over real HTTP on loopback.

The simulator runs in-process (its own event loop in a thread) on a free port, replaying the real
Gemini capture of ../shared/data at speed 1000 so its books reach the capture's final state within
a second; the sandbox then matches orders against that book. ``/_sim/status`` counts the requests
per endpoint, which proves what the adapter sent (and what it did not).

The last tests use a small scripted HTTP server on loopback that answers 503 / 429 on purpose, to
show which requests the adapter retries; it is a real server, not a mock of the adapter.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from rtcrypto.exchange.base import (
    AuthenticationError,
    ExchangeUnavailableError,
    InsufficientFundsError,
    NonceError,
    OrderRejectedError,
    RateLimitError,
)
from rtcrypto.exchange.gemini import GeminiAdapter
from rtcrypto.exchange.signing import NonceSource, signed_headers
from rtcrypto.simulator.sandbox import SandboxAccount
from rtcrypto.trading.order_types import OrderRequest
from rtcrypto.trading.strategy import Side
from tests.helpers import GEMINI_CAPTURE, Child, free_port, wait_until
from tests.simulator_harness import InProcessSimulator

pytestmark = pytest.mark.integration

KEY = "account-sandbox-test-key"
SECRET = "sandbox-secret-Zq81-must-never-be-logged"
OTHER_KEY = "account-second-key"
OTHER_SECRET = "second-secret-Wv27-never-logged"
START_USD = Decimal("1000000")
FEE_RATE = Decimal("0.0025")
ORDER_PATHS = ("/v1/order/new", "/v1/order/status", "/v1/order/cancel", "/v1/orders")
CENT = Decimal("0.01")


class Sandbox(InProcessSimulator):
    """A started simulator with two sandbox accounts; ``url`` is its HTTP base URL."""

    def __init__(self) -> None:
        super().__init__(
            (
                SandboxAccount(KEY, SECRET, (("usd", START_USD), ("btc", Decimal(0)))),
                SandboxAccount(OTHER_KEY, OTHER_SECRET),
            )
        )

    def status(self) -> dict[str, Any]:
        return self.sim_status()

    def requests_to(self, path: str) -> int:
        return int(self.status()["requests"].get(path, 0))

    def adapter(self, key: str = KEY, secret: str = SECRET, **options: Any) -> GeminiAdapter:
        return GeminiAdapter(self.url, key, secret, **options)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    server = Sandbox()
    yield server
    server.stop()


def buy(client_order_id: str, quantity: str, limit: Decimal) -> OrderRequest:
    return OrderRequest(client_order_id, "btcusd", Side.buy, Decimal(quantity), limit)


def test_balances_and_top_of_book(sandbox: Sandbox) -> None:
    adapter = sandbox.adapter()
    assert adapter.balances() == {"usd": START_USD, "btc": Decimal(0)}
    assert sandbox.adapter(OTHER_KEY, OTHER_SECRET).balances() == {
        "usd": Decimal(10000),
        "btc": Decimal(0),
    }
    top = adapter.top_of_book("btcusd")
    # the capture's final BTCUSD book, as the simulator's own public endpoint shows it
    book = requests.get(f"{sandbox.url}/v1/book/btcusd", timeout=10).json()
    assert top.bid == Decimal(book["bids"][0]["price"]) and top.ask == Decimal(
        book["asks"][0]["price"]
    )
    assert top.bid_quantity == Decimal(book["bids"][0]["amount"])
    assert Decimal(60_000) < top.bid < top.ask < Decimal(61_000)
    assert all(
        Decimal(a["price"]) > Decimal(b["price"])
        for a, b in zip(book["asks"][1:], book["asks"], strict=False)
    )
    ticker = adapter.ticker("btcusd")
    assert (ticker.bid, ticker.ask) == (top.bid, top.ask)
    assert ticker.last is not None


def test_ioc_buy_fills_charges_the_fee_and_moves_balances(sandbox: Sandbox) -> None:
    adapter = sandbox.adapter()
    top = adapter.top_of_book("btcusd")
    limit = (top.ask * Decimal("1.001")).quantize(CENT)
    status = adapter.place_order(buy("rtc-buy-1", "0.25", limit))

    assert status.executed_quantity == Decimal("0.25")
    assert status.is_cancelled is False and status.is_live is False
    assert top.ask <= status.average_execution_price <= limit
    notional = status.executed_quantity * status.average_execution_price
    assert status.fee_usd == pytest.approx(notional * FEE_RATE, abs=Decimal("1e-8"))
    assert status.fee_usd > 0
    balances = adapter.balances()
    assert balances["btc"] == Decimal("0.25")
    assert balances["usd"] == pytest.approx(
        START_USD - notional - status.fee_usd, abs=Decimal("1e-8")
    )

    # and back: an IOC sell at a limit below the bid fills against bids >= the limit
    top = adapter.top_of_book("btcusd")
    sell_limit = (top.bid * Decimal("0.999")).quantize(CENT)
    sold = adapter.place_order(
        OrderRequest("rtc-sell-1", "btcusd", Side.sell, Decimal("0.25"), sell_limit)
    )
    assert sold.executed_quantity == Decimal("0.25")
    assert sell_limit <= sold.average_execution_price <= top.bid
    proceeds = sold.executed_quantity * sold.average_execution_price
    assert sold.fee_usd == pytest.approx(proceeds * FEE_RATE, abs=Decimal("1e-8"))
    after = adapter.balances()
    assert after["btc"] == 0
    assert after["usd"] == pytest.approx(
        balances["usd"] + proceeds - sold.fee_usd, abs=Decimal("1e-8")
    )


def test_ioc_partial_fill_cancels_the_rest_and_hides_the_taken_liquidity(sandbox: Sandbox) -> None:
    adapter = sandbox.adapter()
    top = adapter.top_of_book("btcusd")
    # limit at the best ask: only that level can fill; ask for 5 BTC more than it holds
    status = adapter.place_order(buy("rtc-partial", str(top.ask_quantity + 5), top.ask))
    assert status.executed_quantity == top.ask_quantity
    assert status.average_execution_price == top.ask
    assert status.is_cancelled is True and status.is_live is False
    assert status.remaining_quantity == 5
    # the level is used up for a minute: the next order cannot take it again
    assert adapter.top_of_book("btcusd").ask > top.ask
    again = adapter.place_order(buy("rtc-partial-2", "0.01", top.ask))
    assert again.executed_quantity == 0


def test_ioc_that_cannot_fill_is_cancelled_and_changes_nothing(sandbox: Sandbox) -> None:
    adapter = sandbox.adapter()
    top = adapter.top_of_book("btcusd")
    status = adapter.place_order(
        buy("rtc-no-fill", "0.1", (top.bid * Decimal("0.9")).quantize(CENT))
    )
    assert status.executed_quantity == 0
    assert status.average_execution_price == 0
    assert status.fee_usd == 0
    assert status.is_cancelled is True and status.is_live is False
    assert adapter.balances() == {"usd": START_USD, "btc": Decimal(0)}
    assert sandbox.status()["sandbox"]["fills"] == 0
    assert adapter.open_orders() == []


def test_status_by_client_order_id(sandbox: Sandbox) -> None:
    adapter = sandbox.adapter()
    top = adapter.top_of_book("btcusd")
    placed = adapter.place_order(
        buy("rtc-status", "0.02", (top.ask * Decimal("1.01")).quantize(CENT))
    )
    found = adapter.order_status("rtc-status")
    assert found == placed  # same order, same fee (read from its trades both times)
    assert adapter.order_status("rtc-never-sent") is None
    # another account cannot see it
    assert sandbox.adapter(OTHER_KEY, OTHER_SECRET).order_status("rtc-status") is None


def test_resting_order_is_listed_and_cancelled(sandbox: Sandbox) -> None:
    """The adapter only sends IOC orders; a resting one (no option) is placed with a raw signed
    request, as another client of the same account would, to exercise open_orders and cancel."""
    adapter = sandbox.adapter()
    top = adapter.top_of_book("btcusd")
    price = (top.bid * Decimal("0.95")).quantize(CENT)
    params = {
        "client_order_id": "resting-1",
        "symbol": "btcusd",
        "amount": "0.5",
        "price": str(price),
        "side": "buy",
        "type": "exchange limit",
        "options": [],
    }
    headers = signed_headers(KEY, SECRET, "/v1/order/new", adapter.nonce(), params)
    answer = requests.post(f"{sandbox.url}/v1/order/new", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    held = Decimal("0.5") * price * (1 + FEE_RATE)
    assert adapter.balances()["usd"] == START_USD - held  # available excludes the hold

    (live,) = adapter.open_orders()
    assert (live.client_order_id, live.is_live, live.executed_quantity) == ("resting-1", True, 0)
    cancelled = adapter.cancel_order(live.order_id)
    assert cancelled.is_cancelled is True and cancelled.is_live is False
    assert adapter.open_orders() == []
    assert adapter.balances()["usd"] == START_USD


def test_refusals_map_to_the_exception_classes(sandbox: Sandbox) -> None:
    adapter = sandbox.adapter(OTHER_KEY, OTHER_SECRET)  # 10,000 USD, 0 BTC
    top = adapter.top_of_book("btcusd")
    with pytest.raises(InsufficientFundsError) as funds:
        adapter.place_order(buy("too-big", "1", top.ask))
    assert funds.value.status == 406
    with pytest.raises(InsufficientFundsError):
        adapter.place_order(OrderRequest("no-btc", "btcusd", Side.sell, Decimal("0.1"), top.bid))
    # a sub-cent limit is rounded to the symbol details, not refused (test_gemini_order_rules.py)
    with pytest.raises(OrderRejectedError) as symbol:
        adapter.place_order(
            OrderRequest("bad-sym", "dogeusd", Side.buy, Decimal("1"), Decimal("1"))
        )
    assert symbol.value.reason == "InvalidSymbol"
    assert sandbox.status()["sandbox"]["orders"] == 0
    assert adapter.balances() == {"usd": Decimal(10000), "btc": Decimal(0)}


def test_wrong_secret_fails_on_the_first_call_and_nothing_else_is_sent(sandbox: Sandbox) -> None:
    adapter = sandbox.adapter(KEY, "not-the-secret")
    with pytest.raises(AuthenticationError) as caught:
        adapter.balances()  # what a trader calls first, before any order
    assert not isinstance(caught.value, NonceError)
    assert caught.value.reason == "InvalidSignature"
    counts = sandbox.status()["requests"]
    assert counts.get("/v1/balances") == 1  # an authentication failure is not retried
    assert not any(counts.get(path) for path in ORDER_PATHS), counts
    with pytest.raises(AuthenticationError):
        sandbox.adapter("account-unknown", SECRET).balances()
    status = sandbox.status()
    assert status["sandbox"]["rejections"] == {"InvalidSignature": 2}
    assert status["sandbox"]["orders"] == 0


def test_stale_nonce_is_refused(sandbox: Sandbox) -> None:
    sandbox.adapter().balances()  # the key's last nonce is now about epoch ms
    stale = sandbox.adapter(nonce_source=NonceSource(clock_ms=lambda: 1_000))
    with pytest.raises(NonceError) as caught:
        stale.balances()
    assert caught.value.reason == "InvalidNonce"
    assert sandbox.requests_to("/v1/balances") == 2  # refused once, not retried
    # a raw request replaying a used nonce is refused too
    replay = signed_headers(KEY, SECRET, "/v1/balances", 1_000)
    answer = requests.post(f"{sandbox.url}/v1/balances", headers=replay, timeout=10)
    assert (answer.status_code, answer.json()["reason"]) == (400, "InvalidNonce")


def test_payload_for_another_endpoint_is_refused(sandbox: Sandbox) -> None:
    headers = signed_headers(KEY, SECRET, "/v1/balances", time.time_ns() // 1_000_000)
    answer = requests.post(f"{sandbox.url}/v1/order/new", headers=headers, timeout=10)
    assert (answer.status_code, answer.json()["reason"]) == (400, "InvalidSignature")
    assert sandbox.status()["sandbox"]["orders"] == 0


def test_the_secret_never_appears_in_logs(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3, the adapter and the simulator, all levels
    adapter = sandbox.adapter()
    errors: list[str] = []
    top = adapter.top_of_book("btcusd")
    adapter.place_order(buy("rtc-logged", "0.01", (top.ask * Decimal("1.01")).quantize(CENT)))
    adapter.order_status("rtc-logged")
    adapter.open_orders()
    for attempt in (
        lambda: sandbox.adapter(KEY, OTHER_SECRET).balances(),
        lambda: sandbox.adapter(nonce_source=NonceSource(clock_ms=lambda: 1)).balances(),
        lambda: adapter.place_order(buy("rtc-huge", "1000", top.ask)),
    ):
        with pytest.raises((AuthenticationError, InsufficientFundsError)) as caught:
            attempt()
        errors.append(str(caught.value) + repr(caught.value))
    assert "sandbox order" in caplog.text  # the simulator's log lines were captured too
    assert "/v1/order/new" in caplog.text  # so were urllib3's request lines
    for text in (caplog.text, *errors, repr(adapter)):
        assert SECRET not in text
        assert OTHER_SECRET not in text


# --- retries, against a scripted failing server ----------------------------------------------------


class FailingServer:
    """Loopback HTTP server: answers each path's first ``failures[path]`` requests with
    ``status`` and then 200 with ``bodies[path]``; counts every request per path."""

    def __init__(self, status: int, failures: dict[str, int], bodies: dict[str, Any]) -> None:
        self.counts: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                path = self.path.split("?")[0]
                server.counts[path] = server.counts.get(path, 0) + 1
                if server.counts[path] <= failures.get(path, 0):
                    self._answer(status, {"result": "error", "reason": "", "message": "scripted"})
                else:
                    self._answer(200, bodies[path])

            do_GET = do_POST

            def _answer(self, code: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


BALANCES = [{"type": "exchange", "currency": "USD", "amount": "5", "available": "5"}]
BTCUSD_DETAILS = {
    "symbol": "BTCUSD",
    "tick_size": 1e-8,
    "quote_increment": 0.01,
    "min_order_size": "0.00001",
}


@pytest.mark.parametrize("status", [503, 429])
def test_reads_are_retried_but_a_new_order_is_sent_once(status: int) -> None:
    server = FailingServer(
        status,
        {"/v1/balances": 2, "/v1/order/new": 99},
        {"/v1/balances": BALANCES, "/v1/symbols/details/btcusd": BTCUSD_DETAILS},
    )
    try:
        adapter = GeminiAdapter(server.url, KEY, SECRET, retry_initial_s=0.01, retry_max_s=0.05)
        assert adapter.balances() == {"usd": Decimal(5)}
        assert server.counts["/v1/balances"] == 3  # two failures, then the answer
        expected = ExchangeUnavailableError if status == 503 else RateLimitError
        with pytest.raises(expected) as caught:
            adapter.place_order(buy("rtc-once", "0.01", Decimal("60000")))
        assert server.counts["/v1/order/new"] == 1  # never re-sent automatically
        if status == 503:  # the order may exist: the message says how to find out
            assert "order_status('rtc-once')" in str(caught.value)
    finally:
        server.stop()


def test_no_answer_is_exchange_unavailable_after_the_read_retries() -> None:
    adapter = GeminiAdapter(
        f"http://127.0.0.1:{free_port()}", KEY, SECRET, read_attempts=3, retry_initial_s=0.01
    )
    started = time.monotonic()
    with pytest.raises(ExchangeUnavailableError) as caught:
        adapter.balances()
    assert time.monotonic() - started < 5
    assert caught.value.reason == "ConnectionError"
    assert SECRET not in str(caught.value)


def test_simulate_flags_create_sandbox_accounts(tmp_path: Path) -> None:
    """``python -m streaming.simulator`` (flags as ``rtc simulate``): one account from
    ``--sandbox-account`` and one from the settings' key and secret, with ``--sandbox-usd``."""
    port = free_port()
    command = [sys.executable, "-m", "streaming.simulator", "--capture", str(GEMINI_CAPTURE)]
    command += ["--port", str(port), "--speed", "1000", "--sandbox-usd", "2500"]
    command += ["--sandbox-account", f"{OTHER_KEY}:{OTHER_SECRET}", "--sandbox-from-settings"]
    env = {"RTC_GEMINI_API_KEY": KEY, "RTC_GEMINI_API_SECRET": SECRET, "RTC_LOG_LEVEL": "DEBUG"}
    child = Child("sandbox-simulator", command, tmp_path, env)
    url = f"http://127.0.0.1:{port}"
    try:

        def replayed() -> bool:
            try:
                return bool(requests.get(f"{url}/_sim/status", timeout=2).json()["done"])
            except requests.RequestException:
                return False

        wait_until(replayed, 30, "the sandbox simulator's replay", child)
        for key, secret in ((KEY, SECRET), (OTHER_KEY, OTHER_SECRET)):
            adapter = GeminiAdapter(url, key, secret)
            assert adapter.balances() == {"usd": Decimal(2500), "btc": Decimal(0)}
        with pytest.raises(AuthenticationError):
            GeminiAdapter(url, KEY, OTHER_SECRET).balances()
        assert requests.get(f"{url}/_sim/status", timeout=5).json()["sandbox"]["accounts"] == 2
    finally:
        assert child.stop() == 0
    assert SECRET not in child.log() and OTHER_SECRET not in child.log()


def test_the_trader_takes_the_accounts_fee_tier_from_notionalvolume(sandbox: Sandbox) -> None:
    """``/v1/notionalvolume``'s ``api_taker_fee_bps`` is the fee the trader decides with and the
    adapter's estimate uses; a tier that cannot be read leaves ``RTC_TAKER_FEE_PCT``."""
    from rtcrypto.trader.service import account_taker_fee_pct

    adapter = sandbox.adapter()
    tier = adapter.fee_tier()
    assert tier.api_taker_fee_bps == FEE_RATE * 10_000 and tier.notional_30d_volume_usd == 0
    status = adapter.place_order(buy("tier-1", "0.01", Decimal(70_000)))
    notional = status.executed_quantity * status.average_execution_price
    assert adapter.fee_tier().notional_30d_volume_usd == pytest.approx(notional, abs=CENT)

    configured = Decimal("0.9")
    assert account_taker_fee_pct(adapter, configured) == Decimal("0.25")
    assert adapter.fallback_fee_pct == Decimal("0.25")
    wrong = sandbox.adapter(KEY, "not-the-secret")
    assert account_taker_fee_pct(wrong, configured) == configured
    assert wrong.fallback_fee_pct == Decimal("0.25")  # the constructor's default, untouched
    assert account_taker_fee_pct(object(), configured) == configured  # paper: no tier
