"""Run a flow as N local Bytewax processes: the ``-p`` that ``bytewax.run`` lacks.

``python -m alarmflow.launch flows.alert -p 2 -w 1 [-r DIR -s 5 -b 30]`` starts N
``python -m bytewax.run`` processes wired together with ``BYTEWAX_PROCESS_ID`` and
``BYTEWAX_ADDRESSES`` (so each process also knows its metrics port), forwards SIGTERM and
SIGINT to them, and stops them all as soon as one fails. With ``-r``, an empty recovery
directory is initialised with one partition per worker first.

On several hosts, each host runs ``python -m alarmflow.launch flows.alert -i N -a ADDRESSES``
(``-a`` the same ``host:port;host:port;...`` list everywhere, ``-i`` this host's place in it):
one process per host, joined into one cluster. With ``-r`` each host's directory then holds
only its own workers' share of the cluster's recovery partitions.

The processes die with the launcher: each asks the kernel (``PR_SET_PDEATHSIG``) for SIGKILL
when its parent goes, so a launcher killed with SIGKILL never leaves them consuming beside
the next one it starts.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

POLL_S = 0.05
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
MESH_WAIT_S = 30.0
LISTEN = "0A"  # a socket's state in /proc/net/tcp: TCP_LISTEN
LAST_PORT = 65535


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m alarmflow.launch",
        description="Run an alarmflow flow as N local Bytewax processes.",
    )
    parser.add_argument("import_str", help="flow module, e.g. flows.alert")
    parser.add_argument("-p", "--processes", type=int, default=1, help="local processes (1)")
    parser.add_argument("-w", "--workers-per-process", type=int, default=1, help="threads (1)")
    parser.add_argument("-r", "--recovery-directory", type=Path, help="Bytewax recovery dir")
    parser.add_argument("-s", "--snapshot-interval", type=int, default=5, help="whole seconds (5)")
    parser.add_argument("-b", "--backup-interval", type=int, default=30, help="whole seconds (30)")
    parser.add_argument(
        "--base-port", type=int, default=2101, help="first port of the process mesh (2101)"
    )
    parser.add_argument("-i", "--process-id", type=int, help="this host's place in -a")
    parser.add_argument(
        "-a", "--addresses", help='every host\'s "host:port", ";"-separated, the same on each'
    )
    args = parser.parse_args(argv)
    if not module_exists(args.import_str):
        parser.error(f"no module {args.import_str} here")
    if args.processes < 1 or args.workers_per_process < 1:
        parser.error("-p and -w must be at least 1")
    if args.snapshot_interval < 1 or args.backup_interval < 0:
        parser.error("-s must be at least 1 second, -b at least 0")
    if not 1 <= args.base_port <= LAST_PORT - args.processes + 1:
        parser.error(f"--base-port: the ports of -p {args.processes} must be 1 to {LAST_PORT}")
    if (args.process_id is None) != (args.addresses is None):
        parser.error("-i and -a go together")
    malformed = [a for a in (args.addresses or "").split(";") if port_of(a) is None]
    if args.addresses is not None and malformed:
        parser.error(f'-a: expected "host:port;host:port;...", not {malformed[0]!r}')
    if args.addresses is not None and args.processes != 1:
        parser.error("-p starts local processes; with -i/-a each host runs one")
    if args.addresses is not None and not 0 <= args.process_id < len(hosts(args)):
        parser.error(f"-i must be 0 to {len(hosts(args)) - 1}: -a names {len(hosts(args))}")
    return args


def module_exists(name: str) -> bool:
    """Whether the module ``name`` (e.g. ``flows.alert``) can be imported from here."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def port_of(address: str) -> int | None:
    """The port of a ``host:port`` address, or ``None`` if it is not one (port 1 to 65535)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= LAST_PORT:
        return None
    return int(port)


def hosts(args: argparse.Namespace) -> list[str]:
    """The cluster's addresses: ``-a``'s, else one per local process."""
    if args.addresses is not None:
        return args.addresses.split(";")
    return [f"127.0.0.1:{args.base_port + i}" for i in range(args.processes)]


def init_recovery(directory: Path, partitions: int, keep: range | None = None) -> None:
    """Create ``partitions`` recovery partitions in ``directory`` unless it has some; with
    ``keep``, only those (a host's share of a cluster's partitions)."""
    directory.mkdir(parents=True, exist_ok=True)
    if not any(directory.glob("part-*.sqlite3")):
        subprocess.run(
            [sys.executable, "-m", "bytewax.recovery", str(directory), str(partitions)],
            check=True,
        )
        for index in set(range(partitions)) - set(keep or range(partitions)):
            (directory / f"part-{index}.sqlite3").unlink()


def recovery_share(args: argparse.Namespace) -> tuple[int, range | None]:
    """The cluster's recovery partitions (one per worker) and this host's share (``-i``)."""
    workers = args.workers_per_process
    if args.addresses is None:
        return args.processes * workers, None
    first = args.process_id * workers
    return len(hosts(args)) * workers, range(first, first + workers)


def commands(args: argparse.Namespace) -> list[tuple[list[str], dict[str, str]]]:
    """The command line and environment of each process."""
    base = [
        sys.executable,
        "-m",
        "bytewax.run",
        args.import_str,
        "-w",
        str(args.workers_per_process),
    ]
    if args.recovery_directory is not None:
        base += [
            "-r",
            str(args.recovery_directory),
            "-s",
            str(args.snapshot_interval),
            "-b",
            str(args.backup_interval),
        ]
    addresses = ";".join(hosts(args))
    if args.addresses is not None:
        env = dict(os.environ, BYTEWAX_PROCESS_ID=str(args.process_id))
        return [(base, dict(env, BYTEWAX_ADDRESSES=addresses))]
    out = []
    for index in range(args.processes):
        env = dict(os.environ, BYTEWAX_PROCESS_ID=str(index))
        if args.processes > 1:
            env["BYTEWAX_ADDRESSES"] = addresses
        else:
            env.pop("BYTEWAX_PROCESS_ID")
        out.append((base, env))
    return out


def die_with(parent: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child receive SIGKILL when ``parent`` dies (Linux), and
    exit at once if ``parent`` died before it could ask."""

    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def supervise(procs: list[subprocess.Popen], deadline: float | None = None) -> int:
    """Wait for all processes; if one fails, stop the rest and return its code. At
    ``deadline`` (``time.monotonic()``), stop them all (SIGTERM) and return 0."""
    while True:
        codes = [proc.poll() for proc in procs]
        failed = [code for code in codes if code not in (None, 0)]
        expired = deadline is not None and time.monotonic() >= deadline
        if failed or expired:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs:
                proc.wait()
            return failed[0] if failed else 0
        if all(code == 0 for code in codes):
            return 0
        time.sleep(POLL_S)


def listening(port: int) -> bool:
    """Whether a socket of this host listens on TCP ``port``, read from Linux's
    ``/proc/net/tcp`` (True where there is none, so that nothing waits for it) rather than by
    connecting (as ``alarmflow.services`` checks its ports): Bytewax takes every connection to
    its mesh port for a peer's."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return True
    for table in filter(Path.exists, tables):
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def await_mesh_port(proc: subprocess.Popen, port: int, timeout: float = MESH_WAIT_S) -> None:
    """Wait until ``proc`` listens on its mesh ``port``, exits, or ``timeout`` passes. Bytewax's
    next process connects to it as it starts and, refused, tries again only a second later:
    started together, two processes took 1.7-1.9 s to start on an empty topic when the second
    was refused, 0.9 s when it was not (ad hoc)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not listening(port) and time.monotonic() < deadline:
        time.sleep(0.005)


def mesh_addresses(args: argparse.Namespace) -> list[str]:
    """The mesh addresses this host's processes listen on (none for a single process)."""
    if args.addresses is not None:
        return [hosts(args)[args.process_id]]
    return hosts(args) if args.processes > 1 else []


def cannot_listen(address: str) -> str | None:
    """Why a process could not listen on ``address`` (``host:port``), or ``None``: bound as
    Bytewax binds it (with ``SO_REUSEADDR``, so only a socket listening there stands in the
    way) and let go at once."""
    host, _, port = address.rpartition(":")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def start_error(args: argparse.Namespace) -> str | None:
    """Why the processes of ``args`` cannot start (a mesh port taken, a recovery directory that
    cannot be made or initialised), or ``None`` once the recovery directory is ready."""
    for address in mesh_addresses(args):
        refused = cannot_listen(address)
        if refused is not None:
            return f"mesh address {address}: {refused}"
    if args.recovery_directory is not None:
        try:
            init_recovery(args.recovery_directory, *recovery_share(args))
        except OSError as exc:
            return f"recovery directory {args.recovery_directory}: {exc.strerror or exc}"
    return None


def run(args: argparse.Namespace, max_uptime: float | None = None) -> int:
    """Start the processes of ``args``, each local one once the one before listens on its mesh
    port, and supervise them, for ``max_uptime`` seconds at most. If one exits before the next
    starts, start no more and return its exit code. Exit code 2, after one line, if they cannot
    start (:func:`start_error`)."""
    deadline = None if max_uptime is None else time.monotonic() + max_uptime
    refused = start_error(args)
    if refused is not None:
        print(f"alarmflow.launch: cannot start: {refused}", file=sys.stderr)
        return 2
    preexec = die_with(os.getpid())
    procs: list[subprocess.Popen] = []
    signalled: list[int] = []

    def forward(signum: int, _frame) -> None:
        signalled.append(signum)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for index, (cmd, env) in enumerate(commands(args)):
        if procs:
            await_mesh_port(procs[-1], args.base_port + index - 1)
        if signalled or (procs and procs[-1].poll() is not None):
            break
        procs.append(subprocess.Popen(cmd, env=env, preexec_fn=preexec))
    return supervise(procs, deadline)


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
