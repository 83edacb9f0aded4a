-- Queue writes: each function is one round trip from the client and touches a batch of rows with
-- a fixed number of set-based statements. Rows to change are locked first (in id order, or with
-- SKIP LOCKED), then read again by a later statement, which sees their latest committed version.

-- Insert a new item, replacing a tombstone with the same id; a live item with that id wins.
CREATE FUNCTION q_insert(r items) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM items WHERE items.id = r.id AND items.state = 'deleted';
  INSERT INTO items VALUES (r.*) ON CONFLICT (id) DO NOTHING;
  RETURN FOUND;
END
$$;

-- Store the rows of a batch of steps that changed, in one statement, then insert the dead-letter
-- copies the steps call for.
CREATE FUNCTION q_apply(p_steps q_step[], p_now bigint, p_xid xid8) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE items t SET
    state = (s.item).state,
    outcome = (s.item).outcome,
    payload = (s.item).payload,
    priority = (s.item).priority,
    run_at = (s.item).run_at,
    ready = (s.item).ready,
    attempt = (s.item).attempt,
    max_attempts = (s.item).max_attempts,
    owner = (s.item).owner,
    token = (s.item).token,
    lease_expires_at = (s.item).lease_expires_at,
    claimed_at = (s.item).claimed_at,
    started_at = (s.item).started_at,
    completed_at = (s.item).completed_at,
    updated_at = (s.item).updated_at,
    progress = (s.item).progress,
    result = (s.item).result,
    error_code = (s.item).error_code,
    error_message = (s.item).error_message,
    rejections = (s.item).rejections,
    last_rejection = (s.item).last_rejection,
    stalls = (s.item).stalls,
    expire_at = (s.item).expire_at,
    meta = (s.item).meta,
    change_xid = (s.item).change_xid
  FROM unnest(p_steps) s
  WHERE s.changed AND t.id = (s.item).id;

  PERFORM q_insert(q_new_row(q_dead_letter_new(s.item), p_now, p_xid, nextval('item_seqs')))
  FROM unnest(p_steps) s
  WHERE s.dead_letter;
END
$$;

-- Apply the expired leases of one queue (claim-time reclaim). Rows a worker is settling right now
-- are skipped: its settle applies the expiry itself.
CREATE FUNCTION q_expire_queue(p_queue text, p_now bigint, p_xid xid8) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_ids text[];
  v_steps q_step[];
BEGIN
  v_ids := ARRAY(
    SELECT i.id FROM items i
    WHERE i.queue = p_queue AND i.state IN ('claimed', 'running', 'resolving') AND i.lease_expires_at <= p_now
    FOR UPDATE SKIP LOCKED);
  IF cardinality(v_ids) > 0 THEN
    v_steps := ARRAY(SELECT q_expire(i, p_now, p_xid) FROM items i WHERE i.id = ANY (v_ids));
    PERFORM q_apply(v_steps, p_now, p_xid);
  END IF;
END
$$;

-- Claim up to p_limit items of a queue for p_owner: expired leases of the queue first, then due
-- delayed items are promoted to the claim index, then one statement takes the first rows of the
-- claim index with FOR UPDATE SKIP LOCKED and updates them. Fresh tokens come from a sequence,
-- drawn after the row lock, so a later claim of a row always draws a greater token.
-- Returns the claimed rows in claim order; when fewer than p_limit were claimed, one more row
-- with a NULL id whose run_at is nextRunAt (NULL when nothing is waiting).
CREATE FUNCTION q_claim(p_queue text, p_owner text, p_limit int, p_ttl bigint, p_start boolean, p_from text)
RETURNS SETOF items LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := now_ms();
  v_xid xid8 := pg_current_xact_id();
  v_count int;
  v_next items;
BEGIN
  PERFORM q_expire_queue(p_queue, v_now, v_xid);

  IF p_from = 'completed' THEN
    RETURN QUERY
    WITH picked AS (
      SELECT i.id FROM items i
      WHERE i.queue = p_queue AND i.state = 'completed'
      ORDER BY i.completed_at, i.seq
      LIMIT p_limit
      FOR UPDATE SKIP LOCKED
    ), upd AS (
      UPDATE items t SET
        state = 'resolving',
        owner = p_owner,
        token = nextval('item_tokens'),
        lease_expires_at = v_now + p_ttl,
        updated_at = v_now,
        change_xid = v_xid
      FROM picked WHERE t.id = picked.id
      RETURNING t.*
    )
    SELECT * FROM upd ORDER BY upd.completed_at, upd.seq;
  ELSE
    UPDATE items t SET ready = true
    FROM (
      SELECT i.id FROM items i
      WHERE i.queue = p_queue AND i.state = 'pending' AND NOT i.ready AND i.run_at <= v_now
      FOR UPDATE SKIP LOCKED
    ) due
    WHERE t.id = due.id;

    RETURN QUERY
    WITH picked AS (
      SELECT i.id FROM items i
      WHERE i.queue = p_queue AND i.state = 'pending' AND i.ready AND i.run_at <= v_now
      ORDER BY i.priority DESC, i.run_at, i.seq
      LIMIT p_limit
      FOR UPDATE SKIP LOCKED
    ), upd AS (
      UPDATE items t SET
        state = CASE WHEN p_start THEN 'running' ELSE 'claimed' END,
        owner = p_owner,
        token = nextval('item_tokens'),
        lease_expires_at = v_now + p_ttl,
        claimed_at = v_now,
        attempt = t.attempt + CASE WHEN p_start THEN 1 ELSE 0 END,
        started_at = CASE WHEN p_start THEN v_now ELSE t.started_at END,
        ready = false,
        updated_at = v_now,
        change_xid = v_xid
      FROM picked WHERE t.id = picked.id
      RETURNING t.*
    )
    SELECT * FROM upd ORDER BY upd.priority DESC, upd.run_at, upd.seq;
  END IF;
  GET DIAGNOSTICS v_count = ROW_COUNT;

  IF v_count < p_limit THEN
    v_next.run_at := least(
      CASE WHEN p_from = 'pending' THEN (
        SELECT min(i.run_at) FROM items i WHERE i.queue = p_queue AND i.state = 'pending' AND NOT i.ready
      ) END,
      (SELECT min(i.lease_expires_at) FROM items i
        WHERE i.queue = p_queue AND i.state IN ('claimed', 'running', 'resolving')));
    RETURN NEXT v_next;
  END IF;
END
$$;

-- Enqueue a batch, all or nothing. Returns per item (in order): id and seq of the stored item or
-- of the dedup holder, and created | deduplicated | replaced.
CREATE FUNCTION q_enqueue(p_items jsonb)
RETURNS TABLE (r_ord int, r_id text, r_seq bigint, r_status text, r_queue text) LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := now_ms();
  v_xid xid8 := pg_current_xact_id();
  v_items q_new[] := ARRAY(SELECT x FROM jsonb_populate_recordset(NULL::q_new, p_items) x);
  v_bad text;
  v_run_at bigint;
  e record;
  x q_new;
  h items;
BEGIN
  -- An id repeated within the batch, or naming a live item stored by another operation, fails the
  -- whole batch (a live item with the same opId is an ambiguous retry: created).
  SELECT u.id INTO v_bad
  FROM (
    SELECT u.id, u.op_id, u.ordinality AS ord, row_number() OVER (PARTITION BY u.id ORDER BY u.ordinality) AS k
    FROM unnest(v_items) WITH ORDINALITY u
  ) u
  LEFT JOIN items i ON i.id = u.id AND i.state <> 'deleted'
  WHERE u.k > 1 OR (i.id IS NOT NULL AND NOT (coalesce(u.op_id, '') <> '' AND i.op_id = u.op_id))
  ORDER BY u.ord
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'RT002', MESSAGE = 'task ' || v_bad || ' already exists', DETAIL = v_bad;
  END IF;

  IF NOT EXISTS (SELECT 1 FROM unnest(v_items) u WHERE u.dedup_key IS NOT NULL) THEN
    -- No dedup: one insert for the whole batch. Seqs are drawn in batch order.
    DELETE FROM items WHERE items.id IN (SELECT u.id FROM unnest(v_items) u) AND items.state = 'deleted';
    RETURN QUERY
    WITH src AS (
      -- Set-returning functions in one select list advance together: element and position.
      SELECT unnest(v_items) AS x, generate_subscripts(v_items, 1) AS n
    ), fresh AS (
      SELECT f.n, q_new_row(f.x, v_now, v_xid, nextval('item_seqs')) AS row
      FROM (
        SELECT src.x, src.n FROM src
        WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.id = (src.x).id)
        ORDER BY src.n
      ) f
    ), ins AS (
      INSERT INTO items SELECT (fresh.row).* FROM fresh
    )
    SELECT src.n, (src.x).id, coalesce((f.row).seq, i.seq), 'created'::text, (src.x).queue
    FROM src
    LEFT JOIN fresh f ON f.n = src.n
    LEFT JOIN items i ON i.id = (src.x).id
    ORDER BY src.n;
    RETURN;
  END IF;

  -- Dedup: item by item, each key serialized by a transaction-scoped advisory lock.
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
    -- A concurrent enqueue of the same id makes this fail with a unique violation; the client
    -- retries the batch, whose check then reports the conflict.
    DELETE FROM items WHERE items.id = h.id AND items.state = 'deleted';
    INSERT INTO items VALUES (h.*);
    r_id := h.id; r_seq := h.seq; r_status := 'created'; r_queue := h.queue;
    RETURN NEXT;
  END LOOP;
END
$$;

-- Settle a batch of ops, one result row per op (in order). Ops on distinct items are applied
-- together: one read, one UPDATE. An id repeated in the batch starts a new round, so each op sees
-- the item as the previous ops on it left it (rounds are rare: a batch usually names each item once).
CREATE FUNCTION q_settle_batch(p_ops jsonb)
RETURNS TABLE (r_ord int, r_status text, r_state text, r_outcome text, r_queue text, r_changed boolean)
LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := now_ms();
  v_xid xid8 := pg_current_xact_id();
  v_ops q_op[] := ARRAY(SELECT x FROM jsonb_populate_recordset(NULL::q_op, p_ops) x);
  v_round int[];
  v_rounds int;
  v_steps q_step[];
  v_ords int[];
BEGIN
  -- Lock every named row in id order, so concurrent batches cannot deadlock.
  PERFORM 1 FROM items i WHERE i.id IN (SELECT o.id FROM unnest(v_ops) o) ORDER BY i.id FOR UPDATE;
  -- Elements are reached by unnest, never by subscript: subscripting an array of variable-length
  -- values walks it from the start, which would make a batch quadratic.
  SELECT array_agg(r.n ORDER BY r.k), max(r.n) INTO v_round, v_rounds
  FROM (
    SELECT s.k, row_number() OVER (PARTITION BY (s.o).id ORDER BY s.k)::int AS n
    FROM (SELECT unnest(v_ops) AS o, generate_subscripts(v_ops, 1) AS k) s
  ) r;
  FOR rnd IN 1..v_rounds LOOP
    SELECT array_agg(q_settle_step(i, s.o, v_now, v_xid) ORDER BY s.k), array_agg(s.k ORDER BY s.k)
    INTO v_steps, v_ords
    FROM (SELECT unnest(v_ops) AS o, generate_subscripts(v_ops, 1) AS k) s
    LEFT JOIN items i ON i.id = (s.o).id
    WHERE v_round[s.k] = rnd;
    PERFORM q_apply(v_steps, v_now, v_xid);
    RETURN QUERY
    SELECT r.ord, (r.s).status, ((r.s).item).state, ((r.s).item).outcome, ((r.s).item).queue, (r.s).changed
    FROM (SELECT unnest(v_steps) AS s, unnest(v_ords) AS ord) r;
  END LOOP;
END
$$;

-- Renew a batch of leases (same rounds as settle). Status ok | stale | cancelled.
CREATE FUNCTION q_renew_batch(p_ids text[], p_tokens bigint[], p_progress text[], p_has_progress boolean[],
  p_ttl bigint)
RETURNS TABLE (r_ord int, r_status text, r_lease_expires_at bigint, r_state text, r_queue text, r_changed boolean)
LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := now_ms();
  v_xid xid8 := pg_current_xact_id();
  v_round int[];
  v_rounds int;
  v_steps q_step[];
  v_ords int[];
BEGIN
  PERFORM 1 FROM items i WHERE i.id = ANY (p_ids) ORDER BY i.id FOR UPDATE;
  -- unnest, not subscripts (see q_settle_batch).
  SELECT array_agg(r.n ORDER BY r.k), max(r.n) INTO v_round, v_rounds
  FROM (
    SELECT e.k, row_number() OVER (PARTITION BY e.id ORDER BY e.k)::int AS n
    FROM unnest(p_ids) WITH ORDINALITY AS e(id, k)
  ) r;
  FOR rnd IN 1..v_rounds LOOP
    SELECT array_agg(q_renew_step(i, e.token, e.progress, e.has_progress, p_ttl, v_now, v_xid) ORDER BY e.k),
      array_agg(e.k ORDER BY e.k)
    INTO v_steps, v_ords
    FROM unnest(p_ids, p_tokens, p_progress, p_has_progress) WITH ORDINALITY AS e(id, token, progress, has_progress, k)
    LEFT JOIN items i ON i.id = e.id
    WHERE v_round[e.k] = rnd;
    PERFORM q_apply(v_steps, v_now, v_xid);
    RETURN QUERY
    SELECT r.ord, (r.s).status, CASE WHEN (r.s).status = 'ok' THEN ((r.s).item).lease_expires_at END,
      ((r.s).item).state, ((r.s).item).queue, (r.s).changed
    FROM (SELECT unnest(v_steps) AS s, unnest(v_ords) AS ord) r;
  END LOOP;
END
$$;

-- The converger's store-side rules (tasks.md §2.6), each over at most p_limit rows, skipping rows
-- a worker holds locked right now (its own transition wins; the next sweep sees the rest).
CREATE FUNCTION q_sweep(p_start_timeout bigint, p_grace bigint, p_tombstone_ttl bigint, p_limit int,
  OUT reclaimed int, OUT stalled int, OUT unstarted int, OUT timed_out int, OUT unclaimed int,
  OUT unresolved int, OUT pruned int, OUT purged int, OUT more boolean, OUT queues text[])
LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := now_ms();
  v_xid xid8 := pg_current_xact_id();
  v_ids text[];
  v_steps q_step[];
  v_horizon xid8;
BEGIN
  more := false;
  queues := '{}';
  reclaimed := 0; stalled := 0; unstarted := 0; timed_out := 0; unclaimed := 0; unresolved := 0;
  pruned := 0; purged := 0;

  -- Expired leases (reclaim, stall, unresolve).
  v_ids := ARRAY(
    SELECT i.id FROM items i
    WHERE i.state IN ('claimed', 'running', 'resolving') AND i.lease_expires_at <= v_now
    ORDER BY i.lease_expires_at LIMIT p_limit + 1 FOR UPDATE SKIP LOCKED);
  IF cardinality(v_ids) > p_limit THEN
    more := true;
    v_ids := v_ids[1:p_limit];
  END IF;
  IF cardinality(v_ids) > 0 THEN
    SELECT array_agg(q_expire(i, v_now, v_xid)),
      count(*) FILTER (WHERE i.state = 'claimed'),
      count(*) FILTER (WHERE i.state = 'running'),
      count(*) FILTER (WHERE i.state = 'resolving')
    INTO v_steps, reclaimed, stalled, unresolved
    FROM items i WHERE i.id = ANY (v_ids);
    PERFORM q_apply(v_steps, v_now, v_xid);
    queues := queues || ARRAY(SELECT (s.item).queue FROM unnest(v_steps) s);
  END IF;

  -- Claims not started within startTimeout go back to pending.
  IF p_start_timeout IS NOT NULL THEN
    v_ids := ARRAY(
      SELECT i.id FROM items i
      WHERE i.state = 'claimed' AND i.claimed_at <= v_now - p_start_timeout
      ORDER BY i.claimed_at LIMIT p_limit + 1 FOR UPDATE SKIP LOCKED);
    IF cardinality(v_ids) > p_limit THEN
      more := true;
      v_ids := v_ids[1:p_limit];
    END IF;
    IF cardinality(v_ids) > 0 THEN
      v_steps := ARRAY(SELECT q_unstart(i, v_now, v_xid) FROM items i WHERE i.id = ANY (v_ids));
      PERFORM q_apply(v_steps, v_now, v_xid);
      unstarted := cardinality(v_steps);
      queues := queues || ARRAY(SELECT (s.item).queue FROM unnest(v_steps) s);
    END IF;
  END IF;

  -- Running items past startedAt + timeout + grace.
  v_ids := ARRAY(
    SELECT i.id FROM items i
    WHERE i.state = 'running' AND i.timeout IS NOT NULL AND (i.started_at + i.timeout) <= v_now - p_grace
    ORDER BY (i.started_at + i.timeout) LIMIT p_limit + 1 FOR UPDATE SKIP LOCKED);
  IF cardinality(v_ids) > p_limit THEN
    more := true;
    v_ids := v_ids[1:p_limit];
  END IF;
  IF cardinality(v_ids) > 0 THEN
    v_steps := ARRAY(SELECT q_timeout(i, v_now, v_xid) FROM items i WHERE i.id = ANY (v_ids));
    PERFORM q_apply(v_steps, v_now, v_xid);
    timed_out := cardinality(v_steps);
    queues := queues || ARRAY(SELECT (s.item).queue FROM unnest(v_steps) s);
  END IF;

  -- Pending items unclaimed past runAt + claimTimeout.
  v_ids := ARRAY(
    SELECT i.id FROM items i
    WHERE i.state = 'pending' AND i.claim_timeout IS NOT NULL AND (i.run_at + i.claim_timeout) <= v_now
    ORDER BY (i.run_at + i.claim_timeout) LIMIT p_limit + 1 FOR UPDATE SKIP LOCKED);
  IF cardinality(v_ids) > p_limit THEN
    more := true;
    v_ids := v_ids[1:p_limit];
  END IF;
  IF cardinality(v_ids) > 0 THEN
    v_steps := ARRAY(SELECT q_unclaimed(i, v_now, v_xid) FROM items i WHERE i.id = ANY (v_ids));
    PERFORM q_apply(v_steps, v_now, v_xid);
    unclaimed := cardinality(v_steps);
    queues := queues || ARRAY(SELECT (s.item).queue FROM unnest(v_steps) s);
  END IF;

  -- Completed items past their retention become tombstones.
  v_ids := ARRAY(
    SELECT i.id FROM items i
    WHERE i.state = 'completed' AND i.expire_at <= v_now
    ORDER BY i.expire_at LIMIT p_limit + 1 FOR UPDATE SKIP LOCKED);
  IF cardinality(v_ids) > p_limit THEN
    more := true;
    v_ids := v_ids[1:p_limit];
  END IF;
  IF cardinality(v_ids) > 0 THEN
    v_steps := ARRAY(SELECT q_prune(i, v_now, v_xid) FROM items i WHERE i.id = ANY (v_ids));
    PERFORM q_apply(v_steps, v_now, v_xid);
    pruned := cardinality(v_steps);
    queues := queues || ARRAY(SELECT (s.item).queue FROM unnest(v_steps) s);
  END IF;

  -- Tombstones older than tombstoneTtl leave the feed; older cursors become compacted.
  v_ids := ARRAY(
    SELECT i.id FROM items i
    WHERE i.state = 'deleted' AND i.updated_at <= v_now - p_tombstone_ttl
    ORDER BY i.updated_at LIMIT p_limit + 1 FOR UPDATE SKIP LOCKED);
  IF cardinality(v_ids) > p_limit THEN
    more := true;
    v_ids := v_ids[1:p_limit];
  END IF;
  IF cardinality(v_ids) > 0 THEN
    WITH gone AS (DELETE FROM items i WHERE i.id = ANY (v_ids) RETURNING i.change_xid)
    SELECT max(gone.change_xid), count(*) INTO v_horizon, purged FROM gone;
    UPDATE queue_meta SET feed_horizon = greatest(feed_horizon, v_horizon) WHERE id = 1;
  END IF;

  queues := ARRAY(SELECT DISTINCT q FROM unnest(queues) q);
END
$$;
