"""Where a running platform could leak a secret, searched for given secret values (issue 10).

Each ``scan_*`` returns findings as text (``"<where>: <which secret>"``); an empty list means
none of the values appears there. Values are searched as given and as the base64 of a basic-auth
``user:password`` pair (what an ``Authorization`` header carries).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

Secrets = Mapping[str, str]  # name -> value


def needles(secrets: Secrets, basic_auth: Iterable[tuple[str, str]] = ()) -> dict[str, bytes]:
    """Byte patterns to look for: each value, and base64 of each basic-auth pair."""
    found = {name: value.encode() for name, value in secrets.items()}
    for user, password in basic_auth:
        found[f"basic auth {user}"] = base64.b64encode(f"{user}:{password}".encode())
    return found


def _hits(where: str, data: bytes, patterns: Mapping[str, bytes]) -> list[str]:
    return [f"{where}: {name}" for name, pattern in patterns.items() if pattern in data]


def scan_texts(texts: Mapping[str, str], patterns: Mapping[str, bytes]) -> list[str]:
    """Captured output (``rtc up``, ``rtc status``...), by name."""
    return [hit for name, text in texts.items() for hit in _hits(name, text.encode(), patterns)]


def scan_files(root: Path, patterns: Mapping[str, bytes]) -> tuple[list[str], int]:
    """Every regular file under ``root`` (symlinks not followed): (findings, files read)."""
    findings: list[str] = []
    count = 0
    for folder, _, names in os.walk(root, followlinks=False):
        for name in names:
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                continue
            try:
                data = path.read_bytes()
            except OSError:  # removed meanwhile (a rolled segment, a temp file)
                continue
            count += 1
            findings += _hits(str(path.relative_to(root)), data, patterns)
    return findings, count


def scan_command_lines(patterns: Mapping[str, bytes]) -> tuple[list[str], int]:
    """The argv of every process on the machine (what ``ps`` shows): (findings, processes)."""
    findings: list[str] = []
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            data = cmdline.read_bytes()
        except OSError:
            continue
        count += 1
        command = data.replace(b"\0", b" ").decode(errors="replace")[:150]
        findings += _hits(f"ps pid {cmdline.parent.name} ({command})", data, patterns)
    return findings, count


def scan_topics(bootstrap: str, patterns: Mapping[str, bytes]) -> tuple[list[str], int]:
    """Keys, values and headers of every record of every topic but Kafka's internal ones:
    (findings, records read)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "secret-leak-scan",
            "enable.auto.commit": False,
        }
    )
    findings: list[str] = []
    count = 0
    try:
        listed = consumer.list_topics(timeout=10).topics
        for topic, metadata in sorted(listed.items()):
            if topic.startswith("__"):
                continue
            for partition in metadata.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                if high <= low:
                    continue
                consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
                offset = low - 1
                while offset < high - 1:
                    message = consumer.poll(10)
                    if message is None:
                        break
                    if message.error():
                        continue
                    count += 1
                    offset = message.offset()
                    data = (message.key() or b"") + b"\0" + (message.value() or b"")
                    for _, header in message.headers() or []:
                        data += b"\0" + (header or b"")
                    findings += _hits(f"topic {topic}", data, patterns)
    finally:
        consumer.close()
    return sorted(set(findings)), count


def scan_search(client: Any, patterns: Mapping[str, bytes]) -> tuple[list[str], int]:
    """Every document, mapping, setting and template of the cluster: (findings, documents)."""
    from elasticsearch.helpers import scan

    findings: list[str] = []
    count = 0
    client.indices.refresh(index="*")
    for name in client.indices.get(index="*", expand_wildcards="all"):
        for hit in scan(client, index=name, query={"query": {"match_all": {}}}):
            count += 1
            findings += _hits(f"index {name}", json.dumps(hit).encode(), patterns)
    meta = {
        "mappings and settings": client.indices.get(index="*", expand_wildcards="all").body,
        "index templates": client.indices.get_index_template().body,
        "cluster settings": client.cluster.get_settings().body,
    }
    for where, body in meta.items():
        findings += _hits(where, json.dumps(body).encode(), patterns)
    return sorted(set(findings)), count


def scan_airflow_db(database: Path, patterns: Mapping[str, bytes]) -> tuple[list[str], int]:
    """XCom values, then the whole SQLite file (connections, variables, run conf, rendered
    fields...): (findings, XCom rows)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT dag_id, task_id, key, value FROM xcom").fetchall()
    findings: list[str] = []
    for dag_id, task_id, key, value in rows:
        data = value if isinstance(value, bytes) else str(value).encode()
        findings += _hits(f"xcom {dag_id}.{task_id}.{key}", data, patterns)
    for suffix in ("", "-wal"):
        path = Path(f"{database}{suffix}")
        if path.exists():
            findings += _hits(f"airflow database {path.name}", path.read_bytes(), patterns)
    return findings, len(rows)
