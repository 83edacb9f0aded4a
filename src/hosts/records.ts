/**
 * Key layout and stored values of the hosts module (hosts.md §2.1):
 *
 * | key | value | lease |
 * |---|---|---|
 * | `hosts/candidates/<ns>/<hostname>` | {@link CandidacyRecord} | the candidacy lease; none when persistent |
 * | `hosts/decisions/<ns>` | {@link DecisionRecord} | none; written only by the coordinator, fenced |
 *
 * `max: Infinity` is stored as `null` (JSON has no Infinity). Values written by other programs are
 * validated on read; a malformed one is kept in the cache as `invalid` (so its revision is known)
 * and otherwise ignored.
 */
import { decodeJson, encodeJson } from '../core/context.js';
import { decodeName, encodeName, type Keyspace } from '../core/keys.js';
import type { KeyValue } from '../store/port.js';
import { checkHostname, checkMax } from './options.js';
import type { HostNamespaceOptions } from './types.js';

/** The stored candidacy value. */
export interface CandidacyRecord {
  hostname: string;
  nodeId: string;
  options: HostNamespaceOptions;
  data: unknown;
  labels: Record<string, string>;
  opId: string;
}

/** The stored decision value. */
export interface DecisionRecord {
  hosts: string[];
  order: string[];
  strategy: string;
  max: number;
  leader: string;
  leaderToken: number;
  decidedAt: number;
  opId: string;
}

/** One cached key under `hosts/`, decoded. */
export type HostsEntry =
  | { kind: 'candidate'; namespace: string; hostname: string; record: CandidacyRecord }
  | { kind: 'decision'; namespace: string; record: DecisionRecord }
  | { kind: 'invalid'; namespace: string; of: 'candidate' | 'decision'; reason: string }
  | { kind: 'foreign' };

/** Keys of the hosts module in one Rota namespace. */
export class HostKeys {
  /** `rota/<ns>/hosts/`: both kinds of keys, watched as one prefix so they are read at one revision. */
  readonly root: string;
  readonly candidatesRoot: string;
  readonly decisionsRoot: string;

  constructor(readonly keys: Keyspace) {
    this.root = keys.prefix('hosts');
    this.candidatesRoot = keys.prefix('hosts', 'candidates');
    this.decisionsRoot = keys.prefix('hosts', 'decisions');
  }

  candidate(namespace: string, hostname: string): string {
    return this.keys.key('hosts', 'candidates', encodeName(namespace), encodeName(hostname));
  }

  candidates(namespace: string): string {
    return this.keys.prefix('hosts', 'candidates', encodeName(namespace));
  }

  decision(namespace: string): string {
    return this.keys.key('hosts', 'decisions', encodeName(namespace));
  }

  member(nodeId: string): string {
    return this.keys.key('cluster', 'members', encodeName(nodeId));
  }

  /** Decode any key under {@link root}. Never throws: a bad value becomes `invalid`. */
  decode(kv: KeyValue): HostsEntry {
    let parts: string[];
    let kind: 'candidate' | 'decision';
    try {
      if (kv.key.startsWith(this.candidatesRoot)) {
        parts = kv.key.slice(this.candidatesRoot.length).split('/').map(decodeName);
        if (parts.length !== 2) return { kind: 'foreign' };
        kind = 'candidate';
      } else if (kv.key.startsWith(this.decisionsRoot)) {
        parts = kv.key.slice(this.decisionsRoot.length).split('/').map(decodeName);
        if (parts.length !== 1) return { kind: 'foreign' };
        kind = 'decision';
      } else return { kind: 'foreign' };
    } catch {
      return { kind: 'foreign' };
    }
    const namespace = parts[0] as string;
    try {
      const value = decodeJson<unknown>(kv.value);
      if (kind === 'candidate') {
        const hostname = parts[1] as string;
        return { kind, namespace, hostname, record: parseCandidacy(value, hostname) };
      }
      return { kind, namespace, record: parseDecision(value) };
    } catch (err) {
      return {
        kind: 'invalid',
        namespace,
        of: kind,
        reason: err instanceof Error ? err.message : String(err),
      };
    }
  }
}

function fail(message: string): never {
  throw new Error(message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringArray(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
    fail(`${what} must be an array of strings`);
  return v as string[];
}

function storedMax(v: unknown): number {
  return v === null ? Number.POSITIVE_INFINITY : checkMax('max', v);
}

/** Parse a stored namespace-options object. */
function parseOptions(v: unknown): HostNamespaceOptions {
  if (!isObject(v)) fail('options must be an object');
  if (typeof v.strategy !== 'string' || v.strategy.length === 0) fail('options.strategy must be a string');
  return {
    strategy: v.strategy,
    max: storedMax(v.max),
    hostsFilter: stringArray(v.hostsFilter ?? [], 'options.hostsFilter'),
  };
}

/** Validate a stored candidacy value (throws a plain Error describing the problem). */
export function parseCandidacy(v: unknown, hostname: string): CandidacyRecord {
  if (!isObject(v)) fail('a candidacy must be a JSON object');
  if (v.hostname !== hostname) fail(`hostname ${JSON.stringify(v.hostname)} does not match its key`);
  checkHostname('hostname', hostname);
  if (typeof v.nodeId !== 'string' || v.nodeId.length === 0) fail('nodeId must be a non-empty string');
  const labels = v.labels ?? {};
  if (!isObject(labels) || !Object.values(labels).every((x) => typeof x === 'string')) {
    fail('labels must be an object of strings');
  }
  return {
    hostname,
    nodeId: v.nodeId,
    options: parseOptions(v.options),
    data: v.data ?? null,
    labels: labels as Record<string, string>,
    opId: typeof v.opId === 'string' ? v.opId : '',
  };
}

/** Validate a stored decision value. */
export function parseDecision(v: unknown): DecisionRecord {
  if (!isObject(v)) fail('a decision must be a JSON object');
  const hosts = stringArray(v.hosts, 'hosts');
  const order = stringArray(v.order, 'order');
  return {
    hosts,
    order,
    strategy: typeof v.strategy === 'string' ? v.strategy : '',
    max: v.max === undefined ? Number.POSITIVE_INFINITY : storedMax(v.max),
    leader: typeof v.leader === 'string' ? v.leader : '',
    leaderToken: typeof v.leaderToken === 'number' ? v.leaderToken : 0,
    decidedAt: typeof v.decidedAt === 'number' ? v.decidedAt : 0,
    opId: typeof v.opId === 'string' ? v.opId : '',
  };
}

function jsonMax(max: number): number | null {
  return Number.isFinite(max) ? max : null;
}

/** Bytes of a candidacy value. */
export function encodeCandidacy(r: CandidacyRecord): Uint8Array {
  return encodeJson({
    hostname: r.hostname,
    nodeId: r.nodeId,
    options: {
      strategy: r.options.strategy,
      max: jsonMax(r.options.max),
      hostsFilter: r.options.hostsFilter,
    },
    data: r.data,
    labels: r.labels,
    opId: r.opId,
  });
}

/** Bytes of a decision value. */
export function encodeDecision(r: DecisionRecord): Uint8Array {
  return encodeJson({ ...r, max: jsonMax(r.max) });
}

/** The part of a candidacy that matters for equality (everything but the opId). */
export function candidacyIdentity(r: CandidacyRecord): string {
  return JSON.stringify([
    r.hostname,
    r.nodeId,
    r.options.strategy,
    jsonMax(r.options.max),
    r.options.hostsFilter,
    r.data,
    Object.entries(r.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  ]);
}

/** Same options (strategy, max, filter)? */
export function sameOptions(a: HostNamespaceOptions, b: HostNamespaceOptions): boolean {
  return (
    a.strategy === b.strategy &&
    a.max === b.max &&
    a.hostsFilter.length === b.hostsFilter.length &&
    a.hostsFilter.every((h, i) => h === b.hostsFilter[i])
  );
}

export function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Compare strings by UTF-16 code units (the order `alpha` and `hosts` use). */
export function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
