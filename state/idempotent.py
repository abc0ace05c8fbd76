"""Idempotent record writes: everything one record writes to Redis, at most once.

A record is a :class:`Push`: a *marker* write that says whether the record is new, then its
other writes in order. One Lua script per batch walks the batch's records. For each record it
runs the marker (``SET NX EX`` of a marker key, or ``SADD`` of the record id to a dedup set,
as bkmonitor's data dedup does); only when the marker is new does it run the record's other
writes: an optional QoS *gate*, then data (LPUSH, SET, SADD, ZADD, HSET, HSET-if-larger,
HDEL-if-unchanged), then *signals* (LPUSH of a member unless it is already pending). A replay
after a crash finds the markers and writes nothing, so Redis ends as an uninterrupted run
leaves it; a gate counter is incremented once per record, never again on replay.

Writes name their backend (bkmonitor's ``queue`` db 9, ``service`` db 10, ...); the script
``SELECT``s the database of each write, so a record's queue and service keys commit together,
atomically, on one server. A batch is one command: one round trip, atomic, so a consumer never
sees a signal before its data (a batch of more than :data:`MAX_CALL_BYTES` of values is several
commands in one round trip, each atomic over its records). Inside it, list pushes and EXPIREs
are gathered per key (a list's first push of the batch, then one variadic LPUSH of the rest,
and one EXPIRE per key per batch), which leaves Redis exactly as running each write in turn
would.

A record whose write fails for its own values (a key holding another type, a score that is no
number) does not fail the batch: its result is the error text and its marker is taken back
(Redis keeps whatever of its writes had run; a replay tries it again). With ``replicas``, the
batch counts as written only once that many replicas acknowledged it (``WAIT``), so a failover
to one of them loses nothing that was acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import redis

from operators import _native
from operators.memo import remember
from state.keys import Backend, KeyDef


class Op(StrEnum):
    """What one write does (the Lua script's opcodes)."""

    MARK = "mark"  # marker: SET key 1 NX EX ttl; the record is new iff it was set
    SADD = "sadd"  # SADD key value (+EXPIRE); as a marker: new iff the member was added
    GATE = "gate"  # if key exists: HINCRBY key field 1; above the limit the record stops here
    LPUSH = "lpush"  # LPUSH key value (+EXPIRE)
    SET = "set"  # SET key value (+EX)
    ZADD = "zadd"  # ZADD key score value (+EXPIRE)
    ZTRIM = "ztrim"  # ZREMRANGEBYSCORE key param value: drop members scored in [param, value]
    HSET = "hset"  # HSET key field value (+EXPIRE)
    HMAX = "hmax"  # HSET key field value unless the field holds a larger number (+EXPIRE)
    HDROP = "hdrop"  # HDEL key field if the field still holds value (a claim that expired)
    SIGNAL = "signal"  # LPUSH key value unless value is already in the list; EXPIRE always


DUPLICATE = -1
"""A push result: the marker existed, so the record was written before and nothing was."""
GATED = -2
"""A push result: the record's gate counter passed its limit, so only the marker and the
counter were written."""

Result = int | str
"""A push result: signals pushed, :data:`DUPLICATE`, :data:`GATED`, or the error text of a
record whose write failed."""


class NotReplicated(redis.RedisError):
    """Fewer replicas than asked acknowledged a batch; ``results`` are the batch's results on
    the server that ran it."""

    def __init__(self, acknowledged: int, wanted: int, results: list[Result]) -> None:
        super().__init__(f"{acknowledged} of {wanted} replicas acknowledged the writes")
        self.results = results


class Write(NamedTuple):
    """One Redis write. ``param`` is the ZADD score, the hash field (HSET, HMAX, HDROP, GATE) or
    unused; a GATE's ``value`` is its limit. ``ttl`` 0 leaves the key's TTL alone. (A named
    tuple: records build several of these each, and tuples build fastest.)"""

    op: Op
    key: str
    value: bytes | str = b""
    ttl: int = 0
    param: str = ""
    backend: Backend = Backend.QUEUE


def write(
    op: Op,
    key: KeyDef,
    prefix: str,
    value: bytes | str | int | float = b"",
    *,
    at: Mapping[str, Any] | None = None,
    param: str | float = "",
    ttl: int | None = None,
) -> Write:
    """A :class:`Write` to the registered ``key`` (formatted with ``at``), on the key's backend
    and, unless ``ttl`` is given, with its registered TTL."""
    return Write(
        op,
        _full_key(key, prefix, at),
        value if type(value) is bytes or type(value) is str else str(value),
        key.ttl if ttl is None else ttl,
        param if type(param) is str else str(param),
        key.backend,
    )


_KEYS_KEPT = 8192
_keys: dict[tuple, str] = {}


def _full_key(key: KeyDef, prefix: str, at: Mapping[str, Any] | None) -> str:
    """``key.key(prefix, **at)``, remembered for the keys that recur (a strategy's alert list,
    the signal list) in a small bounded table."""
    try:
        memo = (key.name, prefix, *at.items()) if at else (key.name, prefix)
        full = _keys.get(memo)
    except TypeError:  # a value that cannot be hashed
        return key.key(prefix, **(at or {}))
    if full is None:
        full = remember(_keys, memo, key.key(prefix, **(at or {})), _KEYS_KEPT)
    return full


class Push(NamedTuple):
    """One record: its marker, then its writes in order (gate first, signals last)."""

    marker: Write
    writes: tuple[Write, ...] = ()


_PUSH_ONCE = (Path(__file__).parent / "push_once.lua").read_text()
"""The script one call per batch runs (``state/push_once.lua``; its head says what it takes and
returns, and how it gathers list pushes and EXPIREs)."""


MAX_CALL_BYTES = 16 << 20
"""The most bytes of values one script call carries: a larger batch is written in several calls,
in order, each its records' writes. Redis counts a call's arguments against ``maxmemory`` while
it runs and refuses the whole call past it (an outage to the sink, so the same call would be
retried until the flow stops), however little of it is new data: a burst of large records
(replayed duplicates among them) must not need more free memory than a few of them write. A
single record larger than this is still one call of its own."""

_SPECS_KEPT = 4096
"""How many distinct write specs a pusher remembers (params such as ZADD scores vary)."""


class OncePusher:
    """Runs :class:`Push` batches against one Redis server, one script call per batch.

    ``dbs`` maps each backend the writes name to its database on that server.
    """

    def __init__(
        self,
        client: redis.Redis,
        dbs: Mapping[Backend, int],
        replicas: int = 0,
        replica_timeout_ms: int = 1000,
    ) -> None:
        self._client = client
        self._script = client.register_script(_PUSH_ONCE)
        self._replicas = replicas
        self._replica_timeout_ms = replica_timeout_ms
        self._dbs = dict(dbs)
        self._specs: dict[tuple[Op, Backend, int, str], str] = {}

    def _spec(self, op: Op, ttl: int, param: str, backend: Backend) -> str:
        """A write's ``"op db ttl param"`` argument, made once per kind of write."""
        spec = f"{op.value} {self._dbs[backend]} {ttl} {param}"
        return remember(self._specs, (op, backend, ttl, param), spec, _SPECS_KEPT)

    def push(self, pushes: Sequence[Push]) -> list[Result]:
        """Write ``pushes``; per push, the signals it pushed, :data:`DUPLICATE`, :data:`GATED`
        or its error text. A batch of more than :data:`MAX_CALL_BYTES` of values is sent as
        several calls in one round trip. Raises :class:`NotReplicated` when fewer than
        ``replicas`` acknowledged the batch within ``replica_timeout_ms``."""
        batch = list(pushes)
        if not batch:
            return []
        # Per push its number of writes, then per write its spec and value (in C).
        calls = [_native.flatten_pushes(part, self._specs, self._spec) for part in _parts(batch)]
        if len(calls) == 1 and not self._replicas:
            keys, args = calls[0]
            return _results(self._script(keys=keys, args=args))
        pipe = self._client.pipeline(transaction=False)
        for keys, args in calls:
            self._script(keys=keys, args=args, client=pipe)
        if self._replicas:
            # WAIT counts every write this connection sent before it: all of the calls.
            pipe.execute_command("WAIT", self._replicas, self._replica_timeout_ms)
        # The server's own error, not the pipeline's rewording of it (which hides its code).
        replies = pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        results = [result for raw in replies[: len(calls)] for result in _results(raw)]
        if self._replicas and replies[-1] < self._replicas:
            raise NotReplicated(replies[-1], self._replicas, results)
        return results


def _parts(batch: list[Push]) -> list[list[Push]]:
    """``batch`` in order, in parts of up to :data:`MAX_CALL_BYTES` of values (a larger push
    alone)."""
    if len(batch) > 1 and _native.values_size(batch) > MAX_CALL_BYTES:
        half = len(batch) // 2
        return _parts(batch[:half]) + _parts(batch[half:])
    return [batch]


def _results(raw: list[int | bytes]) -> list[Result]:
    return [r.decode(errors="replace") if isinstance(r, bytes) else r for r in raw]
