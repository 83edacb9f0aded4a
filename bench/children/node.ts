/**
 * One Rota node in its own process, for the benchmark's multi-process workloads. It reports on
 * stdout, one line per event, with `Date.now()` of this host (every process of the benchmark runs
 * on the same machine, so the parent compares these times with its own):
 *
 *   ROLE=pool      joins pool `P` with 2 workers:  READY, START <key> <worker> <token> <ms>,
 *                  STOP <key> <worker> <token> <reason> <ms>
 *   ROLE=leader    campaigns for election `E`:     READY, LEADER <nodeId> <token> <ms>
 *   ROLE=schedules registers N schedules every EVERY ms and starts its runner:
 *                  READY, RUN <name> <slotAt> <runId> <delayMs>
 *   ROLE=worker    works ROTA_QUEUE at concurrency 10 (tasks' payloads are `{ n }`); on a line
 *                  `report` on stdin: REPORT <handlerCalls> <distinctN> <maxRssKb> <rssNowKb>
 *
 *   node --import tsx bench/children/node.ts   (settings in the environment, see below)
 *
 * SIGTERM closes the node; SIGKILL is the crash the benchmark measures.
 */
import { createInterface } from 'node:readline';
import { Rota } from '../lib/rota.js';

const env = (name: string, fallback?: string): string => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`bench child: ${name} is not set`);
  return value;
};

const role = env('ROLE');
const nodeId = env('ROTA_NODE_ID');
const say = (line: string) => process.stdout.write(`${line}\n`);

const rota = await Rota.connect({
  store: env('ROTA_STORE'),
  namespace: env('ROTA_NAMESPACE'),
  nodeId,
  sessionTtl: Number(env('ROTA_SESSION_TTL', '10000')),
});
process.on('SIGTERM', () => {
  void rota.close().finally(() => process.exit(0));
});

if (role === 'pool') {
  const pool = await rota.pool.join('P', {
    workerTtl: Number(env('ROTA_WORKER_TTL')),
    ackGracePeriod: Number(env('ROTA_ACK_GRACE', '2000')),
  });
  for (let i = 0; i < 2; i++) {
    const label = `${nodeId}/w${i}`;
    await pool.addWorker({
      start(job) {
        say(`START ${job.key} ${label} ${job.token} ${Date.now()}`);
      },
      stop(job, reason) {
        say(`STOP ${job.key} ${label} ${job.token} ${reason} ${Date.now()}`);
      },
    });
  }
  say(`READY ${nodeId}`);
} else if (role === 'leader') {
  say(`READY ${nodeId}`);
  void rota.cluster.election('E', { ttl: Number(env('ROTA_ELECTION_TTL')) }).lead((leadership) => {
    say(`LEADER ${nodeId} ${leadership.token} ${Date.now()}`);
  });
} else if (role === 'schedules') {
  rota.events.on('run:started', (e) => say(`RUN ${e.name} ${e.slotAt} ${e.runId} ${e.delayMs}`));
  const count = Number(env('ROTA_SCHEDULES'));
  const every = Number(env('ROTA_EVERY'));
  for (let i = 0; i < count; i++) {
    await rota.schedules.register({ name: `s${i}`, every, keepRuns: 100_000 }, () => undefined);
  }
  await rota.schedules.start();
  say(`READY ${nodeId}`);
} else if (role === 'worker') {
  let processed = 0;
  const seen = new Set<number>();
  rota.tasks.work<{ n: number }>(
    env('ROTA_QUEUE'),
    (task) => {
      processed++;
      seen.add(task.payload.n);
    },
    { concurrency: Number(env('ROTA_CONCURRENCY', '10')) },
  );
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() === 'report') {
      const { maxRSS } = process.resourceUsage();
      say(`REPORT ${processed} ${seen.size} ${maxRSS} ${Math.round(process.memoryUsage.rss() / 1024)}`);
    }
  });
  say(`READY ${nodeId}`);
} else {
  throw new Error(`bench child: unknown ROLE ${role}`);
}
