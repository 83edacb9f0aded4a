SELECT reclaimed, stalled, unstarted, timed_out, unclaimed, unresolved, pruned, purged, more, queues
FROM q_sweep($1::bigint, $2::bigint, $3::bigint, $4::int)
