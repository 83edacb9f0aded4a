/** Statements of the queue: items, claim indexes, the change feed and the sweep rules. */

/** Every column of `rota_items`; `itemParams` (item-row.ts) binds one named parameter per column. */
const COLUMNS = [
  'id',
  'queue',
  'state',
  'ready',
  'outcome',
  'payload',
  'priority',
  'run_at',
  'seq',
  'attempt',
  'max_attempts',
  'owner',
  'token',
  'lease_expires_at',
  'claimed_at',
  'started_at',
  'completed_at',
  'created_at',
  'updated_at',
  'progress',
  'result',
  'error_code',
  'error_message',
  'rejections',
  'last_rejection',
  'stalls',
  'timeout',
  'claim_timeout',
  'dead_letter',
  'completed_ttl',
  'failed_ttl',
  'dedup_key',
  'dedup_until',
  'expire_at',
  'meta',
  'op_id',
  'change_seq',
] as const;

export type ItemColumn = (typeof COLUMNS)[number];

/** Insert or overwrite a whole item row (named parameters = column names). */
export const UPSERT_ITEM = `
INSERT INTO rota_items (${COLUMNS.join(', ')})
VALUES (${COLUMNS.map((c) => `@${c}`).join(', ')})
ON CONFLICT (id) DO UPDATE SET
${COLUMNS.filter((c) => c !== 'id')
  .map((c) => `  ${c} = excluded.${c}`)
  .join(',\n')}`;

/**
 * Update only the given columns of an existing row: SQLite then maintains only the indexes that
 * involve them, which is most of the cost of a transition.
 */
export function updateItemSql(columns: readonly ItemColumn[]): string {
  return `UPDATE rota_items SET ${columns.map((c) => `${c} = @${c}`).join(', ')} WHERE id = @id`;
}

export const GET_ITEM = `SELECT * FROM rota_items WHERE id = ?`;

export const GET_LIVE_ITEM = `SELECT * FROM rota_items WHERE id = ? AND state != 'deleted'`;

/** The latest holder of a dedup key in a queue (it may be inactive; the model decides). */
export const DEDUP_HOLDER = `
SELECT * FROM rota_items WHERE queue = ? AND dedup_key = ? ORDER BY seq DESC LIMIT 1`;

// ---- claim ---------------------------------------------------------------------------------

/** Held items of one queue whose lease has expired, earliest first. */
export const QUEUE_EXPIRED_LEASES = `
SELECT * FROM rota_items
WHERE queue = ? AND lease_expires_at IS NOT NULL AND lease_expires_at <= ?
ORDER BY lease_expires_at LIMIT ?`;

/** Move delayed pending items that are now due into the ready index. */
export const PROMOTE_DUE = `
UPDATE rota_items SET ready = 1 WHERE queue = ? AND state = 'pending' AND ready = 0 AND run_at <= ?`;

/** The head of the ready index: claim order. */
export const READY_HEAD = `
SELECT * FROM rota_items WHERE queue = ? AND state = 'pending' AND ready = 1
ORDER BY priority DESC, run_at, seq LIMIT ?`;

/** The oldest completed items of a queue, for resolution. */
export const COMPLETED_HEAD = `
SELECT * FROM rota_items WHERE queue = ? AND state = 'completed' ORDER BY completed_at, seq LIMIT ?`;

/**
 * Claims restricted to given ids (`ClaimRequest.ids`, bound as one JSON array). CROSS JOIN keeps
 * json_each as the outer loop and the unary `+` keeps the other terms off the indexes, so each id
 * is one primary-key lookup however deep the queue; the filters and order are those of the heads
 * above. The lease query catches held items whose expired lease the claim's bounded expiry batch
 * left for later.
 */
const GIVEN_IDS = `
SELECT rota_items.* FROM json_each(?) AS given CROSS JOIN rota_items ON rota_items.id = given.value
WHERE +queue = ?`;

export const IDS_EXPIRED_LEASES = `${GIVEN_IDS} AND +lease_expires_at <= ?`;

export const IDS_READY = `${GIVEN_IDS} AND +state = 'pending' AND +run_at <= ?
ORDER BY priority DESC, run_at, seq LIMIT ?`;

export const IDS_COMPLETED = `${GIVEN_IDS} AND +state = 'completed' ORDER BY completed_at, seq LIMIT ?`;

export const NEXT_DELAYED = `
SELECT min(run_at) FROM rota_items WHERE queue = ? AND state = 'pending' AND ready = 0`;

export const NEXT_LEASE_EXPIRY = `
SELECT min(lease_expires_at) FROM rota_items WHERE queue = ? AND lease_expires_at IS NOT NULL`;

// ---- listing and the feed ------------------------------------------------------------------

/** listItems: optional filters are written `(@x IS NULL OR col = @x)`; paged by seq. */
export const LIST_ALL = `
SELECT * FROM rota_items
WHERE seq > @after AND state != 'deleted'
  AND (@state IS NULL OR state = @state) AND (@owner IS NULL OR owner = @owner)
ORDER BY seq LIMIT @limit`;

export const LIST_QUEUE = `
SELECT * FROM rota_items
WHERE queue = @queue AND seq > @after AND state != 'deleted'
  AND (@state IS NULL OR state = @state) AND (@owner IS NULL OR owner = @owner)
ORDER BY seq LIMIT @limit`;

export const COUNT_ALL = `
SELECT queue, state, count(*) AS n FROM rota_items WHERE state != 'deleted' GROUP BY queue, state`;

export const COUNT_QUEUE = `
SELECT state, count(*) AS n FROM rota_items WHERE queue = ? AND state != 'deleted' GROUP BY state`;

export const FEED_ALL = `SELECT * FROM rota_items WHERE change_seq > ? ORDER BY change_seq LIMIT ?`;

export const FEED_QUEUE = `
SELECT * FROM rota_items WHERE queue = ? AND change_seq > ? ORDER BY change_seq LIMIT ?`;

/**
 * Queues with items that became runnable, completed or deleted after a change cursor (wake-ups).
 * The index is named because DISTINCT would otherwise tempt the planner into a full index scan.
 */
export const WOKEN_QUEUES = `
SELECT DISTINCT queue FROM rota_items INDEXED BY rota_items_feed
WHERE change_seq > ? AND state IN ('pending', 'completed', 'deleted')`;

// ---- sweep rules (each bounded by a limit, oldest first) -----------------------------------

export const SWEEP_EXPIRED_LEASES = `
SELECT * FROM rota_items WHERE lease_expires_at IS NOT NULL AND lease_expires_at <= ?
ORDER BY lease_expires_at LIMIT ?`;

export const SWEEP_UNSTARTED = `
SELECT * FROM rota_items WHERE state = 'claimed' AND claimed_at <= ? ORDER BY claimed_at LIMIT ?`;

export const SWEEP_TIMED_OUT = `
SELECT * FROM rota_items WHERE state = 'running' AND timeout IS NOT NULL AND started_at + timeout <= ?
ORDER BY started_at + timeout LIMIT ?`;

export const SWEEP_UNCLAIMED = `
SELECT * FROM rota_items
WHERE state = 'pending' AND claim_timeout IS NOT NULL AND run_at + claim_timeout <= ?
ORDER BY run_at + claim_timeout LIMIT ?`;

export const SWEEP_EXPIRED_RETENTION = `
SELECT * FROM rota_items WHERE state = 'completed' AND expire_at <= ? ORDER BY expire_at LIMIT ?`;

export const SWEEP_TOMBSTONES = `
SELECT id, change_seq FROM rota_items WHERE state = 'deleted' AND updated_at <= ?
ORDER BY updated_at LIMIT ?`;

export const DELETE_ITEM = `DELETE FROM rota_items WHERE id = ?`;
