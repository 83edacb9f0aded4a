/**
 * Compare-and-swap over a few keys: read them (one txn of gets), decide, write with compares on
 * what the decision read; when a compare fails, the txn's failure branch returns the fresh values
 * and the decision is made again. Every pool state transition goes through here (or is a single
 * fenced txn). Transient store errors are retried under the node's policy; a retried write that
 * had in fact committed is recognised by the decision itself (it sees its own `opId` or the
 * finished state).
 */
import type { RotaContext } from '../core/context.js';
import { abortedError, StoreError } from '../errors.js';
import type { Compare, KeyValue, TxnOp } from '../store/port.js';
import { sleep } from '../time/clock.js';

/** What a decision returns: nothing to write (`done`), or a txn to try. */
export type CasPlan<T> = { done: T } | { compare: Compare[]; success: TxnOp[]; result: T };

export interface CasResult<T> {
  readonly value: T;
  /** True when this call wrote (the txn succeeded). */
  readonly wrote: boolean;
  /** Revision of the successful txn, or of the last read. */
  readonly revision: number;
}

/** Reads of one attempt. */
export type CasRead = (key: string) => KeyValue | null;

/** Conflicts are retried for up to the node's `storeTimeout`, with a jittered backoff. */
const BACKOFF_BASE_MS = 2;
const BACKOFF_MAX_MS = 50;

/** Compare that `key` is unchanged since it was read as `kv` (absent: still absent). */
export function unchanged(key: string, kv: KeyValue | null): Compare {
  return { key, target: 'modRevision', op: '==', value: kv?.modRevision ?? 0 };
}

/** Compare that `key` is absent. */
export function absent(key: string): Compare {
  return { key, target: 'version', op: '==', value: 0 };
}

/**
 * Run `decide` until it is done or its txn succeeds. `initial` may seed the first attempt with
 * cached values (a stale seed only costs one failed compare).
 */
export async function cas<T>(
  ctx: RotaContext,
  keys: readonly string[],
  decide: (read: CasRead) => CasPlan<T>,
  options: { initial?: ReadonlyMap<string, KeyValue | null>; signal?: AbortSignal } = {},
): Promise<CasResult<T>> {
  const gets: TxnOp[] = keys.map((key) => ({ type: 'get', key }));
  let values: Map<string, KeyValue | null> | undefined = options.initial
    ? new Map(options.initial)
    : undefined;
  let revision = 0;
  const deadline = ctx.clock.monotonic() + ctx.options.storeTimeout;
  for (let attempt = 0; ; attempt++) {
    if (attempt > 0) {
      // Lost a compare: someone else wrote one of these keys. Back off a little (full jitter) so
      // writers of a hot key (the `meta` counter) do not all retry in lockstep.
      if (ctx.clock.monotonic() > deadline) break;
      const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 10));
      await sleep(ctx.clock, ctx.random() * ceiling, options.signal).catch(() => {
        throw abortedError(options.signal);
      });
    }
    if (!values) {
      const res = await ctx.retry(
        () => abortable(ctx.store.txn({ compare: [], success: gets }), options.signal),
        options.signal,
      );
      values = collect(keys, res.results);
      revision = res.revision;
    }
    const current = values;
    const plan = decide((key) => current.get(key) ?? null);
    if ('done' in plan) return { value: plan.done, wrote: false, revision };
    const res = await ctx.retry(
      () =>
        abortable(
          ctx.store.txn({ compare: plan.compare, success: plan.success, failure: gets }),
          options.signal,
        ),
      options.signal,
    );
    if (res.succeeded) return { value: plan.result, wrote: true, revision: res.revision };
    values = collect(keys, res.results);
    revision = res.revision;
  }
  throw new StoreError(
    `gave up after ${ctx.options.storeTimeout} ms of conflicting updates of ${keys.join(', ')}`,
    {
      detail: { keys: [...keys] },
    },
  );
}

function collect(keys: readonly string[], results: readonly { type: string; kv?: KeyValue | null }[]) {
  const map = new Map<string, KeyValue | null>();
  keys.forEach((key, i) => {
    map.set(key, results[i]?.kv ?? null);
  });
  return map;
}

/**
 * `promise`, or `ROTA_ABORTED` as soon as `signal` aborts: a store call that hangs (a black-holed
 * connection) must not hold up what the abort stands for (e.g. stopping a job whose lease is lost).
 * The call itself is abandoned, not cancelled.
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(abortedError(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.catch(() => undefined);
      reject(abortedError(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
