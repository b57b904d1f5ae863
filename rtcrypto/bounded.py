"""Bounded parsing of untrusted input (pure): JSON with a size and nesting cap, decimals with a
bounded exponent and digit count, event times inside a window around a reference time.

Every entry point raises :class:`BoundsError` (a ``ValueError``) with a reason fit for a
dead-letter record, never ``RecursionError``, ``decimal.Overflow`` or ``OverflowError``.
The limits are defaults here; services pass the values of their settings.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_FRAME_BYTES = 4 * 1024 * 1024  # the largest real frame in ../shared/data is 207 kB
MAX_DEPTH = 32  # real frames nest 4 deep (object > events list > event object > value)
MAX_DECIMAL_CHARS = 64  # "0.00000001" .. "68000.12345678": far below
MAX_DECIMAL_EXPONENT = 30  # |adjusted exponent|: 1e30 BTC or USD is already nonsense
MAX_SAFE_INT = 2**63 - 1  # what Kafka, Spark and Elasticsearch longs hold

_CONTAINERS = (dict, list)


class BoundsError(ValueError):
    """Input outside the bounds; ``str(error)`` is the dead-letter reason."""


def loads(raw: str | bytes, *, max_bytes: int = MAX_FRAME_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` of untrusted text, refusing oversized or too deeply nested documents and
    the non-standard constants ``NaN``/``Infinity`` (Python's json accepts them)."""
    size = len(raw)
    if size > max_bytes:
        raise BoundsError(f"document of {size} bytes is over the {max_bytes}-byte limit")
    try:
        text = (
            raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
        )  # no UTF-16 sniffing
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise BoundsError(f"JSON nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError as error:
        raise BoundsError(f"not UTF-8: {error.reason} at byte {error.start}") from None
    except BoundsError:
        raise
    except ValueError as error:
        raise BoundsError(f"invalid JSON: {error}") from None
    if _brackets(raw) > max_depth:  # cheap upper bound of the depth: walk only when it may be over
        check_depth(value, max_depth)
    return value


def _brackets(raw: str | bytes) -> int:
    if isinstance(raw, str):
        return raw.count("[") + raw.count("{")
    return raw.count(b"[") + raw.count(b"{")


def _refuse_constant(name: str) -> Any:
    raise BoundsError(f"invalid JSON: the constant {name} is not a number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise BoundsError(f"invalid JSON: the number {text[:MAX_DECIMAL_CHARS]} is out of range")
    return number


def check_depth(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise when containers nest deeper than ``max_depth`` (iterative: no recursion limit)."""
    if not isinstance(value, _CONTAINERS):
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise BoundsError(f"JSON nested deeper than {max_depth} levels")
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1))


def decimal_text(
    value: object,
    name: str = "value",
    *,
    max_chars: int = MAX_DECIMAL_CHARS,
    max_exponent: int = MAX_DECIMAL_EXPONENT,
) -> Decimal:
    """A finite decimal from a string (or int) whose text and exponent are bounded, so that no
    later arithmetic can overflow the decimal context (``"1e999999999"`` is refused here)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BoundsError(f"{name} is not a decimal string: {type(value).__name__}")
    text = value if isinstance(value, str) else str(value)
    if len(text) > max_chars:
        raise BoundsError(f"{name} has {len(text)} characters, over the limit of {max_chars}")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise BoundsError(f"{name} is not a number: {text[:max_chars]!r}") from None
    if not number.is_finite():
        raise BoundsError(f"{name} is not finite: {text!r}")
    if len(text) <= max_exponent and "e" not in text and "E" not in text:
        return number  # plain digits: no exponent can exceed the text's length (the hot path)
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if abs(exponent) > max_exponent or (number and abs(number.adjusted()) > max_exponent):
        raise BoundsError(f"{name} is out of range (exponent beyond +/-{max_exponent}): {text!r}")
    return number


def safe_int(value: object, name: str = "value", *, low: int = 0, high: int = MAX_SAFE_INT) -> int:
    """An integer (not bool, not float) within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BoundsError(f"{name} is not an integer: {type(value).__name__}")
    if not low <= value <= high:
        raise BoundsError(f"{name} {value} is outside [{low}, {high}]")
    return value


def finite_float(value: object, name: str = "value") -> float:
    """A finite float from an int or float (not bool, not NaN or infinite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BoundsError(f"{name} is not a number: {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise BoundsError(f"{name} is too large for a float") from None
    if not math.isfinite(number):
        raise BoundsError(f"{name} is not finite: {number}")
    return number


def check_event_time(
    ts_ms: int, reference_ms: int, window_ms: int, name: str = "timestampms"
) -> int:
    """``ts_ms`` if it lies within ``window_ms`` of ``reference_ms`` (either side); a far-future
    time would move Spark's watermark and drop every later window, a far-past one is late."""
    if abs(ts_ms - reference_ms) > window_ms:
        raise BoundsError(
            f"{name} {ts_ms} is {abs(ts_ms - reference_ms) / 1000:.0f} s from the reference time "
            f"{reference_ms} (window {window_ms / 1000:.0f} s)"
        )
    return ts_ms
