/**
 * The `rota` CLI, run in-process on the memory store (and as a real process for exit codes):
 * every command group with `--json`, human durations, JSON-lines bulk add, and bad input giving
 * one coded line, a non-zero exit and nothing written.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../../src/cli/program.js';
import { Rota } from '../../src/index.js';

const STORE = `memory:cli-${process.pid}`;
let rota: Rota;
let dir: string;

function sink() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return { stream, text: () => chunks.join('') };
}

async function cli(...argv: string[]) {
  const out = sink();
  const err = sink();
  const code = await runCli(['--store', STORE, ...argv], { stdout: out.stream, stderr: err.stream, env: {} });
  return { code, out: out.text(), err: err.text(), json: () => JSON.parse(out.text()) };
}

before(async () => {
  // A long-lived node keeps the memory engine (and a pool worker) alive between CLI calls.
  rota = await Rota.connect({ store: STORE, sessionTtl: 2000 });
  dir = mkdtempSync(join(tmpdir(), 'rota-cli-test-'));
});
after(async () => {
  await rota.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('tasks', () => {
  test('add with human durations, get, list, counts --json', async () => {
    const add = await cli(
      'tasks',
      'add',
      'mail',
      '{"to":"ada"}',
      '--priority',
      '7',
      '--delay',
      '1m',
      '--timeout',
      '30s',
      '--tags',
      'a,b',
      '--json',
    );
    assert.equal(add.code, 0, add.err);
    const { id } = add.json();
    const task = await rota.tasks.get(id);
    assert.deepEqual(task?.payload, { to: 'ada' });
    assert.equal(task?.priority, 7);
    assert.equal(task?.timeout, 30_000);
    assert.deepEqual(task?.tags, ['a', 'b']);
    assert.ok((task?.runAt ?? 0) - (task?.createdAt ?? 0) >= 59_000, 'delay 1m');

    const got = await cli('tasks', 'get', id, '--json');
    assert.equal(got.json().id, id);
    const human = await cli('tasks', 'get', id);
    assert.match(human.out, /state\s+pending/);

    const list = await cli('tasks', 'list', '--queue', 'mail', '--state', 'pending', '--json');
    assert.deepEqual(
      list.json().tasks.map((t: { id: string }) => t.id),
      [id],
    );
    const table = await cli('tasks', 'list', '--queue', 'mail');
    assert.match(table.out, /^ID\s+QUEUE\s+STATE/);
    assert.match(table.out, new RegExp(id));
    const counts = await cli('tasks', 'counts', '--queue', 'mail', '--json');
    assert.equal(counts.json().mail.pending, 1);
  });

  test('cancel, then retry as a new task', async () => {
    const { id } = await rota.tasks.enqueue('jobs', { n: 1 });
    const cancel = await cli('tasks', 'cancel', id, '--reason', 'test', '--json');
    assert.equal(cancel.code, 0, cancel.err);
    assert.equal(cancel.json().outcome, 'cancelled');
    const retry = await cli('tasks', 'retry', id, '--json');
    assert.equal(retry.json().id, `rt-${id}-1`);
    assert.equal((await rota.tasks.get(`rt-${id}-1`))?.state, 'pending');
    const again = await cli('tasks', 'retry', `rt-${id}-1`);
    assert.equal(again.code, 1);
    assert.match(again.err, /^rota: ROTA_INVALID_TRANSITION: /);
  });

  test('bulk add from a JSON-lines file; a bad line writes nothing', async () => {
    const good = join(dir, 'good.jsonl');
    writeFileSync(
      good,
      `${Array.from({ length: 2500 }, (_, i) => JSON.stringify({ payload: { i }, priority: i % 3 })).join('\n')}\n`,
    );
    const res = await cli('tasks', 'add', 'bulk', '--file', good, '--json');
    assert.equal(res.code, 0, res.err);
    assert.equal(res.json().length, 2500);
    assert.equal((await rota.tasks.counts('bulk')).bulk?.pending, 2500);

    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"payload":1}\n{"payload":2}\n{"payload":3,"priority":"high"}\n');
    const r = await cli('tasks', 'add', 'bulk-bad', '--file', bad);
    assert.equal(r.code, 2);
    assert.equal(
      r.err,
      'rota: ROTA_INVALID_ARGUMENT: file: line 3: priority must be an integer ≥ -2147483648\n',
    );
    assert.equal((await rota.tasks.listPage({ queue: 'bulk-bad' })).tasks.length, 0);
  });

  test('drain waits until the queue is empty', async () => {
    await rota.tasks.enqueueMany('drain-q', [{ payload: 1 }, { payload: 2 }, { payload: 3 }]);
    const worker = rota.tasks.work('drain-q', async () => {
      await new Promise((r) => setTimeout(r, 50));
      return 'ok';
    });
    try {
      const res = await cli('tasks', 'drain', 'drain-q', '--timeout', '10s', '--json');
      assert.equal(res.code, 0, res.err);
      assert.equal(res.json().drained, true);
      assert.equal((await rota.tasks.counts('drain-q'))['drain-q']?.completed, 3);
    } finally {
      await worker.close();
    }
  });

  test('redrive', async () => {
    await rota.tasks.configureQueue('rd-src', { maxAttempts: 1, deadLetter: 'rd-dlq' });
    await rota.tasks.enqueue('rd-src', 1);
    const [c] = await rota.tasks.claim('rd-src', { start: true });
    await c?.fail(new Error('x'), { retry: false });
    const res = await cli('tasks', 'redrive', 'rd-dlq', '--json');
    assert.deepEqual(res.json(), { redriven: 1 });
  });
});

describe('bad input: one coded line, non-zero exit, nothing written', () => {
  const cases: [string, string[], RegExp][] = [
    [
      'bad duration',
      ['tasks', 'add', 'bad-q', '1', '--delay', 'soon'],
      /^rota: ROTA_INVALID_ARGUMENT: delay: "soon" is not a duration/,
    ],
    [
      'bad JSON',
      ['tasks', 'add', 'bad-q', '{"a":'],
      /^rota: ROTA_INVALID_ARGUMENT: payload: is not valid JSON/,
    ],
    [
      'bad priority',
      ['tasks', 'add', 'bad-q', '1', '--priority', '1.5'],
      /^rota: ROTA_INVALID_ARGUMENT: priority: /,
    ],
    [
      'bad task id',
      ['tasks', 'add', 'bad-q', '1', '--id', 'no spaces please'],
      /^rota: ROTA_INVALID_ARGUMENT: /,
    ],
    [
      'bad state',
      ['tasks', 'list', '--state', 'sleeping'],
      /^rota: ROTA_INVALID_ARGUMENT: state: must be one of/,
    ],
    [
      'unknown command',
      ['tasks', 'frobnicate'],
      /^rota: ROTA_INVALID_ARGUMENT: unknown command 'frobnicate'/,
    ],
    [
      'unknown option',
      ['tasks', 'add', 'bad-q', '1', '--colour', 'red'],
      /^rota: ROTA_INVALID_ARGUMENT: unknown option '--colour'/,
    ],
    ['missing argument', ['tasks', 'get'], /^rota: ROTA_INVALID_ARGUMENT: missing required argument 'id'/],
  ];
  for (const [name, argv, pattern] of cases) {
    test(name, async () => {
      const r = await cli(...argv);
      assert.equal(r.code, 2);
      assert.match(r.err, pattern);
      assert.equal(r.err.trim().split('\n').length, 1, r.err);
      assert.equal(r.out, '');
      assert.equal((await rota.tasks.listPage({ queue: 'bad-q' })).tasks.length, 0);
    });
  }

  test('unknown ids and names are coded errors with exit 1', async () => {
    const t = await cli('tasks', 'get', 'missing');
    assert.equal(t.code, 1);
    assert.equal(t.err, 'rota: ROTA_TASK_NOT_FOUND: no task has id missing\n');
    const s = await cli('schedules', 'pause', 'missing');
    assert.equal(s.code, 1);
    assert.match(s.err, /^rota: ROTA_SCHEDULE_NOT_FOUND: /);
  });

  test('a real process: unknown store and bad duration exit non-zero, no database file created', () => {
    const db = join(dir, 'never.db');
    const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
    const run = (...args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', main, ...args], {
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...process.env, ROTA_STORE: `sqlite:${db}` },
      });
    const bad = run('tasks', 'add', 'q', '1', '--delay', '5 parsecs');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^rota: ROTA_INVALID_ARGUMENT: delay: /m);
    assert.equal(existsSync(db), false);
    const unknown = run('--store', 'nosuch://x', 'status');
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /^rota: ROTA_UNKNOWN_STORE: /m);
  });
});

describe('schedules, pool, locks, status', () => {
  test('schedules list, run-now, pause, resume, history', async () => {
    let runs = 0;
    await rota.schedules.register({ name: 'cli-s', every: 3_600_000 }, () => {
      runs++;
    });
    await rota.schedules.start();
    const list = await cli('schedules', 'list', '--json');
    assert.ok(list.json().some((s: { name: string }) => s.name === 'cli-s'));
    assert.match((await cli('schedules', 'list')).out, /cli-s\s+active/);
    const now = await cli('schedules', 'run-now', 'cli-s', '--json');
    assert.equal(now.json().kind, 'manual');
    for (let i = 0; i < 100 && runs === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(runs, 1);
    assert.equal((await cli('schedules', 'pause', 'cli-s', '--json')).json().state, 'paused');
    assert.equal((await rota.schedules.get('cli-s')).state, 'paused');
    assert.equal((await cli('schedules', 'resume', 'cli-s', '--json')).json().state, 'active');
    const history = await cli('schedules', 'history', 'cli-s', '--limit', '5', '--json');
    assert.ok(history.json().some((r: { kind: string }) => r.kind === 'manual'));
  });

  test('pool dispatch, jobs, workers, stop', async () => {
    const pool = await rota.pool.join('cli-pool', { workerTtl: 2000 });
    const worker = await pool.addWorker({ async start() {}, async stop() {} });
    const d = await cli(
      'pool',
      'dispatch',
      'cli-pool',
      'k1',
      'payload',
      '--wait',
      '--timeout',
      '10s',
      '--json',
    );
    assert.equal(d.code, 0, d.err);
    assert.equal(d.json().workerId, worker.id);
    const jobs = await cli('pool', 'jobs', 'cli-pool', '--json');
    assert.deepEqual(
      jobs.json().map((j: { key: string; nodeId: string }) => [j.key, j.nodeId]),
      [['k1', rota.nodeId]],
    );
    const workers = await cli('pool', 'workers', 'cli-pool', '--json');
    assert.deepEqual(workers.json()[0].jobs, ['k1']);
    const stop = await cli('pool', 'stop', 'cli-pool', 'k1');
    assert.equal(stop.code, 0, stop.err);
    assert.deepEqual(await pool.jobKeys({ fresh: true }), []);
    const missing = await cli('pool', 'stop', 'cli-pool', 'k1');
    assert.equal(missing.code, 1);
    assert.match(missing.err, /^rota: ROTA_JOB_NOT_FOUND: /);
  });

  test('locks and status', async () => {
    const lock = await rota.cluster.lock('cli-lock');
    try {
      const locks = await cli('locks', '--json');
      assert.deepEqual(
        locks.json().map((l: { name: string; token: number }) => [l.name, l.token]),
        [['cli-lock', lock.token]],
      );
      assert.match((await cli('locks')).out, /cli-lock\s+\S+\s+\d+/);
    } finally {
      await lock.release();
    }
    const status = await cli('status', '--json');
    const s = status.json();
    assert.ok(s.members.some((m: { nodeId: string }) => m.nodeId === rota.nodeId));
    assert.ok(Array.isArray(s.leaders));
    assert.match((await cli('status')).out, /MEMBERS[\s\S]*LEADERS[\s\S]*HOST DECISIONS/);
  });
});
