"""Reading heartbeats back: newest per service, one readable line each."""

from __future__ import annotations

from rtcrypto.supervision.heartbeats import describe, latest_by_service


def test_latest_by_service_keeps_the_newest_and_skips_malformed() -> None:
    records = [
        {"service": "ingest", "ts_ms": 1000, "processed": 1},
        {"service": "ingest", "ts_ms": 3000, "processed": 3},
        {"service": "ingest", "ts_ms": 2000, "processed": 2},
        {"service": "spark-liquidity", "ts_ms": 2500, "processed": 7},
        {"service": None, "ts_ms": 9999},
        {"service": "ingest", "ts_ms": "late"},
    ]
    latest = latest_by_service(records)
    assert set(latest) == {"ingest", "spark-liquidity"}
    assert latest["ingest"]["processed"] == 3


def test_describe_says_age_lag_and_problems() -> None:
    beat = {
        "service": "ingest",
        "ts_ms": 10_000,
        "processed": 12_345,
        "lag_ms": 1_500,
        "reconnects": 2,
        "gaps": 1,
        "dead_letters": 0,
        "last_error": "sequence gap expected=5 received=6",
    }
    line = describe(beat, now_ms=14_000)
    assert line.startswith("last heartbeat 4 s ago, processed 12,345, lag 1.5 s")
    assert "reconnects 2" in line and "gaps 1" in line and "dead letters" not in line
    assert line.endswith("last error: sequence gap expected=5 received=6")
    assert "lag -" in describe({"service": "x", "ts_ms": 1, "lag_ms": None}, now_ms=1)
