/**
 * The runner (schedules.md §2.5–2.7): one per node, started by `schedules.start()`.
 *
 * - Watch-fed caches of definitions and `trigger()` requests (the cluster module keeps members).
 * - One local timer per definition this node has a handler for, armed at its due time (store-time
 *   estimate); a firing timer requests a *pass*. A pass reads `store.now()` once, takes the due
 *   definitions oldest first (at most `claimLimit`), applies the gates (leader, elector, capacity,
 *   locker) and runs one claim txn each: compare the definition's modRevision and the run key's
 *   absence, write the run and the advanced definition atomically.
 * - Claimed runs execute here: hooks, handler, timeout, progress, the owner monitor (liveness bump
 *   every `monitorInterval`), then the completion txn fenced by our last write's revision.
 * - `rescanInterval` only re-arms everything as a safety net.
 */
import type { Cluster } from '../cluster/index.js';
import type { Lock } from '../cluster/interfaces.js';
import { encodeJson, type RotaContext } from '../core/context.js';
import type { EventBus } from '../core/events.js';
import { opId as newOpId } from '../core/ids.js';
import { type CacheChange, KvCache } from '../core/kv-cache.js';
import type { Logger } from '../core/logger.js';
import {
  HandlerError,
  isRotaError,
  RotaError,
  RunInterruptedError,
  RunTimeoutError,
  SessionLostError,
  StopTimeoutError,
} from '../errors.js';
import type { TxnOp } from '../store/port.js';
import type { TimerHandle } from '../time/clock.js';
import { ActiveRun, runKeyOf } from './active-run.js';
import {
  applyTerminal,
  checkProgress,
  currentOf,
  dueAt,
  type Effective,
  effective,
  newRunRecord,
  type Outcome,
  type Plan,
  planClaim,
  pushHistory,
  skipRecord,
} from './plan.js';
import {
  basisOf,
  type DefRecord,
  decodeDef,
  decodeRequest,
  decodeRun,
  type RequestRecord,
  type RunRecord,
  type ScheduleKeys,
} from './records.js';
import { hasFixedSlots, slotAfter } from './slots.js';
import { Sweeper } from './sweeper.js';
import { runTxn, type Versioned } from './txn.js';
import type { ClaimLostInfo, RunContext, RunProgress, ScheduleHooks } from './types.js';
import type { LocalParts, ResolvedStart } from './validate.js';

/** Delay before a gated (leader/elector) due definition is looked at again. */
const GATE_RETRY_MS = 1000;
/** How close to its due time a re-armed slot counts as one this node was already going for. */
const FIRED_WINDOW_MS = 1000;

export interface RunnerDeps {
  ctx: RotaContext;
  cluster: Cluster;
  keys: ScheduleKeys;
  events: EventBus;
  registry: Map<string, LocalParts>;
}

export class Runner {
  readonly defs: KvCache<DefRecord>;
  readonly requests: KvCache<RequestRecord>;
  readonly #d: RunnerDeps;
  #start: ResolvedStart | null = null;
  #stop = new AbortController();
  #cachesStarted = false;
  #overlay = new Map<string, Versioned<DefRecord>>();
  #timers = new Map<string, { handle: TimerHandle; due: number }>();
  #runs = new Map<string, ActiveRun>();
  #claiming = new Set<string>();
  #reserved = 0;
  #waiting = new Set<string>();
  #limited = new Map<string, number>();
  #refused = new Map<string, number>();
  /** Slots whose timer fired here, to report `claim-lost` when another node took them first. */
  #fired = new Map<string, number>();
  /** Slot runs recently claimed here (bounded), so `#reportTaken` does not report our own. */
  #ranHere = new Set<string>();
  #nowInFlight: Promise<number> | null = null;
  #passTimer: TimerHandle | undefined;
  #passRunning = false;
  #passAgain = false;
  #passFailures = 0;
  #monitorTimer: TimerHandle | undefined;
  #rescanTimer: TimerHandle | undefined;
  #sweeper: Sweeper | null = null;
  #offs: (() => void)[] = [];
  #logger: Logger;

  constructor(deps: RunnerDeps) {
    this.#d = deps;
    this.#logger = deps.ctx.logger;
    const { ctx, keys } = deps;
    const common = { store: ctx.store, clock: ctx.clock, random: ctx.random, logger: ctx.logger };
    this.defs = new KvCache<DefRecord>({
      ...common,
      prefix: keys.defs,
      decode: decodeDef,
      onChange: (c) => this.#onDefChange(c),
    });
    this.requests = new KvCache<RequestRecord>({
      ...common,
      prefix: keys.requestsRoot,
      decode: decodeRequest,
      onChange: (c) => {
        if (c.type === 'sync') this.#armAll();
        else this.#arm(c.type === 'put' ? c.entry.value.name : keys.requestName(c.key));
      },
    });
  }

  get started(): boolean {
    return this.#start !== null;
  }

  get options(): ResolvedStart | null {
    return this.#start;
  }

  /** Due definitions held back by `concurrency.mode: 'wait'`. */
  get waitingCount(): number {
    return this.#waiting.size;
  }

  get runningCount(): number {
    return this.#runs.size;
  }

  /** The definition as this node knows it: the cache, or our own newer write. */
  view(name: string): Versioned<DefRecord> | null {
    const cached = this.defs.get(this.#d.keys.def(name));
    const own = this.#overlay.get(name);
    if (own && (!cached || own.modRevision > cached.kv.modRevision)) {
      if (cached && cached.kv.createRevision !== own.createRevision) return this.#fromCache(cached);
      return own;
    }
    if (own) this.#overlay.delete(name);
    return cached ? this.#fromCache(cached) : null;
  }

  #fromCache(e: {
    kv: { modRevision: number; createRevision: number };
    value: DefRecord;
  }): Versioned<DefRecord> {
    return { value: e.value, modRevision: e.kv.modRevision, createRevision: e.kv.createRevision };
  }

  #requestsOf(name: string): RequestRecord[] {
    const prefix = this.#d.keys.requests(name);
    const out: RequestRecord[] = [];
    for (const [key, e] of this.requests.entries) if (key.startsWith(prefix)) out.push(e.value);
    return out;
  }

  effectiveOf(def: DefRecord): Effective {
    const local = this.#d.registry.get(def.name);
    const defaults = this.#start?.defaults;
    return effective(def.options, defaults?.stored, local?.backoff, defaults?.backoff);
  }

  // ----------------------------------------------------------------------------------------------
  // Lifecycle

  /** Start the caches (idempotent); resolves after the first listing. */
  async ensureCaches(): Promise<void> {
    if (!this.#cachesStarted) {
      this.#cachesStarted = true;
      void this.defs.start(this.#d.ctx.closing);
      void this.requests.start(this.#d.ctx.closing);
    }
    await Promise.all([this.defs.ready, this.requests.ready]);
  }

  async start(resolved: ResolvedStart): Promise<void> {
    if (this.#start) return;
    await this.ensureCaches();
    if (this.#start) return;
    this.#start = resolved;
    this.#stop = new AbortController();
    if (resolved.logger) this.#logger = resolved.logger;
    const { ctx } = this.#d;
    resolved.signal?.addEventListener('abort', () => void this.stop().catch(() => undefined), { once: true });
    this.#offs.push(
      ctx.events.on('session:lost', () => this.#onSessionLost()),
      ctx.events.on('session:started', () => {
        void this.#interruptOldSessions();
        this.#requestPass();
      }),
      ctx.events.on('leader:elected', (e) => {
        if (e.name === 'rota:schedules') this.#requestPass();
      }),
    );
    if (resolved.options.mode === 'leader') {
      void this.#d.cluster
        .election('rota:schedules')
        .lead(() => this.#requestPass(), { signal: this.#stop.signal })
        .catch((err) => this.#logger.warn('schedules leader election stopped', { error: err }));
    }
    this.#sweeper = new Sweeper(this.#d, this, resolved.options, this.#logger);
    this.#sweeper.start(this.#stop.signal);
    this.#armMonitor();
    this.#armRescan();
    await this.#interruptOldSessions();
    this.#armAll();
  }

  /** Stop claiming, abort local runs (reason `shutdown`), wait up to `timeout`. */
  async stop(timeout?: number): Promise<void> {
    const started = this.#start;
    if (!started) return;
    this.#start = null;
    this.#stop.abort();
    for (const off of this.#offs.splice(0)) off();
    const { clock } = this.#d.ctx;
    for (const t of this.#timers.values()) clock.clearTimeout(t.handle);
    this.#timers.clear();
    clock.clearTimeout(this.#passTimer);
    this.#passTimer = undefined;
    clock.clearTimeout(this.#monitorTimer);
    clock.clearTimeout(this.#rescanTimer);
    this.#waiting.clear();
    this.#sweeper = null;
    const runs = [...this.#runs.values()];
    for (const run of runs) {
      run.abort(
        'shutdown',
        new RunInterruptedError('the runner is stopping', { detail: { reason: 'shutdown' } }),
      );
    }
    const budget = timeout ?? started.options.stopTimeout;
    let timer: TimerHandle | undefined;
    const timedOut = await Promise.race([
      Promise.all(runs.map((r) => r.done)).then(() => false),
      new Promise<boolean>((resolve) => {
        timer = clock.setTimeout(() => resolve(true), budget);
      }),
    ]);
    clock.clearTimeout(timer);
    if (timedOut) {
      const stuck = runs.filter((r) => this.#runs.has(r.key));
      await Promise.all(stuck.map((r) => this.#forceInterrupt(r, 'shutdown')));
      throw new StopTimeoutError(`${stuck.length} run(s) did not finish within ${budget} ms`, {
        detail: { runs: stuck.map((r) => ({ name: r.name, runId: r.runId })) },
      });
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Timers and passes

  #onDefChange(c: CacheChange<DefRecord>): void {
    if (c.type === 'sync') {
      this.#armAll();
      return;
    }
    const name = c.type === 'put' ? c.entry.value.name : c.prev?.value.name;
    if (name === undefined) return;
    if (
      c.type === 'delete' ||
      (c.type === 'put' && c.prev && c.prev.kv.createRevision !== c.entry.kv.createRevision)
    ) {
      // Removed (or removed and registered again): local runs of the old one are over.
      for (const run of this.#runs.values()) {
        if (run.name === name && (c.type === 'delete' || run.token < c.entry.kv.createRevision)) {
          run.abort(
            'removed',
            new RunInterruptedError(`schedule ${name} was removed`, { detail: { reason: 'removed' } }),
          );
        }
      }
      this.#overlay.delete(name);
    }
    this.#arm(name);
  }

  #armAll(): void {
    for (const name of this.#d.registry.keys()) this.#arm(name);
  }

  /** (Re)arm the timer of `name` at its due time, or after `delay` ms when given. */
  #arm(name: string, delay?: number): void {
    const { clock, time } = this.#d.ctx;
    const old = this.#timers.get(name);
    if (old) {
      clock.clearTimeout(old.handle);
      // Its slot was due, or about to be by this node's estimate of store time (which may trail
      // another node's by a few ms), when a write changed the definition: this node was going
      // for that slot too. Whether another node took it is decided from the view below.
      if (old.due <= time.now() + FIRED_WINDOW_MS) this.#fired.set(name, old.due);
    }
    this.#timers.delete(name);
    if (!this.#start || !this.#d.registry.get(name)?.handler) return;
    const v = this.view(name);
    if (!v) return;
    const due = this.#dueOf(name, v.value);
    // The slot this node went for moved on in the cache without a claim of ours in flight:
    // another node took it.
    const fired = this.#fired.get(name);
    if (fired !== undefined && fired !== due && !this.#claiming.has(name)) this.#reportTakenOne(name);
    if (due === null) return;
    const wait = delay ?? time.until(due);
    this.#timers.set(name, {
      due,
      handle: clock.setTimeout(() => {
        this.#timers.delete(name);
        if (v.value.nextRunAt === due) this.#fired.set(name, due);
        this.#requestPass();
      }, wait),
    });
  }

  /**
   * When `name` next has something to claim on this node: its due time, except that a slot this
   * node's locker refused is not tried again (the next slot is).
   */
  #dueOf(name: string, def: DefRecord): number | null {
    const due = dueAt(def, this.effectiveOf(def), this.#requestsOf(name));
    const refused = this.#refused.get(name);
    if (due === null || refused === undefined || due > refused) return due;
    if (def.pending.some((p) => p.at <= due) || this.#requestsOf(name).length > 0) return due;
    const next = hasFixedSlots(def.trigger) ? slotAfter(basisOf(def), refused) : refused + GATE_RETRY_MS;
    return next === null ? null : Math.max(next, due);
  }

  /**
   * `store.now()`, shared by the callers that ask while a read is in flight (a burst of completions
   * needs one round trip, not one each). A shared answer is at most one round trip old, which only
   * ever makes a due check see a slot as not yet due (it re-arms), never early.
   */
  #storeNow(): Promise<number> {
    this.#nowInFlight ??= this.#d.ctx.store.now().finally(() => {
      this.#nowInFlight = null;
    });
    return this.#nowInFlight;
  }

  /** Ask for a pass soon (coalesced). */
  #requestPass(delay = 0): void {
    if (!this.#start) return;
    if (this.#passRunning) {
      this.#passAgain = true;
      return;
    }
    if (this.#passTimer !== undefined) return;
    this.#passTimer = this.#d.ctx.clock.setTimeout(() => {
      this.#passTimer = undefined;
      void this.#runPass();
    }, delay);
  }

  /** Re-evaluate the local cache now (coalesced). */
  rescan(): void {
    this.#armAll();
    if (this.#passTimer !== undefined) {
      // A pass waiting out a retry backoff: run it now instead.
      this.#d.ctx.clock.clearTimeout(this.#passTimer);
      this.#passTimer = undefined;
    }
    this.#requestPass();
  }

  async #runPass(): Promise<void> {
    if (this.#passRunning) {
      this.#passAgain = true;
      return;
    }
    this.#passRunning = true;
    let retryIn: number | null = null;
    try {
      const more = await this.#pass();
      this.#passFailures = 0;
      if (more) this.#passAgain = true;
    } catch (err) {
      this.#passFailures++;
      if (!this.#start || isRotaError(err, 'ROTA_CLOSED')) return;
      const level = isRotaError(err, 'ROTA_STORE_UNAVAILABLE') ? 'debug' : 'warn';
      if (this.#passFailures === 1 || this.#passFailures % 20 === 0) {
        this.#logger[level]('schedules: claim pass failed; retrying', {
          error: err,
          failures: this.#passFailures,
        });
      }
      retryIn = this.#d.ctx.random() * Math.min(5000, 50 * 2 ** Math.min(this.#passFailures, 10));
    } finally {
      this.#passRunning = false;
      if (retryIn !== null) this.#requestPass(retryIn);
      else if (this.#passAgain) {
        this.#passAgain = false;
        this.#requestPass();
      }
    }
  }

  #capacityLeft(): number {
    const limit = this.#start?.options.concurrency.limit ?? Number.POSITIVE_INFINITY;
    return limit - this.#runs.size - this.#reserved;
  }

  /** One pass; resolves true when `claimLimit` left due work for another pass. */
  async #pass(): Promise<boolean> {
    const start = this.#start;
    if (!start) return false;
    const { ctx, cluster } = this.#d;
    const session = cluster.session;
    if (session.state !== 'live' && session.state !== 'suspect') return false;
    const estimate = ctx.time.now();
    const due: { name: string; at: number }[] = [];
    for (const [name, local] of this.#d.registry) {
      if (!local.handler || this.#claiming.has(name)) continue;
      const v = this.view(name);
      if (!v) continue;
      const at = this.#dueOf(name, v.value);
      if (at !== null && at <= estimate + 1) due.push({ name, at });
    }
    const dueNames = new Set(due.map((d) => d.name));
    for (const name of this.#waiting) if (!dueNames.has(name)) this.#waiting.delete(name);
    this.#reportTaken(dueNames);
    if (due.length === 0) return false;
    due.sort((a, b) => a.at - b.at);
    if (start.options.mode === 'leader' && !cluster.election('rota:schedules').isLeader()) return false;
    if (start.elector) {
      const leads = await start.elector.isLeader({ signal: this.#stop.signal }).catch(() => false);
      if (!leads) {
        for (const d of due) this.#arm(d.name, GATE_RETRY_MS);
        return false;
      }
    }
    // No retry loop here: a failed pass is retried by the pass backoff, which `rescan()` cuts short.
    const storeNow = await this.#storeNow();
    if (this.#start !== start) return false;
    const claims: Promise<void>[] = [];
    let more = false;
    for (const d of due) {
      const v = this.view(d.name);
      if (!v) continue;
      const at = this.#dueOf(d.name, v.value);
      if (at === null) continue;
      if (at > storeNow) {
        // Premature (the estimate ran ahead): wait the rest, measured against the store's answer.
        this.#arm(d.name, at - storeNow);
        continue;
      }
      if (claims.length >= start.options.claimLimit) {
        more = true;
        break;
      }
      if (this.#capacityLeft() <= 0) {
        if (start.options.concurrency.mode === 'wait') this.#waiting.add(d.name);
        else if (this.#limited.get(d.name) !== at) {
          this.#limited.set(d.name, at);
          this.#d.events.emit('concurrency:limited', {
            name: d.name,
            limit: start.options.concurrency.limit,
            running: this.#runs.size + this.#reserved,
          });
        }
        continue;
      }
      this.#waiting.delete(d.name);
      this.#limited.delete(d.name);
      this.#reserved++;
      this.#claiming.add(d.name);
      claims.push(
        this.#claim(d.name, storeNow).finally(() => {
          this.#reserved--;
          this.#claiming.delete(d.name);
          this.#arm(d.name);
          // Capacity held by this claim is free again for definitions held back meanwhile.
          if (this.#waiting.size > 0 || this.#limited.size > 0) this.#requestPass();
        }),
      );
    }
    // With a claim limit a pass ends when its claims are done (so passes are counted); without
    // one the claims proceed on their own and the next due slot needs no wait for them.
    if (Number.isFinite(start.options.claimLimit)) await Promise.all(claims);
    else for (const claim of claims) claim.catch((err) => this.#claimFailed(err));
    return more;
  }

  /** A claim that ran on its own failed: retry it with the pass backoff, like a failed pass. */
  #claimFailed(err: unknown): void {
    if (!this.#start || isRotaError(err, 'ROTA_CLOSED')) return;
    this.#passFailures++;
    const level = isRotaError(err, 'ROTA_STORE_UNAVAILABLE') ? 'debug' : 'warn';
    if (this.#passFailures === 1 || this.#passFailures % 20 === 0) {
      this.#logger[level]('schedules: claim failed; retrying', { error: err, failures: this.#passFailures });
    }
    this.#requestPass(this.#d.ctx.random() * Math.min(5000, 50 * 2 ** Math.min(this.#passFailures, 10)));
  }

  // ----------------------------------------------------------------------------------------------
  // Claim

  async #claim(name: string, storeNow: number): Promise<void> {
    const { ctx, keys, cluster, registry } = this.#d;
    const local = registry.get(name);
    if (!local?.handler) return;
    for (let attempt = 0; attempt < 10; attempt++) {
      if (!this.#start) return;
      const v = this.view(name);
      if (!v) return;
      const def = v.value;
      const eff = this.effectiveOf(def);
      const plan = planClaim(def, storeNow, eff, this.#requestsOf(name), ctx.random);
      if (!plan) {
        // Another node's claim reached the cache first: the slot this node went for is lost.
        this.#reportTakenOne(name);
        return;
      }
      let lock: Lock | null = null;
      const locker = local.locker ?? this.#start.locker;
      if (plan.run && locker && plan.run.kind === 'slot') {
        try {
          lock = await locker.lock(`${name}@${plan.run.slotAt}`, { wait: 0, slotAt: plan.run.slotAt });
        } catch {
          this.#refused.set(name, plan.run.slotAt);
          this.#claimLost(name, plan.run.slotAt, plan.run.runId, 'locker');
          return;
        }
      }
      const sessionId = cluster.session.sessionId;
      const opId = newOpId();
      const next: DefRecord = { ...plan.def, opId };
      const success: TxnOp[] = [];
      const compare: Parameters<typeof ctx.store.txn>[0]['compare'] = [
        { key: keys.def(name), target: 'modRevision', op: '==', value: v.modRevision },
      ];
      let runRecord: RunRecord | null = null;
      if (plan.run) {
        runRecord = newRunRecord(def, plan.run, ctx.nodeId, sessionId, storeNow, opId);
        next.currentRuns = [
          ...next.currentRuns,
          currentOf(plan.run, ctx.nodeId, sessionId, storeNow, eff.timeout),
        ];
        const runKey = keys.run(name, plan.run.runId);
        compare.push({ key: runKey, target: 'version', op: '==', value: 0 });
        success.push({ type: 'put', key: runKey, value: encodeJson(runRecord) });
        if (plan.run.request) {
          const reqKey = keys.request(name, plan.run.request.id);
          compare.push({ key: reqKey, target: 'version', op: '>', value: 0 });
          success.push({ type: 'delete', key: reqKey });
        }
      }
      let skip: RunRecord | null = null;
      if (plan.skip) {
        skip = skipRecord(def, plan.skip, storeNow, opId);
        success.push({ type: 'put', key: keys.run(name, skip.runId), value: encodeJson(skip) });
        for (const id of pushHistory(next, [skip.runId], eff.keepRuns)) {
          success.push({ type: 'delete', key: keys.run(name, id) });
        }
      }
      success.unshift({ type: 'put', key: keys.def(name), value: encodeJson(next) });
      const runKey = plan.run ? keys.run(name, plan.run.runId) : keys.def(name);
      let res: Awaited<ReturnType<typeof ctx.store.txn>>;
      try {
        res = await ctx.retry(
          () =>
            ctx.store.txn({
              compare,
              success,
              failure: [
                { type: 'get', key: keys.def(name) },
                { type: 'get', key: runKey },
              ],
            }),
          this.#stop.signal,
        );
      } catch (err) {
        await lock?.release().catch(() => undefined);
        throw err;
      }
      let token = res.revision;
      let won = res.succeeded;
      if (!won) {
        const fd = res.results[0];
        const fr = res.results[1];
        const freshKv = fd?.type === 'get' ? fd.kv : null;
        const runKv = plan.run && fr?.type === 'get' ? fr.kv : null;
        const runValue = runKv ? decodeRun(runKv) : undefined;
        if (runKv && runValue?.opId === opId) {
          // An ambiguous earlier attempt committed our claim.
          won = true;
          token = runKv.createRevision;
        } else {
          const fresh = freshKv ? decodeDef(freshKv) : undefined;
          if (freshKv && fresh) {
            this.#overlay.set(name, {
              value: fresh,
              modRevision: freshKv.modRevision,
              createRevision: freshKv.createRevision,
            });
          }
          await lock?.release().catch(() => undefined);
          if (!fresh || !freshKv) return;
          if (plan.run) {
            const again = planClaim(
              fresh,
              storeNow,
              this.effectiveOf(fresh),
              this.#requestsOf(name),
              ctx.random,
            );
            if (runKv || again?.run?.runId !== plan.run.runId) {
              this.#fired.delete(name);
              this.#claimLost(name, plan.run.slotAt, plan.run.runId, 'taken');
              return;
            }
          }
          continue;
        }
      }
      this.#overlay.set(name, { value: next, modRevision: token, createRevision: v.createRevision });
      this.#emitPlanEvents(name, plan, skip);
      this.#fired.delete(name);
      if (plan.run && runRecord) {
        this.#ranHere.add(`${name}\u0000${plan.run.runId}`);
        if (this.#ranHere.size > 10_000) this.#ranHere.clear();
        const run = new ActiveRun(name, plan.run.runId, token, runRecord);
        run.lock = lock;
        this.#runs.set(run.key, run);
        void this.#execute(run, eff, local);
      }
      return;
    }
  }

  /** A slot this node was due to claim but found taken by another node: that is a lost claim too. */
  #reportTaken(due: Set<string>): void {
    for (const name of [...this.#fired.keys()]) if (!due.has(name)) this.#reportTakenOne(name);
  }

  #reportTakenOne(name: string): void {
    const slotAt = this.#fired.get(name);
    if (slotAt === undefined) return;
    this.#fired.delete(name);
    const def = this.view(name)?.value;
    const runId = String(slotAt);
    const current = def?.currentRuns.find((c) => c.runId === runId);
    const taken = current
      ? current.owner !== this.#d.ctx.nodeId
      : def?.history.includes(runId) === true && !this.#ranHere.has(`${name}\u0000${runId}`);
    if (taken) this.#claimLost(name, slotAt, runId, 'taken');
  }

  #emitPlanEvents(name: string, plan: Plan, skip: RunRecord | null): void {
    if (skip?.skipped) {
      this.#d.events.emit('schedule:skipped', { name, runId: skip.runId, ...skip.skipped });
    }
    if (plan.exhausted) this.#d.events.emit('schedule:exhausted', { name, reason: plan.exhausted });
  }

  #claimLost(name: string, slotAt: number, runId: string, reason: 'taken' | 'locker'): void {
    this.#d.events.emit('schedule:claim-lost', { name, slotAt, runId, reason });
    const info: ClaimLostInfo = { name, slotAt, runId, reason };
    const hook = this.#hooks(name).onClaimLost;
    if (hook) {
      Promise.resolve()
        .then(() => hook(info))
        .catch((err) => this.#logger.warn(`onClaimLost hook of ${name} threw`, { error: err }));
    }
  }

  #hooks(name: string): ScheduleHooks {
    return { ...this.#start?.defaults.hooks, ...this.#d.registry.get(name)?.hooks };
  }

  // ----------------------------------------------------------------------------------------------
  // Execution

  #context(run: ActiveRun): RunContext {
    const { ctx } = this.#d;
    const threshold = this.#start?.options.interruptThreshold ?? 300_000;
    const record = run.record;
    return {
      name: run.name,
      runId: run.runId,
      slotAt: record.slotAt,
      attempt: record.attempt,
      kind: record.kind === 'skipped' ? 'slot' : record.kind,
      token: run.token,
      signal: run.signal,
      interruptThreshold: threshold,
      nodeId: ctx.nodeId,
      progress: (p: RunProgress, options: { flush?: boolean } = {}) => {
        const checked = checkProgress(p);
        run.progress = checked;
        run.reported = true;
        run.lastReportAt = ctx.time.now();
        this.#d.events.emit('run:progress', { name: run.name, runId: run.runId, progress: checked });
        return options.flush ? this.#bump(run).then(() => undefined) : Promise.resolve();
      },
      heartbeat: () => {
        run.reported = true;
        run.lastReportAt = ctx.time.now();
      },
    };
  }

  async #execute(run: ActiveRun, eff: Effective, local: LocalParts): Promise<void> {
    const { ctx } = this.#d;
    const events = this.#d.events;
    const record = run.record;
    const runCtx = this.#context(run);
    const hooks = this.#hooks(run.name);
    let timeoutTimer: TimerHandle | undefined;
    let outcome: Outcome;
    let thrown: Error | null = null;
    try {
      events.emit('run:starting', {
        name: run.name,
        runId: run.runId,
        slotAt: record.slotAt,
        attempt: record.attempt,
        kind: record.kind,
      });
      let hookError: unknown = null;
      if (hooks.beforeRun) {
        try {
          await hooks.beforeRun(runCtx);
        } catch (err) {
          hookError = err ?? new Error('beforeRun threw');
        }
      }
      if (hookError !== null || run.abortKind === 'removed') {
        outcome = {
          status: 'skipped',
          error: null,
          reason: hookError !== null ? 'hook' : 'removed',
          nextRunIn: null,
          progress: null,
        };
      } else {
        events.emit('run:started', {
          name: run.name,
          runId: run.runId,
          slotAt: record.slotAt,
          startedAt: record.startedAt,
          delayMs: record.startedAt - record.slotAt,
        });
        if (eff.timeout !== null) {
          timeoutTimer = ctx.clock.setTimeout(() => {
            run.abort(
              'timeout',
              new RunTimeoutError(`run ${run.runId} of ${run.name} exceeded ${eff.timeout} ms`),
            );
          }, eff.timeout);
        }
        let result: unknown;
        let error: unknown;
        let failed = false;
        try {
          result = await Promise.resolve().then(() =>
            (local.handler as NonNullable<LocalParts['handler']>)(runCtx),
          );
        } catch (err) {
          failed = true;
          error = err;
        }
        ctx.clock.clearTimeout(timeoutTimer);
        outcome = this.#outcomeOf(run, failed, error, result, eff);
        if (outcome.status !== 'succeeded') thrown = outcome.cause instanceof Error ? outcome.cause : null;
      }
    } catch (err) {
      outcome = {
        status: 'failed',
        error: errorOf(err),
        reason: null,
        nextRunIn: null,
        progress: null,
        cause: err,
      };
    }
    try {
      await this.#complete(run, outcome, eff);
    } catch (err) {
      this.#logger.warn(`schedules: could not record the end of ${run.name}/${run.runId}`, { error: err });
    } finally {
      this.#runs.delete(run.key);
      await run.lock?.release().catch(() => undefined);
      run.finish();
      this.#arm(run.name);
      this.#requestPass();
    }
    if (outcome.status === 'succeeded') {
      if (hooks.afterRun) await safeHook(this.#logger, run.name, 'afterRun', () => hooks.afterRun?.(runCtx));
    } else if (outcome.status === 'failed' || outcome.status === 'interrupted') {
      const err = thrown ?? new HandlerError(outcome.error?.message ?? 'run failed');
      if (hooks.afterRunError)
        await safeHook(this.#logger, run.name, 'afterRunError', () => hooks.afterRunError?.(runCtx, err));
    }
  }

  #outcomeOf(run: ActiveRun, failed: boolean, error: unknown, result: unknown, eff: Effective): Outcome {
    const progress = run.progress;
    if (run.abortKind === 'timeout') {
      const err = new RunTimeoutError(`run ${run.runId} of ${run.name} exceeded ${eff.timeout} ms`, {
        cause: error,
      });
      return {
        status: 'failed',
        error: errorOf(err),
        reason: 'timeout',
        nextRunIn: null,
        progress,
        cause: err,
      };
    }
    if (!failed) {
      let nextRunIn: number | null = null;
      const record = this.view(run.name)?.value;
      if (record?.trigger.kind === 'dynamic') {
        const value =
          typeof result === 'object' && result !== null
            ? (result as { nextRunIn?: unknown }).nextRunIn
            : undefined;
        if (typeof value === 'number' && Number.isInteger(value) && value >= 0) nextRunIn = value;
        else {
          this.#logger.warn(`schedules: ${run.name} returned no valid nextRunIn; using defaultNextRunIn`, {
            value,
          });
          this.#d.events.emit('schedule:invalid-next-run', { name: run.name, runId: run.runId, value });
        }
      }
      return { status: 'succeeded', error: null, reason: null, nextRunIn, progress };
    }
    if (run.abortKind !== null) {
      return {
        status: 'interrupted',
        error: null,
        reason: run.abortKind,
        nextRunIn: null,
        progress,
        cause: error,
      };
    }
    const err =
      error instanceof RotaError
        ? error
        : new HandlerError(
            `handler of ${run.name} failed: ${error instanceof Error ? error.message : String(error)}`,
            {
              cause: error,
            },
          );
    return { status: 'failed', error: errorOf(err), reason: null, nextRunIn: null, progress, cause: err };
  }

  /** The completion txn, fenced by our last write; a lost fence discards the result. */
  async #complete(run: ActiveRun, outcome: Outcome, eff: Effective): Promise<void> {
    const { ctx, keys, events } = this.#d;
    if (run.fenced) {
      events.emit('run:late-completion', { name: run.name, runId: run.runId, status: outcome.status });
      return;
    }
    const res = await run.serialize(async () => {
      const storeNow = await ctx.retry(() => this.#storeNow());
      const def = this.view(run.name);
      return runTxn(ctx, keys, {
        name: run.name,
        runId: run.runId,
        token: run.token,
        runRevision: run.revision,
        ...(def
          ? {
              known: {
                def,
                run: { value: run.record, modRevision: run.revision, createRevision: run.token },
              },
            }
          : {}),
        mutate: (def, rec) => {
          const t = applyTerminal(def, rec, outcome, storeNow, eff, ctx.random);
          return { def: t.def, run: t.run, dropRuns: t.drop };
        },
      });
    });
    if (res.status !== 'ok') {
      events.emit('run:late-completion', { name: run.name, runId: run.runId, status: outcome.status });
      return;
    }
    run.ended = true;
    run.revision = res.revision;
    this.#overlay.set(run.name, {
      value: res.def,
      modRevision: res.revision,
      createRevision: this.view(run.name)?.createRevision ?? 0,
    });
    this.#emitTerminal(res.run, outcome);
    if (
      res.def.state === 'exhausted' &&
      res.def.exhaustedBy === 'stop' &&
      this.view(run.name)?.value.state !== 'exhausted'
    ) {
      events.emit('schedule:exhausted', { name: run.name, reason: 'stop' });
    }
  }

  #emitTerminal(rec: RunRecord, outcome: Outcome): void {
    const events = this.#d.events;
    const base = { name: rec.name, runId: rec.runId, slotAt: rec.slotAt };
    switch (rec.status) {
      case 'succeeded':
        events.emit('run:completed', { ...base, durationMs: (rec.endedAt ?? rec.startedAt) - rec.startedAt });
        break;
      case 'failed': {
        const err =
          outcome.cause instanceof Error
            ? outcome.cause
            : new RotaError((rec.error?.code ?? 'ROTA_HANDLER_FAILED') as never, rec.error?.message);
        events.emit('run:failed', { ...base, error: err });
        break;
      }
      case 'interrupted':
        events.emit('run:interrupted', { ...base, reason: rec.reason ?? 'unknown' });
        break;
      case 'skipped':
        events.emit('schedule:skipped', {
          name: rec.name,
          runId: rec.runId,
          from: rec.slotAt,
          to: rec.slotAt,
          count: 1,
          reason: rec.reason ?? 'hook',
        });
        break;
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Owner monitor

  #armMonitor(): void {
    const start = this.#start;
    if (!start) return;
    this.#monitorTimer = this.#d.ctx.clock.setTimeout(() => {
      void this.#monitorTick().finally(() => this.#armMonitor());
    }, start.options.monitorInterval);
  }

  #armRescan(): void {
    const start = this.#start;
    if (!start) return;
    this.#rescanTimer = this.#d.ctx.clock.setTimeout(() => {
      this.rescan();
      this.#armRescan();
    }, start.options.rescanInterval);
  }

  async #monitorTick(): Promise<void> {
    await Promise.all([...this.#runs.values()].map((r) => this.#bump(r).catch(() => undefined)));
  }

  /** Liveness bump (+ progress): compare our last write; a lost compare aborts the handler. */
  async #bump(run: ActiveRun): Promise<boolean> {
    const { ctx, keys } = this.#d;
    if (run.fenced || !this.#runs.has(run.key)) return false;
    return run.serialize(async () => {
      // A bump queued behind the completion must not rewrite the terminal record.
      if (run.ended || run.fenced) return false;
      const storeNow = await ctx.retry(() => this.#storeNow());
      if (run.ended || run.fenced) return false;
      const record: RunRecord = {
        ...run.record,
        updatedAt: storeNow,
        progress: run.progress ?? run.record.progress,
        lastReportAt: run.reported ? Math.min(storeNow, run.lastReportAt) : run.record.lastReportAt,
        opId: newOpId(),
      };
      const key = keys.run(run.name, run.runId);
      const res = await ctx.retry(() =>
        ctx.store.txn({
          compare: [{ key, target: 'modRevision', op: '==', value: run.revision }],
          success: [{ type: 'put', key, value: encodeJson(record) }],
          failure: [{ type: 'get', key }],
        }),
      );
      if (res.succeeded) {
        run.revision = res.revision;
        run.record = record;
        run.reported = false;
        return true;
      }
      const f = res.results[0];
      const current = f?.type === 'get' && f.kv ? decodeRun(f.kv) : undefined;
      if (current?.opId === record.opId && f?.type === 'get' && f.kv) {
        run.revision = f.kv.modRevision;
        run.record = current;
        return true;
      }
      const reason = current ? (current.reason ?? current.status) : 'removed';
      run.abort(
        current ? 'interrupted' : 'removed',
        new RunInterruptedError(`run ${run.runId} of ${run.name} was interrupted (${reason})`, {
          detail: { reason },
        }),
      );
      return false;
    });
  }

  // ----------------------------------------------------------------------------------------------
  // Session loss, restarts, forced interruption

  #onSessionLost(): void {
    for (const run of this.#runs.values()) {
      run.abort('session-lost', new SessionLostError('the node session was lost while the run was going'));
    }
  }

  /** Boundary's restart rule: runs of this nodeId from an older session are interrupted. */
  async #interruptOldSessions(): Promise<void> {
    const { ctx, cluster } = this.#d;
    const sessionId = cluster.session.sessionId;
    if (!sessionId) return;
    const work: Promise<unknown>[] = [];
    for (const e of this.defs.entries.values()) {
      for (const cr of e.value.currentRuns) {
        if (cr.owner === ctx.nodeId && cr.sessionId !== sessionId) {
          work.push(this.interrupt(e.value.name, cr.runId, 'restarted').catch(() => undefined));
        }
      }
    }
    await Promise.all(work);
  }

  async #forceInterrupt(run: ActiveRun, reason: string): Promise<void> {
    run.fenced = true;
    try {
      await run.serialize(async () => {
        const res = await this.interrupt(run.name, run.runId, reason, {
          runRevision: run.revision,
          token: run.token,
        });
        if (res)
          this.#emitTerminal(res, {
            status: 'interrupted',
            error: null,
            reason,
            nextRunIn: null,
            progress: null,
          });
      });
    } catch (err) {
      this.#logger.warn(`schedules: could not record ${run.name}/${run.runId} as interrupted`, {
        error: err,
      });
    }
  }

  /**
   * Interrupt a running run (sweeper, restart rule, stop timeout): compare `running`, record
   * `interrupted` (or `failed` for a timeout), leave `currentRuns`, queue a re-run per policy.
   */
  async interrupt(
    name: string,
    runId: string,
    reason: string,
    o: { runRevision?: number; token?: number; timeout?: boolean } = {},
  ): Promise<RunRecord | null> {
    const { ctx, keys } = this.#d;
    const storeNow = await ctx.retry(() => this.#storeNow());
    const res = await runTxn(ctx, keys, {
      name,
      runId,
      ...(o.token !== undefined ? { token: o.token } : {}),
      ...(o.runRevision !== undefined ? { runRevision: o.runRevision } : {}),
      mutate: (def, rec) => {
        if (rec.status !== 'running') return 'abort';
        const eff = this.effectiveOf(def);
        const outcome: Outcome = o.timeout
          ? {
              status: 'failed',
              error: { code: 'ROTA_RUN_TIMEOUT', message: `run exceeded its timeout of ${eff.timeout} ms` },
              reason: 'timeout',
              nextRunIn: null,
              progress: null,
            }
          : { status: 'interrupted', error: null, reason, nextRunIn: null, progress: null };
        const t = applyTerminal(def, rec, outcome, storeNow, eff, ctx.random);
        return { def: t.def, run: t.run, dropRuns: t.drop };
      },
    });
    if (res.status !== 'ok') return null;
    const local = this.#runs.get(runKeyOf(name, runId));
    if (local && local.revision !== res.revision) {
      local.abort(
        'interrupted',
        new RunInterruptedError(`run ${runId} of ${name} was interrupted (${reason})`, {
          detail: { reason },
        }),
      );
    }
    return res.run;
  }

  /** Local runs of `name` (for `remove`). */
  localRuns(name: string): ActiveRun[] {
    return [...this.#runs.values()].filter((r) => r.name === name);
  }

  /** The sweeper of this runner (tests drive it directly). */
  get sweeper(): Sweeper | null {
    return this.#sweeper;
  }
}

function errorOf(err: unknown): { code: string; message: string } {
  if (isRotaError(err)) return { code: err.code, message: err.message.slice(0, 1024) };
  const message = err instanceof Error ? err.message : String(err);
  return { code: 'ROTA_HANDLER_FAILED', message: message.slice(0, 1024) };
}

async function safeHook(logger: Logger, name: string, hook: string, fn: () => unknown): Promise<void> {
  try {
    await fn();
  } catch (err) {
    logger.warn(`${hook} hook of ${name} threw; ignored`, { error: err });
  }
}
