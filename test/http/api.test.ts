/**
 * The HTTP API over a node on the memory store: every endpoint group, schema validation (400 with
 * a coded body and nothing written), unknown routes and ids (404), the bearer token (401), body
 * limits (413), secrets kept out of logs, the OpenAPI document, metrics and server-sent events.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createLogger } from '../../src/http/log.js';
import { buildServer, startServer } from '../../src/http/server.js';
import { Rota } from '../../src/index.js';

let rota: Rota;
let app: FastifyInstance;
let seq = 0;
const store = () => `memory:http-${process.pid}-${++seq}`;

async function call(method: 'GET' | 'POST', url: string, payload?: unknown) {
  const res = await app.inject({
    method,
    url,
    ...(payload !== undefined ? { payload: payload as object } : {}),
  });
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined, headers: res.headers };
}

before(async () => {
  rota = await Rota.connect({ store: store(), sessionTtl: 2000 });
  ({ app } = await buildServer(rota));
});
after(async () => {
  await app.close();
  await rota.close();
});

describe('tasks', () => {
  test('add, get, list, counts, cancel, retry', async () => {
    const add = await call('POST', '/api/tasks', {
      queue: 'mail',
      payload: { to: 'ada' },
      priority: 5,
      tags: ['x'],
    });
    assert.equal(add.status, 201);
    assert.equal(add.body.status, 'created');
    const id = add.body.id as string;

    const got = await call('GET', `/api/tasks/${id}`);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body.payload, { to: 'ada' });
    assert.equal(got.body.priority, 5);
    assert.equal(got.body.state, 'pending');

    const list = await call('GET', '/api/tasks?queue=mail&state=pending');
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.body.tasks.map((t: { id: string }) => t.id),
      [id],
    );
    const counts = await call('GET', '/api/tasks/counts?queue=mail');
    assert.equal(counts.body.mail.pending, 1);

    const early = await call('POST', `/api/tasks/${id}/retry`);
    assert.equal(early.status, 409);
    assert.equal(early.body.code, 'ROTA_INVALID_TRANSITION');

    const cancel = await call('POST', `/api/tasks/${id}/cancel`, { reason: 'changed my mind' });
    assert.equal(cancel.status, 200);
    assert.equal(cancel.body.state, 'completed');
    assert.equal(cancel.body.outcome, 'cancelled');

    const retry = await call('POST', `/api/tasks/${id}/retry`);
    assert.equal(retry.status, 201);
    assert.equal(retry.body.id, `rt-${id}-1`);
    const copy = await rota.tasks.get(`rt-${id}-1`);
    assert.deepEqual(copy?.payload, { to: 'ada' });
    assert.equal(copy?.priority, 5);
    assert.equal(copy?.state, 'pending');
    assert.equal((await call('POST', `/api/tasks/${id}/retry`)).body.id, `rt-${id}-2`);
  });

  test('batch add is all or nothing', async () => {
    const ok = await call('POST', '/api/tasks/batch', {
      queue: 'batch',
      items: [{ payload: 1 }, { payload: 2 }],
    });
    assert.equal(ok.status, 201);
    assert.equal(ok.body.length, 2);
    const bad = await call('POST', '/api/tasks/batch', {
      queue: 'batch',
      items: [{ payload: 3 }, { payload: 4, id: 'bad id!' }],
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'ROTA_INVALID_ARGUMENT');
    assert.equal((await rota.tasks.counts('batch')).batch?.pending, 2);
  });

  test('schema violations → 400 coded, nothing written', async () => {
    for (const body of [
      { queue: 'v', priority: 'high' },
      { queue: 'v', surprise: true },
      { payload: 1 },
      { queue: '', payload: 1 },
      { queue: 'v', delay: -5 },
    ]) {
      const res = await call('POST', '/api/tasks', body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.code, 'ROTA_INVALID_ARGUMENT');
      assert.equal(typeof res.body.message, 'string');
    }
    const q = await call('GET', '/api/tasks?state=sleeping');
    assert.equal(q.status, 400);
    assert.equal(q.body.code, 'ROTA_INVALID_ARGUMENT');
    const bad = await app.inject({
      method: 'POST',
      url: '/api/tasks',
      payload: '{"queue":',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(bad.statusCode, 400);
    assert.equal(JSON.parse(bad.body).code, 'ROTA_INVALID_ARGUMENT');
    assert.equal((await rota.tasks.listPage({ queue: 'v' })).tasks.length, 0);
  });

  test('unknown task → 404 ROTA_TASK_NOT_FOUND; unknown route → 404 ROTA_ROUTE_NOT_FOUND', async () => {
    const t = await call('GET', '/api/tasks/nope');
    assert.equal(t.status, 404);
    assert.equal(t.body.code, 'ROTA_TASK_NOT_FOUND');
    const r = await call('GET', '/api/nothing-here');
    assert.equal(r.status, 404);
    assert.deepEqual(Object.keys(r.body).sort(), ['code', 'message']);
    assert.equal(r.body.code, 'ROTA_ROUTE_NOT_FOUND');
  });

  test('redrive moves dead letters back', async () => {
    await rota.tasks.configureQueue('dl-src', { maxAttempts: 1, deadLetter: 'dl-dlq' });
    const { id } = await rota.tasks.enqueue('dl-src', { n: 1 });
    const [claimed] = await rota.tasks.claim('dl-src', { start: true });
    assert.ok(claimed);
    await claimed.fail(new Error('boom'), { retry: false });
    const res = await call('POST', '/api/queues/dl-dlq/redrive', {});
    assert.equal(res.status, 200);
    assert.equal(res.body.redriven, 1);
    const back = await rota.tasks.listPage({ queue: 'dl-src', state: 'pending' });
    assert.equal(back.tasks.length, 1);
    assert.notEqual(back.tasks[0]?.id, id);
  });
});

describe('schedules, pool, locks, status', () => {
  test('schedules: list, run-now, pause, resume, history, unknown', async () => {
    let runs = 0;
    await rota.schedules.register({ name: 'tick', every: 3_600_000 }, () => {
      runs++;
    });
    await rota.schedules.start();
    const list = await call('GET', '/api/schedules');
    assert.equal(list.status, 200);
    assert.ok(list.body.some((s: { name: string }) => s.name === 'tick'));

    const now = await call('POST', '/api/schedules/tick/run-now');
    assert.equal(now.status, 202);
    assert.equal(now.body.kind, 'manual');
    for (let i = 0; i < 100 && runs === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(runs, 1);

    const paused = await call('POST', '/api/schedules/tick/pause');
    assert.equal(paused.body.state, 'paused');
    assert.equal(paused.body.nextRunAt, null);
    assert.equal((await rota.schedules.get('tick')).state, 'paused');
    const resumed = await call('POST', '/api/schedules/tick/resume');
    assert.equal(resumed.body.state, 'active');

    let history = await call('GET', '/api/schedules/tick/runs?limit=5');
    for (let i = 0; i < 50 && !history.body.some((r: { status: string }) => r.status === 'succeeded'); i++) {
      await new Promise((r) => setTimeout(r, 20));
      history = await call('GET', '/api/schedules/tick/runs?limit=5');
    }
    assert.equal(history.status, 200);
    assert.ok(
      history.body.some(
        (r: { kind: string; status: string }) => r.kind === 'manual' && r.status === 'succeeded',
      ),
    );

    const missing = await call('POST', '/api/schedules/none/pause');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.code, 'ROTA_SCHEDULE_NOT_FOUND');
  });

  test('pool: dispatch, jobs, workers, stop', async () => {
    const pool = await rota.pool.join('p1', { workerTtl: 2000 });
    const started: string[] = [];
    const worker = await pool.addWorker({
      async start(job) {
        started.push(job.key);
      },
      async stop() {},
    });
    const d = await call('POST', '/api/pools/p1/jobs', {
      key: 'job-1',
      payload: 'hello',
      wait: true,
      timeout: 5000,
    });
    assert.equal(d.status, 201);
    assert.equal(d.body.key, 'job-1');
    assert.deepEqual(started, ['job-1']);
    const jobs = await call('GET', '/api/pools/p1/jobs');
    assert.equal(jobs.body[0].workerId, worker.id);
    assert.equal(jobs.body[0].nodeId, rota.nodeId);
    const workers = await call('GET', '/api/pools/p1/workers');
    assert.deepEqual(workers.body[0].jobs, ['job-1']);
    assert.deepEqual((await call('GET', '/api/pools')).body, ['p1']);
    const dup = await call('POST', '/api/pools/p1/jobs', { key: 'job-1' });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.code, 'ROTA_JOB_EXISTS');
    const stop = await call('POST', '/api/pools/p1/jobs/job-1/stop');
    assert.equal(stop.status, 200);
    assert.deepEqual(await pool.jobKeys({ fresh: true }), []);
    const again = await call('POST', '/api/pools/p1/jobs/job-1/stop');
    assert.equal(again.status, 404);
    assert.equal(again.body.code, 'ROTA_JOB_NOT_FOUND');
  });

  test('locks and status', async () => {
    const lock = await rota.cluster.lock('reports');
    try {
      const locks = await call('GET', '/api/locks');
      assert.deepEqual(
        locks.body.map((l: { name: string; nodeId: string; token: number }) => [l.name, l.nodeId, l.token]),
        [['reports', rota.nodeId, lock.token]],
      );
    } finally {
      await lock.release();
    }
    assert.deepEqual((await call('GET', '/api/locks')).body, []);
    await rota.hosts.add('web', { max: 1 });
    let status = await call('GET', '/api/status');
    for (let i = 0; i < 100 && status.body.hosts[0]?.hosts.length !== 1; i++) {
      await new Promise((r) => setTimeout(r, 20));
      status = await call('GET', '/api/status');
    }
    assert.equal(status.status, 200);
    assert.deepEqual(
      status.body.members.map((m: { nodeId: string }) => m.nodeId),
      [rota.nodeId],
    );
    assert.deepEqual(status.body.hosts, [
      {
        namespace: 'web',
        hosts: [rota.nodeId],
        leader: rota.nodeId,
        decidedAt: status.body.hosts[0].decidedAt,
      },
    ]);
    assert.ok(status.body.leaders.some((l: { name: string }) => l.name === 'rota:hosts'));
  });
});

describe('documents', () => {
  test('OpenAPI document at /openapi.json matches docs/openapi.json', async () => {
    const res = await call('GET', '/openapi.json');
    assert.equal(res.status, 200);
    assert.equal(res.body.openapi, '3.0.3');
    assert.ok(res.body.paths['/api/tasks'].post.requestBody);
    assert.ok(res.body.paths['/api/tasks/{id}'].get.responses['404']);
    const onDisk = JSON.parse(readFileSync(new URL('../../docs/openapi.json', import.meta.url), 'utf8'));
    assert.deepEqual(onDisk, res.body, 'regenerate with: npx tsx scripts/gen-openapi.ts');
  });

  test('/metrics exposes task gauges and the claim/settle histograms', async () => {
    await rota.tasks.enqueue('metered', 1);
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(res.body, /rota_tasks\{queue="metered",state="pending"\} 1/);
    for (const name of [
      'rota_task_claim_duration_ms',
      'rota_task_settle_duration_ms',
      'rota_schedule_delay_ms',
      'rota_schedule_skipped_slots_total',
      'rota_leader_changes_total',
      'rota_lease_renew_failures_total',
      'rota_pool_rebalances_total',
      'rota_pool_start_failures_total',
    ]) {
      assert.match(res.body, new RegExp(`# TYPE ${name} `), name);
    }
  });
});

describe('auth, limits and logs', () => {
  test('a configured token is required: 401 without it, 200 with header or access_token', async () => {
    const node = await Rota.connect({ store: store(), sessionTtl: 2000 });
    const lines: string[] = [];
    const logger = createLogger({
      destination: new Writable({
        write(chunk, _enc, cb) {
          lines.push(String(chunk));
          cb();
        },
      }),
    });
    const { app: secured } = await buildServer(node, { token: 's3cret-token-42', logger });
    try {
      const none = await secured.inject({ method: 'GET', url: '/api/status' });
      assert.equal(none.statusCode, 401);
      assert.equal(JSON.parse(none.body).code, 'ROTA_UNAUTHORIZED');
      const wrong = await secured.inject({
        method: 'GET',
        url: '/api/status',
        headers: { authorization: 'Bearer nope-nope-nope' },
      });
      assert.equal(wrong.statusCode, 401);
      const missingRoute = await secured.inject({ method: 'GET', url: '/api/unknown' });
      assert.equal(missingRoute.statusCode, 401, 'auth runs before routing, so nothing leaks');
      const good = await secured.inject({
        method: 'GET',
        url: '/api/status',
        headers: { authorization: 'Bearer s3cret-token-42' },
      });
      assert.equal(good.statusCode, 200);
      const query = await secured.inject({ method: 'GET', url: '/api/locks?access_token=s3cret-token-42' });
      assert.equal(query.statusCode, 200);
      const log = lines.join('');
      assert.match(log, /api\/locks\?access_token=\[redacted\]/);
      assert.doesNotMatch(log, /s3cret-token-42/);
    } finally {
      await secured.close();
      await node.close();
    }
  });

  test('a non-loopback listener without a token is refused', async () => {
    await assert.rejects(buildServer(rota, { host: '0.0.0.0' }), { code: 'ROTA_INVALID_ARGUMENT' });
  });

  test('bodies over bodyLimit → 413 ROTA_PAYLOAD_TOO_LARGE', async () => {
    const node = await Rota.connect({ store: store(), sessionTtl: 2000 });
    const { app: small } = await buildServer(node, { bodyLimit: 1024 });
    try {
      const res = await small.inject({
        method: 'POST',
        url: '/api/tasks',
        payload: { queue: 'big', payload: 'x'.repeat(4096) },
      });
      assert.equal(res.statusCode, 413);
      assert.equal(JSON.parse(res.body).code, 'ROTA_PAYLOAD_TOO_LARGE');
      assert.equal((await node.tasks.listPage({ queue: 'big' })).tasks.length, 0);
    } finally {
      await small.close();
      await node.close();
    }
  });
});

describe('server-sent events', () => {
  test('task and schedule changes arrive on /api/events', async () => {
    const node = await Rota.connect({ store: store(), sessionTtl: 2000 });
    const server = await startServer(node, { port: 0, liveInterval: 50 });
    const ac = new AbortController();
    try {
      const res = await fetch(`${server.url}/api/events`, { signal: ac.signal });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      let text = '';
      const read = async (until: RegExp) => {
        const deadline = Date.now() + 5000;
        while (!until.test(text) && Date.now() < deadline) {
          const { value, done } = await reader.read();
          if (done) break;
          text += new TextDecoder().decode(value);
        }
        return until.test(text);
      };
      assert.ok(await read(/event: hello/));
      // Give the watches a moment to start before writing.
      await new Promise((r) => setTimeout(r, 200));
      await node.tasks.enqueue('live', { n: 1 });
      assert.ok(await read(/event: tasks\ndata: \{[^\n]*"queues":\["live"\]/), text);
      await node.schedules.register({ name: 'live-s', every: 3_600_000 });
      assert.ok(await read(/event: schedules/), text);
    } finally {
      ac.abort();
      await server.close();
      await node.close();
    }
  });
});
