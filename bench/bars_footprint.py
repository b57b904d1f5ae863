"""CPU and RSS of the bars job, the liquidity job, and both queries in one Spark application.

    .venv/bin/python -m bench.bars_footprint [--modes bars,liquidity,combined] [--warm 100]
                                             [--window 90]

Each mode gets fresh topics and the same input: the real Gemini capture's records (its 10
symbols' trades, the BTCUSD/ETHUSD book changes, a tick per second, per-minute book_depth mids)
re-timed to the wall clock and looped, one 31 s capture per 31 s: about a live market's rate.
After ``--warm`` seconds (start-up and first batches) the job's process tree (spark-submit JVM
and its Python driver) is sampled for ``--window`` seconds: CPU time as % of one core, RSS.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
import time
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

from bench.common import ensure_broker, save
from rtcrypto.config import get_settings
from rtcrypto.feedbars import options
from rtcrypto.kafka.producers import make_producer
from rtcrypto.market.schemas import Trade
from rtcrypto.spark import submit as spark
from rtcrypto.stack import kafka as kafka_stack
from tests.integration.test_bars_job import tree_cpu_s, tree_rss_mb
from tests.unit.test_feed_bars import capture_orderbook, capture_trades

MODES = ("bars", "liquidity", "combined")


def feed(bootstrap: str, topics: dict[str, str], stop: threading.Event) -> None:
    """The capture's records with event time = now, looped until ``stop``."""
    records: list[Any] = sorted(
        [*capture_orderbook(1), *capture_trades(1)], key=lambda r: r.ts_event_ms
    )
    first_ms = records[0].ts_event_ms
    span_ms = records[-1].ts_event_ms - first_ms + 1000
    settings = get_settings().model_copy(update={"kafka_bootstrap": bootstrap})
    producer = make_producer(settings, "bench-bars-footprint")
    start_ms, loop = time.time() * 1000, 0
    while not stop.is_set():
        for record in records:
            due_ms = start_ms + loop * span_ms + (record.ts_event_ms - first_ms)
            while time.time() * 1000 < due_ms and not stop.is_set():
                time.sleep(0.05)
            changes: dict[str, Any] = {"ts_event_ms": int(due_ms), "key": ""}
            if isinstance(record, Trade):
                changes["trade_id"] = record.trade_id + loop * 10**12
            shifted = dataclasses.replace(record, **changes)
            topic = topics["trades"] if isinstance(record, Trade) else topics["orderbook"]
            producer.send(topic, shifted.key.encode(), shifted.to_bytes())
        loop += 1
    producer.close(10)


def command(mode: str, topics: dict[str, str], folder: Path) -> list[str]:
    settings = get_settings()
    jars = spark.kafka_connector_jars(settings)
    liquidity = spark.LiquidityJobConfig.from_settings(settings).with_overrides(
        input_topic=topics["orderbook"],
        output_topic=topics["liquidity"],
        deadletter_topic=topics["deadletter"],
        heartbeat_topic=topics["heartbeat"],
        checkpoint=folder / "liquidity",
        starting_offsets="latest",
    )
    bars = options.BarsJobOptions.from_settings(settings).with_overrides(
        trades_topic=topics["trades"],
        orderbook_topic=topics["orderbook"],
        heartbeat_topic=topics["heartbeat"],
        checkpoint=folder / "bars",
        history_dir=folder / "history",
        starting_offsets="latest",
    )
    if mode == "bars":
        return options.submit_command(bars, jars)
    if mode == "liquidity":
        return spark.build_submit_command(liquidity, jars)
    script = Path(__file__).with_name("bars_combined_app.py")
    return [
        *spark.build_submit_command(liquidity, jars, job_script=script),
        "--bars",
        *bars.to_args(),
    ]


def measure(mode: str, bootstrap: str, warm_s: float, window_s: float) -> dict[str, Any]:
    names = ("orderbook", "trades", "liquidity", "deadletter", "heartbeat")
    suffix = f"{int(time.time())}"
    topics = {name: f"bench.bars_footprint.{mode}.{name}.{suffix}" for name in names}
    kafka_stack.ensure_topics(list(topics.values()), bootstrap=bootstrap, partitions=1)
    folder = Path(mkdtemp(prefix=f"bars-footprint-{mode}-"))
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(bootstrap, topics, stop), daemon=True)
    feeder.start()
    job = spark.start_job(command(mode, topics, folder), log_file=folder / "job.log")
    try:
        time.sleep(warm_s)
        if job.poll() is not None:
            raise RuntimeError(f"{mode} exited: {(folder / 'job.log').read_text()[-2000:]}")
        cpu_start, started = tree_cpu_s(job.pid), time.monotonic()
        rss = []
        while time.monotonic() - started < window_s:
            rss.append(tree_rss_mb(job.pid))
            time.sleep(5)
        cpu_pct = 100 * (tree_cpu_s(job.pid) - cpu_start) / (time.monotonic() - started)
    finally:
        stop.set()
        spark.stop_job(job, timeout_s=60)
        feeder.join(15)
        kafka_stack.delete_topics(list(topics.values()), bootstrap=bootstrap)
    return {
        "mode": mode,
        "cpu_pct_of_one_core": round(cpu_pct, 1),
        "rss_mb_mean": round(sum(rss) / len(rss)),
        "rss_mb_max": round(max(rss)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--warm", type=float, default=100.0)
    parser.add_argument("--window", type=float, default=90.0)
    args = parser.parse_args(argv)
    bootstrap = ensure_broker()
    results = [measure(mode, bootstrap, args.warm, args.window) for mode in args.modes.split(",")]
    for result in results:
        print(result)
    save("bars_footprint", {"results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
