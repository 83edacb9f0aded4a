/**
 * Test fixtures for every store backend. Each fixture opens a fresh, isolated store per test.
 * `ROTA_TEST_STORES=memory,sqlite,...` limits store-parameterized suites to the named stores.
 * A backend that needs a server reads its URL from `ROTA_TEST_<NAME>_URL` (set by
 * scripts/with-servers.mjs); without it the backend's tests are skipped with a loud line, except
 * under CI=true where that is a failure.
 */

import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { StoreFixture } from '../../src/store/conformance/index.js';
import { MemoryEngine } from '../../src/store/memory/index.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/port.js';
import { sqliteUrl } from '../../src/store/sqlite/index.js';

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

const sqlite: BackendFixture = {
  name: 'sqlite',
  async create() {
    const dir = mkdtempSync(join(tmpdir(), 'rota-sqlite-'));
    const url = sqliteUrl(join(dir, 'store.db'));
    const clients: Store[] = [];
    const open = async () => {
      const client = await openStore(url);
      clients.push(client);
      return client;
    };
    try {
      return {
        store: await open(),
        connect: open,
        async destroy() {
          await Promise.all(clients.map((c) => c.close()));
          rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
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

/** Delete every key of a Redis store prefix (`{prefix}:*`). */
export async function dropRedisPrefix(url: string, prefix: string): Promise<void> {
  const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await admin.connect();
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `{${prefix}}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await admin.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    admin.disconnect();
  }
}

/** Redis; `scripts` picks how the store runs its Lua (default `auto`: Redis Functions here). */
function redisFixture(name: string, scripts?: 'eval'): BackendFixture {
  return {
    name,
    serverEnv: 'ROTA_TEST_REDIS_URL',
    create: () => createRedis(scripts),
  };
}

const redis = redisFixture('redis');

/**
 * Redis with `scripts: 'eval'`: the EVALSHA path that Redis 6.2 takes (Functions need Redis 7),
 * for the conformance suite.
 */
export const redisEval = redisFixture('redis-eval', 'eval');

async function createRedis(scripts?: 'eval') {
  const url = process.env.ROTA_TEST_REDIS_URL as string;
  // Each test gets its own key prefix, dropped in destroy().
  const prefix = `rt-${randomBytes(6).toString('hex')}`;
  const open = () => openStore(url, { prefix, ...(scripts ? { scripts } : {}) });
  const clients: Store[] = [await open()];
  return {
    store: clients[0]!,
    async connect() {
      const client = await open();
      clients.push(client);
      return client;
    },
    async destroy() {
      await Promise.all(clients.map((c) => c.close()));
      await dropRedisPrefix(url, prefix);
    },
  };
}

/**
 * etcd: one shared server; each test gets its own key prefix, deleted (with the leases the test
 * granted) by destroy().
 */
const etcd: BackendFixture = {
  name: 'etcd',
  serverEnv: 'ROTA_TEST_ETCD_URL',
  async create() {
    const url = process.env.ROTA_TEST_ETCD_URL as string;
    const prefix = `rota-test/${randomUUID()}/`;
    const leases = new Set<string>();
    const clients: Store[] = [];
    const open = async () => {
      const client = await openStore(url, { prefix });
      const grant = client.grant;
      client.grant = async (ttl) => {
        const lease = await grant(ttl);
        leases.add(lease.id);
        return lease;
      };
      clients.push(client);
      return client;
    };
    return {
      store: await open(),
      connect: open,
      async destroy() {
        await Promise.all(clients.map((c) => c.close()));
        const { dropEtcdPrefix } = await import('../../src/store/etcd/index.js');
        await dropEtcdPrefix(url, prefix, leases);
      },
    };
  },
};

/** Every backend fixture this build has, in a stable order. */
export const allFixtures: BackendFixture[] = [memory, sqlite, postgres, redis, etcd];

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
