-- needs: common queue
-- sweep: ARGV startTimeout|'', abortGrace, tombstoneTtl, limit. The converger's rules by store
-- time, in memory's order, each processing at most `limit` items.
-- -> reclaimed, stalled, unstarted, timedOut, unclaimed, unresolved, pruned, purged, more (0/1)
local now = now_ms()
local grace, tomb_ttl, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local c = { reclaimed = 0, stalled = 0, unstarted = 0, timed_out = 0, unclaimed = 0, unresolved = 0,
  pruned = 0, purged = 0 }
local more = false

-- Expired leases of every queue.
local expired = 0
for _, queue in ipairs(redis.call('SMEMBERS', Q.K_QUEUES)) do
  local due = redis.call('ZRANGEBYSCORE', Q.qkey(queue, 'l'), '-inf', now, 'LIMIT', 0, limit - expired + 1)
  for _, m in ipairs(due) do
    if expired >= limit then
      more = true
      break
    end
    local r = Q.load(Q.member_id(m), false)
    if r then
      local state = r.v.s
      local changed, dead = Q.expire_lease(r, now)
      if changed then
        Q.apply(r, now, dead)
        expired = expired + 1
        if state == 'claimed' then
          c.reclaimed = c.reclaimed + 1
        elseif state == 'running' then
          c.stalled = c.stalled + 1
        else
          c.unresolved = c.unresolved + 1
        end
      end
    end
  end
end
Q.flush()

-- Items of `index` due at or before `max_score`, at most `limit`; `act(r)` handles one.
local function drain(index, max_score, state, act)
  local due = redis.call('ZRANGEBYSCORE', index, '-inf', max_score, 'LIMIT', 0, limit + 1)
  for k, m in ipairs(due) do
    if k > limit then
      more = true
      break
    end
    local r = Q.load(Q.member_id(m), false)
    if r and r.v.s == state then
      act(r)
    end
  end
  Q.flush()
end

if ARGV[1] ~= '' then
  drain(Q.K_CLAIMED, now - tonumber(ARGV[1]), 'claimed', function(r)
    Q.unstart_item(r, now)
    Q.write(r, now)
    c.unstarted = c.unstarted + 1
  end)
end
drain(Q.K_DEADLINE, now - grace, 'running', function(r)
  local dead = Q.timeout_item(r, now)
  Q.apply(r, now, dead)
  c.timed_out = c.timed_out + 1
end)
drain(Q.K_UNCLAIMED, now, 'pending', function(r)
  Q.unclaimed_item(r, now)
  Q.write(r, now)
  c.unclaimed = c.unclaimed + 1
end)
drain(Q.K_EXPIRE, now, 'completed', function(r)
  Q.prune_item(r, now)
  Q.write(r, now)
  c.pruned = c.pruned + 1
end)

-- Purge tombstones older than the tombstone TTL; cursors before them become compacted.
local horizon = tonumber(redis.call('GET', Q.K_HORIZON) or '0')
local old_horizon = horizon
local due = redis.call('ZRANGEBYSCORE', Q.K_TOMB, '-inf', now - tomb_ttl, 'LIMIT', 0, limit + 1)
for k, m in ipairs(due) do
  if k > limit then
    more = true
    break
  end
  local id = Q.member_id(m)
  redis.call('ZREM', Q.K_TOMB, m)
  local f = redis.call('HMGET', Q.ikey(id), 's', 'cs', 'q', 'dk')
  if f[1] == 'deleted' then
    redis.call('DEL', Q.ikey(id))
    redis.call('ZREM', Q.K_FEED, id)
    horizon = math.max(horizon, tonumber(f[2]))
    if f[4] then
      local dedup = Q.qkey(f[3], 'u')
      if redis.call('HGET', dedup, f[4]) == id then
        redis.call('HDEL', dedup, f[4])
      end
    end
    c.purged = c.purged + 1
  end
end
if horizon > old_horizon then
  redis.call('SET', Q.K_HORIZON, int(horizon))
end

Q.finish()
return { c.reclaimed, c.stalled, c.unstarted, c.timed_out, c.unclaimed, c.unresolved, c.pruned, c.purged,
  more and 1 or 0 }
