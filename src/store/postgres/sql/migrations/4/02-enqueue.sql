-- Version 4, enqueue: the usual batch skips the checks and is decoded in a fraction of the time.
-- Version 3's enqueue probed the primary key once per id and ran a duplicate check before inserting;
-- now a batch without dedup keys is inserted at once inside a subtransaction, and only a unique
-- violation (an id stored already or repeated in the batch: rare) undoes it and runs version 3's
-- checked path, with the same results, errors and concurrency behaviour. A batch whose items share
-- every field but id and payload (what enqueueMany sends without per-item options) arrives as two
-- text arrays and one JSON object (q_enqueue_uniform): json_populate_recordset took about 4 ms per
-- 1 000 items, text arrays take about 0.6 ms. Both entry points build the same q_new[] and call
-- q_enqueue_items.

CREATE FUNCTION q_enqueue_items(p_items q_new[])
RETURNS TABLE (r_ord int, r_id text, r_seq bigint, r_status text, r_queue text) LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := now_ms();
  v_xid xid8 := pg_current_xact_id();
  v_items q_new[] := p_items;
  v_ids text[];
  v_seqs bigint[];
  -- Live rows already stored under the batch's ids (ambiguous retries), and tombstones to replace.
  v_live_ids text[];
  v_live_seqs bigint[];
  v_live_ops text[];
  v_dead_ids text[];
  v_bad text;
  v_run_at bigint;
  e record;
  x q_new;
  h items;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM unnest(v_items) u WHERE u.dedup_key IS NOT NULL) THEN
    -- The usual batch: new ids, none repeated. Insert it as is; a unique violation (an id stored
    -- already, live or tombstone, or repeated in the batch) undoes the attempt and the checked
    -- path below sorts it out. Seqs are drawn in batch order, as below.
    BEGIN
      WITH fresh AS MATERIALIZED (
        SELECT n.*, nextval('item_seqs') AS seq
        FROM (
          SELECT u.ordinality::int AS ord, u.id, u.queue, u.payload, u.priority,
            coalesce(u.run_at, v_now + coalesce(u.delay, 0)) AS run_at, u.max_attempts, u.timeout, u.claim_timeout,
            u.dead_letter, u.completed_ttl, u.failed_ttl, u.dedup_ttl, u.meta, u.op_id
          FROM unnest(v_items) WITH ORDINALITY u
          ORDER BY u.ordinality
        ) n
      ), ins AS (
        INSERT INTO items (id, queue, state, payload, priority, run_at, ready, seq, attempt, max_attempts,
          created_at, updated_at, rejections, stalls, timeout, claim_timeout, dead_letter, completed_ttl,
          failed_ttl, dedup_until, meta, op_id, change_xid)
        SELECT f.id, f.queue, 'pending', f.payload, f.priority, f.run_at, f.run_at <= v_now, f.seq, 0, f.max_attempts,
          v_now, v_now, 0, 0, f.timeout, f.claim_timeout, f.dead_letter, f.completed_ttl, f.failed_ttl,
          CASE WHEN f.dedup_ttl IS NOT NULL THEN v_now + f.dedup_ttl END, f.meta, f.op_id, v_xid
        FROM fresh f
      )
      -- Runs to its end (the insert included) before anything is returned, so a unique violation
      -- leaves no answer rows behind.
      SELECT array_agg(f.seq ORDER BY f.ord) INTO v_seqs FROM fresh f;
    EXCEPTION WHEN unique_violation THEN
      v_seqs := NULL;
    END;
    IF v_seqs IS NOT NULL THEN
      RETURN QUERY
      SELECT u.ordinality::int, u.id, v_seqs[u.ordinality], 'created'::text, u.queue
      FROM unnest(v_items) WITH ORDINALITY u
      ORDER BY u.ordinality;
      RETURN;
    END IF;
  END IF;

  -- The checked path (version 3's): dedup keys, ids stored already, ids repeated in the batch.
  v_ids := ARRAY(SELECT u.id FROM unnest(v_items) u);
  SELECT
    coalesce(array_agg(i.id) FILTER (WHERE i.state <> 'deleted'), '{}'),
    coalesce(array_agg(i.seq) FILTER (WHERE i.state <> 'deleted'), '{}'),
    coalesce(array_agg(i.op_id) FILTER (WHERE i.state <> 'deleted'), '{}'),
    coalesce(array_agg(i.id) FILTER (WHERE i.state = 'deleted'), '{}')
  INTO v_live_ids, v_live_seqs, v_live_ops, v_dead_ids
  -- One primary-key probe per id: the LIMIT keeps the lateral subquery a parameterized index
  -- scan, where `id = ANY (ids)` would be planned as a sequential scan for large batches.
  FROM unnest(v_ids) AS u(id)
  CROSS JOIN LATERAL (SELECT i.id, i.state, i.seq, i.op_id FROM items i WHERE i.id = u.id LIMIT 1) i;

  -- An id repeated within the batch, or naming a live item stored by another operation, fails the
  -- whole batch (a live item with the same opId is an ambiguous retry: created).
  SELECT u.id INTO v_bad
  FROM (
    SELECT u.id, u.op_id, u.ordinality AS ord, row_number() OVER (PARTITION BY u.id ORDER BY u.ordinality) AS k
    FROM unnest(v_items) WITH ORDINALITY u
  ) u
  LEFT JOIN unnest(v_live_ids, v_live_ops) AS l(id, op_id) ON l.id = u.id
  WHERE u.k > 1 OR (l.id IS NOT NULL AND NOT (coalesce(u.op_id, '') <> '' AND l.op_id = u.op_id))
  ORDER BY u.ord
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'RT002', MESSAGE = 'task ' || v_bad || ' already exists', DETAIL = v_bad;
  END IF;

  IF NOT EXISTS (SELECT 1 FROM unnest(v_items) u WHERE u.dedup_key IS NOT NULL) THEN
    -- No dedup: one insert for the whole batch, tombstones with the same ids replaced.
    IF cardinality(v_dead_ids) > 0 THEN
      DELETE FROM items WHERE items.id = ANY (v_dead_ids) AND items.state = 'deleted';
    END IF;
    -- A concurrent enqueue of the same id makes the insert fail with a unique violation; the
    -- client retries the batch, whose check then reports the conflict.
    RETURN QUERY
    WITH fresh AS MATERIALIZED (
      -- Seqs are drawn in batch order: the subquery is ordered and nextval runs as its rows come
      -- out. Answers come from here, so no join of the inserted rows back to the batch is needed.
      SELECT n.*, nextval('item_seqs') AS seq
      FROM (
        SELECT u.ordinality::int AS ord, u.id, u.queue, u.payload, u.priority,
          coalesce(u.run_at, v_now + coalesce(u.delay, 0)) AS run_at, u.max_attempts, u.timeout, u.claim_timeout,
          u.dead_letter, u.completed_ttl, u.failed_ttl, u.dedup_key, u.dedup_ttl, u.meta, u.op_id
        FROM unnest(v_items) WITH ORDINALITY u
        WHERE NOT (u.id = ANY (v_live_ids))
        ORDER BY u.ordinality
      ) n
    ), ins AS (
      -- createItem (q_new_row) inline.
      INSERT INTO items (id, queue, state, payload, priority, run_at, ready, seq, attempt, max_attempts,
        created_at, updated_at, rejections, stalls, timeout, claim_timeout, dead_letter, completed_ttl,
        failed_ttl, dedup_key, dedup_until, meta, op_id, change_xid)
      SELECT f.id, f.queue, 'pending', f.payload, f.priority, f.run_at, f.run_at <= v_now, f.seq, 0, f.max_attempts,
        v_now, v_now, 0, 0, f.timeout, f.claim_timeout, f.dead_letter, f.completed_ttl, f.failed_ttl, f.dedup_key,
        CASE WHEN f.dedup_ttl IS NOT NULL THEN v_now + f.dedup_ttl END, f.meta, f.op_id, v_xid
      FROM fresh f
    )
    SELECT a.ord, a.id, a.seq, 'created'::text, a.queue
    FROM (
      SELECT f.ord, f.id, f.seq, f.queue FROM fresh f
      UNION ALL
      -- Ambiguous retries: the stored item's seq.
      SELECT u.ordinality::int, u.id, l.seq, u.queue
      FROM unnest(v_items) WITH ORDINALITY u
      JOIN unnest(v_live_ids, v_live_seqs) AS l(id, seq) ON l.id = u.id
    ) a
    ORDER BY a.ord;
    RETURN;
  END IF;

  -- Dedup: item by item, each key serialized by a transaction-scoped advisory lock (as version 1).
  FOR e IN SELECT unnest(v_items) AS x, generate_subscripts(v_items, 1) AS k LOOP
    x := e.x;
    r_ord := e.k;
    SELECT * INTO h FROM items i WHERE i.id = x.id AND i.state <> 'deleted';
    IF FOUND THEN
      r_id := h.id; r_seq := h.seq; r_status := 'created'; r_queue := h.queue;
      RETURN NEXT;
      CONTINUE;
    END IF;
    IF x.dedup_key IS NOT NULL THEN
      PERFORM pg_advisory_xact_lock(hashtextextended(current_schema() || chr(1) || x.queue || chr(1) || x.dedup_key, 0));
      SELECT * INTO h FROM items i
      WHERE i.queue = x.queue AND i.dedup_key = x.dedup_key AND i.state <> 'deleted'
        AND (i.state IN ('pending', 'claimed', 'running') OR (i.dedup_until IS NOT NULL AND v_now < i.dedup_until))
      ORDER BY i.seq DESC
      LIMIT 1
      FOR UPDATE;
      IF FOUND THEN
        r_id := h.id; r_seq := h.seq; r_queue := h.queue;
        IF x.dedup_mode = 'replace' AND h.state = 'pending' THEN
          v_run_at := coalesce(x.run_at, v_now + coalesce(x.delay, 0));
          UPDATE items SET
            payload = x.payload,
            priority = x.priority,
            run_at = v_run_at,
            ready = v_run_at <= v_now,
            meta = coalesce(x.meta, items.meta),
            updated_at = v_now,
            change_xid = v_xid
          WHERE items.id = h.id;
          r_status := 'replaced';
        ELSE
          r_status := 'deduplicated';
        END IF;
        RETURN NEXT;
        CONTINUE;
      END IF;
    END IF;
    h := q_new_row(x, v_now, v_xid, nextval('item_seqs'));
    DELETE FROM items WHERE items.id = h.id AND items.state = 'deleted';
    INSERT INTO items VALUES (h.*);
    r_id := h.id; r_seq := h.seq; r_status := 'created'; r_queue := h.queue;
    RETURN NEXT;
  END LOOP;
END
$$;

-- A batch of any shape, as version 3 took it.
CREATE OR REPLACE FUNCTION q_enqueue_json(p_items json)
RETURNS TABLE (r_ord int, r_id text, r_seq bigint, r_status text, r_queue text) LANGUAGE sql AS $$
  SELECT * FROM q_enqueue_items(ARRAY(SELECT x FROM json_populate_recordset(NULL::q_new, p_items) x))
$$;

-- The items of a batch that differ only in id and payload: p_common holds every other q_new field.
CREATE FUNCTION q_uniform_items(p_ids text[], p_payloads text[], p_common json) RETURNS q_new[]
LANGUAGE sql AS $$
  SELECT ARRAY(
    SELECT ROW(u.id, c.queue, u.payload, c.priority, c.run_at, c.delay, c.max_attempts, c.timeout,
      c.claim_timeout, c.dead_letter, c.completed_ttl, c.failed_ttl, c.dedup_key, c.dedup_ttl, c.dedup_mode,
      c.meta, c.op_id)::q_new
    FROM unnest(p_ids, p_payloads) WITH ORDINALITY AS u(id, payload, ord)
    CROSS JOIN json_populate_record(NULL::q_new, p_common) c
    ORDER BY u.ord)
$$;

CREATE FUNCTION q_enqueue_uniform(p_ids text[], p_payloads text[], p_common json)
RETURNS TABLE (r_ord int, r_id text, r_seq bigint, r_status text, r_queue text) LANGUAGE sql AS $$
  SELECT * FROM q_enqueue_items(q_uniform_items(p_ids, p_payloads, p_common))
$$;
