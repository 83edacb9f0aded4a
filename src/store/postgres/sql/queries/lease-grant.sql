-- Lease ids: 16 hex digits from a sequence.
INSERT INTO leases (id, ttl, expires_at)
VALUES (lpad(to_hex(nextval('lease_ids')), 16, '0'), $1::bigint, now_ms() + $1::bigint)
RETURNING id
