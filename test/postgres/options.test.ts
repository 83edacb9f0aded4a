/** PostgreSQL store: URL and option parsing. Bad settings fail before any connection is made. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRotaError } from '../../src/errors.js';
import { openStore } from '../../src/store/open.js';
import { POSTGRES_DEFAULTS, type PostgresStoreOptions } from '../../src/store/postgres/index.js';
import { parsePostgresSettings } from '../../src/store/postgres/options.js';

// Port 1 on loopback: nothing listens there, so a test that got past parsing would fail loudly
// with ROTA_STORE_UNAVAILABLE instead of the expected code.
const BASE = 'postgres://rota@127.0.0.1:1/rota';

async function refused(url: string, options: Record<string, unknown> = {}, field?: string) {
  let error: unknown;
  try {
    await openStore(url, options);
  } catch (err) {
    error = err;
  }
  assert.ok(
    isRotaError(error, 'ROTA_INVALID_ARGUMENT'),
    `expected ROTA_INVALID_ARGUMENT, got ${String(error)}`,
  );
  if (field !== undefined) assert.equal(error.detail.field, field);
}

describe('postgres store settings', () => {
  it('has documented defaults', () => {
    const s = parsePostgresSettings(new URL(BASE));
    assert.equal(s.schema, POSTGRES_DEFAULTS.schema);
    assert.equal(s.poolSize, 10);
    assert.equal(s.connectTimeout, 10_000);
    assert.equal(s.applicationName, 'rota');
    assert.equal(s.historyRevisions, 100_000);
    assert.equal(s.pollInterval, 1_000);
    assert.equal(s.sweepInterval, 1_000);
    assert.equal(s.connectionString, BASE);
  });

  it('reads settings from the URL and lets options override them', () => {
    const url = new URL(`${BASE}?schema=jobs&poolSize=4&sslmode=disable&historyRevisions=50`);
    const s = parsePostgresSettings(url, { poolSize: 2 });
    assert.equal(s.schema, 'jobs');
    assert.equal(s.poolSize, 2);
    assert.equal(s.historyRevisions, 50);
    // Rota's parameters are removed; the driver's own are passed through.
    assert.equal(s.connectionString, `${BASE}?sslmode=disable`);
    const both = parsePostgresSettings(new URL(`postgresql://h/db?schema=a`), { schema: 'b' });
    assert.equal(both.schema, 'b');
  });

  it('refuses unknown URL parameters, repeated ones and malformed values', async () => {
    await refused(`${BASE}?schema=rota&color=blue`, {}, 'store.color');
    await refused(`${BASE}?schema=a&schema=b`, {}, 'store.schema');
    await refused(`${BASE}?poolSize=ten`, {}, 'store.poolSize');
    await refused(`${BASE}?poolSize=0`, {}, 'store.poolSize');
    await refused(`${BASE}?poolSize=1.5`, {}, 'store.poolSize');
    await refused(`${BASE}?pollInterval=1`, {}, 'store.pollInterval');
    await refused(`${BASE}?schema=`, {}, 'store.schema');
  });

  it('refuses schema names that are not plain lowercase identifiers', async () => {
    for (const schema of ['Rota', 'a-b', '1abc', 'pg_rota', 'x'.repeat(49), 'a"b', 'a b', 'é']) {
      await refused(`${BASE}?schema=${encodeURIComponent(schema)}`, {}, 'store.schema');
      await refused(BASE, { schema }, 'options.schema');
    }
  });

  it('refuses unknown options and wrong option types', async () => {
    await refused(BASE, { pool: 3 }, 'options.pool');
    await refused(BASE, { clock: { now: () => 0 } }, 'options.clock');
    const bad: [keyof PostgresStoreOptions, unknown][] = [
      ['schema', 42],
      ['poolSize', '3'],
      ['poolSize', -1],
      ['connectTimeout', 1.5],
      ['applicationName', ''],
      ['applicationName', 'tab\there'],
      ['historyRevisions', 0],
      ['sweepInterval', null],
    ];
    for (const [name, value] of bad) await refused(BASE, { [name]: value }, `options.${name}`);
  });

  it('refuses URL parts it cannot use', async () => {
    await refused(`${BASE}#frag`, {}, 'store');
    await refused('postgres://127.0.0.1:1/a/b', {}, 'store');
  });

  it('an unreachable server is ROTA_STORE_UNAVAILABLE, not applied', async () => {
    let error: unknown;
    try {
      await openStore(BASE, { connectTimeout: 2000 });
    } catch (err) {
      error = err;
    }
    assert.ok(isRotaError(error, 'ROTA_STORE_UNAVAILABLE'), `got ${String(error)}`);
    assert.equal(error.detail.ambiguous, false);
    assert.ok(error.cause instanceof Error, 'the driver error is the cause');
  });
});
