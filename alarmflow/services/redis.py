"""Debian's ``redis-server`` on 127.0.0.1 for the demo, benches and tests, without persistence
unless asked (``persistent``: an outage test restarts it), optionally a replica of another
(``replica_of``), and Debian's ``redis-sentinel`` watching a master (:class:`RedisSentinel`).

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
    """A ``redis-server`` on ``port`` with its log (``redis.log``) and pid file in ``run_dir``;
    ``options`` are further server settings (name: value, as in ``redis.conf``)."""

    def __init__(
        self,
        port: int,
        run_dir: Path,
        *,
        tls: Certificates | None = None,
        client_certificates: bool = False,
        users: Mapping[str, str] | None = None,
        persistent: bool = False,
        replica_of: int | None = None,
        options: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port
        self.run_dir = Path(run_dir)
        self.tls = tls
        self.client_certificates = client_certificates
        self.users = dict(users or {})
        self.persistent = persistent
        self.replica_of = replica_of
        self.options = dict(options or {})
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
            ("appendonly", "yes" if self.persistent else "no"),
            ("appendfsync", "always"),
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
        options += self.options.items()
        binary = require_binary("redis-server", "run scripts/setup, which installs it with apt")
        command = [binary, *(arg for name, value in options for arg in (f"--{name}", value))]
        if self.replica_of is not None:
            command += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        if self.users:
            command += ["--user", "default", "off"]
            for name, password in self.users.items():
                command += ["--user", name, "on", f">{password}", "~*", "&*", "+@all"]
        return command


class RedisSentinel:
    """Debian's ``redis-sentinel`` on ``port`` watching the master on ``master_port`` under the
    name ``master``, alone (quorum 1), quick to fail over (``down_after_ms``); its config file
    (rewritten by the sentinel), log and pid file live in ``run_dir``. With ``users`` (name:
    password and ACL rules) its default user is switched off and only those may log in; its own
    client logs in as the first."""

    def __init__(
        self,
        port: int,
        run_dir: Path,
        master_port: int,
        master: str,
        down_after_ms: int = 1000,
        users: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.port = port
        self.run_dir = Path(run_dir)
        self.master_port = master_port
        self.master = master
        self.down_after_ms = down_after_ms
        self.users = dict(users or {})
        self._process = ManagedProcess("sentinel", self.run_dir, "redis-sentinel")

    def url(self, db: int = 9) -> str:
        """The ``redis+sentinel://`` URL of database ``db`` of the master it watches."""
        return f"redis+sentinel://127.0.0.1:{self.port}/{db}?master={self.master}"

    def client(self) -> redis.Redis:
        login = {}
        if self.users:
            name, (password, _rules) = next(iter(self.users.items()))
            login = {"username": name, "password": password}
        return redis.Redis(
            port=self.port,
            socket_connect_timeout=1,
            socket_timeout=5,
            decode_responses=True,
            **login,
        )

    def master_address(self) -> tuple[str, int] | None:
        """The master's (host, port) as this sentinel knows it."""
        with self.client() as client:
            found = client.sentinel_get_master_addr_by_name(self.master)
        return (found[0], int(found[1])) if found else None

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = self.run_dir / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.run_dir}\n"
            f"sentinel monitor {self.master} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}\n"
            f"sentinel failover-timeout {self.master} 10000\n"
            + "".join(
                f"user {name} on >{password} {rules}\n"
                for name, (password, rules) in self.users.items()
            )
            + ("user default off\n" if self.users else "")
        )
        ensure_port_free(self.port, "redis-sentinel")
        binary = require_binary("redis-sentinel", "run scripts/setup, which installs it with apt")
        self._process.spawn([binary, str(config)])
        self._process.wait_ready(
            lambda: self.master_address() is not None, timeout, f"master on port {self.port}"
        )

    def failover(self) -> None:
        """Promote a replica now (``SENTINEL FAILOVER``), as when the master fails."""
        with self.client() as client:
            client.execute_command("SENTINEL FAILOVER", self.master)

    def stop(self) -> None:
        self._process.stop()
