/**
 * `rota/testing`: helpers for testing code that uses Rota, and Rota's own scenario tests.
 *
 * `createTestCluster({ nodes, store })` connects several nodes to one store, each through a
 * {@link FaultyStore}, so a test can `kill`, `partition`/`heal`, `skew` a node, or inject store
 * errors. With the default memory store and `clock: 'manual'`, every node and the store share one
 * {@link ManualClock}: `advance(ms)` moves time for all of them.
 */
import { Rota, type RotaOptions } from '../rota.js';
import { MemoryEngine } from '../store/memory/index.js';
import type { Store } from '../store/port.js';
import { type Clock, ManualClock, systemClock, type TimerHandle } from '../time/clock.js';
import { FaultyStore } from './faulty-store.js';

export { type FakeElector, type FakeLockCall, type FakeLocker, fakeElector, fakeLocker } from './fakes.js';
export { FaultyStore } from './faulty-store.js';

/** A clock whose wall time can be shifted at any moment (timers and monotonic time are unaffected). */
export class SkewableClock implements Clock {
  offset = 0;
  constructor(readonly base: Clock) {}
  now(): number {
    return this.base.now() + this.offset;
  }
  monotonic(): number {
    return this.base.monotonic();
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.base.setTimeout(fn, ms);
  }
  clearTimeout(handle: TimerHandle | undefined): void {
    this.base.clearTimeout(handle);
  }
}

export interface TestNode {
  readonly rota: Rota;
  readonly faults: FaultyStore;
  readonly clock: SkewableClock;
  readonly nodeId: string;
}

export interface TestClusterOptions {
  /** Number of nodes to connect now (default 3). */
  nodes?: number;
  /**
   * Where the nodes' data lives: `'memory'` (default; one shared engine), or a function opening a
   * new client on a shared store for each node (used for all-stores scenarios).
   */
  store?: 'memory' | (() => Promise<Store>);
  /** `'manual'` (default with the memory store): one ManualClock for the store and every node. */
  clock?: 'manual' | 'real';
  /** Options applied to every node (sessionTtl, namespace, ...). */
  nodeOptions?: Omit<RotaOptions, 'store' | 'clock' | 'nodeId'>;
}

export class TestCluster {
  readonly nodes: TestNode[] = [];
  #counter = 0;

  constructor(
    readonly clock: ManualClock | null,
    private readonly openStore: () => Promise<Store>,
    private readonly baseClock: Clock,
    private readonly nodeOptions: TestClusterOptions['nodeOptions'],
  ) {}

  /** Connect one more node (`nodeId` defaults to `n<k>`). */
  async addNode(options: Omit<RotaOptions, 'store' | 'clock'> = {}): Promise<TestNode> {
    const nodeId = options.nodeId ?? `n${++this.#counter}`;
    const faults = new FaultyStore(await this.openStore());
    const clock = new SkewableClock(this.baseClock);
    const rota = await Rota.connect({ ...this.nodeOptions, ...options, nodeId, store: faults, clock });
    const node = { rota, faults, clock, nodeId };
    this.nodes.push(node);
    return node;
  }

  node(nodeId: string): TestNode {
    const node = this.nodes.find((n) => n.nodeId === nodeId);
    if (!node) throw new Error(`no test node ${nodeId}`);
    return node;
  }

  /** Freeze a node: its store traffic stops for good, nothing is cleaned up. */
  kill(node: TestNode | string): void {
    (typeof node === 'string' ? this.node(node) : node).faults.kill();
  }

  /** Cut a node off the store until `heal`. */
  partition(node: TestNode | string): void {
    (typeof node === 'string' ? this.node(node) : node).faults.partition();
  }

  heal(node: TestNode | string): void {
    (typeof node === 'string' ? this.node(node) : node).faults.heal();
  }

  /** Shift a node's wall clock by `ms` (store time and timers are unaffected). */
  skew(node: TestNode | string, ms: number): void {
    (typeof node === 'string' ? this.node(node) : node).clock.offset = ms;
  }

  /** Make the next `count` calls of `op` from `node` fail as unavailable. */
  injectStoreError(node: TestNode | string, op: keyof Store | '*', count = 1): void {
    (typeof node === 'string' ? this.node(node) : node).faults.injectError(op, count);
  }

  /** Cut every node off the store for `ms` (of the cluster clock), then heal them. */
  async storeOutage(ms: number): Promise<void> {
    for (const n of this.nodes) n.faults.partition();
    if (this.clock) await this.clock.advance(ms);
    else await new Promise((r) => setTimeout(r, ms));
    for (const n of this.nodes) n.faults.heal();
  }

  /** Advance the shared manual clock (no-op wait on a real clock). */
  async advance(ms: number): Promise<void> {
    if (this.clock) await this.clock.advance(ms);
    else await new Promise((r) => setTimeout(r, ms));
  }

  /**
   * Close every node. A killed node's store traffic stays cut (nothing of it reaches the store, as
   * with a crashed process): its pending calls fail locally so its timers stop.
   */
  async close(): Promise<void> {
    let settled = false;
    const closing = Promise.all(
      this.nodes.map((n) => {
        if (n.faults.mode === 'killed') n.faults.dispose();
        return n.rota.close().catch(() => undefined);
      }),
    ).finally(() => {
      settled = true;
    });
    // On a manual clock, time must keep passing while nodes close (retry backoffs, stop timeouts),
    // as it would in real time: advance it in small steps until every close has settled.
    for (let step = 0; this.clock && !settled && step < 1200; step++) await this.clock.advance(100);
    await closing;
  }
}

/** Connect `nodes` nodes to one store through fault-injecting wrappers. */
export async function createTestCluster(options: TestClusterOptions = {}): Promise<TestCluster> {
  const useManual = options.clock
    ? options.clock === 'manual'
    : options.store === undefined || options.store === 'memory';
  const manual = useManual ? new ManualClock() : null;
  const base: Clock = manual ?? systemClock;
  let open: () => Promise<Store>;
  if (options.store === undefined || options.store === 'memory') {
    const engine = new MemoryEngine({ clock: base });
    open = async () => engine.client();
  } else open = options.store;
  const cluster = new TestCluster(manual, open, base, options.nodeOptions);
  const count = options.nodes ?? 3;
  for (let i = 0; i < count; i++) await cluster.addNode();
  return cluster;
}

export { ManualClock } from '../time/clock.js';
export { advanceUntil, nextRunEnd } from './schedules.js';
