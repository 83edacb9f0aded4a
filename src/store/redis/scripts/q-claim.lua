-- needs: common queue
-- claim: ARGV queue, owner, limit, leaseTtl, start '1'|'', from 'p'|'c', expireLimit, promoteLimit
-- [, 'ids', id...] (request.ids: consider only those items) | [, 'park', mailbox, parkTtl]
-- -> one JSON text (cjson, see Q.new_claim_reply), the claimed items in claim order. One bulk string
-- instead of ~50 per item: converting each field to a reply string and back dominated the cost of a
-- claim, on the server and in the client.
local now = now_ms()
local nows = int(now)
local queue, owner = ARGV[1], ARGV[2]
local limit, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local start, from_completed = ARGV[5] == '1', ARGV[6] == 'c'
local leased = Q.qkey(queue, 'l')

-- Expired leases of the queue first (reclaim, stall, unresolve), bounded per call.
for _, m in ipairs(redis.call('ZRANGEBYSCORE', leased, '-inf', nows, 'LIMIT', '0', ARGV[7])) do
  local r = Q.load(Q.member_id(m), false)
  if r then
    local changed, dead = Q.expire_lease(r, now)
    if changed then
      Q.apply(r, now, dead)
    end
  end
end
Q.flush()

local out = Q.new_claim_reply()
if ARGV[9] == 'ids' then
  -- Only the listed items of this queue that are claimable, in claim order, at most `limit`;
  -- nextRunAt stays nil. An expired lease the bounded pass above did not reach is applied first,
  -- as memory applies every expired lease of the queue before looking at the ids.
  local wanted = {}
  for k = 10, #ARGV do
    local r = Q.load(ARGV[k], true)
    if r and r.v.q == queue then
      local le = r.v.le
      if le and tonumber(le) <= now then
        local changed, dead = Q.expire_lease(r, now)
        if changed then
          Q.apply(r, now, dead)
          r = Q.load(r.id, true)
        end
      end
      local v = r.v
      if from_completed then
        if v.s == 'completed' then
          r.k1, r.k2, r.k3 = tonumber(v.co), tonumber(v.sq), 0
          wanted[#wanted + 1] = r
        end
      elseif v.s == 'pending' and tonumber(v.ra) <= now then
        r.k1, r.k2, r.k3 = -tonumber(v.pr or '0'), tonumber(v.ra), tonumber(v.sq)
        wanted[#wanted + 1] = r
      end
    end
  end
  -- pending: priority desc, runAt asc, seq asc; completed: completedAt asc, seq asc.
  table.sort(wanted, function(a, b)
    if a.k1 ~= b.k1 then
      return a.k1 < b.k1
    end
    if a.k2 ~= b.k2 then
      return a.k2 < b.k2
    end
    return a.k3 < b.k3
  end)
  for k = 1, math.min(limit, #wanted) do
    local r = wanted[k]
    Q.claim_item(r, owner, ttl, start, from_completed, now)
    out[#out + 1] = Q.reply(r)
    Q.write(r, now)
  end
  Q.finish()
  return cjson.encode(out)
end

if not from_completed then
  local ready, delayed = Q.qkey(queue, 'r'), Q.qkey(queue, 'd')
  -- Promote due delayed items into the ready set (bounded per call).
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', nows, 'LIMIT', '0', ARGV[8])
  if #due > 0 then
    local add = {}
    for _, m in ipairs(due) do
      local f = redis.call('HMGET', Q.ikey(Q.member_id(m)), 'pr', 'ra')
      add[#add + 1] = Q.negated(f[1] or '0')
      add[#add + 1] = pad(tonumber(f[2])) .. m
    end
    chunked('ZREM', delayed, due, 4000)
    chunked('ZADD', ready, add, 4000)
  end
  Q.claim_ready(queue, owner, limit, ttl, start, now, out)
else
  local done = Q.qkey(queue, 'c')
  for _, m in ipairs(redis.call('ZRANGE', done, '0', int(limit - 1))) do
    local r = Q.load(Q.member_id(m), true)
    if r and r.v.s == 'completed' then
      Q.claim_item(r, owner, ttl, false, true, now)
      out[#out + 1] = Q.reply(r)
      Q.write(r, now)
    end
  end
end
Q.flush()

-- A worker's claim may leave a parked claim for what it did not get (see Q.handoff).
if ARGV[9] == 'park' then
  local parked, short = Q.qkey(queue, 'k'), limit - (#out - 2)
  if short > 0 and not from_completed then
    redis.call('HSET', parked, ARGV[10], cjson.encode({ o = owner, l = short, t = ttl, s = start,
      u = now + tonumber(ARGV[11]) }))
  else
    redis.call('HDEL', parked, ARGV[10])
  end
end

if #out - 2 < limit then
  local next_at = Q.first_score(leased)
  if not from_completed then
    local d = Q.first_score(Q.qkey(queue, 'd'))
    if d and (not next_at or d < next_at) then
      next_at = d
    end
  end
  if next_at then
    out[1] = int(next_at)
  end
end
Q.finish()
return cjson.encode(out)
