-- KV: keys, their change history (the watch log) and leases.
-- Every object is created in the current schema (the store's search_path).

-- The single-row revision counter. Every KV write transaction locks this row first and keeps the
-- lock until it commits, so revisions are allocated in commit order and a watcher that has seen
-- revision R has seen every revision below R.
-- Revisions, tokens and seqs stop at 2^53 - 1 (JavaScript's safe integers): past it a write
-- fails (ROTA_REVISION_OVERFLOW) instead of handing out a number the client cannot represent.
CREATE TABLE meta (
  id int PRIMARY KEY CHECK (id = 1),
  revision bigint NOT NULL CONSTRAINT revision_safe CHECK (revision <= 9007199254740991),
  compact_revision bigint NOT NULL
);
INSERT INTO meta (id, revision, compact_revision) VALUES (1, 1, 0);

CREATE TABLE kv (
  key text COLLATE "C" PRIMARY KEY,
  value bytea NOT NULL,
  create_revision bigint NOT NULL,
  mod_revision bigint NOT NULL,
  version bigint NOT NULL,
  lease text
);
CREATE INDEX kv_by_lease ON kv (lease) WHERE lease IS NOT NULL;

-- One row per changed key per revision: the source of truth for watches.
CREATE TABLE changelog (
  revision bigint NOT NULL,
  idx int NOT NULL,
  deleted boolean NOT NULL,
  key text COLLATE "C" NOT NULL,
  value bytea,
  create_revision bigint NOT NULL,
  version bigint NOT NULL,
  lease text,
  PRIMARY KEY (revision, idx)
);

CREATE SEQUENCE lease_ids MAXVALUE 9007199254740991;
CREATE TABLE leases (
  id text PRIMARY KEY,
  ttl bigint NOT NULL,
  -- Store time (epoch ms by the database clock).
  expires_at bigint NOT NULL
);
CREATE INDEX leases_by_expiry ON leases (expires_at);
