/**
 * Test fixtures for every store backend. Each fixture opens a fresh, isolated store per test.
 * `ROTA_TEST_STORES=memory,sqlite,...` limits store-parameterized suites to the named stores.
 * A backend that needs a server reads its URL from `ROTA_TEST_<NAME>_URL` (set by
 * scripts/with-servers.mjs); without it the backend's tests are skipped with a loud line, except
 * under CI=true where that is a failure.
 */

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { StoreFixture } from '../../src/store/conformance/index.js';
import { MemoryEngine } from '../../src/store/memory/index.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/port.js';

export interface BackendFixture extends StoreFixture {
  /** Environment variable holding the server URL, for backends that need one. */
  serverEnv?: string;
}

const memory: BackendFixture = {
  name: 'memory',
  async create() {
    const engine = new MemoryEngine();
    const clients = [engine.client()];
    return {
      store: clients[0]!,
      async connect() {
        const client = engine.client();
        clients.push(client);
        return client;
      },
      async destroy() {
        await Promise.all(clients.map((c) => c.close()));
        engine.kv.dispose();
      },
    };
  },
};

/** Drop a PostgreSQL schema and everything in it (test cleanup). */
export async function dropPostgresSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

/** A fresh schema name for one test. */
export function testSchema(): string {
  return `rota_t${randomBytes(6).toString('hex')}`;
}

const postgres: BackendFixture = {
  name: 'postgres',
  serverEnv: 'ROTA_TEST_POSTGRES_URL',
  async create() {
    const url = process.env.ROTA_TEST_POSTGRES_URL as string;
    // Each test gets its own schema; small pools keep 8 parallel tests x 2 clients well within
    // the server's connection limit.
    const options = { schema: testSchema(), poolSize: 3 };
    const clients: Store[] = [await openStore(url, options)];
    return {
      store: clients[0]!,
      async connect() {
        const client = await openStore(url, options);
        clients.push(client);
        return client;
      },
      async destroy() {
        await Promise.all(clients.map((c) => c.close()));
        await dropPostgresSchema(url, options.schema);
      },
    };
  },
};

/** Every backend fixture this build has, in a stable order. */
export const allFixtures: BackendFixture[] = [memory, postgres];

/** The fixtures selected by ROTA_TEST_STORES (default: all). Unknown names are an error. */
export function selectedFixtures(): BackendFixture[] {
  const wanted = process.env.ROTA_TEST_STORES?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!wanted || wanted.length === 0) return allFixtures;
  const known = new Map(allFixtures.map((f) => [f.name, f]));
  return wanted.map((name) => {
    const f = known.get(name);
    if (!f)
      throw new Error(
        `ROTA_TEST_STORES names unknown store '${name}' (known: ${[...known.keys()].join(', ')})`,
      );
    return f;
  });
}

/**
 * Whether the fixture's server is available. Without it: under CI this throws (a missing server
 * is a failure there); elsewhere it prints a loud line and the caller skips.
 */
export function serverAvailable(fixture: BackendFixture): boolean {
  if (!fixture.serverEnv || process.env[fixture.serverEnv]) return true;
  const message = `${fixture.name} tests need a server: set ${fixture.serverEnv} (npm test starts one when it can)`;
  if (process.env.CI === 'true') throw new Error(`CI: ${message}`);
  console.warn(`\n!!! SKIPPING ${fixture.name.toUpperCase()}: ${message}\n`);
  return false;
}
