SELECT i.queue, i.state, count(*)::int AS n FROM items i
WHERE i.state <> 'deleted' AND ($1::text IS NULL OR i.queue = $1)
GROUP BY i.queue, i.state
