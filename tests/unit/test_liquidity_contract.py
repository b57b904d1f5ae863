"""The one ``liquidity.minute.v1`` definition: ``rtcrypto.market.schemas.LiquidityMinute``.

The Spark job's output (schema, column order, JSON) and the trader's parser both come from it,
and a field added to it reaches both. The Spark side runs the job's own functions on a real
local Spark session over the recorded Gemini capture (``../shared/data``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcrypto.bounded import BoundsError
from rtcrypto.market.schemas import (
    LiquidityMinute,
    checked_values,
    record_fields,
)
from rtcrypto.trader.engine import MalformedRecordError, parse_liquidity, parse_liquidity_bytes
from tests.helpers import local_spark
from tests.unit.test_liquidity_spark import read_capture_changes, with_ticks_and_depth


@dataclass(frozen=True, slots=True, kw_only=True)
class LiquidityMinuteWithSpread(LiquidityMinute):
    """The contract with one field added (as a next schema version would add it)."""

    spread_usd: float | None = None


RECORD = {
    "schema_version": 1,
    "type": "liquidity",
    "key": "BTCUSD:1618677900000",
    "symbol": "BTCUSD",
    "window_start_ms": 1_618_677_900_000,
    "window_end_ms": 1_618_677_960_000,
    "window_start": "2021-04-17T16:45:00Z",
    "window_end": "2021-04-17T16:46:00Z",
    "ts_event_ms": 1_618_677_959_999,
    "bid_price_weighted_volume": 5.075645440919117e7,
    "ask_price_weighted_volume": 2.177834213340262e8,
    "liquidity_ratio": 4.2907532424997195,
    "event_count": 7893,
    "mid_price": 60728.425,
    "bid_depth": 60.27875553,
    "ask_depth": 54.42885843,
    "depth_imbalance": 0.050998333049102854,
    "depth_band_pct": 0.5,
    "emitted_at_ms": 1_700_000_000_000,
}


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    yield from local_spark("test-liquidity-contract")


@pytest.fixture(scope="module")
def parsed_capture(spark: Any) -> Any:
    """The capture's first 30 s as the job's parsed input (changes, ticks, book depth)."""
    from spark_jobs.liquidity import parse_orderbook

    records = with_ticks_and_depth(read_capture_changes())
    values = [(record.to_bytes().decode(),) for record in records]
    return parse_orderbook(spark.createDataFrame(values, "value string")).cache()


def _simple_types(schema: Any) -> list[tuple[str, str]]:
    return [(item.name, item.dataType.simpleString()) for item in schema.fields]


def test_the_contract_lists_every_field_with_type_and_unit_in_record_order() -> None:
    specs = record_fields(LiquidityMinute)
    assert [spec.name for spec in specs] == [item.name for item in fields(LiquidityMinute)]
    assert [spec.name for spec in specs[:4]] == ["schema_version", "type", "key", "symbol"]
    by_name = {spec.name: spec for spec in specs}
    assert by_name["schema_version"].default == 1 and not by_name["schema_version"].required
    assert by_name["type"].choices == ("liquidity",)
    assert by_name["liquidity_ratio"].nullable and by_name["liquidity_ratio"].kind is float
    assert not by_name["window_start_ms"].nullable and by_name["window_start_ms"].kind is int
    assert by_name["bid_price_weighted_volume"].unit == "USD"
    assert all(spec.unit for spec in specs if spec.name not in ("type", "symbol"))
    # a Python writer serialises it in the same order as the job
    record = LiquidityMinute(**{k: v for k, v in RECORD.items() if k not in ("type",)})
    assert list(json.loads(record.to_bytes())) == list(RECORD)


def test_an_annotation_outside_the_contract_types_is_refused() -> None:
    @dataclass
    class Bad:
        levels: list[float]

    with pytest.raises(TypeError, match="levels"):
        record_fields(Bad)


@pytest.mark.slow
def test_the_jobs_output_schema_and_json_come_from_the_contract(parsed_capture: Any) -> None:
    from rtcrypto.spark.contract import spark_schema
    from spark_jobs.liquidity import LIQUIDITY_FIELDS, build_liquidity, to_kafka_records

    liquidity = build_liquidity(parsed_capture)
    assert _simple_types(liquidity.schema) == _simple_types(spark_schema(LiquidityMinute))
    assert tuple(spec.name for spec in record_fields(LiquidityMinute)) == LIQUIDITY_FIELDS
    rows = to_kafka_records(liquidity).collect()
    assert len(rows) >= 4
    for row in rows:
        record = json.loads(row["value"])
        assert list(record) == list(LIQUIDITY_FIELDS)
        # what the job writes, the trader's parser accepts field by field
        reading = parse_liquidity_bytes(row["value"].encode())
        assert reading.values == record and reading.symbol == record["symbol"]


@pytest.mark.slow
def test_on_a_partitioned_topic_each_symbols_windows_go_to_one_partition(
    parsed_capture: Any,
) -> None:
    """The cluster topology's topics have several partitions: one partition per symbol keeps a
    symbol's windows in order for the trader; one partition leaves the partitioner to Kafka."""
    from spark_jobs.liquidity import build_liquidity, to_kafka_records

    liquidity = build_liquidity(parsed_capture)
    assert "partition" not in to_kafka_records(liquidity).columns
    rows = to_kafka_records(liquidity, partitions=6).collect()
    partitions: dict[str, set[int]] = {}
    for row in rows:
        partitions.setdefault(row["key"].split(":", 1)[0], set()).add(row["partition"])
    assert len(partitions) >= 2
    assert all(len(found) == 1 and 0 <= min(found) < 6 for found in partitions.values())
    assert len(set().union(*partitions.values())) > 1  # the symbols spread over partitions


@pytest.mark.slow
def test_a_field_added_to_the_contract_reaches_the_job_and_the_parser(
    parsed_capture: Any,
) -> None:
    from rtcrypto.spark.contract import spark_schema
    from spark_jobs.liquidity import build_liquidity, to_kafka_records

    contract = LiquidityMinuteWithSpread
    liquidity = build_liquidity(parsed_capture, contract=contract)
    assert _simple_types(liquidity.schema) == _simple_types(spark_schema(contract))
    assert liquidity.schema.fields[-1].name == "spread_usd"
    value = to_kafka_records(liquidity, contract).first()["value"]
    record = json.loads(value)
    assert list(record)[-1] == "spread_usd" and record["spread_usd"] is None  # its default

    # the parser of the extended contract checks and returns the new field ...
    reading = parse_liquidity_bytes(value.encode(), contract)
    assert "spread_usd" in reading.values
    assert parse_liquidity({**record, "spread_usd": 1.5}, contract).values["spread_usd"] == 1.5
    with pytest.raises(MalformedRecordError, match="spread_usd"):
        parse_liquidity({**record, "spread_usd": "wide"}, contract)
    # ... the parser of today's contract does not know it (an unknown key is left alone)
    assert "spread_usd" not in parse_liquidity({**record, "spread_usd": "wide"}).values


@pytest.mark.slow
def test_a_required_field_without_a_column_fails_with_its_name(parsed_capture: Any) -> None:
    from rtcrypto.spark.contract import ContractError
    from spark_jobs.liquidity import build_liquidity

    @dataclass(frozen=True, slots=True, kw_only=True)
    class WithRequiredField(LiquidityMinute):
        spread_usd: float

    with pytest.raises(ContractError, match=r"WithRequiredField\.spread_usd"):
        build_liquidity(parsed_capture, contract=WithRequiredField)


def test_the_parser_checks_every_contract_field_by_its_type() -> None:
    assert parse_liquidity(dict(RECORD)).values == RECORD
    bad = {
        "event_count": "many",
        "ts_event_ms": -1,
        "mid_price": float("inf"),
        "bid_price_weighted_volume": None,
        "type": "trade",
        "window_end": 17,
        "emitted_at_ms": True,
    }
    for name, value in bad.items():
        with pytest.raises(MalformedRecordError, match=name):
            parse_liquidity({**RECORD, name: value})
    # a partial record (only what the trader needs) is still accepted, as before
    partial = {key: RECORD[key] for key in ("symbol", "window_start_ms", "window_end_ms")}
    assert parse_liquidity(partial).values["liquidity_ratio"] is None


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=300),
    lambda children: st.lists(children, max_size=2) | st.dictionaries(st.text(), children),
    max_leaves=4,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([spec.name for spec in record_fields(LiquidityMinute)] + ["other"]),
        JSON_VALUES,
    )
)
def test_checked_values_returns_contract_typed_values_or_names_the_field(
    record: dict[str, Any],
) -> None:
    specs = {spec.name: spec for spec in record_fields(LiquidityMinute)}
    try:
        values = checked_values(record, LiquidityMinute)
    except BoundsError as error:
        assert any(name in str(error) for name in record if name in specs)
        return
    assert set(values) == set(record) - {"other"}
    for name, value in values.items():
        spec = specs[name]
        if value is None:
            assert spec.nullable
        else:
            assert type(value) is spec.kind
            assert not spec.choices or value in spec.choices
