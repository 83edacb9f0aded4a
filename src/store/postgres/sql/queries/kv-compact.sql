SELECT kv_compact($1::bigint)
