"""The launcher: an uptime deadline stops every process and counts as success; its processes die
with it, even when it is killed with SIGKILL; a process starts once the one before it listens
on its mesh port; a host of a cluster of hosts runs its one process with its share of the
recovery partitions."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from alarmflow.kafka_tools import produce
from alarmflow.launch import (
    commands,
    init_recovery,
    listening,
    parse_args,
    recovery_share,
    run,
    supervise,
)
from alarmflow.samples import sample_messages
from alarmflow.services import consecutive_free_ports
from tests.flows.flowrun import REPO, bytewax_command, launcher_command, start, wait_until

NOW = int(time.time())

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_deadline_terminates_every_process_and_returns_0():
    procs = [subprocess.Popen(SLEEPER), subprocess.Popen(SLEEPER)]
    started = time.monotonic()

    assert supervise(procs, deadline=started + 0.5) == 0

    assert time.monotonic() - started < 10
    assert [proc.returncode for proc in procs] == [-signal.SIGTERM, -signal.SIGTERM]


def test_a_failure_before_the_deadline_is_returned():
    procs = [
        subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]),
        subprocess.Popen(SLEEPER),
    ]

    assert supervise(procs, deadline=time.monotonic() + 30) == 3
    assert procs[1].returncode == -signal.SIGTERM


def test_a_listening_port_is_told_from_a_bound_or_free_one():
    with socket.socket() as server, socket.socket() as bound:
        server.bind(("127.0.0.1", 0))
        bound.bind(("127.0.0.1", 0))
        server.listen(1)
        assert listening(server.getsockname()[1])
        assert not listening(bound.getsockname()[1])


@pytest.mark.integration
def test_processes_start_in_turn_so_that_no_peer_is_refused(flow_env, tmp_path):
    """Started together, the second process could connect before the first listened, and
    Bytewax tries again only a second later."""
    produce(flow_env.bootstrap, flow_env.topics["ALERT"], list(sample_messages(100, NOW)))
    done = subprocess.run(
        launcher_command("flows.alert", "-p", "2", "--base-port", str(consecutive_free_ports())),
        env=flow_env.environ(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert "error connecting" not in done.stderr
    assert redis_keys(flow_env)


def test_a_host_of_a_cluster_runs_one_process_with_its_id_and_every_address(tmp_path):
    hosts = "10.0.0.1:2101;10.0.0.2:2101;10.0.0.3:2101"
    args = parse_args(["flows.alert", "-w", "2", "-r", str(tmp_path), "-i", "1", "-a", hosts])
    [(command, env)] = commands(args)
    assert command[-2:] == ["-b", "30"]
    assert (env["BYTEWAX_PROCESS_ID"], env["BYTEWAX_ADDRESSES"]) == ("1", hosts)
    assert recovery_share(args) == (6, range(2, 4))
    init_recovery(tmp_path, *recovery_share(args))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-2.sqlite3", "part-3.sqlite3"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-i", "0"], "-i and -a go together"),
        (["-a", "h:1;h:2"], "-i and -a go together"),
        (["-i", "2", "-a", "h:1;h:2"], "-i must be 0 to 1"),
        (["-p", "2", "-i", "0", "-a", "h:1;h:2"], "with -i/-a each host runs one"),
    ],
)
def test_host_options_that_cannot_run_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(["flows.alert", *argv])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["flows.nope"], "no module flows.nope here"),
        (["nope.flows"], "no module nope.flows here"),
        (["flows.alert", "--base-port", "70000"], "the ports of -p 1 must be 1 to 65535"),
        (["flows.alert", "--base-port", "0"], "the ports of -p 1 must be 1 to 65535"),
        (["flows.alert", "-p", "3", "--base-port", "65534"], "the ports of -p 3 must be 1 to"),
        (["flows.alert", "-i", "0", "-a", "garbage"], '-a: expected "host:port;host:port;'),
        (["flows.alert", "-i", "0", "-a", "h:1;h:70000"], "not 'h:70000'"),
        (["flows.alert", "-i", "0", "-a", "h:1;:2"], "not ':2'"),
        (["flows.alert", "-s", "0"], "-s must be at least 1 second, -b at least 0"),
        (["flows.alert", "-b", "-1"], "-s must be at least 1 second, -b at least 0"),
    ],
)
def test_a_module_or_ports_that_cannot_run_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_recovery_directory_that_cannot_be_made_stops_the_start_in_one_line(tmp_path, capsys):
    a_file = tmp_path / "recovery"
    a_file.write_text("")

    assert run(parse_args(["flows.alert", "-r", str(a_file)])) == 2

    assert capsys.readouterr().err.splitlines() == [
        f"alarmflow.launch: cannot start: recovery directory {a_file}: File exists"
    ]


def test_a_mesh_port_in_use_stops_the_start_before_any_process_in_one_line(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        args = parse_args(["flows.alert", "-p", "2", "--base-port", str(port - 1)])

        assert run(args, max_uptime=1) == 2

    assert capsys.readouterr().err.splitlines() == [
        f"alarmflow.launch: cannot start: mesh address 127.0.0.1:{port}: Address already in use"
    ]


def test_a_process_that_exits_before_the_next_starts_ends_the_launch_with_its_code():
    """A bad setting is reported once, by the first process: no process starts after one
    exited."""
    done = subprocess.run(
        launcher_command("flows.alert", "-p", "3", "--base-port", str(consecutive_free_ports())),
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "ALARMFLOW_START": "x"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("alarmflow: config error: ALARMFLOW_START='x'")


def children(pid: int) -> list[int]:
    """The pids of the live processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.integration
def test_the_processes_die_with_a_launcher_killed_by_sigkill(flow_env, free_port, tmp_path):
    produce(flow_env.bootstrap, flow_env.topics["ALERT"], list(sample_messages(100, NOW)))
    env = flow_env.environ(ALARMFLOW_TAIL="1")
    launcher = start(
        launcher_command("flows.alert", "-p", "2", "--base-port", str(consecutive_free_ports())),
        env,
        tmp_path / "launch.log",
    )
    wait_until(lambda: len(children(launcher.pid)) == 2, "two processes", 60)
    flows = children(launcher.pid)
    wait_until(lambda: redis_keys(flow_env), "the processes to write", 60)

    launcher.kill()
    launcher.wait()

    wait_until(lambda: not any(alive(pid) for pid in flows), "the processes to die", 10)


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_flow_stopped_by_a_signal_does_not_log_the_end_of_input(
    flow_env, free_port, tmp_path, signum
):
    produce(flow_env.bootstrap, flow_env.topics["ALERT"], list(sample_messages(100, NOW)))
    env = flow_env.environ(ALARMFLOW_TAIL="1")
    log = tmp_path / "launch.log"
    launcher = start(
        launcher_command("flows.alert", "-p", "2", "--base-port", str(consecutive_free_ports())),
        env,
        log,
    )
    wait_until(lambda: redis_keys(flow_env), "the processes to write", 60)

    launcher.send_signal(signum)

    assert launcher.wait(30) != 0
    assert "end of input" not in log.read_text()


def redis_keys(env) -> bool:
    client = redis.Redis.from_url(env.redis_url)
    return bool(client.keys(f"{env.prefix}.*"))


@pytest.mark.integration
def test_a_flow_that_cannot_start_its_mesh_does_not_log_the_end_of_input(flow_env, tmp_path):
    """A process finds its mesh port taken (after the launcher's check, or started without the
    launcher) before any partition is opened: it did not read its input to the end, though
    Bytewax may close its sinks."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        addresses = f"127.0.0.1:{port};127.0.0.1:{consecutive_free_ports()}"
        done = subprocess.run(
            bytewax_command("flows.alert"),
            env=flow_env.environ(BYTEWAX_PROCESS_ID="0", BYTEWAX_ADDRESSES=addresses),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert done.returncode != 0
    assert "Address already in use" in done.stderr
    assert "end of input" not in done.stderr
