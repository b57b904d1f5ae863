"""The modelled book's liquidity ratio over replayed real days (the trader's gate needs (0.1, 2)).

    .venv/bin/python -m bench.replay_liquidity [--day 2024-10-28] [--days 1] [--seed 0]

The history replay's own generator (:func:`rtcrypto.simulator.market_model.generate_minute`, the
code the simulator serves) runs over the real Binance bars of each day; per minute, the liquidity
job's metric is computed from the change events: sum of price x remaining per side, ratio = ask /
bid. Printed: quantiles of the ratio, the share of minutes inside (0.1, 2), changes per minute.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import save
from rtcrypto.history import import_file
from rtcrypto.simulator.calibration import load_calibration
from rtcrypto.simulator.history_replay import HistoryReplay, load_replay_bars, parse_utc_ms
from rtcrypto.simulator.market_model import (
    STREAM_FRESH_BOOK,
    BookMessage,
    ModelBook,
    generate_minute,
    minute_rng,
    price_weighted_volumes,
    to_cents,
)
from tests.helpers import MINUTE_DIR

MINUTE_FILE = MINUTE_DIR / "binance_BTCUSDT_1m_2024-10-01_2024-11-04.csv.gz"
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", default="2024-10-28", help="first UTC day")
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--file", type=Path, default=MINUTE_FILE, help="real minute file (Binance)")
    args = parser.parse_args(argv)
    history_dir = Path(tempfile.mkdtemp(prefix="bench-liquidity-")) / "history"
    import_file(args.file, history_dir=history_dir)
    calibration = load_calibration()
    start_ms = parse_utc_ms(args.day, "--day")
    spec = HistoryReplay(
        "binance", start_ms, start_ms + args.days * 86_400_000, Path(), args.seed, history_dir
    )
    bars = load_replay_bars(spec)
    book = ModelBook(calibration)
    first = bars.bar(0)
    book.reset(to_cents(first.open), minute_rng(args.seed, first.ts_ms, STREAM_FRESH_BOOK))
    ratios, changes_per_minute = [], []
    began = time.monotonic()
    for index in range(len(bars)):
        events = generate_minute(bars.bar(index), book, args.seed)
        changes = [change for e in events if isinstance(e, BookMessage) for change in e.changes]
        bid, ask = price_weighted_volumes(changes)
        ratios.append(ask / bid)
        changes_per_minute.append(len(changes))
    seconds = time.monotonic() - began
    ratio = np.asarray(ratios)
    inside = float(np.mean((ratio > 0.1) & (ratio < 2)))
    result = {
        "day": args.day,
        "days": args.days,
        "seed": args.seed,
        "file": args.file.name,
        "minutes": len(ratio),
        "ratio_quantiles": {f"{q:g}": float(np.quantile(ratio, q)) for q in QUANTILES},
        "share_inside_0.1_2": inside,
        "changes_per_minute_mean": float(np.mean(changes_per_minute)),
        "generator_minutes_per_s": len(ratio) / seconds,
    }
    print(f"{len(ratio)} replayed minutes of binance from {args.day} (seed {args.seed})")
    print("  ask/bid ratio quantiles: " + ", ".join(
        f"p{float(q) * 100:g} {value:.3f}" for q, value in result["ratio_quantiles"].items()
    ))  # fmt: skip
    print(f"  inside (0.1, 2): {inside:.1%} of minutes")
    print(
        f"  {result['changes_per_minute_mean']:,.0f} change events per minute; generator alone "
        f"{result['generator_minutes_per_s']:.0f} simulated minutes/s"
    )
    print(f"saved {save('replay_liquidity', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
