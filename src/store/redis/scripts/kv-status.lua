-- needs: common kv
-- status() -> head, compactRevision. Also what the lease sweep timer runs.
return reply(KV.compact_revision())
