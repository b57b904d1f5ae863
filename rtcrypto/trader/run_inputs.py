"""What a trader run sent and saw, from its journal and its paper account, for the record backtest.

``orders_from_journal``: the orders in send order, as ``trading.record_backtest.PlacedOrder``.
``quotes_from_run``: per decision minute, the book the order was priced from (its limit price is
the ask of a buy, the bid of a sell: the only part of the book sizing reads) and the book the
paper exchange matched it against (kept in the paper account file); when an exchange kept no
matched book, one is rebuilt from the order's result (fill price and quantity).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from rtcrypto.exchange.base import OrderStatus
from rtcrypto.trader.journal import JournalState, SentOrder
from rtcrypto.trading.order_types import TopOfBook
from rtcrypto.trading.record_backtest import MinuteQuote, PlacedOrder
from rtcrypto.trading.strategy import Side


def orders_from_journal(state: JournalState) -> list[PlacedOrder]:
    """Every order the journal says was sent, in send order, with what filled."""
    orders = []
    for cid, sent in state.sent.items():
        status = state.results.get(cid)
        orders.append(
            PlacedOrder(
                minute_ms=sent.minute_ms,
                side=sent.request.side,
                quantity=sent.request.quantity,
                limit_price=sent.request.limit_price,
                executed_quantity=status.executed_quantity if status else Decimal(0),
            )
        )
    return orders


def _book_from_result(sent: SentOrder, status: OrderStatus | None) -> TopOfBook:
    """The top of book an IOC result implies: the fill price with the filled size (the whole
    order when it filled completely); no price when nothing filled."""
    request = sent.request
    executed = status.executed_quantity if status else Decimal(0)
    price = status.average_execution_price if status and executed > 0 else Decimal(0)
    size = request.quantity if executed >= request.quantity else executed
    if request.side is Side.buy:
        return TopOfBook(request.symbol, Decimal(0), Decimal(0), price, size, sent.sent_ms)
    return TopOfBook(request.symbol, price, size, Decimal(0), Decimal(0), sent.sent_ms)


def quotes_from_run(
    state: JournalState, matched_books: Mapping[str, TopOfBook]
) -> dict[int, MinuteQuote]:
    """Per decision minute (``minute_ms``), the quote each sent order was priced and filled at.

    ``matched_books`` is ``exchange.paper.matched_books_by_client_order_id`` of the run's account.
    """
    quotes: dict[int, MinuteQuote] = {}
    for cid, sent in state.sent.items():
        limit = sent.request.limit_price
        book = TopOfBook(sent.request.symbol, limit, Decimal(0), limit, Decimal(0), sent.sent_ms)
        fill_book = matched_books.get(cid) or _book_from_result(sent, state.results.get(cid))
        quotes[sent.minute_ms] = MinuteQuote(book, fill_book)
    return quotes
