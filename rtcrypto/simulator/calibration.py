"""The modelled book's calibration: shape and change rate measured on real Gemini captures.

``rtc simulate calibrate`` computes it from the recorded Gemini v2 traffic in
``../shared/data/orderbook`` and writes a small versioned JSON file; the package ships the result
as ``rtcrypto/simulator/calibration.json`` (the default of ``RTC_SIMULATOR_CALIBRATION``). The
history replay (:mod:`rtcrypto.simulator.market_model`) draws from it. Nothing is hand-typed:
``tests/unit/test_market_model.py`` recomputes the file from the capture and compares.

What is measured, for one symbol (BTCUSD), on levels within ``band_bps`` of the mid:

- ``level_distance_bps``: quantiles of the distance from the mid of the first snapshot's levels,
  in basis points (both sides pooled);
- ``level_size_base``: quantiles of those levels' sizes, in the base currency (BTC);
- ``levels_per_side``: the snapshot's level count per side within the band;
- ``change_distance_bps``: quantiles of the distance from the then-current mid of every later
  level change (changes cluster near the mid, levels do not);
- ``changes_per_message``: how many in-band changes one ``l2_updates`` message carries
  (``{count: messages}``);
- ``messages_per_s``, ``changes_per_s``, ``trades_per_s``: rates over the capture's span.

Every quantile list is taken at ``quantile_probs`` (0, 0.01, ..., 1).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rtcrypto.market.captures import BookUpdate, TradePrint, load_capture
from rtcrypto.market.captures.gemini_v1 import LevelBook

SCHEMA_VERSION = 1
DEFAULT_BAND_BPS = 50.0  # the ingest's depth band (RTC_DEPTH_BAND_PCT 0.5 %) in basis points
DEFAULT_SYMBOL = "BTCUSD"
QUANTILE_COUNT = 101  # 0 %, 1 %, ..., 100 %
PACKAGED_CALIBRATION = Path(__file__).resolve().parent / "calibration.json"
DEFAULT_CAPTURE_NAME = "gemini_2021-04-17__GEMINI.ws.36.0.gz"
REGENERATE_HINT = "regenerate it with: rtc simulate calibrate --out {path}"


class CalibrationError(ValueError):
    """A calibration file that is missing, corrupt or of another schema version."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """The numbers the book model draws from (see the module docstring for each field)."""

    schema_version: int
    symbol: str
    band_bps: float
    sources: tuple[dict[str, str], ...]  # {"name": file name, "sha256": hex digest}
    quantile_probs: tuple[float, ...]
    level_distance_bps: tuple[float, ...]
    level_size_base: tuple[float, ...]
    levels_per_side: dict[str, int]  # {"bid": n, "ask": n}
    change_distance_bps: tuple[float, ...]
    changes_per_message: dict[int, int]  # changes in one message -> how many messages
    messages_per_s: float
    changes_per_s: float
    trades_per_s: float
    span_s: float

    @property
    def target_levels_per_side(self) -> int:
        """The modelled book's level count per side (the mean of the snapshot's two sides)."""
        return max(1, round((self.levels_per_side["bid"] + self.levels_per_side["ask"]) / 2))

    @property
    def label(self) -> str:
        """``calibration.json v1``: what /_sim/status and the start log line name."""
        return f"{self.file_name} v{self.schema_version}"

    file_name: str = "calibration.json"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "generated_by": "rtc simulate calibrate",
            "symbol": self.symbol,
            "band_bps": self.band_bps,
            "sources": [dict(source) for source in self.sources],
            "quantile_probs": list(self.quantile_probs),
            "level_distance_bps": list(self.level_distance_bps),
            "level_size_base": list(self.level_size_base),
            "levels_per_side": dict(self.levels_per_side),
            "change_distance_bps": list(self.change_distance_bps),
            "changes_per_message": {str(k): v for k, v in sorted(self.changes_per_message.items())},
            "messages_per_s": self.messages_per_s,
            "changes_per_s": self.changes_per_s,
            "trades_per_s": self.trades_per_s,
            "span_s": self.span_s,
        }


def _rounded(values: np.ndarray | list[float]) -> tuple[float, ...]:
    return tuple(float(f"{value:.10g}") for value in values)


def _quantiles(values: list[float]) -> tuple[float, ...]:
    probs = np.linspace(0.0, 1.0, QUANTILE_COUNT)
    return _rounded(np.quantile(np.asarray(values, dtype=np.float64), probs))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _distance_bps(price: float, mid: float) -> float:
    return abs(price - mid) / mid * 10_000


def compute_calibration(
    capture_paths: list[Path], symbol: str = DEFAULT_SYMBOL, band_bps: float = DEFAULT_BAND_BPS
) -> Calibration:
    """Measure the book of ``symbol`` in the Gemini capture(s) (see the module docstring)."""
    distances: list[float] = []
    sizes: list[float] = []
    per_side = Counter[str]()
    change_distances: list[float] = []
    per_message = Counter[int]()
    trades = 0
    span_ms = 0
    for path in capture_paths:
        capture = load_capture(path)
        if capture.venue != "gemini":
            raise CalibrationError(f"{path} is a {capture.venue} capture: calibrate on Gemini v2")
        messages = capture.for_symbol(symbol)
        if not messages or not isinstance(messages[0], BookUpdate):
            raise CalibrationError(f"{path} has no {symbol} book to calibrate on")
        span_ms += messages[-1].ts_receive_ms - messages[0].ts_receive_ms
        book = LevelBook(symbol)
        for message in messages:
            if isinstance(message, TradePrint):
                trades += 1
                continue
            best_bid, best_ask = book.best_bid(), book.best_ask()
            if message.is_snapshot and not book.initialized:
                book.apply(message)
                _snapshot_levels(book, band_bps, distances, sizes, per_side)
                continue
            if best_bid is None or best_ask is None:
                book.apply(message)
                continue
            mid = (float(best_bid.price) + float(best_ask.price)) / 2
            in_band = [_distance_bps(float(price), mid) for _, price, _ in message.changes]
            in_band = [distance for distance in in_band if distance <= band_bps]
            if in_band:
                per_message[len(in_band)] += 1
                change_distances.extend(in_band)
            trades += len(message.trades)
            book.apply(message)
    span_s = span_ms / 1000
    if span_s <= 0 or not distances or not change_distances:
        raise CalibrationError("the capture(s) hold too little data to calibrate on")
    return Calibration(
        schema_version=SCHEMA_VERSION,
        symbol=symbol,
        band_bps=band_bps,
        sources=tuple({"name": path.name, "sha256": sha256_of(path)} for path in capture_paths),
        quantile_probs=_rounded(np.linspace(0.0, 1.0, QUANTILE_COUNT)),
        level_distance_bps=_quantiles(distances),
        level_size_base=_quantiles(sizes),
        levels_per_side={"bid": per_side["bid"], "ask": per_side["ask"]},
        change_distance_bps=_quantiles(change_distances),
        changes_per_message=dict(sorted(per_message.items())),
        messages_per_s=_rounded([sum(per_message.values()) / span_s])[0],
        changes_per_s=_rounded([len(change_distances) / span_s])[0],
        trades_per_s=_rounded([trades / span_s])[0],
        span_s=span_s,
    )


def _snapshot_levels(
    book: LevelBook,
    band_bps: float,
    distances: list[float],
    sizes: list[float],
    per_side: Counter[str],
) -> None:
    best_bid, best_ask = book.best_bid(), book.best_ask()
    if best_bid is None or best_ask is None:
        raise CalibrationError("the first snapshot has no bid or no ask")
    mid = (float(best_bid.price) + float(best_ask.price)) / 2
    for side, levels in (("bid", book.bids), ("ask", book.asks)):
        for level in levels.values():
            distance = _distance_bps(float(level.price), mid)
            if distance <= band_bps:
                distances.append(distance)
                sizes.append(float(level.size))
                per_side[side] += 1


def write_calibration(calibration: Calibration, path: Path) -> None:
    """Write ``calibration`` as JSON, atomically (a temporary file renamed over ``path``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(calibration.to_json(), indent=1) + "\n")
    os.replace(temporary, path)


def load_calibration(path: Path | None = None) -> Calibration:
    """Read a calibration file (default: the packaged one); a missing, corrupt or other-version
    file raises :class:`CalibrationError` naming the file and the command that regenerates it."""
    path = Path(path) if path is not None else PACKAGED_CALIBRATION
    hint = REGENERATE_HINT.format(path=path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise CalibrationError(f"calibration file {path} not found; {hint}") from None
    except (OSError, ValueError) as error:
        raise CalibrationError(f"calibration file {path} is corrupt ({error}); {hint}") from None
    if not isinstance(document, dict) or document.get("schema_version") != SCHEMA_VERSION:
        version = document.get("schema_version") if isinstance(document, dict) else None
        raise CalibrationError(
            f"calibration file {path} has schema version {version!r}, this code reads "
            f"{SCHEMA_VERSION}; {hint}"
        )
    try:
        calibration = Calibration(
            schema_version=SCHEMA_VERSION,
            symbol=str(document["symbol"]),
            band_bps=float(document["band_bps"]),
            sources=tuple(
                {"name": str(s["name"]), "sha256": str(s["sha256"])} for s in document["sources"]
            ),
            quantile_probs=tuple(map(float, document["quantile_probs"])),
            level_distance_bps=tuple(map(float, document["level_distance_bps"])),
            level_size_base=tuple(map(float, document["level_size_base"])),
            levels_per_side={
                "bid": int(document["levels_per_side"]["bid"]),
                "ask": int(document["levels_per_side"]["ask"]),
            },
            change_distance_bps=tuple(map(float, document["change_distance_bps"])),
            changes_per_message={
                int(k): int(v) for k, v in document["changes_per_message"].items()
            },
            messages_per_s=float(document["messages_per_s"]),
            changes_per_s=float(document["changes_per_s"]),
            trades_per_s=float(document["trades_per_s"]),
            span_s=float(document["span_s"]),
            file_name=path.name,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CalibrationError(
            f"calibration file {path} is corrupt (bad or missing field: {error}); {hint}"
        ) from None
    _check(calibration, path, hint)
    return calibration


def _check(calibration: Calibration, path: Path, hint: str) -> None:
    lists = (
        calibration.quantile_probs,
        calibration.level_distance_bps,
        calibration.level_size_base,
        calibration.change_distance_bps,
    )
    problems = []
    if any(len(values) != len(calibration.quantile_probs) or len(values) < 2 for values in lists):
        problems.append("quantile lists of different lengths")
    elif any(list(values) != sorted(values) for values in lists):
        problems.append("quantiles not ascending")
    if min(calibration.level_size_base, default=0) <= 0 and max(calibration.level_size_base) <= 0:
        problems.append("no positive level size")
    if min(calibration.levels_per_side.values()) < 1 or not calibration.changes_per_message:
        problems.append("no levels or no change messages")
    if any(k < 1 or v < 0 for k, v in calibration.changes_per_message.items()):
        problems.append("bad changes_per_message")
    rates = (calibration.messages_per_s, calibration.trades_per_s, calibration.band_bps)
    if any(not np.isfinite(rate) or rate < 0 for rate in rates) or calibration.band_bps <= 0:
        problems.append("bad rate or band")
    if problems:
        raise CalibrationError(
            f"calibration file {path} is corrupt ({', '.join(problems)}); {hint}"
        )


def default_capture(data_dir: Path) -> Path:
    """The Gemini v2 capture of the shared data folder (``<data>/orderbook/...``)."""
    return data_dir / "orderbook" / DEFAULT_CAPTURE_NAME
