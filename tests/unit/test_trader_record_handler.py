"""The trader's per-record handler: no record, however hostile, raises out of ``handle`` (issue 10:
one raised before the commit and was read again after every restart); each is dead-lettered with
its reason. Paper exchange and a list producer: no network."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtcrypto.config import Settings
from rtcrypto.trader.engine import MalformedRecordError, Trader, parse_liquidity_bytes
from rtcrypto.trader.service import TraderService
from tests.unit.test_trader_engine import Book, ListRecorder, make_trader, record


class ListProducer:
    """Keeps what the service sends, by topic."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.sent.append((topic, key, value))

    def flush(self, timeout_s: float) -> int:
        return 0

    def close(self, timeout_s: float) -> None:
        return None

    def dead_letters(self, settings: Settings) -> list[dict[str, Any]]:
        return [json.loads(v) for t, _, v in self.sent if t == settings.topics.deadletter]


def service_for(trader: Trader) -> tuple[TraderService, ListProducer]:
    producer = ListProducer()
    return TraderService(Settings(), trader, producer, clock_ms=lambda: 0), producer


def raw(minute: int = 1, **fields: Any) -> bytes:
    return json.dumps({**record(minute), **fields}).encode()


DEEP = b'{"symbol":"BTCUSD","window_start_ms":' + b"[" * 5000 + b"]" * 5000 + b"}"
HOSTILE = {
    "window_start_ms: Infinity": (
        b'{"symbol":"BTCUSD","window_start_ms":Infinity,"window_end_ms":1}',
        "Infinity",
    ),
    "window_end_ms: -Infinity": (
        b'{"symbol":"BTCUSD","window_start_ms":1,"window_end_ms":-Infinity}',
        "-Infinity",
    ),
    "NaN ratio": (raw(liquidity_ratio=None).replace(b"null", b"NaN"), "NaN"),
    "deep nesting": (DEEP, "nested deeper"),
    "integer above 2^63": (raw(window_end_ms=2**64 + 7), "outside"),
    "integer above 2^63 start": (raw(window_start_ms=2**63), "outside"),
    "beyond pandas' time range": (raw(window_start_ms=2**62, window_end_ms=2**62 + 60_000), ""),
    "float 1e999": (raw().replace(b'"liquidity_ratio": 1.0', b'"liquidity_ratio": 1e999'), ""),
    "string ratio 1e999999999": (raw(liquidity_ratio="1e999999999"), "out of range"),
    "symbol is an object": (raw(symbol={"a": [1]}), "symbol"),
    "float window": (raw(window_start_ms=1.5), "not an integer"),
    "not UTF-8": (b'{"symbol":"\xff\xfe"}', "UTF-8"),
    "empty": (b"", "invalid JSON"),
    "a list": (b"[1,2]", "not a JSON object"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_record_is_dead_lettered_with_its_reason_not_raised(
    tmp_path: Path, name: str
) -> None:
    value, reason = HOSTILE[name]
    trader = make_trader(tmp_path, ["buy", "buy"], Book())
    service, producer = service_for(trader)
    service.handle(value, "liquidity[0]@7")  # returns: the caller commits the offset
    letters = producer.dead_letters(service.settings)
    assert len(letters) == 1, name
    assert letters[0]["source"] == "liquidity[0]@7" and letters[0]["service"] == "trader"
    assert reason in letters[0]["reason"]
    assert service.stats.dead_letters == 1 and trader.orders_sent == 0
    # the next good record still trades: the service goes on
    service.handle(raw(1), "liquidity[0]@8")
    assert trader.orders_sent == 1 and len(producer.dead_letters(service.settings)) == 1


def test_a_record_that_breaks_the_decision_is_dead_lettered(tmp_path: Path) -> None:
    """Not the record's format: something downstream raises (here the recorder)."""

    class BrokenRecorder(ListRecorder):
        def liquidity(self, record: dict[str, Any]) -> None:
            raise OverflowError("value too large for an Elasticsearch long")

    trader = make_trader(tmp_path, ["buy"], Book(), recorder=BrokenRecorder())
    service, producer = service_for(trader)
    service.handle(raw(1), "liquidity[0]@1")
    letters = producer.dead_letters(service.settings)
    assert len(letters) == 1 and "OverflowError" in letters[0]["reason"]
    assert "processing failed" in letters[0]["reason"]


def test_a_failing_dead_letter_send_does_not_raise_either(tmp_path: Path) -> None:
    class DownProducer(ListProducer):
        def send(self, topic: str, key: bytes | None, value: bytes) -> None:
            raise BufferError("queue full")

    trader = make_trader(tmp_path, ["buy"], Book())
    service = TraderService(Settings(), trader, DownProducer(), clock_ms=lambda: 0)
    service.handle(b"{not json", "liquidity[0]@1")
    assert service.stats.dead_letters == 1


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=True, allow_infinity=True)
            | st.text(max_size=10),
            lambda children: (
                st.lists(children, max_size=3)
                | st.dictionaries(
                    st.sampled_from(
                        ["symbol", "window_start_ms", "window_end_ms", "liquidity_ratio", "x"]
                    ),
                    children,
                    max_size=5,
                )
            ),
            max_leaves=12,
        ).map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {
                "symbol": st.sampled_from(["BTCUSD", "btcusd", "ETHUSD", ""]),
                "window_start_ms": st.integers(min_value=-(2**70), max_value=2**70),
                "window_end_ms": st.integers(min_value=-(2**70), max_value=2**70),
                "liquidity_ratio": st.none() | st.floats() | st.text(max_size=12),
            }
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_no_value_raises_out_of_handle(
    tmp_path_factory: pytest.TempPathFactory, value: bytes
) -> None:
    trader = make_trader(tmp_path_factory.mktemp("t"), ["buy", "sell"] * 5, Book())
    service, producer = service_for(trader)
    service.handle(value, "liquidity[0]@1")
    try:
        parse_liquidity_bytes(value)
    except MalformedRecordError:
        assert service.stats.dead_letters == 1  # a parse failure always leaves a dead letter


def test_the_parser_keeps_what_it_accepted_before(tmp_path: Path) -> None:
    reading = parse_liquidity_bytes(raw(2, liquidity_ratio="1.25"))
    assert reading.liquidity_ratio == 1.25 and reading.symbol == "BTCUSD"
    assert parse_liquidity_bytes(raw(2, liquidity_ratio=None)).liquidity_ratio is None
    assert parse_liquidity_bytes(raw(2, symbol="btcusd")).symbol == "BTCUSD"
    assert Decimal(str(parse_liquidity_bytes(raw(2)).window_end_ms)) > 0


def test_the_fuzz_targets_seeds_are_real_records_and_pass() -> None:
    """fuzz/targets/trader_record.py: the seeds are the capture's minutes (BTCUSD among them,
    which the trader trades) and none is a finding; a processing failure would be one."""
    from fuzz.targets import trader_record

    seeds = trader_record.seed_corpus()
    readings = []
    for seed in seeds:
        trader_record.test_one_input(seed)
        try:
            readings.append(parse_liquidity_bytes(seed))
        except MalformedRecordError:
            continue
    assert len(readings) >= 10 and "BTCUSD" in {reading.symbol for reading in readings}
    assert all(
        reading.liquidity_ratio is None or reading.liquidity_ratio > 0 for reading in readings
    )
    service, _ = trader_record._service()
    assert service.trader.orders_sent >= 1, "a seed reaches the order"
    broken = service.trader.recorder
    original = broken.liquidity
    broken.liquidity = lambda record: 1 / 0  # type: ignore[method-assign]
    try:
        with pytest.raises(trader_record.DeadLetterFinding, match="ZeroDivisionError"):
            trader_record.test_one_input(next(seed for seed in seeds if b'"BTCUSD"' in seed))
    finally:
        broken.liquidity = original  # type: ignore[method-assign]
