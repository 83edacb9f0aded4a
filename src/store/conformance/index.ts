/**
 * The store conformance suite: one suite, parameterized by a fixture, that every backend must
 * pass unchanged. Run it from a `node:test` file:
 *
 * ```ts
 * import { runConformanceSuite } from 'rota/conformance';
 * runConformanceSuite({ name: 'my-store', create: async () => ({ store, connect, destroy }) });
 * ```
 *
 * Every test gets a fresh, isolated store from the fixture, so tests run concurrently.
 */
import { describe, it } from 'node:test';
import type { Store } from '../port.js';
import { kvTests } from './kv.js';
import { leaseTests } from './leases.js';
import { queueTests } from './queue.js';
import { validationTests } from './validation.js';
import { watchTests } from './watch.js';

/** One isolated store instance for one test. */
export interface StoreHandle {
  /** The first client. */
  store: Store;
  /** Open another client on the same data (what a second process would see). */
  connect(): Promise<Store>;
  /** Close every client opened here and remove the test's data. */
  destroy(): Promise<void>;
}

/** How the suite gets stores of one backend. */
export interface StoreFixture {
  /** Backend name used in test titles. */
  name: string;
  /** A fresh, empty, isolated store (its own prefix, schema or file). */
  create(): Promise<StoreHandle>;
}

/** A conformance test body: receives a fresh handle. */
export type ConformanceTest = (handle: StoreHandle) => Promise<void>;

/** A group of named conformance tests. */
export type ConformanceGroup = Record<string, ConformanceTest>;

export const conformanceGroups: Record<string, ConformanceGroup> = {
  kv: kvTests,
  leases: leaseTests,
  watch: watchTests,
  queue: queueTests,
  validation: validationTests,
};

/** Count of tests in the suite (each runs once per backend). */
export const conformanceTestCount = Object.values(conformanceGroups).reduce(
  (n, g) => n + Object.keys(g).length,
  0,
);

export interface SuiteOptions {
  /** Tests run at the same time within a group (default 8). */
  concurrency?: number;
  /** Per-test timeout in ms (default 30 000). */
  timeout?: number;
}

/** Register the whole suite for `fixture` with node:test. */
export function runConformanceSuite(fixture: StoreFixture, options: SuiteOptions = {}): void {
  describe(`store conformance: ${fixture.name}`, () => {
    for (const [group, tests] of Object.entries(conformanceGroups)) {
      describe(group, { concurrency: options.concurrency ?? 8 }, () => {
        for (const [title, body] of Object.entries(tests)) {
          it(title, { timeout: options.timeout ?? 30_000 }, async () => {
            const handle = await fixture.create();
            try {
              await body(handle);
            } finally {
              await handle.destroy();
            }
          });
        }
      });
    }
  });
}

export * from './helpers.js';
