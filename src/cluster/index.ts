/**
 * The cluster module (cluster.md): the node session, membership, fenced locks, leader elections
 * and distributed tickers, built on the store port only.
 */
import type { RotaContext } from '../core/context.js';
import { checkName, checkOptions } from '../validate.js';
import { Election, type ElectionOptions, type LeaderInfo, listLeaders } from './election.js';
import type { Locker, LockOptions } from './interfaces.js';
import { createLocker, type LockerOptions } from './lockers.js';
import { type HeldLock, Locks } from './locks.js';
import { type Member, type MemberEvent, Membership } from './members.js';
import { Session } from './session.js';
import { Ticker, type TickerOptions } from './ticker.js';

export class Cluster {
  readonly session: Session;
  readonly #members: Membership;
  readonly #locks: Locks;
  readonly #elections = new Map<string, Election>();

  constructor(private readonly ctx: RotaContext) {
    this.session = new Session(ctx);
    this.#members = new Membership(ctx, ctx.events);
    this.#locks = new Locks(ctx, this.session, ctx.events);
    ctx.onClose(async () => {
      await Promise.all([...this.#elections.values()].map((e) => e.close()));
    });
  }

  /** @internal Connect the session and start the membership cache (called by Rota.connect). */
  async start(signal?: AbortSignal): Promise<void> {
    await this.session.start(signal);
    await this.#members.start();
  }

  // ----------------------------------------------------------------------------------------------
  // Membership

  /** Live members, from the watch-fed cache (or read now with `fresh: true`). */
  members(options: { fresh?: boolean } = {}): Promise<Member[]> {
    return this.#members.list(options);
  }

  /** A live member by node id, from the cache. */
  member(nodeId: string): Member | undefined {
    return this.#members.get(nodeId);
  }

  /** Membership events: `sync` first, then `joined` / `updated` / `left`, resumable, gap-free. */
  watchMembers(
    options: { signal?: AbortSignal; fromRevision?: number } = {},
  ): AsyncIterableIterator<MemberEvent> {
    return this.#members.watch(options);
  }

  /** @internal The membership cache (modules use it to judge owners' liveness). */
  get membership(): Membership {
    return this.#members;
  }

  // ----------------------------------------------------------------------------------------------
  // Locks

  /** Acquire a fenced lock (see docs/cluster.md). */
  lock(name: string, options?: LockOptions): Promise<HeldLock> {
    return this.#locks.lock(name, options);
  }

  /** Acquire only if free now; `null` when held by someone else. */
  tryLock(name: string, options?: Omit<LockOptions, 'wait'>): Promise<HeldLock | null> {
    return this.#locks.tryLock(name, options);
  }

  /** Acquire, run `fn`, always release; `ROTA_LOCK_LOST` if the lock was lost meanwhile. */
  withLock<T>(name: string, fn: (lock: HeldLock) => Promise<T> | T, options?: LockOptions): Promise<T> {
    return this.#locks.withLock(name, fn, options);
  }

  /** Admin: take a lock away from its holder. Resolves whether a holder existed. */
  forceUnlock(name: string): Promise<boolean> {
    return this.#locks.forceUnlock(name);
  }

  /** The current holder of a lock, read from the store. */
  lockHolder(name: string): Promise<{ nodeId: string; token: number; value: unknown } | null> {
    return this.#locks.holder(name);
  }

  /** Every held lock (`{ name, nodeId, token, value, waiting }`), read from the store, sorted by name. */
  locks(): Promise<{ name: string; nodeId: string; token: number; value: unknown; waiting: number }[]> {
    return this.#locks.list();
  }

  /** A gocron-style `Locker`: `mode: 'exclusive'` (default) or `'slot'`. */
  locker(options?: LockerOptions): Locker {
    this.ctx.assertOpen();
    return createLocker(this.ctx, this.#locks, options);
  }

  // ----------------------------------------------------------------------------------------------
  // Elections

  /** The election `name` on this node (one object per name; options apply on first use). */
  election(name: string, options: ElectionOptions = {}): Election {
    checkName('name', name);
    checkOptions('options', options, ['ttl', 'value']);
    this.ctx.assertOpen();
    let election = this.#elections.get(name);
    if (!election) {
      election = new Election(this.ctx, this.session, this.ctx.events, name, options);
      this.#elections.set(name, election);
    }
    return election;
  }

  /** The current leader of every election with a candidate (`{ name, nodeId, token, since, value, candidates }`), read from the store. */
  leaders(): Promise<(LeaderInfo & { name: string; candidates: number })[]> {
    this.ctx.assertOpen();
    return listLeaders(this.ctx);
  }

  // ----------------------------------------------------------------------------------------------
  // Tickers

  /** A distributed ticker: each tick goes to exactly one ready node. */
  ticker(name: string, intervalMs: number, options?: TickerOptions): Promise<Ticker> {
    return Ticker.create(this.ctx, this.ctx.events, name, intervalMs, options);
  }
}

export type { Election, ElectionOptions, LeaderInfo, Leadership } from './election.js';
export type { Elector, Lock, Locker, LockerLockOptions, LockOptions } from './interfaces.js';
export { adaptElector, adaptLocker, LOCKER_DEFAULTS, type LockerOptions } from './lockers.js';
export type { HeldLock } from './locks.js';
export type { Member, MemberEvent } from './members.js';
export { type MemberCapabilities, type MemberRecord, Session, type SessionState } from './session.js';
export type { Tick, Ticker, TickerOptions } from './ticker.js';
