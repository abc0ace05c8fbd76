"""Idempotent list pushes: each record's data and its wake-up signal, at most once.

One Lua script per record sets the record's marker with ``SET NX EX`` and, only when the
marker is new, LPUSHes the record onto its lists (with EXPIRE) and then pushes each signal
member that is not already pending. A replay after a crash finds the markers and writes
nothing, so Redis ends as an uninterrupted run leaves it. Data lands before its signal
because both happen inside the script, data first. All records of a batch go in one pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

# KEYS: marker, signal list, then one data list per payload.
# ARGV: marker ttl, list ttl, signal ttl, payload count n, n payloads, then signal members.
_PUSH_ONCE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return -1
end
local n = tonumber(ARGV[4])
for i = 1, n do
  redis.call('LPUSH', KEYS[2 + i], ARGV[4 + i])
  redis.call('EXPIRE', KEYS[2 + i], ARGV[2])
end
local signalled = 0
for i = 5 + n, #ARGV do
  if not redis.call('LPOS', KEYS[2], ARGV[i]) then
    redis.call('LPUSH', KEYS[2], ARGV[i])
    signalled = signalled + 1
  end
end
redis.call('EXPIRE', KEYS[2], ARGV[3])
return signalled
"""


@dataclass(frozen=True)
class Push:
    """One record: its idempotency marker, its (list key, payload) pairs and signal members."""

    marker: str
    lists: tuple[tuple[str, bytes], ...]
    signals: tuple[str, ...]


@dataclass(frozen=True)
class PushPolicy:
    """Where signals go and how long markers, lists and signals live."""

    signal_key: str
    marker_ttl: int
    list_ttl: int
    signal_ttl: int


class OncePusher:
    """Runs :class:`Push` batches against one Redis server, one pipeline per batch."""

    def __init__(self, client: redis.Redis, policy: PushPolicy) -> None:
        self._client = client
        self._policy = policy
        self._script = client.register_script(_PUSH_ONCE)

    def push(self, pushes: Sequence[Push]) -> list[int | None]:
        """Write ``pushes``; per push, how many signals it pushed, or None if already written."""
        if not pushes:
            return []
        policy = self._policy
        pipe = self._client.pipeline(transaction=False)
        for push in pushes:
            self._script(
                keys=[push.marker, policy.signal_key, *(key for key, _ in push.lists)],
                args=[
                    policy.marker_ttl,
                    policy.list_ttl,
                    policy.signal_ttl,
                    len(push.lists),
                    *(payload for _, payload in push.lists),
                    *push.signals,
                ],
                client=pipe,
            )
        return [None if result < 0 else result for result in pipe.execute()]
