/**
 * Open a store from a URL. Backends register by URL scheme; modules never name a backend.
 *
 * | URL | store |
 * |---|---|
 * | `memory:` / `memory:<name>` | in-process (private, or shared by name within the process) |
 * | `sqlite:./file.db`, `sqlite:/abs/file.db`, `sqlite::memory:` | SQLite file shared by processes on one host (WAL) |
 * | `etcd://host:2379[,host2:2379][/?prefix=rota/]` | etcd (`src/store/etcd/`), loaded on first use |
 * | `postgres://…` / `postgresql://…` | PostgreSQL (node-postgres pool; `?schema=`, `?poolSize=`, ...) |
 * | `redis://host:port[/db]?prefix=…` / `rediss://…` | Redis (TLS with `rediss:`), see docs/stores.md |
 */
import { InvalidArgumentError, UnknownStoreError } from '../errors.js';
import type { Clock } from '../time/clock.js';
import { openMemoryStore } from './memory/index.js';
import type { Store } from './port.js';
import { VALIDATED, withValidation } from './validating-store.js';

/**
 * The store used when none is configured: the embedded SQLite file `./.rota/rota.db`, relative to
 * the current directory (created with its folder on first use).
 */
export const DEFAULT_EMBEDDED_STORE = 'sqlite:./.rota/rota.db';

/** Options understood by `openStore`; each backend reads the ones that concern it. */
export interface OpenStoreOptions {
  /** Memory: the store clock (tests use a ManualClock). etcd: the local clock behind `now()`. */
  clock?: Clock;
  /** Backend-specific settings (key prefix, schema, pool size...). See docs/stores.md. */
  [option: string]: unknown;
}

/**
 * Opens one backend from a parsed URL. `raw` is the string as given: a URL listing several hosts
 * (`etcd://h1:2379,h2:2379`) is parsed with its first host only, so such backends read `raw`.
 */
export type StoreOpener = (url: URL, options: OpenStoreOptions, raw: string) => Promise<Store>;

const openers = new Map<string, StoreOpener>([
  [
    'memory:',
    async (url, options) =>
      openMemoryStore(url.pathname, { ...(options.clock ? { clock: options.clock } : {}) }),
  ],
  // Loaded on first use, so the native driver is needed only by those who open a SQLite store.
  ['sqlite:', async (url, options) => (await import('./sqlite/index.js')).openSqliteStore(url, options)],
  // Loaded on first use, so only programs that open PostgreSQL load its driver.
  [
    'postgres:',
    async (url, options) => (await import('./postgres/index.js')).openPostgresStore(url, options),
  ],
  [
    'postgresql:',
    async (url, options) => (await import('./postgres/index.js')).openPostgresStore(url, options),
  ],
  // Loaded on demand, so the gRPC client is only imported by programs that use etcd.
  ['etcd:', async (_url, options, raw) => (await import('./etcd/index.js')).openEtcdStore(raw, options)],
  // Loaded on first use, so that processes without Redis never load its driver.
  ['redis:', async (url, options) => (await import('./redis/index.js')).openRedisStore(url, options)],
  ['rediss:', async (url, options) => (await import('./redis/index.js')).openRedisStore(url, options)],
]);

/** WHATWG URLs refuse `scheme://h1:p1,h2:p2/...`; parse such a URL with its first host. */
function parseStoreUrl(store: string): URL {
  try {
    return new URL(store);
  } catch (err) {
    const multi = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#@]*@)?([^/?#,]*),[^/?#]*(.*)$/i.exec(store);
    if (!multi) throw err;
    return new URL(`${multi[1]}${multi[2] ?? ''}${multi[3]}${multi[4]}`);
  }
}

/** Register (or replace) the opener of a URL scheme such as `'mystore:'`. */
export function registerStoreScheme(scheme: string, opener: StoreOpener): void {
  if (!/^[a-z][a-z0-9+.-]*:$/.test(scheme)) {
    throw new InvalidArgumentError(`scheme must look like 'name:', got ${JSON.stringify(scheme)}`, {
      detail: { field: 'scheme' },
    });
  }
  openers.set(scheme, opener);
}

/** The schemes that can be opened in this build. */
export function storeSchemes(): string[] {
  return [...openers.keys()];
}

/** True when `value` already is a Store object. */
export function isStore(value: unknown): value is Store {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Store).txn === 'function' &&
    typeof (value as Store).watch === 'function' &&
    typeof (value as Store).claim === 'function'
  );
}

/**
 * Open a store from a URL (or validate-wrap a backend object). Unknown schemes and malformed URLs
 * fail with `ROTA_UNKNOWN_STORE` before anything is written.
 */
export async function openStore(store: string | Store, options: OpenStoreOptions = {}): Promise<Store> {
  if (isStore(store))
    return (store as unknown as Record<symbol, unknown>)[VALIDATED] ? store : withValidation(store);
  if (typeof store !== 'string' || store.length === 0) {
    throw new UnknownStoreError(
      'store must be a URL such as memory:, sqlite:./rota.db or redis://127.0.0.1:6379',
      {
        detail: { field: 'store' },
      },
    );
  }
  let url: URL;
  try {
    url = parseStoreUrl(store);
  } catch (cause) {
    throw new UnknownStoreError(`cannot parse store URL ${JSON.stringify(store)}`, {
      cause,
      detail: { field: 'store' },
    });
  }
  const opener = openers.get(url.protocol);
  if (!opener) {
    throw new UnknownStoreError(
      `unknown store scheme ${JSON.stringify(url.protocol)}; available: ${storeSchemes().join(', ')}`,
      { detail: { field: 'store', scheme: url.protocol } },
    );
  }
  return withValidation(await opener(url, options, store));
}
