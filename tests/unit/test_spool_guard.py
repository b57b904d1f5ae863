"""The spool cap's arithmetic and the guard's alerts (rtcrypto/search/spool_guard.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rtcrypto.search.spool_guard import SpoolGuard, fit_under_cap


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=5_000), max_size=60),
    used=st.integers(min_value=0, max_value=20_000),
    cap=st.one_of(st.none(), st.integers(min_value=1, max_value=20_000)),
)
def test_fit_under_cap_takes_the_longest_prefix_that_fits(
    sizes: list[int], used: int, cap: int | None
) -> None:
    count = fit_under_cap(sizes, used, cap)
    assert 0 <= count <= len(sizes)
    if cap is None:
        assert count == len(sizes)
        return
    if count:
        assert used + sum(sizes[:count]) <= cap
    if count < len(sizes):
        assert used + sum(sizes[: count + 1]) > cap, "the next one would not have fitted"


def test_alerts_raise_and_clear() -> None:
    guard = SpoolGuard("t", max_bytes=100)
    assert guard.alerts() == []
    assert guard.admit([60, 30, 20]) == 2 and guard.spool_bytes == 90
    guard.note_overflow(1, "Kafka topic deadletter.v1")
    assert guard.alerts() == [
        "search spool full (90 of 100 bytes): 1 documents sent to Kafka topic deadletter.v1"
    ]
    guard.set_spool_bytes(40)
    assert guard.alerts(), "still full-ish: clears only once the spool is empty"
    guard.set_spool_bytes(0)
    assert guard.alerts() == []
    guard.note_auth_failure(401, "security_exception: unable to authenticate")
    assert guard.auth_blocked and "refused the credentials (status 401" in guard.alerts()[0]
