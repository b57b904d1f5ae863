"""Backtest core: the trader's decision path (``trading.account``) run over minute bars.

Inputs are per-minute arrays: ``prices`` (the execution reference, USD per BTC; the bar's close
is the natural choice) and ``sides`` (+1 buy, -1 sell, 0 no forecast), optionally ``ts_ms``
(epoch milliseconds, UTC) to skip gaps when scoring. Each minute goes through the same functions
as the trader: ``strategy.decide_order`` on the account's balances, then ``trading.orders``
(``price_intent`` sizing from the top of the book, ``risk.check_order`` with ``config.risk``, the
paper exchange's IOC fill and fee). The bar stands in for the book: bid and ask are the price
minus / plus an optional half-spread, with unlimited size; the risk gate's clock is the bar's time.

History has no order book, so the liquidity gate is always off here; every report says so.
(``trading.record_backtest`` runs the same path on a streaming run's liquidity records and quotes.)

Speed: ``decide_order``'s answer depends only on (side, balances), because the liquidity ratio is
constant (None) in a bar backtest. Within a run of equal sides, once it answers None it answers
None until the side changes, since nothing it reads changes (balances change only by a fill).
``simulate`` therefore steps minute by minute from each side change only while the strategy
wants an order. An order the sizing or the risk gate refuses depends on the price and the clock,
so those minutes are stepped too, except after a daily-loss refusal: in a run of buys nothing
sells, so today's realised P&L stays and the refusal holds until the next UTC day, where the
loop jumps. The orders are identical to stepping every minute (``per_minute=True``; tests
compare both on real data).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from rtcrypto.trading.account import SimulatedAccount
from rtcrypto.trading.ledger import Fill, RoundTrip, equity_curve
from rtcrypto.trading.order_types import TopOfBook
from rtcrypto.trading.risk import RiskLimits
from rtcrypto.trading.strategy import Balances, Side, StrategyParams

if TYPE_CHECKING:
    from rtcrypto.config import Settings

BUY, SELL, NO_FORECAST = 1, -1, 0
MINUTE_MS = 60_000
DAY_MS = 86_400_000
HUNDRED = Decimal(100)
NO_LIQUIDITY_GATE_NOTE = (
    "no liquidity gate applied: minute-bar history has no order book, so buys ignore the "
    "ask/bid ratio rule that the live trader applies"
)
UNLIMITED_BTC = Decimal(10) ** 12  # a bar's book has no size limit
# Index with side code + 1: -1 -> sell, 0 -> no forecast, +1 -> buy.
_SIDE_BY_CODE = np.array([Side.sell, None, Side.buy], dtype=object)


def default_risk_limits() -> RiskLimits:
    """The risk limits of ``Settings``' defaults (``RTC_RISK_*`` unset)."""
    from rtcrypto.config import Settings

    fields = Settings.model_fields
    return RiskLimits(
        max_position_btc=fields["risk_max_position_btc"].default,
        max_order_notional_usd=fields["risk_max_order_notional_usd"].default,
        max_daily_loss_usd=fields["risk_max_daily_loss_usd"].default,
        max_orders_per_minute=fields["risk_max_orders_per_minute"].default,
    )


@dataclass(frozen=True)
class BacktestConfig:
    """Money and rules of a backtest; fees in percent of the notional."""

    initial_usd: Decimal = Decimal("10000")
    taker_fee_pct: Decimal = Decimal("0.25")
    half_spread_pct: Decimal = Decimal("0")  # buys fill this much above the price, sells below
    strategy: StrategyParams = field(default_factory=lambda: StrategyParams(liquidity_gate=False))
    risk: RiskLimits = field(default_factory=default_risk_limits)  # the trader's risk gate
    random_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    # Chance per minute that a random side flips; None matches the tested sides' turnover, so
    # the baseline pays about the same fees and only the timing is random. 0.5 is a fair coin.
    random_flip_probability: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> BacktestConfig:
        """Fee, strategy and risk knobs from ``RTC_TAKER_FEE_PCT``, ``RTC_TRADE_PCT``,
        ``RTC_RISK_*``; liquidity gate off."""
        values: dict[str, Any] = {
            "taker_fee_pct": settings.taker_fee_pct,
            "strategy": StrategyParams.from_settings(settings, liquidity_gate=False),
            "risk": RiskLimits.from_settings(settings),
        }
        return cls(**{**values, **overrides})

    def __post_init__(self) -> None:
        if self.strategy.liquidity_gate:
            raise ValueError(
                "backtests run on minute bars without an order book: "
                "use StrategyParams(liquidity_gate=False)"
            )
        if self.initial_usd <= 0:
            raise ValueError(f"initial_usd must be > 0, got {self.initial_usd}")
        flip = self.random_flip_probability
        if flip is not None and not 0.0 <= flip <= 1.0:
            raise ValueError(f"random_flip_probability must be in [0, 1], got {flip}")
        if not Decimal(0) <= self.half_spread_pct < HUNDRED:
            raise ValueError(f"half_spread_pct must be in [0, 100), got {self.half_spread_pct}")


@dataclass(frozen=True)
class RunResult:
    """One pass of the strategy over the minutes."""

    fills: tuple[Fill, ...]
    fill_minutes: npt.NDArray[np.int64]  # index of the minute of each fill
    round_trips: tuple[RoundTrip, ...]
    initial: Balances
    final: Balances
    final_equity_usd: Decimal  # USD + BTC sold at the last price, exit fee deducted
    fees_usd: Decimal
    equity: npt.NDArray[np.float64]  # mark-to-market per minute (USD, for charts)
    strategy_calls: int

    @property
    def pnl_usd(self) -> Decimal:
        return self.final_equity_usd - self.initial.usd

    @property
    def return_pct(self) -> float:
        return float(self.pnl_usd / self.initial.usd * HUNDRED)

    @property
    def trades(self) -> int:
        return len(self.fills)

    @property
    def max_drawdown_pct(self) -> float:
        return max_drawdown_pct(self.equity)


@dataclass(frozen=True)
class HitRate:
    """How often the side matched the sign of the next minute's price change."""

    hits: int
    scored: int  # minutes with a side, a next minute one minute later, and a price change
    flat: int  # skipped: the price did not change
    gaps: int  # skipped: the next bar is not the next minute

    @property
    def rate(self) -> float | None:
        return self.hits / self.scored if self.scored else None


@dataclass(frozen=True)
class RunSummary:
    return_pct: float
    pnl_usd: Decimal
    final_equity_usd: Decimal
    fees_usd: Decimal
    trades: int
    round_trips: int
    winning_round_trips: int
    max_drawdown_pct: float
    open_at_end: bool  # BTC held at the end: valued as if sold at the last price, fee deducted

    @classmethod
    def of(cls, run: RunResult) -> RunSummary:
        return cls(
            return_pct=run.return_pct,
            pnl_usd=run.pnl_usd,
            final_equity_usd=run.final_equity_usd,
            fees_usd=run.fees_usd,
            trades=run.trades,
            round_trips=len(run.round_trips),
            winning_round_trips=sum(1 for trip in run.round_trips if trip.pnl_usd > 0),
            max_drawdown_pct=run.max_drawdown_pct,
            open_at_end=run.final.btc > 0,
        )


@dataclass(frozen=True)
class BaselineSummary:
    """Random sides through the same strategy and fees, one run per seed."""

    seeds: tuple[int, ...]
    flip_probability: float  # chance per minute that the random side flips
    return_pct_mean: float
    return_pct_stdev: float
    return_pct_min: float
    return_pct_max: float
    hit_rate_mean: float | None
    trades_mean: float


@dataclass(frozen=True)
class BacktestReport:
    minutes: int
    first_ts_ms: int | None
    last_ts_ms: int | None
    hit_rate: HitRate
    strategy: RunSummary
    buy_and_hold: RunSummary
    random_baseline: BaselineSummary
    taker_fee_pct: Decimal
    half_spread_pct: Decimal
    liquidity_gate_applied: bool = False
    notes: tuple[str, ...] = (NO_LIQUIDITY_GATE_NOTE,)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (Decimals as strings)."""

        def plain(value: Any) -> Any:
            if isinstance(value, Decimal):
                return str(value)
            if hasattr(value, "__dataclass_fields__"):
                return {name: plain(getattr(value, name)) for name in value.__dataclass_fields__}
            if isinstance(value, tuple):
                return [plain(item) for item in value]
            return value

        document = plain(self)
        document["hit_rate"]["rate"] = self.hit_rate.rate
        return document

    def lines(self) -> list[str]:
        """The report as short human-readable lines."""
        rate = self.hit_rate.rate
        baseline = self.random_baseline

        def run_line(label: str, run: RunSummary) -> str:
            return (
                f"  {label:<13} {run.return_pct:+8.3f} %  P&L {run.pnl_usd:+,.2f} USD  "
                f"fees {run.fees_usd:,.2f}  trades {run.trades:,}  "
                f"max drawdown {run.max_drawdown_pct:.2f} %"
            )

        return [
            f"backtest over {self.minutes:,} minutes, {_iso(self.first_ts_ms)} .. "
            f"{_iso(self.last_ts_ms)}, taker fee {self.taker_fee_pct} %, "
            f"half-spread {self.half_spread_pct} %",
            f"  hit rate      {'-' if rate is None else f'{rate:.4f}'} "
            f"({self.hit_rate.hits:,} of {self.hit_rate.scored:,} scored minutes; "
            f"{self.hit_rate.flat:,} flat and {self.hit_rate.gaps:,} before a gap skipped)",
            run_line("strategy", self.strategy),
            run_line("buy and hold", self.buy_and_hold),
            f"  random sides  {baseline.return_pct_mean:+8.3f} % mean, "
            f"stdev {baseline.return_pct_stdev:.3f}, range {baseline.return_pct_min:+.3f} .. "
            f"{baseline.return_pct_max:+.3f} over seeds {list(baseline.seeds)}; "
            f"flip chance {baseline.flip_probability:.4f}/minute, "
            f"{baseline.trades_mean:,.0f} trades on average",
            *(f"  note: {note}" for note in self.notes),
        ]


def _iso(ts_ms: int | None) -> str:
    if ts_ms is None:
        return "-"
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


# --- the engine ---------------------------------------------------------------------------------


def _side_codes(sides: npt.ArrayLike, minutes: int) -> npt.NDArray[np.int8]:
    codes = np.asarray(sides, dtype=np.int8)
    if codes.shape != (minutes,):
        raise ValueError(f"need one side per minute: {codes.shape} sides for {minutes} prices")
    if not np.isin(codes, (BUY, SELL, NO_FORECAST)).all():
        raise ValueError("sides must be +1 (buy), -1 (sell) or 0 (no forecast)")
    return codes


def _decimal(price: float) -> Decimal:
    return Decimal(repr(price))  # the shortest repr: 51827.72, not its binary expansion


def simulate(
    prices: npt.ArrayLike,
    sides: npt.ArrayLike,
    config: BacktestConfig | None = None,
    *,
    ts_ms: npt.ArrayLike | None = None,
    per_minute: bool = False,
) -> RunResult:
    """Run the strategy and ledger over the minutes; ``per_minute`` calls it at every minute.

    The default path calls it at side changes only, with identical fills (see the module doc).
    """
    config = config or BacktestConfig()
    price_array = np.asarray(prices, dtype=np.float64)
    if price_array.ndim != 1 or not (np.isfinite(price_array).all() and (price_array > 0).all()):
        raise ValueError("prices must be a 1-D array of finite prices > 0")
    minutes = len(price_array)
    codes = _side_codes(sides, minutes)
    times = (
        np.asarray(ts_ms, dtype=np.int64) if ts_ms is not None else np.arange(minutes) * MINUTE_MS
    )
    if times.shape != (minutes,):
        raise ValueError(f"need one timestamp per minute: {times.shape} for {minutes} prices")
    account = SimulatedAccount(
        config.initial_usd,
        params=config.strategy,
        limits=config.risk,
        taker_fee_pct=config.taker_fee_pct,
    )
    ledger = account.ledger
    spread = config.half_spread_pct / HUNDRED
    fill_minutes: list[int] = []

    # After a daily-loss refusal nothing changes until the next UTC day (no sell in a buy run),
    # so the fast path may jump there; only on increasing times.
    increasing = bool(np.all(np.diff(times) > 0))

    def step(minute: int, side: Side | None) -> int | None:
        """The trader's path for one minute; the next minute to look at, None for no intent."""
        intent = account.decide(side, None)
        if intent is None:
            return None
        price = _decimal(float(price_array[minute]))
        now_ms = int(times[minute])
        book = TopOfBook(
            "btcusd",
            price * (1 - spread),
            UNLIMITED_BTC,
            price * (1 + spread),
            UNLIMITED_BTC,
            now_ms,
        )
        execution = account.execute(intent, book, client_order_id=f"bt-{minute}", now_ms=now_ms)
        if execution.fill is not None:
            fill_minutes.append(minute)
        if execution.risk_rule == "daily_loss" and increasing:
            next_day_ms = now_ms - now_ms % DAY_MS + DAY_MS
            return max(minute + 1, int(np.searchsorted(times, next_day_ms)))
        return minute + 1

    calls = 0
    if per_minute:
        for index, side in enumerate(_SIDE_BY_CODE[codes + 1].tolist()):
            step(index, side)
        calls = minutes
    elif minutes:
        starts = np.concatenate(([0], np.flatnonzero(codes[1:] != codes[:-1]) + 1))
        ends = np.concatenate((starts[1:], [minutes]))
        run_sides = _SIDE_BY_CODE[codes[starts] + 1].tolist()
        for start, end, side in zip(starts.tolist(), ends.tolist(), run_sides, strict=True):
            # Step on only while the strategy wants an order: after a None nothing it reads changes.
            next_minute: int | None = start
            while next_minute is not None and next_minute < end:
                calls += 1
                next_minute = step(next_minute, side)

    last_price = _decimal(float(price_array[-1])) if minutes else Decimal(0)
    return RunResult(
        fills=tuple(ledger.fills),
        fill_minutes=np.asarray(fill_minutes, dtype=np.int64),
        round_trips=tuple(ledger.round_trips),
        initial=ledger.initial,
        final=ledger.balances,
        final_equity_usd=ledger.equity_usd(last_price * (1 - spread), after_exit_fee=True),
        fees_usd=ledger.fees_paid_usd,
        equity=equity_curve(ledger.fills, fill_minutes, price_array, ledger.initial),
        strategy_calls=calls,
    )


# --- metrics ------------------------------------------------------------------------------------


def directional_hit_rate(
    prices: npt.ArrayLike, sides: npt.ArrayLike, ts_ms: npt.ArrayLike | None = None
) -> HitRate:
    """Minutes whose side matches the sign of the move to the next minute's price.

    Skipped: the last minute, minutes without a side, flat moves, and (with ``ts_ms``) minutes
    whose next bar is not exactly one minute later.
    """
    price_array = np.asarray(prices, dtype=np.float64)
    codes = _side_codes(sides, len(price_array))
    if len(price_array) < 2:
        return HitRate(hits=0, scored=0, flat=0, gaps=0)
    move = np.sign(np.diff(price_array))
    side = codes[:-1]
    if ts_ms is None:
        contiguous = np.ones(len(move), dtype=bool)
    else:
        times = np.asarray(ts_ms, dtype=np.int64)
        if times.shape != price_array.shape:
            raise ValueError(
                f"need one timestamp per minute: {times.shape} for {price_array.shape}"
            )
        contiguous = np.diff(times) == MINUTE_MS
    candidate = side != NO_FORECAST
    scored = candidate & contiguous & (move != 0)
    return HitRate(
        hits=int((scored & (move == side)).sum()),
        scored=int(scored.sum()),
        flat=int((candidate & contiguous & (move == 0)).sum()),
        gaps=int((candidate & ~contiguous).sum()),
    )


def max_drawdown_pct(equity: npt.ArrayLike) -> float:
    """Largest fall from a running peak, in percent of that peak (0 for an empty curve)."""
    curve = np.asarray(equity, dtype=np.float64)
    if len(curve) == 0:
        return 0.0
    peak = np.maximum.accumulate(curve)
    return float(((peak - curve) / peak).max() * 100.0)


def random_sides(minutes: int, seed: int, flip_probability: float = 0.5) -> npt.NDArray[np.int8]:
    """Random +1 (buy) / -1 (sell) per minute, reproducible from ``seed``.

    The first side is a fair coin; each later minute flips with ``flip_probability`` (0.5 makes
    every minute an independent coin).
    """
    rng = np.random.default_rng(seed)
    first = BUY if rng.random() < 0.5 else SELL
    flips = np.concatenate(([0], np.cumsum(rng.random(max(minutes - 1, 0)) < flip_probability)))
    return np.where(flips[:minutes] % 2 == 0, first, -first).astype(np.int8)


def side_flip_rate(sides: npt.ArrayLike) -> float:
    """Fraction of minute-to-minute steps where the side changes (0 for fewer than 2 minutes)."""
    codes = np.asarray(sides, dtype=np.int8)
    if len(codes) < 2:
        return 0.0
    return float(np.count_nonzero(codes[1:] != codes[:-1]) / (len(codes) - 1))


def random_baseline(
    prices: npt.ArrayLike,
    config: BacktestConfig,
    ts_ms: npt.ArrayLike | None = None,
    *,
    flip_probability: float = 0.5,
    seeds: Sequence[int] | None = None,
) -> BaselineSummary:
    """Random sides through the same strategy and fees, one run per seed; mean and spread."""
    chosen = tuple(config.random_seeds if seeds is None else seeds)
    if not chosen:
        raise ValueError("the random baseline needs at least one seed")
    price_array = np.asarray(prices, dtype=np.float64)
    returns, hit_rates, trades = [], [], []
    for seed in chosen:
        sides = random_sides(len(price_array), seed, flip_probability)
        run = simulate(price_array, sides, config, ts_ms=ts_ms)
        returns.append(run.return_pct)
        trades.append(run.trades)
        rate = directional_hit_rate(price_array, sides, ts_ms).rate
        if rate is not None:
            hit_rates.append(rate)
    return BaselineSummary(
        seeds=chosen,
        flip_probability=flip_probability,
        return_pct_mean=statistics.fmean(returns),
        return_pct_stdev=statistics.stdev(returns) if len(returns) > 1 else 0.0,
        return_pct_min=min(returns),
        return_pct_max=max(returns),
        hit_rate_mean=statistics.fmean(hit_rates) if hit_rates else None,
        trades_mean=statistics.fmean(trades),
    )


def run_backtest(
    prices: npt.ArrayLike,
    sides: npt.ArrayLike,
    config: BacktestConfig | None = None,
    *,
    ts_ms: npt.ArrayLike | None = None,
) -> BacktestReport:
    """Hit rate, strategy P&L after fees, buy-and-hold and the random baseline on the same minutes.

    Buy-and-hold is the same strategy with a buy side at every minute: it buys ``trade_pct`` of
    the USD at the first minute and holds; like the strategy, an open position is valued as sold
    at the last price with the exit fee. The random baseline flips its side as often as ``sides``
    do unless ``config.random_flip_probability`` says otherwise.
    """
    config = config or BacktestConfig()
    price_array = np.asarray(prices, dtype=np.float64)
    minutes = len(price_array)
    times = None if ts_ms is None else np.asarray(ts_ms, dtype=np.int64)
    strategy_run = simulate(price_array, sides, config, ts_ms=times)
    flip = config.random_flip_probability
    if flip is None:
        flip = side_flip_rate(sides)
    hold_run = simulate(price_array, np.full(minutes, BUY, dtype=np.int8), config, ts_ms=times)
    return BacktestReport(
        minutes=minutes,
        first_ts_ms=int(times[0]) if times is not None and minutes else None,
        last_ts_ms=int(times[-1]) if times is not None and minutes else None,
        hit_rate=directional_hit_rate(price_array, sides, times),
        strategy=RunSummary.of(strategy_run),
        buy_and_hold=RunSummary.of(hold_run),
        random_baseline=random_baseline(price_array, config, times, flip_probability=flip),
        taker_fee_pct=config.taker_fee_pct,
        half_spread_pct=config.half_spread_pct,
    )
