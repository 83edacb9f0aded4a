/** Statements of leases. */

export const INSERT_LEASE = `INSERT INTO rota_leases (id, ttl, expires_at) VALUES (?, ?, ?)`;

export const GET_LEASE = `SELECT id, ttl, expires_at FROM rota_leases WHERE id = ?`;

export const TOUCH_LEASE = `UPDATE rota_leases SET expires_at = ? + ttl WHERE id = ? RETURNING ttl`;

export const DELETE_LEASE = `DELETE FROM rota_leases WHERE id = ?`;

/** Leases whose expiry has passed, earliest first. */
export const DUE_LEASES = `
SELECT id FROM rota_leases WHERE expires_at <= ? ORDER BY expires_at LIMIT ?`;

export const ANY_DUE_LEASE = `SELECT 1 FROM rota_leases WHERE expires_at <= ? LIMIT 1`;

export const EARLIEST_LEASE_EXPIRY = `SELECT min(expires_at) FROM rota_leases`;

/** Keys attached to a lease, in key order. */
export const LEASE_KEYS = `
SELECT key, value, create_revision, mod_revision, version, lease FROM rota_kv
WHERE lease = ? ORDER BY key`;
