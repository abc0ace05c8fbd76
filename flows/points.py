"""What the time-series flows share: parsing metric messages, per-item range matchers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from alarmflow.config import Settings
from alarmflow.metrics import CLEANED
from operators.bounds import decode_object
from operators.data_filters import RangeMatcher
from operators.records import Point, parse_point
from operators.rejects import SourceRecord
from operators.strategy import Item, Strategy
from operators.strategy_group import Group


def point_parser(settings: Settings, flow: str) -> Callable[[SourceRecord, float], Point]:
    """``parse(record, now)`` for :func:`flows.common.parse_records`, counting parsed points."""
    parsed_count = CLEANED.labels(flow)

    def parse(record: SourceRecord, _now: float) -> Point:
        point = parse_point(decode_object(record, settings.max_message_bytes))
        parsed_count.inc()
        return point

    return parse


def item_matchers(
    groups: Iterable[Group], strategies: Mapping[int, Strategy]
) -> dict[tuple[int, int], RangeMatcher]:
    """The range matcher of every (strategy id, item id) of ``groups``."""
    return {
        (sid, item.id): RangeMatcher.for_item(strategies[sid].raw["items"][0])
        for group in groups
        for sid, item in group.items
    }


def retaining(
    group: Group, matchers: Mapping[tuple[int, int], RangeMatcher], dimensions: Mapping
) -> list[tuple[int, Item]]:
    """The ``(strategy id, item)`` pairs of ``group`` whose range keeps ``dimensions``."""
    return [(sid, it) for sid, it in group.items if matchers[(sid, it.id)].matches(dimensions)]
