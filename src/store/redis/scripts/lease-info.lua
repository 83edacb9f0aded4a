-- needs: common kv
-- leaseInfo(id): ARGV[3] id. -> head, ttl, remaining, {keys} | head, nil
local id = ARGV[3]
local expiry = KV.expiry(id)
if not expiry then
  return reply(false)
end
return reply(KV.ttl(id), math.max(0, expiry - now), KV.lease_keys(id))
