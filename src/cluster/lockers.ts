/**
 * `cluster.locker(options)`: the `Locker` adapter (cluster.md §2.3).
 *
 * - `mode: 'exclusive'` (default): `lock(key)` is `cluster.lock(key)`.
 * - `mode: 'slot'` (the gorm-lock model): one persistent record per (key, slot) under
 *   `cluster/slots/<key>/<slotId>`. A second lock on the same slot fails, even after the first was
 *   released, which makes it at-most-once per slot. Records older than `retention` are swept every
 *   `cleanInterval` by each node's locker.
 */
import { decodeJson, encodeJson, type RotaContext } from '../core/context.js';
import { encodeName } from '../core/keys.js';
import { LockBusyError, LockLostError } from '../errors.js';
import {
  checkDuration,
  checkEnum,
  checkFunction,
  checkInstant,
  checkName,
  checkOptions,
  checkSignal,
  invalid,
} from '../validate.js';
import type { Elector, Lock, Locker, LockerLockOptions } from './interfaces.js';
import type { Locks } from './locks.js';

/** Options of `cluster.locker()`. */
export interface LockerOptions {
  /** `'exclusive'` (default) or `'slot'`. */
  mode?: 'exclusive' | 'slot';
  /** Slot mode: a custom slot id for (key, instant). Default `floor(at / slotPrecision)`. */
  slotOf?: (key: string, at: number) => string;
  /** Slot mode: width of a default slot in ms (default 1 000). */
  slotPrecision?: number;
  /** Slot mode: how long slot records are kept (default 86 400 000). */
  retention?: number;
  /** Slot mode: sweeper period in ms (default 5 000). */
  cleanInterval?: number;
}

export const LOCKER_DEFAULTS = { slotPrecision: 1000, retention: 86_400_000, cleanInterval: 5000 } as const;

interface SlotRecord {
  owner: string;
  state: 'running' | 'finished';
  at: number;
}

class SlotLock implements Lock {
  #released = false;
  readonly #controller = new AbortController();

  constructor(
    private readonly ctx: RotaContext,
    readonly key: string,
    readonly token: number,
    private readonly record: SlotRecord,
    private readonly onRelease: (lock: SlotLock) => void,
  ) {}

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Marks the slot `finished`; the record stays, so the slot cannot be taken again. Idempotent. */
  async release(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    this.#controller.abort(new LockLostError('slot lock released'));
    this.onRelease(this);
    await this.ctx.retry(
      () =>
        this.ctx.store.txn({
          compare: [{ key: this.key, target: 'createRevision', op: '==', value: this.token }],
          success: [{ type: 'put', key: this.key, value: encodeJson({ ...this.record, state: 'finished' }) }],
        }),
      options.signal,
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }
}

class SlotLocker implements Locker {
  readonly #held = new Set<SlotLock>();
  readonly #stop = new AbortController();
  #sweeping: Promise<void> | null = null;
  #closed = false;

  constructor(
    private readonly ctx: RotaContext,
    private readonly slotOf: (key: string, at: number) => string,
    private readonly retention: number,
    private readonly cleanInterval: number,
  ) {
    const loop = () => {
      if (this.#stop.signal.aborted || ctx.closed) return;
      this.#sweeping = this.sweep()
        .then(() => undefined)
        .catch((err) => ctx.logger.warn('slot record sweep failed', { error: err }))
        .finally(() => {
          if (!this.#stop.signal.aborted) timer = ctx.clock.setTimeout(loop, this.cleanInterval);
        });
    };
    let timer = ctx.clock.setTimeout(loop, cleanInterval);
    this.#stop.signal.addEventListener('abort', () => ctx.clock.clearTimeout(timer));
    ctx.onClose(() => this.close());
  }

  async lock(key: string, options: LockerLockOptions = {}): Promise<Lock> {
    checkName('key', key);
    checkOptions('options', options, ['signal', 'wait', 'ttl', 'slotAt']);
    checkSignal('options.signal', options.signal);
    if (this.#closed) invalid('locker', 'is closed');
    const at =
      options.slotAt !== undefined ? checkInstant('options.slotAt', options.slotAt) : this.ctx.time.now();
    const slotId = this.slotOf(key, at);
    if (typeof slotId !== 'string' || slotId.length === 0)
      invalid('slotOf', 'must return a non-empty string');
    const recordKey = this.ctx.keys.key('cluster', 'slots', encodeName(key), encodeName(slotId));
    const record: SlotRecord = { owner: this.ctx.nodeId, state: 'running', at: this.ctx.time.now() };
    const res = await this.ctx.retry(
      () =>
        this.ctx.store.txn({
          compare: [{ key: recordKey, target: 'createRevision', op: '==', value: 0 }],
          success: [{ type: 'put', key: recordKey, value: encodeJson(record) }],
        }),
      options.signal,
    );
    if (!res.succeeded) {
      throw new LockBusyError(`slot ${slotId} of ${key} was already taken`, {
        detail: { key, slot: slotId },
      });
    }
    const lock = new SlotLock(this.ctx, recordKey, res.revision, record, (l) => this.#held.delete(l));
    this.#held.add(lock);
    return lock;
  }

  /** Delete slot records older than `retention` (store time). Idempotent and safe on every node. */
  async sweep(): Promise<number> {
    const prefix = this.ctx.keys.prefix('cluster', 'slots');
    const now = await this.ctx.store.now();
    const { kvs } = await this.ctx.store.range(prefix);
    let deleted = 0;
    for (const kv of kvs) {
      let at: number;
      try {
        at = decodeJson<SlotRecord>(kv.value).at;
      } catch {
        at = 0;
      }
      if (at >= now - this.retention) continue;
      const res = await this.ctx.store.txn({
        compare: [{ key: kv.key, target: 'modRevision', op: '==', value: kv.modRevision }],
        success: [{ type: 'delete', key: kv.key }],
      });
      if (res.succeeded) deleted++;
    }
    return deleted;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort();
    await this.#sweeping?.catch(() => undefined);
    await Promise.all([...this.#held].map((l) => l.release().catch(() => undefined)));
  }
}

/** Build a Locker for `cluster.locker(options)`. */
export function createLocker(ctx: RotaContext, locks: Locks, options: LockerOptions = {}): Locker {
  checkOptions('options', options, ['mode', 'slotOf', 'slotPrecision', 'retention', 'cleanInterval']);
  const mode =
    options.mode === undefined ? 'exclusive' : checkEnum('options.mode', options.mode, ['exclusive', 'slot']);
  if (mode === 'exclusive') {
    for (const k of ['slotOf', 'slotPrecision', 'retention', 'cleanInterval'] as const) {
      if (options[k] !== undefined) invalid(`options.${k}`, "applies to mode 'slot' only");
    }
    return {
      lock: (key, o = {}) => {
        checkOptions('options', o, ['signal', 'wait', 'ttl', 'slotAt']);
        const { slotAt: _ignored, ...rest } = o;
        return locks.lock(key, rest);
      },
    };
  }
  const precision =
    options.slotPrecision === undefined
      ? LOCKER_DEFAULTS.slotPrecision
      : checkDuration('options.slotPrecision', options.slotPrecision);
  const slotOf =
    options.slotOf === undefined
      ? (_key: string, at: number) => String(Math.floor(at / precision))
      : checkFunction<(key: string, at: number) => string>('options.slotOf', options.slotOf);
  const retention =
    options.retention === undefined
      ? LOCKER_DEFAULTS.retention
      : checkDuration('options.retention', options.retention);
  const cleanInterval =
    options.cleanInterval === undefined
      ? LOCKER_DEFAULTS.cleanInterval
      : checkDuration('options.cleanInterval', options.cleanInterval);
  return new SlotLocker(ctx, slotOf, retention, cleanInterval);
}

/** Check that `value` is usable as an Elector (has `isLeader`); `ROTA_INVALID_ARGUMENT` otherwise. */
export function adaptElector(field: string, value: unknown): Elector {
  if (typeof value !== 'object' || value === null || typeof (value as Elector).isLeader !== 'function') {
    invalid(field, 'must be an Elector: an object with an isLeader() method');
  }
  const elector = value as Elector;
  // A rejection counts as "not leader" (cluster.md §1).
  return { isLeader: (o) => Promise.resolve(elector.isLeader(o)).then(Boolean, () => false) };
}

/** Check that `value` is usable as a Locker (has `lock`); `ROTA_INVALID_ARGUMENT` otherwise. */
export function adaptLocker(field: string, value: unknown): Locker {
  if (typeof value !== 'object' || value === null || typeof (value as Locker).lock !== 'function') {
    invalid(field, 'must be a Locker: an object with a lock(key) method');
  }
  return value as Locker;
}
