"""``/v1/mytrades`` parsing and paging (rtcrypto/exchange/gemini_trades.py).

The parser accepts Gemini's published example (tests/fixtures/gemini/mytrades.json, source in
sources.json) and turns any other JSON into trades or a clear ``ExchangeError``; the page walk
lists every trade once, whatever the page size.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcrypto.exchange.base import ExchangeError
from rtcrypto.exchange.gemini_trades import (
    MyTrade,
    fee_usd_of,
    parse_my_trade,
    parse_my_trades,
    trades_of_order,
    walk_pages,
)
from rtcrypto.trading.strategy import Side

FIXTURE = Path(__file__).parents[1] / "fixtures" / "gemini" / "mytrades.json"


def test_the_published_example_parses_exactly() -> None:
    first, second = parse_my_trades(json.loads(FIXTURE.read_text()))
    assert first == MyTrade(
        tid=107317526,
        order_id="107317524",
        client_order_id=None,
        side=Side.buy,
        price=Decimal("3648.09"),
        amount=Decimal("0.0027343246"),
        fee_amount=Decimal("0.024937655575035"),
        fee_currency="USD",
        is_maker=False,
        timestampms=1547232911021,
    )
    assert second.is_maker is True  # aggressor false
    assert fee_usd_of([first, second]) == Decimal("0.024937655575035") + Decimal("0.038480463525")
    assert trades_of_order([first, second], "106817811") == [second]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"fee_amount": "abc"}, "fee_amount"),
        ({"fee_amount": 0.5}, "fee_amount"),  # a float: Gemini sends strings, never floats
        ({"price": "-1"}, "price"),
        ({"amount": "0"}, "amount"),
        ({"price": "NaN"}, "price"),
        ({"tid": "12a"}, "tid"),
        ({"tid": True}, "tid"),
        ({"type": "Short"}, "type"),
        ({"aggressor": "yes"}, "aggressor"),
        ({"order_id": None}, "order_id"),
        ({"timestampms": -5}, "timestampms"),
    ],
)
def test_a_bad_field_is_named_in_the_error(change: dict[str, Any], field: str) -> None:
    row = {**json.loads(FIXTURE.read_text())[0], **change}
    with pytest.raises(ExchangeError) as caught:
        parse_my_trades([row])
    assert f"field {field}=" in str(caught.value) and "trade #0" in str(caught.value)
    assert caught.value.reason == "UnreadableAnswer"


def test_an_answer_that_is_not_a_list_is_refused() -> None:
    with pytest.raises(ExchangeError, match="expected a JSON array"):
        parse_my_trades({"result": "error"})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ROW = st.fixed_dictionaries(
    {
        "tid": st.integers(min_value=0, max_value=10**12) | JSON,
        "order_id": st.from_regex(r"\A[0-9]{1,12}\Z") | JSON,
        "type": st.sampled_from(["Buy", "Sell", "buy"]) | JSON,
        "price": st.decimals(min_value=0, max_value=10**6, places=2).map(str) | JSON,
        "amount": st.decimals(min_value=0, max_value=100, places=8).map(str) | JSON,
        "fee_amount": st.decimals(min_value=0, max_value=100, places=12).map(str) | JSON,
        "fee_currency": st.sampled_from(["USD", "BTC"]) | JSON,
        "timestampms": st.integers(min_value=0, max_value=2**62) | JSON,
    },
    optional={"aggressor": st.booleans() | JSON, "client_order_id": st.text(max_size=20) | JSON},
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ROW, max_size=4) | JSON)
def test_any_json_gives_trades_or_a_clear_error(body: Any) -> None:
    try:
        trades = parse_my_trades(body)
    except ExchangeError as error:
        assert str(error).startswith("gemini /v1/mytrades: ")
        assert error.reason == "UnreadableAnswer"
        return
    assert isinstance(body, list) and len(trades) == len(body)
    for trade, row in zip(trades, body, strict=True):
        assert trade.price > 0 and trade.amount > 0 and trade.fee_amount >= 0
        assert trade.price == Decimal(str(row["price"]).strip())  # exact: never via a float
        assert trade.side in (Side.buy, Side.sell) and trade.timestampms >= 0


def trade(tid: int, ts_ms: int, order_id: str = "1") -> MyTrade:
    return MyTrade(
        tid,
        order_id,
        None,
        Side.buy,
        Decimal(100),
        Decimal(1),
        Decimal("0.25"),
        "USD",
        False,
        ts_ms,
    )


class PagedExchange:
    """Gemini's documented page semantics over a list: the earliest ``limit`` trades at or
    after ``since``, newest first; counts requests."""

    def __init__(self, trades: list[MyTrade]) -> None:
        self.trades = trades
        self.requests = 0

    def page(self, since_ms: int, limit: int) -> list[MyTrade]:
        self.requests += 1
        after = sorted(
            (t for t in self.trades if t.timestampms >= since_ms),
            key=lambda t: (t.timestampms, t.tid),
        )
        return list(reversed(after[:limit]))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=40), max_size=60),
    st.integers(min_value=2, max_value=7),
)
def test_the_page_walk_lists_every_trade_once(times: list[int], limit: int) -> None:
    trades: list[MyTrade] = []
    per_ms: Counter[int] = Counter()
    for tid, ts in enumerate(times):  # at most ``limit`` in one millisecond: pageable by time
        if per_ms[ts] < limit:
            per_ms[ts] += 1
            trades.append(trade(tid, 1_000 + ts))
    exchange = PagedExchange(trades)
    walked = walk_pages(exchange.page, 0, limit)
    assert walked == sorted(trades, key=lambda t: (t.timestampms, t.tid))
    assert exchange.requests <= len(trades) + 2


def test_page_walk_limit_is_checked() -> None:
    with pytest.raises(ValueError, match="limit must be from 1 to 500"):
        walk_pages(lambda since, limit: [], 0, 501)


def test_parse_one_row_rejects_a_non_object() -> None:
    with pytest.raises(ExchangeError, match="not a JSON object"):
        parse_my_trade(["price", "1"], 3)
