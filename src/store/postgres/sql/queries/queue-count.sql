-- Live items of every queue per state (one pass over the table).
SELECT i.queue, i.state, count(*)::int AS n FROM items i
WHERE i.state <> 'deleted'
GROUP BY i.queue, i.state
