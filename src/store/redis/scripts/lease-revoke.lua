-- needs: common kv
-- revoke(id): ARGV[3] id. Deletes its keys in one revision. -> head, 1 | 0
local id = ARGV[3]
if not KV.expiry(id) then
  return reply(0)
end
KV.drop_lease(id)
return reply(1)
