-- needs: common queue
-- enqueue(items), all-or-nothing. Per item, a header of 10 arguments:
--   id, queue, priority, runAt|'', delay, claimTimeout|'', dedupKey|'', dedupTtl|'', dedupMode k|r,
--   opId ('' for null, else '=' + text)
-- then n and n field/value pairs stored as they are (q p pr ma ctl ftl, and to ct dl dk mt op when
-- set); the script adds s, ra, sq, cr, up, cs and du.
-- -> id, seq, status (c created | d deduplicated | r replaced) per item
local now = now_ms()
local nows = int(now)

-- Parse the items and check every id before writing anything.
local items = {}
local seen = {}
local i = 1
while i <= #ARGV do
  local n = tonumber(ARGV[i + 10])
  local it = { id = ARGV[i], queue = ARGV[i + 1], b = i, first = i + 11, last = i + 10 + 2 * n }
  i = i + 11 + 2 * n
  local key = Q.ikey(it.id)
  it.key = key
  if redis.call('EXISTS', key) == 1 then
    local cur = redis.call('HMGET', key, 's', 'op', 'sq')
    local op = ARGV[it.b + 9]
    if cur[1] ~= 'deleted' and not (#op > 1 and cur[2] == string.sub(op, 2)) then
      return redis.error_reply('ROTA_TASK_EXISTS ' .. it.id)
    end
    it.cur = cur
  end
  if seen[it.id] then
    return redis.error_reply('ROTA_TASK_EXISTS ' .. it.id)
  end
  seen[it.id] = true
  items[#items + 1] = it
end

local out = {}
local function result(id, seq, code)
  out[#out + 1] = id
  out[#out + 1] = seq
  out[#out + 1] = code
end

for _, it in ipairs(items) do
  local b, id, queue = it.b, it.id, it.queue
  local cur = it.cur
  local run_at = ARGV[b + 3] ~= '' and tonumber(ARGV[b + 3]) or now + tonumber(ARGV[b + 4])
  local dkey = ARGV[b + 6]
  local done = false
  if cur and cur[1] ~= 'deleted' then
    -- An ambiguous retry of the same opId: already stored.
    result(id, tonumber(cur[3]), 'c')
    done = true
  elseif dkey ~= '' then
    local dedup = Q.qkey(queue, 'u')
    local holder_id = redis.call('HGET', dedup, dkey)
    local holder = holder_id and redis.call('HMGET', Q.ikey(holder_id), 's', 'dk', 'du', 'sq')
    if holder and holder[2] == dkey and Q.dedup_active(holder[1], holder[3], now) then
      if ARGV[b + 8] == 'r' and holder[1] == 'pending' then
        -- The pending holder takes the new payload, priority, runAt and (if given) meta.
        local r = Q.load(holder_id, false)
        for k = it.first, it.last, 2 do
          local f = ARGV[k]
          if f == 'p' or f == 'pr' or f == 'mt' then
            Q.set(r, f, ARGV[k + 1])
          end
        end
        Q.set(r, 'ra', int(run_at))
        Q.set(r, 'up', nows)
        Q.set(r, 'cs', int(Q.next_seq()))
        Q.write(r, now)
        result(holder_id, tonumber(holder[4]), 'r')
      else
        result(holder_id, tonumber(holder[4]), 'd')
      end
      done = true
    else
      redis.call('HSET', dedup, dkey, id)
    end
  end
  if not done then
    local seq = Q.next_seq()
    local du = nil
    if dkey ~= '' and ARGV[b + 7] ~= '' then
      du = int(now + tonumber(ARGV[b + 7]))
    end
    if cur then
      -- Replacing a tombstone: the generic path also leaves its old indexes.
      local f = { du = du }
      for k = it.first, it.last, 2 do
        f[ARGV[k]] = ARGV[k + 1]
      end
      f.ra = int(run_at)
      Q.write(Q.create(id, f, now, seq, { cur[1], cur[3] }), now)
    else
      local seqs = int(seq)
      redis.call('HSET', it.key, 's', 'pending', 'ra', int(run_at), 'sq', seqs, 'cs', seqs, 'cr', nows, 'up', nows,
        unpack(ARGV, it.first, it.last))
      if du then
        redis.call('HSET', it.key, 'du', du)
      end
      local ct = ARGV[b + 5]
      Q.index_new(id, queue, tonumber(ARGV[b + 2]), run_at, seq, ct ~= '' and tonumber(ct) or nil, now)
    end
    result(id, seq, 'c')
  end
end
Q.finish()
return out
