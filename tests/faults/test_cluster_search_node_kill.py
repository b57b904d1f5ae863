"""kill -9 one Elasticsearch node of a 3-node cluster while the bulk writer indexes: every
document lands exactly once, and the cluster is green again once the node is back.

Three nodes, not two: with three master-eligible nodes the two survivors keep a majority of the
voting configuration (2 of 3) whatever node dies, so a master is (re-)elected and writes go on;
with two, losing the elected master leaves one vote of two and the cluster stops until it returns.

The node killed is the one holding the primary of the ticker index, the index most of the stream
goes to: its replica on another node must be promoted to primary while bulk requests keep coming
(and the test says whether that node was the elected master too). Documents are the trader's:
the ticker from the real Gemini BTCUSD capture (best bid and ask after every book update, the
capture looped with shifted times) and orders, fills, scores and balances of a real ``Ledger``
(tests/trade_documents.py), all built by rtcrypto.search.documents with their deterministic ids,
and sent by the project's :class:`~rtcrypto.search.writer.SearchWriter` (spool and re-send).

The cluster is started once for the module, on free ports in a temporary RTC_HOME (the jars come
from the session's lib folder), and every node is stopped and checked gone at the end. The
integration check of ``search_cluster_status`` (every node up, one master, green) lives here too,
marked ``cluster`` and ``integration`` but not ``faults``: it shares the one cluster start (about
25 s) instead of paying for its own.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from elasticsearch import Elasticsearch

from rtcrypto.config import Settings, get_settings
from rtcrypto.config_cluster import ClusterSettings
from rtcrypto.market.captures.gemini_v1 import LevelBook
from rtcrypto.market.captures.messages import BookUpdate
from rtcrypto.market.captures.parse import load_capture
from rtcrypto.search import documents
from rtcrypto.search.client import search_client
from rtcrypto.search.documents import SearchAction
from rtcrypto.search.indices import INDEX_SPECS, ensure_templates
from rtcrypto.search.writer import SearchWriter
from rtcrypto.stack import maven, process, search_cluster, search_home
from rtcrypto.trading.order_types import TopOfBook
from tests.conftest import _SERVICE_LINES
from tests.helpers import GEMINI_CAPTURE, free_port
from tests.listeners import processes_mentioning
from tests.trade_documents import trade_scenario

# outside `make test` for CI's time limit: `make test-cluster` runs it (docs/scaling.md)
pytestmark = [pytest.mark.cluster, pytest.mark.integration, pytest.mark.cluster_heavy]

NODES = 3
PREFIX = "rtcc"
SYMBOL = "BTCUSD"
TRADER_KINDS = ("orders", "fills", "scores", "balances")
DOCS_PER_SECOND = 300  # ticker documents; plus one Ledger round of the trader's a second
BEFORE_KILL_S = 4.0
NODE_DOWN_S = 6.0
AFTER_RESTART_S = 4.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of a running 3-node cluster (topology ``cluster``, its own RTC_HOME)."""
    home = tmp_path_factory.mktemp("search-cluster-home")
    session = get_settings()
    maven.resolve_jars(search_home.elasticsearch_jar_set(session), session)  # cached: no Maven
    (home / "lib").symlink_to(session.lib_dir, target_is_directory=True)
    ports = [free_port() for _ in range(2 * NODES)]
    settings = Settings(
        home=home,
        topology="cluster",
        cluster=ClusterSettings(
            search_http_ports=ports[:NODES],
            search_transport_ports=ports[NODES:],
            search_heap="384m",
            search_replicas=1,
        ),
    )
    pids: set[int] = set()
    try:
        started = search_cluster.start_search_cluster(settings, lambda line: None, timeout_s=150)
        pids.update(pid for pid in started.pids.values() if pid is not None)
        rss = [
            search_cluster.rss_megabytes(started.pids[search_cluster.node_process(n)])
            for n in range(1, NODES + 1)
        ]
        _SERVICE_LINES.append(
            f"Elasticsearch cluster: {NODES} nodes started and {started.health.status} after "
            f"{started.seconds_to_healthy:.1f} s; RSS per node "
            f"{', '.join(f'{mb:.0f}' for mb in rss if mb is not None)} MB "
            f"(heap {settings.cluster.search_heap}); home {home}"
        )
        yield settings
    finally:
        for number in search_cluster.node_numbers(settings):
            pid = process.read_pid(search_cluster.node_process(number), settings)
            if pid is not None:
                pids.add(pid)
        stopped = search_cluster.stop_search_cluster(settings)
        left = [pid for pid in sorted(pids) if process.pid_alive(pid)]
        assert not left, f"Elasticsearch nodes still alive after stop: {left} (stopped {stopped})"
        assert not any(
            process.is_running(search_cluster.node_process(n), settings)
            for n in search_cluster.node_numbers(settings)
        )
        assert not processes_mentioning(str(home)), processes_mentioning(str(home))


# --- documents ----------------------------------------------------------------------------------


def capture_books() -> list[TopOfBook]:
    """The best bid and ask of BTCUSD after every book update of the real Gemini capture (the
    last one per millisecond, since the ticker's id is ``symbol:ts_ms``)."""
    book = LevelBook(SYMBOL)
    by_ms: dict[int, TopOfBook] = {}
    for message in load_capture(GEMINI_CAPTURE).messages:
        if not (isinstance(message, BookUpdate) and message.symbol == SYMBOL):
            continue
        book.apply(message)
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None:
            continue
        by_ms[message.ts_receive_ms] = TopOfBook(
            SYMBOL,
            Decimal(bid.price),
            bid.size,
            Decimal(ask.price),
            ask.size,
            message.ts_receive_ms,
        )
    return [by_ms[ts] for ts in sorted(by_ms)]


def document_stream(seconds: float) -> list[list[SearchAction]]:
    """One list of actions per second of the stream: real tickers (the capture looped, each pass
    shifted past the previous one) and one trader round of orders, fills, scores, balances."""
    books = capture_books()
    span_ms = books[-1].ts_ms - books[0].ts_ms + 1_000
    tickers: list[SearchAction] = []
    needed = int(seconds * DOCS_PER_SECOND)
    loop = 0
    while len(tickers) < needed:
        for book in books:
            shifted = TopOfBook(
                book.symbol,
                book.bid,
                book.bid_quantity,
                book.ask,
                book.ask_quantity,
                book.ts_ms + loop * span_ms,
            )
            tickers.append(documents.ticker_document(shifted, prefix=PREFIX))
        loop += 1
    per_second: list[list[SearchAction]] = []
    base_ms = 1_800_000_000_000  # 2027-01-15, minute-aligned; rounds are 25 minutes apart
    for second in range(int(seconds)):
        scenario = trade_scenario(
            base_ms + second * 25 * 60_000, prefix=PREFIX, order_prefix=f"kill{second}"
        )
        trader = [a for a in scenario.actions if a.index.split("-", 1)[1] in TRADER_KINDS]
        chunk = tickers[second * DOCS_PER_SECOND : (second + 1) * DOCS_PER_SECOND]
        per_second.append(chunk + trader)
    return per_second


# --- cluster facts ------------------------------------------------------------------------------


def shard_nodes(client: Elasticsearch, index: str) -> dict[str, str]:
    """``{"p": node name of the primary, "r": of the replica}`` of a one-shard index."""
    rows = client.cat.shards(index=index, format="json", h="prirep,state,node")
    return {str(row["prirep"]): str(row["node"]) for row in rows if row["state"] == "STARTED"}


def all_documents(client: Elasticsearch, index: str) -> list[dict[str, Any]]:
    """Every hit of ``index`` (``_id`` and ``_source``); the stream stays under one page."""
    response = client.search(index=index, size=10_000, query={"match_all": {}})
    hits: list[dict[str, Any]] = response["hits"]["hits"]
    assert response["hits"]["total"]["value"] == len(hits), "more documents than one page"
    return hits


def longest_flat_stretch(acks: list[tuple[float, int]], start: float, end: float) -> float:
    """The longest time within [start, end] during which the acknowledged count did not move."""
    longest = 0.0
    flat_from: float | None = None
    previous: int | None = None
    for at, indexed in acks:
        if start <= at <= end and previous is not None and indexed == previous:
            flat_from = at if flat_from is None else flat_from
            longest = max(longest, at - flat_from)
        else:
            flat_from = at if start <= at <= end else None
        previous = indexed
    return longest


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll ``condition`` every 0.1 s; return the seconds it took, fail after ``timeout_s``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"{what} not within {timeout_s:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - started


# --- tests --------------------------------------------------------------------------------------


def test_status_shows_every_node_and_green_health(cluster: Settings) -> None:
    lines = search_cluster.search_cluster_status(cluster)

    assert len(lines) == NODES + 1, lines
    for number in range(1, NODES + 1):
        node_line = lines[number - 1]
        assert f"elasticsearch-{number}" in node_line and " up " in node_line, lines
        assert search_cluster.node_url(cluster, number) in node_line
    assert sum(" master" in line for line in lines[:NODES]) == 1, lines
    assert f"green, {NODES}/{NODES} nodes" in lines[-1], lines


@pytest.mark.faults
@pytest.mark.slow
def test_kill_9_of_the_primary_node_while_indexing_loses_and_doubles_nothing(
    cluster: Settings, services_report: Callable[[str], None]
) -> None:
    client = search_client(cluster, request_timeout_s=30.0, max_retries=3)
    # Indices made in the single topology (0 replicas), then provisioned for the cluster: the
    # templates and the existing indices get the cluster's replica.
    created = ensure_templates(client, PREFIX, replicas=0)
    aligned = ensure_templates(client, PREFIX, replicas=cluster.cluster.search_replicas)
    assert len(created.indices_created) == len(INDEX_SPECS)
    assert sorted(aligned.replicas_changed) == sorted(created.indices_created)
    assert sorted(aligned.templates_updated) == sorted(created.templates_created)
    assert not ensure_templates(client, PREFIX, replicas=cluster.cluster.search_replicas).changed
    health = client.cluster.health(wait_for_status="green", timeout="60s")
    assert health["status"] == "green", health
    ticker = f"{PREFIX}-ticker"
    settings_answer = client.indices.get_settings(index=ticker, name="index.number_of_replicas")
    assert settings_answer[ticker]["settings"]["index"]["number_of_replicas"] == "1"

    total_s = BEFORE_KILL_S + NODE_DOWN_S + AFTER_RESTART_S + 10.0  # the restart takes seconds
    stream = document_stream(total_s)
    expected = {(action.index, action.id): action.source for chunk in stream for action in chunk}
    assert len(expected) == sum(len(chunk) for chunk in stream)  # ids unique by construction

    victim = shard_nodes(client, ticker)["p"]
    victim_number = int(victim.rsplit("-", 1)[1])
    victim_process = search_cluster.node_process(victim_number)
    was_master = search_cluster.master_name(cluster) == victim

    writer = SearchWriter.from_settings(
        cluster,
        name="cluster-kill",
        batch_size=200,
        flush_interval_s=0.2,
        retry_initial_s=0.5,
        retry_max_s=2.0,
    )
    stop = threading.Event()
    produced_at: list[float] = []
    acks: list[tuple[float, int]] = []  # (monotonic time, documents acknowledged so far)

    def produce() -> None:
        """One chunk a second, in ten slices (a steady stream, as the trader's would be)."""
        for chunk in stream:
            tick = time.monotonic()
            step = -(-len(chunk) // 10)
            for slice_number, start in enumerate(range(0, len(chunk), step)):
                writer.add_many(chunk[start : start + step])
                time.sleep(max(0.0, tick + 0.1 * (slice_number + 1) - time.monotonic()))
                if stop.is_set():
                    return
        produced_at.append(time.monotonic())

    def sample() -> None:
        while not stop.is_set():
            acks.append((time.monotonic(), writer.stats().indexed))
            time.sleep(0.05)

    producer = threading.Thread(target=produce, name="cluster-kill-producer", daemon=True)
    sampler = threading.Thread(target=sample, name="cluster-kill-sampler", daemon=True)
    try:
        producer.start()
        sampler.start()
        time.sleep(BEFORE_KILL_S)
        assert writer.stats().indexed > 0, writer.stats()

        victim_pid = process.read_pid(victim_process, cluster)
        assert victim_pid is not None
        killed_at = time.monotonic()
        os.kill(victim_pid, signal.SIGKILL)

        def promoted() -> bool:
            health = search_cluster.cluster_health(cluster, timeout_s=1.0)
            return (
                health is not None
                and health.number_of_nodes == NODES - 1
                and health.status == "yellow"
                and shard_nodes(client, ticker).get("p") != victim
            )

        promoted_s = wait_for(promoted, 60, "the ticker's replica promoted on a surviving node")
        time.sleep(max(0.0, killed_at + NODE_DOWN_S - time.monotonic()))
        assert not process.pid_alive(victim_pid)

        restart_at = time.monotonic()
        restarted = search_cluster.start_search_cluster(cluster, lambda line: None, timeout_s=90)
        assert restarted.started == [victim_process] and not restarted.first_formation
        joined_s = time.monotonic() - restart_at
        green = client.options(request_timeout=100).cluster.health(
            wait_for_status="green", timeout="90s"
        )
        green_s = time.monotonic() - restart_at
        assert green["status"] == "green" and green["number_of_nodes"] == NODES, green
        wait_for(lambda: bool(produced_at), 60, "the whole stream added")
        assert writer.flush(timeout_s=60), writer.stats()
        assert writer.wait_for_spool_drained(60), writer.stats()
    finally:
        stop.set()
        producer.join(30)
        sampler.join(5)
        stats = writer.close()
    assert stats.dead == 0 and stats.pending_spool == 0, stats
    assert not writer.dead_letter_path.exists(), writer.dead_letter_path.read_text()[:2000]

    # Every document exactly once, with its values, on both copies.
    indices = sorted({index for index, _ in expected})
    client.indices.refresh(index=",".join(indices))
    for index in indices:
        wanted = {doc_id: source for (name, doc_id), source in expected.items() if name == index}
        hits = all_documents(client, index)
        ids = [hit["_id"] for hit in hits]
        assert len(ids) == len(set(ids)) == len(wanted), (index, len(ids), len(wanted))
        normalised = {doc_id: json.loads(orjson.dumps(src)) for doc_id, src in wanted.items()}
        assert {hit["_id"]: hit["_source"] for hit in hits} == normalised, index
        copies = shard_nodes(client, index)
        assert set(copies) == {"p", "r"}, (index, copies)
        for node in copies.values():
            count = client.count(index=index, preference=f"_only_nodes:{node}")["count"]
            assert count == len(wanted), (index, node, count)
    final = search_cluster.search_cluster_status(cluster)
    assert f"green, {NODES}/{NODES} nodes" in final[-1], final

    pause_s = longest_flat_stretch(acks, killed_at - 1.0, produced_at[0])
    services_report(
        f"elasticsearch node kill (3 nodes, 1 replica): killed {victim} holding the ticker's "
        f"primary ({'also' if was_master else 'not'} the elected master); replica promoted after "
        f"{promoted_s:.1f} s; indexing paused at most {pause_s:.1f} s (longest stretch with no "
        f"document acknowledged); "
        f"{stats.spooled} documents spooled and re-sent; restarted node joined after "
        f"{joined_s:.1f} s, cluster green {green_s:.1f} s after the restart; "
        f"{len(expected)} documents, each exactly once ({stats.indexed} acks)"
    )
    client.close()
