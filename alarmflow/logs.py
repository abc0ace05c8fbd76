"""Logging for alarmflow's entry points, and a rate-limited logger for per-message warnings.

Entry points call :func:`configure` once with ``ALARMFLOW_LOG_LEVEL``; importing a module never
configures logging. :class:`RateLimited` wraps a logger for messages that can come once per input
message (rejections, consumer errors): the dead-letter topic and the metrics already carry every
one of them, so the log shows the first few of each period and how many it left out.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str) -> None:
    """Log to stderr at ``level`` (one of :data:`LEVELS`), in alarmflow's format."""
    logging.basicConfig(level=level, format=FORMAT, stream=sys.stderr, force=True)


class RateLimited:
    """At most ``burst`` records per ``period_s`` seconds through ``logger``; when a period
    with left-out records ends, the next record says how many were left out. Safe to share
    between the worker threads of a process."""

    def __init__(
        self,
        logger: logging.Logger,
        period_s: float = 10.0,
        burst: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._period_s = period_s
        self._burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._started = -period_s
        self._logged = 0
        self._left_out = 0

    def log(self, level: int, message: str, *args: object) -> None:
        with self._lock:
            now = self._clock()
            if now - self._started >= self._period_s:
                left_out, self._left_out = self._left_out, 0
                self._started, self._logged = now, 0
                if left_out:
                    self._logger.log(
                        level,
                        "%d similar messages not logged (at most %d per %.0fs)",
                        left_out,
                        self._burst,
                        self._period_s,
                    )
            if self._logged >= self._burst:
                self._left_out += 1
                return
            self._logged += 1
        self._logger.log(level, message, *args)

    def warning(self, message: str, *args: object) -> None:
        self.log(logging.WARNING, message, *args)

    def error(self, message: str, *args: object) -> None:
        self.log(logging.ERROR, message, *args)
