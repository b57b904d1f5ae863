"""The trader's decision loop for one liquidity record, with its exchange, journal and recorder.

``Trader.on_liquidity`` is called once per ``liquidity.minute.v1`` record of the traded symbol:

1. skip a record older than ``max_record_age_ms`` on the feed clock (``clock_ms``: the simulator's
   time with the simulator feed, see :mod:`rtcrypto.exchange.feedclock`; a backlog is not traded);
2. look up the forecast side of the decision minute (the record's window end, moved back by the
   feed's clock offset: the simulator replays an old capture shifted to now);
3. balances from the exchange -> ``decide_order`` (the one strategy, shared with the backtester);
4. deterministic ``client_order_id`` (forecast version, minute, side): an id the journal already
   has is never sent again;
5. price it from the top of the book, pass the risk gate (``trading.orders.size_order``, the
   same functions the backtests use);
6. journal ``sent`` (fsync) -> exchange -> journal ``result`` -> ledger -> recorder.

``reconcile`` runs once at start: every pending order is looked up on the exchange by its
``client_order_id`` (cancelled if still live) and recorded, or marked abandoned; then every
journaled order, fill and score is re-sent to the recorder (idempotent ids: no duplicates).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd

from rtcrypto.bounded import BoundsError, decimal_text, finite_float, loads, safe_int
from rtcrypto.exchange.base import (
    AuthenticationError,
    ExchangeAdapter,
    ExchangeError,
    ExchangeUnavailableError,
    InsufficientFundsError,
    OrderNotFoundError,
    OrderRejectedError,
    OrderStatus,
    RateLimitError,
)
from rtcrypto.market.schemas import LiquidityMinute, checked_values
from rtcrypto.trader.fill_reconcile import reconcile_fills
from rtcrypto.trader.forecasts import ForecastSource
from rtcrypto.trader.journal import OrderJournal, SentOrder
from rtcrypto.trader.recorder import TradeContext, TradeRecorder
from rtcrypto.trading.ledger import Ledger
from rtcrypto.trading.order_types import OrderRequest
from rtcrypto.trading.orders import price_intent, risk_state_for, size_order
from rtcrypto.trading.risk import RiskLimits, RiskState
from rtcrypto.trading.strategy import Balances, Side, StrategyParams, decide_order

log = logging.getLogger(__name__)

__all__ = [
    "LiquidityReading",
    "MalformedRecordError",
    "Outcome",
    "Trader",
    "parse_liquidity",
    "parse_liquidity_bytes",
    "price_intent",
]

HUNDRED = Decimal(100)
FORECAST_INDEX_BEFORE_MS = 3_600_000  # forecast minutes indexed around now: 1 h back,
FORECAST_INDEX_AFTER_MS = 86_400_000  # one day ahead


MAX_RECORD_BYTES = 64 * 1024  # a liquidity record is about 500 bytes
MAX_SYMBOL_CHARS = 32
# the last epoch millisecond pandas can hold (2262-04-11): forecasts are looked up with pandas
MAX_WINDOW_MS = int(pd.Timestamp.max.value // 1_000_000)


class MalformedRecordError(ValueError):
    """A liquidity record the trader cannot use; it goes to the dead-letter topic."""


@dataclass(frozen=True, slots=True)
class LiquidityReading:
    """The fields of a ``liquidity.minute.v1`` record the trader uses.

    ``values`` holds every field of the contract (``rtcrypto.market.schemas.LiquidityMinute``)
    the record carried, checked against its type; ``record`` is the decoded record as received.
    """

    symbol: str
    window_start_ms: int
    window_end_ms: int
    liquidity_ratio: float | None
    record: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)


# The contract's fields the trader needs and bounds itself (the rest: ``checked_values``).
TRADER_FIELDS = ("symbol", "window_start_ms", "window_end_ms", "liquidity_ratio")


def parse_liquidity(record: Any, contract: type = LiquidityMinute) -> LiquidityReading:
    """Validate a decoded ``liquidity.minute.v1`` record against ``contract``; raises
    ``MalformedRecordError`` with the reason (window bounds are integers in [0,
    ``MAX_WINDOW_MS``]: no infinity, no 2^63; every other field of the contract that the record
    carries must have the contract's type)."""
    if not isinstance(record, dict):
        raise MalformedRecordError("not a JSON object")
    try:
        symbol = record["symbol"]
        if not isinstance(symbol, str) or not 0 < len(symbol) <= MAX_SYMBOL_CHARS:
            raise BoundsError(f"symbol is not a short string: {str(symbol)[:MAX_SYMBOL_CHARS]!r}")
        start = safe_int(record["window_start_ms"], "window_start_ms", high=MAX_WINDOW_MS)
        end = safe_int(record["window_end_ms"], "window_end_ms", high=MAX_WINDOW_MS)
    except KeyError as error:
        raise MalformedRecordError(f"missing field {error}") from None
    except BoundsError as error:
        raise MalformedRecordError(f"bad symbol/window bounds: {error}") from None
    if end <= start:
        raise MalformedRecordError(f"window_end_ms {end} is not after window_start_ms {start}")
    ratio = _liquidity_ratio(record.get("liquidity_ratio"))
    try:
        values = checked_values(record, contract, skip=TRADER_FIELDS)
    except BoundsError as error:
        raise MalformedRecordError(str(error)) from None
    values.update(symbol=symbol, window_start_ms=start, window_end_ms=end, liquidity_ratio=ratio)
    return LiquidityReading(symbol.upper(), start, end, ratio, record, values)


def _liquidity_ratio(value: Any) -> float | None:
    """A finite ratio, or None (absent, or a non-finite float handed in by a Python caller)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    try:
        if isinstance(value, str):
            return float(decimal_text(value, "liquidity_ratio"))
        return finite_float(value, "liquidity_ratio")
    except BoundsError as error:
        raise MalformedRecordError(str(error)) from None


def parse_liquidity_bytes(
    value: bytes | None, contract: type = LiquidityMinute
) -> LiquidityReading:
    """A Kafka record's value decoded with bounded JSON (size, nesting, no NaN/Infinity) and
    validated; raises ``MalformedRecordError`` with the reason for the dead letter."""
    try:
        record = loads(value or b"", max_bytes=MAX_RECORD_BYTES)
    except BoundsError as error:
        raise MalformedRecordError(str(error)) from None
    return parse_liquidity(record, contract)


REFUSALS = (
    OrderRejectedError,
    InsufficientFundsError,
    AuthenticationError,
    RateLimitError,
    OrderNotFoundError,
)


def order_refused(error: ExchangeError) -> bool:
    """True when the exchange refused the order outright (nothing was traded: a 4xx answer or
    the paper exchange's refusal); anything else (5xx, no answer, a 2xx whose body could not be
    read) may have created it, so it stays pending."""
    if isinstance(error, ExchangeUnavailableError):
        return False
    return isinstance(error, REFUSALS) or (error.status is not None and 400 <= error.status < 500)


def client_order_id(forecast_version: str, minute_ms: int, side: Side) -> str:
    """Deterministic: the same decision always gets the same id, so it is never sent twice."""
    return f"rtc-{forecast_version}-{minute_ms}-{side.value}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one record led to: ``action`` is ``order`` or ``skip``; ``reason`` says why."""

    action: str
    reason: str
    client_order_id: str | None = None
    status: OrderStatus | None = None


class Trader:
    """Wires strategy, risk gate, exchange, journal, ledger and recorder for one symbol."""

    def __init__(
        self,
        *,
        exchange: ExchangeAdapter,
        journal: OrderJournal,
        forecasts: ForecastSource,
        recorder: TradeRecorder,
        params: StrategyParams,
        limits: RiskLimits,
        symbol: str,
        mode: str,
        taker_fee_pct: Decimal,
        clock_ms: Callable[[], int],
        kill_switch: Callable[[], bool] = lambda: False,
        forecast_offset_ms: int = 0,
        max_record_age_ms: int | None = None,
        after_send: Callable[[OrderStatus], None] | None = None,
    ) -> None:
        self.exchange = exchange
        self.journal = journal
        self.forecasts = forecasts
        self.recorder = recorder
        self.params = params
        self.limits = limits
        self.symbol = symbol.upper()
        self.mode = mode
        self.fee_rate = Decimal(taker_fee_pct) / HUNDRED
        self.clock_ms = clock_ms
        self.kill_switch = kill_switch
        self.forecast_offset_ms = forecast_offset_ms
        self.max_record_age_ms = max_record_age_ms
        self._after_send = after_send  # fault injection in tests: crash between send and record
        self.ledger: Ledger | None = None
        self.processed = 0
        self.orders_sent = 0
        self.last_event_ms: int | None = None
        self.last_error: str | None = None
        self._forecast_indexed_until_ms: int | None = None  # on the forecast's clock

    # --- start-up ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Open or rebuild the ledger from the journal and reconcile with the exchange."""
        if self.journal.state.opened is None:
            balances = self.exchange.balances()
            self.journal.open_account(
                balances.get("usd", Decimal(0)),
                balances.get("btc", Decimal(0)),
                self.mode,
                self.clock_ms(),
            )
        self._rebuild_ledger()
        if self.forecasts.refresh(force=True):
            self._record_forecast()
        self.reconcile()

    def _rebuild_ledger(self) -> None:
        """The ledger from the journal: its opening balances and every result, each once."""
        opened = self.journal.state.opened
        assert opened is not None
        self.ledger = Ledger(
            Decimal(opened["usd"]),
            Decimal(opened["btc"]),
            taker_fee_pct=self.fee_rate * HUNDRED,
        )
        for cid, status in self.journal.state.results.items():
            self._book_fill(status, cid, record=False)

    def reconcile(self) -> None:
        """Resolve pending orders with the exchange, make the journal's fills agree with the
        exchange's trades (``mytrades``, when the exchange lists them: the ledger is rebuilt if
        any changed), then re-send every record to the recorder."""
        self.resolve_pending()
        if reconcile_fills(self.exchange, self.journal, self.symbol):
            self._rebuild_ledger()
        self._replay_to_recorder()
        self._compare_balances()

    def resolve_pending(self, *, record: bool = False) -> None:
        """Ask the exchange for every order sent but not recorded (crash, timeout, an answer
        that could not be read); ``record`` also reports what is found to the recorder (while
        running; at start the journal's replay does)."""
        for sent in self.journal.state.pending():
            cid = sent.request.client_order_id
            status = self.exchange.order_status(cid)
            if status is not None and status.is_live:
                status = self.exchange.cancel_order(status.order_id)
            if status is None and cid in self.journal.state.acknowledged:
                log.warning(  # it answered 2xx: the order exists; never abandon it
                    "reconcile client_order_id=%s: acknowledged by the exchange but not found "
                    "yet; still pending",
                    cid,
                )
                continue
            if status is None:
                self.journal.record_abandoned(cid, "not on the exchange after a restart")
                log.warning("reconcile client_order_id=%s: never reached the exchange", cid)
                continue
            self.journal.record_result(status, cid)
            context = TradeContext(self.mode, sent.forecast_version, sent.minute_ms)
            if record:
                self.recorder.order(sent.request, status, context)
            self._book_fill(status, cid, record=record, context=context)
            log.warning(
                "reconcile client_order_id=%s: recovered from the exchange, executed=%s",
                cid,
                status.executed_quantity,
            )

    def _compare_balances(self) -> None:
        exchange = self.exchange.balances()
        ledger = self.ledger.balances if self.ledger else None
        if ledger is not None and (
            exchange.get("btc", Decimal(0)) != ledger.btc
            or exchange.get("usd", Decimal(0)) != ledger.usd
        ):
            log.warning(
                "reconcile balances differ: exchange usd=%s btc=%s, ledger usd=%s btc=%s "
                "(the exchange's are used for sizing)",
                exchange.get("usd"),
                exchange.get("btc"),
                ledger.usd,
                ledger.btc,
            )

    def _replay_to_recorder(self) -> None:
        replay = Ledger(self.ledger.initial.usd, self.ledger.initial.btc) if self.ledger else None
        if replay is None:
            return
        replay.fee_rate = self.fee_rate
        for cid, status in self.journal.state.results.items():
            sent = self.journal.state.sent.get(cid)
            if sent is None:
                continue
            context = TradeContext(self.mode, sent.forecast_version, sent.minute_ms)
            self.recorder.order(sent.request, status, context)
            if status.executed_quantity > 0:
                trips_before = len(replay.round_trips)
                fill = replay.record(
                    status.side,
                    status.average_execution_price,
                    status.executed_quantity,
                    status.fee_usd,
                    status.ts_ms,
                )
                self.recorder.fill(fill, status, context)
                if len(replay.round_trips) > trips_before:
                    self.recorder.score(replay.round_trips[-1], status, context)

    # --- the loop ---------------------------------------------------------------------------------
    def on_liquidity(self, reading: LiquidityReading) -> Outcome:
        """Decide and act on one record of the traded symbol."""
        self.processed += 1
        self.last_event_ms = reading.window_end_ms
        self.recorder.liquidity(reading.record)
        now = self.clock_ms()
        if (
            self.max_record_age_ms is not None
            and now - reading.window_end_ms > self.max_record_age_ms
        ):
            return Outcome(
                "skip",
                f"stale record: window ended {(now - reading.window_end_ms) / 1000:.0f} s ago",
            )
        if self.journal.state.pending():
            try:
                self.resolve_pending(record=True)
            except ExchangeError as error:
                return Outcome("skip", f"an earlier order is still unresolved: {error}")
        if self.forecasts.refresh() or self._forecast_index_due(now):
            self._record_forecast()
        version = self.forecasts.version
        if version is None:
            return Outcome("skip", "no current forecast: publish one with `rtc forecast publish`")
        minute_ms = reading.window_end_ms
        side = self.forecasts.side_at(minute_ms - self.forecast_offset_ms)
        if side is None:
            return Outcome("skip", f"forecast {version} does not cover this minute")
        exchange_balances = self.exchange.balances()
        balances = Balances(
            usd=exchange_balances.get("usd", Decimal(0)),
            btc=exchange_balances.get("btc", Decimal(0)),
        )
        intent = decide_order(side, balances, reading.liquidity_ratio, self.params)
        if intent is None:
            return Outcome(
                "skip", f"strategy: no order (forecast {side}, ratio {reading.liquidity_ratio})"
            )
        cid = client_order_id(version, minute_ms, intent.side)
        if self.journal.knows(cid):
            return Outcome("skip", "already sent this minute's order", cid)
        book = self.exchange.top_of_book(self.symbol)
        self.recorder.ticker(book)
        verdict = size_order(
            intent,
            book,
            fee_rate=self.fee_rate,
            client_order_id=cid,
            symbol=self.symbol,
            risk_state=self._risk_state(balances, now),
            limits=self.limits,
            now_ms=now,
            rules=self.exchange.order_rules(self.symbol),  # increments, minimum size
        )
        if verdict.order is None:
            if verdict.refused_by_risk:
                log.warning("risk gate refused client_order_id=%s: %s", cid, verdict.reason)
            return Outcome("skip", verdict.reason, cid)
        return self._send(verdict.order, version, minute_ms, now)

    def _record_forecast(self) -> None:
        """Index the new forecast's next day (on the feed's clock) for the price chart."""
        current = self.forecasts.current
        if current is None:
            return
        now_ms = self.clock_ms() - self.forecast_offset_ms
        ds_ms = current.minutes_ms
        window = (ds_ms >= now_ms - FORECAST_INDEX_BEFORE_MS) & (
            ds_ms < now_ms + FORECAST_INDEX_AFTER_MS
        )
        frame = current.frame.iloc[window.nonzero()[0]] if window.any() else current.frame.iloc[:0]
        self.recorder.forecast(current.version, frame, self.forecast_offset_ms)
        self._forecast_indexed_until_ms = now_ms + FORECAST_INDEX_AFTER_MS

    def _forecast_index_due(self, now_ms: int) -> bool:
        """Half of the indexed forecast day has passed on the feed clock: index the next one (a
        replay at 60x passes a day in 24 minutes; the documents' ids make overlaps harmless)."""
        until = self._forecast_indexed_until_ms
        if until is None:
            return False
        return now_ms - self.forecast_offset_ms >= until - FORECAST_INDEX_AFTER_MS // 2

    def _risk_state(self, balances: Balances, now_ms: int) -> RiskState:
        return risk_state_for(
            balances.btc,
            self.ledger.round_trips if self.ledger is not None else (),
            self.journal.send_times_ms(),
            self.limits,
            now_ms,
            kill_switch=self.kill_switch(),
        )

    def _send(self, order: OrderRequest, version: str, minute_ms: int, now: int) -> Outcome:
        cid = order.client_order_id
        self.journal.record_sent(SentOrder(order, version, minute_ms, now))
        try:
            status = self.exchange.place_order(order)
        except ExchangeUnavailableError as error:
            self.last_error = str(error)
            self._acknowledge_if_2xx(cid, error)
            log.error(
                "order client_order_id=%s: exchange unavailable, pending until reconciled: %s",
                cid,
                error,
            )
            return Outcome("skip", f"exchange unavailable: {error}", cid)
        except ExchangeError as error:
            self.last_error = str(error)
            if not order_refused(error):  # the order may exist: reconcile it, never abandon it
                self._acknowledge_if_2xx(cid, error)
                log.error(
                    "order client_order_id=%s: outcome unknown, pending until reconciled: %s",
                    cid,
                    error,
                )
                return Outcome("skip", f"outcome unknown: {error}", cid)
            self.journal.record_abandoned(cid, f"{type(error).__name__}: {error}")
            log.error("order client_order_id=%s refused: %s", cid, error)
            return Outcome("skip", f"refused: {error}", cid)
        if self._after_send is not None:
            self._after_send(status)
        self.journal.record_result(status, cid)
        self.orders_sent += 1
        context = TradeContext(self.mode, version, minute_ms)
        self.recorder.order(order, status, context)
        self._book_fill(status, cid, record=True, context=context)
        log.info(
            "order client_order_id=%s side=%s limit=%s executed=%s/%s avg_price=%s fee=%s",
            cid,
            order.side,
            order.limit_price,
            status.executed_quantity,
            order.quantity,
            status.average_execution_price,
            status.fee_usd,
        )
        return Outcome("order", "sent", cid, status)

    def _acknowledge_if_2xx(self, cid: str, error: ExchangeError) -> None:
        """A 2xx whose body could not be read: the order exists; the journal says so, so that
        reconciliation never abandons it even while the exchange does not list it yet."""
        if error.status is not None and 200 <= error.status < 300:
            self.journal.record_acknowledged(cid, str(error)[:500])

    def _book_fill(
        self,
        status: OrderStatus,
        cid: str,
        *,
        record: bool,
        context: TradeContext | None = None,
    ) -> None:
        if self.ledger is None or status.executed_quantity <= 0:
            return
        trips_before = len(self.ledger.round_trips)
        fill = self.ledger.record(
            status.side,
            status.average_execution_price,
            status.executed_quantity,
            status.fee_usd,
            status.ts_ms,
        )
        if not record or context is None:
            return
        self.recorder.fill(fill, status, context)
        if len(self.ledger.round_trips) > trips_before:
            trip = self.ledger.round_trips[-1]
            self.recorder.score(trip, status, context)
            log.info(
                "score client_order_id=%s pnl_usd=%s return_pct=%.4f",
                cid,
                trip.pnl_usd,
                trip.return_pct,
            )
        balances = fill.balances_after
        self.recorder.balances(balances.usd, balances.btc, status.ts_ms, self.mode)
