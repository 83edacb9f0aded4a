/**
 * The node session (cluster.md §2.1): one store lease plus the member key
 * `cluster/members/<nodeId>` attached to it, kept alive by a {@link LeaseKeeper} (keep-alive every
 * ttl/3, suspect after ttl/2, lost at the local deadline, which passes before the store can expire
 * the lease). With `reconnect` (the default) a lost session is replaced by a new one: a new lease,
 * a new `sessionId`, the same `nodeId`.
 */
import { hostname } from 'node:os';
import { decodeJson, encodeJson, type RotaContext } from '../core/context.js';
import { randomHex } from '../core/ids.js';
import { encodeName } from '../core/keys.js';
import { ClosedError, NodeIdInUseError, SessionLostError } from '../errors.js';
import { LeaseKeeper } from './lease-keeper.js';

export type SessionState = 'connecting' | 'live' | 'suspect' | 'lost' | 'closed';

/** What a node advertises it can run: names of registered handlers per module. */
export interface MemberCapabilities {
  schedules: string[];
  queues: string[];
  pools: string[];
  hosts: string[];
}

/** The member record stored at `cluster/members/<nodeId>`. */
export interface MemberRecord {
  nodeId: string;
  sessionId: string;
  hostname: string;
  pid: number;
  labels: Record<string, string>;
  version: string;
  startedAt: number;
  capabilities: MemberCapabilities;
}

export const ROTA_VERSION = '0.1.0';

declare module '../core/events.js' {
  interface RotaEventMap {
    'session:started': { nodeId: string; sessionId: string; leaseId: string };
    'session:suspect': { nodeId: string; sessionId: string };
    'session:live': { nodeId: string; sessionId: string };
    'session:lost': { nodeId: string; sessionId: string; reason: string };
    'session:closed': { nodeId: string; sessionId: string };
    'lease:lost': { lease: string; reason: string };
    'clock:skew': { skewMs: number };
  }
}

export class Session {
  #state: SessionState = 'connecting';
  #sessionId = '';
  #keeper: LeaseKeeper | null = null;
  readonly #memberKey: string;
  #memberRevision = 0;
  #notStarted = AbortSignal.abort(new SessionLostError('the session has not started'));
  #capabilities: MemberCapabilities = { schedules: [], queues: [], pools: [], hosts: [] };
  #writeChain: Promise<void> = Promise.resolve();
  #startedAt = 0;
  #liveWaiters: (() => void)[] = [];
  #reconnecting: Promise<void> | null = null;

  constructor(private readonly ctx: RotaContext) {
    this.#memberKey = ctx.keys.key('cluster', 'members', encodeName(ctx.nodeId));
  }

  get nodeId(): string {
    return this.ctx.nodeId;
  }

  /** Changes on every (re)connect. */
  get sessionId(): string {
    return this.#sessionId;
  }

  get state(): SessionState {
    return this.#state;
  }

  /** Aborts (reason `ROTA_SESSION_LOST`) when this session incarnation is lost or closed. */
  get signal(): AbortSignal {
    return this.#keeper?.signal ?? this.#notStarted;
  }

  /** The lease of the current incarnation (null while connecting). */
  get leaseId(): string | null {
    return this.#keeper?.id ?? null;
  }

  get ttl(): number {
    return this.#keeper?.ttl ?? this.ctx.options.sessionTtl;
  }

  /** createRevision of the member key of this session incarnation. */
  get memberRevision(): number {
    return this.#memberRevision;
  }

  get memberKey(): string {
    return this.#memberKey;
  }

  /** Local monotonic time at which this session counts as lost without another acknowledged keep-alive. */
  get localDeadline(): number {
    return this.#keeper?.localDeadline ?? 0;
  }

  /** Estimated store time at which the store would expire the lease without further keep-alives. */
  get estimatedExpiry(): number {
    const sent = this.#keeper?.lastAckSent ?? this.ctx.clock.monotonic();
    return Math.round(this.ctx.time.now() + (sent + this.ttl - this.ctx.clock.monotonic()));
  }

  /** Throw unless the session can be used: `ROTA_CLOSED` after close, `ROTA_SESSION_LOST` when lost for good. */
  assertUsable(): void {
    if (this.#state === 'closed') throw new ClosedError('this Rota node is closed');
    if (this.#state === 'lost' && !this.ctx.options.reconnect) {
      throw new SessionLostError('the session was lost and reconnect is off');
    }
  }

  /** Resolve when the session is live (or reject with ROTA_SESSION_LOST / ROTA_CLOSED / the signal's reason). */
  async waitLive(signal?: AbortSignal): Promise<void> {
    for (;;) {
      this.assertUsable();
      if (this.#state === 'live' || this.#state === 'suspect') return;
      if (signal?.aborted) throw signal.reason;
      await new Promise<void>((resolve) => {
        const done = () => {
          signal?.removeEventListener('abort', done);
          resolve();
        };
        this.#liveWaiters.push(done);
        signal?.addEventListener('abort', done, { once: true });
      });
    }
  }

  /** First connect: grant the lease and create the member key (`ROTA_NODE_ID_IN_USE` if taken). */
  async start(signal?: AbortSignal): Promise<void> {
    await this.#connect(false, signal);
  }

  #record(sessionId: string): MemberRecord {
    return {
      nodeId: this.ctx.nodeId,
      sessionId,
      hostname: hostname(),
      pid: process.pid,
      labels: { ...this.ctx.options.labels },
      version: ROTA_VERSION,
      startedAt: this.#startedAt,
      capabilities: this.#capabilities,
    };
  }

  async #connect(replacing: boolean, signal?: AbortSignal): Promise<void> {
    const { store } = this.ctx;
    const sessionId = randomHex(8);
    const keeper = await LeaseKeeper.grant(
      this.ctx,
      this.ctx.options.sessionTtl,
      {
        onSuspect: () => this.#setState('suspect'),
        onLive: () => this.#setState('live'),
        onLost: (reason) => this.#lose(keeper, reason),
      },
      {
        ...(signal ? { signal } : {}),
        lostError: (reason) =>
          new SessionLostError(`session lost: ${reason}`, { detail: { sessionId, reason } }),
      },
    );
    try {
      this.#startedAt ||= this.ctx.time.now();
      const value = encodeJson(this.#record(sessionId));
      // A fresh node must find the key absent; a reconnecting node may replace its own previous
      // record, which the store may not have expired yet.
      const put = { type: 'put' as const, key: this.#memberKey, value, lease: keeper.id };
      let expected = replacing ? this.#memberRevision : 0;
      let revision = 0;
      for (let attempt = 0; revision === 0; attempt++) {
        const res = await this.ctx.retry(
          () =>
            store.txn({
              compare: [{ key: this.#memberKey, target: 'createRevision', op: '==', value: expected }],
              success: [put],
              failure: [{ type: 'get', key: this.#memberKey }],
            }),
          signal,
        );
        if (res.succeeded) {
          // The member key's createRevision fences later writes; a put over an existing key keeps it.
          revision = expected === 0 ? res.revision : expected;
          break;
        }
        const current = res.results[0]?.type === 'get' ? res.results[0].kv : null;
        const theirs = current ? safeDecode(current.value) : null;
        if (current && theirs?.sessionId === sessionId && current.lease === keeper.id) {
          // The new sessionId doubles as the op id: an earlier, ambiguous attempt of this very write
          // landed (cluster.md §5), so the key is ours already.
          revision = current.createRevision;
          break;
        }
        const stale = replacing && theirs?.nodeId === this.ctx.nodeId && theirs.sessionId === this.#sessionId;
        if ((current && !stale) || attempt >= 3) {
          throw new NodeIdInUseError(`another live session uses node id ${this.ctx.nodeId}`, {
            detail: { nodeId: this.ctx.nodeId, sessionId: theirs?.sessionId },
          });
        }
        // The old key vanished meanwhile, or is our own stale one: take the id from its current state.
        expected = current?.createRevision ?? 0;
      }
      this.#keeper = keeper;
      this.#sessionId = sessionId;
      this.#memberRevision = revision;
      this.#setState('live');
      this.ctx.events.emit('session:started', { nodeId: this.ctx.nodeId, sessionId, leaseId: keeper.id });
    } catch (err) {
      await keeper.revoke();
      throw err;
    }
  }

  #setState(state: SessionState): void {
    const was = this.#state;
    if (was === state) return;
    this.#state = state;
    if (state === 'live' || state === 'suspect') {
      const waiters = this.#liveWaiters;
      this.#liveWaiters = [];
      for (const w of waiters) w();
    }
    const ids = { nodeId: this.ctx.nodeId, sessionId: this.#sessionId };
    if (state === 'suspect' && was === 'live') this.ctx.events.emit('session:suspect', ids);
    if (state === 'live' && was === 'suspect') this.ctx.events.emit('session:live', ids);
  }

  #lose(keeper: LeaseKeeper, reason: string): void {
    if (keeper !== this.#keeper || this.#state === 'closed') return;
    this.#setState('lost');
    this.ctx.events.emit('session:lost', { nodeId: this.ctx.nodeId, sessionId: this.#sessionId, reason });
    this.ctx.events.emit('lease:lost', { lease: keeper.id, reason });
    if (this.ctx.options.reconnect && !this.ctx.closed) this.#reconnect();
  }

  #reconnect(): void {
    if (this.#reconnecting) return;
    this.#reconnecting = (async () => {
      let attempt = 0;
      while (this.#state === 'lost' && !this.ctx.closed) {
        try {
          await this.ctx.time.sync(1).catch(() => undefined);
          await this.#connect(true, this.ctx.closing);
          return;
        } catch (err) {
          if (this.ctx.closed) return;
          attempt++;
          if (attempt === 1 || attempt % 10 === 0) {
            this.ctx.logger.warn('session reconnect failed; retrying', { error: err, attempt });
          }
          const delay = this.ctx.random() * Math.min(5000, 100 * 2 ** Math.min(attempt, 6));
          await new Promise<void>((resolve) => this.ctx.clock.setTimeout(resolve, delay));
        }
      }
    })().finally(() => {
      this.#reconnecting = null;
    });
  }

  /**
   * Replace this node's advertised handler names for one module (e.g. `queues`). Writes are
   * serialized and fenced on the member key of the current session.
   */
  setCapabilities(kind: keyof MemberCapabilities, names: string[]): Promise<void> {
    this.#capabilities = { ...this.#capabilities, [kind]: [...new Set(names)].sort() };
    const write = async () => {
      const keeper = this.#keeper;
      if (!keeper?.held) return; // written with the record on the next connect
      await this.ctx.retry(() =>
        this.ctx.store.txn({
          compare: [
            { key: this.#memberKey, target: 'createRevision', op: '==', value: this.#memberRevision },
          ],
          success: [
            {
              type: 'put',
              key: this.#memberKey,
              value: encodeJson(this.#record(this.#sessionId)),
              lease: keeper.id,
            },
          ],
        }),
      );
    };
    this.#writeChain = this.#writeChain.then(write, write).catch((err) => {
      this.ctx.logger.warn('could not update member capabilities', { error: err });
    });
    return this.#writeChain;
  }

  get capabilities(): MemberCapabilities {
    return this.#capabilities;
  }

  /** Treat the session as lost now, as if its local deadline had passed (fault-injection harnesses). */
  expireLocally(reason = 'forced'): void {
    this.#keeper?.lose(reason);
  }

  /** Revoke the lease (deleting the member key and everything on it) and end the session. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    const sessionId = this.#sessionId;
    this.#setState('closed');
    for (const w of this.#liveWaiters.splice(0)) w();
    await this.#reconnecting?.catch(() => undefined);
    await this.#keeper?.revoke();
    this.ctx.events.emit('session:closed', { nodeId: this.ctx.nodeId, sessionId });
  }
}

function safeDecode(bytes: Uint8Array): MemberRecord | null {
  try {
    return decodeJson<MemberRecord>(bytes);
  } catch {
    return null;
  }
}
