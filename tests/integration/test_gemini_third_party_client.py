"""A third-party Gemini client, unpatched, against the simulator's sandbox over real HTTP.

The client is ccxt 4.5.63 (``ccxt.gemini``, its sync API), the widely used open-source exchange
library, pinned in requirements.txt. It is pointed at the simulator only by configuration: its
``urls['api']`` entries are the simulator's base URL, and two of ccxt's own documented options
choose what ``load_markets`` reads (``fetchMarketsFromAPI.fetchDetailsForAllSymbols``: the
precision and minimum from ``/v1/symbols/details/{symbol}`` for every symbol of ``/v1/symbols``;
``fetchCurrencies.webApiEnable`` off: no scraping of Gemini's web pages, which are not the API).
No ccxt method or parser is replaced.

The simulator runs in-process (its own event loop in a thread) on a free port, replaying the real
Gemini capture of ../shared/data at speed 1000, so its BTCUSD book is the capture's final book;
the sandbox matches orders against it. The tests run in file order on one simulator: the main
account's IOC buy fills and its BTC backs the resting sell; a second account meets the private
rate limit, and ``POST /_sim/maintenance`` (fault endpoints on) shows the 503.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import pytest
import requests

from rtcrypto.simulator.sandbox import SandboxAccount
from tests.simulator_harness import InProcessSimulator

pytestmark = pytest.mark.integration

# ccxt refuses a Gemini key without "account" in it (Gemini's account-scoped keys; master keys are
# not supported by ccxt), so the sandbox key is named like one.
KEY = "account-ccxt-client-key"
SECRET = "ccxt-client-secret-Hk42-never-logged"
LIMITED_KEY = "account-ccxt-rate-limited-key"
LIMITED_SECRET = "ccxt-limited-secret-Pq93-never-logged"
PRIVATE_RATE_PER_MIN = 100  # per key; the main flow stays far below it
START_USD = Decimal("1000000")
FEE_RATE = Decimal("0.0025")  # the sandbox's default taker fee, 0.25 %
# ccxt's name for btcusd when its markets come from /v1/symbols/details: ccxt reads the
# ``contract_price_currency`` field as a perpetual's settle currency, and Gemini documents that
# field on its spot symbols too (BTCUSD's example: "USD"), so ccxt appends ":USD". The market's
# id, base, quote, precision and limits are BTCUSD's; orders and fills go to btcusd.
SYMBOL = "BTC/USD:USD"
BUY_AMOUNT = Decimal("0.05")


class Simulator(InProcessSimulator):
    """The simulator in its own event loop thread with one funded sandbox account."""

    def __init__(self) -> None:
        super().__init__(
            (
                SandboxAccount(KEY, SECRET, (("usd", START_USD), ("btc", Decimal(0)))),
                SandboxAccount(LIMITED_KEY, LIMITED_SECRET),
            ),
            sandbox_private_rate_per_min=PRIVATE_RATE_PER_MIN,
            fault_endpoints=True,  # POST /_sim/maintenance
        )

    def get(self, path: str) -> Any:
        response = requests.get(self.url + path, timeout=10)
        response.raise_for_status()
        return response.json()

    def maintenance(self, on: bool) -> None:
        response = requests.post(f"{self.url}/_sim/maintenance", json={"on": on}, timeout=10)
        assert response.json() == {"maintenance": on}

    def client(
        self,
        secret: str = SECRET,
        key: str = KEY,
        options: dict[str, Any] | None = None,
        **config: Any,
    ) -> ccxt.gemini:
        """An unpatched ccxt Gemini client whose API base URLs are this simulator's; ``options``
        adds to its two market-loading options."""
        return ccxt.gemini(
            {
                **config,
                "apiKey": key,
                "secret": secret,
                "timeout": 10_000,
                "urls": {
                    "api": {
                        "public": self.url,
                        "private": self.url,
                        "web": self.url,
                        "webExchange": self.url,
                    }
                },
                "options": {
                    "fetchMarketsFromAPI": {"fetchDetailsForAllSymbols": True},
                    "fetchCurrencies": {"webApiEnable": False},
                    **(options or {}),
                },
            }
        )


@pytest.fixture(autouse=True)
def decimal_context_restored() -> Iterator[None]:
    """ccxt's rounding helpers change the thread's decimal context (ROUND_HALF_UP, Underflow
    trapped) for good: put it back after each test, so that no later test in this process
    computes with ccxt's context (the parity test's fees once came out 1e-8 apart)."""
    saved = decimal.getcontext().copy()
    yield
    decimal.setcontext(saved)


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    server = Simulator()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(simulator: Simulator) -> ccxt.gemini:
    exchange = simulator.client()
    exchange.load_markets()
    return exchange


@pytest.fixture(scope="module")
def state() -> dict[str, Any]:
    """What one test leaves for the next (the order ids), in file order."""
    return {}


def test_load_markets_takes_precision_and_minimum_from_symbol_details(
    simulator: Simulator, client: ccxt.gemini
) -> None:
    symbols = simulator.get("/v1/symbols")
    assert "btcusd" in symbols
    assert {client.markets_by_id[symbol][0]["id"] for symbol in symbols} == set(symbols)
    details = simulator.get("/v1/symbols/details/btcusd")
    market = client.market(SYMBOL)
    assert (market["id"], market["base"], market["quote"]) == ("btcusd", "BTC", "USD")
    assert client.markets_by_id["btcusd"][0]["symbol"] == SYMBOL
    assert market["active"] is True
    # Gemini's tick_size is the quantity increment, quote_increment the price increment
    assert market["precision"]["amount"] == details["tick_size"] == 1e-8
    assert market["precision"]["price"] == details["quote_increment"] == 0.01
    assert market["limits"]["amount"]["min"] == float(details["min_order_size"]) == 0.00001
    # and ccxt rounds to them
    assert client.price_to_precision(SYMBOL, 60123.451) == "60123.45"
    assert client.amount_to_precision(SYMBOL, 0.123456781) == "0.12345678"


def test_order_book_ticker_and_trades(simulator: Simulator, client: ccxt.gemini) -> None:
    raw = simulator.get("/v1/book/btcusd")
    book = client.fetch_order_book(SYMBOL, limit=5)
    assert book["symbol"] == SYMBOL
    assert len(book["bids"]) == 5 and len(book["asks"]) == 5
    assert book["bids"][0] == [float(raw["bids"][0]["price"]), float(raw["bids"][0]["amount"])]
    assert book["asks"][0] == [float(raw["asks"][0]["price"]), float(raw["asks"][0]["amount"])]
    assert 60_000 < book["bids"][0][0] < book["asks"][0][0] < 61_000
    assert [price for price, _ in book["bids"]] == sorted(
        (price for price, _ in book["bids"]), reverse=True
    )
    assert [price for price, _ in book["asks"]] == sorted(price for price, _ in book["asks"])

    raw_ticker = simulator.get("/v1/pubticker/btcusd")
    ticker = client.fetch_ticker(SYMBOL)
    after = simulator.get("/v1/pubticker/btcusd")
    assert ticker["symbol"] == SYMBOL
    assert (ticker["bid"], ticker["ask"]) == (book["bids"][0][0], book["asks"][0][0])
    assert ticker["last"] == float(raw_ticker["last"]) > 0
    assert ticker["baseVolume"] == float(raw_ticker["volume"]["BTC"]) > 0
    # the replay clock runs on (speed 1000): the stamp lies between the two raw answers
    assert raw_ticker["volume"]["timestamp"] <= ticker["timestamp"] <= after["volume"]["timestamp"]

    raw_trades = simulator.get("/v1/trades/btcusd?limit_trades=5")
    trades = client.fetch_trades(SYMBOL, limit=5)
    assert len(raw_trades) == 5
    assert {trade["id"]: (trade["price"], trade["amount"], trade["side"]) for trade in trades} == {
        str(t["tid"]): (float(t["price"]), float(t["amount"]), t["type"]) for t in raw_trades
    }
    assert [trade["timestamp"] for trade in trades] == sorted(t["timestampms"] for t in raw_trades)


def test_balances(client: ccxt.gemini) -> None:
    balance = client.fetch_balance()
    assert balance["USD"] == {"free": float(START_USD), "used": 0.0, "total": float(START_USD)}
    assert balance["BTC"]["total"] == 0.0


def test_ioc_buy_fills_and_its_status_is_closed(
    simulator: Simulator, client: ccxt.gemini, state: dict[str, Any]
) -> None:
    ask = Decimal(simulator.get("/v1/book/btcusd")["asks"][0]["price"])
    limit = (ask * Decimal("1.001")).quantize(Decimal("0.01"))
    order = client.create_order(
        SYMBOL,
        "limit",
        "buy",
        float(BUY_AMOUNT),
        float(limit),
        {"timeInForce": "IOC", "clientOrderId": "ccxt-ioc-buy-1"},
    )
    assert order["status"] == "closed"
    assert order["timeInForce"] == "IOC"
    assert order["clientOrderId"] == "ccxt-ioc-buy-1"
    assert order["filled"] == float(BUY_AMOUNT) and order["remaining"] == 0
    assert float(ask) <= order["average"] <= float(limit)
    state["buy"] = order

    fetched = client.fetch_order(order["id"])
    assert fetched["id"] == order["id"]
    assert (fetched["status"], fetched["side"], fetched["type"]) == ("closed", "buy", "limit")
    assert fetched["symbol"] == SYMBOL
    assert fetched["filled"] == float(BUY_AMOUNT) > 0
    assert fetched["average"] == order["average"]

    balance = client.fetch_balance()
    assert balance["BTC"]["total"] == float(BUY_AMOUNT)
    notional = Decimal(str(order["average"])) * BUY_AMOUNT
    assert balance["USD"]["total"] == pytest.approx(
        float(START_USD - notional * (1 + FEE_RATE)), abs=1e-6
    )


def test_resting_sell_is_listed_open_then_cancelled(
    client: ccxt.gemini, state: dict[str, Any]
) -> None:
    assert "buy" in state, "runs after the IOC buy (its BTC backs this sell)"
    far_price = round(state["buy"]["average"] * 2, 2)
    order = client.create_order(SYMBOL, "limit", "sell", float(BUY_AMOUNT), far_price)
    assert (order["status"], order["filled"], order["remaining"]) == (
        "open",
        0.0,
        float(BUY_AMOUNT),
    )
    assert order["price"] == far_price

    listed = client.fetch_open_orders(SYMBOL)
    assert [(o["id"], o["status"], o["side"], o["price"]) for o in listed] == [
        (order["id"], "open", "sell", far_price)
    ]
    held = client.fetch_balance()["BTC"]
    assert (held["free"], held["used"]) == (0.0, float(BUY_AMOUNT))

    cancelled = client.cancel_order(order["id"], SYMBOL)
    assert (cancelled["id"], cancelled["status"]) == (order["id"], "canceled")
    assert client.fetch_open_orders(SYMBOL) == []
    assert client.fetch_order(order["id"])["status"] == "canceled"
    assert client.fetch_balance()["BTC"]["free"] == float(BUY_AMOUNT)


def test_my_trades_carry_the_fee_charged(client: ccxt.gemini, state: dict[str, Any]) -> None:
    assert "buy" in state, "runs after the IOC buy"
    buy_id = state["buy"]["id"]
    trades = client.fetch_my_trades(SYMBOL)
    assert trades and {trade["order"] for trade in trades} == {buy_id}
    raw = {str(fill["tid"]): fill for fill in client.privatePostV1Mytrades({"symbol": "btcusd"})}
    assert sum(Decimal(str(trade["amount"])) for trade in trades) == BUY_AMOUNT
    for trade in trades:
        fill = raw[trade["id"]]
        assert (trade["symbol"], trade["side"]) == (SYMBOL, "buy")
        assert trade["fee"]["currency"] == "USD" == fill["fee_currency"]
        assert trade["fee"]["cost"] == float(fill["fee_amount"]) > 0
        notional = Decimal(fill["price"]) * Decimal(fill["amount"])
        assert Decimal(fill["fee_amount"]) == pytest.approx(
            notional * FEE_RATE, abs=Decimal("1e-8")
        )


def test_wrong_secret_is_an_authentication_error(simulator: Simulator, client: ccxt.gemini) -> None:
    # markets handed over in the config (ccxt's way to share loaded markets): no reload
    wrong = simulator.client(secret="not-the-secret", markets=client.markets)
    with pytest.raises(ccxt.AuthenticationError, match="InvalidSignature|signature"):
        wrong.fetch_balance()


def test_refusals_map_to_the_clients_error_classes(
    simulator: Simulator, client: ccxt.gemini
) -> None:
    """Gemini's documented ``reason`` values reach ccxt's matching exception classes."""
    ask = float(simulator.get("/v1/book/btcusd")["asks"][0]["price"])
    with pytest.raises(ccxt.InvalidOrder, match="InvalidQuantity|minimum order size"):
        client.create_order(SYMBOL, "limit", "buy", 0.000001, ask, {"timeInForce": "IOC"})
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order(SYMBOL, "limit", "buy", 1000, ask, {"timeInForce": "IOC"})
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order("1")
    with pytest.raises(ccxt.InvalidOrder, match="order_id is required") as refused:
        client.cancel_order(None)  # no order_id: Gemini's MissingOrderField
    assert not isinstance(refused.value, ccxt.OrderNotFound)

    with pytest.raises(ccxt.BadRequest, match="InvalidSymbol|nosuch"):
        client.publicGetV1PubtickerSymbol({"symbol": "nosuchusd"})  # ccxt's raw endpoint call
    # ccxt's documented nonce option: seconds, below the milliseconds this key has used
    seconds = simulator.client(options={"nonce": "seconds"}, markets=client.markets)
    with pytest.raises(ccxt.InvalidNonce):
        seconds.fetch_balance()
    simulator.maintenance(True)
    try:
        with pytest.raises(ccxt.OnMaintenance):
            client.fetch_ticker(SYMBOL)
        with pytest.raises(ccxt.OnMaintenance):
            client.fetch_balance()
    finally:
        simulator.maintenance(False)
    assert client.fetch_balance()["BTC"]["total"] == float(BUY_AMOUNT)

    # ccxt's throttle at 5 ms between requests: each request gets its own millisecond nonce
    limited = simulator.client(LIMITED_SECRET, LIMITED_KEY, rateLimit=5, markets=client.markets)
    for _ in range(PRIVATE_RATE_PER_MIN):
        assert limited.fetch_balance()["USD"]["total"] == 10000.0
    with pytest.raises(ccxt.RateLimitExceeded):
        limited.fetch_balance()
