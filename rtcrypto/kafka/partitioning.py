"""Which partition a record goes to: by symbol, with Kafka's default partitioner hash.

Every key of the data contracts starts with the symbol (``BTCUSD:<event id>:<index>``,
``BTCUSD:<window start>``): records are partitioned by that prefix, so one symbol's records stay
in one partition, in order, on topics with several partitions (the cluster topology), while
each key stays unique. The hash is Kafka's murmur2 (as ``org.apache.kafka.common.utils.Utils``
computes it), so a Java client keyed by the bare symbol picks the same partition.
"""

from __future__ import annotations

_MASK = 0xFFFFFFFF
_SEED = 0x9747B28C
_M = 0x5BD1E995


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 of ``data``, as a signed Java int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for offset in range(0, whole, 4):
        k = int.from_bytes(data[offset : offset + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[whole:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_key(key: bytes) -> bytes:
    """What a record is partitioned by: the symbol before the key's first ``:`` (the whole key
    when it has none, e.g. a heartbeat's service name)."""
    return key.split(b":", 1)[0]


def symbol_partition(key: bytes, partitions: int) -> int:
    """The partition of a record with ``key`` among ``partitions``: Kafka's default partitioner
    (positive murmur2 modulo the count) applied to :func:`partition_key`."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, got {partitions}")
    return (murmur2(partition_key(key)) & 0x7FFFFFFF) % partitions
