/** Settings of the SQLite store, from the URL's query parameters and the `openStore` options. */
import { isAbsolute, resolve } from 'node:path';
import { InvalidArgumentError } from '../../errors.js';

/** Settings of a SQLite store. Each can be given as a URL query parameter or an option of the same name. */
export interface SqliteStoreOptions {
  /**
   * How long one statement waits for another process's write lock, in ms (SQLite `busy_timeout`).
   * The wait blocks the event loop, so it is kept short and retried. Default 250.
   */
  busyTimeout?: number;
  /**
   * Further attempts of a transaction that still found the database locked, each after an async
   * back-off (5 ms doubling up to 100 ms, plus jitter) during which the event loop runs. Default 40.
   */
  busyRetries?: number;
  /** How often each process checks the file for other processes' commits, in ms (`PRAGMA data_version`). Default 10. */
  pollInterval?: number;
  /** Revisions of watch history kept; older ones are compacted away (`ROTA_COMPACTED`). Default 100 000. */
  historyLimit?: number;
  /** SQLite `synchronous`: `normal` (default; WAL commits survive a process crash) or `full` (also power loss). */
  synchronous?: 'normal' | 'full';
}

export const SQLITE_DEFAULTS: Required<SqliteStoreOptions> = Object.freeze({
  busyTimeout: 250,
  busyRetries: 40,
  pollInterval: 10,
  historyLimit: 100_000,
  synchronous: 'normal',
});

export interface SqliteSettings extends Required<SqliteStoreOptions> {
  /** Absolute file path, or `:memory:`. */
  path: string;
  memory: boolean;
}

const INTEGER_OPTIONS: Record<string, [min: number, max: number]> = {
  busyTimeout: [0, 600_000],
  busyRetries: [0, 1000],
  pollInterval: [1, 10_000],
  historyLimit: [1, Number.MAX_SAFE_INTEGER],
};

const KNOWN = [...Object.keys(INTEGER_OPTIONS), 'synchronous'];

function bad(field: string, message: string): never {
  throw new InvalidArgumentError(`sqlite store: ${field} ${message}`, { detail: { field } });
}

function setting(name: string, raw: unknown, fromUrl: boolean): number | string {
  const range = INTEGER_OPTIONS[name];
  if (range) {
    let n = raw;
    if (fromUrl) n = /^\d+$/.test(String(raw)) ? Number(raw) : Number.NaN;
    if (typeof n !== 'number' || !Number.isInteger(n))
      bad(name, `must be an integer, got ${JSON.stringify(raw)}`);
    if (n < range[0] || n > range[1]) bad(name, `must be between ${range[0]} and ${range[1]}, got ${n}`);
    return n;
  }
  if (raw !== 'normal' && raw !== 'full') bad(name, `must be 'normal' or 'full', got ${JSON.stringify(raw)}`);
  return raw;
}

/**
 * Parse `sqlite:./relative.db`, `sqlite:/absolute.db`, `sqlite:///absolute.db` or `sqlite::memory:`
 * plus options. Relative paths resolve against the current directory. Bad parts are
 * `ROTA_INVALID_ARGUMENT`, before anything is opened.
 */
export function parseSqliteUrl(url: URL, options: Record<string, unknown> = {}): SqliteSettings {
  if (url.host !== '' || url.username !== '' || url.password !== '' || url.port !== '')
    bad('store', `URL must not name a host (use sqlite:/absolute/path.db or sqlite:./relative.db)`);
  if (url.hash !== '') bad('store', 'URL must not have a #fragment');
  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch (cause) {
    throw new InvalidArgumentError('sqlite store: the URL path is not valid percent-encoding', {
      cause,
      detail: { field: 'store' },
    });
  }
  if (path === '') bad('store', 'URL needs a file path, e.g. sqlite:./.rota/rota.db or sqlite::memory:');
  if (path.includes('\u0000')) bad('store', 'path must not contain NUL');
  const memory = path === ':memory:';
  const settings: Record<string, unknown> = { ...SQLITE_DEFAULTS };
  for (const [name, value] of url.searchParams) {
    if (!KNOWN.includes(name))
      bad(`store URL parameter ${JSON.stringify(name)}`, `is unknown (known: ${KNOWN.join(', ')})`);
    settings[name] = setting(name, value, true);
  }
  for (const [name, value] of Object.entries(options)) {
    if (value === undefined) continue;
    if (name === 'clock')
      bad('options.clock', 'is not supported: the SQLite store uses the host clock shared by its processes');
    if (!KNOWN.includes(name)) bad(`options.${name}`, `is an unknown option (known: ${KNOWN.join(', ')})`);
    settings[name] = setting(name, value, false);
  }
  return {
    ...(settings as unknown as Required<SqliteStoreOptions>),
    path: memory ? ':memory:' : isAbsolute(path) ? path : resolve(process.cwd(), path),
    memory,
  };
}

/** Build a `sqlite:` URL for a file path, escaping the characters a URL would misread. */
export function sqliteUrl(path: string, params: SqliteStoreOptions = {}): string {
  const escaped = path.replace(/[%?#]/g, (c) => encodeURIComponent(c));
  const query = new URLSearchParams(
    Object.entries(params).map(([k, v]) => [k, String(v)] as [string, string]),
  ).toString();
  return `sqlite:${escaped}${query ? `?${query}` : ''}`;
}
