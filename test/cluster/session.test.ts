/** cluster.md §2.1–2.2: sessions and membership (CL-1 … CL-8, CL-31). */
import { describe, it } from 'node:test';
import { StoreUnavailableError } from '../../src/errors.js';
import { Rota } from '../../src/rota.js';
import { MemoryEngine } from '../../src/store/memory/index.js';
import { FaultyStore } from '../../src/testing/index.js';
import {
  allStores,
  assert,
  eventually,
  rejectsWith,
  take,
  withManualCluster,
  withStoreCluster,
} from '../support/scenarios.js';

// Nodes meant to die use a short TTL; 3 s leaves room for store round trips under a loaded machine.
const TTL = 3000;

allStores('cluster sessions', {
  'CL-1 a closing node leaves at once and watchers see it': async (fixture) => {
    await withStoreCluster(fixture, { nodes: 2, nodeOptions: { sessionTtl: TTL } }, async (cluster) => {
      const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
      const watch = b.rota.cluster.watchMembers();
      const [sync] = await take(watch, 1);
      assert.equal(sync?.type, 'sync');
      assert.deepEqual(sync?.type === 'sync' ? sync.members.map((m) => m.nodeId).sort() : [], ['n1', 'n2']);
      const memberKey = a.rota.cluster.session.memberKey;
      await a.rota.close();
      assert.equal((await b.rota.store.get(memberKey)).kv, null, 'the member key is gone at once');
      const [left] = await take(watch, 1, 2000);
      assert.deepEqual(left && left.type === 'left' ? left.nodeId : null, 'n1');
      await watch.return?.();
    });
  },

  'CL-2 a killed node vanishes when its lease expires by store time': async (fixture) => {
    await withStoreCluster(fixture, { nodes: 0 }, async (cluster) => {
      await cluster.addNode({ nodeId: 'n1', sessionTtl: TTL });
      const b = await cluster.addNode({ nodeId: 'n2', sessionTtl: 10_000 });
      let left = false;
      b.rota.events.on('member:left', (e) => {
        if (e.nodeId === 'n1') left = true;
      });
      cluster.kill('n1');
      await eventually(() => left, TTL + 4000, 'member:left for the killed node');
      assert.deepEqual(
        (await b.rota.cluster.members({ fresh: true })).map((m) => m.nodeId),
        ['n2'],
      );
    });
  },

  'CL-3 a partitioned node loses its session before the store deletes its keys, then rejoins': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 2, nodeOptions: { sessionTtl: TTL } }, async (cluster) => {
      const a = cluster.node('n1');
      const b = cluster.node('n2');
      const order: string[] = [];
      const firstSession = a.rota.cluster.session.sessionId;
      const signal = a.rota.cluster.session.signal;
      signal.addEventListener('abort', () => order.push('lost'));
      b.rota.events.on('member:left', (e) => {
        if (e.nodeId === 'n1') order.push('deleted');
      });
      cluster.partition(a);
      await eventually(
        () => order.includes('deleted'),
        TTL + 4000,
        'the store to expire the partitioned session',
      );
      assert.deepEqual(order, ['lost', 'deleted']);
      assert.equal((signal.reason as { code?: string }).code, 'ROTA_SESSION_LOST');
      cluster.heal(a);
      // A reconnect attempt may fail after its write landed (a slow store right after the heal)
      // and be retried with another session: wait for the store and the node to agree.
      const back = await eventually(
        async () =>
          (await b.rota.cluster.members({ fresh: true })).find(
            (m) => m.nodeId === 'n1' && m.sessionId === a.rota.cluster.session.sessionId,
          ),
        TTL + 8000,
        'the node to register again',
      );
      assert.notEqual(back.sessionId, firstSession);
      assert.equal(a.rota.cluster.session.state, 'live');
    });
  },

  'CL-6 a resumed member watch yields exactly the missed joins and leaves; a compacted one re-syncs': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 1, nodeOptions: { sessionTtl: TTL } }, async (cluster) => {
      const a = cluster.node('n1');
      const watch = a.rota.cluster.watchMembers();
      const [sync] = await take(watch, 1);
      const seen = sync?.revision ?? 0;
      await watch.return?.();
      await cluster.addNode({ nodeId: 'x1' });
      await cluster.addNode({ nodeId: 'x2' });
      const x3 = await cluster.addNode({ nodeId: 'x3' });
      await x3.rota.close();
      const resumed = a.rota.cluster.watchMembers({ fromRevision: seen + 1 });
      const events = await take(resumed, 4);
      assert.deepEqual(
        events.map(
          (e) => `${e.type}:${e.type === 'left' ? e.nodeId : e.type === 'sync' ? '' : e.member.nodeId}`,
        ),
        ['joined:x1', 'joined:x2', 'joined:x3', 'left:x3'],
      );
      await resumed.return?.();
      const { revision } = await a.rota.store.status();
      await a.rota.store.compact(revision);
      const fresh = a.rota.cluster.watchMembers({ fromRevision: seen + 1 });
      const [resync] = await take(fresh, 1);
      assert.equal(resync?.type, 'sync');
      assert.deepEqual(resync?.type === 'sync' ? resync.members.map((m) => m.nodeId).sort() : [], [
        'n1',
        'x1',
        'x2',
      ]);
      await fresh.return?.();
    });
  },
});

describe('cluster sessions (memory, manual clock)', () => {
  it('CL-4 a second live session with the same node id fails and the first is unaffected', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const a = cluster.node('n1');
      const err = await rejectsWith(cluster.addNode({ nodeId: 'n1' }), 'ROTA_NODE_ID_IN_USE');
      assert.equal(err.detail.nodeId, 'n1');
      assert.equal(a.rota.cluster.session.state, 'live');
      assert.ok((await a.rota.store.get(a.rota.cluster.session.memberKey)).kv);
    });
  });

  it('CL-5 an unknown store URL fails before writing; an unreachable store fails after storeTimeout', async () => {
    await rejectsWith(Rota.connect({ store: 'foo://x' }), 'ROTA_UNKNOWN_STORE');
    const engine = new MemoryEngine();
    const down = new FaultyStore(engine.client());
    down.partition();
    const started = Date.now();
    await rejectsWith(Rota.connect({ store: down, storeTimeout: 300 }), 'ROTA_STORE_UNAVAILABLE');
    assert.ok(Date.now() - started >= 250, 'gave up only after storeTimeout');
    assert.equal((await engine.client().status()).revision, 1, 'nothing was written');
    const lazy = await Rota.connect({
      store: new FaultyStore(engine.client()),
      lazyConnect: true,
      nodeId: 'lazy',
    });
    await eventually(() => lazy.cluster.session.state === 'live', 3000, 'the lazy node to connect');
    await lazy.close();
  });

  it('CL-7 a skewed wall clock changes nothing but emits clock:skew', async () => {
    await withManualCluster({ nodes: 2, nodeOptions: { sessionTtl: 10_000 } }, async (cluster) => {
      const a = cluster.node('n1');
      const skews: number[] = [];
      a.rota.events.on('clock:skew', (e) => skews.push(e.skewMs));
      cluster.skew(a, 3_600_000);
      await cluster.advance(31_000);
      assert.equal(skews.length, 1);
      assert.ok(Math.abs((skews[0] ?? 0) - 3_600_000) < 1000);
      assert.equal(a.rota.cluster.session.state, 'live');
      await cluster.advance(60_000);
      assert.equal(a.rota.cluster.session.state, 'live', 'skew does not expire the session');
      assert.deepEqual((await cluster.node('n2').rota.cluster.members()).map((m) => m.nodeId).sort(), [
        'n1',
        'n2',
      ]);
    });
  });

  it('CL-8 with reconnect off, a lost session makes lock() fail with ROTA_SESSION_LOST', async () => {
    await withManualCluster(
      { nodes: 1, nodeOptions: { sessionTtl: 3000, reconnect: false } },
      async (cluster) => {
        const a = cluster.node('n1');
        cluster.partition(a);
        await cluster.advance(3000);
        assert.equal(a.rota.cluster.session.state, 'lost');
        cluster.heal(a);
        await rejectsWith(a.rota.cluster.lock('L'), 'ROTA_SESSION_LOST');
        await cluster.advance(10_000);
        assert.equal(a.rota.cluster.session.state, 'lost', 'no reconnect');
      },
    );
  });

  it('the session goes suspect after ttl/2 without keep-alives and lost at the local deadline', async () => {
    await withManualCluster({ nodes: 1, nodeOptions: { sessionTtl: 3000 } }, async (cluster) => {
      const a = cluster.node('n1');
      const states: string[] = [];
      a.rota.events.on('session:suspect', () => states.push('suspect'));
      a.rota.events.on('session:lost', () => states.push('lost'));
      a.rota.events.on('session:started', () => states.push('started'));
      cluster.partition(a);
      await cluster.advance(1600);
      assert.deepEqual(states, ['suspect']);
      await cluster.advance(1000); // deadline = 3000 - 500 after the last acknowledged send
      assert.deepEqual(states, ['suspect', 'lost']);
      cluster.heal(a);
      await cluster.advance(2000);
      assert.deepEqual(states, ['suspect', 'lost', 'started']);
      assert.equal(a.rota.cluster.session.state, 'live');
    });
  });

  it('CL-31 the default node id is hostname-pid-6hex', async () => {
    const rota = await Rota.connect({ store: 'memory:' });
    assert.match(rota.nodeId, /^[^\s]+-\d+-[0-9a-f]{6}$/);
    await rota.close();
    await rejectsWith(rota.cluster.members(), 'ROTA_CLOSED');
    await rota.close();
  });

  it('bad connect options are refused before anything is written', async () => {
    for (const bad of [
      { sessionTtl: 0 },
      { sessionTtl: 500 },
      { sessionTtl: '10s' },
      { namespace: '' },
      { nodeId: ' x' },
      { storeTimeout: -1 },
      { labels: { a: 1 } },
      { colour: 'red' },
      { logger: {} },
    ]) {
      await rejectsWith(Rota.connect({ store: 'memory:', ...(bad as object) }), 'ROTA_INVALID_ARGUMENT');
    }
  });
});

describe('lease keeper (memory, manual clock)', () => {
  it('a grant that succeeds after retries starts its lease at the successful send', async () => {
    await withManualCluster({ nodes: 1, nodeOptions: { sessionTtl: 3000 } }, async (cluster) => {
      const a = cluster.node('n1');
      const started: string[] = [];
      a.rota.events.on('session:started', (e) => started.push(e.sessionId));
      cluster.partition(a);
      await cluster.advance(3000); // lost; reconnect attempts now fail and back off
      await cluster.advance(8000);
      cluster.heal(a);
      await cluster.advance(6000); // a retry succeeds at some point in here
      assert.equal(started.length, 1, 'exactly one new session');
      await cluster.advance(10_000);
      assert.equal(started.length, 1, 'the new session was not lost right away');
      assert.equal(a.rota.cluster.session.state, 'live');
    });
  });
});

describe('session reconnect (memory, manual clock)', () => {
  it('after a reconnect that replaced the old record, capability updates still land', async () => {
    await withManualCluster({ nodes: 1, nodeOptions: { sessionTtl: 10_000 } }, async (cluster) => {
      const a = cluster.node('n1');
      // Lose the session locally while the store still has the old record: the reconnect replaces it.
      a.rota.cluster.session.expireLocally('test');
      await cluster.advance(1000);
      assert.equal(a.rota.cluster.session.state, 'live');
      await a.rota.cluster.session.setCapabilities('queues', ['emails']);
      const [member] = await a.rota.cluster.members({ fresh: true });
      assert.deepEqual(member?.capabilities.queues, ['emails']);
      assert.equal(member?.sessionId, a.rota.cluster.session.sessionId);
    });
  });

  it('a member write that landed but whose answer was lost is recognised, not taken for another node', async () => {
    await withManualCluster({ nodes: 1, nodeOptions: { sessionTtl: 3000 } }, async (cluster) => {
      const a = cluster.node('n1');
      // Let the store expire the old record first, so the reconnect creates the key afresh.
      cluster.partition(a);
      await cluster.advance(4000);
      cluster.heal(a);
      const started: string[] = [];
      a.rota.events.on('session:started', (e) => started.push(e.sessionId));
      const store = a.faults;
      // Make the next txn apply at the store but lose its answer, like a timeout after sending.
      const txn = store.inner.txn.bind(store.inner);
      let dropped = false;
      let droppedSession = '';
      store.inner.txn = async (request) => {
        const result = await txn(request);
        const put = request.success.find((op) => op.type === 'put' && op.key.includes('/cluster/members/'));
        if (!dropped && result.succeeded && put?.type === 'put') {
          dropped = true;
          droppedSession = JSON.parse(new TextDecoder().decode(put.value)).sessionId;
          throw new StoreUnavailableError('answer lost', { detail: { ambiguous: true } });
        }
        return result;
      };
      await cluster.advance(8000);
      assert.equal(dropped, true);
      assert.equal(a.rota.cluster.session.sessionId, droppedSession, 'the landed write is the live session');
      assert.equal(started.length, 1, 'one new session, not a second one after a false conflict');
      assert.equal(a.rota.cluster.session.state, 'live');
      await cluster.advance(30_000);
      assert.equal(started.length, 1);
    });
  });
});
