"""Bad input end to end: the simulator as a Gemini sandbox over real HTTP, the gemini adapter and
the trader's risk gate, with the symbol details Gemini publishes (issue 13, point 3 and "Bad input").

- sent raw (signed by hand, no rounding), an order below the minimum size, off the quantity or
  price increment, with a reused nonce or for an unknown symbol gets Gemini's documented error
  from the simulator (InvalidQuantity, InvalidPrice, InvalidNonce, InvalidSymbol);
- through the adapter each becomes a clear exception with ``reason`` and a message naming the
  value and the rule; the adapter reads ``/v1/symbols/details/{symbol}`` once, rounds an off-tick
  order (which then fills) and never sends one below the minimum; when the exchange changes its
  increments under it, the refusal names the rules it used and the next order re-reads them;
- the trader refuses an order below the minimum in its risk gate: nothing reaches
  ``/v1/order/new`` (the simulator's request counter and its own record of orders say so).

The simulator runs in-process replaying the real Gemini capture of ../shared/data
(``tests/integration/test_gemini_conformance.py``'s ``Simulator``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from rtcrypto.config import Settings
from rtcrypto.exchange.base import NonceError, OrderRejectedError
from rtcrypto.exchange.gemini import GeminiAdapter
from rtcrypto.exchange.gemini_settings import gemini_adapter_from_settings
from rtcrypto.simulator import symbol_details as simulator_details
from rtcrypto.simulator.sandbox import SandboxOrder
from rtcrypto.trader.engine import Trader, parse_liquidity
from rtcrypto.trader.forecasts import ForecastSides, ForecastSource
from rtcrypto.trader.journal import OrderJournal, read_journal
from rtcrypto.trading.order_rules import OrderRules
from rtcrypto.trading.order_types import OrderRequest
from rtcrypto.trading.risk import RiskLimits
from rtcrypto.trading.strategy import Side, StrategyParams
from tests.integration.test_gemini_conformance import (
    BEAT_KEY,
    BEAT_SECRET,
    KEY,
    SECRET,
    Simulator,
    assert_same_shape,
    best_prices,
    example,
    new_order,
)
from tests.unit.test_trader_engine import T0, ListRecorder, forecast_frame, record

pytestmark = pytest.mark.integration

DETAILS = "/v1/symbols/details/{symbol}"
NEW_ORDER = "/v1/order/new"
BTCUSD = OrderRules("BTCUSD", Decimal("1e-8"), Decimal("0.01"), Decimal("0.00001"))


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    server = Simulator()
    yield server
    server.stop()


def requests_to(simulator: Simulator, path: str) -> int:
    return int(simulator.get("/_sim/status").json()["requests"].get(path, 0))


def sandbox_orders(simulator: Simulator) -> list[SandboxOrder]:
    """The simulator's own record of every order it accepted."""
    return list(simulator.running.simulator.sandbox.orders.values())


def adapter(simulator: Simulator, key: str = KEY, secret: str = SECRET) -> GeminiAdapter:
    """A fresh adapter (its own symbol-details cache) sharing the simulator's nonce source."""
    return GeminiAdapter(simulator.url, key, secret, nonce_source=simulator.nonce)


# --- Gemini's errors from the simulator, sent raw --------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "price_offset", "symbol", "reason", "named"),
    [
        ("0.000009", "0", "btcusd", "InvalidQuantity", "below the minimum order size 0.00001"),
        ("0.000010001", "0", "btcusd", "InvalidQuantity", "quantity increment (tick_size) 1E-8"),
        ("0.001", "0.005", "btcusd", "InvalidPrice", "price increment (quote_increment) 0.01"),
        ("0.001", "0", "xxxyyy", "InvalidSymbol", "'xxxyyy' is not a valid symbol"),
    ],
)
def test_raw_bad_orders_get_gemini_s_documented_errors(
    simulator: Simulator, amount: str, price_offset: str, symbol: str, reason: str, named: str
) -> None:
    _, ask = best_prices(simulator)
    before = len(sandbox_orders(simulator))
    answer = simulator.post(
        NEW_ORDER, **new_order(ask + Decimal(price_offset), amount, symbol=symbol)
    )
    assert answer.status_code == 400
    assert_same_shape(answer.json(), example("error_invalid_symbol.json"))
    assert answer.json()["result"] == "error" and answer.json()["reason"] == reason
    assert named in answer.json()["message"]
    assert len(sandbox_orders(simulator)) == before, "a refused order is not booked"


def test_a_raw_order_with_a_reused_nonce_gets_invalid_nonce(simulator: Simulator) -> None:
    _, ask = best_prices(simulator)
    nonce = simulator.nonce()
    no_fill = new_order(ask - Decimal(1000), "0.001", options=["immediate-or-cancel"])
    assert simulator.post(NEW_ORDER, nonce=nonce, **no_fill).status_code == 200
    again = simulator.post(NEW_ORDER, nonce=nonce, **{**no_fill, "client_order_id": "again"})
    assert again.status_code == 400
    assert_same_shape(again.json(), example("error_invalid_symbol.json"))
    assert again.json()["reason"] == "InvalidNonce"
    assert f"nonce {nonce} is not greater than the previous nonce" in again.json()["message"]
    assert not any(o.client_order_id == "again" for o in sandbox_orders(simulator))


# --- through the adapter ---------------------------------------------------------------------------


def test_the_adapter_reads_the_details_once_and_rounds_an_off_tick_order_that_fills(
    simulator: Simulator,
) -> None:
    gemini = adapter(simulator)
    reads = requests_to(simulator, DETAILS)
    assert gemini.order_rules("btcusd") == BTCUSD
    assert requests_to(simulator, DETAILS) == reads + 1
    bid, ask = best_prices(simulator)

    # off both grids: 0.000123456789 BTC (tick 1e-8) at ask + 0.005 (quote increment 0.01)
    bought = gemini.place_order(
        OrderRequest(
            "rules-buy", "btcusd", Side.buy, Decimal("0.000123456789"), ask + Decimal("0.005")
        )
    )
    assert bought.executed_quantity == Decimal("0.00012345"), "rounded down to the tick, filled"
    assert bought.limit_price == ask, "a buy's limit rounds down: never above the trader's"
    sold = gemini.place_order(
        OrderRequest(
            "rules-sell", "btcusd", Side.sell, Decimal("0.000123456789"), bid - Decimal("0.005")
        )
    )
    assert sold.executed_quantity == Decimal("0.00012345")
    assert sold.limit_price == bid, "a sell's limit rounds up: never below the trader's"
    by_id = {order.client_order_id: order for order in sandbox_orders(simulator)}
    assert by_id["rules-buy"].original_amount == Decimal("0.00012345")
    assert by_id["rules-buy"].price == ask and by_id["rules-sell"].price == bid
    assert requests_to(simulator, DETAILS) == reads + 1, "cached: not read again per order"


def test_the_adapter_never_sends_an_order_below_the_minimum(simulator: Simulator) -> None:
    gemini = adapter(simulator)
    _, ask = best_prices(simulator)
    sent_before = requests_to(simulator, NEW_ORDER)
    for quantity in ("0.000009", "0.0000099999"):  # the second rounds down to 0.00000999
        with pytest.raises(OrderRejectedError) as caught:
            gemini.place_order(
                OrderRequest("too-small", "btcusd", Side.buy, Decimal(quantity), ask)
            )
        assert caught.value.reason == "InvalidQuantity"
        assert quantity in str(caught.value)
        assert "below the exchange's minimum order size 0.00001 BTC" in str(caught.value)
    assert requests_to(simulator, NEW_ORDER) == sent_before, "never sent"


def test_an_unknown_symbol_is_refused_by_its_details_before_any_order(simulator: Simulator) -> None:
    gemini = adapter(simulator)
    sent_before = requests_to(simulator, NEW_ORDER)
    _, ask = best_prices(simulator)
    with pytest.raises(OrderRejectedError) as caught:
        gemini.place_order(OrderRequest("unknown", "xxxyyy", Side.buy, Decimal("0.001"), ask))
    assert caught.value.reason == "InvalidSymbol" and caught.value.status == 400
    assert "/v1/symbols/details/xxxyyy" in str(caught.value) and "'xxxyyy'" in str(caught.value)
    assert requests_to(simulator, NEW_ORDER) == sent_before


def test_a_reused_nonce_through_the_adapter_is_a_nonce_error(simulator: Simulator) -> None:
    gemini = adapter(simulator)
    gemini.order_rules("btcusd")  # public: no nonce
    used = simulator.nonce()
    assert simulator.post("/v1/heartbeat", nonce=used).status_code == 200
    stale = GeminiAdapter(simulator.url, KEY, SECRET, nonce_source=lambda: used)
    _, ask = best_prices(simulator)
    with pytest.raises(NonceError) as caught:
        stale.place_order(OrderRequest("stale-nonce", "btcusd", Side.buy, Decimal("0.001"), ask))
    assert caught.value.reason == "InvalidNonce" and caught.value.status == 400
    assert f"nonce {used} is not greater than the previous nonce {used}" in str(caught.value)
    assert not any(o.client_order_id == "stale-nonce" for o in sandbox_orders(simulator))


@pytest.mark.parametrize(
    ("changed", "quantity", "price_offset", "reason", "named"),
    [
        ({"tick_size": Decimal("0.000001")}, "0.00012345", "0", "InvalidQuantity", "tick_size"),
        ({"quote_increment": Decimal("0.1")}, "0.0001", "0.01", "InvalidPrice", "quote_increment"),
        ({"min_order_size": Decimal("0.001")}, "0.0001", "0", "InvalidQuantity", "minimum"),
    ],
)
def test_increments_changed_under_the_adapter_are_refused_clearly_then_re_read(
    simulator: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    changed: dict[str, Decimal],
    quantity: str,
    price_offset: str,
    reason: str,
    named: str,
) -> None:
    gemini = adapter(simulator)
    assert gemini.order_rules("btcusd") == BTCUSD  # read before the exchange changes them
    reads = requests_to(simulator, DETAILS)
    new = simulator_details.SymbolDetails(
        "BTCUSD",
        changed.get("tick_size", BTCUSD.tick_size),
        changed.get("quote_increment", BTCUSD.quote_increment),
        changed.get("min_order_size", BTCUSD.min_order_size),
    )
    monkeypatch.setitem(simulator_details.SYMBOL_DETAILS, "BTCUSD", new)
    _, ask = best_prices(simulator)
    ask = (ask // Decimal("0.1")) * Decimal("0.1") + Decimal("0.1")  # on both price grids
    limit = ask + Decimal(price_offset)
    with pytest.raises(OrderRejectedError) as caught:
        gemini.place_order(
            OrderRequest(f"stale-{reason}", "btcusd", Side.buy, Decimal(quantity), limit)
        )
    message = str(caught.value)
    assert caught.value.reason == reason and caught.value.status == 400
    assert named in message and f"sent quantity {quantity} BTC at limit {limit}" in message
    assert "minimum order size 0.00001 BTC" in message, "names the rules the adapter used"
    assert "read again before the next order" in message

    # the next order reads the new rules and is rounded (or refused) by them, not the old ones
    retry = OrderRequest(f"fresh-{reason}", "btcusd", Side.buy, Decimal("0.0012345"), limit)
    status = gemini.place_order(retry)
    assert requests_to(simulator, DETAILS) == reads + 1
    assert gemini.order_rules("btcusd").tick_size == new.tick_size
    assert (
        status.original_quantity % new.tick_size == 0
        and status.limit_price % new.quote_increment == 0
    )
    assert status.executed_quantity == status.original_quantity > 0


# --- the trader's risk gate ------------------------------------------------------------------------


def trader(simulator: Simulator, tmp_path: Path, limits: RiskLimits) -> Trader:
    """A trader on the second sandbox account (10,000 USD, no BTC): minute 1 is a buy."""
    gemini = adapter(simulator, BEAT_KEY, BEAT_SECRET)
    forecasts = ForecastSource(tmp_path / "forecast", 10.0, clock_s=lambda: 0.0)
    forecasts.current = ForecastSides("v1", forecast_frame(["sell", "buy", "buy"]))
    built = Trader(
        exchange=gemini,
        journal=OrderJournal(tmp_path / "journal.jsonl", mode="sandbox", venue="sandbox"),
        forecasts=forecasts,
        recorder=ListRecorder(),
        params=StrategyParams(trade_pct=Decimal("0.01")),
        limits=limits,
        symbol="BTCUSD",
        mode="sandbox",
        taker_fee_pct=Decimal("0.25"),
        clock_ms=lambda: T0,
    )
    built.start()
    return built


def test_the_trader_refuses_an_order_below_the_minimum_without_sending_it(
    simulator: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sent_before, booked_before = requests_to(simulator, NEW_ORDER), len(sandbox_orders(simulator))
    # the notional limit (0.50 USD) cuts the buy to about 0.0000083 BTC: below Gemini's 0.00001
    limits = RiskLimits(Decimal("10"), Decimal("0.5"), Decimal("1000"), 5)
    small = trader(simulator, tmp_path, limits)
    with caplog.at_level("WARNING", logger="rtcrypto.trader.engine"):
        outcome = small.on_liquidity(parse_liquidity(record(1)))
    assert outcome.action == "skip"
    assert "risk: below the exchange's minimum order size 0.00001 BTC" in outcome.reason
    assert "notional limit 0.5 USD" in outcome.reason
    assert any(
        "risk gate refused" in line and "minimum order size" in line for line in caplog.messages
    )
    assert requests_to(simulator, NEW_ORDER) == sent_before, "no HTTP call to /v1/order/new"
    assert len(sandbox_orders(simulator)) == booked_before
    assert read_journal(tmp_path / "journal.jsonl").sent == {}, "nothing journaled as sent"
    small.journal.close()


def test_the_trader_s_order_is_on_the_grid_and_fills(simulator: Simulator, tmp_path: Path) -> None:
    limits = RiskLimits(Decimal("10"), Decimal("100000"), Decimal("1000"), 5)
    normal = trader(simulator, tmp_path, limits)
    outcome = normal.on_liquidity(parse_liquidity(record(1)))
    assert outcome.action == "order" and outcome.status is not None
    status = outcome.status
    assert status.executed_quantity > BTCUSD.min_order_size
    assert status.original_quantity % BTCUSD.tick_size == 0
    assert status.limit_price % BTCUSD.quote_increment == 0
    normal.journal.close()


def test_the_details_are_read_again_after_the_refresh_setting(
    simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "RTC_HOME": str(tmp_path),
        "RTC_TRADING_MODE": "sandbox",
        "RTC_GEMINI_REST_URL": simulator.url,
        "RTC_GEMINI_API_KEY": KEY,
        "RTC_GEMINI_API_SECRET": SECRET,
        "RTC_GEMINI_SYMBOL_DETAILS_REFRESH_S": "0.3",
    }.items():
        monkeypatch.setenv(name, value)
    gemini = gemini_adapter_from_settings(Settings())
    reads = requests_to(simulator, DETAILS)
    assert gemini.order_rules("BTCUSD") == gemini.order_rules("btcusd") == BTCUSD
    assert requests_to(simulator, DETAILS) == reads + 1
    time.sleep(0.35)
    assert gemini.order_rules("btcusd") == BTCUSD
    assert requests_to(simulator, DETAILS) == reads + 2, "re-read once RTC_..._REFRESH_S passed"
