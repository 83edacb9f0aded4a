-- needs: common kv
-- txn(compares, success, failure), all-or-nothing: compares and lease checks run before any write.
-- ARGV[3..]: ncompares, then per compare (key, target v|c|m|n, op, value);
--            nsuccess, then per op (type g|r|p|d, key, value, extra); nfailure, ops likewise.
--   get: g key '' ''   range: r prefix '' limit|''   put: p key value lease|''   delete: d key '' '1'|''
-- -> head, succeeded (0/1), one result per op of the branch that ran:
--   { 'g', kv|nil } { 'r', more, {kv...} } { 'p', prev|nil } { 'd', count, {prev...} }
local i = 3
local ncmp = tonumber(ARGV[i])
i = i + 1
local ok = true
local FIELD = { c = 'c', m = 'm', n = 'ver' }
for _ = 1, ncmp do
  local key, target, op, value = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  i = i + 4
  if ok then
    local rec = KV.read(key)
    local holds
    if target == 'v' then
      if not rec then
        holds = op == '!='
      else
        holds = (rec.value == value) == (op == '==')
      end
    else
      local actual = rec and rec[FIELD[target]] or 0
      local expected = tonumber(value)
      if op == '==' then
        holds = actual == expected
      elseif op == '!=' then
        holds = actual ~= expected
      elseif op == '<' then
        holds = actual < expected
      else
        holds = actual > expected
      end
    end
    ok = holds
  end
end

local function read_ops()
  local n = tonumber(ARGV[i])
  i = i + 1
  local ops = {}
  for k = 1, n do
    ops[k] = { ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3] }
    i = i + 4
  end
  return ops
end
local success = read_ops()
local failure = read_ops()
local ops = ok and success or failure

for _, op in ipairs(ops) do
  if op[1] == 'p' and op[4] ~= '' and not KV.lease_exists(op[4]) then
    return redis.error_reply('ROTA_LEASE_NOT_FOUND ' .. op[4])
  end
end

local begun = false
local function begin()
  if not begun then
    KV.begin()
    begun = true
  end
end

local results = {}
for k, op in ipairs(ops) do
  local t = op[1]
  if t == 'g' then
    results[k] = { 'g', KV.out(KV.read(op[2])) }
  elseif t == 'r' then
    local min, max = KV.bounds(op[2])
    local keys, more = KV.keys(min, max, op[4] ~= '' and tonumber(op[4]) or nil)
    local kvs = {}
    for j, key in ipairs(keys) do
      kvs[j] = KV.out(KV.read(key))
    end
    results[k] = { 'r', more and 1 or 0, kvs }
  elseif t == 'p' then
    begin()
    results[k] = { 'p', KV.out(KV.put(op[2], op[3], op[4])) }
  else
    local recs = {}
    if op[4] == '1' then
      local min, max = KV.bounds(op[2])
      for _, key in ipairs(KV.keys(min, max, nil)) do
        recs[#recs + 1] = KV.read(key)
      end
    else
      local rec = KV.read(op[2])
      if rec then
        recs[1] = rec
      end
    end
    local prevs = {}
    for j, rec in ipairs(recs) do
      begin()
      KV.del(rec)
      prevs[j] = KV.out(rec)
    end
    results[k] = { 'd', #recs, prevs }
  end
end

local out = reply(ok and 1 or 0)
for _, r in ipairs(results) do
  out[#out + 1] = r
end
return out
