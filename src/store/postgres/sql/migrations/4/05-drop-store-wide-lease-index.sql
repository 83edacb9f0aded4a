-- Version 4: no store-wide index of held rows by lease expiry. A claim's probes for its queue's
-- expired leases and next lease expiry (`queue = $1 AND state IN (held) ... min(lease_expires_at)`)
-- could be planned on items_lease_expiry, walking every held row of every queue in expiry order
-- and filtering on queue: for a queue holding nothing, all of them, on every claim. Only
-- items_leased (queue, lease_expires_at) is left for those. The sweep, which looks for expired
-- leases across queues every sweep interval, now reads items_leased whole (one entry per task
-- held anywhere: bounded by the workers' concurrency) instead of a range of this index. A claim
-- also adds one index entry fewer per task.
DROP INDEX items_lease_expiry;
