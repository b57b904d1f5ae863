"""The exchange's order rules: the symbol-details parser, the pure rounding, the cache with its
refresh, and the risk gate that rounds every order and refuses one below the minimum size."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtcrypto.config import Settings
from rtcrypto.exchange.base import ExchangeAdapter, ExchangeUnavailableError, OrderRejectedError
from rtcrypto.exchange.factory import exchange_from_settings, paper_order_rules
from rtcrypto.exchange.paper import PaperExchange
from rtcrypto.exchange.symbol_rules import (
    RETRY_AFTER_FAILURE_S,
    SymbolDetailsError,
    SymbolRulesCache,
    order_for_exchange,
    rules_from_symbol_details,
)
from rtcrypto.trading.account import SimulatedAccount
from rtcrypto.trading.order_rules import (
    OrderRules,
    base_currency_of,
    below_minimum_reason,
    round_limit_price,
    round_order,
    round_quantity_down,
)
from rtcrypto.trading.order_types import OrderRequest, TopOfBook
from rtcrypto.trading.orders import size_order
from rtcrypto.trading.record_backtest import RecordBacktestConfig
from rtcrypto.trading.risk import RiskLimits, RiskState, check_order
from rtcrypto.trading.strategy import (
    OrderIntent,
    PriceReference,
    Side,
    StrategyParams,
    TimeInForce,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gemini"
# Gemini's published example (tests/fixtures/gemini/sources.json names the page)
DOCUMENTED = json.loads((FIXTURES / "symbol_details.json").read_text())
BTCUSD = OrderRules("BTCUSD", Decimal("1e-8"), Decimal("0.01"), Decimal("0.00001"))
LIMITS = RiskLimits(Decimal("10"), Decimal("1000000"), Decimal("1000"), 5)
NOW = 1_700_000_000_000
STATE = RiskState(Decimal(0), Decimal(0), ())


def order(side: Side, quantity: str, price: str) -> OrderRequest:
    return OrderRequest("rtc-v1-0-" + side.value, "btcusd", side, Decimal(quantity), Decimal(price))


# --- the parser ---------------------------------------------------------------------------------


def test_the_documented_example_gives_btcusd_s_rules() -> None:
    rules = rules_from_symbol_details(DOCUMENTED, "btcusd")
    assert rules == OrderRules(
        "BTCUSD", Decimal("1e-8"), Decimal("0.01"), Decimal("0.00001"), "open", "BTC"
    )
    assert rules.tradable
    assert "minimum order size 0.00001 BTC" in rules.describe()


def test_numbers_may_be_strings_and_the_status_is_kept() -> None:
    document = {**DOCUMENTED, "tick_size": "0.000001", "quote_increment": 1, "status": "closed"}
    rules = rules_from_symbol_details(document)
    assert (rules.tick_size, rules.quote_increment) == (Decimal("0.000001"), Decimal(1))
    assert rules.status == "closed" and not rules.tradable


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"tick_size": None}, "tick_size"),
        ({"tick_size": 0}, "tick_size must be positive"),
        ({"quote_increment": -0.01}, "quote_increment must be positive"),
        ({"min_order_size": "abc"}, "min_order_size is not a number"),
        ({"min_order_size": "1e999999"}, "min_order_size is out of range"),
        ({"tick_size": float("nan")}, "tick_size is not finite"),
        ({"tick_size": True}, "tick_size"),
        ({"symbol": 7}, "symbol"),
        ({"status": ""}, "status"),
        ({"symbol": "ETHUSD"}, "describes ETHUSD, not BTCUSD"),
    ],
)
def test_a_bad_document_is_refused_naming_the_field(change: dict[str, Any], named: str) -> None:
    with pytest.raises(SymbolDetailsError) as caught:
        rules_from_symbol_details({**DOCUMENTED, **change}, "BTCUSD")
    assert named in str(caught.value) and "/v1/symbols/details/btcusd" in str(caught.value)
    assert caught.value.reason == "InvalidSymbolDetails"


def test_a_document_that_is_not_an_object_is_refused() -> None:
    for document in ([DOCUMENTED], "BTCUSD", None, 1):
        with pytest.raises(SymbolDetailsError, match="expected a JSON object"):
            rules_from_symbol_details(document)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELD_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-(10**40), 10**40)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["0.01", "1e-8", "-1", "0", "1e31", "nan", "Infinity", "0.00001"])
)


@given(
    JSON
    | st.fixed_dictionaries(
        {},
        optional={
            field: FIELD_VALUES
            for field in (
                "symbol",
                "tick_size",
                "quote_increment",
                "min_order_size",
                "status",
                "base_currency",
            )
        },
    )
)
def test_any_json_document_gives_rules_or_a_clear_error(document: Any) -> None:
    try:
        rules = rules_from_symbol_details(document)
    except SymbolDetailsError as error:
        assert str(error).startswith("gemini /v1/symbols/details/")
        return
    for value in (rules.tick_size, rules.quote_increment, rules.min_order_size):
        assert value.is_finite() and value > 0


# --- rounding -----------------------------------------------------------------------------------


def test_rounding_examples() -> None:
    assert round_quantity_down(Decimal("0.000123456789"), Decimal("1e-8")) == Decimal("0.00012345")
    assert str(round_quantity_down(Decimal("0.000123456789"), Decimal("1e-8"))) == "0.00012345"
    assert round_quantity_down(Decimal("0.000000009"), Decimal("1e-8")) == 0
    assert round_limit_price(Decimal("60000.005"), Decimal("0.01"), Side.buy) == Decimal("60000.00")
    assert round_limit_price(Decimal("60000.001"), Decimal("0.01"), Side.sell) == Decimal(
        "60000.01"
    )
    assert round_limit_price(Decimal("60000.01"), Decimal("0.01"), Side.sell) == Decimal("60000.01")
    assert round_limit_price(Decimal("7"), Decimal("0.25"), Side.sell) == Decimal("7")
    assert round_limit_price(Decimal("7.1"), Decimal("0.25"), Side.sell) == Decimal("7.25")


INCREMENTS = st.decimals(min_value=Decimal("1e-12"), max_value=Decimal("1000"), places=12).filter(
    lambda value: value > 0
)
AMOUNTS = st.decimals(min_value=Decimal(0), max_value=Decimal("1e9"), places=18)


@given(AMOUNTS, INCREMENTS)
def test_a_rounded_quantity_is_a_multiple_at_most_one_increment_below(
    quantity: Decimal, tick_size: Decimal
) -> None:
    rounded = round_quantity_down(quantity, tick_size)
    assert rounded % tick_size == 0
    assert rounded <= quantity < rounded + tick_size


@given(AMOUNTS.filter(lambda value: value > 0), INCREMENTS, st.sampled_from(list(Side)))
def test_a_rounded_price_is_on_the_grid_and_never_worse_than_the_limit(
    price: Decimal, increment: Decimal, side: Side
) -> None:
    rounded = round_limit_price(price, increment, side)
    assert rounded % increment == 0
    assert abs(rounded - price) < increment
    if side is Side.buy:
        assert rounded <= price  # a buy never pays more than its limit
    else:
        assert rounded >= price  # a sell never gets less than its limit


def test_round_order_keeps_an_order_on_the_grid_and_gives_none_below_one_tick() -> None:
    on_grid = order(Side.buy, "0.5", "60000.01")
    assert round_order(on_grid, BTCUSD) is on_grid
    rounded = round_order(order(Side.sell, "0.123456789", "60000.001"), BTCUSD)
    assert rounded is not None
    assert (rounded.quantity, rounded.limit_price) == (Decimal("0.12345678"), Decimal("60000.01"))
    assert round_order(order(Side.buy, "0.000000001", "60000"), BTCUSD) is None
    assert round_order(order(Side.buy, "1", "0.001"), BTCUSD) is None


def test_below_minimum_and_base_currency() -> None:
    assert below_minimum_reason(Decimal("0.00001"), BTCUSD) is None
    reason = below_minimum_reason(Decimal("0.000009"), BTCUSD)
    assert reason is not None and "minimum order size 0.00001 BTC" in reason
    assert "0.000009 BTC" in reason
    assert [base_currency_of(s) for s in ("btcusd", "ETHBTC", "DOGEUSDT", "XY")] == [
        "BTC",
        "ETH",
        "DOGE",
        "XY",
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"tick_size": Decimal(0)},
        {"min_order_size": Decimal(-1)},
        {"quote_increment": Decimal("NaN")},
        {"tick_size": Decimal("1e-40")},
        {"symbol": ""},
    ],
)
def test_order_rules_refuse_impossible_values(bad: dict[str, Any]) -> None:
    values: dict[str, Any] = {
        "symbol": "BTCUSD",
        "tick_size": Decimal("1e-8"),
        "quote_increment": Decimal("0.01"),
        "min_order_size": Decimal("0.00001"),
        **bad,
    }
    with pytest.raises(ValueError):
        OrderRules(**values)


# --- the adapter's last check -------------------------------------------------------------------


def test_the_adapter_rounds_and_refuses_below_the_minimum_without_sending() -> None:
    sent = order_for_exchange(order(Side.buy, "0.000123456789", "60000.005"), BTCUSD)
    assert (sent.quantity, sent.limit_price) == (Decimal("0.00012345"), Decimal("60000.00"))
    for quantity in ("0.0000099", "0.000000001"):
        with pytest.raises(OrderRejectedError) as caught:
            order_for_exchange(order(Side.buy, quantity, "60000"), BTCUSD)
        assert caught.value.reason == "InvalidQuantity" and "not sent" in str(caught.value)
        assert caught.value.status is None, "no HTTP answer: it never left"


# --- the cache ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_the_cache_reads_once_then_again_after_refresh_s() -> None:
    reads: list[str] = []
    documents = {"btcusd": DOCUMENTED}

    def fetch(symbol: str) -> Any:
        reads.append(symbol)
        return documents[symbol]

    clock = Clock()
    cache = SymbolRulesCache(fetch, refresh_s=60, clock_s=clock)
    assert cache.get("BTCUSD") == BTCUSD and cache.get("btcusd") == BTCUSD
    assert reads == ["btcusd"]
    clock.now_s = 59.9
    cache.get("BTCUSD")
    assert reads == ["btcusd"]
    documents["btcusd"] = {**DOCUMENTED, "min_order_size": "0.0001"}
    clock.now_s = 60
    assert cache.get("BTCUSD").min_order_size == Decimal("0.0001")
    assert reads == ["btcusd", "btcusd"]
    cache.forget("btcusd")
    cache.get("BTCUSD")
    assert len(reads) == 3


def test_a_failed_refresh_keeps_the_known_rules_and_a_failed_first_read_raises() -> None:
    clock = Clock()
    failing = False

    def fetch(symbol: str) -> Any:
        if failing:
            raise ExchangeUnavailableError("gemini: no answer", reason="ConnectionError")
        return DOCUMENTED

    cache = SymbolRulesCache(fetch, refresh_s=3600, clock_s=clock)
    assert cache.get("BTCUSD") == BTCUSD
    failing = True
    clock.now_s = 3600
    assert cache.get("BTCUSD") == BTCUSD, "stale rules beat no rules"
    with pytest.raises(ExchangeUnavailableError):
        cache.get("ETHUSD")
    failing = False
    clock.now_s = 3600 + RETRY_AFTER_FAILURE_S
    with pytest.raises(SymbolDetailsError, match="describes BTCUSD, not ETHUSD"):
        cache.get("ETHUSD")
    with pytest.raises(ValueError, match="refresh_s"):
        SymbolRulesCache(fetch, refresh_s=0)


# --- the risk gate ------------------------------------------------------------------------------


def test_the_gate_refuses_an_order_below_the_minimum() -> None:
    verdict = check_order(order(Side.buy, "0.000009", "60000"), STATE, LIMITS, NOW, BTCUSD)
    assert verdict.order is None and verdict.rule == "min_order_size"
    assert "below the exchange's minimum order size 0.00001 BTC" in verdict.reason
    # the same order without rules (the backtests) goes through
    assert check_order(order(Side.buy, "0.000009", "60000"), STATE, LIMITS, NOW).allowed


def test_the_gate_says_when_its_own_cut_made_an_order_too_small() -> None:
    limits = RiskLimits(Decimal("10"), Decimal("0.5"), Decimal("1000"), 5)
    verdict = check_order(order(Side.buy, "0.1", "60000"), STATE, limits, NOW, BTCUSD)
    assert verdict.rule == "min_order_size" and "notional limit 0.5 USD" in verdict.reason


def test_the_gate_rounds_to_the_increments_and_says_so() -> None:
    verdict = check_order(order(Side.sell, "0.123456789", "60000.001"), STATE, LIMITS, NOW, BTCUSD)
    assert verdict.order is not None
    assert verdict.order.quantity == Decimal("0.12345678")
    assert verdict.order.limit_price == Decimal("60000.01")
    assert "limit rounded from 60000.001 to 60000.01" in verdict.reason
    unchanged = order(Side.buy, "0.5", "60000.01")
    assert check_order(unchanged, STATE, LIMITS, NOW, BTCUSD).order is unchanged


def test_a_market_that_takes_no_ioc_orders_is_refused() -> None:
    for status in ("closed", "cancel_only", "post_only"):
        rules = OrderRules("BTCUSD", Decimal("1e-8"), Decimal("0.01"), Decimal("1e-5"), status)
        verdict = check_order(order(Side.sell, "1", "60000"), STATE, LIMITS, NOW, rules)
        assert verdict.order is None and verdict.rule == "market_status"
        assert status in verdict.reason
    limit_only = OrderRules(
        "BTCUSD", Decimal("1e-8"), Decimal("0.01"), Decimal("1e-5"), "limit_only"
    )
    assert check_order(order(Side.sell, "1", "60000"), STATE, LIMITS, NOW, limit_only).allowed


@given(
    st.decimals(min_value=Decimal("1"), max_value=Decimal("100000"), places=2),
    st.decimals(min_value=Decimal("1000"), max_value=Decimal("100000"), places=3),
    st.sampled_from(list(Side)),
)
def test_what_the_gate_lets_through_is_on_the_grid_and_above_the_minimum(
    quote_usd: Decimal, price: Decimal, side: Side
) -> None:
    intent = OrderIntent(
        side,
        PriceReference.ask if side is Side.buy else PriceReference.bid,
        TimeInForce.immediate_or_cancel,
        quote_amount=quote_usd if side is Side.buy else None,
        base_quantity=quote_usd / price if side is Side.sell else None,
        reason="test",
    )
    book = TopOfBook("BTCUSD", price, Decimal(5), price, Decimal(5), NOW)
    verdict = size_order(
        intent,
        book,
        fee_rate=Decimal("0.0025"),
        client_order_id="rtc-x",
        symbol="BTCUSD",
        risk_state=STATE,
        limits=LIMITS,
        now_ms=NOW,
        rules=BTCUSD,
    )
    if verdict.order is None:
        assert verdict.risk_rule == "min_order_size" or "nothing to order" in verdict.reason
        return
    sent = verdict.order
    assert sent.quantity % BTCUSD.tick_size == 0 and sent.quantity >= BTCUSD.min_order_size
    assert sent.limit_price % BTCUSD.quote_increment == 0
    assert sent.limit_price <= price if side is Side.buy else sent.limit_price >= price


# --- the paper adapter --------------------------------------------------------------------------


def test_the_paper_exchange_answers_with_the_rules_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTC_HOME", str(tmp_path))
    monkeypatch.setenv("RTC_PAPER_MIN_ORDER_SIZE_BTC", "0.001")
    settings = Settings()
    assert paper_order_rules(settings) == OrderRules(
        "BTCUSD", Decimal("1e-8"), Decimal("0.01"), Decimal("0.001")
    )
    exchange = exchange_from_settings(settings)
    assert isinstance(exchange, PaperExchange) and isinstance(exchange, ExchangeAdapter)
    assert exchange.order_rules("btcusd") == paper_order_rules(settings)
    assert exchange.order_rules("ethusd") == OrderRules(
        "ETHUSD", Decimal("1e-8"), Decimal("0.01"), Decimal("0.001")
    )
    without = PaperExchange(tmp_path / "p.json", lambda symbol: None, usd=Decimal(1))  # type: ignore[arg-type,return-value]
    assert without.order_rules("BTCUSD") is None


def test_the_record_backtest_applies_the_paper_rules_like_the_paper_trader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTC_HOME", str(tmp_path))
    config = RecordBacktestConfig.from_settings(Settings())
    assert config.order_rules == paper_order_rules(Settings()) == BTCUSD
    book = TopOfBook("BTCUSD", Decimal("60000"), Decimal(5), Decimal("60000.01"), Decimal(5), NOW)
    intent = OrderIntent(
        Side.buy, PriceReference.ask, TimeInForce.immediate_or_cancel, quote_amount=Decimal("0.5")
    )
    for rules, refused in ((BTCUSD, True), (None, False)):
        account = SimulatedAccount(
            Decimal(1),
            params=StrategyParams(),
            limits=LIMITS,
            taker_fee_pct=Decimal("0.25"),
            order_rules=rules,
        )
        execution = account.execute(intent, book, client_order_id="rtc-small", now_ms=NOW)
        assert (execution.risk_rule == "min_order_size") is refused, execution
