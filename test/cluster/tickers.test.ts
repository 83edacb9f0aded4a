/** cluster.md §2.5: distributed tickers (CL-32 … CL-40). */
import { describe, it } from 'node:test';
import type { Tick } from '../../src/cluster/index.js';
import {
  allStores,
  assert,
  delay,
  rejectsWith,
  withManualCluster,
  withStoreCluster,
} from '../support/scenarios.js';

/** Consume a ticker in the background, recording every tick. */
function consume(ticker: AsyncIterable<Tick>, into: Tick[], node = ''): Promise<void> {
  return (async () => {
    for await (const tick of ticker) into.push(node ? { ...tick, name: `${tick.name}@${node}` } : tick);
  })();
}

allStores('cluster tickers', {
  'CL-32 three nodes share one ticker: every slot is delivered once, no seq twice': async (fixture) => {
    await withStoreCluster(fixture, { nodes: 3, nodeOptions: { sessionTtl: 5000 } }, async (cluster) => {
      const ticks: Tick[] = [];
      const tickers = await Promise.all(cluster.nodes.map((n) => n.rota.cluster.ticker('T', 200)));
      const loops = tickers.map((t, i) => consume(t, ticks, `n${i + 1}`));
      await delay(2000);
      for (const t of tickers) t.close();
      await Promise.all(loops);
      const seqs = ticks.map((t) => t.seq).sort((a, b) => a - b);
      assert.equal(new Set(seqs).size, seqs.length, 'no seq delivered twice');
      assert.ok(ticks.length >= 5, `ticks flowed (${ticks.length})`);
      for (let i = 1; i < seqs.length; i++)
        assert.equal(seqs[i], (seqs[i - 1] as number) + 1, 'seqs are consecutive');
      const byAt = [...ticks].sort((a, b) => a.at - b.at);
      const first = byAt[0] as Tick;
      const last = byAt[byAt.length - 1] as Tick;
      // Every 200 ms slot between the first and last tick is accounted for: delivered or missed.
      const covered = byAt.slice(1).reduce((n, t) => n + 1 + t.missed, 1);
      assert.equal(covered, (last.at - first.at) / 200 + 1);
    });
  },
});

describe('cluster tickers (memory, manual clock)', () => {
  it('CL-33 the first tick comes one interval after creation, or at once with immediate', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.node('n1').rota;
      const t0 = await rota.store.now();
      const ticker = await rota.cluster.ticker('T', 1000);
      const first = ticker.next();
      await cluster.advance(1000);
      assert.equal((await first).value?.at, t0 + 1000);
      ticker.close();
      const t1 = await rota.store.now();
      const now = await rota.cluster.ticker('I', 1000, { immediate: true });
      const immediate = now.next();
      await cluster.advance(5);
      assert.equal((await immediate).value?.at, t1);
      now.close();
    });
  });

  it('CL-34 a new interval replaces the old one for every node and emits ticker:changed', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const [a, b] = cluster.nodes.map((n) => n.rota) as [
        (typeof cluster.nodes)[0]['rota'],
        (typeof cluster.nodes)[0]['rota'],
      ];
      const changed: number[] = [];
      a.events.on('ticker:changed', (e) => changed.push(e.interval));
      const ta = await a.cluster.ticker('T', 200);
      const ticks: Tick[] = [];
      const loops = [consume(ta, ticks)];
      await cluster.advance(450);
      const tb = await b.cluster.ticker('T', 500);
      loops.push(consume(tb, ticks));
      await cluster.advance(10);
      assert.deepEqual(changed, [500]);
      assert.equal(ta.interval, 500);
      const seen = ticks.length;
      await cluster.advance(1500);
      const later = ticks.slice(seen).sort((x, y) => x.at - y.at);
      assert.ok(later.length >= 2);
      for (let i = 1; i < later.length; i++) assert.equal(later[i]!.at - later[i - 1]!.at, 500);
      ta.close();
      tb.close();
      await Promise.all(loops);
    });
  });

  it('CL-35 stop() ends the ticker everywhere; close() ends one node only', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const ta = await cluster.node('n1').rota.cluster.ticker('T', 200);
      const tb = await cluster.node('n2').rota.cluster.ticker('T', 200);
      const ticks: Tick[] = [];
      const loops = [consume(ta, ticks), consume(tb, ticks)];
      await cluster.advance(450);
      const before = ticks.length;
      assert.ok(before >= 2);
      ta.close();
      await cluster.advance(400);
      assert.ok(ticks.length >= before + 2, 'the other node keeps ticking after close()');
      const stoppedAt = ticks.length;
      await tb.stop();
      await cluster.advance(400);
      assert.equal(ticks.length, stoppedAt, 'no tick after stop()');
      await Promise.all(loops);
    });
  });

  it('CL-36 a busy node stops competing once its buffer is full; the ready node gets the ticks, none lost', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const busy = await cluster.node('n1').rota.cluster.ticker('T', 100);
      const ready = await cluster.node('n2').rota.cluster.ticker('T', 100);
      const got: Tick[] = [];
      const loop = consume(ready, got);
      await cluster.advance(1050);
      // n1 never reads: at most `buffer` (1) tick waits there undelivered.
      const held: Tick[] = [];
      busy.close();
      for await (const t of busy) held.push(t);
      assert.ok(held.length <= 1);
      const seqs = [...got, ...held].map((t) => t.seq).sort((a, b) => a - b);
      assert.deepEqual(
        seqs,
        seqs.map((_, i) => i + 1),
        'every seq went to exactly one node',
      );
      assert.ok(got.length >= 9);
      ready.close();
      await loop;
    });
  });

  it('CL-37 when nobody was ready for 3 intervals, the next tick reports missed: 3', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const ticker = await cluster.node('n1').rota.cluster.ticker('T', 100, { buffer: 0 });
      // Slots at +100 … +400 come due with nobody ready: the first is delivered late, 3 were missed.
      await cluster.advance(450);
      const next = ticker.next();
      await cluster.advance(10);
      const tick = (await next).value as Tick;
      assert.equal(tick.missed, 3);
      assert.equal(tick.seq, 1);
      ticker.close();
    });
  });

  it('CL-38 a store error during the advance delivers nothing and retries after min(d, 1 s)', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.node('n1');
      const ticker = await node.rota.cluster.ticker('T', 5000);
      const ticks: Tick[] = [];
      const loop = consume(ticker, ticks);
      cluster.injectStoreError(node, 'txn', 1);
      await cluster.advance(5000);
      assert.equal(ticks.length, 0, 'no tick when the advance failed');
      await cluster.advance(1000);
      assert.equal(ticks.length, 1, 'retried after 1 s');
      ticker.close();
      await loop;
    });
  });

  it('CL-39 a node with a skewed wall clock ticks by store time and never duplicates a seq', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      cluster.skew('n1', 600_000);
      const ticks: Tick[] = [];
      const tickers = await Promise.all(cluster.nodes.map((n) => n.rota.cluster.ticker('T', 100)));
      const loops = tickers.map((t) => consume(t, ticks));
      await cluster.advance(1000);
      const seqs = ticks.map((t) => t.seq);
      assert.equal(new Set(seqs).size, seqs.length);
      assert.equal(ticks.length, 10);
      for (const t of tickers) t.close();
      await Promise.all(loops);
    });
  });

  it('CL-40 reset() moves the next tick for every node; bad intervals are refused', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const rota = cluster.node('n1').rota;
      const ta = await rota.cluster.ticker('T', 1000);
      const tb = await cluster.node('n2').rota.cluster.ticker('T', 1000);
      const ticks: Tick[] = [];
      const loops = [consume(ta, ticks), consume(tb, ticks)];
      await cluster.advance(200);
      const resetAt = await rota.store.now();
      await ta.reset(100);
      await cluster.advance(110);
      assert.equal(ticks.length, 1);
      assert.equal(ticks[0]?.at, resetAt + 100);
      await rejectsWith(ta.reset(0), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(rota.cluster.ticker('X', -5), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(rota.cluster.ticker('X', 1.5), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(rota.cluster.ticker('', 100), 'ROTA_INVALID_ARGUMENT');
      ta.close();
      tb.close();
      await Promise.all(loops);
    });
  });
});
