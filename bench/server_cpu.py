"""The CPU time the broker and Redis spend for a runner: read before and after its run.

On this machine the runners share two cores with the broker and Redis, so what a runner asks of
them slows it as much as its own work does. Redis reports its own CPU time (``INFO cpu``, all
its threads); the broker's is its process's, found by the port it listens on (Linux ``/proc``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import redis

PROC = Path("/proc")
LISTEN = "0A"  # a socket's state in /proc/net/tcp


def listening_pid(port: int, proc: Path = PROC) -> int | None:
    """The pid of the process listening on TCP ``port`` (IPv4 or IPv6), if this user may see
    its file descriptors."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        path = proc / "net" / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    for fd_dir in proc.glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) in inodes for fd in fd_dir.iterdir()):
                return int(fd_dir.parent.name)
        except OSError:  # a process that ended, or another user's
            continue
    return None


def process_cpu_s(pid: int, proc: Path = PROC) -> float:
    """User plus system CPU seconds of process ``pid`` and its threads so far."""
    fields = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu_s(client: redis.Redis) -> float:
    """Redis's user plus system CPU seconds so far, all its threads (``INFO cpu``)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@dataclass(frozen=True)
class ServerCpu:
    """Reads the broker's and Redis's CPU seconds so far (the broker's 0 if it is not found)."""

    broker_pid: int | None
    redis_client: redis.Redis

    @classmethod
    def of(cls, bootstrap: str, redis_url: str) -> ServerCpu:
        port = int(bootstrap.split(",")[0].rsplit(":", 1)[1])
        return cls(listening_pid(port), redis.Redis.from_url(redis_url))

    def read(self) -> tuple[float, float]:
        """``(broker, redis)`` CPU seconds so far."""
        broker = 0.0 if self.broker_pid is None else process_cpu_s(self.broker_pid)
        return broker, redis_cpu_s(self.redis_client)
