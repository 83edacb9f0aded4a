/** The counters row, read at the start and written at the end of every write transaction. */

export const READ_COUNTERS = `
SELECT revision, compact_revision, seq, lease_counter, feed_horizon FROM rota_counters WHERE id = 1`;

export const WRITE_COUNTERS = `
UPDATE rota_counters
SET revision = @revision, compact_revision = @compactRevision, seq = @seq,
    lease_counter = @leaseCounter, feed_horizon = @feedHorizon
WHERE id = 1`;

/** The change-detection counter of a connection: moves when another connection commits. */
export const DATA_VERSION = `PRAGMA data_version`;
