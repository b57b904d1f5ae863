"""Launching the Spark liquidity job: its options, spark-submit command, start and stop.

``LiquidityJobConfig`` is the job's one options dataclass: ``job_args`` renders it and the job
parses it back (``rtcrypto.spark.options``); ``submit_conf`` adds the Spark UI settings. The job
itself is ``spark_jobs/liquidity.py``. It runs under spark-submit in client mode: the
spark-submit JVM is the driver and starts the job's Python process as its child, so a stop should
reach that Python process first (it stops the queries between batches, see ``stop_job``).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from rtcrypto.config import PROJECT_ROOT, Settings, get_settings
from rtcrypto.spark.options import to_args

LIQUIDITY_PROCESS = "liquidity"  # name under the stack's process manager (`rtc up` uses it too)
JOB_MODULE = "spark_jobs.liquidity"
SHUFFLE_PARTITIONS = 2  # one symbol or a few: the default 200 tasks per batch would dominate
SPARK_CONF: Mapping[str, str] = {
    "spark.sql.shuffle.partitions": str(SHUFFLE_PARTITIONS),
    "spark.sql.session.timeZone": "UTC",
    "spark.log.level": "WARN",
}
# spark-submit's options (``--master``, ``--conf``), not the job's: never on its command line
SUBMIT_ONLY = (
    "master",
    "driver_memory",
    "ui_enabled",
    "ui_port",
    "executor_memory",
    "executor_cores",
    "max_cores",
)
STANDALONE_SCHEME = "spark://"  # a Spark standalone master (the cluster topology)


class SparkSetupError(RuntimeError):
    """Spark cannot be launched as configured (missing spark-submit, jars or job script)."""


@dataclass(frozen=True, slots=True)
class LiquidityJobConfig:
    """Everything the liquidity job is started with: ``job_args`` renders its command line and
    the job reads it back (``spark_jobs/liquidity.parse_args``); ``SUBMIT_ONLY`` fields go to
    spark-submit. Kafka security settings are not options: the job reads them from ``Settings``.
    """

    bootstrap: str
    input_topic: str
    output_topic: str
    deadletter_topic: str = field(
        metadata={"help": "malformed input goes here; '' disables the dead-letter query"}
    )
    heartbeat_topic: str = field(
        metadata={"help": "service heartbeats for the supervisor; '' disables them"}
    )
    checkpoint: Path = field(
        metadata={"help": "root of the queries' checkpoints (never reuse it with other topics)"}
    )
    starting_offsets: str
    trigger: str = field(metadata={"help": "micro-batch interval, e.g. '1 second'"})
    watermark: str = field(metadata={"help": "event-time lateness allowed, e.g. '2 seconds'"})
    master: str
    ui_enabled: bool = True  # the Spark UI (RTC_SPARK_UI_ENABLED), on loopback
    ui_port: int = 4040  # its first port; Spark tries the next ones when it is taken
    progress_interval_s: float = 30.0
    heartbeat_interval_s: float = 5.0
    event_time_window_s: float = field(
        default=3600.0,
        metadata={"help": "event times more than this after the Kafka time are dead-lettered"},
    )
    max_offsets_per_trigger: int | None = None  # cap a catch-up batch (e.g. after downtime)
    output_partitions: int = field(
        default=1,
        metadata={"help": "the output topic's partitions: above 1, one partition per symbol"},
    )
    # on a spark:// master only (cluster_conf): each executor's heap and cores, the job's cores
    executor_memory: str = "512m"
    executor_cores: int = 1
    max_cores: int = 2

    def __post_init__(self) -> None:
        if self.event_time_window_s <= 0:
            raise ValueError("--event-time-window-s must be > 0 (RTC_EVENT_TIME_WINDOW_S)")
        if self.output_partitions < 1:
            raise ValueError("--output-partitions must be >= 1 (RTC_KAFKA_PARTITIONS)")

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> LiquidityJobConfig:
        """Defaults: topics, trigger, watermark, offsets, master and UI from ``Settings``."""
        settings = settings or get_settings()
        return cls(
            bootstrap=settings.kafka_bootstrap,
            input_topic=settings.topics.orderbook,
            output_topic=settings.topics.liquidity,
            deadletter_topic=settings.topics.deadletter,
            heartbeat_topic=settings.topics.heartbeat,
            checkpoint=default_checkpoint(settings),
            starting_offsets=settings.spark_starting_offsets,
            trigger=settings.spark_trigger,
            watermark=settings.spark_watermark,
            master=settings.spark_master,
            ui_enabled=settings.spark_ui_enabled,
            ui_port=settings.spark_ui_port,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            event_time_window_s=settings.event_time_window_s,
            executor_memory=settings.cluster.spark_executor_memory,
            executor_cores=settings.cluster.spark_executor_cores,
            max_cores=settings.cluster.spark_liquidity_max_cores,
            output_partitions=settings.topic_partitions,
        )

    def with_overrides(self, **overrides: object) -> LiquidityJobConfig:
        """A copy with the given fields replaced; ``None`` values keep the current ones."""
        kept: dict[str, Any] = {key: value for key, value in overrides.items() if value is not None}
        return replace(self, **kept)

    def job_args(self) -> list[str]:
        """Arguments of ``spark_jobs/liquidity.py`` (every field but ``SUBMIT_ONLY``)."""
        return to_args(self, skip=SUBMIT_ONLY)


class SparkUiOptions(Protocol):
    """What ``submit_conf`` reads of a job's options (the liquidity and the bars job's)."""

    @property
    def ui_enabled(self) -> bool: ...

    @property
    def ui_port(self) -> int: ...

    @property
    def master(self) -> str: ...

    @property
    def executor_memory(self) -> str: ...

    @property
    def executor_cores(self) -> int: ...

    @property
    def max_cores(self) -> int: ...


def submit_conf(options: SparkUiOptions) -> dict[str, str]:
    """The ``--conf`` settings of a job: ``SPARK_CONF``, its UI (enabled, first port) and, on a
    standalone master, its executors (``cluster_conf``).

    The UI binds to ``SPARK_LOCAL_IP`` (``submit_env``: 127.0.0.1); a taken port is not fatal,
    Spark tries the next ones (``spark.port.maxRetries``, 16 by default).
    """
    return {
        **SPARK_CONF,
        "spark.ui.enabled": "true" if options.ui_enabled else "false",
        "spark.ui.port": str(options.ui_port),
        **cluster_conf(options),
    }


def cluster_conf(options: SparkUiOptions) -> dict[str, str]:
    """On a ``spark://`` master: each executor's heap and cores (small enough for a worker,
    ``RTC_CLUSTER_SPARK_EXECUTOR_*``), the job's share of the cores (``spark.cores.max``, so one
    job leaves cores to the other), and this checkout on the executors' ``PYTHONPATH``.

    Executors run on this machine: their Python is the driver's (``PYSPARK_PYTHON``, this venv,
    ``submit_env``), the Kafka connector jars come from the driver (``--jars``) and the
    checkpoint (``<run_dir>/checkpoints``, the state stores written by the executors) is a local
    path every worker reads. Nothing for ``local[...]`` masters: the driver is the executor.
    """
    if not options.master.startswith(STANDALONE_SCHEME):
        return {}
    return {
        "spark.executor.memory": options.executor_memory,
        "spark.executor.cores": str(options.executor_cores),
        "spark.cores.max": str(options.max_cores),
        "spark.executorEnv.PYTHONPATH": str(PROJECT_ROOT),
        # The Kafka source prefers the executor that read a partition before (its cached
        # consumer); with one-core executors a task would wait the default 3 s for it when it
        # is busy, on every micro-batch of a 1 s trigger. Run it on whichever core is free.
        "spark.locality.wait": "0s",
    }


def default_checkpoint(settings: Settings | None = None) -> Path:
    """``<run_dir>/checkpoints/liquidity``: the job's checkpoint root."""
    return (settings or get_settings()).run_dir / "checkpoints" / "liquidity"


def find_spark_submit() -> Path:
    """``$SPARK_HOME/bin/spark-submit`` if set, else the one inside the installed pyspark."""
    spark_home = os.environ.get("SPARK_HOME")  # Spark's own variable, not a project setting
    candidates = [Path(spark_home) / "bin" / "spark-submit"] if spark_home else []
    spec = importlib.util.find_spec("pyspark")
    if spec and spec.submodule_search_locations:
        candidates += [
            Path(location) / "bin" / "spark-submit" for location in spec.submodule_search_locations
        ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise SparkSetupError(
        f"spark-submit not found (looked in {[str(path) for path in candidates]}); "
        "install pyspark in this venv or set SPARK_HOME"
    )


def liquidity_job_script() -> Path:
    """Path of ``spark_jobs/liquidity.py`` (found without importing pyspark)."""
    spec = importlib.util.find_spec(JOB_MODULE)
    if spec is None or spec.origin is None:
        raise SparkSetupError(f"{JOB_MODULE} is not importable; run `pip install -e .`")
    return Path(spec.origin)


def kafka_connector_jars(
    settings: Settings | None = None, jars_dir: Path | None = None
) -> list[Path]:
    """The spark-sql-kafka connector jars: from ``jars_dir`` if given, else the stack's set."""
    if jars_dir is not None:
        jars = sorted(jars_dir.glob("*.jar"))
        if not any(jar.name.startswith("spark-sql-kafka") for jar in jars):
            raise SparkSetupError(f"no spark-sql-kafka jar in {jars_dir}")
        return jars
    from rtcrypto.stack import spark_kafka_jars  # resolves them with Maven once

    return spark_kafka_jars(settings)


def build_submit_command(
    config: LiquidityJobConfig,
    jars: Sequence[Path],
    *,
    spark_submit: Path | None = None,
    job_script: Path | None = None,
) -> list[str]:
    """The spark-submit command line of the liquidity job."""
    command = [
        str(spark_submit or find_spark_submit()),
        "--master",
        config.master,
        "--name",
        LIQUIDITY_PROCESS,
        "--jars",
        ",".join(str(jar) for jar in jars),
    ]
    for key, value in submit_conf(config).items():
        command += ["--conf", f"{key}={value}"]
    command.append(str(job_script or liquidity_job_script()))
    return command + config.job_args()


def submit_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of spark-submit: loopback driver address, this venv's Python for the job."""
    env = dict(os.environ if base is None else base)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    return env


def env_additions() -> dict[str, str]:
    """Only the variables ``submit_env`` sets (for a process manager that adds them)."""
    full = submit_env()
    return {key: full[key] for key in ("SPARK_LOCAL_IP", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}


def start_job(command: Sequence[str], *, log_file: Path | None = None) -> subprocess.Popen[bytes]:
    """Start spark-submit in its own process group (a terminal's Ctrl-C does not reach it)."""
    output = log_file.open("ab") if log_file else None
    try:
        return subprocess.Popen(
            list(command),
            env=submit_env(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            start_new_session=True,
        )
    finally:
        if output:
            output.close()


def _children(pid: int) -> list[int]:
    """Pids of the direct children of ``pid`` (Linux ``/proc``)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def job_driver_pid(submit_pid: int) -> int | None:
    """The job's Python process, started by the spark-submit JVM, or None if not (yet) there."""
    for child in _children(submit_pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"python" in command:
            return child
    return None


def stop_job(process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> int:
    """Stop a job started by ``start_job``; return its exit code.

    SIGTERM goes to the job's Python process, which stops the queries between batches and lets
    the JVM exit; the whole group gets SIGTERM, then SIGKILL, only if that takes too long.
    """
    if process.poll() is not None:
        return process.returncode
    driver = job_driver_pid(process.pid)
    if driver is not None:
        os.kill(driver, signal.SIGTERM)
    else:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()
