-- Version 2: claims restricted to given items (ClaimRequest.ids, how tasks.resolving(id) takes one
-- given task). A function of its own, so the normal claim (q_claim) keeps its plan unchanged.

-- Claim, of the items p_ids names, up to p_limit that belong to p_queue and are claimable, in claim
-- order, each exactly as q_claim claims it: expired leases of the queue first, then one statement
-- locks the rows (primary key probes, FOR UPDATE SKIP LOCKED) and updates them, fresh tokens drawn
-- after the row lock. 'pending' takes pending and due rows, whether or not a claim has promoted
-- them to the claim index yet; 'completed' takes completed rows. Unknown ids, ids of other queues,
-- rows in another state and rows another transaction holds locked right now are skipped. Returns
-- the claimed rows in claim order, and no nextRunAt row: such a claim's nextRunAt is null.
CREATE FUNCTION q_claim_ids(p_queue text, p_owner text, p_limit int, p_ttl bigint, p_start boolean, p_from text,
  p_ids text[])
RETURNS SETOF items LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := now_ms();
  v_xid xid8 := pg_current_xact_id();
BEGIN
  PERFORM q_expire_queue(p_queue, v_now, v_xid);

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
        change_xid = v_xid
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
        change_xid = v_xid
      FROM picked WHERE t.id = picked.id
      RETURNING t.*
    )
    SELECT * FROM upd ORDER BY upd.priority DESC, upd.run_at, upd.seq;
  END IF;
END
$$;
