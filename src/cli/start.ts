/**
 * `rota start`: one long-running node. Opens the store (timed for the claim/settle histograms),
 * connects, loads the user's modules, starts the schedules runner and serves the HTTP API,
 * dashboard and metrics until SIGINT/SIGTERM, then shuts down in reverse order.
 *
 * A user module's default export receives the node:
 *
 * ```ts
 * export default async function (rota: Rota, ctx: { logger: Logger; signal: AbortSignal }) {
 *   await rota.schedules.register({ name: 'nightly', cron: '0 3 * * *' }, runNightly);
 *   rota.tasks.work('emails', sendEmail, { concurrency: 10 });
 *   return async () => { … };   // optional: called before the node closes
 * }
 * ```
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InvalidArgumentError, wrapError } from '../errors.js';
import { createLogger, redactUrl, rotaLogger } from '../http/log.js';
import { startServer } from '../http/server.js';
import { instrumentStore, RotaMetrics, StoreMetrics } from '../metrics/index.js';
import { Rota } from '../rota.js';
import { openStore } from '../store/open.js';
import type { CliIo } from './program.js';

/** A module's default export. */
export type RotaModule = (
  rota: Rota,
  ctx: { logger: import('../core/logger.js').Logger; signal: AbortSignal },
) => void | (() => Promise<void> | void) | Promise<void | (() => Promise<void> | void)>;

export interface StartOptions {
  store: string;
  namespace?: string | undefined;
  modules: string[];
  host: string;
  port: number;
  token?: string | undefined;
  nodeId?: string | undefined;
  sessionTtl: number;
  logLevel: string;
  dashboard: boolean;
  portFallback: boolean;
  /** Labels of the member record. */
  labels?: Record<string, string>;
}

/** A running node, for `rota demo` and tests that start nodes in-process. */
export interface StartedNode {
  rota: Rota;
  url: string;
  stop(): Promise<void>;
}

async function loadModule(path: string): Promise<RotaModule> {
  const url = path.startsWith('file:') ? path : pathToFileURL(resolve(path)).href;
  let mod: { default?: unknown };
  try {
    mod = await import(url);
  } catch (err) {
    throw new InvalidArgumentError(`cannot load module ${path}: ${(err as Error).message}`, {
      cause: err,
      detail: { field: 'module' },
    });
  }
  if (typeof mod.default !== 'function') {
    throw new InvalidArgumentError(`module ${path} has no default export function (rota, ctx) => …`, {
      detail: { field: 'module' },
    });
  }
  return mod.default as RotaModule;
}

/** Start a node and its server; resolves once it serves. */
export async function startNode(
  options: StartOptions,
  log = createLogger({ level: options.logLevel }),
): Promise<StartedNode> {
  const modules = await Promise.all(options.modules.map(loadModule));
  const storeMetrics = new StoreMetrics(new (await import('prom-client')).Registry());
  const store = instrumentStore(await openStore(options.store), storeMetrics);
  const logger = rotaLogger(log);
  let rota: Rota;
  try {
    rota = await Rota.connect({
      store,
      logger,
      sessionTtl: options.sessionTtl,
      ...(options.namespace ? { namespace: options.namespace } : {}),
      ...(options.nodeId ? { nodeId: options.nodeId } : {}),
      ...(options.labels ? { labels: options.labels } : {}),
    });
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  const stopModules = new AbortController();
  const cleanups: (() => Promise<void> | void)[] = [];
  const metrics = new RotaMetrics(rota, { storeMetrics });
  let server: Awaited<ReturnType<typeof startServer>> | null = null;
  const stop = async () => {
    stopModules.abort();
    await server?.close().catch((err) => log.warn({ err }, 'server did not close cleanly'));
    for (const c of cleanups.reverse())
      await Promise.resolve(c()).catch((err) => log.warn({ err }, 'module cleanup failed'));
    await rota.close();
    metrics.close();
    await store.close().catch(() => undefined);
  };
  try {
    for (const m of modules) {
      const cleanup = await m(rota, { logger, signal: stopModules.signal });
      if (typeof cleanup === 'function') cleanups.push(cleanup);
    }
    await rota.schedules.start();
    server = await startServer(rota, {
      host: options.host,
      port: options.port,
      portFallback: options.portFallback,
      dashboard: options.dashboard,
      metrics,
      logger: log,
      ...(options.token ? { token: options.token } : {}),
    });
  } catch (err) {
    await stop();
    throw err;
  }
  log.info({ node: rota.nodeId, store: redactUrl(options.store), url: server.url }, 'rota node started');
  return { rota, url: server.url, stop };
}

/** `rota start`: run until SIGINT/SIGTERM (or an IPC `stop` message from `rota demo`). */
export async function runStart(options: StartOptions, io: CliIo): Promise<void> {
  const node = await startNode(options);
  io.stdout.write(`rota: node ${node.rota.nodeId} serving ${node.url}\n`);
  process.send?.({ type: 'ready', nodeId: node.rota.nodeId, url: node.url, pid: process.pid });
  await new Promise<void>((resolveStop) => {
    const done = () => resolveStop();
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    process.on('message', (m: unknown) => {
      if ((m as { type?: string })?.type === 'stop') done();
    });
  });
  try {
    await node.stop();
  } catch (err) {
    throw wrapError(err, 'ROTA_INTERNAL', 'shutdown failed');
  }
  io.stdout.write(`rota: node ${node.rota.nodeId} stopped\n`);
  // Under `rota demo` the IPC channel would keep this process alive after a clean stop.
  if (process.connected) process.disconnect();
}
