/**
 * The node's view of one pool: a watch-fed cache of the whole `pool/<P>/` prefix (the informer),
 * indexed by record kind. Queries, the reconciler and every waiter read it; changes are reported to
 * one listener in revision order.
 */
import type { RotaContext } from '../core/context.js';
import { type CacheChange, KvCache } from '../core/kv-cache.js';
import type { Logger } from '../core/logger.js';
import type { KeyValue } from '../store/port.js';
import type {
  InboxRecord,
  JobRecord,
  MetaRecord,
  NodeRecord,
  OwnerRecord,
  PoolEntry,
  PoolKeys,
  ProducerRecord,
  RetiredRecord,
  ShutdownRecord,
  WorkerRecord,
} from './records.js';

/** A cached record with its key metadata. */
export interface Cached<T> {
  readonly kv: KeyValue;
  readonly value: T;
}

/** One applied change: the decoded entry before and after (undefined when absent). */
export interface PoolChange {
  readonly type: 'put' | 'delete' | 'sync';
  readonly revision: number;
  readonly prev: PoolEntry | undefined;
  readonly next: PoolEntry | undefined;
  readonly prevKv: KeyValue | undefined;
  readonly kv: KeyValue | undefined;
}

export class PoolState {
  readonly cache: KvCache<PoolEntry>;
  readonly nodes = new Map<string, Cached<NodeRecord>>();
  readonly workers = new Map<string, Cached<WorkerRecord>>();
  readonly jobs = new Map<string, Cached<JobRecord>>();
  readonly owners = new Map<string, Cached<OwnerRecord>>();
  /** Job key → inbox id → entry. */
  readonly inbox = new Map<string, Map<string, Cached<InboxRecord>>>();
  /** Producer name → job key → record. */
  readonly producers = new Map<string, Map<string, Cached<ProducerRecord>>>();
  meta: Cached<MetaRecord> | undefined;
  /** Admission shards by shard id. */
  readonly retired = new Map<string, Cached<RetiredRecord>>();
  shutdown: Cached<ShutdownRecord> | undefined;

  constructor(
    ctx: RotaContext,
    readonly keys: PoolKeys,
    logger: Logger,
    private readonly listener: (change: PoolChange) => void,
  ) {
    this.cache = new KvCache<PoolEntry>({
      store: ctx.store,
      prefix: keys.prefix,
      decode: (kv) => keys.decode(kv),
      clock: ctx.clock,
      random: ctx.random,
      logger,
      onChange: (change) => this.#apply(change),
      onMalformed: (kv) => logger.warn('ignoring a malformed pool record', { key: kv.key }),
    });
  }

  /** Start listing and watching until `signal` aborts; resolves after the first listing. */
  start(signal: AbortSignal): Promise<void> {
    return this.cache.start(signal);
  }

  get revision(): number {
    return this.cache.revision;
  }

  /** Resolves once the cache applied `revision` (or `signal` aborts). */
  waitFor(revision: number, signal?: AbortSignal): Promise<void> {
    return this.cache.waitFor(revision, signal);
  }

  #apply(change: CacheChange<PoolEntry>): void {
    if (change.type === 'sync') {
      this.#rebuild();
      this.listener({
        type: 'sync',
        revision: change.revision,
        prev: undefined,
        next: undefined,
        prevKv: undefined,
        kv: undefined,
      });
      return;
    }
    const prev = change.prev;
    if (prev) this.#remove(prev.value);
    if (change.type === 'put') this.#add(change.entry.value, change.entry.kv);
    this.listener({
      type: change.type,
      revision: change.revision,
      prev: prev?.value,
      next: change.type === 'put' ? change.entry.value : undefined,
      prevKv: prev?.kv,
      kv: change.type === 'put' ? change.entry.kv : undefined,
    });
  }

  #rebuild(): void {
    this.nodes.clear();
    this.workers.clear();
    this.jobs.clear();
    this.owners.clear();
    this.inbox.clear();
    this.producers.clear();
    this.retired.clear();
    this.meta = undefined;
    this.shutdown = undefined;
    for (const { kv, value } of this.cache.entries.values()) this.#add(value, kv);
  }

  #add(entry: PoolEntry, kv: KeyValue): void {
    switch (entry.kind) {
      case 'node':
        this.nodes.set(entry.nodeId, { kv, value: entry.value });
        break;
      case 'worker':
        this.workers.set(entry.workerId, { kv, value: entry.value });
        break;
      case 'job':
        this.jobs.set(entry.key, { kv, value: entry.value });
        break;
      case 'owner':
        this.owners.set(entry.key, { kv, value: entry.value });
        break;
      case 'inbox': {
        let box = this.inbox.get(entry.key);
        if (!box) {
          box = new Map();
          this.inbox.set(entry.key, box);
        }
        box.set(entry.id, { kv, value: entry.value });
        break;
      }
      case 'producer': {
        let set = this.producers.get(entry.producer);
        if (!set) {
          set = new Map();
          this.producers.set(entry.producer, set);
        }
        set.set(entry.key, { kv, value: entry.value });
        break;
      }
      case 'meta':
        this.meta = { kv, value: entry.value };
        break;
      case 'retired':
        this.retired.set(entry.shard, { kv, value: entry.value });
        break;
      case 'shutdown':
        this.shutdown = { kv, value: entry.value };
        break;
    }
  }

  #remove(entry: PoolEntry): void {
    switch (entry.kind) {
      case 'node':
        this.nodes.delete(entry.nodeId);
        break;
      case 'worker':
        this.workers.delete(entry.workerId);
        break;
      case 'job':
        this.jobs.delete(entry.key);
        break;
      case 'owner':
        this.owners.delete(entry.key);
        break;
      case 'inbox': {
        const box = this.inbox.get(entry.key);
        box?.delete(entry.id);
        if (box?.size === 0) this.inbox.delete(entry.key);
        break;
      }
      case 'producer': {
        const set = this.producers.get(entry.producer);
        set?.delete(entry.key);
        if (set?.size === 0) this.producers.delete(entry.producer);
        break;
      }
      case 'meta':
        this.meta = undefined;
        break;
      case 'retired':
        this.retired.delete(entry.shard);
        break;
      case 'shutdown':
        this.shutdown = undefined;
        break;
    }
  }

  /** Producer record keys naming job `key` (to delete with the job). */
  producerKeysOf(key: string): string[] {
    const out: string[] = [];
    for (const [name, set] of this.producers) if (set.has(key)) out.push(this.keys.producer(name, key));
    return out;
  }
}
