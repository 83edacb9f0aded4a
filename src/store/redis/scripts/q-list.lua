-- needs: common queue
-- listItems: ARGV queue|'', state|'', owner|'', limit, afterSeq. Items in seq order.
-- Each queue's live items are a sorted set by seq; without a queue, the first `limit` matches of
-- every queue are merged. Filters scan at most `budget` items per queue and call, then report
-- how far they got as nextAfterSeq.
-- -> nextAfterSeq | nil, then one Q.reply() per item
local queue, state, owner = ARGV[1], ARGV[2], ARGV[3]
local limit, after = tonumber(ARGV[4]), tonumber(ARGV[5])
local budget = math.max(10000, limit * 10)
local filtered = state ~= '' or owner ~= ''

-- Up to `want` matches of one queue after `after`: list of { seq, id }, and the seq where the
-- budget ran out (nil when the queue was scanned to its end).
local function scan(q, want)
  local index = Q.qkey(q, 'x')
  local found = {}
  local cursor = after
  local scanned = 0
  while #found < want do
    if scanned >= budget then
      return found, cursor
    end
    local rows = redis.call('ZRANGEBYSCORE', index, '(' .. int(cursor), '+inf', 'WITHSCORES', 'LIMIT', 0,
      filtered and 1000 or (want - #found))
    if #rows == 0 then
      return found, nil
    end
    for k = 1, #rows, 2 do
      local id, seq = rows[k], tonumber(rows[k + 1])
      cursor = seq
      scanned = scanned + 1
      local ok = true
      if filtered then
        local f = redis.call('HMGET', Q.ikey(id), 's', 'ow')
        ok = (state == '' or f[1] == state) and (owner == '' or f[2] == owner)
      end
      if ok then
        found[#found + 1] = { seq, id }
        if #found >= want then
          break
        end
      end
    end
  end
  return found, nil
end

local queues = queue ~= '' and { queue } or redis.call('SMEMBERS', Q.K_QUEUES)
local all, bound = {}, nil
for _, q in ipairs(queues) do
  local found, stopped = scan(q, limit + 1)
  for _, e in ipairs(found) do
    all[#all + 1] = e
  end
  if stopped and (not bound or stopped < bound) then
    bound = stopped
  end
end
table.sort(all, function(x, y)
  return x[1] < y[1]
end)
local page = {}
for _, e in ipairs(all) do
  if bound and e[1] > bound then
    break
  end
  page[#page + 1] = e
end
local out = { false }
if #page > limit then
  for k = #page, limit + 1, -1 do
    page[k] = nil
  end
  out[1] = page[limit][1]
elseif bound then
  out[1] = bound
end
for _, e in ipairs(page) do
  local r = Q.load(e[2], true)
  if r then
    out[#out + 1] = Q.reply(r)
  end
end
return out
