/**
 * The pool's records (pool.md §2.1), all under `pool/<P>/`:
 *
 * | key | value | lease |
 * |---|---|---|
 * | `nodes/<nodeId>` | {@link NodeRecord} | the node's pool lease |
 * | `workers/<workerId>` | {@link WorkerRecord} | the node's pool lease |
 * | `jobs/<key>` | {@link JobRecord} | none (durable) |
 * | `owners/<key>` | {@link OwnerRecord}; token = createRevision | the owner node's pool lease |
 * | `inbox/<key>/<id>` | {@link InboxRecord} | a `notifyTtl` lease |
 * | `meta` | {@link MetaRecord} | none |
 * | `meta/retired/<shard>` | {@link RetiredRecord} (admission accounting, admission.ts) | none |
 * | `producers/<name>/<key>` | {@link ProducerRecord} | none |
 * | `shutdown` | {@link ShutdownRecord} | none |
 *
 * User names (pool, job key, producer) are percent-encoded into one key segment each.
 */
import { decodeJson } from '../core/context.js';
import { decodeName, encodeName, type Keyspace } from '../core/keys.js';
import type { KeyValue } from '../store/port.js';
import { retiredShard } from './admission.js';

export type JobState = 'active' | 'stopping' | 'failed';
export type OwnerState = 'starting' | 'running';
export type WorkerState = 'active' | 'draining';

/** A handler error as stored: stable code (or null) and message. */
export interface StoredError {
  code: string | null;
  message: string;
}

export interface NodeRecord {
  clientOnly: boolean;
  joinedAt: number;
}

export interface WorkerRecord {
  nodeId: string;
  createdAt: number;
  state: WorkerState;
}

export interface JobRecord {
  /** Base64 of the payload bytes, or null. */
  payload: string | null;
  createdAt: number;
  dispatchedBy: string;
  state: JobState;
  /** True once the job started at least once (later starts are requeues). */
  requeued: boolean;
  /** Consecutive failed starts of a requeued job. */
  startFailures: number;
  /** Added to the job's rank: bumped by every failed start and by a fallback acquisition. */
  rankOffset: number;
  /** Store time before which the job is not started again (backoff), or 0. */
  retryAt: number;
  /** The last start failure. */
  lastError: StoredError | null;
  /** Store time of the move to `failed`, or 0. */
  failedAt: number;
  /** The last failure of `stop` while `stopping` (a waiting `stopJob` rejects with it). */
  stopError: StoredError | null;
  /** Random id of the write that dispatched this incarnation. */
  opId: string;
}

export interface OwnerRecord {
  workerId: string;
  nodeId: string;
  state: OwnerState;
  opId: string;
}

export interface InboxRecord {
  /** Base64 payload or null. */
  payload: string | null;
  /** Node id of the sender. */
  from: string;
  /** createRevision of the job record the notification was sent to. */
  job: number;
  wantReply: boolean;
  /** Store time (estimate) after which the lease deletes the entry. */
  expiresAt: number;
  /** Written by the deliverer just before it deletes the entry. */
  reply?: { ok: true } | { ok: false; error: StoredError; unsupported?: boolean };
}

/** Admission counter: jobs ever admitted by `dispatch` (see admission.ts). */
export interface MetaRecord {
  admitted: number;
  opId: string;
}

/** One shard of the count of admitted jobs that left the never-started state. */
export interface RetiredRecord {
  count: number;
}

export interface ProducerRecord {
  at: number;
}

export interface ShutdownRecord {
  by: string;
  at: number;
}

/** One decoded key of the pool prefix. */
export type PoolEntry =
  | { kind: 'node'; nodeId: string; value: NodeRecord }
  | { kind: 'worker'; workerId: string; value: WorkerRecord }
  | { kind: 'job'; key: string; value: JobRecord }
  | { kind: 'owner'; key: string; value: OwnerRecord }
  | { kind: 'inbox'; key: string; id: string; value: InboxRecord }
  | { kind: 'meta'; value: MetaRecord }
  | { kind: 'retired'; shard: string; value: RetiredRecord }
  | { kind: 'producer'; producer: string; key: string; value: ProducerRecord }
  | { kind: 'shutdown'; value: ShutdownRecord };

/** Key builder of one pool. */
export class PoolKeys {
  /** `rota/<ns>/pool/<P>/` */
  readonly prefix: string;
  readonly meta: string;
  /** `meta/retired/` */
  readonly retiredPrefix: string;
  readonly shutdown: string;

  constructor(
    keys: Keyspace,
    readonly pool: string,
  ) {
    this.prefix = keys.prefix('pool', encodeName(pool));
    this.meta = `${this.prefix}meta`;
    this.retiredPrefix = `${this.prefix}meta/retired/`;
    this.shutdown = `${this.prefix}shutdown`;
  }

  node(nodeId: string): string {
    return `${this.prefix}nodes/${encodeName(nodeId)}`;
  }

  worker(workerId: string): string {
    return `${this.prefix}workers/${encodeName(workerId)}`;
  }

  job(key: string): string {
    return `${this.prefix}jobs/${encodeName(key)}`;
  }

  owner(key: string): string {
    return `${this.prefix}owners/${encodeName(key)}`;
  }

  inbox(key: string, id: string): string {
    return `${this.prefix}inbox/${encodeName(key)}/${encodeName(id)}`;
  }

  /** The admission shard of job `key`. */
  retired(key: string): string {
    return `${this.retiredPrefix}${retiredShard(key)}`;
  }

  producers(name: string): string {
    return `${this.prefix}producers/${encodeName(name)}/`;
  }

  producer(name: string, key: string): string {
    return `${this.producers(name)}${encodeName(key)}`;
  }

  /** Decode any key of the pool prefix; undefined for a malformed or foreign one. */
  decode(kv: KeyValue): PoolEntry | undefined {
    const rest = kv.key.slice(this.prefix.length).split('/');
    const [kind, a, b] = rest;
    const value = decodeJson<Record<string, unknown>>(kv.value);
    if (typeof value !== 'object' || value === null) return undefined;
    switch (kind) {
      case 'nodes':
        if (rest.length !== 2 || !a) return undefined;
        return { kind: 'node', nodeId: decodeName(a), value: value as unknown as NodeRecord };
      case 'workers':
        if (rest.length !== 2 || !a || typeof value.nodeId !== 'string') return undefined;
        return { kind: 'worker', workerId: decodeName(a), value: value as unknown as WorkerRecord };
      case 'jobs':
        if (rest.length !== 2 || !a || typeof value.state !== 'string') return undefined;
        return { kind: 'job', key: decodeName(a), value: value as unknown as JobRecord };
      case 'owners':
        if (rest.length !== 2 || !a || typeof value.workerId !== 'string') return undefined;
        return { kind: 'owner', key: decodeName(a), value: value as unknown as OwnerRecord };
      case 'inbox':
        if (rest.length !== 3 || !a || !b) return undefined;
        return {
          kind: 'inbox',
          key: decodeName(a),
          id: decodeName(b),
          value: value as unknown as InboxRecord,
        };
      case 'meta':
        if (rest.length === 3 && a === 'retired' && b) {
          if (typeof value.count !== 'number') return undefined;
          return { kind: 'retired', shard: b, value: value as unknown as RetiredRecord };
        }
        if (rest.length !== 1) return undefined;
        return { kind: 'meta', value: value as unknown as MetaRecord };
      case 'producers':
        if (rest.length !== 3 || !a || !b) return undefined;
        return {
          kind: 'producer',
          producer: decodeName(a),
          key: decodeName(b),
          value: value as unknown as ProducerRecord,
        };
      case 'shutdown':
        if (rest.length !== 1) return undefined;
        return { kind: 'shutdown', value: value as unknown as ShutdownRecord };
      default:
        return undefined;
    }
  }
}

/** Payload bytes → stored base64 (null for none or empty). */
export function encodePayload(payload: Uint8Array | null): string | null {
  if (payload === null || payload.length === 0) return null;
  return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('base64');
}

/** Stored base64 → a fresh copy of the payload bytes (null stays null). */
export function decodePayload(stored: string | null | undefined): Uint8Array | null {
  if (stored === null || stored === undefined) return null;
  return new Uint8Array(Buffer.from(stored, 'base64'));
}

/** The stored form of anything a handler threw. */
export function storedError(err: unknown): StoredError {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { code: typeof code === 'string' ? code : null, message: err.message };
  }
  return { code: null, message: String(err) };
}
