WITH t AS (SELECT now_ms() AS now)
SELECT l.ttl, l.expires_at - t.now AS remaining,
  ARRAY(SELECT kv.key FROM kv WHERE kv.lease = l.id ORDER BY kv.key) AS keys
FROM leases l, t
WHERE l.id = $1 AND l.expires_at > t.now
