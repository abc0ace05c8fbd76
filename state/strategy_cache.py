"""Strategies read from bkmonitor's own strategy cache (``ALARMFLOW_STRATEGIES=redis``)."""

from __future__ import annotations

import orjson
import redis

from operators.strategy import Strategy, StrategyError, parse_strategies
from state.keys import STRATEGY_CACHE_KEY, STRATEGY_IDS_CACHE_KEY


def load_cached_strategies(client: redis.Redis, prefix: str) -> tuple[Strategy, ...]:
    """Each strategy listed in ``cache.strategy_ids`` whose ``cache.strategy_{id}`` exists."""
    ids_key = STRATEGY_IDS_CACHE_KEY.key(prefix)
    raw_ids = client.get(ids_key)
    if raw_ids is None:
        raise StrategyError(f"{ids_key} does not exist")
    try:
        ids = orjson.loads(raw_ids)
    except orjson.JSONDecodeError as exc:
        raise StrategyError(f"{ids_key}: not a JSON list of ids: {exc}") from None
    if not isinstance(ids, list):
        raise StrategyError(f"{ids_key}: not a JSON list of ids: {ids!r}")
    keys = [STRATEGY_CACHE_KEY.key(prefix, strategy_id=sid) for sid in ids]
    documents = client.mget(keys) if keys else []
    try:
        return parse_strategies([orjson.loads(doc) for doc in documents if doc is not None])
    except orjson.JSONDecodeError as exc:
        raise StrategyError(f"a cached strategy is not JSON: {exc}") from None
