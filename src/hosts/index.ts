/**
 * The hosts module (hosts.md): pick K of N live hosts for a named role and publish the choice.
 * Hosts put their name forward for a *namespace*; one elected coordinator (for every namespace)
 * runs the namespace's strategy and publishes the decision; everyone watches it.
 *
 * ```ts
 * const schedule = await rota.hosts.schedule('web', { max: 2 });
 * for await (const decision of schedule) console.log(decision.hosts, schedule.isScheduled());
 * ```
 */
import type { LeaderInfo } from '../cluster/election.js';
import type { Cluster } from '../cluster/index.js';
import type { RotaContext } from '../core/context.js';
import { EventBus } from '../core/events.js';
import { abortedError, isRotaError, type RotaError, SessionLostError, wrapError } from '../errors.js';
import type { Rota } from '../rota.js';
import { checkBoolean, checkDuration } from '../validate.js';
import { Candidacies } from './candidacies.js';
import { Coordinator } from './coordinator.js';
import {
  CANDIDACY_KEYS,
  type CandidacySettings,
  checkDryRun,
  checkHostname,
  checkNamespace,
  checkOptions,
  checkSignal,
  parseCandidacy,
} from './options.js';
import { HostKeys } from './records.js';
import { HostSchedule } from './schedule.js';
import { filterDecision, HostsState } from './state.js';
import { StrategyRegistry } from './strategies.js';
import { DecisionStream } from './stream.js';
import type {
  HostAddOptions,
  HostCandidacyOptions,
  HostChange,
  HostDecision,
  HostReleaseOptions,
  HostScheduleOptions,
  HostStrategyFactory,
  HostsStartOptions,
  HostWithdrawOptions,
} from './types.js';

export class Hosts {
  /** This module's events (they reach `rota.events` too). */
  readonly events: EventBus;
  readonly #keys: HostKeys;
  readonly #state: HostsState;
  readonly #strategies = new StrategyRegistry();
  readonly #candidacies: Candidacies;
  readonly #coordinator: Coordinator;
  readonly #streams = new Map<string, Set<DecisionStream>>();
  readonly #lastChanged = new Map<string, string>();
  #starts = 0;
  #capabilities = '[]';
  #closed = false;

  /** @internal Constructed by `Rota`. */
  constructor(
    private readonly ctx: RotaContext,
    private readonly cluster: Cluster,
  ) {
    this.events = new EventBus(ctx.logger, ctx.events as unknown as EventBus<object>);
    this.#keys = new HostKeys(ctx.keys);
    const error = (namespace: string | null, err: RotaError) => this.#error(namespace, err);
    this.#state = new HostsState(ctx, this.#keys, error);
    this.#candidacies = new Candidacies(ctx, cluster.session, this.#keys, error, () => this.#participate());
    this.#coordinator = new Coordinator(ctx, cluster, this.#state, this.#keys, this.#strategies, {
      error,
      decided: (namespace, hosts, order, revision) =>
        this.events.emit('hosts:decided', { namespace, hosts, order, revision }),
      conflict: (namespace, applied, conflicting) =>
        this.events.emit('hosts:options-conflict', { namespace, applied, conflicting }),
      coordinating: (token) => this.events.emit('hosts:coordinating', { nodeId: ctx.nodeId, token }),
    });
    this.#state.subscribe((namespaces) => this.#publish(namespaces));
    ctx.events.on('session:lost', () => {
      if (ctx.options.reconnect || ctx.closed) return;
      const err = new SessionLostError('the session was lost and reconnect is off');
      for (const set of this.#streams.values()) for (const s of [...set]) s.fail(err);
    });
    ctx.onClose(() => this.#close());
  }

  #error(namespace: string | null, error: RotaError): void {
    if (this.#closed && isRotaError(error, 'ROTA_ABORTED')) return;
    this.ctx.logger.debug('hosts: handled error', { namespace, error });
    this.events.emit('hosts:error', { namespace, error });
  }

  #assertUsable(): void {
    this.ctx.assertOpen();
    this.cluster.session.assertUsable();
  }

  #parse(o: HostCandidacyOptions): CandidacySettings {
    return parseCandidacy(o, {
      defaultHostname: this.ctx.nodeId,
      defaultTtl: this.cluster.session.ttl,
      granularity: this.ctx.store.capabilities.leaseGranularityMs,
      hasStrategy: (kind) => this.#strategies.has(kind),
    });
  }

  /** Campaign while a candidacy is desired or `start()` is active; publish the hostnames offered. */
  #participate(): void {
    if (this.#closed) return;
    const wanted = this.#starts > 0 || this.#candidacies.desiredCount() > 0;
    this.#coordinator
      .update(wanted, this.#candidacies.lastWriteRevision)
      .catch((err) => this.#error(null, wrapError(err, 'ROTA_STORE_ERROR', 'coordination failed')));
    const names = JSON.stringify(this.#candidacies.hostnames().sort());
    if (names !== this.#capabilities) {
      this.#capabilities = names;
      void this.cluster.session.setCapabilities('hosts', JSON.parse(names) as string[]);
    }
  }

  /** Hand the filtered decision of changed namespaces to their streams; emit `hosts:changed`. */
  #publish(namespaces: ReadonlySet<string> | null): void {
    const targets = namespaces ?? new Set(this.#streams.keys());
    for (const ns of targets) {
      const streams = this.#streams.get(ns);
      if (!streams || streams.size === 0) continue;
      const decision = this.#state.filtered(ns);
      for (const s of [...streams]) s.offer(decision);
      const key = JSON.stringify(decision.hosts);
      const prev = this.#lastChanged.get(ns);
      this.#lastChanged.set(ns, key);
      if (prev !== undefined && prev !== key) {
        this.events.emit('hosts:changed', { namespace: ns, hosts: decision.hosts });
      }
    }
  }

  #openStream(namespace: string, signal: AbortSignal | undefined): DecisionStream {
    let set = this.#streams.get(namespace);
    if (!set) this.#streams.set(namespace, (set = new Set()));
    const streams = set;
    const stream = new DecisionStream(() => {
      streams.delete(stream);
      if (streams.size === 0 && this.#streams.get(namespace) === streams) {
        this.#streams.delete(namespace);
        this.#lastChanged.delete(namespace);
      }
    });
    streams.add(stream);
    if (signal) {
      const onAbort = () => stream.fail(abortedError(signal));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
    void this.#state.start().then(() => {
      if (stream.closed) return;
      const decision = this.#state.filtered(namespace);
      if (!this.#lastChanged.has(namespace)) this.#lastChanged.set(namespace, JSON.stringify(decision.hosts));
      stream.offer(decision);
    });
    return stream;
  }

  // ----------------------------------------------------------------------------------------------
  // Strategies

  /**
   * Register a strategy kind on this node (every node that may coordinate needs it). A kind that
   * exists already, built-ins included, is `ROTA_INVALID_ARGUMENT`.
   */
  registerStrategy(kind: string, factory: HostStrategyFactory): void {
    this.#strategies.register(kind, factory);
  }

  /** Registered strategy kinds. */
  strategies(): string[] {
    return this.#strategies.kinds();
  }

  // ----------------------------------------------------------------------------------------------
  // Candidacies

  /**
   * Put this host's candidacy forward (idempotent upsert, mgmt's `SchedulerAdd`). The candidacy is
   * kept (and restored after a session loss) until `withdraw` or `release`. With `dryRun`, reports
   * whether anything would change and writes nothing. `ROTA_HOSTNAME_IN_USE` when another live node
   * offers the hostname.
   */
  async add(namespace: string, options: HostAddOptions = {}): Promise<HostChange> {
    const ns = checkNamespace(namespace);
    const o = checkOptions('options', options, [...CANDIDACY_KEYS, 'dryRun']) as HostAddOptions;
    const dryRun = checkDryRun(o.dryRun);
    const settings = this.#parse(o);
    this.#assertUsable();
    if (dryRun) return { changed: await this.#candidacies.wouldChange(ns, settings) };
    void this.#state.start();
    const { changed } = await this.#candidacies.acquire(ns, settings, 'add');
    return { changed };
  }

  /** Remove the candidacy if present (one txn; mgmt's `SchedulerWithdraw`). */
  async withdraw(namespace: string, options: HostWithdrawOptions = {}): Promise<HostChange> {
    const ns = checkNamespace(namespace);
    const o = checkOptions('options', options, ['hostname', 'dryRun']) as HostWithdrawOptions;
    const hostname = checkHostname('options.hostname', o.hostname ?? this.ctx.nodeId);
    const dryRun = checkDryRun(o.dryRun);
    this.#assertUsable();
    if (dryRun) {
      const { kv } = await this.ctx.retry(() => this.ctx.store.get(this.#keys.candidate(ns, hostname)));
      return { changed: kv !== null };
    }
    return { changed: await this.#candidacies.withdraw(ns, hostname) };
  }

  /**
   * Let go of a candidacy made by `add` (mgmt's `SchedulerCleanup`): `linger: false` (default)
   * removes it now, `true` leaves it until its lease expires. A persistent candidacy stays (use
   * `withdraw`); open `schedule()` handles keep theirs.
   */
  async release(namespace: string, options: HostReleaseOptions = {}): Promise<void> {
    const ns = checkNamespace(namespace);
    const o = checkOptions('options', options, ['hostname', 'linger']) as HostReleaseOptions;
    const hostname = checkHostname('options.hostname', o.hostname ?? this.ctx.nodeId);
    const linger = o.linger === undefined ? false : checkBoolean('options.linger', o.linger);
    this.#assertUsable();
    const local = this.#candidacies.get(ns, hostname);
    if (!local?.added) return;
    await this.#candidacies.releaseRef(local, 'add', linger ? 'linger' : 'delete');
  }

  /**
   * Put this host forward, take part in coordination and stream the namespace's decisions
   * (mgmt's `Schedule`). The handle keeps the candidacy in its desired state until `close()`.
   */
  async schedule(namespace: string, options: HostScheduleOptions = {}): Promise<HostSchedule> {
    const ns = checkNamespace(namespace);
    const o = checkOptions('options', options, [...CANDIDACY_KEYS, 'signal']) as HostScheduleOptions;
    const signal = checkSignal('options.signal', o.signal);
    const settings = this.#parse(o);
    this.#assertUsable();
    if (signal?.aborted) throw abortedError(signal);
    await this.#state.start();
    const { local } = await this.#candidacies.acquire(ns, settings, 'handle');
    const stream = this.#openStream(ns, undefined);
    const handle = new HostSchedule(
      ns,
      settings.hostname,
      stream,
      () => this.#state.filtered(ns),
      () => this.#candidacies.releaseRef(local, 'handle', 'close'),
    );
    if (signal) {
      signal.addEventListener(
        'abort',
        () => {
          stream.fail(abortedError(signal));
          void handle.close().catch((err) => this.#error(ns, err));
        },
        { once: true },
      );
    }
    return handle;
  }

  // ----------------------------------------------------------------------------------------------
  // Observing

  /**
   * Watch a namespace's decisions without taking part: the current one first (`hosts: []` when
   * there is none), then every change of the filtered hosts; a slow reader gets the newest only.
   * Ends on `return()` or when the node closes; throws `ROTA_ABORTED` when `signal` aborts.
   */
  observe(namespace: string, options: { signal?: AbortSignal } = {}): AsyncIterableIterator<HostDecision> {
    const ns = checkNamespace(namespace);
    const o = checkOptions('options', options, ['signal']) as { signal?: AbortSignal };
    const signal = checkSignal('options.signal', o.signal);
    this.#assertUsable();
    return this.#openStream(ns, signal);
  }

  /** Read a namespace's decision now (filtered by present candidacies; `hosts: []` when none). */
  async get(namespace: string): Promise<HostDecision> {
    const ns = checkNamespace(namespace);
    this.#assertUsable();
    const decisionKey = this.#keys.decision(ns);
    const res = await this.ctx.retry(() =>
      this.ctx.store.txn({
        compare: [],
        success: [
          { type: 'range', prefix: this.#keys.candidates(ns) },
          { type: 'get', key: decisionKey },
        ],
      }),
    );
    const [range, got] = res.results;
    const present = new Set<string>();
    if (range?.type === 'range') {
      for (const kv of range.kvs) {
        const entry = this.#keys.decode(kv);
        if (entry.kind === 'candidate') present.add(entry.hostname);
      }
    }
    const kv = got?.type === 'get' ? got.kv : null;
    let decision: Parameters<typeof filterDecision>[1];
    if (kv) {
      const entry = this.#keys.decode(kv);
      decision = { kv, record: entry.kind === 'decision' ? entry.record : null };
    }
    return filterDecision(ns, decision, present);
  }

  // ----------------------------------------------------------------------------------------------
  // Coordination

  /**
   * Set this node's coordinator election TTL before it first campaigns (the `hosts.electionTtl`
   * option of `Rota.connect`). Default 1 000 ms.
   */
  configure(options: { electionTtl?: number } = {}): void {
    const o = checkOptions('options', options, ['electionTtl']) as { electionTtl?: number };
    if (o.electionTtl !== undefined) {
      this.#coordinator.setElectionTtl(checkDuration('options.electionTtl', o.electionTtl, 1000));
    }
  }

  /**
   * Take part in coordination (campaign and, while leader, decide) until `signal` aborts, even
   * without a candidacy of this node. Automatic on the first `add`/`schedule`. Resolves once the
   * node's view of `hosts/` is loaded.
   */
  async start(options: HostsStartOptions = {}): Promise<void> {
    const o = checkOptions('options', options, ['signal', 'electionTtl']) as HostsStartOptions;
    const signal = checkSignal('options.signal', o.signal);
    if (o.electionTtl !== undefined) {
      this.#coordinator.setElectionTtl(checkDuration('options.electionTtl', o.electionTtl, 1000));
    }
    this.#assertUsable();
    if (signal?.aborted) throw abortedError(signal);
    this.#starts++;
    signal?.addEventListener(
      'abort',
      () => {
        this.#starts--;
        this.#participate();
      },
      { once: true },
    );
    this.#participate();
    await this.#state.start();
  }

  /** True while this node is the coordinator. Synchronous. */
  isCoordinator(): boolean {
    return this.#coordinator.isCoordinator();
  }

  /** The current coordinator (the leader of the `rota:hosts` election), or null. */
  coordinator(): Promise<LeaderInfo | null> {
    this.#assertUsable();
    return this.#coordinator.leader();
  }

  async #close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const set of this.#streams.values()) for (const s of [...set]) s.end();
    await this.#candidacies.closeAll();
    await this.#coordinator.stop();
    this.#state.stop();
  }
}

/**
 * mgmt's `Schedule(...)` shape: `schedule(rota, namespace, options)` is
 * `rota.hosts.schedule(namespace, options)`.
 */
export function schedule(
  rota: Rota,
  namespace: string,
  options?: HostScheduleOptions,
): Promise<HostSchedule> {
  return rota.hosts.schedule(namespace, options);
}

export { COORDINATOR_ELECTION } from './coordinator.js';
export { HOSTS_DEFAULTS } from './options.js';
export { HostSchedule } from './schedule.js';
export {
  alphaStrategy,
  BUILT_IN_STRATEGIES,
  leastLoadedStrategy,
  rrStrategy,
  type SpreadStrategyOptions,
  spreadStrategy,
} from './strategies.js';
export type * from './types.js';
