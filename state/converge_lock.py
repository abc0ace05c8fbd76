"""bkmonitor's converge counter lock (``processor.lock``) for several independent deployments.

Inside one deployment a converge dimension is one worker's keyed state, so no lock is needed
(:class:`operators.converge.engine.NoLock`). Deployments that share a Redis take this counter:
INCR; above ``parallel`` DECR (and EXPIRE if the key has no TTL) and report busy; otherwise
EXPIRE 60. Release DECRs only while the counter is positive.
"""

from __future__ import annotations

import redis

from state.keys import CONVERGE_LOCK_KEY


class RedisLock:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def _key(self, dimension: str) -> str:
        return CONVERGE_LOCK_KEY.key(self._prefix, dimension=dimension)

    def acquire(self, dimension: str, parallel: int) -> bool:
        key = self._key(dimension)
        if self._client.incr(key) > parallel:
            self._client.decr(key)
            if self._client.ttl(key) < 0:
                self._client.expire(key, CONVERGE_LOCK_KEY.ttl)
            return False
        self._client.expire(key, CONVERGE_LOCK_KEY.ttl)
        return True

    def release(self, dimension: str) -> None:
        key = self._key(dimension)
        if int(self._client.get(key) or 0) > 0:
            self._client.decr(key)
