"""Strategy groups: strategies whose first item queries the same thing (bkmonitor's
``access/data/processor.py``).

bkmonitor keys a group by ``query_md5``, the ``count_md5`` of the first item's normalised query
config; data access runs once per group and hands every record to all the group's items.
Real-time strategies (first query config ``time_series`` with ``agg_method`` ``REAL_TIME``) are
taken from Kafka by the real-time flow instead (§2.2).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from operators.md5 import count_md5
from operators.strategy import Item, Strategy

QUERY_FIELDS = (
    "bk_biz_id",
    "data_source_label",
    "data_type_label",
    "agg_method",
    "agg_interval",
    "agg_dimension",
    "agg_condition",
    "result_table_id",
    "metric_field",
    "keywords_query_string",
)
OPTIONAL_FIELDS = ("functions", "promql")
SOURCE_FIELDS = {
    ("bk_log_search", "log"): "index_set_id",
    ("custom", "event"): "custom_event_name",
    ("bk_fta", "event"): "alert_name",
    ("bk_monitor", "alert"): "bkmonitor_strategy_id",
}
GROUPED_TYPES = ("time_series", "log")
GROUPED_EVENT_SOURCES = ("custom", "bk_fta")  # custom and FTA events; GSE events are event access
ADVANCED_METHODS = ("reg", "nreg", "include", "exclude")
DEFAULT_INTERVAL = 60


def _normalised(config: Mapping[str, Any], bk_biz_id: int) -> dict[str, Any]:
    query = {name: config.get(name) for name in QUERY_FIELDS}
    query["bk_biz_id"] = config.get("bk_biz_id", bk_biz_id)
    query.update({name: config[name] for name in OPTIONAL_FIELDS if name in config})
    source = SOURCE_FIELDS.get((config.get("data_source_label"), config.get("data_type_label")))
    if source:
        query[source] = config.get(source)
    return query


def query_md5(item: Item, bk_biz_id: int, expression: str = "") -> str | None:
    """The group key of ``item``; None for sources bkmonitor does not group."""
    configs = item.query_configs
    if not configs:
        return None
    source, data_type = configs[0].get("data_source_label"), configs[0].get("data_type_label")
    if data_type not in GROUPED_TYPES and not (
        data_type == "event" and source in GROUPED_EVENT_SOURCES
    ):
        return None
    queries = [_normalised(c, bk_biz_id) for c in configs]
    if len(queries) == 1 and len(expression) <= 1:
        return count_md5(queries[0])
    return count_md5({"expression": expression, "query_configs": queries})


def interval_of(item: Item) -> int:
    """The smallest ``agg_interval`` of the item's query configs (60 when unset)."""
    intervals = [int(c.get("agg_interval") or 0) for c in item.query_configs]
    return min((i for i in intervals if i > 0), default=DEFAULT_INTERVAL)


def is_real_time(strategy: Strategy) -> bool:
    first = strategy.items[0].query_configs[:1]
    return bool(first) and (
        first[0].get("data_type_label") == "time_series"
        and first[0].get("agg_method") == "REAL_TIME"
    )


@dataclass(frozen=True)
class Group:
    """One strategy group: its key, its items (strategy id, item) sorted by strategy id."""

    key: str
    bk_biz_id: int
    items: tuple[tuple[int, Item], ...]
    interval: int

    @property
    def first(self) -> Item:
        return self.items[0][1]

    @property
    def query(self) -> Mapping[str, Any]:
        return self.first.query_configs[0]

    @property
    def is_static_threshold(self) -> bool:
        """Every algorithm of every item is ``Threshold``: access runs detection itself."""
        algorithms = [a for _, item in self.items for a in item.algorithms]
        return bool(algorithms) and all(a.get("type") == "Threshold" for a in algorithms)


def _expression(strategy: Strategy) -> str:
    items = strategy.raw.get("items") or [{}]
    return str(items[0].get("expression") or "")


def _grouped(strategies: Iterable[Strategy]) -> dict[str, Group]:
    members: dict[str, list[tuple[int, Item, int]]] = {}
    for strategy in strategies:
        item = strategy.items[0]
        key = query_md5(item, strategy.bk_biz_id, _expression(strategy))
        if key is not None:
            members.setdefault(key, []).append((strategy.id, item, strategy.bk_biz_id))
    groups = {}
    for key, entries in members.items():
        entries.sort(key=lambda e: e[0])
        groups[key] = Group(
            key,
            entries[0][2],
            tuple((sid, item) for sid, item, _ in entries),
            max(interval_of(item) for _, item, _ in entries),
        )
    return groups


def strategy_groups(strategies: Iterable[Strategy]) -> dict[str, Group]:
    """Groups of the strategies' first items, by query_md5 (only the first item is grouped,
    as in bkmonitor's ``handle_strategy``). Real-time strategies are left to the real-time
    flow, so that no point is pushed twice."""
    return _grouped(s for s in strategies if not is_real_time(s))


def real_time_groups(strategies: Iterable[Strategy]) -> dict[str, Group]:
    """The real-time strategies (bkmonitor's ``real_time_strategy_ids`` cache) grouped by
    query_md5."""
    return _grouped(s for s in strategies if is_real_time(s))
