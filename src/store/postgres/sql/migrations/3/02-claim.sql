-- Version 3: claims that do less when there is nothing to do. Most claims find no expired lease in
-- their queue and no delayed item come due, so one index probe each now decides whether the
-- statements that lock and write run at all. The probes are min() over the partial indexes'
-- leading order (the first entry answers); an EXISTS would let the planner, expecting many
-- matches, choose a sequential scan that reads the whole table when none match. Due delayed items are promoted through the primary key
-- (version 1's statement could be planned as a hash join over a sequential scan of the table). The
-- transaction id is drawn when a row is written, not up front, so a claim that finds nothing writes
-- nothing (no commit record, no transaction id consumed). Results are version 1's and 2's.

CREATE OR REPLACE FUNCTION q_claim(p_queue text, p_owner text, p_limit int, p_ttl bigint, p_start boolean, p_from text)
RETURNS SETOF items LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := now_ms();
  v_count int;
  v_next items;
  v_due text[];
BEGIN
  IF (SELECT min(i.lease_expires_at) FROM items i
      WHERE i.queue = p_queue AND i.state IN ('claimed', 'running', 'resolving')) <= v_now THEN
    PERFORM q_expire_queue(p_queue, v_now, pg_current_xact_id());
  END IF;

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
        change_xid = pg_current_xact_id()
      FROM picked WHERE t.id = picked.id
      RETURNING t.*
    )
    SELECT * FROM upd ORDER BY upd.completed_at, upd.seq;
  ELSE
    IF (SELECT min(i.run_at) FROM items i WHERE i.queue = p_queue AND i.state = 'pending' AND NOT i.ready) <= v_now THEN
      v_due := ARRAY(
        SELECT i.id FROM items i
        WHERE i.queue = p_queue AND i.state = 'pending' AND NOT i.ready AND i.run_at <= v_now
        FOR UPDATE SKIP LOCKED);
      UPDATE items t SET ready = true FROM unnest(v_due) AS d(id) WHERE t.id = d.id;
    END IF;

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
        change_xid = pg_current_xact_id()
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

CREATE OR REPLACE FUNCTION q_claim_ids(p_queue text, p_owner text, p_limit int, p_ttl bigint, p_start boolean, p_from text,
  p_ids text[])
RETURNS SETOF items LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := now_ms();
BEGIN
  IF (SELECT min(i.lease_expires_at) FROM items i
      WHERE i.queue = p_queue AND i.state IN ('claimed', 'running', 'resolving')) <= v_now THEN
    PERFORM q_expire_queue(p_queue, v_now, pg_current_xact_id());
  END IF;

  IF p_from = 'completed' THEN
    RETURN QUERY
    WITH picked AS (
      SELECT i.id FROM items i
      WHERE i.id = ANY (p_ids) AND i.queue = p_queue AND i.state = 'completed'
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
        change_xid = pg_current_xact_id()
      FROM picked WHERE t.id = picked.id
      RETURNING t.*
    )
    SELECT * FROM upd ORDER BY upd.completed_at, upd.seq;
  ELSE
    RETURN QUERY
    WITH picked AS (
      SELECT i.id FROM items i
      WHERE i.id = ANY (p_ids) AND i.queue = p_queue AND i.state = 'pending' AND i.run_at <= v_now
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
        change_xid = pg_current_xact_id()
      FROM picked WHERE t.id = picked.id
      RETURNING t.*
    )
    SELECT * FROM upd ORDER BY upd.priority DESC, upd.run_at, upd.seq;
  END IF;
END
$$;
