/** pool.md: dispatch, stop, notify and placement on one or two nodes (memory store, manual clock). */
import { describe, it } from 'node:test';
import { RequeueError } from '../../src/errors.js';
import type { PoolJob } from '../../src/pool/index.js';
import { assert, rejectsWith, withManualCluster } from '../support/scenarios.js';
import { JobLog, run, settle, str, text, until } from './support.js';

const FAST = { workerTtl: 2000, ackGracePeriod: 500, rebalanceDelay: 20 };

describe('pool jobs (memory, manual clock)', () => {
  it('PO-1 a node with 3 workers lists exactly their 3 ids', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const pool = await cluster.nodes[0]!.rota.pool.join('P', FAST);
      const log = new JobLog();
      const ws = [await pool.addWorker(log.handler('a')), await pool.addWorker(log.handler('b'))];
      ws.push(await pool.addWorker(log.handler('c')));
      assert.deepEqual(
        pool
          .workers()
          .map((w) => w.id)
          .sort(),
        ws.map((w) => w.id).sort(),
      );
      assert.equal(new Set(ws.map((w) => w.id)).size, 3);
      await pool.close();
    });
  });

  it('PO-5 with one worker, dispatch resolves and the worker holds the job with exactly the payload', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const pool = await cluster.nodes[0]!.rota.pool.join('P', FAST);
      const log = new JobLog();
      const worker = await pool.addWorker(log.handler('w1'));
      const p = new Uint8Array([1, 2, 3, 250]);
      await settle(cluster, pool.dispatch('k', p));
      const jobs = worker.jobs();
      assert.equal(jobs.length, 1);
      assert.equal(jobs[0]?.key, 'k');
      assert.deepEqual(jobs[0]?.payload, p);
      assert.equal(jobs[0]?.requeued, false);
      assert.equal(jobs[0]?.attempt, 1);
      assert.equal(jobs[0]?.workerId, worker.id);
      assert.equal(jobs[0]?.dispatchedBy, pool.nodeId);
      assert.ok((jobs[0]?.token ?? 0) > 0);
      assert.equal(log.of('start').length, 1);
      await settle(cluster, pool.close());
    });
  });

  it('PO-6 a hasher sending job1 to worker 0 and job2 to worker 1 gives each worker one job', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const placement = (key: string, workers: readonly string[]) =>
        workers[key === 'job1' ? 0 : 1 % workers.length] as string;
      const pool = await cluster.nodes[0]!.rota.pool.join('P', { ...FAST, placement });
      const log = new JobLog();
      const w0 = await pool.addWorker(log.handler('w0'));
      const w1 = await pool.addWorker(log.handler('w1'));
      await settle(cluster, Promise.all([pool.dispatch('job1', 'p1'), pool.dispatch('job2', 'p2')]));
      assert.deepEqual(
        w0.jobs().map((j) => [j.key, str(j.payload)]),
        [['job1', 'p1']],
      );
      assert.deepEqual(
        w1.jobs().map((j) => [j.key, str(j.payload)]),
        [['job2', 'p2']],
      );
      await settle(cluster, pool.close());
    });
  });

  it('PO-7 after the hasher switches (no rebalance), stopJob stops the job on its owner only', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      let pick = 0;
      const pool = await cluster.nodes[0]!.rota.pool.join('P', {
        ...FAST,
        placement: (_key, workers) => workers[Math.min(pick, workers.length - 1)] as string,
      });
      const log = new JobLog();
      const w1 = await pool.addWorker(log.handler('w1'));
      const w2 = await pool.addWorker(log.handler('w2'));
      await settle(cluster, pool.dispatch('k', 'p'));
      assert.equal(w1.jobs().length, 1);
      pick = 1;
      assert.equal(await settle(cluster, pool.stopJob('k')), true);
      assert.deepEqual(
        log.of('stop').map((e) => [e.worker, e.reason]),
        [['w1', 'stopped']],
      );
      assert.equal(log.of('start', 'k', 'w2').length, 0);
      assert.equal(w1.jobs().length + w2.jobs().length, 0);
      assert.equal(await pool.jobPayload('k'), undefined);
      const rota = cluster.nodes[0]!.rota;
      const owner = await rota.store.get(`${rota.context.keys.prefix('pool', 'P')}owners/k`);
      assert.equal(owner.kv, null);
      await settle(cluster, pool.close());
    });
  });

  it('PO-8 a notification sent in an ownership gap is delivered once the new owner runs; stopJob of an unowned job deletes it without a start', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const pool = await cluster.nodes[0]!.rota.pool.join('P', FAST);
      const log = new JobLog();
      const w1 = await pool.addWorker(log.handler('w1'));
      await settle(cluster, pool.dispatch('k', 'p'));
      // Open a gap: w1 leaves; no worker can take the job.
      await settle(cluster, pool.removeWorker(w1));
      assert.deepEqual(await pool.jobKeys(), ['k']);
      await settle(cluster, pool.notify('k', 'hello'));
      await run(cluster, 200);
      assert.equal(log.of('notify').length, 0, 'nobody to deliver to yet');
      await pool.addWorker(log.handler('w2'));
      await until(cluster, () => log.of('notify').length === 1, 'the notification reaches w2');
      const note = log.of('notify')[0]!;
      assert.equal(note.worker, 'w2');
      assert.equal(str(note.payload), 'hello');
      assert.ok(log.of('start', 'k', 'w2')[0]!.seq < note.seq, 'delivered after the start');
      // An unowned job: no worker at all.
      const starts = log.of('start').length;
      await settle(cluster, pool.dispatch('u', null, { wait: false }));
      await settle(cluster, pool.removeWorker(pool.workers()[0]!));
      await settle(cluster, pool.dispatch('v', null, { wait: false }));
      assert.equal(await settle(cluster, pool.stopJob('v')), true);
      assert.equal(log.of('start', 'v').length, 0);
      assert.equal(await pool.jobPayload('v'), undefined);
      assert.ok(log.of('start').length >= starts);
      await settle(cluster, pool.close());
    });
  });

  it('PO-11 notify reaches the running job’s handler; a handler without notify emits notification:unsupported and keeps running', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.nodes[0]!.rota;
      const pool = await rota.pool.join('P', FAST);
      const log = new JobLog();
      const received: [string, string | null | undefined][] = [];
      await pool.addWorker(
        log.handler('w1', {
          notify: (job: PoolJob, payload) => {
            received.push([job.key, str(payload)]);
          },
        }),
      );
      await settle(cluster, pool.dispatch('k', 'p'));
      await settle(cluster, pool.notify('k', 'q'));
      await until(cluster, () => received.length === 1, 'notify delivered', 1000);
      assert.deepEqual(received, [['k', 'q']]);
      await settle(cluster, pool.close());

      const other = await rota.pool.join('Q', FAST);
      const unsupported: string[] = [];
      other.events.on('notification:unsupported', (e) => unsupported.push(e.key));
      const w = await other.addWorker(log.handler('plain', { notify: false }));
      await settle(cluster, other.dispatch('k2', null));
      await settle(cluster, other.notify('k2', 'x'));
      await until(cluster, () => unsupported.length === 1, 'notification:unsupported', 1000);
      assert.deepEqual(unsupported, ['k2']);
      await run(cluster, 100);
      assert.equal(w.jobs().length, 1, 'the job keeps running');
      await settle(cluster, other.close());
    });
  });

  it('PO-22 a hasher always picking the last worker moves the job to a new worker: stop(rebalanced) before start', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.nodes[0]!.rota;
      const pool = await rota.pool.join('P', {
        ...FAST,
        placement: (_key, workers) => workers[workers.length - 1] as string,
      });
      const log = new JobLog();
      const w1 = await pool.addWorker(log.handler('w1'));
      await settle(cluster, pool.dispatch('k', 'payload'));
      assert.equal(w1.jobs().length, 1);
      const w2 = await pool.addWorker(log.handler('w2'));
      await until(cluster, () => w2.jobs().length === 1, 'the job runs on w2');
      assert.equal(w1.jobs().length, 0);
      const stop = log.of('stop', 'k', 'w1')[0]!;
      const start = log.of('start', 'k', 'w2')[0]!;
      assert.equal(stop.reason, 'rebalanced');
      assert.ok(stop.seq < start.seq, 'stop on w1 before start on w2');
      assert.equal(str(start.payload), 'payload');
      assert.equal(str(await pool.jobPayload('k')), 'payload');
      const owner = await rota.store.get(`${rota.context.keys.prefix('pool', 'P')}owners/k`);
      assert.equal(JSON.parse(new TextDecoder().decode(owner.kv!.value)).workerId, w2.id);
      assert.ok(start.token > stop.token, 'the new owner has a greater token');
      assert.equal(w2.jobs()[0]?.requeued, true);
      log.assertNoOverlap();
      await settle(cluster, pool.close());
    });
  });

  it('PO-23 a first start that throws makes dispatch reject HandlerError with the code and message; nothing remains', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.nodes[0]!.rota;
      const pool = await rota.pool.join('P', FAST);
      const log = new JobLog();
      await pool.addWorker(
        log.handler('w1', {
          start: () => {
            throw Object.assign(new Error('boom'), { code: 'E1' });
          },
        }),
      );
      const err = await rejectsWith(settle(cluster, pool.dispatch('k', 'p')), 'ROTA_HANDLER_FAILED');
      assert.equal(err.message, 'boom');
      assert.equal(err.detail.code, 'E1');
      const prefix = rota.context.keys.prefix('pool', 'P');
      assert.equal((await rota.store.get(`${prefix}jobs/k`)).kv, null);
      assert.equal((await rota.store.get(`${prefix}owners/k`)).kv, null);
      assert.deepEqual(await pool.jobKeys({ fresh: true }), []);
      await settle(
        cluster,
        pool.dispatch('k2', null, { wait: false }).catch(() => undefined),
      );
      await settle(cluster, pool.close());
    });
  });

  it('PO-25 stop and notify for a key a worker does not own never reach that worker', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const [a, b] = [cluster.nodes[0]!.rota, cluster.nodes[1]!.rota];
      const names = new Map<string, string>();
      const placement = (_key: string, workers: readonly string[]) =>
        workers.find((w) => names.get(w) === 'owner') ?? (workers[0] as string);
      const pa = await a.pool.join('P', { ...FAST, placement });
      const pb = await b.pool.join('P', { ...FAST, placement });
      const log = new JobLog();
      const other = await pa.addWorker(log.handler('other'));
      names.set(other.id, 'other');
      const owner = await pb.addWorker(log.handler('owner'));
      names.set(owner.id, 'owner');
      await settle(cluster, pa.dispatch('k', 'p'));
      await settle(cluster, pa.notify('k', 'n1', { wait: true }));
      assert.equal(await settle(cluster, pa.stopJob('k')), true);
      assert.equal(log.entries.filter((e) => e.worker === 'other').length, 0);
      assert.deepEqual(
        log.entries.map((e) => `${e.type}@${e.worker}`),
        ['start@owner', 'notify@owner', 'stop@owner'],
      );
      await settle(cluster, Promise.all([pa.close(), pb.close()]));
    });
  });

  it('PO-32 maxQueuedJobs is admission control: the third unstarted job gets ROTA_QUEUE_FULL until one starts', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const pool = await cluster.nodes[0]!.rota.pool.join('P', { ...FAST, maxQueuedJobs: 2 });
      await settle(cluster, pool.dispatch('a', null, { wait: false }));
      await settle(cluster, pool.dispatch('b', null, { wait: false }));
      await rejectsWith(settle(cluster, pool.dispatch('c', null, { wait: false })), 'ROTA_QUEUE_FULL');
      assert.deepEqual(await pool.jobKeys(), ['a', 'b']);
      const log = new JobLog();
      await pool.addWorker(log.handler('w1'));
      await until(cluster, () => log.of('start').length === 2, 'both queued jobs start');
      await settle(cluster, pool.dispatch('c', null));
      await settle(cluster, pool.dispatch('d', null, { wait: false }));
      await settle(cluster, pool.close());
    });
  });

  it('PO-33 with no worker, dispatch times out with ROTA_DISPATCH_TIMEOUT; the job stays and starts when a worker comes', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const pool = await cluster.nodes[0]!.rota.pool.join('P', FAST);
      await rejectsWith(settle(cluster, pool.dispatch('k', 'p', { timeout: 200 })), 'ROTA_DISPATCH_TIMEOUT');
      assert.deepEqual(await pool.jobKeys(), ['k']);
      const log = new JobLog();
      await pool.addWorker(log.handler('w1'));
      await until(cluster, () => log.of('start', 'k').length === 1, 'the job starts');
      await rejectsWith(settle(cluster, pool.dispatch('k', 'p')), 'ROTA_JOB_EXISTS');
      await settle(cluster, pool.close());
    });
  });

  it('PO-35 a start slower than ackGracePeriod is aborted, counts as failed, and is never running twice at once', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.nodes[0]!.rota;
      const pool = await rota.pool.join('P', FAST);
      let inStart = 0;
      let maxInStart = 0;
      const aborted: boolean[] = [];
      const log = new JobLog();
      const failed: number[] = [];
      pool.events.on('job:start-failed', (e) => failed.push(e.attempt));
      await pool.addWorker(
        log.handler('w1', {
          start: async (job) => {
            inStart++;
            maxInStart = Math.max(maxInStart, inStart);
            await new Promise<void>((resolve) =>
              rota.context.clock.setTimeout(resolve, 2 * FAST.ackGracePeriod),
            );
            aborted.push(job.signal.aborted);
            inStart--;
          },
        }),
      );
      const err = await rejectsWith(settle(cluster, pool.dispatch('k', null)), 'ROTA_HANDLER_FAILED');
      assert.equal(err.detail.code, 'ROTA_TIMEOUT');
      await run(cluster, 3 * FAST.ackGracePeriod);
      assert.deepEqual(aborted, [true], 'the signal aborted at ackGracePeriod');
      assert.equal(maxInStart, 1);
      assert.deepEqual(failed, [1]);
      assert.deepEqual(
        log.of('stop').map((e) => e.reason),
        ['leaseLost'],
        'what the late start started is stopped',
      );
      await settle(cluster, pool.close());
    });
  });

  it('PO-39 a stop that throws once: stopJob rejects HandlerError, the job stays stopping, then goes after the retry', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const pool = await cluster.nodes[0]!.rota.pool.join('P', FAST);
      let fail = true;
      const log = new JobLog();
      const stopFailed: string[] = [];
      pool.events.on('job:stop-failed', (e) => stopFailed.push(e.error.message));
      await pool.addWorker(
        log.handler('w1', {
          stop: () => {
            if (fail) {
              fail = false;
              throw Object.assign(new Error('not yet'), { code: 'BUSY' });
            }
          },
        }),
      );
      await settle(cluster, pool.dispatch('k', null));
      const err = await rejectsWith(settle(cluster, pool.stopJob('k')), 'ROTA_HANDLER_FAILED');
      assert.equal(err.message, 'not yet');
      assert.equal(err.detail.code, 'BUSY');
      assert.deepEqual(stopFailed, ['not yet']);
      assert.deepEqual(await pool.jobKeys(), ['k'], 'still stopping');
      await until(
        cluster,
        async () => (await pool.jobKeys()).length === 0,
        'deleted after the retried stop',
        5000,
      );
      assert.equal(log.of('stop').length, 1, 'the retried stop succeeded');
      await settle(cluster, pool.close());
    });
  });

  it('PO-40 bad keys, payloads, options and pool names are refused before any write; = and / in keys work', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.nodes[0]!.rota;
      const before = (await rota.store.status()).revision;
      await rejectsWith(rota.pool.join(' x'), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(rota.pool.join('P', { workerTtl: 0 }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(rota.pool.join('P', { ackGracePeriod: 50 }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(rota.pool.join('P', { colour: 'blue' } as never), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(rota.pool.join('P', { maxQueuedJobs: 1.5 }), 'ROTA_INVALID_ARGUMENT');
      assert.equal((await rota.store.status()).revision, before, 'a refused join writes nothing');
      const pool = await rota.pool.join('P', FAST);
      const log = new JobLog();
      await rejectsWith(pool.addWorker({ start: () => undefined } as never), 'ROTA_INVALID_ARGUMENT');
      await pool.addWorker(log.handler('w1'));
      const revision = (await rota.store.status()).revision;
      await rejectsWith(pool.dispatch(''), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(pool.dispatch('x'.repeat(600)), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(pool.dispatch('k', new Uint8Array(2 * 1024 * 1024)), 'ROTA_PAYLOAD_TOO_LARGE');
      await rejectsWith(pool.dispatch('k', 42 as never), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(pool.dispatch('k', null, { timeout: -1 }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(pool.stopJob(''), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(pool.notify('k', null, { wait: 'yes' } as never), 'ROTA_INVALID_ARGUMENT');
      assert.equal((await rota.store.status()).revision, revision, 'nothing was written');
      await settle(cluster, pool.dispatch('a=b/c', 'v'));
      assert.deepEqual(await pool.jobKeys(), ['a=b/c']);
      assert.equal(str(await pool.jobPayload('a=b/c')), 'v');
      assert.equal(log.of('start', 'a=b/c').length, 1);
      assert.equal(await settle(cluster, pool.stopJob('a=b/c')), true);
      await settle(cluster, pool.close());
    });
  });

  it('PO-42 notify with wait rejects HandlerError when notify throws, and ROTA_TIMEOUT when the entry expires unowned', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const pool = await cluster.nodes[0]!.rota.pool.join('P', { ...FAST, notifyTtl: 1000 });
      const log = new JobLog();
      const w1 = await pool.addWorker(
        log.handler('w1', {
          notify: () => {
            throw Object.assign(new Error('bad note'), { code: 'N1' });
          },
        }),
      );
      await settle(cluster, pool.dispatch('k', null));
      const err = await rejectsWith(
        settle(cluster, pool.notify('k', 'x', { wait: true })),
        'ROTA_HANDLER_FAILED',
      );
      assert.equal(err.message, 'bad note');
      assert.equal(err.detail.code, 'N1');
      // No owner for longer than notifyTtl: the entry expires.
      await settle(cluster, pool.removeWorker(w1));
      const expired: string[] = [];
      pool.events.on('notification:expired', (e) => expired.push(e.key));
      await rejectsWith(
        settle(cluster, pool.notify('k', 'late', { wait: true, timeout: 60_000 })),
        'ROTA_TIMEOUT',
      );
      assert.deepEqual(expired, ['k']);
      await rejectsWith(pool.notify('nope', 'x'), 'ROTA_JOB_NOT_FOUND');
      await settle(cluster, pool.close());
    });
  });

  it('a RequeueError from start retries after ackGracePeriod without failing the dispatch', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const pool = await cluster.nodes[0]!.rota.pool.join('P', FAST);
      let calls = 0;
      const log = new JobLog();
      await pool.addWorker(
        log.handler('w1', {
          start: () => {
            calls++;
            if (calls === 1) throw new RequeueError('not now');
          },
        }),
      );
      await settle(cluster, pool.dispatch('k', null));
      assert.equal(calls, 2);
      assert.equal(log.of('start').length, 1);
      await settle(cluster, pool.close());
    });
  });

  it('a notification whose handler throws RequeueError is delivered again after ackGracePeriod', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const pool = await cluster.nodes[0]!.rota.pool.join('P', FAST);
      const clock = cluster.clock!;
      const deliveries: number[] = [];
      const log = new JobLog();
      await pool.addWorker(
        log.handler('w1', {
          notify: () => {
            deliveries.push(clock.monotonic());
            if (deliveries.length === 1) throw new RequeueError('busy');
          },
        }),
      );
      await settle(cluster, pool.dispatch('k', null));
      await settle(cluster, pool.notify('k', text('again'), { wait: true }));
      assert.equal(deliveries.length, 2);
      assert.ok(deliveries[1]! - deliveries[0]! >= FAST.ackGracePeriod);
      await settle(cluster, pool.close());
    });
  });
});
