"""Strategies in bkmonitor's shape, parsed and checked once at start.

Only what the flows read is typed here; the raw objects stay available for the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson

from operators.json_bytes import json_bytes


class StrategyError(ValueError):
    """The strategies source is unusable; the message names the strategy and the field."""


@dataclass(frozen=True)
class Item:
    id: int
    query_configs: tuple[Mapping[str, Any], ...]
    algorithms: tuple[Mapping[str, Any], ...] = ()
    target: tuple[Any, ...] = ()
    """bkmonitor's item ``target``: OR groups of ``{field, method, value}`` conditions."""

    def metric_ids(self) -> tuple[str, ...]:
        """bkmonitor's ``Item.metric_ids``: each query config's ``metric_id``, e.g.
        ``bk_monitor.disk-full-gse`` for the GSE disk-full event."""
        return tuple(str(c["metric_id"]) for c in self.query_configs if c.get("metric_id"))

    def level(self) -> int:
        """The level of the item's first algorithm (bkmonitor's event ``level``), else 0."""
        if not self.algorithms:
            return 0
        try:
            return int(self.algorithms[0].get("level", 0))
        except (TypeError, ValueError):
            return 0


@dataclass(frozen=True)
class Strategy:
    id: int
    bk_biz_id: int
    name: str
    items: tuple[Item, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def source(self) -> tuple[str, str]:
        """``(data_source_label, data_type_label)`` of the first item's first query config."""
        if not self.items or not self.items[0].query_configs:
            return ("", "")
        first = self.items[0].query_configs[0]
        return (first.get("data_source_label", ""), first.get("data_type_label", ""))

    def number(self, name: str) -> int:
        """An integer attribute of the raw strategy (``priority``, ``update_time``), else 0."""
        try:
            return int(self.raw.get(name) or 0)
        except (TypeError, ValueError):
            return 0

    @cached_property
    def snapshot(self) -> bytes:
        """The strategy as JSON, as anomalies' strategy snapshots keep it; made once, since
        strategies are fixed from start-up."""
        return json_bytes(dict(self.raw))


def whole_number(
    obj: Mapping[str, Any], name: str, where: str, error: type[ValueError] = StrategyError
) -> int:
    """``obj[name]`` as a whole number (an int or a string of digits), else ``error`` naming
    ``where`` and the field. Shared by the parsers of every configuration table."""
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise error(f"{where}: '{name}' must be a non-negative integer, got {value!r}")
    return int(value)


def objects(value: Any, name: str, where: str) -> tuple[Mapping[str, Any], ...]:
    """``value``, the field ``name``, as a list of objects (none when it is None), else a
    :class:`StrategyError` naming ``where`` and the field."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, Mapping) for v in value):
        raise StrategyError(f"{where}: '{name}' must be a list of objects, got {value!r}")
    return tuple(value)


def _check_query_config(config: Mapping[str, Any], where: str) -> None:
    """The fields of a query config the flows read are of the types bkmonitor gives them (each
    may be missing or None), else a :class:`StrategyError` naming ``where`` and the field:
    ``agg_condition`` a list of condition objects, ``alert_name`` and the source labels
    strings, ``agg_interval`` a whole number (an int or a string of digits) or empty, and
    ``agg_dimension`` a list of strings."""
    objects(config.get("agg_condition"), "agg_condition", where)
    for name in ("alert_name", "data_source_label", "data_type_label"):
        value = config.get(name)
        if value is not None and not isinstance(value, str):
            raise StrategyError(f"{where}: '{name}' must be a string, got {value!r}")
    if config.get("agg_interval") not in (None, ""):
        whole_number(config, "agg_interval", where)
    dimensions = config.get("agg_dimension")
    if dimensions is not None and (
        not isinstance(dimensions, list) or not all(isinstance(d, str) for d in dimensions)
    ):
        raise StrategyError(
            f"{where}: 'agg_dimension' must be a list of strings, got {dimensions!r}"
        )


def _object(value: Any, name: str, where: str) -> Mapping[str, Any]:
    """``value``, the field ``name``, as an object (empty when it is None or empty), else a
    :class:`StrategyError` naming ``where`` and the field."""
    if not value:
        return {}
    if not isinstance(value, Mapping):
        raise StrategyError(f"{where}: '{name}' must be an object, got {value!r}")
    return value


def _check_options(obj: Mapping[str, Any], where: str) -> None:
    """The strategy's own fields the flows read: ``priority`` a whole number (or None), and
    ``notice.options.noise_reduce_config`` objects."""
    if obj.get("priority") is not None:
        whole_number(obj, "priority", where)
    notice = _object(obj.get("notice"), "notice", where)
    options = _object(notice.get("options"), "notice.options", where)
    _object(options.get("noise_reduce_config"), "notice.options.noise_reduce_config", where)


def _check_algorithms(algorithms: tuple[Mapping[str, Any], ...], where: str) -> None:
    """An algorithm's ``level``, read per record by static thresholds, is a whole number."""
    for algorithm in algorithms:
        if algorithm.get("level") is not None:
            whole_number(algorithm, "level", where)


def parse_strategy(obj: Any) -> Strategy:
    if not isinstance(obj, Mapping):
        raise StrategyError(f"strategy must be an object, got {type(obj).__name__}")
    sid = whole_number(obj, "id", "strategy")
    where = f"strategy {sid}"
    _check_options(obj, where)
    items = obj.get("items")
    if not isinstance(items, list) or not items:
        raise StrategyError(f"{where}: 'items' must be a non-empty list")
    parsed = []
    for item in items:
        if not isinstance(item, Mapping):
            raise StrategyError(f"{where}: every item must be an object")
        configs = objects(item.get("query_configs"), "query_configs", where)
        for config in configs:
            _check_query_config(config, where)
        algorithms = objects(item.get("algorithms"), "algorithms", where)
        _check_algorithms(algorithms, where)
        _object(item.get("no_data_config"), "no_data_config", where)
        target = item.get("target") or ()
        if not isinstance(target, list | tuple) or not all(
            isinstance(group, list | tuple) for group in target
        ):
            raise StrategyError(
                f"{where}: 'target' must be a list of condition groups (lists), got {target!r}"
            )
        parsed.append(
            Item(
                whole_number(item, "id", where),
                configs,
                algorithms,
                tuple(target),
            )
        )
    return Strategy(
        sid, whole_number(obj, "bk_biz_id", where), str(obj.get("name", "")), tuple(parsed), obj
    )


def parse_strategies(objs: Sequence[Any]) -> tuple[Strategy, ...]:
    strategies = tuple(parse_strategy(obj) for obj in objs)
    seen: set[int] = set()
    for strategy in strategies:
        if strategy.id in seen:
            raise StrategyError(f"strategy {strategy.id} is defined twice")
        seen.add(strategy.id)
    return strategies


def read_json_list(path: str | Path, what: str, error: type[ValueError] = StrategyError) -> list:
    """The JSON list in the file at ``path`` (a table of ``what``), else ``error`` saying why
    (its caller names the file)."""
    try:
        data = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise error(f"cannot read {what}: {exc}") from None
    if not isinstance(data, list):
        raise error(f"expected a JSON list of {what}")
    return data


def load_strategy_file(path: str | Path) -> tuple[Strategy, ...]:
    """Strategies from a JSON file holding a list of strategy objects."""
    return parse_strategies(read_json_list(path, "strategies"))
