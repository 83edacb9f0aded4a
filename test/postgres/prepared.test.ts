/**
 * PostgreSQL store: the store's statements run as named prepared statements, once parsed per
 * connection. A function replaced with another result type while a connection keeps the old plan
 * (a newer schema installed by another process) makes the server refuse the plan; the statement
 * runs again on a fresh connection and succeeds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Db } from '../../src/store/postgres/db.js';
import { parsePostgresSettings } from '../../src/store/postgres/options.js';
import { query } from '../../src/store/postgres/sql.js';
import { admin, appName, needsServer, PG_URL, withSchema } from './helpers.js';

describe('postgres prepared statements', needsServer, () => {
  it('parses each statement once per connection', async () => {
    await withSchema(async (open, schema) => {
      await open(); // installs the schema
      const name = appName('prepared');
      const db = new Db(
        parsePostgresSettings(new URL(PG_URL as string), { schema, poolSize: 1, applicationName: name }),
      );
      try {
        for (let i = 0; i < 3; i++) await db.run(query('now'), [], { write: false });
        const [{ n }] = (
          await db.run<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = 'rota_now'",
            [],
            { write: false },
          )
        ).rows as [{ n: number }];
        assert.equal(n, 1, 'rota_now is prepared on the one connection');
        // Texts that did not come from sql/queries/ stay unnamed.
        const [{ m }] = (
          await db.run<{ m: number }>(
            "SELECT count(*)::int AS m FROM pg_prepared_statements WHERE name LIKE 'rota\\_%'",
            [],
            { write: false },
          )
        ).rows as [{ m: number }];
        assert.equal(m, 1);
      } finally {
        await db.close();
      }
    });
  });

  it('re-runs a statement whose cached plan went stale on a new connection', async () => {
    await withSchema(async (open, schema) => {
      await (await open()).close(); // installs the schema; nothing of it runs while now_ms() changes
      const name = appName('stale');
      const db = new Db(
        parsePostgresSettings(new URL(PG_URL as string), { schema, poolSize: 1, applicationName: name }),
      );
      try {
        const before = await db.run<{ now: string }>(query('now'), [], { write: false });
        assert.equal(typeof before.rows[0]?.now, 'string', 'bigint comes back as text');
        const pidBefore = (
          await db.run<{ pid: number }>('SELECT pg_backend_pid() AS pid', [], { write: false })
        ).rows[0]?.pid;
        // Another "release" of the schema: now_ms() returns double precision.
        await admin(
          `DROP FUNCTION "${schema}".now_ms(); CREATE FUNCTION "${schema}".now_ms() RETURNS double precision LANGUAGE sql AS $$ SELECT 1.5::double precision $$`,
        );
        const after = await db.run<{ now: number }>(query('now'), [], { write: false });
        assert.equal(after.rows[0]?.now, 1.5);
        const pidAfter = (
          await db.run<{ pid: number }>('SELECT pg_backend_pid() AS pid', [], { write: false })
        ).rows[0]?.pid;
        assert.notEqual(pidAfter, pidBefore, 'the connection with the stale plan was dropped');
      } finally {
        await db.close();
      }
    });
  });
});
