"""The Kafka cluster's generated configuration: per-node properties, quorum, ports, paths, status
lines (rtcrypto/stack/kafka_cluster.py, kafka_cluster_status.py). No broker runs here."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtcrypto.config import Settings, get_settings
from rtcrypto.config_checks import SettingsError
from rtcrypto.config_cluster import ClusterSettings, Topology
from rtcrypto.stack import kafka, kafka_cluster
from rtcrypto.stack import kafka_cluster_status as cluster_status
from rtcrypto.stack.errors import PortInUseError, StackError

PORTS = [19192, 19194, 19196]
CONTROLLER_PORTS = [19193, 19195, 19197]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "rtc",
        topology=Topology.CLUSTER,
        cluster=ClusterSettings(kafka_ports=PORTS, kafka_controller_ports=CONTROLLER_PORTS),
    )


def test_three_nodes_named_kafka_1_to_3_with_their_ports(settings: Settings) -> None:
    assert kafka_cluster.node_ids(settings) == [1, 2, 3]
    assert [kafka_cluster.member_name(i) for i in (1, 2, 3)] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [kafka_cluster.node_ports(settings, i) for i in (1, 2, 3)] == [
        (19192, 19193),
        (19194, 19195),
        (19196, 19197),
    ]


def test_quorum_voters_list_every_node_on_its_controller_port(settings: Settings) -> None:
    assert kafka_cluster.quorum_voters(settings) == (
        "1@127.0.0.1:19193,2@127.0.0.1:19195,3@127.0.0.1:19197"
    )


def test_node_properties(settings: Settings) -> None:
    data_dir = kafka_cluster.node_paths(settings, 2).data_dir

    properties = kafka_cluster.node_properties(settings, 2, data_dir)

    assert properties["process.roles"] == "broker,controller"
    assert properties["node.id"] == "2"
    assert properties["controller.quorum.voters"] == kafka_cluster.quorum_voters(settings)
    assert "controller.quorum.bootstrap.servers" not in properties  # static quorum only
    listeners = "PLAINTEXT://127.0.0.1:19194,CONTROLLER://127.0.0.1:19195"
    assert properties["listeners"] == properties["advertised.listeners"] == listeners
    assert properties["log.dirs"] == str(settings.run_dir / "kafka-cluster" / "node-2")
    assert properties["num.partitions"] == "6"
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert properties[key] == "3", key
    for key in (
        "min.insync.replicas",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.min.isr",
    ):
        assert properties[key] == "2", key
    # the single broker's other choices stay
    assert properties["auto.create.topics.enable"] == "false"
    assert properties["controller.listener.names"] == "CONTROLLER"


def test_failover_timing_comes_from_the_session_timeout(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = kafka_cluster.node_properties(settings, 1, Path("/data"))
    assert default["broker.session.timeout.ms"] == "9000"  # Kafka's own default
    assert default["broker.heartbeat.interval.ms"] == "2000"

    monkeypatch.setenv("RTC_CLUSTER_KAFKA_BROKER_SESSION_TIMEOUT_MS", "3000")
    faster = Settings(
        home=settings.home,
        cluster=ClusterSettings(kafka_ports=PORTS, kafka_controller_ports=CONTROLLER_PORTS),
    )
    properties = kafka_cluster.node_properties(faster, 1, Path("/data"))
    assert properties["broker.session.timeout.ms"] == "3000"
    assert properties["broker.heartbeat.interval.ms"] == "750"


@pytest.mark.parametrize("value", ["999", "soon", "300001"])
def test_a_nonsense_session_timeout_is_refused_naming_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTC_CLUSTER_KAFKA_BROKER_SESSION_TIMEOUT_MS", value)
    get_settings.cache_clear()

    with pytest.raises(SettingsError) as refused:
        get_settings()

    assert "RTC_CLUSTER_KAFKA_BROKER_SESSION_TIMEOUT_MS" in str(refused.value)


def test_sizes_come_from_the_cluster_settings(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        cluster=ClusterSettings(
            kafka_ports=[1, 3, 5, 7, 9],
            kafka_controller_ports=[2, 4, 6, 8, 10],
            kafka_replication_factor=5,
            kafka_min_insync_replicas=3,
            kafka_partitions=12,
            host="localhost",
        ),
    )

    properties = kafka_cluster.node_properties(settings, 5, tmp_path)

    assert kafka_cluster.node_ids(settings) == [1, 2, 3, 4, 5]
    assert properties["node.id"] == "5"
    assert properties["listeners"] == "PLAINTEXT://localhost:9,CONTROLLER://localhost:10"
    assert properties["controller.quorum.voters"].split(",")[-1] == "5@localhost:10"
    assert properties["default.replication.factor"] == "5"
    assert properties["min.insync.replicas"] == "3"
    assert properties["num.partitions"] == "12"


def test_every_node_has_its_own_folders_and_logs(settings: Settings) -> None:
    paths = [kafka_cluster.node_paths(settings, i) for i in (1, 2, 3)]

    assert paths[0].data_dir == settings.run_dir / "kafka-cluster" / "node-1"
    assert paths[2].config_dir == settings.run_dir / "kafka-cluster" / "config-3"
    assert paths[1].server_log == settings.log_dir / "kafka-2-server.log"
    assert paths[1].process_log == settings.log_dir / "kafka-2.log"
    for field in ("config_dir", "data_dir", "server_log", "process_log"):
        assert len({getattr(node, field) for node in paths}) == 3, field
    # never the single broker's
    single = kafka.kafka_paths(settings)
    assert single.data_dir not in {node.data_dir for node in paths}


def test_topic_configs_add_min_insync_replicas_to_the_bounds(settings: Settings) -> None:
    configs = kafka_cluster.cluster_topic_configs(settings)

    assert configs["min.insync.replicas"] == "2"
    assert {key: configs[key] for key in kafka.topic_configs(settings)} == kafka.topic_configs(
        settings
    )


def test_write_node_config(settings: Settings) -> None:
    paths = kafka_cluster.write_node_config(settings, 3)

    written = kafka_cluster.parse_properties(paths.server_properties.read_text())
    assert written == kafka_cluster.node_properties(settings, 3, paths.data_dir)
    assert str(paths.server_log) in paths.log4j_config.read_text()
    assert paths.data_dir.is_dir()


def test_java_command_has_the_node_heap_and_log4j(settings: Settings) -> None:
    paths = kafka_cluster.node_paths(settings, 1)

    command = kafka.java_command(
        Path("/usr/bin/java"), settings, kafka.BROKER_MAIN_CLASS, "x", paths=paths, heap="512m"
    )

    assert command[:3] == ["/usr/bin/java", "-Xms512m", "-Xmx512m"]
    assert not any(part in ("-Xms256m", "-Xmx1g") for part in command)
    assert f"-Dlog4j2.configurationFile={paths.log4j_config}" in command
    assert command[-2:] == [kafka.BROKER_MAIN_CLASS, "x"]
    # the single broker's command is unchanged
    single = kafka.java_command(Path("/usr/bin/java"), settings, kafka.BROKER_MAIN_CLASS)
    assert "-Xmx1g" in single and "-Xmx512m" not in single


def _meta(settings: Settings, node_id: int, cluster_id: str) -> None:
    data_dir = kafka_cluster.node_paths(settings, node_id).data_dir
    data_dir.mkdir(parents=True)
    (data_dir / "meta.properties").write_text(
        f"#\n#Mon Dec 07 23:29:22 UTC 2026\nnode.id={node_id}\nversion=1\ncluster.id={cluster_id}\n"
    )


def test_formatted_cluster_id_is_the_one_the_nodes_share(settings: Settings) -> None:
    assert kafka_cluster.formatted_cluster_id(settings) is None
    _meta(settings, 1, "RZhwduQFTKi6YpMq8EcsNQ")
    _meta(settings, 3, "RZhwduQFTKi6YpMq8EcsNQ")

    assert kafka_cluster.formatted_cluster_id(settings) == "RZhwduQFTKi6YpMq8EcsNQ"


def test_nodes_of_different_clusters_are_a_clear_error(settings: Settings) -> None:
    _meta(settings, 1, "RZhwduQFTKi6YpMq8EcsNQ")
    _meta(settings, 2, "AAAAAAAAAAAAAAAAAAAAAA")

    with pytest.raises(StackError, match="formatted for different clusters.*remove"):
        kafka_cluster.formatted_cluster_id(settings)


def _state(leader: int, epoch: int) -> str:
    return json.dumps(
        {
            "clusterId": "",
            "leaderId": leader,
            "leaderEpoch": epoch,
            "votedId": -1,
            "data_version": 0,
        }
    )


def test_quorum_leader_is_the_newest_epochs() -> None:
    assert cluster_status.quorum_leader([_state(1, 1), _state(3, 2), _state(1, 1)]) == 3
    assert cluster_status.quorum_leader([_state(-1, 4), _state(2, 3)]) is None  # election
    assert cluster_status.quorum_leader(["", "{not json", "{}"]) is None
    assert cluster_status.quorum_leader([]) is None


@given(st.text(max_size=200))
def test_quorum_leader_never_raises_on_any_file_text(text: str) -> None:
    leader = cluster_status.quorum_leader([text])
    assert leader is None or leader >= 0


@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z.]{0,20}", fullmatch=True),
        st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=30).map(
            str.strip
        ),
        max_size=10,
    )
)
def test_parse_properties_reads_what_render_properties_writes(props: dict[str, str]) -> None:
    assert kafka_cluster.parse_properties(kafka.render_properties(props)) == props


def test_topic_lines_count_under_replicated_partitions() -> None:
    states = [
        kafka_cluster.PartitionState(1, 2, (2, 3, 1), (2, 3)),
        kafka_cluster.PartitionState(0, 1, (1, 2, 3), (1, 2, 3)),
        kafka_cluster.PartitionState(2, -1, (3, 1, 2), ()),
    ]

    lines = cluster_status.topic_lines("gemini.orderbook.v1", states)

    assert lines == [
        "topic gemini.orderbook.v1: 3 partitions, 2 under-replicated",
        "  partition 0: leader 1, replicas [1, 2, 3], isr [1, 2, 3]",
        "  partition 1: leader 2, replicas [2, 3, 1], isr [2, 3]  UNDER-REPLICATED",
        "  partition 2: leader none, replicas [3, 1, 2], isr []  UNDER-REPLICATED",
    ]


def test_status_of_a_cluster_that_does_not_run(settings: Settings) -> None:
    lines = kafka_cluster.kafka_cluster_status(settings)

    assert lines[:3] == [
        "kafka-1   pid - down 127.0.0.1:19192 (controller 19193) quorum -",
        "kafka-2   pid - down 127.0.0.1:19194 (controller 19195) quorum -",
        "kafka-3   pid - down 127.0.0.1:19196 (controller 19197) quorum -",
    ]
    assert lines[3] == f"kafka cluster {settings.cluster.kafka_bootstrap}: no broker answers"
    assert cluster_status.member_rss_bytes(settings) == dict.fromkeys(
        ["kafka-1", "kafka-2", "kafka-3"]
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_start_with_a_taken_port_names_the_port_and_the_setting(
    settings: Settings, busy_port: int
) -> None:
    taken = settings.model_copy(
        update={
            "cluster": ClusterSettings(
                kafka_ports=[PORTS[0], busy_port, PORTS[2]], kafka_controller_ports=CONTROLLER_PORTS
            )
        }
    )
    progress: list[str] = []

    with pytest.raises(PortInUseError) as raised:
        kafka_cluster.start_kafka_cluster(taken, progress.append, timeout_s=5)

    assert str(busy_port) in str(raised.value)
    assert "kafka-2" in str(raised.value)
    assert "RTC_CLUSTER_KAFKA_PORTS" in str(raised.value)
    assert not list(taken.run_dir.glob("*.pid"))
