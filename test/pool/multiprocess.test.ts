/**
 * Issue 11's multi-process test: 3 processes × 2 workers, 50 jobs; SIGKILL one process; every
 * job runs again on the survivors, and no key ever runs on two workers at once. Executions are
 * checked from the children's start/stop log in store time (the killed process's executions end
 * at the kill), and the final ownership records from the store. The recovery time is printed, not
 * asserted.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { Rota } from '../../src/rota.js';
import { storeSchemes } from '../../src/store/open.js';
import { type Child, sharedStoreUrl, spawnChild, uniqueNamespace } from '../support/multiprocess.js';
import { assert } from '../support/scenarios.js';

/**
 * The store(s): the shared default (SQLite when built in, else a server from the env), or with
 * `ROTA_POOL_MP_STORES=all` every multi-process store this build and environment offer.
 */
function stores(): string[] {
  if (process.env.ROTA_POOL_MP_STORES !== 'all') {
    const url = sharedStoreUrl();
    return url ? [url] : [];
  }
  const schemes = storeSchemes();
  const out: string[] = [];
  if (schemes.includes('sqlite:'))
    out.push(`sqlite:${join(mkdtempSync(join(tmpdir(), 'rota-mp-')), 'rota.db')}`);
  for (const [scheme, url] of [
    ['postgres:', process.env.ROTA_TEST_POSTGRES_URL],
    ['redis:', process.env.ROTA_TEST_REDIS_URL],
    ['etcd:', process.env.ROTA_TEST_ETCD_URL],
  ] as const) {
    if (url && schemes.includes(scheme)) out.push(url);
  }
  return out;
}

const WORKER_TTL = 3000;
const JOBS = 50;

interface Execution {
  key: string;
  worker: string;
  node: string;
  token: number;
  start: number;
  end: number;
}

/** Parse the children's START/STOP lines into executions (open ones end at `openEnd(node)`). */
function executions(children: Child[], openEnd: (node: string) => number): Execution[] {
  const out: Execution[] = [];
  for (const c of children) {
    const open = new Map<string, Execution>();
    for (const line of c.lines) {
      const [kind, key, worker, token, a, b] = line.split(' ');
      if (kind === 'START') {
        const e = {
          key: key!,
          worker: worker!,
          node: c.name,
          token: Number(token),
          start: Number(a),
          end: Number.POSITIVE_INFINITY,
        };
        open.set(`${key} ${token}`, e);
        out.push(e);
      } else if (kind === 'STOP') {
        const e = open.get(`${key} ${token}`);
        if (e) {
          e.end = Number(b);
          open.delete(`${key} ${token}`);
        }
      }
    }
    for (const e of open.values()) e.end = Math.min(e.end, openEnd(c.name));
  }
  return out;
}

const urls = stores();
if (urls.length === 0) {
  it(
    '3 processes × 2 workers run 50 jobs; SIGKILL of one moves its jobs without overlap',
    {
      skip: 'no multi-process store backend in this build (needs sqlite, postgres, redis or etcd)',
    },
    () => undefined,
  );
}
for (const store of urls) {
  it(
    `3 processes × 2 workers run 50 jobs; after SIGKILL of one, all run again on the survivors, never twice at once [${store.split(':')[0]}]`,
    {
      timeout: 120_000,
    },
    () => scenario(store),
  );
}

async function scenario(store: string): Promise<void> {
  const namespace = uniqueNamespace('mp-pool');
  const children = ['p1', 'p2', 'p3'].map((id) =>
    spawnChild(id, new URL('./children/pool-node.ts', import.meta.url).pathname, {
      ROTA_STORE: store,
      ROTA_NAMESPACE: namespace,
      ROTA_NODE_ID: id,
      ROTA_WORKER_TTL: String(WORKER_TTL),
      ROTA_WORKERS: '2',
    }),
  );
  const rota = await Rota.connect({ store, namespace, nodeId: 'dispatcher' });
  try {
    await Promise.all(children.map((c) => c.waitFor(/^READY /)));
    const client = await rota.pool.join('P', { clientOnly: true });
    await new Promise((r) => setTimeout(r, 500)); // every node sees the 6 workers
    await Promise.all(
      Array.from({ length: JOBS }, (_, i) => client.dispatch(`job-${i}`, String(i), { wait: false })),
    );
    const started = () =>
      new Set(
        children.flatMap((c) => c.lines.filter((l) => l.startsWith('START ')).map((l) => l.split(' ')[1])),
      );
    const deadline = Date.now() + 30_000;
    while (started().size < JOBS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(started().size, JOBS, 'every job started');
    await new Promise((r) => setTimeout(r, 1000)); // let the initial placement settle

    // Kill the process running the most jobs.
    const runningOn = (c: Child) =>
      executions([c], () => Number.POSITIVE_INFINITY).filter((e) => e.end === Number.POSITIVE_INFINITY);
    const victim = [...children].sort((a, b) => runningOn(b).length - runningOn(a).length)[0]!;
    const victimJobs = runningOn(victim).map((e) => e.key);
    const survivors = children.filter((c) => c !== victim);
    const linesBefore = new Map(survivors.map((c) => [c, c.lines.length]));
    victim.kill('SIGKILL');
    await victim.exited;
    const killedAt = await rota.store.now();
    const restarted = () =>
      new Set(
        survivors.flatMap((c) =>
          c.lines
            .slice(linesBefore.get(c))
            .filter((l) => l.startsWith('START '))
            .map((l) => l.split(' ')[1]),
        ),
      );
    const until = Date.now() + 30_000;
    while (victimJobs.some((k) => !restarted().has(k)) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(
      victimJobs.filter((k) => !restarted().has(k)),
      [],
      'every job of the killed process restarted',
    );
    await new Promise((r) => setTimeout(r, 1000));

    const all = executions(children, (node) => (node === victim.name ? killedAt : Number.POSITIVE_INFINITY));
    const byKey = new Map<string, Execution[]>();
    for (const e of all) byKey.set(e.key, [...(byKey.get(e.key) ?? []), e]);
    const overlaps: string[] = [];
    for (const [key, list] of byKey) {
      list.sort((a, b) => a.start - b.start);
      for (let i = 1; i < list.length; i++) {
        const prev = list[i - 1]!;
        const next = list[i]!;
        if (next.start < prev.end)
          overlaps.push(
            `${key}: ${next.worker}@${next.start} began before ${prev.worker} ended @${prev.end}`,
          );
        assert.ok(next.token > prev.token, `${key}: tokens increase`);
      }
    }
    assert.deepEqual(overlaps, [], 'no key ran twice at once');
    const running = all.filter((e) => e.end === Number.POSITIVE_INFINITY);
    assert.equal(running.length, JOBS, 'every job runs exactly once');
    assert.equal(new Set(running.map((e) => e.key)).size, JOBS);
    assert.ok(running.every((e) => e.node !== victim.name));

    // The ownership records agree: one owner per job, on a survivor, with the running token.
    const ownersPrefix = `${rota.context.keys.prefix('pool', 'P')}owners/`;
    const { kvs } = await rota.store.range(ownersPrefix);
    assert.equal(kvs.length, JOBS);
    const tokenOf = new Map(running.map((e) => [e.key, e.token]));
    for (const kv of kvs) {
      const key = decodeURIComponent(kv.key.slice(ownersPrefix.length));
      const owner = JSON.parse(new TextDecoder().decode(kv.value)) as { nodeId: string };
      assert.notEqual(owner.nodeId, victim.name);
      assert.equal(kv.createRevision, tokenOf.get(key), `${key}: the owner record carries the running token`);
    }
    const restartTimes = victimJobs.map((k) =>
      Math.min(...all.filter((e) => e.key === k && e.node !== victim.name).map((e) => e.start)),
    );
    const recovery = Math.max(...restartTimes) - killedAt;
    const firstRestart = Math.min(...restartTimes) - killedAt;
    console.log(
      `pool failover after SIGKILL: ${victimJobs.length} jobs of ${victim.name} restarted on the survivors ${firstRestart}–${recovery} ms after the kill (store time; workerTtl ${WORKER_TTL} ms, store ${store.split(':')[0]})`,
    );
    await client.close();
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => c.exited));
    await rota.store.delete(rota.context.keys.root, { prefix: true }).catch(() => undefined);
    await rota.close();
  }
}
