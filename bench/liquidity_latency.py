"""Liquidity latency: from a window's end (event time) to its record on liquidity.minute.v1.

    .venv/bin/python -m bench.liquidity_latency [--rates 1000,10000] [--windows 3]

The real Spark job (spark-submit, local[2], settings' trigger and watermark) reads a fresh topic.
A feeder writes order-book change records at a fixed rate with event time = wall-clock time,
cycling through the real BTCUSD changes of the Gemini capture, plus a time tick every 200 ms as
the ingest does. For every window that lies wholly inside one rate's phase the benchmark records
``received_at - window_end`` (when the record could be read from Kafka) and Spark's own
``emitted_at_ms - window_end``. Goal: <= 10 s at 10,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from bench.common import drop_topics, ensure_broker, fresh_topics, save
from rtcrypto.config import get_settings
from rtcrypto.kafka.producers import make_producer
from rtcrypto.market.captures import load_capture
from rtcrypto.market.captures.gemini_v1 import replay_v1_change_events
from rtcrypto.market.schemas import BookChange, TimeTick
from rtcrypto.spark import submit as spark
from tests.helpers import GEMINI_CAPTURE

WINDOW_MS = 60_000
BATCH_INTERVAL_S = 0.01


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def real_changes() -> list[tuple[str, str, str]]:
    """(side, price, remaining) of every BTCUSD change in the Gemini capture."""
    capture = load_capture(GEMINI_CAPTURE)
    return [
        (event["side"], event["price"], event["remaining"])
        for _, event in replay_v1_change_events(capture.messages, "BTCUSD")
    ]


class Feeder(threading.Thread):
    """Writes change records at ``rate`` per second (event time = now) until told to stop."""

    def __init__(self, producer, topic: str, changes: list[tuple[str, str, str]]) -> None:
        super().__init__(daemon=True)
        self.producer, self.topic, self.changes = producer, topic, changes
        self.rate = 0
        self.sent = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        event_id, position, next_tick = 0, 0, 0.0
        started, owed = time.monotonic(), 0.0
        last = started
        while not self.stop_event.is_set():
            current = time.monotonic()
            owed += (current - last) * self.rate
            last = current
            stamp = now_ms()
            batch = int(owed)
            owed -= batch
            event_id += 1
            for index in range(batch):
                side, price, remaining = self.changes[position % len(self.changes)]
                position += 1
                record = BookChange(
                    "BTCUSD",
                    side,
                    price,
                    remaining,
                    remaining,
                    "place",
                    event_id,
                    index,
                    0,
                    stamp,
                    stamp,
                )  # type: ignore[arg-type]
                self.producer.send(self.topic, record.key.encode(), record.to_bytes())
            self.sent += batch
            if current >= next_tick:
                tick = TimeTick("BTCUSD", stamp, stamp, "clock")
                self.producer.send(self.topic, tick.key.encode(), tick.to_bytes())
                next_tick = current + 0.2
            time.sleep(BATCH_INTERVAL_S)


def read_outputs(bootstrap: str, topic: str, sink: list[dict], stop: threading.Event) -> None:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=200
    )
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    while not stop.is_set():
        for message in consumer:
            value = json.loads(message.value)
            value["received_at_ms"] = now_ms()
            sink.append(value)
    consumer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1000,10000", help="events/s, comma-separated")
    parser.add_argument("--windows", type=int, default=3, help="whole windows measured per rate")
    args = parser.parse_args(argv)
    rates = [int(rate) for rate in args.rates.split(",")]

    settings = get_settings()
    bootstrap = ensure_broker(settings)
    topics = fresh_topics(bootstrap, "latency")
    work = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    config = spark.LiquidityJobConfig.from_settings(settings).with_overrides(
        bootstrap=bootstrap,
        input_topic=topics.orderbook,
        output_topic=topics.liquidity,
        deadletter_topic=topics.deadletter,
        checkpoint=work / "checkpoint",
    )
    print(
        f"spark: trigger {config.trigger}, watermark {config.watermark}, master {config.master}; log {work / 'spark.log'}"
    )
    job = spark.start_job(
        spark.build_submit_command(config, spark.kafka_connector_jars(settings)),
        log_file=work / "spark.log",
    )
    producer = make_producer(
        settings.model_copy(update={"kafka_bootstrap": bootstrap}), "bench-latency"
    )
    feeder = Feeder(producer, topics.orderbook, real_changes())
    outputs: list[dict] = []
    stop_reader = threading.Event()
    reader = threading.Thread(
        target=read_outputs, args=(bootstrap, topics.liquidity, outputs, stop_reader), daemon=True
    )
    phases: list[dict] = []
    try:
        feeder.rate = 50  # keep Spark busy with something while it starts
        feeder.start()
        reader.start()
        time.sleep(30)
        for rate in rates:
            feeder.rate = rate
            phase_start = now_ms()
            first_window = (phase_start // WINDOW_MS + 1) * WINDOW_MS  # first whole window
            last_window_end = first_window + args.windows * WINDOW_MS
            sent_before = feeder.sent
            print(
                f"rate {rate:,}/s: measuring windows {time.strftime('%H:%M', time.gmtime(first_window / 1000))} .. "
                f"{time.strftime('%H:%M', time.gmtime(last_window_end / 1000))} UTC"
            )
            while now_ms() < last_window_end:
                if job.poll() is not None:
                    raise SystemExit(
                        f"spark job exited:\n{(work / 'spark.log').read_text()[-3000:]}"
                    )
                time.sleep(1)
            achieved = (feeder.sent - sent_before) / ((now_ms() - phase_start) / 1000)
            phases.append(
                {
                    "rate": rate,
                    "achieved_rate": achieved,
                    "first_window": first_window,
                    "end": last_window_end,
                }
            )
        feeder.rate = 50
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            o["window_end_ms"] >= phases[-1]["end"] for o in outputs
        ):
            time.sleep(0.5)
    finally:
        feeder.stop_event.set()
        stop_reader.set()
        spark.stop_job(job)
        producer.close(30)
        drop_topics(bootstrap, topics)

    result_phases = []
    for phase in phases:
        windows = [
            o
            for o in outputs
            if phase["first_window"] <= o["window_start_ms"] and o["window_end_ms"] <= phase["end"]
        ]
        read_latency = [(o["received_at_ms"] - o["window_end_ms"]) / 1000 for o in windows]
        spark_latency = [(o["emitted_at_ms"] - o["window_end_ms"]) / 1000 for o in windows]
        summary = {
            "rate": phase["rate"],
            "achieved_rate": round(phase["achieved_rate"]),
            "windows": len(windows),
            "events_per_window": [o["event_count"] for o in windows],
            "latency_s": read_latency,
            "latency_max_s": max(read_latency) if read_latency else None,
            "latency_median_s": statistics.median(read_latency) if read_latency else None,
            "spark_emit_latency_s": spark_latency,
        }
        result_phases.append(summary)
        print(
            f"rate {phase['rate']:,}/s (achieved {phase['achieved_rate']:,.0f}/s): {len(windows)} windows, "
            f"window end -> record readable: median {summary['latency_median_s']} s, max {summary['latency_max_s']} s "
            f"(goal <= 10 s at 10,000/s); per window {[round(x, 1) for x in read_latency]}"
        )
    path = save(
        "liquidity_latency",
        {"trigger": config.trigger, "watermark": config.watermark, "phases": result_phases},
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
