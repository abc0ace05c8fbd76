"""Whether this process reached the end of its input, for the line it logs when its sinks close.

Bytewax closes sinks both at the end of the input and when the flow stops on an error, so a
sink cannot tell the two apart by itself. The Kafka source reports each partition it opens and
each that reaches its end (``ALARMFLOW_TAIL=0``); a component that stops the flow on an
infrastructure failure reports that. The input ended when every partition opened in this
process ended and nothing failed: with ``ALARMFLOW_TAIL=1`` it never does.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_opened = 0
_ended = 0
_failed = False


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


def reached() -> bool:
    """Whether every partition opened here reached its end and nothing failed."""
    with _lock:
        return _ended == _opened and not _failed
