/**
 * Schema versioning. A fresh file gets the current schema; an older one is migrated under the
 * write lock (several processes may open the file at once); a newer one is refused with
 * `ROTA_SCHEMA_TOO_NEW`, never downgraded; a file holding other tables is refused as foreign.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { SchemaTooNewError, StoreCorruptError } from '../../errors.js';
import {
  CURRENT_SCHEMA_VERSION,
  MIGRATIONS,
  SCHEMA_TABLE_EXISTS,
  SCHEMA_VERSION,
  SET_SCHEMA_VERSION,
  USER_TABLE_COUNT,
} from './sql/schema.js';

type Database = BetterSqlite3.Database;

/**
 * The installed schema version (0 for an empty file), read without writing anything. Throws
 * `ROTA_STORE_CORRUPT` for a foreign database and `ROTA_SCHEMA_TOO_NEW` for a newer schema.
 */
export function inspectSchema(db: Database, path: string): number {
  const exists = db.prepare(SCHEMA_TABLE_EXISTS).pluck().get() as number;
  if (!exists) {
    const tables = db.prepare(USER_TABLE_COUNT).pluck().get() as number;
    if (tables > 0)
      throw new StoreCorruptError(
        `${path} is a SQLite database of something else (it has tables but no rota_schema); Rota does not touch it`,
        { detail: { path } },
      );
    return 0;
  }
  const version = db.prepare(SCHEMA_VERSION).pluck().get();
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1)
    throw new StoreCorruptError(`${path} has a rota_schema table without a valid version`, {
      detail: { path },
    });
  if (version > CURRENT_SCHEMA_VERSION)
    throw new SchemaTooNewError(
      `${path} has schema version ${version}; this Rota understands up to ${CURRENT_SCHEMA_VERSION}. ` +
        'Upgrade Rota to open it.',
      { detail: { path, version, supported: CURRENT_SCHEMA_VERSION } },
    );
  return version;
}

/** Bring the schema to {@link CURRENT_SCHEMA_VERSION} under the write lock. */
export function migrate(db: Database, path: string): void {
  db.prepare('BEGIN IMMEDIATE').run();
  try {
    // Re-read under the write lock: another process may have migrated meanwhile.
    const version = inspectSchema(db, path);
    for (let v = version; v < CURRENT_SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v] as string);
    if (version < CURRENT_SCHEMA_VERSION)
      db.prepare(SET_SCHEMA_VERSION).run(CURRENT_SCHEMA_VERSION, Date.now());
    db.prepare('COMMIT').run();
  } catch (err) {
    if (db.inTransaction) db.prepare('ROLLBACK').run();
    throw err;
  }
}

export { CURRENT_SCHEMA_VERSION };
