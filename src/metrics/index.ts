/**
 * Prometheus metrics of one Rota node (prom-client), served at `/metrics`.
 *
 * Gauges that describe the whole cluster (`rota_tasks{queue,state}`) are read from the store at
 * scrape time; everything else counts what this process saw: its module events (fire lateness,
 * skips, leader changes, lease trouble, pool rebalances and start failures) and the latency of its
 * own claim and settle calls, measured by {@link instrumentStore}. Scrape every node for the full
 * picture, as usual with Prometheus.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Rota } from '../rota.js';
import type { Store } from '../store/port.js';

/** Buckets in ms, from sub-millisecond store calls to minute-long lateness. */
const MS_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000];

/** Options of {@link RotaMetrics}. */
export interface MetricsOptions {
  /** Registry to register on. Default: a new one per `RotaMetrics`. */
  registry?: Registry;
  /** Also collect prom-client's process metrics (CPU, memory, event-loop lag). Default true. */
  processMetrics?: boolean;
}

/** The store-call histograms, created before the node so the store can be wrapped first. */
export class StoreMetrics {
  readonly claim: Histogram<'queue'>;
  readonly settle: Histogram<never>;

  constructor(readonly registry: Registry) {
    this.claim = new Histogram({
      name: 'rota_task_claim_duration_ms',
      help: 'Latency of store claim calls made by this process (ms).',
      labelNames: ['queue'],
      buckets: MS_BUCKETS,
      registers: [registry],
    });
    this.settle = new Histogram({
      name: 'rota_task_settle_duration_ms',
      help: 'Latency of store settle calls (complete, fail, retry, cancel batches) made by this process (ms).',
      buckets: MS_BUCKETS,
      registers: [registry],
    });
  }
}

/**
 * Wrap a store so its `claim` and `settle` calls are timed. Everything else passes through
 * untouched (the wrapper is a Proxy, so capabilities and every other method stay the store's own).
 */
export function instrumentStore(store: Store, metrics: StoreMetrics): Store {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'claim') {
        return async (req: Parameters<Store['claim']>[0]) => {
          const end = metrics.claim.startTimer({ queue: req.queue });
          try {
            return await target.claim(req);
          } finally {
            end();
          }
        };
      }
      if (prop === 'settle') {
        return async (ops: Parameters<Store['settle']>[0]) => {
          const end = metrics.settle.startTimer();
          try {
            return await target.settle(ops);
          } finally {
            end();
          }
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Every metric of a node. `close()` removes its event listeners. */
export class RotaMetrics {
  readonly registry: Registry;
  readonly store: StoreMetrics;
  readonly #offs: (() => void)[] = [];

  constructor(rota: Rota, options: MetricsOptions & { storeMetrics?: StoreMetrics } = {}) {
    this.registry = options.storeMetrics?.registry ?? options.registry ?? new Registry();
    const registers = [this.registry];
    this.store = options.storeMetrics ?? new StoreMetrics(this.registry);
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });

    new Gauge({
      name: 'rota_tasks',
      help: 'Tasks by queue and state, read from the store at scrape time (cluster-wide).',
      labelNames: ['queue', 'state'],
      registers,
      async collect() {
        if (rota.closed) return;
        const counts = await rota.tasks.counts();
        this.reset();
        for (const [queue, byState] of Object.entries(counts)) {
          for (const [state, n] of Object.entries(byState)) this.set({ queue, state }, n);
        }
      },
    });

    const stats = () => rota.tasks.stats as unknown as Record<string, number>;
    const fromStats = (name: string, help: string, field: string) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const v = stats()[field];
          if (typeof v === 'number') this.set(v);
        },
      });
    fromStats('rota_task_converge_runs_total', 'Converger passes run by this node.', 'runs');
    fromStats(
      'rota_task_converge_transitions_total',
      "Task transitions made by this node's converger.",
      'transitions',
    );
    fromStats('rota_task_converge_pruned_total', "Tasks pruned by this node's converger.", 'pruned');

    const taskEvents = new Counter({
      name: 'rota_task_events_total',
      help: 'Task lifecycle events seen by this process, by queue and event.',
      labelNames: ['queue', 'event'],
      registers,
    });
    for (const event of [
      'completed',
      'failed',
      'retrying',
      'cancelled',
      'dead-lettered',
      'timeout',
    ] as const) {
      this.#offs.push(
        rota.events.on(`task:${event}`, (e: { queue: string }) => taskEvents.inc({ queue: e.queue, event })),
      );
    }

    const lateness = new Histogram({
      name: 'rota_schedule_delay_ms',
      help: 'Schedule fire lateness: run start minus slot time (ms), for runs started by this process.',
      labelNames: ['name'],
      buckets: MS_BUCKETS,
      registers,
    });
    const runs = new Counter({
      name: 'rota_schedule_runs_total',
      help: 'Schedule runs ended on this process, by schedule and status.',
      labelNames: ['name', 'status'],
      registers,
    });
    const duration = new Histogram({
      name: 'rota_schedule_run_duration_ms',
      help: 'Duration of successful schedule runs on this process (ms).',
      labelNames: ['name'],
      buckets: MS_BUCKETS,
      registers,
    });
    const skipped = new Counter({
      name: 'rota_schedule_skipped_slots_total',
      help: 'Slots recorded as skipped by this process, by schedule and reason.',
      labelNames: ['name', 'reason'],
      registers,
    });
    this.#offs.push(
      rota.events.on('run:started', (e) => lateness.observe({ name: e.name }, Math.max(0, e.delayMs))),
      rota.events.on('run:completed', (e) => {
        runs.inc({ name: e.name, status: 'succeeded' });
        duration.observe({ name: e.name }, e.durationMs);
      }),
      rota.events.on('run:failed', (e) => runs.inc({ name: e.name, status: 'failed' })),
      rota.events.on('run:interrupted', (e) => runs.inc({ name: e.name, status: 'interrupted' })),
      rota.events.on('schedule:skipped', (e) => skipped.inc({ name: e.name, reason: e.reason }, e.count)),
    );

    const leaderChanges = new Counter({
      name: 'rota_leader_changes_total',
      help: 'Leaderships won or lost by this node, by election and change.',
      labelNames: ['name', 'change'],
      registers,
    });
    const leaseTrouble = new Counter({
      name: 'rota_lease_renew_failures_total',
      help: 'Lease keep-alives that failed on this node: session turned suspect, or a lease was lost.',
      labelNames: ['kind'],
      registers,
    });
    this.#offs.push(
      rota.events.on('leader:elected', (e) => {
        if (e.nodeId === rota.nodeId) leaderChanges.inc({ name: e.name, change: 'elected' });
      }),
      rota.events.on('leader:lost', (e) => leaderChanges.inc({ name: e.name, change: 'lost' })),
      rota.events.on('session:suspect', () => leaseTrouble.inc({ kind: 'session-suspect' })),
      rota.events.on('lease:lost', () => leaseTrouble.inc({ kind: 'lease-lost' })),
      rota.events.on('pool:lease-lost', () => leaseTrouble.inc({ kind: 'pool-lease-lost' })),
    );

    const rebalances = new Counter({
      name: 'rota_pool_rebalances_total',
      help: 'Pool jobs this node handed off because the worker set changed, by pool.',
      labelNames: ['pool'],
      registers,
    });
    const startFailures = new Counter({
      name: 'rota_pool_start_failures_total',
      help: 'Pool job starts that failed on this node, by pool.',
      labelNames: ['pool'],
      registers,
    });
    this.#offs.push(
      rota.events.on('job:rebalanced', (e) => rebalances.inc({ pool: e.pool })),
      rota.events.on('job:start-failed', (e) => startFailures.inc({ pool: e.pool })),
    );
  }

  /** The text exposition format. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  close(): void {
    for (const off of this.#offs.splice(0)) off();
  }
}
