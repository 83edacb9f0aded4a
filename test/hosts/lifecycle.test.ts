/**
 * hosts.md §4, candidacy lifecycle and observing (HO-4 … HO-9, HO-18, HO-19, HO-22, HO-23, HO-27,
 * HO-29, HO-30, plus session and close behaviour): memory store, one manual clock.
 */
import { describe, it } from 'node:test';
import type { HostSchedule } from '../../src/hosts/index.js';
import type { TestCluster } from '../../src/testing/index.js';
import { assert, rejectsWith, withManualCluster } from '../support/scenarios.js';
import {
  advanceUntil,
  candidacyKv,
  decisionKv,
  decisionRecord,
  hostKeys,
  nextDecision,
  quietFor,
  untilHosts,
} from './helpers.js';

const NS = 'xsched';

/** HO-1 … HO-3 on the manual clock: [h1, h2] → h2 killed → [h1, h3] → h2 back, still [h1, h3]. */
async function upToScenario3(cluster: TestCluster) {
  const handles = new Map<string, HostSchedule>();
  for (const i of [1, 2, 3]) {
    const node = await cluster.addNode({ nodeId: `n${i}` });
    handles.set(`h${i}`, await node.rota.hosts.schedule(NS, { hostname: `h${i}`, max: 2 }));
    await cluster.advance(10);
  }
  await untilHosts(handles.get('h1')!, ['h1', 'h2'], 5000, cluster);
  cluster.kill('n2');
  await untilHosts(handles.get('h1')!, ['h1', 'h3'], 15_000, cluster);
  const n2b = await cluster.addNode({ nodeId: 'n2b' });
  handles.set('h2', await n2b.rota.hosts.schedule(NS, { hostname: 'h2', max: 2 }));
  await untilHosts(handles.get('h2')!, ['h1', 'h3'], 5000, cluster);
  return handles;
}

/** HO-4 on top: h3 killed → [h1, h2]; h3 back → still [h1, h2]. */
async function upToScenario4(cluster: TestCluster) {
  const handles = await upToScenario3(cluster);
  cluster.kill('n3');
  await untilHosts(handles.get('h1')!, ['h1', 'h2'], 15_000, cluster);
  const n3b = await cluster.addNode({ nodeId: 'n3b' });
  handles.set('h3', await n3b.rota.hosts.schedule(NS, { hostname: 'h3', max: 2 }));
  await untilHosts(handles.get('h3')!, ['h1', 'h2'], 5000, cluster);
  return handles;
}

describe('hosts lifecycle (memory, manual clock)', () => {
  it('HO-4 when h3 is killed the set becomes [h1, h2]; when h3 restarts it stays [h1, h2]', async () => {
    await withManualCluster({ nodes: 0 }, async (cluster) => {
      const handles = await upToScenario4(cluster);
      await quietFor(handles.get('h3')!, 500, cluster);
      assert.deepEqual(handles.get('h1')?.current.order, ['h1', 'h2']);
      assert.equal(handles.get('h3')?.isScheduled(), false);
    });
  });

  it('HO-5 h3, h2 and h1 close in turn: [h1, h2] → [h1] → deleted; an observer-only node ends with []', async () => {
    await withManualCluster({ nodes: 0 }, async (cluster) => {
      const handles = await upToScenario4(cluster);
      const observerNode = await cluster.addNode({ nodeId: 'obs' });
      const observer = observerNode.rota.hosts.observe(NS);
      await untilHosts(observer, ['h1', 'h2'], 1000, cluster);
      await handles.get('h3')!.close();
      await quietFor(observer, 300, cluster);
      await handles.get('h2')!.close();
      await untilHosts(observer, ['h1'], 2000, cluster);
      await handles.get('h1')!.close();
      await untilHosts(observer, [], 2000, cluster);
      await advanceUntil(
        cluster,
        async () => (await decisionKv(observerNode.rota, NS)) === null,
        'deletion',
        3000,
      );
      assert.deepEqual((await observerNode.rota.hosts.get(NS)).hosts, []);
    });
  });

  it('HO-6 a withdrawn incumbent is replaced and, when it adds itself again, waits for a free slot', async () => {
    await withManualCluster({ nodes: 3 }, async (cluster) => {
      const handles: HostSchedule[] = [];
      for (const [i, n] of cluster.nodes.entries()) {
        handles.push(await n.rota.hosts.schedule(NS, { hostname: `h${i + 1}`, max: 2 }));
        await cluster.advance(10);
      }
      await untilHosts(handles[0]!, ['h1', 'h2'], 2000, cluster);
      const h1 = cluster.node('n1').rota;
      assert.deepEqual(await h1.hosts.withdraw(NS, { hostname: 'h1' }), { changed: true });
      await untilHosts(handles[0]!, ['h2', 'h3'], 2000, cluster);
      assert.deepEqual(await h1.hosts.add(NS, { hostname: 'h1', max: 2 }), { changed: true });
      await quietFor(handles[0]!, 500, cluster);
      assert.deepEqual(handles[0]!.current.order, ['h2', 'h3']);
      assert.equal(handles[0]!.isScheduled(), false);
    });
  });

  it('HO-7 on close: a default candidacy goes at once, a reuseLease one after its TTL, a persistent one stays', async () => {
    await withManualCluster({ nodes: 3 }, async (cluster) => {
      const [a, b, c] = cluster.nodes.map((n) => n.rota);
      const ha = await a!.hosts.schedule('close', { hostname: 'a', max: 3 });
      const hb = await b!.hosts.schedule('close', {
        hostname: 'b',
        max: 3,
        reuseLease: true,
        sessionTtl: 3000,
      });
      const hc = await c!.hosts.schedule('close', { hostname: 'c', max: 3, persist: true });
      await untilHosts(ha, ['a', 'b', 'c'], 2000, cluster);
      await cluster.advance(500);
      await Promise.all([ha.close(), hb.close(), hc.close()]);
      assert.equal(await candidacyKv(a!, 'close', 'a'), null, 'the default candidacy is gone at once');
      assert.notEqual(await candidacyKv(a!, 'close', 'b'), null);
      await cluster.advance(1900);
      assert.notEqual(
        await candidacyKv(a!, 'close', 'b'),
        null,
        'the reuseLease candidacy lives on its lease',
      );
      await cluster.advance(1200);
      assert.equal(await candidacyKv(a!, 'close', 'b'), null, 'and goes about 3 s after close');
      await c!.close();
      await cluster.advance(20_000);
      const persisted = await candidacyKv(a!, 'close', 'c');
      assert.equal(persisted?.lease, null, 'the persistent candidacy has no lease and outlives its node');
      assert.deepEqual(await a!.hosts.withdraw('close', { hostname: 'c' }), { changed: true });
      assert.equal(await candidacyKv(a!, 'close', 'c'), null);
    });
  });

  it('HO-8 persist with sessionTtl (or reuseLease) fails with ROTA_INVALID_ARGUMENT and writes nothing', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.node('n1').rota;
      await rejectsWith(
        rota.hosts.schedule(NS, { persist: true, sessionTtl: 5000 }),
        'ROTA_INVALID_ARGUMENT',
      );
      await rejectsWith(rota.hosts.add(NS, { persist: true, reuseLease: true }), 'ROTA_INVALID_ARGUMENT');
      assert.deepEqual(await hostKeys(rota), []);
    });
  });

  it('HO-9 observing a namespace without candidacies yields [] once and then waits', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const observer = cluster.node('n1').rota.hosts.observe('empty');
      const first = await nextDecision(observer, 1000, cluster);
      assert.deepEqual(first.value, {
        namespace: 'empty',
        hosts: [],
        order: [],
        revision: 0,
        leader: null,
        decidedAt: null,
      });
      await quietFor(observer, 2000, cluster);
      await observer.return?.();
    });
  });

  it('HO-18 with reuseLease, closing and scheduling again within the TTL rewrites nothing', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const rota = cluster.node('n1').rota;
      const observer = cluster.node('n2').rota.hosts.observe(NS);
      const opts = { hostname: 'h1', reuseLease: true, sessionTtl: 3000 };
      const first = await rota.hosts.schedule(NS, opts);
      await untilHosts(observer, ['h1'], 2000, cluster);
      const candidacy = await candidacyKv(rota, NS, 'h1');
      const decision = await decisionKv(rota, NS);
      await first.close();
      await cluster.advance(1000);
      const again = await rota.hosts.schedule(NS, opts);
      await quietFor(observer, 500, cluster);
      assert.equal((await candidacyKv(rota, NS, 'h1'))?.modRevision, candidacy?.modRevision);
      assert.equal(
        (await candidacyKv(rota, NS, 'h1'))?.lease,
        candidacy?.lease,
        'the same lease was resumed',
      );
      assert.equal((await decisionKv(rota, NS))?.modRevision, decision?.modRevision);
      await cluster.advance(10_000);
      assert.notEqual(await candidacyKv(rota, NS, 'h1'), null, 'the resumed lease is kept alive again');
      assert.equal(again.isScheduled(), true);
    });
  });

  it('HO-19 refreshing a candidacy with the same value rewrites neither it nor the decision', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const rota = cluster.node('n1').rota;
      const observer = cluster.node('n2').rota.hosts.observe(NS);
      await rota.hosts.schedule(NS, { hostname: 'h1', max: 2, data: { rack: 1 } });
      await untilHosts(observer, ['h1'], 2000, cluster);
      const candidacy = await candidacyKv(rota, NS, 'h1');
      const decision = await decisionKv(rota, NS);
      assert.deepEqual(await rota.hosts.add(NS, { hostname: 'h1', max: 2, data: { rack: 1 } }), {
        changed: false,
      });
      assert.equal((await candidacyKv(rota, NS, 'h1'))?.modRevision, candidacy?.modRevision);
      // A program that writes the very same bytes again: the decision is still not rewritten.
      await rota.store.put(candidacy!.key, candidacy!.value, { lease: candidacy!.lease! });
      await quietFor(observer, 500, cluster);
      assert.equal((await decisionKv(rota, NS))?.modRevision, decision?.modRevision);
    });
  });

  it('HO-22 a closed schedule iterates as done, and a second close resolves', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const handle = await cluster.node('n1').rota.hosts.schedule(NS, { hostname: 'h1' });
      await untilHosts(handle, ['h1'], 2000, cluster);
      await handle.close();
      assert.deepEqual(await handle.next(), { value: undefined, done: true });
      const seen = [];
      for await (const d of handle) seen.push(d);
      assert.deepEqual(seen, []);
      await handle.close();
      assert.equal(handle.closed, true);
    });
  });

  it('HO-23 a slow observer gets only the newest decision; a fast one gets every change once', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.node('n1').rota;
      const changed: string[][] = [];
      rota.events.on('hosts:changed', (e) => changed.push(e.hosts));
      const slow = rota.hosts.observe('grow');
      const fast = rota.hosts.observe('grow');
      assert.deepEqual((await nextDecision(slow, 1000, cluster)).value?.hosts, []);
      assert.deepEqual((await nextDecision(fast, 1000, cluster)).value?.hosts, []);
      const expected: string[] = [];
      for (const h of ['a', 'b', 'c', 'd', 'e']) {
        await rota.hosts.add('grow', { hostname: h, max: Number.POSITIVE_INFINITY });
        expected.push(h);
        const got = await nextDecision(fast, 2000, cluster);
        assert.deepEqual(got.value?.hosts, expected);
      }
      await quietFor(fast, 300, cluster);
      const newest = await nextDecision(slow, 1000, cluster);
      assert.deepEqual(newest.value?.hosts, ['a', 'b', 'c', 'd', 'e']);
      await quietFor(slow, 300, cluster);
      assert.deepEqual(changed, [
        ['a'],
        ['a', 'b'],
        ['a', 'b', 'c'],
        ['a', 'b', 'c', 'd'],
        ['a', 'b', 'c', 'd', 'e'],
      ]);
    });
  });

  it('HO-27 after the only host is killed, an observer yields [] although the decision key remains', async () => {
    await withManualCluster({ nodes: 0 }, async (cluster) => {
      const host = await cluster.addNode({ nodeId: 'n1', sessionTtl: 3000 });
      const obs = await cluster.addNode({ nodeId: 'obs' });
      const observer = obs.rota.hosts.observe('lonely');
      await host.rota.hosts.schedule('lonely', { hostname: 'h1' });
      await untilHosts(observer, ['h1'], 2000, cluster);
      cluster.kill(host);
      await untilHosts(observer, [], 5000, cluster);
      assert.notEqual(await decisionKv(obs.rota, 'lonely'), null, 'nobody is left to delete the decision');
      assert.deepEqual((await obs.rota.hosts.get('lonely')).hosts, []);
    });
  });

  it('HO-29 a hostname live on another node is refused; handles of one process share the candidacy', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const a = cluster.node('n1').rota;
      const b = cluster.node('n2').rota;
      const first = await a.hosts.schedule(NS, { hostname: 'h1' });
      await rejectsWith(b.hosts.add(NS, { hostname: 'h1' }), 'ROTA_HOSTNAME_IN_USE');
      await rejectsWith(b.hosts.schedule(NS, { hostname: 'h1' }), 'ROTA_HOSTNAME_IN_USE');
      const second = await a.hosts.schedule(NS, { hostname: 'h1' });
      await first.close();
      assert.notEqual(await candidacyKv(a, NS, 'h1'), null, 'the other handle keeps the candidacy');
      await second.close();
      assert.equal(await candidacyKv(a, NS, 'h1'), null, 'gone with the last handle');
      // A close still in flight never removes the candidacy of the schedule that follows it.
      const third = await a.hosts.schedule(NS, { hostname: 'h1' });
      const closing = third.close();
      const fourth = await a.hosts.schedule(NS, { hostname: 'h1' });
      await closing;
      assert.notEqual(await candidacyKv(a, NS, 'h1'), null, 'the newer candidacy survives the older close');
      await fourth.close();
      // Once a's candidacy is gone (or a is dead), b may offer the name.
      assert.deepEqual(await b.hosts.add(NS, { hostname: 'h1' }), { changed: true });
    });
  });

  it('HO-30 dryRun reports a change without writing; add and withdraw are idempotent', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.node('n1').rota;
      assert.deepEqual(await rota.hosts.add(NS, { hostname: 'h1', dryRun: true }), { changed: true });
      assert.deepEqual(await hostKeys(rota), []);
      assert.deepEqual(await rota.hosts.add(NS, { hostname: 'h1' }), { changed: true });
      assert.deepEqual(await rota.hosts.add(NS, { hostname: 'h1' }), { changed: false });
      assert.deepEqual(await rota.hosts.add(NS, { hostname: 'h1', dryRun: true }), { changed: false });
      assert.deepEqual(await rota.hosts.add(NS, { hostname: 'h1', max: 3, dryRun: true }), { changed: true });
      assert.deepEqual(await rota.hosts.withdraw(NS, { hostname: 'h1', dryRun: true }), { changed: true });
      assert.notEqual(await candidacyKv(rota, NS, 'h1'), null);
      assert.deepEqual(await rota.hosts.withdraw(NS, { hostname: 'h1' }), { changed: true });
      assert.deepEqual(await rota.hosts.withdraw(NS, { hostname: 'h1' }), { changed: false });
      assert.deepEqual(await rota.hosts.withdraw(NS, { hostname: 'h1', dryRun: true }), { changed: false });
    });
  });

  it('candidacy leases: the session lease for its TTL, one shared lease per other TTL; release can linger', async () => {
    await withManualCluster({ nodes: 2, nodeOptions: { sessionTtl: 10_000 } }, async (cluster) => {
      const a = cluster.node('n1').rota;
      const b = cluster.node('n2').rota;
      await a.hosts.add('one', { hostname: 'h1' });
      await a.hosts.add('two', { hostname: 'h1', sessionTtl: 3000 });
      await a.hosts.add('three', { hostname: 'h1', sessionTtl: 2500 });
      const one = await candidacyKv(b, 'one', 'h1');
      const two = await candidacyKv(b, 'two', 'h1');
      const three = await candidacyKv(b, 'three', 'h1');
      assert.equal(one?.lease, a.cluster.session.leaseId, 'the default TTL hangs on the session lease');
      assert.equal(two?.lease, three?.lease, '2 500 ms rounds up to 3 000 ms: one shared lease');
      assert.notEqual(two?.lease, one?.lease);
      assert.deepEqual(a.cluster.session.capabilities.hosts, ['h1']);
      // Lingering: the candidacy stays until its lease runs out, which happens once no one else needs it.
      await a.hosts.release('two', { hostname: 'h1', linger: true });
      await cluster.advance(5000);
      assert.notEqual(await candidacyKv(b, 'two', 'h1'), null, 'the shared lease is still kept alive');
      await a.hosts.release('three', { hostname: 'h1' });
      assert.equal(await candidacyKv(b, 'three', 'h1'), null, 'released without linger: gone at once');
      await cluster.advance(3100);
      assert.equal(await candidacyKv(b, 'two', 'h1'), null, 'the lingering one went with its lease');
      await a.hosts.add('four', { hostname: 'h1', reuseLease: true });
      await a.hosts.release('four', { hostname: 'h1' });
      assert.equal(await candidacyKv(b, 'four', 'h1'), null, 'an explicit release without linger deletes');
      await a.hosts.release('one', { hostname: 'h1', linger: true });
      await cluster.advance(20_000);
      assert.notEqual(
        await candidacyKv(b, 'one', 'h1'),
        null,
        'on the session lease it lingers while the node lives',
      );
      await a.close();
      assert.equal(await candidacyKv(b, 'one', 'h1'), null, 'and goes when the session ends');
    });
  });

  it('a killed node’s candidacies on a shared lease all expire; a session loss is repaired by the handle', async () => {
    await withManualCluster({ nodes: 0 }, async (cluster) => {
      const a = await cluster.addNode({ nodeId: 'n1', sessionTtl: 3000 });
      const b = await cluster.addNode({ nodeId: 'n2' });
      const observer = b.rota.hosts.observe('web');
      const handle = await a.rota.hosts.schedule('web', { hostname: 'a', max: 2 });
      await b.rota.hosts.schedule('web', { hostname: 'b', max: 2 });
      await untilHosts(observer, ['a', 'b'], 2000, cluster);
      const before = await candidacyKv(b.rota, 'web', 'a');
      // Cut off longer than its TTL: the store expires the candidacy, the reconnected session adds it back.
      cluster.partition(a);
      await untilHosts(observer, ['b'], 10_000, cluster);
      await advanceUntil(
        cluster,
        async () => (await decisionRecord(b.rota, 'web'))?.order.join() === 'b',
        'b to take over and decide without a',
        5000,
      );
      cluster.heal(a);
      await untilHosts(observer, ['a', 'b'], 10_000, cluster);
      const after = await candidacyKv(b.rota, 'web', 'a');
      assert.ok((after?.createRevision ?? 0) > (before?.createRevision ?? 0), 'a new join revision');
      assert.equal(after?.lease, a.rota.cluster.session.leaseId, 'on the new session lease');
      assert.deepEqual((await b.rota.hosts.get('web')).order, ['b', 'a'], 'rr ranks the returning host last');
      await advanceUntil(
        cluster,
        () => handle.current.order.join() === 'b,a',
        "a's own view to catch up",
        2000,
      );
    });
  });

  it('with reconnect: false a lost session makes the iterators throw ROTA_SESSION_LOST', async () => {
    await withManualCluster({ nodes: 0 }, async (cluster) => {
      const a = await cluster.addNode({ nodeId: 'n1', sessionTtl: 3000, reconnect: false });
      const handle = await a.rota.hosts.schedule('web', { hostname: 'a' });
      const observer = a.rota.hosts.observe('web');
      await untilHosts(observer, ['a'], 2000, cluster);
      await untilHosts(handle, ['a'], 2000, cluster);
      cluster.partition(a);
      await cluster.advance(3000);
      await rejectsWith(handle.next(), 'ROTA_SESSION_LOST');
      await rejectsWith(observer.next(), 'ROTA_SESSION_LOST');
      await rejectsWith(a.rota.hosts.add('web', { hostname: 'b' }), 'ROTA_SESSION_LOST');
    });
  });

  it('a store outage changes nothing while it lasts; afterwards the handles restore their candidacies', async () => {
    await withManualCluster({ nodes: 2, nodeOptions: { sessionTtl: 3000 } }, async (cluster) => {
      const [a, b] = cluster.nodes.map((n) => n.rota);
      const ha = await a!.hosts.schedule(NS, { hostname: 'h1', max: 2 });
      await b!.hosts.schedule(NS, { hostname: 'h2', max: 2 });
      await untilHosts(ha, ['h1', 'h2'], 2000, cluster);
      // Shorter than the TTL: nothing happens at all.
      await cluster.storeOutage(1000);
      await quietFor(ha, 2000, cluster);
      // Longer than the TTL: the store expires every lease; the handles put the candidacies back.
      await cluster.storeOutage(5000);
      assert.deepEqual(ha.current.hosts, ['h1', 'h2'], 'during the outage the last value stays');
      await advanceUntil(
        cluster,
        async () => (await a!.hosts.get(NS)).hosts.join() === 'h1,h2',
        'the candidacies and the decision to be restored',
        20_000,
      );
      await advanceUntil(cluster, () => ha.current.hosts.join() === 'h1,h2', 'the handle to see it', 2000);
    });
  });
});
