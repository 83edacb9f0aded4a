-- lib-kv: KV records, revisions, watch events and leases.
--
-- Layout under the prefix P:
--   P:rev          current store revision (every write txn bumps it by one)
--   P:kv           hash; field 'm'..key = 'createRev,modRev,version,lease', field 'v'..key = value
--   P:kv:keys      sorted set of every key (score 0), so ZRANGEBYLEX gives UTF-8 byte order
--   P:events       stream; one entry per event, id '<revision>-<n>', fields k [v m]
--   P:compact      explicit compaction revision (history is also trimmed to the newest
--                  ARGV[1] revisions; see compact_revision())
--   P:leases       sorted set lease id -> expiry (store ms); P:lease:ttl hash id -> ttl
--   P:lk:<id>      set of keys attached to lease <id>; P:lease:seq id counter
-- Every KV script takes ARGV[1] = history bound (revisions) and ARGV[2] = how many expired
-- leases to sweep before it runs; its own arguments start at ARGV[3].
local KV = {}
local K_KV, K_KEYS, K_EVENTS, K_LEASES, K_LTTL
-- Store time of the current call (KV.start).
local now

local function lease_set(id)
  return P .. ':lk:' .. id
end

-- Start the next revision: the events emitted until the next begin() share it.
function KV.begin()
  KV.rev = KV.rev + 1
  KV.nev = 0
  redis.call('SET', P .. ':rev', int(KV.rev))
end

-- Append one event of the current revision, trimming history older than the bound.
local function emit(...)
  local id = int(KV.rev) .. '-' .. KV.nev
  KV.nev = KV.nev + 1
  local low = KV.rev - KV.history + 1
  if low > 1 then
    redis.call('XADD', K_EVENTS, 'MINID', '~', int(low), id, ...)
  else
    redis.call('XADD', K_EVENTS, id, ...)
  end
end

-- Revisions at or below this are no longer in the history.
function KV.compact_revision()
  local explicit = tonumber(redis.call('GET', P .. ':compact') or '0')
  return math.max(explicit, KV.rev - KV.history, 0)
end

-- The stored record of `key`, or nil.
function KV.read(key)
  local r = redis.call('HMGET', K_KV, 'm' .. key, 'v' .. key)
  if not r[1] then
    return nil
  end
  local c, m, ver, lease = string.match(r[1], '^(%d+),(%d+),(%d+),(.*)$')
  return { key = key, value = r[2], c = tonumber(c), m = tonumber(m), ver = tonumber(ver), lease = lease }
end

-- Reply form of a record: { key, value, createRevision, modRevision, version, lease or '' }.
function KV.out(rec)
  if not rec then
    return false
  end
  return { rec.key, rec.value, rec.c, rec.m, rec.ver, rec.lease }
end

function KV.lease_exists(id)
  return redis.call('ZSCORE', K_LEASES, id) ~= false
end

-- Write `key` in the current revision (KV.begin() first). Returns the previous record or nil.
function KV.put(key, value, lease)
  local prev = KV.read(key)
  local c = prev and prev.c or KV.rev
  local ver = prev and (prev.ver + 1) or 1
  if prev and prev.lease ~= '' and prev.lease ~= lease then
    redis.call('SREM', lease_set(prev.lease), key)
  end
  if lease ~= '' and not (prev and prev.lease == lease) then
    redis.call('SADD', lease_set(lease), key)
  end
  local meta = int(c) .. ',' .. int(KV.rev) .. ',' .. int(ver) .. ',' .. lease
  redis.call('HSET', K_KV, 'm' .. key, meta, 'v' .. key, value)
  if not prev then
    redis.call('ZADD', K_KEYS, 0, key)
  end
  emit('k', key, 'v', value, 'm', meta)
  return prev
end

-- Delete a record read by KV.read() in the current revision.
function KV.del(rec)
  redis.call('HDEL', K_KV, 'm' .. rec.key, 'v' .. rec.key)
  redis.call('ZREM', K_KEYS, rec.key)
  if rec.lease ~= '' then
    redis.call('SREM', lease_set(rec.lease), rec.key)
  end
  emit('k', rec.key)
end

-- ZRANGEBYLEX bounds of every key starting with `prefix` (UTF-8 never contains byte 0xFF).
function KV.bounds(prefix)
  if prefix == '' then
    return '-', '+'
  end
  return '[' .. prefix, '(' .. prefix .. '\255'
end

-- Keys between lex bounds, at most `limit` (nil: all). Returns the keys and whether more exist.
function KV.keys(min, max, limit)
  if not limit then
    return redis.call('ZRANGEBYLEX', K_KEYS, min, max), false
  end
  local keys = redis.call('ZRANGEBYLEX', K_KEYS, min, max, 'LIMIT', 0, limit + 1)
  if #keys > limit then
    keys[#keys] = nil
    return keys, true
  end
  return keys, false
end

-- Drop a lease: its keys are deleted in one revision of their own, with delete events.
function KV.drop_lease(id)
  local set = lease_set(id)
  local keys = redis.call('SMEMBERS', set)
  redis.call('DEL', set)
  redis.call('ZREM', K_LEASES, id)
  redis.call('HDEL', K_LTTL, id)
  local begun = false
  for _, key in ipairs(keys) do
    local rec = KV.read(key)
    if rec and rec.lease == id then
      if not begun then
        KV.begin()
        begun = true
      end
      KV.del(rec)
    end
  end
end

-- Drop up to `limit` leases whose expiry has passed by store time.
function KV.sweep(now, limit)
  local ids = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    KV.drop_lease(id)
  end
end

-- The earliest lease expiry, or -1 when there is no lease (clients arm their sweep timer on it).
function KV.earliest()
  local r = redis.call('ZRANGE', K_LEASES, 0, 0, 'WITHSCORES')
  if #r == 0 then
    return -1
  end
  return tonumber(r[2])
end

function KV.grant(now, ttl)
  local id = string.format('%016x', redis.call('INCR', P .. ':lease:seq'))
  redis.call('ZADD', K_LEASES, now + ttl, id)
  redis.call('HSET', K_LTTL, id, ttl)
  return id
end

function KV.ttl(id)
  return tonumber(redis.call('HGET', K_LTTL, id))
end

function KV.expiry(id)
  local s = redis.call('ZSCORE', K_LEASES, id)
  return s and tonumber(s) or nil
end

function KV.set_expiry(id, at)
  redis.call('ZADD', K_LEASES, at, id)
end

function KV.lease_keys(id)
  return redis.call('SMEMBERS', lease_set(id))
end

-- The start of every KV call (after P is set): the prefix's keys, the revision, store time, then
-- the bounded lease sweep.
function KV.start(ARGV)
  K_KV = P .. ':kv'
  K_KEYS = P .. ':kv:keys'
  K_EVENTS = P .. ':events'
  K_LEASES = P .. ':leases'
  K_LTTL = P .. ':lease:ttl'
  KV.rev = tonumber(redis.call('GET', P .. ':rev') or '0')
  KV.history = tonumber(ARGV[1])
  KV.nev = 0
  now = now_ms()
  KV.sweep(now, tonumber(ARGV[2]))
end

-- Common reply head: { store now, earliest lease expiry or -1, revision, ... }.
local function reply(...)
  return { now, KV.earliest(), KV.rev, ... }
end
