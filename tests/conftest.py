"""Shared fixtures: the real local Kafka broker and per-test topics.

``kafka_broker`` (session): makes sure a broker answers on ``settings.kafka_bootstrap`` and returns
that bootstrap string. It reuses a broker that already answers (started by ``rtc stack up``, or by
another test session) and otherwise starts the managed one. Several pytest sessions may share
one broker: each holds a lease file, and the last session out stops the broker, but only if a test
session started it; a broker you started with ``rtc stack up`` keeps running.

``kafka_topic_factory`` / ``fresh_topics`` (function): uniquely named topics per test, deleted
afterwards, so tests never see each other's records.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import pytest
from hypothesis import settings as hypothesis_settings

from rtcrypto.config import Topics, get_settings
from rtcrypto.stack import kafka as kafka_stack
from rtcrypto.stack import process
from tests.shared_service import shared_service


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[str]:
    """Bootstrap address (``host:port``) of a healthy local broker with the project's topics."""
    settings = get_settings()

    def start() -> tuple[int, bool]:
        started = kafka_stack.start_kafka(settings)
        return started.pid, started.already_running

    with shared_service(
        kafka_stack.KAFKA_PROCESS,
        settings,
        healthy=lambda: kafka_stack.broker_healthy(settings.kafka_bootstrap),
        start=start,
        stop=lambda: kafka_stack.stop_kafka(settings),
    ):
        kafka_stack.ensure_topics(
            settings.topics.all(),
            bootstrap=settings.kafka_bootstrap,
            partitions=settings.kafka_partitions,
        )
        status = process.process_status(kafka_stack.KAFKA_PROCESS, settings)
        _SERVICE_LINES.append(
            f"Kafka {settings.kafka_version} KRaft broker at {settings.kafka_bootstrap} "
            f"(pid {status.pid or 'not managed here'}, log {status.log_path})"
        )
        yield settings.kafka_bootstrap


def _topic_slug(text: str, max_length: int = 60) -> str:
    """A topic-name-safe rendering of a test name (Kafka allows ``[a-zA-Z0-9._-]``)."""
    return re.sub(r"[^a-zA-Z0-9._-]+", "-", text).strip("-")[:max_length] or "test"


@pytest.fixture
def kafka_topic_factory(
    kafka_broker: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., str]]:
    """``make_topic(label="t", partitions=1) -> name``: create a topic unique to this test.

    Names look like ``test.<test name>.<label>.<8 hex>``; all are deleted after the test.
    """
    created: list[str] = []
    test_slug = _topic_slug(request.node.name)

    def make_topic(label: str = "t", partitions: int = 1) -> str:
        name = f"test.{test_slug}.{_topic_slug(label, 40)}.{uuid.uuid4().hex[:8]}"
        kafka_stack.ensure_topics([name], bootstrap=kafka_broker, partitions=partitions)
        created.append(name)
        return name

    yield make_topic
    if created:
        try:
            kafka_stack.delete_topics(created, bootstrap=kafka_broker)
        except Exception as error:  # cleanup must not hide the test's own result
            print(f"could not delete test topics {created}: {error}")


# No per-example deadline: these machines are shared and noisy, and speed is measured in bench/,
# never in tests (a slow example under load is not a failure of the property).
hypothesis_settings.register_profile("rtc", deadline=None)
hypothesis_settings.load_profile("rtc")


@pytest.fixture(autouse=True)
def _settings_read_again_after_each_test() -> Iterator[None]:
    """``get_settings()`` is cached per process: a test that reads it under a patched environment
    (``monkeypatch.setenv``, a CLI run) must not hand those settings to the tests after it."""
    yield
    get_settings.cache_clear()


@pytest.fixture
def fresh_topics(kafka_topic_factory: Callable[..., str]) -> Iterator[Topics]:
    """A full set of the project's topics, uniquely named for this test and already created.

    While the test runs, ``RTC_TOPIC_*`` point at them and ``get_settings()`` returns them, so code
    under test and services it starts as subprocesses (which inherit the environment) use them.
    """
    topics = Topics(**{field: kafka_topic_factory(field) for field in Topics.model_fields})
    with pytest.MonkeyPatch.context() as patch:
        for field in Topics.model_fields:
            patch.setenv(f"RTC_TOPIC_{field.upper()}", getattr(topics, field))
        get_settings.cache_clear()
        try:
            yield topics
        finally:
            get_settings.cache_clear()
    get_settings.cache_clear()


# --------------------------------------------------------------------------- services report
_SERVICE_LINES: list[str] = []


@pytest.fixture
def services_report() -> Callable[[str], None]:
    """``report(line)``: a line for the end-of-run "real services" summary (broker, Spark, figures)."""
    return _SERVICE_LINES.append


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SERVICE_LINES:
        terminalreporter.section("real services used by this run")
        for line in _SERVICE_LINES:
            terminalreporter.write_line(line)
