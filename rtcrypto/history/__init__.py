"""Minute-bar history: import real files (Kaggle 2018 / current, Binance, Bitstamp) into
partitioned Parquet with a validation report, and load a time range back for training.

    from rtcrypto.history import import_file, load_history
    report = import_file("btcusd_1-min_data.csv.gz")
    frame = load_history("kaggle_bitstamp", "2016-01-01", "2017-01-01")
"""

from rtcrypto.history.bars import DROP_REASONS, Gap
from rtcrypto.history.errors import HistoryError, HistoryNotFoundError, SchemaNotRecognisedError
from rtcrypto.history.importer import ImportReport, content_fingerprint, import_file
from rtcrypto.history.info import SourceSummary, summarize
from rtcrypto.history.schemas import SCHEMAS, BarSchema, detect_schema
from rtcrypto.history.store import (
    HISTORY_COLUMNS,
    PRICE_BASIS_TYPICAL,
    PRICE_BASIS_WEIGHTED,
    load_history,
    resolve_history_dir,
    sources,
)
from rtcrypto.history.upsert import UpsertReport, upsert_bars

__all__ = [
    "DROP_REASONS",
    "HISTORY_COLUMNS",
    "PRICE_BASIS_TYPICAL",
    "PRICE_BASIS_WEIGHTED",
    "SCHEMAS",
    "BarSchema",
    "Gap",
    "HistoryError",
    "HistoryNotFoundError",
    "ImportReport",
    "SchemaNotRecognisedError",
    "SourceSummary",
    "UpsertReport",
    "content_fingerprint",
    "detect_schema",
    "import_file",
    "load_history",
    "resolve_history_dir",
    "sources",
    "summarize",
    "upsert_bars",
]
