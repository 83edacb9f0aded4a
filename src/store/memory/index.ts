/**
 * The memory store: the whole port in one process. Several `MemoryStore` clients can share one
 * {@link MemoryEngine} (that is how tests run many nodes against one "server"); closing a client
 * ends its own watches only, like a dropped connection. Store time is the engine's clock, so a
 * {@link ManualClock} drives lease expiry and due times in tests.
 */
import { type Clock, systemClock } from '../../time/clock.js';
import { Channel } from '../../util/channel.js';
import type { Store, StoreCapabilities, WatchEvent } from '../port.js';
import { withValidation } from '../validating-store.js';
import { KvEngine } from './kv-engine.js';
import { QueueEngine } from './queue-engine.js';

export interface MemoryEngineOptions {
  /** Store clock (default: the system clock). */
  clock?: Clock;
  /** Watch history kept for resuming, in events (default 100 000). */
  historyLimit?: number;
}

/** The shared "server" of memory stores. */
export class MemoryEngine {
  readonly clock: Clock;
  readonly kv: KvEngine;
  readonly queue: QueueEngine;

  constructor(options: MemoryEngineOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.kv = new KvEngine({ clock: this.clock, historyLimit: options.historyLimit });
    this.queue = new QueueEngine(this.clock);
  }

  /** Open a new client on this engine, validated at the API edge. */
  client(): Store {
    return withValidation(new MemoryClient(this));
  }
}

export const MEMORY_CAPABILITIES: StoreCapabilities = Object.freeze({
  name: 'memory',
  serverClock: false,
  multiProcess: false,
  persistent: false,
  maxKeyBytes: 4096,
  maxValueBytes: 8 * 1024 * 1024,
  leaseGranularityMs: 1000,
  queueThroughput: 'high',
});

class MemoryClient implements Store {
  readonly capabilities = MEMORY_CAPABILITIES;
  readonly #engine: MemoryEngine;
  readonly #channels = new Set<Channel<WatchEvent>>();
  readonly #unsubscribes = new Set<() => void>();

  constructor(engine: MemoryEngine) {
    this.#engine = engine;
  }

  async now() {
    return this.#engine.clock.now();
  }
  async get(key: string) {
    const kv = this.#engine.kv.get(key);
    return { kv, revision: this.#engine.kv.revision };
  }
  async range(prefix: string, options?: Parameters<Store['range']>[1]) {
    return this.#engine.kv.range(prefix, options);
  }
  async put(key: string, value: Uint8Array, options?: Parameters<Store['put']>[2]) {
    return this.#engine.kv.put(key, value, options?.lease);
  }
  async delete(key: string, options?: Parameters<Store['delete']>[1]) {
    return this.#engine.kv.delete(key, options?.prefix ?? false);
  }
  async txn(request: Parameters<Store['txn']>[0]) {
    return this.#engine.kv.txn(request);
  }
  async grant(ttl: number) {
    return this.#engine.kv.grant(ttl);
  }
  async keepAlive(id: string) {
    return this.#engine.kv.keepAlive(id);
  }
  async revoke(id: string) {
    return this.#engine.kv.revoke(id);
  }
  async leaseInfo(id: string) {
    return this.#engine.kv.leaseInfo(id);
  }
  watch(prefix: string, options: Parameters<Store['watch']>[1] = {}) {
    const kv = this.#engine.kv;
    const watcher = {
      prefix,
      deliver: (events: WatchEvent[]) => {
        for (const e of events) channel.push(e);
      },
    };
    const channel: Channel<WatchEvent> = new Channel<WatchEvent>({
      signal: options.signal,
      onClose: () => {
        kv.removeWatcher(watcher);
        this.#channels.delete(channel);
      },
    });
    if (channel.closed) return channel;
    this.#channels.add(channel);
    try {
      kv.addWatcher(watcher, options.fromRevision);
    } catch (err) {
      channel.fail(err);
    }
    return channel;
  }
  async compact(revision: number) {
    this.#engine.kv.compact(revision);
  }
  async status() {
    return { revision: this.#engine.kv.revision, compactRevision: this.#engine.kv.compactRevision };
  }

  async enqueue(items: Parameters<Store['enqueue']>[0]) {
    return this.#engine.queue.enqueue(items);
  }
  async claim(request: Parameters<Store['claim']>[0]) {
    return this.#engine.queue.claim(request);
  }
  async renew(entries: Parameters<Store['renew']>[0], leaseTtl: number) {
    return this.#engine.queue.renew(entries, leaseTtl);
  }
  async settle(ops: Parameters<Store['settle']>[0]) {
    return this.#engine.queue.settle(ops);
  }
  async getItem(id: string) {
    return this.#engine.queue.getItem(id);
  }
  async listItems(query: Parameters<Store['listItems']>[0]) {
    return this.#engine.queue.listItems(query);
  }
  async countItems(queue?: string) {
    return this.#engine.queue.countItems(queue);
  }
  async changes(query: Parameters<Store['changes']>[0]) {
    return this.#engine.queue.changes(query);
  }
  async sweep(options?: Parameters<Store['sweep']>[0]) {
    return this.#engine.queue.sweep(options);
  }
  subscribe(queue: string, listener: () => void) {
    const off = this.#engine.queue.subscribe(queue, listener);
    const unsubscribe = () => {
      off();
      this.#unsubscribes.delete(unsubscribe);
    };
    this.#unsubscribes.add(unsubscribe);
    return unsubscribe;
  }
  async close() {
    for (const channel of [...this.#channels]) channel.end();
    for (const off of [...this.#unsubscribes]) off();
  }
}

const named = new Map<string, MemoryEngine>();

/**
 * Open a memory store. `memory:` gives a private engine; `memory:<name>` shares one engine per
 * name within the process (handy for several nodes in one test process).
 */
export function openMemoryStore(name = '', options: MemoryEngineOptions = {}): Store {
  if (name === '') return new MemoryEngine(options).client();
  let engine = named.get(name);
  if (!engine) {
    engine = new MemoryEngine(options);
    named.set(name, engine);
  }
  return engine.client();
}
