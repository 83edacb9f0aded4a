SELECT r_ord, r_id, r_seq, r_status, r_queue FROM q_enqueue_json($1::json)
