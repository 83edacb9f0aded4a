SELECT pg_advisory_unlock($1::int, hashtext($2::text))
