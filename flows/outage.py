"""Waiting out a Redis outage: an attempt retried while Redis cannot take writes (down,
restarting, read-only during a failover, loading, out of memory, too few replicas, an ACL user
refused a command the flows need), with capped backoff, for up to ``ALARMFLOW_REDIS_OUTAGE_S``;
logged once when Redis goes, every :data:`REMIND_S` while it stays away and once when it is
back, and kept in the ``alarmflow_redis_waiting`` gauge. Past that time the error is raised:
the flow stops and recovery replays from the last snapshot. An error that says a batch is bad
rather than Redis away is raised at once. So is an outage once the flow is stopping (an error
elsewhere, an interrupt: :func:`flows.input_end.stopping`), after one more attempt.

Every Redis sink runs its batches through an :class:`Outage`
(:mod:`flows.redis_sink`), and the converge flow its counter lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis

from alarmflow.metrics import REDIS_ERRORS, REDIS_WAITING
from flows import input_end
from state.idempotent import DUPLICATE, NotReplicated, Result

log = logging.getLogger(__name__)

FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0
REMIND_S = 30.0

# Refusals that say the server cannot take writes right now, not that a record is bad.
_UNAVAILABLE = (
    redis.ConnectionError,  # also refused or wrong password, LOADING, no master from Sentinel
    redis.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica now: the master failed over
    redis.exceptions.OutOfMemoryError,
    # An ACL user lacking a command or key the flows need: a grant mends it, not the record.
    redis.exceptions.NoPermissionError,
    redis.exceptions.MasterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    NotReplicated,
)
_UNAVAILABLE_CODES = ("BUSY", "MISCONF", "NOREPLICAS")


def unavailable(exc: redis.RedisError) -> bool:
    """Whether ``exc`` says Redis cannot take writes now (rather than refusing a batch)."""
    return isinstance(exc, _UNAVAILABLE) or str(exc).startswith(_UNAVAILABLE_CODES)


def _merge(earlier: list[Result] | None, later: list[Result]) -> list[Result]:
    """Results of a batch retried after an unreplicated attempt: a record the earlier attempt
    wrote reads as a duplicate the second time, and counts as written."""
    if earlier is None:
        return later
    pairs = zip(earlier, later, strict=True)
    return [e if r == DUPLICATE and e != DUPLICATE else r for e, r in pairs]


R = TypeVar("R")


class Outage:
    """Retries an attempt while Redis is unavailable, for ``give_up_s`` at most, with capped
    backoff, and no longer once ``stopping`` is set (the flow's, unless given; a wait between
    attempts ends when it is set, unless ``sleep`` is given); logs once per change of state and
    keeps the waiting gauge."""

    def __init__(
        self,
        flow: str,
        server: str,
        give_up_s: float,
        sleep: Callable[[float], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
        stopping: threading.Event | None = None,
    ) -> None:
        self._flow = flow
        self._server = server
        self._give_up_s = give_up_s
        self._stopping = input_end.stopping() if stopping is None else stopping
        self._sleep = self._stopping.wait if sleep is None else sleep
        self._clock = clock
        self._errors = REDIS_ERRORS.labels(flow)
        self._waiting = REDIS_WAITING.labels(flow)

    def run(self, attempt: Callable[[], R]) -> R:
        """``attempt()``'s result once Redis takes it; an error that is not an outage, or an
        outage longer than ``give_up_s``, is raised. (A batch of writes that Redis took but
        could not replicate is merged with its retry, see :func:`_merge`.)"""
        started: float | None = None
        reminded = 0.0
        delay = FIRST_DELAY_S
        earlier: list[Result] | None = None
        while True:
            try:
                results = attempt()
            except redis.RedisError as exc:
                if not unavailable(exc):
                    raise
                if isinstance(exc, NotReplicated):
                    earlier = _merge(earlier, exc.results)
                error = exc
            else:
                if started is not None:
                    self._waiting.dec()
                    log.warning(
                        "%s: Redis at %s is back after %.1fs; going on",
                        self._flow,
                        self._server,
                        self._clock() - started,
                    )
                return results if earlier is None else _merge(earlier, results)  # type: ignore[arg-type,return-value]
            self._errors.inc()
            now = self._clock()
            if started is None:
                started = reminded = now
                self._waiting.inc()
                log.warning(
                    "%s: Redis at %s unavailable (%s); retrying for up to %.0fs",
                    self._flow,
                    self._server,
                    error,
                    self._give_up_s,
                )
            elif now - reminded >= REMIND_S:
                reminded = now
                log.warning(
                    "%s: Redis at %s still unavailable after %.0fs (%s)",
                    self._flow,
                    self._server,
                    now - started,
                    error,
                )
            stopping = self._stopping.is_set()
            if stopping or now - started >= self._give_up_s:
                self._waiting.dec()
                input_end.failed()
                log.error(
                    "%s: Redis at %s unavailable for %.0fs; %s, recovery replays",
                    self._flow,
                    self._server,
                    now - started,
                    "the flow is stopping, so not waiting for it" if stopping else "stopping",
                )
                raise error
            self._sleep(min(delay, max(0.0, started + self._give_up_s - now)))
            delay = min(delay * 2, MAX_DELAY_S)
