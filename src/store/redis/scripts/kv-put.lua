-- needs: common kv
-- put(key, value, lease): ARGV[3] key, ARGV[4] value, ARGV[5] lease id or ''. -> head, prev | nil
local lease = ARGV[5]
if lease ~= '' and not KV.lease_exists(lease) then
  return redis.error_reply('ROTA_LEASE_NOT_FOUND ' .. lease)
end
KV.begin()
local prev = KV.put(ARGV[3], ARGV[4], lease)
return reply(KV.out(prev))
