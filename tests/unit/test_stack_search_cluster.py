"""The cluster topology's Elasticsearch: per-node configuration, paths and status lines, the
templates' replicas per topology, and the client's hosts, checked without starting a node."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtcrypto.config import Settings
from rtcrypto.config_cluster import ClusterSettings
from rtcrypto.search.client import search_client, search_hosts
from rtcrypto.search.indices import INDEX_SPECS, index_replicas, template_body
from rtcrypto.stack import process, search, search_cluster
from rtcrypto.stack.errors import PortInUseError
from tests.helpers import free_port


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    cluster = ClusterSettings(
        search_http_ports=[19201, 19202, 19203],
        search_transport_ports=[19301, 19302, 19303],
        search_heap="256m",
    )
    return Settings(home=tmp_path / "rtc", topology="cluster", cluster=cluster)


def test_every_node_has_its_own_home_data_and_logs_and_shares_the_launcher(
    settings: Settings,
) -> None:
    paths = [search_cluster.node_paths(settings, number) for number in (1, 2, 3)]

    root = settings.run_dir / "search-cluster"
    assert [p.home_dir for p in paths] == [root / "node-1", root / "node-2", root / "node-3"]
    assert [p.data_dir for p in paths] == [root / f"node-{n}" / "data" for n in (1, 2, 3)]
    assert {p.launcher_dir for p in paths} == {root / "launcher"}
    assert paths[1].logs_dir == settings.log_dir / "elasticsearch-2"
    assert paths[1].process_log == settings.log_dir / "elasticsearch-2.log"
    assert paths[1].server_log == settings.log_dir / "elasticsearch-2" / "rtc-cluster.log"
    # nothing of the single node's home is shared
    single = search.search_paths(settings)
    assert not {single.home_dir, single.data_dir} & {p.home_dir for p in paths}


def test_node_settings_form_one_cluster_of_every_node(settings: Settings) -> None:
    paths = search_cluster.node_paths(settings, 2)

    entries = search_cluster.cluster_node_settings(settings, 2, paths, first_formation=True)

    assert entries["cluster.name"] == "rtc-cluster"
    assert entries["node.name"] == "rtc-node-2"
    assert entries["network.host"] == "127.0.0.1"
    assert (entries["http.port"], entries["transport.port"]) == ("19202", "19302")
    assert entries["discovery.seed_hosts"] == "127.0.0.1:19301,127.0.0.1:19302,127.0.0.1:19303"
    assert entries["cluster.initial_master_nodes"] == "rtc-node-1,rtc-node-2,rtc-node-3"
    assert entries["path.data"] == str(paths.data_dir)
    assert "discovery.type" not in entries  # not a single-node cluster
    assert entries["cluster.routing.allocation.disk.threshold_enabled"] == "true"


def test_initial_master_nodes_only_for_the_first_formation(settings: Settings) -> None:
    paths = search_cluster.node_paths(settings, 1)

    entries = search_cluster.cluster_node_settings(settings, 1, paths, first_formation=False)

    assert "cluster.initial_master_nodes" not in entries
    assert entries["discovery.seed_hosts"].count(",") == 2


def test_first_formation_until_the_cluster_formed_with_data(settings: Settings) -> None:
    assert search_cluster.is_first_formation(settings)

    marker = search_cluster.formed_marker(settings)
    marker.parent.mkdir(parents=True)
    marker.write_text("rtc-cluster\n")
    assert search_cluster.is_first_formation(settings)  # marker, but every data folder is gone

    data = search_cluster.node_paths(settings, 3).data_dir
    data.mkdir(parents=True)
    (data / "node.lock").write_text("")
    assert not search_cluster.is_first_formation(settings)


def test_node_count_follows_the_port_lists(tmp_path: Path) -> None:
    two = Settings(
        home=tmp_path,
        topology="cluster",
        cluster=ClusterSettings(
            search_http_ports=[19201, 19202], search_transport_ports=[19301, 19302]
        ),
    )

    assert list(search_cluster.node_numbers(two)) == [1, 2]
    assert [search_cluster.node_process(n) for n in (1, 2)] == [
        "elasticsearch-1",
        "elasticsearch-2",
    ]
    assert search_cluster.transport_addresses(two) == ["127.0.0.1:19301", "127.0.0.1:19302"]


def test_written_config_and_command_are_the_nodes(settings: Settings) -> None:
    paths = search_cluster.write_node_config(settings, 3, first_formation=False)

    yml = paths.elasticsearch_yml.read_text()
    assert 'node.name: "rtc-node-3"' in yml
    assert 'http.port: "19203"' in yml
    assert "initial_master_nodes" not in yml
    assert str(paths.server_log) in paths.log4j_config.read_text()
    command = search.java_command(Path("/jdk/bin/java"), settings, [], paths, "256m")
    assert "-Xmx256m" in command and "-Xms256m" in command
    assert command[-1] == str(paths.home_dir)
    assert str(paths.launcher_dir / "classes") in command[command.index("-cp") + 1]


def test_status_names_every_node_down_when_nothing_runs(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(4)]
    idle = Settings(
        home=tmp_path,
        topology="cluster",
        cluster=ClusterSettings(
            search_http_ports=ports[:2], search_transport_ports=ports[2:], search_replicas=1
        ),
    )

    lines = search_cluster.search_cluster_status(idle)

    assert len(lines) == 3
    assert "elasticsearch-1" in lines[0] and " down " in lines[0]
    assert f"http://127.0.0.1:{ports[1]}" in lines[1] and " down " in lines[1]
    assert "no node answers" in lines[2]


def test_health_parsing_keeps_the_shard_counts() -> None:
    body = {
        "status": "yellow",
        "number_of_nodes": 2,
        "active_primary_shards": 9,
        "active_shards": 12,
        "relocating_shards": 1,
        "initializing_shards": 2,
        "unassigned_shards": 4,
    }

    health = search_cluster.ClusterHealth.from_body(body, "http://x:1")

    assert (health.status, health.number_of_nodes, health.unassigned_shards) == ("yellow", 2, 4)
    assert not search_cluster.cluster_formed(health, 3)
    assert search_cluster.cluster_formed(health, 2)
    assert not search_cluster.cluster_formed(None, 2)


# --- replicas of the templates per topology ------------------------------------------------------


def test_single_topology_keeps_zero_replicas(tmp_path: Path) -> None:
    single = Settings(home=tmp_path)

    assert index_replicas(single) == 0
    body = template_body(INDEX_SPECS["orders"], "rtc", index_replicas(single))
    assert body["template"]["settings"] == {"number_of_shards": 1, "number_of_replicas": 0}
    # the single topology's templates are what they were: no re-put on an existing node
    assert body == template_body(INDEX_SPECS["orders"], "rtc")


def test_cluster_topology_gives_every_template_its_replicas(settings: Settings) -> None:
    assert index_replicas(settings) == 1
    for spec in INDEX_SPECS.values():
        body = template_body(spec, "rtc", index_replicas(settings))
        assert body["template"]["settings"]["number_of_replicas"] == 1
    two = settings.model_copy(
        update={"cluster": settings.cluster.model_copy(update={"search_replicas": 2})}
    )
    assert index_replicas(two) == 2
    one = template_body(INDEX_SPECS["fills"], "rtc", 1)["_meta"]["fingerprint"]
    zero = template_body(INDEX_SPECS["fills"], "rtc", 0)["_meta"]["fingerprint"]
    assert one != zero  # a topology change re-puts the templates


def test_replicas_follow_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RTC_TOPOLOGY", "cluster")
    monkeypatch.setenv("RTC_CLUSTER_SEARCH_REPLICAS", "2")

    assert index_replicas(Settings(home=tmp_path)) == 2


# --- the client's hosts --------------------------------------------------------------------------


def test_client_gets_every_node_in_the_cluster_topology(settings: Settings) -> None:
    hosts = search_hosts(settings)

    assert hosts == ["http://127.0.0.1:19201", "http://127.0.0.1:19202", "http://127.0.0.1:19203"]
    client = search_client(settings)
    assert sorted(node.base_url for node in client.transport.node_pool.all()) == hosts
    client.close()


def test_client_starts_with_the_configured_node(settings: Settings) -> None:
    second = Settings(
        home=settings.home,
        topology="cluster",
        cluster=settings.cluster,
        search_url="http://127.0.0.1:19202",
    )

    assert search_hosts(second) == [
        "http://127.0.0.1:19202",
        "http://127.0.0.1:19201",
        "http://127.0.0.1:19203",
    ]


def test_an_external_url_stays_alone(settings: Settings, tmp_path: Path) -> None:
    external = Settings(
        home=tmp_path,
        topology="cluster",
        cluster=settings.cluster,
        search_url="http://user:secret@search.example:9200",
    )

    assert search_hosts(external) == ["http://search.example:9200"]
    assert search_hosts(Settings(home=tmp_path)) == ["http://127.0.0.1:9200"]


def test_credentials_go_to_every_node(settings: Settings) -> None:
    with_auth = Settings(
        home=settings.home,
        topology="cluster",
        cluster=settings.cluster,
        search_username="rtc_app",
        search_password="s3cret",
    )

    client = search_client(with_auth)

    # client-level headers go with every request, whichever node it reaches
    assert len(client.transport.node_pool.all()) == 3
    assert client._headers["authorization"] == "Basic cnRjX2FwcDpzM2NyZXQ="  # rtc_app:s3cret
    client.close()


def test_start_names_a_busy_port_before_starting_or_downloading(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jdk = tmp_path / "jdk21"
    (jdk / "bin").mkdir(parents=True)
    for tool in ("java", "javac"):
        script = jdk / "bin" / tool
        script.write_text("#!/bin/sh\necho 'openjdk version \"21.0.5\" 2025-01-01' >&2\n")
        script.chmod(0o755)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        free = [free_port() for _ in range(5)]
        cluster = ClusterSettings(
            search_http_ports=[free[0], free[1], busy], search_transport_ports=free[2:]
        )
        chosen = Settings(home=tmp_path / "rtc", topology="cluster", cluster=cluster)
        chosen = chosen.model_copy(update={"search_java_home": jdk})

        def no_maven(*_args: object, **_kwargs: object) -> None:
            raise AssertionError("Maven must not run when a port is busy")

        monkeypatch.setattr(search_cluster.maven, "resolve_jars", no_maven)
        with pytest.raises(PortInUseError, match=rf"port {busy}.*RTC_CLUSTER_SEARCH_HTTP_PORTS"):
            search_cluster.start_search_cluster(chosen, lambda line: None)
    assert not any(process.is_running(search_cluster.node_process(n), chosen) for n in (1, 2, 3))


@given(
    ports=st.lists(st.integers(1024, 65535), min_size=2, max_size=14, unique=True).filter(
        lambda found: len(found) % 2 == 0
    ),
    first=st.booleans(),
)
def test_every_node_seeds_every_other_and_listens_on_its_own_ports(
    ports: list[int], first: bool
) -> None:
    half = len(ports) // 2
    settings = Settings(
        home=Path("/nonexistent/rtc"),
        topology="cluster",
        cluster=ClusterSettings(
            search_http_ports=ports[:half], search_transport_ports=ports[half:], search_replicas=0
        ),
    )
    names = set()
    for number in search_cluster.node_numbers(settings):
        paths = search_cluster.node_paths(settings, number)
        entries = search_cluster.cluster_node_settings(
            settings, number, paths, first_formation=first
        )
        seeds = entries["discovery.seed_hosts"].split(",")
        assert seeds == [f"127.0.0.1:{port}" for port in ports[half:]]
        assert int(entries["http.port"]) == ports[number - 1]
        assert f"127.0.0.1:{entries['transport.port']}" == seeds[number - 1]
        masters = entries.get("cluster.initial_master_nodes")
        assert (masters is not None) == first
        if masters is not None:
            assert masters.split(",") == [f"rtc-node-{n}" for n in range(1, half + 1)]
        names.add(entries["node.name"])
        assert entries["cluster.name"] == "rtc-cluster"
    assert len(names) == half
