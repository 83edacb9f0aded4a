/** cluster.md §2.3: fenced locks and lockers (CL-9 … CL-22). */
import { describe, it } from 'node:test';
import {
  allStores,
  assert,
  delay,
  eventually,
  rejectsWith,
  withManualCluster,
  withStoreCluster,
} from '../support/scenarios.js';

// Nodes meant to die use a short TTL; 3 s leaves room for store round trips under a loaded machine.
const TTL = 3000;

allStores('cluster locks', {
  'CL-9 ten nodes looping withLock never overlap and all get the lock': async (fixture) => {
    await withStoreCluster(fixture, { nodes: 10, nodeOptions: { sessionTtl: 5000 } }, async (cluster) => {
      let inside = 0;
      let maxInside = 0;
      const acquired = new Map<string, number>();
      await Promise.all(
        cluster.nodes.map(async (node) => {
          for (let i = 0; i < 3; i++) {
            await node.rota.cluster.withLock('L', async () => {
              inside++;
              maxInside = Math.max(maxInside, inside);
              acquired.set(node.nodeId, (acquired.get(node.nodeId) ?? 0) + 1);
              await delay(2);
              inside--;
            });
          }
        }),
      );
      assert.equal(maxInside, 1, 'never two holders at once');
      assert.equal(acquired.size, 10, 'every node acquired');
    });
  },

  'CL-10 successive holders get strictly increasing tokens': async (fixture) => {
    await withStoreCluster(fixture, { nodes: 3, nodeOptions: { sessionTtl: 5000 } }, async (cluster) => {
      const tokens: number[] = [];
      for (let i = 0; i < 6; i++) {
        const node = cluster.nodes[i % 3]!;
        const lock = await node.rota.cluster.lock('L');
        tokens.push(lock.token);
        await lock.release();
      }
      for (let i = 1; i < tokens.length; i++)
        assert.ok(tokens[i]! > tokens[i - 1]!, `tokens ${tokens.join(',')}`);
    });
  },

  'CL-11 when the holder is killed a waiting contender acquires with a greater token': async (fixture) => {
    // Only the holder runs on a 1 s session; the waiter's longer TTL keeps it safe from load stalls.
    await withStoreCluster(fixture, { nodes: 0 }, async (cluster) => {
      const a = await cluster.addNode({ nodeId: 'n1', sessionTtl: TTL });
      const b = await cluster.addNode({ nodeId: 'n2', sessionTtl: 10_000 });
      const held = await a.rota.cluster.lock('L');
      const waiting = b.rota.cluster.lock('L');
      waiting.catch(() => undefined);
      await delay(100);
      cluster.kill(a);
      const next = await waiting;
      assert.ok(next.token > held.token);
      await next.release();
    });
  },

  'CL-12 a partitioned holder loses its lock before the successor acquires; its old token is fenced off':
    async (fixture) => {
      // Only the holder runs on a 1 s session; the waiter's longer TTL keeps it safe from load stalls.
      await withStoreCluster(fixture, { nodes: 0 }, async (cluster) => {
        const a = await cluster.addNode({ nodeId: 'n1', sessionTtl: TTL });
        const b = await cluster.addNode({ nodeId: 'n2', sessionTtl: 10_000 });
        const held = await a.rota.cluster.lock('L');
        const order: string[] = [];
        held.signal.addEventListener('abort', () => order.push('lost'));
        const waiting = b.rota.cluster.lock('L').then((l) => {
          order.push('acquired');
          return l;
        });
        await delay(100);
        cluster.partition(a);
        const next = await waiting;
        assert.deepEqual(order, ['lost', 'acquired']);
        assert.equal((held.signal.reason as { code?: string }).code, 'ROTA_LOCK_LOST');
        const fenced = await b.rota.store.txn({
          compare: [{ key: held.key, target: 'createRevision', op: '==', value: held.token }],
          success: [{ type: 'put', key: 'effect', value: new Uint8Array([1]) }],
        });
        assert.equal(fenced.succeeded, false, 'a write fenced with the old token fails');
        cluster.heal(a);
        await next.release();
      });
    },

  'CL-13 tryLock on a held lock gives null at once; a bounded wait fails with ROTA_LOCK_BUSY and leaves no key':
    async (fixture) => {
      await withStoreCluster(fixture, { nodes: 2, nodeOptions: { sessionTtl: 5000 } }, async (cluster) => {
        const held = await cluster.node('n1').rota.cluster.lock('L');
        const b = cluster.node('n2').rota;
        assert.equal(await b.cluster.tryLock('L'), null);
        const started = Date.now();
        await rejectsWith(b.cluster.lock('L', { wait: 200 }), 'ROTA_LOCK_BUSY');
        assert.ok(Date.now() - started >= 150);
        const { kvs } = await b.store.range(b.context.keys.prefix('cluster', 'locks', 'L'));
        assert.deepEqual(
          kvs.map((kv) => kv.key),
          [held.key],
          "the waiter's contender key is gone",
        );
        await held.release();
      });
    },

  'CL-15 release is idempotent, and releasing a lost lock leaves the new holder alone': async (fixture) => {
    await withStoreCluster(fixture, { nodes: 2, nodeOptions: { sessionTtl: 5000 } }, async (cluster) => {
      const a = cluster.node('n1').rota;
      const b = cluster.node('n2').rota;
      const first = await a.cluster.lock('L');
      await first.release();
      await first.release();
      const held = await a.cluster.lock('L');
      await a.cluster.forceUnlock('L');
      await eventually(() => held.signal.aborted, 3000, 'the forced-out holder to notice');
      const next = await b.cluster.lock('L');
      await held.release();
      assert.equal((await b.cluster.lockHolder('L'))?.token, next.token, 'the new holder is unaffected');
      assert.ok(next.signal.aborted === false);
      await next.release();
    });
  },

  'CL-19 slot lockers: one winner per slot, a released slot stays taken, another slot is free': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 3, nodeOptions: { sessionTtl: 5000 } }, async (cluster) => {
      const lockers = cluster.nodes.map((n) => n.rota.cluster.locker({ mode: 'slot' }));
      const slotAt = Date.UTC(2030, 0, 1, 12, 0, 0);
      const results = await Promise.allSettled(lockers.map((l) => l.lock('job', { slotAt })));
      const won = results.filter((r) => r.status === 'fulfilled');
      assert.equal(won.length, 1);
      for (const r of results) if (r.status === 'rejected') assert.equal(r.reason.code, 'ROTA_LOCK_BUSY');
      await (won[0] as PromiseFulfilledResult<{ release(): Promise<void> }>).value.release();
      await rejectsWith(lockers[0]!.lock('job', { slotAt }), 'ROTA_LOCK_BUSY');
      const other = await lockers[1]!.lock('job', { slotAt: slotAt + 1000 });
      await other.release();
      for (const l of lockers) await l.close?.();
    });
  },
});

describe('cluster locks (memory, manual clock)', () => {
  it('CL-14 an aborted waiter fails with ROTA_ABORTED, its key goes, the queue order stays', async () => {
    await withManualCluster({ nodes: 4 }, async (cluster) => {
      const [a, b, c, d] = cluster.nodes.map((n) => n.rota) as [
        (typeof cluster.nodes)[0]['rota'],
        (typeof cluster.nodes)[0]['rota'],
        (typeof cluster.nodes)[0]['rota'],
        (typeof cluster.nodes)[0]['rota'],
      ];
      const held = await a.cluster.lock('L');
      const order: string[] = [];
      const controller = new AbortController();
      const waitB = b.cluster.lock('L', { signal: controller.signal });
      await cluster.advance(10);
      const waitC = c.cluster.lock('L').then((l) => {
        order.push('c');
        return l;
      });
      await cluster.advance(10);
      const waitD = d.cluster.lock('L').then((l) => {
        order.push('d');
        return l;
      });
      await cluster.advance(10);
      controller.abort();
      await rejectsWith(waitB, 'ROTA_ABORTED');
      const { kvs } = await a.store.range(a.context.keys.prefix('cluster', 'locks', 'L'));
      assert.equal(kvs.length, 3, "b's contender key is gone");
      await held.release();
      const lc = await waitC;
      await cluster.advance(10);
      assert.deepEqual(order, ['c']);
      await lc.release();
      const ld = await waitD;
      assert.deepEqual(order, ['c', 'd']);
      await ld.release();
    });
  });

  it('CL-16 a ttl lock auto-extends while held; without autoExtend it expires and a contender takes it', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const a = cluster.node('n1').rota;
      const b = cluster.node('n2').rota;
      const held = await a.cluster.lock('L', { ttl: 1000 });
      await cluster.advance(5000);
      assert.equal(held.signal.aborted, false, 'held throughout 5 s');
      assert.equal((await b.cluster.lockHolder('L'))?.token, held.token);
      await held.release();
      const short = await a.cluster.lock('S', { ttl: 1000, autoExtend: false });
      const waiting = b.cluster.lock('S');
      await cluster.advance(600);
      assert.equal(short.signal.aborted, true, 'aborted at the local deadline, before the store expiry');
      await cluster.advance(600);
      const next = await waiting;
      assert.ok(next.token > short.token);
      await next.release();
    });
  });

  it('CL-17 withLock releases and rethrows when fn throws; a lock lost during fn fails with ROTA_LOCK_LOST', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const a = cluster.node('n1').rota;
      const b = cluster.node('n2').rota;
      await assert.rejects(
        a.cluster.withLock('L', async () => {
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.equal(await b.cluster.lockHolder('L'), null, 'released');
      const running = a.cluster.withLock('L', async (lock) => {
        await new Promise((resolve) => lock.signal.addEventListener('abort', resolve));
        return 'result';
      });
      const outcome = running.then(
        () => null,
        (err) => err,
      );
      await cluster.advance(10);
      await b.cluster.forceUnlock('L');
      await cluster.advance(10);
      assert.equal((await outcome)?.code, 'ROTA_LOCK_LOST', 'the result of fn is dropped');
    });
  });

  it('CL-18 bad lock names and ttls are refused and no key is written', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const a = cluster.node('n1').rota;
      const before = (await a.store.status()).revision;
      for (const name of ['', 'x'.repeat(600), '\u0000']) {
        await rejectsWith(a.cluster.lock(name), 'ROTA_INVALID_ARGUMENT');
      }
      for (const ttl of [0, -1, '5s']) {
        await rejectsWith(a.cluster.lock('L', { ttl: ttl as number }), 'ROTA_INVALID_ARGUMENT');
      }
      await rejectsWith(a.cluster.lock('L', { wait: -5 }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(a.cluster.lock('L', { colour: 1 } as never), 'ROTA_INVALID_ARGUMENT');
      assert.equal((await a.store.status()).revision, before);
    });
  });

  it('CL-20 a custom slotOf decides uniqueness', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const slotOf = () => '2024-01-01';
      const l1 = cluster.node('n1').rota.cluster.locker({ mode: 'slot', slotOf });
      const l2 = cluster.node('n2').rota.cluster.locker({ mode: 'slot', slotOf });
      await l1.lock('job', { slotAt: Date.UTC(2024, 0, 1, 1) });
      await rejectsWith(l2.lock('job', { slotAt: Date.UTC(2024, 0, 1, 23) }), 'ROTA_LOCK_BUSY');
      await l2.lock('other', { slotAt: Date.UTC(2024, 0, 1, 23) });
      await l1.close?.();
      await l2.close?.();
    });
  });

  it('CL-21 slot records are swept after retention', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const a = cluster.node('n1').rota;
      const locker = a.cluster.locker({ mode: 'slot', retention: 1000, cleanInterval: 200 });
      for (let i = 0; i < 3; i++) {
        const lock = await locker.lock('job', { slotAt: Date.UTC(2030, 0, 1) + i * 1000 });
        await lock.release();
      }
      const prefix = a.context.keys.prefix('cluster', 'slots');
      assert.ok((await a.store.range(prefix)).kvs.length >= 3);
      await cluster.advance(1000 + 400);
      assert.equal((await a.store.range(prefix)).kvs.length, 0);
      await locker.close?.();
    });
  });

  it('CL-22 forceUnlock aborts the holder with ROTA_LOCK_LOST and the next contender acquires', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const a = cluster.node('n1').rota;
      const b = cluster.node('n2').rota;
      const held = await a.cluster.lock('L');
      const waiting = b.cluster.lock('L');
      await cluster.advance(10);
      assert.equal(await b.cluster.forceUnlock('L'), true);
      await cluster.advance(10);
      assert.equal((held.signal.reason as { code?: string }).code, 'ROTA_LOCK_LOST');
      const next = await waiting;
      assert.ok(next.token > held.token);
      await next.release();
      assert.equal(await b.cluster.forceUnlock('L'), false);
    });
  });

  it('locker() adapts to the Locker interface and validates its options', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const a = cluster.node('n1').rota;
      const locker = a.cluster.locker();
      const lock = await locker.lock('job');
      assert.ok(lock.token > 0);
      await lock.release();
      assert.throws(() => a.cluster.locker({ mode: 'x' as 'slot' }), { code: 'ROTA_INVALID_ARGUMENT' });
      assert.throws(() => a.cluster.locker({ retention: 5 }), { code: 'ROTA_INVALID_ARGUMENT' });
      assert.throws(() => a.cluster.locker({ mode: 'slot', slotOf: 'x' as never }), {
        code: 'ROTA_INVALID_ARGUMENT',
      });
    });
  });
});
