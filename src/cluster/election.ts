/**
 * Leader elections (cluster.md §2.4). Candidates are contender keys under
 * `cluster/elections/<name>/`; the oldest live candidate leads and its createRevision is the
 * leadership's fencing token. Every node keeps a watch-fed cache of the candidates, so `leader()`,
 * `observe()` and the synchronous `isLeader()` never poll. The last proclaimed value is also kept in
 * `cluster/election-values/<name>`, so a new leader sees what its predecessor proclaimed.
 */
import { decodeJson, encodeJson, type RotaContext } from '../core/context.js';
import type { EventBus } from '../core/events.js';
import { randomHex } from '../core/ids.js';
import { encodeName } from '../core/keys.js';
import { type CacheEntry, KvCache } from '../core/kv-cache.js';
import { abortedError, isRotaError, NotLeaderError, SessionLostError } from '../errors.js';
import type { KeyValue } from '../store/port.js';
import type { TimerHandle } from '../time/clock.js';
import { Channel } from '../util/channel.js';
import { checkDuration, checkFunction, checkOptions, checkSignal, toJsonText } from '../validate.js';
import { combinedSignal, createContender, waitUntilFirst } from './contender.js';
import type { Elector } from './interfaces.js';
import { LeaseKeeper } from './lease-keeper.js';
import type { Session } from './session.js';

declare module '../core/events.js' {
  interface RotaEventMap {
    'leader:elected': { name: string; nodeId: string; token: number };
    'leader:lost': { name: string; reason: string };
  }
}

/** The current leader of an election as every node sees it. */
export interface LeaderInfo {
  readonly nodeId: string;
  /** The value the leader campaigned with or proclaimed last. */
  readonly value: unknown;
  /** The leadership's fencing token. */
  readonly token: number;
  /** Store time at which it became leader (its candidacy time until it confirms). */
  readonly since: number;
}

/** This node's leadership of one term. */
export interface Leadership {
  readonly name: string;
  /** The candidate key whose createRevision is the token (for writes fenced on leadership). */
  readonly key: string;
  readonly token: number;
  readonly since: number;
  /** Aborts when the leadership is lost or resigned. */
  readonly signal: AbortSignal;
  /** The last value proclaimed by any leader before this term (null if none). */
  readonly previousValue: unknown;
  /** Publish a value to every observer, fenced by the token. */
  proclaim(value: unknown): Promise<void>;
  resign(): Promise<void>;
}

export interface ElectionOptions {
  /** A dedicated lease TTL for the candidacy (ms). Default: the node session's lease. */
  ttl?: number;
  /** The value campaigned with (JSON). Default null. */
  value?: unknown;
}

interface Candidate {
  nodeId: string;
  sessionId: string;
  value: string | null;
  createdAt: number;
  leaderSince?: number;
}

function decodeCandidate(kv: KeyValue): Candidate | undefined {
  const c = decodeJson<Candidate>(kv.value);
  return typeof c === 'object' && c !== null && typeof c.nodeId === 'string' ? c : undefined;
}

function infoOf(entry: CacheEntry<Candidate> | undefined): LeaderInfo | null {
  if (!entry) return null;
  const c = entry.value;
  return {
    nodeId: c.nodeId,
    value: c.value === null ? null : JSON.parse(c.value),
    token: entry.kv.createRevision,
    since: c.leaderSince ?? c.createdAt,
  };
}

/**
 * The current leader of every election that has a candidate, read from the store in one range,
 * sorted by name. For admin views (`rota status`, the dashboard).
 */
export async function listLeaders(
  ctx: RotaContext,
): Promise<(LeaderInfo & { name: string; candidates: number })[]> {
  const root = ctx.keys.prefix('cluster', 'elections');
  const { kvs } = await ctx.retry(() => ctx.store.range(root));
  const byName = new Map<string, KeyValue[]>();
  for (const kv of kvs) {
    const [name] = ctx.keys.rest(root, kv.key);
    if (name === undefined) continue;
    byName.set(name, [...(byName.get(name) ?? []), kv]);
  }
  const out: (LeaderInfo & { name: string; candidates: number })[] = [];
  for (const [name, list] of byName) {
    const entries = list
      .map((kv) => ({ kv, value: decodeCandidate(kv) }))
      .filter((e): e is CacheEntry<Candidate> => e.value !== undefined)
      .sort((a, b) => a.kv.createRevision - b.kv.createRevision);
    const info = infoOf(entries[0]);
    if (info) out.push({ name, ...info, candidates: entries.length });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function sameLeader(a: LeaderInfo | null, b: LeaderInfo | null): boolean {
  if (a === null || b === null) return a === b;
  return a.token === b.token && a.nodeId === b.nodeId && JSON.stringify(a.value) === JSON.stringify(b.value);
}

class ActiveLeadership implements Leadership {
  readonly #controller = new AbortController();
  #ended = false;

  constructor(
    private readonly election: Election,
    private readonly ctx: RotaContext,
    readonly name: string,
    readonly key: string,
    readonly token: number,
    readonly since: number,
    readonly previousValue: unknown,
    private readonly candidate: Candidate,
    private readonly leaseId: string,
    readonly keeper: LeaseKeeper | null,
  ) {}

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get held(): boolean {
    return !this.#ended;
  }

  /** End the term (idempotent); returns false if it had already ended. */
  end(reason: string, error: Error): boolean {
    if (this.#ended) return false;
    this.#ended = true;
    this.#controller.abort(error);
    this.election.onTermEnded(this, reason);
    return true;
  }

  async proclaim(value: unknown): Promise<void> {
    const text = toJsonText('value', value, this.ctx.options.maxPayloadBytes);
    if (this.#ended)
      throw new NotLeaderError(`no longer the leader of ${this.name}`, { detail: { name: this.name } });
    this.candidate.value = text;
    const res = await this.ctx.retry(() =>
      this.ctx.store.txn({
        compare: [{ key: this.key, target: 'createRevision', op: '==', value: this.token }],
        success: [
          { type: 'put', key: this.key, value: encodeJson(this.candidate), lease: this.leaseId },
          {
            type: 'put',
            key: this.election.valueKey,
            value: encodeJson({ value: text, token: this.token, nodeId: this.ctx.nodeId }),
          },
        ],
      }),
    );
    if (!res.succeeded) {
      throw new NotLeaderError(`no longer the leader of ${this.name}`, { detail: { name: this.name } });
    }
  }

  async resign(): Promise<void> {
    const wasHeld = this.end(
      'resigned',
      new NotLeaderError(`resigned from ${this.name}`, { detail: { name: this.name } }),
    );
    if (!wasHeld && !this.keeper) return;
    await this.ctx.store
      .txn({
        compare: [{ key: this.key, target: 'createRevision', op: '==', value: this.token }],
        success: [{ type: 'delete', key: this.key }],
      })
      .catch((err) => this.ctx.logger.debug('resign delete failed; the lease will expire', { error: err }));
    await this.keeper?.revoke();
  }
}

export class Election {
  readonly prefix: string;
  readonly valueKey: string;
  readonly #cache: KvCache<Candidate>;
  readonly #stop = new AbortController();
  #cacheStarted: Promise<void> | null = null;
  #campaign: Promise<Leadership> | null = null;
  #leadership: ActiveLeadership | null = null;
  #observers = new Set<() => void>();
  #electorRunning = false;
  #electorQueued: Promise<void> | null = null;
  #closed = false;
  readonly #ttl: number | undefined;
  readonly #value: string | null;

  constructor(
    private readonly ctx: RotaContext,
    private readonly session: Session,
    private readonly events: EventBus,
    readonly name: string,
    options: ElectionOptions,
  ) {
    this.#ttl = options.ttl === undefined ? undefined : checkDuration('options.ttl', options.ttl, 1000);
    this.#value =
      options.value === undefined
        ? null
        : toJsonText('options.value', options.value, ctx.options.maxPayloadBytes);
    this.prefix = ctx.keys.prefix('cluster', 'elections', encodeName(name));
    this.valueKey = ctx.keys.key('cluster', 'election-values', encodeName(name));
    this.#cache = new KvCache<Candidate>({
      store: ctx.store,
      prefix: this.prefix,
      decode: decodeCandidate,
      clock: ctx.clock,
      random: ctx.random,
      logger: ctx.logger,
      onChange: (change) => {
        const mine = this.#leadership;
        if (mine && change.type !== 'put' && !this.#cache.entries.has(mine.key)) {
          // Our candidate key is gone (lease expired, deleted by an admin): the term is over.
          mine.end('candidacy deleted', new NotLeaderError(`candidacy for ${this.name} was deleted`));
        }
        for (const notify of this.#observers) notify();
      },
    });
    ctx.closing.addEventListener('abort', () => this.#stop.abort(), { once: true });
  }

  /** The effective candidacy TTL (undefined: the session lease). */
  get ttl(): number | undefined {
    return this.#ttl;
  }

  #ensureCache(): Promise<void> {
    this.#cacheStarted ??= this.#cache.start(this.#stop.signal);
    return this.#cacheStarted;
  }

  #oldest(): CacheEntry<Candidate> | undefined {
    let oldest: CacheEntry<Candidate> | undefined;
    for (const e of this.#cache.entries.values()) {
      if (!oldest || e.kv.createRevision < oldest.kv.createRevision) oldest = e;
    }
    return oldest;
  }

  /** The current leader (the oldest live candidate), or null. */
  async leader(): Promise<LeaderInfo | null> {
    this.ctx.assertOpen();
    await this.#ensureCache();
    return infoOf(this.#oldest());
  }

  /**
   * True only while this node's candidate is the oldest in the cache, its lease is held and the
   * local deadline has not passed. Synchronous.
   */
  isLeader(): boolean {
    const mine = this.#leadership;
    if (!mine?.held) return false;
    if (mine.keeper ? !mine.keeper.held : this.session.state !== 'live' && this.session.state !== 'suspect') {
      return false;
    }
    const deadline = mine.keeper ? mine.keeper.localDeadline : this.session.localDeadline;
    if (this.ctx.clock.monotonic() >= deadline) return false;
    return this.#oldest()?.kv.key === mine.key;
  }

  /** Throw `ROTA_NOT_LEADER` unless {@link isLeader}. */
  assertLeader(): void {
    if (!this.isLeader())
      throw new NotLeaderError(`this node does not lead ${this.name}`, { detail: { name: this.name } });
  }

  /** This node's current leadership, if any. */
  get leadership(): Leadership | null {
    return this.#leadership?.held ? this.#leadership : null;
  }

  /**
   * Campaign and resolve with the leadership once this node leads. If it already leads, resolves
   * with the current leadership at once. Rejects with `ROTA_ABORTED` when the signal aborts
   * (the candidacy is withdrawn) and `ROTA_SESSION_LOST` when the lease is lost while waiting.
   */
  campaign(options: { signal?: AbortSignal; value?: unknown } = {}): Promise<Leadership> {
    checkOptions('options', options, ['signal', 'value']);
    checkSignal('options.signal', options.signal);
    const value =
      options.value === undefined
        ? this.#value
        : toJsonText('options.value', options.value, this.ctx.options.maxPayloadBytes);
    this.ctx.assertOpen();
    if (this.#leadership?.held) return Promise.resolve(this.#leadership);
    this.#campaign ??= this.#runCampaign(value, options.signal).finally(() => {
      this.#campaign = null;
    });
    return this.#campaign;
  }

  async #runCampaign(value: string | null, signal: AbortSignal | undefined): Promise<Leadership> {
    await this.#ensureCache();
    this.session.assertUsable();
    await this.session.waitLive(signal);
    const keeper =
      this.#ttl !== undefined
        ? await LeaseKeeper.grant(
            this.ctx,
            this.#ttl,
            {},
            {
              ...(signal ? { signal } : {}),
              lostError: (reason) => new NotLeaderError(`leadership of ${this.name} lost: ${reason}`),
            },
          )
        : null;
    const leaseId = keeper?.id ?? this.session.leaseId;
    const leaseSignal = keeper?.signal ?? this.session.signal;
    if (!leaseId || leaseSignal.aborted)
      throw new SessionLostError('the session was lost before campaigning');
    const key = this.prefix + `${encodeName(this.ctx.nodeId)}.${randomHex(6)}`;
    const candidate: Candidate = {
      nodeId: this.ctx.nodeId,
      sessionId: this.session.sessionId,
      value,
      createdAt: this.ctx.time.now(),
    };
    const wait = combinedSignal(this.ctx, [signal, leaseSignal, this.#stop.signal]);
    let token = 0;
    try {
      token = await createContender(this.ctx, key, encodeJson(candidate), leaseId, wait.signal);
      const outcome = await waitUntilFirst(this.ctx, this.prefix, key, token, wait.signal, () => {
        this.#resolveQueued();
      });
      if (outcome === 'gone')
        throw new SessionLostError(`the candidacy for ${this.name} vanished while waiting`);
    } catch (err) {
      this.#resolveQueued();
      if (token > 0) {
        await this.ctx.store
          .txn({
            compare: [{ key, target: 'createRevision', op: '==', value: token }],
            success: [{ type: 'delete', key }],
          })
          .catch(() => undefined);
      }
      await keeper?.revoke();
      if (signal?.aborted) throw abortedError(signal);
      if (leaseSignal.aborted)
        throw new SessionLostError(`the lease was lost while campaigning for ${this.name}`);
      throw err;
    } finally {
      wait.dispose();
    }
    const since = this.ctx.time.now();
    candidate.leaderSince = since;
    let previousValue: unknown = null;
    try {
      const res = await this.ctx.retry(() =>
        this.ctx.store.txn({
          compare: [{ key, target: 'createRevision', op: '==', value: token }],
          success: [
            { type: 'put', key, value: encodeJson(candidate), lease: leaseId },
            { type: 'get', key: this.valueKey },
          ],
        }),
      );
      const got = res.results[1];
      if (got?.type === 'get' && got.kv)
        previousValue = JSON.parse(decodeJson<{ value: string }>(got.kv.value).value);
      // isLeader() reads the cache: let it catch up with what we just verified.
      await this.#cache.waitFor(res.revision, this.#stop.signal);
    } catch (err) {
      this.ctx.logger.debug('could not record leaderSince', { error: err });
    }
    const leadership = new ActiveLeadership(
      this,
      this.ctx,
      this.name,
      key,
      token,
      since,
      previousValue,
      candidate,
      leaseId,
      keeper,
    );
    this.#leadership = leadership;
    const onLeaseLost = () =>
      leadership.end('lease lost', new NotLeaderError(`leadership of ${this.name} lost: the lease was lost`));
    if (leaseSignal.aborted) onLeaseLost();
    else leaseSignal.addEventListener('abort', onLeaseLost, { once: true });
    leadership.signal.addEventListener('abort', () => leaseSignal.removeEventListener('abort', onLeaseLost), {
      once: true,
    });
    this.#resolveQueued();
    this.events.emit('leader:elected', { name: this.name, nodeId: this.ctx.nodeId, token });
    return leadership;
  }

  /** @internal Called by a leadership when its term ends. */
  onTermEnded(leadership: ActiveLeadership, reason: string): void {
    if (this.#leadership === leadership) this.#leadership = null;
    leadership.keeper?.abandon();
    this.events.emit('leader:lost', { name: this.name, reason });
    for (const notify of this.#observers) notify();
  }

  /** Resign this node's leadership (the next oldest candidate leads). No-op when not leading. */
  async resign(): Promise<void> {
    await this.#leadership?.resign();
  }

  /**
   * Loop forever: campaign, then call `fn(leadership)`. A term ends when the leadership is lost
   * (`leadership.signal` aborts), not when `fn` returns. After a loss it campaigns again. When
   * `signal` aborts it resigns and resolves.
   */
  async lead(fn: (leadership: Leadership) => unknown, options: { signal?: AbortSignal } = {}): Promise<void> {
    checkFunction('fn', fn);
    checkOptions('options', options, ['signal']);
    const signal = checkSignal('options.signal', options.signal);
    const outer = combinedSignal(this.ctx, [signal, this.#stop.signal]);
    try {
      while (!outer.signal.aborted) {
        let leadership: Leadership;
        try {
          leadership = await this.campaign({ signal: outer.signal });
        } catch (err) {
          if (outer.signal.aborted) break;
          if (isRotaError(err, 'ROTA_CLOSED')) break;
          if (isRotaError(err, 'ROTA_SESSION_LOST') && !this.ctx.options.reconnect) throw err;
          // Lost the lease while waiting: wait for the session to come back, then campaign again.
          await this.session.waitLive(outer.signal).catch(() => undefined);
          await new Promise<void>((r) => this.ctx.clock.setTimeout(r, 20 + this.ctx.random() * 80));
          continue;
        }
        Promise.resolve()
          .then(() => fn(leadership))
          .catch((err) => this.ctx.logger.error(`leader function of ${this.name} failed`, { error: err }));
        await new Promise<void>((resolve) => {
          const term = combinedSignal(this.ctx, [leadership.signal, outer.signal]);
          term.signal.addEventListener(
            'abort',
            () => {
              term.dispose();
              resolve();
            },
            { once: true },
          );
        });
        if (outer.signal.aborted) await leadership.resign();
      }
    } finally {
      outer.dispose();
    }
  }

  /**
   * Stream the leader: the current value first, then only real changes of leader or value.
   * Ends when the signal aborts or the node closes.
   */
  observe(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<LeaderInfo | null> {
    checkOptions('options', options, ['signal']);
    checkSignal('options.signal', options.signal);
    this.ctx.assertOpen();
    let last: LeaderInfo | null | undefined;
    const notify = () => {
      const current = infoOf(this.#oldest());
      if (last !== undefined && sameLeader(last, current)) return;
      last = current;
      out.push(current);
    };
    const out = new Channel<LeaderInfo | null>({
      signal: options.signal,
      onClose: () => this.#observers.delete(notify),
    });
    const end = () => out.end();
    this.#stop.signal.addEventListener('abort', end, { once: true });
    void this.#ensureCache().then(() => {
      if (out.closed) return;
      this.#observers.add(notify);
      notify();
    });
    return out;
  }

  #resolveQueuedFn: (() => void) | null = null;
  #resolveQueued(): void {
    this.#resolveQueuedFn?.();
    this.#resolveQueuedFn = null;
  }

  /**
   * The gocron `Elector` adapter. The first `isLeader()` starts a background `lead()` (campaigning
   * again after every loss) and waits until this node knows whether it leads or queues; every call
   * resolves the cached flag.
   */
  elector(): Elector {
    return {
      isLeader: async (options: { signal?: AbortSignal } = {}) => {
        checkOptions('options', options, ['signal']);
        if (this.#closed || this.ctx.closed) return false;
        if (!this.#electorRunning) {
          this.#electorRunning = true;
          this.#electorQueued = new Promise<void>((resolve) => {
            this.#resolveQueuedFn = resolve;
          });
          void this.lead(() => undefined).catch((err) =>
            this.ctx.logger.warn('elector stopped', { error: err }),
          );
        }
        if (this.#electorQueued) {
          const queued = this.#electorQueued;
          await Promise.race([
            queued,
            new Promise<void>((resolve) =>
              options.signal?.addEventListener('abort', () => resolve(), { once: true }),
            ),
          ]);
        }
        return this.isLeader();
      },
    };
  }

  /** Resign (bounded by 5 s; the lease expiry removes the candidacy otherwise) and stop watching. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const resign = this.resign().catch(() => undefined);
    let timer: TimerHandle | undefined;
    await Promise.race([resign, new Promise<void>((r) => (timer = this.ctx.clock.setTimeout(r, 5000)))]);
    this.ctx.clock.clearTimeout(timer);
    this.#stop.abort();
  }
}
