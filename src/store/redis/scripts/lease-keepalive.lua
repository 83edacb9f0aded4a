-- needs: common kv
-- keepAlive(id): ARGV[3] id. Runs after the sweep, so an expired lease is gone. -> head, ttl
local id = ARGV[3]
if not KV.expiry(id) then
  return redis.error_reply('ROTA_LEASE_NOT_FOUND ' .. id)
end
local ttl = KV.ttl(id)
KV.set_expiry(id, now + ttl)
return reply(ttl)
