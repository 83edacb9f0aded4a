/**
 * Fenced locks (cluster.md §2.3). A lock is a contender key under `cluster/locks/<name>/`; the
 * oldest contender holds it and its createRevision is the fencing token, so every later holder has
 * a greater token. Keys hang on the session lease (or a dedicated lease when `ttl` is given), so a
 * dead holder's lock frees itself by store time, and a holder that cannot renew learns it lost the
 * lock (its `signal` aborts) before anyone else can take it.
 */
import { encodeJson, type RotaContext } from '../core/context.js';
import type { EventBus } from '../core/events.js';
import { randomHex } from '../core/ids.js';
import { encodeName } from '../core/keys.js';
import { abortedError, LockBusyError, LockLostError, SessionLostError } from '../errors.js';
import {
  checkBoolean,
  checkDuration,
  checkInt,
  checkName,
  checkOptions,
  checkSignal,
  invalid,
  toJsonText,
} from '../validate.js';
import { combinedSignal, createContender, waitDeleted, waitUntilFirst } from './contender.js';
import type { Lock, LockOptions } from './interfaces.js';
import { LeaseKeeper } from './lease-keeper.js';
import type { Session } from './session.js';

declare module '../core/events.js' {
  interface RotaEventMap {
    'lock:acquired': { name: string; token: number };
    'lock:released': { name: string; token: number };
    'lock:lost': { name: string; token: number; reason: string };
  }
}

const LOCK_OPTIONS = ['wait', 'ttl', 'autoExtend', 'value', 'signal'] as const;

interface ParsedLockOptions {
  wait: number; // ms; Infinity = forever
  ttl: number | undefined;
  autoExtend: boolean;
  value: string | null;
  signal: AbortSignal | undefined;
}

export function parseLockOptions(o: LockOptions | undefined, maxPayload: number): ParsedLockOptions {
  const opts = checkOptions('options', o, LOCK_OPTIONS) as LockOptions;
  let wait = Number.POSITIVE_INFINITY;
  if (opts.wait !== undefined) {
    if (opts.wait === true) wait = Number.POSITIVE_INFINITY;
    else if (opts.wait === false) wait = 0;
    else wait = checkInt('options.wait', opts.wait, 0);
  }
  const ttl = opts.ttl === undefined ? undefined : checkDuration('options.ttl', opts.ttl);
  const autoExtend =
    opts.autoExtend === undefined ? true : checkBoolean('options.autoExtend', opts.autoExtend);
  if (!autoExtend && ttl === undefined)
    invalid('options.autoExtend', 'false needs a ttl (a session lock lives with the session)');
  const value = opts.value === undefined ? null : toJsonText('options.value', opts.value, maxPayload);
  return { wait, ttl, autoExtend, value, signal: checkSignal('options.signal', opts.signal) };
}

/** A lock held by this node. */
export class HeldLock implements Lock {
  #released = false;
  #lost = false;
  readonly #controller = new AbortController();
  readonly #watchStop = new AbortController();

  constructor(
    private readonly ctx: RotaContext,
    private readonly events: EventBus,
    readonly name: string,
    readonly key: string,
    readonly token: number,
    leaseSignal: AbortSignal,
    private readonly keeper: LeaseKeeper | null,
  ) {
    const onLeaseLost = () =>
      this.#lose(leaseSignal.reason instanceof Error ? leaseSignal.reason.message : 'lease lost');
    if (leaseSignal.aborted) onLeaseLost();
    else leaseSignal.addEventListener('abort', onLeaseLost, { once: true });
    this.#watchStop.signal.addEventListener('abort', () =>
      leaseSignal.removeEventListener('abort', onLeaseLost),
    );
    // A forced unlock (or any delete of our key) loses the lock at once.
    waitDeleted(ctx, key, token + 1, this.#watchStop.signal).then(
      () => this.#lose('the lock key was deleted'),
      () => undefined,
    );
  }

  /** Aborts (reason `ROTA_LOCK_LOST`) the moment the lock is lost, and when it is released. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** True if the lock was lost while held (not merely released). */
  get lost(): boolean {
    return this.#lost;
  }

  get released(): boolean {
    return this.#released;
  }

  /** True while the lock is held (not lost, not released). */
  get held(): boolean {
    return !this.#lost && !this.#released;
  }

  #lose(reason: string): void {
    if (this.#lost || this.#released) return;
    this.#lost = true;
    this.#watchStop.abort();
    this.#controller.abort(
      new LockLostError(`lock ${this.name} lost: ${reason}`, { detail: { name: this.name, reason } }),
    );
    this.events.emit('lock:lost', { name: this.name, token: this.token, reason });
    this.keeper?.abandon();
  }

  /** Release the lock. Idempotent; releasing a lost lock resolves and leaves the current holder alone. */
  async release(options: { signal?: AbortSignal } = {}): Promise<void> {
    checkOptions('options', options, ['signal']);
    if (this.#released) return;
    const wasLost = this.#lost;
    this.#released = true;
    this.#watchStop.abort();
    if (!this.#controller.signal.aborted) {
      this.#controller.abort(
        new LockLostError(`lock ${this.name} was released`, { detail: { name: this.name } }),
      );
    }
    if (!wasLost) {
      // Delete only our own incarnation of the key: a successor's key has another createRevision.
      await this.ctx.retry(
        () =>
          this.ctx.store.txn({
            compare: [{ key: this.key, target: 'createRevision', op: '==', value: this.token }],
            success: [{ type: 'delete', key: this.key }],
          }),
        options.signal,
      );
      this.events.emit('lock:released', { name: this.name, token: this.token });
    }
    await this.keeper?.revoke();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }
}

export class Locks {
  constructor(
    private readonly ctx: RotaContext,
    private readonly session: Session,
    private readonly events: EventBus,
  ) {}

  /** `cluster/locks/<name>/` */
  prefix(name: string): string {
    return this.ctx.keys.prefix('cluster', 'locks', encodeName(name));
  }

  /**
   * Acquire `name`. Waits (watching only the predecessor) until it holds, `wait` ms pass
   * (`ROTA_LOCK_BUSY`), or the signal aborts (`ROTA_ABORTED`); either way a waiting contender key is
   * removed. `wait: 0` fails at once when the lock is held.
   */
  async lock(name: string, options?: LockOptions): Promise<HeldLock> {
    checkName('name', name);
    const o = parseLockOptions(options, this.ctx.options.maxPayloadBytes);
    this.ctx.assertOpen();
    this.session.assertUsable();
    if (o.signal?.aborted) throw abortedError(o.signal);
    await this.session.waitLive(o.signal);

    const keeper =
      o.ttl !== undefined
        ? await LeaseKeeper.grant(
            this.ctx,
            o.ttl,
            {},
            { ...(o.signal ? { signal: o.signal } : {}), keepAlive: o.autoExtend },
          )
        : null;
    const leaseId = keeper?.id ?? this.session.leaseId;
    const leaseSignal = keeper?.signal ?? this.session.signal;
    if (!leaseId || leaseSignal.aborted) {
      throw new SessionLostError('the session was lost before the lock could be requested');
    }
    const prefix = this.prefix(name);
    const key = prefix + `${encodeName(this.ctx.nodeId)}.${randomHex(6)}`;
    const value = encodeJson({ nodeId: this.ctx.nodeId, sessionId: this.session.sessionId, value: o.value });
    let token = 0;
    const giveUp = async () => {
      if (token > 0) {
        await this.ctx.store
          .txn({
            compare: [{ key, target: 'createRevision', op: '==', value: token }],
            success: [{ type: 'delete', key }],
          })
          .catch(() => undefined);
      }
      await keeper?.revoke();
    };

    const busy = () => new LockBusyError(`lock ${name} is held by someone else`, { detail: { name } });
    const wait = combinedSignal(
      this.ctx,
      [o.signal, leaseSignal],
      Number.isFinite(o.wait) ? { ms: o.wait, reason: busy } : undefined,
    );
    try {
      token = await createContender(this.ctx, key, value, leaseId, wait.signal);
      let outcome: 'first' | 'gone';
      if (o.wait === 0) {
        const { kvs } = await this.ctx.retry(() => this.ctx.store.range(prefix), wait.signal);
        const mine = kvs.find((kv) => kv.key === key);
        if (!mine) outcome = 'gone';
        else if (kvs.some((kv) => kv.createRevision < token)) throw busy();
        else outcome = 'first';
      } else {
        outcome = await waitUntilFirst(this.ctx, prefix, key, token, wait.signal);
      }
      if (outcome === 'gone') {
        throw new LockLostError(`lock ${name}: our contender key vanished while waiting`, {
          detail: { name },
        });
      }
    } catch (err) {
      await giveUp();
      if (wait.signal.aborted) {
        const reason = wait.signal.reason;
        if (o.signal?.aborted) throw abortedError(o.signal);
        if (reason instanceof Error) throw reason;
      }
      throw err;
    } finally {
      wait.dispose();
    }
    const lock = new HeldLock(this.ctx, this.events, name, key, token, leaseSignal, keeper);
    this.events.emit('lock:acquired', { name, token });
    return lock;
  }

  /** Like `lock` with `wait: 0`, resolving `null` instead of failing with `ROTA_LOCK_BUSY`. */
  async tryLock(name: string, options?: Omit<LockOptions, 'wait'>): Promise<HeldLock | null> {
    checkOptions(
      'options',
      options,
      LOCK_OPTIONS.filter((k) => k !== 'wait'),
    );
    try {
      return await this.lock(name, { ...options, wait: 0 });
    } catch (err) {
      if (err instanceof LockBusyError) return null;
      throw err;
    }
  }

  /**
   * Acquire, run `fn(lock)`, always release. `fn` must honour `lock.signal`. If the lock is lost
   * before `fn` settles, rejects with `ROTA_LOCK_LOST` and drops `fn`'s result.
   */
  async withLock<T>(name: string, fn: (lock: HeldLock) => Promise<T> | T, options?: LockOptions): Promise<T> {
    if (typeof fn !== 'function') invalid('fn', 'must be a function');
    const lock = await this.lock(name, options);
    try {
      const result = await fn(lock);
      if (lock.lost) throw lock.signal.reason;
      return result;
    } catch (err) {
      if (lock.lost) throw lock.signal.reason;
      throw err;
    } finally {
      await lock
        .release()
        .catch((err) => this.ctx.logger.warn(`could not release lock ${name}`, { error: err }));
    }
  }

  /** Admin: delete the current holder's key. The holder's signal aborts with `ROTA_LOCK_LOST`. */
  async forceUnlock(name: string): Promise<boolean> {
    checkName('name', name);
    this.ctx.assertOpen();
    const { kvs } = await this.ctx.retry(() => this.ctx.store.range(this.prefix(name)));
    const holder = [...kvs].sort((a, b) => a.createRevision - b.createRevision)[0];
    if (!holder) return false;
    const res = await this.ctx.retry(() =>
      this.ctx.store.txn({
        compare: [{ key: holder.key, target: 'createRevision', op: '==', value: holder.createRevision }],
        success: [{ type: 'delete', key: holder.key }],
      }),
    );
    return res.succeeded;
  }

  /**
   * Every lock that has a holder, read from the store in one range: name, holder, token and how
   * many contenders wait behind it. Sorted by name. For admin views (`rota locks`, the dashboard).
   */
  async list(): Promise<{ name: string; nodeId: string; token: number; value: unknown; waiting: number }[]> {
    const root = this.ctx.keys.prefix('cluster', 'locks');
    const { kvs } = await this.ctx.retry(() => this.ctx.store.range(root));
    const byName = new Map<string, (typeof kvs)[number][]>();
    for (const kv of kvs) {
      const [name] = this.ctx.keys.rest(root, kv.key);
      if (name === undefined) continue;
      const list = byName.get(name) ?? [];
      list.push(kv);
      byName.set(name, list);
    }
    const out: { name: string; nodeId: string; token: number; value: unknown; waiting: number }[] = [];
    for (const [name, contenders] of byName) {
      const holder = contenders.sort((a, b) => a.createRevision - b.createRevision)[0];
      if (!holder) continue;
      let record: { nodeId?: string; value?: string | null } = {};
      try {
        record = JSON.parse(new TextDecoder().decode(holder.value));
      } catch {
        // A malformed contender is still a holder; report it without its value.
      }
      out.push({
        name,
        nodeId: record.nodeId ?? 'unknown',
        token: holder.createRevision,
        value: record.value ? JSON.parse(record.value) : null,
        waiting: contenders.length - 1,
      });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Current holder of `name` (the oldest contender), read from the store. */
  async holder(name: string): Promise<{ nodeId: string; token: number; value: unknown } | null> {
    checkName('name', name);
    const { kvs } = await this.ctx.retry(() => this.ctx.store.range(this.prefix(name)));
    const holder = [...kvs].sort((a, b) => a.createRevision - b.createRevision)[0];
    if (!holder) return null;
    const record = JSON.parse(new TextDecoder().decode(holder.value)) as {
      nodeId: string;
      value: string | null;
    };
    return {
      nodeId: record.nodeId,
      token: holder.createRevision,
      value: record.value ? JSON.parse(record.value) : null,
    };
  }
}
