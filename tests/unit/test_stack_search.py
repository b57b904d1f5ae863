"""The local Elasticsearch node's generated configuration, module layout, health probe and the
search client's clear errors, checked without starting a node (HTTP answers come from a local
recorder server)."""

from __future__ import annotations

import json
import socket
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rtcrypto import search as search_client
from rtcrypto.config import Settings
from rtcrypto.stack import process, search, search_home
from rtcrypto.stack.errors import PortInUseError, StackError, ToolMissingError


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "rtc", search_url="http://127.0.0.1:19200")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- configuration ------------------------------------------------------------------------------


def test_node_settings_make_one_local_single_node_cluster(settings: Settings) -> None:
    paths = search.search_paths(settings)

    entries = search.node_settings(settings, paths)

    assert entries["discovery.type"] == "single-node"
    assert entries["network.host"] == "127.0.0.1"
    assert entries["http.port"] == "19200"
    assert entries["transport.port"] == "9300"
    assert entries["path.data"] == str(settings.run_dir / "elasticsearch-data")
    assert entries["path.logs"] == str(settings.log_dir / "elasticsearch")
    # issue 10: the disk watermarks are on, as free space (rtcrypto/stack/search_disk.py)
    assert entries["cluster.routing.allocation.disk.threshold_enabled"] == "true"
    assert entries["cluster.routing.allocation.disk.watermark.low"] == "2gb"
    assert entries["cluster.routing.allocation.disk.watermark.high"] == "1gb"
    assert entries["cluster.routing.allocation.disk.watermark.flood_stage"] == "500mb"


def test_everything_lives_under_run_and_log_dirs(settings: Settings) -> None:
    paths = search.search_paths(settings)

    assert paths.home_dir == settings.run_dir / "elasticsearch"
    assert paths.elasticsearch_yml == settings.run_dir / "elasticsearch/config/elasticsearch.yml"
    assert paths.modules_dir == settings.run_dir / "elasticsearch/modules"
    assert paths.data_dir.parent == settings.run_dir
    assert paths.server_log.is_relative_to(settings.log_dir)
    assert paths.process_log == settings.log_dir / "elasticsearch.log"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9200", ("127.0.0.1", 9200)),
        ("http://localhost:19200/", ("localhost", 19200)),
        ("http://127.0.0.1", ("127.0.0.1", 9200)),
    ],
)
def test_parse_search_url(url: str, expected: tuple[str, int]) -> None:
    assert search.parse_search_url(url) == expected


@pytest.mark.parametrize("url", ["https://127.0.0.1:9200", "127.0.0.1:9200", "http://:9200"])
def test_parse_search_url_refuses_what_the_local_node_cannot_serve(url: str) -> None:
    with pytest.raises(StackError, match="RTC_SEARCH_URL"):
        search.parse_search_url(url)


def test_render_yaml_quotes_every_value() -> None:
    text = search.render_yaml({"cluster.name": "rtc-local", "http.port": "9200"})

    assert 'cluster.name: "rtc-local"' in text
    assert 'http.port: "9200"' in text
    assert text.startswith("# Written by `rtc stack up`")


def test_write_config_writes_yaml_and_log4j(settings: Settings) -> None:
    paths = search.write_config(settings)

    assert 'discovery.type: "single-node"' in paths.elasticsearch_yml.read_text()
    assert f"fileName = {paths.server_log}" in paths.log4j_config.read_text()
    assert paths.data_dir.is_dir() and paths.tmp_dir.is_dir() and paths.native_dir.is_dir()


def test_jvm_options_carry_heap_and_native_switches(settings: Settings) -> None:
    moved = settings.model_copy(update={"search_heap": "768m"})
    paths = search.search_paths(moved)

    options = search.jvm_options(moved, paths)

    assert "-Xms768m" in options and "-Xmx768m" in options
    assert f"-Des.nativelibs.path={paths.native_dir}" in options
    assert "-Dorg.elasticsearch.nativeaccess.enableVectorLibrary=false" in options
    assert "-Dlog4j.shutdownHookEnabled=false" in options


def test_netty_jars_stay_off_the_server_classpath() -> None:
    jars = [
        Path("lib/elasticsearch-9.5.3.jar"),
        Path("lib/lucene-core-10.5.1.jar"),
        Path("lib/netty-common-4.1.135.Final.jar"),
        Path("lib/transport-netty4-9.5.3.jar"),
    ]

    classpath = search.server_classpath(jars)

    assert [jar.name for jar in classpath] == ["elasticsearch-9.5.3.jar", "lucene-core-10.5.1.jar"]


def test_java_command_runs_our_launcher_on_the_home(settings: Settings) -> None:
    paths = search.search_paths(settings)
    jars = [Path("/lib/elasticsearch-9.5.3.jar"), Path("/lib/lucene-core-10.5.1.jar")]

    command = search.java_command(Path("/jdk/bin/java"), settings, jars)

    assert command[0] == "/jdk/bin/java"
    assert command[-2:] == [search.LAUNCHER_MAIN_CLASS, str(paths.home_dir)]
    classpath = command[command.index("-cp") + 1].split(":")
    assert classpath == [str(paths.launcher_dir / "classes"), *map(str, jars)]


# --- modules ------------------------------------------------------------------------------------


def test_classpath_descriptor_drops_the_module_name() -> None:
    descriptor = "name=transport-netty4\nmodulename=org.elasticsearch.transport.netty4\nversion=9\n"

    assert search_home.classpath_descriptor(descriptor) == "name=transport-netty4\nversion=9\n"


def test_root_module_descriptor_names_our_plugin_and_the_server_version() -> None:
    descriptor = search_home.root_module_descriptor("9.5.3")

    assert "name=rtc-root\n" in descriptor
    assert f"classname={search_home.ROOT_MODULE_CLASS}\n" in descriptor
    assert "elasticsearch.version=9.5.3\n" in descriptor
    assert "java.version=21\n" in descriptor


def _fake_jar(path: Path, entries: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return path


def test_install_netty_module_copies_jars_and_writes_a_classpath_descriptor(
    settings: Settings, tmp_path: Path
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    descriptor = (
        "name=transport-netty4\nclassname=org.elasticsearch.transport.netty4.Netty4Plugin\n"
        "modulename=org.elasticsearch.transport.netty4\n"
    )
    jars = [
        _fake_jar(lib / "transport-netty4-9.5.3.jar", {search_home._NETTY_DESCRIPTOR: descriptor}),
        _fake_jar(lib / "netty-common-4.1.135.Final.jar", {"x": "y"}),
        _fake_jar(lib / "elasticsearch-9.5.3.jar", {"x": "y"}),
    ]
    stale = search.search_paths(settings).modules_dir / search_home.NETTY_MODULE / "netty-old.jar"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")

    module_dir = search.install_netty_module(jars, settings)

    assert sorted(path.name for path in module_dir.iterdir()) == [
        "netty-common-4.1.135.Final.jar",
        "plugin-descriptor.properties",
        "transport-netty4-9.5.3.jar",
    ]
    written = (module_dir / "plugin-descriptor.properties").read_text()
    assert "modulename" not in written
    assert "classname=org.elasticsearch.transport.netty4.Netty4Plugin" in written


def test_install_netty_module_without_the_plugin_jar_says_what_to_do(
    settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(StackError, match="transport-netty4 jar missing"):
        search.install_netty_module([tmp_path / "elasticsearch-9.5.3.jar"], settings)


def test_find_system_zstd(tmp_path: Path) -> None:
    empty, with_zstd = tmp_path / "a", tmp_path / "b"
    empty.mkdir()
    with_zstd.mkdir()
    (with_zstd / "libzstd.so.1").write_text("")

    assert search_home.find_system_zstd([empty]) is None
    assert search_home.find_system_zstd([empty, with_zstd]) == with_zstd / "libzstd.so.1"


# --- Java -----------------------------------------------------------------------------------------


def _fake_jdk(home: Path, version: str) -> Path:
    (home / "bin").mkdir(parents=True)
    for tool in ("java", "javac"):
        script = home / "bin" / tool
        script.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2025-01-01' >&2\n")
        script.chmod(0o755)
    return home


def test_find_search_java_takes_an_explicit_jdk_21(settings: Settings, tmp_path: Path) -> None:
    home = _fake_jdk(tmp_path / "jdk21", "21.0.5")
    chosen = settings.model_copy(update={"search_java_home": home})

    tool = search.find_search_java(chosen)

    assert tool == search_home.JavaTool(home / "bin/java", home / "bin/javac", 21)


def test_find_search_java_refuses_java_17_with_a_hint(settings: Settings, tmp_path: Path) -> None:
    home = _fake_jdk(tmp_path / "jdk17", "17.0.15")
    chosen = settings.model_copy(update={"search_java_home": home})

    with pytest.raises(ToolMissingError, match=r"JDK 21\+.*Java 17.*RTC_SEARCH_JAVA_HOME"):
        search.find_search_java(chosen)


def test_start_refuses_a_busy_http_port_before_downloading(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _fake_jdk(tmp_path / "jdk21", "21.0.5")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        busy = settings.model_copy(
            update={"search_url": f"http://127.0.0.1:{port}", "search_java_home": home}
        )

        def no_maven(*_args: object, **_kwargs: object) -> None:
            raise AssertionError("Maven must not run when the port is busy")

        monkeypatch.setattr(search.maven, "resolve_jars", no_maven)
        with pytest.raises(PortInUseError, match=rf"port {port}.*RTC_SEARCH_URL"):
            search.start_search(busy)
    assert not process.is_running(search.SEARCH_PROCESS, busy)


# --- health over HTTP (local recorder server) -------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """Answers like a node would; ``server.replies`` maps a path to (status, headers, body)."""

    def do_GET(self) -> None:
        replies: dict[str, tuple[int, dict[str, str], object]] = self.server.replies  # type: ignore[attr-defined]
        status, headers, body = replies.get(self.path.split("?")[0], (404, {}, {"error": "no"}))
        payload = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep pytest quiet
        pass


@pytest.fixture
def recorder() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.replies = {}  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


_ELASTIC = {"X-Elastic-Product": "Elasticsearch"}
_HEALTH = {"cluster_name": "rtc-local", "status": "yellow", "number_of_nodes": 1}


def test_node_health_from_a_recorder(recorder: ThreadingHTTPServer) -> None:
    recorder.replies["/_cluster/health"] = (200, _ELASTIC, _HEALTH)  # type: ignore[attr-defined]

    health = search.node_health(_url(recorder))

    assert health == search.NodeHealth("yellow", "rtc-local", 1, True)
    assert health.healthy
    assert search.search_healthy(_url(recorder))


def test_node_health_without_the_product_header_is_not_healthy(
    recorder: ThreadingHTTPServer,
) -> None:
    recorder.replies["/_cluster/health"] = (200, {}, _HEALTH)  # type: ignore[attr-defined]

    health = search.node_health(_url(recorder))

    assert health is not None and not health.is_elasticsearch
    assert not search.search_healthy(_url(recorder))


def test_node_health_while_no_master_is_elected(recorder: ThreadingHTTPServer) -> None:
    recorder.replies["/_cluster/health"] = (503, _ELASTIC, {"error": "master_not_discovered"})  # type: ignore[attr-defined]

    assert search.node_health(_url(recorder)) is None


def test_node_health_when_nothing_listens() -> None:
    assert search.node_health(f"http://127.0.0.1:{_free_port()}", timeout_s=1.0) is None


# --- the search client's errors ---------------------------------------------------------------


def test_cluster_health_through_the_client(
    recorder: ThreadingHTTPServer, settings: Settings
) -> None:
    recorder.replies["/_cluster/health"] = (200, _ELASTIC, {**_HEALTH, "active_shards": 3})  # type: ignore[attr-defined]
    client = search_client.search_client(settings.model_copy(update={"search_url": _url(recorder)}))

    health = search_client.cluster_health(client)

    assert health.status == "yellow" and health.healthy
    assert health.active_shards == 3


def test_cluster_health_names_the_url_when_nothing_answers(settings: Settings) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    client = search_client.search_client(
        settings.model_copy(update={"search_url": url}), max_retries=0, request_timeout_s=2.0
    )

    with pytest.raises(search_client.SearchUnavailableError, match=r"rtc stack up"):
        search_client.cluster_health(client, timeout_s=1.0)


def test_cluster_health_refuses_a_server_that_is_not_elasticsearch(
    recorder: ThreadingHTTPServer, settings: Settings
) -> None:
    recorder.replies["/_cluster/health"] = (200, {}, _HEALTH)  # type: ignore[attr-defined]
    client = search_client.search_client(settings.model_copy(update={"search_url": _url(recorder)}))

    with pytest.raises(search_client.SearchUnavailableError, match="not Elasticsearch"):
        search_client.cluster_health(client)


def test_ensure_compatible_names_both_versions(
    recorder: ThreadingHTTPServer, settings: Settings
) -> None:
    old_server = {"version": {"number": "8.19.4"}, "tagline": "You Know, for Search"}
    recorder.replies["/"] = (200, _ELASTIC, old_server)  # type: ignore[attr-defined]
    client = search_client.search_client(settings.model_copy(update={"search_url": _url(recorder)}))

    with pytest.raises(search_client.SearchError, match=r"Elasticsearch 8\.19\.4 .* client 9\."):
        search_client.ensure_compatible(client)
