"""The line a flow process logs with its counts when it exits: "end of input" only after a
clean end of its input.

Bytewax closes sinks both at the end of the input and when the flow stops on an error (in any
process of the flow, before its sources are even built), so a sink cannot tell the two apart
when it closes. It asks for the line instead (:func:`log_counts_at_exit`), which is logged once
per process when the interpreter exits: "end of input" when every Kafka partition opened in this
process reached its end (``ALARMFLOW_TAIL=0``) and nothing failed, otherwise "stopped before its
input ended". Something failed when an exception reached the top (Bytewax re-raises a step's, a
sink's or its own) or a component reported an infrastructure failure (:func:`failed`). A process
killed by a signal logs nothing.

The same state says when a flow is stopping: a sink that closes before a clean end of the input
closes because the flow stops on an error or an interrupt (:func:`sink_closing`). From then on
the waits for an outage of Redis or the broker are cut short (:func:`stopping`): what they held
is replayed by recovery, and a stopping flow must not wait minutes for an outage to end.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading

from alarmflow import metrics

log = logging.getLogger(__name__)

_lock = threading.Lock()
_opened = 0
_ended = 0
_failed = False
_flows: list[str] = []
_stopping = threading.Event()


def partition_opened() -> None:
    global _opened
    with _lock:
        _opened += 1


def partition_ended() -> None:
    global _ended
    with _lock:
        _ended += 1


def failed() -> None:
    """The flow is stopping on an error raised in this process."""
    global _failed
    with _lock:
        _failed = True


def sink_closing() -> None:
    """A sink of this process closes: before a clean end of the input, the flow is stopping."""
    if not _reached():
        _stopping.set()


def stopping() -> threading.Event:
    """Set once the flow is stopping before its input ended (:func:`sink_closing`)."""
    return _stopping


def _reached() -> bool:
    """Whether every partition opened here reached its end and nothing failed."""
    with _lock:
        return _ended == _opened and not _failed


def log_counts_at_exit(flow: str) -> None:
    """Log ``flow``'s counts once when this process exits (see the module)."""
    with _lock:
        if flow in _flows:
            return
        if not _flows:
            _watch_uncaught()
            atexit.register(_log_counts)
        _flows.append(flow)


def _watch_uncaught() -> None:
    previous = sys.excepthook

    def hook(kind, value, traceback) -> None:
        failed()
        previous(kind, value, traceback)

    sys.excepthook = hook


def _log_counts() -> None:
    ended = _reached()
    for flow in _flows:
        if ended:
            log.info("end of input: %s", metrics.summary(flow))
        else:
            log.warning("stopped before its input ended: %s", metrics.summary(flow))
