/**
 * The coordinator (hosts.md §2.3): the leader of `cluster.election('rota:hosts')` decides every
 * namespace. Each term:
 *
 * 1. decides every namespace once, starting from the stored decisions (a failover never reshuffles
 *    a stable set);
 * 2. then, on every change of the `hosts/` cache, coalesced for 50 ms, decides the namespaces that
 *    changed (and, after a strategy failure, retries a namespace after 5 s).
 *
 * Every decision write is one txn fenced twice: the coordinator's own election key must still have
 * `createRevision == token`, and the decision key must still have the modRevision the decision was
 * computed from. An identical recomputation writes nothing; an empty result deletes the decision.
 */

import type { Election, LeaderInfo, Leadership } from '../cluster/election.js';
import type { Cluster } from '../cluster/index.js';
import type { RotaContext } from '../core/context.js';
import { opId } from '../core/ids.js';
import {
  NotLeaderError,
  type RotaError,
  StoreCorruptError,
  StrategyViolationError,
  TimeoutError,
  wrapError,
} from '../errors.js';
import type { TxnOp } from '../store/port.js';
import type { TimerHandle } from '../time/clock.js';
import { invalid } from '../validate.js';
import { HOSTS_DEFAULTS } from './options.js';
import { byCodeUnits, encodeDecision, type HostKeys, sameList, sameOptions } from './records.js';
import type { CandidateEntry, HostsState } from './state.js';
import { type StrategyRegistry, validateResult } from './strategies.js';
import type { HostCandidate, HostNamespaceOptions } from './types.js';

/** The election every node of a Rota namespace campaigns in while it takes part. */
export const COORDINATOR_ELECTION = 'rota:hosts';

/** Hooks the coordinator reports through. */
export interface CoordinatorHooks {
  error(namespace: string | null, error: RotaError): void;
  decided(namespace: string, hosts: string[], order: string[], revision: number): void;
  conflict(
    namespace: string,
    applied: HostNamespaceOptions & { hostname: string },
    conflicting: { hostname: string; options: HostNamespaceOptions }[],
  ): void;
  coordinating(token: number): void;
}

export class Coordinator {
  #electionTtl: number = HOSTS_DEFAULTS.electionTtl;
  #election: Election | null = null;
  #lead: { controller: AbortController; done: Promise<void> } | null = null;
  #term: Term | null = null;
  #chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: RotaContext,
    private readonly cluster: Cluster,
    private readonly state: HostsState,
    private readonly keys: HostKeys,
    private readonly strategies: StrategyRegistry,
    private readonly hooks: CoordinatorHooks,
  ) {}

  /** Set the election TTL; only possible before this node first campaigned. */
  setElectionTtl(ttl: number): void {
    if (ttl === this.#electionTtl) return;
    if (this.#election) {
      invalid('options.electionTtl', `the coordinator already campaigns with ${this.#electionTtl} ms`);
    }
    this.#electionTtl = ttl;
  }

  get electionTtl(): number {
    return this.#electionTtl;
  }

  #getElection(): Election {
    this.#election ??= this.cluster.election(COORDINATOR_ELECTION, { ttl: this.#electionTtl });
    return this.#election;
  }

  /** True while this node coordinates (holds the leadership and runs a term). */
  isCoordinator(): boolean {
    return this.#term !== null && !this.#term.ended && (this.#election?.isLeader() ?? false);
  }

  /** The current coordinator, as every node sees it. */
  leader(): Promise<LeaderInfo | null> {
    return this.#getElection().leader();
  }

  /**
   * Campaign when `wanted`, otherwise resign. Before resigning, a coordinator catches up with
   * `drainRevision` (this node's own last write) and decides what changed, so the last candidate to
   * leave still gets its decision deleted.
   */
  update(wanted: boolean, drainRevision = 0): Promise<void> {
    const run = async () => {
      if (wanted && !this.#lead && !this.ctx.closed) this.#startLead();
      else if (!wanted && this.#lead) {
        const lead = this.#lead;
        this.#lead = null;
        await this.#term?.drain(drainRevision);
        lead.controller.abort();
        await lead.done;
      }
    };
    this.#chain = this.#chain.then(run, run);
    return this.#chain;
  }

  #startLead(): void {
    const controller = new AbortController();
    const election = this.#getElection();
    const done = election
      .lead((leadership) => this.#runTerm(leadership), { signal: controller.signal })
      .catch((err) => {
        if (!this.ctx.closed)
          this.hooks.error(null, wrapError(err, 'ROTA_STORE_ERROR', 'the coordinator stopped'));
      });
    this.#lead = { controller, done };
  }

  #runTerm(leadership: Leadership): void {
    const term = new Term(this.ctx, this.state, this.keys, this.strategies, this.hooks, leadership);
    this.#term = term;
    leadership.signal.addEventListener(
      'abort',
      () => {
        term.end();
        if (this.#term === term) this.#term = null;
      },
      { once: true },
    );
    void term.start();
  }

  /** Stop campaigning (the node is closing). */
  async stop(): Promise<void> {
    await this.update(false);
  }
}

/** One leadership term: the decision passes made under one token. */
class Term {
  ended = false;
  readonly #dirty = new Set<string>();
  #coalesce: TimerHandle | undefined;
  readonly #retries = new Map<string, TimerHandle>();
  #running: Promise<void> | null = null;
  #again = false;
  #unsubscribe: () => void = () => undefined;
  readonly #conflicts = new Map<string, string>();
  readonly #reportedInvalid = new Map<string, number>();

  constructor(
    private readonly ctx: RotaContext,
    private readonly state: HostsState,
    private readonly keys: HostKeys,
    private readonly strategies: StrategyRegistry,
    private readonly hooks: CoordinatorHooks,
    private readonly leadership: Leadership,
  ) {}

  async start(): Promise<void> {
    this.#unsubscribe = this.state.subscribe((namespaces) => {
      if (namespaces === null) for (const ns of this.state.namespaces()) this.#dirty.add(ns);
      else for (const ns of namespaces) this.#dirty.add(ns);
      this.#schedule();
    });
    await this.state.start();
    if (this.ended) return;
    for (const ns of this.state.namespaces()) this.#dirty.add(ns);
    await this.#kick();
    if (!this.ended) this.hooks.coordinating(this.leadership.token);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.#unsubscribe();
    this.ctx.clock.clearTimeout(this.#coalesce);
    for (const t of this.#retries.values()) this.ctx.clock.clearTimeout(t);
    this.#retries.clear();
  }

  /** Catch up with `revision` and decide what is dirty now, within about 2 s. */
  async drain(revision: number): Promise<void> {
    const bound = AbortSignal.any([this.leadership.signal, this.ctx.closing]);
    if (this.ended || bound.aborted) return;
    const timer = new Promise<void>((resolve) => {
      const t = this.ctx.clock.setTimeout(resolve, 2000);
      bound.addEventListener('abort', () => this.ctx.clock.clearTimeout(t), { once: true });
    });
    const work = (async () => {
      if (revision > 0) await this.state.waitFor(revision, bound);
      this.ctx.clock.clearTimeout(this.#coalesce);
      this.#coalesce = undefined;
      await this.#kick();
    })();
    await Promise.race([work, timer]);
  }

  #schedule(): void {
    if (this.ended || this.#coalesce !== undefined) return;
    this.#coalesce = this.ctx.clock.setTimeout(() => {
      this.#coalesce = undefined;
      void this.#kick();
    }, HOSTS_DEFAULTS.coalesce);
  }

  /** Run passes until nothing is dirty (one at a time). */
  #kick(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    const run = (async () => {
      do {
        this.#again = false;
        while (this.#dirty.size > 0 && !this.ended) {
          const batch = [...this.#dirty].sort(byCodeUnits);
          this.#dirty.clear();
          for (const ns of batch) {
            if (this.ended) return;
            await this.#decide(ns);
          }
        }
      } while (this.#again && !this.ended);
    })();
    // Cleared after the assignment: a pass with nothing to do completes synchronously.
    const tracked: Promise<void> = run.finally(() => {
      if (this.#running === tracked) this.#running = null;
    });
    this.#running = tracked;
    return tracked;
  }

  #retryLater(ns: string): void {
    if (this.ended || this.#retries.has(ns)) return;
    this.#retries.set(
      ns,
      this.ctx.clock.setTimeout(() => {
        this.#retries.delete(ns);
        this.#dirty.add(ns);
        void this.#kick();
      }, HOSTS_DEFAULTS.retryDelay),
    );
  }

  #reportInvalid(ns: string): void {
    for (const { kv, reason } of this.state.invalidCandidates(ns)) {
      if (this.#reportedInvalid.get(kv.key) === kv.modRevision) continue;
      this.#reportedInvalid.set(kv.key, kv.modRevision);
      this.hooks.error(
        ns,
        new StoreCorruptError(`ignored a malformed candidacy at ${kv.key}: ${reason}`, {
          detail: { key: kv.key, modRevision: kv.modRevision, reason },
        }),
      );
    }
  }

  #checkConflicts(ns: string, candidates: CandidateEntry[]): void {
    const oldest = candidates[0];
    if (!oldest) {
      this.#conflicts.delete(ns);
      return;
    }
    const applied = oldest.record.options;
    const conflicting = candidates
      .slice(1)
      .filter((c) => !sameOptions(c.record.options, applied))
      .map((c) => ({ hostname: c.hostname, options: c.record.options }));
    if (conflicting.length === 0) {
      this.#conflicts.delete(ns);
      return;
    }
    const signature = JSON.stringify([oldest.hostname, applied, conflicting], (_k, v) =>
      v === Number.POSITIVE_INFINITY ? 'Infinity' : v,
    );
    if (this.#conflicts.get(ns) === signature) return;
    this.#conflicts.set(ns, signature);
    this.hooks.conflict(ns, { ...applied, hostname: oldest.hostname }, conflicting);
  }

  /** One namespace: compute the decision and write it if it changed. Never throws. */
  async #decide(ns: string): Promise<void> {
    for (let attempt = 1; attempt <= 5 && !this.ended; attempt++) {
      try {
        const outcome = await this.#decideOnce(ns);
        if (outcome !== 'stale') return;
      } catch (err) {
        if (this.ended || this.leadership.signal.aborted) return;
        this.hooks.error(ns, wrapError(err, 'ROTA_STORE_ERROR', `could not decide ${ns}`));
        this.#retryLater(ns);
        return;
      }
    }
    this.#retryLater(ns);
  }

  async #decideOnce(ns: string): Promise<'done' | 'stale'> {
    this.#reportInvalid(ns);
    const candidates = this.state.candidates(ns);
    this.#checkConflicts(ns, candidates);
    const stored = this.state.decision(ns);
    const last = stored?.record?.order ?? [];
    let result: string[] = [];
    let options: HostNamespaceOptions | null = null;
    if (candidates.length > 0) {
      options = (candidates[0] as CandidateEntry).record.options;
      const filter = new Set(options.hostsFilter);
      const eligible: HostCandidate[] = candidates
        .filter((c) => filter.size === 0 || filter.has(c.hostname))
        .map((c) => ({
          hostname: c.hostname,
          nodeId: c.record.nodeId,
          data: c.record.data,
          labels: c.record.labels,
          joinRevision: c.kv.createRevision,
          options: c.record.options,
        }));
      const computed = await this.#runStrategy(ns, options, eligible, last);
      if (computed === null) return 'done';
      result = computed;
    }
    const key = this.keys.decision(ns);
    let op: TxnOp | null = null;
    if (result.length === 0) {
      if (stored) op = { type: 'delete', key };
    } else {
      const hosts = [...result].sort(byCodeUnits);
      const unchanged =
        stored?.record && sameList(stored.record.hosts, hosts) && sameList(stored.record.order, result);
      if (!unchanged) {
        op = {
          type: 'put',
          key,
          value: encodeDecision({
            hosts,
            order: result,
            strategy: (options as HostNamespaceOptions).strategy,
            max: (options as HostNamespaceOptions).max,
            leader: this.ctx.nodeId,
            leaderToken: this.leadership.token,
            decidedAt: this.ctx.time.now(),
            opId: opId(),
          }),
        };
      }
    }
    if (!op || this.ended) return 'done';
    // Not bound to the leadership's signal: a write already in flight when the leadership is lost
    // goes out and fails its fence, as it would from any other process.
    const res = await this.ctx.retry(
      () =>
        this.ctx.store.txn({
          compare: [
            { key: this.leadership.key, target: 'createRevision', op: '==', value: this.leadership.token },
            { key, target: 'modRevision', op: '==', value: stored?.kv.modRevision ?? 0 },
          ],
          success: [op],
          failure: [
            { type: 'get', key: this.leadership.key },
            { type: 'get', key },
          ],
        }),
      this.ctx.closing,
    );
    if (res.succeeded) {
      const order = op.type === 'put' ? result : [];
      this.hooks.decided(ns, [...order].sort(byCodeUnits), order, res.revision);
      // The next pass decides from the cache: let it hold this write, or it fails its own fence.
      await this.#caughtUp(res.revision);
      return 'done';
    }
    const mine = res.results[0];
    if (mine?.type !== 'get' || mine.kv?.createRevision !== this.leadership.token) {
      this.hooks.error(
        ns,
        new NotLeaderError(`the decision of ${ns} was not written: this node no longer coordinates`, {
          detail: { namespace: ns, token: this.leadership.token },
        }),
      );
      this.end();
      return 'done';
    }
    // The decision changed under us: catch up with that change and decide again. Not with
    // `res.revision`: the store's revision moves with writes outside `hosts/` too, which the
    // cache never sees, so waiting for it could hang until the next hosts change.
    const current = res.results[1];
    const changedAt =
      current?.type === 'get' && current.kv ? current.kv.modRevision : (stored?.kv.modRevision ?? 0) + 1;
    await this.#caughtUp(changedAt);
    return 'stale';
  }

  /** Wait until the cache applied `revision` (a change under `hosts/`), bounded by 2 s. */
  async #caughtUp(revision: number): Promise<void> {
    const limit = new AbortController();
    const timer = this.ctx.clock.setTimeout(() => limit.abort(), 2000);
    try {
      await this.state.waitFor(revision, AbortSignal.any([this.leadership.signal, limit.signal]));
    } finally {
      this.ctx.clock.clearTimeout(timer);
    }
  }

  /** Run the namespace's strategy with its 5 s budget; null when it failed (reported). */
  async #runStrategy(
    ns: string,
    options: HostNamespaceOptions,
    eligible: HostCandidate[],
    last: readonly string[],
  ): Promise<string[] | null> {
    const kind = options.strategy;
    let strategy: ReturnType<StrategyRegistry['get']>;
    try {
      strategy = this.strategies.get(kind);
    } catch (err) {
      this.hooks.error(ns, wrapError(err, 'ROTA_INVALID_ARGUMENT'));
      this.#retryLater(ns);
      return null;
    }
    if (!strategy) {
      this.hooks.error(
        ns,
        new StrategyViolationError(`the coordinator ${this.ctx.nodeId} has no strategy ${kind}`, {
          detail: { namespace: ns, strategy: kind, reason: 'unknown' },
        }),
      );
      this.#retryLater(ns);
      return null;
    }
    const budget = new AbortController();
    const timer = this.ctx.clock.setTimeout(
      () =>
        budget.abort(
          new TimeoutError(`host strategy ${kind} took longer than ${HOSTS_DEFAULTS.strategyTimeout} ms`),
        ),
      HOSTS_DEFAULTS.strategyTimeout,
    );
    const signal = AbortSignal.any([budget.signal, this.leadership.signal]);
    try {
      const raw = await new Promise<unknown>((resolve, reject) => {
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        Promise.resolve()
          .then(() =>
            (strategy as NonNullable<typeof strategy>).schedule(eligible, {
              namespace: ns,
              max: options.max,
              last: [...last],
              hostsFilter: [...options.hostsFilter],
              signal,
              logger: this.ctx.logger,
            }),
          )
          .then(resolve, reject);
      });
      return validateResult(kind, raw, eligible, { max: options.max, namespace: ns });
    } catch (err) {
      if (this.leadership.signal.aborted) return null;
      const violation =
        err instanceof Error && (err as RotaError).code === 'ROTA_STRATEGY_VIOLATION'
          ? (err as RotaError)
          : new StrategyViolationError(
              `host strategy ${kind} for ${ns} ${budget.signal.aborted ? 'timed out' : 'threw'}`,
              {
                cause: err,
                detail: {
                  namespace: ns,
                  strategy: kind,
                  reason: budget.signal.aborted ? 'timeout' : 'threw',
                },
              },
            );
      this.hooks.error(ns, violation);
      this.#retryLater(ns);
      return null;
    } finally {
      this.ctx.clock.clearTimeout(timer);
    }
  }
}
