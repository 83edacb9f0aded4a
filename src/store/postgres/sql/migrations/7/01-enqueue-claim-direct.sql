-- Version 7: a one-item enqueue to this client's idle worker inserts the task claimed at once.
-- Before, the hand-off inserted the task pending and q_claim then updated it to claimed or running:
-- two versions of the row, index entries for both, twice the WAL, in the transaction a waiting
-- worker's task starts after. When the batch is one runnable task without a dedup key, and the
-- queue has nothing q_claim could take before it (no ready task, no due delayed task, no expired
-- lease), the row is inserted as the claim would have left it: the same seq and token sequences,
-- fields, changeSeq and answer rows. Anything else, or an id that is taken (unique violation: the
-- checked path sorts out retries and tombstones), runs version 5's body unchanged. Redis does the
-- same in Q.handoff_new.

CREATE OR REPLACE FUNCTION q_enqueue_uniform_claim(p_ids text[], p_payloads text[], p_common json, p_queue text,
  p_owner text, p_limit int, p_ttl bigint, p_start boolean)
RETURNS TABLE (r_ord int, r_id text, r_seq bigint, r_status text, r_queue text, r_item json) LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := now_ms();
  c q_new;
  v_run_at bigint;
  v_row items;
BEGIN
  IF cardinality(p_ids) = 1 AND p_limit >= 1 THEN
    c := json_populate_record(NULL::q_new, p_common);
    v_run_at := coalesce(c.run_at, v_now + coalesce(c.delay, 0));
    -- q_claim's probes (the first entry of each partial index), and the head of the claim order.
    IF c.dedup_key IS NULL AND c.queue = p_queue AND v_run_at <= v_now
      AND coalesce((SELECT min(i.lease_expires_at) FROM items i
        WHERE i.queue = p_queue AND i.state IN ('claimed', 'running', 'resolving')) > v_now, true)
      AND coalesce((SELECT min(i.run_at) FROM items i
        WHERE i.queue = p_queue AND i.state = 'pending' AND NOT i.ready) > v_now, true)
      AND (SELECT i.seq FROM items i WHERE i.queue = p_queue AND i.state = 'pending' AND i.ready
        ORDER BY i.priority DESC, i.run_at, i.seq LIMIT 1) IS NULL
    THEN
      BEGIN
        -- q_enqueue_items' insert (seq from item_seqs), then q_claim's update (token from
        -- item_tokens), as one row.
        INSERT INTO items (id, queue, state, payload, priority, run_at, ready, seq, attempt, max_attempts,
          owner, token, lease_expires_at, claimed_at, started_at,
          created_at, updated_at, rejections, stalls, timeout, claim_timeout, dead_letter, completed_ttl,
          failed_ttl, dedup_until, meta, op_id, change_xid)
        VALUES (p_ids[1], c.queue, CASE WHEN p_start THEN 'running' ELSE 'claimed' END, p_payloads[1], c.priority,
          v_run_at, false, nextval('item_seqs'), CASE WHEN p_start THEN 1 ELSE 0 END, c.max_attempts,
          p_owner, nextval('item_tokens'), v_now + p_ttl, v_now, CASE WHEN p_start THEN v_now END,
          v_now, v_now, 0, 0, c.timeout, c.claim_timeout, c.dead_letter, c.completed_ttl,
          c.failed_ttl, CASE WHEN c.dedup_ttl IS NOT NULL THEN v_now + c.dedup_ttl END, c.meta, c.op_id,
          pg_current_xact_id())
        RETURNING * INTO v_row;
        RETURN QUERY VALUES (1, v_row.id, v_row.seq, 'created'::text, v_row.queue, NULL::json),
          (NULL::int, NULL::text, NULL::bigint, NULL::text, NULL::text, row_to_json(v_row));
        RETURN;
      EXCEPTION WHEN unique_violation THEN
        NULL; -- the id is taken: the general path below decides
      END;
    END IF;
  END IF;
  RETURN QUERY SELECT * FROM q_enqueue_items_claim(q_uniform_items(p_ids, p_payloads, p_common), p_queue, p_owner,
    p_limit, p_ttl, p_start);
END
$$;
