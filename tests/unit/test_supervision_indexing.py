"""The heartbeats a health check judged, as ``<prefix>-heartbeat`` documents (no Elasticsearch)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from rtcrypto.config import Settings
from rtcrypto.supervision.indexing import heartbeat_actions, index_heartbeats
from tests.helpers import free_port

JUNK = st.one_of(st.none(), st.text(max_size=5), st.floats(allow_nan=True), st.booleans())
COUNT = st.one_of(st.integers(min_value=0, max_value=2**62), JUNK)
BEAT = st.fixed_dictionaries(
    {
        "service": st.one_of(st.sampled_from(["ingest", "trader", "spark-liquidity"]), JUNK),
        "ts_ms": st.one_of(st.integers(min_value=0, max_value=4_102_444_800_000), JUNK),
    },
    optional={
        "instance": st.one_of(st.sampled_from(["host-a:1", "host-b:2"]), JUNK),
        "processed": COUNT,
        "lag_ms": COUNT,
        "gaps": COUNT,
        "last_error": st.one_of(st.none(), st.text(max_size=20)),
        "alerts": st.lists(st.text(max_size=10), max_size=2),
        "watermark_lag_ms": COUNT,
    },
)


@hypothesis_settings(deadline=None)  # the first example loads the Elasticsearch client modules
@given(st.lists(BEAT, max_size=12))
def test_any_heartbeats_become_at_most_one_document_per_id(beats: list[dict[str, Any]]) -> None:
    actions = heartbeat_actions(beats, "lab")

    ids = [action.id for action in actions]
    assert len(ids) == len(set(ids)) <= len(beats)
    for action in actions:
        source = action.source
        assert action.index == "lab-heartbeat"
        assert action.id == f"{source['service']}:{source['instance']}:{source['ts_ms']}"
    assert heartbeat_actions(beats + beats, "lab") == actions  # checked twice: the same documents


def test_a_heartbeat_the_builder_refuses_is_skipped() -> None:
    good = {"service": "ingest", "instance": "h:1", "ts_ms": 1_000, "processed": 3}
    refused = [{"ts_ms": 1_000}, {"service": "ingest", "ts_ms": 5, "processed": "many"}]

    actions = heartbeat_actions([*refused, good], "rtc")

    assert [action.id for action in actions] == ["ingest:h:1:1000"]


def test_indexing_without_elasticsearch_never_fails_the_check(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(home=tmp_path, search_url=f"http://127.0.0.1:{free_port()}")
    beat = {"service": "ingest", "instance": "h:1", "ts_ms": 1_000, "processed": 3}

    with caplog.at_level(logging.WARNING, logger="rtcrypto.supervision.indexing"):
        assert index_heartbeats([beat], settings) == 0

    assert "1 heartbeat(s) not indexed in rtc-heartbeat" in caplog.text
    assert list((settings.search_spool_path / "heartbeats").glob("spool-*"))  # re-sent later
    assert index_heartbeats([], settings) == 0
