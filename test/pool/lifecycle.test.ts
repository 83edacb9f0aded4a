/** pool.md: workers, nodes, close, shutdown and failures (memory store, manual clock). */
import { describe, it } from 'node:test';
import { assert, rejectsWith, withManualCluster } from '../support/scenarios.js';
import { JobLog, run, settle, until } from './support.js';

const FAST = { workerTtl: 2000, ackGracePeriod: 500, rebalanceDelay: 20 };

describe('pool lifecycle (memory, manual clock)', () => {
  it('PO-12 removeWorker empties its jobs and a following shutdown resolves', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const pool = await cluster.nodes[0]!.rota.pool.join('P', FAST);
      const log = new JobLog();
      const w = await pool.addWorker(log.handler('w1'));
      await settle(cluster, pool.dispatch('k', null));
      assert.equal(w.jobs().length, 1);
      await settle(cluster, pool.removeWorker(w));
      assert.equal(w.jobs().length, 0);
      assert.equal(w.isStopped, true);
      assert.deepEqual(pool.workers(), []);
      assert.deepEqual(
        log.of('stop').map((e) => e.reason),
        ['removed'],
      );
      await settle(cluster, pool.shutdown());
      assert.equal(pool.isShutdown, true);
    });
  });

  it('PO-13 close stops the running job, isClosed is true, and shutdown on the closed node resolves', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const pool = await cluster.nodes[0]!.rota.pool.join('P', FAST);
      const log = new JobLog();
      const closed: string[] = [];
      pool.events.on('pool:closed', (e) => closed.push(e.nodeId));
      const w = await pool.addWorker(log.handler('w1'));
      await settle(cluster, pool.dispatch('k', null));
      await settle(cluster, pool.close());
      assert.equal(pool.isClosed, true);
      assert.equal(w.jobs().length, 0);
      assert.deepEqual(
        log.of('stop').map((e) => e.reason),
        ['closed'],
      );
      assert.deepEqual(closed, [pool.nodeId]);
      await pool.shutdown();
      await settle(cluster, pool.close());
      await rejectsWith(pool.dispatch('x'), 'ROTA_POOL_CLOSED');
      await rejectsWith(pool.addWorker(log.handler('w2')), 'ROTA_POOL_CLOSED');
    });
  });

  it('PO-17 shutdown stops every job with reason shutdown, removes all records, every node is shut down, and join works again', async () => {
    await withManualCluster({ nodes: 3 }, async (cluster) => {
      const placement = (key: string, workers: readonly string[]) =>
        workers[Number(key.slice(1)) % workers.length] as string;
      const pools = await Promise.all(
        cluster.nodes.map((n) => n.rota.pool.join('P', { ...FAST, placement })),
      );
      const [a, b, client] = [pools[0]!, pools[1]!, pools[2]!];
      await client.close();
      const clientOnly = await cluster.nodes[2]!.rota.pool.join('P', { ...FAST, clientOnly: true });
      const log = new JobLog();
      await a.addWorker(log.handler('w1'));
      await b.addWorker(log.handler('w2'));
      await settle(cluster, Promise.all(['j0', 'j1', 'j2', 'j3'].map((k) => clientOnly.dispatch(k, null))));
      assert.equal(new Set(log.of('start').map((e) => e.worker)).size, 2, 'both workers run jobs');
      await settle(cluster, a.shutdown());
      assert.deepEqual(
        log
          .of('stop')
          .map((e) => `${e.key}:${e.reason}`)
          .sort(),
        ['j0:shutdown', 'j1:shutdown', 'j2:shutdown', 'j3:shutdown'],
      );
      await until(cluster, () => b.isShutdown && clientOnly.isShutdown, 'every node shut down');
      assert.equal(a.isShutdown, true);
      const rota = cluster.nodes[0]!.rota;
      const { kvs } = await rota.store.range(rota.context.keys.prefix('pool', 'P'));
      assert.deepEqual(
        kvs.map((kv) => kv.key),
        [],
      );
      const again = await rota.pool.join('P', FAST);
      const w = await again.addWorker(log.handler('w3'));
      await settle(cluster, again.dispatch('j9', null));
      assert.equal(w.jobs().length, 1);
      await settle(cluster, again.close());
    });
  });

  it('PO-19 owner records deleted externally: the jobs are re-acquired and restarted from their durable records', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.nodes[0]!.rota;
      const pool = await rota.pool.join('P', FAST);
      const log = new JobLog();
      await pool.addWorker(log.handler('w1'));
      await settle(cluster, Promise.all(['a', 'b'].map((k) => pool.dispatch(k, k))));
      const owners = `${rota.context.keys.prefix('pool', 'P')}owners/`;
      await rota.store.delete(owners, { prefix: true });
      await until(cluster, () => log.of('start').length === 4, 'both jobs restart');
      assert.deepEqual(
        log
          .of('stop')
          .map((e) => `${e.key}:${e.reason}`)
          .sort(),
        ['a:leaseLost', 'b:leaseLost'],
      );
      for (const key of ['a', 'b']) {
        const [first, second] = log.of('start', key);
        assert.ok(second!.token > first!.token);
        assert.ok(log.of('stop', key)[0]!.seq < second!.seq, 'stopped before the restart');
      }
      assert.equal((await rota.store.range(owners)).kvs.length, 2);
      await settle(cluster, pool.close());
    });
  });

  it('PO-21 after a worker is killed silently and a new one added, a job dispatched after 2·workerTtl lands with the other on the new worker', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const [na, nb] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
      const pa = await na.rota.pool.join('P', FAST);
      const pb = await nb.rota.pool.join('P', { ...FAST, workerTtl: 10_000 });
      const log = new JobLog();
      await pa.addWorker(log.handler('dead'));
      await settle(cluster, pb.dispatch('job1', null));
      cluster.kill(na);
      const fresh = await pb.addWorker(log.handler('new'));
      await run(cluster, 2 * FAST.workerTtl);
      await settle(cluster, pb.dispatch('job2', null));
      await until(cluster, () => fresh.jobs().length === 2, 'the new worker holds both jobs');
      assert.deepEqual(
        fresh
          .jobs()
          .map((j) => j.key)
          .sort(),
        ['job1', 'job2'],
      );
      log.assertNoOverlap();
    });
  });

  it('PO-24 a requeued job whose start always throws backs off over ranked workers, fails after 5 attempts, stopJob deletes it, and it can be dispatched again', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const pool = await cluster.nodes[0]!.rota.pool.join('P', FAST);
      const log = new JobLog();
      let broken = false;
      const failing = {
        start: () => {
          if (broken) throw Object.assign(new Error('cannot start'), { code: 'E_START' });
        },
      };
      const w1 = await pool.addWorker(log.handler('w1', failing));
      const others = [
        await pool.addWorker(log.handler('w2', failing)),
        await pool.addWorker(log.handler('w3', failing)),
      ];
      const attempts: { worker: string; attempt: number; at: number }[] = [];
      const failed: string[] = [];
      pool.events.on('job:start-failed', (e) =>
        attempts.push({ worker: e.workerId, attempt: e.attempt, at: cluster.clock!.monotonic() }),
      );
      pool.events.on('job:failed', (e) => failed.push(`${e.key}:${e.error.code}`));
      // Start the job, then make every start fail and move it (requeued from now on).
      await settle(cluster, pool.dispatch('k', null));
      const owner = log.of('start', 'k')[0]!.worker;
      broken = true;
      const ownerWorker = [w1, ...others].find((w) => w.jobs().length === 1)!;
      assert.ok(owner);
      await settle(cluster, pool.removeWorker(ownerWorker));
      await until(cluster, () => failed.length === 1, 'the job fails for good', 60_000, 50);
      assert.deepEqual(failed, ['k:E_START']);
      assert.deepEqual(
        attempts.map((a) => a.attempt),
        [1, 2, 3, 4, 5],
      );
      assert.equal(new Set(attempts.map((a) => a.worker)).size, 2, 'tried on both remaining workers');
      const gaps = attempts.slice(1).map((a, i) => a.at - (attempts[i] as { at: number }).at);
      for (let i = 1; i < gaps.length; i++)
        assert.ok(gaps[i]! > gaps[i - 1]!, `backoff grows: ${gaps.join(', ')}`);
      assert.deepEqual(await pool.jobKeys(), [], 'a failed job is not listed');
      await run(cluster, 5000);
      assert.equal(attempts.length, 5, 'no more attempts');
      assert.equal(await settle(cluster, pool.stopJob('k')), true, 'stopJob deletes the failed job');
      broken = false;
      await settle(cluster, pool.dispatch('k', null));
      await settle(cluster, pool.close());
    });
  });

  it('PO-26 killing the node with 5 workers of P_2 empties P_2’s workers and leaves P_1’s worker alone', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const [na, nb] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
      const log = new JobLog();
      const p1 = await na.rota.pool.join('P_1', { ...FAST, workerTtl: 10_000 });
      const p2watch = await na.rota.pool.join('P_2', { ...FAST, clientOnly: true });
      const live = await p1.addWorker(log.handler('p1'));
      const p2 = await nb.rota.pool.join('P_2', FAST);
      for (let i = 0; i < 5; i++) await p2.addWorker(log.handler(`p2-${i}`));
      await until(cluster, () => p2watch.poolWorkers().length === 5, 'P_2 has 5 workers');
      cluster.kill(nb);
      await until(cluster, () => p2watch.poolWorkers().length === 0, 'P_2 workers gone', 10_000);
      assert.deepEqual(
        p1.poolWorkers().map((w) => w.id),
        [live.id],
      );
      assert.equal(live.isStopped, false);
    });
  });

  it('PO-36 a client-only node refuses addWorker and shutdown, answers jobKeys and closes', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const full = await cluster.nodes[0]!.rota.pool.join('P', FAST);
      const client = await cluster.nodes[1]!.rota.pool.join('P', { ...FAST, clientOnly: true });
      const log = new JobLog();
      await rejectsWith(client.addWorker(log.handler('x')), 'ROTA_CLIENT_ONLY');
      await rejectsWith(client.shutdown(), 'ROTA_CLIENT_ONLY');
      await full.addWorker(log.handler('w1'));
      await settle(cluster, client.dispatch('k', null));
      assert.deepEqual(await client.jobKeys(), ['k']);
      assert.deepEqual(await client.jobKeys({ fresh: true }), ['k']);
      assert.equal(client.poolWorkers().length, 1);
      await settle(cluster, client.close());
      assert.equal(client.isClosed, true);
      await settle(cluster, full.close());
    });
  });

  it('PO-37 joining during a shutdown fails with ROTA_POOL_SHUTTING_DOWN; after it completes, joining succeeds', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const pool = await cluster.nodes[0]!.rota.pool.join('P', FAST);
      let release: () => void = () => undefined;
      const log = new JobLog();
      await pool.addWorker(
        log.handler('w1', {
          stop: () =>
            new Promise<void>((resolve) => {
              release = resolve;
            }),
        }),
      );
      await settle(cluster, pool.dispatch('k', null));
      const shutdown = pool.shutdown();
      shutdown.catch(() => undefined);
      await run(cluster, 50);
      await rejectsWith(cluster.nodes[1]!.rota.pool.join('P', FAST), 'ROTA_POOL_SHUTTING_DOWN');
      release();
      await settle(cluster, shutdown);
      const joined = await cluster.nodes[1]!.rota.pool.join('P', FAST);
      assert.equal(joined.isClosed, false);
      await settle(cluster, joined.close());
    });
  });

  it('PO-38 an aborted shutdown rejects ROTA_ABORTED promptly while a stop hangs', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const pool = await cluster.nodes[0]!.rota.pool.join('P', { ...FAST, workerShutdownTimeout: 5000 });
      const log = new JobLog();
      await pool.addWorker(log.handler('w1', { stop: () => new Promise<void>(() => undefined) }));
      await settle(cluster, pool.dispatch('k', null));
      const controller = new AbortController();
      const shutdown = pool.shutdown({ signal: controller.signal });
      shutdown.catch(() => undefined);
      await run(cluster, 100);
      controller.abort();
      await rejectsWith(settle(cluster, shutdown, 50, 5), 'ROTA_ABORTED');
      // The hanging stop is bounded by workerShutdownTimeout; the node's part of the shutdown ends.
      await until(cluster, () => pool.isShutdown, 'the node finishes its shutdown', 10_000);
    });
  });

  it('PO-41 a node whose wall clock is 10 minutes ahead judges no worker dead early and moves no job', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const [na, nb] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
      cluster.skew(na, 10 * 60_000);
      const pa = await na.rota.pool.join('P', FAST);
      const pb = await nb.rota.pool.join('P', FAST);
      const log = new JobLog();
      const wa = await pa.addWorker(log.handler('a'));
      const wb = await pb.addWorker(log.handler('b'));
      await settle(cluster, Promise.all(Array.from({ length: 8 }, (_, i) => pa.dispatch(`j${i}`, null))));
      const before = [wa.jobs().length, wb.jobs().length];
      await run(cluster, 4 * FAST.workerTtl, 50);
      assert.deepEqual([wa.jobs().length, wb.jobs().length], before);
      assert.equal(log.of('stop').length, 0, 'no job moved');
      assert.equal(log.of('start').length, 8);
      assert.equal(pb.poolWorkers().length, 2, 'no worker judged dead');
      await settle(cluster, Promise.all([pa.close(), pb.close()]));
    });
  });

  it('removing a worker while a job waits for it to start, and closing twice, are safe', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const pool = await cluster.nodes[0]!.rota.pool.join('P', FAST);
      const log = new JobLog();
      const w = await pool.addWorker(
        log.handler('w1', { start: () => new Promise((r) => setTimeout(r, 5)) }),
      );
      void pool.dispatch('k', null, { wait: false });
      await settle(cluster, pool.removeWorker(w));
      await settle(cluster, pool.removeWorker(w));
      assert.equal(log.of('start').length, log.of('stop').length);
      await Promise.all([settle(cluster, pool.close()), settle(cluster, pool.close())]);
    });
  });

  it('a job its target never takes is acquired by the next-ranked worker after ackGracePeriod, bumping rankOffset', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.nodes[0]!.rota;
      const prefix = rota.context.keys.prefix('pool', 'P');
      // A worker record nobody serves (its node is stuck): the oldest, so attempt 0 targets it.
      const ghost = { nodeId: 'stuck', createdAt: 0, state: 'active' };
      await rota.store.put(`${prefix}workers/ghost`, new TextEncoder().encode(JSON.stringify(ghost)));
      const pool = await rota.pool.join('P', {
        ...FAST,
        placement: (_key, workers, attempt) => workers[attempt % workers.length] as string,
      });
      const log = new JobLog();
      await pool.addWorker(log.handler('real'));
      await settle(cluster, pool.dispatch('k', null, { wait: false }));
      await run(cluster, FAST.ackGracePeriod / 2);
      assert.equal(log.of('start').length, 0, 'not before ackGracePeriod');
      await until(cluster, () => log.of('start').length === 1, 'the next-ranked worker takes it', 2000);
      const job = JSON.parse(new TextDecoder().decode((await rota.store.get(`${prefix}jobs/k`)).kv!.value));
      assert.equal(job.rankOffset, 1);
      await settle(cluster, pool.close());
    });
  });

  it('a node that loses its pool lease stops its jobs (leaseLost), registers again and restarts them', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const pool = await node.rota.pool.join('P', FAST);
      const events: string[] = [];
      pool.events.on('pool:lease-lost', () => events.push('lost'));
      pool.events.on('pool:recovered', () => events.push('recovered'));
      const log = new JobLog();
      const w = await pool.addWorker(log.handler('w1'));
      await settle(cluster, pool.dispatch('k', null));
      cluster.partition(node);
      await until(cluster, () => events.includes('lost'), 'the lease is lost locally', 5000);
      assert.deepEqual(
        log.of('stop').map((e) => e.reason),
        ['leaseLost'],
      );
      assert.equal(w.jobs().length, 0);
      cluster.heal(node);
      await until(
        cluster,
        () => events.includes('recovered') && w.jobs().length === 1,
        'back in business',
        10_000,
      );
      const [first, second] = log.of('start', 'k');
      assert.ok(second!.token > first!.token);
      assert.equal(w.jobs()[0]?.requeued, true);
      log.assertNoOverlap();
      await settle(cluster, pool.close());
    });
  });

  it('full pool nodes advertise their pool in the member capabilities', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.nodes[0]!.rota;
      const full = await rota.pool.join('P', FAST);
      const client = await rota.pool.join('Q', { ...FAST, clientOnly: true });
      await run(cluster, 10);
      assert.deepEqual(rota.cluster.session.capabilities.pools, ['P']);
      await rejectsWith(rota.pool.join('P', FAST), 'ROTA_INVALID_ARGUMENT');
      await settle(cluster, full.close());
      await run(cluster, 10);
      assert.deepEqual(rota.cluster.session.capabilities.pools, []);
      const member = await rota.cluster.members({ fresh: true });
      assert.deepEqual(member[0]?.capabilities.pools, []);
      await settle(cluster, client.close());
    });
  });
});
