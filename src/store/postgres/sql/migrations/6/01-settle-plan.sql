-- Version 6, settle: the same function as version 4, planned the same way whatever the statistics.
-- Version 4's fast path named the row's state as `state IN ('claimed', 'running')`, which implies
-- the predicate of the partial index items_leased. Once ANALYZE had seen a queue with few leased
-- rows (any quiet moment), the planner drove the UPDATE from that index, reading every leased row
-- of the store and joining each against the batch's ops: a worker draining a queue then settled 7
-- times slower and processed half as many tasks per second. The ops are now read once (MATERIALIZED) and the
-- state test does not match any partial index, so each op finds its row by primary key.

CREATE OR REPLACE FUNCTION q_settle_batch(p_ops jsonb)
RETURNS TABLE (r_ord int, r_status text, r_state text, r_outcome text, r_queue text, r_changed boolean)
LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := now_ms();
  v_ops q_op[] := ARRAY(SELECT x FROM jsonb_populate_recordset(NULL::q_op, p_ops) x);
  v_done int[];
  v_queues text[];
  v_rest int[];
BEGIN
  IF NOT EXISTS (SELECT 1 FROM unnest(v_ops) u WHERE u.op = 'complete') THEN
    RETURN QUERY SELECT * FROM q_settle_checked(p_ops);
    RETURN;
  END IF;
  -- Lock every named row in id order first, as the checked path does, so concurrent batches
  -- cannot deadlock.
  PERFORM 1 FROM items i WHERE i.id IN (SELECT o.id FROM unnest(v_ops) o) ORDER BY i.id FOR UPDATE;

  WITH a AS (
    -- An id named by several ops of the batch (of any kind) is left to the checked path, which
    -- applies them in order.
    SELECT u.op, u.id, u.token, u.result, u.ordinality::int AS k, count(*) OVER (PARTITION BY u.id) AS named
    FROM unnest(v_ops) WITH ORDINALITY u
  ), o AS MATERIALIZED (
    SELECT a.id, a.token, a.result, a.k FROM a WHERE a.op = 'complete' AND a.token IS NOT NULL AND a.named = 1
  ), upd AS (
    -- SET sees the row as it was: t.state is the state before the completion.
    UPDATE items t SET
      state = 'completed',
      outcome = 'succeeded',
      attempt = CASE WHEN t.state = 'claimed' THEN t.attempt + 1 ELSE t.attempt END,
      started_at = CASE WHEN t.state = 'claimed' THEN v_now ELSE t.started_at END,
      result = o.result,
      error_code = NULL,
      error_message = NULL,
      completed_at = v_now,
      lease_expires_at = NULL,
      expire_at = v_now + t.completed_ttl,
      ready = false,
      updated_at = v_now,
      change_xid = pg_current_xact_id()
    FROM o
    -- The state test is a CASE so that it does not imply the predicate of items_leased: with it,
    -- statistics taken while few rows were leased made the planner read every leased row of the
    -- store and match each against the ops (a settle of 40 took 14 ms instead of about 3). Only
    -- the primary key fits now.
    WHERE t.id = o.id AND t.token = o.token
      AND CASE t.state WHEN 'claimed' THEN true WHEN 'running' THEN true ELSE false END
      AND t.lease_expires_at > v_now
    RETURNING o.k, t.queue
  )
  SELECT coalesce(array_agg(upd.k), '{}'), coalesce(array_agg(upd.queue), '{}') INTO v_done, v_queues FROM upd;

  RETURN QUERY SELECT d.k, 'ok'::text, 'completed'::text, 'succeeded'::text, d.queue, true
  FROM unnest(v_done, v_queues) AS d(k, queue);

  IF cardinality(v_done) < cardinality(v_ops) THEN
    v_rest := ARRAY(
      SELECT g.k FROM generate_subscripts(v_ops, 1) AS g(k)
      LEFT JOIN unnest(v_done) AS d(k) ON d.k = g.k
      WHERE d.k IS NULL
      ORDER BY g.k);
    -- The checked path answers by position in what it was given: map back to the batch's.
    RETURN QUERY SELECT v_rest[c.r_ord], c.r_status, c.r_state, c.r_outcome, c.r_queue, c.r_changed
    FROM q_settle_checked((SELECT jsonb_agg(p_ops -> (k - 1) ORDER BY n) FROM unnest(v_rest) WITH ORDINALITY AS r(k, n))) c;
  END IF;
END
$$;
