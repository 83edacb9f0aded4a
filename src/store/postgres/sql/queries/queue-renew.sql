SELECT r_ord, r_status, r_lease_expires_at, r_state, r_queue, r_changed
FROM q_renew_batch($1::text[], $2::bigint[], $3::text[], $4::boolean[], $5::bigint)
