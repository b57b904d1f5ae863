"""Reconcile the trader's journal with the exchange's own fills (``/v1/mytrades``) at a restart.

The journal keeps one result per ``client_order_id``, and the ledger books each result once, so
fills are keyed by order: a restart that reads the same trades again finds the results already
agreeing and books nothing (idempotent). :func:`fill_corrections` is pure: given what the journal
says and the exchange's trades, it returns the results to write:

- a journaled result whose order's trades (by ``order_id``) add up to another executed amount,
  average price or fee is replaced by what the trades say (both values are logged);
- an order the journal sent but holds no result for (the process was killed between the
  exchange's fill and the journal's ``result``), or marked abandoned, whose ``client_order_id``
  the trades carry, gets its result from the trades: booked once;
- trades of orders the journal does not know (another client of the same key) are left alone,
  and a journaled fill the trades do not list is reported, never zeroed (the trades may start
  after it).

Prices are USD per BTC, amounts BTC, fees USD, times epoch ms; all ``Decimal``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from rtcrypto.exchange.base import ExchangeError, OrderStatus
from rtcrypto.exchange.gemini_trades import MyTrade, TradeHistory, fee_usd_of
from rtcrypto.trader.journal import JournalState, OrderJournal, SentOrder

log = logging.getLogger(__name__)

# the exchange stamps its trades on its own clock, the journal on the trader's (the feed clock):
# trades are read from this long before the journal's first entry, so a skew loses none
CLOCK_SKEW_ALLOWANCE_MS = 600_000
# an average price within half a cent is the same (Gemini rounds avg_execution_price)
AVERAGE_PRICE_TOLERANCE_USD = Decimal("0.005")


@dataclass(frozen=True, slots=True)
class FillCorrection:
    """A result to write for ``client_order_id``: ``before`` is the journal's (None when it has
    none), ``after`` what the exchange's trades say; ``differences`` names what changed."""

    client_order_id: str
    before: OrderStatus | None
    after: OrderStatus
    differences: tuple[str, ...]
    tids: tuple[int, ...]


def trades_since_ms(state: JournalState) -> int:
    """Where to start reading the exchange's trades: the journal's opening (or its first sent
    order, if earlier), minus the clock skew allowance; 0 without an opening."""
    times = [int(state.opened["ts_ms"])] if state.opened and "ts_ms" in state.opened else []
    times += [sent.sent_ms for sent in state.sent.values()]
    return max(0, min(times) - CLOCK_SKEW_ALLOWANCE_MS) if times else 0


def executed_of(trades: Sequence[MyTrade]) -> tuple[Decimal, Decimal, Decimal]:
    """(executed amount, average price, USD fee) of one order's trades; (0, 0, 0) for none."""
    amount = sum((trade.amount for trade in trades), Decimal(0))
    if amount == 0:
        return Decimal(0), Decimal(0), Decimal(0)
    notional = sum((trade.notional for trade in trades), Decimal(0))
    return amount, notional / amount, fee_usd_of(trades)


def differences(status: OrderStatus, trades: Sequence[MyTrade]) -> tuple[str, ...]:
    """What the journaled ``status`` says otherwise than the order's ``trades`` (``field
    journal=... exchange=...``); empty when they agree."""
    amount, average, fee = executed_of(trades)
    found = []
    if status.executed_quantity != amount:
        found.append(f"executed journal={status.executed_quantity} exchange={amount}")
    if abs(status.average_execution_price - average) > AVERAGE_PRICE_TOLERANCE_USD:
        found.append(f"avg_price journal={status.average_execution_price} exchange={average}")
    if status.fee_usd != fee:
        found.append(f"fee_usd journal={status.fee_usd} exchange={fee}")
    return tuple(found)


def corrected(status: OrderStatus, trades: Sequence[MyTrade]) -> OrderStatus:
    """``status`` with the executed amount, average price and fee of its ``trades``."""
    amount, average, fee = executed_of(trades)
    return dataclasses.replace(
        status,
        executed_quantity=amount,
        average_execution_price=average,
        fee_usd=fee,
        is_live=False,
        is_cancelled=status.is_cancelled or amount < status.original_quantity,
    )


def status_from_trades(sent: SentOrder, trades: Sequence[MyTrade]) -> OrderStatus:
    """The final state of a sent IOC order the journal has no result for, from its trades."""
    request = sent.request
    amount, average, fee = executed_of(trades)
    return OrderStatus(
        order_id=trades[0].order_id,
        client_order_id=request.client_order_id,
        symbol=request.symbol.lower(),
        side=request.side,
        limit_price=request.limit_price,
        original_quantity=request.quantity,
        executed_quantity=amount,
        average_execution_price=average,
        fee_usd=fee,
        is_live=False,
        is_cancelled=amount < request.quantity,
        ts_ms=max(trade.timestampms for trade in trades),
    )


def _by(trades: Iterable[MyTrade], by_client_id: bool) -> dict[str, list[MyTrade]]:
    grouped: dict[str, list[MyTrade]] = defaultdict(list)
    seen: set[int] = set()
    for trade in sorted(trades, key=lambda t: (t.timestampms, t.tid)):
        key = trade.client_order_id if by_client_id else trade.order_id
        if key is None or trade.tid in seen:
            continue
        seen.add(trade.tid)
        grouped[key].append(trade)
    return grouped


def fill_corrections(
    sent: Mapping[str, SentOrder],
    results: Mapping[str, OrderStatus],
    abandoned: Collection[str],
    trades: Iterable[MyTrade],
) -> list[FillCorrection]:
    """The results to write so that the journal agrees with the exchange's ``trades`` (pure).

    ``sent``, ``results`` and ``abandoned`` are the journal's (by ``client_order_id``). Applying
    the corrections and calling this again returns none."""
    trades = list(trades)
    by_order, by_client = _by(trades, False), _by(trades, True)
    found: list[FillCorrection] = []
    for cid, sent_order in sent.items():
        status = results.get(cid)
        if status is not None:
            mine = by_order.get(status.order_id) or by_client.get(cid, [])
            if not mine:
                if status.executed_quantity > 0:
                    log.warning(
                        "reconcile client_order_id=%s: journal executed=%s fee=%s, but the "
                        "exchange's trades list none since the journal opened; kept",
                        cid,
                        status.executed_quantity,
                        status.fee_usd,
                    )
                continue
            changed = differences(status, mine)
            if changed:
                after = corrected(status, mine)
                found.append(FillCorrection(cid, status, after, changed, _tids(mine)))
            continue
        mine = by_client.get(cid, [])
        if mine:  # killed between the fill and the journal, or wrongly abandoned
            why = "abandoned in the journal" if cid in abandoned else "no result in the journal"
            after = status_from_trades(sent_order, mine)
            found.append(FillCorrection(cid, None, after, (why,), _tids(mine)))
    return found


def _tids(trades: Sequence[MyTrade]) -> tuple[int, ...]:
    return tuple(trade.tid for trade in trades)


def apply_corrections(
    results: Mapping[str, OrderStatus], corrections: Iterable[FillCorrection]
) -> dict[str, OrderStatus]:
    """``results`` with every correction written (what the journal holds after them)."""
    merged = dict(results)
    for correction in corrections:
        merged[correction.client_order_id] = correction.after
    return merged


def reconcile_fills(exchange: object, journal: OrderJournal, symbol: str) -> list[FillCorrection]:
    """Read the exchange's trades of ``symbol`` since the journal opened and write the results
    :func:`fill_corrections` finds into ``journal`` (each logged with both values); returns them
    (the caller rebuilds its ledger when there are any). An exchange that lists no trades (the
    paper exchange) or whose trades cannot be read changes nothing (logged)."""
    if not isinstance(exchange, TradeHistory):
        return []
    state = journal.state
    try:
        trades = exchange.my_trades(symbol, trades_since_ms(state))
    except ExchangeError as error:
        log.warning(
            "reconcile: the exchange's trades cannot be read, fills kept as journaled: %s", error
        )
        return []
    corrections = fill_corrections(state.sent, state.results, state.abandoned, trades)
    for correction in corrections:
        journal.record_result(correction.after, correction.client_order_id)
        log.warning(
            "reconcile client_order_id=%s from the exchange's trades tids=%s: %s; booked "
            "executed=%s avg_price=%s fee_usd=%s",
            correction.client_order_id,
            list(correction.tids),
            "; ".join(correction.differences),
            correction.after.executed_quantity,
            correction.after.average_execution_price,
            correction.after.fee_usd,
        )
    log.info(
        "reconcile: %d trades of %s read from the exchange, %d results corrected",
        len(trades),
        symbol,
        len(corrections),
    )
    return corrections
