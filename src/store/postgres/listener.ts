/**
 * The store's one LISTEN connection (outside the pool: a pooled connection would be handed to
 * other statements). Notifications only wake watchers and queue subscribers; what they read comes
 * from tables, so a lost notification costs latency, never data. When the connection breaks it is
 * re-opened with backoff, LISTENs again and calls `onConnect` so the readers catch up.
 */
import pg from 'pg';

export interface ListenerHandlers {
  /** A notification arrived on one of the channels, sent by server process `pid`. */
  notify(channel: string, payload: string, pid: number): void;
  /** The connection is (again) listening: whatever happened meanwhile must be re-read. */
  connected(): void;
}

const MIN_BACKOFF_MS = 20;
const MAX_BACKOFF_MS = 2_000;

export class PgListener {
  readonly #config: pg.ClientConfig;
  readonly #channels: string[];
  readonly #handlers: ListenerHandlers;
  #client: pg.Client | null = null;
  #started = false;
  #closed = false;
  #connecting = false;
  #backoff = MIN_BACKOFF_MS;
  #timer: NodeJS.Timeout | undefined;
  #connects = 0;

  constructor(config: pg.ClientConfig, channels: string[], handlers: ListenerHandlers) {
    this.#config = config;
    this.#channels = channels;
    this.#handlers = handlers;
  }

  /** True while a LISTEN connection is up. */
  get listening(): boolean {
    return this.#client !== null;
  }

  /** How many times the connection was established (for tests of reconnection). */
  get connects(): number {
    return this.#connects;
  }

  /** Open the connection unless it is open or opening. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    void this.#connect();
  }

  async #connect(): Promise<void> {
    if (this.#closed || this.#connecting || this.#client) return;
    this.#connecting = true;
    const client = new pg.Client(this.#config);
    let failed = false;
    const lost = () => {
      if (failed) return;
      failed = true;
      if (this.#client === client) this.#client = null;
      client.end().catch(() => undefined);
      this.#schedule();
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (n) => {
      if (this.#client === client) this.#handlers.notify(n.channel, n.payload ?? '', n.processId);
    });
    try {
      await client.connect();
      await client.query(this.#channels.map((c) => `LISTEN "${c}"`).join('; '));
    } catch {
      this.#connecting = false;
      lost();
      return;
    }
    this.#connecting = false;
    if (failed) return;
    if (this.#closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#client = client;
    this.#connects++;
    this.#backoff = MIN_BACKOFF_MS;
    this.#handlers.connected();
  }

  #schedule(): void {
    if (this.#closed || this.#timer) return;
    const wait = this.#backoff;
    this.#backoff = Math.min(MAX_BACKOFF_MS, this.#backoff * 2);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#connect();
    }, wait);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const client = this.#client;
    this.#client = null;
    if (client) await client.end().catch(() => undefined);
  }
}
