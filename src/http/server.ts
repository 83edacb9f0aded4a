/**
 * The HTTP server of a Rota node (fastify): the JSON API under `/api`, its OpenAPI document at
 * `/openapi.json`, server-sent events at `/api/events`, Prometheus metrics at `/metrics` and the
 * dashboard at `/`. See docs/http.md.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import swagger from '@fastify/swagger';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Logger as PinoLogger } from 'pino';
import { InvalidArgumentError, isRotaError, type RotaErrorCode } from '../errors.js';
import { RotaMetrics } from '../metrics/index.js';
import type { Rota } from '../rota.js';
import { type AddTaskInput, Admin, type TaskStateName } from './admin.js';
import { LiveHub } from './live.js';
import { redactUrl } from './log.js';
import { errorSchema, routes } from './schemas.js';

/** Defaults of {@link ServerOptions}. */
export const SERVER_DEFAULTS = {
  host: '127.0.0.1',
  port: 7420,
  bodyLimit: 8 * 1024 * 1024,
  liveInterval: 250,
  heartbeatInterval: 15_000,
} as const;

/** Options of {@link startServer}. */
export interface ServerOptions {
  /** Address to listen on. Default `127.0.0.1` (loopback: no token needed). */
  host?: string;
  /** Port; `0` picks a free one. Default 7420. */
  port?: number;
  /** If the port is taken, listen on a free one instead of failing. Default false. */
  portFallback?: boolean;
  /**
   * Bearer token every request must carry (`Authorization: Bearer <token>`, or `?access_token=`
   * for the dashboard page and its event stream). Required when `host` is not a loopback address;
   * when given on loopback it is enforced there too. Default none.
   */
  token?: string;
  /** Largest request body in bytes (larger → 413 `ROTA_PAYLOAD_TOO_LARGE`). Default 8 MiB. */
  bodyLimit?: number;
  /** pino logger for request and error logs. Default: none (silent). */
  logger?: PinoLogger;
  /** Metrics to serve at `/metrics`. Default: a new `RotaMetrics` for the node. */
  metrics?: RotaMetrics;
  /** Serve the dashboard at `/`. Default true. */
  dashboard?: boolean;
  /** Coalescing window of live updates in ms. Default 250. */
  liveInterval?: number;
  /** SSE keep-alive comment interval in ms. Default 15 000. */
  heartbeatInterval?: number;
}

export interface RotaServer {
  readonly app: FastifyInstance;
  /** `http://host:port` as listened on. */
  readonly url: string;
  readonly port: number;
  readonly admin: Admin;
  readonly metrics: RotaMetrics;
  close(): Promise<void>;
}

/** HTTP status of each error code; anything unlisted is 500. */
export function statusOf(code: RotaErrorCode): number {
  switch (code) {
    case 'ROTA_INVALID_ARGUMENT':
    case 'ROTA_INVALID_CRON':
    case 'ROTA_INVALID_TRIGGER':
      return 400;
    case 'ROTA_UNAUTHORIZED':
      return 401;
    case 'ROTA_TASK_NOT_FOUND':
    case 'ROTA_SCHEDULE_NOT_FOUND':
    case 'ROTA_RUN_NOT_FOUND':
    case 'ROTA_JOB_NOT_FOUND':
    case 'ROTA_ROUTE_NOT_FOUND':
      return 404;
    case 'ROTA_TASK_EXISTS':
    case 'ROTA_JOB_EXISTS':
    case 'ROTA_INVALID_TRANSITION':
    case 'ROTA_INVALID_RUN_STATE':
    case 'ROTA_WRONG_OWNER':
    case 'ROTA_STALE_TOKEN':
      return 409;
    case 'ROTA_PAYLOAD_TOO_LARGE':
      return 413;
    case 'ROTA_QUEUE_FULL':
      return 429;
    case 'ROTA_STORE_UNAVAILABLE':
    case 'ROTA_CLOSED':
    case 'ROTA_POOL_CLOSED':
    case 'ROTA_POOL_SHUTTING_DOWN':
    case 'ROTA_SHUTTING_DOWN':
    case 'ROTA_SESSION_LOST':
      return 503;
    case 'ROTA_TIMEOUT':
    case 'ROTA_DISPATCH_TIMEOUT':
      return 504;
    default:
      return 500;
  }
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '[::1]';
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time token check (hashing first makes the lengths equal). */
function tokenMatches(given: string | undefined, expected: Buffer): boolean {
  return given !== undefined && timingSafeEqual(digest(given), expected);
}

function bearerOf(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (typeof header === 'string' && header.startsWith('Bearer ')) return header.slice(7).trim();
  const q = req.query as Record<string, unknown> | undefined;
  return typeof q?.access_token === 'string' ? q.access_token : undefined;
}

const DASHBOARD_FILES: Record<string, string> = {
  '/': 'index.html',
  '/dashboard.js': 'dashboard.js',
  '/dashboard.css': 'dashboard.css',
};
const CONTENT_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/** Build the fastify app without listening (tests use `app.inject`). */
export async function buildServer(
  rota: Rota,
  options: ServerOptions = {},
): Promise<{ app: FastifyInstance; admin: Admin; metrics: RotaMetrics; live: LiveHub }> {
  const host = options.host ?? SERVER_DEFAULTS.host;
  if (options.token !== undefined && (typeof options.token !== 'string' || options.token.length < 8)) {
    throw new InvalidArgumentError('token must be a string of at least 8 characters', {
      detail: { field: 'token' },
    });
  }
  if (!isLoopback(host) && !options.token) {
    throw new InvalidArgumentError(
      `listening on ${host} (not loopback) needs a bearer token (--token or ROTA_TOKEN)`,
      { detail: { field: 'token', host } },
    );
  }
  const expected = options.token ? digest(options.token) : null;
  const admin = new Admin(rota);
  const metrics = options.metrics ?? new RotaMetrics(rota);
  const live = new LiveHub(rota, { interval: options.liveInterval ?? SERVER_DEFAULTS.liveInterval });
  const log = options.logger;
  const heartbeatMs = options.heartbeatInterval ?? SERVER_DEFAULTS.heartbeatInterval;

  const app = Fastify({
    bodyLimit: options.bodyLimit ?? SERVER_DEFAULTS.bodyLimit,
    // Request logs are written below with the URL redacted; fastify's own would log query tokens.
    logger: false,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
  });
  app.addSchema(errorSchema);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Rota',
        version: '0.1.0',
        description:
          'The HTTP API of a Rota node: tasks, schedules, pools, locks and cluster status. Errors are `{ code, message }` with a stable `ROTA_*` code. Durations are integers in ms.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
      tags: [
        { name: 'cluster', description: 'Members, leaders, host decisions, locks' },
        { name: 'tasks', description: 'One-off tasks (docs/tasks.md)' },
        { name: 'schedules', description: 'Recurring jobs (docs/schedules.md)' },
        { name: 'pool', description: 'Worker pools (docs/pool.md)' },
      ],
    },
  });

  app.addHook('onRequest', async (req, reply) => {
    if (!expected) return;
    if (tokenMatches(bearerOf(req), expected)) return;
    reply.header('www-authenticate', 'Bearer');
    return reply.code(401).send({ code: 'ROTA_UNAUTHORIZED', message: 'a valid bearer token is required' });
  });
  if (log) {
    app.addHook('onResponse', async (req, reply) => {
      log.info(
        {
          method: req.method,
          url: redactUrl(req.url),
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime),
        },
        'request',
      );
    });
  }

  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    if (err.validation) {
      return reply.code(400).send({
        code: 'ROTA_INVALID_ARGUMENT',
        message: `${err.validationContext ?? 'request'}${err.message.replace(/^(body|querystring|params)/, '')}`,
      });
    }
    if (isRotaError(err)) {
      const status = statusOf(err.code);
      if (status >= 500) log?.error({ err, url: redactUrl(req.url) }, 'request failed');
      return reply.code(status).send({ code: err.code, message: err.message, detail: err.detail });
    }
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      const code = err.statusCode === 413 ? 'ROTA_PAYLOAD_TOO_LARGE' : 'ROTA_INVALID_ARGUMENT';
      return reply.code(err.statusCode).send({ code, message: err.message });
    }
    log?.error({ err, url: redactUrl(req.url) }, 'request failed');
    return reply.code(500).send({ code: 'ROTA_INTERNAL', message: 'internal error; see the server log' });
  });
  app.setNotFoundHandler((req, reply) =>
    reply
      .code(404)
      .send({ code: 'ROTA_ROUTE_NOT_FOUND', message: `no endpoint ${req.method} ${req.url.split('?')[0]}` }),
  );

  // --- cluster
  app.get('/api/status', { schema: routes.status }, () => admin.status());
  app.get('/api/locks', { schema: routes.locks }, () => admin.locks());

  // --- tasks
  app.get('/api/tasks', { schema: routes.listTasks }, (req) => {
    const q = req.query as { queue?: string; state?: TaskStateName; limit?: number; cursor?: number };
    return admin.listTasks(q);
  });
  app.get('/api/tasks/counts', { schema: routes.counts }, (req) =>
    admin.counts((req.query as { queue?: string }).queue),
  );
  app.post('/api/tasks', { schema: routes.addTask }, async (req, reply) => {
    const { queue, ...input } = req.body as AddTaskInput & { queue: string };
    return reply.code(201).send(await admin.addTask(queue, input));
  });
  app.post('/api/tasks/batch', { schema: routes.addTasks }, async (req, reply) => {
    const { queue, items } = req.body as { queue: string; items: AddTaskInput[] };
    return reply.code(201).send(await admin.addTasks(queue, items));
  });
  app.get('/api/tasks/:id', { schema: routes.getTask }, (req) =>
    admin.getTask((req.params as { id: string }).id),
  );
  app.post('/api/tasks/:id/cancel', { schema: routes.cancelTask }, (req) =>
    admin.cancelTask((req.params as { id: string }).id, (req.body as { reason?: string } | null)?.reason),
  );
  app.post('/api/tasks/:id/retry', { schema: routes.retryTask }, async (req, reply) =>
    reply.code(201).send(await admin.retryTask((req.params as { id: string }).id)),
  );
  app.post('/api/queues/:queue/redrive', { schema: routes.redrive }, (req) =>
    admin.redrive((req.params as { queue: string }).queue, (req.body as { limit?: number } | null)?.limit),
  );

  // --- schedules
  app.get('/api/schedules', { schema: routes.listSchedules }, () => admin.listSchedules());
  app.get('/api/schedules/:name', { schema: routes.getSchedule }, (req) =>
    admin.getSchedule((req.params as { name: string }).name),
  );
  app.post('/api/schedules/:name/run-now', { schema: routes.runNow }, async (req, reply) =>
    reply.code(202).send(await admin.runNow((req.params as { name: string }).name)),
  );
  app.post('/api/schedules/:name/pause', { schema: routes.scheduleAction }, (req) =>
    admin.pause((req.params as { name: string }).name),
  );
  app.post('/api/schedules/:name/resume', { schema: routes.scheduleAction }, (req) =>
    admin.resume((req.params as { name: string }).name),
  );
  app.get('/api/schedules/:name/runs', { schema: routes.history }, (req) =>
    admin.history((req.params as { name: string }).name, (req.query as { limit?: number }).limit),
  );

  // --- pools
  app.get('/api/pools', { schema: routes.pools }, () => admin.pools());
  app.get('/api/pools/:pool/jobs', { schema: routes.poolJobs }, (req) =>
    admin.poolJobs((req.params as { pool: string }).pool),
  );
  app.get('/api/pools/:pool/workers', { schema: routes.poolWorkers }, (req) =>
    admin.poolWorkers((req.params as { pool: string }).pool),
  );
  app.post('/api/pools/:pool/jobs', { schema: routes.dispatch }, async (req, reply) => {
    const b = req.body as { key: string; payload?: string | null; wait?: boolean; timeout?: number };
    const opts: { wait?: boolean; timeout?: number } = {};
    if (b.wait !== undefined) opts.wait = b.wait;
    if (b.timeout !== undefined) opts.timeout = b.timeout;
    return reply
      .code(201)
      .send(await admin.dispatch((req.params as { pool: string }).pool, b.key, b.payload ?? null, opts));
  });
  app.post('/api/pools/:pool/jobs/:key/stop', { schema: routes.stopJob }, (req) => {
    const p = req.params as { pool: string; key: string };
    return admin.stopJob(p.pool, p.key);
  });

  // --- live updates
  app.get('/api/events', { schema: { hide: true } }, (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ node: rota.nodeId })}\n\n`);
    const off = live.subscribe((m) => res.write(`event: ${m.topic}\ndata: ${JSON.stringify(m)}\n\n`));
    const beat = setInterval(() => res.write(': keep-alive\n\n'), heartbeatMs);
    req.raw.on('close', () => {
      off();
      clearInterval(beat);
    });
  });

  // --- metrics, OpenAPI, dashboard
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) =>
    reply.header('content-type', metrics.contentType).send(await metrics.metrics()),
  );
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
  if (options.dashboard ?? true) {
    const dir = new URL('../dashboard/', import.meta.url);
    for (const [path, file] of Object.entries(DASHBOARD_FILES)) {
      app.get(path, { schema: { hide: true } }, async (_req, reply) => {
        const body = await readFile(new URL(file, dir));
        const ext = file.slice(file.lastIndexOf('.') + 1);
        return reply
          .header('content-type', CONTENT_TYPES[ext] ?? 'application/octet-stream')
          .header('cache-control', 'no-cache')
          .send(body);
      });
    }
  }

  app.addHook('onClose', async () => {
    live.close();
    await admin.close();
    if (!options.metrics) metrics.close();
  });
  await app.ready();
  return { app, admin, metrics, live };
}

/** Build and listen. `close()` stops the server (not the Rota node). */
export async function startServer(rota: Rota, options: ServerOptions = {}): Promise<RotaServer> {
  const { app, admin, metrics } = await buildServer(rota, options);
  const host = options.host ?? SERVER_DEFAULTS.host;
  const port = options.port ?? SERVER_DEFAULTS.port;
  try {
    await app.listen({ host, port });
  } catch (err) {
    if (!(options.portFallback && (err as NodeJS.ErrnoException).code === 'EADDRINUSE')) {
      await app.close();
      throw err;
    }
    await app.listen({ host, port: 0 });
  }
  const address = app.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  // Close open event streams first, or server.close() would wait for them forever.
  const close = async () => {
    app.server.closeAllConnections?.();
    await app.close();
  };
  return { app, url: `http://${shownHost}:${bound}`, port: bound, admin, metrics, close };
}
