"""rtcrypto.search.queries: the trade review's page requests ask the Kibana bodies' question."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtcrypto.search import queries

KINDS = sorted(queries.REVIEW_TIEBREAKERS)
START_MS = 1_795_000_000_000
END_MS = START_MS + 3_600_000


def _terms(query: dict) -> dict[str, str]:
    return {
        name: value
        for clause in query["bool"]["filter"]
        for name, value in clause.get("term", {}).items()
    }


def test_the_review_and_the_profit_chart_filter_scores_alike() -> None:
    review = queries.documents_in_range_body(
        "scores", since_ms=START_MS, until_ms=END_MS, trading_mode="paper", size=10
    )
    chart = queries.cumulative_profit_body(trading_mode="paper", since_ms=START_MS, until_ms=END_MS)
    assert review["query"] == chart["query"]


def test_the_review_and_the_liquidity_chart_filter_windows_alike() -> None:
    review = queries.documents_in_range_body(
        "liquidity",
        since_ms=START_MS,
        until_ms=END_MS,
        trading_mode="paper",
        symbol="btcusd",
        size=10,
    )
    chart = queries.liquidity_ratio_body(symbol="BTCUSD", since_ms=START_MS, until_ms=END_MS)
    assert review["query"] == chart["query"]  # liquidity has no trading mode: not filtered on it


def test_pages_are_oldest_first_in_a_total_order() -> None:
    body = queries.documents_in_range_body("fills", since_ms=START_MS, until_ms=END_MS, size=7)
    assert body["size"] == 7
    assert body["sort"] == [
        {"@timestamp": {"order": "asc"}},
        {"client_order_id": {"order": "asc", "unmapped_type": "keyword"}},
        {"fill_sequence": {"order": "asc", "unmapped_type": "long"}},
    ]
    (bounds,) = [c["range"]["@timestamp"] for c in body["query"]["bool"]["filter"] if "range" in c]
    assert (bounds["gte"], bounds["lt"], bounds["format"]) == (START_MS, END_MS, "epoch_millis")


@given(
    kind=st.sampled_from(KINDS),
    mode=st.one_of(st.none(), st.sampled_from(["paper", "sandbox", "live"])),
    symbol=st.one_of(st.none(), st.sampled_from(["btcusd", "ETHUSD", "SolUsd"])),
)
def test_a_kind_is_filtered_on_mode_and_symbol_only_when_its_documents_carry_them(
    kind: str, mode: str | None, symbol: str | None
) -> None:
    body = queries.documents_in_range_body(
        kind, since_ms=START_MS, until_ms=END_MS, trading_mode=mode, symbol=symbol, size=1
    )
    expected = {}
    if mode is not None and kind in queries.MODE_KINDS:
        expected["trading_mode"] = mode
    if symbol is not None and kind in queries.SYMBOL_KINDS:
        expected["symbol"] = symbol.upper()
    assert _terms(body["query"]) == expected


def test_the_review_and_the_new_charts_read_the_same_documents() -> None:
    """Fills by side, equity and depth imbalance filter like the review's page requests."""
    fills = queries.documents_in_range_body(
        "fills", since_ms=START_MS, until_ms=END_MS, trading_mode="paper", symbol="btcusd", size=1
    )
    chart = queries.fills_by_side_body(
        trading_mode="paper", symbol="btcusd", since_ms=START_MS, until_ms=END_MS
    )
    assert fills["query"] == chart["query"]
    balances = queries.documents_in_range_body(
        "balances", since_ms=START_MS, until_ms=END_MS, trading_mode="paper", size=1
    )
    equity = queries.equity_body(trading_mode="paper", since_ms=START_MS, until_ms=END_MS)
    assert balances["query"] == equity["query"]
    liquidity = queries.documents_in_range_body(
        "liquidity", since_ms=START_MS, until_ms=END_MS, symbol="BTCUSD", size=1
    )
    depth = queries.depth_imbalance_body(symbol="BTCUSD", since_ms=START_MS, until_ms=END_MS)
    assert liquidity["query"] == depth["query"]


@pytest.mark.parametrize("query", [queries.DEPTH_IMBALANCE, queries.PRICE_VS_FORECAST])
def test_a_split_series_body_needs_a_split_field_and_one_metric(
    query: queries.VisualizationQuery,
) -> None:
    with pytest.raises(ValueError, match=query.visualization_id):
        queries.split_series_body(query, interval="1m", since_ms=None, until_ms=None, terms={})


@given(
    buckets=st.lists(
        st.dictionaries(
            st.sampled_from(["v1", "v2", "buy", "sell"]),
            st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
        ),
        max_size=8,
    )
)
def test_split_series_points_keep_each_value_on_its_own_line(
    buckets: list[dict[str, float | None]],
) -> None:
    """Whatever the buckets hold, each split value gets exactly its own points, in time order."""
    response = {
        "aggregations": {
            queries.HISTOGRAM: {
                "buckets": [
                    {
                        "key": START_MS + 60_000 * n,
                        queries.SPLIT: {
                            "buckets": [
                                {"key": key, "price": {"value": value}}
                                for key, value in sorted(values.items())
                            ]
                        },
                    }
                    for n, values in enumerate(buckets)
                ]
            }
        }
    }
    series = queries.split_series_points(response, "price")
    assert set(series) == {key for values in buckets for key in values}
    for key, points in series.items():
        expected = [
            (START_MS + 60_000 * n, values[key])
            for n, values in enumerate(buckets)
            if key in values
        ]
        assert points == expected
