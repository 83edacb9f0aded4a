SELECT existed, revision FROM kv_revoke($1::text, $2::int)
