/**
 * `Rota.connect(options)` opens one node: a store connection plus one session. The modules hang
 * off it (`rota.cluster`, `rota.hosts`, and the others as they land). `rota.close()` stops every
 * module, then ends the session (revoking its lease, which deletes everything attached to it at once).
 */
import { Cluster } from './cluster/index.js';
import { type ResolvedRotaOptions, RotaContext } from './core/context.js';
import { EventBus } from './core/events.js';
import { defaultNodeId } from './core/ids.js';
import { Keyspace } from './core/keys.js';
import { consoleLogger, isLogger, type Logger } from './core/logger.js';
import { StoreTime } from './core/store-time.js';
import { isRotaError } from './errors.js';
import { Hosts } from './hosts/index.js';
import { Pools } from './pool/index.js';
import { Schedules } from './schedules/index.js';
import { DEFAULT_EMBEDDED_STORE, isStore, openStore } from './store/open.js';
import type { Store } from './store/port.js';
import { type ResolvedTasksOptions, resolveTasksOptions, Tasks, type TasksOptions } from './tasks/index.js';
import { type Clock, systemClock } from './time/clock.js';
import { checkBoolean, checkDuration, checkName, checkOptions, checkSignal, invalid } from './validate.js';

/** Options of {@link Rota.connect}. Every option has a default. */
export interface RotaOptions {
  /** Store URL or store object. Default `sqlite:./.rota/rota.db` (the embedded store). */
  store?: string | Store;
  /** Namespace isolating this cluster's keys in a shared store. Default `'default'`. */
  namespace?: string;
  /** Stable id of this node. Default `${hostname}-${pid}-${6 hex}`. */
  nodeId?: string;
  /** Session lease TTL in ms (rounded up to whole seconds). Default 10 000. */
  sessionTtl?: number;
  /** Start a new session after losing one. Default true. */
  reconnect?: boolean;
  /** Return before the store is reachable; the session connects in the background. Default false. */
  lazyConnect?: boolean;
  /** How long store calls are retried before `ROTA_STORE_UNAVAILABLE`. Default 30 000. */
  storeTimeout?: number;
  /** Largest payload accepted by the modules. Default 1 MiB, lowered to the store's limit. */
  maxPayloadBytes?: number;
  /** Labels published in the member record. Default `{}`. */
  labels?: Record<string, string>;
  /** Time source (tests pass a ManualClock). Default the system clock. */
  clock?: Clock;
  /** Randomness in [0, 1) (backoff jitter, random schedules). Default `Math.random`. */
  random?: () => number;
  /** Where Rota logs. Default: warnings and errors to stderr. */
  logger?: Logger;
  /** Aborting it closes the node. */
  signal?: AbortSignal;
  /** Options of the tasks module (converger interval, start timeout, ...). See docs/tasks.md. */
  tasks?: TasksOptions;
  /** Options of the hosts module: `{ electionTtl }` (default 1 000 ms). See docs/hosts.md. */
  hosts?: { electionTtl?: number };
}

const OPTION_KEYS = [
  'store',
  'namespace',
  'nodeId',
  'sessionTtl',
  'reconnect',
  'lazyConnect',
  'storeTimeout',
  'maxPayloadBytes',
  'labels',
  'clock',
  'random',
  'logger',
  'signal',
  'tasks',
  'hosts',
] as const;

export const DEFAULTS = {
  namespace: 'default',
  sessionTtl: 10_000,
  reconnect: true,
  lazyConnect: false,
  storeTimeout: 30_000,
  maxPayloadBytes: 1024 * 1024,
} as const;

/** How often the store-time estimate is resampled (cluster.md §5). */
const TIME_RESAMPLE_MS = 30_000;

/** Room left in a store value for the envelope around a payload (ids, timestamps, options). */
const ENVELOPE_BYTES = 64 * 1024;

function resolveOptions(options: RotaOptions): ResolvedRotaOptions {
  checkOptions('options', options, OPTION_KEYS);
  const labels = options.labels ?? {};
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels))
    invalid('labels', 'must be an object');
  for (const [k, v] of Object.entries(labels)) {
    checkName(`labels key`, k);
    if (typeof v !== 'string') invalid(`labels.${k}`, 'must be a string');
  }
  const clock = options.clock;
  if (clock !== undefined && (typeof clock !== 'object' || typeof clock.now !== 'function')) {
    invalid('clock', 'must be a Clock (now, monotonic, setTimeout, clearTimeout)');
  }
  if (options.random !== undefined && typeof options.random !== 'function')
    invalid('random', 'must be a function');
  if (options.logger !== undefined && !isLogger(options.logger)) {
    invalid('logger', 'must have debug, info, warn and error methods');
  }
  checkSignal('signal', options.signal);
  if (options.store !== undefined && typeof options.store !== 'string' && !isStore(options.store)) {
    invalid('store', 'must be a store URL or a store object');
  }
  return {
    namespace: checkName('namespace', options.namespace ?? DEFAULTS.namespace),
    nodeId: checkName('nodeId', options.nodeId ?? defaultNodeId()),
    sessionTtl: checkDuration('sessionTtl', options.sessionTtl ?? DEFAULTS.sessionTtl, 1000),
    reconnect: checkBoolean('reconnect', options.reconnect ?? DEFAULTS.reconnect),
    lazyConnect: checkBoolean('lazyConnect', options.lazyConnect ?? DEFAULTS.lazyConnect),
    storeTimeout: checkDuration('storeTimeout', options.storeTimeout ?? DEFAULTS.storeTimeout),
    maxPayloadBytes: checkDuration('maxPayloadBytes', options.maxPayloadBytes ?? DEFAULTS.maxPayloadBytes),
    labels: { ...labels },
  };
}

export class Rota {
  readonly #ctx: RotaContext;
  readonly #ownsStore: boolean;
  #cluster: Cluster;
  #hosts: Hosts;
  #tasks: Tasks;
  #schedules: Schedules;
  #pool: Pools;
  #closing: Promise<void> | null = null;

  private constructor(ctx: RotaContext, ownsStore: boolean, tasks: ResolvedTasksOptions) {
    this.#ctx = ctx;
    this.#ownsStore = ownsStore;
    this.#cluster = new Cluster(ctx);
    this.#hosts = new Hosts(ctx, this.#cluster);
    this.#tasks = new Tasks(ctx, this.#cluster, tasks);
    this.#schedules = new Schedules(ctx, this.#cluster);
    this.#pool = new Pools(ctx, this.#cluster);
  }

  /**
   * Open a node. Fails with `ROTA_INVALID_ARGUMENT` for bad options, `ROTA_UNKNOWN_STORE` for an
   * unknown store URL (nothing is written), `ROTA_STORE_UNAVAILABLE` when the store stays
   * unreachable for `storeTimeout` (unless `lazyConnect`), and `ROTA_NODE_ID_IN_USE` when another
   * live session uses `nodeId`.
   */
  static async connect(options: RotaOptions = {}): Promise<Rota> {
    const resolved = resolveOptions(options);
    const tasksOptions = resolveTasksOptions(options.tasks);
    const hostsOptions = checkOptions('hosts', options.hosts, ['electionTtl']) as { electionTtl?: number };
    if (hostsOptions.electionTtl !== undefined)
      checkDuration('hosts.electionTtl', hostsOptions.electionTtl, 1000);
    const clock = options.clock ?? systemClock;
    const random = options.random ?? Math.random;
    const logger = options.logger ?? consoleLogger('warn');
    const ownsStore = !isStore(options.store);
    const store = await openStore(options.store ?? DEFAULT_EMBEDDED_STORE, options.clock ? { clock } : {});
    const maxPayloadBytes = Math.min(
      resolved.maxPayloadBytes,
      store.capabilities.maxValueBytes - ENVELOPE_BYTES,
    );
    const events = new EventBus(logger);
    const time = new StoreTime(store, clock, (skewMs) => events.emit('clock:skew', { skewMs }));
    const ctx = new RotaContext(
      store,
      new Keyspace(resolved.namespace),
      clock,
      random,
      time,
      events,
      logger,
      { ...resolved, maxPayloadBytes },
    );
    const rota = new Rota(ctx, ownsStore, tasksOptions);
    rota.#hosts.configure(hostsOptions);
    const start = async (signal?: AbortSignal) => {
      await ctx.retry(() => time.sync(), signal);
      await rota.#cluster.start(signal);
    };
    if (resolved.lazyConnect) {
      void (async () => {
        for (;;) {
          try {
            await start(ctx.closing);
            return;
          } catch (err) {
            if (ctx.closed) return;
            logger.warn('lazy connect failed; retrying', { error: err });
            if (isRotaError(err, 'ROTA_NODE_ID_IN_USE')) return;
          }
        }
      })();
    } else {
      try {
        await start(options.signal);
      } catch (err) {
        if (ownsStore) await store.close().catch(() => undefined);
        throw err;
      }
    }
    // Resample the store-time estimate every 30 s (and the session does after each reconnect).
    const resample = () => {
      if (ctx.closed) return;
      void time
        .sync()
        .catch((err) => logger.debug('store time resample failed', { error: err }))
        .finally(() => {
          if (!ctx.closed) timer = clock.setTimeout(resample, TIME_RESAMPLE_MS);
        });
    };
    let timer = clock.setTimeout(resample, TIME_RESAMPLE_MS);
    ctx.onClose(() => clock.clearTimeout(timer));
    options.signal?.addEventListener('abort', () => void rota.close(), { once: true });
    return rota;
  }

  /** This node's id (stable across reconnects). */
  get nodeId(): string {
    return this.#ctx.nodeId;
  }

  get namespace(): string {
    return this.#ctx.namespace;
  }

  /** The node's store (validated at its edge). */
  get store(): Store {
    return this.#ctx.store;
  }

  /** Every event of every module of this node. */
  get events(): EventBus {
    return this.#ctx.events;
  }

  /** Effective options. */
  get options(): ResolvedRotaOptions {
    return this.#ctx.options;
  }

  /** Sessions, membership, locks, elections, tickers. */
  get cluster(): Cluster {
    return this.#cluster;
  }

  /** Pick K of N live hosts for a role and publish the choice (docs/hosts.md). */
  get hosts(): Hosts {
    return this.#hosts;
  }

  /** One-off tasks: enqueue, workers, lifecycle, watches, results, dead letters (docs/tasks.md). */
  get tasks(): Tasks {
    return this.#tasks;
  }

  /** Persisted recurring jobs, run once per slot across the cluster (docs/schedules.md). */
  get schedules(): Schedules {
    return this.#schedules;
  }

  /** Worker pools: `rota.pool.join(name, options)` → a `PoolNode`. */
  get pool(): Pools {
    return this.#pool;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#ctx.closed;
  }

  /** Stop every module, end the session (revoking its lease), close the store if Rota opened it. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#ctx.runCloseHooks();
      await this.#cluster.session.close();
      if (this.#ownsStore) await this.#ctx.store.close().catch(() => undefined);
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** @internal The module context, for Rota's own modules and test harnesses. */
  get context(): RotaContext {
    return this.#ctx;
  }
}
