"""The search writer's spool is capped and 401/403 are alerted, not retried forever (issue 10).

- Cap: the real node behind the fault suite's proxy (tests/faults/proxy.py), the proxy down; the
  spool stops at ``spool_max_bytes``, the oldest documents stay spooled, the newer ones go to the
  overflow handler, an alert is raised; once the proxy is up the spool drains and the alert clears.
- 401/403: an HTTP stub that answers every request with the status; the writer stops retrying
  after the first refusal, keeps the documents spooled and raises an alert with a log line.
  Before issue 10 both statuses were retried forever with backoff and nothing alerted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from rtcrypto.config import Settings
from rtcrypto.search import documents as docs
from rtcrypto.search.client import search_client
from rtcrypto.search.indices import INDEX_SPECS, ensure_templates
from rtcrypto.search.writer import SearchWriter
from tests.faults.proxy import OutageProxy

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000


def _balances(prefix: str, start: int, count: int) -> list[docs.SearchAction]:
    return [
        docs.balances_document(
            Decimal("100.5"), Decimal("0.001"), T0 + n, trading_mode="paper", prefix=prefix
        )
        for n in range(start, start + count)
    ]


@pytest.fixture
def prefix(search_node: str) -> Iterator[str]:
    client = search_client(Settings(search_url=search_node))
    name = f"rtct{uuid.uuid4().hex[:8]}"
    ensure_templates(client, name)
    yield name
    found = client.indices.get(index=f"{name}-*", expand_wildcards="all", allow_no_indices=True)
    if found.body:
        client.indices.delete(index=",".join(sorted(found.body)))
    for spec in INDEX_SPECS.values():
        client.options(ignore_status=404).indices.delete_index_template(
            name=spec.template_name(name)
        )
    client.close()


def test_spool_cap_keeps_the_oldest_sends_the_rest_to_overflow_and_alerts(
    search_node: str, prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = OutageProxy(search_node)
    proxy.up()
    client = search_client(Settings(search_url=proxy.url), max_retries=0, request_timeout_s=3)
    overflow: list[dict[str, Any]] = []

    def to_overflow(records: Sequence[dict[str, Any]]) -> None:
        overflow.extend(records)

    writer = SearchWriter(
        client,
        spool_dir=tmp_path,
        name="capped",
        batch_size=50,
        flush_interval_s=0.1,
        retry_initial_s=0.2,
        retry_max_s=0.5,
        spool_max_bytes=20_000,
        on_overflow=to_overflow,
    )
    try:
        proxy.down()
        actions = _balances(prefix, 0, 400)  # about 100 kB of spool lines: 5x the cap
        with caplog.at_level(logging.ERROR, logger="rtcrypto.search.spool_guard"):
            writer.add_many(actions)
            assert writer.flush(timeout_s=30)
        stats = writer.stats()
        assert 0 < stats.spool_bytes <= 20_000
        assert stats.pending_spool + len(overflow) == len(actions), "every document accounted"
        spooled_ids = [action.id for action in actions[: stats.pending_spool]]
        assert [record["_id"] for record in overflow] == [
            action.id for action in actions[stats.pending_spool :]
        ], "the oldest stay spooled, the newest overflow, in order"
        assert stats.alerts and "search spool full" in stats.alerts[0]
        assert any("spool full" in record.getMessage() for record in caplog.records)

        proxy.up()
        assert writer.wait_for_spool_drained(timeout_s=60)
        assert writer.alerts() == [], "the alert clears once the spool is empty"
    finally:
        writer.close()
        proxy.down()
        client.close()
    check = search_client(Settings(search_url=search_node))
    check.indices.refresh(index=f"{prefix}-balances")
    indexed = {
        hit["_id"] for hit in check.search(index=f"{prefix}-balances", size=1000)["hits"]["hits"]
    }
    check.close()
    assert indexed == set(spooled_ids)


class _RefusingStub:
    """An HTTP server answering every request with ``status`` (Elasticsearch's error body)."""

    def __init__(self, status: int) -> None:
        self.requests = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                stub.requests += 1
                body = json.dumps(
                    {"error": {"type": "security_exception", "reason": "unable to authenticate"},
                     "status": status}
                ).encode()  # fmt: skip
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_stop_the_retries_and_alert(
    status: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stub = _RefusingStub(status)
    client: Elasticsearch = search_client(
        Settings(search_url=stub.url), max_retries=0, request_timeout_s=3
    )
    writer = SearchWriter(
        client,
        spool_dir=tmp_path,
        name="auth",
        batch_size=10,
        flush_interval_s=0.1,
        retry_initial_s=0.1,
        retry_max_s=0.2,
    )
    try:
        with caplog.at_level(logging.ERROR, logger="rtcrypto.search.spool_guard"):
            writer.add_many(_balances("rtc", 0, 10))
            assert writer.flush(timeout_s=10)
            time.sleep(2.0)  # ten retry intervals
            writer.add_many(_balances("rtc", 10, 10))
            assert writer.flush(timeout_s=10)
            time.sleep(1.0)
        stats = writer.stats()
        assert stub.requests == 1, f"{stub.requests} bulk requests: the refusal was retried"
        assert stats.pending_spool == 20 and stats.indexed == 0, "kept, not lost"
        assert any("refused the credentials" in alert for alert in stats.alerts), stats.alerts
        assert f"status {status}" in stats.alerts[0]
        logged = [
            r.getMessage() for r in caplog.records if "refused the credentials" in r.getMessage()
        ]
        assert len(logged) == 1, "one log line, not one per batch"
    finally:
        writer.close()
        client.close()
        stub.close()
