-- needs: common queue
-- unpark: ARGV queue, mailbox. Withdraw the mailbox's parked claim on the queue (see Q.handoff).
-- -> 1 if there was one, else 0
return redis.call('HDEL', Q.qkey(ARGV[1], 'k'), ARGV[2])
