/**
 * PostgreSQL queue benchmark with default durability.
 *
 *   node --import tsx bench/postgres-queue.ts [items=20000] [workers=10]
 *
 * Starts its own PostgreSQL (initdb in a temporary folder, 127.0.0.1, a free port) with the
 * server's default durability: fsync=on, synchronous_commit=on, full_page_writes=on, unlike the
 * test server (scripts/with-servers.mjs runs with fsync off). Then:
 *  1. throughput: `workers` concurrent workers on one store client, each looping claim(limit 10,
 *     start) + one settle of the batch (complete), until `items` items are done;
 *  2. depth: the latency of one claim(10) + settle at queue depths 1 000 and 100 000 (half of the
 *     deep queue delayed by an hour, at a higher priority, which a naive claim index would scan).
 * Prints the numbers and the server settings; stops the server and deletes its folder.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openStore } from '../src/store/open.js';
import type { NewItem, Store } from '../src/store/port.js';

const ITEMS = Number(process.argv[2] ?? 20_000);
const WORKERS = Number(process.argv[3] ?? 10);
const BATCH = 10;
const PG_BIN = process.env.ROTA_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const isRoot = process.getuid?.() === 0;
const asPg = isRoot ? ['runuser', '-u', 'postgres', '--'] : [];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function sh(cmd: string[]): void {
  const res = spawnSync(cmd[0] as string, cmd.slice(1), { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`${cmd.join(' ')} failed: ${res.stderr || res.stdout}`);
}

async function startServer(): Promise<{ url: string; stop: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'rota-bench-pg-'));
  chmodSync(dir, 0o755);
  const data = join(dir, 'data');
  if (isRoot) execFileSync('install', ['-d', '-o', 'postgres', '-g', 'postgres', data]);
  sh([
    ...asPg,
    join(PG_BIN, 'initdb'),
    '-D',
    data,
    '-A',
    'trust',
    '-U',
    'postgres',
    '-E',
    'UTF8',
    '--locale=C',
  ]);
  const port = await freePort();
  const args = [...asPg, join(PG_BIN, 'postgres'), '-D', data, '-p', String(port), '-k', data];
  args.push('-c', 'listen_addresses=127.0.0.1');
  const server = spawn(args[0] as string, args.slice(1), { stdio: 'ignore' });
  const stop = () => {
    // The postmaster runs under runuser: stop it through pg_ctl, then delete the folder.
    const cmd = [...asPg, join(PG_BIN, 'pg_ctl'), '-D', data, '-m', 'fast', 'stop'];
    spawnSync(cmd[0] as string, cmd.slice(1), { stdio: 'ignore' });
    if (server.exitCode === null) server.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  while (spawnSync(join(PG_BIN, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-q']).status !== 0) {
    if (Date.now() > deadline) {
      stop();
      throw new Error('the benchmark server did not start');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, stop };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;
}

async function enqueue(store: Store, queue: string, count: number, extra: Partial<NewItem> = {}, tag = 'i') {
  for (let i = 0; i < count; i += 1000) {
    const n = Math.min(1000, count - i);
    await store.enqueue(
      Array.from({ length: n }, (_, j) => ({
        id: `${queue}-${tag}${i + j}`,
        queue,
        payload: '{"n":1}',
        ...extra,
      })),
    );
  }
}

async function cycle(store: Store, queue: string, owner: string): Promise<number> {
  const { items } = await store.claim({ queue, owner, limit: BATCH, leaseTtl: 60_000, start: true });
  if (items.length === 0) return 0;
  await store.settle(
    items.map((it) => ({
      op: 'complete' as const,
      id: it.id,
      token: it.token as number,
      owner,
      result: null,
    })),
  );
  return items.length;
}

async function throughput(store: Store): Promise<void> {
  await enqueue(store, 'tp', ITEMS);
  const claimMs: number[] = [];
  let done = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: WORKERS }, async (_, w) => {
      const owner = `w${w}`;
      for (;;) {
        const t = performance.now();
        const n = await cycle(store, 'tp', owner);
        claimMs.push(performance.now() - t);
        if (n === 0) return;
        done += n;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `throughput: ${done} items claimed+completed by ${WORKERS} workers (claim ${BATCH}, settle the batch) ` +
      `in ${seconds.toFixed(2)} s = ${Math.round(done / seconds)} items/s; ` +
      `claim+settle round p50 ${percentile(claimMs, 50).toFixed(1)} ms, p99 ${percentile(claimMs, 99).toFixed(1)} ms`,
  );
}

/** Buffers one claim(10) touches (EXPLAIN ANALYZE of the claim function): its work, not its time. */
async function claimBuffers(url: string, queue: string): Promise<number> {
  const client = new pg.Client({ connectionString: url, options: '-c search_path=bench' });
  await client.connect();
  try {
    const explain = `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM q_claim($1, 'b', ${BATCH}, 60000, true, 'pending')`;
    await client.query(explain, [queue]);
    const res = await client.query(explain, [queue]);
    const plan = (res.rows[0] as { 'QUERY PLAN': { Plan: Record<string, number> }[] })['QUERY PLAN'][0]?.Plan;
    return (plan?.['Shared Hit Blocks'] ?? 0) + (plan?.['Shared Read Blocks'] ?? 0);
  } finally {
    await client.end();
  }
}

async function depth(store: Store, url: string): Promise<void> {
  for (const [queue, size] of [
    ['shallow', 1_000],
    ['deep', 100_000],
  ] as const) {
    const now = await store.now();
    await enqueue(store, queue, size / 2);
    // Delayed items at a higher priority: they sort first in a claim index that holds them.
    await enqueue(store, queue, size / 2, { priority: 5, runAt: now + 3_600_000 }, 'd');
    const claims: number[] = [];
    const settles: number[] = [];
    for (let i = 0; i < 40; i++) {
      const t = performance.now();
      const { items } = await store.claim({ queue, owner: 'd', limit: BATCH, leaseTtl: 60_000, start: true });
      const t2 = performance.now();
      if (items.length !== BATCH) throw new Error(`claimed ${items.length}, not ${BATCH}`);
      await store.settle(
        items.map((it) => ({ op: 'complete' as const, id: it.id, token: it.token as number, owner: 'd' })),
      );
      claims.push(t2 - t);
      settles.push(performance.now() - t2);
    }
    console.log(
      `depth ${size} (${size / 2} delayed, higher priority): claim(10) p50 ${percentile(claims, 50).toFixed(2)} ms ` +
        `p99 ${percentile(claims, 99).toFixed(2)} ms; settle(10) p50 ${percentile(settles, 50).toFixed(2)} ms; ` +
        `buffers per claim(10) ${await claimBuffers(url, queue)}`,
    );
  }
}

const server = await startServer();
process.once('SIGINT', () => {
  server.stop();
  process.exit(130);
});
try {
  const probe = new pg.Client({ connectionString: server.url });
  await probe.connect();
  const settings = await probe.query(
    "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method') ORDER BY name",
  );
  await probe.end();
  console.log(`server: ${settings.rows.map((r) => `${r.name}=${r.setting}`).join(', ')}`);
  const store = await openStore(server.url, { schema: 'bench', poolSize: WORKERS + 2 });
  try {
    await throughput(store);
    await depth(store, server.url);
  } finally {
    await store.close();
  }
} finally {
  server.stop();
}
