-- lib-queue: the queue state machine of src/store/queue-model.ts, written in Lua, plus the
-- indexes it maintains. Every transition function here mirrors the TypeScript function of the
-- same name; keep them in step (the conformance suite holds both to the same behaviour).
--
-- Layout under the prefix P (members '<seq:16>'..id order ties by enqueue order, as in memory):
--   P:i:<id>         item hash (field names below); a tombstone has s = 'deleted'
--   P:seq            one counter for seq, fencing tokens and changeSeq
--   P:queues         set of queue names
--   P:q:<q>:r        ready: score -priority, member '<runAt:16><seq:16>'..id (claim order)
--   P:q:<q>:d        delayed pending: score runAt            P:q:<q>:l  leased: score lease expiry
--   P:q:<q>:c        completed: score completedAt            P:q:<q>:x  live items: score seq, member id
--   P:q:<q>:n        hash state -> count                     P:q:<q>:u  hash dedup key -> holder id
--   P:q:<q>:k        hash mailbox -> parked claim (see Q.handoff)
--   P:feed           change feed: score changeSeq, member id (conflated: one entry per item)
--   P:feed:horizon   highest changeSeq of a purged tombstone (older cursors are compacted)
--   P:sw:claimed / :deadline / :unclaimed / :expire / :tomb   sweep indexes by due time
-- Item fields: q queue, s state, o outcome, p payload, pr priority, ra runAt, sq seq, a attempt,
-- ma maxAttempts, ow owner, tk token, le leaseExpiresAt, ca claimedAt, sa startedAt,
-- co completedAt, cr createdAt, up updatedAt, pg progress, rs result, ec/em error code/message,
-- rj rejections, lr lastRejection, st stalls, to timeout, ct claimTimeout, dl deadLetter,
-- ctl completedTtl, ftl failedTtl, dk dedupKey, du dedupUntil, ex expireAt, mt meta, op opId,
-- cs changeSeq. An absent field is null (0 for a, rj, st), except the four with a default, not
-- stored when they have it (four fields fewer to write, read and scan for in every item's hash):
-- pr (0), ma (3), ctl (3 600 000) and ftl (604 800 000), ITEM_DEFAULTS in port.ts.
local Q = {
  -- Fields every transition reads; others are fetched when a transition needs them (get()).
  CORE = { 's', 'q', 'sq', 'tk', 'ow', 'le', 'o', 'a', 'to' },
  -- What leaving the pending state needs (the old ready / delayed / unclaimed members).
  PENDING = { 'pr', 'ra', 'ct' },
  DEFAULT_MA = 3,
  DEFAULT_CTL = '3600000',
  DEFAULT_FTL = '604800000',
}
local QKEYS

-- The start of every queue call (after P is set): the prefix's keys, the seq counter and empty
-- write buffers.
function Q.begin()
  Q.K_SEQ = P .. ':seq'
  Q.K_QUEUES = P .. ':queues'
  Q.K_FEED = P .. ':feed'
  Q.K_HORIZON = P .. ':feed:horizon'
  Q.K_CLAIMED = P .. ':sw:claimed'
  Q.K_DEADLINE = P .. ':sw:deadline'
  Q.K_UNCLAIMED = P .. ':sw:unclaimed'
  Q.K_EXPIRE = P .. ':sw:expire'
  Q.K_TOMB = P .. ':sw:tomb'
  Q.zbuf = {}
  Q.fadds = {}
  Q.frems = {}
  Q.counts = {}
  Q.wake = {}
  Q.queues = {}
  -- Queues whose parked claims this call has already read and found none live (Q.handoff_new).
  Q.parkless = {}
  QKEYS = {}
  Q.seq = tonumber(redis.call('GET', Q.K_SEQ) or '0')
  Q.seq0 = Q.seq
end

function Q.ikey(id)
  return P .. ':i:' .. id
end

-- Per-queue key `P:q:<queue>:<suffix>` (built once per queue and call).
function Q.qkey(queue, suffix)
  local k = QKEYS[queue]
  if not k then
    local base = P .. ':q:' .. queue .. ':'
    k = { r = base .. 'r', d = base .. 'd', l = base .. 'l', c = base .. 'c', x = base .. 'x', n = base .. 'n',
      u = base .. 'u', k = base .. 'k' }
    QKEYS[queue] = k
  end
  return k[suffix]
end

function Q.next_seq()
  Q.seq = Q.seq + 1
  return Q.seq
end

-- JSON string literal, escaped exactly as JSON.stringify does.
local JSON_ESC = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n',
  ['\r'] = '\\r', ['\t'] = '\\t' }
local function jstr(s)
  return '"' .. (string.gsub(s, '[%z\1-\31"\\]', function(c)
    return JSON_ESC[c] or string.format('\\u%04x', string.byte(c))
  end)) .. '"'
end

-- The negated number of a stored decimal text, as text (the ready score of a priority).
function Q.negated(x)
  if x == '0' then
    return x
  end
  return int(-tonumber(x))
end

-- Sorted-set writes are buffered per key and member (the last write wins) and applied in bulk by
-- Q.flush(), which must run before any script reads an index it may have written. Scores are best
-- given as the stored decimal text: redis.call prints a number argument with '%.17g', which costs
-- more than the rest of a ZADD member.

-- The buffer of `key` in `buffers` (created on first use).
local function buffer(buffers, key)
  local b = buffers[key]
  if not b then
    b = {}
    buffers[key] = b
  end
  return b
end
local function zadd(key, score, member)
  buffer(Q.zbuf, key)[member] = score
end
local function zrem(key, member)
  buffer(Q.zbuf, key)[member] = false
end

-- The hot paths (Q.claim_ready, Q.fast_complete, Q.index_new) touch each member at most once per
-- call, so they buffer in plain lists per key instead (no per-member table entries to create and
-- collect). Q.flush() applies these first; a hot path that follows by-member writes calls
-- Q.fast_begin() to apply those before it, so writes keep the order of the calls.
local function fadd(key, score, member)
  local b = buffer(Q.fadds, key)
  local n = #b
  b[n + 1] = score
  b[n + 2] = member
end
local function frem(key, member)
  local b = buffer(Q.frems, key)
  b[#b + 1] = member
end

function Q.fast_begin()
  if next(Q.zbuf) ~= nil then
    Q.flush()
  end
end

function Q.flush()
  for key, b in pairs(Q.frems) do
    chunked('ZREM', key, b, 4000)
  end
  for key, b in pairs(Q.fadds) do
    chunked('ZADD', key, b, 4000)
  end
  Q.frems = {}
  Q.fadds = {}
  for key, b in pairs(Q.zbuf) do
    local add, rem = {}, {}
    for m, s in pairs(b) do
      if s then
        add[#add + 1] = s
        add[#add + 1] = m
      else
        rem[#rem + 1] = m
      end
    end
    if #rem > 0 then
      chunked('ZREM', key, rem, 4000)
    end
    if #add > 0 then
      chunked('ZADD', key, add, 4000)
    end
  end
  Q.zbuf = {}
end

local function count(queue, state, delta)
  local c = Q.counts[queue]
  if not c then
    c = {}
    Q.counts[queue] = c
  end
  c[state] = (c[state] or 0) + delta
end
Q.count = count
Q.zadd = zadd
Q.zrem = zrem

-- Apply every buffered write; publish one wake-up per queue that got runnable or finished work.
function Q.finish()
  Q.flush()
  for queue, c in pairs(Q.counts) do
    for state, delta in pairs(c) do
      if delta ~= 0 then
        redis.call('HINCRBY', Q.qkey(queue, 'n'), state, int(delta))
      end
    end
  end
  for queue in pairs(Q.queues) do
    redis.call('SADD', Q.K_QUEUES, queue)
  end
  if Q.seq ~= Q.seq0 then
    redis.call('SET', Q.K_SEQ, int(Q.seq))
  end
  for queue in pairs(Q.wake) do
    redis.call('PUBLISH', P .. ':wake:' .. queue, '')
  end
end

local function snapshot(v)
  return { s = v.s, pr = v.pr, ra = v.ra, sq = v.sq, ct = v.ct, to = v.to }
end

-- Load an item: all fields when `full` (kept as `flat` for the reply), else the CORE fields.
-- Nil when absent.
function Q.load(id, full)
  local v = {}
  local r = { id = id, v = v, d = {} }
  if full then
    local flat = redis.call('HGETALL', Q.ikey(id))
    if #flat == 0 then
      return nil
    end
    for i = 1, #flat, 2 do
      v[flat[i]] = flat[i + 1]
    end
    r.full = true
    r.flat = flat
  else
    local x = redis.call('HMGET', Q.ikey(id), unpack(Q.CORE))
    if not x[1] then
      return nil
    end
    local got = {}
    for i, f in ipairs(Q.CORE) do
      got[f] = true
      if x[i] then
        v[f] = x[i]
      end
    end
    if v.s == 'pending' then
      x = redis.call('HMGET', Q.ikey(id), unpack(Q.PENDING))
      for i, f in ipairs(Q.PENDING) do
        got[f] = true
        if x[i] then
          v[f] = x[i]
        end
      end
    end
    r.got = got
  end
  r.o = snapshot(v)
  return r
end

-- A field's stored text (nil for null), fetched on first use when it was not loaded.
local function get(r, f)
  local x = r.v[f]
  if x ~= nil or r.full or r.got[f] then
    return x
  end
  x = redis.call('HGET', Q.ikey(r.id), f)
  if x == false then
    x = nil
  end
  r.v[f] = x
  r.got[f] = true
  return x
end
Q.get = get

local function set(r, f, x)
  r.v[f] = x
  r.d[f] = true
  if r.got then
    r.got[f] = true
  end
end
local function setn(r, f, n)
  set(r, f, int(n))
end
local function num(r, f)
  local x = get(r, f)
  return x and tonumber(x)
end
Q.set = set

-- The reply form of an item loaded in full: { id, {field, value, ...}, {changed field, value|nil, ...} }.
-- Call it before Q.write, which forgets what changed.
function Q.reply(r)
  local delta = {}
  for f in pairs(r.d) do
    delta[#delta + 1] = f
    delta[#delta + 1] = r.v[f] or false
  end
  return { r.id, r.flat, delta }
end

local function ready_member(ra, sq, id)
  return pad(tonumber(ra)) .. pad(tonumber(sq)) .. id
end

-- Store `r` and move it between indexes by its old and new state (memory's #write).
function Q.write(r, now)
  local v, o, id = r.v, r.o, r.id
  local key = Q.ikey(id)
  if r.new then
    if o.s then
      redis.call('DEL', key)
    end
    local hs = {}
    for f, x in pairs(v) do
      hs[#hs + 1] = f
      hs[#hs + 1] = x
    end
    redis.call('HSET', key, unpack(hs))
  else
    local hs, hd = {}, {}
    for f in pairs(r.d) do
      local x = v[f]
      if x == nil then
        hd[#hd + 1] = f
      else
        hs[#hs + 1] = f
        hs[#hs + 1] = x
      end
    end
    if #hs > 0 then
      redis.call('HSET', key, unpack(hs))
    end
    if #hd > 0 then
      redis.call('HDEL', key, unpack(hd))
    end
  end
  local q = v.q
  local os, ns = o.s, v.s
  local om = o.sq and (pad(tonumber(o.sq)) .. id)
  local nm = pad(tonumber(v.sq)) .. id
  -- Leave the old state's indexes (a later zadd of the same member wins in the buffer).
  if os == 'pending' then
    if not r.popped then
      zrem(Q.qkey(q, 'r'), ready_member(o.ra, o.sq, id))
      zrem(Q.qkey(q, 'd'), om)
    end
    if o.ct then
      zrem(Q.K_UNCLAIMED, om)
    end
  elseif os == 'claimed' then
    zrem(Q.qkey(q, 'l'), om)
    zrem(Q.K_CLAIMED, om)
  elseif os == 'running' then
    zrem(Q.qkey(q, 'l'), om)
    if o.to then
      zrem(Q.K_DEADLINE, om)
    end
  elseif os == 'resolving' then
    zrem(Q.qkey(q, 'l'), om)
  elseif os == 'completed' then
    zrem(Q.qkey(q, 'c'), om)
    zrem(Q.K_EXPIRE, om)
  elseif os == 'deleted' then
    zrem(Q.K_TOMB, om)
  end
  -- Enter the new state's indexes.
  if ns == 'pending' then
    local ra = tonumber(get(r, 'ra'))
    if ra <= now then
      zadd(Q.qkey(q, 'r'), Q.negated(get(r, 'pr') or '0'), ready_member(get(r, 'ra'), v.sq, id))
    else
      zadd(Q.qkey(q, 'd'), get(r, 'ra'), nm)
    end
    local ct = get(r, 'ct')
    if ct then
      zadd(Q.K_UNCLAIMED, int(ra + tonumber(ct)), nm)
    end
    Q.wake[q] = true
  elseif ns == 'claimed' then
    zadd(Q.qkey(q, 'l'), get(r, 'le'), nm)
    zadd(Q.K_CLAIMED, get(r, 'ca'), nm)
  elseif ns == 'running' then
    zadd(Q.qkey(q, 'l'), get(r, 'le'), nm)
    local sa = get(r, 'sa')
    if v.to and sa then
      zadd(Q.K_DEADLINE, int(tonumber(sa) + tonumber(v.to)), nm)
    end
  elseif ns == 'resolving' then
    zadd(Q.qkey(q, 'l'), get(r, 'le'), nm)
  elseif ns == 'completed' then
    zadd(Q.qkey(q, 'c'), get(r, 'co'), nm)
    zadd(Q.K_EXPIRE, get(r, 'ex'), nm)
    Q.wake[q] = true
  elseif ns == 'deleted' then
    zadd(Q.K_TOMB, get(r, 'up'), nm)
    zrem(Q.qkey(q, 'x'), id)
    Q.wake[q] = true
  end
  if r.new then
    zadd(Q.qkey(q, 'x'), v.sq, id)
    Q.queues[q] = true
  end
  zadd(Q.K_FEED, v.cs, id)
  if os and os ~= 'deleted' then
    count(q, os, -1)
  end
  if ns ~= 'deleted' then
    count(q, ns, 1)
  end
  r.d = {}
  r.o = snapshot(v)
  r.new = nil
  r.popped = nil
end

-- createItem: `f` holds the stored text of the caller's fields; `prior` is the HMGET {s, sq} of a
-- tombstone being replaced, or nil.
function Q.create(id, f, now, seq, prior)
  local v = {
    q = f.q, s = 'pending', p = f.p, pr = f.pr, ra = f.ra, sq = int(seq), ma = f.ma,
    cr = int(now), up = int(now), ctl = f.ctl, ftl = f.ftl, cs = int(seq),
    to = f.to, ct = f.ct, dl = f.dl, dk = f.dk, du = f.du, mt = f.mt, op = f.op,
  }
  local o = {}
  if prior then
    o = { s = prior[1], sq = prior[2] }
  end
  return { id = id, v = v, d = {}, o = o, new = true, full = true }
end

-- Index a brand-new pending item written by the enqueue fast path (what Q.write does for it).
-- `priority`, `ras` (runAt) and `seqs` are the stored text, passed on as scores (see Q.claim_ready).
function Q.index_new(id, queue, priority, run_at, ras, seqs, claim_timeout, now)
  local sp = padtext(seqs)
  Q.fast_begin()
  if run_at <= now then
    fadd(Q.qkey(queue, 'r'), Q.negated(priority), padtext(ras) .. sp .. id)
  else
    fadd(Q.qkey(queue, 'd'), ras, sp .. id)
  end
  if claim_timeout then
    fadd(Q.K_UNCLAIMED, int(run_at + claim_timeout), sp .. id)
  end
  fadd(Q.qkey(queue, 'x'), seqs, id)
  fadd(Q.K_FEED, seqs, id)
  count(queue, 'pending', 1)
  Q.wake[queue] = true
  Q.queues[queue] = true
end

-- dedupActive
function Q.dedup_active(s, du, now)
  if not s or s == 'deleted' then
    return false
  end
  if s == 'pending' or s == 'claimed' or s == 'running' then
    return true
  end
  return du ~= nil and du ~= false and now < tonumber(du)
end

-- deadLetterItem: the dead-letter copy of `r` (before its transition), or nil.
function Q.dead_letter(r, code, message)
  local dl = get(r, 'dl')
  if not dl then
    return nil
  end
  local payload = get(r, 'p')
  local meta = '{"deadLetter":{"originalId":' .. jstr(r.id) .. ',"queue":' .. jstr(r.v.q) ..
    ',"error":{"code":' .. jstr(code) .. ',"message":' .. jstr(message) .. '},"attempts":' ..
    int(num(r, 'a') or 0) .. '}}'
  return { id = 'dl-' .. r.id, f = { q = dl, p = payload, ctl = get(r, 'ctl'),
    ftl = get(r, 'ftl'), mt = meta } }
end

-- memory's #insertDeadLetter: skipped when a live item has the id already.
function Q.insert_dead_letter(spec, now)
  local prior = redis.call('HMGET', Q.ikey(spec.id), 's', 'sq')
  if prior[1] and prior[1] ~= 'deleted' then
    return
  end
  spec.f.ra = int(now)
  local r = Q.create(spec.id, spec.f, now, Q.next_seq(), prior[1] and prior or nil)
  Q.write(r, now)
end

local function with_change(r, now, cs)
  setn(r, 'up', now)
  setn(r, 'cs', cs)
end

local function complete(r, outcome, now)
  set(r, 's', 'completed')
  set(r, 'o', outcome)
  setn(r, 'co', now)
  set(r, 'le', nil)
  local ttl = tonumber(outcome == 'failed' and (get(r, 'ftl') or Q.DEFAULT_FTL) or (get(r, 'ctl') or Q.DEFAULT_CTL))
  setn(r, 'ex', now + ttl)
end

local function to_pending(r, run_at)
  set(r, 's', 'pending')
  set(r, 'o', nil)
  set(r, 'ow', nil)
  set(r, 'le', nil)
  set(r, 'ca', nil)
  setn(r, 'ra', run_at)
end

local function set_error(r, code, message)
  set(r, 'ec', code)
  set(r, 'em', message)
end

-- Write `r` and its dead-letter copy, if any.
function Q.apply(r, now, dead)
  Q.write(r, now)
  if dead then
    Q.insert_dead_letter(dead, now)
  end
end

-- expireLease: applies an expired lease. Returns true when it changed `r` (then call Q.apply
-- with the returned dead-letter spec).
function Q.expire_lease(r, now)
  local le = num(r, 'le')
  if not le or le > now then
    return false
  end
  local s = r.v.s
  if s == 'claimed' then
    with_change(r, now, Q.next_seq())
    to_pending(r, now)
    return true
  end
  if s == 'resolving' then
    with_change(r, now, Q.next_seq())
    set(r, 's', 'completed')
    set(r, 'ow', nil)
    set(r, 'le', nil)
    return true
  end
  if s == 'running' then
    local code, message = 'ROTA_LEASE_EXPIRED', 'the lease of the running attempt expired (stalled)'
    local left = (num(r, 'a') or 0) < (num(r, 'ma') or Q.DEFAULT_MA)
    local dead = nil
    if not left then
      dead = Q.dead_letter(r, code, message)
    end
    with_change(r, now, Q.next_seq())
    setn(r, 'st', (num(r, 'st') or 0) + 1)
    set_error(r, code, message)
    if left then
      to_pending(r, now)
    else
      complete(r, 'failed', now)
    end
    return true, dead
  end
  return false
end

-- Apply an expired lease found on `r` before a renew or settle (memory's renew/settle prologue).
function Q.expire_first(r, now)
  if r and r.v.le and tonumber(r.v.le) <= now and r.v.s ~= 'completed' then
    local changed, dead = Q.expire_lease(r, now)
    if changed then
      Q.apply(r, now, dead)
    end
  end
end

-- claimItem: the token is the changeSeq of the claim.
function Q.claim_item(r, owner, ttl, start, resolve, now)
  local cs = Q.next_seq()
  with_change(r, now, cs)
  set(r, 'ow', owner)
  setn(r, 'tk', cs)
  setn(r, 'le', now + ttl)
  if resolve then
    set(r, 's', 'resolving')
    return
  end
  setn(r, 'ca', now)
  if start then
    set(r, 's', 'running')
    setn(r, 'a', (num(r, 'a') or 0) + 1)
    setn(r, 'sa', now)
  else
    set(r, 's', 'claimed')
  end
end

local function fence(r, token, owner)
  if num(r, 'tk') == token then
    return nil
  end
  local s = r.v.s
  local held = s == 'claimed' or s == 'running' or s == 'resolving'
  if held and r.v.ow and r.v.ow ~= owner then
    return 'wrong_owner'
  end
  return 'stale'
end

-- settleItem. `op` = { code, id, token, owner, ... } as decoded by the settle script; `r` is the
-- current record (nil when absent). Returns the status; on 'ok' the caller applies `r` with the
-- returned dead-letter spec.
function Q.settle_item(r, op, now)
  local code = op.code
  local live = r and r.v.s ~= 'deleted'
  if code == 'x' or code == 'a' then
    if not live then
      return 'not_found'
    end
    local s = r.v.s
    if s ~= 'pending' and s ~= 'claimed' and s ~= 'running' then
      return 'invalid_state'
    end
    with_change(r, now, Q.next_seq())
    set(r, 'le', nil)
    if code == 'x' then
      set_error(r, 'ROTA_TASK_CANCELLED', op.reason or 'cancelled')
      complete(r, 'cancelled', now)
    else
      set_error(r, op.ec, op.em)
      complete(r, 'failed', now)
    end
    return 'ok'
  end

  if not r then
    return 'not_found'
  end
  local fenced = fence(r, op.token, op.owner)
  if fenced then
    return r.v.s == 'deleted' and 'not_found' or fenced
  end
  local s = r.v.s
  local cs = Q.next_seq()

  if code == 's' then
    if s == 'claimed' then
      with_change(r, now, cs)
      set(r, 's', 'running')
      setn(r, 'a', (num(r, 'a') or 0) + 1)
      setn(r, 'sa', now)
      return 'ok'
    end
    return s == 'running' and 'noop' or 'stale'
  elseif code == 'c' then
    if s == 'claimed' or s == 'running' then
      with_change(r, now, cs)
      if s == 'claimed' then
        setn(r, 'a', (num(r, 'a') or 0) + 1)
        setn(r, 'sa', now)
      end
      set(r, 'rs', op.result)
      set_error(r, nil, nil)
      complete(r, 'succeeded', now)
      return 'ok'
    end
    return (s == 'completed' and r.v.o == 'succeeded') and 'noop' or 'stale'
  elseif code == 'r' then
    if s == 'running' then
      with_change(r, now, cs)
      if op.ec then
        set_error(r, op.ec, op.em)
      end
      if op.refund then
        setn(r, 'a', math.max(0, (num(r, 'a') or 0) - 1))
      end
      to_pending(r, op.retry_at or (now + (op.retry_in or 0)))
      return 'ok'
    end
    return s == 'pending' and 'noop' or 'stale'
  elseif code == 'f' then
    if s == 'claimed' or s == 'running' then
      local dead = Q.dead_letter(r, op.ec, op.em)
      with_change(r, now, cs)
      set_error(r, op.ec, op.em)
      complete(r, 'failed', now)
      return 'ok', dead
    end
    return (s == 'completed' and r.v.o == 'failed') and 'noop' or 'stale'
  elseif code == 'l' then
    if s == 'claimed' or s == 'running' then
      with_change(r, now, cs)
      if op.refund and s == 'running' then
        setn(r, 'a', math.max(0, (num(r, 'a') or 0) - 1))
      end
      if op.reason then
        local rejections = (num(r, 'rj') or 0) + 1
        setn(r, 'rj', rejections)
        set(r, 'lr', op.reason)
        if rejections > op.max_rejections then
          set_error(r, 'ROTA_TASK_REJECTED', op.reason_error)
          complete(r, 'failed', now)
          return 'ok'
        end
      end
      to_pending(r, now)
      return 'ok'
    end
    return s == 'pending' and 'noop' or 'stale'
  elseif code == 'v' then
    if s == 'resolving' then
      with_change(r, now, cs)
      set(r, 's', 'deleted')
      set(r, 'le', nil)
      return 'ok'
    end
    return s == 'deleted' and 'noop' or 'stale'
  else
    if s == 'resolving' then
      with_change(r, now, cs)
      set(r, 's', 'completed')
      set(r, 'ow', nil)
      set(r, 'le', nil)
      return 'ok'
    end
    return s == 'completed' and 'noop' or 'stale'
  end
end

-- The hot path of settle: a fenced `complete` of a claimed or running item whose lease holds.
-- Inlines settleItem('complete') and Q.write for it; returns false (nothing done) when the
-- general path must decide. `token` is the op's text: the stored token is int() text, so equal
-- numbers are equal text (any other text takes the general path, which compares numbers).
function Q.fast_complete(id, token, result, now, nows)
  local key = Q.ikey(id)
  local f = redis.call('HMGET', key, 's', 'tk', 'le', 'q', 'sq', 'ctl')
  local s = f[1]
  if (s ~= 'running' and s ~= 'claimed') or f[2] ~= token or tonumber(f[3]) <= now then
    return false
  end
  Q.fast_begin()
  local css = int(Q.next_seq())
  local expire = int(now + tonumber(f[6] or Q.DEFAULT_CTL))
  if s == 'claimed' then
    local a = redis.call('HGET', key, 'a')
    redis.call('HSET', key, 's', 'completed', 'o', 'succeeded', 'co', nows, 'ex', expire, 'up', nows, 'cs', css,
      'a', int((a and tonumber(a) or 0) + 1), 'sa', nows)
  else
    redis.call('HSET', key, 's', 'completed', 'o', 'succeeded', 'co', nows, 'ex', expire, 'up', nows, 'cs', css)
  end
  if result then
    redis.call('HSET', key, 'rs', result)
  end
  -- No 'rs' to delete: only `complete` sets it, and nothing leads from completed back to claimed or
  -- running (a reused id starts from a new hash).
  redis.call('HDEL', key, 'le', 'ec', 'em')
  local q = f[4]
  local m = padtext(f[5]) .. id
  frem(Q.qkey(q, 'l'), m)
  -- A running item with a timeout has a deadline entry: removing an absent member costs less than
  -- reading 'to' for every item.
  frem(s == 'claimed' and Q.K_CLAIMED or Q.K_DEADLINE, m)
  fadd(Q.qkey(q, 'c'), nows, m)
  fadd(Q.K_EXPIRE, expire, m)
  fadd(Q.K_FEED, css, id)
  count(q, s, -1)
  count(q, 'completed', 1)
  Q.wake[q] = true
  return true
end

-- renewItem. Returns status and the new lease expiry (or nil); on 'ok' the caller writes `r`.
function Q.renew_item(r, token, progress, ttl, now)
  if not r or r.v.s == 'deleted' or num(r, 'tk') ~= token then
    return 'stale'
  end
  local s = r.v.s
  if s == 'completed' and r.v.o == 'cancelled' then
    return 'cancelled'
  end
  if s ~= 'claimed' and s ~= 'running' and s ~= 'resolving' then
    return 'stale'
  end
  with_change(r, now, Q.next_seq())
  setn(r, 'le', now + ttl)
  if progress then
    set(r, 'pg', progress)
  end
  return 'ok', now + ttl
end

-- unstartItem
function Q.unstart_item(r, now)
  with_change(r, now, Q.next_seq())
  to_pending(r, now)
end

-- timeoutItem. Returns the dead-letter spec, if any.
function Q.timeout_item(r, now)
  local code = 'ROTA_TASK_TIMEOUT'
  local message = 'the attempt ran longer than its timeout of ' .. int(num(r, 'to')) .. ' ms'
  local left = (num(r, 'a') or 0) < (num(r, 'ma') or Q.DEFAULT_MA)
  local dead = nil
  if not left then
    dead = Q.dead_letter(r, code, message)
  end
  with_change(r, now, Q.next_seq())
  set_error(r, code, message)
  if left then
    to_pending(r, now)
  else
    complete(r, 'failed', now)
  end
  return dead
end

-- unclaimedItem
function Q.unclaimed_item(r, now)
  with_change(r, now, Q.next_seq())
  set_error(r, 'ROTA_TASK_UNCLAIMED', 'not claimed within ' .. int(num(r, 'ct')) .. ' ms of its run time')
  complete(r, 'failed', now)
end

-- pruneItem
function Q.prune_item(r, now)
  with_change(r, now, Q.next_seq())
  set(r, 's', 'deleted')
end

-- Claim up to `limit` ready items of `queue` in claim order, appending { id, flat, changeSeq } to
-- `out` (flat: the item as it was; see Q.claim_reply for the rest). The hot path: claimItem and the
-- index moves of Q.write for pending -> claimed | running, inlined (see Q.claim_item and Q.write for
-- the general form they must match). Scores go as text already formatted: a number argument to
-- redis.call is printed with '%.17g', which costs more than the rest of a ZADD member. Returns how
-- many were claimed.
function Q.claim_ready(queue, owner, limit, ttl, start, now, out)
  Q.fast_begin()
  local popped = redis.call('ZPOPMIN', Q.qkey(queue, 'r'), int(limit))
  local leased = Q.qkey(queue, 'l')
  local nows, les = int(now), int(now + ttl)
  local state = start and 'running' or 'claimed'
  local claimed = 0
  for i = 1, #popped, 2 do
    local id = string.sub(popped[i], 33)
    local key = Q.ikey(id)
    local flat = redis.call('HGETALL', key)
    local s, a, sq, ct, to
    for k = 1, #flat, 2 do
      local f = flat[k]
      if f == 's' then
        s = flat[k + 1]
      elseif f == 'a' then
        a = flat[k + 1]
      elseif f == 'sq' then
        sq = flat[k + 1]
      elseif f == 'ct' then
        ct = flat[k + 1]
      elseif f == 'to' then
        to = flat[k + 1]
      end
    end
    if s == 'pending' then
      local cs = int(Q.next_seq())
      local m = padtext(sq) .. id
      if start then
        redis.call('HSET', key, 's', state, 'ow', owner, 'tk', cs, 'le', les, 'ca', nows, 'up', nows, 'cs', cs,
          'a', int((a and tonumber(a) or 0) + 1), 'sa', nows)
        if to then
          fadd(Q.K_DEADLINE, int(now + tonumber(to)), m)
        end
      else
        redis.call('HSET', key, 's', state, 'ow', owner, 'tk', cs, 'le', les, 'ca', nows, 'up', nows, 'cs', cs)
        fadd(Q.K_CLAIMED, nows, m)
      end
      if ct then
        frem(Q.K_UNCLAIMED, m)
      end
      fadd(leased, les, m)
      fadd(Q.K_FEED, cs, id)
      claimed = claimed + 1
      out[#out + 1] = { id, flat, cs }
    end
  end
  if claimed > 0 then
    count(queue, 'pending', -claimed)
    count(queue, state, claimed)
    out[2] = { state, owner, les, nows }
  end
  return claimed
end

-- The reply of a claim (and of a hand-off), one JSON text: [nextRunAt as decimal text | false,
-- common | false, item...]. An item is { id, flat, delta } (Q.reply: the fields before, then the
-- changed ones) or, from Q.claim_ready, { id, flat, changeSeq }: claimed by this call, the changes
-- being the same for all but the changeSeq (= token), so they go once in `common` = { state, owner,
-- leaseExpiresAt, now } (claimedAt = updatedAt = now; running: attempt + 1 and startedAt = now).
function Q.new_claim_reply()
  return { false, false }
end

-- Hand-off (docs/stores.md): a worker whose claim came back short leaves a parked claim in
-- P:q:<q>:k (mailbox -> { o owner, l limit, t leaseTtl, s start, u parked-until }). A write that
-- made items of a queue runnable claims them for its parked claims right here and publishes them
-- to P:hand:<mailbox>, so an idle worker gets its task in one hop instead of a wake-up and a claim.
-- A parked claim nobody listens to any more (PUBSUB NUMSUB 0) or past its time is dropped unused.
-- A parked claim past its time, or whose mailbox nobody listens to any more, is not served.
local function park_live(p, channel, now)
  return p.u > now and redis.call('PUBSUB', 'NUMSUB', channel)[2] ~= 0
end

function Q.handoff(now)
  for queue in pairs(Q.wake) do
    local parked = Q.qkey(queue, 'k')
    local entries = Q.parkless[queue] and {} or redis.call('HGETALL', parked)
    if #entries > 0 then
      Q.flush()
      for k = 1, #entries, 2 do
        local mailbox, p = entries[k], cjson.decode(entries[k + 1])
        local channel = P .. ':hand:' .. mailbox
        if not park_live(p, channel, now) then
          redis.call('HDEL', parked, mailbox)
        else
          local out = Q.new_claim_reply()
          if Q.claim_ready(queue, p.o, p.l, p.t, p.s, now, out) == 0 then
            break
          end
          redis.call('HDEL', parked, mailbox)
          redis.call('PUBLISH', channel, cjson.encode(out))
        end
      end
    end
  end
end

-- Hand-off of one brand-new runnable item straight to the queue's parked claim, for a one-item
-- enqueue while nothing else is ready in the queue (so claim order has only this item to pick).
-- The item is written claimed (running with `start`) at once: the same fields, seqs (its seq, then
-- the claim's changeSeq = token), indexes, counts and hand-off message as writing it pending and
-- then claiming it in Q.handoff, without the trip through the ready set and the item's second
-- write. Nothing is left runnable, so the queue's other workers are not woken (as on PostgreSQL).
-- `row` is the enqueue row (field/value pairs from `first` to `last`), `seqs` the item's seq as
-- text. Returns whether the item was handed off; parks found dead on the way are dropped.
function Q.handoff_new(key, id, queue, seqs, ras, payload, row, first, last, now)
  local parked = Q.qkey(queue, 'k')
  local entries = redis.call('HGETALL', parked)
  if #entries == 0 then
    Q.parkless[queue] = true
    return false
  end
  if redis.call('ZCARD', Q.qkey(queue, 'r')) > 0 then
    return false
  end
  for k = 1, #entries, 2 do
    local mailbox, p = entries[k], cjson.decode(entries[k + 1])
    local channel = P .. ':hand:' .. mailbox
    redis.call('HDEL', parked, mailbox)
    if park_live(p, channel, now) then
      Q.fast_begin()
      local cs = int(Q.next_seq())
      local nows, les = int(now), int(now + p.t)
      local state = p.s and 'running' or 'claimed'
      -- The item as the pending write would have stored it (the hand-off message carries it so).
      local before = { 's', 'pending', 'sq', seqs, 'cs', seqs, 'up', nows, 'ra', ras, 'cr', nows, 'p', payload }
      local to
      for f = first, last, 2 do
        before[#before + 1] = row[f]
        before[#before + 1] = row[f + 1]
        if row[f] == 'to' then
          to = row[f + 1]
        end
      end
      local fields = { unpack(before) }
      fields[2], fields[6] = state, cs
      local n = #fields
      fields[n + 1], fields[n + 2], fields[n + 3], fields[n + 4] = 'ow', p.o, 'tk', cs
      fields[n + 5], fields[n + 6], fields[n + 7], fields[n + 8] = 'le', les, 'ca', nows
      local m = padtext(seqs) .. id
      if p.s then
        fields[n + 9], fields[n + 10], fields[n + 11], fields[n + 12] = 'a', '1', 'sa', nows
        if to then
          fadd(Q.K_DEADLINE, int(now + tonumber(to)), m)
        end
      else
        fadd(Q.K_CLAIMED, nows, m)
      end
      redis.call('HSET', key, unpack(fields))
      fadd(Q.qkey(queue, 'x'), seqs, id)
      fadd(Q.qkey(queue, 'l'), les, m)
      fadd(Q.K_FEED, cs, id)
      count(queue, state, 1)
      Q.queues[queue] = true
      redis.call('PUBLISH', channel, cjson.encode({ false, { state, p.o, les, nows }, { id, before, cs } }))
      return true
    end
  end
  Q.parkless[queue] = true -- every park was dead and is deleted
  return false
end

-- The id inside a '<seq:16>'..id index member.
function Q.member_id(m)
  return string.sub(m, 17)
end

-- Earliest score of a sorted set, or nil.
function Q.first_score(key)
  local r = redis.call('ZRANGE', key, '0', '0', 'WITHSCORES')
  return r[2] and tonumber(r[2]) or nil
end
