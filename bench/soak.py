"""Soak test (``make soak``, not in CI): the whole platform for an hour at 10x Gemini's rate.

    python -m bench.soak [--minutes 60] [--speed 10] [--interval 60] [--max-slope 50]

Starts ``rtc up --no-follow`` on its own ``RTC_HOME`` (a temporary folder) and free ports: Kafka,
Elasticsearch, Airflow, the history import, forecast and indices, then the simulator, ingest,
Spark liquidity and bars jobs and the paper trader. The simulator replays the real minute bars
(modelled book) at ``--speed`` (``RTC_SOAK_SPEED``, 10): the modelled book's change rate is
calibrated on the real Gemini capture (67 changes/s), so speed 10 is 10x Gemini's rate; both
rates are measured and reported. Every ``--interval`` seconds it records RSS per managed process
and its children, topic sizes, index sizes, the spool and consumer lag (``bench/soak_metrics``)
to ``samples.jsonl`` and ``samples.csv`` under ``bench/results/soak-<UTC time>/`` and prints a
progress line.

At the end it drains the pipeline (Airflow stopped so the supervisor restarts nothing, then the
ingest, then it waits until Spark and the trader have read everything, then the trader) and
checks that nothing was lost, each count from where it is observable:

- ingest heartbeat ``processed`` = change records on ``gemini.orderbook.v1`` + trade records;
- records on ``gemini.orderbook.v1`` = Spark's input rows (the liquidity job's heartbeat
  ``processed``: the sum of its batches' ``numInputRows``) = its checkpoint's offsets;
- change records in closed windows = the sum of ``event_count`` over ``liquidity.minute.v1``;
- liquidity records = trader heartbeat ``processed`` = ``rtc-liquidity`` documents;
- orders the trader sent (its stop log line) = ``sent`` journal entries = ``rtc-orders`` documents;

and that memory stays flat: the least-squares RSS slope of every managed process over the run's
second half is below ``--max-slope`` MB/h. ``summary.json`` and ``report.md`` hold the figures;
the exit code is 0 on pass, 1 on fail. ``rtc down`` runs at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench.common import RESULTS
from bench.soak_metrics import second_half_slopes, take_sample
from bench.soak_report import write_report
from rtcrypto import supervision as services
from rtcrypto.config import Settings, get_settings
from rtcrypto.stack import process

RTC = [sys.executable, "-m", "rtcrypto.cli.main"]
CAPTURE_CHANGES_PER_S_NOTE = "BTCUSD changes of the Gemini v2 capture, snapshot excluded"
LOG_TAIL_BYTES = 2_000_000  # of each service log copied into the results folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def soak_env(home: Path, speed: float) -> dict[str, str]:
    """The platform's environment: its own home, free ports, the replay at ``speed``."""
    return {
        "RTC_HOME": str(home),
        "RTC_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "RTC_KAFKA_CONTROLLER_PORT": str(free_port()),
        "RTC_SEARCH_URL": f"http://127.0.0.1:{free_port()}",
        "RTC_SEARCH_TRANSPORT_PORT": str(free_port()),
        "RTC_SIMULATOR_PORT": str(free_port()),
        "RTC_AIRFLOW_PORT": str(free_port()),
        "RTC_AIRFLOW_WORKER_LOG_PORT": str(free_port()),
        "RTC_AIRFLOW_TRIGGER_LOG_PORT": str(free_port()),
        "RTC_SIMULATOR_HISTORY_SPEED": f"{speed:g}",
        "SPARK_LOCAL_IP": "127.0.0.1",
    }


def capture_changes_per_s(path: Path) -> dict[str, float]:
    """The real Gemini capture's BTCUSD change rate: changes of its updates (the first full
    snapshot excluded) over the span between its first and last BTCUSD message."""
    from rtcrypto.market.captures import BookUpdate, load_capture

    messages = load_capture(path).for_symbol("BTCUSD")
    updates = [m for m in messages if isinstance(m, BookUpdate) and not m.is_snapshot]
    span_s = (messages[-1].ts_receive_ms - messages[0].ts_receive_ms) / 1000
    changes = sum(len(update.changes) for update in updates)
    return {"changes": changes, "span_s": span_s, "changes_per_s": round(changes / span_s, 2)}


# --- counts at the end --------------------------------------------------------------------------


def read_topic(settings: Settings, topic: str) -> Iterator[tuple[int, bytes]]:
    """Every record of ``topic`` from the beginning to its end offsets now: (timestamp ms, value)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    ends = services.end_offsets(services.kafka_admin(settings), topic)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": "rtc-soak-count",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        pending = {p for p, end in ends.items() if end > 0}
        deadline = time.monotonic() + 600
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                partition, offset = int(message.partition() or 0), int(message.offset() or 0)
                if message.error() or partition not in pending or offset >= ends[partition]:
                    continue
                yield message.timestamp()[1], message.value() or b""
                if offset + 1 >= ends[partition]:
                    pending.discard(partition)
        if pending:
            raise RuntimeError(
                f"{topic}: partitions {sorted(pending)} not read to the end in 600 s"
            )
    finally:
        consumer.close()


def orderbook_counts(settings: Settings) -> dict[str, Any]:
    """Records of ``gemini.orderbook.v1`` by type, changes per minute window, and the wall-clock
    span (Kafka timestamps) over which the changes were produced."""
    by_type: Counter[str] = Counter()
    per_window: Counter[int] = Counter()
    first_ms, last_ms = None, None
    for ts_ms, value in read_topic(settings, settings.topics.orderbook):
        record = json.loads(value)
        kind = record.get("type", "?")
        by_type[kind] += 1
        if kind == "change":
            per_window[int(record["ts_event_ms"]) // 60_000 * 60_000] += 1
            first_ms = ts_ms if first_ms is None else min(first_ms, ts_ms)
            last_ms = ts_ms if last_ms is None else max(last_ms, ts_ms)
    return {
        "by_type": dict(by_type),
        "records": sum(by_type.values()),
        "per_window": per_window,
        "change_wall_span_s": ((last_ms or 0) - (first_ms or 0)) / 1000,
    }


def journal_counts(settings: Settings) -> dict[str, Any]:
    """Entries of the trader's journal(s) by type, and the client order ids of ``sent``."""
    kinds: Counter[str] = Counter()
    sent: list[str] = []
    for path in sorted(settings.trader_dir.glob("journal*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                kinds["unreadable"] += 1
                continue
            kinds[entry.get("type", "?")] += 1
            if entry.get("type") == "sent":
                sent.append(str((entry.get("request") or {}).get("client_order_id")))
    return {"by_type": dict(kinds), "sent_ids": sent}


def search_ids(client: Any, index: str) -> list[str]:
    client.indices.refresh(index=index, ignore_unavailable=True)
    hits = client.search(index=index, size=10_000, source=False, ignore_unavailable=True)
    return [hit["_id"] for hit in hits.get("hits", {}).get("hits", [])]


def search_count(client: Any, index: str) -> int:
    client.indices.refresh(index=index, ignore_unavailable=True)
    return int(client.count(index=index, ignore_unavailable=True)["count"])


def trader_stop_line(settings: Settings) -> dict[str, int] | None:
    """``processed`` and ``orders`` of the trader's last ``trader stopped`` log line."""
    text = process.log_path(services.TRADER, settings).read_text(errors="replace")
    found = re.findall(r"trader stopped processed=(\d+) orders=(\d+)", text)
    return {"processed": int(found[-1][0]), "orders": int(found[-1][1])} if found else None


def check(name: str, **values: Any) -> dict[str, Any]:
    """One equality check: passes when every value is known and all are equal."""
    known = [value for value in values.values() if value is not None]
    ok = len(known) == len(values) and len(set(known)) == 1
    return {"check": name, "ok": ok, **values}


# --- the run --------------------------------------------------------------------------------------


def wait_for(what: str, condition: Any, timeout_s: float, poll_s: float = 3.0) -> bool:
    """Poll ``condition()`` until true or ``timeout_s``; say so when it never became true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except Exception as error:  # noqa: BLE001 - retried until the deadline
            print(f"  waiting for {what}: {type(error).__name__}: {error}", flush=True)
        time.sleep(poll_s)
    print(f"  gave up waiting for {what} after {timeout_s:.0f} s", flush=True)
    return False


def heartbeat_processed(settings: Settings, service: str) -> int | None:
    beat = (services.read_latest_heartbeats(settings) or {}).get(service)
    return None if beat is None else int(beat.get("processed") or 0)


def drain_and_count(settings: Settings, client: Any) -> dict[str, Any]:
    """Stop the inputs, let every consumer catch up, stop the trader, and count."""
    admin = services.kafka_admin(settings)
    topics = settings.topics
    print("drain: stopping airflow (no supervisor restart from here) and the ingest", flush=True)
    process.stop_process("airflow", settings=settings, timeout_s=60)
    services.stop_service(services.INGEST, settings)

    def produced(topic: str) -> int:
        return sum(services.end_offsets(admin, topic).values())

    wait_for(
        "Spark to read every orderbook record",
        lambda: heartbeat_processed(settings, "spark-liquidity") == produced(topics.orderbook),
        timeout_s=180,
    )
    wait_for(
        "the trader to read every liquidity record",
        lambda: (
            services.consumer_group_lag(admin, settings.trader_consumer_group, topics.liquidity)
            == 0
        ),
        timeout_s=180,
    )
    time.sleep(settings.search_flush_interval_s * 3)
    services.stop_service(services.TRADER, settings)
    checkpoint = services.latest_checkpoint_offsets(
        services.get_service(services.LIQUIDITY).checkpoint_offsets_dir(settings),  # type: ignore[misc]
        topics.orderbook,
    )
    latest = services.read_latest_heartbeats(settings) or {}
    book = orderbook_counts(settings)
    liquidity = [json.loads(value) for _, value in read_topic(settings, topics.liquidity)]
    emitted = {int(r["window_start_ms"]): int(r["event_count"]) for r in liquidity}
    last_window = max(emitted, default=0)
    closed = {w: n for w, n in book["per_window"].items() if w <= last_window}
    journal = journal_counts(settings)
    prefix = settings.search_index_prefix
    order_ids = search_ids(client, f"{prefix}-orders")
    stop_line = trader_stop_line(settings)
    trades = produced(topics.trades)
    changes = book["by_type"].get("change", 0)
    return {
        "orderbook_by_type": book["by_type"],
        "trades_records": trades,
        "liquidity_records": len(liquidity),
        "windows_emitted": len(emitted),
        "windows_with_changes_closed": len(closed),
        "windows_mismatched": sorted(w for w, n in closed.items() if emitted.get(w) != n)[:20],
        "change_wall_span_s": book["change_wall_span_s"],
        "journal_by_type": journal["by_type"],
        "heartbeats": {name: beat.get("processed") for name, beat in sorted(latest.items())},
        "checks": [
            check(
                "ingest processed = changes + trades on Kafka",
                ingest_heartbeat=(latest.get("ingest") or {}).get("processed"),
                kafka_changes_plus_trades=changes + trades,
            ),
            check(
                "orderbook records = Spark input rows",
                kafka_orderbook_records=book["records"],
                spark_num_input_rows=(latest.get("spark-liquidity") or {}).get("processed"),
                spark_checkpoint_offsets=sum(checkpoint.values()) if checkpoint else None,
            ),
            check(
                "changes in closed windows = sum of event_count",
                kafka_changes=sum(closed.values()),
                liquidity_event_count=sum(emitted.values()),
            ),
            check(
                "liquidity records = trader processed = rtc-liquidity docs",
                kafka_liquidity_records=len(liquidity),
                trader_heartbeat=(latest.get("trader") or {}).get("processed"),
                search_liquidity_docs=search_count(client, f"{prefix}-liquidity"),
            ),
            check(
                "orders = journal = rtc-orders docs",
                trader_orders=None if stop_line is None else stop_line["orders"],
                journal_sent=len(journal["sent_ids"]),
                search_order_docs=len(order_ids),
            ),
            check(
                "journal order ids = rtc-orders ids",
                journal=" ".join(sorted(journal["sent_ids"])),
                search=" ".join(sorted(order_ids)),
            ),
        ],
    }


def sample_loop(
    settings: Settings, client: Any, minutes: float, interval_s: float, out: Path
) -> list[dict[str, Any]]:
    """Sample every ``interval_s`` for ``minutes``; print one progress line per sample."""
    from bench.soak_metrics import flat_rows

    admin = services.kafka_admin(settings)
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    run_s = minutes * 60
    with (out / "samples.jsonl").open("a") as jsonl, (out / "samples.csv").open("a") as csv:
        csv.write("elapsed_s,part,name,metric,value\n")
        while True:
            elapsed = time.monotonic() - started
            sample = take_sample(settings, admin, client, elapsed)
            samples.append(sample)
            jsonl.write(json.dumps(sample) + "\n")
            jsonl.flush()
            csv.writelines(
                ",".join(str(field) for field in row) + "\n" for row in flat_rows(sample)
            )
            csv.flush()
            print(progress_line(sample, samples[-2] if len(samples) > 1 else None), flush=True)
            if elapsed >= run_s:
                return samples
            time.sleep(
                max(0.0, min(interval_s * len(samples), run_s) - (time.monotonic() - started))
            )


def _lag_label(key: str) -> str:
    """``rtc-trader:liquidity.minute.v1`` -> ``rtc-trader``; ``spark:liquidity`` -> ``liquidity``."""
    group, _, rest = key.partition(":")
    return rest if group == "spark" else group


def progress_line(sample: dict[str, Any], previous: dict[str, Any] | None) -> str:
    """``soak 12.0 min | rss MB kafka 812 ... | orderbook 480,112 (+668/s) | lag ... | spool``."""
    rss = sample.get("rss") or {}
    memory = " ".join(
        f"{name} {value['rss_mb']:.0f}"
        for name, value in rss.items()
        if isinstance(value, dict) and "rss_mb" in value
    )
    topics = sample.get("topics") or {}
    book = (topics.get(get_settings().topics.orderbook) or {}).get("produced", 0)
    rate = ""
    if previous is not None:
        before = ((previous.get("topics") or {}).get(get_settings().topics.orderbook) or {}).get(
            "produced", 0
        )
        seconds = sample["elapsed_s"] - previous["elapsed_s"]
        rate = f" (+{(book - before) / seconds:,.0f}/s)" if seconds > 0 else ""
    lags = " ".join(f"{_lag_label(k)}={v}" for k, v in (sample.get("lag") or {}).items())
    spool = (sample.get("spool") or {}).get("bytes", "?")
    return (
        f"soak {sample['elapsed_s'] / 60:5.1f} min | rss MB {memory} | orderbook {book:,}{rate} | "
        f"lag {lags} | spool {spool} B | load {sample['load_1m']}"
    )


def copy_logs(settings: Settings, out: Path) -> None:
    """The tail of every log of the platform into ``out/logs``."""
    target = out / "logs"
    target.mkdir(exist_ok=True)
    for path in sorted(settings.log_dir.glob("*.log")):
        with path.open("rb") as source:
            source.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
            (target / path.name).write_bytes(source.read())


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = get_settings()
    parser = argparse.ArgumentParser(prog="bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=defaults.soak_minutes)
    parser.add_argument("--speed", type=float, default=defaults.soak_speed)
    parser.add_argument("--interval", type=float, default=defaults.soak_sample_interval_s)
    parser.add_argument("--max-slope", type=float, default=defaults.soak_max_rss_slope_mb_per_h)
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--keep-home", action="store_true", help="keep the platform's RTC_HOME")
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="DIR",
        help="only judge and render again the run in DIR (its summary.json and samples.jsonl)",
    )
    args = parser.parse_args(argv)
    for name in ("minutes", "speed", "interval", "max_slope"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0")
    return args


def render_again(out: Path) -> int:
    """Judge a finished run again from its files (e.g. after a change to the report)."""
    summary = json.loads((out / "summary.json").read_text())
    if "counts" not in summary:
        print(
            f"error: {out / 'summary.json'} has no counts: the run did not finish", file=sys.stderr
        )
        return 2
    lines = (out / "samples.jsonl").read_text().splitlines()
    samples = [json.loads(line) for line in lines if line.strip()]
    summary["slopes_mb_per_h"] = second_half_slopes(samples, float(summary["minutes"]) * 60)
    passed = write_report(summary, samples, out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report is not None:
        return render_again(args.report)
    shared = get_settings()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or RESULTS / f"soak-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="rtc-soak-"))
    if shared.lib_dir.is_dir():
        (home / "lib").symlink_to(shared.lib_dir.resolve())  # cached jars: no second download
    env = soak_env(home, args.speed)
    os.environ.update(env)
    get_settings.cache_clear()
    settings = get_settings()
    # SIGINT too: a shell starts a background job with SIGINT ignored, and Ctrl-C must stop it
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _raise_interrupt)
    print(
        f"soak: {args.minutes:g} min at {args.speed:g}x, RTC_HOME {home}, results {out}", flush=True
    )
    summary: dict[str, Any] = {
        "command": " ".join(
            ["python -m bench.soak", *(argv if argv is not None else sys.argv[1:])]
        ),
        "minutes": args.minutes,
        "speed": args.speed,
        "interval_s": args.interval,
        "max_slope_mb_per_h": args.max_slope,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "capture": capture_changes_per_s(shared.simulator_capture),
        "cpus": os.cpu_count(),
    }
    passed, verdict = False, "FAILED"
    from rtcrypto.search.client import search_client

    client = search_client(settings, max_retries=1)
    try:
        with (out / "up.log").open("w") as up_log:
            up = subprocess.run(
                [*RTC, "up", "--no-follow"], stdout=up_log, stderr=subprocess.STDOUT, timeout=1200
            )
        if up.returncode != 0:
            print(f"rtc up failed (exit {up.returncode}), see {out / 'up.log'}", flush=True)
            return 1
        print("rtc up done; sampling", flush=True)
        samples = sample_loop(settings, client, args.minutes, args.interval, out)
        summary["slopes_mb_per_h"] = second_half_slopes(samples, args.minutes * 60)
        summary["counts"] = drain_and_count(settings, client)
        summary["restarts"] = [record.as_dict() for record in services.read_journal(settings)]
        passed = write_report(summary, samples, out)
    except KeyboardInterrupt as interrupt:
        verdict = "INTERRUPTED"
        print(f"\nsoak interrupted ({interrupt or 'Ctrl-C'}): stopping the platform", flush=True)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):  # the teardown below must run to the end
            signal.signal(signum, signal.SIG_IGN)
        summary["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        client.close()
        down = subprocess.run([*RTC, "down"], capture_output=True, text=True, timeout=300)
        print(down.stdout.strip(), flush=True)
        copy_logs(settings, out)
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)
    print(f"soak {'PASSED' if passed else verdict}; figures in {out}", flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
