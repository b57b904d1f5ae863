"""Checks of settings that a pydantic ``Field`` constraint cannot express, and the start-up message.

Pure functions used by the validators of :class:`rtcrypto.config.Settings`. A bad value is
refused at start-up; :func:`describe` turns pydantic's ``ValidationError`` into one line per bad
setting that names the environment variable (``RTC_TRADE_PCT``), the value and the rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

SYMBOL_RE = re.compile(r"^[A-Za-z0-9]{3,20}$")
HOST_RE = re.compile(r"^[A-Za-z0-9.-]{1,253}$|^\[[0-9A-Fa-f:.]+\]$")
# the env prefix of each settings model, by pydantic's title of the model
ENV_PREFIXES = {"Settings": "RTC_", "Topics": "RTC_TOPIC_", "ClusterSettings": "RTC_CLUSTER_"}
JVM_MEMORY_PATTERN = r"^[1-9][0-9]*[kKmMgG]$"  # -Xmx style: 512m, 2g


class SettingsError(ValueError):
    """Settings refused at start-up; the message names each ``RTC_*`` variable and its rule."""


def symbols(value: list[str]) -> list[str]:
    """Exchange symbols: at least one, each 3 to 20 letters or digits (``BTCUSD``)."""
    if not value:
        raise ValueError("at least one symbol is needed, e.g. BTCUSD")
    for symbol in value:
        if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol):
            raise ValueError(f"symbol {symbol!r} must be 3 to 20 letters or digits, e.g. BTCUSD")
    return value


def port(text: str, what: str) -> int:
    """A TCP port 1..65535 from its text; ``what`` names it in the error."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{what}: port {text!r} must be a number in 1..65535")
    return int(text)


def bootstrap(value: str) -> str:
    """Kafka bootstrap servers: ``host:port[,host:port...]`` with ports in 1..65535."""
    servers = [server.strip() for server in value.split(",")]
    if not value.strip() or not all(servers):
        raise ValueError("must be host:port[,host:port...], e.g. 127.0.0.1:9092")
    for server in servers:
        host, separator, number = server.rpartition(":")
        if not separator or not HOST_RE.match(host):
            raise ValueError(f"{server!r} must be host:port, e.g. 127.0.0.1:9092")
        port(number, server)
    return value


def url(value: str, schemes: Iterable[str]) -> str:
    """A URL with one of ``schemes``, a host and (if given) a port in 1..65535."""
    allowed = tuple(schemes)
    parts = urlsplit(value)
    if parts.scheme not in allowed or not parts.hostname:
        raise ValueError(
            f"must be a {'/'.join(allowed)}:// URL with a host, e.g. {allowed[0]}://host"
        )
    try:
        parts.port  # noqa: B018 (raises on a port outside 0..65535 or not a number)
    except ValueError:
        raise ValueError("the port must be a number in 1..65535") from None
    if parts.port == 0:
        raise ValueError("the port must be a number in 1..65535")
    return value


def ordered(
    low_name: str,
    low: float | Decimal,
    high_name: str,
    high: float | Decimal,
    *,
    strict: bool = False,
) -> None:
    """Raise if ``low`` is above ``high`` (``strict``: also if equal), naming both variables."""
    if low > high or (strict and low == high):
        relation = "below" if strict else "at most"
        raise ValueError(f"{low_name}={low} must be {relation} {high_name}={high}")


WATERMARK_PATTERN = r"^[0-9]+(\.[0-9]+)?(b|kb|mb|gb|tb|%)$"  # 2gb (free) or 85% (used)
_BYTE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}


def watermarks(low: str, high: str, flood_stage: str) -> None:
    """Elasticsearch's rule for disk watermarks: all percentages used, rising, or all byte sizes
    of free space, falling (``RTC_SEARCH_DISK_WATERMARK_LOW/HIGH/FLOOD_STAGE``)."""
    names = "RTC_SEARCH_DISK_WATERMARK_LOW, _HIGH and _FLOOD_STAGE"
    values = (low, high, flood_stage)
    if all(value.endswith("%") for value in values):
        used = [float(value[:-1]) for value in values]
        if not used[0] <= used[1] <= used[2] <= 100:
            raise ValueError(f"{names} as percentages used must rise up to 100%: {values}")
        return
    if any(value.endswith("%") for value in values):
        raise ValueError(f"{names} must be all percentages or all byte sizes: {values}")
    free = []
    for value in values:
        match = re.match(r"^([0-9.]+)([a-z]+)$", value)
        if match is None or match[2] not in _BYTE_UNITS:
            raise ValueError(f"{names}: {value!r} is not a size like 2gb")
        free.append(float(match[1]) * _BYTE_UNITS[match[2]])
    if not free[0] >= free[1] >= free[2]:
        raise ValueError(f"{names} as free space must fall (low >= high >= flood stage): {values}")


def env_name(title: str, location: tuple[int | str, ...]) -> str:
    """The environment variable of a setting: ``("trade_pct",)`` -> ``RTC_TRADE_PCT``."""
    prefix = ENV_PREFIXES.get(title, "RTC_")
    fields = [str(part) for part in location if isinstance(part, str)]
    if not fields:
        return "RTC_* settings"
    if fields[0] == "topics":  # an explicit Topics inside Settings
        prefix, fields = ENV_PREFIXES["Topics"], fields[1:]
    elif fields[0] == "cluster":  # an explicit ClusterSettings inside Settings
        prefix, fields = ENV_PREFIXES["ClusterSettings"], fields[1:]
    return prefix + fields[0].upper() if fields else "RTC_* settings"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe(error: ValidationError) -> str:
    """One line per bad setting: ``RTC_TRADE_PCT='5': Input should be less than or equal to 1``."""
    lines = []
    for item in error.errors():
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        location = tuple(item.get("loc", ()))
        name = env_name(error.title, location)
        if name == "RTC_* settings":
            lines.append(f"{name}: {message}")  # a cross-field rule names its variables itself
        else:
            lines.append(f"{name}={_shown(item.get('input'))}: {message}")
    return "invalid settings (fix the environment variables):\n  " + "\n  ".join(lines)


# Settings that were removed: the one value that still describes the platform is accepted (it
# changes nothing), any other value is refused, so nobody believes it still takes effect.
RETIRED_SETTINGS = {
    "RTC_KAFKA_CLIENT": (
        "confluent",
        "was removed (issue 11): every Kafka client is confluent-kafka (librdkafka); "
        "unset RTC_KAFKA_CLIENT",
    ),
}


def retired(environ: Mapping[str, str]) -> None:
    """Raise if ``environ`` sets a retired variable (:data:`RETIRED_SETTINGS`) to a value that
    no longer takes effect, naming the variable and what to do."""
    for name, (still_true, message) in RETIRED_SETTINGS.items():
        value = environ.get(name)
        if value is not None and value.strip().lower() != still_true:
            raise ValueError(f"{name}={value!r} {message}")


def sasl_credentials(protocol: str, username: str | None, has_password: bool) -> None:
    """A SASL protocol needs a user name and a password (PLAIN and SCRAM both send them)."""
    if protocol.startswith("SASL") and (not username or not has_password):
        raise ValueError(
            f"RTC_KAFKA_SECURITY_PROTOCOL={protocol} needs RTC_KAFKA_SASL_USERNAME and "
            "RTC_KAFKA_SASL_PASSWORD"
        )


def is_local_port(url: str | None, host: str, port: int) -> bool:
    """Whether ``url`` (http) points at this machine's ``port`` (``host``, 127.0.0.1 or
    localhost): how the settings tell that the Gemini REST URL is the local simulator."""
    if not url:
        return False
    parts = urlsplit(url)
    return parts.hostname in {"127.0.0.1", "localhost", host} and (parts.port or 80) == port
