"""One real UTC day of the trader's documents for ``bench.review_page``: liquidity, ticker, orders,
fills, scores, balances and the published forecast, built the way the platform builds them.

- Market data: the real Binance minute bars of the day (``../shared/data/minute``) drive the
  history replay's modelled book (:func:`rtcrypto.simulator.market_model.generate_minute`, the code
  the simulator serves). Per minute: the liquidity job's metric over the minute's change events
  (price-weighted volume per side, ratio ask / bid, event count), the book's depth within
  ``depth_band_pct`` of the mid at the minute's end (:func:`rtcrypto.market.orderbook.depth_summary`,
  the ingest's code) and a ticker document of its best bid and ask: 1,440 of each.
- Forecast: :func:`rtcrypto.forecast.publish.publish` trains Prophet on the two real days before,
  holds the day out and publishes a one-day horizon (forced current: the gate judges freshness
  against the wall clock, and the day is in the past), into a temporary forecast folder.
- Trades: a real :class:`~rtcrypto.trading.ledger.Ledger` (paper, 10,000 USD, the taker fee)
  alternates IOC buys at the minute's ask (90 % of the USD) and sells of the whole BTC balance at
  its bid, spread evenly over the day (at most one a minute), each decided when the minute's
  liquidity record arrives; every tenth order is an IOC that found nothing (cancelled, no fill).
  Orders, fills, scores and balances come from ``rtcrypto.search.documents`` with the published
  version as ``forecast_version``, as the trader's recorder writes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from rtcrypto.exchange.base import OrderStatus
from rtcrypto.market.orderbook import depth_summary
from rtcrypto.search import documents
from rtcrypto.search.documents import SearchAction
from rtcrypto.simulator.calibration import load_calibration
from rtcrypto.simulator.history_replay import HistoryReplay, load_replay_bars
from rtcrypto.simulator.market_model import (
    STREAM_FRESH_BOOK,
    BookMessage,
    ModelBook,
    generate_minute,
    minute_rng,
    price_weighted_volumes,
    to_cents,
)
from rtcrypto.trading.ledger import Fill, Ledger
from rtcrypto.trading.order_types import OrderRequest, TopOfBook
from rtcrypto.trading.strategy import OrderIntent, PriceReference, Side, TimeInForce

MINUTE_MS = 60_000
DAY_MS = 86_400_000
SOURCE = "binance"
SYMBOL = "BTCUSD"
MODE = "paper"
CANCELLED_EVERY = 10  # every tenth order is an IOC that found nothing
CENTS = Decimal(100)
SATOSHIS = Decimal(100_000_000)
SATOSHI = Decimal("0.00000001")  # BTC


@dataclass(frozen=True)
class BookMinute:
    """One minute of the modelled book: its liquidity record and top of book at its end."""

    record: dict[str, object]
    book: TopOfBook


@dataclass
class SeededDay:
    """What was seeded: the documents, and the counts the page must show."""

    actions: list[SearchAction] = field(default_factory=list)
    orders: int = 0
    fills: int = 0
    round_trips: int = 0
    liquidity: int = 0
    tickers: int = 0


def _top_of_book(model: ModelBook, ts_ms: int) -> TopOfBook:
    bids, asks = model.levels()
    (bid_cents, bid_sats), (ask_cents, ask_sats) = bids[0], asks[0]
    return TopOfBook(
        SYMBOL,
        Decimal(bid_cents) / CENTS,
        Decimal(bid_sats) / SATOSHIS,
        Decimal(ask_cents) / CENTS,
        Decimal(ask_sats) / SATOSHIS,
        ts_ms,
    )


def book_minutes(
    day_start_ms: int, history_dir: Path, *, seed: int, band_pct: float, minutes: int = 1_440
) -> list[BookMinute]:
    """The modelled book over the real bars of ``minutes`` minutes from ``day_start_ms``."""
    end_ms = day_start_ms + minutes * MINUTE_MS
    spec = HistoryReplay(SOURCE, day_start_ms, end_ms, Path(), seed, history_dir, symbol=SYMBOL)
    bars = load_replay_bars(spec)
    model = ModelBook(load_calibration())
    first = bars.bar(0)
    model.reset(to_cents(first.open), minute_rng(seed, first.ts_ms, STREAM_FRESH_BOOK))
    book = []
    for index in range(len(bars)):
        bar = bars.bar(index)
        events = generate_minute(bar, model, seed)
        changes = [c for event in events if isinstance(event, BookMessage) for c in event.changes]
        bid_volume, ask_volume = price_weighted_volumes(changes)
        depth = depth_summary(
            {Decimal(p) / CENTS: Decimal(s) / SATOSHIS for p, s in model.bids.items()},
            {Decimal(p) / CENTS: Decimal(s) / SATOSHIS for p, s in model.asks.items()},
            band_pct,
        )
        window_end_ms = bar.ts_ms + MINUTE_MS
        record: dict[str, object] = {
            "symbol": SYMBOL,
            "window_start_ms": bar.ts_ms,
            "window_end_ms": window_end_ms,
            "ts_event_ms": window_end_ms - 1,
            "bid_price_weighted_volume": bid_volume,
            "ask_price_weighted_volume": ask_volume,
            "liquidity_ratio": ask_volume / bid_volume if bid_volume > 0 else None,
            "event_count": len(changes),
            "mid_price": depth.mid_price,
            "bid_depth": depth.bid_depth,
            "ask_depth": depth.ask_depth,
            "depth_imbalance": depth.depth_imbalance,
            "depth_band_pct": band_pct,
            "schema_version": 1,
            "emitted_at_ms": window_end_ms + 3_500,  # Spark writes a window 3-4 s after its end
        }
        book.append(BookMinute(record, _top_of_book(model, window_end_ms - 1)))
    return book


def _order_status(
    request: OrderRequest, order_id: str, executed: Decimal, fee_usd: Decimal, ts_ms: int
) -> OrderStatus:
    return OrderStatus(
        order_id=order_id,
        client_order_id=request.client_order_id,
        symbol=SYMBOL,
        side=request.side,
        limit_price=request.limit_price,
        original_quantity=request.quantity,
        executed_quantity=executed,
        average_execution_price=request.limit_price if executed > 0 else Decimal(0),
        fee_usd=fee_usd,
        is_live=False,
        is_cancelled=executed == 0,
        ts_ms=ts_ms,
    )


def _intent(ledger: Ledger, buy: bool) -> OrderIntent:
    """An IOC buy of 90 % of the USD at the ask, or a sell of every BTC at the bid."""
    if buy:
        return OrderIntent(
            Side.buy,
            PriceReference.ask,
            TimeInForce.immediate_or_cancel,
            quote_amount=ledger.balances.usd * Decimal("0.9"),
        )
    return OrderIntent(
        Side.sell,
        PriceReference.bid,
        TimeInForce.immediate_or_cancel,
        base_quantity=ledger.balances.btc,
    )


@dataclass(frozen=True)
class Labels:
    """What every trade document of the seeded day carries."""

    version: str
    prefix: str

    def order(self, request: OrderRequest, status: OrderStatus) -> SearchAction:
        return documents.order_document(
            request,
            status,
            exchange="paper",
            trading_mode=MODE,
            forecast_version=self.version,
            prefix=self.prefix,
        )


def _filled(
    ledger: Ledger, fill: Fill, client_order_id: str, last_buy: str | None, labels: Labels
) -> list[SearchAction]:
    """The fill, the score (a sell) and the balances after it."""
    actions = [
        documents.fill_document(
            fill,
            client_order_id=client_order_id,
            symbol=SYMBOL,
            trading_mode=MODE,
            forecast_version=labels.version,
            prefix=labels.prefix,
        )
    ]
    if fill.side is Side.sell:
        actions.append(
            documents.score_document(
                ledger.round_trips[-1],
                exit_client_order_id=client_order_id,
                entry_client_order_id=last_buy,
                symbol=SYMBOL,
                trading_mode=MODE,
                forecast_version=labels.version,
                prefix=labels.prefix,
            )
        )
    balances = fill.balances_after
    actions.append(
        documents.balances_document(
            balances.usd, balances.btc, fill.ts_event_ms, trading_mode=MODE, prefix=labels.prefix
        )
    )
    return actions


def trade_documents(
    minutes: list[BookMinute], *, orders: int, version: str, prefix: str, seeded: SeededDay
) -> None:
    """``orders`` (at most one a minute) alternating IOC orders through a real ledger, with
    their documents, spread evenly over ``minutes``."""
    if not 0 < orders <= len(minutes):
        raise SystemExit(f"--orders must be between 1 and {len(minutes)} (one a minute at most)")
    ledger = Ledger(Decimal("10000"))
    labels = Labels(version, prefix)
    last_buy: str | None = None
    for number in range(orders):
        minute = minutes[(2 * number + 1) * len(minutes) // (2 * orders)]  # spread evenly
        ts_ms = int(str(minute.record["emitted_at_ms"]))  # decided when the record arrives
        intent = _intent(ledger, buy=ledger.balances.btc == 0)
        buy = intent.side is Side.buy
        price = minute.book.ask if buy else minute.book.bid
        client_order_id = f"bench-{MODE}-{number:04d}-{intent.side}"
        order_id = str(90_000 + number)
        seeded.orders += 1
        if number % CANCELLED_EVERY == CANCELLED_EVERY - 1:  # the IOC found nothing at its price
            wanted = (intent.quote_amount / price) if buy and intent.quote_amount else None
            quantity = (wanted or intent.base_quantity or Decimal(0)).quantize(SATOSHI)
            request = OrderRequest(client_order_id, SYMBOL, intent.side, quantity, price)
            status = _order_status(request, order_id, Decimal(0), Decimal(0), ts_ms)
            seeded.actions.append(labels.order(request, status))
            continue
        fill = ledger.execute(intent, price, ts_ms)
        if fill is None:
            raise SystemExit(f"order {client_order_id}: the ledger filled nothing at {price}")
        request = OrderRequest(client_order_id, SYMBOL, intent.side, fill.base_quantity, price)
        status = _order_status(request, order_id, fill.base_quantity, fill.fee_usd, ts_ms)
        seeded.actions.append(labels.order(request, status))
        seeded.actions += _filled(ledger, fill, client_order_id, last_buy, labels)
        seeded.fills += 1
        if buy:
            last_buy = client_order_id
        else:
            seeded.round_trips += 1


def publish_day_forecast(day_start_ms: int, history_dir: Path, forecast_dir: Path) -> str:
    """Train on the two real days before the day, hold the day out, publish a one-day forecast
    (forced current); return its version."""
    import pandas as pd

    from rtcrypto.forecast.publish import publish
    from rtcrypto.history import load_history

    start = pd.Timestamp(day_start_ms - 2 * DAY_MS, unit="ms", tz="UTC")
    end = pd.Timestamp(day_start_ms + DAY_MS, unit="ms", tz="UTC")
    bars = load_history(SOURCE, start, end, history_dir=history_dir)
    result = publish(
        bars,
        source=SOURCE,
        holdout_days=1.0,
        horizon_minutes=DAY_MS // MINUTE_MS,
        forecast_dir=forecast_dir,
        force_reason="bench.review_page: a fixed past day",
        forced_by="bench.review_page",
    )
    return result.version


def seed_day(
    day_start_ms: int,
    history_dir: Path,
    *,
    orders: int,
    version: str,
    prefix: str,
    seed: int = 0,
    band_pct: float = 0.5,
) -> SeededDay:
    """Every document of the day (see the module docstring) for index ``prefix``."""
    minutes = book_minutes(day_start_ms, history_dir, seed=seed, band_pct=band_pct)
    seeded = SeededDay()
    for minute in minutes:
        seeded.actions.append(documents.liquidity_document(minute.record, prefix=prefix))
        seeded.actions.append(documents.ticker_document(minute.book, prefix=prefix))
    seeded.liquidity = seeded.tickers = len(minutes)
    trade_documents(minutes, orders=orders, version=version, prefix=prefix, seeded=seeded)
    return seeded


def forecast_documents_of(version: str, forecast_dir: Path, prefix: str) -> list[SearchAction]:
    """The published version's minutes as the trader indexes them (``<prefix>-forecast``)."""
    from rtcrypto.forecast.publish import load_version

    frame = load_version(version, forecast_dir)[0]
    return list(documents.forecast_documents(frame, version, prefix=prefix))


def check_finite(seeded: SeededDay) -> None:
    """No NaN or infinity reached a document (Elasticsearch would refuse the batch)."""
    for action in seeded.actions:
        for name, value in action.source.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise SystemExit(f"{action.index}/{action.id}: {name} is {value}")
