"""``dag.test()`` of the DAGs on real shared data, each in a child process with its own
AIRFLOW_HOME (a migrated SQLite database) and RTC_HOME, so nothing touches the developer's state
and Airflow's configuration is read fresh (it is fixed at Airflow's first import in a process).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, SHARED_DATA, free_port, isolated_airflow_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MINUTE_FILE = SHARED_DATA / "minute" / "binance_BTCUSDT_1m_2024-01-01_2024-01-21.csv.gz"
RESULT_MARK = "DAG_TEST_RESULT "

# Runs in the child: parse the DAG, dag.test() it with a run conf, print the states as JSON.
_RUNNER = """
import json, sys
from datetime import datetime
from airflow.models.dagbag import DagBag
dag_id, conf = sys.argv[1], json.loads(sys.argv[2])
bag = DagBag(dag_folder=sys.argv[3])
assert not bag.import_errors, bag.import_errors
dates = {"logical_date": datetime.fromisoformat(sys.argv[4])} if len(sys.argv) > 4 else {}
run = bag.dags[dag_id].test(run_conf=conf, **dates)
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print("DAG_TEST_RESULT " + json.dumps({"state": str(run.state), "tasks": states}))
"""


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment of an isolated Airflow (temp home, SQLite migrated) and RTC home."""
    root = tmp_path_factory.mktemp("dag-test")
    env = isolated_airflow_env(root, drop=("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"))
    yield env


@pytest.fixture
def run_dag(airflow_env: dict[str, str]) -> Callable[..., dict[str, Any]]:
    def run(
        dag_id: str,
        conf: dict[str, Any],
        *,
        logical_date: datetime | None = None,
        env: dict[str, str] | None = None,
        timeout_s: float = 300,
    ) -> dict[str, Any]:
        dates = [] if logical_date is None else [logical_date.isoformat()]
        completed = subprocess.run(
            [sys.executable, "-c", _RUNNER, dag_id, json.dumps(conf), str(REPO / "dags"), *dates],
            env={**airflow_env, **(env or {})},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        output = completed.stdout + completed.stderr
        lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARK)]
        assert completed.returncode == 0 and lines, output[-5000:]
        result: dict[str, Any] = json.loads(lines[-1][len(RESULT_MARK) :])
        result["output"] = output
        return result

    return run


def _parquet_files(history_dir: Path) -> list[Path]:
    return sorted(history_dir.rglob("*.parquet"))


def test_history_download_imports_a_local_file_and_a_rerun_is_a_no_op(
    airflow_env: dict[str, str], run_dag, services_report
) -> None:
    history_dir = Path(airflow_env["RTC_HISTORY_DIR"])
    started = time.monotonic()
    first = run_dag("history_download", {"local_file": str(MINUTE_FILE)})
    first_s = time.monotonic() - started
    assert first["state"] == "success", first["output"][-5000:]
    assert first["tasks"] == {
        "choose_venue": "success",  # venue kaggle (the default): the Gemini branch is skipped
        "fetch": "success",
        "import_history": "success",
        "download_gemini_candles": "skipped",
    }, first["tasks"]
    parts = _parquet_files(history_dir)
    assert parts, f"no Parquet under {history_dir}"
    written = {path: path.stat().st_mtime_ns for path in parts}

    second = run_dag("history_download", {"local_file": str(MINUTE_FILE)})
    assert second["state"] == "success", second["output"][-5000:]
    assert "already imported" in second["output"]
    assert {path: path.stat().st_mtime_ns for path in _parquet_files(history_dir)} == written
    services_report(
        f"dag.test history_download (local file, Airflow child process): {first_s:.0f} s"
    )


def test_history_download_without_kaggle_names_the_offline_command(run_dag) -> None:
    result = run_dag("history_download", {"local_file": ""})
    assert result["state"] == "failed"
    assert result["tasks"]["fetch"] == "failed"
    assert "rtc history import FILE" in result["output"]


def test_forecast_retrain_trains_backtests_and_publishes(
    airflow_env: dict[str, str], run_dag, services_report
) -> None:
    imported = run_dag("history_download", {"local_file": str(MINUTE_FILE)})
    assert imported["state"] == "success", imported["output"][-5000:]
    conf = {"training_days": 14, "horizon_minutes": 20_000, "book_parity": False, "source": ""}
    started = time.monotonic()
    result = run_dag("forecast_retrain", conf)
    seconds = time.monotonic() - started
    assert result["state"] == "success", result["output"][-5000:]
    assert set(result["tasks"].values()) == {"success"}, result["tasks"]
    forecast_dir = Path(airflow_env["RTC_HOME"]) / "forecast"
    version = (forecast_dir / "current").read_text().strip()
    folder = forecast_dir / "versions" / version
    assert (folder / "forecast.parquet").is_file()
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["horizon_minutes"] == 20_000
    assert metadata["book_parity"] is False
    services_report(f"dag.test forecast_retrain (14 days, 20k-minute horizon): {seconds:.0f} s")


def test_trade_report_builds_the_report_of_its_data_interval(
    airflow_env: dict[str, str], run_dag, search_node: str, services_report
) -> None:
    """Live feed (the feed clock is the wall clock): known documents (a real Ledger's two round
    trips) inside the run's data interval and another set just after it: the report holds
    exactly the ones inside; a rerun of the same interval writes the same files."""
    from rtcrypto.search import search_client
    from rtcrypto.search.indices import ensure_templates
    from tests.trade_documents import drop_prefix, index_actions, trade_scenario

    logical_date = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)  # interval: the 24 hours before
    inside_ms = int(datetime(2026, 11, 20, 10, 0, tzinfo=UTC).timestamp() * 1000)
    after_ms = int(datetime(2026, 11, 21, 1, 5, tzinfo=UTC).timestamp() * 1000)
    prefix = f"rtcdag{uuid.uuid4().hex[:8]}"
    client = search_client()
    ensure_templates(client, prefix)
    try:
        inside = trade_scenario(inside_ms, prefix=prefix, order_prefix="inside")
        after = trade_scenario(after_ms, prefix=prefix, order_prefix="after")
        index_actions(client, inside.actions + after.actions)
        env = {
            "RTC_SEARCH_URL": search_node,
            "RTC_SEARCH_INDEX_PREFIX": prefix,
            "RTC_FEED": "live",
            # The supervisor DAGs import the project's operators from plugins/ at parse time.
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        }
        started = time.monotonic()
        result = run_dag("trade_report", {"mode": "paper"}, logical_date=logical_date, env=env)
        seconds = time.monotonic() - started
        assert result["state"] == "success", result["output"][-5000:]
        assert result["tasks"] == {"build_report": "success"}
        folder = (
            Path(airflow_env["RTC_HOME"])
            / "reports"
            / "trade_report"
            / "2026-11-20T0100Z--2026-11-21T0100Z"
        )
        summary = json.loads((folder / "summary.json").read_text())
        ledger = inside.ledger
        assert summary["trades"] == len(ledger.fills) == 4
        assert summary["round_trips"] == 2
        assert summary["realised_pnl_usd"] == format(ledger.realised_pnl_usd, "f")
        assert summary["fees_paid_usd"] == format(ledger.fees_paid_usd, "f")
        page = (folder / "report.html").read_text()
        assert format(ledger.realised_pnl_usd, "f") in page
        assert "inside-paper-0-buy" in page and "after-paper" not in page
        png = (folder / "report.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
        written = {name: (folder / name).read_bytes() for name in ("report.html", "summary.json")}

        again = run_dag("trade_report", {"mode": "paper"}, logical_date=logical_date, env=env)
        assert again["state"] == "success", again["output"][-5000:]
        assert {name: (folder / name).read_bytes() for name in written} == written
    finally:
        drop_prefix(client, prefix)
        client.close()
    services_report(f"dag.test trade_report (one day, 2 round trips): {seconds:.0f} s")


def test_trade_report_reviews_the_last_hours_of_the_feed_clock(
    airflow_env: dict[str, str], run_dag, search_node: str
) -> None:
    """Simulator feed, simulator stopped: the run's wall-clock data interval (2026-12) holds
    nothing; the DAG reviews the last RTC_REPORT_HOURS before the newest recorded time (a
    replayed 2021 day), and its summary says which clock it used."""
    from rtcrypto.search import search_client
    from rtcrypto.search.indices import ensure_templates
    from tests.helpers import free_port
    from tests.trade_documents import drop_prefix, index_actions, trade_scenario

    logical_date = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    earlier_ms = int(datetime(2021, 4, 17, 10, 0, tzinfo=UTC).timestamp() * 1000)
    replayed_ms = int(datetime(2021, 4, 17, 16, 0, tzinfo=UTC).timestamp() * 1000)
    prefix = f"rtcdagclock{uuid.uuid4().hex[:8]}"
    client = search_client()
    ensure_templates(client, prefix)
    try:
        earlier = trade_scenario(earlier_ms, prefix=prefix, order_prefix="earlier")
        replayed = trade_scenario(replayed_ms, prefix=prefix, order_prefix="replayed")
        index_actions(client, earlier.actions + replayed.actions)
        newest_ms = max(
            action.source.get("window_end_ms") or action.source["ts_ms"] + 1
            for action in replayed.actions
            if action.index in (f"{prefix}-liquidity", f"{prefix}-orders")
        )
        env = {
            "RTC_SEARCH_URL": search_node,
            "RTC_SEARCH_INDEX_PREFIX": prefix,
            "RTC_FEED": "simulator",
            "RTC_SIMULATOR_PORT": str(free_port()),  # nothing answers there
            "RTC_REPORT_HOURS": "2",
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        }
        result = run_dag("trade_report", {"mode": "paper"}, logical_date=logical_date, env=env)
        assert result["state"] == "success", result["output"][-5000:]
        end_ms = -(-newest_ms // 60_000) * 60_000
        start = datetime.fromtimestamp((end_ms - 2 * 3_600_000) / 1000, UTC)
        end = datetime.fromtimestamp(end_ms / 1000, UTC)
        folder = (
            Path(airflow_env["RTC_HOME"])
            / "reports"
            / "trade_report"
            / f"{start:%Y-%m-%dT%H%MZ}--{end:%Y-%m-%dT%H%MZ}"
        )
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["end_ms"] == end_ms and summary["start"].startswith("2021-04-17 1")
        assert summary["trades"] == len(replayed.ledger.fills) == 4
        assert "the simulator does not answer" in summary["clock"]
        page = (folder / "report.html").read_text()
        assert "replayed-paper-0-buy" in page and "earlier-paper" not in page
        assert "newest time the trader recorded" in page
    finally:
        drop_prefix(client, prefix)
        client.close()


def test_search_provision_applies_templates_then_imports_kibana_objects_when_configured(
    run_dag, search_node: str, services_report
) -> None:
    """First run without RTC_KIBANA_URL: templates and indices created, the Kibana import skipped
    with the reason in the log. Second run against a local HTTP recorder standing in for Kibana
    (none can run here): nothing left to change in Elasticsearch, the NDJSON posted to
    /api/saved_objects/_import?overwrite=true."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from rtcrypto.search import search_client
    from rtcrypto.search.indices import INDEX_SPECS
    from rtcrypto.search.kibana import SAVED_OBJECTS_FILE, saved_objects

    posted: list[tuple[str, dict[str, str], bytes]] = []

    class KibanaRecorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            posted.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            count = len(saved_objects())
            answer = json.dumps({"success": True, "successCount": count, "errors": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            return None

    prefix = f"rtcsp{uuid.uuid4().hex[:8]}"
    env = {
        "RTC_SEARCH_URL": search_node,
        "RTC_SEARCH_INDEX_PREFIX": prefix,
        "RTC_KIBANA_URL": "",
        # The supervisor DAGs import the project's operators from plugins/ at parse time.
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    }
    client = search_client()
    recorder = ThreadingHTTPServer(("127.0.0.1", 0), KibanaRecorder)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        first = run_dag("search_provision", {}, env=env)
        seconds = time.monotonic() - started
        assert first["state"] == "success", first["output"][-5000:]
        assert first["tasks"] == {
            "ensure_templates": "success",
            "import_kibana_objects": "skipped",
        }
        assert "RTC_KIBANA_URL is not set" in first["output"]
        for spec in INDEX_SPECS.values():
            template = client.indices.get_index_template(name=spec.template_name(prefix))
            mappings = template["index_templates"][0]["index_template"]["template"]["mappings"]
            assert mappings["properties"]["@timestamp"]["type"] == "date", spec.kind
            assert client.indices.exists(index=spec.index_name(prefix)), spec.kind

        kibana_url = f"http://127.0.0.1:{recorder.server_address[1]}"
        env |= {"RTC_KIBANA_URL": kibana_url, "RTC_KIBANA_USERNAME": "elastic"}
        second = run_dag("search_provision", {}, env=env)
        assert second["state"] == "success", second["output"][-5000:]
        assert set(second["tasks"].values()) == {"success"}, second["tasks"]
        assert "nothing to change" in second["output"]
        ((path, headers, body),) = posted
        assert path == "/api/saved_objects/_import?overwrite=true"
        assert headers["kbn-xsrf"] == "true"
        assert SAVED_OBJECTS_FILE.read_bytes() in body
    finally:
        recorder.shutdown()
        recorder.server_close()
        found = client.indices.get(index=f"{prefix}-*", allow_no_indices=True)
        if found.body:
            client.indices.delete(index=",".join(sorted(found.body)))
        for spec in INDEX_SPECS.values():
            client.options(ignore_status=404).indices.delete_index_template(
                name=spec.template_name(prefix)
            )
        client.close()
    services_report(f"dag.test search_provision (templates, Kibana skipped): {seconds:.0f} s")


NIGHTLY = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)  # the schedule's 00:30 UTC


def _rtc_up_history(root: Path, files: list[Path]) -> dict[str, str]:
    """``files`` imported as `rtc up` imports them, into a fresh home; its RTC_* overrides."""
    from rtcrypto.config import Settings
    from rtcrypto.platform.bootstrap import import_history

    settings = Settings(home=root / "rtc", history_dir=root / "history")
    import_history(settings, files)
    return {
        "RTC_HOME": str(root / "rtc"),
        "RTC_HISTORY_DIR": str(root / "history"),
        # nothing recorded under this prefix and no simulator: the trader's clock is unknown
        "RTC_SEARCH_INDEX_PREFIX": f"test-retrain-{uuid.uuid4().hex[:8]}",
        "RTC_SIMULATOR_PORT": str(free_port()),
    }


def test_nightly_retrain_at_0030_on_what_rtc_up_imports_succeeds_and_gates(
    run_dag, tmp_path: Path, services_report
) -> None:
    """The scheduled logic at a 00:30 UTC logical date with the DAG's default params, on exactly
    the files `rtc up` imports (every file of ../shared/data/minute: sources binance,
    kaggle_bitstamp and bitstamp, whose 10 rows were picked before and failed the run) and the
    first forecast `rtc up` publishes (trained on the 21 days before the replayed days,
    2024-10-07 .. 10-28). The platform is down (no simulator, nothing recorded), so the trader's
    clock is unknown and the rule picks binance's last 21 days (the default); the first forecast still covers
    the day after that data, so the gate compares both on their common holdout."""
    from rtcrypto.config import Settings
    from rtcrypto.platform.bootstrap import ensure_forecast, shared_minute_files

    env = _rtc_up_history(tmp_path, shared_minute_files())
    forecast_dir = tmp_path / "rtc" / "forecast"
    first, published, _ = ensure_forecast(
        Settings(home=tmp_path / "rtc", history_dir=tmp_path / "history", forecast_dir=forecast_dir)
    )
    assert published and (forecast_dir / "current").read_text().strip() == first
    started = time.monotonic()
    result = run_dag("forecast_retrain", {}, logical_date=NIGHTLY, env=env, timeout_s=600)
    seconds = time.monotonic() - started
    assert result["state"] == "success", result["output"][-5000:]
    assert result["tasks"] == {
        "select_window": "success",
        "train_and_publish": "success",
        "report": "success",
    }, result["output"][-5000:]
    assert (
        "training window: binance 2024-10-14T20:20:00+00:00 .. 2024-11-04T20:20:00"
        in (result["output"])
    )
    assert "the retrain judges by its data" in result["output"]
    versions = sorted(
        (path for path in (forecast_dir / "versions").iterdir() if path.name != first),
        key=lambda path: path.stat().st_mtime,
    )
    assert len(versions) == 1, versions
    version = versions[0].name
    metadata = json.loads((versions[0] / "metadata.json").read_text())
    assert metadata["source"] == "binance"
    assert metadata["training"]["last"] == "2024-10-28T20:19:00+00:00"  # 7 days held out
    assert metadata["train_options"]["max_fit_rows"] == 50_000  # the measured default
    assert metadata["training"]["bucket_minutes"] == 1  # 21 days fit minute by minute
    gate = metadata["gate"]
    assert gate["rule"] in ("not_worse", "worse"), gate
    assert gate["compared_with"] == first and gate["common_minutes"] == 7 * 1440, gate
    current = (forecast_dir / "current").read_text().strip()
    assert current == (version if gate["promoted"] else first)
    assert f"gate ({gate['rule']}): " in result["output"]  # the report task's log
    services_report(
        f"dag.test forecast_retrain at 00:30 UTC on rtc up's history (21 days, 150k-minute "
        f"horizon, default fit): {seconds:.0f} s"
    )


def test_nightly_retrain_with_only_the_10_bitstamp_rows_is_skipped_with_the_reason(
    run_dag, tmp_path: Path
) -> None:
    from rtcrypto.platform.bootstrap import shared_minute_files

    bitstamp = [path for path in shared_minute_files() if path.name.startswith("bitstamp_")]
    assert len(bitstamp) == 2
    env = _rtc_up_history(tmp_path, bitstamp)
    result = run_dag("forecast_retrain", {}, logical_date=NIGHTLY, env=env)
    assert result["state"] == "success", result["output"][-5000:]  # not failed, not retried
    assert set(result["tasks"].values()) == {"skipped"}, result["tasks"]
    output = result["output"]
    assert "no retrain: no history source holds a full 21-day window" in output
    assert "bitstamp: 10 minutes 2025-01-06T23:56 .. 2025-01-07T00:05" in output
    assert "split into training" not in output  # the old failure
    assert not (tmp_path / "rtc" / "forecast" / "current").exists()

    # a forced source that is not imported is a configuration error: failed at once, no retry
    forced = run_dag(
        "forecast_retrain",
        {},
        logical_date=NIGHTLY,
        env={**env, "RTC_FORECAST_SOURCE": "gemini-feed"},
    )
    assert forced["state"] == "failed"
    assert forced["tasks"]["select_window"] == "failed"
    assert (
        "RTC_FORECAST_SOURCE names source 'gemini-feed', which is not imported"
        in (forced["output"])
    )
