-- The push-once script (state/idempotent.py OncePusher): a batch of records, each written at
-- most once.
--
-- KEYS: per record, the key of each of its writes (marker first).
-- ARGV: per record, its number of writes w; then per write: "op db ttl param", value.
-- Returns per record: -1 duplicate, -2 gated, the number of signals pushed, or a string
-- starting "ERR " when one of the record's writes failed.
--
-- Markers, gates and the other data writes run record by record, as they come. List pushes
-- (LPUSH and signals) and EXPIREs are gathered and run once per key at the end: one variadic
-- LPUSH per list, one EXPIRE per key (its last TTL). The script is atomic, so Redis ends
-- exactly as if each write had run in order: a list's values keep their order, and a signal
-- is pending if the list holds it or an earlier record of the batch pushed it. (SET clears a
-- key's TTL, so a SET's EXPIRE runs at once.) A batch's first LPUSH to a list runs at once, as
-- a signal's LPOS always does, so that a write to a key holding another type fails in its
-- record, not at the end (with no TYPE check). Each key is written by one kind of write (the
-- key registry gives each key one type).
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
-- A refusal of the server rather than of a record's values (out of memory, a replica, a failed
-- save, too few replicas) refuses the whole call with that error, for the caller to wait out:
-- Redis refuses these from a script's first write on, so nothing of the call was written.
local REFUSALS = {OOM = true, READONLY = true, MISCONF = true, NOREPLICAS = true}
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
-- The commands the script runs, checked once per call before anything is written (Redis 7's
-- redis.acl_check_cmd; KEYS[1] stands for every key, all of which EVALSHA checked already).
-- Redis checks a script's commands only as each runs, so a user refused one (LPOS, say) would
-- have every record refused after its first writes; refusing the call instead lets the caller
-- wait it out, as it waits out a user refused EVALSHA, until a grant mends it.
if redis.acl_check_cmd then
  local key = KEYS[1]
  local probes = {
    {'SELECT', '0'}, {'SET', key, '1'}, {'DEL', key}, {'EXISTS', key}, {'EXPIRE', key, '1'},
    {'SADD', key, 'v'}, {'SREM', key, 'v'}, {'LPUSH', key, 'v'}, {'LPOS', key, 'v'},
    {'ZADD', key, '1', 'v'}, {'ZREMRANGEBYSCORE', key, '0', '1'}, {'HSET', key, 'f', 'v'},
    {'HGET', key, 'f'}, {'HDEL', key, 'f'}, {'HINCRBY', key, 'f', '1'},
  }
  for _, probe in ipairs(probes) do
    if not redis.acl_check_cmd(unpack(probe)) then
      return redis.error_reply(
        'NOPERM this user may not run ' .. probe[1] .. ', which the push-once script runs')
    end
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
    result = tostring(result)
    if REFUSALS[string.match(result, '^(%u+) ')] then
      return redis.error_reply(result)
    end
    result = 'ERR ' .. result
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
