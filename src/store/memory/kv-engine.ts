/**
 * The in-memory KV engine: keys with revisions, transactions, leases expiring by the engine's
 * clock, a bounded history for resumable watches. Synchronous inside: JavaScript's single thread
 * makes every method atomic, which is what the port's txn semantics need.
 */
import { CompactedError, InvalidArgumentError, LeaseNotFoundError } from '../../errors.js';
import type { Clock, TimerHandle } from '../../time/clock.js';
import { compareKeys } from '../keys.js';
import type {
  Compare,
  DeleteResult,
  KeyValue,
  Lease,
  LeaseInfo,
  PutResult,
  RangeOptions,
  RangeResult,
  TxnOp,
  TxnOpResult,
  TxnRequest,
  TxnResult,
  WatchEvent,
} from '../port.js';

const EMPTY = new Uint8Array(0);

interface LeaseRecord {
  id: string;
  ttl: number;
  expiresAt: number;
  keys: Set<string>;
}

/** A live watcher: receives every committed event under its prefix. */
export interface KvWatcher {
  prefix: string;
  deliver(events: WatchEvent[]): void;
}

export interface KvEngineOptions {
  clock: Clock;
  /** Events kept for resuming watches; older ones are compacted away (default 100 000). */
  historyLimit?: number;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function compareNumber(op: Compare['op'], actual: number, expected: number): boolean {
  switch (op) {
    case '==':
      return actual === expected;
    case '!=':
      return actual !== expected;
    case '<':
      return actual < expected;
    case '>':
      return actual > expected;
  }
}

export class KvEngine {
  readonly clock: Clock;
  #kv = new Map<string, KeyValue>();
  #sorted: string[] = [];
  #revision = 1;
  #compactRevision = 0;
  #history: WatchEvent[] = [];
  #historyLimit: number;
  #leases = new Map<string, LeaseRecord>();
  #leaseCounter = 0;
  #leaseTimer: TimerHandle | undefined;
  #leaseTimerAt = Number.POSITIVE_INFINITY;
  #watchers = new Set<KvWatcher>();
  #pending: WatchEvent[] = [];

  constructor(options: KvEngineOptions) {
    this.clock = options.clock;
    this.#historyLimit = options.historyLimit ?? 100_000;
  }

  get revision(): number {
    return this.#revision;
  }

  get compactRevision(): number {
    return this.#compactRevision;
  }

  // ---------------------------------------------------------------------------------------------
  // Reads

  get(key: string): KeyValue | null {
    this.expireLeases();
    return this.#kv.get(key) ?? null;
  }

  range(prefix: string, options: RangeOptions = {}): RangeResult {
    this.expireLeases();
    const { kvs, more } = this.#range(prefix, options.limit, options.startAfter);
    return { kvs, more, revision: this.#revision };
  }

  #lowerBound(key: string): number {
    let lo = 0;
    let hi = this.#sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareKeys(this.#sorted[mid] as string, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #range(prefix: string, limit?: number, startAfter?: string): { kvs: KeyValue[]; more: boolean } {
    let i = this.#lowerBound(prefix);
    if (startAfter !== undefined && compareKeys(startAfter, prefix) >= 0) {
      i = this.#lowerBound(startAfter);
      if (this.#sorted[i] === startAfter) i++;
    }
    const kvs: KeyValue[] = [];
    for (; i < this.#sorted.length; i++) {
      const key = this.#sorted[i] as string;
      if (!key.startsWith(prefix)) break;
      if (limit !== undefined && kvs.length >= limit) return { kvs, more: true };
      kvs.push(this.#kv.get(key) as KeyValue);
    }
    return { kvs, more: false };
  }

  // ---------------------------------------------------------------------------------------------
  // Writes

  put(key: string, value: Uint8Array, lease?: string): PutResult {
    return this.#commit(() => {
      const prev = this.#put(key, value, lease);
      return { revision: this.#revision + 1, prev };
    });
  }

  delete(key: string, prefix = false): DeleteResult {
    return this.#commit(() => {
      const prev = this.#delete(key, prefix);
      return { revision: prev.length > 0 ? this.#revision + 1 : this.#revision, deleted: prev.length, prev };
    });
  }

  txn(request: TxnRequest): TxnResult {
    return this.#commit(() => {
      const succeeded = request.compare.every((c) => this.#check(c));
      const ops = succeeded ? request.success : (request.failure ?? []);
      // Leases must exist before anything is written, so a failed op never leaves a partial txn.
      for (const op of ops) {
        if (op.type === 'put' && op.lease !== undefined && !this.#leases.has(op.lease)) {
          throw new LeaseNotFoundError(`lease ${op.lease} not found`, { detail: { lease: op.lease } });
        }
      }
      const results: TxnOpResult[] = ops.map((op) => this.#apply(op));
      const wrote = this.#pending.length > 0;
      return { succeeded, revision: wrote ? this.#revision + 1 : this.#revision, results };
    });
  }

  #check(c: Compare): boolean {
    const kv = this.#kv.get(c.key);
    if (c.target === 'value') {
      if (!kv) return c.op === '!=';
      const eq = bytesEqual(kv.value, c.value);
      return c.op === '==' ? eq : !eq;
    }
    const actual = kv ? kv[c.target] : 0;
    return compareNumber(c.op, actual, c.value);
  }

  #apply(op: TxnOp): TxnOpResult {
    switch (op.type) {
      case 'get':
        return { type: 'get', kv: this.#kv.get(op.key) ?? null };
      case 'range': {
        const { kvs, more } = this.#range(op.prefix, op.limit);
        return { type: 'range', kvs, more };
      }
      case 'put':
        return { type: 'put', prev: this.#put(op.key, op.value, op.lease) };
      case 'delete': {
        const prev = this.#delete(op.key, op.prefix ?? false);
        return { type: 'delete', deleted: prev.length, prev };
      }
    }
  }

  /** Run `fn` as one atomic write at revision+1; publish its events after it returns. */
  #commit<R>(fn: () => R): R {
    this.expireLeases();
    this.#pending = [];
    let out: R;
    try {
      out = fn();
    } catch (err) {
      this.#pending = [];
      throw err;
    }
    if (this.#pending.length > 0) {
      this.#revision += 1;
      this.#publish(this.#pending);
    }
    this.#pending = [];
    return out;
  }

  #put(key: string, value: Uint8Array, lease?: string): KeyValue | null {
    if (lease !== undefined && !this.#leases.has(lease)) {
      throw new LeaseNotFoundError(`lease ${lease} not found`, { detail: { lease } });
    }
    const rev = this.#revision + 1;
    const prev = this.#kv.get(key) ?? null;
    if (prev?.lease && prev.lease !== lease) this.#leases.get(prev.lease)?.keys.delete(key);
    const kv: KeyValue = {
      key,
      value: value.slice(),
      createRevision: prev ? prev.createRevision : rev,
      modRevision: rev,
      version: prev ? prev.version + 1 : 1,
      lease: lease ?? null,
    };
    if (!prev) this.#sorted.splice(this.#lowerBound(key), 0, key);
    this.#kv.set(key, kv);
    if (lease !== undefined) this.#leases.get(lease)?.keys.add(key);
    this.#pending.push({ type: 'put', kv, revision: rev });
    return prev;
  }

  #delete(key: string, prefix: boolean): KeyValue[] {
    const victims = prefix ? this.#range(key).kvs : this.#kv.has(key) ? [this.#kv.get(key) as KeyValue] : [];
    const rev = this.#revision + 1;
    for (const kv of victims) {
      this.#kv.delete(kv.key);
      const i = this.#lowerBound(kv.key);
      if (this.#sorted[i] === kv.key) this.#sorted.splice(i, 1);
      if (kv.lease) this.#leases.get(kv.lease)?.keys.delete(kv.key);
      this.#pending.push({
        type: 'delete',
        kv: { key: kv.key, value: EMPTY, createRevision: 0, modRevision: rev, version: 0, lease: null },
        revision: rev,
      });
    }
    return victims;
  }

  #publish(events: WatchEvent[]): void {
    for (const e of events) this.#history.push(e);
    if (this.#history.length > this.#historyLimit) {
      const drop = this.#history.length - this.#historyLimit;
      // Compact whole revisions only, so a resumed watch never sees half a txn.
      let cut = drop;
      const lastDropped = this.#history[cut - 1]?.revision ?? 0;
      while (cut < this.#history.length && this.#history[cut]?.revision === lastDropped) cut++;
      this.#history.splice(0, cut);
      this.#compactRevision = Math.max(this.#compactRevision, lastDropped);
    }
    for (const w of this.#watchers) {
      const mine = events.filter((e) => e.kv.key.startsWith(w.prefix));
      if (mine.length > 0) w.deliver(mine);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Leases

  grant(ttlMs: number): Lease {
    this.expireLeases();
    const ttl = Math.ceil(ttlMs / 1000) * 1000;
    const id = (++this.#leaseCounter).toString(16).padStart(8, '0');
    this.#leases.set(id, { id, ttl, expiresAt: this.clock.now() + ttl, keys: new Set() });
    this.#armLeaseTimer();
    return { id, ttl };
  }

  keepAlive(id: string): Lease {
    this.expireLeases();
    const lease = this.#leases.get(id);
    if (!lease)
      throw new LeaseNotFoundError(`lease ${id} not found (expired or revoked)`, { detail: { lease: id } });
    lease.expiresAt = this.clock.now() + lease.ttl;
    this.#armLeaseTimer();
    return { id, ttl: lease.ttl };
  }

  revoke(id: string): boolean {
    this.expireLeases();
    const lease = this.#leases.get(id);
    if (!lease) return false;
    this.#dropLease(lease);
    return true;
  }

  leaseInfo(id: string): LeaseInfo | null {
    this.expireLeases();
    const lease = this.#leases.get(id);
    if (!lease) return null;
    const keys = [...lease.keys].sort(compareKeys);
    return { id, ttl: lease.ttl, remaining: Math.max(0, lease.expiresAt - this.clock.now()), keys };
  }

  #dropLease(lease: LeaseRecord): void {
    this.#leases.delete(lease.id);
    const keys = [...lease.keys];
    if (keys.length === 0) return;
    // Every key of one lease goes in one revision, like etcd.
    this.#pending = [];
    for (const key of keys) this.#delete(key, false);
    if (this.#pending.length > 0) {
      this.#revision += 1;
      this.#publish(this.#pending);
    }
    this.#pending = [];
  }

  /** Delete every lease whose expiry has passed by the engine clock (with delete events). */
  expireLeases(): void {
    const now = this.clock.now();
    if (now < this.#leaseTimerAt && this.#leaseTimer !== undefined) return;
    for (const lease of [...this.#leases.values()]) {
      if (lease.expiresAt <= now) this.#dropLease(lease);
    }
    this.#armLeaseTimer();
  }

  #armLeaseTimer(): void {
    let earliest = Number.POSITIVE_INFINITY;
    for (const lease of this.#leases.values()) earliest = Math.min(earliest, lease.expiresAt);
    if (earliest === this.#leaseTimerAt && this.#leaseTimer !== undefined) return;
    this.clock.clearTimeout(this.#leaseTimer);
    this.#leaseTimer = undefined;
    this.#leaseTimerAt = earliest;
    if (earliest === Number.POSITIVE_INFINITY) return;
    this.#leaseTimer = this.clock.setTimeout(() => {
      this.#leaseTimer = undefined;
      this.#leaseTimerAt = Number.POSITIVE_INFINITY;
      this.expireLeases();
    }, earliest - this.clock.now());
    // Expiry is bookkeeping of an in-process store that dies with the process: it must not keep
    // the process alive once every node on it has closed.
    (this.#leaseTimer as { unref?: () => void } | undefined)?.unref?.();
  }

  // ---------------------------------------------------------------------------------------------
  // Watch and history

  /**
   * Register a watcher, first replaying history from `fromRevision`. Replay and registration
   * happen in one synchronous step, so no event falls between them.
   */
  addWatcher(watcher: KvWatcher, fromRevision?: number): void {
    this.expireLeases();
    if (fromRevision !== undefined) {
      if (fromRevision <= this.#compactRevision) {
        throw new CompactedError(
          `revision ${fromRevision} was compacted (compact revision ${this.#compactRevision})`,
          {
            detail: { revision: fromRevision, compactRevision: this.#compactRevision },
          },
        );
      }
      const replay = this.#history.filter(
        (e) => e.revision >= fromRevision && e.kv.key.startsWith(watcher.prefix),
      );
      if (replay.length > 0) watcher.deliver(replay);
    }
    this.#watchers.add(watcher);
  }

  removeWatcher(watcher: KvWatcher): void {
    this.#watchers.delete(watcher);
  }

  compact(revision: number): void {
    if (revision > this.#revision) {
      throw new InvalidArgumentError(
        `cannot compact revision ${revision}: the store is at ${this.#revision}`,
        {
          detail: { field: 'revision' },
        },
      );
    }
    if (revision <= this.#compactRevision) return;
    this.#compactRevision = revision;
    let cut = 0;
    while (cut < this.#history.length && (this.#history[cut]?.revision ?? 0) <= revision) cut++;
    this.#history.splice(0, cut);
  }

  /** Stop the lease timer (the engine stays usable; timers re-arm on the next call). */
  dispose(): void {
    this.clock.clearTimeout(this.#leaseTimer);
    this.#leaseTimer = undefined;
    this.#leaseTimerAt = Number.POSITIVE_INFINITY;
  }
}
