"""The history replay's market model (pure): a real minute bar -> a minute of book changes and trades.

Prices are real, the book is modelled:

- **Mid path.** Within a minute the mid walks linearly through four waypoints at 0, 20, 40 and
  59 s: open, then the extreme away from the close, then the other extreme, then the close. An
  up bar (close >= open) goes open-low-high-close, a down bar open-high-low-close, so the walk
  ends moving towards the close. The mid stays at the close for the last second.
- **Trades.** A bar with volume gets ``max(4, Poisson(trades_per_s x 60))`` trades (at most
  ``MAX_TRADES_PER_MINUTE``, and never more than its volume in satoshis). Four of them sit on the
  waypoints (so the bar's open, high, low and close are traded prices and a bar rebuilt from the
  trades is the bar), the rest at uniform times on the path. Quantities are exponential weights
  apportioned in satoshis (largest remainder), each >= 1 satoshi, summing to the bar's volume
  rounded to 8 decimals. The taker buys on a rising stretch of the path and sells on a falling one.
  Trades print at the path price, inside the spread: they do not take book liquidity.
- **Book.** Levels in whole cents with sizes in satoshis, within ``band_bps`` of the mid. At a
  book message (Poisson at the calibrated message rate, each carrying a calibrated number of
  changes) the levels that the moving mid crossed, or left beyond the band, are removed first; then
  each change picks a side, a distance from the calibrated change-distance distribution, and adds
  a level there, resizes or removes the existing level nearest to it, with probabilities that hold
  the level count near the calibrated count per side. A fresh book draws its levels from the
  calibrated level-distance and size distributions. Bids stay below the mid and asks above it,
  so the book never crosses.

Randomness comes from ``numpy.random.default_rng([seed, minute number, stream])``: the same seed
gives the same stream, minute by minute, whatever the wall clock does.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rtcrypto.simulator.calibration import Calibration

MINUTE_MS = 60_000
WAYPOINT_OFFSETS_MS = (0, 20_000, 40_000, 59_000)
SATOSHIS_PER_BTC = 100_000_000
MAX_TRADES_PER_MINUTE = 1_000
STREAM_MINUTE = 0  # rng stream of a minute's events
STREAM_FRESH_BOOK = 1  # rng stream of a fresh book (start, resume, after a halt)

TakerSide = Literal["buy", "sell"]
# (is bid, price in cents, new size in satoshis (0 removes), previous size in satoshis)
LevelChange = tuple[bool, int, int, int]


@dataclass(frozen=True, slots=True)
class MinuteBar:
    """One real minute bar: ``ts_ms`` its open time (UTC ms), prices in USD, volume in BTC."""

    ts_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class PlannedTrade:
    """A trade ``offset_ms`` into its minute at ``price_cents``, ``quantity_sats`` satoshis."""

    offset_ms: int
    price_cents: int
    quantity_sats: int
    taker_side: TakerSide


@dataclass(frozen=True, slots=True)
class BookMessage:
    """One book message ``offset_ms`` into its minute: level changes in order."""

    offset_ms: int
    changes: tuple[LevelChange, ...]


MinuteEvent = BookMessage | PlannedTrade


def to_cents(price: float) -> int:
    """A USD price as whole cents (rounded to the nearest cent)."""
    return int(round(price * 100))


def to_satoshis(quantity: float) -> int:
    """A BTC quantity as whole satoshis (rounded to 8 decimals)."""
    return int(round(quantity * SATOSHIS_PER_BTC))


def cents_text(cents: int) -> str:
    """``6069602`` -> ``"60696.02"`` (prices keep two decimals, like Gemini's BTCUSD)."""
    return f"{cents // 100}.{cents % 100:02d}"


def satoshis_text(satoshis: int) -> str:
    """``20000000`` -> ``"0.2"``, ``-1`` -> ``"-0.00000001"``, ``0`` -> ``"0"``."""
    sign = "-" if satoshis < 0 else ""
    whole, fraction = divmod(abs(satoshis), SATOSHIS_PER_BTC)
    if fraction == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:08d}".rstrip("0")


def minute_rng(seed: int, ts_ms: int, stream: int) -> np.random.Generator:
    """The random generator of one minute (and stream): a pure function of seed and minute."""
    return np.random.default_rng([seed, ts_ms // MINUTE_MS, stream])


# --- mid path ----------------------------------------------------------------------------------


def path_waypoints(bar: MinuteBar) -> tuple[int, int, int, int]:
    """The mid's waypoints in cents: O-L-H-C for an up bar (close >= open), else O-H-L-C."""
    open_, high, low, close = (to_cents(p) for p in (bar.open, bar.high, bar.low, bar.close))
    return (open_, low, high, close) if close >= open_ else (open_, high, low, close)


def mid_cents_at(waypoints: Sequence[int], offset_ms: float) -> float:
    """The mid (cents, fractional) ``offset_ms`` into the minute: linear between waypoints."""
    return float(np.interp(offset_ms, WAYPOINT_OFFSETS_MS, waypoints))


def _segment_taker(waypoints: Sequence[int], offset_ms: int) -> TakerSide:
    """The taker side on the path at ``offset_ms``: buy while it rises (or at the top)."""
    for index in range(1, len(WAYPOINT_OFFSETS_MS)):
        if offset_ms <= WAYPOINT_OFFSETS_MS[index] or index == len(WAYPOINT_OFFSETS_MS) - 1:
            before, after = waypoints[index - 1], waypoints[index]
            if after != before:
                return "buy" if after > before else "sell"
    return "buy" if waypoints[-1] >= waypoints[0] else "sell"


# --- trades ------------------------------------------------------------------------------------


def split_volume(total_sats: int, weights: Sequence[float]) -> list[int]:
    """``total_sats`` apportioned by ``weights`` (largest remainder), each share >= 1 satoshi.

    Needs ``total_sats >= len(weights) >= 1``; the shares sum to ``total_sats`` exactly.
    """
    count = len(weights)
    if count < 1 or total_sats < count:
        raise ValueError(f"cannot split {total_sats} satoshis into {count} trades of >= 1")
    spare = total_sats - count  # one satoshi each first, the rest by weight
    weight_sum = float(sum(weights)) or 1.0
    exact = [spare * float(w) / weight_sum for w in weights]
    shares = [math.floor(value) for value in exact]
    left = spare - sum(shares)
    by_remainder = sorted(range(count), key=lambda i: (-(exact[i] - shares[i]), i))
    for index in by_remainder[:left]:
        shares[index] += 1
    return [share + 1 for share in shares]


def plan_trades(
    bar: MinuteBar, rng: np.random.Generator, trades_per_s: float
) -> list[PlannedTrade]:
    """The minute's trades (see the module docstring), sorted by time."""
    total_sats = to_satoshis(bar.volume)
    if total_sats <= 0:
        return []
    waypoints = path_waypoints(bar)
    wanted = max(len(WAYPOINT_OFFSETS_MS), int(rng.poisson(trades_per_s * 60)))
    count = min(wanted, MAX_TRADES_PER_MINUTE, total_sats)
    # Waypoints by priority (the extremes first) when the volume is too small for all four.
    extremes = (1, 2, 3, 0)
    offsets = [WAYPOINT_OFFSETS_MS[i] for i in extremes[: min(count, 4)]]
    extra = count - len(offsets)
    offsets += [int(v) for v in rng.integers(0, WAYPOINT_OFFSETS_MS[-1] + 1, size=extra)]
    weights = rng.exponential(size=count).tolist()
    quantities = split_volume(total_sats, weights)
    prices = np.rint(np.interp(offsets, WAYPOINT_OFFSETS_MS, waypoints)).astype(np.int64)
    trades = [
        PlannedTrade(offset, int(price), quantity, _segment_taker(waypoints, offset))
        for offset, price, quantity in zip(offsets, prices.tolist(), quantities, strict=True)
    ]
    trades.sort(key=lambda trade: trade.offset_ms)  # stable: waypoints first at equal times
    return trades


# --- the book ----------------------------------------------------------------------------------


def bid_price_cents(mid_cents: float, distance_bps: float) -> int:
    """A bid ``distance_bps`` below the mid, in whole cents, strictly below the mid."""
    return min(math.floor(mid_cents * (1 - distance_bps / 10_000)), math.ceil(mid_cents) - 1)


def ask_price_cents(mid_cents: float, distance_bps: float) -> int:
    """An ask ``distance_bps`` above the mid, in whole cents, strictly above the mid."""
    return max(math.ceil(mid_cents * (1 + distance_bps / 10_000)), math.floor(mid_cents) + 1)


class ModelBook:
    """The modelled book of one symbol: ``{price cents: size satoshis}`` per side, kept sorted."""

    def __init__(self, calibration: Calibration) -> None:
        self.calibration = calibration
        self.target_levels = calibration.target_levels_per_side
        self.band = calibration.band_bps / 10_000
        self.probs = np.asarray(calibration.quantile_probs)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.bid_prices: list[int] = []  # ascending
        self.ask_prices: list[int] = []  # ascending
        counts = sorted(calibration.changes_per_message.items())
        self._message_sizes = np.asarray([count for count, _ in counts])
        frequencies = np.asarray([weight for _, weight in counts], dtype=np.float64)
        self._message_size_probs = frequencies / frequencies.sum()

    # --- draws -----------------------------------------------------------------------------
    def _draw(self, quantiles: Sequence[float], uniforms: np.ndarray) -> np.ndarray:
        return np.interp(uniforms, self.probs, quantiles)

    def _sizes(self, rng: np.random.Generator, count: int) -> list[int]:
        sizes = self._draw(self.calibration.level_size_base, rng.random(count))
        return np.maximum(1, np.rint(sizes * SATOSHIS_PER_BTC)).astype(np.int64).tolist()

    # --- whole book --------------------------------------------------------------------------
    def reset(self, mid_cents: float, rng: np.random.Generator) -> None:
        """A fresh book around ``mid_cents``: the calibrated level count, distances and sizes."""
        self.bids.clear()
        self.asks.clear()
        count = self.target_levels
        distances = self._draw(self.calibration.level_distance_bps, rng.random(2 * count))
        sizes = self._sizes(rng, 2 * count)
        for index, distance in enumerate(distances.tolist()):
            if index < count:
                self.bids.setdefault(bid_price_cents(mid_cents, distance), sizes[index])
            else:
                self.asks.setdefault(ask_price_cents(mid_cents, distance), sizes[index])
        self.bid_prices = sorted(self.bids)
        self.ask_prices = sorted(self.asks)

    def levels(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """``(bids best first, asks best first)`` as ``(price cents, size satoshis)``."""
        bids = [(price, self.bids[price]) for price in reversed(self.bid_prices)]
        asks = [(price, self.asks[price]) for price in self.ask_prices]
        return bids, asks

    def recenter(self, mid_cents: float) -> list[LevelChange]:
        """Remove the bids at or above the mid, the asks at or below it, and the levels beyond
        the band; return the removals (best first per side, bids then asks)."""
        removed: list[LevelChange] = []
        bids, asks = self.bid_prices, self.ask_prices
        while bids and bids[-1] >= mid_cents:
            price = bids.pop()
            removed.append((True, price, 0, self.bids.pop(price)))
        low = mid_cents * (1 - self.band)
        cut = bisect_left(bids, math.ceil(low))
        for price in bids[:cut]:
            removed.append((True, price, 0, self.bids.pop(price)))
        del bids[:cut]
        while asks and asks[0] <= mid_cents:
            price = asks.pop(0)
            removed.append((False, price, 0, self.asks.pop(price)))
        high = mid_cents * (1 + self.band)
        cut = bisect_left(asks, math.floor(high) + 1)
        for price in asks[cut:]:
            removed.append((False, price, 0, self.asks.pop(price)))
        del asks[cut:]
        return removed

    def change(
        self, mid_cents: float, is_bid: bool, distance_bps: float, size_sats: int, action: float
    ) -> LevelChange:
        """One random change (``action`` uniform in [0, 1)): add a level at ``distance_bps``,
        or remove / resize the existing level nearest to it (see the module docstring)."""
        levels, prices = (self.bids, self.bid_prices) if is_bid else (self.asks, self.ask_prices)
        price = (
            bid_price_cents(mid_cents, distance_bps)
            if is_bid
            else ask_price_cents(mid_cents, distance_bps)
        )
        add_probability = self.target_levels / (self.target_levels + 2 * len(levels))
        if action < add_probability or not levels:
            previous = levels.get(price, 0)
            if previous == 0:
                insort(prices, price)
            elif previous == size_sats:
                size_sats += 1  # a change always changes something
            levels[price] = size_sats
            return (is_bid, price, size_sats, previous)
        index = bisect_left(prices, price)
        if index == len(prices) or (
            index > 0 and price - prices[index - 1] <= prices[index] - price
        ):
            index -= 1
        nearest = prices[index]
        previous = levels[nearest]
        if (action - add_probability) / (1 - add_probability) < 0.5:
            del prices[index]
            del levels[nearest]
            return (is_bid, nearest, 0, previous)
        if previous == size_sats:
            size_sats += 1
        levels[nearest] = size_sats
        return (is_bid, nearest, size_sats, previous)


# --- one minute --------------------------------------------------------------------------------


def generate_minute(bar: MinuteBar, book: ModelBook, seed: int) -> list[MinuteEvent]:
    """The book messages and trades of ``bar``'s minute, in time order (book first at ties);
    ``book`` is advanced through the minute."""
    calibration = book.calibration
    rng = minute_rng(seed, bar.ts_ms, STREAM_MINUTE)
    waypoints = path_waypoints(bar)
    message_count = int(rng.poisson(calibration.messages_per_s * 60))
    offsets = np.sort(rng.integers(0, MINUTE_MS, size=message_count))
    sizes = rng.choice(book._message_sizes, size=message_count, p=book._message_size_probs)
    total = int(sizes.sum())
    sides = (rng.random(total) < 0.5).tolist()
    distances = book._draw(calibration.change_distance_bps, rng.random(total)).tolist()
    level_sizes = book._sizes(rng, total)
    actions = rng.random(total).tolist()
    mids = np.interp(offsets, WAYPOINT_OFFSETS_MS, waypoints).tolist()
    trades = plan_trades(bar, rng, calibration.trades_per_s)
    events: list[MinuteEvent] = []
    trade_index = 0
    change_index = 0
    for offset, mid, size in zip(offsets.tolist(), mids, sizes.tolist(), strict=True):
        while trade_index < len(trades) and trades[trade_index].offset_ms < offset:
            events.append(trades[trade_index])
            trade_index += 1
        changes = book.recenter(mid)
        for index in range(change_index, change_index + size):
            changes.append(
                book.change(mid, sides[index], distances[index], level_sizes[index], actions[index])
            )
        change_index += size
        events.append(BookMessage(offset, tuple(changes)))
    events.extend(trades[trade_index:])
    return events


def price_weighted_volumes(changes: Sequence[LevelChange]) -> tuple[float, float]:
    """``(bid, ask)`` sums of price x remaining over change events, in USD: the liquidity job's
    per-minute book metric (its ratio is ask / bid)."""
    bid = ask = 0
    for is_bid, price, size, _ in changes:
        if is_bid:
            bid += price * size
        else:
            ask += price * size
    scale = 100 * SATOSHIS_PER_BTC
    return bid / scale, ask / scale
