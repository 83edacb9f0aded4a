/**
 * Versioned migrations. The schema's version is the highest row of `schema_versions`; each version
 * is the folder `sql/migrations/<n>/`, applied in one transaction. Many processes may open a fresh
 * schema at once: they serialize on a session advisory lock keyed by the schema name, and each
 * re-reads the version under the lock, so every migration runs exactly once.
 */
import type pg from 'pg';
import { type RotaError, SchemaTooNewError, StoreError } from '../../errors.js';
import type { Db } from './db.js';
import { mapPgError } from './errors.js';
import { migrationText, migrationVersions, query } from './sql.js';

/** Advisory lock class of Rota's migrations ('Rota' in ASCII); the key is hashtext(schema). */
const LOCK_CLASS = 0x526f7461;
/** PostgreSQL 13 brought xid8 and pg_current_xact_id(), which the change feed uses. */
const MIN_SERVER_VERSION = 130_000;

function tooNew(schema: string, version: number, latest: number): RotaError {
  return new SchemaTooNewError(
    `schema ${schema} is at version ${version}, newer than this Rota supports (${latest}); upgrade Rota`,
    { detail: { schema, version, supported: latest } },
  );
}

async function currentVersion(run: (text: string) => Promise<{ rows: Record<string, unknown>[] }>) {
  const present = await run(query('schema-present'));
  if (!present.rows[0]?.present) return 0;
  const res = await run(query('schema-version'));
  return Number(res.rows[0]?.version ?? 0);
}

/** Bring `schema` to the newest version this code knows, or fail with ROTA_SCHEMA_TOO_NEW. */
export async function migrate(db: Db, schema: string): Promise<void> {
  const versions = migrationVersions();
  const latest = versions[versions.length - 1] ?? 0;

  const server = await db.run(query('server-check'), [], { write: false });
  const info = server.rows[0] as { encoding: string; version: number };
  if (info.version < MIN_SERVER_VERSION) {
    throw new StoreError(`PostgreSQL ${info.version} is too old: the store needs PostgreSQL 13 or newer`, {
      detail: { serverVersion: info.version },
    });
  }
  if (info.encoding !== 'UTF8') {
    throw new StoreError(`the database encoding is ${info.encoding}; the store needs a UTF8 database`, {
      detail: { encoding: info.encoding },
    });
  }

  const read = (text: string) => db.run(text, [], { write: false });
  const seen = await currentVersion(read);
  if (seen > latest) throw tooNew(schema, seen, latest);
  if (seen === latest) return;

  let client: pg.PoolClient;
  try {
    client = await db.pool.connect();
  } catch (err) {
    throw mapPgError(err, false);
  }
  let broken: Error | undefined;
  try {
    await client.query(query('migrate-lock'), [LOCK_CLASS, schema]);
    try {
      await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
      await client.query(query('schema-versions-table'));
      const run = (text: string) => client.query(text);
      const current = await currentVersion(run);
      if (current > latest) throw tooNew(schema, current, latest);
      for (const version of versions) {
        if (version <= current) continue;
        await client.query('BEGIN');
        try {
          await client.query(migrationText(version));
          await client.query(query('schema-version-add'), [version]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      }
    } finally {
      await client.query(query('migrate-unlock'), [LOCK_CLASS, schema]).catch(() => undefined);
    }
  } catch (err) {
    broken = err instanceof Error ? err : new Error(String(err));
    throw mapPgError(err, false);
  } finally {
    client.release(broken);
  }
}
