"""``rtcrypto.exchange.gemini_fees``: the fee tier from ``/v1/notionalvolume``, parsed from
Gemini's published example (``tests/fixtures/gemini/notionalvolume.json``, source in
``sources.json``) and from hostile documents."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcrypto.exchange.base import ExchangeError
from rtcrypto.exchange.gemini_fees import FeeTier, parse_notional_volume

EXAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "gemini" / "notionalvolume.json"


def example() -> dict[str, Any]:
    return dict(json.loads(EXAMPLE.read_text()))


def test_gemini_published_example_gives_the_api_taker_rate() -> None:
    tier = parse_notional_volume(example())
    assert tier == FeeTier(Decimal(35), Decimal(10), Decimal("150.0"))
    assert tier.taker_fee_pct == Decimal("0.35")


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("api_taker_fee_bps", None, "api_taker_fee_bps is NoneType"),
        ("api_taker_fee_bps", "x", "not a fee rate"),
        ("api_maker_fee_bps", -1, "not a fee rate"),
        ("api_taker_fee_bps", 5000, "not a fee rate"),
        ("api_taker_fee_bps", True, "is bool"),
        ("notional_30d_volume", "150", "not a finite number"),
        ("notional_30d_volume", float("inf"), "not a finite number"),
    ],
)
def test_a_bad_field_is_a_clear_error_naming_it(field: str, value: Any, words: str) -> None:
    document = example()
    document[field] = value
    with pytest.raises(ExchangeError, match=words) as raised:
        parse_notional_volume(document)
    assert raised.value.reason == "UnreadableAnswer"


def test_not_an_object_is_a_clear_error() -> None:
    with pytest.raises(ExchangeError, match="expected an object, got list"):
        parse_notional_volume([example()])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=20), inner),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    overrides=st.dictionaries(
        st.sampled_from(["api_taker_fee_bps", "api_maker_fee_bps", "notional_30d_volume", "x"]),
        json_values,
    ),
    whole=json_values,
)
def test_any_document_gives_a_tier_or_the_clear_error(
    overrides: dict[str, Any], whole: Any
) -> None:
    for document in ({**example(), **overrides}, whole):
        try:
            tier = parse_notional_volume(document)
        except ExchangeError as error:
            assert error.reason == "UnreadableAnswer"
            continue
        assert 0 <= tier.api_taker_fee_bps <= 1000 and tier.taker_fee_pct.is_finite()
