"""Making a Redis of a test's own refuse writes as a server does when it cannot take them, and
take them again."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import redis

REFUSALS = {
    "OOM": "maxmemory",
    "READONLY": "read only replica",
    "NOREPLICAS": "NOREPLICAS",
    "MISCONF": "unable to persist to disk",
}
"""Each way a server refuses writes, and what its error says."""


def refuse_writes(client: redis.Redis, how: str, free_port: Callable[[], int]) -> None:
    """Out of memory (``maxmemory`` 1 byte), a replica (of a master that is not there), short
    of ``min-replicas-to-write``, or unable to persist (``stop-writes-on-bgsave-error``, on by
    default, after a snapshot that failed: the file it would replace is a directory)."""
    if how == "OOM":
        client.config_set("maxmemory", 1)
    elif how == "READONLY":
        client.replicaof("127.0.0.1", free_port())
    elif how == "NOREPLICAS":
        client.config_set("min-replicas-to-write", 1)
    else:
        _snapshot_file(client).mkdir()
        client.config_set("save", "3600 1")
        client.bgsave()
        deadline = time.monotonic() + 30
        while client.info("persistence")["rdb_last_bgsave_status"] != "err":
            assert time.monotonic() < deadline, "the snapshot did not fail within 30 s"


def take_writes(client: redis.Redis) -> None:
    """Undo :func:`refuse_writes`, whichever way it refused (a server without snapshot points
    does not refuse writes for a snapshot that failed)."""
    client.config_set("maxmemory", 0)
    client.replicaof("no", "one")
    client.config_set("min-replicas-to-write", 0)
    client.config_set("save", "")
    if _snapshot_file(client).is_dir():
        _snapshot_file(client).rmdir()


def _snapshot_file(client: redis.Redis) -> Path:
    """Where the server (on this machine) writes its snapshots."""
    config = client.config_get("dir") | client.config_get("dbfilename")
    return Path(config["dir"]) / config["dbfilename"]
