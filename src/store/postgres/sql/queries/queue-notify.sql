-- Sent after the writes committed, in a transaction of its own: a notifying transaction holds a
-- cluster-wide lock through its commit, so notifying from inside the queue's write transactions
-- would serialize their commits (and their WAL flushes).
SELECT pg_notify($1::text, $2::text)
