"""Debian's ``redis-server`` on 127.0.0.1, without persistence, for the demo, benches and tests.

With ``tls`` it listens with TLS only (Debian's build links OpenSSL), with the server
certificate made by :func:`alarmflow.services.tls.make_certificates`, and with
``client_certificates`` it requires clients to show one signed by the same CA. With ``users`` the
default user is switched off and only those ACL users (name: password, every command and key) may
log in.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import redis

from alarmflow.services._process import (
    ManagedProcess,
    ensure_port_free,
    require_binary,
)
from alarmflow.services.tls import Certificates

READY_TIMEOUT_S = 20.0


class RedisServer:
    """A ``redis-server`` on ``port`` with its log (``redis.log``) and pid file in ``run_dir``."""

    def __init__(
        self,
        port: int,
        run_dir: Path,
        *,
        tls: Certificates | None = None,
        client_certificates: bool = False,
        users: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port
        self.run_dir = Path(run_dir)
        self.tls = tls
        self.client_certificates = client_certificates
        self.users = dict(users or {})
        self._process = ManagedProcess("redis", self.run_dir, "redis-server")

    @property
    def log_file(self) -> Path:
        return self._process.log_file

    def url(self, db: int = 9, user: str | None = None) -> str:
        """The server's URL for database ``db`` (9 is bkmonitor's queue database), as ``user``
        (default: the first ACL user, if there are any)."""
        scheme = "redis" if self.tls is None else "rediss"
        user = user if user is not None else next(iter(self.users), None)
        login = "" if user is None else f"{user}:{self.users[user]}@"
        return f"{scheme}://{login}127.0.0.1:{self.port}/{db}"

    def running(self) -> bool:
        """Whether this run directory's server process is alive."""
        return self._process.running()

    def answers(self) -> bool:
        """Whether a server on ``port`` answers PING."""
        tls = {} if self.tls is None else {"ssl_ca_certs": str(self.tls.ca)}
        if self.tls is not None and self.client_certificates:
            tls["ssl_certfile"] = str(self.tls.client_certificate)
            tls["ssl_keyfile"] = str(self.tls.client_key)
        timeouts = {"socket_connect_timeout": 1, "socket_timeout": 1}
        with redis.Redis.from_url(self.url(0), **tls, **timeouts) as client:
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
        options: list[tuple[str, str]] = [
            ("bind", "127.0.0.1"),
            ("port", str(self.port)),
            ("save", ""),
            ("appendonly", "no"),
            ("dir", str(self.run_dir)),
            ("daemonize", "no"),
        ]
        if self.tls is not None:
            options[1] = ("port", "0")
            options += [
                ("tls-port", str(self.port)),
                ("tls-cert-file", str(self.tls.certificate)),
                ("tls-key-file", str(self.tls.key)),
                ("tls-ca-cert-file", str(self.tls.ca)),
                ("tls-auth-clients", "yes" if self.client_certificates else "no"),
            ]
        binary = require_binary("redis-server", "run scripts/setup, which installs it with apt")
        command = [binary, *(arg for name, value in options for arg in (f"--{name}", value))]
        if self.users:
            command += ["--user", "default", "off"]
            for name, password in self.users.items():
                command += ["--user", name, "on", f">{password}", "~*", "&*", "+@all"]
        return command
