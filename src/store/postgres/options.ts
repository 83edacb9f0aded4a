/**
 * Settings of the PostgreSQL store, read from the URL's query parameters and the `openStore`
 * options object (same names; the object wins over the URL). Every setting and its default is
 * documented in docs/stores.md ("PostgreSQL").
 */
import { InvalidArgumentError } from '../../errors.js';
import type { OpenStoreOptions } from '../open.js';

/** Options of the PostgreSQL store (URL query parameters or `openStore` options, same names). */
export interface PostgresStoreOptions {
  /** Schema holding Rota's tables (default `rota`): lowercase letters, digits, `_`; at most 48. */
  schema?: string;
  /** Connections in the pool, not counting the one LISTEN connection (default 10). */
  poolSize?: number;
  /** Milliseconds to wait for a new connection before ROTA_STORE_UNAVAILABLE (default 10 000). */
  connectTimeout?: number;
  /** `application_name` of the store's connections, shown in `pg_stat_activity` (default `rota`). */
  applicationName?: string;
  /** Watch history kept before automatic compaction, in revisions (default 100 000). */
  historyRevisions?: number;
  /** Fallback poll of watches when no notification arrives, in ms (default 1 000). */
  pollInterval?: number;
  /** Longest pause between two lease sweeps of this client, in ms (default 1 000). */
  sweepInterval?: number;
}

/** The resolved settings. */
export interface PostgresSettings {
  /** Connection string handed to node-postgres (Rota's parameters removed). */
  connectionString: string;
  schema: string;
  poolSize: number;
  connectTimeout: number;
  applicationName: string;
  historyRevisions: number;
  pollInterval: number;
  sweepInterval: number;
}

export const POSTGRES_DEFAULTS = {
  schema: 'rota',
  poolSize: 10,
  connectTimeout: 10_000,
  applicationName: 'rota',
  historyRevisions: 100_000,
  pollInterval: 1_000,
  sweepInterval: 1_000,
} as const;

type IntSetting = 'poolSize' | 'connectTimeout' | 'historyRevisions' | 'pollInterval' | 'sweepInterval';

const INT_RANGES: Record<IntSetting, [number, number]> = {
  poolSize: [1, 1_000],
  connectTimeout: [0, 3_600_000],
  historyRevisions: [1, Number.MAX_SAFE_INTEGER],
  pollInterval: [10, 3_600_000],
  sweepInterval: [10, 3_600_000],
};

const STRING_SETTINGS = ['schema', 'applicationName'] as const;
const KNOWN = [...STRING_SETTINGS, ...(Object.keys(INT_RANGES) as IntSetting[])];
/** Query parameters passed through to node-postgres untouched. */
const PASS_THROUGH = ['sslmode'];
/** Short enough that `<schema>.queue` fits PostgreSQL's 63-byte channel names. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,47}$/;

function invalid(field: string, message: string): never {
  throw new InvalidArgumentError(`${field}: ${message}`, { detail: { field } });
}

function checkSchema(field: string, value: string): string {
  if (!SCHEMA_NAME.test(value) || value.startsWith('pg_')) {
    invalid(
      field,
      `must be a lowercase schema name (letters, digits, _; at most 48; not pg_*), got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function checkInt(field: string, name: IntSetting, value: unknown): number {
  const [min, max] = INT_RANGES[name];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    invalid(field, `must be an integer between ${min} and ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Parse a `postgres://` / `postgresql://` URL plus options into settings. Bad input throws ROTA_INVALID_ARGUMENT. */
export function parsePostgresSettings(url: URL, options: OpenStoreOptions = {}): PostgresSettings {
  if (url.hash) invalid('store', 'a PostgreSQL URL must not have a #fragment');
  const db = url.pathname.replace(/^\//, '');
  if (db.includes('/'))
    invalid('store', `the URL path must be one database name, got ${JSON.stringify(url.pathname)}`);

  const raw: Record<string, unknown> = {};
  const passed = new URLSearchParams();
  const seen = new Set<string>();
  for (const [name, value] of url.searchParams) {
    if (seen.has(name)) invalid(`store.${name}`, 'is given more than once');
    seen.add(name);
    if (PASS_THROUGH.includes(name)) {
      passed.set(name, value);
      continue;
    }
    if (!(KNOWN as string[]).includes(name)) {
      invalid(`store.${name}`, `unknown URL parameter (known: ${[...KNOWN, ...PASS_THROUGH].join(', ')})`);
    }
    if (name in INT_RANGES) {
      if (!/^\d{1,16}$/.test(value))
        invalid(`store.${name}`, `must be an integer, got ${JSON.stringify(value)}`);
      raw[name] = Number(value);
    } else raw[name] = value;
  }

  for (const [name, value] of Object.entries(options)) {
    if (value === undefined) continue;
    if (!(KNOWN as string[]).includes(name)) {
      invalid(`options.${name}`, `is not an option of the PostgreSQL store (known: ${KNOWN.join(', ')})`);
    }
    raw[name] = value;
  }

  const fieldOf = (name: string) => (name in options && options[name] !== undefined ? 'options' : 'store');
  const str = (name: (typeof STRING_SETTINGS)[number]): string | undefined => {
    const value = raw[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value.length === 0) {
      invalid(`${fieldOf(name)}.${name}`, `must be a non-empty string, got ${JSON.stringify(value)}`);
    }
    return value;
  };
  const int = (name: IntSetting): number =>
    raw[name] === undefined ? POSTGRES_DEFAULTS[name] : checkInt(`${fieldOf(name)}.${name}`, name, raw[name]);

  const schema = checkSchema(`${fieldOf('schema')}.schema`, str('schema') ?? POSTGRES_DEFAULTS.schema);
  const applicationName = str('applicationName') ?? POSTGRES_DEFAULTS.applicationName;
  if (applicationName.length > 63 || /[^\x20-\x7e]/.test(applicationName)) {
    invalid(
      `${fieldOf('applicationName')}.applicationName`,
      'must be printable ASCII of at most 63 characters',
    );
  }

  const base = new URL(url.href);
  base.search = passed.toString();
  return {
    connectionString: base.href,
    schema,
    applicationName,
    poolSize: int('poolSize'),
    connectTimeout: int('connectTimeout'),
    historyRevisions: int('historyRevisions'),
    pollInterval: int('pollInterval'),
    sweepInterval: int('sweepInterval'),
  };
}
