/** Helpers shared by the hosts scenarios. */

import { decodeJson } from '../../src/core/context.js';
import type { HostDecision } from '../../src/hosts/index.js';
import type { Rota } from '../../src/rota.js';
import type { KeyValue } from '../../src/store/port.js';
import type { TestCluster } from '../../src/testing/index.js';
import { assert } from '../support/scenarios.js';

// A read still outstanding when a wait gave up; the next wait on the same iterator takes it over,
// so no decision is lost to an abandoned `next()`.
const outstanding = new WeakMap<AsyncIterator<HostDecision>, Promise<IteratorResult<HostDecision>>>();

function read(iterator: AsyncIterator<HostDecision>): Promise<IteratorResult<HostDecision>> {
  let pending = outstanding.get(iterator);
  if (!pending) {
    pending = iterator.next();
    outstanding.set(iterator, pending);
    pending.then(
      () => undefined,
      () => undefined,
    );
  }
  return pending;
}

function consumed(iterator: AsyncIterator<HostDecision>): void {
  outstanding.delete(iterator);
}

/**
 * Read from a decision iterator until its hosts equal `expected`. Fails after `timeoutMs`: of real
 * time, or of cluster time when a manual-clock `cluster` is given (the clock is then advanced).
 */
export async function untilHosts(
  iterator: AsyncIterator<HostDecision>,
  expected: string[],
  timeoutMs = 5000,
  cluster?: TestCluster,
): Promise<HostDecision> {
  const started = Date.now();
  let spent = 0;
  const seen: string[][] = [];
  const timedOut = () =>
    assert.fail(`timed out waiting for ${JSON.stringify(expected)}; saw ${JSON.stringify(seen)}`);
  for (;;) {
    const next = read(iterator);
    let result: IteratorResult<HostDecision> | undefined;
    if (cluster?.clock) {
      next.then((r) => {
        result = r;
      });
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (!result) {
        if (spent >= timeoutMs) timedOut();
        await cluster.advance(50);
        spent += 50;
      }
    } else {
      const left = timeoutMs - (Date.now() - started);
      let timer: NodeJS.Timeout | undefined;
      const raced = await Promise.race([
        next,
        new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), Math.max(0, left));
        }),
      ]);
      clearTimeout(timer);
      if (raced === 'timeout') timedOut();
      result = raced as IteratorResult<HostDecision>;
    }
    consumed(iterator);
    if (result.done) assert.fail(`the iterator ended while waiting for ${JSON.stringify(expected)}`);
    seen.push(result.value.hosts);
    if (JSON.stringify(result.value.hosts) === JSON.stringify(expected)) return result.value;
  }
}

/** Advance the manual clock in steps until `check` holds (fails after `maxMs` of cluster time). */
export async function advanceUntil(
  cluster: TestCluster,
  check: () => unknown | Promise<unknown>,
  what: string,
  maxMs = 20_000,
  step = 50,
): Promise<void> {
  for (let t = 0; ; t += step) {
    if (await check()) return;
    if (t >= maxMs) assert.fail(`waited ${maxMs} ms of cluster time for ${what}`);
    await cluster.advance(step);
  }
}

/** Expect no value from `iterator` while the manual clock moves `ms` (or real time passes, without a manual clock). */
export async function quietFor(
  iterator: AsyncIterator<HostDecision>,
  ms: number,
  cluster?: TestCluster,
): Promise<void> {
  let got: IteratorResult<HostDecision> | undefined;
  read(iterator).then((r) => {
    got = r;
  });
  if (cluster?.clock) await cluster.advance(ms);
  else await new Promise((resolve) => setTimeout(resolve, ms));
  assert.equal(got, undefined, `expected no decision, got ${JSON.stringify(got)}`);
}

/** The next value of `iterator` (advancing a manual clock up to `timeoutMs`). */
export async function nextDecision(
  iterator: AsyncIterator<HostDecision>,
  timeoutMs = 5000,
  cluster?: TestCluster,
): Promise<IteratorResult<HostDecision>> {
  let got: IteratorResult<HostDecision> | undefined;
  const pending = read(iterator);
  pending.then((r) => {
    got = r;
  });
  await new Promise<void>((resolve) => setImmediate(resolve));
  if (cluster?.clock) {
    for (let t = 0; !got && t < timeoutMs; t += 50) await cluster.advance(50);
  } else {
    const deadline = Date.now() + timeoutMs;
    while (!got && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  }
  if (!got) assert.fail(`no decision within ${timeoutMs} ms`);
  consumed(iterator);
  return got;
}

/** The raw decision key of `namespace`. */
export async function decisionKv(rota: Rota, namespace: string): Promise<KeyValue | null> {
  return (await rota.store.get(rota.context.keys.key('hosts', 'decisions', encodeURIComponent(namespace))))
    .kv;
}

/** The raw decision record of `namespace`. */
export async function decisionRecord(
  rota: Rota,
  namespace: string,
): Promise<{ hosts: string[]; order: string[]; leader: string; leaderToken: number } | null> {
  const kv = await decisionKv(rota, namespace);
  return kv ? decodeJson(kv.value) : null;
}

/** The raw candidacy key of (`namespace`, `hostname`). */
export async function candidacyKv(rota: Rota, namespace: string, hostname: string): Promise<KeyValue | null> {
  const key = rota.context.keys.key(
    'hosts',
    'candidates',
    encodeURIComponent(namespace),
    encodeURIComponent(hostname),
  );
  return (await rota.store.get(key)).kv;
}

/** Every key under `hosts/`. */
export async function hostKeys(rota: Rota): Promise<string[]> {
  const { kvs } = await rota.store.range(rota.context.keys.prefix('hosts'));
  return kvs.map((kv) => kv.key);
}
