-- needs: common kv
-- compact(revision): ARGV[3] revision. Discards the history up to and including it.
local target = tonumber(ARGV[3])
if target > KV.rev then
  return redis.error_reply('ROTA_INVALID_ARGUMENT cannot compact revision ' .. int(target) ..
    ': the store is at ' .. int(KV.rev))
end
if target > KV.compact_revision() then
  redis.call('SET', P .. ':compact', int(target))
  redis.call('XTRIM', P .. ':events', 'MINID', int(target + 1))
end
return reply(KV.compact_revision())
