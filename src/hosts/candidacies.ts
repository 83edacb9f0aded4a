/**
 * This node's candidacies (hosts.md §2.1–2.2): the desired state of each (namespace, hostname)
 * offered from this process, the leases they hang on, and the writes that keep the store in line.
 *
 * Leases:
 * - a candidacy whose TTL equals the node's session TTL hangs on the session lease;
 * - other TTLs share one {@link LeaseKeeper} per distinct TTL (the pool);
 * - a `reuseLease` candidacy has a lease of its own, so closing it can stop the keep-alive without
 *   touching any other candidacy; the lease id is remembered in process memory until it would
 *   have expired, and a new candidacy for the same namespace and hostname resumes it;
 * - a `persist` candidacy has no lease.
 *
 * After a session loss and reconnect, or the loss of a candidacy's own or pooled lease, every
 * desired candidacy is written again (with a new lease; with a new join revision when the store
 * had already expired it).
 */

import { LeaseKeeper } from '../cluster/lease-keeper.js';
import type { Session } from '../cluster/session.js';
import { decodeJson, type RotaContext } from '../core/context.js';
import { opId } from '../core/ids.js';
import { isTransient } from '../core/retry.js';
import { HostnameInUseError, isRotaError, type RotaError, wrapError } from '../errors.js';
import type { Compare, KeyValue } from '../store/port.js';
import type { CandidacySettings } from './options.js';
import { type CandidacyRecord, candidacyIdentity, encodeCandidacy, type HostKeys } from './records.js';

/** A lease TTL shared by the candidacies of this node that declared it. */
interface PoolEntry {
  ttl: number;
  keeper: LeaseKeeper | null;
  granting: Promise<LeaseKeeper> | null;
  users: Set<LocalCandidacy>;
  /** Candidacies released with `linger` that still hang on this lease. */
  lingering: number;
}

type LeaseRef =
  | { kind: 'none' }
  | { kind: 'session'; id: string }
  | { kind: 'pool'; entry: PoolEntry; id: string }
  | { kind: 'own'; keeper: LeaseKeeper };

/** One candidacy offered from this process. */
export class LocalCandidacy {
  /** Open `schedule()` handles. */
  handles = 0;
  /** Created (or refreshed) by `add()` and not released yet. */
  added = false;
  /** Whether the candidacy should be present (false after `withdraw`). */
  desired = true;
  lease: LeaseRef = { kind: 'none' };
  /** createRevision of the stored key as last written or seen (0: unknown / absent). */
  createRevision = 0;
  /** A background re-write is scheduled. */
  resyncing = false;

  constructor(
    readonly namespace: string,
    readonly hostname: string,
    public settings: CandidacySettings,
  ) {}

  get id(): string {
    return localId(this.namespace, this.hostname);
  }
}

function localId(namespace: string, hostname: string): string {
  return `${namespace}\u0000${hostname}`;
}

/**
 * How a candidacy is let go when nothing local holds it any more: `close` follows its options
 * (`reuseLease`: linger), `delete` and `linger` are explicit (`release`). Persistent ones stay.
 */
export type LetGo = 'close' | 'delete' | 'linger';

export class Candidacies {
  readonly #locals = new Map<string, LocalCandidacy>();
  readonly #pool = new Map<number, PoolEntry>();
  /** Leases of closed `reuseLease` candidacies: id and the local time until which it may live. */
  readonly #remembered = new Map<string, { leaseId: string; ttl: number; until: number }>();
  /**
   * The tail of the writes per (namespace, hostname): one at a time, also across successive
   * LocalCandidacy objects, so a delete still in flight cannot remove a newer candidacy.
   */
  readonly #chains = new Map<string, Promise<unknown>>();
  #lastWrite = 0;
  #closed = false;

  constructor(
    private readonly ctx: RotaContext,
    private readonly session: Session,
    private readonly keys: HostKeys,
    private readonly onError: (namespace: string | null, error: RotaError) => void,
    private readonly onDesiredChange: () => void,
  ) {
    ctx.events.on('session:started', () => {
      for (const local of this.#locals.values()) {
        if (local.desired && !local.settings.persist && this.#usesSession(local.settings))
          this.#resync(local);
      }
    });
  }

  /** Store revision of this node's latest candidacy write or delete. */
  get lastWriteRevision(): number {
    return this.#lastWrite;
  }

  get(namespace: string, hostname: string): LocalCandidacy | undefined {
    return this.#locals.get(localId(namespace, hostname));
  }

  /** Number of candidacies this node wants present (it campaigns while > 0). */
  desiredCount(): number {
    let n = 0;
    for (const l of this.#locals.values()) if (l.desired) n++;
    return n;
  }

  /** Hostnames this node offers (for the member record's capabilities). */
  hostnames(): string[] {
    return [...new Set([...this.#locals.values()].filter((l) => l.desired).map((l) => l.hostname))];
  }

  #usesSession(s: CandidacySettings): boolean {
    return !s.persist && !s.reuseLease && s.ttl === this.session.ttl;
  }

  /**
   * Take a reference (`handle` or `add`) on the candidacy and write it as desired. On failure the
   * reference is given back and the error rethrown.
   */
  async acquire(
    namespace: string,
    settings: CandidacySettings,
    via: 'handle' | 'add',
  ): Promise<{ changed: boolean; local: LocalCandidacy }> {
    let local = this.get(namespace, settings.hostname);
    const created = !local;
    const previous = local ? { added: local.added, desired: local.desired, settings: local.settings } : null;
    if (!local) {
      local = new LocalCandidacy(namespace, settings.hostname, settings);
      this.#locals.set(local.id, local);
    }
    if (via === 'handle') local.handles++;
    else local.added = true;
    local.settings = settings;
    local.desired = true;
    try {
      const changed = await this.#serial(local, () => this.#write(local));
      return { changed, local };
    } catch (err) {
      // Give our reference back; a candidacy created by this call goes away again.
      if (via === 'handle') local.handles--;
      else local.added = previous?.added ?? false;
      if (previous) {
        local.desired = previous.desired;
        local.settings = previous.settings;
      }
      if (created && local.handles === 0 && !local.added && this.#locals.get(local.id) === local) {
        this.#locals.delete(local.id);
        local.desired = false;
        this.#releaseLease(local, 'delete');
      }
      throw err;
    } finally {
      this.onDesiredChange();
    }
  }

  /** Would writing `settings` change the stored candidacy? Reads only. */
  async wouldChange(namespace: string, settings: CandidacySettings): Promise<boolean> {
    const key = this.keys.candidate(namespace, settings.hostname);
    const { kv } = await this.ctx.retry(() => this.ctx.store.get(key), this.ctx.closing);
    if (!kv) return true;
    const { record: current, nodeId } = this.#read(kv);
    if (nodeId !== null && nodeId !== this.ctx.nodeId)
      await this.#assertForeignGone(nodeId, settings.hostname);
    if (!current) return true;
    const desired = this.#record(settings, '');
    if (candidacyIdentity(current) !== candidacyIdentity(desired)) return true;
    return kv.lease !== this.#expectedLease(namespace, settings);
  }

  /** The lease id a write would use now, without granting one ('?' when a new one is needed). */
  #expectedLease(namespace: string, s: CandidacySettings): string | null {
    if (s.persist) return null;
    const local = this.get(namespace, s.hostname);
    if (s.reuseLease) {
      if (local?.lease.kind === 'own' && local.lease.keeper.held && local.lease.keeper.ttl === s.ttl) {
        return local.lease.keeper.id;
      }
      const remembered = this.#remembered.get(localId(namespace, s.hostname));
      return remembered && remembered.ttl === s.ttl && remembered.until > this.ctx.clock.monotonic()
        ? remembered.leaseId
        : '?';
    }
    if (this.#usesSession(s)) return this.session.leaseId ?? '?';
    return this.#pool.get(s.ttl)?.keeper?.id ?? '?';
  }

  /** Drop one reference; when none is left, let the candidacy go as `how` says. */
  async releaseRef(local: LocalCandidacy, via: 'handle' | 'add', how: LetGo): Promise<void> {
    if (via === 'handle') local.handles = Math.max(0, local.handles - 1);
    else local.added = false;
    if (local.handles > 0 || local.added) return;
    if (this.#locals.get(local.id) === local) this.#locals.delete(local.id);
    local.desired = false;
    try {
      await this.#serial(local, () => this.#letGo(local, how));
    } finally {
      this.onDesiredChange();
    }
  }

  /**
   * `withdraw`: delete the candidacy key if present (one txn). A local candidacy stops being
   * desired (its handles stay open and keep observing); an `add` reference is dropped.
   */
  async withdraw(namespace: string, hostname: string): Promise<boolean> {
    const local = this.get(namespace, hostname);
    const key = this.keys.candidate(namespace, hostname);
    const run = async () => {
      const res = await this.ctx.retry(
        () =>
          this.ctx.store.txn({
            compare: [{ key, target: 'version', op: '>', value: 0 }],
            success: [{ type: 'delete', key }],
          }),
        this.ctx.closing,
      );
      if (res.succeeded) this.#noteWrite(res.revision);
      if (local) {
        this.#releaseLease(local, 'delete');
        local.createRevision = 0;
      }
      return res.succeeded;
    };
    if (!local) return run();
    local.desired = false;
    local.added = false;
    if (local.handles === 0) this.#locals.delete(local.id);
    try {
      return await this.#serial(local, run);
    } finally {
      this.onDesiredChange();
    }
  }

  /** Let every local candidacy go as a closing handle would, then end the leases. */
  async closeAll(): Promise<void> {
    this.#closed = true;
    const locals = [...this.#locals.values()];
    this.#locals.clear();
    await Promise.all(
      locals.map((local) => {
        local.desired = false;
        return this.#serial(local, () => this.#letGo(local, 'close')).catch(() => undefined);
      }),
    );
    for (const entry of this.#pool.values()) {
      if (entry.lingering > 0) entry.keeper?.abandon();
      else await entry.keeper?.revoke();
    }
    this.#pool.clear();
  }

  // ----------------------------------------------------------------------------------------------

  #serial<T>(local: LocalCandidacy, fn: () => Promise<T>): Promise<T> {
    const run = (this.#chains.get(local.id) ?? Promise.resolve()).then(fn, fn);
    const tail: Promise<unknown> = run
      .catch(() => undefined)
      .finally(() => {
        if (this.#chains.get(local.id) === tail) this.#chains.delete(local.id);
      });
    this.#chains.set(local.id, tail);
    return run;
  }

  #noteWrite(revision: number): void {
    if (revision > this.#lastWrite) this.#lastWrite = revision;
  }

  /** The stored candidacy (null when malformed) and the node that wrote it (when it can tell). */
  #read(kv: KeyValue): { record: CandidacyRecord | null; nodeId: string | null } {
    const entry = this.keys.decode(kv);
    if (entry.kind === 'candidate') return { record: entry.record, nodeId: entry.record.nodeId };
    try {
      // A malformed value still names its writer when it can: a live owner is respected.
      const raw = decodeJson<{ nodeId?: unknown }>(kv.value);
      return { record: null, nodeId: typeof raw?.nodeId === 'string' ? raw.nodeId : null };
    } catch {
      return { record: null, nodeId: null };
    }
  }

  #record(s: CandidacySettings, id: string): CandidacyRecord {
    return {
      hostname: s.hostname,
      nodeId: this.ctx.nodeId,
      options: { strategy: s.strategy, max: s.max, hostsFilter: s.hostsFilter },
      data: JSON.parse(s.dataText),
      labels: { ...this.ctx.options.labels },
      opId: id,
    };
  }

  /** `ROTA_HOSTNAME_IN_USE` when the candidacy's writer is another live node. */
  async #assertForeignGone(nodeId: string, hostname: string): Promise<void> {
    const { kv } = await this.ctx.retry(() => this.ctx.store.get(this.keys.member(nodeId)), this.ctx.closing);
    if (kv) {
      throw new HostnameInUseError(`hostname ${hostname} is offered by the live node ${nodeId}`, {
        detail: { hostname, nodeId },
      });
    }
  }

  /** Make the stored candidacy match the desired settings. Returns whether it wrote. */
  async #write(local: LocalCandidacy): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      if (!local.desired) return false;
      const previous = local.lease;
      let lease: LeaseRef | null = null;
      try {
        lease = await this.#leaseFor(local);
        return await this.#put(local, lease, previous);
      } catch (err) {
        this.#unreserve(local);
        // The lease vanished under us (expired, or lost while we wrote): get another and retry.
        if (!lease || !isRotaError(err, 'ROTA_LEASE_NOT_FOUND') || attempt >= 5) throw err;
        if (lease.kind === 'own') lease.keeper.lose('the store reports the lease gone');
        else if (lease.kind === 'pool') lease.entry.keeper?.lose('the store reports the lease gone');
        else await new Promise<void>((resolve) => this.ctx.clock.setTimeout(resolve, 250 * attempt));
      }
    }
  }

  async #put(local: LocalCandidacy, lease: LeaseRef, previousLease: LeaseRef): Promise<boolean> {
    const leaseId = lease.kind === 'none' ? null : lease.kind === 'own' ? lease.keeper.id : lease.id;
    const key = this.keys.candidate(local.namespace, local.hostname);
    const record = this.#record(local.settings, opId());
    const value = encodeCandidacy(record);
    for (;;) {
      const { kv } = await this.ctx.retry(() => this.ctx.store.get(key), this.ctx.closing);
      const { record: current, nodeId } = kv ? this.#read(kv) : { record: null, nodeId: null };
      const foreign = nodeId !== null && nodeId !== this.ctx.nodeId ? nodeId : null;
      if (foreign) await this.#assertForeignGone(foreign, local.hostname);
      if (kv && current && !foreign) {
        if (current.opId === record.opId) {
          // Our own write, applied by an attempt whose answer was lost.
          this.#adopt(local, lease, previousLease, kv.createRevision);
          return true;
        }
        if (candidacyIdentity(current) === candidacyIdentity(record) && kv.lease === leaseId) {
          this.#adopt(local, lease, previousLease, kv.createRevision);
          return false;
        }
      }
      const compare: Compare[] = [{ key, target: 'modRevision', op: '==', value: kv?.modRevision ?? 0 }];
      if (foreign)
        compare.push({ key: this.keys.member(foreign), target: 'modRevision', op: '==', value: 0 });
      const res = await this.ctx.retry(
        () =>
          this.ctx.store.txn({
            compare,
            success: [{ type: 'put', key, value, ...(leaseId ? { lease: leaseId } : {}) }],
          }),
        this.ctx.closing,
      );
      if (!res.succeeded) continue;
      this.#noteWrite(res.revision);
      this.#adopt(local, lease, previousLease, kv?.createRevision || res.revision);
      return true;
    }
  }

  /** Record the lease now in use and let go of the previous one if it differs. */
  #adopt(local: LocalCandidacy, lease: LeaseRef, previous: LeaseRef, createRevision: number): void {
    local.createRevision = createRevision;
    local.lease = lease;
    this.#unreserve(local);
    if (previous.kind === 'none' || sameLease(previous, lease)) return;
    if (previous.kind === 'pool') this.#leavePool(previous.entry, local, false);
    else if (previous.kind === 'own') void previous.keeper.revoke();
  }

  /** The lease the candidacy should hang on now (granting or resuming one when needed). */
  async #leaseFor(local: LocalCandidacy): Promise<LeaseRef> {
    const s = local.settings;
    if (s.persist) return { kind: 'none' };
    if (s.reuseLease) {
      const cur = local.lease;
      if (cur.kind === 'own' && cur.keeper.held && cur.keeper.ttl === s.ttl) return cur;
      return { kind: 'own', keeper: await this.#ownKeeper(local) };
    }
    if (this.#usesSession(s)) {
      await this.session.waitLive(this.ctx.closing);
      const id = this.session.leaseId;
      if (!id) throw wrapError(new Error('the session has no lease'), 'ROTA_SESSION_LOST');
      return { kind: 'session', id };
    }
    let entry = this.#pool.get(s.ttl);
    if (!entry) {
      entry = { ttl: s.ttl, keeper: null, granting: null, users: new Set(), lingering: 0 };
      this.#pool.set(s.ttl, entry);
    }
    entry.users.add(local);
    if (!entry.keeper?.held) {
      const e = entry;
      e.granting ??= LeaseKeeper.grant(
        this.ctx,
        s.ttl,
        { onLost: () => this.#onPoolLost(e) },
        { signal: this.ctx.closing },
      ).finally(() => {
        e.granting = null;
      });
      const keeper = await e.granting;
      if (e.keeper !== keeper) e.keeper = keeper;
    }
    return { kind: 'pool', entry, id: (entry.keeper as LeaseKeeper).id };
  }

  async #ownKeeper(local: LocalCandidacy): Promise<LeaseKeeper> {
    const s = local.settings;
    const hooks = { onLost: () => this.#resync(local) };
    const remembered = this.#remembered.get(local.id);
    this.#remembered.delete(local.id);
    if (remembered && remembered.ttl === s.ttl && remembered.until > this.ctx.clock.monotonic()) {
      try {
        return await LeaseKeeper.adopt(this.ctx, remembered.leaseId, hooks, { signal: this.ctx.closing });
      } catch (err) {
        if (!isRotaError(err, 'ROTA_LEASE_NOT_FOUND')) throw err;
      }
    }
    return LeaseKeeper.grant(this.ctx, s.ttl, hooks, { signal: this.ctx.closing });
  }

  /** Drop the pool reservations a candidacy holds on leases it does not hang on. */
  #unreserve(local: LocalCandidacy): void {
    for (const entry of [...this.#pool.values()]) {
      if (entry.users.has(local) && !(local.lease.kind === 'pool' && local.lease.entry === entry)) {
        this.#leavePool(entry, local, false);
      }
    }
  }

  #onPoolLost(entry: PoolEntry): void {
    entry.keeper = null;
    entry.lingering = 0;
    for (const local of entry.users) this.#resync(local);
  }

  #leavePool(entry: PoolEntry, local: LocalCandidacy, linger: boolean): void {
    if (!entry.users.delete(local)) return;
    if (linger) entry.lingering++;
    if (entry.users.size > 0 || this.#pool.get(entry.ttl) !== entry) return;
    this.#pool.delete(entry.ttl);
    // Lingering candidacies stay until the lease runs out by itself; otherwise free it now.
    if (entry.lingering > 0) entry.keeper?.abandon();
    else void entry.keeper?.revoke();
  }

  /** Give up the candidacy's hold on its lease. */
  #releaseLease(local: LocalCandidacy, how: 'delete' | 'linger'): void {
    const lease = local.lease;
    local.lease = { kind: 'none' };
    if (lease.kind === 'pool') this.#leavePool(lease.entry, local, how === 'linger');
    else if (lease.kind === 'own') {
      if (how === 'linger') this.#rememberOwn(local, lease.keeper);
      else void lease.keeper.revoke();
    }
  }

  #rememberOwn(local: LocalCandidacy, keeper: LeaseKeeper): void {
    keeper.abandon();
    this.#remembered.set(local.id, { leaseId: keeper.id, ttl: keeper.ttl, until: keeper.localDeadline });
    // Forget it once it cannot be alive any more.
    this.ctx.clock.setTimeout(
      () => {
        if (this.#remembered.get(local.id)?.leaseId === keeper.id) this.#remembered.delete(local.id);
      },
      Math.max(0, keeper.localDeadline - this.ctx.clock.monotonic()),
    );
  }

  /**
   * Let the candidacy go: a persistent one stays; a lingering one (`linger`, or `close` of a
   * `reuseLease` one) is left to its lease; otherwise the key is deleted at once.
   */
  async #letGo(local: LocalCandidacy, how: LetGo): Promise<void> {
    const s = local.settings;
    if (s.persist) return;
    if (how === 'linger' || (how === 'close' && s.reuseLease)) {
      this.#releaseLease(local, 'linger');
      return;
    }
    const key = this.keys.candidate(local.namespace, local.hostname);
    if (local.createRevision > 0) {
      const createRevision = local.createRevision;
      const remove = () =>
        this.ctx.store.txn({
          compare: [{ key, target: 'createRevision', op: '==', value: createRevision }],
          success: [{ type: 'delete', key }],
        });
      // While the node closes, one attempt only (as the session's revoke): an unreachable store must
      // not hold up the close, and the lease, if any, removes the key anyway.
      const res = this.#closed
        ? await remove().catch(() => null)
        : await this.ctx.retry(remove, this.ctx.closing);
      if (res?.succeeded) this.#noteWrite(res.revision);
      local.createRevision = 0;
    }
    this.#releaseLease(local, 'delete');
  }

  /** Write a desired candidacy again in the background, retrying until it sticks or is let go. */
  #resync(local: LocalCandidacy): void {
    if (local.resyncing || this.#closed) return;
    local.resyncing = true;
    void (async () => {
      let attempt = 0;
      try {
        while (local.desired && !this.#closed && this.#locals.get(local.id) === local) {
          try {
            await this.#serial(local, () => this.#write(local));
            return;
          } catch (err) {
            if (this.#closed || !local.desired) return;
            if (isRotaError(err, 'ROTA_SESSION_LOST') && !this.ctx.options.reconnect) return;
            attempt++;
            if (attempt === 1 || !isTransient(err)) {
              this.onError(
                local.namespace,
                wrapError(err, 'ROTA_STORE_ERROR', `could not restore the candidacy ${local.hostname}`),
              );
            }
            const delay = Math.min(5000, 100 * 2 ** Math.min(attempt, 6)) * (0.5 + this.ctx.random() / 2);
            await new Promise<void>((resolve) => this.ctx.clock.setTimeout(resolve, delay));
          }
        }
      } finally {
        local.resyncing = false;
      }
    })();
  }
}

function sameLease(a: LeaseRef, b: LeaseRef): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'own' && b.kind === 'own') return a.keeper === b.keeper;
  if (a.kind === 'pool' && b.kind === 'pool') return a.entry === b.entry;
  return true;
}
