-- needs: common queue
-- renew: ARGV[1] leaseTtl, then per entry: id, token, progress ('' unchanged, else '=' + text)
-- -> status (ok | stale | cancelled), leaseExpiresAt | nil, per entry
local now = now_ms()
local ttl = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 3 do
  local r = Q.load(ARGV[i], false)
  Q.expire_first(r, now)
  local progress = ARGV[i + 2] ~= '' and string.sub(ARGV[i + 2], 2) or nil
  local status, expiry = Q.renew_item(r, tonumber(ARGV[i + 1]), progress, ttl, now)
  if status == 'ok' then
    Q.write(r, now)
  end
  out[#out + 1] = status
  out[#out + 1] = expiry or false
end
Q.finish()
return out
