"""Running a local server process: free ports, detached start, pid files, ready-waits, stop."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

PROC = Path("/proc")


class ServiceError(RuntimeError):
    """A service could not be started or did not become ready; the message says why."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def consecutive_free_ports() -> int:
    """A port p with p and p + 1 free: the mesh (or metrics) ports of a two-process run. Taken
    below the kernel's ephemeral range, so that no outgoing connection (the Kafka clients open
    many) takes one of them before the run binds it."""
    chance = random.SystemRandom()
    while True:
        base = chance.randrange(20_000, 32_000)
        if _bindable(base) and _bindable(base + 1):
            return base


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def ensure_port_free(port: int, name: str) -> None:
    """Refuse to start ``name`` on a port that something else already answers on."""
    if port_open(port):
        raise ServiceError(f"cannot start {name}: port {port} on 127.0.0.1 is already in use")


def require_binary(name: str, hint: str = "run scripts/setup") -> str:
    """The path of executable ``name``, or a ServiceError saying how to get it."""
    path = shutil.which(name)
    if path is None:
        raise ServiceError(f"{name} is not installed (not on PATH): {hint}")
    return path


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file, or a note that it does not exist."""
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _alive(pid: int, marker: str) -> bool:
    """Whether ``pid`` is a live process whose command line contains ``marker``.

    A zombie's command line is empty. So is that of a process in the middle of its exec, which
    is why a process started by this one is checked with ``poll`` instead.
    """
    if not PROC.is_dir():
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    try:
        cmdline = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    return marker.encode() in cmdline


class ManagedProcess:
    """One detached server process with its pid file and logs in ``run_dir``.

    ``out_file`` (default ``<name>.log``) takes the process's stdout and stderr; ``log_file`` is
    the service's own log, the same file unless the service writes one itself. ``marker`` is a
    string of its command line, so a stale pid file never names some unrelated process.
    """

    def __init__(
        self,
        name: str,
        run_dir: Path,
        marker: str,
        out_file: Path | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.name = name
        self.run_dir = Path(run_dir)
        self.marker = marker
        self.pid_file = self.run_dir / f"{name}.pid"
        self.out_file = out_file or self.run_dir / f"{name}.log"
        self.log_file = log_file or self.out_file
        self._child: subprocess.Popen[bytes] | None = None

    def pid(self) -> int | None:
        """The pid of the process if it is still running (started here, or in the pid file)."""
        if self._child is not None:
            return self._child.pid if self._child.poll() is None else None
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid, self.marker) else None

    def running(self) -> bool:
        return self.pid() is not None

    def spawn(self, command: list[str]) -> None:
        """Start ``command`` in its own session, in ``run_dir``, output to ``out_file``."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.out_file.open("ab") as out:
            self._child = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.run_dir,
                start_new_session=True,
            )
        self.pid_file.write_text(str(self._child.pid))

    def logs(self) -> str:
        """The tail of the service's log, and of its console output when that is separate."""
        text = f"{self.log_file}:\n{tail(self.log_file)}"
        separate = self.out_file != self.log_file
        if separate and self.out_file.exists() and self.out_file.stat().st_size > 0:
            text += f"\n{self.out_file}:\n{tail(self.out_file)}"
        return text

    def wait_ready(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready`` until it is true; stop the process and raise on timeout or exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                self.stop()
                raise ServiceError(f"{self.name} exited while starting ({what}); {self.logs()}")
            with contextlib.suppress(Exception):  # any client error means "not ready yet"
                if ready():
                    return
            time.sleep(0.1)
        self.stop()
        raise ServiceError(f"{self.name} not ready within {timeout:.0f}s ({what}); {self.logs()}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout``; remove the pid file."""
        pid = self.pid()
        if pid is not None:
            _signal_group(pid, signal.SIGTERM)
            if not self._gone_within(timeout):
                _signal_group(pid, signal.SIGKILL)
                self._gone_within(5.0)
        self.pid_file.unlink(missing_ok=True)
        self._child = None

    def _gone_within(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)
