"""History import on the real minute files in ../shared/data/minute, validation on crafted rows,
re-import no-op, the loader, and the ``rtc history`` commands."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from rtcrypto.cli.history import app as history_app
from rtcrypto.history import (
    HISTORY_COLUMNS,
    PRICE_BASIS_TYPICAL,
    PRICE_BASIS_WEIGHTED,
    HistoryError,
    HistoryNotFoundError,
    SchemaNotRecognisedError,
    detect_schema,
    import_file,
    load_history,
    summarize,
)
from tests.helpers import shared_minute_file

BINANCE_2021 = "binance_BTCUSDT_1m_2021-03-26_2021-04-30.csv.gz"
BINANCE_2023 = "binance_BTCUSDT_1m_2023-01-01_2023-01-28.csv.gz"
KAGGLE_HEAD = "kaggle_bitstamp_btcusd_1-min_head_2012-01-01_2012-01-08.csv.gz"
BITSTAMP_TAIL = "bitstamp_btcusd_1m_2025-01-06_tail.csv"
BITSTAMP_HEAD = "bitstamp_btcusd_1m_2025-01-07_head.csv"


def utc_ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)


@pytest.fixture
def history_dir(tmp_path: Path) -> Path:
    return tmp_path / "history"


@pytest.fixture
def kaggle_2018_file(tmp_path: Path) -> Path:
    """The book's 2018 Kaggle layout, derived from the real current-Kaggle head (no real 2018
    file is shipped).

    Derivation, row by row from ``kaggle_bitstamp_btcusd_1-min_head_2012-01-01_2012-01-08``:
    a minute with ``Volume`` 0 (Kaggle's gap-filled flat bar) becomes a NaN row, as the 2018 file
    had for minutes without trades; other minutes keep the real OHLC, ``Volume_(BTC)`` = the real
    ``Volume``, ``Weighted_Price`` = (High + Low) / 2 (exact where High == Low, an approximation
    otherwise: the real VWAP is not in the head) and ``Volume_(Currency)`` = ``Volume_(BTC)`` x
    ``Weighted_Price``. Timestamps stay float epoch seconds.
    """
    real = pd.read_csv(shared_minute_file(KAGGLE_HEAD))
    derived = pd.DataFrame({"Timestamp": real["Timestamp"]})
    traded = real["Volume"] > 0
    for column in ("Open", "High", "Low", "Close"):
        derived[column] = real[column].where(traded)
    derived["Volume_(BTC)"] = real["Volume"].where(traded)
    weighted = ((real["High"] + real["Low"]) / 2).round(5).where(traded)
    derived["Volume_(Currency)"] = derived["Volume_(BTC)"] * weighted
    derived["Weighted_Price"] = weighted
    path = tmp_path / "bitstampUSD_1-min_data_2012-01-01_to_2018-derived.csv.gz"
    with gzip.open(path, "wt", newline="") as handle:
        derived.to_csv(handle, index=False, na_rep="NaN")
    return path


# --- layout detection -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (BINANCE_2021, "binance"),
        (BINANCE_2023, "binance"),
        (KAGGLE_HEAD, "kaggle"),
        (BITSTAMP_TAIL, "bitstamp"),
        (BITSTAMP_HEAD, "bitstamp"),
    ],
)
def test_detects_the_layout_of_each_real_file(name: str, expected: str) -> None:
    assert detect_schema(shared_minute_file(name)).name == expected


def test_detects_the_2018_kaggle_layout(kaggle_2018_file: Path) -> None:
    assert detect_schema(kaggle_2018_file).name == "kaggle_2018"


def test_unknown_header_names_the_columns_found_and_expected(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("time,price,qty\n1,2,3\n")
    with pytest.raises(SchemaNotRecognisedError) as raised:
        import_file(path, history_dir=tmp_path / "h")
    message = str(raised.value)
    assert "columns found: time,price,qty" in message
    assert "Timestamp,Open,High,Low,Close,Volume_(BTC),Volume_(Currency),Weighted_Price" in message
    assert "timestamp,open,high,low,close,volume" in message
    assert not (tmp_path / "h" / "_manifest.json").exists()


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(SchemaNotRecognisedError, match="empty"):
        detect_schema(path)


# --- the real files -------------------------------------------------------------------------


def test_binance_2021_counts_both_exchange_halts(history_dir: Path) -> None:
    report = import_file(shared_minute_file(BINANCE_2021), history_dir=history_dir)
    assert (report.schema, report.source) == ("binance", "binance")
    assert report.rows_read == report.rows_kept == 50_000
    assert report.rows_dropped == 0
    # README: halts 2021-04-20 02:00-04:29 and 04-25 04:01-08:44, 434 minutes missing.
    assert (report.gaps, report.missing_minutes) == (2, 434)
    assert {(g.after_ts_ms, g.missing_minutes) for g in report.largest_gaps} == {
        (utc_ms("2021-04-20 01:59"), 150),
        (utc_ms("2021-04-25 04:00"), 284),
    }
    assert report.first_ts_ms == utc_ms("2021-03-26 03:00")
    assert report.last_ts_ms == utc_ms("2021-04-30 03:33")
    assert report.price_basis == PRICE_BASIS_TYPICAL
    assert report.partitions == (
        f"source=binance/year=2021/month=03/part-{report.fingerprint[:16]}.parquet",
        f"source=binance/year=2021/month=04/part-{report.fingerprint[:16]}.parquet",
    )

    frame = load_history("binance", history_dir=history_dir)
    assert list(frame.columns) == list(HISTORY_COLUMNS)
    assert len(frame) == 50_000 and frame["ts"].is_monotonic_increasing
    assert str(frame["ts"].dtype) == "datetime64[ms, UTC]"
    first = frame.iloc[0]
    assert (first.open, first.high, first.low, first.close) == (
        51696.7,
        51926.17,
        51696.7,
        51827.72,
    )
    assert first.volume == 73.9024
    assert np.isnan(first.weighted_price)
    assert first.price == pytest.approx((51926.17 + 51696.7 + 51827.72) / 3)
    assert set(frame["price_basis"]) == {PRICE_BASIS_TYPICAL}
    assert set(frame["source"]) == {"binance"}


def test_current_kaggle_head_keeps_gap_filled_bars(history_dir: Path) -> None:
    report = import_file(shared_minute_file(KAGGLE_HEAD), history_dir=history_dir)
    assert (report.schema, report.source) == ("kaggle", "kaggle_bitstamp")
    assert report.rows_read == report.rows_kept == 9_999
    assert report.zero_volume_rows == 9_943  # Kaggle's flat bars for minutes without trades
    assert (report.gaps, report.missing_minutes) == (0, 0)
    assert report.first_ts_ms == utc_ms("2012-01-01 10:01")
    assert report.last_ts_ms == utc_ms("2012-01-08 08:39")
    frame = load_history("kaggle_bitstamp", history_dir=history_dir)
    assert frame["price"].iloc[0] == pytest.approx(4.58)


def test_2018_kaggle_layout_drops_nan_rows_and_prices_by_weighted_price(
    kaggle_2018_file: Path, history_dir: Path
) -> None:
    report = import_file(kaggle_2018_file, history_dir=history_dir)
    assert (report.schema, report.source) == ("kaggle_2018", "kaggle_bitstamp")
    assert report.rows_read == 9_999
    assert report.dropped["nan_row"] == 9_943
    assert report.rows_kept == 56
    assert report.price_basis == PRICE_BASIS_WEIGHTED
    assert report.gaps > 0 and report.missing_minutes > 0
    frame = load_history("kaggle_bitstamp", history_dir=history_dir)
    assert len(frame) == 56
    np.testing.assert_array_equal(frame["price"], frame["weighted_price"])
    assert set(frame["price_basis"]) == {PRICE_BASIS_WEIGHTED}
    # 2012-01-04 21:00: the real bar 5.36/5.37/5.36/5.37, weighted (5.37 + 5.36) / 2.
    bar = frame.set_index("ts").loc[pd.Timestamp("2012-01-04 21:00", tz="UTC")]
    assert bar.weighted_price == pytest.approx(5.365)
    assert bar.price != pytest.approx((bar.high + bar.low + bar.close) / 3)


def test_both_kaggle_layouts_share_a_source_and_say_their_price_basis(
    kaggle_2018_file: Path, history_dir: Path
) -> None:
    import_file(shared_minute_file(KAGGLE_HEAD), history_dir=history_dir)
    import_file(kaggle_2018_file, history_dir=history_dir)  # newer: wins where both have a bar
    frame = load_history("kaggle_bitstamp", history_dir=history_dir)
    assert len(frame) == 9_999
    counts = frame["price_basis"].value_counts()
    assert (counts[PRICE_BASIS_WEIGHTED], counts[PRICE_BASIS_TYPICAL]) == (56, 9_943)


def test_bitstamp_plain_csv_files_join_into_one_source(history_dir: Path) -> None:
    tail = import_file(shared_minute_file(BITSTAMP_TAIL), history_dir=history_dir)
    head = import_file(shared_minute_file(BITSTAMP_HEAD), history_dir=history_dir)
    assert tail.source == head.source == "bitstamp"
    frame = load_history("bitstamp", history_dir=history_dir)
    assert len(frame) == 10
    assert frame["ts"].iloc[0] == pd.Timestamp("2025-01-06 23:56", tz="UTC")
    assert frame["ts"].iloc[-1] == pd.Timestamp("2025-01-07 00:05", tz="UTC")
    assert (frame["ts"].diff().dropna() == pd.Timedelta(minutes=1)).all()
    assert frame["close"].iloc[0] == 102227.0


def test_gzip_and_plain_copies_give_the_same_rows(tmp_path: Path) -> None:
    packed = shared_minute_file(BINANCE_2023)
    plain = tmp_path / "plain_copy.csv"
    plain.write_bytes(gzip.decompress(packed.read_bytes()))
    first = import_file(packed, history_dir=tmp_path / "a")
    second = import_file(plain, history_dir=tmp_path / "b")
    assert first.fingerprint == second.fingerprint
    pd.testing.assert_frame_equal(
        load_history("binance", history_dir=tmp_path / "a"),
        load_history("binance", history_dir=tmp_path / "b"),
    )


def test_chunked_reading_gives_the_same_result_and_reports_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = shared_minute_file(BINANCE_2023)
    progress: list[tuple[int, int]] = []
    small = import_file(
        path,
        history_dir=tmp_path / "small",
        chunk_rows=7_000,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    whole = import_file(path, history_dir=tmp_path / "whole")
    assert small.to_dict() | {"seconds": 0} == whole.to_dict() | {"seconds": 0}
    pd.testing.assert_frame_equal(
        load_history("binance", history_dir=tmp_path / "small"),
        load_history("binance", history_dir=tmp_path / "whole"),
    )
    assert len(progress) == 6  # 40,000 rows in chunks of 7,000
    done = [step[0] for step in progress]
    assert done == sorted(done) and done[-1] == path.stat().st_size
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""  # quiet: the library never prints


# --- validation on crafted rows -------------------------------------------------------------

CRAFTED = """timestamp,open,high,low,close,volume
1736208060,100.0,101.0,99.0,100.5,1.0
1736208120,100.5,102.0,100.0,101.0,2.0
1736208120,999.0,999.0,999.0,999.0,9.0
1736208300,101.0,101.5,100.5,101.2,1.5
1736208180,101.0,101.0,100.0,100.2,0.5
1736208360,,,,,
1736208420,101.0,100.0,99.0,99.5,1.0
1736208480,-1.0,101.0,-2.0,100.0,1.0
1736208540,101.0,102.0,100.0,101.0,-3.0
not-a-time,101.0,102.0,100.0,101.0,1.0
1736208630,101.0,102.0,100.0,101.0,1.0
1736208600,101.0,102.0,100.0,oops,1.0
1736208660,101.2,101.4,101.0,101.3,0.0
"""


def test_validation_counts_each_bad_row_once(tmp_path: Path) -> None:
    path = tmp_path / "crafted.csv"
    path.write_text(CRAFTED)
    report = import_file(path, history_dir=tmp_path / "h", source="crafted")
    assert report.schema == "bitstamp"
    assert report.rows_read == 13
    assert report.dropped == {
        "bad_timestamp": 2,  # "not-a-time" and ...630 (not on a whole minute)
        "nan_row": 2,  # the empty row and the unparsable close "oops"
        "invalid_ohlc": 3,  # high < open, negative prices, negative volume
        "duplicate_ts": 1,  # the second ...120 row
    }
    assert report.rows_kept == 5
    assert report.rows_kept + report.rows_dropped == report.rows_read
    assert report.out_of_order_rows == 1  # ...180 came after ...300
    assert report.zero_volume_rows == 1
    # kept minutes: 060 120 180 300 660 -> gaps 180..300 (1 missing), 300..660 (5 missing)
    assert (report.gaps, report.missing_minutes) == (2, 6)
    frame = load_history("crafted", history_dir=tmp_path / "h")
    assert frame["ts"].is_monotonic_increasing
    epoch_seconds = frame["ts"].astype("int64") // 1000  # ts is in milliseconds
    assert list(epoch_seconds) == [
        1736208060,
        1736208120,
        1736208180,
        1736208300,
        1736208660,
    ]
    assert frame.set_index(epoch_seconds)["close"][1736208120] == 101.0  # the first one kept


def test_report_lines_say_what_was_dropped(tmp_path: Path) -> None:
    path = tmp_path / "crafted.csv"
    path.write_text(CRAFTED)
    text = "\n".join(import_file(path, history_dir=tmp_path / "h").lines())
    for phrase in ("rows read 13", "kept 5", "duplicate_ts 1", "nan_row 2", "gaps 2"):
        assert phrase in text


def test_a_line_with_extra_fields_fails_the_import_and_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n1736208060,1,1,1,1,1\n1736208120,1,1,1,1,1,9\n"
    )
    with pytest.raises(HistoryError, match="line 3"):
        import_file(path, history_dir=tmp_path / "h")
    assert not (tmp_path / "h" / "_manifest.json").exists()


def test_bad_gzip_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv.gz"
    whole = gzip.compress(CRAFTED.encode())
    path.write_bytes(whole[: len(whole) // 2])  # truncated
    with pytest.raises(HistoryError):
        import_file(path, history_dir=tmp_path / "h")


# --- idempotency ----------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_reimport_of_the_same_content_is_a_noop(tmp_path: Path, history_dir: Path) -> None:
    packed = shared_minute_file(BINANCE_2021)
    first = import_file(packed, history_dir=history_dir)
    before = _snapshot(history_dir)
    mtimes = {p: p.stat().st_mtime_ns for p in history_dir.rglob("*.parquet")}

    again = import_file(packed, history_dir=history_dir)
    plain = tmp_path / "same_content.csv"
    plain.write_bytes(gzip.decompress(packed.read_bytes()))
    plain_again = import_file(plain, history_dir=history_dir)

    assert not first.already_imported
    assert again.already_imported and plain_again.already_imported
    assert again.rows_kept == first.rows_kept and again.partitions == first.partitions
    assert _snapshot(history_dir) == before
    assert {p: p.stat().st_mtime_ns for p in history_dir.rglob("*.parquet")} == mtimes
    manifest = json.loads((history_dir / "_manifest.json").read_text())
    assert len(manifest["imports"]) == 1
    assert len(load_history("binance", history_dir=history_dir)) == 50_000


# --- the loader -----------------------------------------------------------------------------


def test_load_history_filters_the_range(history_dir: Path) -> None:
    import_file(shared_minute_file(BINANCE_2021), history_dir=history_dir)
    frame = load_history("binance", "2021-04-01", "2021-04-02", history_dir=history_dir)
    assert len(frame) == 1_440
    assert frame["ts"].iloc[0] == pd.Timestamp("2021-04-01 00:00", tz="UTC")
    assert frame["ts"].iloc[-1] == pd.Timestamp("2021-04-01 23:59", tz="UTC")
    only_price = load_history(
        "binance",
        "2021-03-31 23:00",
        "2021-04-01 01:00",
        history_dir=history_dir,
        columns=["price"],
    )
    assert list(only_price.columns) == ["ts", "price"] and len(only_price) == 120
    empty = load_history("binance", "2030-01-01", history_dir=history_dir)
    assert empty.empty and list(empty.columns) == list(HISTORY_COLUMNS)


def test_overlapping_imports_keep_one_row_per_minute_newest_wins(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    import_file(shared_minute_file(BITSTAMP_TAIL), history_dir=folder)
    # A second file for 23:59 .. 00:01: the two minutes it shares with the tail differ.
    newer = tmp_path / "newer.csv"
    newer.write_text(
        "timestamp,open,high,low,close,volume\n"
        "1736207940,1.0,3.0,1.0,2.0,1.0\n"
        "1736208000,1.0,3.0,1.0,2.0,1.0\n"
        "1736208060,1.0,3.0,1.0,2.0,1.0\n"
    )
    import_file(newer, history_dir=folder)
    frame = load_history("bitstamp", history_dir=folder)
    assert len(frame) == 6
    assert list(frame["close"]) == [102227.0, 102232.0, 102280.0, 2.0, 2.0, 2.0]


def test_unknown_source_says_how_to_import(history_dir: Path) -> None:
    with pytest.raises(HistoryNotFoundError, match="rtc history import"):
        load_history("kaggle_bitstamp", history_dir=history_dir)


def test_parts_read_as_one_hive_partitioned_table(history_dir: Path) -> None:
    import_file(shared_minute_file(BINANCE_2021), history_dir=history_dir)
    import_file(shared_minute_file(BITSTAMP_TAIL), history_dir=history_dir)
    table = pq.read_table(history_dir)  # source/year/month come from the folder names
    assert table.num_rows == 50_005
    assert set(table.column("source").to_pylist()) == {"binance", "bitstamp"}
    metadata = pq.read_schema(next(history_dir.rglob("*.parquet"))).metadata
    assert metadata[b"rtcrypto.price_basis"] == b"typical_price"


def test_invalid_source_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="invalid source name"):
        import_file(shared_minute_file(BITSTAMP_TAIL), history_dir=tmp_path, source="../x")


# --- rtc history ----------------------------------------------------------------------------


def test_cli_import_and_info(tmp_path: Path) -> None:
    runner = CliRunner()
    folder = tmp_path / "h"
    result = runner.invoke(
        history_app,
        [
            "import",
            str(shared_minute_file(BITSTAMP_TAIL)),
            str(shared_minute_file(KAGGLE_HEAD)),
            "--dest",
            str(folder),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "imported into source=bitstamp" in result.output
    assert "zero-volume bars (kept) 9,943" in result.output

    again = runner.invoke(
        history_app, ["import", str(shared_minute_file(BITSTAMP_TAIL)), "--dest", str(folder)]
    )
    assert again.exit_code == 0 and "already imported" in again.output

    as_json = runner.invoke(
        history_app,
        ["import", str(shared_minute_file(BITSTAMP_TAIL)), "--dest", str(folder), "--json"],
    )
    assert json.loads(as_json.output)[0]["already_imported"] is True

    info = runner.invoke(history_app, ["info", "--dest", str(folder)])
    assert info.exit_code == 0 and "bitstamp" in info.output and "9,999" in info.output
    assert [s.source for s in summarize(folder)] == ["bitstamp", "kaggle_bitstamp"]


def test_cli_import_of_an_unknown_layout_exits_with_the_reason(tmp_path: Path) -> None:
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b\n1,2\n")
    result = CliRunner().invoke(history_app, ["import", str(odd), "--dest", str(tmp_path)])
    assert result.exit_code == 1
    assert "columns found: a,b" in result.output


def test_text_is_read_through_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + shared_minute_file(BITSTAMP_TAIL).read_bytes())
    report = import_file(path, history_dir=tmp_path / "h")
    assert report.rows_kept == 5
