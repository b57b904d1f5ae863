"""Ingest throughput: simulator at full speed -> ingest -> Kafka, against a raw producer.

    .venv/bin/python -m bench.ingest_throughput [--seconds 30] [--capture FILE]

1. The simulator replays a real capture in a loop as fast as the reader takes it (``--speed 0``);
   the real ingest service (a child process, as in production) writes to fresh topics. The rate
   is the growth of the topics' end offsets (records the broker acknowledged) over the window.
2. Side by side in the same run: the records the ingest produced are read back, already
   serialised, and a bare producer with the same settings (acks=all, idempotent, linger 5 ms)
   sends them to a fresh topic; its rate is records / (first send to flush done). The raw
   producer is the platform's own (confluent-kafka, ``make_producer``) and, as a baseline, a
   kafka-python ``KafkaProducer`` (256 KiB batches); ``--client`` picks one or both.
The ratio ingest / raw is what the ingest's own work costs; the goal is >= 0.8 and >= 20,000/s.
The ingest itself is always confluent-kafka: the only client of production code since issue 11
(``RTC_KAFKA_CLIENT`` is retired), so kafka-python lives on here only as the baseline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from bench.common import drop_topics, end_offsets, ensure_broker, fresh_topics, save
from rtcrypto.config import Settings, get_settings
from rtcrypto.kafka.producers import RecordProducer, make_producer
from tests.helpers import GEMINI_CAPTURE, free_port, start_ingest, start_simulator


class KafkaPythonBaselineProducer:
    """kafka-python's KafkaProducer with the platform producer's guarantees (the baseline).

    The production producer of ingest before issue 11, when ``RTC_KAFKA_CLIENT=kafka-python``
    chose it; kept here only to compare against."""

    def __init__(self, settings: Settings, client_id: str) -> None:
        from kafka import KafkaProducer

        codec = None if settings.kafka_compression == "none" else settings.kafka_compression
        self._producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            retries=2_147_483_647,
            linger_ms=5,
            batch_size=256 * 1024,
            max_block_ms=120_000,
            compression_type=codec,
            delivery_timeout_ms=settings.kafka_delivery_timeout_ms,
            # kafka-python wants delivery >= linger + request timeout
            request_timeout_ms=min(30_000, settings.kafka_delivery_timeout_ms - 10),
        )

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self._producer.send(topic, key=key, value=value)

    def flush(self, timeout_s: float) -> int:
        self._producer.flush(timeout=timeout_s)
        return 0

    def close(self, timeout_s: float) -> None:
        self._producer.close(timeout=timeout_s)


def raw_producer(settings: Settings, client: str) -> RecordProducer:
    """The raw producer of ``client``: the platform's (confluent) or the kafka-python baseline."""
    if client == "kafka-python":
        return KafkaPythonBaselineProducer(settings, "bench-raw")
    return make_producer(settings, "bench-raw")


def measure_ingest(
    bootstrap: str,
    capture: Path,
    seconds: float,
    warmup_s: float,
    topic_options: dict | None = None,
) -> dict:
    topics = fresh_topics(bootstrap, "ingest", **(topic_options or {}))
    produced = [topics.orderbook, topics.trades]
    log_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    port = free_port()
    simulator = start_simulator(port, log_dir, "--speed", "0", "--loop", capture=capture)
    env = {**topics.env(), "RTC_KAFKA_BOOTSTRAP": bootstrap}
    ingest = start_ingest(port, log_dir, env)
    try:
        time.sleep(warmup_s)
        start_count, start = end_offsets(bootstrap, produced), time.monotonic()
        time.sleep(seconds)
        end_count, end = end_offsets(bootstrap, produced), time.monotonic()
        if not ingest.alive():
            raise SystemExit(f"ingest died during the benchmark:\n{ingest.log()[-3000:]}")
    finally:
        ingest.stop()
        simulator.stop()
    records = end_count - start_count
    return {
        "topics": topics,
        "records": records,
        "seconds": end - start,
        "events_per_s": records / (end - start),
        "log_dir": str(log_dir),
    }


def read_records(bootstrap: str, topic: str, limit: int) -> list[tuple[bytes | None, bytes]]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        consumer_timeout_ms=2000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    records = []
    for message in consumer:
        records.append((message.key, message.value))
        if len(records) >= limit:
            break
    consumer.close()
    return records


def measure_raw_producer(
    bootstrap: str, records: list[tuple[bytes | None, bytes]], client: str
) -> dict:
    """The same records through a bare producer of ``client``, and nothing else."""
    topics = fresh_topics(bootstrap, "raw")
    settings = get_settings().model_copy(update={"kafka_bootstrap": bootstrap})
    producer = raw_producer(settings, client)
    try:
        producer.send(topics.orderbook, b"warm-up", b"{}")
        producer.flush(30)
        start = time.monotonic()
        for key, value in records:
            producer.send(topics.orderbook, key, value)
        left = producer.flush(300)
        seconds = time.monotonic() - start
    finally:
        producer.close(30)
        drop_topics(bootstrap, topics)
    if left:
        raise SystemExit(f"raw producer left {left} records undelivered")
    return {"records": len(records), "seconds": seconds, "events_per_s": len(records) / seconds}


def run(bootstrap: str, clients: list[str], args: argparse.Namespace) -> dict:
    """The ingest once, then each raw producer of ``clients`` on the records it produced."""
    print(f"ingest: simulator --speed 0 --loop {args.capture.name} -> ingest -> Kafka")
    ingest = measure_ingest(bootstrap, args.capture, args.seconds, args.warmup)
    print(
        f"  {ingest['records']:,} records in {ingest['seconds']:.1f} s "
        f"= {ingest['events_per_s']:,.0f} events/s"
    )
    sample = read_records(bootstrap, ingest["topics"].orderbook, ingest["records"])
    drop_topics(bootstrap, ingest.pop("topics"))
    raw = {}
    for client in clients:
        print(f"[{client}] raw producer: the same {len(sample):,} pre-serialised records")
        raw[client] = measure_raw_producer(bootstrap, sample, client)
        print(
            f"  {raw[client]['records']:,} records in {raw[client]['seconds']:.1f} s "
            f"= {raw[client]['events_per_s']:,.0f} events/s"
        )
    ratios = {client: ingest["events_per_s"] / raw[client]["events_per_s"] for client in clients}
    for client, ratio in ratios.items():
        print(
            f"ratio ingest (confluent) / raw {client} = {ratio:.2f} "
            "(goal >= 0.80; ingest goal >= 20,000 events/s)"
        )
    return {"ingest": ingest, "raw_producers": raw, "ratios": ratios}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds before measuring")
    parser.add_argument("--capture", type=Path, default=GEMINI_CAPTURE)
    parser.add_argument(
        "--client",
        choices=["confluent", "kafka-python", "both"],
        default="both",
        help="Kafka client of the raw producer (the ingest is always confluent)",
    )
    args = parser.parse_args(argv)
    bootstrap = ensure_broker(get_settings())
    clients = ["confluent", "kafka-python"] if args.client == "both" else [args.client]
    results = run(bootstrap, clients, args)
    path = save("ingest_throughput", {"capture": str(args.capture), **results})
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
