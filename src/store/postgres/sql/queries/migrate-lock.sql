-- Session-level: held across the migration transactions, released by migrate-unlock (or when the
-- connection ends).
SELECT pg_advisory_lock($1::int, hashtext($2::text))
