"""Spark standalone of the cluster topology (rtcrypto/stack/spark_cluster.py, spark_json.py)
without a cluster: its members' commands and environment, the parsers of the master's and a
worker's JSON, the status of a cluster that is down, and what a job on ``spark://`` gets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtcrypto.config import PROJECT_ROOT, Settings, get_settings
from rtcrypto.config_checks import SettingsError
from rtcrypto.config_cluster import ClusterSettings, jvm_memory_mb
from rtcrypto.feedbars import options as bars
from rtcrypto.spark import submit as spark
from rtcrypto.stack import spark_cluster as cluster
from rtcrypto.stack import spark_json
from rtcrypto.stack.errors import PortInUseError, StackError
from tests.helpers import free_port

JAVA = Path("/usr/bin/java")
HOME = Path("/venv/site-packages/pyspark")
JARS = [Path("/jars/spark-sql-kafka.jar")]

# The answers of Spark 4.2.0's master and worker (/json/) while the liquidity job ran, as read
# from a cluster started by start_spark_cluster (the executor's launch command cut short).
MASTER_JSON = """{
  "url" : "spark://127.0.0.1:34989",
  "workers" : [ {
    "id" : "worker-20261207233731-127.0.0.1-55377", "host" : "127.0.0.1", "port" : 55377,
    "webuiaddress" : "http://127.0.0.1:43127", "cores" : 2, "coresused" : 1, "coresfree" : 1,
    "memory" : 1024, "memoryused" : 512, "memoryfree" : 512, "resources" : { },
    "resourcesused" : { }, "resourcesfree" : { }, "state" : "ALIVE",
    "lastheartbeat" : 1796686714500
  }, {
    "id" : "worker-20261207233730-127.0.0.1-46171", "host" : "127.0.0.1", "port" : 46171,
    "webuiaddress" : "http://127.0.0.1:50657", "cores" : 2, "coresused" : 1, "coresfree" : 1,
    "memory" : 1024, "memoryused" : 512, "memoryfree" : 512, "resources" : { },
    "resourcesused" : { }, "resourcesfree" : { }, "state" : "DEAD",
    "lastheartbeat" : 1796686713984
  } ],
  "aliveworkers" : 1, "cores" : 4, "coresused" : 2, "memory" : 2048, "memoryused" : 1024,
  "resources" : [ { }, { } ], "resourcesused" : [ { }, { } ],
  "activeapps" : [ {
    "id" : "app-20261207233819-0000", "starttime" : 1796686699653, "name" : "spark-liquidity",
    "cores" : 2, "user" : "root", "memoryperexecutor" : 512, "memoryperslave" : 512,
    "resourcesperexecutor" : [ ], "resourcesperslave" : [ ],
    "submitdate" : "Mon Dec 07 23:38:19 UTC 2026", "state" : "RUNNING", "duration" : 28876
  } ],
  "completedapps" : [ ], "activedrivers" : [ ], "completeddrivers" : [ ], "status" : "ALIVE"
}"""
WORKER_JSON = """{
  "id" : "worker-20261207233731-127.0.0.1-55377", "masterurl" : "spark://127.0.0.1:34989",
  "masterwebuiurl" : "http://localhost:40355", "cores" : 2, "coresused" : 1, "memory" : 1024,
  "memoryused" : 512, "resources" : { }, "resourcesused" : { },
  "executors" : [ {
    "id" : 0, "memory" : 512, "resources" : { }, "appid" : "app-20261207233819-0000",
    "appdesc" : {
      "name" : "spark-liquidity", "cores" : 2, "memoryperexecutor" : 512,
      "resourcesperexecutor" : [ ], "memoryperslave" : 512, "resourcesperslave" : [ ],
      "user" : "root",
      "command" : "Command(org.apache.spark.executor.CoarseGrainedExecutorBackend,List(...))"
    }
  } ],
  "finishedexecutors" : [ ]
}"""


def _settings(tmp_path: Path, **members: Any) -> Settings:
    return Settings(home=tmp_path, cluster=ClusterSettings(**members))


# --- commands --------------------------------------------------------------------------------


def test_master_command_runs_the_launcher_class_on_the_packages_jars(tmp_path: Path) -> None:
    settings = _settings(tmp_path, spark_master_port=7177, spark_master_ui_port=8181)
    command = cluster.master_command(JAVA, HOME, settings)
    assert command[0] == str(JAVA)
    assert "-Xmx256m" in command  # RTC_CLUSTER_SPARK_DAEMON_MEMORY
    assert command[command.index("-cp") + 1] == f"{HOME}/jars/*"
    main = command.index(cluster.MASTER_MAIN_CLASS)
    assert command[main + 1 :] == [
        "--host",
        "127.0.0.1",
        "--port",
        "7177",
        "--webui-port",
        "8181",
    ]


def test_each_worker_gets_its_ports_sizes_work_dir_and_the_masters_url(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        spark_master_port=7177,
        spark_worker_ports=[7301, 7302, 7303],
        spark_worker_ui_ports=[8301, 8302, 8303],
        spark_worker_cores=3,
        spark_worker_memory="2g",
        spark_daemon_memory="128m",
    )
    assert cluster.spark_cluster_processes(settings) == [
        "spark-master",
        "spark-worker-1",
        "spark-worker-2",
        "spark-worker-3",
    ]
    command = cluster.worker_command(JAVA, HOME, settings, 2)
    assert "-Xmx128m" in command
    # executors' logs roll like the managed logs (RTC_LOG_MAX_BYTES, RTC_LOG_BACKUP_COUNT)
    assert f"-Dspark.executor.logs.rolling.maxSize={settings.log_max_bytes}" in command
    assert command.index("-Dspark.worker.cleanup.enabled=true") < command.index("-cp")
    arguments = command[command.index(cluster.WORKER_MAIN_CLASS) + 1 :]
    assert arguments == [
        "--host",
        "127.0.0.1",
        "--port",
        "7302",
        "--webui-port",
        "8302",
        "--cores",
        "3",
        "--memory",
        "2g",
        "--work-dir",
        str(tmp_path / "run" / "spark-cluster" / "worker-2"),
        "spark://127.0.0.1:7177",
    ]
    assert cluster.worker_ui_url(settings, 3) == "http://127.0.0.1:8303"


def test_the_daemons_get_sparks_home_its_scala_version_and_loopback_uis(tmp_path: Path) -> None:
    jars = tmp_path / "pyspark" / "jars"
    jars.mkdir(parents=True)
    for name in ("spark-launcher_2.13-4.2.0.jar", "spark-core_2.13-4.2.0.jar", "zstd.jar"):
        (jars / name).touch()
    assert cluster.daemon_env(tmp_path / "pyspark") == {
        "SPARK_HOME": str(tmp_path / "pyspark"),
        "SPARK_SCALA_VERSION": "2.13",
        "SPARK_LOCAL_IP": "127.0.0.1",  # where Spark binds the master's and workers' UIs
    }


def test_a_pyspark_without_spark_core_is_a_clear_error() -> None:
    with pytest.raises(StackError, match="no spark-core_"):
        cluster.scala_version(["spark-launcher_2.13-4.2.0.jar", "spark-core.jar"])


def test_the_installed_pyspark_is_sparks_home() -> None:
    home = cluster.spark_home()
    assert (home / "jars").is_dir()
    assert cluster.scala_version(path.name for path in (home / "jars").iterdir()) == "2.13"


# --- the JSON of the master and the workers --------------------------------------------------


def test_the_masters_json_gives_status_workers_and_running_applications() -> None:
    state = spark_json.parse_master_json(MASTER_JSON)
    assert (state.url, state.status) == ("spark://127.0.0.1:34989", "ALIVE")
    assert [(w.port, w.state, w.cores_used, w.cores) for w in state.workers] == [
        (55377, "ALIVE", 1, 2),
        (46171, "DEAD", 1, 2),
    ]
    assert [w.port for w in state.alive_workers()] == [55377]
    assert state.workers[0].memory_mb == 1024 and state.workers[0].memory_used_mb == 512
    (app,) = state.active_apps
    assert (app.app_id, app.name, app.state) == (
        "app-20261207233819-0000",
        "spark-liquidity",
        "RUNNING",
    )
    assert (app.cores, app.memory_per_executor_mb) == (2, 512)


def test_a_workers_json_gives_its_running_executors() -> None:
    (executor,) = spark_json.parse_worker_json(WORKER_JSON.encode())
    assert executor == spark_json.ExecutorInfo(
        executor_id=0,
        app_id="app-20261207233819-0000",
        app_name="spark-liquidity",
        cores=2,
        memory_mb=512,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<html>Spark Master at spark://</html>", "not JSON"),
        ("[]", "expected a JSON object, got list"),
        ("{}", "field 'workers' must be list, got NoneType"),
        ('{"workers": [1], "activeapps": []}', "'workers' must hold objects"),
        (MASTER_JSON.replace('"port" : 55377', '"port" : "55377"'), "'port' must be int"),
        (
            MASTER_JSON.replace('"cores" : 2, "user"', '"cores" : true, "user"'),
            "'cores' must be int",
        ),
        ("[" * 100_000, "not JSON"),
    ],
)
def test_a_hostile_master_answer_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(spark_json.SparkStatusError, match=message):
        spark_json.parse_master_json(text)


JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
KNOWN_KEYS = st.sampled_from(
    ["url", "status", "workers", "activeapps", "executors", "id", "host", "port", "state",
     "cores", "coresused", "memory", "memoryused", "name", "memoryperexecutor", "appid",
     "appdesc"]
)  # fmt: skip


def _mutated(sample: str, data: st.DataObject) -> str:
    """A real answer with one value somewhere replaced by arbitrary JSON."""
    record = json.loads(sample)
    node: Any = record
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = data.draw(st.sampled_from(keys))
        if not isinstance(node[key], dict | list) or data.draw(st.booleans()):
            node[key] = data.draw(JSON_VALUES)
            break
        node = node[key]
    return json.dumps(record)


@given(st.data())
def test_any_answer_parses_or_is_a_clear_error_never_a_crash(data: st.DataObject) -> None:
    text = data.draw(
        st.one_of(
            st.text(max_size=200),
            JSON_VALUES.map(json.dumps),
            st.dictionaries(KNOWN_KEYS, JSON_VALUES, max_size=6).map(json.dumps),
            st.just(MASTER_JSON).map(lambda sample: _mutated(sample, data)),
            st.just(WORKER_JSON).map(lambda sample: _mutated(sample, data)),
        )
    )
    for parse in (spark_json.parse_master_json, spark_json.parse_worker_json):
        try:
            parse(text)
        except spark_json.SparkStatusError as error:
            assert str(error).startswith(("Spark master /json/: ", "Spark worker /json/: "))


# --- status of a cluster that is down --------------------------------------------------------


def test_the_status_of_a_cluster_that_is_down_names_every_member(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        spark_master_ui_port=free_port(),
        spark_worker_ports=[free_port(), free_port()],
        spark_worker_ui_ports=[free_port(), free_port()],
    )
    master, *workers = cluster.spark_cluster_status(settings)
    assert master.startswith("spark-master    not running: Spark master UI http://127.0.0.1:")
    assert "does not answer" in master
    assert [line.split()[:3] for line in workers] == [
        ["spark-worker-1", "not", "running"],
        ["spark-worker-2", "not", "running"],
    ]


# --- settings and what a job on spark:// gets -------------------------------------------------


def test_jvm_sizes_in_mebibytes() -> None:
    assert [jvm_memory_mb(size) for size in ("512m", "2g", "2048k", "1G")] == [512, 2048, 2, 1024]


@pytest.mark.parametrize(
    ("members", "named"),
    [
        ({"spark_executor_memory": "2g"}, "RTC_CLUSTER_SPARK_EXECUTOR_MEMORY"),
        ({"spark_executor_cores": 3}, "RTC_CLUSTER_SPARK_EXECUTOR_CORES"),
        ({"spark_executor_memory": "a lot"}, "RTC_CLUSTER_SPARK_EXECUTOR_MEMORY"),
        ({"spark_liquidity_max_cores": 0}, "RTC_CLUSTER_SPARK_LIQUIDITY_MAX_CORES"),
        (
            {"spark_executor_cores": 2, "spark_bars_max_cores": 1},
            "RTC_CLUSTER_SPARK_BARS_MAX_CORES",
        ),
    ],
)
def test_an_executor_that_cannot_fit_a_worker_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, members: dict[str, Any], named: str
) -> None:
    for name, value in members.items():
        monkeypatch.setenv(f"RTC_CLUSTER_{name.upper()}", str(value))
    get_settings.cache_clear()
    with pytest.raises(SettingsError, match=named):
        get_settings()


def _confs(command: list[str]) -> dict[str, str]:
    pairs = [command[i + 1].split("=", 1) for i, part in enumerate(command) if part == "--conf"]
    return {key: value for key, value in pairs}


def test_jobs_on_a_standalone_master_get_small_executors_their_cores_and_this_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTC_TOPOLOGY", "cluster")
    monkeypatch.setenv("RTC_CLUSTER_SPARK_MASTER_PORT", "7177")
    monkeypatch.setenv("RTC_CLUSTER_SPARK_EXECUTOR_MEMORY", "384m")
    monkeypatch.delenv("RTC_SPARK_MASTER", raising=False)
    monkeypatch.delenv("RTC_BARS_MASTER", raising=False)
    settings = Settings(home=tmp_path)
    liquidity = spark.build_submit_command(
        spark.LiquidityJobConfig.from_settings(settings),
        JARS,
        spark_submit=Path("/bin/spark-submit"),
        job_script=Path("/job.py"),
    )
    bars_command = bars.submit_command(
        bars.BarsJobOptions.from_settings(settings), JARS, spark_submit=Path("/bin/spark-submit")
    )
    for command, cores in ((liquidity, "2"), (bars_command, "1")):
        assert command[command.index("--master") + 1] == "spark://127.0.0.1:7177"
        confs = _confs(command)
        assert confs["spark.executor.memory"] == "384m"
        assert confs["spark.executor.cores"] == "1"
        assert confs["spark.cores.max"] == cores  # RTC_CLUSTER_SPARK_*_MAX_CORES
        assert confs["spark.executorEnv.PYTHONPATH"] == str(PROJECT_ROOT)
        assert confs["spark.locality.wait"] == "0s"  # no 3 s wait for a busy one-core executor
        assert not any(part.startswith(("--executor", "--max-cores")) for part in command)
    assert spark.submit_env({})["PYSPARK_PYTHON"]  # the executors' Python is the driver's


def test_local_masters_get_no_executor_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, spark_master="local[2]")
    command = spark.build_submit_command(
        spark.LiquidityJobConfig.from_settings(settings),
        JARS,
        spark_submit=Path("/bin/spark-submit"),
        job_script=Path("/job.py"),
    )
    assert not any(key.startswith(("spark.executor", "spark.cores")) for key in _confs(command))


def test_a_taken_port_stops_the_start_with_the_setting_to_change(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = _settings(
            tmp_path,
            spark_master_port=taken.getsockname()[1],
            spark_master_ui_port=free_port(),
            spark_worker_ports=[free_port()],
            spark_worker_ui_ports=[free_port()],
        )
        with pytest.raises(PortInUseError, match="RTC_CLUSTER_SPARK_"):
            cluster.start_spark_cluster(settings, lambda line: None, timeout_s=10)
    assert cluster.spark_cluster_status(settings)[0].startswith("spark-master    not running")
