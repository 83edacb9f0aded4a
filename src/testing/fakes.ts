/**
 * Scriptable doubles of gocron's plug points (cluster.md §1, the counterpart of gocron's mockgen
 * mocks): they record every call and answer as scripted, so code that takes an `Elector` or a
 * `Locker` can be tested without a cluster.
 */
import type { Elector, Lock, Locker, LockerLockOptions } from '../cluster/interfaces.js';
import { LockBusyError, LockLostError } from '../errors.js';

export interface FakeElector extends Elector {
  /** Number of isLeader() calls so far. */
  readonly calls: number;
  /** Change the answer of later calls. */
  setLeader(value: boolean): void;
}

/**
 * An Elector answering from a script: a fixed boolean, a list consumed call by call (its last
 * value repeats), or a function. A function that throws or rejects counts as `false`, as with a
 * real Elector.
 */
export function fakeElector(
  script: boolean | boolean[] | (() => boolean | Promise<boolean>) = true,
): FakeElector {
  let answer = script;
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    setLeader(value: boolean) {
      answer = value;
    },
    async isLeader() {
      const n = calls++;
      try {
        if (typeof answer === 'function') return Boolean(await answer());
        if (Array.isArray(answer)) return Boolean(answer[Math.min(n, answer.length - 1)] ?? false);
        return answer;
      } catch {
        return false;
      }
    },
  };
}

export interface FakeLockCall {
  key: string;
  options: LockerLockOptions;
  granted: boolean;
}

export interface FakeLocker extends Locker {
  /** Every lock() call, in order. */
  readonly calls: readonly FakeLockCall[];
  /** Keys currently held through this locker. */
  readonly held: ReadonlySet<string>;
  /** Released lock keys, in order. */
  readonly released: readonly string[];
  /** Script refusals: `true` refuses every key, a function decides per key. */
  setBusy(busy: boolean | ((key: string) => boolean)): void;
  /** Make the held lock of `key` lost (its signal aborts with ROTA_LOCK_LOST). */
  lose(key: string): void;
}

/**
 * A Locker that grants or refuses as scripted (`busy`), hands out increasing tokens, refuses a key
 * already held through it, and records calls and releases.
 */
export function fakeLocker(options: { busy?: boolean | ((key: string) => boolean) } = {}): FakeLocker {
  let busy = options.busy ?? false;
  let token = 0;
  const calls: FakeLockCall[] = [];
  const held = new Map<string, AbortController>();
  const released: string[] = [];
  return {
    calls,
    get held() {
      return new Set(held.keys());
    },
    released,
    setBusy(value) {
      busy = value;
    },
    lose(key) {
      held.get(key)?.abort(new LockLostError(`fake lock ${key} lost`));
      held.delete(key);
    },
    async lock(key: string, lockOptions: LockerLockOptions = {}): Promise<Lock> {
      const refuse = held.has(key) || (typeof busy === 'function' ? busy(key) : busy);
      calls.push({ key, options: lockOptions, granted: !refuse });
      if (refuse) throw new LockBusyError(`fake lock ${key} is busy`, { detail: { key } });
      const controller = new AbortController();
      held.set(key, controller);
      const lock: Lock = {
        key,
        token: ++token,
        signal: controller.signal,
        async release() {
          if (held.get(key) === controller) {
            held.delete(key);
            released.push(key);
          }
        },
        async [Symbol.asyncDispose]() {
          await lock.release();
        },
      };
      return lock;
    },
  };
}
