"""Debian's ``redis-server`` on 127.0.0.1, without persistence, for the demo, benches and tests."""

from __future__ import annotations

from pathlib import Path

import redis

from alarmflow.services._process import (
    ManagedProcess,
    ensure_port_free,
    require_binary,
)

READY_TIMEOUT_S = 20.0


class RedisServer:
    """A ``redis-server`` on ``port`` with its log (``redis.log``) and pid file in ``run_dir``."""

    def __init__(self, port: int, run_dir: Path) -> None:
        self.port = port
        self.run_dir = Path(run_dir)
        self._process = ManagedProcess("redis", self.run_dir, "redis-server")

    @property
    def log_file(self) -> Path:
        return self._process.log_file

    def url(self, db: int = 9) -> str:
        """The server's URL for database ``db`` (9 is bkmonitor's queue database)."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def running(self) -> bool:
        """Whether this run directory's server process is alive."""
        return self._process.running()

    def answers(self) -> bool:
        """Whether a server on ``port`` answers PING."""
        with redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=1) as client:
            return bool(client.ping())

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Start, or reuse the server this run directory already runs."""
        if not self.running():
            ensure_port_free(self.port, "redis")
            self._process.spawn(self._command())
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait until the server answers PING; if it does not, stop it and raise."""
        self._process.wait_ready(self.answers, timeout, f"PING on port {self.port}")

    def stop(self) -> None:
        self._process.stop()

    def _command(self) -> list[str]:
        options = {
            "bind": "127.0.0.1",
            "port": str(self.port),
            "save": "",
            "appendonly": "no",
            "dir": str(self.run_dir),
            "daemonize": "no",
        }
        binary = require_binary("redis-server", "run scripts/setup, which installs it with apt")
        return [binary, *(arg for name, value in options.items() for arg in (f"--{name}", value))]
