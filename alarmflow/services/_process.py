"""Running a local server process: free ports, detached start, pid files, ready-waits, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class ServiceError(RuntimeError):
    """A service could not be started or did not become ready; the message says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def ensure_port_free(port: int, name: str) -> None:
    """Refuse to start ``name`` on a port that something else already answers on."""
    if port_open(port):
        raise ServiceError(f"cannot start {name}: port {port} on 127.0.0.1 is already in use")


def tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class ManagedProcess:
    """One server process, detached, with its pid file and log in ``run_dir``."""

    def __init__(self, name: str, run_dir: Path) -> None:
        self.name = name
        self.run_dir = Path(run_dir)
        self.pid_file = self.run_dir / f"{name}.pid"
        self.log_file = self.run_dir / f"{name}.log"

    def pid(self) -> int | None:
        """The recorded pid if that process is still alive."""
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def spawn(self, command: list[str], cwd: Path | None = None) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd or self.run_dir,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))

    def wait_ready(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready`` until it is true; fail with the log's tail on timeout or exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise ServiceError(
                    f"{self.name} exited while starting ({what}); its log:\n{tail(self.log_file)}"
                )
            try:
                if ready():
                    return
            except Exception:  # any client error means "not ready yet"
                pass
            time.sleep(0.2)
        raise ServiceError(
            f"{self.name} not ready within {timeout:.0f}s ({what}); its log:\n{tail(self.log_file)}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; forget the pid file."""
        pid = self.pid()
        if pid is not None:
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.pid() is not None and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.pid() is not None:
                os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
