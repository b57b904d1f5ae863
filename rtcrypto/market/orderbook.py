"""Order-book state of one symbol, maintained from level changes (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from rtcrypto.bounded import MAX_DECIMAL_EXPONENT, BoundsError
from rtcrypto.market.schemas import Side


def _check_bounded(value: Decimal, name: str) -> None:
    if not value.is_finite() or (value and abs(value.adjusted()) > MAX_DECIMAL_EXPONENT):
        raise BoundsError(f"{name} {value} is out of the book's range")


@dataclass(frozen=True, slots=True)
class DepthSummary:
    """Base-currency volume within ``band_pct`` percent of the mid price on each side."""

    mid_price: float | None
    bid_depth: float
    ask_depth: float
    depth_imbalance: float | None  # (bid - ask) / (bid + ask), in [-1, 1]; None on an empty band


@dataclass(slots=True)
class OrderBook:
    """Price levels per side; a level's size is the exchange's ``remaining`` for that price."""

    symbol: str
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def apply(self, side: Side, price: Decimal, remaining: Decimal) -> Decimal:
        """Set a level to ``remaining`` (0 removes it); return the previous size (0 if none).

        ``BoundsError`` for a price or size that is not finite or whose exponent is beyond
        :data:`rtcrypto.bounded.MAX_DECIMAL_EXPONENT` (``1e999999999``): such a level would make
        :meth:`depth` overflow the decimal context, so it never enters the book.
        """
        _check_bounded(price, "price")
        _check_bounded(remaining, "remaining")
        levels = self.bids if side == "bid" else self.asks
        previous = levels.get(price, Decimal(0))
        if remaining == 0:
            levels.pop(price, None)
        else:
            levels[price] = remaining
        return previous

    def size_at(self, side: Side, price: Decimal) -> Decimal:
        levels = self.bids if side == "bid" else self.asks
        return levels.get(price, Decimal(0))

    def best_bid(self) -> Decimal | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> Decimal | None:
        return min(self.asks) if self.asks else None

    def depth(self, band_pct: float) -> DepthSummary:
        return depth_summary(self.bids, self.asks, band_pct)


def depth_summary(
    bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal], band_pct: float
) -> DepthSummary:
    """Depth within +/- ``band_pct`` percent of the mid price, and its imbalance.

    The mid price is (best bid + best ask) / 2; with one side empty there is no mid and both
    depths are 0.
    """
    if not bids or not asks:
        return DepthSummary(None, 0.0, 0.0, None)
    mid = (max(bids) + min(asks)) / 2
    band = Decimal(str(band_pct)) / Decimal(100)
    low, high = mid * (1 - band), mid * (1 + band)
    bid_depth = sum((size for price, size in bids.items() if price >= low), Decimal(0))
    ask_depth = sum((size for price, size in asks.items() if price <= high), Decimal(0))
    total = bid_depth + ask_depth
    imbalance = float((bid_depth - ask_depth) / total) if total > 0 else None
    return DepthSummary(float(mid), float(bid_depth), float(ask_depth), imbalance)
