/**
 * Input validation of the hosts module (hosts.md §2.6). Every check runs before any write and
 * fails with `ROTA_INVALID_ARGUMENT`, `ROTA_PAYLOAD_TOO_LARGE` or `ROTA_UNKNOWN_STRATEGY`.
 */
import { UnknownStrategyError } from '../errors.js';
import {
  checkBoolean,
  checkDuration,
  checkName,
  checkOptions,
  checkSignal,
  checkString,
  invalid,
  toJsonText,
} from '../validate.js';
import type { HostCandidacyOptions } from './types.js';

/** Defaults of candidacy options (hosts.md §1). */
export const HOSTS_DEFAULTS = {
  strategy: 'rr',
  max: 1,
  electionTtl: 1000,
  /** Largest candidacy `data`, in bytes of JSON. */
  maxDataBytes: 4096,
  /** Largest `hostsFilter`. */
  maxFilter: 1000,
  /** Budget of one strategy call. */
  strategyTimeout: 5000,
  /** A namespace whose strategy failed is retried after this long (or on its next change). */
  retryDelay: 5000,
  /** Changes are coalesced this long before a decision pass. */
  coalesce: 50,
} as const;

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9._:-]*[A-Za-z0-9])?$/;

/** A namespace: a name (cluster.md §5) without `/`. */
export function checkNamespace(value: unknown): string {
  const ns = checkName('namespace', value);
  if (ns.includes('/')) invalid('namespace', 'must not contain "/"');
  return ns;
}

/** A hostname: 1–253 characters of `[A-Za-z0-9._:-]`, starting and ending alphanumeric. */
export function checkHostname(field: string, value: unknown): string {
  const name = checkString(field, value);
  if (name.length === 0) invalid(field, 'must not be empty');
  if (name.length > 253) invalid(field, `must be at most 253 characters, got ${name.length}`);
  if (!HOSTNAME.test(name)) {
    invalid(field, 'must match ^[A-Za-z0-9]([A-Za-z0-9._:-]*[A-Za-z0-9])?$ (letters, digits, . _ : -)');
  }
  return name;
}

/** `max`: an integer ≥ 1 or `Infinity`. */
export function checkMax(field: string, value: unknown): number {
  if (value === Number.POSITIVE_INFINITY) return value;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    invalid(
      field,
      `must be an integer ≥ 1 or Infinity, got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`,
    );
  }
  return value;
}

/** The settings of one candidacy after defaults and checks. */
export interface CandidacySettings {
  hostname: string;
  strategy: string;
  max: number;
  hostsFilter: string[];
  /** JSON text of `data`. */
  dataText: string;
  persist: boolean;
  reuseLease: boolean;
  /** The lease TTL in ms, rounded up to the store's lease granularity (0 when `persist`). */
  ttl: number;
}

export const CANDIDACY_KEYS = [
  'hostname',
  'strategy',
  'max',
  'sessionTtl',
  'reuseLease',
  'persist',
  'hostsFilter',
  'data',
] as const;

/** Round a TTL up to the store's lease granularity. */
export function roundTtl(ttl: number, granularity: number): number {
  const g = Math.max(1, granularity);
  return Math.ceil(ttl / g) * g;
}

/**
 * Check candidacy options (of a bag already checked for unknown keys).
 * `defaultHostname` is the node id; `defaultTtl` the node's session TTL.
 */
export function parseCandidacy(
  o: HostCandidacyOptions,
  env: {
    defaultHostname: string;
    defaultTtl: number;
    granularity: number;
    hasStrategy: (kind: string) => boolean;
  },
): CandidacySettings {
  const hostname = checkHostname(
    o.hostname === undefined ? 'hostname (default: the node id)' : 'options.hostname',
    o.hostname === undefined ? env.defaultHostname : o.hostname,
  );
  const strategy = checkName(
    'options.strategy',
    o.strategy === undefined ? HOSTS_DEFAULTS.strategy : o.strategy,
  );
  const max = checkMax('options.max', o.max === undefined ? HOSTS_DEFAULTS.max : o.max);
  const persist = o.persist === undefined ? false : checkBoolean('options.persist', o.persist);
  const reuseLease = o.reuseLease === undefined ? false : checkBoolean('options.reuseLease', o.reuseLease);
  if (o.sessionTtl !== undefined) checkDuration('options.sessionTtl', o.sessionTtl, 1000);
  if (persist && o.sessionTtl !== undefined) {
    invalid('options.persist', 'a persistent candidacy has no lease: do not combine it with sessionTtl');
  }
  if (persist && reuseLease) {
    invalid('options.persist', 'a persistent candidacy has no lease: do not combine it with reuseLease');
  }
  let hostsFilter: string[] = [];
  if (o.hostsFilter !== undefined) {
    if (!Array.isArray(o.hostsFilter)) invalid('options.hostsFilter', 'must be an array of hostnames');
    if (o.hostsFilter.length > HOSTS_DEFAULTS.maxFilter) {
      invalid('options.hostsFilter', `must hold at most ${HOSTS_DEFAULTS.maxFilter} hostnames`);
    }
    hostsFilter = [
      ...new Set(o.hostsFilter.map((h, i) => checkHostname(`options.hostsFilter[${i}]`, h))),
    ].sort();
  }
  const dataText = toJsonText(
    'options.data',
    o.data === undefined ? null : o.data,
    HOSTS_DEFAULTS.maxDataBytes,
  );
  if (!env.hasStrategy(strategy)) {
    throw new UnknownStrategyError(`no host strategy is registered as ${JSON.stringify(strategy)}`, {
      detail: { field: 'options.strategy', strategy },
    });
  }
  const ttl = persist ? 0 : roundTtl(o.sessionTtl ?? env.defaultTtl, env.granularity);
  return { hostname, strategy, max, hostsFilter, dataText, persist, reuseLease, ttl };
}

export function checkDryRun(value: unknown): boolean {
  return value === undefined ? false : checkBoolean('options.dryRun', value);
}

export { checkOptions, checkSignal };
