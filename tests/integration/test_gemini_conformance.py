"""Contract tests: the simulator's Gemini REST endpoints answer with the documented fields and
JSON types, and the adapter's parsers accept Gemini's published examples.

Each row of docs/gemini-conformance.md that the simulator serves is driven here over real HTTP
on loopback (the simulator in-process, replaying the real Gemini capture of ../shared/data at
speed 1000). The reference for every answer is Gemini's own example, stored under
tests/fixtures/gemini/ with its source page in sources.json: an answer must carry every field
of the example with the same JSON type (string numbers stay strings).
"""

from __future__ import annotations

import json
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
    ExchangeUnavailableError,
    NonceError,
    OrderRejectedError,
    RateLimitError,
)
from rtcrypto.exchange.gemini import GeminiAdapter
from rtcrypto.exchange.gemini_answers import fees_usd, order_from_json
from rtcrypto.exchange.signing import NonceSource, signed_headers
from rtcrypto.market.captures.gemini_v1 import Level
from rtcrypto.simulator.sandbox import SandboxAccount
from rtcrypto.trading.order_types import OrderRequest
from rtcrypto.trading.strategy import Side
from tests.simulator_harness import InProcessSimulator

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gemini"
KEY, SECRET = "conformance-key", "conformance-secret-never-logged"
BEAT_KEY, BEAT_SECRET = "heartbeat-key", "heartbeat-secret-never-logged"
START_USD = Decimal("1000000")
FEE_RATE = Decimal("0.0025")  # RTC_TAKER_FEE_PCT's default, 0.25 %
HEARTBEAT_TIMEOUT_S = 1.0


def example(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def assert_same_shape(answer: Any, documented: Any, where: str = "$") -> None:
    """``answer`` has every field of ``documented`` with the same JSON type, recursively
    (a list: each element like the documented first element)."""
    if isinstance(documented, dict):
        assert isinstance(answer, dict), f"{where}: expected an object, got {answer!r}"
        missing = set(documented) - set(answer)
        assert not missing, f"{where}: missing documented fields {sorted(missing)}"
        for key, value in documented.items():
            assert_same_shape(answer[key], value, f"{where}.{key}")
    elif isinstance(documented, list):
        assert isinstance(answer, list), f"{where}: expected an array, got {answer!r}"
        if documented:
            for index, item in enumerate(answer):
                assert_same_shape(item, documented[0], f"{where}[{index}]")
    elif isinstance(documented, bool):
        assert isinstance(answer, bool), f"{where}: expected a boolean, got {answer!r}"
    elif isinstance(documented, int | float):
        assert isinstance(answer, int | float) and not isinstance(answer, bool), (
            f"{where}: expected a number, got {answer!r}"
        )
    elif isinstance(documented, str):
        assert isinstance(answer, str), f"{where}: expected a string, got {answer!r}"


class Simulator(InProcessSimulator):
    """The simulator in its own event loop thread, with two sandbox accounts (one a heartbeat
    session with a 1 s timeout)."""

    def __init__(self, **extra: Any) -> None:
        super().__init__(
            (
                SandboxAccount(KEY, SECRET, (("usd", START_USD), ("btc", Decimal(2)))),
                SandboxAccount(BEAT_KEY, BEAT_SECRET, requires_heartbeat=True),
            ),
            sandbox_heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S,
            **extra,
        )
        self.nonce = NonceSource()

    def get(self, path: str, **query: Any) -> requests.Response:
        return requests.get(self.url + path, params=query, timeout=10)

    def post(
        self,
        path: str,
        key: str = KEY,
        secret: str = SECRET,
        nonce: int | None = None,
        **params: Any,
    ) -> requests.Response:
        headers = signed_headers(key, secret, path, nonce or self.nonce(), params)
        return requests.post(self.url + path, headers=headers, timeout=10)

    def ok(self, path: str, key: str = KEY, secret: str = SECRET, **params: Any) -> Any:
        answer = self.post(path, key, secret, **params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def adapter(self) -> GeminiAdapter:
        return GeminiAdapter(self.url, KEY, SECRET, nonce_source=self.nonce)

    def add_ask(self, price: Decimal, size: Decimal) -> None:
        """A new ask level in the replayed book, as a replayed update would add it."""
        book = self.running.simulator.engine.books["BTCUSD"]
        level = Level(format(price, "f"), format(size, "f"), size)
        self.loop.call_soon_threadsafe(book.asks.__setitem__, price, level)
        time.sleep(0.05)


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    server = Simulator()
    yield server
    server.stop()


def best_prices(simulator: Simulator) -> tuple[Decimal, Decimal]:
    book = simulator.get("/v1/book/btcusd", limit_bids=1, limit_asks=1).json()
    return Decimal(book["bids"][0]["price"]), Decimal(book["asks"][0]["price"])


def new_order(price: Decimal, amount: str, side: str = "buy", **extra: Any) -> dict[str, Any]:
    return {
        "symbol": "btcusd",
        "amount": amount,
        "price": format(price, "f"),
        "side": side,
        "type": "exchange limit",
        **extra,
    }


# --- fixtures -----------------------------------------------------------------------------------


def test_every_example_names_its_documentation_page() -> None:
    sources = example("sources.json")
    files = {path.name for path in FIXTURES.glob("*.json")} - {"sources.json"}
    assert files == set(sources)
    assert all(url.startswith("https://docs") or "gemini.com" in url for url in sources.values())


# --- public endpoints ---------------------------------------------------------------------------


def test_public_endpoints_carry_the_documented_fields(simulator: Simulator) -> None:
    symbols = simulator.get("/v1/symbols").json()
    assert_same_shape(symbols, example("symbols.json"))
    assert "btcusd" in symbols

    details = simulator.get("/v1/symbols/details/btcusd").json()
    assert_same_shape(details, example("symbol_details.json"))
    assert (details["tick_size"], details["quote_increment"], details["min_order_size"]) == (
        1e-8,
        0.01,
        "0.00001",
    )
    assert (details["base_currency"], details["quote_currency"]) == ("BTC", "USD")

    assert_same_shape(simulator.get("/v1/pubticker/btcusd").json(), example("pubticker.json"))

    ticker = simulator.get("/v2/ticker/btcusd").json()
    assert_same_shape(ticker, example("ticker_v2.json"))
    assert len(ticker["changes"]) == 24
    bid, ask = best_prices(simulator)
    assert (Decimal(ticker["bid"]), Decimal(ticker["ask"])) == (bid, ask)
    assert Decimal(ticker["low"]) <= Decimal(ticker["close"]) <= Decimal(ticker["high"])

    book = simulator.get("/v1/book/btcusd", limit_bids=3, limit_asks=2).json()
    assert_same_shape(book, example("book.json"))
    assert (len(book["bids"]), len(book["asks"])) == (3, 2)


def test_trades_are_the_replayed_prints_newest_first(simulator: Simulator) -> None:
    trades = simulator.get("/v1/trades/btcusd", limit_trades=5).json()
    assert_same_shape(trades, example("trades.json"))
    assert len(trades) == 5
    assert [t["timestampms"] for t in trades] == sorted(
        (t["timestampms"] for t in trades), reverse=True
    )
    assert all(
        t["type"] in ("buy", "sell") and t["timestamp"] == t["timestampms"] // 1000 for t in trades
    )
    # since (a timestamp in ms or s) keeps the trades at or after it
    newest_ms = trades[0]["timestampms"]
    later = simulator.get("/v1/trades/btcusd", timestamp=newest_ms).json()
    assert later and all(t["timestampms"] >= newest_ms for t in later)
    assert later[0]["tid"] == trades[0]["tid"]  # the most recent after it
    in_seconds = simulator.get("/v1/trades/btcusd", timestamp=newest_ms // 1000).json()
    assert {t["tid"] for t in later} <= {t["tid"] for t in in_seconds}
    after_tid = simulator.get("/v1/trades/btcusd", since_tid=trades[1]["tid"]).json()
    assert trades[0]["tid"] in {t["tid"] for t in after_tid}
    assert trades[1]["tid"] not in {t["tid"] for t in after_tid}
    # paging forward from the start: since_tid=0 gives the earliest kept trades, newest first
    earliest = simulator.get("/v1/trades/btcusd", since_tid=0, limit_trades=3).json()
    assert len(earliest) == 3 and earliest[0]["tid"] > earliest[2]["tid"]
    following = simulator.get("/v1/trades/btcusd", since_tid=earliest[0]["tid"], limit_trades=3)
    assert min(t["tid"] for t in following.json()) > earliest[0]["tid"]
    bad = simulator.get("/v1/trades/btcusd", limit_trades=501)
    assert (bad.status_code, bad.json()["reason"]) == (400, "InvalidParameter")
    assert "limit_trades" in bad.json()["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/symbols/details/xxxyyy",
        "/v1/pubticker/xxxyyy",
        "/v2/ticker/xxxyyy",
        "/v1/book/xxxyyy",
        "/v1/trades/xxxyyy",
    ],
)
def test_an_unknown_symbol_gets_gemini_s_error(simulator: Simulator, path: str) -> None:
    answer = simulator.get(path)
    assert answer.status_code == 400
    assert_same_shape(answer.json(), example("error_invalid_symbol.json"))
    assert (answer.json()["result"], answer.json()["reason"]) == ("error", "InvalidSymbol")
    assert "xxxyyy" in answer.json()["message"]


# --- private endpoints --------------------------------------------------------------------------


def test_order_lifecycle_endpoints_carry_the_documented_fields(simulator: Simulator) -> None:
    bid, ask = best_prices(simulator)
    balances = simulator.ok("/v1/balances")
    assert_same_shape(balances, example("balances.json"))

    ioc = simulator.ok(
        "/v1/order/new",
        **new_order(ask, "0.001", client_order_id="ioc-1", options=["immediate-or-cancel"]),
    )
    assert_same_shape(ioc, example("order_status.json"))
    assert Decimal(ioc["executed_amount"]) == Decimal("0.001") and not ioc["is_live"]

    resting = simulator.ok("/v1/order/new", **new_order(ask + 5000, "0.002", side="sell"))
    assert resting["is_live"] and resting["options"] == []
    status = simulator.ok("/v1/order/status", order_id=int(ioc["order_id"]), include_trades=True)
    assert_same_shape(status, example("order_status.json"))
    (live,) = simulator.ok("/v1/orders")
    assert_same_shape(live, example("order_status.json"))
    assert live["order_id"] == resting["order_id"]

    trades = simulator.ok("/v1/mytrades", symbol="btcusd")
    assert_same_shape(trades, example("mytrades.json"))
    assert {t["order_id"] for t in trades} == {ioc["order_id"]}
    notional = sum(Decimal(t["price"]) * Decimal(t["amount"]) for t in trades)
    assert fees_usd(trades) == notional * FEE_RATE  # the fee charged, as the adapter reads it
    assert all(t["aggressor"] is True and t["fee_currency"] == "USD" for t in trades)

    volume = simulator.ok("/v1/notionalvolume")
    assert_same_shape(volume, example("notionalvolume.json"))
    assert (volume["api_taker_fee_bps"], volume["api_maker_fee_bps"]) == (25, 25)
    assert volume["notional_30d_volume"] == pytest.approx(float(notional))

    cancelled = simulator.ok("/v1/order/cancel/all")
    assert_same_shape(cancelled, example("cancel_all.json"))
    assert cancelled["details"]["cancelledOrders"] == [int(resting["order_id"])]
    assert simulator.ok("/v1/orders") == []
    history = simulator.ok("/v1/orders/history", limit_orders=10)
    assert_same_shape(history, [example("order_status.json")])
    assert [order["order_id"] for order in history] == [resting["order_id"], ioc["order_id"]]
    assert history[1]["trades"] and history[0]["is_cancelled"]

    assert simulator.ok("/v1/heartbeat") == example("heartbeat.json")


def test_cancel_one_cancel_the_session_and_status_by_client_order_id(simulator: Simulator) -> None:
    bid, _ = best_prices(simulator)
    first = simulator.ok("/v1/order/new", **new_order(bid - 50, "0.001", client_order_id="c-1"))
    second = simulator.ok("/v1/order/new", **new_order(bid - 60, "0.001", client_order_id="c-2"))
    cancelled = simulator.ok("/v1/order/cancel", order_id=int(first["order_id"]))
    assert_same_shape(cancelled, example("order_status.json"))
    assert (cancelled["is_live"], cancelled["is_cancelled"]) == (False, True)
    again = simulator.ok("/v1/order/cancel", order_id=int(first["order_id"]))
    assert again["is_cancelled"]  # cancelling a cancelled order succeeds without effect
    (by_client,) = simulator.ok("/v1/order/status", client_order_id="c-2")
    assert_same_shape(by_client, example("order_status.json"))
    assert by_client["order_id"] == second["order_id"] and by_client["is_live"]
    session = simulator.ok("/v1/order/cancel/session")
    assert_same_shape(session, example("cancel_all.json"))
    assert session["details"]["cancelledOrders"] == [int(second["order_id"])]
    missing = simulator.post("/v1/order/cancel", order_id=1)
    assert (missing.status_code, missing.json()["reason"]) == (404, "OrderNotFound")


def test_execution_options(simulator: Simulator) -> None:
    bid, ask = best_prices(simulator)
    maker = simulator.ok("/v1/order/new", **new_order(ask, "0.001", options=["maker-or-cancel"]))
    assert maker["is_cancelled"] and Decimal(maker["executed_amount"]) == 0
    huge = simulator.ok("/v1/order/new", **new_order(ask, "10", options=["fill-or-kill"]))
    assert huge["is_cancelled"] and Decimal(huge["executed_amount"]) == 0
    posted = simulator.ok("/v1/order/new", **new_order(bid, "0.001", options=["maker-or-cancel"]))
    assert (posted["is_live"], posted["is_cancelled"]) == (True, False)  # it adds liquidity
    assert posted["options"] == ["maker-or-cancel"]


def test_a_resting_order_fills_as_maker_when_the_book_crosses_it(simulator: Simulator) -> None:
    bid, ask = best_prices(simulator)
    limit = bid + Decimal("0.01")  # inside the spread: rests
    order = simulator.ok("/v1/order/new", **new_order(limit, "0.003"))
    assert order["is_live"] and Decimal(order["executed_amount"]) == 0
    simulator.add_ask(limit - Decimal("0.01"), Decimal("0.002"))  # a seller crosses it
    deadline = time.monotonic() + 5
    while True:
        status = simulator.ok("/v1/order/status", order_id=int(order["order_id"]))
        if Decimal(status["executed_amount"]) > 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert Decimal(status["executed_amount"]) == Decimal("0.002")
    assert status["is_live"]  # 0.001 still rests
    (fill,) = simulator.ok("/v1/mytrades", symbol="btcusd")
    assert fill["aggressor"] is False and Decimal(fill["price"]) == limit  # maker, own price
    assert Decimal(fill["fee_amount"]) == limit * Decimal("0.002") * FEE_RATE


def test_a_silent_heartbeat_session_loses_its_orders(simulator: Simulator) -> None:
    bid, _ = best_prices(simulator)
    order = simulator.ok(
        "/v1/order/new",
        BEAT_KEY,
        BEAT_SECRET,
        **new_order(bid - 100, "0.001", client_order_id="hb"),
    )
    other = simulator.ok("/v1/order/new", **new_order(bid - 100, "0.001"))  # no heartbeat needed
    for _ in range(4):  # heartbeats keep it alive past the timeout
        time.sleep(HEARTBEAT_TIMEOUT_S / 2)
        assert simulator.ok("/v1/heartbeat", BEAT_KEY, BEAT_SECRET) == {"result": "ok"}
    assert simulator.ok("/v1/order/status", BEAT_KEY, BEAT_SECRET, order_id=int(order["order_id"]))[
        "is_live"
    ]
    time.sleep(HEARTBEAT_TIMEOUT_S * 2)  # silence: the sandbox cancels the session's orders
    status = simulator.ok(
        "/v1/order/status", BEAT_KEY, BEAT_SECRET, order_id=int(order["order_id"])
    )
    assert (status["is_live"], status["is_cancelled"]) == (False, True)
    assert simulator.ok("/v1/order/status", order_id=int(other["order_id"]))["is_live"]
    # the held USD came back
    usd = next(
        b for b in simulator.ok("/v1/balances", BEAT_KEY, BEAT_SECRET) if b["currency"] == "USD"
    )
    assert Decimal(usd["available"]) == Decimal(usd["amount"])


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "price_offset", "reason"),
    [
        ("0.000009", "0", "InvalidQuantity"),  # below min_order_size 0.00001
        ("0.000010001", "0", "InvalidQuantity"),  # off tick_size 1e-8
        ("0.001", "0.001", "InvalidPrice"),  # off quote_increment 0.01
    ],
)
def test_orders_off_the_symbol_details_are_refused(
    simulator: Simulator, amount: str, price_offset: str, reason: str
) -> None:
    _, ask = best_prices(simulator)
    answer = simulator.post("/v1/order/new", **new_order(ask + Decimal(price_offset), amount))
    assert answer.status_code == 400
    assert_same_shape(answer.json(), example("error_invalid_symbol.json"))
    assert answer.json()["reason"] == reason
    # the adapter rounds to the symbol details before sending and never sends an order below the
    # minimum: its side of each is in tests/integration/test_gemini_order_rules.py


def test_unknown_symbol_and_reused_nonce_are_refused(simulator: Simulator) -> None:
    _, ask = best_prices(simulator)
    unknown = simulator.post("/v1/order/new", **{**new_order(ask, "0.001"), "symbol": "xxxyyy"})
    assert (unknown.status_code, unknown.json()["reason"]) == (400, "InvalidSymbol")
    with pytest.raises(OrderRejectedError) as caught:
        simulator.adapter().place_order(
            OrderRequest("bad-2", "xxxyyy", Side.buy, Decimal("0.001"), ask)
        )
    assert caught.value.reason == "InvalidSymbol"

    nonce = simulator.nonce()
    assert simulator.post("/v1/heartbeat", nonce=nonce).status_code == 200
    reused = simulator.post("/v1/heartbeat", nonce=nonce)
    assert (reused.status_code, reused.json()["reason"]) == (400, "InvalidNonce")
    assert_same_shape(reused.json(), example("error_invalid_symbol.json"))
    lower = simulator.post("/v1/mytrades", nonce=nonce - 1, symbol="btcusd")
    assert lower.json()["reason"] == "InvalidNonce"
    stale = GeminiAdapter(simulator.url, KEY, SECRET, nonce_source=lambda: 1)
    with pytest.raises(NonceError):
        stale.balances()


# --- the adapter's parsers accept Gemini's examples ---------------------------------------------


def test_adapter_parsers_accept_the_documented_order_and_trades() -> None:
    status = order_from_json(example("order_status.json"), Decimal(0))
    assert (status.order_id, status.executed_quantity, status.ts_ms) == (
        "44375901",
        Decimal(3),
        1494870642156,
    )
    assert fees_usd(example("mytrades.json")) == Decimal("0.024937655575035") + Decimal(
        "0.038480463525"
    )


class ExamplesHandler(BaseHTTPRequestHandler):
    """Answers Gemini's published examples at their paths (a real HTTP server on loopback)."""

    routes = {
        "/v1/book/btcusd": "book.json",
        "/v1/pubticker/btcusd": "pubticker.json",
        "/v1/balances": "balances.json",
    }

    def _answer(self) -> None:
        name = self.routes.get(self.path.split("?")[0])
        body = (FIXTURES / name).read_bytes() if name else b'{"result":"error"}'
        self.send_response(200 if name else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_adapter_reads_the_documented_book_ticker_and_balances() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ExamplesHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        adapter = GeminiAdapter(f"http://127.0.0.1:{server.server_port}", KEY, SECRET)
        top = adapter.top_of_book("btcusd")
        assert (top.bid, top.ask, top.ask_quantity) == (
            Decimal("3607.85"),
            Decimal("3607.86"),
            Decimal("14.68205084"),
        )
        ticker = adapter.ticker("btcusd")
        assert (ticker.last, ticker.volume_base, ticker.ts_ms) == (
            Decimal("977.65"),
            Decimal("2210.505328803"),
            1483018200000,
        )
        assert adapter.balances() == {"btc": Decimal("1129.10517279"), "usd": Decimal("14481.62")}
    finally:
        server.shutdown()
        server.server_close()


# --- rate limit and maintenance ----------------------------------------------------------------


def test_rate_limit_and_maintenance_get_gemini_s_errors() -> None:
    server = Simulator(sandbox_private_rate_per_min=5, fault_endpoints=True)
    try:
        for _ in range(5):
            assert server.post("/v1/heartbeat").status_code == 200
        limited = server.post("/v1/heartbeat")
        assert (limited.status_code, limited.json()["reason"]) == (429, "RateLimit")
        assert_same_shape(limited.json(), example("error_invalid_symbol.json"))
        with pytest.raises(RateLimitError):
            GeminiAdapter(server.url, KEY, SECRET, read_attempts=1).balances()

        switched = requests.post(f"{server.url}/_sim/maintenance", json={"on": True}, timeout=10)
        assert switched.json() == {"maintenance": True}
        for answer in (server.get("/v1/pubticker/btcusd"), server.post("/v1/balances")):
            assert (answer.status_code, answer.json()["reason"]) == (503, "Maintenance")
            assert_same_shape(answer.json(), example("error_invalid_symbol.json"))
        with pytest.raises(ExchangeUnavailableError):
            GeminiAdapter(server.url, KEY, SECRET, read_attempts=1).ticker("btcusd")
        requests.post(f"{server.url}/_sim/maintenance", json={"on": False}, timeout=10)
        assert server.get("/v1/pubticker/btcusd").status_code == 200
    finally:
        server.stop()


def test_maintenance_is_a_fault_endpoint_only(simulator: Simulator) -> None:
    answer = requests.post(f"{simulator.url}/_sim/maintenance", json={"on": True}, timeout=10)
    assert answer.status_code == 404
    assert simulator.get("/v1/pubticker/btcusd").status_code == 200
