"""The converge window (bkmonitor.md §5.3 step 4, §5.5 step 4): matching and lazy closing."""

from __future__ import annotations

from operators.converge.state import INDEX_TTL_S, DimensionState


def close_if_stale(state: DimensionState, create_time: float, window_s: int) -> bool:
    """End the open converge if it opened before ``create_time - window``; True if it did.
    Its related actions are never matched again (bkmonitor's lazy ending)."""
    converge = state.converge
    if converge is None or converge.create_time >= create_time - window_s:
        return False
    state.end()
    return True


def index(state: DimensionState, action_id: int, create_time: float) -> None:
    """ZADD ``action_{id}`` with the create time; drop entries older than the index TTL."""
    state.index[action_id] = create_time
    horizon = create_time - INDEX_TTL_S
    for old in [a for a, t in state.index.items() if t < horizon and a not in state.pending]:
        del state.index[old]
        state.statuses.pop(old, None)
        state.ended.discard(old)


def matched(state: DimensionState, create_time: float, window_s: int) -> list[int]:
    """Indexed actions within ``create_time ± window`` not related to an ended converge."""
    low, high = create_time - window_s, create_time + window_s
    return sorted(a for a, t in state.index.items() if low <= t <= high and a not in state.ended)
