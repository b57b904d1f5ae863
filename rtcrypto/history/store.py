"""Where imported history lives on disk: partitioned Parquet plus a manifest of imports.

Layout under the history folder (``settings.history_dir``, default ``<home>/history``)::

    _manifest.json                                   every committed import, in import order
    source=<name>/year=YYYY/month=MM/part-<fp>.parquet   one file per import and month

``<fp>`` is the first 16 hex digits of the imported file's content fingerprint. A part holds
``ts`` (UTC, minute open time, millisecond unit), ``open, high, low, close`` (quote currency per
BTC), ``volume`` (BTC), ``weighted_price`` (null when the file has none), ``price`` (the
forecast's input) and ``price_basis`` (``weighted_price`` or ``typical_price`` =
(high + low + close) / 3; a category). ``source`` is the partition key only: written into the files as well,
it makes ``pyarrow.parquet.read_table(<folder>)`` fail with "Unable to merge: Field source has
incompatible types". The manifest is written last, so it is the commit: parts it does not list
(an import that crashed) are ignored by ``load_history`` and overwritten by the next import.
A streaming writer adds minutes with ``rtcrypto.history.upsert.upsert_bars`` instead (insert or
replace by minute, one manifest entry per source; see that module).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rtcrypto.config import get_settings
from rtcrypto.history.bars import Bars, FloatArray
from rtcrypto.history.errors import HistoryError, HistoryNotFoundError
from rtcrypto.locks import exclusive_file_lock

MANIFEST_NAME = "_manifest.json"  # a leading underscore: Parquet readers skip it
MANIFEST_FORMAT = 1
PRICE_BASIS_WEIGHTED = "weighted_price"
PRICE_BASIS_TYPICAL = "typical_price"
HISTORY_COLUMNS = (
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "weighted_price",
    "price",
    "price_basis",
    "source",
)
PART_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.float64(), nullable=False),
        pa.field("weighted_price", pa.float64()),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("price_basis", pa.dictionary(pa.int8(), pa.string()), nullable=False),
    ]
)
_SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def resolve_history_dir(history_dir: Path | None = None) -> Path:
    """The history folder: the argument, else ``settings.history_dir``, else ``<home>/history``."""
    if history_dir is not None:
        return Path(history_dir)
    return get_settings().history_path


def check_source_name(source: str) -> str:
    """``source`` if it is a safe partition value (lowercase letters, digits, ``_``, ``-``)."""
    if not _SOURCE_NAME.match(source):
        raise HistoryError(
            f"invalid source name {source!r}: use 1-64 lowercase letters, digits, '_' or '-'"
        )
    return source


# --- manifest -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestEntry:
    """One committed import: which content went to which source and parts, and its report."""

    seq: int  # 1, 2, ... in import order; a later import wins where files overlap
    fingerprint: str
    source: str
    file: str
    imported_at: str  # ISO 8601 UTC
    parts: tuple[str, ...]  # paths relative to the history folder
    report: dict[str, Any]


def read_manifest(history_dir: Path) -> list[ManifestEntry]:
    """Every committed import in ``history_dir``, oldest first (empty if none)."""
    path = history_dir / MANIFEST_NAME
    if not path.exists():
        return []
    try:
        document = json.loads(path.read_text())
        return [
            ManifestEntry(**{**entry, "parts": tuple(entry["parts"])})
            for entry in document["imports"]
        ]
    except (ValueError, KeyError, TypeError) as error:
        raise HistoryError(
            f"{path} is unreadable ({error}); move it away and re-import the files"
        ) from error


def append_manifest(history_dir: Path, entry: ManifestEntry) -> None:
    """Add ``entry`` and replace the manifest atomically (hold ``manifest_lock``)."""
    write_manifest(history_dir, [*read_manifest(history_dir), entry])


def write_manifest(history_dir: Path, entries: Sequence[ManifestEntry]) -> None:
    """Replace the manifest with ``entries`` atomically (hold ``manifest_lock``).

    Readers see the old or the new manifest, never a half-written one (``os.replace``).
    """
    document = {
        "format": MANIFEST_FORMAT,
        "imports": [{**entry.__dict__, "parts": list(entry.parts)} for entry in entries],
    }
    path = history_dir / MANIFEST_NAME
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=1) + "\n")
    os.replace(temporary, path)


@contextmanager
def manifest_lock(history_dir: Path) -> Iterator[None]:
    """Serialise imports into one history folder (two processes may import at once)."""
    with exclusive_file_lock(history_dir / "_manifest.lock"):
        yield


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- writing ------------------------------------------------------------------------------------


def month_slices(ts_ms: np.ndarray) -> list[tuple[int, int, slice]]:
    """``(year, month, rows)`` for each calendar month (UTC) of sorted ``ts_ms``."""
    if len(ts_ms) == 0:
        return []
    months = ts_ms.astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(months)) + 1))
    ends = np.concatenate((starts[1:], [len(ts_ms)]))
    return [
        (int(months[start] // 12 + 1970), int(months[start] % 12 + 1), slice(start, end))
        for start, end in zip(starts, ends, strict=True)
    ]


def part_path(source: str, year: int, month: int, fingerprint: str) -> str:
    """The part's path relative to the history folder."""
    return f"source={source}/year={year:04d}/month={month:02d}/part-{fingerprint[:16]}.parquet"


def write_parts(
    history_dir: Path,
    source: str,
    fingerprint: str,
    bars: Bars,
    price: FloatArray,
    price_basis: str,
    metadata: dict[str, str],
) -> tuple[str, ...]:
    """Write sorted, unique ``bars`` as one Parquet part per month; return their relative paths."""
    written = []
    schema = PART_SCHEMA.with_metadata({f"rtcrypto.{k}": v for k, v in metadata.items()})
    for year, month, rows in month_slices(bars.ts_ms):
        count = rows.stop - rows.start
        weighted = (
            # from_pandas: NaN (a minute without a weighted price) is stored as null
            pa.array(bars.weighted_price[rows], pa.float64(), from_pandas=True)
            if bars.weighted_price is not None
            else pa.nulls(count, pa.float64())
        )
        table = pa.Table.from_arrays(
            [
                pa.array(bars.ts_ms[rows], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
                pa.array(bars.open[rows]),
                pa.array(bars.high[rows]),
                pa.array(bars.low[rows]),
                pa.array(bars.close[rows]),
                pa.array(bars.volume[rows]),
                weighted,
                pa.array(price[rows]),
                pa.DictionaryArray.from_arrays(
                    pa.array(np.zeros(count, dtype=np.int8)), pa.array([price_basis])
                ),
            ],
            schema=schema,
        )
        relative = part_path(source, year, month, fingerprint)
        target = history_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")  # dot: readers skip it
        # Dictionary-encoding float columns costs 3x the write time for nothing: only the label.
        pq.write_table(table, temporary, compression="zstd", use_dictionary=["price_basis"])
        os.replace(temporary, target)
        written.append(relative)
    return tuple(written)


# --- reading ------------------------------------------------------------------------------------


def _utc(moment: datetime | str | pd.Timestamp | None) -> pd.Timestamp | None:
    if moment is None:
        return None
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _part_month(relative: str) -> pd.Timestamp:
    match = re.search(r"year=(\d{4})/month=(\d{2})/", relative)
    if match is None:
        raise HistoryError(f"unexpected part path in the manifest: {relative}")
    return pd.Timestamp(year=int(match[1]), month=int(match[2]), day=1, tz="UTC")


def sources(history_dir: Path | None = None) -> list[str]:
    """Names of the sources with at least one import, sorted."""
    return sorted({entry.source for entry in read_manifest(resolve_history_dir(history_dir))})


def load_history(
    source: str,
    start: datetime | str | pd.Timestamp | None = None,
    end: datetime | str | pd.Timestamp | None = None,
    *,
    history_dir: Path | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Imported minute bars of ``source`` with ``start <= ts < end`` (naive times are UTC).

    Columns: see ``HISTORY_COLUMNS`` (``ts`` is ``datetime64[ms, UTC]``), or ``columns`` (``ts``
    is always included). Rows are sorted by ``ts`` with one row per minute: where imported files
    overlap, the most recent import wins. Raises ``HistoryNotFoundError`` if nothing of
    ``source`` was imported.
    """
    folder = resolve_history_dir(history_dir)
    entries = [entry for entry in read_manifest(folder) if entry.source == source]
    if not entries:
        known = sorted({entry.source for entry in read_manifest(folder)})
        raise HistoryNotFoundError(
            f"no history for source {source!r} in {folder} (imported sources: "
            f"{', '.join(known) or 'none'}); import files with: rtc history import FILE..."
        )
    begin, finish = _utc(start), _utc(end)
    wanted = list(dict.fromkeys(["ts", *(columns or HISTORY_COLUMNS)]))
    file_columns = [name for name in wanted if name in PART_SCHEMA.names]
    filters: list[tuple[str, str, Any]] = []
    if begin is not None:
        filters.append(("ts", ">=", begin.to_pydatetime()))
    if finish is not None:
        filters.append(("ts", "<", finish.to_pydatetime()))
    tables = []
    for entry in entries:
        for relative in entry.parts:
            month = _part_month(relative)
            if finish is not None and month >= finish:
                continue
            if begin is not None and month + pd.offsets.MonthBegin(1) <= begin:
                continue
            table = pq.read_table(folder / relative, columns=file_columns, filters=filters or None)
            seq = pa.array(np.full(table.num_rows, entry.seq, dtype=np.int64))
            tables.append(table.replace_schema_metadata(None).append_column("_seq", seq))
    if tables:
        table = _one_row_per_minute(pa.concat_tables(tables))
    else:
        table = PART_SCHEMA.empty_table().select(file_columns)
    frame = table.to_pandas()
    if "source" in wanted:
        frame["source"] = source
    return frame[wanted]


def _one_row_per_minute(table: pa.Table) -> pa.Table:
    """``table`` sorted by ``ts``, keeping the row of the latest import (``_seq``) per minute."""
    ts_ms = table["ts"].cast(pa.int64()).to_numpy()
    seq = table["_seq"].to_numpy()
    order = np.lexsort((-seq, ts_ms))  # by ts, then the newest import first
    sorted_ts = ts_ms[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_ts[1:] != sorted_ts[:-1]
    keep = order[first]
    table = table.drop_columns(["_seq"])
    if len(keep) == len(ts_ms) and np.array_equal(keep, np.arange(len(keep))):
        return table  # already sorted and unique: no copy
    return table.take(pa.array(keep))
