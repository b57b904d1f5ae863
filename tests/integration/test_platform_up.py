"""The README's first command (`make up` runs `rtc up`) on an isolated home and free ports.

It must bring up Kafka, Elasticsearch and Airflow, import the real history, publish a forecast,
provision the indices, start the simulator, the ingest, the Spark job and the paper trader, print
liquidity records as they arrive, show every service healthy in `rtc status`, and `rtc down` must
leave no process behind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rtcrypto.config import Settings, get_settings
from rtcrypto.stack import maven, process
from tests.helpers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command and str(os.getpid()) != cmdline.parent.name:
            found.append(f"{cmdline.parent.name}: {command[:200]}")
    return found


def test_rtc_up_shows_liquidity_records_and_down_leaves_nothing(
    tmp_path: Path, services_report
) -> None:
    shared = get_settings()
    for jar_set in (maven.kafka_broker_jar_set(shared), maven.spark_kafka_jar_set(shared)):
        maven.resolve_jars(jar_set, shared)
    home = tmp_path / "rtc"
    home.mkdir()
    (home / "lib").symlink_to(shared.lib_dir)  # the cached jars: no second download
    env = {
        **os.environ,
        "RTC_HOME": str(home),
        "RTC_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "RTC_KAFKA_CONTROLLER_PORT": str(free_port()),
        "RTC_SEARCH_URL": f"http://127.0.0.1:{free_port()}",
        "RTC_SEARCH_TRANSPORT_PORT": str(free_port()),
        "RTC_SIMULATOR_PORT": str(free_port()),
        "RTC_AIRFLOW_PORT": str(free_port()),
        "RTC_AIRFLOW_WORKER_LOG_PORT": str(free_port()),
        "RTC_AIRFLOW_TRIGGER_LOG_PORT": str(free_port()),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    rtc = [sys.executable, "-m", "rtcrypto.cli.main"]
    output = (tmp_path / "up.log").open("w+")
    started = time.monotonic()
    up = subprocess.Popen(
        [*rtc, "up"], env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
    )
    first_record_s = None
    try:
        deadline = started + 240
        while time.monotonic() < deadline and first_record_s is None:
            output.seek(0)
            lines = output.read().splitlines()
            records = [json.loads(line) for line in lines if line.startswith("{")]
            if records:
                first_record_s = time.monotonic() - started
                record = records[0]
            elif up.poll() is not None:
                break
            time.sleep(1)
        output.seek(0)
        log = output.read()
        assert first_record_s is not None, f"no liquidity record within 240 s:\n{log[-4000:]}"
        assert record["type"] == "liquidity" and record["symbol"] == "BTCUSD"
        assert record["bid_price_weighted_volume"] > 0 and record["ask_price_weighted_volume"] > 0
        for name in ("kafka", "elasticsearch", "airflow", "simulator", "ingest", "liquidity"):
            assert f"{name}" in log
        assert "password in" in log  # where the Airflow login is, never the password itself
        for step in ("history", "forecast", "indices"):
            assert re.search(rf"^{step} +.*\(\d+\.\d s\)$", log, re.M), log[-4000:]
        assert "published" in log and "no edge is claimed" in log

        def status_text() -> str:
            done = subprocess.run(
                [*rtc, "status"], env=env, capture_output=True, text=True, timeout=60
            )
            return done.stdout

        # The paper trader decides on every liquidity record: wait until it has read one and
        # every streaming service is judged healthy by the supervisor's rules.
        deadline = time.monotonic() + 120
        while True:
            status_out = status_text()
            trader_read = re.search(
                r"^  trader +last heartbeat \d+ s ago, processed [1-9]", status_out, re.M
            )
            states = dict(
                re.findall(
                    r"^  (simulator|ingest|liquidity|trader|bars) +"
                    r"(healthy|stale|dead|lagging|stopped|unknown) ",
                    status_out,
                    re.M,
                )
            )
            healthy = states and all(state == "healthy" for state in states.values())
            if (trader_read and healthy) or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert trader_read, status_out
        assert set(states) == {"simulator", "ingest", "liquidity", "trader", "bars"}, status_out
        assert healthy, status_out
        status = subprocess.CompletedProcess([], 0, status_out, "")
        for name in ("kafka", "elasticsearch", "airflow", "simulator", "ingest", "liquidity"):
            assert any(
                line.split()[:1] == [name] and " yes " in line
                for line in status.stdout.splitlines()
            ), status.stdout
        # Both streaming services report in: the ingest and the Spark job heartbeat lines.
        assert re.search(
            r"^  ingest +last heartbeat \d+ s ago, processed [1-9]", status.stdout, re.M
        ), status.stdout
        assert re.search(r"^  spark-liquidity +last heartbeat", status.stdout, re.M), status.stdout
        assert re.search(r"^  spark-bars +last heartbeat", status.stdout, re.M), status.stdout
    finally:
        if up.poll() is None:
            up.terminate()  # stops following; the platform keeps running until `rtc down`
            up.wait(30)
        down = subprocess.run([*rtc, "down"], env=env, capture_output=True, text=True, timeout=180)
        output.close()
    assert down.returncode == 0, down.stdout + down.stderr
    time.sleep(1)
    assert _processes_mentioning(str(home)) == []
    assert list(Settings(home=home).run_dir.glob("*.pid")) == []
    assert not process.list_processes(Settings(home=home))
    services_report(
        f"rtc up: first liquidity record {first_record_s:.0f} s after start (jars cached), "
        "history imported, forecast published, indices provisioned, paper trader healthy"
    )
