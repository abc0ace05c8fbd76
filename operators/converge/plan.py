"""An action's plan (``converge/processor.py``, ``dimension.py``): effective config, dimension,
state key, index keys."""

from __future__ import annotations

from operators.converge.config import normalise
from operators.converge.context import Action, converge_context
from operators.converge.dimension import biz_dimension, dimension
from operators.converge.records import IndexEntry, NoticeCollect, Plan

COMPARED = ("alert_info", "notice_info", "action_info")
"""The context fields bkmonitor indexes in ``fta_action.converge.{sid}.{dim}.{value}``."""
UNCONVERGED = ("no converge_config", "voice notices skip converge")
"""Reasons under which bkmonitor never sends the action through converge
(``fta_action/utils.push_actions_to_converge_queue``), so it writes no notice-collect hash."""


def plan(action: Action) -> Plan:
    """The action's plan; unconverged actions get the dimension ``"!none#{id}"``, so that
    each is its own key."""
    context = converge_context(action)
    config = normalise(action, context)
    notice = None
    if action.plugin_type == "notice" and not action.is_parent and config not in UNCONVERGED:
        notice = NoticeCollect(
            action.signal,
            context["group_notice_way"],
            "_".join(action.alert_ids),
            context["notice_receiver"],
        )
    if isinstance(config, str):
        name = f"!none#{action.id}"
        return Plan(f"{action.bk_biz_id}|{name}", None, name, "", config, notice=notice)
    biz = biz_dimension(context) if config.need_biz_converge else ""
    index = tuple(IndexEntry(action.strategy_id, dim, str(context[dim])) for dim in COMPARED)
    name = dimension(config, context)
    return Plan(f"{action.bk_biz_id}|{name}", config, name, biz, index=index, notice=notice)
