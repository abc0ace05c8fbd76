"""Frozen reference: the alert path's pure functions and push-once script as they were on
main at commit 33cd407, before the performance work. Tests compare today's faster code with
these, byte for byte; nothing outside the tests uses them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from hashlib import md5
from typing import Any

import orjson
import redis

from operators.alert import (
    ABNORMAL,
    DATA_TYPES,
    DEFAULT_DEDUPE_FIELDS,
    DEFAULT_SEVERITY,
    FINAL_STATUSES,
    TARGETLESS_TYPES,
    _clean_target_type,
    check_alert_fields,
)
from operators.routing import Target
from state.idempotent import Op, Push, write
from state.keys import ALERT_DEDUP_KEY, ALERT_LIST_KEY, DATA_SIGNAL_KEY


def _md5_text(text: str) -> str:
    return md5(text.encode("utf8")).hexdigest()


def count_md5(content: Any) -> str:
    """Digest ``content`` exactly as bkmonitor's ``bkmonitor.utils.common_utils.count_md5``."""
    if isinstance(content, dict):
        return count_md5([(str(key), count_md5(content[key])) for key in sorted(content)])
    if isinstance(content, list | tuple):
        return _md5_text(str(sorted(count_md5(member) for member in content)))
    if callable(content):
        return _md5_text(content.__name__)
    return _md5_text(str(content))


def _clean_dedupe_keys(data: Mapping[str, Any]) -> list[str]:
    dropped = "alert_name" if data.get("strategy_id") else "strategy_id"
    keys = [key for key in DEFAULT_DEDUPE_FIELDS if key != dropped]
    extra = data.get("dedupe_keys", [])
    if isinstance(extra, list):
        keys.extend(key for key in extra if key not in keys)
    return keys


def _clean_tag_value(value: Any) -> Any:
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return [json.dumps(v) if isinstance(v, dict | list) else v for v in value]
    return value


def _clean_tags(tags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cleaned = []
    for tag in tags:
        item = {"key": str(tag["key"]), "value": _clean_tag_value(tag["value"])}
        for extra in ("display_key", "display_value"):
            if extra in tag:
                item[extra] = tag[extra]
        cleaned.append(item)
    return cleaned


def _clean_severity(value: Any) -> int:
    try:
        return max(1, min(3, int(value)))
    except (TypeError, ValueError):
        return DEFAULT_SEVERITY


def _dedupe_value(event: Mapping[str, Any], key: str) -> Any:
    targetless = event.get("target_type") in TARGETLESS_TYPES
    if targetless and key == "target":
        return None
    if targetless and key == "target_type":
        return ""
    if key.startswith("tags."):
        name = key[len("tags.") :]
        for tag in event.get("tags", []):
            if tag["key"] == name:
                return tag["value"]
        return None
    return event.get(key)


def clean_alert(raw: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The cleaned alert for a decoded message, or :class:`Rejected`."""
    data = {key: value for key, value in raw.items() if value is not None}
    check_alert_fields(data)
    metric = data.get("metric")
    data_type = str(data.get("data_type", "")).lower()
    data.update(
        create_time=int(now),
        target_type=_clean_target_type(data.get("target_type", "")),
        target=data.get("target"),
        metric=[metric] if isinstance(metric, str) else (metric or []),
        data_type=data_type if data_type in DATA_TYPES else "event",
        dedupe_keys=_clean_dedupe_keys(data),
        status=s if (s := data.get("status", "").upper()) in FINAL_STATUSES else ABNORMAL,
        severity=_clean_severity(data.get("severity")),
        tags=_clean_tags(data.get("tags", [])),
        time=data["time"] if "time" in data else data["bk_ingest_time"],
    )
    data["id"] = count_md5([data["plugin_id"], data["event_id"], data["status"], data["time"]])
    data["dedupe_md5"] = count_md5([_dedupe_value(data, key) for key in data["dedupe_keys"]])
    data["access_time"] = now
    return data


_PUSH_ONCE = """
local selected = nil
local function use(db)
  if db ~= selected then
    redis.call('SELECT', db)
    selected = db
  end
end
local function expire(key, ttl)
  if ttl > 0 then
    redis.call('EXPIRE', key, ttl)
  end
end
local results = {}
local a, k = 1, 1
while a <= #ARGV do
  local w = tonumber(ARGV[a])
  a = a + 1
  local result = nil
  for i = 0, w - 1 do
    local op, db, ttl = string.match(ARGV[a], '(%a+) (%d+) (%d+)')
    local param, value = ARGV[a + 1], ARGV[a + 2]
    local key = KEYS[k + i]
    ttl = tonumber(ttl)
    a = a + 3
    if result == nil then
      use(db)
      local new
      if op == 'mark' then
        new = redis.call('SET', key, '1', 'NX', 'EX', ttl)
      else
        new = redis.call('SADD', key, value) == 1
        expire(key, ttl)
      end
      result = new and 0 or -1
    elseif result >= 0 then
      use(db)
      if op == 'gate' then
        if redis.call('EXISTS', key) == 1 and
            redis.call('HINCRBY', key, param, 1) > tonumber(value) then
          result = -2
        end
      elseif op == 'signal' then
        if not redis.call('LPOS', key, value) then
          redis.call('LPUSH', key, value)
          result = result + 1
        end
        expire(key, ttl)
      else
        if op == 'lpush' then
          redis.call('LPUSH', key, value)
        elseif op == 'set' then
          redis.call('SET', key, value)
        elseif op == 'sadd' then
          redis.call('SADD', key, value)
        elseif op == 'zadd' then
          redis.call('ZADD', key, param, value)
        elseif op == 'hset' then
          redis.call('HSET', key, param, value)
        elseif op == 'hmax' then
          local old = tonumber(redis.call('HGET', key, param))
          if old == nil or old < tonumber(value) then
            redis.call('HSET', key, param, value)
          end
        end
        expire(key, ttl)
      end
    end
  end
  results[#results + 1] = result
  k = k + w
end
return results
"""


def alert_push(
    prefix: str, event: Mapping[str, Any], targets: Iterable[Target], dedup_ttl: int
) -> Push:
    targets = tuple(targets)
    payload = orjson.dumps(event)
    lists = tuple(
        write(
            Op.LPUSH,
            ALERT_LIST_KEY,
            prefix,
            payload,
            at={"strategy_id": t.strategy_id, "item_id": t.item_id},
        )
        for t in targets
    )
    signals = tuple(
        write(Op.SIGNAL, DATA_SIGNAL_KEY, prefix, sid)
        for sid in dict.fromkeys(str(t.strategy_id) for t in targets)
    )
    marker = write(Op.MARK, ALERT_DEDUP_KEY, prefix, at={"event_uid": event["id"]}, ttl=dedup_ttl)
    return Push(marker, lists + signals)


class OncePusher:
    """The batch push as it was: one script call, every write its own Redis command."""

    def __init__(self, client: redis.Redis, dbs: Mapping[Any, int]) -> None:
        self._script = client.register_script(_PUSH_ONCE)
        self._dbs = dict(dbs)

    def push(self, pushes: Sequence[Push]) -> list[int]:
        if not pushes:
            return []
        keys: list[str] = []
        args: list[int | str | bytes] = []
        for push in pushes:
            args.append(1 + len(push.writes))
            for w in (push.marker, *push.writes):
                keys.append(w.key)
                args.extend((f"{w.op.value} {self._dbs[w.backend]} {w.ttl}", w.param, w.value))
        return list(self._script(keys=keys, args=args))
