"""Debian's ``redis-server`` on 127.0.0.1, for the demo, the benchmarks and the tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import redis

from alarmflow.services._process import ManagedProcess, ServiceError, ensure_port_free

READY_TIMEOUT_S = 20.0


class RedisServer:
    """A ``redis-server`` without persistence, data and log in ``run_dir``."""

    def __init__(self, port: int, run_dir: Path) -> None:
        self.port = port
        self._process = ManagedProcess("redis", Path(run_dir))

    def url(self, db: int = 9) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def _ping(self) -> bool:
        return bool(redis.Redis(port=self.port, socket_connect_timeout=1).ping())

    def start(self) -> None:
        """Start, or reuse the server this run directory already runs."""
        if self._process.pid() is not None and self._ping():
            return
        ensure_port_free(self.port, "redis")
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server is not installed: run scripts/setup")
        self._process.spawn(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._process.run_dir),
                "--daemonize",
                "no",
            ]
        )
        self._process.wait_ready(self._ping, READY_TIMEOUT_S, f"PING on port {self.port}")

    def stop(self) -> None:
        self._process.stop()

    @property
    def log_file(self) -> Path:
        return self._process.log_file
