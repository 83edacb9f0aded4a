-- needs: common kv
-- delete(key, prefix): ARGV[3] key, ARGV[4] '1' to delete every key under the prefix.
-- -> head, deleted count, prev kv...  (every deleted key shares one revision)
local recs = {}
if ARGV[4] == '1' then
  local min, max = KV.bounds(ARGV[3])
  for _, key in ipairs(KV.keys(min, max, nil)) do
    recs[#recs + 1] = KV.read(key)
  end
else
  local rec = KV.read(ARGV[3])
  if rec then
    recs[1] = rec
  end
end
if #recs > 0 then
  KV.begin()
end
local out = reply(#recs)
for _, rec in ipairs(recs) do
  KV.del(rec)
  out[#out + 1] = KV.out(rec)
end
return out
