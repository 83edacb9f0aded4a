-- queue-enqueue.sql, then a claim for an idle worker of this client ($2 queue, $3 owner, $4 limit,
-- $5 lease TTL, $6 start) in the same transaction: claimed rows as JSON in r_item.
SELECT r_ord, r_id, r_seq, r_status, r_queue, r_item
FROM q_enqueue_json_claim($1::json, $2::text, $3::text, $4::int, $5::bigint, $6::boolean)
