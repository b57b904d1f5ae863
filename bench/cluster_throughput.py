"""Single vs cluster topology, side by side in one run (issue 14).

    .venv/bin/python -m bench.cluster_throughput [--seconds 30] [--rounds 2] [--rate 10000]
        [--windows 2] [--skip-latency]

Both topologies run on this machine at the same time, each in its own temporary home on free
ports: the single one (one KRaft broker, Spark ``local[2]`` inside the job) and the cluster one
(3 KRaft brokers with replication factor 3 and ``min.insync.replicas=2``, topics of
``RTC_CLUSTER_KAFKA_PARTITIONS`` partitions; a Spark standalone master with its workers).

1. **Ingest events/s**, alternating single and cluster ``--rounds`` times: the simulator replays
   the real Gemini capture as fast as it is read (``--speed 0``), the real ingest service writes
   to fresh topics of the topology (acks=all, idempotent), and the rate is the growth of the
   topics' end offsets over ``--seconds``.
2. **Liquidity latency after window end** at ``--rate`` events/s (real BTCUSD changes of the
   capture, event time = now): the real Spark job on each topology (``local[2]``, then
   ``spark://``), ``--windows`` whole windows each, latency = when the window's record can be
   read from Kafka minus the window's end.
3. **Memory per member**: the resident memory of each managed process (its whole process tree:
   a Spark worker includes its executor) while the job runs.

The cluster's cost is replication: every record is written three times and acknowledged by two
in-sync replicas before the producer hears back, on the same two cores. The result is saved to
``bench/results/cluster_throughput.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import save
from bench.ingest_throughput import measure_ingest
from bench.liquidity_latency import WINDOW_MS, Feeder, now_ms, real_changes
from rtcrypto.config import Settings, get_settings
from rtcrypto.config_cluster import ClusterSettings, Topology
from rtcrypto.kafka.producers import make_producer
from rtcrypto.spark import submit as spark
from rtcrypto.stack import kafka, kafka_cluster, lifecycle, maven, process, spark_cluster
from tests.helpers import GEMINI_CAPTURE, free_port
from tests.listeners import process_tree


def _ports(count: int) -> list[int]:
    return [free_port() for _ in range(count)]


def _home(label: str) -> Path:
    home = Path(tempfile.mkdtemp(prefix=f"bench-cluster-{label}-"))
    (home / "lib").symlink_to(get_settings().lib_dir)  # the cached jars
    return home


def single_settings() -> Settings:
    return Settings(
        home=_home("single"),
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
        spark_ui_enabled=False,
    )


def cluster_settings() -> Settings:
    cluster = ClusterSettings(
        kafka_ports=_ports(3),
        kafka_controller_ports=_ports(3),
        spark_master_port=free_port(),
        spark_master_ui_port=free_port(),
        spark_worker_ports=_ports(2),
        spark_worker_ui_ports=_ports(2),
    )
    return Settings(
        home=_home("cluster"),
        topology=Topology.CLUSTER,
        cluster=cluster,
        spark_ui_enabled=False,
    )


def start(settings: Settings) -> float:
    """Start the topology's Kafka (and Spark standalone); return the seconds it took."""
    began = time.monotonic()
    if settings.topology is Topology.CLUSTER:
        kafka_cluster.start_kafka_cluster(settings, print)
        spark_cluster.start_spark_cluster(settings, print)
    else:
        maven.resolve_jars(maven.kafka_broker_jar_set(settings), settings)
        kafka.start_kafka(settings)
    return time.monotonic() - began


def stop(settings: Settings) -> None:
    """As `rtc down` does: each engine's members together (brokers need their quorum)."""
    lifecycle.stop_stack(settings, 30.0, lambda line: None)


def members_cpu_s(settings: Settings) -> float:
    """CPU seconds (user + system) used so far by every managed process and its children."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    roots = [status.pid for status in process.list_processes(settings) if status.pid]
    for pid in process_tree(roots):
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def topic_options(settings: Settings) -> dict[str, Any]:
    """How the topology makes its topics (the same as `rtc stack up`)."""
    if settings.topology is Topology.CLUSTER:
        return {
            "partitions": settings.topic_partitions,
            "replication_factor": settings.cluster.kafka_replication_factor,
            "configs": kafka_cluster.cluster_topic_configs(settings),
        }
    return {"partitions": settings.topic_partitions}


def member_rss_mb(settings: Settings) -> dict[str, float]:
    """Resident memory of each managed process with its children, in MB."""
    sizes = {}
    for status in process.list_processes(settings):
        if not status.pid or not status.running:
            continue
        total_kb = 0
        for pid in process_tree([status.pid]):
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
            except OSError:
                continue
        sizes[status.name] = round(total_kb / 1024, 1)
    return sizes


def ingest_rounds(
    topologies: dict[str, Settings], rounds: int, seconds: float
) -> dict[str, dict[str, list[float]]]:
    """Ingest events/s of each topology, alternating; also the brokers' CPU seconds per
    million records (the replication cost: a record is written and fetched three times)."""
    rates: dict[str, list[float]] = {name: [] for name in topologies}
    cpu: dict[str, list[float]] = {name: [] for name in topologies}
    for round_number in range(1, rounds + 1):
        for name, settings in topologies.items():
            cpu_before = members_cpu_s(settings)
            result = measure_ingest(
                settings.kafka_bootstrap,
                GEMINI_CAPTURE,
                seconds,
                8.0,
                topic_options=topic_options(settings),
            )
            records = result["records"] or 1
            # the whole run (warm-up included) over the measured records: an upper bound
            per_million = (members_cpu_s(settings) - cpu_before) / records * 1e6
            rates[name].append(result["events_per_s"])
            cpu[name].append(round(per_million, 1))
            print(
                f"ingest round {round_number} {name}: {result['events_per_s']:,.0f} events/s; "
                f"members (brokers; Spark daemons idle) {per_million:,.1f} CPU s per million records"
            )
    return {"events_per_s": rates, "broker_cpu_s_per_million": cpu}


def _reader(
    bootstrap: str, topic: str, sink: list[dict[str, Any]], stop_event: threading.Event
) -> Callable[[], None]:
    def read() -> None:
        import json

        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False}
        )
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, partition, 0) for partition in partitions])
        while not stop_event.is_set():
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            value = json.loads(message.value())
            value["received_at_ms"] = now_ms()
            sink.append(value)
        consumer.close()

    return read


def liquidity_latency(settings: Settings, rate: int, windows: int) -> dict[str, Any]:
    """The real job on ``settings``' master at ``rate`` events/s; latency of whole windows."""
    run = f"bench.cluster.{settings.topology}.{time.time_ns() % 10**8}"
    names = {part: f"{run}.{part}" for part in ("orderbook", "liquidity", "deadletter")}
    kafka.ensure_topics(
        names.values(), bootstrap=settings.kafka_bootstrap, **topic_options(settings)
    )
    work = settings.home / "latency"
    config = spark.LiquidityJobConfig.from_settings(settings).with_overrides(
        input_topic=names["orderbook"],
        output_topic=names["liquidity"],
        deadletter_topic=names["deadletter"],
        heartbeat_topic="",
        checkpoint=work / "checkpoint",
    )
    work.mkdir(parents=True, exist_ok=True)
    job = spark.start_job(
        spark.build_submit_command(config, spark.kafka_connector_jars(settings)),
        log_file=work / "spark.log",
    )
    producer = make_producer(settings, "bench-cluster-latency")
    feeder = Feeder(producer, names["orderbook"], real_changes())
    outputs: list[dict[str, Any]] = []
    stop_reader = threading.Event()
    reader = threading.Thread(
        target=_reader(settings.kafka_bootstrap, names["liquidity"], outputs, stop_reader),
        daemon=True,
    )
    memory: dict[str, float] = {}
    try:
        feeder.rate = 50  # something to do while the job starts
        feeder.start()
        reader.start()
        time.sleep(45)
        feeder.rate = rate
        phase_start = now_ms()
        first_window = (phase_start // WINDOW_MS + 1) * WINDOW_MS
        last_end = first_window + windows * WINDOW_MS
        sent_before = feeder.sent
        print(f"{settings.topology}: {rate:,}/s, {windows} whole windows on {config.master}")
        while now_ms() < last_end:
            if job.poll() is not None:
                raise SystemExit(f"spark job exited:\n{(work / 'spark.log').read_text()[-3000:]}")
            if not memory and now_ms() > first_window:
                memory = member_rss_mb(settings)
                memory["spark job (driver)"] = sum(
                    member_rss_mb_of(pid) for pid in process_tree([job.pid])
                )
            time.sleep(1)
        achieved = (feeder.sent - sent_before) / ((now_ms() - phase_start) / 1000)
        feeder.rate = 50
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(
            record["window_end_ms"] >= last_end for record in outputs
        ):
            time.sleep(0.5)
    finally:
        feeder.stop_event.set()
        stop_reader.set()
        spark.stop_job(job)
        producer.close(30)
    measured = [
        record
        for record in outputs
        if first_window <= record["window_start_ms"] and record["window_end_ms"] <= last_end
    ]
    latency = [(record["received_at_ms"] - record["window_end_ms"]) / 1000 for record in measured]
    return {
        "master": config.master,
        "rate": rate,
        "achieved_rate": round(achieved),
        "windows": len(measured),
        "latency_s": latency,
        "latency_median_s": statistics.median(latency) if latency else None,
        "latency_max_s": max(latency) if latency else None,
        "memory_mb": memory,
    }


def member_rss_mb_of(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="ingest measurement window")
    parser.add_argument("--rounds", type=int, default=2, help="ingest rounds per topology")
    parser.add_argument("--rate", type=int, default=10_000, help="events/s for the latency")
    parser.add_argument("--windows", type=int, default=2, help="whole windows per topology")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args(argv)

    topologies = {"single": single_settings(), "cluster": cluster_settings()}
    result: dict[str, Any] = {"started_s": {}, "latency": {}}
    try:
        for name, settings in topologies.items():
            result["started_s"][name] = round(start(settings), 1)
            print(f"{name}: started in {result['started_s'][name]} s")
        ingest_result = ingest_rounds(topologies, args.rounds, args.seconds)
        result["ingest_events_per_s"] = ingest_result["events_per_s"]
        result["broker_cpu_s_per_million"] = ingest_result["broker_cpu_s_per_million"]
        if not args.skip_latency:
            for name, settings in topologies.items():
                result["latency"][name] = liquidity_latency(settings, args.rate, args.windows)
                latency = result["latency"][name]
                print(
                    f"{name}: median {latency['latency_median_s']} s, max "
                    f"{latency['latency_max_s']} s over {latency['windows']} windows at "
                    f"{latency['achieved_rate']:,}/s; memory {latency['memory_mb']}"
                )
    finally:
        for settings in topologies.values():
            stop(settings)
    ingest = result["ingest_events_per_s"]
    single, cluster = statistics.median(ingest["single"]), statistics.median(ingest["cluster"])
    result["ingest_ratio_cluster_to_single"] = round(cluster / single, 3)
    print(
        f"ingest median: single {single:,.0f}/s, cluster {cluster:,.0f}/s "
        f"(cluster/single {cluster / single:.2f})"
    )
    print(f"saved {save('cluster_throughput', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
