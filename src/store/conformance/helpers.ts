/** Small helpers for the conformance suite (and for backend-specific tests). */
import nodeAssert from 'node:assert/strict';
import { isRotaError, type RotaErrorCode } from '../../errors.js';
import type { Store, WatchEvent } from '../port.js';

/**
 * `node:assert/strict` whose `ok` always carries a message. Without one, Node re-reads the
 * caller's source to describe the failed expression, which can spin forever under source maps.
 */
export const assert: typeof nodeAssert = Object.assign(
  ((value: unknown, message?: string | Error) =>
    nodeAssert.ok(value, message ?? 'expected a truthy value')) as typeof nodeAssert,
  nodeAssert,
  {
    ok(value: unknown, message?: string | Error): asserts value {
      nodeAssert.ok(value, message ?? 'expected a truthy value');
    },
  },
);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 bytes of a string. */
export const enc = (s: string): Uint8Array => encoder.encode(s);
/** String of UTF-8 bytes. */
export const dec = (b: Uint8Array): string => decoder.decode(b);

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Await `promise` and assert it rejects with a RotaError of `code`; returns the error. */
export async function rejectsWith(promise: Promise<unknown> | (() => unknown), code: RotaErrorCode) {
  let error: unknown;
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (err) {
    error = err;
  }
  assert.ok(error !== undefined, `expected ${code}, but the call succeeded`);
  assert.ok(isRotaError(error), `expected a RotaError ${code}, got ${String(error)}`);
  assert.equal(error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
  return error;
}

/** Poll `check` until it returns a truthy value or `timeoutMs` passes (then fail with `what`). */
export async function eventually<T>(
  check: () => Promise<T> | T,
  timeoutMs: number,
  what: string,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(25);
  }
}

// A read that timed out stays outstanding; the next read on the same iterator reuses it, so no
// event is lost to an abandoned `next()`.
const outstanding = new WeakMap<AsyncIterator<unknown>, Promise<IteratorResult<unknown>>>();

async function nextWithin<T>(iterator: AsyncIterator<T>, ms: number): Promise<IteratorResult<T> | 'timeout'> {
  let pending = outstanding.get(iterator) as Promise<IteratorResult<T>> | undefined;
  if (!pending) {
    pending = iterator.next();
    outstanding.set(iterator, pending);
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), Math.max(0, ms));
  });
  try {
    const result = await Promise.race([pending, timeout]);
    if (result !== 'timeout') outstanding.delete(iterator);
    return result;
  } catch (err) {
    outstanding.delete(iterator);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Read `n` values from an async iterator, failing after `timeoutMs`. */
export async function take<T = WatchEvent>(
  iterator: AsyncIterator<T>,
  n: number,
  timeoutMs = 5000,
): Promise<T[]> {
  const out: T[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    const next = await nextWithin(iterator, deadline - Date.now());
    if (next === 'timeout') assert.fail(`timed out waiting for events: got ${out.length} of ${n}`);
    if (next.done) assert.fail(`iterator ended after ${out.length} of ${n} values`);
    out.push(next.value);
  }
  return out;
}

/** Assert no further value arrives within `ms`; the iterator stays usable. */
export async function expectQuiet(iterator: AsyncIterator<unknown>, ms: number): Promise<void> {
  const next = await nextWithin(iterator, ms);
  if (next !== 'timeout') assert.fail(`expected no event, got ${JSON.stringify(next)}`);
}

/** Compare-and-swap increment of a decimal counter stored at `key`. Returns the new value. */
export async function casIncrement(store: Store, key: string): Promise<number> {
  for (;;) {
    const { kv } = await store.get(key);
    const current = kv ? Number(dec(kv.value)) : 0;
    const next = current + 1;
    const res = await store.txn({
      compare: [{ key, target: 'modRevision', op: '==', value: kv ? kv.modRevision : 0 }],
      success: [{ type: 'put', key, value: enc(String(next)) }],
    });
    if (res.succeeded) return next;
  }
}
