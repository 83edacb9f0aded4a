-- needs: common queue
-- changes: ARGV after, limit, queue|''. The feed is conflated (one entry per item, scored by its
-- latest changeSeq) and changeSeqs are allocated inside scripts, which Redis runs one at a time:
-- a returned cursor can never be overtaken by a later write, so the feed is gap-free.
-- A queue filter scans at most `budget` foreign entries per call and then returns its cursor.
-- -> cursor, then one Q.reply() per item
local after, limit, queue = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local horizon = tonumber(redis.call('GET', Q.K_HORIZON) or '0')
if after < horizon then
  return redis.error_reply('ROTA_COMPACTED change cursor ' .. int(after) ..
    ' is older than the retained feed (' .. int(horizon) .. ')')
end
local out = { after }
local cursor = after
local found = 0
local budget = math.max(10000, limit * 10)
local scanned = 0
while found < limit and scanned < budget do
  local want = queue == '' and (limit - found) or 1000
  local rows = redis.call('ZRANGEBYSCORE', Q.K_FEED, '(' .. int(cursor), '+inf', 'WITHSCORES', 'LIMIT', 0, want)
  if #rows == 0 then
    break
  end
  for k = 1, #rows, 2 do
    local id = rows[k]
    cursor = tonumber(rows[k + 1])
    scanned = scanned + 1
    if queue == '' or redis.call('HGET', Q.ikey(id), 'q') == queue then
      local r = Q.load(id, true)
      if r then
        out[#out + 1] = Q.reply(r)
        found = found + 1
        if found >= limit then
          break
        end
      end
    end
  end
end
out[1] = cursor
return out
