-- needs: common queue
-- enqueue(items), all-or-nothing. ARGV[1] is one JSON array (cjson) with one array of text per
-- item, so a chunk of 1 000 items is one argument instead of ~25 000 for the client to flatten:
--   id, queue, priority, runAt|'', delay, claimTimeout|'', dedupKey|'', dedupTtl|'', dedupMode k|r,
--   opId ('' for null, else '=' + text),
-- then field/value pairs stored as they are (q p; pr ma ctl ftl unless they have their default, see
-- lib-queue.lua; to ct dl dk mt op when set); the script adds s, ra, sq, cr, up, cs and du.
-- -> id, seq, status (c created | d deduplicated | r replaced) per item
local now = now_ms()
local nows = int(now)

-- Parse the items and check every id before writing anything.
local items = {}
local seen = {}
for _, a in ipairs(cjson.decode(ARGV[1])) do
  local it = { id = a[1], queue = a[2], a = a, first = 11, last = #a }
  local key = Q.ikey(it.id)
  it.key = key
  if redis.call('EXISTS', key) == 1 then
    local cur = redis.call('HMGET', key, 's', 'op', 'sq')
    local op = a[10]
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

local last_run_at, last_ras
for _, it in ipairs(items) do
  local a, id, queue = it.a, it.id, it.queue
  local cur = it.cur
  local run_at = a[4] ~= '' and tonumber(a[4]) or now + tonumber(a[5])
  local dkey = a[7]
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
      if a[9] == 'r' and holder[1] == 'pending' then
        -- The pending holder takes the new payload, priority, runAt and (if given) meta.
        local r = Q.load(holder_id, false)
        for k = it.first, it.last, 2 do
          local f = a[k]
          if f == 'p' or f == 'mt' then
            Q.set(r, f, a[k + 1])
          end
        end
        Q.set(r, 'pr', a[3] ~= '0' and a[3] or nil)
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
    if dkey ~= '' and a[8] ~= '' then
      du = int(now + tonumber(a[8]))
    end
    if cur then
      -- Replacing a tombstone: the generic path also leaves its old indexes.
      local f = { du = du }
      for k = it.first, it.last, 2 do
        f[a[k]] = a[k + 1]
      end
      f.ra = int(run_at)
      Q.write(Q.create(id, f, now, seq, { cur[1], cur[3] }), now)
    else
      local seqs = int(seq)
      if run_at ~= last_run_at then
        -- A batch mostly shares one runAt: format it once.
        last_run_at, last_ras = run_at, int(run_at)
      end
      local ras = last_ras
      redis.call('HSET', it.key, 's', 'pending', 'ra', ras, 'sq', seqs, 'cs', seqs, 'cr', nows, 'up', nows,
        unpack(a, it.first, it.last))
      if du then
        redis.call('HSET', it.key, 'du', du)
      end
      local ct = a[6]
      Q.index_new(id, queue, a[3], run_at, ras, seqs, ct ~= '' and tonumber(ct) or nil, now)
    end
    result(id, seq, 'c')
  end
end
Q.handoff(now)
Q.finish()
return out
