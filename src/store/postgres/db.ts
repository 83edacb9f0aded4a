/**
 * The connection pool and the one way statements run. Every statement is a single round trip
 * (writes are server-side functions), so a failure leaves no half-open transaction behind. The
 * statements of `sql/queries/` run as named prepared statements: each connection parses and plans
 * one once, then only binds and executes it (the parse was about a fifth of a claim's server time).
 *
 * Retries: a statement whose transaction the server rolled back as a whole (deadlock,
 * serialization failure) or whose session the server ended with an answer (terminated backend,
 * shutdown) ran nowhere and is re-sent on another connection. A connection that breaks without an
 * answer after a write was sent is not retried: that is `ROTA_STORE_UNAVAILABLE` with
 * `detail.ambiguous: true`. Reads are always safe to re-send.
 */
import pg from 'pg';
import { ClosedError, type RotaError } from '../../errors.js';
import { isNetworkError, isNotSent, isRerunnable, isServerGone, isStalePlan, mapPgError } from './errors.js';
import type { PostgresSettings } from './options.js';
import { statementName } from './sql.js';

/** Connection settings shared by the pool and the LISTEN connection. */
export function clientConfig(settings: PostgresSettings): pg.ClientConfig {
  return {
    connectionString: settings.connectionString,
    application_name: settings.applicationName,
    // Every object of the store lives in its schema; the SQL names them unqualified.
    options: `-c search_path=${settings.schema}`,
    connectionTimeoutMillis: settings.connectTimeout,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  };
}

/** How a statement may be retried. */
export interface RunOptions {
  /** The statement writes: a broken connection after sending makes the outcome ambiguous. */
  write: boolean;
  /** SQLSTATEs after which this statement may run again (besides deadlocks and serialization failures). */
  rerunOn?: readonly string[];
}

const ATTEMPTS = 5;
const BACKOFF_MS = [10, 40, 100, 250];

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class Db {
  readonly pool: pg.Pool;
  /** Server process ids of the pool's live connections (to recognise this client's own NOTIFYs). */
  readonly #backends = new Set<number>();
  #closed = false;

  constructor(settings: PostgresSettings) {
    this.pool = new pg.Pool({ ...clientConfig(settings), max: settings.poolSize, idleTimeoutMillis: 10_000 });
    // An idle connection that breaks (server restart, pg_terminate_backend) is dropped by the
    // pool; without a listener the 'error' event would crash the process.
    this.pool.on('error', () => undefined);
    // Every connection keeps an 'error' listener for life. The pool's own comes off when it hands
    // a connection out, and a new connection's first data chunk can carry a FATAL right after its
    // ReadyForQuery: the driver emits that 'error' before the caller's code runs. Statement
    // errors still reach the statement.
    this.pool.on('connect', (client) => {
      client.on('error', () => undefined);
      const pid = (client as { processID?: number | null }).processID;
      if (typeof pid === 'number') this.#backends.add(pid);
    });
    this.pool.on('remove', (client) => {
      const pid = (client as { processID?: number | null }).processID;
      if (typeof pid === 'number') this.#backends.delete(pid);
    });
  }

  /** True when `pid` is the server process of one of this pool's connections right now. */
  ownsBackend(pid: number): boolean {
    return this.#backends.has(pid);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Run one statement, retrying when it certainly did not apply. */
  async run<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values: unknown[],
    options: RunOptions,
  ): Promise<pg.QueryResult<R>> {
    let lastError: RotaError | undefined;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      if (attempt > 0) await sleep(BACKOFF_MS[attempt - 1] ?? 250);
      if (this.#closed) throw new ClosedError('the store was closed');
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (err) {
        // Nothing was sent.
        lastError = mapPgError(err, false);
        if (isNetworkError(err) || isServerGone(err)) continue;
        throw lastError;
      }
      try {
        const name = statementName(text);
        const result = await client.query<R>(name === undefined ? { text, values } : { name, text, values });
        client.release();
        return result;
      } catch (err) {
        // A stale plan is dropped with its connection (node-postgres has no per-statement DEALLOCATE).
        const broken = isNetworkError(err) || isServerGone(err) || isStalePlan(err);
        client.release(broken ? (err as Error) : undefined);
        lastError = mapPgError(err, options.write && isNetworkError(err) && !isNotSent(err));
        const code = (err as { code?: string }).code ?? '';
        const rerun =
          isRerunnable(err) ||
          isServerGone(err) ||
          isStalePlan(err) ||
          isNotSent(err) ||
          (isNetworkError(err) && !options.write) ||
          (options.rerunOn?.includes(code) ?? false);
        if (!rerun) throw lastError;
      }
    }
    throw lastError ?? new ClosedError('the store was closed');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.pool.end().catch(() => undefined);
  }
}
