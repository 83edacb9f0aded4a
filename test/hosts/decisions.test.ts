/**
 * hosts.md §4, decisions and strategies (HO-14, 15, 21, 24, 25, 31, 32, 33, 34, 36), and input
 * validation (HO-10, 11, 12): memory store, one manual clock.
 */
import { describe, it } from 'node:test';
import type { RotaError } from '../../src/errors.js';
import {
  alphaStrategy,
  type HostCandidate,
  type HostStrategy,
  rrStrategy,
  spreadStrategy,
} from '../../src/hosts/index.js';
import type { TestCluster } from '../../src/testing/index.js';
import { assert, rejectsWith, withManualCluster } from '../support/scenarios.js';
import { advanceUntil, decisionKv, decisionRecord, hostKeys, quietFor, untilHosts } from './helpers.js';

/** Add hostnames one after the other (distinct join revisions) from node n1. */
async function join(
  cluster: TestCluster,
  ns: string,
  hostnames: string[],
  options: Record<string, unknown> = {},
) {
  const rota = cluster.node('n1').rota;
  for (const hostname of hostnames) {
    await rota.hosts.add(ns, { hostname, ...options });
    await cluster.advance(10);
  }
}

async function decided(cluster: TestCluster, ns: string, hosts: string[], nodeId = 'n1') {
  const rota = cluster.node(nodeId).rota;
  await advanceUntil(
    cluster,
    async () => JSON.stringify((await decisionRecord(rota, ns))?.hosts) === JSON.stringify(hosts),
    `${ns} to be decided as ${JSON.stringify(hosts)}`,
    10_000,
  );
  const record = await decisionRecord(rota, ns);
  assert.ok(record);
  return record;
}

describe('hosts decisions and strategies (memory, manual clock)', () => {
  it('HO-14 hosts joining as c, a, b with max 2: alpha picks [a, b]; rr picks [a, c] ranked [c, a]', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      await join(cluster, 'by-alpha', ['c', 'a', 'b'], { strategy: 'alpha', max: 2 });
      await join(cluster, 'by-rr', ['c', 'a', 'b'], { strategy: 'rr', max: 2 });
      assert.deepEqual((await decided(cluster, 'by-alpha', ['a', 'b'])).order, ['a', 'b']);
      assert.deepEqual((await decided(cluster, 'by-rr', ['a', 'c'])).order, ['c', 'a']);
      const got = await cluster.node('n1').rota.hosts.get('by-rr');
      assert.deepEqual(
        [got.hosts, got.order],
        [
          ['a', 'c'],
          ['c', 'a'],
        ],
      );
    });
  });

  it('HO-15 with 3 candidates, max 5 and max Infinity both choose all 3', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      await join(cluster, 'five', ['h1', 'h2', 'h3'], { max: 5 });
      await join(cluster, 'inf', ['h1', 'h2', 'h3'], { max: Number.POSITIVE_INFINITY });
      await decided(cluster, 'five', ['h1', 'h2', 'h3']);
      await decided(cluster, 'inf', ['h1', 'h2', 'h3']);
    });
  });

  it('HO-21 a strategy returning a stranger, a duplicate or max + 1 names leaves the decision alone', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.node('n1').rota;
      let mode = 'ok';
      rota.hosts.registerStrategy('fickle', () => ({
        kind: 'fickle',
        schedule: (cands, { max }) => {
          const names = cands.map((c) => c.hostname);
          if (mode === 'stranger') return ['nobody'];
          if (mode === 'duplicate') return [names[0]!, names[0]!];
          if (mode === 'too-many') return names.slice(0, max + 1);
          return names.slice(0, max);
        },
      }));
      const errors: RotaError[] = [];
      rota.hosts.events.on('hosts:error', (e) => errors.push(e.error));
      await join(cluster, 'ns', ['a', 'b', 'c'], { strategy: 'fickle', max: 2 });
      await decided(cluster, 'ns', ['a', 'b']);
      const before = await decisionKv(rota, 'ns');
      for (const [i, bad] of ['stranger', 'duplicate', 'too-many'].entries()) {
        mode = bad;
        // Any change of the namespace makes the coordinator decide again.
        await rota.hosts.add('ns', { hostname: 'c', strategy: 'fickle', max: 2, data: { round: i } });
        await advanceUntil(cluster, () => errors.length === i + 1, `the ${bad} violation`, 2000);
        assert.equal(errors[i]?.code, 'ROTA_STRATEGY_VIOLATION');
        assert.equal((await decisionKv(rota, 'ns'))?.modRevision, before?.modRevision, 'decision unchanged');
      }
    });
  });

  it('HO-24 hostsFilter restricts eligibility before the strategy runs', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      await join(cluster, 'filtered', ['a', 'b', 'c'], { max: 3, hostsFilter: ['a', 'b'] });
      await decided(cluster, 'filtered', ['a', 'b']);
    });
  });

  it('HO-25 the oldest candidacy’s options apply and a conflict is reported', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.node('n1').rota;
      const conflicts: unknown[] = [];
      rota.events.on('hosts:options-conflict', (e) => conflicts.push(e));
      await join(cluster, 'mixed', ['h1'], { max: 1 });
      await join(cluster, 'mixed', ['h2'], { max: 3 });
      await decided(cluster, 'mixed', ['h1']);
      await cluster.advance(500);
      assert.equal(conflicts.length, 1, 'reported once per change');
      assert.deepEqual(conflicts[0], {
        namespace: 'mixed',
        applied: { strategy: 'rr', max: 1, hostsFilter: [], hostname: 'h1' },
        conflicting: [{ hostname: 'h2', options: { strategy: 'rr', max: 3, hostsFilter: [] } }],
      });
    });
  });

  it('HO-31 after a failover the new coordinator passes the stored order as last', async () => {
    await withManualCluster({ nodes: 0 }, async (cluster) => {
      const lasts: { node: string; last: string[] }[] = [];
      const recording = (node: string): HostStrategy => ({
        kind: 'rec',
        schedule(cands, context) {
          lasts.push({ node, last: [...context.last] });
          return rrStrategy.schedule(cands, context);
        },
      });
      const c = await cluster.addNode({ nodeId: 'c', sessionTtl: 3000 });
      c.rota.hosts.registerStrategy('rec', () => recording('c'));
      await c.rota.hosts.start();
      await advanceUntil(cluster, () => c.rota.hosts.isCoordinator(), 'c to coordinate', 2000);
      const h = await cluster.addNode({ nodeId: 'h' });
      h.rota.hosts.registerStrategy('rec', () => recording('h'));
      for (const name of ['x', 'y', 'z']) {
        await h.rota.hosts.add('rec', { hostname: name, strategy: 'rec', max: 2 });
        await cluster.advance(10);
      }
      const stored = await decided(cluster, 'rec', ['x', 'y'], 'h');
      assert.ok(lasts.every((l) => l.node === 'c'));
      cluster.kill(c);
      await advanceUntil(cluster, () => lasts.some((l) => l.node === 'h'), 'h to take over', 10_000);
      assert.deepEqual(lasts.find((l) => l.node === 'h')?.last, stored.order);
      assert.deepEqual((await decisionRecord(h.rota, 'rec'))?.order, stored.order);
    });
  });

  it('HO-32 a strategy that throws once leaves the decision alone and is retried after 5 s', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.node('n1').rota;
      let throws = 0;
      rota.hosts.registerStrategy('flaky', () => ({
        kind: 'flaky',
        schedule(cands, context) {
          if (cands.length === 2 && throws++ === 0) throw new Error('boom');
          return alphaStrategy.schedule(cands, context);
        },
      }));
      const errors: RotaError[] = [];
      rota.hosts.events.on('hosts:error', (e) => errors.push(e.error));
      await join(cluster, 'flaky', ['b'], { strategy: 'flaky', max: 2 });
      await decided(cluster, 'flaky', ['b']);
      await join(cluster, 'flaky', ['a'], { strategy: 'flaky', max: 2 });
      await advanceUntil(cluster, () => errors.length === 1, 'the failure to be reported', 1000);
      assert.equal(errors[0]?.code, 'ROTA_STRATEGY_VIOLATION');
      assert.equal((errors[0]?.cause as Error).message, 'boom');
      await cluster.advance(4000);
      assert.deepEqual((await decisionRecord(rota, 'flaky'))?.hosts, ['b'], 'unchanged before the retry');
      await cluster.advance(1100);
      assert.deepEqual((await decisionRecord(rota, 'flaky'))?.hosts, ['a', 'b'], 'decided by the retry');
    });
  });

  it('HO-33 when the oldest candidate lowers max from 3 to 2, rr drops the lowest-ranked host', async () => {
    await withManualCluster({ nodes: 3 }, async (cluster) => {
      const handles = [];
      for (const [i, n] of cluster.nodes.entries()) {
        handles.push(await n.rota.hosts.schedule('shrink', { hostname: `h${i + 1}`, max: 3 }));
        await cluster.advance(10);
      }
      await untilHosts(handles[2]!, ['h1', 'h2', 'h3'], 2000, cluster);
      await cluster.node('n1').rota.hosts.add('shrink', { hostname: 'h1', max: 2 });
      await untilHosts(handles[2]!, ['h1', 'h2'], 2000, cluster);
      assert.equal(handles[2]!.isScheduled(), false);
    });
  });

  it('HO-34 fifty namespaces and ten hosts: one coordinator decides all, as a reference computation does', async () => {
    await withManualCluster({ nodes: 10 }, async (cluster) => {
      const strategies = ['rr', 'alpha', 'spread'];
      const plan = Array.from({ length: 50 }, (_, i) => ({
        ns: `role-${i}`,
        strategy: strategies[i % 3] as string,
        max: (i % 4) + 1,
        members: cluster.nodes.filter((_, j) => (i + j) % 3 !== 0).map((n) => n.nodeId),
      }));
      // Every node joins its namespaces; labels come from the node (none here, so spread is one group).
      for (const p of plan) {
        for (const nodeId of p.members) {
          await cluster
            .node(nodeId)
            .rota.hosts.add(p.ns, { hostname: `host-${nodeId}`, strategy: p.strategy, max: p.max });
        }
      }
      await cluster.advance(1000);
      const reader = cluster.node('n1').rota;
      const leaders = new Set<string>();
      for (const p of plan) {
        const { kvs } = await reader.store.range(reader.context.keys.prefix('hosts', 'candidates', p.ns));
        const candidates: HostCandidate[] = kvs
          .sort((a, b) => a.createRevision - b.createRevision)
          .map((kv) => {
            const hostname = decodeURIComponent(kv.key.slice(kv.key.lastIndexOf('/') + 1));
            return {
              hostname,
              nodeId: hostname.slice(5),
              data: null,
              labels: {},
              joinRevision: kv.createRevision,
              options: { strategy: p.strategy, max: p.max, hostsFilter: [] },
            };
          });
        const strategy = { rr: rrStrategy, alpha: alphaStrategy, spread: spreadStrategy() }[p.strategy]!;
        // The decision grew one join at a time, as the coordinator saw it.
        let last: string[] = [];
        for (let k = 1; k <= candidates.length; k++) {
          last = [
            ...(await strategy.schedule(candidates.slice(0, k), {
              namespace: p.ns,
              max: p.max,
              last,
              hostsFilter: [],
              signal: new AbortController().signal,
              logger: console as never,
            })),
          ];
        }
        const record = await decisionRecord(reader, p.ns);
        assert.deepEqual(record?.order, last, `${p.ns} (${p.strategy}, max ${p.max})`);
        leaders.add(`${record?.leader}:${record?.leaderToken}`);
      }
      assert.equal(leaders.size, 1, `one coordinator decided all 50: ${[...leaders].join(', ')}`);
      assert.equal(cluster.nodes.filter((n) => n.rota.hosts.isCoordinator()).length, 1);
    });
  });

  it('HO-36 a malformed candidacy is ignored and reported; the others are decided normally', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.node('n1').rota;
      const errors: RotaError[] = [];
      rota.hosts.events.on('hosts:error', (e) => errors.push(e.error));
      const badKey = rota.context.keys.key('hosts', 'candidates', 'ns', 'bad');
      await rota.store.put(badKey, new TextEncoder().encode('{not json'));
      await join(cluster, 'ns', ['good1', 'good2'], { max: 5 });
      await decided(cluster, 'ns', ['good1', 'good2']);
      assert.equal(errors.length, 1);
      assert.equal(errors[0]?.code, 'ROTA_STORE_CORRUPT');
      assert.equal(errors[0]?.detail.key, badKey);
      assert.deepEqual((await rota.hosts.get('ns')).hosts, ['good1', 'good2']);
    });
  });

  it('spread keeps incumbents and spreads the chosen hosts over a node label', async () => {
    const cand = (hostname: string, zone: string, joinRevision: number): HostCandidate => ({
      hostname,
      nodeId: hostname,
      data: null,
      labels: { zone },
      joinRevision,
      options: { strategy: 'spread', max: 3, hostsFilter: [] },
    });
    const all = [
      cand('a1', 'a', 1),
      cand('a2', 'a', 2),
      cand('a3', 'a', 3),
      cand('b1', 'b', 4),
      cand('c1', 'c', 5),
    ];
    const ctx = (max: number, last: string[]) => ({
      namespace: 'ns',
      max,
      last,
      hostsFilter: [],
      signal: new AbortController().signal,
      logger: console as never,
    });
    const spread = spreadStrategy();
    assert.deepEqual(await spread.schedule(all, ctx(3, [])), ['a1', 'b1', 'c1']);
    assert.deepEqual(await spread.schedule(all, ctx(3, ['a1', 'b1', 'c1'])), ['a1', 'b1', 'c1'], 'stable');
    // b's only host leaves: its slot goes to the next zone with room, an incumbent stays.
    const withoutB = all.filter((c) => c.hostname !== 'b1');
    assert.deepEqual(await spread.schedule(withoutB, ctx(3, ['a1', 'b1', 'c1'])), ['a1', 'c1', 'a2']);
    assert.deepEqual(
      await spread.schedule(all, ctx(5, [])),
      ['a1', 'a2', 'a3', 'b1', 'c1'],
      'newcomers in join order',
    );
    assert.deepEqual(
      await spread.schedule(all, ctx(4, [])),
      ['a1', 'a2', 'b1', 'c1'],
      'a gets the extra slot',
    );
    // Rack-aware instances are registered under their own kind.
    const rack = spreadStrategy({ kind: 'spread-rack', label: 'rack' });
    assert.equal(rack.kind, 'spread-rack');
    assert.deepEqual(
      await rack.schedule(all, ctx(2, [])),
      ['a1', 'a2'],
      'no rack label: one group, join order',
    );
  });

  it('spread and least-loaded run as registered strategies on labels and data', async () => {
    await withManualCluster({ nodes: 0 }, async (cluster) => {
      const zones = ['east', 'east', 'west'];
      const handles = [];
      for (const [i, zone] of zones.entries()) {
        const node = await cluster.addNode({ nodeId: `n${i + 1}`, labels: { zone } });
        handles.push(
          await node.rota.hosts.schedule('spread', { hostname: `h${i + 1}`, strategy: 'spread', max: 2 }),
        );
        await node.rota.hosts.add('load', {
          hostname: `h${i + 1}`,
          strategy: 'least-loaded',
          max: 2,
          data: { load: [0.9, 0.2, 0.5][i] },
        });
        await cluster.advance(10);
      }
      await untilHosts(handles[0]!, ['h1', 'h3'], 2000, cluster);
      await decided(cluster, 'load', ['h2', 'h3']);
      assert.deepEqual((await decisionRecord(cluster.node('n1').rota, 'load'))?.order, ['h2', 'h3']);
    });
  });
});

describe('hosts input validation (memory, manual clock)', () => {
  it('HO-10 bad namespaces and hostnames fail with ROTA_INVALID_ARGUMENT and write nothing', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const { hosts } = cluster.node('n1').rota;
      for (const ns of ['', 'a/b', ' x', 7]) {
        await rejectsWith(hosts.schedule(ns as string, { hostname: 'h1' }), 'ROTA_INVALID_ARGUMENT');
        await rejectsWith(hosts.add(ns as string, { hostname: 'h1' }), 'ROTA_INVALID_ARGUMENT');
        assert.throws(() => hosts.observe(ns as string), { code: 'ROTA_INVALID_ARGUMENT' });
      }
      for (const hostname of ['', 'a,b', 'x'.repeat(300), '-lead', 'trail.', 'sp ace', 42]) {
        await rejectsWith(hosts.schedule('ns', { hostname: hostname as string }), 'ROTA_INVALID_ARGUMENT');
        await rejectsWith(hosts.add('ns', { hostname: hostname as string }), 'ROTA_INVALID_ARGUMENT');
        await rejectsWith(hosts.withdraw('ns', { hostname: hostname as string }), 'ROTA_INVALID_ARGUMENT');
      }
      await rejectsWith(hosts.add('ns', { hostsFilter: ['ok', 'not,ok'] }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(hosts.add('ns', { hostsFilter: 'a' as never }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(hosts.add('ns', { data: 'x'.repeat(5000) }), 'ROTA_PAYLOAD_TOO_LARGE');
      await rejectsWith(hosts.add('ns', { data: () => 1 }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(hosts.add('ns', { colour: 'red' } as never), 'ROTA_INVALID_ARGUMENT');
      assert.deepEqual(await hostKeys(cluster.node('n1').rota), []);
    });
  });

  it('HO-11 an unknown strategy fails with ROTA_UNKNOWN_STRATEGY; a duplicate registration with ROTA_INVALID_ARGUMENT', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const { hosts } = cluster.node('n1').rota;
      await rejectsWith(hosts.schedule('ns', { strategy: 'foo' }), 'ROTA_UNKNOWN_STRATEGY');
      await rejectsWith(hosts.add('ns', { strategy: 'foo' }), 'ROTA_UNKNOWN_STRATEGY');
      assert.throws(() => hosts.registerStrategy('rr', () => rrStrategy), { code: 'ROTA_INVALID_ARGUMENT' });
      hosts.registerStrategy('foo', () => alphaStrategy);
      assert.throws(() => hosts.registerStrategy('foo', () => alphaStrategy), {
        code: 'ROTA_INVALID_ARGUMENT',
      });
      assert.throws(() => hosts.registerStrategy('', () => alphaStrategy), { code: 'ROTA_INVALID_ARGUMENT' });
      assert.throws(() => hosts.registerStrategy('bar', 'nope' as never), { code: 'ROTA_INVALID_ARGUMENT' });
      assert.deepEqual(hosts.strategies(), ['alpha', 'foo', 'least-loaded', 'rr', 'spread']);
      assert.deepEqual(await hostKeys(cluster.node('n1').rota), []);
      assert.deepEqual(await hosts.add('ns', { strategy: 'foo' }), { changed: true });
    });
  });

  it('HO-12 max of 0, -1, 1.5 or "2" and sessionTtl of 0 or 500 fail with ROTA_INVALID_ARGUMENT', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const { hosts } = cluster.node('n1').rota;
      for (const max of [0, -1, 1.5, '2', Number.NaN, null]) {
        await rejectsWith(hosts.schedule('ns', { max: max as number }), 'ROTA_INVALID_ARGUMENT');
      }
      for (const sessionTtl of [0, 500, 1500.5, '5s']) {
        await rejectsWith(
          hosts.schedule('ns', { sessionTtl: sessionTtl as number }),
          'ROTA_INVALID_ARGUMENT',
        );
      }
      await rejectsWith(hosts.start({ electionTtl: 500 }), 'ROTA_INVALID_ARGUMENT');
      assert.deepEqual(await hostKeys(cluster.node('n1').rota), []);
    });
  });

  it('a closed node refuses calls with ROTA_CLOSED and ends its iterators', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.node('n1').rota;
      const handle = await rota.hosts.schedule('ns', { hostname: 'h1' });
      const observer = rota.hosts.observe('ns');
      await untilHosts(observer, ['h1'], 2000, cluster);
      await rota.close();
      assert.deepEqual(await observer.next(), { value: undefined, done: true });
      assert.deepEqual(await handle.next(), { value: undefined, done: true });
      await rejectsWith(rota.hosts.add('ns'), 'ROTA_CLOSED');
      await rejectsWith(rota.hosts.get('ns'), 'ROTA_CLOSED');
      assert.throws(() => rota.hosts.observe('ns'), { code: 'ROTA_CLOSED' });
    });
  });

  it('an aborted observer or schedule throws ROTA_ABORTED; the schedule signal also closes the candidacy', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.node('n1').rota;
      const stopObserver = new AbortController();
      const observer = rota.hosts.observe('ns', { signal: stopObserver.signal });
      const stopSchedule = new AbortController();
      const handle = await rota.hosts.schedule('ns', { hostname: 'h1', signal: stopSchedule.signal });
      await untilHosts(observer, ['h1'], 2000, cluster);
      stopObserver.abort();
      await rejectsWith(observer.next(), 'ROTA_ABORTED');
      stopSchedule.abort();
      await rejectsWith(handle.next(), 'ROTA_ABORTED');
      await advanceUntil(
        cluster,
        async () => (await hostKeys(rota)).length === 0,
        'the candidacy and decision to go',
        3000,
      );
      await quietFor(rota.hosts.observe('ns'), 10, cluster).catch(() => undefined);
    });
  });
});
