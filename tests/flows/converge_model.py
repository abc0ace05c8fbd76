"""A direct, slow model of bkmonitor's converge rules, independent of ``operators.converge``:
the storm test's expected counts come from here, not from the engine.

It keeps bkmonitor's tables as plain dicts (``ActionInstance.status``, ``ConvergeInstance``,
``ConvergeRelation``, the index zsets) and replays the messages and timers in event-time order
as ``fta_action/utils.push_actions_to_converge_queue`` (index, then converge),
``converge/processor.run_converge``, ``converge_manger.do_converge``/``connect_converge`` and
``converge_func`` do, with alarmflow's declared differences (a sleeper is related once
decided; business summaries over aligned 120 s windows). It covers what the storm uses:
enabled configs with default conditions (one dimension per strategy), no max_timedelta.
"""

from __future__ import annotations

import heapq
from collections import Counter

SLEEP, LOCK, COLLECT = 30, 3, 60
PROCEED = {"received", "waiting", "converging", "sleep", "converged", "running"}


def verdict(func: str, is_new: bool, executed: list[str], count: int) -> str:
    """``converge_func.ConvergeFunc`` (False is ``execute``)."""
    if func == "skip_when_success":
        if not executed:
            return "execute"
        if "success" in executed:
            return "skipped"
        return "sleep" if any(s not in ("failure", "sleep") for s in executed) else "execute"
    if func == "skip_when_exceed":
        return "execute" if is_new or len(executed) < count else "skipped"
    if func == "collect":
        return "execute" if is_new or len(executed) < count else "skipped"
    if func == "trigger":
        return "execute" if is_new else "skipped"
    raise ValueError(func)


def expected_counts(messages: list[dict]) -> Counter[str]:
    status: dict[int, str] = {}
    index: dict[int, dict[int, float]] = {}  # strategy -> action -> create_time
    related: set[int] = set()  # every action with a ConvergeRelation row
    open_converge: dict[int, dict] = {}  # strategy -> converge
    made: Counter[str] = Counter()
    summaries: list[tuple[tuple, float, list[int]]] = []  # (biz key, opened at, covered)
    events: list[tuple[float, int, int, str, dict]] = []
    for n, message in enumerate(messages):
        heapq.heappush(events, (message["create_time"], 1, n, "message", message))
    seq = len(messages)

    def later(due: float, kind: str, payload: dict) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (due, 0, seq, kind, payload))

    def run(action: dict, now: float) -> None:
        config, sid, aid = action["converge_config"], action["strategy_id"], action["id"]
        notice = action["plugin_type"] == "notice"
        timedelta, count = (120, 1) if notice else (config["timedelta"], config["count"])
        window = timedelta // 60 * 60
        if status[aid] == "sleep" and int(action["create_time"]) + 600 < int(now):
            status[aid] = "skipped"
            made["skipped"] += 1
            return
        converge = open_converge.get(sid)
        if converge and converge["create_time"] < action["create_time"] - window:
            del open_converge[sid]
            converge = None
        is_new = False
        if converge is None:
            low, high = action["create_time"] - window, action["create_time"] + window
            matched = [a for a, t in index[sid].items() if low <= t <= high and a not in related]
            if len(matched) < count:
                status[aid] = "running"
                made["execute"] += 1
                return
            converge = {"create_time": now, "relations": {}, "func": config["converge_func"]}
            open_converge[sid] = converge
            is_new = True
            for other in matched:
                if other != aid and status[other] not in ("received", "sleep", "waiting"):
                    converge["relations"][other] = "executed"
                    related.add(other)
            if converge["func"] == "collect":
                biz = (action["bk_biz_id"], action["signal"], action["notice_way"])
                biz += (tuple(action["notice_receiver"]), action["alert_level"])
                later(now + COLLECT, "collect", {"sid": sid, "converge": converge, "biz": biz})
        executed = [
            status[a]
            for a, role in converge["relations"].items()
            if role == "executed" and a != aid
        ]
        result = verdict(converge["func"], is_new, executed if not is_new else [], count)
        made[result] += 1
        status[aid] = {"execute": "running"}.get(result, result)
        if is_new or result != "sleep":
            converge["relations"][aid] = "executed" if is_new or result == "execute" else "skipped"
            related.add(aid)
        if result == "sleep":
            later(now + SLEEP, "retry", {"action": action})

    while events:
        now, _, _, kind, payload = heapq.heappop(events)
        if kind == "message":
            aid = payload["id"]
            if aid in status:
                status[aid] = payload.get("status", "received")
                continue
            status[aid] = payload.get("status", "received")
            if payload["converge_config"] is None:
                made["execute"] += 1
                continue
            index.setdefault(payload["strategy_id"], {})[aid] = payload["create_time"]
            run(payload, now)
        elif kind == "retry":
            run(payload["action"], now)
        else:
            converge = payload["converge"]
            if open_converge.get(payload["sid"]) is converge:
                del open_converge[payload["sid"]]
            covered = [a for a in converge["relations"] if status[a] == "skipped"]
            summaries.append((payload["biz"], converge["create_time"], covered))
    windows: dict[tuple, list[list[int]]] = {}
    for biz, opened, covered in summaries:
        windows.setdefault((biz, opened // 120), []).append(covered)
    for found in windows.values():
        non_empty = [c for c in found if c]
        if len(found) >= 3 and non_empty:
            made["suppressed"] += len(non_empty)
            made["collect"] += 1
        else:
            made["collect"] += len(non_empty)
    return made
