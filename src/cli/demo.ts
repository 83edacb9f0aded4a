/**
 * `rota demo` (`npm start`): three `rota start` processes on one embedded SQLite store, each
 * loading src/demo/app.ts, plus this supervisor, which is a node of its own serving the dashboard
 * (so the dashboard survives when you kill a worker process). It prints the dashboard URL, a
 * summary of who runs what every few seconds, and what happens when a process dies; Ctrl-C (or
 * `--duration`) stops everything gracefully and removes the demo's temporary database folder.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../core/logger.js';
import { TimeoutError } from '../errors.js';
import { redactUrl } from '../http/log.js';
import { startServer } from '../http/server.js';
import { Rota } from '../rota.js';
import { sqliteUrl } from '../store/sqlite/options.js';
import type { CliIo } from './program.js';

export interface DemoOptions {
  /** Dashboard port; a free one is used when it is taken. */
  port: number;
  nodes: number;
  /** Stop by itself after this many ms; undefined: run until SIGINT/SIGTERM. */
  duration?: number | undefined;
  /** Store shared by the nodes; default a SQLite file in a fresh temporary folder. */
  store?: string | undefined;
  logLevel: string;
}

interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  url?: string;
  exited: boolean;
}

const NAMES = ['node-a', 'node-b', 'node-c', 'node-d', 'node-e', 'node-f', 'node-g', 'node-h', 'node-i'];

export async function runDemo(options: DemoOptions, io: CliIo): Promise<void> {
  const say = (line: string) => io.stdout.write(`${line}\n`);
  const tempDir = options.store ? null : mkdtempSync(join(tmpdir(), 'rota-demo-'));
  const store = options.store ?? sqliteUrl(join(tempDir as string, 'demo.db'));
  const fromSource = import.meta.url.endsWith('.ts');
  const ext = fromSource ? '.ts' : '.js';
  const main = fileURLToPath(new URL(`./main${ext}`, import.meta.url));
  const app = new URL(`../demo/app${ext}`, import.meta.url).href;
  // The children run the same way this process runs (tsx's loader from source, plain node built).
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--test'));
  if (fromSource && !execArgv.some((a) => a.includes('tsx'))) execArgv.push('--import', 'tsx');

  let stopping = false;
  const children: Child[] = [];
  const spawnChild = (name: string) =>
    new Promise<Child>((resolve, reject) => {
      const proc = spawn(
        process.execPath,
        [
          ...execArgv,
          main,
          'start',
          '--store',
          store,
          '--module',
          app,
          '--port',
          '0',
          '--node-id',
          name,
          '--session-ttl',
          '3s',
          '--log-level',
          options.logLevel,
        ],
        { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: process.env },
      );
      const child: Child = { name, proc, pid: proc.pid ?? -1, exited: false };
      const prefix = (stream: NodeJS.ReadableStream | null, to: NodeJS.WritableStream) => {
        let buffered = '';
        stream?.setEncoding('utf8');
        stream?.on('data', (chunk: string) => {
          buffered += chunk;
          const lines = buffered.split('\n');
          buffered = lines.pop() ?? '';
          for (const l of lines) if (!l.startsWith('rota: node ')) to.write(`[${name}] ${l}\n`);
        });
      };
      prefix(proc.stdout, io.stdout);
      prefix(proc.stderr, io.stderr);
      const timer = setTimeout(() => reject(new TimeoutError(`${name} did not start within 60 s`)), 60_000);
      proc.on('message', (m: { type?: string; url?: string }) => {
        if (m?.type === 'ready') {
          clearTimeout(timer);
          child.url = m.url as string;
          resolve(child);
        }
      });
      proc.on('exit', (code, signal) => {
        child.exited = true;
        clearTimeout(timer);
        if (!child.url) reject(new Error(`${name} exited before it was ready (${signal ?? code})`));
        else if (!stopping)
          say(
            `!! ${name} (pid ${child.pid}) exited (${signal ?? `code ${code}`}): its session and pool lease expire within ${3} s, then its pool jobs and unfinished tasks move to the survivors`,
          );
      });
      children.push(child);
    });

  let rota: Rota | null = null;
  let server: Awaited<ReturnType<typeof startServer>> | null = null;
  let ticker: NodeJS.Timeout | null = null;
  const shutdown = async () => {
    stopping = true;
    if (ticker) clearInterval(ticker);
    await Promise.all(
      children
        .filter((c) => !c.exited)
        .map(
          (c) =>
            new Promise<void>((resolve) => {
              const kill = setTimeout(() => c.proc.kill('SIGKILL'), 20_000);
              c.proc.once('exit', () => {
                clearTimeout(kill);
                resolve();
              });
              if (c.proc.connected) c.proc.send({ type: 'stop' });
              else c.proc.kill('SIGTERM');
            }),
        ),
    );
    await server?.close().catch(() => undefined);
    await rota?.close().catch(() => undefined);
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  };

  try {
    say(`Rota demo: ${options.nodes} node processes on ${redactUrl(store)}`);
    // The first node creates the database; the others join it.
    const [first, ...rest] = NAMES.slice(0, options.nodes);
    await spawnChild(first as string);
    await Promise.all(rest.map(spawnChild));
    rota = await Rota.connect({
      store,
      nodeId: 'dashboard',
      sessionTtl: 3000,
      labels: { role: 'dashboard' },
      logger: silentLogger,
      tasks: { converger: false },
    });
    server = await startServer(rota, { port: options.port, portFallback: true });
    for (const c of children) say(`  ${c.name}  pid ${c.pid}  metrics ${c.url}/metrics`);
    say(`dashboard: ${server.url}`);
    say(`Kill a node (kill -9 <pid>) to watch its work move. Ctrl-C stops the demo.`);

    const admin = server.admin;
    ticker = setInterval(() => {
      void (async () => {
        const [jobs, counts] = await Promise.all([admin.poolJobs('streams'), admin.counts()]);
        const perNode = new Map<string, number>();
        for (const j of jobs)
          perNode.set(j.nodeId ?? 'unowned', (perNode.get(j.nodeId ?? 'unowned') ?? 0) + 1);
        const done = (counts.emails?.completed ?? 0) + (counts.images?.completed ?? 0);
        const waiting = (counts.emails?.pending ?? 0) + (counts.images?.pending ?? 0);
        say(
          `tasks completed ${done}, pending ${waiting} | pool jobs ${[...perNode]
            .sort()
            .map(([n, k]) => `${n}:${k}`)
            .join(' ')}`,
        );
      })().catch(() => undefined);
    }, 5000);

    await new Promise<void>((resolve) => {
      const done = () => resolve();
      process.once('SIGINT', done);
      process.once('SIGTERM', done);
      if (options.duration !== undefined) setTimeout(done, options.duration).unref();
    });
    say('stopping the demo…');
  } finally {
    await shutdown();
  }
  say('demo stopped cleanly');
}
