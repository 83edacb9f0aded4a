-- The queue item state machine as pure functions over an items row: a line-by-line rendering of
-- src/store/queue-model.ts (which memory, SQLite and etcd run in JavaScript). Keep the two in step;
-- the conformance suite holds both to the same behaviour. Besides the model's fields, rows carry
-- `ready` (pending and due when written) and `change_xid` (the changeSeq: the writer's xid).

-- withChange
CREATE FUNCTION q_touch(r items, p_now bigint, p_xid xid8) RETURNS items LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  r.updated_at := p_now;
  r.change_xid := p_xid;
  RETURN r;
END
$$;

-- complete
CREATE FUNCTION q_complete(r items, p_outcome text, p_now bigint) RETURNS items LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  r.state := 'completed';
  r.outcome := p_outcome;
  r.completed_at := p_now;
  r.lease_expires_at := NULL;
  r.expire_at := p_now + CASE WHEN p_outcome = 'failed' THEN r.failed_ttl ELSE r.completed_ttl END;
  r.ready := false;
  RETURN r;
END
$$;

-- toPending
CREATE FUNCTION q_to_pending(r items, p_run_at bigint, p_now bigint) RETURNS items LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  r.state := 'pending';
  r.outcome := NULL;
  r.owner := NULL;
  r.lease_expires_at := NULL;
  r.claimed_at := NULL;
  r.run_at := p_run_at;
  r.ready := p_run_at <= p_now;
  RETURN r;
END
$$;

-- createItem (defaults other than runAt are applied by the client)
CREATE FUNCTION q_new_row(x q_new, p_now bigint, p_xid xid8, p_seq bigint) RETURNS items
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  r items;
BEGIN
  r.id := x.id;
  r.queue := x.queue;
  r.state := 'pending';
  r.outcome := NULL;
  r.payload := x.payload;
  r.priority := x.priority;
  r.run_at := coalesce(x.run_at, p_now + coalesce(x.delay, 0));
  r.ready := r.run_at <= p_now;
  r.seq := p_seq;
  r.attempt := 0;
  r.max_attempts := x.max_attempts;
  r.created_at := p_now;
  r.updated_at := p_now;
  r.rejections := 0;
  r.stalls := 0;
  r.timeout := x.timeout;
  r.claim_timeout := x.claim_timeout;
  r.dead_letter := x.dead_letter;
  r.completed_ttl := x.completed_ttl;
  r.failed_ttl := x.failed_ttl;
  r.dedup_key := x.dedup_key;
  r.dedup_until := CASE WHEN x.dedup_ttl IS NOT NULL THEN p_now + x.dedup_ttl END;
  r.meta := x.meta;
  r.op_id := x.op_id;
  r.change_xid := p_xid;
  RETURN r;
END
$$;

-- deadLetterItem: the copy of a failed item for its dead-letter queue (createItem defaults:
-- priority 0, maxAttempts 3, runAt now). The caller checks that the item has a dead-letter queue.
CREATE FUNCTION q_dead_letter_new(r items) RETURNS q_new LANGUAGE sql IMMUTABLE AS $$
  SELECT ROW(
    'dl-' || r.id, r.dead_letter, r.payload, 0, NULL, 0, 3, NULL, NULL, NULL, r.completed_ttl, r.failed_ttl,
    NULL, NULL, NULL,
    jsonb_build_object('deadLetter', jsonb_build_object(
      'originalId', r.id,
      'queue', r.queue,
      'error', jsonb_build_object('code', r.error_code, 'message', r.error_message),
      'attempts', r.attempt))::text,
    NULL)::q_new
$$;

-- expireLease: claimed → pending; running → pending (stall counted) or failed without attempts
-- left; resolving → completed. Unchanged (changed = false) when the lease has not expired.
CREATE FUNCTION q_expire(r items, p_now bigint, p_xid xid8) RETURNS q_step LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF r.id IS NULL OR r.lease_expires_at IS NULL OR r.lease_expires_at > p_now THEN
    RETURN ROW(NULL, false, false, r)::q_step;
  END IF;
  IF r.state = 'claimed' THEN
    RETURN ROW('ok', true, false, q_to_pending(q_touch(r, p_now, p_xid), p_now, p_now))::q_step;
  ELSIF r.state = 'resolving' THEN
    r := q_touch(r, p_now, p_xid);
    r.state := 'completed';
    r.owner := NULL;
    r.lease_expires_at := NULL;
    RETURN ROW('ok', true, false, r)::q_step;
  ELSIF r.state = 'running' THEN
    r := q_touch(r, p_now, p_xid);
    r.stalls := r.stalls + 1;
    r.error_code := 'ROTA_LEASE_EXPIRED';
    r.error_message := 'the lease of the running attempt expired (stalled)';
    IF r.attempt < r.max_attempts THEN
      RETURN ROW('ok', true, false, q_to_pending(r, p_now, p_now))::q_step;
    END IF;
    RETURN ROW('ok', true, r.dead_letter IS NOT NULL, q_complete(r, 'failed', p_now))::q_step;
  END IF;
  RETURN ROW(NULL, false, false, r)::q_step;
END
$$;

-- settleItem: one settle op on the current row (NULL fields or a tombstone when absent).
-- Refusals return the current row unchanged.
CREATE FUNCTION q_settle(cur items, o q_op, p_now bigint, p_xid xid8) RETURNS q_step LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  st text := cur.state;
  nxt items;
BEGIN
  IF o.op = 'cancel' OR o.op = 'abort' THEN
    IF cur.id IS NULL OR st = 'deleted' THEN
      RETURN ROW('not_found', false, false, cur)::q_step;
    END IF;
    IF st NOT IN ('pending', 'claimed', 'running') THEN
      RETURN ROW('invalid_state', false, false, cur)::q_step;
    END IF;
    nxt := q_touch(cur, p_now, p_xid);
    nxt.lease_expires_at := NULL;
    IF o.op = 'cancel' THEN
      nxt.error_code := 'ROTA_TASK_CANCELLED';
      nxt.error_message := coalesce(o.reason, 'cancelled');
      nxt := q_complete(nxt, 'cancelled', p_now);
    ELSE
      nxt.error_code := o.error_code;
      nxt.error_message := o.error_message;
      nxt := q_complete(nxt, 'failed', p_now);
    END IF;
    RETURN ROW('ok', true, false, nxt)::q_step;
  END IF;

  IF cur.id IS NULL THEN
    RETURN ROW('not_found', false, false, cur)::q_step;
  END IF;
  -- fence
  IF cur.token IS DISTINCT FROM o.token THEN
    IF st = 'deleted' THEN
      RETURN ROW('not_found', false, false, cur)::q_step;
    END IF;
    IF st IN ('claimed', 'running', 'resolving') AND cur.owner IS NOT NULL AND cur.owner <> o.owner THEN
      RETURN ROW('wrong_owner', false, false, cur)::q_step;
    END IF;
    RETURN ROW('stale', false, false, cur)::q_step;
  END IF;

  nxt := q_touch(cur, p_now, p_xid);
  CASE o.op
    WHEN 'start' THEN
      IF st = 'claimed' THEN
        nxt.state := 'running';
        nxt.attempt := cur.attempt + 1;
        nxt.started_at := p_now;
        RETURN ROW('ok', true, false, nxt)::q_step;
      END IF;
      RETURN ROW(CASE WHEN st = 'running' THEN 'noop' ELSE 'stale' END, false, false, cur)::q_step;
    WHEN 'complete' THEN
      IF st IN ('claimed', 'running') THEN
        IF st = 'claimed' THEN
          nxt.attempt := cur.attempt + 1;
          nxt.started_at := p_now;
        END IF;
        nxt.result := o.result;
        nxt.error_code := NULL;
        nxt.error_message := NULL;
        RETURN ROW('ok', true, false, q_complete(nxt, 'succeeded', p_now))::q_step;
      END IF;
      RETURN ROW(CASE WHEN st = 'completed' AND cur.outcome = 'succeeded' THEN 'noop' ELSE 'stale' END,
        false, false, cur)::q_step;
    WHEN 'retry' THEN
      IF st = 'running' THEN
        IF o.error_code IS NOT NULL THEN
          nxt.error_code := o.error_code;
          nxt.error_message := o.error_message;
        END IF;
        IF o.refund THEN
          nxt.attempt := greatest(0, cur.attempt - 1);
        END IF;
        RETURN ROW('ok', true, false,
          q_to_pending(nxt, coalesce(o.retry_at, p_now + coalesce(o.retry_in, 0)), p_now))::q_step;
      END IF;
      RETURN ROW(CASE WHEN st = 'pending' THEN 'noop' ELSE 'stale' END, false, false, cur)::q_step;
    WHEN 'fail' THEN
      IF st IN ('claimed', 'running') THEN
        nxt.error_code := o.error_code;
        nxt.error_message := o.error_message;
        RETURN ROW('ok', true, cur.dead_letter IS NOT NULL, q_complete(nxt, 'failed', p_now))::q_step;
      END IF;
      RETURN ROW(CASE WHEN st = 'completed' AND cur.outcome = 'failed' THEN 'noop' ELSE 'stale' END,
        false, false, cur)::q_step;
    WHEN 'release' THEN
      IF st IN ('claimed', 'running') THEN
        IF o.refund AND st = 'running' THEN
          nxt.attempt := greatest(0, cur.attempt - 1);
        END IF;
        IF o.reject_reason IS NOT NULL THEN
          nxt.rejections := cur.rejections + 1;
          nxt.last_rejection := o.reject_reason;
          IF nxt.rejections > o.max_rejections THEN
            nxt.error_code := 'ROTA_TASK_REJECTED';
            nxt.error_message := o.reject_message;
            RETURN ROW('ok', true, false, q_complete(nxt, 'failed', p_now))::q_step;
          END IF;
        END IF;
        RETURN ROW('ok', true, false, q_to_pending(nxt, p_now, p_now))::q_step;
      END IF;
      RETURN ROW(CASE WHEN st = 'pending' THEN 'noop' ELSE 'stale' END, false, false, cur)::q_step;
    WHEN 'resolve' THEN
      IF st = 'resolving' THEN
        nxt.state := 'deleted';
        nxt.lease_expires_at := NULL;
        RETURN ROW('ok', true, false, nxt)::q_step;
      END IF;
      RETURN ROW(CASE WHEN st = 'deleted' THEN 'noop' ELSE 'stale' END, false, false, cur)::q_step;
    WHEN 'unresolve' THEN
      IF st = 'resolving' THEN
        nxt.state := 'completed';
        nxt.owner := NULL;
        nxt.lease_expires_at := NULL;
        RETURN ROW('ok', true, false, nxt)::q_step;
      END IF;
      RETURN ROW(CASE WHEN st = 'completed' THEN 'noop' ELSE 'stale' END, false, false, cur)::q_step;
  END CASE;
END
$$;

-- The settle path of the queue engine: an expired lease applies first, so a late op from the old
-- owner is fenced off exactly as if someone had already re-claimed the item.
CREATE FUNCTION q_settle_step(cur items, o q_op, p_now bigint, p_xid xid8) RETURNS q_step
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  e q_step := q_expire(cur, p_now, p_xid);
  s q_step;
BEGIN
  s := q_settle(e.item, o, p_now, p_xid);
  s.changed := s.changed OR e.changed;
  s.dead_letter := s.dead_letter OR e.dead_letter;
  RETURN s;
END
$$;

-- renewItem, after applying an expired lease. Status 'ok' | 'stale' | 'cancelled'.
CREATE FUNCTION q_renew_step(cur items, p_token bigint, p_progress text, p_has_progress boolean,
  p_ttl bigint, p_now bigint, p_xid xid8) RETURNS q_step LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  e q_step := q_expire(cur, p_now, p_xid);
  r items := e.item;
BEGIN
  IF r.id IS NULL OR r.state = 'deleted' OR r.token IS DISTINCT FROM p_token THEN
    RETURN ROW('stale', e.changed, e.dead_letter, r)::q_step;
  END IF;
  IF r.state = 'completed' AND r.outcome = 'cancelled' THEN
    RETURN ROW('cancelled', e.changed, e.dead_letter, r)::q_step;
  END IF;
  IF r.state NOT IN ('claimed', 'running', 'resolving') THEN
    RETURN ROW('stale', e.changed, e.dead_letter, r)::q_step;
  END IF;
  r := q_touch(r, p_now, p_xid);
  r.lease_expires_at := p_now + p_ttl;
  IF p_has_progress THEN
    r.progress := p_progress;
  END IF;
  RETURN ROW('ok', true, e.dead_letter, r)::q_step;
END
$$;

-- Sweep rule: a claim older than startTimeout goes back to pending.
CREATE FUNCTION q_unstart(r items, p_now bigint, p_xid xid8) RETURNS q_step LANGUAGE sql IMMUTABLE AS $$
  SELECT ROW('ok', true, false, q_to_pending(q_touch(r, p_now, p_xid), p_now, p_now))::q_step
$$;

-- Sweep rule: a running item past startedAt + timeout + grace fails its attempt.
CREATE FUNCTION q_timeout(r items, p_now bigint, p_xid xid8) RETURNS q_step LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  r := q_touch(r, p_now, p_xid);
  r.error_code := 'ROTA_TASK_TIMEOUT';
  r.error_message := 'the attempt ran longer than its timeout of ' || r.timeout || ' ms';
  IF r.attempt < r.max_attempts THEN
    RETURN ROW('ok', true, false, q_to_pending(r, p_now, p_now))::q_step;
  END IF;
  RETURN ROW('ok', true, r.dead_letter IS NOT NULL, q_complete(r, 'failed', p_now))::q_step;
END
$$;

-- Sweep rule: a pending item unclaimed past runAt + claimTimeout fails.
CREATE FUNCTION q_unclaimed(r items, p_now bigint, p_xid xid8) RETURNS q_step LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  r := q_touch(r, p_now, p_xid);
  r.error_code := 'ROTA_TASK_UNCLAIMED';
  r.error_message := 'not claimed within ' || r.claim_timeout || ' ms of its run time';
  RETURN ROW('ok', true, false, q_complete(r, 'failed', p_now))::q_step;
END
$$;

-- Sweep rule: a completed item past its retention becomes a tombstone.
CREATE FUNCTION q_prune(r items, p_now bigint, p_xid xid8) RETURNS q_step LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  r := q_touch(r, p_now, p_xid);
  r.state := 'deleted';
  r.ready := false;
  RETURN ROW('ok', true, false, r)::q_step;
END
$$;
