"""Fees and restarts of the sandbox trader booked from the exchange's own fills (issue 13 point 3).

The trader with the ``gemini`` adapter trades round trips on the simulator's sandbox (the
in-process simulator over real HTTP, replaying the real Gemini capture); the ledger's fees must
equal the sum of ``fee_amount`` of ``/v1/mytrades`` exactly (``Decimal`` equality), in total and
per order. A trader process killed with SIGKILL after the exchange filled an order and before its
journal recorded it is restarted: every trade of ``mytrades`` is booked exactly once.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from rtcrypto.exchange.gemini import GeminiAdapter
from rtcrypto.exchange.nonce_store import PersistentNonceSource
from rtcrypto.exchange.signing import signed_headers
from rtcrypto.trader.engine import Trader, parse_liquidity
from rtcrypto.trader.journal import read_journal
from rtcrypto.trading.order_types import OrderRequest
from rtcrypto.trading.strategy import Side
from tests.helpers import Child, wait_until
from tests.integration.test_gemini_sandbox import KEY, SECRET, START_USD, Sandbox
from tests.trader_gemini_runner import HANG_MARKER, SUMMARY, sandbox_trader
from tests.unit.test_trader_engine import MINUTE, T0, record

pytestmark = pytest.mark.integration


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    server = Sandbox()
    yield server
    server.stop()


def raw_my_trades(sandbox: Sandbox, nonce: int) -> list[dict[str, Any]]:
    """``/v1/mytrades`` of the key as the sandbox answers it (a signed request of the test's
    own, not the adapter's parser): every fill since 0, up to 500."""
    params = {"symbol": "btcusd", "timestamp": 0, "limit_trades": 500}
    headers = signed_headers(KEY, SECRET, "/v1/mytrades", nonce, params)
    answer = requests.post(f"{sandbox.url}/v1/mytrades", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    rows = answer.json()
    assert 0 < len(rows) < 500
    return list(rows)


def fee_by_order(rows: list[dict[str, Any]]) -> dict[str, Decimal]:
    fees: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        assert row["fee_currency"] == "USD"
        fees[row["order_id"]] += Decimal(row["fee_amount"])
    return dict(fees)


def trade(trader: Trader, clock: dict[str, int], minutes: range) -> None:
    for minute in minutes:
        clock["now"] = T0 + minute * MINUTE
        trader.on_liquidity(parse_liquidity(record(minute)))


def test_the_ledger_books_exactly_the_fees_of_mytrades(sandbox: Sandbox, tmp_path: Path) -> None:
    clock = {"now": T0}
    trader = sandbox_trader(sandbox.url, tmp_path, clock)
    trader.start()
    trade(trader, clock, range(1, 9))  # buy, sell, ...; partial fills on the replayed book
    assert trader.ledger is not None
    orders = sandbox.requests_to("/v1/order/new")
    assert len(trader.ledger.fills) == orders >= 6 and len(trader.ledger.round_trips) >= 2
    assert sandbox.requests_to("/v1/mytrades") >= orders, "each order's fee is read from mytrades"
    assert sandbox.requests_to("/v1/order/status") == 0, "no fallback was needed"

    rows = raw_my_trades(sandbox, trader.exchange.nonce())  # type: ignore[attr-defined]
    exchange_fees = fee_by_order(rows)
    assert len(exchange_fees) == orders and len(rows) >= orders
    assert trader.ledger.fees_paid_usd == sum(exchange_fees.values())  # exact, Decimal
    state = read_journal(tmp_path / "journal.jsonl")
    assert {s.order_id: s.fee_usd for s in state.results.values()} == exchange_fees
    # the adapter's paged read (two trades a page, Gemini's documented walk) lists them all
    paged = trader.exchange.my_trades("btcusd", 0, limit=2)  # type: ignore[attr-defined]
    assert sorted(t.tid for t in paged) == sorted(row["tid"] for row in rows)
    assert [t.timestampms for t in paged] == sorted(row["timestampms"] for row in rows)
    notional = sum(Decimal(row["price"]) * Decimal(row["amount"]) for row in rows)
    assert trader.ledger.fees_paid_usd == notional * Decimal("0.0025")  # the sandbox's 25 bps
    trader.journal.close()


class BrokenTradeReads(requests.Session):
    """Real HTTP to the sandbox, but ``broken`` paths answer 400 (as a key without the Auditor
    role would): by default ``mytrades`` and ``order/status``, so only the estimate is left."""

    def __init__(self, broken: tuple[str, ...] = ("/v1/mytrades", "/v1/order/status")) -> None:
        super().__init__()
        self.broken = broken

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        response = super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]
        if str(url).endswith(self.broken):
            response.status_code = 400
            response._content = b'{"result":"error","reason":"MissingRole","message":"no"}'
        return response


def test_without_mytrades_the_fee_comes_from_the_orders_trades(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    adapter = sandbox.adapter(session=BrokenTradeReads(("/v1/mytrades",)))
    top = adapter.top_of_book("btcusd")
    limit = (top.ask * Decimal("1.001")).quantize(Decimal("0.01"))
    status = adapter.place_order(
        OrderRequest("rtc-fallback", "btcusd", Side.buy, Decimal("0.05"), limit)
    )
    assert "mytrades unreadable" in caplog.text
    assert f"fee of order_id={status.order_id} read from the order's trades" in caplog.text
    rows = raw_my_trades(sandbox, adapter.nonce())
    assert status.fee_usd == fee_by_order(rows)[status.order_id] > 0


def test_fees_fall_back_when_mytrades_cannot_be_read_and_a_restart_corrects_them(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    clock = {"now": T0}
    trader = sandbox_trader(sandbox.url, tmp_path, clock)
    broken = GeminiAdapter(
        sandbox.url,
        KEY,
        SECRET,
        session=BrokenTradeReads(),
        fallback_fee_pct=Decimal("0.3"),  # not the sandbox's 0.25 %: the estimate is visibly off
        nonce_source=PersistentNonceSource(tmp_path / "nonce.txt"),
    )
    trader.exchange = broken
    trader.start()
    trade(trader, clock, range(1, 5))
    assert "mytrades unreadable" in caplog.text and "estimated at 0.3 %" in caplog.text
    assert trader.ledger is not None
    estimated = trader.ledger.fees_paid_usd
    filled = len(trader.ledger.fills)
    assert filled >= 3
    trader.journal.close()

    caplog.clear()
    restarted = sandbox_trader(sandbox.url, tmp_path, clock)
    restarted.start()  # reconciles the journal with mytrades
    assert restarted.ledger is not None
    rows = raw_my_trades(sandbox, restarted.exchange.nonce())  # type: ignore[attr-defined]
    exchange_fees = fee_by_order(rows)
    assert restarted.ledger.fees_paid_usd == sum(exchange_fees.values()) != estimated
    state = read_journal(tmp_path / "journal.jsonl")
    assert {s.order_id: s.fee_usd for s in state.results.values()} == exchange_fees
    assert len(restarted.ledger.fills) == filled, "corrected, not booked again"
    assert caplog.text.count("fee_usd journal=") == filled  # each logged with both values
    assert restarted.ledger.balances.btc == broken.balances()["btc"]

    restarted.journal.close()  # a second restart finds nothing to correct
    again = sandbox_trader(sandbox.url, tmp_path, clock)
    caplog.clear()
    again.start()
    assert "fee_usd journal=" not in caplog.text
    assert again.ledger is not None and again.ledger.fees_paid_usd == restarted.ledger.fees_paid_usd
    again.journal.close()


def runner(sandbox: Sandbox, workdir: Path, name: str, *args: str) -> Child:
    command = [sys.executable, "-m", "tests.trader_gemini_runner", sandbox.url, str(workdir)]
    return Child(name, command + list(args), workdir, {})


def test_a_kill_9_between_fill_and_journal_books_every_trade_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    first = runner(sandbox, tmp_path, "t1", "1", "2", "--hang-at", "2")
    try:
        wait_until(lambda: (tmp_path / HANG_MARKER).exists(), 60, "the fill of minute 2", first)
        first.kill()  # SIGKILL: the answer of minute 2's sell never reaches the journal
    finally:
        first.kill()
    assert first.process.returncode == -signal.SIGKILL
    hung_cid = (tmp_path / HANG_MARKER).read_text()
    state = read_journal(tmp_path / "journal.jsonl")
    assert [sent.request.client_order_id for sent in state.pending()] == [hung_cid]
    assert len(state.results) == 1

    second = runner(sandbox, tmp_path, "t2", "2", "8")
    wait_until(lambda: not second.alive(), 60, "the restarted trader's minutes 2-8", second)
    assert second.stop() == 0, second.log()[-3000:]
    assert "recovered from the exchange" in second.log()

    nonce = PersistentNonceSource(tmp_path / "nonce.txt")()
    rows = raw_my_trades(sandbox, nonce)
    state = read_journal(tmp_path / "journal.jsonl")
    assert state.pending() == [] and state.abandoned == {}
    orders = sandbox.requests_to("/v1/order/new")
    assert len(state.results) == len(state.sent) == orders >= 4
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_order[row["order_id"]].append(row)
    assert len({row["tid"] for row in rows}) == len(rows)
    # every order of mytrades is one journal result whose amount is the sum of its trades once
    assert {s.order_id for s in state.results.values() if s.executed_quantity} == set(by_order)
    for status in state.results.values():
        mine = by_order[status.order_id]
        assert status.executed_quantity == sum(Decimal(r["amount"]) for r in mine)
        assert status.fee_usd == sum(Decimal(r["fee_amount"]) for r in mine)
    assert state.results[hung_cid].executed_quantity > 0
    assert len({s.order_id for s in state.results.values()}) == orders, "none sent twice"

    summary = json.loads((tmp_path / SUMMARY).read_text())
    assert summary["fills"] == len(by_order)
    assert Decimal(summary["fees_usd"]) == sum(fee_by_order(rows).values())
    balances = GeminiAdapter(
        sandbox.url, KEY, SECRET, nonce_source=PersistentNonceSource(tmp_path / "nonce.txt")
    ).balances()
    assert Decimal(summary["btc"]) == balances["btc"]
    # an order filled at several prices is booked at its average (notional / amount, rounded to
    # 28 digits): its notional may differ from the exchange's in the 28th digit, never by 1e-12
    assert abs(Decimal(summary["usd"]) - balances["usd"]) < Decimal("1e-12")
    assert Decimal(summary["usd"]) < START_USD  # it paid fees
