-- lib-common: first in every library (see ../scripts.ts).
-- P is the call's KEYS[1], the hash-tagged prefix `{<prefix>}`, set first thing in every call (a
-- library is loaded once per server when run as Redis Functions, so nothing per call may be set at
-- load time). Every key name is built from P, so all keys of one prefix live in one Redis Cluster
-- slot and FCALL / EVALSHA route by KEYS[1].
local P

-- Store time: the Redis server clock, in epoch milliseconds. Never the client's clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers as decimal text. tostring() would print 1e+15 past 14 digits.
local function int(n)
  return string.format('%d', n)
end

-- Fixed-width decimal, so that byte order of members equals numeric order.
local function pad(n)
  return string.format('%016d', n)
end

-- pad() of a stored decimal text (digits only, at most 16): the same text without a number's
-- round trip through strtod and sprintf.
local ZEROS = { [0] = '', '0', '00', '000', '0000', '00000', '000000', '0000000', '00000000', '000000000',
  '0000000000', '00000000000', '000000000000', '0000000000000', '00000000000000', '000000000000000',
  '0000000000000000' }
local function padtext(s)
  return ZEROS[16 - #s] .. s
end

-- Call `cmd key ...` with `args` split in chunks (Lua's unpack() stops near 8 000 values).
local function chunked(cmd, key, args, step)
  for i = 1, #args, step do
    local last = math.min(i + step - 1, #args)
    redis.call(cmd, key, unpack(args, i, last))
  end
end
