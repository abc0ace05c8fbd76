"""The ten converge functions (``converge/converge_func.py``) over a small view of a converge.

Each returns the action's converge status: ``"skipped"``, ``"sleep"``, ``"waiting"``, or None
meaning "execute it". Where bkmonitor has a bug the intended behaviour is implemented:
``skip_when_proceed`` skips when an executed action is still proceeding *or* finished with a
non-failure status (bkmonitor compares the status to the whole END list, so that second check
never matches).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from operators.converge.context import PROCEED_STATUS

FAILED = frozenset({"failure", "partial_failure"})


@dataclass(frozen=True)
class View:
    """What a converge function sees: whether this call opened the converge, the statuses of the
    converge's executed actions (others than this one), the threshold and whether a business
    summary already covers this dimension."""

    is_new: bool
    has_converge: bool
    executed: tuple[str, ...]
    count: int
    biz_exists: bool = False


def skip_when_success(v: View) -> str | None:
    if not v.executed:
        return None
    if "success" in v.executed:
        return "skipped"
    if any(s not in ("failure", "sleep") for s in v.executed):
        return "sleep"
    return None


def approve_when_failed(v: View) -> str | None:
    """Wherever ``skip_when_success`` lets the action through, an approval decides instead,
    the converge's opener included: it has no executed relation yet (bkmonitor relates it
    after the function ran, ``converge_manger.connect_converge``)."""
    return skip_when_success(v) or "waiting"


def skip_when_proceed(v: View) -> str | None:
    if not v.executed:
        return None
    if any(s in PROCEED_STATUS for s in v.executed):
        return "skipped"
    if any(s not in FAILED for s in v.executed):
        return "skipped"
    return None


def wait_when_proceed(v: View) -> str | None:
    return "sleep" if any(s in PROCEED_STATUS for s in v.executed) else None


def defense(v: View) -> str | None:
    if v.is_new or len(v.executed) < v.count:
        return None
    return "waiting"


def skip_when_exceed(v: View) -> str | None:
    if v.is_new or not v.has_converge or len(v.executed) < v.count:
        return None
    return "skipped"


def collect(v: View) -> str | None:
    if v.biz_exists:
        return "skipped"
    if v.is_new or not v.has_converge or len(v.executed) < v.count:
        return None
    return "skipped"


def collect_alarm(_v: View) -> str | None:
    return "skipped"


def trigger(v: View) -> str | None:
    return None if v.is_new else "skipped"


def relevance(_v: View) -> str | None:
    return None


FUNCTIONS: dict[str, Callable[[View], str | None]] = {
    f.__name__: f
    for f in (
        skip_when_success,
        approve_when_failed,
        skip_when_proceed,
        wait_when_proceed,
        defense,
        skip_when_exceed,
        collect,
        collect_alarm,
        trigger,
        relevance,
    )
}
COLLECTING = frozenset({"collect", "collect_alarm"})
