"""The launcher's supervision: an uptime deadline stops every process and counts as success."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from alarmflow.launch import supervise

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
