/** Mapping of SQLite driver errors onto Rota's error catalog. */
import {
  RotaError,
  StoreCorruptError,
  StoreError,
  StoreReadonlyError,
  StoreUnavailableError,
} from '../../errors.js';

/** The `code` of a better-sqlite3 `SqliteError` (or a Node fs error), if any. */
export function driverCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/** SQLITE_BUSY / SQLITE_LOCKED (and their extended codes): another connection holds the lock. */
export function isBusy(err: unknown): boolean {
  const code = driverCode(err);
  return code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED');
}

/**
 * Wrap a driver error as a coded RotaError, keeping it as `cause`. A lock time-out is
 * `ROTA_STORE_UNAVAILABLE` with `ambiguous: false`: every failed transaction here was rolled back,
 * so nothing of it was applied.
 */
export function mapSqliteError(err: unknown, what: string, path: string): RotaError {
  if (err instanceof RotaError) return err;
  const code = driverCode(err);
  const text = err instanceof Error ? err.message : String(err);
  const detail = { path, driverCode: code };
  if (isBusy(err)) {
    return new StoreUnavailableError(`${what}: the database stayed locked by another connection (${text})`, {
      cause: err,
      detail: { ...detail, ambiguous: false },
    });
  }
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
    return new StoreCorruptError(`${what}: ${path} is not a readable Rota database (${text})`, {
      cause: err,
      detail,
    });
  }
  if (code.startsWith('SQLITE_READONLY')) {
    return new StoreReadonlyError(`${what}: ${path} cannot be written (${text})`, { cause: err, detail });
  }
  return new StoreError(`${what}: ${text}`, { cause: err, detail });
}
