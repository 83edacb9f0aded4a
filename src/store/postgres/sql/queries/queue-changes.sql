SELECT * FROM q_changes($1::bigint, $2::text, $3::int, $4::int)
