-- Queue: one row per item (live or tombstone), the change-feed horizon, token and seq sequences.

-- Fencing tokens. CACHE 1 (the default) matters: a cached range per session would let a later
-- claim draw a smaller token than an earlier one.
CREATE SEQUENCE item_tokens MAXVALUE 9007199254740991 CACHE 1;
-- Store-wide enqueue order.
CREATE SEQUENCE item_seqs MAXVALUE 9007199254740991 CACHE 1;

CREATE TABLE items (
  id text COLLATE "C" PRIMARY KEY,
  queue text NOT NULL,
  state text NOT NULL CHECK (state IN ('pending', 'claimed', 'running', 'completed', 'resolving', 'deleted')),
  outcome text CHECK (outcome IN ('succeeded', 'failed', 'cancelled')),
  payload text NOT NULL,
  priority int NOT NULL,
  run_at bigint NOT NULL,
  -- Pending and due when last written or promoted by a claim: the claim index holds only ready
  -- rows, so delayed items never lengthen a claim's index scan.
  ready boolean NOT NULL,
  seq bigint NOT NULL,
  attempt int NOT NULL,
  max_attempts int NOT NULL,
  owner text,
  token bigint,
  lease_expires_at bigint,
  claimed_at bigint,
  started_at bigint,
  completed_at bigint,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  progress text,
  result text,
  error_code text,
  error_message text,
  rejections int NOT NULL,
  last_rejection text,
  stalls int NOT NULL,
  timeout bigint,
  claim_timeout bigint,
  dead_letter text,
  completed_ttl bigint NOT NULL,
  failed_ttl bigint NOT NULL,
  dedup_key text,
  dedup_until bigint,
  expire_at bigint,
  meta text,
  op_id text,
  -- The top-level transaction id of the item's latest write: its changeSeq.
  change_xid xid8 NOT NULL
);

-- Claim order of runnable items (priority desc, runAt asc, seq asc), only ready pending rows.
CREATE INDEX items_claim ON items (queue, priority DESC, run_at, seq) WHERE state = 'pending' AND ready;
-- Delayed pending rows by due time (promotion on claim, nextRunAt).
CREATE INDEX items_delayed ON items (queue, run_at) WHERE state = 'pending' AND NOT ready;
-- Held rows by lease expiry: per queue (claim-time reclaim, nextRunAt) and store-wide (sweep).
CREATE INDEX items_leased ON items (queue, lease_expires_at) WHERE state IN ('claimed', 'running', 'resolving');
CREATE INDEX items_lease_expiry ON items (lease_expires_at) WHERE state IN ('claimed', 'running', 'resolving');
-- Completed rows in completion order (claims for resolution) and by retention end (pruning).
CREATE INDEX items_completed ON items (queue, completed_at, seq) WHERE state = 'completed';
CREATE INDEX items_expire ON items (expire_at) WHERE state = 'completed';
-- Sweep rules: unstarted claims, run timeouts, unclaimed timeouts, tombstone purge.
CREATE INDEX items_claimed_at ON items (claimed_at) WHERE state = 'claimed';
CREATE INDEX items_deadline ON items ((started_at + timeout)) WHERE state = 'running' AND timeout IS NOT NULL;
CREATE INDEX items_unclaimed ON items ((run_at + claim_timeout)) WHERE state = 'pending' AND claim_timeout IS NOT NULL;
CREATE INDEX items_tombstones ON items (updated_at) WHERE state = 'deleted';
-- Listing in seq order, the change feed (store-wide and per queue), dedup holders.
CREATE INDEX items_seq ON items (seq);
CREATE INDEX items_feed ON items (change_xid);
CREATE INDEX items_queue_feed ON items (queue, change_xid);
CREATE INDEX items_dedup ON items (queue, dedup_key) WHERE dedup_key IS NOT NULL AND state <> 'deleted';

-- Feed cursors at or below the horizon are compacted (a tombstone at that changeSeq was purged).
CREATE TABLE queue_meta (
  id int PRIMARY KEY CHECK (id = 1),
  feed_horizon xid8 NOT NULL
);
INSERT INTO queue_meta (id, feed_horizon) VALUES (1, '0');

-- The result of one state-machine step: status of the op, whether the row changed, whether a
-- dead-letter copy is due, and the row after the step.
CREATE TYPE q_step AS (status text, changed boolean, dead_letter boolean, item items);

-- A settle op, decoded from the JSON the client sends.
CREATE TYPE q_op AS (
  op text,
  id text,
  token bigint,
  owner text,
  result text,
  error_code text,
  error_message text,
  retry_at bigint,
  retry_in bigint,
  refund boolean,
  reject_reason text,
  reject_message text,
  max_rejections int,
  reason text
);

-- A new item, decoded from the JSON the client sends (defaults already applied by the client,
-- except run_at, which needs store time: NULL means now + delay).
CREATE TYPE q_new AS (
  id text,
  queue text,
  payload text,
  priority int,
  run_at bigint,
  delay bigint,
  max_attempts int,
  timeout bigint,
  claim_timeout bigint,
  dead_letter text,
  completed_ttl bigint,
  failed_ttl bigint,
  dedup_key text,
  dedup_ttl bigint,
  dedup_mode text,
  meta text,
  op_id text
);
