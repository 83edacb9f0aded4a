SELECT r_op, r_key, r_value, r_create, r_mod, r_version, r_lease, r_flag, r_revision
FROM kv_txn($1::jsonb, $2::jsonb, $3::jsonb, $4::bytea[], $5::int)
