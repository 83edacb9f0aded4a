-- needs: common queue
-- countItems: ARGV[1] queue|''. -> per queue: name, pending, claimed, running, completed, resolving
-- (without a queue, only queues that hold items).
local STATES = { 'pending', 'claimed', 'running', 'completed', 'resolving' }
local queues = ARGV[1] ~= '' and { ARGV[1] } or redis.call('SMEMBERS', Q.K_QUEUES)
local out = {}
for _, q in ipairs(queues) do
  local n = redis.call('HMGET', Q.qkey(q, 'n'), unpack(STATES))
  local row = { q }
  local total = 0
  for k = 1, #STATES do
    local x = tonumber(n[k] or '0')
    row[k + 1] = x
    total = total + x
  end
  if total > 0 or ARGV[1] ~= '' then
    for _, x in ipairs(row) do
      out[#out + 1] = x
    end
  end
end
return out
