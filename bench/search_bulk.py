"""Bulk indexing throughput: ``SearchWriter`` against a bare ``helpers.bulk``, same node, same docs.

    .venv/bin/python -m bench.search_bulk [--minutes 50000] [--repeat 2] [--batch-size 500] [--no-save]

Documents: for every real minute of a Binance segment (../shared/data/minute), its forecast
document (yhat = log close, the shape ``forecast_documents`` writes for a published forecast) and
a ticker document (bid = low, ask = high): 2 x ``--minutes`` documents with deterministic ids,
built before timing. Each run indexes them into fresh indices (own prefix, templates from
``ensure_templates``, deleted afterwards):

- ``bare``: ``elasticsearch.helpers.bulk(client, actions, chunk_size=batch_size)``; timed from
  the call to its return (every chunk acknowledged).
- ``writer``: ``SearchWriter.add_many(actions)`` then ``flush()`` (background thread, 500-doc
  batches, JSON serialised in ``add``); timed from the first ``add`` to ``flush`` returning with
  every document acknowledged (nothing spooled: checked).

Both runs alternate (bare, writer, writer, bare, ...) and the medians are compared; each run's
index count is checked against the number of unique ids. The goal: the writer >= 10,000 docs/s.
Starts the local node if none answers and stops it afterwards if it started it.
"""

from __future__ import annotations

import argparse
import gzip
import math
import statistics
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pandas as pd
from elasticsearch import Elasticsearch, helpers

from bench.common import save
from rtcrypto.config import get_settings
from rtcrypto.search import documents as docs
from rtcrypto.search.client import search_client
from rtcrypto.search.documents import SearchAction
from rtcrypto.search.indices import INDEX_SPECS, ensure_templates
from rtcrypto.search.writer import SearchWriter
from rtcrypto.stack import search as search_stack
from rtcrypto.trading.order_types import TopOfBook

MINUTE_FILE = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "minute"
    / "binance_BTCUSDT_1m_2021-03-26_2021-04-30.csv.gz"
)
ONE = Decimal(1)


def build_actions(minutes: int, prefix: str) -> list[SearchAction]:
    with gzip.open(MINUTE_FILE, "rt") as handle:
        frame = pd.read_csv(handle, nrows=minutes)
    ts_ms = (pd.to_datetime(frame["timestamp"], utc=True).astype("int64") // 1_000_000).tolist()
    actions = []
    for ts, low, high, close in zip(
        ts_ms, frame["low"].tolist(), frame["high"].tolist(), frame["close"].tolist(), strict=True
    ):
        log_close = math.log(close)
        actions.append(
            docs.forecast_document(
                "bench", ts, log_close, log_close - 0.01, log_close + 0.01, "buy", prefix=prefix
            )
        )
        book = TopOfBook("btcusd", Decimal(str(low)), ONE, Decimal(str(high)), ONE, ts)
        actions.append(docs.ticker_document(book, prefix=prefix))
    return actions


def retarget(actions: list[SearchAction], old: str, new: str) -> list[SearchAction]:
    return [SearchAction(a.index.replace(old, new, 1), a.id, a.source) for a in actions]


def drop(client: Elasticsearch, prefix: str) -> None:
    found = client.indices.get(index=f"{prefix}-*", allow_no_indices=True)
    if found.body:
        client.indices.delete(index=",".join(sorted(found.body)))
    for spec in INDEX_SPECS.values():
        client.options(ignore_status=404).indices.delete_index_template(
            name=spec.template_name(prefix)
        )


def count(client: Elasticsearch, prefix: str) -> int:
    indices = f"{prefix}-forecast,{prefix}-ticker"
    client.indices.refresh(index=indices)
    return int(client.count(index=indices)["count"])


def run_bare(client: Elasticsearch, actions: list[SearchAction], batch_size: int) -> float:
    started = time.perf_counter()
    ok, errors = helpers.bulk(
        client, (action.bulk_entry() for action in actions), chunk_size=batch_size
    )
    seconds = time.perf_counter() - started
    if ok != len(actions) or errors:
        raise SystemExit(f"bare bulk: {ok} ok, errors {errors[:3]}")
    return seconds


def run_writer(client: Elasticsearch, actions: list[SearchAction], batch_size: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-search-spool-") as spool:
        writer = SearchWriter(client, spool_dir=Path(spool), name="bench", batch_size=batch_size)
        started = time.perf_counter()
        writer.add_many(actions)
        if not writer.flush(timeout_s=600):
            raise SystemExit("writer did not finish within 600 s")
        seconds = time.perf_counter() - started
        stats = writer.close()
    if stats.indexed != len(actions) or stats.spooled or stats.dead:
        raise SystemExit(f"writer: {stats}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=50_000, help="minutes of bars (2 docs each)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, alternating")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results")
    args = parser.parse_args()

    settings = get_settings()
    started_node = None
    if not search_stack.search_healthy(settings.search_url):
        started_node = search_stack.start_search(settings)
    client = search_client(settings, request_timeout_s=120.0, max_retries=0)
    template = "rtcbenchtemplate"
    actions = build_actions(args.minutes, template)
    unique = len({(a.index, a.id) for a in actions})
    print(
        f"{len(actions):,} documents ({args.minutes:,} real minutes: forecast + ticker), "
        f"batch {args.batch_size}, Elasticsearch {client.info()['version']['number']} at "
        f"{settings.search_url}"
    )
    seconds: dict[str, list[float]] = {"bare": [], "writer": []}
    runners = {"bare": run_bare, "writer": run_writer}
    try:
        for round_number in range(args.repeat):
            order = ("bare", "writer") if round_number % 2 == 0 else ("writer", "bare")
            for kind in order:
                prefix = f"rtcbench{uuid.uuid4().hex[:8]}"
                ensure_templates(client, prefix)
                try:
                    taken = runners[kind](
                        client, retarget(actions, template, prefix), args.batch_size
                    )
                    indexed = count(client, prefix)
                finally:
                    drop(client, prefix)
                if indexed != unique:
                    raise SystemExit(f"{kind}: {indexed} documents indexed, {unique} expected")
                seconds[kind].append(taken)
                print(f"  {kind:6s} {len(actions) / taken:10,.0f} docs/s ({taken:.2f} s)")
    finally:
        client.close()
        if started_node is not None and not started_node.already_running:
            search_stack.stop_search(settings)
    rates = {kind: len(actions) / statistics.median(values) for kind, values in seconds.items()}
    ratio = rates["writer"] / rates["bare"]
    print(
        f"median: SearchWriter {rates['writer']:,.0f} docs/s, bare helpers.bulk "
        f"{rates['bare']:,.0f} docs/s, writer/bare = {ratio:.2f}; goal >= 10,000 docs/s: "
        f"{'met' if rates['writer'] >= 10_000 else 'NOT met'}"
    )
    if not args.no_save:
        path = save(
            "search_bulk",
            {
                "documents": len(actions),
                "batch_size": args.batch_size,
                "seconds": seconds,
                "writer_docs_per_s": rates["writer"],
                "bare_docs_per_s": rates["bare"],
                "writer_over_bare": ratio,
            },
        )
        print(f"saved {path}")


if __name__ == "__main__":
    main()
