"""The minute-bar file layouts the importer reads, as data, and how a file's layout is detected.

Four real layouts (see ../shared/data/README.md):

- ``kaggle_2018``: the book's Kaggle "bitcoin-historical-data" file of 2018,
  ``Timestamp,Open,High,Low,Close,Volume_(BTC),Volume_(Currency),Weighted_Price``, float epoch
  seconds, NaN rows for minutes without trades.
- ``kaggle``: the current Kaggle file, ``Timestamp,Open,High,Low,Close,Volume``, float epoch
  seconds, minutes without trades gap-filled with flat bars of volume 0.
- ``binance``: ``timestamp,open,high,low,close,volume`` with UTC strings ``2023-01-01 00:00:00``.
- ``bitstamp``: the same lowercase header with integer epoch seconds.

``binance`` and ``bitstamp`` share a header, so the first data row's timestamp decides.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

from rtcrypto.history.errors import SchemaNotRecognisedError

GZIP_MAGIC = b"\x1f\x8b"
CANONICAL_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


class TimestampFormat(StrEnum):
    """How a file writes the bar's open time."""

    epoch_seconds = "epoch_seconds"  # 1325412060 or 1325412060.0, UTC
    utc_datetime = "utc_datetime"  # 2023-01-01 00:00:00, UTC


@dataclass(frozen=True)
class BarSchema:
    """One file layout: its header, timestamp format and mapping onto the canonical columns."""

    name: str
    columns: tuple[str, ...]  # the header, in file order
    timestamp_format: TimestampFormat
    column_map: Mapping[str, str]  # canonical name -> file column; weighted_price is optional
    default_source: str  # the ``source=`` partition when the user names none
    description: str

    @property
    def has_weighted_price(self) -> bool:
        return "weighted_price" in self.column_map

    def describe(self) -> str:
        return f"{self.name} ({','.join(self.columns)}; {self.timestamp_format})"


def _schema(
    name: str,
    columns: tuple[str, ...],
    timestamp_format: TimestampFormat,
    canonical_names: tuple[str, ...],
    default_source: str,
    description: str,
) -> BarSchema:
    column_map = {
        canonical: column
        for canonical, column in zip(canonical_names, columns, strict=True)
        if canonical  # an empty name marks a file column the importer does not keep
    }
    return BarSchema(
        name=name,
        columns=columns,
        timestamp_format=timestamp_format,
        column_map=MappingProxyType(column_map),
        default_source=default_source,
        description=description,
    )


KAGGLE_2018 = _schema(
    "kaggle_2018",
    (
        "Timestamp",
        "Open",
        "High",
        "Low",
        "Close",
        "Volume_(BTC)",
        "Volume_(Currency)",
        "Weighted_Price",
    ),
    TimestampFormat.epoch_seconds,
    ("ts", "open", "high", "low", "close", "volume", "", "weighted_price"),
    "kaggle_bitstamp",
    "the book's Kaggle Bitstamp file of 2018: NaN rows for minutes without trades",
)
KAGGLE = _schema(
    "kaggle",
    ("Timestamp", "Open", "High", "Low", "Close", "Volume"),
    TimestampFormat.epoch_seconds,
    CANONICAL_COLUMNS,
    "kaggle_bitstamp",
    "the current Kaggle Bitstamp file: flat bars of volume 0 fill minutes without trades",
)
BINANCE = _schema(
    "binance",
    ("timestamp", "open", "high", "low", "close", "volume"),
    TimestampFormat.utc_datetime,
    CANONICAL_COLUMNS,
    "binance",
    "Binance klines: candle open time as a UTC string, volume in BTC",
)
BITSTAMP = _schema(
    "bitstamp",
    ("timestamp", "open", "high", "low", "close", "volume"),
    TimestampFormat.epoch_seconds,
    CANONICAL_COLUMNS,
    "bitstamp",
    "Bitstamp minute bars with a lowercase header and integer epoch seconds",
)
SCHEMAS: tuple[BarSchema, ...] = (KAGGLE_2018, KAGGLE, BINANCE, BITSTAMP)
SCHEMAS_BY_NAME: Mapping[str, BarSchema] = MappingProxyType({s.name: s for s in SCHEMAS})


def is_gzip(path: Path) -> bool:
    """True if the file starts with the gzip magic bytes (the extension is not trusted)."""
    with path.open("rb") as raw:
        return raw.read(2) == GZIP_MAGIC


def open_text(path: Path) -> io.TextIOBase:
    """The decompressed text of a plain or gzip file (UTF-8, a byte-order mark is skipped)."""
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


def _split_header(line: str) -> tuple[str, ...]:
    return tuple(part.strip().strip('"') for part in line.strip().split(","))


def _looks_like_epoch(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _expected_layouts() -> str:
    return "; ".join(schema.describe() for schema in SCHEMAS)


def detect_schema(path: Path) -> BarSchema:
    """The layout of ``path`` from its header (and, for the lowercase header, its first row).

    Raises ``SchemaNotRecognisedError`` naming the columns found and the layouts expected.
    """
    try:
        with open_text(path) as text:
            header_line = text.readline()
            first_row = text.readline()
    except (UnicodeDecodeError, EOFError, OSError) as error:  # binary junk, damaged gzip
        raise SchemaNotRecognisedError(f"{path}: not a readable text file ({error})") from error
    if not header_line.strip():
        raise SchemaNotRecognisedError(f"{path}: the file is empty; expected a header line")
    found = _split_header(header_line)
    candidates = [schema for schema in SCHEMAS if set(schema.columns) == set(found)]
    if not candidates:
        raise SchemaNotRecognisedError(
            f"{path}: unknown minute-bar header, columns found: {','.join(found)}; "
            f"expected one of: {_expected_layouts()}"
        )
    if len(candidates) == 1:
        return candidates[0]
    # binance and bitstamp share the lowercase header; the timestamp's spelling tells them apart.
    if not first_row.strip():
        raise SchemaNotRecognisedError(
            f"{path}: header {','.join(found)} but no data row to tell "
            f"{' from '.join(s.name for s in candidates)} apart"
        )
    first_value = dict(zip(found, _split_header(first_row), strict=False)).get("timestamp", "")
    wanted = (
        TimestampFormat.epoch_seconds
        if _looks_like_epoch(first_value)
        else TimestampFormat.utc_datetime
    )
    for schema in candidates:
        if schema.timestamp_format is wanted:
            return schema
    raise SchemaNotRecognisedError(f"{path}: no layout with {wanted} timestamps")  # unreachable
