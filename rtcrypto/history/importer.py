"""``import_file``: one minute-bar file (any known layout, plain or gzip) into the history store.

Steps: detect the layout from the header; fingerprint the decompressed content (sha256) and stop
if this content was already imported into the same source (a no-op); read in chunks; drop bad
rows by reason; sort; drop duplicate minutes; count gaps; write one Parquet part per month; then
commit the import to the manifest. The cleaned bars are held in memory until written (about
60 bytes per row: 0.4 GB for the full 7M-row Kaggle file). A line with the wrong number of
fields is not a bad row but a broken file: the import fails and names the line.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from rtcrypto.history import bars as checks
from rtcrypto.history.bars import Bars, FloatArray, Gap, GapStats
from rtcrypto.history.errors import HistoryError
from rtcrypto.history.schemas import BarSchema, TimestampFormat, detect_schema, is_gzip
from rtcrypto.history.store import (
    PRICE_BASIS_TYPICAL,
    PRICE_BASIS_WEIGHTED,
    ManifestEntry,
    append_manifest,
    check_source_name,
    manifest_lock,
    now_iso,
    read_manifest,
    resolve_history_dir,
    write_parts,
)

DEFAULT_CHUNK_ROWS = 250_000
ProgressCallback = Callable[[int, int], None]  # (bytes read so far, file size in bytes)


@dataclass(frozen=True)
class ImportReport:
    """What one import read, kept, dropped (by reason) and found; times in epoch ms, UTC."""

    file: str
    fingerprint: str  # sha256 of the decompressed content
    schema: str
    source: str
    already_imported: bool
    rows_read: int
    rows_kept: int
    dropped: dict[str, int]  # reason -> rows, every reason of ``bars.DROP_REASONS``
    out_of_order_rows: int  # rows earlier than a row before them; kept, sorted on import
    zero_volume_rows: int  # kept: minutes without trades that the file gap-filled
    gaps: int
    missing_minutes: int
    largest_gaps: tuple[Gap, ...]
    first_ts_ms: int | None
    last_ts_ms: int | None
    price_basis: str  # weighted_price, or typical_price = (high + low + close) / 3
    partitions: tuple[str, ...]
    seconds: float = 0.0

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def rows_per_s(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        document = dict(self.__dict__)
        document["largest_gaps"] = [gap.__dict__ for gap in self.largest_gaps]
        document["partitions"] = list(self.partitions)
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> ImportReport:
        return cls(
            **{
                **document,
                "largest_gaps": tuple(Gap(**gap) for gap in document["largest_gaps"]),
                "partitions": tuple(document["partitions"]),
            }
        )

    def lines(self) -> list[str]:
        """The report as short human-readable lines."""
        if self.already_imported:
            head = f"{self.file}: already imported into source={self.source} (no-op)"
        else:
            head = f"{self.file}: imported into source={self.source} ({self.schema} layout)"
        dropped = ", ".join(f"{reason} {count:,}" for reason, count in self.dropped.items())
        lines = [
            head,
            f"  rows read {self.rows_read:,}, kept {self.rows_kept:,}, "
            f"dropped {self.rows_dropped:,} ({dropped})",
            f"  out of order (sorted) {self.out_of_order_rows:,}, "
            f"zero-volume bars (kept) {self.zero_volume_rows:,}",
            f"  gaps {self.gaps:,} ({self.missing_minutes:,} minutes missing)",
            f"  first {_iso(self.first_ts_ms)}, last {_iso(self.last_ts_ms)}, "
            f"price = {self.price_basis}",
        ]
        lines += [
            f"    gap after {_iso(gap.after_ts_ms)}: {gap.missing_minutes:,} minutes"
            for gap in self.largest_gaps
        ]
        if not self.already_imported:
            lines.append(
                f"  {len(self.partitions)} month partition(s), {self.seconds:.2f} s, "
                f"{self.rows_per_s:,.0f} rows/s"
            )
        return lines


def _iso(ts_ms: int | None) -> str:
    if ts_ms is None:
        return "-"
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


# --- reading ------------------------------------------------------------------------------------


class _ByteCounter(io.RawIOBase):
    """A raw reader that counts the bytes taken from the file (compressed, for gzip)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer) or 0  # type: ignore[attr-defined]
        self.bytes_read += count
        return count


@contextmanager
def _open_counted(path: Path) -> Iterator[tuple[BinaryIO, _ByteCounter]]:
    """The decompressed bytes of ``path`` and a counter of the file bytes consumed."""
    with path.open("rb", buffering=0) as raw:
        counter = _ByteCounter(raw)  # type: ignore[arg-type]
        buffered: Any = io.BufferedReader(counter, buffer_size=1 << 20)
        stream: Any = gzip.GzipFile(fileobj=buffered) if is_gzip(path) else buffered
        yield stream, counter


def content_fingerprint(path: Path) -> str:
    """sha256 (hex) of the decompressed content: a file and its gzip copy share it."""
    digest = hashlib.sha256()
    opener = gzip.open if is_gzip(path) else open
    try:
        with opener(path, "rb") as stream:  # type: ignore[operator]
            while block := stream.read(1 << 20):
                digest.update(block)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise HistoryError(f"{path}: damaged gzip file ({error}); download it again") from error
    return digest.hexdigest()


@dataclass
class _Tally:
    rows_read: int = 0
    out_of_order: int = 0
    running_max_ms: int | None = None
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(checks.DROP_REASONS, 0))


def read_bars(
    path: Path,
    schema: BarSchema,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_progress: ProgressCallback | None = None,
) -> tuple[Bars, _Tally]:
    """The rows of ``path`` that pass the row checks, in file order, and the tally of the rest."""
    tally = _Tally()
    kept: list[Bars] = []
    size = path.stat().st_size
    ts_column = schema.column_map["ts"]
    with _open_counted(path) as (stream, counter):
        try:
            chunks = pd.read_csv(
                stream,
                chunksize=chunk_rows,
                encoding="utf-8-sig",
                skipinitialspace=True,
                dtype=(
                    {ts_column: str}
                    if schema.timestamp_format is TimestampFormat.utc_datetime
                    else None
                ),
            )
            for frame in chunks:
                frame.columns = [str(name).strip() for name in frame.columns]
                bars, valid_ts = checks.bars_from_frame(frame, schema)
                keep, dropped = checks.row_checks(bars, valid_ts)
                chunk_kept = bars.take(keep)
                late, tally.running_max_ms = checks.count_out_of_order(
                    chunk_kept.ts_ms, tally.running_max_ms
                )
                tally.rows_read += len(frame)
                tally.out_of_order += late
                for reason, count in dropped.items():
                    tally.dropped[reason] += count
                kept.append(chunk_kept)
                if on_progress is not None:
                    on_progress(counter.bytes_read, size)
        except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError, zlib.error) as error:
            raise HistoryError(f"{path}: not a readable CSV ({str(error).strip()})") from error
    return Bars.concat(kept, schema.has_weighted_price), tally


# --- the import ---------------------------------------------------------------------------------


def import_file(
    path: Path | str,
    *,
    history_dir: Path | None = None,
    source: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import one minute-bar file into ``history_dir`` (default: settings) under ``source``.

    ``source`` defaults to the layout's (``kaggle_bitstamp``, ``binance``, ``bitstamp``).
    Importing content that is already in that source changes nothing and returns the first
    import's report with ``already_imported=True``. Raises ``SchemaNotRecognisedError`` for an
    unknown header and ``HistoryError`` for an unreadable file.
    """
    started = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise HistoryError(f"{path}: no such file")
    schema = detect_schema(path)
    source = check_source_name(source or schema.default_source)
    fingerprint = content_fingerprint(path)
    folder = resolve_history_dir(history_dir)
    with manifest_lock(folder):
        previous = _previous_import(folder, fingerprint, source)
        if previous is not None:
            return replace(
                previous,
                file=str(path),
                already_imported=True,
                seconds=time.perf_counter() - started,
            )
        bars, tally, gaps = _clean_bars(path, schema, chunk_rows, on_progress)
        price, basis = _bar_price(bars)
        parts = write_parts(
            folder,
            source,
            fingerprint,
            bars,
            price,
            basis,
            {"price_basis": basis, "schema": schema.name, "fingerprint": fingerprint},
        )
        report = ImportReport(
            file=str(path),
            fingerprint=fingerprint,
            schema=schema.name,
            source=source,
            already_imported=False,
            rows_read=tally.rows_read,
            rows_kept=len(bars),
            dropped=tally.dropped,
            out_of_order_rows=tally.out_of_order,
            zero_volume_rows=int(np.count_nonzero(bars.volume == 0.0)),
            gaps=gaps.count,
            missing_minutes=gaps.missing_minutes,
            largest_gaps=gaps.largest,
            first_ts_ms=int(bars.ts_ms[0]) if len(bars) else None,
            last_ts_ms=int(bars.ts_ms[-1]) if len(bars) else None,
            price_basis=basis,
            partitions=parts,
            seconds=time.perf_counter() - started,
        )
        _commit_import(folder, path, report)
    return report


def _previous_import(folder: Path, fingerprint: str, source: str) -> ImportReport | None:
    """The report of an earlier import of this content into ``source``, if the manifest has one."""
    for entry in read_manifest(folder):
        if entry.fingerprint == fingerprint and entry.source == source:
            return ImportReport.from_dict(entry.report)
    return None


def _clean_bars(
    path: Path, schema: BarSchema, chunk_rows: int, on_progress: ProgressCallback | None
) -> tuple[Bars, _Tally, GapStats]:
    """The file's bars that pass the row checks, sorted and without duplicate minutes (counted
    in the tally), and the gaps between them."""
    bars, tally = read_bars(path, schema, chunk_rows, on_progress)
    bars, duplicates = checks.sort_and_deduplicate(bars)
    tally.dropped[checks.DUPLICATE_TS] = duplicates
    return bars, tally, checks.find_gaps(bars.ts_ms)


def _bar_price(bars: Bars) -> tuple[FloatArray, str]:
    """The price stored per bar and its basis: the file's weighted price when it has one,
    else the typical price (high + low + close) / 3."""
    if bars.weighted_price is not None:
        return bars.weighted_price, PRICE_BASIS_WEIGHTED
    return bars.typical_price(), PRICE_BASIS_TYPICAL


def _commit_import(folder: Path, path: Path, report: ImportReport) -> None:
    """Append the import to the manifest (next sequence number); call under the manifest lock."""
    entries = read_manifest(folder)
    append_manifest(
        folder,
        ManifestEntry(
            seq=max((entry.seq for entry in entries), default=0) + 1,
            fingerprint=report.fingerprint,
            source=report.source,
            file=str(path.resolve()),
            imported_at=now_iso(),
            parts=report.partitions,
            report=report.to_dict(),
        ),
    )
