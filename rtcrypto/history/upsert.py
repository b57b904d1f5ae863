"""``upsert_bars``: insert or replace minute bars of a source by minute (the recorded feed's writer).

The importer adds whole files; a streaming writer (``spark_jobs/bars.py``) instead sends a few
minutes at a time, may send a minute again (a replayed micro-batch, a restart) or send a
corrected one. ``upsert_bars`` merges such bars into the same partitioned store:

- one manifest entry per upserted source (fingerprint ``upsert:<source>``), listing one part per
  month; it is re-sequenced last on every change, so its minutes win over an earlier import into
  the same source;
- per month touched, the month's part is read, the new bars replace the old ones minute by
  minute, and the merged month is written as a new part named by its content (``part-<sha256
  of the rows>``). A merge that changes nothing writes nothing: sending the same minutes again
  leaves the store byte for byte as it was;
- the new manifest is the commit (``os.replace`` under the manifest lock): a concurrent
  ``load_history`` reads the old parts or the new ones, never half. Parts no manifest lists any
  more are deleted after ``UNREFERENCED_PART_GRACE_S`` (a reader that read the previous manifest
  still finds them), by a later upsert of the same source.

Prices are quote currency per base unit, volumes in base units. The stored ``price`` is the
typical price (high + low + close) / 3 (``price_basis = typical_price``, like the Binance and
current Kaggle imports); ``weighted_price`` is stored when given and null where it is NaN.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rtcrypto.history import bars as checks
from rtcrypto.history.bars import MINUTE_MS, Bars
from rtcrypto.history.errors import HistoryError
from rtcrypto.history.store import (
    PRICE_BASIS_TYPICAL,
    ManifestEntry,
    check_source_name,
    manifest_lock,
    month_slices,
    now_iso,
    read_manifest,
    resolve_history_dir,
    write_manifest,
    write_parts,
)

UPSERT_FINGERPRINT_PREFIX = "upsert:"
UNREFERENCED_PART_GRACE_S = 600.0  # a reader holding the previous manifest has this long


@dataclass(frozen=True)
class UpsertReport:
    """What one ``upsert_bars`` call did; times in epoch ms, UTC."""

    source: str
    rows_in: int
    inserted: int  # minutes the source did not have
    replaced: int  # minutes it had with other values
    unchanged: int  # minutes it had with the same values
    parts_written: tuple[str, ...]  # relative paths; empty when nothing changed
    rows_total: int  # minutes of the source's upsert entry after the call
    first_ts_ms: int | None
    last_ts_ms: int | None

    @property
    def changed(self) -> bool:
        return bool(self.parts_written)


def upsert_fingerprint(source: str) -> str:
    """The manifest fingerprint of ``source``'s upsert entry."""
    return f"{UPSERT_FINGERPRINT_PREFIX}{source}"


def validate_bars(bars: Bars) -> None:
    """Raise ``HistoryError`` unless ``bars`` are sorted, unique, whole minutes with sane OHLCV."""
    ts_ms = bars.ts_ms
    if len(ts_ms) and np.any(ts_ms % MINUTE_MS != 0):
        raise HistoryError("bars to upsert must start on whole UTC minutes (ts_ms % 60000 == 0)")
    if len(ts_ms) > 1 and np.any(np.diff(ts_ms) <= 0):
        raise HistoryError("bars to upsert must be sorted by minute with one bar per minute")
    plain = Bars(bars.ts_ms, bars.open, bars.high, bars.low, bars.close, bars.volume)
    keep, dropped = checks.row_checks(plain, np.ones(len(bars), dtype=bool))
    if not keep.all():
        first_bad = int(ts_ms[np.flatnonzero(~keep)[0]])
        raise HistoryError(
            f"{int((~keep).sum())} bar(s) to upsert are invalid ({dropped}); the first at "
            f"ts_ms={first_bad}: need 0 < low <= open, close <= high and volume >= 0"
        )


def merge_month(existing: Bars, new: Bars) -> tuple[Bars, int, int, int]:
    """``(merged, inserted, replaced, unchanged)``: ``new`` replaces ``existing`` per minute.

    Both sorted and unique by ``ts_ms``; the result is too. Weighted prices compare NaN-equal.
    """
    old_index = {int(ts): row for row, ts in enumerate(existing.ts_ms)}
    inserted = replaced = unchanged = 0
    for row, ts in enumerate(new.ts_ms):
        old_row = old_index.get(int(ts))
        if old_row is None:
            inserted += 1
        elif _same_row(existing, old_row, new, row):
            unchanged += 1
        else:
            replaced += 1
    keep_old = ~np.isin(existing.ts_ms, new.ts_ms)
    merged = Bars.concat([existing.take(keep_old), new], has_weighted_price=True)
    order = np.argsort(merged.ts_ms, kind="stable")
    return merged.take(order), inserted, replaced, unchanged


def _same_row(left: Bars, left_row: int, right: Bars, right_row: int) -> bool:
    for name in ("open", "high", "low", "close", "volume", "weighted_price"):
        a = float(getattr(left, name)[left_row])
        b = float(getattr(right, name)[right_row])
        if not (a == b or (np.isnan(a) and np.isnan(b))):
            return False
    return True


def content_hash(bars: Bars) -> str:
    """sha256 of the rows' values: equal bars give an equal part name."""
    digest = hashlib.sha256()
    for name in ("ts_ms", "open", "high", "low", "close", "volume", "weighted_price"):
        digest.update(np.ascontiguousarray(getattr(bars, name)).tobytes())
    return digest.hexdigest()


def _with_weighted(bars: Bars) -> Bars:
    if bars.weighted_price is not None:
        return bars
    nan = np.full(len(bars), np.nan, dtype=np.float64)
    return Bars(bars.ts_ms, bars.open, bars.high, bars.low, bars.close, bars.volume, nan)


def read_part_bars(path: Path) -> Bars:
    """The bars of one stored part (``weighted_price`` null read as NaN)."""
    table = pq.read_table(path).replace_schema_metadata(None)

    def floats(name: str) -> Any:
        return table[name].to_numpy(zero_copy_only=False).astype(np.float64)

    return Bars(
        ts_ms=table["ts"].cast(pa.int64()).to_numpy().astype(np.int64),
        open=floats("open"),
        high=floats("high"),
        low=floats("low"),
        close=floats("close"),
        volume=floats("volume"),
        weighted_price=np.asarray(
            table["weighted_price"].to_pandas().to_numpy(dtype=np.float64, na_value=np.nan)
        ),
    )


def _month_key(relative: str) -> str:
    # source=<s>/year=YYYY/month=MM/part-...: the month is the folder
    return relative.rsplit("/", 1)[0]


def upsert_bars(
    bars: Bars,
    source: str,
    *,
    history_dir: Path | None = None,
    origin: str = "",
) -> UpsertReport:
    """Insert or replace ``bars`` (sorted, one per minute) in ``source``; see the module docs.

    ``origin`` is recorded as the entry's ``file`` (e.g. the Kafka topic the bars came from).
    Raises ``HistoryError`` for invalid bars or an invalid source name.
    """
    check_source_name(source)
    validate_bars(bars)
    bars = _with_weighted(bars)
    folder = resolve_history_dir(history_dir)
    fingerprint = upsert_fingerprint(source)
    with manifest_lock(folder):
        entries = read_manifest(folder)
        mine = next(
            (e for e in entries if e.source == source and e.fingerprint == fingerprint), None
        )
        part_stats: dict[str, list[int]] = dict(mine.report.get("part_rows", {})) if mine else {}
        by_month = {_month_key(relative): relative for relative in (mine.parts if mine else ())}
        inserted = replaced = unchanged = 0
        written: list[str] = []
        for year, month, rows in month_slices(bars.ts_ms):
            new = bars.take(np.arange(rows.start, rows.stop))
            key = f"source={source}/year={year:04d}/month={month:02d}"
            old_relative = by_month.get(key)
            existing = (
                read_part_bars(folder / old_relative)
                if old_relative
                else new.take(np.zeros(0, dtype=np.int64))
            )
            merged, added, changed, same = merge_month(existing, new)
            inserted, replaced, unchanged = inserted + added, replaced + changed, unchanged + same
            if added == 0 and changed == 0:
                continue
            (relative,) = write_parts(
                folder,
                source,
                content_hash(merged),
                merged,
                merged.typical_price(),
                PRICE_BASIS_TYPICAL,
                {"price_basis": PRICE_BASIS_TYPICAL, "schema": "upsert", "origin": origin},
            )
            written.append(relative)
            by_month[key] = relative
            if old_relative:
                part_stats.pop(old_relative, None)
            part_stats[relative] = [len(merged), int(merged.ts_ms[0]), int(merged.ts_ms[-1])]
        if written:
            _commit(folder, entries, mine, source, origin, by_month, part_stats)
            delete_unreferenced_parts(folder, source)
    stats = list(part_stats.values())
    return UpsertReport(
        source=source,
        rows_in=len(bars),
        inserted=inserted,
        replaced=replaced,
        unchanged=unchanged,
        parts_written=tuple(written),
        rows_total=sum(stat[0] for stat in stats),
        first_ts_ms=min((stat[1] for stat in stats), default=None),
        last_ts_ms=max((stat[2] for stat in stats), default=None),
    )


def _commit(
    folder: Path,
    entries: list[ManifestEntry],
    mine: ManifestEntry | None,
    source: str,
    origin: str,
    by_month: dict[str, str],
    part_stats: dict[str, list[int]],
) -> None:
    """Replace ``mine`` by an entry listing the current parts, sequenced after every other."""
    stats = list(part_stats.values())
    report: dict[str, Any] = {
        "kind": "upsert",
        "source": source,
        "rows_kept": sum(stat[0] for stat in stats),
        "first_ts_ms": min((stat[1] for stat in stats), default=None),
        "last_ts_ms": max((stat[2] for stat in stats), default=None),
        "price_basis": PRICE_BASIS_TYPICAL,
        "part_rows": part_stats,  # relative path -> [rows, first_ts_ms, last_ts_ms]
        "upserts": int(mine.report.get("upserts", 0)) + 1 if mine else 1,
    }
    others = [entry for entry in entries if entry is not mine]
    entry = ManifestEntry(
        seq=max((e.seq for e in entries), default=0) + 1,
        fingerprint=upsert_fingerprint(source),
        source=source,
        file=origin or (mine.file if mine else ""),
        imported_at=mine.imported_at if mine else now_iso(),
        parts=tuple(sorted(by_month.values())),
        report=report,
    )
    write_manifest(folder, [*others, entry])


def delete_unreferenced_parts(
    folder: Path, source: str, grace_s: float = UNREFERENCED_PART_GRACE_S
) -> list[Path]:
    """Delete ``source``'s part files no manifest entry lists, older than ``grace_s``.

    Call under the manifest lock: an import then is not half-way (its parts would be unlisted).
    """
    listed = {relative for entry in read_manifest(folder) for relative in entry.parts}
    cutoff = time.time() - grace_s
    deleted = []
    for path in sorted((folder / f"source={source}").glob("year=*/month=*/part-*.parquet")):
        relative = path.relative_to(folder).as_posix()
        if relative in listed:
            continue
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                deleted.append(path)
        except FileNotFoundError:
            continue
    return deleted
