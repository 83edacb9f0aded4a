/**
 * hosts.md §4, the [all-stores] scenarios (HO-1, 2, 3, 13, 16, 17, 20, 26, 28, 35): real time, run
 * on every store fixture. Nodes meant to die (killed or cut off) run 2 s leases (1 s ones flap under
 * load before the test gets to kill them); survivors run 10 s sessions.
 */

import type { RotaError } from '../../src/errors.js';
import type { HostSchedule, HostStrategy } from '../../src/hosts/index.js';
import type { TestCluster, TestNode } from '../../src/testing/index.js';
import {
  allStores,
  assert,
  delay,
  eventually,
  withStoreCluster as withAnyCluster,
} from '../support/scenarios.js';
import type { BackendFixture } from '../support/stores.js';
import { candidacyKv, decisionKv, decisionRecord, quietFor, untilHosts } from './helpers.js';

/**
 * Real-time runs give the coordinator a 3 s election lease: the 1 s default flaps on a loaded CI
 * machine before a decision settles. Tests that need another TTL still pass `hosts.start()`.
 */
function withStoreCluster(
  fixture: BackendFixture,
  options: Parameters<typeof withAnyCluster>[1],
  body: Parameters<typeof withAnyCluster>[2],
): Promise<void> {
  return withAnyCluster(
    fixture,
    { ...options, nodeOptions: { hosts: { electionTtl: 3000 }, ...options.nodeOptions } },
    body,
  );
}

/** The TTL of a node that must live a little before it is killed (1 s leases flap under load). */
const DOOMED = 2000;
const LONG = 10_000;
const NS = 'xsched';

/** HO-1: h1, h2, h3 join in order with rr and max 2; every handle sees [h1, h2]. */
async function scenario1(cluster: TestCluster, h2Ttl = LONG) {
  const nodes: TestNode[] = [];
  const handles: HostSchedule[] = [];
  for (const [i, ttl] of [LONG, h2Ttl, LONG].entries()) {
    const node = await cluster.addNode({ nodeId: `n${i + 1}`, sessionTtl: ttl });
    nodes.push(node);
    handles.push(await node.rota.hosts.schedule(NS, { hostname: `h${i + 1}`, strategy: 'rr', max: 2 }));
  }
  for (const h of handles) await untilHosts(h, ['h1', 'h2'], 10_000);
  return { nodes, handles };
}

/** HO-2: h2 (on a 2 s lease) is killed; the survivors see [h1, h3]. */
async function scenario2(cluster: TestCluster) {
  const s = await scenario1(cluster, DOOMED);
  cluster.kill(s.nodes[1] as TestNode);
  for (const i of [0, 2]) await untilHosts(s.handles[i] as HostSchedule, ['h1', 'h3'], DOOMED + 8000);
  return s;
}

allStores('hosts', {
  'HO-1 h1, h2, h3 join xsched with rr and max 2: all three observe [h1, h2]': async (fixture) => {
    await withStoreCluster(fixture, { nodes: 0 }, async (cluster) => {
      const { handles } = await scenario1(cluster);
      assert.deepEqual(
        handles.map((h) => h.isScheduled()),
        [true, true, false],
      );
      assert.deepEqual(handles[2]?.current.order, ['h1', 'h2']);
    });
  },

  'HO-2 when h2 is killed, after sessionTtl the survivors observe [h1, h3]': async (fixture) => {
    await withStoreCluster(fixture, { nodes: 0 }, async (cluster) => {
      const { handles } = await scenario2(cluster);
      assert.equal(handles[2]?.isScheduled(), true);
    });
  },

  'HO-3 when h2 restarts and joins again, the set stays [h1, h3]': async (fixture) => {
    await withStoreCluster(fixture, { nodes: 0 }, async (cluster) => {
      const { handles } = await scenario2(cluster);
      const before = await decisionKv(cluster.node('n1').rota, NS);
      assert.ok(handles.length === 3);
      const restarted = await cluster.addNode({ nodeId: 'n2b', sessionTtl: LONG });
      const h2 = await restarted.rota.hosts.schedule(NS, { hostname: 'h2', strategy: 'rr', max: 2 });
      await untilHosts(h2, ['h1', 'h3'], 10_000);
      await quietFor(h2, 500);
      assert.equal(h2.isScheduled(), false);
      const after = await decisionKv(cluster.node('n1').rota, NS);
      assert.equal(after?.modRevision, before?.modRevision, 'the decision was not rewritten');
    });
  },

  'HO-13 a single host is elected and scheduled alone': async (fixture) => {
    await withStoreCluster(fixture, { nodes: 1, nodeOptions: { sessionTtl: LONG } }, async (cluster) => {
      const rota = cluster.node('n1').rota;
      const handle = await rota.hosts.schedule('solo', { hostname: 'only' });
      await untilHosts(handle, ['only'], 6000);
      assert.equal(handle.isScheduled(), true);
      await eventually(() => rota.hosts.isCoordinator(), 3000, 'the single node to coordinate');
      assert.equal((await rota.hosts.coordinator())?.nodeId, 'n1');
    });
  },

  'HO-16 when the coordinator is killed a successor coordinates and the stable decision is not rewritten':
    async (fixture) => {
      await withStoreCluster(fixture, { nodes: 0 }, async (cluster) => {
        const coordinator = await cluster.addNode({ nodeId: 'c', sessionTtl: DOOMED });
        await coordinator.rota.hosts.start({ electionTtl: DOOMED });
        await eventually(() => coordinator.rota.hosts.isCoordinator(), 5000, 'c to coordinate');
        const handles: HostSchedule[] = [];
        const takeovers: string[] = [];
        for (const i of [1, 2, 3]) {
          const node = await cluster.addNode({ nodeId: `n${i}`, sessionTtl: LONG });
          node.rota.events.on('hosts:coordinating', (e) => takeovers.push(e.nodeId));
          // Survivors campaign on a longer lease, so load cannot flap them.
          await node.rota.hosts.start({ electionTtl: 3000 });
          handles.push(await node.rota.hosts.schedule(NS, { hostname: `h${i}`, max: 2 }));
        }
        for (const h of handles) await untilHosts(h, ['h1', 'h2'], 10_000);
        const before = await decisionKv(cluster.node('n1').rota, NS);
        assert.equal(before?.modRevision !== undefined, true);
        assert.equal(coordinator.rota.hosts.isCoordinator(), true, 'c still coordinates');
        takeovers.length = 0;
        cluster.kill(coordinator);
        await eventually(() => takeovers.length > 0, DOOMED + 5000, 'a successor coordinator');
        const successor = cluster.node(takeovers[0] as string).rota;
        assert.equal(successor.hosts.isCoordinator(), true);
        const after = await decisionKv(successor, NS);
        assert.equal(after?.modRevision, before?.modRevision, 'failover did not rewrite the decision');
        assert.deepEqual(handles[0]?.current.order, ['h1', 'h2']);
      });
    },

  'HO-17 a host that closes cleanly leaves at once; one that crashes leaves after about sessionTtl': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 0 }, async (cluster) => {
      const a = await cluster.addNode({ nodeId: 'n1', sessionTtl: LONG });
      const b = await cluster.addNode({ nodeId: 'n2', sessionTtl: LONG });
      const c = await cluster.addNode({ nodeId: 'n3', sessionTtl: DOOMED });
      const opts = { max: Number.POSITIVE_INFINITY } as const;
      const ha = await a.rota.hosts.schedule('web', { ...opts, hostname: 'a' });
      const hb = await b.rota.hosts.schedule('web', { ...opts, hostname: 'b' });
      await c.rota.hosts.schedule('web', { ...opts, hostname: 'c' });
      await untilHosts(ha, ['a', 'b', 'c'], 10_000);
      await hb.close();
      assert.equal(await candidacyKv(a.rota, 'web', 'b'), null, 'the clean candidacy is gone at once');
      await untilHosts(ha, ['a', 'c'], 6000);
      cluster.kill(c);
      assert.notEqual(await candidacyKv(a.rota, 'web', 'c'), null, 'the crashed one lingers for its TTL');
      await untilHosts(ha, ['a'], DOOMED + 8000);
      assert.equal(await candidacyKv(a.rota, 'web', 'c'), null);
    });
  },

  'HO-20 when the last candidate withdraws, the decision key is deleted and observers yield []': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 2, nodeOptions: { sessionTtl: LONG } }, async (cluster) => {
      const host = cluster.node('n1').rota;
      const observer = cluster.node('n2').rota.hosts.observe('last');
      const handle = await host.hosts.schedule('last', { hostname: 'h1' });
      await untilHosts(observer, ['h1'], 10_000);
      assert.deepEqual(await host.hosts.withdraw('last', { hostname: 'h1' }), { changed: true });
      await untilHosts(observer, [], 6000);
      await eventually(async () => (await decisionKv(host, 'last')) === null, 3000, 'the decision key to go');
      assert.equal(handle.isScheduled(), false);
      await observer.return?.();
    });
  },

  'HO-26 a partitioned coordinator’s in-flight write fails its fence; the new decision stands': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 0 }, async (cluster) => {
      const a = await cluster.addNode({ nodeId: 'a', sessionTtl: LONG });
      const b = await cluster.addNode({ nodeId: 'b', sessionTtl: LONG });
      let armed = false;
      let entered = false;
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      // On a: the last candidate, or (armed) b2 after waiting for the gate. On b: the first candidate.
      const onA: HostStrategy = {
        kind: 'probe',
        async schedule(cands) {
          if (!armed) return [cands[cands.length - 1]?.hostname as string];
          entered = true;
          await gate;
          return ['b2'];
        },
      };
      a.rota.hosts.registerStrategy('probe', () => onA);
      b.rota.hosts.registerStrategy('probe', () => ({
        kind: 'probe',
        schedule: (cands) => [cands[0]!.hostname],
      }));
      // 3 s election leases: a 1 s lease could flap under load and hand b the leadership early.
      const stopA = new AbortController();
      // a leads before b campaigns, so the scenario does not depend on which campaign lands first.
      await a.rota.hosts.start({ signal: stopA.signal, electionTtl: 3000 });
      await eventually(() => a.rota.hosts.isCoordinator(), 10_000, 'a to coordinate');
      await b.rota.hosts.start({ electionTtl: 3000 });
      const opts = { strategy: 'probe', max: 1 };
      for (const h of ['b1', 'b2', 'b3']) await b.rota.hosts.add('fence', { ...opts, hostname: h });
      await eventually(
        async () => (await decisionRecord(b.rota, 'fence'))?.hosts[0] === 'b3',
        10_000,
        '[b3] (decided by a, which must still coordinate)',
      );
      const aErrors: RotaError[] = [];
      a.rota.hosts.events.on('hosts:error', (e) => aErrors.push(e.error));
      const bDecided: number[] = [];
      b.rota.hosts.events.on('hosts:decided', (e) => bDecided.push(e.revision));
      armed = true;
      await b.rota.hosts.add('fence', { ...opts, hostname: 'b3', data: { v: 2 } });
      await eventually(() => entered, 5000, "a's strategy to start");
      cluster.partition(a);
      release();
      // a stops campaigning, so only its in-flight write can still reach the store.
      stopA.abort();
      await eventually(() => bDecided.length > 0, 10_000, 'b to take over and decide');
      cluster.heal(a);
      await eventually(
        () => aErrors.some((e) => e.code === 'ROTA_NOT_LEADER'),
        15_000,
        "a's late write to fail its fence",
      );
      const stored = await decisionRecord(b.rota, 'fence');
      assert.deepEqual(stored?.hosts, ['b1'], "b's decision stands");
      assert.equal(stored?.leader, 'b');
      assert.equal((await decisionKv(b.rota, 'fence'))?.modRevision, bDecided[bDecided.length - 1]);
    });
  },

  'HO-28 a host cut off longer than sessionTtl is dropped, comes back after the reconnect and ranks last':
    async (fixture) => {
      await withStoreCluster(fixture, { nodes: 0 }, async (cluster) => {
        const n1 = await cluster.addNode({ nodeId: 'n1', sessionTtl: DOOMED });
        const h1 = await n1.rota.hosts.schedule(NS, { hostname: 'h1', max: 3 });
        const others: HostSchedule[] = [];
        for (const i of [2, 3]) {
          const node = await cluster.addNode({ nodeId: `n${i}`, sessionTtl: LONG });
          others.push(await node.rota.hosts.schedule(NS, { hostname: `h${i}`, max: 3 }));
        }
        await untilHosts(others[0] as HostSchedule, ['h1', 'h2', 'h3'], 10_000);
        cluster.partition(n1);
        await untilHosts(others[0] as HostSchedule, ['h2', 'h3'], DOOMED + 8000);
        const n2 = cluster.node('n2').rota;
        await eventually(
          async () => JSON.stringify((await decisionRecord(n2, NS))?.order) === '["h2","h3"]',
          5000,
          'the decision to be recomputed without h1',
        );
        cluster.heal(n1);
        const back = await untilHosts(others[0] as HostSchedule, ['h1', 'h2', 'h3'], 15_000);
        assert.deepEqual(back.order, ['h2', 'h3', 'h1'], 'rr ranks the returning host last');
        await untilHosts(h1, ['h1', 'h2', 'h3'], 10_000);
      });
    },

  'HO-35 an observer whose watch revision was compacted re-lists and yields only a real change': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 0 }, async (cluster) => {
      const n1 = await cluster.addNode({ nodeId: 'n1', sessionTtl: LONG });
      const n2 = await cluster.addNode({ nodeId: 'n2', sessionTtl: LONG });
      const obs = await cluster.addNode({ nodeId: 'obs', sessionTtl: LONG });
      const errors: string[] = [];
      obs.rota.hosts.events.on('hosts:error', (e) => errors.push(e.error.code));
      const observer = obs.rota.hosts.observe(NS);
      await n1.rota.hosts.schedule(NS, { hostname: 'h1', max: 2 });
      const h2 = await n2.rota.hosts.schedule(NS, { hostname: 'h2', max: 2 });
      await untilHosts(observer, ['h1', 'h2'], 10_000);
      cluster.partition(obs);
      // Changes the observer misses: h3 comes and goes without changing the set.
      const h3 = await n2.rota.hosts.schedule(NS, { hostname: 'h3', max: 2 });
      await delay(200);
      await h3.close();
      await delay(200);
      const { revision } = await n1.rota.store.status();
      await n1.rota.store.compact(revision);
      cluster.heal(obs);
      await eventually(() => errors.includes('ROTA_COMPACTED'), 5000, 'the observer to re-list');
      await quietFor(observer, 300);
      await h2.close();
      await untilHosts(observer, ['h1'], 10_000);
      await observer.return?.();
    });
  },
});
