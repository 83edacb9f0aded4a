-- A batch whose items share every field but id and payload: ids, payloads, the other fields as one
-- q_new JSON object. Same answers as queue-enqueue.sql, in one row: the seqs in batch order and,
-- unless every item was created (the usual batch), the ids and statuses too. One row instead of
-- one per item: the server formats, and the client parses, a fraction of it.
SELECT array_agg(r_seq ORDER BY r_ord) AS seqs,
  CASE WHEN bool_and(r_status = 'created') THEN NULL ELSE array_agg(r_id ORDER BY r_ord) END AS ids,
  CASE WHEN bool_and(r_status = 'created') THEN NULL ELSE array_agg(r_status ORDER BY r_ord) END AS statuses
FROM q_enqueue_uniform($1::text[], $2::text[], $3::json)
