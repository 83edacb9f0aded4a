/**
 * Settings of the etcd store, read from the store URL (`etcd://host:2379[,host2:2379][/?name=value]`)
 * and the `openStore` options object (same names; the object wins over the URL).
 */
import { InvalidArgumentError } from '../../errors.js';
import { type Clock, systemClock } from '../../time/clock.js';
import { utf8Length } from '../keys.js';

/** Options of the etcd store. Each can also be given as a URL query parameter. */
export interface EtcdStoreOptions {
  /** Key prefix of this store's data (default `rota/`). Two stores with different prefixes share nothing. */
  prefix?: string;
  /** Deadline of one etcd request, in ms (default 5 000). */
  timeout?: number;
  /** The server's `--max-txn-ops` (default 128, etcd's default): larger batches are split. */
  maxTxnOps?: number;
  /** The server's `--max-request-bytes` (default 1 572 864, etcd's default): larger batches are split. */
  maxRequestBytes?: number;
  /**
   * Let `compact()` also compact etcd's own history (default false). etcd compacts the whole
   * cluster, every prefix at once: enable it only when the cluster serves this store alone.
   */
  physicalCompaction?: boolean;
  /** The local clock behind `now()` (default: the system clock). etcd has no clock of its own to offer. */
  clock?: Clock;
}

/** Parsed, complete settings. */
export interface EtcdSettings {
  /** `host:port` of every endpoint, in URL order. */
  hosts: string[];
  prefix: string;
  timeout: number;
  maxTxnOps: number;
  maxRequestBytes: number;
  physicalCompaction: boolean;
  clock: Clock;
}

export const ETCD_DEFAULTS = {
  prefix: 'rota/',
  timeout: 5_000,
  maxTxnOps: 128,
  maxRequestBytes: 1_572_864,
  physicalCompaction: false,
  port: 2379,
} as const;

const OPTION_NAMES = ['prefix', 'timeout', 'maxTxnOps', 'maxRequestBytes', 'physicalCompaction', 'clock'];
const QUERY_NAMES = OPTION_NAMES.filter((n) => n !== 'clock');

function bad(field: string, message: string): never {
  throw new InvalidArgumentError(`etcd store: ${field} ${message}`, { detail: { field } });
}

function parseHost(text: string): string {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(text);
  if (!m) bad('url', `has a malformed host ${JSON.stringify(text)} (expected host:port)`);
  const port = m[2] === undefined ? ETCD_DEFAULTS.port : Number(m[2]);
  if (port < 1 || port > 65_535) bad('url', `has an out-of-range port in ${JSON.stringify(text)}`);
  return `${m[1]}:${port}`;
}

function intSetting(field: string, value: unknown, min: number, max: number): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    bad(field, `must be an integer between ${min} and ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}

function boolSetting(field: string, value: unknown): boolean {
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  return bad(field, `must be true or false, got ${JSON.stringify(value)}`);
}

function prefixSetting(value: unknown): string {
  if (typeof value !== 'string') bad('prefix', `must be a string, got ${typeof value}`);
  if (value.length === 0) bad('prefix', 'must not be empty');
  if (value.includes('\u0000') || !value.isWellFormed())
    bad('prefix', 'must be well-formed text without NUL');
  if (utf8Length(value) > 256) bad('prefix', 'must be at most 256 UTF-8 bytes');
  return value;
}

/**
 * Parse `etcd://h1:2379,h2:2379/?prefix=rota/` plus the options object. The raw string is parsed
 * here because WHATWG URLs refuse several comma-separated hosts.
 */
export function parseEtcdSettings(raw: string, options: Record<string, unknown> = {}): EtcdSettings {
  const m = /^etcd:\/\/([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/i.exec(raw);
  if (!m)
    bad('url', `must look like etcd://host:2379[,host2:2379][/?prefix=...], got ${JSON.stringify(raw)}`);
  const [, authority = '', path = '', query = '', hash] = m;
  if (authority.includes('@')) bad('url', 'must not carry credentials (etcd auth is not supported)');
  if (authority === '') bad('url', 'must name at least one host');
  if (path !== '' && path !== '/') bad('url', `must not have a path, got ${JSON.stringify(path)}`);
  if (hash !== undefined) bad('url', 'must not have a fragment');
  const hosts = authority.split(',').map(parseHost);

  const merged: Record<string, unknown> = {};
  const params = new URLSearchParams(query);
  for (const [name, value] of params) {
    if (!QUERY_NAMES.includes(name))
      bad(`query parameter ${name}`, `is unknown (known: ${QUERY_NAMES.join(', ')})`);
    if (params.getAll(name).length > 1) bad(`query parameter ${name}`, 'is given twice');
    merged[name] = value;
  }
  if (options === null || typeof options !== 'object') bad('options', 'must be an object');
  for (const [name, value] of Object.entries(options)) {
    if (value === undefined) continue;
    if (!OPTION_NAMES.includes(name)) bad(`option ${name}`, `is unknown (known: ${OPTION_NAMES.join(', ')})`);
    merged[name] = value;
  }

  const clock = merged.clock ?? systemClock;
  if (typeof (clock as Clock).now !== 'function') bad('clock', 'must be a Clock');
  return {
    hosts,
    prefix: merged.prefix === undefined ? ETCD_DEFAULTS.prefix : prefixSetting(merged.prefix),
    timeout:
      merged.timeout === undefined
        ? ETCD_DEFAULTS.timeout
        : intSetting('timeout', merged.timeout, 1, 600_000),
    maxTxnOps:
      merged.maxTxnOps === undefined
        ? ETCD_DEFAULTS.maxTxnOps
        : intSetting('maxTxnOps', merged.maxTxnOps, 32, 1_000_000),
    maxRequestBytes:
      merged.maxRequestBytes === undefined
        ? ETCD_DEFAULTS.maxRequestBytes
        : intSetting('maxRequestBytes', merged.maxRequestBytes, 1_200_000, 2_147_483_647),
    physicalCompaction:
      merged.physicalCompaction === undefined
        ? ETCD_DEFAULTS.physicalCompaction
        : boolSetting('physicalCompaction', merged.physicalCompaction),
    clock: clock as Clock,
  };
}
