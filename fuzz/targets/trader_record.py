"""Fuzz target: the trader's per-record handler (``TraderService.handle``), bytes in.

The whole path a Kafka record takes up to the decision and the order: bounded JSON, the
liquidity record's validation, the forecast lookup, the strategy, sizing and the risk gate, the
journal (a temporary directory) and the paper exchange (a fixed top of book: no network).

``test_one_input`` never raises for any input (an escape is a finding). ``handle`` itself catches
everything, so the target also turns into a finding any dead letter whose reason is not a
``MalformedRecordError``: an exception nobody foresaw in the decision path is a bug even when the
service survives it. ``seed_corpus`` holds ``liquidity.minute.v1`` records computed from the real
Gemini capture in ../shared/data with the project's own liquidity math.

Run: ``python fuzz/run.py trader_record --seconds 600`` (it instruments ``rtcrypto`` and
``fuzz`` on import, then hands ``test_one_input`` to libFuzzer).
"""

from __future__ import annotations

import atexit
import json
import logging
import shutil
import tempfile
from collections import defaultdict
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from rtcrypto.config import PROJECT_ROOT, Settings
from rtcrypto.exchange.paper import PaperExchange
from rtcrypto.market.captures import BookUpdate, load_capture
from rtcrypto.market.liquidity import (
    WINDOW_MS,
    liquidity_ratio,
    price_weighted_volume,
    window_start_ms,
)
from rtcrypto.trader.engine import Trader
from rtcrypto.trader.forecasts import ForecastSides, ForecastSource
from rtcrypto.trader.journal import OrderJournal
from rtcrypto.trader.recorder import NullRecorder
from rtcrypto.trader.service import TraderService
from rtcrypto.trading.order_types import TopOfBook
from rtcrypto.trading.risk import RiskLimits
from rtcrypto.trading.strategy import StrategyParams

CAPTURE = PROJECT_ROOT.parent / "shared/data/orderbook/gemini_2021-04-17__GEMINI.ws.36.0.gz"
CAPTURE_START_MS = 1_618_677_900_000  # 2021-04-17 16:45 UTC, the capture's first minute
FORECAST_MINUTES = 240  # from an hour before the capture: the fuzzer moves window times around
EXPECTED_REASON = "MalformedRecordError: "


class DeadLetterFinding(AssertionError):
    """``handle`` dead-lettered a record for a reason other than its format."""


class _Producer:
    """Keeps the service's dead letters; drops heartbeats (nothing else is sent)."""

    def __init__(self, deadletter_topic: str) -> None:
        self.topic = deadletter_topic
        self.reasons: list[str] = []

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        if topic == self.topic:
            self.reasons.append(json.loads(value)["reason"])

    def flush(self, timeout_s: float) -> int:
        return 0

    def close(self, timeout_s: float) -> None:
        return None


def _top_of_book(symbol: str) -> TopOfBook:
    # the capture's BTCUSD top at its end (60,7xx USD), enough size for the strategy's orders
    return TopOfBook(
        symbol.lower(), Decimal("60700"), Decimal("3"), Decimal("60710"), Decimal("3"), 0
    )


@cache
def _service() -> tuple[TraderService, _Producer]:
    """A paper trader with a forecast covering the capture's hours (built once per process)."""
    folder = Path(tempfile.mkdtemp(prefix="rtc-fuzz-trader-", dir=_fast_tmp()))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    settings = Settings(home=folder / "home")
    minutes = [CAPTURE_START_MS + (i - 60) * WINDOW_MS for i in range(FORECAST_MINUTES)]
    frame = pd.DataFrame(
        {
            "ds": pd.to_datetime(minutes, unit="ms", utc=True),
            "yhat": 0.0,
            "yhat_lower": 0.0,
            "yhat_upper": 0.0,
            "side": ["buy" if i % 3 else "sell" for i in range(FORECAST_MINUTES)],
        }
    )
    forecasts = ForecastSource(folder / "forecast", 1e9, clock_s=lambda: 0.0)
    forecasts.current = ForecastSides("fuzz", frame)
    clock_ms = lambda: CAPTURE_START_MS  # noqa: E731 - the feed clock stands still
    trader = Trader(
        exchange=PaperExchange(
            folder / "paper.json", _top_of_book, usd=Decimal(100_000), clock_ms=clock_ms
        ),
        journal=OrderJournal(folder / "journal-paper.jsonl", mode="paper"),
        forecasts=forecasts,
        recorder=NullRecorder(),
        params=StrategyParams(),
        limits=RiskLimits(Decimal(10), Decimal(1_000_000), Decimal(1_000_000), 1000),
        symbol=settings.trader_symbol,
        mode="paper",
        taker_fee_pct=settings.taker_fee_pct,
        clock_ms=clock_ms,
    )
    with _quiet():
        trader.start()
    producer = _Producer(settings.topics.deadletter)
    return TraderService(settings, trader, producer, clock_ms=clock_ms), producer


def _fast_tmp() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None  # fsync on tmpfs is free


class _quiet:
    """Logging off around one input (a dead letter logs a warning each), restored after."""

    def __enter__(self) -> None:
        self.previous = logging.root.manager.disable
        logging.disable(logging.CRITICAL)

    def __exit__(self, *exc: object) -> None:
        logging.disable(self.previous)


def test_one_input(data: bytes) -> None:
    """Hand ``data`` to the trader's record handler as a Kafka record's value."""
    service, producer = _service()
    before = len(producer.reasons)
    with _quiet():
        service.handle(data, "fuzz[0]@0")
    for reason in producer.reasons[before:]:
        if not reason.startswith(EXPECTED_REASON):
            raise DeadLetterFinding(f"unforeseen failure for {data[:200]!r}: {reason}")
    del producer.reasons[:]


def seed_corpus() -> list[bytes]:
    """``liquidity.minute.v1`` records of every symbol and minute of the real Gemini capture,
    computed like the Spark job (price-weighted volume of the level changes per side and
    window, ask/bid ratio), plus a few the trader must refuse."""
    capture = load_capture(CAPTURE)
    levels: dict[tuple[str, int, str], list[tuple[float, float]]] = defaultdict(list)
    counts: dict[tuple[str, int], int] = defaultdict(int)
    for message in capture.messages:
        if not isinstance(message, BookUpdate) or message.is_snapshot:
            continue
        start = window_start_ms(message.ts_receive_ms)
        for side, price, quantity in message.changes:
            book_side = "bid" if side == "buy" else "ask"
            levels[(message.symbol, start, book_side)].append((float(price), float(quantity)))
            counts[(message.symbol, start)] += 1
    seeds = [
        json.dumps(_record(symbol, start, levels, counts[(symbol, start)])).encode()
        for symbol, start in sorted(counts)
    ]
    seeds += [
        b'{"symbol":"BTCUSD","window_start_ms":Infinity,"window_end_ms":1}',
        b'{"symbol":"BTCUSD","window_start_ms":1,"window_end_ms":18446744073709551616}',
        b'{"symbol":' + b"[" * 100 + b"]" * 100 + b"}",
    ]
    return seeds


def _record(
    symbol: str, start: int, levels: dict[tuple[str, int, str], Any], event_count: int
) -> dict[str, Any]:
    bid = price_weighted_volume(levels[(symbol, start, "bid")])
    ask = price_weighted_volume(levels[(symbol, start, "ask")])
    return {
        "schema_version": 1,
        "type": "liquidity",
        "key": f"{symbol}:{start}",
        "symbol": symbol,
        "window_start_ms": start,
        "window_end_ms": start + WINDOW_MS,
        "ts_event_ms": start + WINDOW_MS - 1,
        "bid_price_weighted_volume": bid,
        "ask_price_weighted_volume": ask,
        "liquidity_ratio": liquidity_ratio(ask, bid),
        "event_count": event_count,
    }
