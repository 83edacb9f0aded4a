/**
 * Open a store from a URL. Backends register by URL scheme; modules never name a backend.
 *
 * | URL | store |
 * |---|---|
 * | `memory:` / `memory:<name>` | in-process (private, or shared by name within the process) |
 * | `postgres://…` / `postgresql://…` | PostgreSQL (node-postgres pool; `?schema=`, `?poolSize=`, ...) |
 */
import { InvalidArgumentError, UnknownStoreError } from '../errors.js';
import type { Clock } from '../time/clock.js';
import { openMemoryStore } from './memory/index.js';
import type { Store } from './port.js';
import { openPostgresStore } from './postgres/index.js';
import { VALIDATED, withValidation } from './validating-store.js';

/** Options understood by `openStore`; each backend reads the ones that concern it. */
export interface OpenStoreOptions {
  /** Memory store only: the store clock (tests use a ManualClock). */
  clock?: Clock;
  /** Backend-specific settings (key prefix, schema, pool size...). See docs/stores.md. */
  [option: string]: unknown;
}

/** Opens one backend from a parsed URL. */
export type StoreOpener = (url: URL, options: OpenStoreOptions) => Promise<Store>;

const openers = new Map<string, StoreOpener>([
  [
    'memory:',
    async (url, options) =>
      openMemoryStore(url.pathname, { ...(options.clock ? { clock: options.clock } : {}) }),
  ],
  ['postgres:', openPostgresStore],
  ['postgresql:', openPostgresStore],
]);

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
    url = new URL(store);
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
  return withValidation(await opener(url, options));
}
