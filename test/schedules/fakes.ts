/** A scriptable Locker for the scenarios: `allow(key)` decides, calls are recorded. */
import type { Lock, Locker } from '../../src/cluster/interfaces.js';

export function fakeLockerForTests(allow: (key: string) => boolean): Locker & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async lock(key: string): Promise<Lock> {
      calls.push(key);
      if (!allow(key)) throw Object.assign(new Error('busy'), { code: 'ROTA_LOCK_BUSY' });
      const controller = new AbortController();
      return {
        key,
        token: calls.length,
        signal: controller.signal,
        release: async () => controller.abort(),
        [Symbol.asyncDispose]: async () => controller.abort(),
      };
    },
  };
}
