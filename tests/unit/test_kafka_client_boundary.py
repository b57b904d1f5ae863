"""Every Kafka client of production code is built in ``rtcrypto/kafka/clients.py`` (issue 11).

Production code (rtcrypto, dags, plugins, spark_jobs, streaming) never imports kafka-python
(``kafka``) and builds no confluent-kafka client (``Producer``, ``Consumer``, ``AdminClient``,
...) anywhere but in the factories of :mod:`rtcrypto.kafka.clients`, so the security settings
reach every client. Value types (``TopicPartition``, ``OffsetSpec``, ``NewTopic``, errors) may be
used anywhere. Tests, bench and fuzz may use either library as a tool.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from rtcrypto.config import PROJECT_ROOT

PRODUCTION_DIRS = ("rtcrypto", "dags", "plugins", "spark_jobs", "streaming")
FACTORY_MODULE = Path("rtcrypto/kafka/clients.py")
CONFLUENT = "confluent_kafka"
CLIENT_CLASSES = frozenset(
    {
        "Producer",
        "Consumer",
        "AdminClient",
        "SerializingProducer",
        "DeserializingConsumer",
        "AIOProducer",
        "AIOConsumer",
    }
)


def _is_confluent(module: str) -> bool:
    return module == CONFLUENT or module.startswith(CONFLUENT + ".")


def _is_kafka_python(module: str) -> bool:
    return module == "kafka" or module.startswith("kafka.")


def kafka_client_violations(source: str, *, factory: bool = False) -> list[str]:
    """What in ``source`` breaks the rule, one ``line N: ...`` each (``factory``: the one module
    that may build confluent-kafka clients)."""
    tree = ast.parse(source)
    found: list[str] = []
    confluent_aliases: set[str] = set()  # names bound to a confluent_kafka module
    type_only = _type_checking_imports(tree)  # a client class in annotations builds nothing
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_kafka_python(alias.name):
                    found.append(f"line {node.lineno}: import {alias.name} (kafka-python)")
                elif _is_confluent(alias.name):
                    confluent_aliases.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if _is_kafka_python(node.module):
                found.append(f"line {node.lineno}: from {node.module} import (kafka-python)")
            elif _is_confluent(node.module):
                for alias in node.names:
                    if alias.name in CLIENT_CLASSES and not factory and node not in type_only:
                        found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                    elif alias.name in {"admin", "aio", "experimental"}:
                        confluent_aliases.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (
            not factory
            and isinstance(node, ast.Attribute)
            and node.attr in CLIENT_CLASSES
            and _root_name(node.value) in confluent_aliases
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def _type_checking_imports(tree: ast.AST) -> set[ast.AST]:
    """The import statements directly inside ``if TYPE_CHECKING:`` blocks."""
    found: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in {
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        }:
            found.update(
                child for child in node.body if isinstance(child, ast.Import | ast.ImportFrom)
            )
    return found


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def production_files() -> list[Path]:
    return sorted(
        path
        for folder in PRODUCTION_DIRS
        for path in (PROJECT_ROOT / folder).rglob("*.py")
        if ".venv" not in path.parts
    )


def test_production_code_builds_kafka_clients_only_in_the_factory() -> None:
    files = production_files()
    assert any(path.relative_to(PROJECT_ROOT) == FACTORY_MODULE for path in files)
    assert len(files) > 100  # the walk found the code base, not an empty folder

    offences = {
        str(path.relative_to(PROJECT_ROOT)): problems
        for path in files
        if (
            problems := kafka_client_violations(
                path.read_text(), factory=path.relative_to(PROJECT_ROOT) == FACTORY_MODULE
            )
        )
    }

    assert offences == {}, (
        "build Kafka clients with rtcrypto.kafka.clients (admin_client, consumer, producer), "
        f"never kafka-python: {offences}"
    )


@pytest.mark.parametrize(
    "source",
    [
        "from kafka import KafkaConsumer",
        "import kafka",
        "import kafka.admin as admin",
        "from kafka.errors import KafkaError",
        "from confluent_kafka import Consumer",
        "from confluent_kafka import Producer as P",
        "from confluent_kafka.admin import AdminClient",
        "import confluent_kafka\nconfluent_kafka.Producer({})",
        "import confluent_kafka.admin\nconfluent_kafka.admin.AdminClient({})",
        "import confluent_kafka as ck\nck.Consumer({})",
        "from confluent_kafka import admin\nadmin.AdminClient({})",
        "def f():\n    from confluent_kafka import DeserializingConsumer\n",
        "if TYPE_CHECKING:\n    import kafka",
        "if not TYPE_CHECKING:\n    from confluent_kafka import Consumer",
    ],
)
def test_the_check_catches_each_way_of_building_a_client(source: str) -> None:
    assert kafka_client_violations(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "from confluent_kafka import KafkaException, TopicPartition, OFFSET_END",
        "from confluent_kafka.admin import OffsetSpec, NewTopic, ConfigResource",
        "from rtcrypto.kafka import clients\nclients.consumer(settings, 'x')",
        "from rtcrypto.stack import kafka\nkafka.ensure_topics([], bootstrap='b')",
        "from rtcrypto.kafka.producers import make_producer",
        "import kafkaesque",
        "from . import kafka",
        "if TYPE_CHECKING:\n    from confluent_kafka.admin import AdminClient",
    ],
)
def test_the_check_allows_value_types_and_the_factories(source: str) -> None:
    assert kafka_client_violations(source) == []


def test_only_the_factory_module_may_build_confluent_clients() -> None:
    source = (
        "from confluent_kafka import Consumer\nimport confluent_kafka\nconfluent_kafka.Producer"
    )

    assert kafka_client_violations(source, factory=True) == []
    assert kafka_client_violations("import kafka", factory=True) != []  # not even there
