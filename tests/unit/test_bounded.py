"""rtcrypto.bounded: hostile JSON and numbers give a BoundsError with a reason, nothing else."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtcrypto import bounded

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("[" * 5000 + "]" * 5000, "nested deeper than 32"),
        ('{"a":' * 40 + "1" + "}" * 40, "nested deeper than 32"),
        ('{"a": NaN}', "constant NaN"),
        ("[Infinity]", "constant Infinity"),
        ("1e999999999", "out of range"),
        (b"\xff\xfe", "not UTF-8"),
        ("1" * 5000, "invalid JSON"),
        ("{", "invalid JSON"),
    ],
)
def test_hostile_documents_are_refused_with_a_reason(raw: str | bytes, reason: str) -> None:
    with pytest.raises(bounded.BoundsError, match=reason):
        bounded.loads(raw)


def test_size_cap_is_checked_before_parsing() -> None:
    with pytest.raises(bounded.BoundsError, match="over the 10-byte limit"):
        bounded.loads('{"a": "0123456789"}', max_bytes=10)


@given(JSON_VALUES)
def test_any_json_either_parses_equal_or_is_refused(value: object) -> None:
    raw = json.dumps(value)
    try:
        parsed = bounded.loads(raw)
    except bounded.BoundsError:
        return  # NaN/Infinity floats or nesting: refused with a reason
    assert json.dumps(parsed) == raw


@pytest.mark.parametrize("text", ["1e999999999", "0E-999999", "1" * 65, "NaN", "-Infinity", "x"])
def test_unbounded_decimals_are_refused(text: str) -> None:
    with pytest.raises(bounded.BoundsError):
        bounded.decimal_text(text, "remaining")


@given(st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=0, max_value=10**9))
def test_exchange_sized_decimals_pass_unchanged(number: Decimal) -> None:
    assert bounded.decimal_text(str(number)) == number


@given(st.text(max_size=80))
def test_decimal_text_never_raises_anything_but_bounds_error(text: str) -> None:
    try:
        number = bounded.decimal_text(text)
    except bounded.BoundsError:
        return
    assert number.is_finite() and number + 1 >= number - 1  # arithmetic cannot overflow


def test_event_time_window_both_sides() -> None:
    assert bounded.check_event_time(1_000, 2_000, 1_000) == 1_000
    for ts in (-1, 32_503_680_000_000, 10**16):
        with pytest.raises(bounded.BoundsError, match="window 300 s"):
            bounded.check_event_time(ts, 1_700_000_000_000, 300_000)


def test_safe_int_and_finite_float() -> None:
    assert bounded.safe_int(5) == 5
    for bad in (True, 2**63, -1, 1.5, "5"):
        with pytest.raises(bounded.BoundsError):
            bounded.safe_int(bad)
    for bad in (float("inf"), float("nan"), 10**400, "1", None):
        with pytest.raises(bounded.BoundsError):
            bounded.finite_float(bad)
