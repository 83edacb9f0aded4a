/**
 * The contender queue shared by locks and elections (the etcd recipe, on the store port):
 * 1. create `<prefix><contenderId>` if absent, attached to a lease; its createRevision is the token;
 * 2. range the prefix: the contender with the smallest createRevision holds;
 * 3. otherwise watch only the immediate predecessor from the revision read, and go back to 2 when
 *    it is deleted. No polling, no thundering herd.
 */
import type { RotaContext } from '../core/context.js';
import { abortedError, isRotaError } from '../errors.js';
import type { KeyValue } from '../store/port.js';

/** Create the contender key; returns its createRevision (the fencing token). */
export async function createContender(
  ctx: RotaContext,
  key: string,
  value: Uint8Array,
  lease: string,
  signal?: AbortSignal,
): Promise<number> {
  const res = await ctx.retry(
    () =>
      ctx.store.txn({
        compare: [{ key, target: 'createRevision', op: '==', value: 0 }],
        success: [{ type: 'put', key, value, lease }],
        failure: [{ type: 'get', key }],
      }),
    signal,
  );
  if (res.succeeded) return res.revision;
  // The key exists: contender ids are unique, so it is our own write from an ambiguous attempt.
  const existing = res.results[0]?.type === 'get' ? res.results[0].kv : null;
  return existing?.createRevision ?? res.revision;
}

export type WaitOutcome = 'first' | 'gone';

/**
 * Wait until the contender `key` with `token` is the oldest under `prefix`. Resolves `'gone'` when
 * our own key disappeared (lease lost, forced unlock). Rejects with the signal's abort.
 */
export async function waitUntilFirst(
  ctx: RotaContext,
  prefix: string,
  key: string,
  token: number,
  signal: AbortSignal,
  onQueued?: () => void,
): Promise<WaitOutcome> {
  for (;;) {
    if (signal.aborted) throw abortedError(signal);
    const { kvs, revision } = await ctx.retry(() => ctx.store.range(prefix), signal);
    const mine = kvs.find((kv) => kv.key === key);
    if (!mine || mine.createRevision !== token) return 'gone';
    let predecessor: KeyValue | undefined;
    for (const kv of kvs) {
      if (kv.createRevision < token && (!predecessor || kv.createRevision > predecessor.createRevision))
        predecessor = kv;
    }
    if (!predecessor) return 'first';
    onQueued?.();
    await waitDeleted(ctx, predecessor.key, revision + 1, signal);
  }
}

/** Resolve when `key` is deleted at or after `fromRevision` (or already gone if history was compacted). */
export async function waitDeleted(
  ctx: RotaContext,
  key: string,
  fromRevision: number,
  signal: AbortSignal,
): Promise<void> {
  let from = fromRevision;
  for (;;) {
    if (signal.aborted) throw abortedError(signal);
    try {
      for await (const event of ctx.store.watch(key, { fromRevision: from, signal })) {
        from = event.revision + 1;
        if (event.kv.key === key && event.type === 'delete') return;
      }
      if (signal.aborted) throw abortedError(signal);
      return; // the store closed
    } catch (err) {
      if (signal.aborted) throw abortedError(signal);
      if (isRotaError(err, 'ROTA_COMPACTED')) {
        const { kv, revision } = await ctx.retry(() => ctx.store.get(key), signal);
        if (!kv) return;
        from = revision + 1;
        continue;
      }
      if (isRotaError(err, 'ROTA_CLOSED')) throw err;
      await new Promise<void>((resolve) => ctx.clock.setTimeout(resolve, 50 + ctx.random() * 200));
    }
  }
}

/** An AbortSignal that aborts when any of `signals` does, or after `ms` of `ctx.clock` with `onTimeout`'s reason. */
export function combinedSignal(
  ctx: RotaContext,
  signals: (AbortSignal | undefined)[],
  timeout?: { ms: number; reason: () => unknown },
): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const cleanups: (() => void)[] = [];
  const abort = (reason: unknown) => {
    if (!controller.signal.aborted) controller.abort(reason);
  };
  for (const s of signals) {
    if (!s) continue;
    if (s.aborted) abort(s.reason);
    else {
      const on = () => abort(s.reason);
      s.addEventListener('abort', on, { once: true });
      cleanups.push(() => s.removeEventListener('abort', on));
    }
  }
  if (timeout) {
    const t = ctx.clock.setTimeout(() => abort(timeout.reason()), timeout.ms);
    cleanups.push(() => ctx.clock.clearTimeout(t));
  }
  return {
    signal: controller.signal,
    dispose: () => {
      for (const c of cleanups) c();
    },
  };
}
