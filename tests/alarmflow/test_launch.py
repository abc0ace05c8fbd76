"""The launcher: an uptime deadline stops every process and counts as success; a host of a
cluster of hosts runs its one process with its share of the recovery partitions."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from alarmflow.launch import commands, init_recovery, parse_args, recovery_share, supervise

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
