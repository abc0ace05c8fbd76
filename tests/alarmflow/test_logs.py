"""Logging set up by entry points, and per-message warnings rate-limited."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from alarmflow.config import ConfigError, load_settings
from alarmflow.logs import RateLimited

REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_logged_then_the_rest_of_the_period_is_counted(caplog):
    clock = Clock()
    limited = RateLimited(logging.getLogger("limited"), period_s=10, burst=3, clock=clock)
    with caplog.at_level(logging.WARNING, "limited"):
        for n in range(8):
            limited.warning("rejected %d", n)
        assert caplog.messages == ["rejected 0", "rejected 1", "rejected 2"]
        clock.now = 9.9
        limited.warning("rejected %d", 8)
        assert len(caplog.messages) == 3
        clock.now = 10.0
        limited.warning("rejected %d", 9)
    assert caplog.messages[3:] == [
        "6 similar messages not logged (at most 3 per 10s)",
        "rejected 9",
    ]


def test_a_quiet_period_logs_no_count(caplog):
    clock = Clock()
    limited = RateLimited(logging.getLogger("quiet"), period_s=10, burst=1, clock=clock)
    with caplog.at_level(logging.ERROR, "quiet"):
        limited.error("first")
        clock.now = 30
        limited.error("second")
    assert caplog.messages == ["first", "second"]


def test_the_log_level_is_a_setting():
    assert load_settings({}).log_level == "INFO"
    assert load_settings({"ALARMFLOW_LOG_LEVEL": "debug"}).log_level == "DEBUG"
    with pytest.raises(ConfigError, match="ALARMFLOW_LOG_LEVEL='loud'"):
        load_settings({"ALARMFLOW_LOG_LEVEL": "loud"})


def test_importing_the_flow_building_blocks_configures_no_logging():
    code = "import logging, flows.common; print(len(logging.getLogger().handlers))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert done.stdout.strip() == "0"
