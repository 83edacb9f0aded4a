/**
 * Scenario helpers. `allStores(title, body)` registers an [all-stores] scenario once per selected
 * store fixture (real time, real servers); `withCluster` runs a body against a fresh test cluster
 * and always closes it.
 */
import { describe, it } from 'node:test';
import { createTestCluster, type TestCluster, type TestClusterOptions } from '../../src/testing/index.js';
import type { BackendFixture } from './stores.js';
import { selectedFixtures, serverAvailable } from './stores.js';

export { assert, delay, eventually, rejectsWith, take } from '../../src/store/conformance/helpers.js';

/** Fixtures whose servers are available (CI fails instead of skipping). */
export function storeFixtures(): BackendFixture[] {
  return selectedFixtures().filter((f) => serverAvailable(f));
}

/** Longest a scenario body may run before it fails (so its cleanup still runs). */
const BODY_DEADLINE_MS = 50_000;
/** Longest the cleanup of a scenario may take. */
const CLEANUP_DEADLINE_MS = 15_000;

/**
 * Fail with a clear message if `promise` is not settled within `ms`. A test whose body hangs would
 * otherwise never reach its cleanup, and the cluster's timers would keep the test file alive.
 */
async function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Run `body` with a fresh test cluster on `fixture` (real clock), then close everything. */
export async function withStoreCluster(
  fixture: BackendFixture,
  options: Omit<TestClusterOptions, 'store' | 'clock'>,
  body: (cluster: TestCluster) => Promise<void>,
): Promise<void> {
  const handle = await fixture.create();
  let cluster: TestCluster | undefined;
  try {
    cluster = await createTestCluster({ ...options, store: () => handle.connect(), clock: 'real' });
    await deadline(body(cluster), BODY_DEADLINE_MS, 'the scenario');
  } finally {
    await deadline(
      (async () => {
        await cluster?.close();
        await handle.destroy();
      })(),
      CLEANUP_DEADLINE_MS,
      'the scenario cleanup',
    );
  }
}

/** Run `body` with a memory-store test cluster on a shared manual clock. */
export async function withManualCluster(
  options: Omit<TestClusterOptions, 'store' | 'clock'>,
  body: (cluster: TestCluster) => Promise<void>,
): Promise<void> {
  const cluster = await createTestCluster({ ...options, store: 'memory', clock: 'manual' });
  try {
    await deadline(body(cluster), BODY_DEADLINE_MS, 'the scenario');
  } finally {
    await deadline(cluster.close(), CLEANUP_DEADLINE_MS, 'the scenario cleanup');
  }
}

/**
 * Register an [all-stores] scenario group: one `describe` per store, the tests inside run
 * concurrently (each on its own isolated store).
 */
export function allStores(
  title: string,
  tests: Record<string, (fixture: BackendFixture) => Promise<void>>,
  options: { concurrency?: number; timeout?: number } = {},
): void {
  for (const fixture of storeFixtures()) {
    describe(`${title} [${fixture.name}]`, { concurrency: options.concurrency ?? 8 }, () => {
      for (const [name, body] of Object.entries(tests)) {
        it(name, { timeout: options.timeout ?? 60_000 }, () => body(fixture));
      }
    });
  }
}
