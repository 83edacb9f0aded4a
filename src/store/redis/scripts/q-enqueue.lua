-- needs: common queue
-- enqueue(items), all-or-nothing. A chunk of 1 000 items is a few arguments, not ~25 000 for the
-- client to flatten: ARGV[2..] = id, payload of each item in turn (plain arguments: no JSON to
-- escape or decode), and ARGV[1] is either one JSON array (cjson) with one row per item, or 'u'
-- followed by one row (JSON) for a batch whose items differ only by id and payload. A row is an
-- array of text:
--   queue, priority, runAt|'', delay, claimTimeout|'', dedupKey|'', dedupTtl|'', dedupMode k|r,
--   opId ('' for null, else '=' + text),
-- then field/value pairs stored as they are (q; pr ma ctl ftl unless they have their default, see
-- lib-queue.lua; to ct dl dk mt op when set). The script adds s, p, ra, sq, cr, up, cs and du.
-- -> id, seq, status (c created | d deduplicated | r replaced) per item
local now = now_ms()
local nows = int(now)
local n = (#ARGV - 1) / 2
local rows, shared
if string.sub(ARGV[1], 1, 1) == 'u' then
  shared = cjson.decode(string.sub(ARGV[1], 2))
else
  rows = cjson.decode(ARGV[1])
end
local FIRST = 10 -- a row's first field/value pair

-- Check every id before writing anything.
local keys, curs, seen = {}, {}, {}
for i = 1, n do
  local id = ARGV[2 * i]
  local key = Q.ikey(id)
  keys[i] = key
  if redis.call('EXISTS', key) == 1 then
    local cur = redis.call('HMGET', key, 's', 'op', 'sq')
    local op = (shared or rows[i])[9]
    if cur[1] ~= 'deleted' and not (#op > 1 and cur[2] == string.sub(op, 2)) then
      return redis.error_reply('ROTA_TASK_EXISTS ' .. id)
    end
    curs[i] = cur
  end
  if seen[id] then
    return redis.error_reply('ROTA_TASK_EXISTS ' .. id)
  end
  seen[id] = true
end

local out = {}
local function result(id, seq, code)
  out[#out + 1] = id
  out[#out + 1] = seq
  out[#out + 1] = code
end

-- What follows from a row alone, worked out once per row (once per batch for a shared row).
local a, last, run_at, ras, ct
for i = 1, n do
  local row = shared or rows[i]
  if row ~= a then
    a, last = row, #row
    run_at = a[3] ~= '' and tonumber(a[3]) or now + tonumber(a[4])
    ras = int(run_at)
    ct = a[5] ~= '' and tonumber(a[5]) or nil
  end
  local id, payload, queue, cur = ARGV[2 * i], ARGV[2 * i + 1], a[1], curs[i]
  local dkey = a[6]
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
      if a[8] == 'r' and holder[1] == 'pending' then
        -- The pending holder takes the new payload, priority, runAt and (if given) meta.
        local r = Q.load(holder_id, false)
        Q.set(r, 'p', payload)
        for k = FIRST, last, 2 do
          if a[k] == 'mt' then
            Q.set(r, 'mt', a[k + 1])
          end
        end
        Q.set(r, 'pr', a[2] ~= '0' and a[2] or nil)
        Q.set(r, 'ra', ras)
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
    if dkey ~= '' and a[7] ~= '' then
      du = int(now + tonumber(a[7]))
    end
    if cur then
      -- Replacing a tombstone: the generic path also leaves its old indexes.
      local f = { du = du, p = payload }
      for k = FIRST, last, 2 do
        f[a[k]] = a[k + 1]
      end
      f.ra = ras
      Q.write(Q.create(id, f, now, seq, { cur[1], cur[3] }), now)
    else
      local seqs = int(seq)
      -- A single runnable item for an idle worker goes to it directly (no dedup key: du is nil).
      local direct = n == 1 and run_at <= now and dkey == ''
        and Q.handoff_new(keys[i], id, queue, seqs, ras, payload, a, FIRST, last, now)
      if not direct then
        -- The fields looked up most come first in the hash (a listpack, searched from the start).
        redis.call('HSET', keys[i], 's', 'pending', 'sq', seqs, 'cs', seqs, 'up', nows, 'ra', ras, 'cr', nows,
          'p', payload, unpack(a, FIRST, last))
        if du then
          redis.call('HSET', keys[i], 'du', du)
        end
        Q.index_new(id, queue, a[2], run_at, ras, seqs, ct, now)
      end
    end
    result(id, seq, 'c')
  end
end
Q.handoff(now)
Q.finish()
return out
