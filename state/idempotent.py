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
sees a signal before its data. Inside it, list pushes and EXPIREs are gathered per key (a
list's first push of the batch, then one variadic LPUSH of the rest, and one EXPIRE per key per
batch), which leaves Redis exactly as running each write in turn would.

A record whose write fails for its own values (a key holding another type, a score that is no
number) does not fail the batch: its result is the error text and its marker is taken back
(Redis keeps whatever of its writes had run; a replay tries it again). With ``replicas``, the
batch counts as written only once that many replicas acknowledged it (``WAIT``), so a failover
to one of them loses nothing that was acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
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


# KEYS: per record, the key of each of its writes (marker first).
# ARGV: per record, its number of writes w; then per write: "op db ttl param", value.
# Returns per record: -1 duplicate, -2 gated, the number of signals pushed, or a string
# starting "ERR " when one of the record's writes failed.
#
# Markers, gates and the other data writes run record by record, as they come. List pushes
# (LPUSH and signals) and EXPIREs are gathered and run once per key at the end: one variadic
# LPUSH per list, one EXPIRE per key (its last TTL). The script is atomic, so Redis ends
# exactly as if each write had run in order: a list's values keep their order, and a signal
# is pending if the list holds it or an earlier record of the batch pushed it. (SET clears a
# key's TTL, so a SET's EXPIRE runs at once.) A batch's first LPUSH to a list runs at once, as
# a signal's LPOS always does, so that a write to a key holding another type fails in its
# record, not at the end (with no TYPE check). Each key is written by one kind of write (the
# key registry gives each key one type).
_PUSH_ONCE = """
local selected = nil
local function use(db)
  if db ~= selected then
    redis.call('SELECT', db)
    selected = db
  end
end
local order, lists = {}, {}
local function touch(db, key)
  local in_db = lists[db]
  if in_db == nil then
    in_db = {}
    lists[db] = in_db
  end
  local entry = in_db[key]
  if entry == nil then
    entry = {db = db, key = key, values = {}, has = {}, ttl = 0, list = false}
    in_db[key] = entry
    order[#order + 1] = entry
  end
  return entry
end
local function defer_expire(entry, ttl)
  if ttl > 0 then
    entry.ttl = ttl
  end
end
local function push(entry, value)
  entry.values[#entry.values + 1] = value
end
local specs = {}
local function spec(text)
  local parsed = specs[text]
  if parsed == nil then
    local op, db, ttl, param = string.match(text, '^(%a+) (%d+) (%d+) (.*)$')
    parsed = {op, db, tonumber(ttl), param}
    specs[text] = parsed
  end
  return parsed
end
local marked = false
-- One record: its w writes from ARGV[a] and KEYS[k]; -1 duplicate, -2 gated, else signals.
local function record(a, k, w)
  local result = nil
  for i = 0, w - 1 do
    local parsed = spec(ARGV[a])
    local op, db, ttl, param = parsed[1], parsed[2], parsed[3], parsed[4]
    local value = ARGV[a + 1]
    local key = KEYS[k + i]
    a = a + 2
    if result == nil then
      use(db)
      local new
      if op == 'mark' then
        new = redis.call('SET', key, '1', 'NX', 'EX', ttl)
      else
        new = redis.call('SADD', key, value) == 1
        defer_expire(touch(db, key), ttl)
      end
      result = new and 0 or -1
      marked = result == 0
    elseif result >= 0 then
      if op == 'gate' then
        use(db)
        if redis.call('EXISTS', key) == 1 and
            redis.call('HINCRBY', key, param, 1) > tonumber(value) then
          result = -2
        end
      elseif op == 'signal' then
        local entry = touch(db, key)
        if not entry.has[value] then
          use(db)
          local found = redis.call('LPOS', key, value)
          -- pending from here on: found in the list, or pushed by this record
          entry.has[value] = true
          if not found then
            push(entry, value)
            result = result + 1
          end
        end
        defer_expire(entry, ttl)
      elseif op == 'lpush' then
        local entry = touch(db, key)
        if entry.list then
          push(entry, value)
        else
          use(db)
          redis.call('LPUSH', key, value)
          entry.list = true
        end
        defer_expire(entry, ttl)
      elseif op == 'set' then
        use(db)
        redis.call('SET', key, value)
        if ttl > 0 then
          redis.call('EXPIRE', key, ttl)
        end
      else
        use(db)
        if op == 'sadd' then
          redis.call('SADD', key, value)
        elseif op == 'zadd' then
          redis.call('ZADD', key, param, value)
        elseif op == 'ztrim' then
          redis.call('ZREMRANGEBYSCORE', key, param, value)
        elseif op == 'hset' then
          redis.call('HSET', key, param, value)
        elseif op == 'hmax' then
          local old = tonumber(redis.call('HGET', key, param))
          if old == nil or old < tonumber(value) then
            redis.call('HSET', key, param, value)
          end
        elseif op == 'hdrop' then
          if redis.call('HGET', key, param) == value then
            redis.call('HDEL', key, param)
          end
        end
        defer_expire(touch(db, key), ttl)
      end
    end
  end
  return result
end
-- A record whose write fails (its values, e.g. a key of another type) reports the error as its
-- result; its marker is taken back, so that a replay tries it again, and the batch goes on.
local function unmark(a, k)
  local parsed = spec(ARGV[a])
  use(parsed[2])
  if parsed[1] == 'mark' then
    redis.call('DEL', KEYS[k])
  else
    redis.call('SREM', KEYS[k], ARGV[a + 1])
  end
end
local results = {}
local a, k = 1, 1
while a <= #ARGV do
  local w = tonumber(ARGV[a])
  marked = false
  local ok, result = pcall(record, a + 1, k, w)
  if not ok then
    if type(result) == 'table' then
      result = result.err
    end
    result = 'ERR ' .. tostring(result)
    if marked then
      pcall(unmark, a + 1, k)
    end
  end
  results[#results + 1] = result
  a = a + 1 + 2 * w
  k = k + w
end
for _, entry in ipairs(order) do
  local values = entry.values
  if #values > 0 then
    use(entry.db)
    for first = 1, #values, 1000 do
      redis.call('LPUSH', entry.key, unpack(values, first, math.min(first + 999, #values)))
    end
  end
end
for _, entry in ipairs(order) do
  if entry.ttl > 0 then
    use(entry.db)
    redis.call('EXPIRE', entry.key, entry.ttl)
  end
end
return results
"""


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
        or its error text. Raises :class:`NotReplicated` when fewer than ``replicas``
        acknowledged the batch within ``replica_timeout_ms``."""
        if not pushes:
            return []
        # Per push its number of writes, then per write its spec and value (in C).
        keys, args = _native.flatten_pushes(list(pushes), self._specs, self._spec)
        if not self._replicas:
            return _results(self._script(keys=keys, args=args))
        pipe = self._client.pipeline(transaction=False)
        self._script(keys=keys, args=args, client=pipe)
        pipe.execute_command("WAIT", self._replicas, self._replica_timeout_ms)
        raw, acknowledged = pipe.execute()
        results = _results(raw)
        if acknowledged < self._replicas:
            raise NotReplicated(acknowledged, self._replicas, results)
        return results


def _results(raw: list[int | bytes]) -> list[Result]:
    return [r.decode(errors="replace") if isinstance(r, bytes) else r for r in raw]
