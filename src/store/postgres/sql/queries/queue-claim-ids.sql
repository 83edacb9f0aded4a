-- Claimed rows in claim order (a claim restricted to ids has no nextRunAt row).
SELECT * FROM q_claim_ids($1::text, $2::text, $3::int, $4::bigint, $5::boolean, $6::text, $7::text[])
