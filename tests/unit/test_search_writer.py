"""SearchWriter without Elasticsearch: a real client pointed at a loopback port nothing listens on,
so every bulk fails to connect and the spool, its recovery, the lock and the status
classification can be checked without a node (the node's side: tests/integration)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from elasticsearch import Elasticsearch

from rtcrypto.config import Settings
from rtcrypto.search import documents as docs
from rtcrypto.search.client import search_client
from rtcrypto.search.documents import SearchAction
from rtcrypto.search.writer import (
    SPOOL_PREFIX,
    SearchWriter,
    SpoolInUseError,
    WriterClosedError,
    is_retryable,
    iter_dead_letters,
)

T0 = 1_618_617_600_000


@pytest.fixture
def unreachable() -> Iterator[Elasticsearch]:
    with socket.socket() as probe:  # free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = search_client(
        Settings(search_url=f"http://127.0.0.1:{port}"), max_retries=0, request_timeout_s=2
    )
    yield client
    client.close()


def _balances(count: int) -> list[SearchAction]:
    return [
        docs.balances_document(Decimal("100.5"), Decimal("0.001"), T0 + n, trading_mode="paper")
        for n in range(count)
    ]


def _spooled_lines(folder: Path) -> list[dict]:
    return [
        orjson.loads(line)
        for path in sorted(folder.glob(f"{SPOOL_PREFIX}*"))
        for line in path.read_bytes().splitlines()
    ]


def test_unreachable_elasticsearch_spools_every_document_in_order(
    unreachable: Elasticsearch, tmp_path: Path
) -> None:
    actions = _balances(1_250)
    writer = SearchWriter(unreachable, spool_dir=tmp_path, name="w", batch_size=100)
    writer.add_many(actions)
    stats = writer.close()

    assert (stats.indexed, stats.dead, stats.buffered) == (0, 0, 0)
    assert stats.spooled == stats.pending_spool == 1_250
    assert stats.failed_requests >= 1 and "Connection" in (stats.last_error or "")
    lines = _spooled_lines(tmp_path / "w")
    assert [line["_id"] for line in lines] == [action.id for action in actions]
    assert lines[0]["_source"] == actions[0].source
    assert lines[0]["_index"] == "rtc-balances"


_CRASHING_WRITER = """
import os, sys
from decimal import Decimal
from pathlib import Path
from rtcrypto.config import Settings
from rtcrypto.search import documents as docs
from rtcrypto.search.client import search_client
from rtcrypto.search.writer import SearchWriter
client = search_client(Settings(search_url=sys.argv[1]), max_retries=0, request_timeout_s=2)
writer = SearchWriter(client, spool_dir=Path(sys.argv[2]), name="w", batch_size=10)
for n in range(30):
    writer.add(docs.balances_document(Decimal(1), Decimal(0), n, trading_mode="paper"))
assert writer.flush(timeout_s=30)
os._exit(9)  # a crash: no close(), the lock dies with the process
"""


def test_a_restarted_writer_finds_the_spool_of_a_crashed_one_and_keeps_it_until_acknowledged(
    unreachable: Elasticsearch, tmp_path: Path
) -> None:
    url = next(node.base_url for node in unreachable.transport.node_pool.all())
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASHING_WRITER, url, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == 9, crashed.stderr[-2000:]

    restarted = SearchWriter(unreachable, spool_dir=tmp_path, name="w", start=False)
    found = restarted.stats().pending_spool
    stats = restarted.close()  # tries to re-send once: still unreachable

    assert found == 30
    assert stats.pending_spool == 30 and stats.resent == 0
    assert [line["_id"] for line in _spooled_lines(tmp_path / "w")] == [
        f"paper:{n}" for n in range(30)
    ]


def test_a_torn_spool_line_is_dead_lettered_and_the_rest_stays_spooled(
    unreachable: Elasticsearch, tmp_path: Path
) -> None:
    folder = tmp_path / "w"
    folder.mkdir()
    good = _balances(3)
    lines = [orjson.dumps({"_index": a.index, "_id": a.id, "_source": a.source}) for a in good]
    (folder / f"{SPOOL_PREFIX}00000000000000000001-000001.jsonl").write_bytes(
        b"\n".join(lines) + b'\n{"_index": "rtc-balances", "_id": "torn", "_sou'
    )

    writer = SearchWriter(
        unreachable, spool_dir=tmp_path, name="w", retry_initial_s=0.05, retry_max_s=0.1
    )
    assert writer.stats().pending_spool == 4
    assert not writer.wait_for_spool_drained(timeout_s=1.0)  # nothing to re-send it to
    stats = writer.close()

    assert stats.dead == 1 and stats.pending_spool == 3
    (letter,) = list(iter_dead_letters(writer.dead_letter_path))
    assert "unreadable spool line" in letter["reason"] and '"torn"' in letter["raw"]
    assert [line["_id"] for line in _spooled_lines(folder)] == [a.id for a in good]


def test_two_live_writers_cannot_share_a_spool(unreachable: Elasticsearch, tmp_path: Path) -> None:
    first = SearchWriter(unreachable, spool_dir=tmp_path, name="trader")
    try:
        with pytest.raises(SpoolInUseError, match="own name"):
            SearchWriter(unreachable, spool_dir=tmp_path, name="trader")
    finally:
        first.close()
    SearchWriter(unreachable, spool_dir=tmp_path, name="trader").close()  # free again


def test_add_after_close_and_unserialisable_sources_fail_loudly(
    unreachable: Elasticsearch, tmp_path: Path
) -> None:
    writer = SearchWriter(unreachable, spool_dir=tmp_path, name="w")
    with pytest.raises(TypeError):
        writer.add(SearchAction("rtc-balances", "x", {"usd": Decimal("1")}))
    assert writer.stats().buffered == 0
    writer.close()
    with pytest.raises(WriterClosedError):
        writer.add(_balances(1)[0])


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (None, True),
        (429, True),
        (500, True),
        (503, True),
        (401, True),
        (403, True),
        (404, True),
        (400, False),
        (409, False),
        (413, False),
    ],
)
def test_status_classification(status: int | None, retryable: bool) -> None:
    assert is_retryable(status) is retryable
