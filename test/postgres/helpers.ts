/** Helpers for the PostgreSQL backend's own tests (real server from ROTA_TEST_POSTGRES_URL). */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/port.js';
import type { PostgresStore, PostgresStoreOptions } from '../../src/store/postgres/index.js';
import { allFixtures, dropPostgresSchema, serverAvailable, testSchema } from '../support/stores.js';

const fixture = allFixtures.find((f) => f.name === 'postgres');

/** The server URL, or undefined (tests skip with a loud line; under CI that is a failure). */
export const PG_URL: string | undefined =
  fixture && serverAvailable(fixture) ? (process.env.ROTA_TEST_POSTGRES_URL as string) : undefined;

/** `describe` option: skip when there is no server. */
export const needsServer = { skip: PG_URL === undefined ? 'no PostgreSQL server' : false } as const;

/** A fresh schema with an opener for clients on it; every client is closed and the schema dropped. */
export async function withSchema(
  body: (open: (options?: PostgresStoreOptions) => Promise<Store>, schema: string) => Promise<void>,
): Promise<void> {
  const url = PG_URL as string;
  const schema = testSchema();
  const clients: Store[] = [];
  const open = async (options: PostgresStoreOptions = {}) => {
    const store = await openStore(url, { schema, poolSize: 3, ...options });
    clients.push(store);
    return store;
  };
  try {
    await body(open, schema);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await dropPostgresSchema(url, schema);
  }
}

/** The backend object under the validating wrapper. */
export function backendOf(store: Store): PostgresStore {
  return (store as unknown as { backend: PostgresStore }).backend;
}

/** A unique application_name, so a test can find (and kill) exactly its own connections. */
export function appName(tag: string): string {
  return `rota-${tag}-${randomBytes(4).toString('hex')}`;
}

/** Run SQL on a connection of its own (outside every store). */
export async function admin<T extends pg.QueryResultRow = pg.QueryResultRow>(
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: PG_URL });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** Terminate every server connection whose application_name is `name`. Returns how many. */
export async function terminate(name: string): Promise<number> {
  const rows = await admin<{ n: number }>(
    'SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1',
    [name],
  );
  return rows[0]?.n ?? 0;
}

/** A raw connection whose search_path is `schema` (for calling the store's SQL directly). */
export async function rawClient(schema: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}
