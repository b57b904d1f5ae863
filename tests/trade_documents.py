"""Known trader documents for the report tests: a real ``Ledger`` trades two round trips (one
winning, one losing) and every order, fill, score, balance, ticker and liquidity record is built
with ``rtcrypto.search.documents``, as the trader's recorder builds them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from rtcrypto.exchange.base import OrderStatus
from rtcrypto.search import documents
from rtcrypto.search.documents import SearchAction
from rtcrypto.trading.ledger import Ledger
from rtcrypto.trading.order_types import OrderRequest, TopOfBook
from rtcrypto.trading.strategy import OrderIntent, PriceReference, Side, TimeInForce

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

MINUTE_MS = 60_000
SYMBOL = "BTCUSD"
FORECAST_VERSION = "20261127T000000Z-testtest"
# (minute after the start, side): buy, sell after a rise, buy, sell after a fall; a buy fills at
# the ask and a sell at the bid of that minute's made-up book.
TRADES = ((2, Side.buy), (7, Side.sell), (12, Side.buy), (18, Side.sell))
HALF_SPREAD = Decimal("0.05")
MINUTES = 25  # ticker and liquidity records, one per minute from the start


@dataclass(frozen=True)
class TradeScenario:
    ledger: Ledger
    actions: list[SearchAction]
    start_ms: int  # the first minute of the records
    end_ms: int  # one minute after the last record


def mid_price_at(minute: int) -> Decimal:
    """A made-up mid price path (USD/BTC): up 40 a minute until minute 12, then down 30."""
    if minute <= 12:
        return Decimal("30000.00") + 40 * minute
    return Decimal("30480.00") - 30 * (minute - 12)


def trade_price(minute: int, side: Side) -> Decimal:
    """The ask (buy) or bid (sell) of ``minute``."""
    return mid_price_at(minute) + (HALF_SPREAD if side is Side.buy else -HALF_SPREAD)


def trade_scenario(
    start_ms: int, *, mode: str = "paper", prefix: str = "rtc", order_prefix: str = "t"
) -> TradeScenario:
    """Two round trips from ``start_ms`` (a minute boundary) with their documents."""
    ledger = Ledger(Decimal("10000"))
    actions: list[SearchAction] = []
    last_buy_id: str | None = None
    for index, (minute, side) in enumerate(TRADES):
        price = trade_price(minute, side)
        ts_ms = start_ms + minute * MINUTE_MS + 1_500
        if side is Side.buy:
            intent = OrderIntent(
                side,
                PriceReference.ask,
                TimeInForce.immediate_or_cancel,
                quote_amount=ledger.balances.usd * Decimal("0.9"),
            )
        else:
            intent = OrderIntent(
                side,
                PriceReference.bid,
                TimeInForce.immediate_or_cancel,
                base_quantity=ledger.balances.btc,
            )
        fill = ledger.execute(intent, price, ts_ms)
        assert fill is not None
        client_order_id = f"{order_prefix}-{mode}-{index}-{side}"
        request = OrderRequest(client_order_id, SYMBOL, side, fill.base_quantity, price)
        status = OrderStatus(
            order_id=str(1000 + index),
            client_order_id=client_order_id,
            symbol=SYMBOL,
            side=side,
            limit_price=price,
            original_quantity=fill.base_quantity,
            executed_quantity=fill.base_quantity,
            average_execution_price=price,
            fee_usd=fill.fee_usd,
            is_live=False,
            is_cancelled=False,
            ts_ms=ts_ms,
        )
        labels = {"trading_mode": mode, "forecast_version": FORECAST_VERSION, "prefix": prefix}
        actions.append(documents.order_document(request, status, exchange="paper", **labels))
        actions.append(
            documents.fill_document(fill, client_order_id=client_order_id, symbol=SYMBOL, **labels)
        )
        if side is Side.sell:
            actions.append(
                documents.score_document(
                    ledger.round_trips[-1],
                    exit_client_order_id=client_order_id,
                    entry_client_order_id=last_buy_id,
                    symbol=SYMBOL,
                    **labels,
                )
            )
        else:
            last_buy_id = client_order_id
        actions.append(
            documents.balances_document(
                fill.balances_after.usd,
                fill.balances_after.btc,
                ts_ms,
                trading_mode=mode,
                prefix=prefix,
            )
        )
    for minute in range(MINUTES):
        window_start = start_ms + minute * MINUTE_MS
        mid = mid_price_at(minute)
        actions.append(
            documents.ticker_document(
                TopOfBook(
                    SYMBOL,
                    mid - HALF_SPREAD,
                    Decimal("1.5"),
                    mid + HALF_SPREAD,
                    Decimal("2"),
                    window_start + 30_000,
                ),
                prefix=prefix,
            )
        )
        bid_volume = 1_000_000.0
        actions.append(
            documents.liquidity_document(
                {
                    "symbol": SYMBOL,
                    "window_start_ms": window_start,
                    "window_end_ms": window_start + MINUTE_MS - 1,
                    "bid_price_weighted_volume": bid_volume,
                    "ask_price_weighted_volume": bid_volume * (0.5 + minute / 10),
                    "liquidity_ratio": 0.5 + minute / 10,
                    "event_count": 10 + minute,
                    "mid_price": float(mid),
                },
                prefix=prefix,
            )
        )
    return TradeScenario(ledger, actions, start_ms, start_ms + MINUTES * MINUTE_MS)


def publish_test_forecast(forecast_dir: Path, start_ms: int, minutes: int) -> str:
    """Write a current forecast version by hand (the layout of ``rtcrypto.forecast.publish``):
    yhat = log of the scenario's mid price plus 0.1 %, side buy (the made-up path rises)."""
    import pandas as pd

    folder = forecast_dir / "versions" / FORECAST_VERSION
    folder.mkdir(parents=True, exist_ok=True)
    ds = pd.date_range(pd.Timestamp(start_ms, unit="ms", tz="UTC"), periods=minutes, freq="min")
    yhat = [math.log(float(mid_price_at(minute)) * 1.001) for minute in range(minutes)]
    frame = pd.DataFrame(
        {
            "ds": ds,
            "yhat": yhat,
            "yhat_lower": [value - 0.01 for value in yhat],
            "yhat_upper": [value + 0.01 for value in yhat],
            "side": ["buy"] * minutes,
        }
    )
    frame.to_parquet(folder / "forecast.parquet", index=False)
    (folder / "metadata.json").write_text(json.dumps({"version": FORECAST_VERSION}))
    (forecast_dir / "current").write_text(FORECAST_VERSION + "\n")
    return FORECAST_VERSION


def index_actions(client: Elasticsearch, actions: list[SearchAction]) -> None:
    """Bulk-index ``actions`` and refresh, so that a search sees them at once."""
    from elasticsearch import helpers

    indexed, errors = helpers.bulk(client, [action.bulk_entry() for action in actions])
    assert not errors and indexed == len(actions), errors
    client.indices.refresh(index=",".join(sorted({action.index for action in actions})))


def drop_prefix(client: Elasticsearch, prefix: str) -> None:
    """Delete the indices and index templates of ``prefix`` (deletes need names, not wildcards)."""
    from rtcrypto.search.indices import INDEX_SPECS

    found = client.indices.get(index=f"{prefix}-*", expand_wildcards="all", allow_no_indices=True)
    if found.body:
        client.indices.delete(index=",".join(sorted(found.body)))
    for spec in INDEX_SPECS.values():
        client.options(ignore_status=404).indices.delete_index_template(
            name=spec.template_name(prefix)
        )
