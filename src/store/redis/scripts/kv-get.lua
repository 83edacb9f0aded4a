-- needs: common kv
-- get(key) -> head, kv | nil
return reply(KV.out(KV.read(ARGV[3])))
