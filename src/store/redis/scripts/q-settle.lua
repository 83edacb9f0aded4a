-- needs: common queue
-- settle(ops), applied in order. Per op, by code:
--   s start / c complete / v resolve / u unresolve:  code id token owner [result: '' null | '=' text]
--   r retry:   code id token owner errorCode|'' errorMessage retryAt|'' retryIn|'' refund '1'|''
--   f fail:    code id token owner errorCode errorMessage
--   l release: code id token owner refund '1'|'' reason('' none | '=' text) maxRejections errorMessage
--   x cancel:  code id reason ('' none | '=' text)        a abort: code id errorCode errorMessage
-- Error messages arrive already truncated as storedError() does.
-- -> status, state | nil, outcome | nil per op

-- One op through the queue model (version 1's path): decode it at ARGV[i], apply it, append its
-- status, state and outcome to `out`. Returns the index of the next op.
local function settle_op(i, now, out)
  local code = ARGV[i]
  local op = { code = code, id = ARGV[i + 1] }
  if code == 'x' then
    if ARGV[i + 2] ~= '' then
      op.reason = string.sub(ARGV[i + 2], 2)
    end
    i = i + 3
  elseif code == 'a' then
    op.ec, op.em = ARGV[i + 2], ARGV[i + 3]
    i = i + 4
  else
    op.token, op.owner = tonumber(ARGV[i + 2]), ARGV[i + 3]
    if code == 'c' then
      if ARGV[i + 4] ~= '' then
        op.result = string.sub(ARGV[i + 4], 2)
      end
      i = i + 5
    elseif code == 'r' then
      if ARGV[i + 4] ~= '' then
        op.ec, op.em = ARGV[i + 4], ARGV[i + 5]
      end
      if ARGV[i + 6] ~= '' then
        op.retry_at = tonumber(ARGV[i + 6])
      end
      if ARGV[i + 7] ~= '' then
        op.retry_in = tonumber(ARGV[i + 7])
      end
      op.refund = ARGV[i + 8] == '1'
      i = i + 9
    elseif code == 'f' then
      op.ec, op.em = ARGV[i + 4], ARGV[i + 5]
      i = i + 6
    elseif code == 'l' then
      op.refund = ARGV[i + 4] == '1'
      if ARGV[i + 5] ~= '' then
        op.reason = string.sub(ARGV[i + 5], 2)
        op.max_rejections = tonumber(ARGV[i + 6])
        op.reason_error = ARGV[i + 7]
      end
      i = i + 8
    else
      i = i + 4
    end
  end
  local r = Q.load(op.id, false)
  Q.expire_first(r, now)
  local status, dead = Q.settle_item(r, op, now)
  if status == 'ok' then
    Q.apply(r, now, dead)
  end
  out[#out + 1] = status
  if r and r.v.s ~= 'deleted' then
    out[#out + 1] = r.v.s
    out[#out + 1] = r.v.o or false
  else
    out[#out + 1] = false
    out[#out + 1] = false
  end
  return i
end

local now = now_ms()
local nows = int(now)
local out = {}
local i = 1
local n = #ARGV
while i <= n do
  local code = ARGV[i]
  if code == 'c' and Q.fast_complete(ARGV[i + 1], ARGV[i + 2], ARGV[i + 4] ~= '' and string.sub(ARGV[i + 4], 2) or nil,
      now, nows) then
    out[#out + 1] = 'ok'
    out[#out + 1] = 'completed'
    out[#out + 1] = 'succeeded'
    i = i + 5
  else
    i = settle_op(i, now, out)
  end
end
Q.finish()
return out
