/**
 * Schema of the SQLite store, as versioned migrations. `MIGRATIONS[i]` moves a database from
 * version i to version i + 1; the version lives in `rota_schema` (one row). Every table is
 * prefixed `rota_` so a file holding other data is recognised as foreign, never touched.
 */

/** Does the version table exist? */
export const SCHEMA_TABLE_EXISTS = `
SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'rota_schema'`;

/** Number of user tables (a file with tables but no `rota_schema` is foreign). */
export const USER_TABLE_COUNT = `
SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`;

export const SCHEMA_VERSION = `SELECT version FROM rota_schema WHERE id = 1`;

export const SET_SCHEMA_VERSION = `
INSERT INTO rota_schema (id, version, updated_at) VALUES (1, ?, ?)
ON CONFLICT (id) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`;

const V1 = `
CREATE TABLE rota_schema (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  version    INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

-- Every counter in one row: read once at the start of a write transaction, written once at the end.
-- seq feeds item seq, fencing tokens and changeSeq (one monotonic counter, like the memory store).
CREATE TABLE rota_counters (
  id               INTEGER PRIMARY KEY CHECK (id = 1),
  revision         INTEGER NOT NULL,
  compact_revision INTEGER NOT NULL,
  seq              INTEGER NOT NULL,
  lease_counter    INTEGER NOT NULL,
  feed_horizon     INTEGER NOT NULL
);
INSERT INTO rota_counters (id, revision, compact_revision, seq, lease_counter, feed_horizon)
VALUES (1, 1, 0, 0, 0, 0);

-- Keys are UTF-8 BLOBs: memcmp order is UTF-8 byte order, the port's key order.
CREATE TABLE rota_kv (
  key             BLOB PRIMARY KEY,
  value           BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  mod_revision    INTEGER NOT NULL,
  version         INTEGER NOT NULL,
  lease           TEXT
) WITHOUT ROWID;
CREATE INDEX rota_kv_lease ON rota_kv (lease, key) WHERE lease IS NOT NULL;

-- The watch history: one row per event; type 0 = put, 1 = delete.
CREATE TABLE rota_changelog (
  revision        INTEGER NOT NULL,
  idx             INTEGER NOT NULL,
  type            INTEGER NOT NULL,
  key             BLOB NOT NULL,
  value           BLOB,
  create_revision INTEGER NOT NULL,
  version         INTEGER NOT NULL,
  lease           TEXT,
  PRIMARY KEY (revision, idx)
) WITHOUT ROWID;

CREATE TABLE rota_leases (
  id         TEXT PRIMARY KEY,
  ttl        INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX rota_leases_expiry ON rota_leases (expires_at);

-- Queue items and tombstones (state 'deleted'). ready = 1 marks pending rows that were due when
-- written or were promoted by a claim; delayed rows wait in their own index, so a claim reads
-- only the head of the ready index whatever the depth.
CREATE TABLE rota_items (
  id               TEXT PRIMARY KEY,
  queue            TEXT NOT NULL,
  state            TEXT NOT NULL,
  ready            INTEGER NOT NULL,
  outcome          TEXT,
  payload          TEXT NOT NULL,
  priority         INTEGER NOT NULL,
  run_at           INTEGER NOT NULL,
  seq              INTEGER NOT NULL,
  attempt          INTEGER NOT NULL,
  max_attempts     INTEGER NOT NULL,
  owner            TEXT,
  token            INTEGER,
  lease_expires_at INTEGER,
  claimed_at       INTEGER,
  started_at       INTEGER,
  completed_at     INTEGER,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  progress         TEXT,
  result           TEXT,
  error_code       TEXT,
  error_message    TEXT,
  rejections       INTEGER NOT NULL,
  last_rejection   TEXT,
  stalls           INTEGER NOT NULL,
  timeout          INTEGER,
  claim_timeout    INTEGER,
  dead_letter      TEXT,
  completed_ttl    INTEGER NOT NULL,
  failed_ttl       INTEGER NOT NULL,
  dedup_key        TEXT,
  dedup_until      INTEGER,
  expire_at        INTEGER,
  meta             TEXT,
  op_id            TEXT,
  change_seq       INTEGER NOT NULL
);
CREATE UNIQUE INDEX rota_items_seq ON rota_items (seq);
CREATE INDEX rota_items_queue_seq ON rota_items (queue, seq);
CREATE INDEX rota_items_counts ON rota_items (queue, state);
CREATE INDEX rota_items_feed ON rota_items (change_seq);
CREATE INDEX rota_items_queue_feed ON rota_items (queue, change_seq);
CREATE INDEX rota_items_ready ON rota_items (queue, priority DESC, run_at, seq)
  WHERE state = 'pending' AND ready = 1;
CREATE INDEX rota_items_delayed ON rota_items (queue, run_at) WHERE state = 'pending' AND ready = 0;
CREATE INDEX rota_items_queue_lease ON rota_items (queue, lease_expires_at)
  WHERE lease_expires_at IS NOT NULL;
CREATE INDEX rota_items_lease ON rota_items (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
CREATE INDEX rota_items_completed ON rota_items (queue, completed_at, seq) WHERE state = 'completed';
CREATE INDEX rota_items_expire ON rota_items (expire_at) WHERE state = 'completed';
CREATE INDEX rota_items_claimed ON rota_items (claimed_at) WHERE state = 'claimed';
CREATE INDEX rota_items_deadline ON rota_items (started_at + timeout)
  WHERE state = 'running' AND timeout IS NOT NULL;
CREATE INDEX rota_items_unclaimed ON rota_items (run_at + claim_timeout)
  WHERE state = 'pending' AND claim_timeout IS NOT NULL;
CREATE INDEX rota_items_tombstones ON rota_items (updated_at) WHERE state = 'deleted';
CREATE INDEX rota_items_dedup ON rota_items (queue, dedup_key, seq) WHERE dedup_key IS NOT NULL;
`;

/** `MIGRATIONS[i]` takes the schema from version i to i + 1. */
export const MIGRATIONS: readonly string[] = [V1];

/** The schema version this code writes and understands. */
export const CURRENT_SCHEMA_VERSION = MIGRATIONS.length;
