-- Claimed rows in claim order, then (when fewer than the limit) a row with a NULL id whose run_at
-- is nextRunAt.
SELECT * FROM q_claim($1::text, $2::text, $3::int, $4::bigint, $5::boolean, $6::text)
