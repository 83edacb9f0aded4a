-- needs: common kv
-- grant(ttl): ARGV[3] ttl in ms (whole seconds). -> head, id, expiry.
-- Publishes the expiry so idle watching clients can arm their sweep timers.
local ttl = tonumber(ARGV[3])
local id = KV.grant(now, ttl)
redis.call('PUBLISH', P .. ':lease', int(now + ttl))
return reply(id, now + ttl)
