-- Renew a lease for its full TTL, unless it has expired by store time.
WITH t AS (SELECT now_ms() AS now)
UPDATE leases l SET expires_at = t.now + l.ttl
FROM t
WHERE l.id = $1 AND l.expires_at > t.now
RETURNING l.ttl
