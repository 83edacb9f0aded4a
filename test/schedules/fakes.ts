/** Scriptable Locker / Elector doubles for the schedules scenarios (they record their calls). */
import type { Elector, Lock, Locker } from '../../src/cluster/interfaces.js';
import { LockBusyError } from '../../src/errors.js';

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
