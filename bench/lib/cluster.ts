/**
 * Rota-only workloads across processes: pool failover and leader failover after a SIGKILL,
 * schedule fire lateness on a 3-node cluster, and the peak RSS of a worker process. Children are
 * bench/children/node.ts; times are `Date.now()` of this host, shared by every process.
 */
import { randomBytes } from 'node:crypto';
import { rotaPlace } from '../systems/rota.js';
import { type Child, startNode, stopAll } from './children.js';
import { Rota } from './rota.js';
import { percentile } from './stats.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const namespace = (what: string) => `bench-${what}-${randomBytes(4).toString('hex')}`;

/** Thrown when a run breaks a guarantee (a job twice, a slot twice, a task lost...). */
export class GuaranteeError extends Error {}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(10);
  }
}

// ------------------------------------------------------------------------------------------------
// Pool failover

export interface PoolFailoverRun {
  /** Kill → the last of the victim's jobs started on a survivor. */
  failoverMs: number;
  /** Kill → the first of them started again. */
  firstRestartMs: number;
  jobsMoved: number;
}

interface Execution {
  key: string;
  node: string;
  token: string;
  start: number;
  stopped: boolean;
}

function executions(children: Child[]): Execution[] {
  const out: Execution[] = [];
  for (const c of children) {
    const open = new Map<string, Execution>();
    for (const line of c.lines) {
      // START <key> <worker> <token> <ms> | STOP <key> <worker> <token> <reason> <ms>
      const [kind, key, , token, at] = line.split(' ');
      if (kind === 'START') {
        const e = { key: key!, node: c.name, token: token!, start: Number(at), stopped: false };
        open.set(`${key} ${token}`, e);
        out.push(e);
      } else if (kind === 'STOP') {
        const e = open.get(`${key} ${token}`);
        if (e) e.stopped = true;
      }
    }
  }
  return out;
}

/**
 * 3 processes × 2 workers run `jobs` pool jobs; each run SIGKILLs the process running the most,
 * times how long until every one of its jobs started on a survivor, checks that every job then
 * runs exactly once, and starts a replacement process for the next run.
 */
export async function poolFailover(
  serverUrl: string | undefined,
  engine: 'redis' | 'postgres' | 'sqlite' | 'etcd',
  options: { runs: number; workerTtl: number; jobs: number },
): Promise<PoolFailoverRun[]> {
  const place = rotaPlace(engine, serverUrl);
  const ns = namespace('pool');
  const env = { ROTA_STORE: place.url, ROTA_NAMESPACE: ns, ROTA_WORKER_TTL: String(options.workerTtl) };
  let live: Child[] = [];
  const dead: Child[] = [];
  let seq = 0;
  const rota = await Rota.connect({ store: place.url, namespace: ns, nodeId: 'bench-dispatcher' });
  try {
    live = await Promise.all([1, 2, 3].map(() => startNode(`p${++seq}`, 'pool', env)));
    const client = await rota.pool.join('P', { clientOnly: true });
    await sleep(500);
    const keys = Array.from({ length: options.jobs }, (_, i) => `job-${i}`);
    await Promise.all(keys.map((k) => client.dispatch(k, null, { wait: false })));

    /** Running executions on live processes, by key. */
    const running = () => {
      const byKey = new Map<string, Execution[]>();
      for (const e of executions(live)) {
        if (e.stopped) continue;
        byKey.set(e.key, [...(byKey.get(e.key) ?? []), e]);
      }
      return byKey;
    };
    const stable = () => {
      const r = running();
      return keys.every((k) => r.get(k)?.length === 1);
    };
    const checkOnce = (when: string) => {
      const r = running();
      const twice = keys.filter((k) => (r.get(k)?.length ?? 0) > 1);
      const none = keys.filter((k) => (r.get(k)?.length ?? 0) === 0);
      if (twice.length > 0 || none.length > 0)
        throw new GuaranteeError(
          `pool ${when}: ${twice.length} jobs run twice (${twice.slice(0, 5).join(', ')}), ${none.length} not at all (${none.slice(0, 5).join(', ')})`,
        );
    };
    const out: PoolFailoverRun[] = [];
    for (let run = 0; run < options.runs; run++) {
      await until(stable, 60_000, 'pool placement settles');
      await sleep(1000); // let a rebalance in flight finish
      await until(stable, 60_000, 'pool placement settles');
      checkOnce('before the kill');
      const r = running();
      const owned = (c: Child) => keys.filter((k) => r.get(k)?.[0]?.node === c.name);
      const victim = [...live].sort((a, b) => owned(b).length - owned(a).length)[0]!;
      const moved = owned(victim);
      const survivors = live.filter((c) => c !== victim);
      const from = new Map(survivors.map((c) => [c.name, c.lines.length]));
      const killedAt = Date.now();
      victim.kill('SIGKILL');
      await victim.exited;
      live = survivors;
      dead.push(victim);
      const restartedAt = new Map<string, number>();
      await until(
        () => {
          for (const c of survivors) {
            for (const line of c.lines.slice(from.get(c.name))) {
              const [kind, key, , , at] = line.split(' ');
              if (kind === 'START' && !restartedAt.has(key!)) restartedAt.set(key!, Number(at));
            }
          }
          return moved.every((k) => restartedAt.has(k));
        },
        30_000,
        `the killed process's ${moved.length} jobs restart`,
      );
      const times = moved.map((k) => restartedAt.get(k)! - killedAt);
      out.push({
        failoverMs: Math.max(...times),
        firstRestartMs: Math.min(...times),
        jobsMoved: moved.length,
      });
      await sleep(500);
      await until(stable, 30_000, 'pool placement settles after the kill');
      checkOnce('after the kill');
      if (run < options.runs - 1) live.push(await startNode(`p${++seq}`, 'pool', env));
    }
    // The store agrees: one owner record per job, none on a killed process.
    const prefix = `${rota.context.keys.prefix('pool', 'P')}owners/`;
    const { kvs } = await rota.store.range(prefix);
    const owners = kvs.map(
      (kv) => (JSON.parse(new TextDecoder().decode(kv.value)) as { nodeId: string }).nodeId,
    );
    if (kvs.length !== keys.length || owners.some((n) => dead.some((d) => d.name === n)))
      throw new GuaranteeError(`pool: ${kvs.length} owner records for ${keys.length} jobs after the runs`);
    await client.close();
    return out;
  } finally {
    await stopAll([...live, ...dead]);
    await rota.close().catch(() => undefined);
    await place.drop().catch(() => undefined);
  }
}

// ------------------------------------------------------------------------------------------------
// Leader failover

export interface LeaderFailoverRun {
  /** Kill of the leader's process → a survivor leads. */
  failoverMs: number;
}

/**
 * 3 processes campaign for one election with a dedicated lease of `ttl`; each run SIGKILLs the
 * leader, times the survivor's takeover, checks that exactly one survivor took over with a greater
 * fencing token, and starts a replacement candidate.
 */
export async function leaderFailover(
  serverUrl: string | undefined,
  engine: 'redis' | 'postgres' | 'sqlite' | 'etcd',
  options: { runs: number; ttl: number },
): Promise<LeaderFailoverRun[]> {
  const place = rotaPlace(engine, serverUrl);
  const env = {
    ROTA_STORE: place.url,
    ROTA_NAMESPACE: namespace('leader'),
    ROTA_ELECTION_TTL: String(options.ttl),
  };
  let seq = 0;
  let live: Child[] = [];
  const dead: Child[] = [];
  const leaderLines = (c: Child, from = 0) => c.lines.slice(from).filter((l) => l.startsWith('LEADER '));
  try {
    live = await Promise.all([1, 2, 3].map(() => startNode(`e${++seq}`, 'leader', env)));
    const out: LeaderFailoverRun[] = [];
    for (let run = 0; run < options.runs; run++) {
      await until(() => live.some((c) => leaderLines(c).length > 0), 30_000, 'a leader is elected');
      await sleep(300);
      const latest = live
        .flatMap((c) =>
          leaderLines(c).map((l) => ({ c, token: Number(l.split(' ')[2]), at: Number(l.split(' ')[3]) })),
        )
        .sort((a, b) => b.at - a.at)[0]!;
      const leader = latest.c;
      const survivors = live.filter((c) => c !== leader);
      const from = new Map(survivors.map((c) => [c.name, c.lines.length]));
      const killedAt = Date.now();
      leader.kill('SIGKILL');
      await leader.exited;
      live = survivors;
      dead.push(leader);
      const next = await Promise.race(
        survivors.map((c) => c.waitFor(/^LEADER /, 30_000, from.get(c.name)).then((line) => ({ c, line }))),
      );
      const [, , token, at] = next.line.split(' ');
      out.push({ failoverMs: Number(at) - killedAt });
      await sleep(500);
      const takeovers = survivors.flatMap((c) => leaderLines(c, from.get(c.name)));
      if (takeovers.length !== 1)
        throw new GuaranteeError(`election: ${takeovers.length} survivors took over after one kill`);
      if (!(Number(token) > latest.token))
        throw new GuaranteeError(`election: new token ${token} is not greater than ${latest.token}`);
      live.push(await startNode(`e${++seq}`, 'leader', env));
    }
    return out;
  } finally {
    await stopAll([...live, ...dead]);
    await place.drop().catch(() => undefined);
  }
}

// ------------------------------------------------------------------------------------------------
// Schedules

export interface ScheduleWindow {
  p50: number;
  p99: number;
  max: number;
  slots: number;
  duplicates: number;
  misses: number;
  skipped: number;
}

/**
 * `nodes` processes register the same `schedules` schedules `every` ms and start their runners.
 * After `warmUpMs`, `windows` consecutive windows of `windowMs` are measured: fire lateness
 * (startedAt − slotAt, store time, first attempts) of the slots due in each, and per slot the
 * number of runs started (the children's logs) and of run records (the store): a slot run twice is
 * a duplicate, a slot without a run (or recorded skipped) a miss.
 */
export async function scheduleLateness(
  serverUrl: string | undefined,
  engine: 'redis' | 'postgres' | 'sqlite' | 'etcd',
  options: {
    nodes: number;
    schedules: number;
    every: number;
    warmUpMs: number;
    windows: number;
    windowMs: number;
  },
  onProgress?: (label: string) => void,
): Promise<ScheduleWindow[]> {
  const place = rotaPlace(engine, serverUrl);
  const ns = namespace('schedules');
  const env = {
    ROTA_STORE: place.url,
    ROTA_NAMESPACE: ns,
    ROTA_SCHEDULES: String(options.schedules),
    ROTA_EVERY: String(options.every),
  };
  let children: Child[] = [];
  try {
    children = await Promise.all(
      Array.from({ length: options.nodes }, (_, i) => startNode(`s${i + 1}`, 'schedules', env)),
    );
    const begin = Date.now() + options.warmUpMs;
    const end = begin + options.windows * options.windowMs;
    onProgress?.(
      `warm-up ${options.warmUpMs / 1000} s, then ${options.windows} × ${options.windowMs / 1000} s`,
    );
    await sleep(end + options.every + 2000 - Date.now());
    await stopAll(children);
    const starts = new Map<string, number>();
    const delays = new Map<string, number>();
    for (const c of children) {
      for (const line of c.lines) {
        const [kind, name, slotAt, runId, delayMs] = line.split(' ');
        if (kind !== 'RUN') continue;
        const slot = `${name}@${slotAt}`;
        starts.set(slot, (starts.get(slot) ?? 0) + 1);
        if (!runId!.includes('.') && !delays.has(slot)) delays.set(slot, Number(delayMs));
      }
    }
    const reader = await Rota.connect({ store: place.url, namespace: ns, nodeId: 'bench-reader' });
    const windows: ScheduleWindow[] = Array.from({ length: options.windows }, () => ({
      p50: 0,
      p99: 0,
      max: 0,
      slots: 0,
      duplicates: 0,
      misses: 0,
      skipped: 0,
    }));
    const lateness: number[][] = windows.map(() => []);
    try {
      for (let i = 0; i < options.schedules; i++) {
        const name = `s${i}`;
        const info = await reader.schedules.get(name);
        const records = await reader.schedules.runs(name, { limit: 100_000 });
        const succeeded = new Map<number, number>();
        const skipped = new Set<number>();
        for (const r of records) {
          if (r.skipped) for (let t = r.skipped.from; t <= r.skipped.to; t += options.every) skipped.add(t);
          else if (r.status === 'succeeded') succeeded.set(r.slotAt, (succeeded.get(r.slotAt) ?? 0) + 1);
        }
        const first = info.anchor + Math.ceil((begin - info.anchor) / options.every) * options.every;
        for (let t = first; t < end; t += options.every) {
          const w = windows[Math.floor((t - begin) / options.windowMs)]!;
          const wi = windows.indexOf(w);
          w.slots++;
          const slot = `${name}@${t}`;
          const runs = Math.max(starts.get(slot) ?? 0, succeeded.get(t) ?? 0);
          if (runs > 1) w.duplicates++;
          if (runs === 0) {
            w.misses++;
            if (skipped.has(t)) w.skipped++;
          }
          const d = delays.get(slot);
          if (d !== undefined) lateness[wi]!.push(d);
        }
      }
    } finally {
      await reader.close();
    }
    windows.forEach((w, i) => {
      const l = lateness[i]!;
      w.p50 = percentile(l, 0.5);
      w.p99 = percentile(l, 0.99);
      w.max = l.length ? Math.max(...l) : Number.NaN;
    });
    return windows;
  } finally {
    await stopAll(children);
    await place.drop().catch(() => undefined);
  }
}

// ------------------------------------------------------------------------------------------------
// Worker RSS

export interface RssRun {
  peakRssMb: number;
  /** RSS once the worker had started and before any task arrived. */
  idleRssMb: number;
}

/**
 * A worker process (concurrency 10) drains `tasks` no-op tasks that this process enqueues in
 * chunks of 1 000; its peak RSS (`process.resourceUsage().maxRSS`) is read at the end. One fresh
 * process per run. Every task must complete exactly once.
 */
export async function workerRss(
  serverUrl: string | undefined,
  engine: 'redis' | 'postgres' | 'sqlite' | 'etcd',
  options: { runs: number; tasks: number },
): Promise<RssRun[]> {
  const place = rotaPlace(engine, serverUrl);
  const ns = namespace('rss');
  const producer = await Rota.connect({ store: place.url, namespace: ns, nodeId: 'bench-producer' });
  const children: Child[] = [];
  const report = async (c: Child) => {
    const from = c.lines.length;
    c.send('report');
    const [, processed, distinct, maxRss, rss] = (await c.waitFor(/^REPORT /, 10_000, from)).split(' ');
    return {
      processed: Number(processed),
      distinct: Number(distinct),
      maxRssKb: Number(maxRss),
      rssKb: Number(rss),
    };
  };
  try {
    const out: RssRun[] = [];
    for (let run = 0; run < options.runs; run++) {
      const queue = `rss-${run}`;
      const child = await startNode(`w${run}`, 'worker', {
        ROTA_STORE: place.url,
        ROTA_NAMESPACE: ns,
        ROTA_QUEUE: queue,
      });
      children.push(child);
      await sleep(300);
      const idle = await report(child);
      for (let i = 0; i < options.tasks; i += 1000) {
        const n = Math.min(1000, options.tasks - i);
        await producer.tasks.enqueueMany(
          queue,
          Array.from({ length: n }, (_, j) => ({ payload: { n: i + j } })),
        );
      }
      const deadline = Date.now() + 300_000;
      for (;;) {
        const c = (await producer.tasks.counts(queue))[queue];
        if ((c?.completed ?? 0) >= options.tasks) break;
        if (Date.now() > deadline)
          throw new Error(`worker RSS: ${c?.completed ?? 0} of ${options.tasks} completed`);
        await sleep(100);
      }
      const end = await report(child);
      const counts = (await producer.tasks.counts(queue))[queue];
      if (
        end.processed !== options.tasks ||
        end.distinct !== options.tasks ||
        counts?.completed !== options.tasks
      )
        throw new GuaranteeError(
          `worker RSS: ${end.processed} handler calls for ${end.distinct} distinct tasks, ${counts?.completed} completed, of ${options.tasks}`,
        );
      out.push({ peakRssMb: end.maxRssKb / 1024, idleRssMb: idle.rssKb / 1024 });
      await stopAll([child]);
    }
    return out;
  } finally {
    await stopAll(children);
    await producer.close().catch(() => undefined);
    await place.drop().catch(() => undefined);
  }
}
