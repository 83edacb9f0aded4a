-- needs: common queue
-- enqueue(items), all-or-nothing. 17 arguments per item:
--   id, queue, payload, priority, runAt|'', delay, maxAttempts, timeout|'', claimTimeout|'',
--   deadLetter|'', completedTtl, failedTtl, dedupKey|'', dedupTtl|'', dedupMode k|r, meta, opId
--   (meta and opId: '' for null, else '=' followed by the text)
-- -> id, seq, status (c created | d deduplicated | r replaced) per item
local now = now_ms()
local N = 17
local n = #ARGV / N

local function opt(x)
  if x == '' then
    return nil
  end
  return x
end
local function text(x)
  if x == '' then
    return nil
  end
  return string.sub(x, 2)
end

-- Check every id before writing anything.
local seen = {}
local existing = {}
for i = 0, n - 1 do
  local b = i * N
  local id, op = ARGV[b + 1], text(ARGV[b + 17])
  local cur = redis.call('HMGET', Q.ikey(id), 's', 'op', 'sq')
  local live = cur[1] and cur[1] ~= 'deleted'
  if seen[id] or (live and not (op and op ~= '' and cur[2] == op)) then
    return redis.error_reply('ROTA_TASK_EXISTS ' .. id)
  end
  seen[id] = true
  existing[i] = cur
end

local out = {}
for i = 0, n - 1 do
  local b = i * N
  local id, queue = ARGV[b + 1], ARGV[b + 2]
  local cur = existing[i]
  local done = false
  if cur[1] and cur[1] ~= 'deleted' then
    -- An ambiguous retry of the same opId: already stored.
    out[#out + 1] = id
    out[#out + 1] = tonumber(cur[3])
    out[#out + 1] = 'c'
    done = true
  end
  local dkey = opt(ARGV[b + 13])
  local run_at = opt(ARGV[b + 5])
  if run_at then
    run_at = tonumber(run_at)
  else
    run_at = now + tonumber(ARGV[b + 6])
  end
  if not done and dkey then
    local dedup = Q.qkey(queue, 'u')
    local holder_id = redis.call('HGET', dedup, dkey)
    local holder = holder_id and redis.call('HMGET', Q.ikey(holder_id), 's', 'dk', 'du', 'sq')
    if holder and holder[2] == dkey and Q.dedup_active(holder[1], holder[3], now) then
      if ARGV[b + 15] == 'r' and holder[1] == 'pending' then
        -- The pending holder takes the new payload, priority, runAt and (if given) meta.
        local r = Q.load(holder_id, false)
        Q.set(r, 'p', ARGV[b + 3])
        Q.set(r, 'pr', ARGV[b + 4])
        Q.set(r, 'ra', int(run_at))
        local meta = text(ARGV[b + 16])
        if meta then
          Q.set(r, 'mt', meta)
        end
        Q.set(r, 'up', int(now))
        Q.set(r, 'cs', int(Q.next_seq()))
        Q.write(r, now)
        out[#out + 1] = holder_id
        out[#out + 1] = tonumber(holder[4])
        out[#out + 1] = 'r'
      else
        out[#out + 1] = holder_id
        out[#out + 1] = tonumber(holder[4])
        out[#out + 1] = 'd'
      end
      done = true
    else
      redis.call('HSET', dedup, dkey, id)
    end
  end
  if not done then
    local du = nil
    if dkey and ARGV[b + 14] ~= '' then
      du = int(now + tonumber(ARGV[b + 14]))
    end
    local seq = Q.next_seq()
    local f = {
      q = queue, p = ARGV[b + 3], pr = ARGV[b + 4], ra = int(run_at), ma = ARGV[b + 7],
      to = opt(ARGV[b + 8]), ct = opt(ARGV[b + 9]), dl = opt(ARGV[b + 10]), ctl = ARGV[b + 11],
      ftl = ARGV[b + 12], dk = dkey, du = du, mt = text(ARGV[b + 16]), op = text(ARGV[b + 17]),
    }
    local prior = cur[1] and { cur[1], cur[3] } or nil
    Q.write(Q.create(id, f, now, seq, prior), now)
    out[#out + 1] = id
    out[#out + 1] = seq
    out[#out + 1] = 'c'
  end
end
Q.finish()
return out
