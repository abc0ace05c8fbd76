"""Idempotent list pushes: each record's data and its wake-up signal, at most once.

One Lua script per batch walks the batch's records in order. For each record it sets the
record's marker with ``SET NX EX`` and, only when the marker is new, LPUSHes the record onto
its lists, SETs its strings and SADDs its set members (each with EXPIRE), and then pushes each
signal member that is not already pending. A
replay after a crash finds the markers and writes nothing, so Redis ends as an uninterrupted
run leaves it. Data lands before its signal because both happen inside the script, data
first. A batch is one command (one round trip, and half the client-side cost of one script
call per record, measured in ``bench/``), and it is atomic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

# KEYS: the signal list, then per record its marker, n list keys, s string keys, t set keys.
# ARGV: marker ttl, data ttl, signal ttl, then per record: the counts n, s, t, m, then
#       n list payloads, s string values, t set members, m signal members.
# Returns per record: -1 if its marker existed (nothing written), else the signals pushed.
_PUSH_ONCE = """
local signal = KEYS[1]
local marker_ttl, data_ttl = ARGV[1], ARGV[2]
local results = {}
local k, a = 2, 4
while k <= #KEYS do
  local n, s, t, m = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]),
    tonumber(ARGV[a + 3])
  local marker = KEYS[k]
  a = a + 4
  if redis.call('SET', marker, '1', 'NX', 'EX', marker_ttl) then
    for i = 1, n + s + t do
      local key, value = KEYS[k + i], ARGV[a + i - 1]
      if i <= n then
        redis.call('LPUSH', key, value)
      elseif i <= n + s then
        redis.call('SET', key, value)
      else
        redis.call('SADD', key, value)
      end
      redis.call('EXPIRE', key, data_ttl)
    end
    local pushed = 0
    for j = 1, m do
      local member = ARGV[a + n + s + t + j - 1]
      if not redis.call('LPOS', signal, member) then
        redis.call('LPUSH', signal, member)
        pushed = pushed + 1
      end
    end
    results[#results + 1] = pushed
  else
    results[#results + 1] = -1
  end
  k = k + 1 + n + s + t
  a = a + n + s + t + m
end
redis.call('EXPIRE', signal, ARGV[3])
return results
"""


@dataclass(frozen=True)
class Push:
    """One record: its idempotency marker, its (list key, payload) pairs, signal members, and
    optionally (string key, value) pairs to SET and (set key, member) pairs to SADD."""

    marker: str
    lists: tuple[tuple[str, bytes], ...]
    signals: tuple[str, ...]
    strings: tuple[tuple[str, bytes], ...] = ()
    members: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PushPolicy:
    """Where signals go and how long markers, lists and signals live."""

    signal_key: str
    marker_ttl: int
    data_ttl: int
    signal_ttl: int


class OncePusher:
    """Runs :class:`Push` batches against one Redis server, one script call per batch."""

    def __init__(self, client: redis.Redis, policy: PushPolicy) -> None:
        self._script = client.register_script(_PUSH_ONCE)
        self._policy = policy

    def push(self, pushes: Sequence[Push]) -> list[int | None]:
        """Write ``pushes``; per push, how many signals it pushed, or None if already written."""
        if not pushes:
            return []
        policy = self._policy
        keys: list[str] = [policy.signal_key]
        args: list[int | str | bytes] = [policy.marker_ttl, policy.data_ttl, policy.signal_ttl]
        for push in pushes:
            writes = (*push.lists, *push.strings, *push.members)
            keys.append(push.marker)
            keys.extend(key for key, _ in writes)
            args.extend((len(push.lists), len(push.strings), len(push.members), len(push.signals)))
            args.extend(value for _, value in writes)
            args.extend(push.signals)
        return [None if result < 0 else result for result in self._script(keys=keys, args=args)]
