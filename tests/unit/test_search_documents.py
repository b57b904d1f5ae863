"""Elasticsearch documents: deterministic ids, Decimal -> number (+ exact strings), and mappings
that cover every field a builder emits with a compatible type."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import orjson
import pandas as pd
import pytest

from rtcrypto.exchange.base import OrderStatus
from rtcrypto.market.schemas import Heartbeat
from rtcrypto.search import documents as docs
from rtcrypto.search.documents import SearchAction
from rtcrypto.search.indices import INDEX_SPECS, RETIRED_KINDS, template_body
from rtcrypto.trading.ledger import Ledger
from rtcrypto.trading.order_types import OrderRequest, TopOfBook
from rtcrypto.trading.strategy import OrderIntent, PriceReference, Side, TimeInForce
from spark_jobs.liquidity import LIQUIDITY_FIELDS

D = Decimal
T0 = 1_618_617_600_000  # 2021-04-17T00:00:00Z


def _ledger_with_round_trip() -> Ledger:
    ledger = Ledger(D("10000"))
    buy = OrderIntent(
        Side.buy, PriceReference.ask, TimeInForce.immediate_or_cancel, quote_amount=D("9000")
    )
    ledger.execute(buy, D("61000.25"), ts_event_ms=T0)
    sell = OrderIntent(
        Side.sell,
        PriceReference.bid,
        TimeInForce.immediate_or_cancel,
        base_quantity=ledger.balances.btc,
    )
    ledger.execute(sell, D("61500.5"), ts_event_ms=T0 + 5 * 60_000)
    return ledger


def _request() -> OrderRequest:
    return OrderRequest("rtc-v1-1618617600000-buy", "btcusd", Side.buy, D("0.1"), D("61000.25"))


def _status(executed: str = "0.1") -> OrderStatus:
    return OrderStatus(
        order_id="73797746498585286",
        client_order_id="rtc-v1-1618617600000-buy",
        symbol="btcusd",
        side=Side.buy,
        limit_price=D("61000.25"),
        original_quantity=D("0.1"),
        executed_quantity=D(executed),
        average_execution_price=D("61000.25") if D(executed) else D(0),
        fee_usd=D("15.2500625") if D(executed) else D(0),
        is_live=False,
        is_cancelled=D(executed) < D("0.1"),
        ts_ms=T0 + 120,
    )


LIQUIDITY_RECORD: dict[str, Any] = {
    "schema_version": 1,
    "type": "liquidity",
    "key": f"BTCUSD:{T0}",
    "symbol": "BTCUSD",
    "window_start_ms": T0,
    "window_end_ms": T0 + 60_000,
    "window_start": "2021-04-17T00:00:00.000Z",
    "window_end": "2021-04-17T00:01:00.000Z",
    "ts_event_ms": T0 + 59_999,
    "bid_price_weighted_volume": 2_014_885.124399037,
    "ask_price_weighted_volume": 2_779_490.687817629,
    "liquidity_ratio": 1.3794,
    "event_count": 929,
    "mid_price": 61_000.5,
    "bid_depth": 12.5,
    "ask_depth": 9.25,
    "depth_imbalance": 0.1486,
    "depth_band_pct": 0.5,
    "emitted_at_ms": T0 + 64_000,
}


def every_document() -> dict[str, SearchAction]:
    """One document of every kind (and the order in each of its states), built from domain types."""
    ledger = _ledger_with_round_trip()
    trip = ledger.round_trips[0]
    book = TopOfBook("btcusd", D("61000.25"), D("1.5"), D("61001.75"), D("0.25"), T0 + 250)
    heartbeat = Heartbeat("ingest", "host-1:4242", T0 + 5_000, 1_000, T0 + 4_990, 10, gaps=1)
    return {
        "order_submitted": docs.order_document(
            _request(), None, trading_mode="paper", forecast_version="v1", ts_ms=T0 + 5
        ),
        "order_filled": docs.order_document(
            _request(), _status(), trading_mode="paper", forecast_version="v1", exchange="paper"
        ),
        "order_cancelled": docs.order_document(
            None, _status("0"), trading_mode="sandbox", forecast_version=None
        ),
        "fill": docs.fill_document(
            ledger.fills[0],
            client_order_id="rtc-v1-1618617600000-buy",
            symbol="btcusd",
            trading_mode="paper",
            forecast_version="v1",
        ),
        "score": docs.score_document(
            trip,
            exit_client_order_id="rtc-v1-1618617900000-sell",
            entry_client_order_id="rtc-v1-1618617600000-buy",
            symbol="btcusd",
            trading_mode="paper",
            forecast_version="v1",
        ),
        "balances": docs.balances_document(
            ledger.balances.usd,
            ledger.balances.btc,
            T0 + 60_000,
            trading_mode="live",
            mark_price=D("61500.5"),
        ),
        "ticker": docs.ticker_document(book),
        "liquidity": docs.liquidity_document(LIQUIDITY_RECORD),
        "forecast": docs.forecast_document(
            "v1", T0, math.log(61000.0), math.log(60000.0), math.log(62000.0), "buy"
        ),
        "heartbeat": docs.heartbeat_document(_asdict(heartbeat) | {"watermark_lag_ms": 2_000}),
        "restart": docs.restart_document("ingest", T0 + 9_000, reason="heartbeat stale", pid=4242),
    }


def _asdict(value: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(value)


def _kind_of(action: SearchAction) -> str:
    for kind, spec in INDEX_SPECS.items():
        if action.index == spec.index_name():
            return kind
    raise AssertionError(f"no index spec for {action.index}")


def _walk(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _walk(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _walk(item)]
    return [value]


# --- ids -----------------------------------------------------------------------------------------


def test_ids_are_the_documented_domain_keys() -> None:
    built = every_document()

    assert {name: action.id for name, action in built.items()} == {
        "order_submitted": "rtc-v1-1618617600000-buy",
        "order_filled": "rtc-v1-1618617600000-buy",
        "order_cancelled": "rtc-v1-1618617600000-buy",
        "fill": "rtc-v1-1618617600000-buy:0",
        "score": "rtc-v1-1618617900000-sell",
        "balances": f"live:{T0 + 60_000}",
        "ticker": f"BTCUSD:{T0 + 250}",
        "liquidity": f"BTCUSD:{T0}",
        "forecast": f"v1:{T0}",
        "heartbeat": f"ingest:host-1:4242:{T0 + 5_000}",
        "restart": f"ingest:{T0 + 9_000}",
    }


def test_building_twice_gives_identical_actions() -> None:
    first, second = every_document(), every_document()

    assert first == second
    for name in first:  # the same bytes too: a re-send overwrites with the same document
        assert orjson.dumps(first[name].source) == orjson.dumps(second[name].source)


def test_fill_id_prefers_the_exchange_trade_id_then_the_sequence() -> None:
    assert docs.fill_id("cid", trade_id=987654) == "cid:trade:987654"
    assert docs.fill_id("cid", sequence=3) == "cid:3"
    with pytest.raises(ValueError, match="client_order_id"):
        docs.fill_id("")


def test_an_order_the_trader_did_not_send_is_keyed_by_the_exchange_id() -> None:
    status = _status()
    foreign = OrderStatus(**{**_asdict(status), "client_order_id": None})

    action = docs.order_document(None, foreign, trading_mode="live", forecast_version=None)

    assert action.id == "exchange:73797746498585286"


def test_a_replayed_liquidity_record_keeps_its_id_even_when_emitted_later() -> None:
    replayed = docs.liquidity_document({**LIQUIDITY_RECORD, "emitted_at_ms": T0 + 99_000})

    assert replayed.id == docs.liquidity_document(LIQUIDITY_RECORD).id


# --- values --------------------------------------------------------------------------------------


def test_decimals_become_numbers_with_exact_strings_beside_them() -> None:
    ledger = _ledger_with_round_trip()
    trip = ledger.round_trips[0]
    score = every_document()["score"].source

    assert isinstance(score["pnl_usd"], float)
    assert score["pnl_usd"] == float(trip.pnl_usd)
    assert D(score["pnl_usd_exact"]) == trip.pnl_usd  # exact, not the float
    assert "E" not in score["pnl_usd_exact"]
    assert score["profitable"] is (trip.pnl_usd > 0)
    assert docs.exact(D("0.00000001")) == "0.00000001"
    assert docs.exact(D("-1.5E-7")) == "-0.00000015"  # exponent notation becomes plain digits
    assert docs.number(D("-1.5E-7")) == pytest.approx(-1.5e-7)


def test_no_decimal_or_non_finite_value_reaches_a_source() -> None:
    for name, action in every_document().items():
        for leaf in _walk(action.source):
            assert not isinstance(leaf, Decimal), name
            if isinstance(leaf, float):
                assert math.isfinite(leaf), name
        orjson.dumps(action.source)  # serialisable as it is


def test_non_finite_numbers_and_unknown_modes_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        docs.number(D("NaN"))
    with pytest.raises(ValueError, match="finite"):
        docs.number(float("inf"))
    with pytest.raises(TypeError):
        docs.exact(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="trading mode"):
        docs.order_document(_request(), None, trading_mode="real", forecast_version="v", ts_ms=1)


def test_trading_mode_and_forecast_version_label_orders_fills_and_scores() -> None:
    built = every_document()
    for name in ("order_filled", "fill", "score"):
        assert built[name].source["trading_mode"] == "paper", name
        assert built[name].source["forecast_version"] == "v1", name


def test_order_states_follow_the_exchange_report() -> None:
    built = every_document()
    assert built["order_submitted"].source["state"] == "submitted"
    assert built["order_filled"].source["state"] == "filled"
    assert built["order_cancelled"].source["state"] == "cancelled"
    assert docs.order_state(_status("0.04")) == "partially_filled"


def test_timestamps_are_iso_utc_with_milliseconds() -> None:
    assert docs.iso_utc_ms(T0 + 123) == "2021-04-17T00:00:00.123Z"
    assert every_document()["ticker"].source["@timestamp"] == "2021-04-17T00:00:00.250Z"


def test_forecast_prices_are_exp_of_the_log_forecast() -> None:
    source = every_document()["forecast"].source
    assert source["price_forecast"] == pytest.approx(61000.0)
    assert source["price_forecast_lower"] == pytest.approx(60000.0)
    assert source["price_forecast_upper"] == pytest.approx(62000.0)


def test_forecast_documents_from_a_published_frame() -> None:
    frame = pd.DataFrame(
        {
            "ds": pd.date_range("2021-04-17", periods=3, freq="min", tz="UTC"),
            "yhat": [11.0, 11.1, 11.05],
            "yhat_lower": [10.9, 11.0, 10.95],
            "yhat_upper": [11.1, 11.2, 11.15],
            "side": ["buy", "sell", "buy"],
        }
    )

    actions = list(docs.forecast_documents(frame, "20261127T000000Z-abc"))

    assert [action.id for action in actions] == [
        f"20261127T000000Z-abc:{T0 + minute * 60_000}" for minute in range(3)
    ]
    assert [action.source["side"] for action in actions] == ["buy", "sell", "buy"]


def test_heartbeat_extras_are_kept_under_details() -> None:
    source = every_document()["heartbeat"].source
    assert source["details"] == {"watermark_lag_ms": 2_000}
    assert source["gaps"] == 1


# --- mappings ------------------------------------------------------------------------------------


def _compatible(value: Any, field_type: str) -> bool:
    if value is None:
        return True  # null is allowed for any field
    if field_type == "double":
        return isinstance(value, float | int) and not isinstance(value, bool)
    if field_type == "long":
        return isinstance(value, int) and not isinstance(value, bool)
    if field_type == "boolean":
        return isinstance(value, bool)
    if field_type in ("keyword", "date"):
        return isinstance(value, str)
    if field_type == "object":
        return isinstance(value, dict)
    return False


@pytest.mark.parametrize("name", sorted(every_document()))
def test_the_mapping_covers_every_field_with_a_compatible_type(name: str) -> None:
    action = every_document()[name]
    properties = INDEX_SPECS[_kind_of(action)].mappings()["properties"]

    assert set(action.source) <= set(properties), set(action.source) - set(properties)
    for field, value in action.source.items():
        assert _compatible(value, properties[field]["type"]), (field, value, properties[field])


def test_every_kind_has_a_document_builder_exercised_here() -> None:
    assert {_kind_of(action) for action in every_document().values()} == set(INDEX_SPECS)


def test_the_order_book_kind_is_retired_with_its_builder() -> None:
    assert "orderbook" not in INDEX_SPECS
    assert "orderbook" in RETIRED_KINDS
    assert not hasattr(docs, "orderbook_change_document")
    assert not hasattr(docs, "orderbook_index")


def test_liquidity_documents_carry_every_field_of_the_kafka_record() -> None:
    source = docs.liquidity_document(LIQUIDITY_RECORD).source
    carried = set(LIQUIDITY_FIELDS) - set(docs.LIQUIDITY_ENVELOPE)

    assert carried <= set(source)
    assert set(LIQUIDITY_RECORD) == set(LIQUIDITY_FIELDS)  # the sample is a full record


def test_templates_are_strict_with_core_types_and_a_date_timestamp() -> None:
    core_types = {"date", "keyword", "double", "long", "boolean", "object"}
    for kind, spec in INDEX_SPECS.items():
        body = template_body(spec)
        mappings = body["template"]["mappings"]
        assert mappings["dynamic"] == "strict", kind
        assert mappings["properties"]["@timestamp"]["type"] == "date", kind
        used = {field["type"] for field in mappings["properties"].values()}
        assert used <= core_types, (kind, used - core_types)  # no scaled_float (mapper-extras)
        assert body["index_patterns"] == [spec.index_pattern()]
        assert body["_meta"]["fingerprint"] == template_body(spec)["_meta"]["fingerprint"]


def test_template_patterns_of_different_kinds_never_overlap() -> None:
    patterns = [spec.index_pattern() for spec in INDEX_SPECS.values()]
    names = [spec.index_name() for spec in INDEX_SPECS.values()]
    for pattern in patterns:
        stem = pattern.removesuffix("*")
        matches = [
            name
            for name in names
            if name == pattern or (pattern.endswith("*") and name.startswith(stem))
        ]
        assert len(matches) <= 1, (pattern, matches)
