SELECT claimed, next_run_at FROM q_claim($1::text, $2::text, $3::int, $4::bigint, $5::boolean, $6::text)
