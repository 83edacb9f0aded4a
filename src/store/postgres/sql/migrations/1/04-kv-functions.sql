-- KV write functions. Each one runs as one statement from the client (one round trip), locks the
-- revision counter first, expires due leases, then writes. NOTIFY only wakes watchers; the
-- changelog is what they read.

-- Drop one lease and its keys; the deletes share one new revision (when there were keys).
-- Returns the revision after the drop.
CREATE FUNCTION kv_drop_lease(p_id text, p_rev bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  n int;
BEGIN
  DELETE FROM leases WHERE id = p_id;
  WITH gone AS (DELETE FROM kv WHERE kv.lease = p_id RETURNING kv.key)
  INSERT INTO changelog (revision, idx, deleted, key, value, create_revision, version, lease)
  SELECT p_rev + 1, (row_number() OVER (ORDER BY gone.key))::int - 1, true, gone.key, NULL, 0, 0, NULL
  FROM gone;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN
    RETURN p_rev + 1;
  END IF;
  RETURN p_rev;
END
$$;

-- Expire up to p_limit leases whose expiry has passed by store time, each in its own revision.
-- The caller holds the counter lock. Returns the revision after the expiries.
CREATE FUNCTION kv_expire_leases(p_rev bigint, p_now bigint, p_limit int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  l record;
  rev bigint := p_rev;
BEGIN
  FOR l IN
    SELECT leases.id FROM leases WHERE leases.expires_at <= p_now
    ORDER BY leases.expires_at LIMIT p_limit FOR UPDATE
  LOOP
    rev := kv_drop_lease(l.id, rev);
  END LOOP;
  RETURN rev;
END
$$;

-- Publish a new revision: store it and wake the watchers (delivered at commit).
CREATE FUNCTION kv_publish(p_old bigint, p_new bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF p_new > p_old THEN
    UPDATE meta SET revision = p_new WHERE id = 1;
    PERFORM pg_notify(current_schema() || '.kv', p_new::text);
  END IF;
END
$$;

-- The KV transaction: compares, then the ops of the chosen branch, all at one new revision.
--   p_compares: [{k: key, t: target, o: op, n: number, v: index into p_values}]
--   p_success, p_failure: [{t: 'get'|'range'|'put'|'delete', k: key, l: limit, e: lease,
--                           p: prefix, v: index into p_values}]
-- Rows out: for each op a marker row (r_key NULL), then the op's key-values (get: the key; range:
-- up to limit + 1 keys; put: the previous key; delete: the deleted keys), in op order; last, a
-- header row with r_op = -1, r_flag = succeeded and r_revision = the store revision after.
CREATE FUNCTION kv_txn(p_compares jsonb, p_success jsonb, p_failure jsonb, p_values bytea[], p_sweep int)
RETURNS TABLE (
  r_op int,
  r_key text,
  r_value bytea,
  r_create bigint,
  r_mod bigint,
  r_version bigint,
  r_lease text,
  r_flag boolean,
  r_revision bigint
) LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := now_ms();
  v_start bigint;
  v_rev bigint;
  v_new bigint;
  v_ok boolean := true;
  v_wrote boolean := false;
  v_idx int := 0;
  v_i int := 0;
  v_ops jsonb;
  v_key text;
  v_end text;
  v_keys text[];
  v_lease text;
  v_value bytea;
  v_limit bigint;
  v_actual bigint;
  v_want bigint;
  c jsonb;
  o jsonb;
  cur kv%ROWTYPE;
BEGIN
  SELECT m.revision INTO v_start FROM meta m WHERE m.id = 1 FOR UPDATE;
  v_rev := kv_expire_leases(v_start, v_now, p_sweep);
  v_new := v_rev + 1;

  FOR c IN SELECT e.value FROM jsonb_array_elements(p_compares) e LOOP
    SELECT * INTO cur FROM kv WHERE kv.key = c->>'k';
    IF c->>'t' = 'value' THEN
      IF cur.key IS NULL THEN
        v_ok := (c->>'o') = '!=';
      ELSIF c->>'o' = '==' THEN
        v_ok := cur.value = p_values[(c->>'v')::int];
      ELSE
        v_ok := cur.value <> p_values[(c->>'v')::int];
      END IF;
    ELSE
      v_actual := coalesce(CASE c->>'t'
        WHEN 'version' THEN cur.version
        WHEN 'createRevision' THEN cur.create_revision
        ELSE cur.mod_revision END, 0);
      v_want := (c->>'n')::bigint;
      v_ok := CASE c->>'o'
        WHEN '==' THEN v_actual = v_want
        WHEN '!=' THEN v_actual <> v_want
        WHEN '<' THEN v_actual < v_want
        ELSE v_actual > v_want END;
    END IF;
    EXIT WHEN NOT v_ok;
  END LOOP;

  v_ops := CASE WHEN v_ok THEN p_success ELSE coalesce(p_failure, '[]'::jsonb) END;

  FOR o IN SELECT e.value FROM jsonb_array_elements(v_ops) e LOOP
    v_key := o->>'k';
    -- The op's marker row.
    r_op := v_i; r_key := NULL; r_value := NULL; r_create := NULL; r_mod := NULL; r_version := NULL;
    r_lease := NULL; r_flag := NULL; r_revision := NULL;
    RETURN NEXT;

    IF o->>'t' = 'get' THEN
      RETURN QUERY SELECT v_i, kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease,
        NULL::boolean, NULL::bigint
      FROM kv WHERE kv.key = v_key;

    ELSIF o->>'t' = 'range' THEN
      v_end := prefix_end(v_key);
      v_limit := (o->>'l')::bigint + 1;
      IF v_end IS NULL THEN
        RETURN QUERY SELECT v_i, kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease,
          NULL::boolean, NULL::bigint
        FROM kv WHERE kv.key >= v_key ORDER BY kv.key LIMIT v_limit;
      ELSE
        RETURN QUERY SELECT v_i, kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease,
          NULL::boolean, NULL::bigint
        FROM kv WHERE kv.key >= v_key AND kv.key < v_end ORDER BY kv.key LIMIT v_limit;
      END IF;

    ELSIF o->>'t' = 'put' THEN
      v_lease := o->>'e';
      v_value := p_values[(o->>'v')::int];
      IF v_lease IS NOT NULL THEN
        PERFORM 1 FROM leases WHERE leases.id = v_lease AND leases.expires_at > v_now;
        IF NOT FOUND THEN
          RAISE EXCEPTION USING ERRCODE = 'RT001', MESSAGE = 'lease ' || v_lease || ' not found', DETAIL = v_lease;
        END IF;
      END IF;
      RETURN QUERY SELECT v_i, kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease,
        NULL::boolean, NULL::bigint
      FROM kv WHERE kv.key = v_key;
      INSERT INTO kv AS t (key, value, create_revision, mod_revision, version, lease)
      VALUES (v_key, v_value, v_new, v_new, 1, v_lease)
      ON CONFLICT (key) DO UPDATE
        SET value = EXCLUDED.value, mod_revision = v_new, version = t.version + 1, lease = EXCLUDED.lease
      RETURNING t.create_revision, t.version INTO r_create, r_version;
      INSERT INTO changelog (revision, idx, deleted, key, value, create_revision, version, lease)
      VALUES (v_new, v_idx, false, v_key, v_value, r_create, r_version, v_lease);
      v_idx := v_idx + 1;
      v_wrote := true;

    ELSE
      IF (o->>'p')::boolean THEN
        v_end := prefix_end(v_key);
        -- Two plans, so the upper bound is an index bound whenever there is one.
        IF v_end IS NULL THEN
          v_keys := ARRAY(SELECT kv.key FROM kv WHERE kv.key >= v_key);
        ELSE
          v_keys := ARRAY(SELECT kv.key FROM kv WHERE kv.key >= v_key AND kv.key < v_end);
        END IF;
        FOR cur IN
          WITH d AS (DELETE FROM kv WHERE kv.key = ANY (v_keys) RETURNING kv.*) SELECT * FROM d ORDER BY d.key
        LOOP
          RETURN QUERY SELECT v_i, cur.key, cur.value, cur.create_revision, cur.mod_revision, cur.version,
            cur.lease, NULL::boolean, NULL::bigint;
          INSERT INTO changelog (revision, idx, deleted, key, value, create_revision, version, lease)
          VALUES (v_new, v_idx, true, cur.key, NULL, 0, 0, NULL);
          v_idx := v_idx + 1;
          v_wrote := true;
        END LOOP;
      ELSE
        DELETE FROM kv WHERE kv.key = v_key RETURNING kv.* INTO cur;
        IF FOUND THEN
          RETURN QUERY SELECT v_i, cur.key, cur.value, cur.create_revision, cur.mod_revision, cur.version,
            cur.lease, NULL::boolean, NULL::bigint;
          INSERT INTO changelog (revision, idx, deleted, key, value, create_revision, version, lease)
          VALUES (v_new, v_idx, true, cur.key, NULL, 0, 0, NULL);
          v_idx := v_idx + 1;
          v_wrote := true;
        END IF;
      END IF;
    END IF;
    v_i := v_i + 1;
  END LOOP;

  IF v_wrote THEN
    PERFORM kv_publish(v_start, v_new);
  ELSE
    PERFORM kv_publish(v_start, v_rev);
  END IF;
  r_op := -1; r_key := NULL; r_value := NULL; r_create := NULL; r_mod := NULL; r_version := NULL;
  r_lease := NULL; r_flag := v_ok; r_revision := CASE WHEN v_wrote THEN v_new ELSE v_rev END;
  RETURN NEXT;
END
$$;

-- Revoke a lease: its keys are deleted in one revision. Returns whether it existed.
CREATE FUNCTION kv_revoke(p_id text, p_sweep int, OUT existed boolean, OUT revision bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := now_ms();
  v_start bigint;
  v_rev bigint;
BEGIN
  SELECT m.revision INTO v_start FROM meta m WHERE m.id = 1 FOR UPDATE;
  v_rev := kv_expire_leases(v_start, v_now, p_sweep);
  PERFORM 1 FROM leases WHERE leases.id = p_id AND leases.expires_at > v_now FOR UPDATE;
  existed := FOUND;
  IF existed THEN
    v_rev := kv_drop_lease(p_id, v_rev);
  END IF;
  PERFORM kv_publish(v_start, v_rev);
  revision := v_rev;
END
$$;

-- Discard history up to and including p_rev.
CREATE FUNCTION kv_compact(p_rev bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  m meta%ROWTYPE;
BEGIN
  SELECT * INTO m FROM meta WHERE id = 1 FOR UPDATE;
  IF p_rev > m.revision THEN
    RAISE EXCEPTION USING ERRCODE = 'RT003',
      MESSAGE = 'cannot compact revision ' || p_rev || ': the store is at ' || m.revision;
  END IF;
  IF p_rev <= m.compact_revision THEN
    RETURN;
  END IF;
  UPDATE meta SET compact_revision = p_rev WHERE id = 1;
  DELETE FROM changelog WHERE changelog.revision <= p_rev;
END
$$;

-- Background upkeep run by every client: expire due leases (skipped when a writer holds the
-- counter: every writer expires leases first) and keep the history within p_history revisions.
-- Returns whether it published a revision, and the milliseconds until the next known lease expiry
-- (NULL when there is no lease).
CREATE FUNCTION kv_maintain(p_limit int, p_history bigint, OUT published boolean, OUT next_in bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := now_ms();
  v_due boolean;
  v_compact boolean;
  m meta%ROWTYPE;
  v_rev bigint;
  v_cut bigint;
BEGIN
  published := false;
  SELECT * INTO m FROM meta WHERE id = 1;
  v_due := EXISTS (SELECT 1 FROM leases WHERE leases.expires_at <= v_now);
  -- Compact in steps of a tenth of the history, so the delete stays small.
  v_compact := p_history > 0 AND m.revision - m.compact_revision > p_history + greatest(p_history / 10, 1);
  IF v_due OR v_compact THEN
    SELECT * INTO m FROM meta WHERE id = 1 FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
      v_rev := kv_expire_leases(m.revision, v_now, p_limit);
      PERFORM kv_publish(m.revision, v_rev);
      published := v_rev > m.revision;
      IF v_compact THEN
        v_cut := v_rev - p_history;
        UPDATE meta SET compact_revision = v_cut WHERE id = 1;
        DELETE FROM changelog WHERE changelog.revision <= v_cut;
      END IF;
    END IF;
  END IF;
  SELECT min(leases.expires_at) - now_ms() INTO next_in FROM leases;
END
$$;
