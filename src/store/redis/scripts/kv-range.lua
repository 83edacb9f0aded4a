-- needs: common kv
-- range(prefix, startAfter, limit): ARGV[3] prefix, ARGV[4] '' or the key to start after (the
-- client passes it only when it sorts at or after the prefix), ARGV[5] limit or ''.
-- -> head, more (0/1), kv...
local min, max = KV.bounds(ARGV[3])
if ARGV[4] ~= '' then
  min = '(' .. ARGV[4]
end
local limit = ARGV[5] ~= '' and tonumber(ARGV[5]) or nil
local keys, more = KV.keys(min, max, limit)
local out = reply(more and 1 or 0)
for _, key in ipairs(keys) do
  out[#out + 1] = KV.out(KV.read(key))
end
return out
