/**
 * `rota demo` (what `npm start` runs) as a real process tree: three node processes on a fresh
 * SQLite file. The test reads the dashboard URL it prints, fetches the dashboard and /metrics,
 * SIGKILLs the process that runs pool jobs and sees those jobs move to the survivors, then sends
 * SIGINT and checks a clean exit that removed the demo's temporary folder and left no process.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, test } from 'node:test';

const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
let demo: ChildProcess | null = null;
const pids: number[] = [];

after(() => {
  // Whatever happened, no process of this test outlives it.
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  demo?.kill('SIGKILL');
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve(fn()).catch(() => undefined);
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Job {
  key: string;
  nodeId: string | null;
}

test('rota demo: dashboard, metrics, a killed node’s work moves, clean Ctrl-C', {
  timeout: 90_000,
}, async () => {
  const { ROTA_STORE: _ignored, ...env } = process.env;
  demo = spawn(process.execPath, ['--import', 'tsx', main, 'demo', '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  let out = '';
  demo.stdout?.setEncoding('utf8').on('data', (c: string) => {
    out += c;
  });
  demo.stderr?.setEncoding('utf8').on('data', (c: string) => {
    out += c;
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    demo?.on('exit', (code, signal) => resolve({ code, signal })),
  );

  const url = await until('the dashboard URL', () => /dashboard: (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1]);
  const dbFile = /on sqlite:(\S+demo\.db)/.exec(out)?.[1];
  assert.ok(dbFile, out);
  const nodes = new Map<string, number>();
  for (const m of out.matchAll(/^ {2}(node-[a-c]) {2}pid (\d+) {2}metrics (\S+)$/gm))
    nodes.set(m[1] as string, Number(m[2]));
  assert.equal(nodes.size, 3, out);
  pids.push(...nodes.values());

  const page = await fetch(url);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<title>Rota dashboard<\/title>/);
  const childMetrics = /metrics (http:\S+\/metrics)/.exec(out)?.[1] as string;
  const metrics = await (await fetch(childMetrics)).text();
  assert.match(metrics, /# TYPE rota_task_claim_duration_ms histogram/);
  assert.match(await (await fetch(`${url}/metrics`)).text(), /rota_tasks\{queue="emails"/);

  // Wait until the nine pool jobs run, spread over the nodes, and tasks are being completed.
  const jobs = async () => (await (await fetch(`${url}/api/pools/streams/jobs`)).json()) as Job[];
  const spread = await until('9 owned pool jobs', async () => {
    const j = await jobs();
    return j.length === 9 && j.every((x) => x.nodeId) ? j : undefined;
  });
  await until('completed tasks', async () => {
    const c = (await (await fetch(`${url}/api/tasks/counts`)).json()) as Record<
      string,
      { completed: number }
    >;
    return (c.emails?.completed ?? 0) > 0 ? true : undefined;
  });

  // Kill the node that runs the most jobs; its jobs must move to the survivors.
  const counts = new Map<string, number>();
  for (const j of spread) counts.set(j.nodeId as string, (counts.get(j.nodeId as string) ?? 0) + 1);
  const [victim] = [...counts].sort((a, b) => b[1] - a[1])[0] as [string, number];
  process.kill(nodes.get(victim) as number, 'SIGKILL');
  const moved = await until(
    `${victim}'s jobs to move`,
    async () => {
      const j = await jobs();
      return j.length === 9 && j.every((x) => x.nodeId && x.nodeId !== victim) ? j : undefined;
    },
    30_000,
  );
  assert.ok(moved.every((j) => j.nodeId !== victim));
  await until('the demo to report the exit', () => (out.includes(`!! ${victim}`) ? true : undefined), 5000);
  const members = await until('the victim to leave the members', async () => {
    const s = (await (await fetch(`${url}/api/status`)).json()) as { members: { nodeId: string }[] };
    return s.members.some((m) => m.nodeId === victim) ? undefined : s.members;
  });
  assert.ok(members.length >= 2);

  demo.kill('SIGINT');
  const exit = await exited;
  assert.equal(exit.code, 0, out);
  assert.match(out, /demo stopped cleanly/);
  assert.equal(existsSync(dirname(dbFile)), false, 'the temporary folder is removed');
  for (const pid of nodes.values()) assert.equal(alive(pid), false, `pid ${pid} still alive`);
});
