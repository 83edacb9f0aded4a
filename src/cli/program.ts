/**
 * The `rota` command line (commander). Every command checks its arguments before it opens the
 * store, so bad input prints one coded line (`rota: ROTA_INVALID_ARGUMENT: …`), exits non-zero
 * and writes nothing. Read commands take `--json`. See docs/cli.md.
 */
import { readFileSync } from 'node:fs';
import { SingleBar } from 'cli-progress';
import { Command, CommanderError, Option } from 'commander';
import { silentLogger } from '../core/logger.js';
import { isRotaError, RotaError, UnknownStoreError } from '../errors.js';
import { type AddTaskInput, Admin, checkTaskState, ENQUEUE_OPTION_KEYS } from '../http/admin.js';
import { Rota } from '../rota.js';
import { DEFAULT_EMBEDDED_STORE, storeSchemes } from '../store/open.js';
import { checkName, invalid } from '../validate.js';
import { parseDuration, parseInteger, parseList, parsePayload, span, table, when } from './format.js';

/** Where the CLI writes, and the environment it reads (tests pass their own). */
export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

/** Options every command accepts. */
export interface GlobalOptions {
  store?: string;
  namespace?: string;
  json?: boolean;
}

/** The store URL a command uses: `--store`, else `ROTA_STORE`, else the embedded SQLite file. */
export function storeUrl(opts: GlobalOptions, env: NodeJS.ProcessEnv): string {
  const url = opts.store ?? env.ROTA_STORE ?? DEFAULT_EMBEDDED_STORE;
  const scheme = /^([a-z][a-z0-9+.-]*:)/i.exec(url)?.[1]?.toLowerCase();
  if (!scheme || !storeSchemes().includes(scheme)) {
    throw new UnknownStoreError(
      `unknown store ${JSON.stringify(url)}; schemes: ${storeSchemes().join(', ')}`,
      {
        detail: { field: 'store' },
      },
    );
  }
  return url;
}

/** Open a short-lived client node, run `fn` with an Admin over it, always close. */
async function withAdmin<T>(opts: GlobalOptions, io: CliIo, fn: (admin: Admin) => Promise<T>): Promise<T> {
  const store = storeUrl(opts, io.env);
  const namespace = opts.namespace ?? io.env.ROTA_NAMESPACE;
  if (namespace !== undefined) checkName('namespace', namespace);
  const rota = await Rota.connect({
    store,
    ...(namespace !== undefined ? { namespace } : {}),
    labels: { role: 'cli' },
    logger: silentLogger,
    // A CLI call is a visitor: it must not take over the converger for its few hundred ms.
    tasks: { converger: false },
  });
  const admin = new Admin(rota);
  try {
    return await fn(admin);
  } finally {
    await admin.close();
    await rota.close();
  }
}

function print(io: CliIo, opts: GlobalOptions, value: unknown, human: () => string): void {
  io.stdout.write(opts.json ? `${JSON.stringify(value, null, 2)}\n` : human());
}

/** A progress bar on stderr, drawn only on a terminal (scripts and tests see nothing). */
function progressBar(io: CliIo, label: string): SingleBar {
  return new SingleBar({
    stream: io.stderr as NodeJS.WritableStream as never,
    format: `${label} [{bar}] {value}/{total} {percentage}% | eta {eta}s`,
    hideCursor: true,
    clearOnComplete: false,
  });
}

/** Enqueue options given as flags. */
interface AddFlags {
  id?: string;
  priority?: string;
  delay?: string;
  maxAttempts?: string;
  timeout?: string;
  tags?: string;
  dedupKey?: string;
  deadLetter?: string;
  file?: string;
}

function addInputFromFlags(flags: AddFlags): AddTaskInput {
  const input: AddTaskInput = {};
  if (flags.id !== undefined) input.id = flags.id;
  if (flags.priority !== undefined)
    input.priority = parseInteger('priority', flags.priority, -(2 ** 31), 2 ** 31 - 1);
  if (flags.delay !== undefined) input.delay = parseDuration('delay', flags.delay);
  if (flags.maxAttempts !== undefined) input.maxAttempts = parseInteger('max-attempts', flags.maxAttempts, 1);
  if (flags.timeout !== undefined) input.timeout = parseDuration('timeout', flags.timeout);
  if (flags.tags !== undefined) input.tags = parseList(flags.tags).map((t) => checkName('tags', t));
  if (flags.dedupKey !== undefined) input.dedupKey = checkName('dedup-key', flags.dedupKey);
  if (flags.deadLetter !== undefined) input.deadLetter = checkName('dead-letter', flags.deadLetter);
  return input;
}

const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Read a JSON-lines file of tasks: each line an object `{ payload, id?, priority?, delay?, … }`
 * (durations in ms). Every line is checked before anything is sent.
 */
export function readTaskLines(path: string): AddTaskInput[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    invalid('file', `cannot read ${path}: ${(err as Error).message}`);
  }
  const items: AddTaskInput[] = [];
  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      invalid('file', `line ${i + 1}: not valid JSON`, { line: i + 1 });
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      invalid('file', `line ${i + 1}: must be an object like {"payload": …}`, { line: i + 1 });
    }
    const item = value as Record<string, unknown>;
    for (const key of Object.keys(item)) {
      if (key !== 'payload' && !(ENQUEUE_OPTION_KEYS as readonly string[]).includes(key)) {
        invalid('file', `line ${i + 1}: unknown field "${key}"`, { line: i + 1 });
      }
    }
    const intField = (k: string, min: number) => {
      const v = item[k];
      if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)) {
        invalid('file', `line ${i + 1}: ${k} must be an integer ≥ ${min}`, { line: i + 1 });
      }
    };
    intField('priority', -(2 ** 31));
    intField('delay', 0);
    intField('runAt', 0);
    intField('maxAttempts', 1);
    if (item.id !== undefined && (typeof item.id !== 'string' || !ID_PATTERN.test(item.id))) {
      invalid('file', `line ${i + 1}: id must match ${ID_PATTERN}`, { line: i + 1 });
    }
    items.push(item as AddTaskInput);
  }
  if (items.length === 0) invalid('file', `${path} has no tasks`);
  return items;
}

/** Build the program. `io` is where it writes. */
export function buildProgram(io: CliIo): Command {
  const program = new Command('rota')
    .description('Rota: a distributed job scheduler for Node.js')
    .version('0.1.0')
    .addOption(new Option('--store <url>', 'store URL (env ROTA_STORE; default the embedded SQLite file)'))
    .addOption(new Option('--namespace <ns>', 'cluster namespace (env ROTA_NAMESPACE; default "default")'))
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      // Commander's own usage errors become one coded line like every other failure.
      outputError: () => undefined,
    })
    .showSuggestionAfterError(true);

  const g = (cmd: Command): GlobalOptions => cmd.optsWithGlobals() as GlobalOptions;
  const json = () => new Option('--json', 'print JSON');

  // --- start / demo
  program
    .command('start')
    .description('run a node: load modules, serve the HTTP API, dashboard and metrics until Ctrl-C')
    .option(
      '-m, --module <path...>',
      'module(s) whose default export receives the node (registers schedules, workers, pools)',
    )
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: any free port)', '7420')
    .option('--token <token>', 'bearer token (env ROTA_TOKEN); required when --host is not loopback')
    .option('--node-id <id>', 'stable node id')
    .option('--session-ttl <duration>', 'session lease TTL', '10s')
    .option('--log-level <level>', 'pino level: debug, info, warn, error, silent', 'info')
    .option('--no-dashboard', 'do not serve the dashboard')
    .option('--port-fallback', 'if the port is taken, use a free one')
    .action(async (_opts, cmd: Command) => {
      const o = cmd.optsWithGlobals();
      const { runStart } = await import('./start.js');
      await runStart(
        {
          store: storeUrl(o, io.env),
          namespace: o.namespace ?? io.env.ROTA_NAMESPACE,
          modules: o.module ?? [],
          host: o.host,
          port: parseInteger('port', o.port, 0, 65535),
          token: o.token ?? io.env.ROTA_TOKEN,
          nodeId: o.nodeId,
          sessionTtl: parseDuration('session-ttl', o.sessionTtl),
          logLevel: o.logLevel,
          dashboard: o.dashboard,
          portFallback: o.portFallback ?? false,
        },
        io,
      );
    });

  program
    .command('demo')
    .description('three nodes on the embedded store with schedules, tasks, pool jobs and the dashboard')
    .option('--port <port>', 'dashboard port (another free one if taken)', '7420')
    .option('--nodes <n>', 'node processes', '3')
    .option('--duration <duration>', 'stop by itself after this long (default: run until Ctrl-C)')
    .option('--log-level <level>', 'log level of the node processes', 'warn')
    .action(async (_opts, cmd: Command) => {
      const o = cmd.optsWithGlobals();
      const { runDemo } = await import('./demo.js');
      const store = o.store ?? io.env.ROTA_STORE;
      await runDemo(
        {
          port: parseInteger('port', o.port, 0, 65535),
          nodes: parseInteger('nodes', o.nodes, 1, 9),
          duration: o.duration === undefined ? undefined : parseDuration('duration', o.duration),
          store: store === undefined ? undefined : storeUrl({ store }, io.env),
          logLevel: o.logLevel,
        },
        io,
      );
    });

  // --- status, locks
  program
    .command('status')
    .description('members, election leaders and host decisions')
    .addOption(json())
    .action(async (_o, cmd: Command) => {
      const opts = g(cmd);
      const s = await withAdmin(opts, io, (a) => a.status());
      print(io, opts, s, () => {
        const members = s.members.filter((m) => m.labels.role !== 'cli' || m.nodeId === s.node);
        return (
          `namespace ${s.namespace}, store time ${when(s.now)}\n\nMEMBERS\n` +
          table(
            members.map((m) => ({ ...m, since: when(m.startedAt), pools: m.capabilities.pools.join(',') })),
            ['nodeId', 'hostname', 'pid', 'since', 'pools'],
          ) +
          '\nLEADERS\n' +
          table(
            s.leaders.map((l) => ({ ...l, since: when(l.since) })),
            ['name', 'nodeId', 'token', 'since', 'candidates'],
          ) +
          '\nHOST DECISIONS\n' +
          table(
            s.hosts.map((h) => ({ ...h, hosts: h.hosts.join(','), decided: when(h.decidedAt) })),
            ['namespace', 'hosts', 'leader', 'decided'],
          )
        );
      });
    });

  program
    .command('locks')
    .description('held locks')
    .addOption(json())
    .action(async (_o, cmd: Command) => {
      const opts = g(cmd);
      const locks = await withAdmin(opts, io, (a) => a.locks());
      print(io, opts, locks, () => table(locks, ['name', 'nodeId', 'token', 'waiting']));
    });

  // --- tasks
  const tasks = program.command('tasks').description('one-off tasks');
  tasks
    .command('add')
    .description('enqueue a task, or every line of a JSON-lines file (--file)')
    .argument('<queue>', 'queue name')
    .argument('[payload]', 'JSON payload (a bare word is a string)')
    .option('--file <path>', 'JSON-lines file: one {"payload": …, "priority": …} per line')
    .option('--id <id>', 'task id')
    .option('--priority <n>', 'higher runs first')
    .option('--delay <duration>', 'run after this long (30s, 5m)')
    .option('--max-attempts <n>', 'total attempts')
    .option('--timeout <duration>', 'per attempt')
    .option('--tags <a,b>', 'tags')
    .option('--dedup-key <key>', 'dedup key')
    .option('--dead-letter <queue>', 'dead-letter queue')
    .addOption(json())
    .action(async (queue: string, payloadText: string | undefined, flags: AddFlags, cmd: Command) => {
      const opts = g(cmd);
      checkName('queue', queue);
      const base = addInputFromFlags(flags);
      if (flags.file !== undefined) {
        if (payloadText !== undefined) invalid('payload', 'give either a payload or --file, not both');
        if (base.id !== undefined) invalid('id', '--id cannot be used with --file (put ids in the lines)');
        const lines = readTaskLines(flags.file);
        const refs = await withAdmin(opts, io, async (a) => {
          const bar = progressBar(io, 'enqueue');
          bar.start(lines.length, 0);
          const out = [];
          try {
            for (let i = 0; i < lines.length; i += 1000) {
              const chunk = lines.slice(i, i + 1000).map((l) => ({ ...base, ...l }));
              out.push(...(await a.addTasks(queue, chunk)));
              bar.update(Math.min(lines.length, i + 1000));
            }
          } finally {
            bar.stop();
          }
          return out;
        });
        print(io, opts, refs, () => `enqueued ${refs.length} tasks into ${queue}\n`);
        return;
      }
      const input: AddTaskInput = {
        ...base,
        payload: payloadText === undefined ? null : parsePayload('payload', payloadText),
      };
      const ref = await withAdmin(opts, io, (a) => a.addTask(queue, input));
      print(io, opts, ref, () => `${ref.status} ${ref.id}\n`);
    });

  tasks
    .command('list')
    .description('list tasks in enqueue order')
    .option('--queue <queue>', 'only this queue')
    .option('--state <state>', 'pending, claimed, running, completed or resolving')
    .option('--limit <n>', 'page size', '100')
    .option('--cursor <n>', 'start after this cursor (from the previous page)')
    .addOption(json())
    .action(async (o: { queue?: string; state?: string; limit: string; cursor?: string }, cmd: Command) => {
      const opts = g(cmd);
      const query: Parameters<Admin['listTasks']>[0] = { limit: parseInteger('limit', o.limit, 1, 10_000) };
      if (o.queue !== undefined) query.queue = checkName('queue', o.queue);
      if (o.state !== undefined) query.state = checkTaskState('state', o.state);
      if (o.cursor !== undefined) query.cursor = parseInteger('cursor', o.cursor, 0);
      const page = await withAdmin(opts, io, (a) => a.listTasks(query));
      print(io, opts, page, () => {
        const rows = page.tasks.map((t) => ({ ...t, outcome: t.outcome ?? '', created: when(t.createdAt) }));
        const more = page.cursor === null ? '' : `next page: --cursor ${page.cursor}\n`;
        return (
          table(rows, ['id', 'queue', 'state', 'outcome', 'attempt', 'priority', 'owner', 'created']) + more
        );
      });
    });

  tasks
    .command('get')
    .description('one task')
    .argument('<id>')
    .addOption(json())
    .action(async (id: string, _o, cmd: Command) => {
      const opts = g(cmd);
      checkName('id', id);
      const t = await withAdmin(opts, io, (a) => a.getTask(id));
      print(io, opts, t, () =>
        [
          `id        ${t.id}`,
          `queue     ${t.queue}`,
          `state     ${t.state}${t.outcome ? ` (${t.outcome})` : ''}`,
          `attempt   ${t.attempt}/${t.maxAttempts}`,
          `priority  ${t.priority}`,
          `owner     ${t.owner ?? '-'}`,
          `created   ${when(t.createdAt)}`,
          `run at    ${when(t.runAt)}`,
          `completed ${when(t.completedAt)}`,
          `payload   ${JSON.stringify(t.payload)}`,
          `result    ${JSON.stringify(t.result)}`,
          `error     ${t.error ? `${t.error.code}: ${t.error.message}` : '-'}`,
          '',
        ].join('\n'),
      );
    });

  tasks
    .command('cancel')
    .description('cancel a pending, claimed or running task')
    .argument('<id>')
    .option('--reason <text>', 'why')
    .addOption(json())
    .action(async (id: string, o: { reason?: string }, cmd: Command) => {
      const opts = g(cmd);
      checkName('id', id);
      const t = await withAdmin(opts, io, (a) => a.cancelTask(id, o.reason));
      print(io, opts, t, () => `cancelled ${t.id} (${t.state}, ${t.outcome})\n`);
    });

  tasks
    .command('retry')
    .description('run a failed or cancelled task again (as a new task rt-<id>-<n>)')
    .argument('<id>')
    .addOption(json())
    .action(async (id: string, _o, cmd: Command) => {
      const opts = g(cmd);
      checkName('id', id);
      const ref = await withAdmin(opts, io, (a) => a.retryTask(id));
      print(io, opts, ref, () => `retrying ${id} as ${ref.id}\n`);
    });

  tasks
    .command('redrive')
    .description('move dead-letter copies back into their original queues')
    .argument('<dlq>', 'dead-letter queue')
    .option('--limit <n>', 'most tasks to move', '1000')
    .addOption(json())
    .action(async (dlq: string, o: { limit: string }, cmd: Command) => {
      const opts = g(cmd);
      checkName('dlq', dlq);
      const limit = parseInteger('limit', o.limit, 1, 1_000_000);
      const r = await withAdmin(opts, io, (a) => a.redrive(dlq, limit));
      print(io, opts, r, () => `redrove ${r.redriven} tasks from ${dlq}\n`);
    });

  tasks
    .command('counts')
    .description('tasks per queue and state')
    .option('--queue <queue>', 'only this queue')
    .addOption(json())
    .action(async (o: { queue?: string }, cmd: Command) => {
      const opts = g(cmd);
      if (o.queue !== undefined) checkName('queue', o.queue);
      const counts = await withAdmin(opts, io, (a) => a.counts(o.queue));
      print(io, opts, counts, () =>
        table(
          Object.entries(counts).map(([queue, c]) => ({ queue, ...c })),
          ['queue', 'pending', 'claimed', 'running', 'completed', 'resolving'],
        ),
      );
    });

  tasks
    .command('drain')
    .description('wait until a queue has no pending, claimed or running task (progress bar)')
    .argument('<queue>')
    .option('--timeout <duration>', 'give up after', '5m')
    .addOption(json())
    .action(async (queue: string, o: { timeout: string }, cmd: Command) => {
      const opts = g(cmd);
      checkName('queue', queue);
      const timeout = parseDuration('timeout', o.timeout);
      const started = Date.now();
      await withAdmin(opts, io, async (a) => {
        const bar = progressBar(io, `drain ${queue}`);
        let total = -1;
        try {
          await a.drain(queue, {
            timeout,
            onProgress: (left) => {
              if (total < 0) {
                total = Math.max(left, 1);
                bar.start(total, 0);
              }
              total = Math.max(total, left);
              bar.setTotal(total);
              bar.update(total - left);
            },
          });
        } finally {
          bar.stop();
        }
      });
      const result = { queue, drained: true, ms: Date.now() - started };
      print(io, opts, result, () => `${queue} drained in ${span(result.ms)}\n`);
    });

  // --- schedules
  const schedules = program.command('schedules').description('recurring jobs');
  schedules
    .command('list')
    .description('every schedule with its next run and last run')
    .addOption(json())
    .action(async (_o, cmd: Command) => {
      const opts = g(cmd);
      const list = await withAdmin(opts, io, (a) => a.listSchedules());
      print(io, opts, list, () =>
        table(
          list.map((s) => ({
            ...s,
            next: when(s.nextRunAt),
            last: s.lastRun ? `${s.lastRun.status} ${when(s.lastRun.startedAt)}` : '-',
            running: s.currentRuns.length,
          })),
          ['name', 'state', 'next', 'last', 'running', 'runsStarted'],
        ),
      );
    });

  const scheduleAction = (
    name: string,
    description: string,
    run: (a: Admin, n: string) => Promise<unknown>,
  ) =>
    schedules
      .command(name)
      .description(description)
      .argument('<name>', 'schedule name')
      .addOption(json())
      .action(async (scheduleName: string, _o, cmd: Command) => {
        const opts = g(cmd);
        checkName('name', scheduleName);
        const r = await withAdmin(opts, io, (a) => run(a, scheduleName));
        print(io, opts, r, () => {
          const v = r as { runId?: string; state?: string; nextRunAt?: number | null };
          if (v.runId) return `requested run ${v.runId} of ${scheduleName}\n`;
          return `${scheduleName} is ${v.state}; next run ${when(v.nextRunAt)}\n`;
        });
      });
  scheduleAction('run-now', 'request one manual run now', (a, n) => a.runNow(n));
  scheduleAction('pause', 'pause a schedule', (a, n) => a.pause(n));
  scheduleAction('resume', 'resume a schedule from its next slot', (a, n) => a.resume(n));

  schedules
    .command('history')
    .description('run records of a schedule, newest first (skips and lateness included)')
    .argument('<name>')
    .option('--limit <n>', 'most records', '20')
    .addOption(json())
    .action(async (name: string, o: { limit: string }, cmd: Command) => {
      const opts = g(cmd);
      checkName('name', name);
      const limit = parseInteger('limit', o.limit, 1, 10_000);
      const runs = await withAdmin(opts, io, (a) => a.history(name, limit));
      print(io, opts, runs, () =>
        table(
          runs.map((r) => ({
            ...r,
            slot: when(r.slotAt),
            late: r.startedAt !== null && r.kind !== 'manual' ? span(r.startedAt - r.slotAt) : '-',
            took: r.startedAt !== null && r.endedAt !== null ? span(r.endedAt - r.startedAt) : '-',
            note: r.skipped
              ? `${r.skipped.count} skipped (${r.skipped.reason})`
              : (r.error?.message ?? r.reason ?? ''),
          })),
          ['runId', 'kind', 'status', 'slot', 'late', 'took', 'owner', 'note'],
        ),
      );
    });

  // --- pool
  const pool = program.command('pool').description('worker pools');
  pool
    .command('jobs')
    .description('jobs of a pool with the worker running each')
    .argument('<pool>')
    .addOption(json())
    .action(async (name: string, _o, cmd: Command) => {
      const opts = g(cmd);
      checkName('pool', name);
      const jobs = await withAdmin(opts, io, (a) => a.poolJobs(name));
      print(io, opts, jobs, () => table(jobs, ['key', 'state', 'workerId', 'nodeId', 'ownerState', 'token']));
    });
  pool
    .command('workers')
    .description('workers of a pool with their jobs')
    .argument('<pool>')
    .addOption(json())
    .action(async (name: string, _o, cmd: Command) => {
      const opts = g(cmd);
      checkName('pool', name);
      const workers = await withAdmin(opts, io, (a) => a.poolWorkers(name));
      print(io, opts, workers, () =>
        table(
          workers.map((w) => ({ ...w, count: w.jobs.length, jobs: w.jobs.join(',') })),
          ['id', 'nodeId', 'state', 'count', 'jobs'],
        ),
      );
    });
  pool
    .command('dispatch')
    .description('dispatch a job')
    .argument('<pool>')
    .argument('<key>')
    .argument('[payload]', 'text payload')
    .option('--wait', 'wait until a worker started it')
    .option('--timeout <duration>', 'with --wait: give up after')
    .addOption(json())
    .action(
      async (
        name: string,
        key: string,
        payload: string | undefined,
        o: { wait?: boolean; timeout?: string },
        cmd: Command,
      ) => {
        const opts = g(cmd);
        checkName('pool', name);
        checkName('key', key);
        const dispatchOpts: { wait?: boolean; timeout?: number } = { wait: o.wait ?? false };
        if (o.timeout !== undefined) dispatchOpts.timeout = parseDuration('timeout', o.timeout);
        const job = await withAdmin(opts, io, (a) => a.dispatch(name, key, payload ?? null, dispatchOpts));
        print(io, opts, job, () => `dispatched ${job.key}${job.workerId ? ` to ${job.workerId}` : ''}\n`);
      },
    );
  pool
    .command('stop')
    .description('stop a job and wait until it stopped')
    .argument('<pool>')
    .argument('<key>')
    .addOption(json())
    .action(async (name: string, key: string, _o, cmd: Command) => {
      const opts = g(cmd);
      checkName('pool', name);
      checkName('key', key);
      const r = await withAdmin(opts, io, (a) => a.stopJob(name, key));
      print(io, opts, r, () => `stopped ${key}\n`);
    });

  return program;
}

/**
 * Run the CLI with `argv` (without `node` and the script). Resolves with the exit code: 0, 1 for
 * a coded error, 2 for a usage error. Never throws.
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0; // --help, --version
      const message = err.message.replace(/^error: /, '');
      io.stderr.write(`rota: ROTA_INVALID_ARGUMENT: ${message}\n`);
      return 2;
    }
    const e = isRotaError(err)
      ? err
      : new RotaError('ROTA_INTERNAL', err instanceof Error ? err.message : String(err));
    io.stderr.write(`rota: ${e.code}: ${e.message.split('\n')[0]}\n`);
    return e.code === 'ROTA_INVALID_ARGUMENT' ? 2 : 1;
  }
}
