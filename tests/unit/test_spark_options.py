"""One definition per Spark job option: the launcher renders the dataclass, the job parses it back.

Also: Kafka security settings reach the job through Settings (never argv), the Spark UI settings
reach spark-submit, and both jobs build their heartbeats the same way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from rtcrypto.config import Settings
from rtcrypto.feedbars import options as bars
from rtcrypto.spark import driver
from rtcrypto.spark import submit as spark
from rtcrypto.spark.heartbeat import SparkHeartbeats
from rtcrypto.spark.options import flag, parse_job_args, to_args

SASL_PASSWORD = "s3cret-sasl-password"
JARS = [Path("/jars/spark-sql-kafka-0-10_2.13-4.2.0.jar")]


def _changed(options: Any, tmp_path: Path) -> Any:
    """``options`` with every job field set to a value other than its default."""
    changes: dict[str, Any] = {}
    for item in dataclasses.fields(options):
        value = getattr(options, item.name)
        if item.name in spark.SUBMIT_ONLY:
            continue
        if isinstance(value, Path) or item.name in ("checkpoint", "history_dir"):
            changes[item.name] = tmp_path / item.name
        elif isinstance(value, float):
            changes[item.name] = value + 1.5
        elif isinstance(value, int) and not isinstance(value, bool):
            changes[item.name] = value + 3
        elif item.name == "max_offsets_per_trigger":
            changes[item.name] = 1234
        else:
            changes[item.name] = f"{value}-x"
    return dataclasses.replace(options, **changes)


def test_liquidity_options_round_trip_every_field(tmp_path: Path) -> None:
    from spark_jobs.liquidity import parse_args

    config = _changed(spark.LiquidityJobConfig.from_settings(Settings(home=tmp_path)), tmp_path)
    args = config.job_args()
    job_fields = [f.name for f in dataclasses.fields(config) if f.name not in spark.SUBMIT_ONLY]
    assert [arg for arg in args if arg.startswith("--")] == [flag(name) for name in job_fields]
    parsed = parse_args(args)
    for name in job_fields:
        assert getattr(parsed, name) == getattr(config, name), name


def test_bars_options_round_trip_every_field(tmp_path: Path) -> None:
    job = _changed(bars.BarsJobOptions.from_settings(Settings(home=tmp_path)), tmp_path)
    parsed = bars.parse_args(job.to_args())
    for item in dataclasses.fields(job):
        if item.name not in spark.SUBMIT_ONLY:
            assert getattr(parsed, item.name) == getattr(job, item.name), item.name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--event-time-window-s", "0"], "--event-time-window-s must be > 0"),
        (["--progress-interval-s", "often"], "--progress-interval-s: invalid float value"),
        (["--max-offsets-per-trigger", "1.5"], "--max-offsets-per-trigger: invalid int value"),
        (["--no-such-option", "1"], "unrecognized arguments: --no-such-option"),
    ],
)
def test_a_bad_job_argument_exits_2_naming_the_flag(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from spark_jobs.liquidity import parse_args

    with pytest.raises(SystemExit) as exit_info:
        parse_args(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_an_unsupported_option_type_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Odd:
        names: list[str]

    with pytest.raises(TypeError, match="unsupported option annotation"):
        parse_job_args(Odd(["a"]), [], prog="odd", description="odd")
    assert to_args(Odd(["a"]), skip=("names",)) == []


def test_the_sasl_password_reaches_the_job_through_settings_never_argv(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="rtc",
        kafka_sasl_password=SecretStr(SASL_PASSWORD),
    )
    liquidity = spark.build_submit_command(
        spark.LiquidityJobConfig.from_settings(settings),
        JARS,
        spark_submit=Path("/bin/spark-submit"),
        job_script=Path("/job.py"),
    )
    bars_command = bars.submit_command(
        bars.BarsJobOptions.from_settings(settings), JARS, spark_submit=Path("/bin/spark-submit")
    )
    for command in (liquidity, bars_command):
        assert not any(SASL_PASSWORD in part for part in command)
    # the job reads it from its Settings (environment) for the Kafka source and sink
    options = driver.kafka_options("broker:9093", settings)
    assert options["kafka.bootstrap.servers"] == "broker:9093"
    assert options["kafka.security.protocol"] == "SASL_SSL"
    assert f'password="{SASL_PASSWORD}"' in options["kafka.sasl.jaas.config"]


def test_plaintext_kafka_options_are_the_bootstrap_only(tmp_path: Path) -> None:
    assert driver.kafka_options("127.0.0.1:1", Settings(home=tmp_path)) == {
        "kafka.bootstrap.servers": "127.0.0.1:1"
    }


@pytest.mark.parametrize("enabled", [True, False])
def test_the_submit_commands_carry_the_spark_ui_settings(tmp_path: Path, enabled: bool) -> None:
    settings = Settings(home=tmp_path, spark_ui_enabled=enabled, spark_ui_port=4150)
    commands = [
        spark.build_submit_command(
            spark.LiquidityJobConfig.from_settings(settings),
            JARS,
            spark_submit=Path("/bin/spark-submit"),
            job_script=Path("/job.py"),
        ),
        bars.submit_command(
            bars.BarsJobOptions.from_settings(settings),
            JARS,
            spark_submit=Path("/bin/spark-submit"),
        ),
    ]
    for command in commands:
        confs = [command[i + 1] for i, part in enumerate(command) if part == "--conf"]
        assert f"spark.ui.enabled={'true' if enabled else 'false'}" in confs
        assert "spark.ui.port=4150" in confs
        assert not any(part.startswith("--ui") for part in command)  # spark-submit's, not the job's
    assert spark.submit_env({})["SPARK_LOCAL_IP"] == "127.0.0.1"  # where the UI binds


def test_both_jobs_build_their_heartbeats_from_their_options(
    tmp_path: Path, kafka_broker: str
) -> None:
    """The sender's producer is real: it needs the broker (it failed on a machine without one)."""
    settings = Settings(home=tmp_path, kafka_bootstrap=kafka_broker)
    liquidity = spark.LiquidityJobConfig.from_settings(settings).with_overrides(heartbeat_topic="")
    job = bars.BarsJobOptions.from_settings(settings).with_overrides(heartbeat_topic="")
    for options in (liquidity, job):
        assert SparkHeartbeats.from_options(options, service="s", client_id="c") is None
    sender = SparkHeartbeats.from_options(
        dataclasses.replace(job, heartbeat_topic="beats", heartbeat_interval_s=7.0),
        service="spark-bars",
        client_id="rtc-bars-heartbeat",
    )
    assert sender is not None
    assert (sender._topic, sender._interval_s, sender._service) == ("beats", 7.0, "spark-bars")
