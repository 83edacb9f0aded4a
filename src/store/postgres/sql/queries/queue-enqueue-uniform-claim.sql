-- The batch of queue-enqueue-uniform.sql, answered row by row as queue-enqueue.sql does, then a
-- claim for an idle worker of this client ($4 queue, $5 owner, $6 limit, $7 lease TTL, $8 start)
-- in the same transaction: claimed rows as JSON in r_item.
SELECT r_ord, r_id, r_seq, r_status, r_queue, r_item
FROM q_enqueue_uniform_claim($1::text[], $2::text[], $3::json, $4::text, $5::text, $6::int, $7::bigint, $8::boolean)
