-- Live items in seq order after $1, optionally of one queue ($2), state ($3) and owner ($4), at
-- most $5. Planned with the parameter values, so the NULL tests fold away.
SELECT i.* FROM items i
WHERE i.seq > $1::bigint
  AND i.state <> 'deleted'
  AND ($2::text IS NULL OR i.queue = $2)
  AND ($3::text IS NULL OR i.state = $3)
  AND ($4::text IS NULL OR i.owner = $4)
ORDER BY i.seq
LIMIT $5::int
