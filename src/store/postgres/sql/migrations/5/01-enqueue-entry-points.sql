-- Version 5: the enqueue entry points in PL/pgSQL. As SQL-language functions (version 4) they were
-- never inlined (set-returning and volatile, or a sub-select in the body), so the server parsed and
-- planned their bodies on every call: about 0.3 ms each for q_enqueue_uniform_claim and
-- q_uniform_items per one-item enqueue, more than the insert itself. A PL/pgSQL body keeps its plans
-- for the session. Same arguments, same results.

CREATE OR REPLACE FUNCTION q_uniform_items(p_ids text[], p_payloads text[], p_common json) RETURNS q_new[]
LANGUAGE plpgsql AS $$
BEGIN
  RETURN ARRAY(
    SELECT ROW(u.id, c.queue, u.payload, c.priority, c.run_at, c.delay, c.max_attempts, c.timeout,
      c.claim_timeout, c.dead_letter, c.completed_ttl, c.failed_ttl, c.dedup_key, c.dedup_ttl, c.dedup_mode,
      c.meta, c.op_id)::q_new
    FROM unnest(p_ids, p_payloads) WITH ORDINALITY AS u(id, payload, ord)
    CROSS JOIN json_populate_record(NULL::q_new, p_common) c
    ORDER BY u.ord);
END
$$;

CREATE OR REPLACE FUNCTION q_enqueue_json(p_items json)
RETURNS TABLE (r_ord int, r_id text, r_seq bigint, r_status text, r_queue text) LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY SELECT * FROM q_enqueue_items(ARRAY(SELECT x FROM json_populate_recordset(NULL::q_new, p_items) x));
END
$$;

CREATE OR REPLACE FUNCTION q_enqueue_uniform(p_ids text[], p_payloads text[], p_common json)
RETURNS TABLE (r_ord int, r_id text, r_seq bigint, r_status text, r_queue text) LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY SELECT * FROM q_enqueue_items(q_uniform_items(p_ids, p_payloads, p_common));
END
$$;

CREATE OR REPLACE FUNCTION q_enqueue_json_claim(p_items json, p_queue text, p_owner text, p_limit int, p_ttl bigint,
  p_start boolean)
RETURNS TABLE (r_ord int, r_id text, r_seq bigint, r_status text, r_queue text, r_item json) LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY SELECT * FROM q_enqueue_items_claim(
    ARRAY(SELECT x FROM json_populate_recordset(NULL::q_new, p_items) x), p_queue, p_owner, p_limit, p_ttl, p_start);
END
$$;

CREATE OR REPLACE FUNCTION q_enqueue_uniform_claim(p_ids text[], p_payloads text[], p_common json, p_queue text,
  p_owner text, p_limit int, p_ttl bigint, p_start boolean)
RETURNS TABLE (r_ord int, r_id text, r_seq bigint, r_status text, r_queue text, r_item json) LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY SELECT * FROM q_enqueue_items_claim(q_uniform_items(p_ids, p_payloads, p_common), p_queue, p_owner,
    p_limit, p_ttl, p_start);
END
$$;
