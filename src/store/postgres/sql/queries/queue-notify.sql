-- Sent after the writes committed, in a transaction of its own: a notifying transaction holds a
-- cluster-wide lock through its commit, so notifying from inside the queue's write transactions
-- would serialize their commits (and their WAL flushes).
-- A NOTIFY gives its transaction an id, so its commit would wait for a WAL flush of its own (about
-- 1 ms here) before listeners hear it. Nothing is stored: the commit need not be durable, and the
-- listeners get the notification as soon as it is committed in memory.
SELECT set_config('synchronous_commit', 'off', true), pg_notify($1::text, $2::text)
