/**
 * Schedule-specific test helpers (Boundary's `TestScheduler` counterpart, together with
 * `createTestCluster()`): scriptable lockers and electors that record their calls (gocron's mocks),
 * a way to drive a manual-clock cluster until something happened, and a wait for a run's end.
 */
import type { Elector, Lock, Locker } from '../cluster/interfaces.js';
import { LockBusyError } from '../errors.js';
import type { Rota } from '../rota.js';
import type { RunInfo } from '../schedules/types.js';
import type { TestCluster } from './index.js';

/** A `Locker` whose answers come from `allow(key)` (default: always grant); `calls` lists every key asked. */
export function fakeLocker(
  allow: (key: string) => boolean = () => true,
): Locker & { calls: string[]; released: string[] } {
  const calls: string[] = [];
  const released: string[] = [];
  return {
    calls,
    released,
    async lock(key: string): Promise<Lock> {
      calls.push(key);
      if (!allow(key)) throw new LockBusyError(`fake locker refused ${key}`, { detail: { key } });
      const controller = new AbortController();
      const release = async () => {
        if (controller.signal.aborted) return;
        controller.abort();
        released.push(key);
      };
      return { key, token: calls.length, signal: controller.signal, release, [Symbol.asyncDispose]: release };
    },
  };
}

/** An `Elector` answering `leader()` (a boolean or a function); `calls` counts the questions. */
export function fakeElector(leader: boolean | (() => boolean)): Elector & { calls: number } {
  const elector = {
    calls: 0,
    async isLeader(): Promise<boolean> {
      elector.calls++;
      return typeof leader === 'function' ? leader() : leader;
    },
  };
  return elector;
}

/**
 * Advance a manual-clock test cluster in `step` ms increments (default 25) until `done()` is true,
 * at most `max` ms (default 60 000). Resolves with the time advanced; rejects when `max` is reached.
 */
export async function advanceUntil(
  cluster: TestCluster,
  done: () => boolean | Promise<boolean>,
  options: { step?: number; max?: number } = {},
): Promise<number> {
  const step = options.step ?? 25;
  const max = options.max ?? 60_000;
  for (let advanced = 0; ; advanced += step) {
    if (await done()) return advanced;
    if (advanced >= max) throw new Error(`advanceUntil: not done after ${max} ms`);
    await cluster.advance(step);
  }
}

/**
 * Resolve with the record of the next run of `name` that ends on this node (completed, failed or
 * interrupted), read from the store once its end was reported.
 */
export function nextRunEnd(rota: Rota, name: string): Promise<RunInfo> {
  return new Promise((resolve, reject) => {
    const offs: (() => void)[] = [];
    const done = (runId: string) => {
      for (const off of offs) off();
      rota.schedules.run(name, runId).then(resolve, reject);
    };
    offs.push(
      rota.events.on('run:completed', (e) => e.name === name && done(e.runId)),
      rota.events.on('run:failed', (e) => e.name === name && done(e.runId)),
      rota.events.on('run:interrupted', (e) => e.name === name && done(e.runId)),
    );
  });
}
