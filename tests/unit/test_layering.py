"""The package layering of ``rtcrypto/``: one rule table, checked on every module's imports.

``LAYERS`` is the one definition of the rules; ``docs/architecture.md`` mirrors it one line per
package (``test_architecture_doc_mirrors_the_rules`` keeps the two equal). A package may import
the packages of every lower layer and the peers its row names, nothing else. Every import
counts: module level, inside functions and under ``TYPE_CHECKING`` (a type-only import is still
a dependency a reader has to follow). ``market`` and ``trading`` are also kept free of I/O client
libraries, and nothing in ``rtcrypto`` imports the entry points that sit on top of it (``dags``,
``plugins``, ``streaming``, ``spark_jobs``, ``bench``, ``fuzz``, ``tests``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

ROOT_UTILITIES = (
    "config",
    "config_checks",
    "config_cluster",
    "config_paths",
    "logs",
    "redact",
    "bounded",
    "kaggle_credentials",
    "locks",
)


@dataclass(frozen=True)
class Layer:
    """One package's place: its layer (0 lowest), what it owns and its same-layer imports."""

    layer: int
    owns: str
    peers: frozenset[str] = frozenset()


def _rule(layer: int, owns: str, *peers: str) -> Layer:
    return Layer(layer, owns, frozenset(peers))


# The one table of the layering rules (docs/architecture.md, "Packages and layers", mirrors it).
LAYERS: dict[str, Layer] = {
    "config": _rule(
        0,
        "Settings (every RTC_* variable)",
        "config_checks",
        "config_cluster",
        "config_paths",
        "redact",
    ),
    "config_cluster": _rule(0, "the cluster topology's settings (RTC_CLUSTER_*)", "config_checks"),
    "config_paths": _rule(0, "the paths Settings derives under RTC_HOME"),
    "config_checks": _rule(0, "the bounds and patterns Settings validates with"),
    "logs": _rule(0, "logging set-up (the level from Settings)", "config", "config_checks"),
    "redact": _rule(0, "URL and secret redaction for anything printed or logged"),
    "bounded": _rule(0, "size/nesting/decimal caps for parsing hostile input"),
    "kaggle_credentials": _rule(0, "where Kaggle credentials are found (env, kaggle.json)"),
    "locks": _rule(0, "one exclusive file lock (flock) between processes"),
    "market": _rule(1, "record schemas and contracts, order book, liquidity math, venue capture parsers"),
    "trading": _rule(2, "strategy, risk gate, ledger, order value types, backtests (pure, no I/O)"),
    "kafka": _rule(3, "the factory of every Kafka client, producers, security settings"),
    "search": _rule(3, "Elasticsearch client, index templates, documents, bulk writer, queries, Kibana objects", "exchange"),
    "exchange": _rule(3, "the exchange interface, paper and Gemini REST adapters, signing, nonces, the feed clock"),
    "history": _rule(3, "minute-bar import, the partitioned Parquet store, upserts"),
    "forecast": _rule(3, "Prophet training, walk-forward, source selection, publish gate", "history"),
    "spark": _rule(3, "spark-submit, Spark job options, event-time guards, job heartbeats", "kafka", "stack", "exchange"),
    # stack sits with the I/O adapters, not above supervision: it builds on root utilities and the
    # Kafka client factory, and spark (jars) and supervision (the process manager) build on it.
    "stack": _rule(3, "the embedded infrastructure: Kafka broker, Elasticsearch, Airflow standalone, Maven jars, process manager, log pipe", "kafka"),
    "ingest": _rule(4, "the websocket ingest: frame processor, event-time window, service"),
    "trader": _rule(4, "the trader service: engine, journal, forecast source, recorders"),
    "feedbars": _rule(4, "the platform's own minute bars (model, options, sink, streaming job logic)"),
    "simulator": _rule(4, "the exchange simulator: capture and history replay, market model, sandbox"),
    "supervision": _rule(4, "service registry, health, lag, restarts, heartbeats, healthcheck", "feedbars"),
    "report": _rule(4, "the trade review: fetch, series, render"),
    "platform": _rule(5, "what `rtc up` and `rtc prepare` do, with a progress callback"),
    "review": _rule(5, "the live Trade review page's data: one JSON payload per range (the report's series, the supervisor's health)"),
    "cli": _rule(6, "the `rtc` command: parse arguments, call one function, print"),
}  # fmt: skip

# I/O client libraries the pure layers never import.
IO_LIBRARIES = frozenset(
    {
        "aiohttp",
        "airflow",
        "confluent_kafka",
        "elastic_transport",
        "elasticsearch",
        "kafka",
        "pyspark",
        "requests",
        "socket",
        "urllib3",
        "websocket",
    }
)
PURE_PACKAGES = ("market", "trading")

# Top-level folders above the package: rtcrypto never imports them.
ENTRY_POINTS = frozenset(
    {"dags", "plugins", "rtc_airflow", "streaming", "spark_jobs", "bench", "fuzz", "tests"}
)


def may_import(package: str) -> frozenset[str]:
    """Every rtcrypto package ``package`` may import (lower layers and its named peers)."""
    rule = LAYERS[package]
    lower = {name for name, other in LAYERS.items() if other.layer < rule.layer}
    return frozenset(lower | rule.peers)


@dataclass(frozen=True)
class ImportSite:
    path: Path
    line: int
    target: str  # the absolute dotted module imported


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, node.module] if node.module else anchor)
    # `from rtcrypto import trader` names a package: resolve each name below the base
    return [f"{base}.{alias.name}" for alias in node.names] if base == "rtcrypto" else [base]


def imports_in(path: Path, root: Path) -> list[ImportSite]:
    """Every import in ``path`` (anywhere in the file), as absolute dotted names."""
    module = _module_name(path, root)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    sites: list[ImportSite] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            sites += [ImportSite(path, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            targets = _absolute(node, module, path.name == "__init__.py")
            sites += [ImportSite(path, node.lineno, target) for target in targets]
    return sites


def package_of(module: str) -> str:
    """``rtcrypto.market.schemas`` -> ``market``; ``rtcrypto.config`` -> ``config``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "rtcrypto"


def violations(root: Path) -> list[str]:
    """Every import under ``root/rtcrypto`` that breaks the rules, as ``file:line: reason``."""
    found: list[str] = []
    for path in sorted((root / "rtcrypto").rglob("*.py")):
        source = package_of(_module_name(path, root))
        where = path.relative_to(root)
        if source not in LAYERS and source != "rtcrypto":
            found.append(f"{where}:1: package {source!r} has no row in LAYERS")
            continue
        allowed = may_import(source) if source in LAYERS else frozenset()
        for site in imports_in(path, root):
            top = site.target.split(".")[0]
            if top == "rtcrypto":
                target = package_of(site.target)
                if target in (source, "rtcrypto"):
                    continue
                if target not in allowed:
                    found.append(
                        f"{where}:{site.line}: {source} imports {site.target} "
                        f"({target} is not in what {source} may import)"
                    )
            elif top in ENTRY_POINTS:
                found.append(f"{where}:{site.line}: {source} imports the entry point {site.target}")
            elif source in PURE_PACKAGES and top in IO_LIBRARIES:
                found.append(f"{where}:{site.line}: {source} imports the I/O library {site.target}")
    return found


def test_no_import_breaks_the_layers() -> None:
    found = violations(REPO)
    assert found == [], "imports that break the layering (docs/architecture.md):\n" + "\n".join(
        found
    )


def test_every_package_and_root_module_has_a_rule() -> None:
    package_root = REPO / "rtcrypto"
    present = {p.name for p in package_root.iterdir() if (p / "__init__.py").is_file()}
    present |= {p.stem for p in package_root.glob("*.py") if p.name != "__init__.py"}
    assert present - set(LAYERS) == set(), "give every new package a row in LAYERS"
    assert set(LAYERS) - present == set(), "drop the rows of packages that are gone from LAYERS"


def test_the_layers_keep_the_order_of_the_issue() -> None:
    order = [
        ROOT_UTILITIES,
        ("market",),
        ("trading",),
        ("kafka", "search", "exchange", "history", "forecast", "spark"),
        ("ingest", "trader", "feedbars", "simulator", "supervision", "report"),
        ("platform",),
        ("cli",),
    ]
    for lower, upper in zip(order, order[1:], strict=False):
        for low in lower:
            for high in upper:
                assert LAYERS[low].layer < LAYERS[high].layer, (low, high)
    for package in ("kafka", "search", "exchange", "stack"):
        assert package not in may_import("trading")
    for package in LAYERS:
        if LAYERS[package].layer >= LAYERS["kafka"].layer:
            assert package not in may_import("market")
    for package, rule in LAYERS.items():
        for peer in rule.peers:
            assert LAYERS[peer].layer == rule.layer, f"{package}'s peer {peer} is not a peer"
            assert package not in LAYERS[peer].peers, f"{package} <-> {peer}: a cycle"


# --- the test of the test: a planted bad import in a copy of the tree is found -------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """An empty ``rtcrypto`` package in a temporary folder that a test plants modules in."""
    (tmp_path / "rtcrypto").mkdir()
    (tmp_path / "rtcrypto" / "__init__.py").write_text('"""planted"""\n', encoding="utf-8")
    return tmp_path


def _plant(tree: Path, relative: str, code: str) -> None:
    path = tree / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "__init__.py").touch()
    path.write_text(code, encoding="utf-8")


PLANTED = [
    ("rtcrypto/market/planted.py", "from rtcrypto.trader import engine\n", "market imports rtcrypto.trader"),
    (
        "rtcrypto/market/planted.py",
        "def later():\n    from rtcrypto.search.client import search_client\n",
        "market imports rtcrypto.search.client",
    ),
    ("rtcrypto/trading/planted.py", "import rtcrypto.kafka.clients\n", "trading imports rtcrypto.kafka.clients"),
    ("rtcrypto/trading/planted.py", "from ..exchange import base\n", "trading imports rtcrypto.exchange"),
    ("rtcrypto/trading/planted.py", "from rtcrypto import stack\n", "trading imports rtcrypto.stack"),
    (
        "rtcrypto/trading/planted.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rtcrypto.trader.engine import X\n",
        "trading imports rtcrypto.trader.engine",
    ),
    ("rtcrypto/market/planted.py", "import requests\n", "market imports the I/O library requests"),
    ("rtcrypto/trading/planted.py", "from confluent_kafka import Consumer\n", "I/O library confluent_kafka"),
    ("rtcrypto/supervision/planted.py", "from rtcrypto.platform import bootstrap\n", "supervision imports rtcrypto.platform"),
    ("rtcrypto/ingest/planted.py", "from rtcrypto.trader import engine\n", "ingest imports rtcrypto.trader"),
    ("rtcrypto/kafka/planted.py", "from rtcrypto.search import client\n", "kafka imports rtcrypto.search"),
    ("rtcrypto/config_planted.py", "from rtcrypto import cli\n", "package 'config_planted' has no row"),
    ("rtcrypto/report/planted.py", "import dags.trade_report\n", "the entry point dags.trade_report"),
]  # fmt: skip


@pytest.mark.parametrize(("relative", "code", "reason"), PLANTED)
def test_a_planted_bad_import_is_found(tree: Path, relative: str, code: str, reason: str) -> None:
    assert violations(tree) == []
    _plant(tree, relative, code)
    found = violations(tree)
    assert len(found) == 1 and reason in found[0], found


def test_allowed_imports_are_not_flagged(tree: Path) -> None:
    _plant(
        tree,
        "rtcrypto/trader/planted.py",
        "from rtcrypto.trading import strategy\nfrom rtcrypto.kafka import clients\n"
        "from ..market.schemas import X\nimport requests\nfrom . import engine\n",
    )
    _plant(tree, "rtcrypto/search/planted.py", "from rtcrypto.exchange import base\n")
    _plant(
        tree, "rtcrypto/cli/planted.py", "def run():\n    from rtcrypto.platform import bootstrap\n"
    )
    assert violations(tree) == []


# --- docs/architecture.md mirrors the table, one line per package -------------------------------


def doc_row(name: str) -> str:
    """The line of docs/architecture.md's package table for ``name`` (the test keeps them equal)."""
    rule = LAYERS[name]
    peers = ", ".join(f"`{peer}`" for peer in sorted(rule.peers))
    if rule.layer == 0:
        may = f"root utilities: {peers}" if peers else "no other rtcrypto module"
    else:
        below = "layer 0" if rule.layer == 1 else f"layers 0-{rule.layer - 1}"
        may = below + (f", and {peers}" if peers else "")
    return f"| `{name}` | {rule.layer} | {rule.owns} | {may} |"


def test_architecture_doc_mirrors_the_rules() -> None:
    lines = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines if re.match(r"^\| `[a-z_]+` \| \d+ \|", line)]
    expected = [doc_row(name) for name in sorted(LAYERS, key=lambda n: (LAYERS[n].layer, n))]
    assert rows == expected, (
        "docs/architecture.md's package table must equal LAYERS:\n" + "\n".join(expected)
    )
