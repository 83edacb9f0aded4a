-- Live items of one queue ($1) per state. Each branch reads one partial index that leads with queue
-- (claim, delayed, leased, completed): every live state is in exactly one of them, so no branch
-- reads other queues' rows or the table's dead ones.
SELECT $1::text AS queue, 'pending' AS state, count(*)::int AS n FROM items i
  WHERE i.queue = $1 AND i.state = 'pending' AND i.ready
UNION ALL
SELECT $1::text, 'pending', count(*)::int FROM items i
  WHERE i.queue = $1 AND i.state = 'pending' AND NOT i.ready
UNION ALL
SELECT $1::text, i.state, count(*)::int FROM items i
  WHERE i.queue = $1 AND i.state IN ('claimed', 'running', 'resolving')
  GROUP BY i.state
UNION ALL
SELECT $1::text, 'completed', count(*)::int FROM items i
  WHERE i.queue = $1 AND i.state = 'completed'
