/**
 * Settings of the Redis store, from the URL (`redis://[user:password@]host[:port][/db]?prefix=…`,
 * `rediss://…` for TLS) and the `openStore` options object (same names; the object wins).
 */
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { InvalidArgumentError } from '../../errors.js';

/** Options of the Redis store (URL query parameters and/or `openStore` options). */
export interface RedisStoreOptions {
  /** Key prefix; every key is `{<prefix>}:…`, one Redis Cluster hash slot per prefix. Default `rota`. */
  prefix?: string;
  /** Watch history kept, in revisions; older ones are trimmed and compacted. Default 100 000. */
  historyRevisions?: number;
  /**
   * How long a call waits for a (re)connection before failing with `ROTA_STORE_UNAVAILABLE`, in
   * ms. Calls that were never sent are retried within it; reads are also retried. Default 10 000.
   */
  storeTimeout?: number;
  /** Refuse to start when `maxmemory-policy` can evict keys (`ROTA_UNSAFE_STORE_CONFIG`). Default true. */
  checkEviction?: boolean;
  /**
   * How the Lua scripts run: `functions` (Redis Functions, Redis 7+: loaded once per server),
   * `eval` (EVALSHA, what Redis 6.2 has) or `auto`: functions when the server accepts
   * `FUNCTION LOAD`, else eval. Default `auto`.
   */
  scripts?: 'auto' | 'functions' | 'eval';
  /** Options-object only: TLS settings for `rediss://` (CA, client certificate, servername...). */
  tls?: TlsOptions;
}

/** Parsed and checked settings. */
export interface RedisConfig {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db: number;
  tls?: TlsOptions;
  prefix: string;
  /** `{<prefix>}`: the hash-tagged base of every key. */
  base: string;
  historyRevisions: number;
  storeTimeout: number;
  checkEviction: boolean;
  scripts: 'auto' | 'functions' | 'eval';
  /** Expired leases dropped per script call before it runs. */
  leaseSweepBatch: number;
  /** Expired queue leases applied per claim call. */
  claimExpireBatch: number;
  /** Due delayed items promoted to ready per claim call. */
  claimPromoteBatch: number;
}

export const REDIS_DEFAULTS = {
  prefix: 'rota',
  historyRevisions: 100_000,
  storeTimeout: 10_000,
  checkEviction: true,
  scripts: 'auto',
} as const;

const PREFIX = /^[A-Za-z0-9_.-]{1,64}$/;
const KNOWN = ['prefix', 'historyRevisions', 'storeTimeout', 'checkEviction', 'scripts'] as const;
const SCRIPT_MODES = ['auto', 'functions', 'eval'] as const;
type Known = (typeof KNOWN)[number];

function bad(field: string, message: string): never {
  throw new InvalidArgumentError(`redis store: ${field} ${message}`, { detail: { field } });
}

function fromQuery(name: Known, text: string): unknown {
  switch (name) {
    case 'prefix':
    case 'scripts':
      return text;
    case 'checkEviction':
      if (text === 'true' || text === '1') return true;
      if (text === 'false' || text === '0') return false;
      return bad(name, `must be true or false, got ${JSON.stringify(text)}`);
    default:
      if (!/^\d+$/.test(text)) bad(name, `must be a positive integer, got ${JSON.stringify(text)}`);
      return Number(text);
  }
}

function positive(name: string, value: unknown, min = 1): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min)
    bad(name, `must be an integer ≥ ${min}, got ${String(value)}`);
  return value;
}

/**
 * Parse a `redis:` / `rediss:` URL plus options. Unknown query parameters or options, malformed
 * URL parts and wrong types fail with `ROTA_INVALID_ARGUMENT`.
 */
export function parseRedisConfig(url: URL, options: Record<string, unknown> = {}): RedisConfig {
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:')
    bad('url', `has an unsupported scheme ${url.protocol}`);
  if (url.hash) bad('url', 'must not have a #fragment');
  const path = url.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d{1,2}$/.test(path))
    bad('url', `path must be a database number such as /0, got /${path}`);
  const db = path === '' ? 0 : Number(path);
  const port = url.port === '' ? 6379 : Number(url.port);

  const settings: Partial<Record<Known, unknown>> = {};
  for (const [name, value] of url.searchParams) {
    if (!(KNOWN as readonly string[]).includes(name))
      bad(`query parameter ${name}`, `is unknown (known: ${KNOWN.join(', ')})`);
    settings[name as Known] = fromQuery(name as Known, value);
  }
  let tls: TlsOptions | undefined;
  for (const [name, value] of Object.entries(options)) {
    if (value === undefined) continue;
    if (name === 'clock')
      bad('option clock', 'is for the memory store; Redis keeps time by its server clock');
    if (name === 'tls') {
      if (value === null || typeof value !== 'object' || Array.isArray(value))
        bad('option tls', 'must be an object');
      tls = value as TlsOptions;
      continue;
    }
    if (!(KNOWN as readonly string[]).includes(name))
      bad(`option ${name}`, `is unknown (known: ${[...KNOWN, 'tls'].join(', ')})`);
    settings[name as Known] = value;
  }
  if (tls && url.protocol !== 'rediss:') bad('option tls', 'needs a rediss:// URL');

  const prefix = settings.prefix ?? REDIS_DEFAULTS.prefix;
  if (typeof prefix !== 'string' || !PREFIX.test(prefix))
    bad('prefix', `must match ${PREFIX.source}, got ${JSON.stringify(prefix)}`);
  const checkEviction = settings.checkEviction ?? REDIS_DEFAULTS.checkEviction;
  if (typeof checkEviction !== 'boolean')
    bad('checkEviction', `must be a boolean, got ${String(checkEviction)}`);

  const scripts = settings.scripts ?? REDIS_DEFAULTS.scripts;
  if (!(SCRIPT_MODES as readonly unknown[]).includes(scripts))
    bad('scripts', `must be one of ${SCRIPT_MODES.join(', ')}, got ${JSON.stringify(scripts)}`);

  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port,
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    db,
    ...(url.protocol === 'rediss:' ? { tls: tls ?? {} } : {}),
    prefix,
    base: `{${prefix}}`,
    historyRevisions: positive(
      'historyRevisions',
      settings.historyRevisions ?? REDIS_DEFAULTS.historyRevisions,
    ),
    storeTimeout: positive('storeTimeout', settings.storeTimeout ?? REDIS_DEFAULTS.storeTimeout),
    checkEviction,
    scripts: scripts as RedisConfig['scripts'],
    leaseSweepBatch: 100,
    claimExpireBatch: 1000,
    claimPromoteBatch: 1000,
  };
}
