-- Version 4, hand-off to an idle worker of the enqueuing client (docs/stores.md): the enqueue and a
-- claim for the worker's parked request run in one transaction, so the task is claimed with the
-- enqueue's commit (one WAL flush) instead of after a wake-up, a second round trip and a second
-- flush. The claim is q_claim itself, run after the insert: it takes the queue's best runnable items
-- in claim order (not necessarily the new ones) exactly as the worker's own claim would. Claimed rows
-- come back as JSON in r_item, after the enqueue's answers (whose r_item is NULL).

CREATE FUNCTION q_enqueue_items_claim(p_items q_new[], p_queue text, p_owner text, p_limit int, p_ttl bigint,
  p_start boolean)
RETURNS TABLE (r_ord int, r_id text, r_seq bigint, r_status text, r_queue text, r_item json) LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY SELECT e.*, NULL::json FROM q_enqueue_items(p_items) e;
  -- q_claim's last row (id NULL) only carries nextRunAt.
  RETURN QUERY SELECT NULL::int, NULL::text, NULL::bigint, NULL::text, NULL::text, row_to_json(c)
    FROM q_claim(p_queue, p_owner, p_limit, p_ttl, p_start, 'pending') c
    WHERE c.id IS NOT NULL;
END
$$;

CREATE FUNCTION q_enqueue_json_claim(p_items json, p_queue text, p_owner text, p_limit int, p_ttl bigint,
  p_start boolean)
RETURNS TABLE (r_ord int, r_id text, r_seq bigint, r_status text, r_queue text, r_item json) LANGUAGE sql AS $$
  SELECT * FROM q_enqueue_items_claim(ARRAY(SELECT x FROM json_populate_recordset(NULL::q_new, p_items) x),
    p_queue, p_owner, p_limit, p_ttl, p_start)
$$;

CREATE FUNCTION q_enqueue_uniform_claim(p_ids text[], p_payloads text[], p_common json, p_queue text, p_owner text,
  p_limit int, p_ttl bigint, p_start boolean)
RETURNS TABLE (r_ord int, r_id text, r_seq bigint, r_status text, r_queue text, r_item json) LANGUAGE sql AS $$
  SELECT * FROM q_enqueue_items_claim(q_uniform_items(p_ids, p_payloads, p_common), p_queue, p_owner, p_limit,
    p_ttl, p_start)
$$;
