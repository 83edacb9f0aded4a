-- The change feed. changeSeq is the writer's transaction id (xid8). Only rows written by
-- transactions older than the snapshot's xmin are returned: every transaction that could still
-- commit has a larger id, so a cursor once returned is never passed by a later commit (gap-free)
-- without serializing queue writes. Items written by one transaction share a changeSeq and a page
-- never splits them.
--
-- Before reading, the call waits (at most p_wait_ms) until the newest change already committed is
-- below xmin, i.e. until transactions that took ids before it have ended; so a client reads its
-- own writes at once. A long-running writing transaction anywhere in the cluster delays the feed
-- (never loses a change) for at most p_wait_ms per call.
CREATE FUNCTION q_changes(p_after bigint, p_queue text, p_limit int, p_wait_ms int)
RETURNS SETOF items LANGUAGE plpgsql AS $$
DECLARE
  v_after xid8 := p_after::text::xid8;
  v_deadline timestamptz := clock_timestamp() + p_wait_ms * interval '1 millisecond';
  v_last xid8;
  v_xmin xid8;
  v_end xid8;
  v_horizon xid8;
BEGIN
  IF p_queue IS NULL THEN
    SELECT max(i.change_xid) INTO v_last FROM items i WHERE i.change_xid > v_after;
  ELSE
    SELECT max(i.change_xid) INTO v_last FROM items i WHERE i.queue = p_queue AND i.change_xid > v_after;
  END IF;
  LOOP
    -- A new statement, so a new snapshot: transactions that ended meanwhile no longer hold xmin.
    SELECT pg_snapshot_xmin(pg_current_snapshot()) INTO v_xmin;
    EXIT WHEN v_last IS NULL OR v_xmin > v_last OR clock_timestamp() >= v_deadline;
    PERFORM pg_sleep(0.001);
  END LOOP;

  -- The last changeSeq of the page; rows of a later statement below v_xmin are all settled.
  IF p_queue IS NULL THEN
    SELECT max(p.change_xid) INTO v_end FROM (
      SELECT i.change_xid FROM items i WHERE i.change_xid > v_after AND i.change_xid < v_xmin
      ORDER BY i.change_xid LIMIT p_limit) p;
    RETURN QUERY SELECT i.* FROM items i
      WHERE i.change_xid > v_after AND i.change_xid <= v_end ORDER BY i.change_xid, i.id;
  ELSE
    SELECT max(p.change_xid) INTO v_end FROM (
      SELECT i.change_xid FROM items i
      WHERE i.queue = p_queue AND i.change_xid > v_after AND i.change_xid < v_xmin
      ORDER BY i.change_xid LIMIT p_limit) p;
    RETURN QUERY SELECT i.* FROM items i
      WHERE i.queue = p_queue AND i.change_xid > v_after AND i.change_xid <= v_end ORDER BY i.change_xid, i.id;
  END IF;

  -- Checked after the read: the horizon only grows, so a purge that could have hidden a tombstone
  -- from this read is seen here.
  SELECT m.feed_horizon INTO v_horizon FROM queue_meta m WHERE m.id = 1;
  IF v_after < v_horizon THEN
    RAISE EXCEPTION USING ERRCODE = 'RT004',
      MESSAGE = 'change cursor ' || p_after || ' is older than the retained feed (' || v_horizon || ')',
      DETAIL = v_horizon::text;
  END IF;
END
$$;
