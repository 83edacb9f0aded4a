/** cluster.md §2.4: leader elections (CL-23 … CL-30). */
import { describe, it } from 'node:test';
import type { LeaderInfo } from '../../src/cluster/index.js';
import {
  allStores,
  assert,
  delay,
  eventually,
  rejectsWith,
  take,
  withManualCluster,
  withStoreCluster,
} from '../support/scenarios.js';

// Nodes meant to die use a short TTL; 3 s leaves room for store round trips under a loaded machine.
const TTL = 3000;

allStores('cluster elections', {
  'CL-23 of three candidates exactly one leads and every observer agrees': async (fixture) => {
    await withStoreCluster(fixture, { nodes: 3, nodeOptions: { sessionTtl: 5000 } }, async (cluster) => {
      const elections = cluster.nodes.map((n) => n.rota.cluster.election('E'));
      const winner = await Promise.race(elections.map((e) => e.campaign()));
      for (const e of elections) void e.campaign().catch(() => undefined);
      await delay(100);
      assert.equal(elections.filter((e) => e.isLeader()).length, 1);
      const observed: (LeaderInfo | null)[] = [];
      for (const e of elections) {
        const it = e.observe();
        observed.push(...(await take(it, 1)));
        await it.return?.();
      }
      for (const info of observed) assert.equal(info?.token, winner.token);
    });
  },

  'CL-24 when the leader resigns the oldest remaining candidate leads with a greater token': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 3, nodeOptions: { sessionTtl: 5000 } }, async (cluster) => {
      const [a, b, c] = cluster.nodes.map((n) => n.rota.cluster.election('E'));
      const candidates = async () =>
        (await cluster.nodes[0]!.rota.cluster.leaders()).find((l) => l.name === 'E')?.candidates ?? 0;
      const first = await a!.campaign();
      const second = b!.campaign();
      // b's candidate key must exist before c campaigns: on a loaded machine c's could land first,
      // and then c (not b) would be next in line.
      await eventually(async () => (await candidates()) === 2, 10_000, "b's candidacy");
      const third = c!.campaign();
      await eventually(async () => (await candidates()) === 3, 10_000, "c's candidacy");
      await first.resign();
      const next = await second;
      assert.ok(next.token > first.token);
      assert.ok(b!.isLeader());
      await next.resign();
      const last = await third;
      assert.ok(last.token > next.token);
      await last.resign();
    });
  },

  'CL-25 when the leader is killed a successor leads': async (fixture) => {
    // Only the leader runs on a 1 s session; the survivor's longer TTL keeps it safe from load stalls.
    await withStoreCluster(fixture, { nodes: 0 }, async (cluster) => {
      await cluster.addNode({ nodeId: 'n1', sessionTtl: TTL });
      await cluster.addNode({ nodeId: 'n2', sessionTtl: 10_000 });
      const first = await cluster.node('n1').rota.cluster.election('E').campaign();
      const waiting = cluster.node('n2').rota.cluster.election('E').campaign();
      await delay(50);
      cluster.kill('n1');
      const next = await waiting;
      assert.ok(next.token > first.token);
      await next.resign();
    });
  },
});

describe('cluster elections (memory, manual clock)', () => {
  it('CL-26 twenty nodes campaign at once: exactly one leads, the others wait', async () => {
    await withManualCluster({ nodes: 20 }, async (cluster) => {
      const elections = cluster.nodes.map((n) => n.rota.cluster.election('E'));
      const campaigns = elections.map((e) => e.campaign());
      // The 19 losers are still waiting when the cluster closes; their campaigns then reject.
      for (const c of campaigns) c.catch(() => undefined);
      const leader = await Promise.race(campaigns);
      await cluster.advance(100);
      assert.equal(elections.filter((e) => e.isLeader()).length, 1);
      let settled = 0;
      for (const c of campaigns) {
        c.then(
          () => settled++,
          () => undefined,
        );
      }
      await cluster.advance(100);
      assert.equal(settled, 1, 'the other 19 keep waiting');
      await leader.resign();
      await cluster.advance(100);
      assert.equal(elections.filter((e) => e.isLeader()).length, 1);
    });
  });

  it('CL-27 a single node leads at once; a second campaign returns the same leadership', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const e = cluster.node('n1').rota.cluster.election('E');
      const first = await e.campaign();
      assert.equal(e.isLeader(), true);
      const again = await e.campaign();
      assert.equal(again, first);
      assert.equal((await e.leader())?.token, first.token);
    });
  });

  it('CL-28 a partitioned leader stops leading before a successor is elected', async () => {
    await withManualCluster({ nodes: 2, nodeOptions: { sessionTtl: 3000 } }, async (cluster) => {
      const a = cluster.node('n1').rota.cluster.election('E');
      const b = cluster.node('n2').rota.cluster.election('E');
      const lead = await a.campaign();
      const order: string[] = [];
      lead.signal.addEventListener('abort', () => order.push(`lost:${a.isLeader()}`));
      const next = b.campaign().then((l) => {
        order.push('elected');
        return l;
      });
      await cluster.advance(10);
      cluster.partition('n1');
      await cluster.advance(2600);
      assert.deepEqual(order, ['lost:false']);
      assert.equal(a.isLeader(), false);
      await cluster.advance(1000);
      await next;
      assert.deepEqual(order, ['lost:false', 'elected']);
    });
  });

  it('CL-29 lead(fn) moves to the other node when the leader is killed, and resigns on abort', async () => {
    await withManualCluster({ nodes: 2, nodeOptions: { sessionTtl: 3000 } }, async (cluster) => {
      const runs: string[] = [];
      const signals: AbortSignal[] = [];
      const controllers = cluster.nodes.map(() => new AbortController());
      cluster.nodes.forEach((n, i) => {
        void n.rota.cluster.election('E').lead(
          (leadership) => {
            runs.push(n.nodeId);
            signals.push(leadership.signal);
          },
          { signal: controllers[i]!.signal },
        );
      });
      await cluster.advance(50);
      assert.deepEqual(runs, ['n1']);
      cluster.kill('n1');
      await cluster.advance(4000);
      assert.deepEqual(runs, ['n1', 'n2']);
      controllers[1]!.abort();
      await cluster.advance(50);
      assert.equal(signals[1]?.aborted, true, "fn's signal aborts");
      assert.equal(await cluster.node('n2').rota.cluster.election('E').leader(), null, 'resigned');
    });
  });

  it('CL-30 electors: true on exactly one node; assertLeader throws ROTA_NOT_LEADER elsewhere', async () => {
    await withManualCluster({ nodes: 3 }, async (cluster) => {
      const electors = cluster.nodes.map((n) => n.rota.cluster.election('E').elector());
      await Promise.all(electors.map((e) => e.isLeader()));
      await cluster.advance(50);
      const flags = await Promise.all(electors.map((e) => e.isLeader()));
      assert.equal(flags.filter(Boolean).length, 1);
      cluster.nodes.forEach((n, i) => {
        const election = n.rota.cluster.election('E');
        if (flags[i]) election.assertLeader();
        else assert.throws(() => election.assertLeader(), { code: 'ROTA_NOT_LEADER' });
      });
    });
  });

  it('proclaim updates observers, and a new leader sees the last proclaimed value', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const a = cluster.node('n1').rota.cluster.election('E', { value: 'a-start' });
      const b = cluster.node('n2').rota.cluster.election('E');
      const lead = await a.campaign();
      const seen = b.observe();
      const [first] = await take(seen, 1);
      assert.equal(first?.value, 'a-start');
      await lead.proclaim({ round: 7 });
      const [second] = await take(seen, 1);
      assert.deepEqual(second?.value, { round: 7 });
      const waiting = b.campaign();
      await cluster.advance(10);
      await lead.resign();
      const next = await waiting;
      assert.deepEqual(next.previousValue, { round: 7 });
      await seen.return?.();
      await rejectsWith(lead.proclaim('late'), 'ROTA_NOT_LEADER');
      assert.throws(() => cluster.node('n1').rota.cluster.election(''), { code: 'ROTA_INVALID_ARGUMENT' });
      await eventually(() => b.isLeader(), 1000, 'b leads');
    });
  });

  it('an election with its own ttl leads on a dedicated lease and loses it when partitioned', async () => {
    await withManualCluster({ nodes: 2, nodeOptions: { sessionTtl: 10_000 } }, async (cluster) => {
      const a = cluster.node('n1').rota.cluster.election('fast', { ttl: 1000 });
      const b = cluster.node('n2').rota.cluster.election('fast', { ttl: 1000 });
      const lead = await a.campaign();
      const next = b.campaign();
      await cluster.advance(10);
      cluster.partition('n1');
      await cluster.advance(600);
      assert.equal(lead.signal.aborted, true, 'lost at the 1 s lease local deadline, not the 10 s session');
      await cluster.advance(1000);
      const won = await next;
      assert.ok(won.token > lead.token);
    });
  });
});
