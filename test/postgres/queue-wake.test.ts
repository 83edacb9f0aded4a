/**
 * PostgreSQL store: queue wake-ups. A write wakes the writing client's subscribers at once and the
 * other clients' through NOTIFY; the writer ignores its own NOTIFY, which would only make its
 * workers claim again and find nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { delay } from '../../src/store/conformance/helpers.js';
import type { Store } from '../../src/store/port.js';
import { backendOf, needsServer, withSchema } from './helpers.js';

async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

describe('postgres queue wake-ups', needsServer, () => {
  it("an enqueue wakes the writer's subscribers once and another client's through NOTIFY", async () => {
    await withSchema(async (open) => {
      const writer = await open();
      const other = await open();
      const wakes = new Map<Store, number>([
        [writer, 0],
        [other, 0],
      ]);
      for (const store of [writer, other])
        store.subscribe('q', () => wakes.set(store, (wakes.get(store) ?? 0) + 1));
      // Each LISTEN connection wakes its subscribers when it (re)connects; count from after that.
      await until('both LISTEN connections', () =>
        [writer, other].every((s) => backendOf(s).listenerConnects >= 1),
      );
      await delay(50);
      wakes.set(writer, 0);
      wakes.set(other, 0);

      await writer.enqueue([{ id: 'a', queue: 'q', payload: '{}' }]);
      assert.equal(wakes.get(writer), 1, 'woken at once by its own write');
      await until("the other client's wake", () => (wakes.get(other) ?? 0) > 0);
      // The same NOTIFY reached the writer's LISTEN connection by now; it must not wake it again.
      await delay(200);
      assert.equal(wakes.get(writer), 1);
      assert.equal(wakes.get(other), 1);
    });
  });
});
