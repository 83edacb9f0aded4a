/**
 * PostgreSQL store: the server terminates the store's connections (pg_terminate_backend) while it
 * watches and while it claims. The store reconnects, LISTENs again and catches up from the last
 * revision; no event is lost or repeated, no claim is handed out twice, every item completes once.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRotaError } from '../../src/errors.js';
import { delay, enc, expectQuiet, take } from '../../src/store/conformance/helpers.js';
import type { QueueItem, SettleResult } from '../../src/store/port.js';
import { appName, backendOf, needsServer, terminate, withSchema } from './helpers.js';

/** Terminate the connections of `name` `times` times, `every` ms apart. Returns how many died. */
async function killer(name: string, times: number, every: number): Promise<number> {
  let killed = 0;
  for (let i = 0; i < times; i++) {
    await delay(every);
    killed += await terminate(name);
  }
  return killed;
}

describe('postgres connection loss', needsServer, () => {
  it('a watch whose connections are terminated reconnects, re-LISTENs and misses nothing', {
    timeout: 60_000,
  }, async () => {
    await withSchema(async (open) => {
      const name = appName('watch');
      // No fallback poll: after a loss only the re-LISTEN (and its catch-up read) can deliver.
      const watcher = await open({ applicationName: name, pollInterval: 3_600_000 });
      const writer = await open();
      const start = (await writer.status()).revision + 1;
      const watch = watcher.watch('cl/', { fromRevision: start });
      const revisions: number[] = [];
      const writing = (async () => {
        for (let i = 0; i < 150; i++) {
          revisions.push((await writer.put(`cl/${i % 10}`, enc(String(i)))).revision);
          await delay(4);
        }
      })();
      const killing = killer(name, 6, 90);
      const events = await take(watch, 150, 30_000);
      await writing;
      const killed = await killing;
      assert.ok(killed >= 6, `only ${killed} connections were terminated`);
      assert.ok(backendOf(watcher).listenerConnects > 1, 'the LISTEN connection was re-established');
      assert.deepEqual(
        events.map((e) => e.revision),
        revisions,
      );
      assert.deepEqual(
        events.map((e) => new TextDecoder().decode(e.kv.value)),
        revisions.map((_, i) => String(i)),
      );
      // After the losses the watch still runs on notifications alone.
      const after = await writer.put('cl/after', enc('x'));
      const [last] = await take(watch, 1, 10_000);
      assert.equal(last?.revision, after.revision);
      await expectQuiet(watch, 200);
      await watch.return?.();
    });
  });

  it('claims whose connections are terminated mid-flight are never doubled and every item completes once', {
    timeout: 60_000,
  }, async () => {
    await withSchema(async (open) => {
      const name = appName('claim');
      const worker = await open({ applicationName: name, poolSize: 4 });
      const producer = await open();
      const N = 200;
      await producer.enqueue(
        Array.from({ length: N }, (_, i) => ({ id: `c${i}`, queue: 'cl', payload: String(i) })),
      );

      const tokens = new Map<string, number[]>();
      const completions = new Map<string, number>();
      const winningToken = new Map<string, number>();
      let surfaced = 0;
      let done = false;

      // Settle until the store answers: a repeat of a complete that already applied is a noop.
      const settle = async (it: QueueItem, owner: string): Promise<void> => {
        let ambiguous = false;
        for (;;) {
          let result: SettleResult | undefined;
          try {
            [result] = await worker.settle([
              { op: 'complete', id: it.id, token: it.token as number, owner, result: String(it.token) },
            ]);
          } catch (err) {
            if (!isRotaError(err, 'ROTA_STORE_UNAVAILABLE')) throw err;
            surfaced++;
            ambiguous ||= err.detail.ambiguous === true;
            continue;
          }
          if (result?.status === 'ok' || (result?.status === 'noop' && ambiguous)) {
            completions.set(it.id, (completions.get(it.id) ?? 0) + 1);
            winningToken.set(it.id, it.token as number);
          }
          return;
        }
      };

      const loop = async (owner: string) => {
        while (!done) {
          let items: QueueItem[];
          try {
            // Without start: a claim lost with its connection only returns to pending when its
            // lease expires, without using up an attempt.
            items = (await worker.claim({ queue: 'cl', owner, limit: 5, leaseTtl: 1500 })).items;
          } catch (err) {
            if (!isRotaError(err, 'ROTA_STORE_UNAVAILABLE')) throw err;
            surfaced++;
            continue;
          }
          if (items.length === 0) {
            await delay(50);
            continue;
          }
          for (const it of items) {
            const list = tokens.get(it.id) ?? [];
            list.push(it.token as number);
            tokens.set(it.id, list);
          }
          for (const it of items) await settle(it, owner);
        }
      };

      const loops = Array.from({ length: 4 }, (_, i) => loop(`w${i}`));
      const killed = await killer(name, 8, 80);
      const deadline = Date.now() + 30_000;
      while ((await producer.countItems('cl')).cl?.completed !== N) {
        assert.ok(Date.now() < deadline, 'every item completes');
        await delay(100);
      }
      done = true;
      await Promise.all(loops);

      assert.ok(killed >= 8, `only ${killed} connections were terminated`);
      for (const [id, list] of tokens) {
        for (let i = 1; i < list.length; i++) {
          assert.ok(
            (list[i] as number) > (list[i - 1] as number),
            `${id} got token ${list[i]} after ${list[i - 1]}`,
          );
        }
      }
      const all = (await producer.listItems({ queue: 'cl', limit: N })).items;
      assert.equal(all.length, N);
      for (const item of all) {
        assert.equal(item.state, 'completed');
        assert.equal(item.outcome, 'succeeded');
        assert.equal(
          completions.get(item.id),
          1,
          `${item.id} completed ${completions.get(item.id) ?? 0} times`,
        );
        assert.equal(
          item.result,
          String(winningToken.get(item.id)),
          `${item.id} was completed by its last claim`,
        );
        assert.equal(item.token, winningToken.get(item.id));
      }
      // Connection trouble that the store could not absorb reached the caller as
      // ROTA_STORE_UNAVAILABLE only; counted for the log, not asserted (it depends on timing).
      console.log(
        `connection loss: ${killed} connections terminated, ${surfaced} calls surfaced unavailable`,
      );
    });
  });

  it('connections terminated as fast as they open never crash the process', { timeout: 60_000 }, async () => {
    await withSchema(async (open) => {
      const name = appName('storm');
      const store = await open({ applicationName: name, poolSize: 3 });
      let stop = false;
      let ok = 0;
      const failures = new Set<string>();
      const readers = Array.from({ length: 4 }, async () => {
        while (!stop) {
          try {
            await store.get('storm');
            ok++;
          } catch (err) {
            failures.add(isRotaError(err) ? err.code : String(err));
          }
        }
      });
      // Without an 'error' listener on every pooled connection for life, a connection killed
      // right after its startup crashes the process here (an uncaught 'error' event).
      let killed = 0;
      const until = Date.now() + 1_500;
      while (Date.now() < until) killed += await terminate(name);
      stop = true;
      await Promise.all(readers);
      assert.ok(killed > 20, `only ${killed} connections were terminated`);
      assert.ok(ok > 0, 'some reads got through');
      for (const code of failures) assert.equal(code, 'ROTA_STORE_UNAVAILABLE');
      // And the store works once the storm is over.
      await store.put('storm', enc('calm'));
      assert.equal(new TextDecoder().decode((await store.get('storm')).kv?.value), 'calm');
    });
  });
});
