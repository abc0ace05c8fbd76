"""Strategies from bkmonitor's strategy cache, read through a client that answers from a dict."""

from __future__ import annotations

import orjson
import pytest

from operators.strategy import StrategyError
from state.keys import STRATEGY_CACHE_KEY, STRATEGY_IDS_CACHE_KEY
from state.strategy_cache import load_cached_strategies

PREFIX = "bkmonitorv3.ee"
GOOD = {"id": 5, "bk_biz_id": 2, "items": [{"id": 50, "query_configs": [{"alert_name": "x"}]}]}


class FakeCache:
    """The ``get`` and ``mget`` of a Redis client over ``values`` (JSON-encoded on the way)."""

    def __init__(self, values: dict[str, object]) -> None:
        self.values = {key: orjson.dumps(value) for key, value in values.items()}

    def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    def mget(self, keys: list[str]) -> list[bytes | None]:
        return [self.values.get(key) for key in keys]


def cache(ids: object, *strategies: dict) -> FakeCache:
    return FakeCache(
        {
            STRATEGY_IDS_CACHE_KEY.key(PREFIX): ids,
            **{STRATEGY_CACHE_KEY.key(PREFIX, strategy_id=s["id"]): s for s in strategies},
        }
    )


def test_the_listed_strategies_that_exist_load():
    assert [s.id for s in load_cached_strategies(cache([5, 6], GOOD), PREFIX)] == [5]


@pytest.mark.parametrize("ids", [5, "5", {"5": 1}])
def test_strategy_ids_that_are_not_a_list_are_refused(ids):
    with pytest.raises(StrategyError, match=r"cache\.strategy_ids: not a JSON list of ids"):
        load_cached_strategies(cache(ids, GOOD), PREFIX)


def test_a_cached_strategy_of_a_wrong_inner_shape_is_refused_as_a_file_s_is():
    bad = {**GOOD, "items": [{"id": 50, "query_configs": [{"agg_condition": "abc"}]}]}
    with pytest.raises(StrategyError, match="strategy 5: 'agg_condition' must be a list"):
        load_cached_strategies(cache([5], bad), PREFIX)
