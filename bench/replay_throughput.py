"""History replay throughput: real minute bars -> simulator (speed 0) -> ingest -> Kafka.

    .venv/bin/python -m bench.replay_throughput [--seconds 30] [--day 2024-10-28]

A real Binance day (``../shared/data/minute``) is imported into a temporary history folder; the
simulator replays it with ``--history binance --speed 0`` (as fast as the reader takes it) and the
real ingest service (a child process, as in production) writes one symbol to fresh topics. Over the
measurement window: simulated minutes per wall second (from ``/_sim/status``'s
``simulated_time_ms``) and events per second (growth of the topics' end offsets, i.e. records the
broker acknowledged). Goal: >= 300x real time, i.e. >= 5 simulated minutes per wall second.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.common import drop_topics, end_offsets, ensure_broker, fresh_topics, save
from rtcrypto.config import get_settings
from rtcrypto.history import import_file
from tests.helpers import MINUTE_DIR, Child, free_port, sim_status, start_ingest, wait_until

MINUTE_FILE = MINUTE_DIR / "binance_BTCUSDT_1m_2024-10-01_2024-11-04.csv.gz"
GOAL_SPEEDUP = 300.0


def measure(bootstrap: str, day: str, seconds: float, warmup_s: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    history_dir = work / "history"
    import_file(MINUTE_FILE, history_dir=history_dir)
    topics = fresh_topics(bootstrap, "replay")
    produced = [topics.orderbook, topics.trades]
    port = free_port()
    end = time.strftime(
        "%Y-%m-%d", time.gmtime(time.mktime(time.strptime(day, "%Y-%m-%d")) + 2 * 86_400)
    )
    command = [sys.executable, "-m", "streaming.simulator", "--history", "binance"]
    command += ["--start", day, "--end", end, "--speed", "0", "--port", str(port)]
    command += ["--history-dir", str(history_dir)]
    simulator = Child("simulator", command, work, {})
    env = {**topics.env(), "RTC_KAFKA_BOOTSTRAP": bootstrap}
    ingest = None
    try:
        wait_until(lambda: _up(port), 60, "simulator up", simulator)
        ingest = start_ingest(port, work, env)
        time.sleep(warmup_s)
        first_status, first_count = sim_status(port), end_offsets(bootstrap, produced)
        first_cpu = {
            name: cpu_seconds(child)
            for name, child in (("simulator", simulator), ("ingest", ingest))
        }
        start = time.monotonic()
        time.sleep(seconds)
        last_status, last_count = sim_status(port), end_offsets(bootstrap, produced)
        wall_s = time.monotonic() - start
        cpu = {
            name: cpu_seconds(child) - first_cpu[name]
            for name, child in (("simulator", simulator), ("ingest", ingest))
        }
        if not ingest.alive() or last_status["done"]:
            raise SystemExit(f"ingest died or the replay ended early:\n{ingest.log()[-3000:]}")
    finally:
        if ingest is not None:
            ingest.stop()
        simulator.stop()
        drop_topics(bootstrap, topics)
    simulated_s = (last_status["simulated_time_ms"] - first_status["simulated_time_ms"]) / 1000
    records = last_count - first_count
    changes = last_status["change_events_replayed"] - first_status["change_events_replayed"]
    return {
        "day": day,
        "client": "confluent",  # the only producer since issue 11
        "wall_s": wall_s,
        "simulated_minutes": simulated_s / 60,
        "simulated_minutes_per_s": simulated_s / 60 / wall_s,
        "speedup_x_real_time": simulated_s / wall_s,
        "records": records,
        "events_per_s": records / wall_s,
        "simulator_change_events_per_s": changes / wall_s,
        # where the time goes: CPU seconds of each process per wall second (1.0 = one core)
        "cpu_cores_used": {name: used / wall_s for name, used in cpu.items()},
        "cpu_ms_per_simulated_minute": {
            name: 1000 * used / (simulated_s / 60) for name, used in cpu.items()
        },
        "load_average_1m": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "log_dir": str(work),
    }


def cpu_seconds(child: Child) -> float:
    """User + system CPU seconds of a child process so far (Linux /proc)."""
    fields = Path(f"/proc/{child.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _up(port: int) -> bool:
    try:
        sim_status(port)
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=6.0, help="seconds before measuring")
    parser.add_argument("--day", default="2024-10-28", help="first UTC day replayed (2 days)")
    args = parser.parse_args(argv)
    bootstrap = ensure_broker(get_settings())
    print(f"history replay of binance {args.day} --speed 0 -> ingest -> Kafka")
    result = measure(bootstrap, args.day, args.seconds, args.warmup)
    verdict = "met" if result["speedup_x_real_time"] >= GOAL_SPEEDUP else "NOT met"
    print(
        f"  {result['simulated_minutes']:.1f} simulated minutes in {result['wall_s']:.1f} s = "
        f"{result['simulated_minutes_per_s']:.2f} min/s = {result['speedup_x_real_time']:.0f}x "
        f"real time (goal >= {GOAL_SPEEDUP:.0f}x: {verdict})"
    )
    print(
        f"  {result['records']:,} records = {result['events_per_s']:,.0f} events/s on Kafka "
        f"({result['simulator_change_events_per_s']:,.0f} change events/s replayed)"
    )
    cores, per_minute = result["cpu_cores_used"], result["cpu_ms_per_simulated_minute"]
    print(
        "  CPU: "
        + ", ".join(
            f"{name} {cores[name]:.2f} cores ({per_minute[name]:.0f} ms per simulated minute)"
            for name in cores
        )
        + f"; load average {result['load_average_1m']:.1f} on {result['cpus']} CPUs"
    )
    path = save("replay_throughput", result)
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
