/** Statements of the KV half: keys, the change log and compaction. */

const KV_COLUMNS = `key, value, create_revision, mod_revision, version, lease`;

export const GET_KEY = `SELECT ${KV_COLUMNS} FROM rota_kv WHERE key = ?`;

/** Keys in [start, end) that sort after `after` (pass the start again when not paging). */
export const RANGE_BOUNDED = `
SELECT ${KV_COLUMNS} FROM rota_kv WHERE key >= @start AND key > @after AND key < @end
ORDER BY key LIMIT @limit`;

/** Same without an upper bound (the empty prefix). */
export const RANGE_UNBOUNDED = `
SELECT ${KV_COLUMNS} FROM rota_kv WHERE key >= @start AND key > @after ORDER BY key LIMIT @limit`;

export const UPSERT_KEY = `
INSERT INTO rota_kv (key, value, create_revision, mod_revision, version, lease)
VALUES (@key, @value, @createRevision, @modRevision, @version, @lease)
ON CONFLICT (key) DO UPDATE SET
  value = excluded.value, mod_revision = excluded.mod_revision, version = excluded.version,
  lease = excluded.lease`;

export const DELETE_KEY = `DELETE FROM rota_kv WHERE key = ?`;

export const INSERT_EVENT = `
INSERT INTO rota_changelog (revision, idx, type, key, value, create_revision, version, lease)
VALUES (@revision, @idx, @type, @key, @value, @createRevision, @version, @lease)`;

/**
 * History after the cursor (revision, idx) up to revision @to, in order; the caller pages with the
 * last row's (revision, idx). Start at (fromRevision, -1) to include all of fromRevision.
 */
export const EVENTS_AFTER = `
SELECT revision, idx, type, key, value, create_revision, version, lease FROM rota_changelog
WHERE (revision > @revision OR (revision = @revision AND idx > @idx)) AND revision <= @to
ORDER BY revision, idx LIMIT @limit`;

export const COMPACT_HISTORY = `DELETE FROM rota_changelog WHERE revision <= ?`;
