"""What the running platform tells its user: where everything is, what the simulator replays
and how far the replay has come (``rtc up``'s closing summary and ``rtc status``'s market line)."""

from __future__ import annotations

from rtcrypto.config import Feed, Settings, SimulatorReplay, TradingMode
from rtcrypto.config_cluster import Topology
from rtcrypto.history.replay_window import ReplayWindowError, replay_window
from rtcrypto.redact import redact_url


def summary(settings: Settings) -> str:
    """Where everything is and how to stop it (several lines, passwords redacted)."""
    from rtcrypto.stack import airflow

    paths = airflow.airflow_paths(settings)
    return (
        f"\nThe platform is running ({describe_trading(settings)}).\n"
        f"  topology       {describe_topology(settings)}\n"
        f"  market         {describe_feed(settings)}\n"
        f"  Airflow UI     {settings.airflow_url}  user admin, password in {paths.password_file}\n"
        f"                 (ready about a minute after start; streaming_supervisor runs every "
        "5 minutes)\n"
        f"  Elasticsearch  {redact_url(settings.search_url)}  indices {settings.search_index_prefix}-*\n"
        "  status         rtc status (every service: state, heartbeat, lag, restarts)\n"
        f'  trade review   {settings.airflow_url}/plugin/trade-review  ("Trade review" in the '
        "Airflow UI, live), rtc report --since 1h (files), or Kibana with docker-compose\n"
        "  stop           rtc down (or make down): stops every process it started\n"
        "Spark needs ~20 s to start; the first minute window closes about a minute after the "
        "replay starts."
    )


def describe_topology(settings: Settings) -> str:
    """``single (one member per engine)`` or the cluster's members, e.g. ``cluster: 3 Kafka
    brokers (replication 3), 3 Elasticsearch nodes (1 replica), Spark master + 2 workers, ...``."""
    if settings.topology is not Topology.CLUSTER:
        return "single (one member per engine; --topology cluster for the cluster form)"
    cluster = settings.cluster
    return (
        f"cluster: {cluster.kafka_brokers} Kafka brokers (replication "
        f"{cluster.kafka_replication_factor}, {cluster.kafka_partitions} partitions), "
        f"{cluster.search_nodes} Elasticsearch nodes ({cluster.search_replicas} replica), Spark "
        f"master + {cluster.spark_workers} workers, Airflow on PostgreSQL with "
        f"{cluster.celery_workers} Celery workers; `rtc status` lists every member"
    )


def describe_trading(settings: Settings) -> str:
    """Where the trader's orders go and what market it reads, e.g. ``paper trading against the
    simulator`` or ``sandbox trading on the simulator's sandbox (gemini adapter)``."""
    market = "simulator" if settings.feed is Feed.simulator else "live Gemini feed"
    if settings.trading_mode is TradingMode.paper:
        return f"paper trading against the {market}"
    if settings.trades_on_simulator_sandbox:
        return "sandbox trading on the simulator's sandbox (gemini adapter)"
    venue = redact_url(settings.gemini_rest_base_url)
    return (
        f"{settings.trading_mode.value} trading on {venue} (gemini adapter), {market} market data"
    )


def describe_feed(settings: Settings) -> str:
    """One line: what the simulator replays, on which clock and at what speed."""
    if settings.feed is not Feed.simulator:
        return f"live Gemini market data from {redact_url(settings.market_data_ws_url)}"
    if settings.simulator_replay is SimulatorReplay.capture:
        return (
            f"the recorded capture {settings.simulator_capture.name}, looped, shifted to now, "
            f"at {settings.simulator_speed:g}x"
        )
    try:
        window = replay_window(settings)
    except ReplayWindowError as error:
        return f"history replay not possible: {error}"
    return (
        f"real {window.source} minute bars {window.start:%Y-%m-%d %H:%M} .. "
        f"{window.end:%Y-%m-%d %H:%M} UTC on their own (historical) clock at "
        f"{settings.simulator_history_speed:g}x; prices real, order book modelled "
        "(RTC_SIMULATOR_REPLAY=capture replays the recorded Gemini capture instead)"
    )


def replay_progress(settings: Settings) -> str | None:
    """Where the running history replay is (from ``/_sim/status``); None if it does not answer."""
    if settings.feed is not Feed.simulator:
        return None
    from rtcrypto.exchange.feedclock import http_status_reader, iso_minute, status_url

    try:
        status = http_status_reader(status_url(settings), settings.feed_clock_timeout_s)()
        history = status.get("history") or {}
        now = iso_minute(int(status["simulated_time_ms"]))
    except Exception:  # noqa: BLE001 - not running, or not answering: nothing to add
        return None
    if not history:
        return f"simulator clock {now} ({status.get('mode', 'capture')} replay)"
    halts = (history.get("halts") or {}).get("count", 0)
    return (
        f"simulator clock {now}: {history.get('minutes_replayed', 0):,} of "
        f"{history.get('minutes_total', 0):,} minutes replayed, {halts} halt(s) jumped; "
        f"{status.get('prices', 'prices real')}, book {status.get('book', 'modelled')}"
    )
