SELECT r_ord, r_status, r_state, r_outcome, r_queue, r_changed FROM q_settle_batch($1::jsonb)
