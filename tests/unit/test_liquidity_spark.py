"""The Spark liquidity expressions on a static DataFrame of real capture data.

The records are the recorded Gemini BTCUSD and ETHUSD books (cryptofeed sample, 2021-04-17)
mapped onto ``gemini.orderbook.v1`` changes; the expected values come from the pure functions of
``rtcrypto.market.liquidity`` and the book depth from ``rtcrypto.market.orderbook``. The helpers here are also
used by ``tests/integration/test_liquidity_job.py``.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rtcrypto.config import get_settings
from rtcrypto.market.liquidity import (
    WINDOW_MS,
    liquidity_ratio,
    price_weighted_volume,
    window_start_ms,
)
from rtcrypto.market.orderbook import OrderBook
from rtcrypto.market.schemas import BookChange, BookDepth, Side, TimeTick
from tests.helpers import local_spark

CAPTURE_SYMBOLS = ("BTCUSD", "ETHUSD")
DEPTH_BAND_PCT = 0.5
RELATIVE_TOLERANCE = 1e-9

OrderbookRecord = BookChange | TimeTick | BookDepth


# --------------------------------------------------------------------------------------------
# Real data as gemini.orderbook.v1 records
# --------------------------------------------------------------------------------------------


def capture_path() -> Path:
    return get_settings().simulator_capture


def read_capture_changes(
    symbols: Iterable[str] = CAPTURE_SYMBOLS, path: Path | None = None
) -> list[BookChange]:
    """The capture's Gemini v2 ``l2_updates`` as v1 ``change`` records, in receive order.

    remaining = the level's new size, delta = the difference from its previous size, reason
    ``initial`` for each symbol's first (snapshot) message; event time = receive time (v2 book
    updates carry no exchange time).
    """
    wanted = set(symbols)
    books: dict[str, OrderBook] = {}
    changes: list[BookChange] = []
    with gzip.open(path or capture_path(), "rt") as capture:
        for sequence, line in enumerate(capture):
            stamp, _, frame = line.partition(": ")
            if " <-> " in line or " <- " in line or not frame.strip():
                continue
            message = json.loads(frame)
            symbol = message.get("symbol")
            if message.get("type") != "l2_updates" or symbol not in wanted:
                continue
            reason = "initial" if symbol not in books else None
            book = books.setdefault(symbol, OrderBook(symbol))
            ts_ms = int(float(stamp) * 1000)
            for index, (gemini_side, price, quantity) in enumerate(message["changes"]):
                side: Side = "bid" if gemini_side == "buy" else "ask"
                previous = book.apply(side, Decimal(price), Decimal(quantity))
                delta = Decimal(quantity) - previous
                changes.append(
                    BookChange(
                        symbol=symbol,
                        side=side,
                        price=price,
                        remaining=quantity,
                        delta=str(delta),
                        reason=reason or ("place" if delta > 0 else "cancel"),
                        event_id=sequence,
                        event_index=index,
                        socket_sequence=sequence,
                        ts_event_ms=ts_ms,
                        ts_receive_ms=ts_ms,
                    )
                )
    return changes


def with_ticks_and_depth(
    changes: list[BookChange], until_ms: int | None = None, band_pct: float = DEPTH_BAND_PCT
) -> list[OrderbookRecord]:
    """Interleave what the ingest adds: a tick per symbol and second, and at each minute's last
    millisecond the depth of the maintained book; sorted by event time (changes first on ties)."""
    if not changes:
        return []
    first_ms = min(change.ts_event_ms for change in changes)
    last_ms = until_ms if until_ms is not None else max(c.ts_event_ms for c in changes)
    symbols = sorted({change.symbol for change in changes})
    records: list[OrderbookRecord] = list(changes)
    for symbol in symbols:
        for second_ms in range(first_ms - first_ms % 1000 + 1000, last_ms + 1, 1000):
            records.append(TimeTick(symbol, second_ms, second_ms, "clock"))
    records.sort(key=lambda record: record.ts_event_ms)
    return _add_book_depth(records, symbols, last_ms, band_pct)


def _add_book_depth(
    records: list[OrderbookRecord], symbols: list[str], last_ms: int, band_pct: float
) -> list[OrderbookRecord]:
    books = {symbol: OrderBook(symbol) for symbol in symbols}
    out: list[OrderbookRecord] = []
    next_end = window_start_ms(records[0].ts_event_ms) + WINDOW_MS - 1
    for record in records:
        while record.ts_event_ms > next_end:
            out.extend(_depth_records(books, next_end, band_pct))
            next_end += WINDOW_MS
        if isinstance(record, BookChange):
            books[record.symbol].apply(
                record.side, Decimal(record.price), Decimal(record.remaining)
            )
        out.append(record)
    if last_ms >= next_end:
        out.extend(_depth_records(books, next_end, band_pct))
    return out


def _depth_records(
    books: dict[str, OrderBook], end_ms: int, band_pct: float
) -> Iterator[BookDepth]:
    for symbol, book in books.items():
        depth = book.depth(band_pct)
        yield BookDepth(
            symbol=symbol,
            window_start_ms=window_start_ms(end_ms),
            ts_event_ms=end_ms,
            ts_receive_ms=end_ms + 1,
            mid_price=depth.mid_price,
            bid_depth=depth.bid_depth,
            ask_depth=depth.ask_depth,
            depth_imbalance=depth.depth_imbalance,
            band_pct=band_pct,
        )


# --------------------------------------------------------------------------------------------
# The plain-Python recomputation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpectedWindow:
    symbol: str
    window_start_ms: int
    bid_price_weighted_volume: float
    ask_price_weighted_volume: float
    liquidity_ratio: float | None
    event_count: int
    depth: BookDepth | None


def expected_windows(records: Iterable[OrderbookRecord]) -> dict[str, ExpectedWindow]:
    """Windows keyed like the output (``symbol:window_start_ms``) from the pure functions."""
    levels: dict[tuple[str, int, str], list[tuple[float, float]]] = defaultdict(list)
    counts: dict[tuple[str, int], int] = defaultdict(int)
    depths: dict[tuple[str, int], BookDepth] = {}
    for record in records:
        window = (record.symbol, window_start_ms(record.ts_event_ms))
        if isinstance(record, BookChange):
            levels[(*window, record.side)].append((float(record.price), float(record.remaining)))
            counts[window] += 1
        elif isinstance(record, BookDepth):
            latest = depths.get(window)
            if latest is None or record.ts_event_ms > latest.ts_event_ms:
                depths[window] = record
    expected = {}
    for symbol, start in sorted(set(counts) | set(depths)):
        bid = price_weighted_volume(levels[(symbol, start, "bid")])
        ask = price_weighted_volume(levels[(symbol, start, "ask")])
        expected[f"{symbol}:{start}"] = ExpectedWindow(
            symbol=symbol,
            window_start_ms=start,
            bid_price_weighted_volume=bid,
            ask_price_weighted_volume=ask,
            liquidity_ratio=liquidity_ratio(ask, bid),
            event_count=counts[(symbol, start)],
            depth=depths.get((symbol, start)),
        )
    return expected


def _close(actual: float | None, expected: float | None) -> bool:
    if actual is None or expected is None:
        return actual is expected
    return math.isclose(actual, expected, rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12)


def assert_window_matches(record: dict[str, Any], expected: ExpectedWindow) -> None:
    """One output record (as parsed JSON) against its recomputation."""
    key = f"{expected.symbol}:{expected.window_start_ms}"
    assert record["key"] == key
    assert record["schema_version"] == 1 and record["type"] == "liquidity"
    assert record["symbol"] == expected.symbol
    assert record["window_start_ms"] == expected.window_start_ms
    assert record["window_end_ms"] == expected.window_start_ms + WINDOW_MS
    assert record["ts_event_ms"] == record["window_end_ms"] - 1
    assert record["event_count"] == expected.event_count, key
    for field in ("bid_price_weighted_volume", "ask_price_weighted_volume", "liquidity_ratio"):
        assert _close(record[field], getattr(expected, field)), (key, field, record[field])
    if record["liquidity_ratio"] is not None:
        assert _close(
            record["liquidity_ratio"],
            record["ask_price_weighted_volume"] / record["bid_price_weighted_volume"],
        )
    depth = expected.depth
    for field in ("mid_price", "bid_depth", "ask_depth", "depth_imbalance"):
        wanted = getattr(depth, field) if depth else None
        assert _close(record[field], wanted), (key, field, record[field], wanted)
    assert record["depth_band_pct"] == (depth.band_pct if depth else None)


# --------------------------------------------------------------------------------------------
# The Spark test
# --------------------------------------------------------------------------------------------

MALFORMED_VALUES = {
    "{not json": "not a JSON object",
    '"a string"': "not a JSON object",
    '{"symbol": "BTCUSD", "ts_event_ms": 1618677950000}': "missing type",
    '{"type": "tick", "symbol": "BTCUSD"}': "missing symbol or ts_event_ms",
    '{"type": "change", "symbol": "BTCUSD", "side": "buy", "price": "1", "remaining": "1",'
    ' "ts_event_ms": 1618677950000}': "change: side must be bid or ask",
    '{"type": "change", "symbol": "BTCUSD", "side": "bid", "price": "abc", "remaining": "1",'
    ' "ts_event_ms": 1618677950000}': "change: price is not a decimal",
    '{"type": "change", "symbol": "BTCUSD", "side": "ask", "price": "1", "remaining": "NaN",'
    ' "ts_event_ms": 1618677950000}': "change: remaining is not a decimal",
}
UNKNOWN_TYPE_VALUE = '{"type": "heartbeat", "symbol": "BTCUSD", "ts_event_ms": 1618677950000}'


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    yield from local_spark("test-liquidity-spark")


def _stale_depth(depth: BookDepth) -> BookDepth:
    """An earlier depth record of the same window with other values (must lose to ``depth``)."""
    return BookDepth(
        symbol=depth.symbol,
        window_start_ms=depth.window_start_ms,
        ts_event_ms=depth.ts_event_ms - 30_000,
        ts_receive_ms=depth.ts_receive_ms,
        mid_price=1.0,
        bid_depth=1.0,
        ask_depth=3.0,
        depth_imbalance=-0.5,
        band_pct=depth.band_pct,
    )


@pytest.mark.slow
def test_build_liquidity_matches_pure_functions(spark: Any) -> None:
    from spark_jobs.liquidity import (
        build_dead_letters,
        build_liquidity,
        parse_orderbook,
        to_kafka_records,
    )

    changes = read_capture_changes()
    records = with_ticks_and_depth(changes)
    depths = [record for record in records if isinstance(record, BookDepth)]
    # The stale depth arrives after the real one: the latest event time wins, not arrival.
    records_in = records + [_stale_depth(depth) for depth in depths]
    values: list[str | None] = [record.to_bytes().decode() for record in records_in]
    values += [*MALFORMED_VALUES, UNKNOWN_TYPE_VALUE, None]
    rows = [("gemini.orderbook.v1", 0, offset, value) for offset, value in enumerate(values)]
    raw = spark.createDataFrame(
        rows, "topic string, partition int, offset long, value string"
    ).selectExpr("*", "timestamp_millis(1618677990000) AS timestamp")

    parsed = parse_orderbook(raw).cache()
    output = to_kafka_records(build_liquidity(parsed, watermark="2 seconds"))
    produced = {row["key"]: json.loads(row["value"]) for row in output.collect()}
    expected = expected_windows(records)

    # The 31 s capture spans two minutes; only the first one ends inside it (has a depth).
    assert len(changes) > 10_000 and len(depths) == len(CAPTURE_SYMBOLS)
    assert sorted(produced) == sorted(expected)
    assert len(expected) == len(CAPTURE_SYMBOLS) * 2
    assert sum(record["mid_price"] is None for record in produced.values()) == 2
    for key, record in produced.items():
        assert_window_matches(record, expected[key])
        assert record["window_start"].endswith(":00Z") and record["window_end"].endswith("Z")
        assert set(record) >= {"emitted_at_ms", "depth_band_pct"}

    dead = [json.loads(row["value"]) for row in build_dead_letters(parsed, "t").collect()]
    reasons = sorted(letter["reason"] for letter in dead)
    assert reasons == sorted([*MALFORMED_VALUES.values(), "empty value"])
    assert {letter["raw"] for letter in dead} >= set(MALFORMED_VALUES)
    parsed.unpersist()


@pytest.mark.slow
def test_tick_only_window_is_skipped_and_zero_bid_gives_no_ratio(spark: Any) -> None:
    from spark_jobs.liquidity import build_liquidity, parse_orderbook

    start = 1_618_677_900_000
    records: list[OrderbookRecord] = [
        BookChange("BTCUSD", "bid", "100.5", "2", "2", "place", 1, 0, 1, start + 5, start + 5),
        BookChange("ETHUSD", "ask", "10", "3", "3", "place", 2, 0, 2, start + 7, start + 7),
        TimeTick("BTCUSD", start + 61_000, start + 61_000, "clock"),
    ]
    raw = spark.createDataFrame([(r.to_bytes().decode(),) for r in records], "value string")
    result = {row["key"]: row for row in build_liquidity(parse_orderbook(raw)).collect()}

    assert sorted(result) == [f"BTCUSD:{start}", f"ETHUSD:{start}"]  # no tick-only minute
    btc, eth = result[f"BTCUSD:{start}"], result[f"ETHUSD:{start}"]
    assert (btc["bid_price_weighted_volume"], btc["ask_price_weighted_volume"]) == (201.0, 0.0)
    assert btc["liquidity_ratio"] == 0.0 and btc["event_count"] == 1
    assert (eth["bid_price_weighted_volume"], eth["ask_price_weighted_volume"]) == (0.0, 30.0)
    assert eth["liquidity_ratio"] is None
    assert btc["mid_price"] is None and btc["depth_imbalance"] is None


def test_submit_command_carries_master_jars_conf_and_job_args(tmp_path: Path) -> None:
    from rtcrypto.spark import submit as spark

    config = spark.LiquidityJobConfig.from_settings(get_settings()).with_overrides(
        checkpoint=tmp_path / "ck", deadletter_topic="", max_offsets_per_trigger=500
    )
    jars = [tmp_path / "spark-sql-kafka-0-10_2.13-4.2.0.jar", tmp_path / "kafka-clients.jar"]
    command = spark.build_submit_command(
        config, jars, spark_submit=Path("/opt/spark-submit"), job_script=Path("/job.py")
    )

    assert command[:3] == ["/opt/spark-submit", "--master", "local[2]"]
    assert command[command.index("--jars") + 1] == ",".join(str(jar) for jar in jars)
    assert "spark.sql.shuffle.partitions=2" in command
    job_args = command[command.index("/job.py") + 1 :]
    assert job_args[job_args.index("--checkpoint") + 1] == str(tmp_path / "ck")
    assert job_args[job_args.index("--deadletter-topic") + 1] == ""
    assert job_args[job_args.index("--watermark") + 1] == get_settings().spark_watermark
    assert job_args[job_args.index("--max-offsets-per-trigger") + 1] == "500"
    assert spark.submit_env({})["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert spark.find_spark_submit().name == "spark-submit"


def test_job_arguments_round_trip_through_the_job_parser(tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    from rtcrypto.spark import submit as spark
    from spark_jobs.liquidity import parse_args

    config = spark.LiquidityJobConfig.from_settings(get_settings()).with_overrides(
        checkpoint=tmp_path / "ck", trigger="5 seconds", bootstrap="127.0.0.1:1"
    )
    options = parse_args(config.job_args())

    assert options.checkpoint == tmp_path / "ck" and options.trigger == "5 seconds"
    assert options.bootstrap == "127.0.0.1:1" and options.watermark == config.watermark
    assert options.input_topic == get_settings().topics.orderbook
