"""Making a Redis of a test's own refuse writes as a server does when it cannot take them, and
take them again."""

from __future__ import annotations

from collections.abc import Callable

import redis

REFUSALS = {
    "OOM": "maxmemory",
    "READONLY": "read only replica",
    "NOREPLICAS": "NOREPLICAS",
}
"""Each way a server refuses writes, and what its error says."""


def refuse_writes(client: redis.Redis, how: str, free_port: Callable[[], int]) -> None:
    """Out of memory (``maxmemory`` 1 byte), a replica (of a master that is not there) or short
    of ``min-replicas-to-write``."""
    if how == "OOM":
        client.config_set("maxmemory", 1)
    elif how == "READONLY":
        client.replicaof("127.0.0.1", free_port())
    else:
        client.config_set("min-replicas-to-write", 1)


def take_writes(client: redis.Redis) -> None:
    """Undo :func:`refuse_writes`, whichever way it refused."""
    client.config_set("maxmemory", 0)
    client.replicaof("no", "one")
    client.config_set("min-replicas-to-write", 0)
