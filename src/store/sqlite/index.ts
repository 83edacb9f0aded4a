/**
 * The SQLite store: the embedded default. One database file (WAL mode) shared by several processes
 * on one host; `sqlite::memory:` for a private in-process database. See docs/stores.md.
 */
import type { Store } from '../port.js';
import { parseSqliteUrl } from './options.js';
import { SqliteStore } from './store.js';

export { SQLITE_DEFAULTS, type SqliteStoreOptions, sqliteUrl } from './options.js';
export { SqliteStore, sqliteCapabilities } from './store.js';

/** Open a SQLite store from a parsed `sqlite:` URL and options (unvalidated backend). */
export async function openSqliteStore(url: URL, options: Record<string, unknown> = {}): Promise<Store> {
  return SqliteStore.open(parseSqliteUrl(url, options));
}
