-- A batch whose items share every field but id and payload: ids, payloads, the other fields as one
-- q_new JSON object. Same answers as queue-enqueue.sql.
SELECT r_ord, r_id, r_seq, r_status, r_queue FROM q_enqueue_uniform($1::text[], $2::text[], $3::json)
